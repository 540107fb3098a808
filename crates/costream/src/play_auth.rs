//! Who may play (and publish) a stream: one policy, asked by every media
//! path (RTMP play and publish, HTTP-FLV, HLS playlists and segments, WHEP
//! and WHIP) before it touches the hub.
//!
//! - Room feeds (`room.ROOM/ID`) are the room's: they play only with a
//!   room token (JWT) with `subscribe` on that room whose bearer is still
//!   in the room (unless the token has `admin`), or with an admin
//!   credential for every room.
//! - Live streams play freely unless `[auth] play_secret` (signed play
//!   URLs, `costream token play`) and/or `[auth] on_play` (an HTTP
//!   callback) are set; publishing is guarded by `[auth] publish_secret`
//!   and/or `[auth] on_publish`, the same way.
//!
//! The mixer, bridges and recorders read the hub directly and are not
//! asked.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use costream_hub::StreamKey;

use crate::access::TokenError;
use crate::auth::{query_param, AuthError};
use crate::room::ALL_ROOMS;
use crate::server::AppState;

/// What the client wants to do with the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Play,
    Publish,
}

/// A request to play or publish, as any protocol sees it.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub key: &'a StreamKey,
    pub action: Action,
    /// `rtmp`, `flv`, `hls`, `whep` or `whip`: for the callback, the log
    /// and the refusal counter.
    pub protocol: &'static str,
    /// The URL's query without `?` (for RTMP, the app's and the stream
    /// name's, joined with `&`).
    pub query: &'a str,
    /// The `Authorization` header, when the protocol has headers.
    pub authorization: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

impl Ask<'_> {
    /// `?token=`, else `Authorization: Bearer`.
    fn token(&self) -> Option<&str> {
        query_param(Some(self.query), "token")
            .filter(|t| !t.is_empty())
            .or_else(|| {
                self.authorization
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::trim)
            })
    }
}

/// The client's side of an HTTP request, owned (handlers pass it on).
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub query: String,
    pub authorization: Option<String>,
    pub ip: Option<IpAddr>,
}

impl Client {
    pub fn from_http(uri: &axum::http::Uri, headers: &HeaderMap, ip: Option<IpAddr>) -> Client {
        Client {
            query: uri.query().unwrap_or("").to_owned(),
            authorization: headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            ip,
        }
    }

    pub fn ask<'a>(
        &'a self,
        key: &'a StreamKey,
        action: Action,
        protocol: &'static str,
    ) -> Ask<'a> {
        Ask {
            key,
            action,
            protocol,
            query: &self.query,
            authorization: self.authorization.as_deref(),
            client_ip: self.ip,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 (no or a bad credential) or 403 (a good one that does not
    /// allow this).
    pub status: StatusCode,
    /// The counter's `reason` label.
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    /// The JSON error response.
    pub fn response(&self) -> axum::response::Response {
        crate::http::error(self.status, &self.message)
    }

    fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason,
            message: message.into(),
        }
    }

    /// The RTMP `onStatus` code that says the same.
    pub fn rtmp_code(&self, action: Action) -> &'static str {
        match (action, self.status == StatusCode::UNAUTHORIZED) {
            (Action::Play, true) => "NetStream.Play.Unauthorized",
            (Action::Play, false) => "NetStream.Play.Forbidden",
            (Action::Publish, true) => "NetStream.Publish.Unauthorized",
            (Action::Publish, false) => "NetStream.Publish.Forbidden",
        }
    }
}

/// Decides whether `ask` may go on; a refusal is logged and counted here.
pub async fn authorize(state: &AppState, ask: &Ask<'_>) -> Result<(), Refusal> {
    let decision = decide(state, ask).await;
    if let Err(r) = &decision {
        let verb = match ask.action {
            Action::Play => "play",
            Action::Publish => "publish",
        };
        crate::metrics::refused(
            ask.protocol,
            r.reason,
            ask.client_ip,
            format_args!("{verb} {}: {}", ask.key, r.message),
        );
    }
    decision
}

async fn decide(state: &AppState, ask: &Ask<'_>) -> Result<(), Refusal> {
    if let Some(room) = ask.key.app().strip_prefix("room.") {
        return match ask.action {
            Action::Play => room_feed(state, ask, room),
            // Published by room participants over /rtc only.
            Action::Publish => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "room_feed",
                crate::room::ROOM_FEED_REFUSAL,
            )),
        };
    }
    let auth = &state.config.auth;
    let (secret, callback) = match ask.action {
        Action::Play => (&auth.play_secret, &auth.on_play),
        Action::Publish => (&auth.publish_secret, &auth.on_publish),
    };
    if let Some(secret) = secret {
        crate::auth::verify_publish(secret, ask.key, ask.token()).map_err(|e| {
            let message = match ask.action {
                Action::Publish => e.to_string(),
                Action::Play => play_token_message(&e).to_owned(),
            };
            Refusal::new(StatusCode::UNAUTHORIZED, "bad_stream_token", message)
        })?;
    }
    if let Some(url) = callback {
        call_back(state, ask, url).await?;
    }
    Ok(())
}

fn play_token_message(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => {
            "a play token is required (add ?token=... to the URL: costream token play)"
        }
        AuthError::Malformed => "the play token is malformed",
        AuthError::Expired => "the play token has expired",
        AuthError::BadSignature => "the play token's signature does not match this stream",
    }
}

/// A room feed plays with a room token for that room that grants
/// `subscribe` to someone still in the room, or an admin credential.
fn room_feed(state: &AppState, ask: &Ask<'_>, room: &str) -> Result<(), Refusal> {
    let unauthorized =
        |reason, message: String| Refusal::new(StatusCode::UNAUTHORIZED, reason, message);
    let forbidden = |reason, message: String| Refusal::new(StatusCode::FORBIDDEN, reason, message);
    // An API key and its secret (Basic) is an admin of every room.
    if let Some(basic) = ask.authorization.and_then(|v| v.strip_prefix("Basic ")) {
        return crate::http::admin::api_key_matches(state, basic.trim())
            .then_some(())
            .ok_or_else(|| {
                unauthorized("bad_admin_key", "unknown API key or wrong secret".into())
            });
    }
    let Some(token) = ask.token() else {
        return Err(unauthorized(
            "room_token_missing",
            format!(
                "{} is room {room}'s media: a room token with subscribe is required \
                 (?token=JWT or Authorization: Bearer JWT)",
                ask.key
            ),
        ));
    };
    let claims = crate::access::verify_token(state.rooms.keys(), token, state.config.auth.leeway)
        .map_err(|e| unauthorized("bad_room_token", e.to_string()))?;
    if claims.room == ALL_ROOMS && claims.grants.admin {
        return Ok(());
    }
    if claims.room != room {
        let e = TokenError::WrongRoom {
            token: claims.room,
            wanted: room.to_owned(),
        };
        return Err(forbidden("wrong_room", e.to_string()));
    }
    if !claims.grants.subscribe {
        return Err(forbidden(
            "not_granted",
            TokenError::NotGranted("subscribe").to_string(),
        ));
    }
    if claims.grants.admin {
        return Ok(());
    }
    // The token outlives a kick: the room says whether its bearer is
    // still in, and with which grants (the admin API may have changed them).
    match state.rooms.member_grants(room, &claims.sub) {
        Some(g) if g.subscribe => Ok(()),
        Some(_) => Err(forbidden(
            "not_granted",
            format!("{} may no longer subscribe in room {room}", claims.sub),
        )),
        None => Err(forbidden(
            "not_in_room",
            format!("{} is not in room {room} (left or removed)", claims.sub),
        )),
    }
}

/// Asks `[auth] on_play` / `on_publish`: a 2xx answer within
/// `[auth] callback_timeout` allows, anything else refuses.
async fn call_back(state: &AppState, ask: &Ask<'_>, url: &str) -> Result<(), Refusal> {
    use crate::bench::http_request::request;
    use crate::bench::probe::resolve;
    use crate::bench::url::BenchUrl;

    let (action, setting) = match ask.action {
        Action::Play => ("play", "on_play"),
        Action::Publish => ("publish", "on_publish"),
    };
    let body = serde_json::json!({
        "action": action,
        "stream": ask.key.to_string(),
        "app": ask.key.app(),
        "name": ask.key.stream(),
        "protocol": ask.protocol,
        "client_ip": ask.client_ip.map(|ip| ip.to_string()),
        "query": ask.query,
    })
    .to_string();
    let timeout = state.config.auth.callback_timeout;
    // Signed as webhooks are, so the receiver can tell it is this server.
    let signature = state
        .rooms
        .keys()
        .first()
        .map(|k| crate::room::webhooks::signature(k, body.as_bytes()));
    let call = async {
        let url = BenchUrl::parse(url)?;
        let addr = resolve(&url).await?;
        request(
            addr,
            &url.authority(),
            "POST",
            &url.request_target(),
            Some("application/json"),
            signature.as_deref(),
            body.as_bytes(),
        )
        .await
    };
    let refused = |reason, message: String| Refusal::new(StatusCode::FORBIDDEN, reason, message);
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(r)) if (200..300).contains(&r.status) => Ok(()),
        Ok(Ok(r)) => Err(refused(
            "callback_refused",
            format!("refused by the {setting} callback ({})", r.status),
        )),
        Ok(Err(e)) => {
            tracing::warn!("{setting} callback {url}: {e:#}");
            Err(refused(
                "callback_failed",
                format!("the {setting} callback failed"),
            ))
        }
        Err(_) => Err(refused(
            "callback_timeout",
            format!("the {setting} callback did not answer in {timeout:?}"),
        )),
    }
}

/// The default of `[auth] callback_timeout`.
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(2);
