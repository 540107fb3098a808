//! One RTMP connection: handshake and connect, then either publishing or
//! playing, which take over the socket and the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use costream_hub::StreamKey;
use costream_rtmp::{ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::AppState;

/// What a connection asked for, gathered from `connect` and `publish`/`play`.
pub(super) struct Request {
    pub stream_id: u32,
    pub key: StreamKey,
    /// Query parameters of the app (`live?token=..`) and of the stream name.
    pub query: String,
    pub accepted_at: Instant,
}

pub(super) async fn serve(mut socket: TcpStream, state: Arc<AppState>) {
    let _ = socket.set_nodelay(true);
    match run(&mut socket, &state).await {
        Ok(()) => tracing::debug!("connection closed"),
        Err(e) => tracing::info!("connection closed: {e:#}"),
    }
    let _ = socket.shutdown().await;
}

async fn run(socket: &mut TcpStream, state: &Arc<AppState>) -> anyhow::Result<()> {
    let accepted_at = Instant::now();
    let rtmp = &state.config.rtmp;
    let mut session = ServerSession::new(ServerConfig {
        chunk_size: rtmp.chunk_size,
        window_ack_size: 2_500_000,
        max_message_size: rtmp.max_message_size,
    });
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut app = String::new();
    let mut app_query = String::new();
    loop {
        let n = tokio::time::timeout(rtmp.idle_timeout, socket.read_buf(&mut buf))
            .await
            .map_err(|_| {
                anyhow::anyhow!("no publish or play request within {:?}", rtmp.idle_timeout)
            })??;
        if n == 0 {
            return Ok(());
        }
        session.feed(&mut buf)?;
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::Connect { app: a, query, .. } => {
                    app = a;
                    app_query = query.unwrap_or_default();
                    session.accept_connect()?;
                }
                ServerEvent::Publish {
                    stream_id,
                    name,
                    query,
                    ..
                } => {
                    let Some(req) = request(
                        &mut session,
                        stream_id,
                        &app,
                        &app_query,
                        &name,
                        query,
                        accepted_at,
                        true,
                    )?
                    else {
                        return flush_and_linger(socket, &mut session).await;
                    };
                    return super::ingest::run(socket, session, buf, req, state).await;
                }
                ServerEvent::Play {
                    stream_id,
                    name,
                    query,
                    ..
                } => {
                    let Some(req) = request(
                        &mut session,
                        stream_id,
                        &app,
                        &app_query,
                        &name,
                        query,
                        accepted_at,
                        false,
                    )?
                    else {
                        return flush_and_linger(socket, &mut session).await;
                    };
                    return super::play::run(socket, session, buf, req, state).await;
                }
                _ => {}
            }
        }
        let out = session.take_output();
        if !out.is_empty() {
            socket.write_all(&out).await?;
        }
    }
}

/// Validates the stream key; a bad one is refused with an error status.
#[allow(clippy::too_many_arguments)]
fn request(
    session: &mut ServerSession,
    stream_id: u32,
    app: &str,
    app_query: &str,
    name: &str,
    query: Option<String>,
    accepted_at: Instant,
    publish: bool,
) -> anyhow::Result<Option<Request>> {
    match StreamKey::new(app, name) {
        Ok(key) => {
            let mut q = app_query.to_owned();
            if let Some(extra) = query.filter(|s| !s.is_empty()) {
                if !q.is_empty() {
                    q.push('&');
                }
                q.push_str(&extra);
            }
            Ok(Some(Request {
                stream_id,
                key,
                query: q,
                accepted_at,
            }))
        }
        Err(e) => {
            tracing::info!(app, name, "refused: bad stream key: {e}");
            let desc = format!("bad stream key {app}/{name}: {e}");
            if publish {
                session.reject_publish(stream_id, "NetStream.Publish.BadName", &desc)?;
            } else {
                session.reject_play(stream_id, "NetStream.Play.StreamNotFound", &desc)?;
            }
            metrics::counter!(crate::metrics::REJECTED, "protocol" => "rtmp", "reason" => "bad_key").increment(1);
            Ok(None)
        }
    }
}

/// Sends what the session has to say (an error status) and gives the client
/// a moment to read it before the connection closes.
pub(super) async fn flush_and_linger(
    socket: &mut TcpStream,
    session: &mut ServerSession,
) -> anyhow::Result<()> {
    let out = session.take_output();
    socket.write_all(&out).await?;
    let mut scratch = [0u8; 4096];
    let deadline = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return Ok(()),
            r = socket.read(&mut scratch) => if matches!(r, Ok(0) | Err(_)) { return Ok(()) },
        }
    }
}
