//! The signaling WebSocket, `/rtc?access_token=JWT`: one per participant.
//! Reads client messages, writes the participant's outbox, pings, and tells
//! the registry when the connection ends.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};

use super::protocol::{ClientEnvelope, ClientMessage, ErrorCode, ServerMessage};
use super::registry::{Membership, Rooms};
use super::state::Outgoing;
use crate::access::Claims;
use crate::mix::Mixes;
use crate::server::AppState;

/// Largest client message; SDP offers are well under this.
const MAX_MESSAGE: usize = 64 << 10;
const PING_EVERY: Duration = Duration::from_secs(5);
/// A connection silent this long (not even a pong) is taken as lost.
const SILENT_LIMIT: Duration = Duration::from_secs(15);
/// Close code for a refused token.
const CLOSE_UNAUTHORIZED: u16 = 4401;
/// A participant holds a publication, a subscriber connection and a few
/// subscriptions of their own: more ids than that are ignored.
const MAX_KEPT_SESSIONS: usize = 16;

#[derive(serde::Deserialize)]
pub struct Params {
    access_token: Option<String>,
    room: Option<String>,
    /// `false` (or `0`): subscribe only on request; by default every
    /// publication is added to the subscriber connection as it starts.
    auto_subscribe: Option<String>,
    /// On a reconnect, the sessions (comma-separated ids) the client still
    /// holds from its previous connection: they are kept. Everything else
    /// that connection set up ends (a reloaded page holds none).
    sessions: Option<String>,
}

impl Params {
    fn kept_sessions(&self) -> Vec<costream_rtc::SessionId> {
        self.sessions
            .as_deref()
            .unwrap_or("")
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .map(costream_rtc::SessionId)
            .take(MAX_KEPT_SESSIONS)
            .collect()
    }
}

pub async fn upgrade(
    State(state): State<Arc<AppState>>,
    Query(params): Query<Params>,
    ws: WebSocketUpgrade,
) -> Response {
    // The token is checked after the upgrade so that a browser can read
    // why it was refused (a failed upgrade shows it no body).
    let rooms = state.rooms.clone();
    let mixes = state.mixes.clone();
    let leeway = state.config.auth.leeway;
    let push_allow = state.config.mix.push_allow.clone();
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| run(socket, rooms, mixes, params, leeway, push_allow))
}

fn authorize(rooms: &Rooms, params: &Params, leeway: Duration) -> Result<Claims, String> {
    let token = params
        .access_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or("no access_token in the URL")?;
    let claims =
        crate::access::verify_token(rooms.keys(), token, leeway).map_err(|e| e.to_string())?;
    if let Some(room) = params.room.as_deref().filter(|r| *r != claims.room) {
        return Err(crate::access::TokenError::WrongRoom {
            token: claims.room,
            wanted: room.to_owned(),
        }
        .to_string());
    }
    Ok(claims)
}

async fn refuse(socket: WebSocket, code: ErrorCode, close_code: u16, why: String) {
    let msg = ServerMessage::error(code, why.clone()).to_json();
    let (mut sink, stream) = socket.split();
    if sink.send(Message::Text(msg.into())).await.is_ok() {
        let frame = CloseFrame {
            code: close_code,
            reason: truncate(&why, 120).into(),
        };
        close(sink, stream, Some(frame)).await;
    }
}

/// The closing handshake: sends the close frame and waits (briefly) for
/// the client's, so the client reads the close code rather than a reset.
async fn close(
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    frame: Option<CloseFrame>,
) {
    if sink.send(Message::Close(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(m)) = stream.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn run(
    socket: WebSocket,
    rooms: Rooms,
    mixes: Mixes,
    params: Params,
    leeway: Duration,
    push_allow: Vec<String>,
) {
    let claims = match authorize(&rooms, &params, leeway) {
        Ok(c) => c,
        Err(why) => {
            tracing::info!("room signaling refused: {why}");
            return refuse(socket, ErrorCode::Unauthorized, CLOSE_UNAUTHORIZED, why).await;
        }
    };
    let auto = !matches!(params.auto_subscribe.as_deref(), Some("false" | "0" | "no"));
    let mut membership = match rooms.join(&claims, auto, &params.kept_sessions()) {
        Ok(m) => m,
        Err((code, why)) => return refuse(socket, code, 4400, why).await,
    };
    let left = serve(socket, &rooms, &mixes, &mut membership, &push_allow).await;
    rooms.disconnected(&membership, left);
}

/// Returns whether the participant left on purpose.
async fn serve(
    socket: WebSocket,
    rooms: &Rooms,
    mixes: &Mixes,
    m: &mut Membership,
    push_allow: &[String],
) -> bool {
    let (mut sink, mut stream) = socket.split();
    if sink
        .send(Message::Text(m.joined.to_json().into()))
        .await
        .is_err()
    {
        return false;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    let mut bucket = super::rate::Bucket::new(std::time::Instant::now());
    loop {
        tokio::select! {
            out = m.outbox.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    if sink.send(Message::Text(text.as_ref().into())).await.is_err() {
                        return false;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    close(sink, stream, Some(CloseFrame { code, reason: truncate(&reason, 120).into() })).await;
                    return false;
                }
                // Dropped by the room: this client fell behind.
                None => {
                    close(sink, stream, Some(CloseFrame { code: 4408, reason: "too slow reading messages".into() })).await;
                    return false;
                }
            },
            msg = stream.next() => {
                last_heard = tokio::time::Instant::now();
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return false,
                    Some(Ok(_)) => continue, // pings, pongs, binary
                };
                let envelope: ClientEnvelope = match serde_json::from_str(text.as_str()) {
                    Ok(e) => e,
                    Err(e) => {
                        let err = ServerMessage::error(ErrorCode::BadRequest, format!("not a signaling message: {e}"));
                        if sink.send(Message::Text(err.to_json().into())).await.is_err() {
                            return false;
                        }
                        continue;
                    }
                };
                // Media negotiation and keep-alives are not throttled
                // (candidates are capped per session instead).
                let throttled = !matches!(
                    envelope.message,
                    ClientMessage::Answer { .. } | ClientMessage::Trickle { .. } | ClientMessage::Ping | ClientMessage::Leave
                );
                if throttled {
                    match bucket.take(std::time::Instant::now()) {
                        super::rate::Verdict::Take => {}
                        super::rate::Verdict::Refuse => {
                            crate::metrics::refused("signaling", "rate_limited", None, format_args!("{} in room {}", m.identity, m.room));
                            let err = ServerMessage::Error {
                                id: envelope.id,
                                request: Some(envelope.message.name().into()),
                                code: ErrorCode::RateLimited,
                                message: "too many messages: at most 10 a second (bursts of 30)".into(),
                            };
                            if sink.send(Message::Text(err.to_json().into())).await.is_err() {
                                return false;
                            }
                            continue;
                        }
                        super::rate::Verdict::Close => {
                            tracing::warn!(room = %m.room, identity = %m.identity, "signaling connection closed: flooding");
                            close(sink, stream, Some(CloseFrame { code: 4429, reason: "too many messages".into() })).await;
                            return false;
                        }
                    }
                }
                let leave = envelope.message == ClientMessage::Leave;
                let answer = match envelope.message {
                    msg @ (ClientMessage::Mix { .. } | ClientMessage::MixStop) => {
                        Some(super::host_mix::handle(rooms, mixes, m, envelope.id, msg, push_allow))
                    }
                    msg => rooms.handle(m, envelope.id, msg).await,
                };
                if let Some(a) = answer {
                    if sink.send(Message::Text(a.to_json().into())).await.is_err() {
                        return false;
                    }
                }
                if leave {
                    close(sink, stream, None).await;
                    return true;
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > SILENT_LIMIT {
                    tracing::info!(room = %m.room, identity = %m.identity, "signaling connection silent for {SILENT_LIMIT:?}");
                    return false;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    return false;
                }
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
