//! WHIP (RFC 9725) and WHEP endpoints: an SDP offer in, `201 Created` with
//! the answer and the session's URL out; PATCH for trickled candidates,
//! DELETE to end.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::Router;
use costream_hub::StreamKey;
use costream_rtc::{Direction, RtcError, SessionId, MAX_OFFER_LEN};

use super::OfferError;
use crate::http::error;
use crate::play_auth::{authorize, Action, Client};
use crate::server::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/whip/{app}/{stream}", post(whip))
        .route("/whep/{app}/{stream}", post(whep))
        .route("/whip/{app}/{stream}/{session}", patch(trickle).delete(end))
        .route("/whep/{app}/{stream}/{session}", patch(trickle).delete(end))
}

/// `OPTIONS` on a WHIP/WHEP endpoint also names the ICE servers a client
/// may use, as `Link` headers (RFC 9725 section 4.6). A middleware outside
/// the CORS layer, which answers every OPTIONS request itself.
pub async fn links_on_options(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let wants_links = request.method() == Method::OPTIONS
        && (request.uri().path().starts_with("/whip/")
            || request.uri().path().starts_with("/whep/"));
    let mut response = next.run(request).await;
    if wants_links {
        add_links(&state, response.headers_mut());
    }
    response
}

fn add_links(state: &AppState, headers: &mut HeaderMap) {
    let Some(rtc) = &state.rtc else {
        return;
    };
    for link in rtc.ice_links.iter() {
        if let Ok(v) = header::HeaderValue::from_str(link) {
            headers.append(header::LINK, v);
        }
    }
}

async fn whip(
    state: State<Arc<AppState>>,
    path: Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = Client::from_http(&uri, &headers, Some(peer.ip()));
    offer(state, path, client, headers, body, Direction::Publish).await
}

async fn whep(
    state: State<Arc<AppState>>,
    path: Path<(String, String)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = Client::from_http(&uri, &headers, Some(peer.ip()));
    offer(state, path, client, headers, body, Direction::Play).await
}

async fn offer(
    State(state): State<Arc<AppState>>,
    Path((app, stream)): Path<(String, String)>,
    client: Client,
    headers: HeaderMap,
    body: Bytes,
    direction: Direction,
) -> Response {
    let Some(rtc) = &state.rtc else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "WebRTC is disabled on this server",
        );
    };
    let key = match StreamKey::new(&app, &stream) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad stream key: {e}")),
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/sdp") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the offer must be sent as application/sdp",
        );
    }
    if body.len() > MAX_OFFER_LEN {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the SDP offer is too large");
    }
    let Ok(sdp) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the SDP offer is not UTF-8 text");
    };
    if direction == Direction::Publish && crate::room::is_room_feed(&key) {
        return error(StatusCode::FORBIDDEN, crate::room::ROOM_FEED_REFUSAL);
    }
    let (kind, action) = if direction == Direction::Publish {
        ("whip", Action::Publish)
    } else {
        ("whep", Action::Play)
    };
    // Room feeds, play and publish tokens, on_play / on_publish: the token
    // comes as `Authorization: Bearer` (WHIP/WHEP's way) or `?token=`.
    if let Err(refusal) = authorize(&state, &client.ask(&key, action, kind)).await {
        return refusal.response();
    }
    // `Client` has the connection's address; never unset on this path.
    let ip = client.ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let cap = state.config.rtc.max_sessions_per_ip;
    if rtc.resources.count_ip(ip) >= cap {
        crate::metrics::refused(
            kind,
            "sessions_per_ip",
            Some(ip),
            format_args!("{cap} sessions already"),
        );
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("this address already has {cap} WebRTC sessions (rtc.max_sessions_per_ip)"),
        );
    }
    match rtc.offer_watched(direction, key.clone(), sdp).await {
        Ok((session, answer, ended)) => {
            let id = match rtc.resources.insert(key.clone(), session, ip) {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!("no randomness for a session URL: {e}");
                    rtc.close(session).await;
                    return error(StatusCode::SERVICE_UNAVAILABLE, "try again");
                }
            };
            let resources = rtc.resources.clone();
            let forget = id.clone();
            tokio::spawn(async move {
                let _ = ended.await;
                resources.remove(&forget);
            });
            let location = format!("/{kind}/{key}/{id}");
            let mut response = (
                StatusCode::CREATED,
                [
                    (header::CONTENT_TYPE, "application/sdp".to_string()),
                    (header::LOCATION, location),
                ],
                answer,
            )
                .into_response();
            add_links(&state, response.headers_mut());
            response
        }
        Err(e) => {
            let status = match &e {
                OfferError::Busy(_) => StatusCode::CONFLICT,
                OfferError::NotLive(_) => StatusCode::NOT_FOUND,
                OfferError::Rtc(RtcError::TooManySessions(_))
                | OfferError::Stopped
                | OfferError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                // Subscriber connections only; never a WHIP/WHEP offer.
                OfferError::Renew(_) => StatusCode::INTERNAL_SERVER_ERROR,
                OfferError::Rtc(RtcError::NoSupportedCodec(_)) => StatusCode::NOT_ACCEPTABLE,
                OfferError::Rtc(_) => StatusCode::BAD_REQUEST,
            };
            tracing::info!(stream = %key, "{kind} offer refused: {e}");
            error(status, &e.to_string())
        }
    }
}

/// The session a WHIP/WHEP URL names: its stream and its random id must
/// both match.
fn session_of(state: &AppState, app: &str, stream: &str, id: &str) -> Option<SessionId> {
    let key = StreamKey::new(app, stream).ok()?;
    state.rtc.as_ref()?.resources.get(&key, id)
}

/// Trickle ICE (RFC 8840 fragments): the `a=candidate:` lines are added.
async fn trickle(
    State(state): State<Arc<AppState>>,
    Path((app, stream, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let (Some(rtc), Some(session)) = (&state.rtc, session_of(&state, &app, &stream, &id)) else {
        return error(StatusCode::NOT_FOUND, "no such session");
    };
    match rtc.add_candidates(session, trickle_lines(&body)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(RtcError::UnknownSession(_)) => error(StatusCode::NOT_FOUND, "no such session"),
        Err(e @ RtcError::TooManyCandidates(_)) => {
            crate::metrics::refused("webrtc", "too_many_candidates", None, format_args!("{e}"));
            error(StatusCode::TOO_MANY_REQUESTS, &e.to_string())
        }
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// The `a=candidate:` lines of a trickle body (an RFC 8840 SDP fragment),
/// without the `a=`; other lines are ignored.
pub(super) fn trickle_lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        // One past the cap is enough to be refused.
        .take(costream_rtc::MAX_TRICKLED_CANDIDATES + 1)
        .map(String::from)
        .collect()
}

async fn end(
    State(state): State<Arc<AppState>>,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    let (Some(rtc), Some(session), Ok(key)) = (
        &state.rtc,
        session_of(&state, &app, &stream, &id),
        StreamKey::new(&app, &stream),
    ) else {
        return error(StatusCode::NOT_FOUND, "no such session");
    };
    if rtc.delete(key, session).await {
        rtc.resources.remove(&id);
        StatusCode::OK.into_response()
    } else {
        error(StatusCode::NOT_FOUND, "no such session")
    }
}
