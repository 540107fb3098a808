//! One RTMP connection: handshake and connect, then either publishing or
//! playing, which take over the socket and the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use costream_hub::StreamKey;
use costream_rtmp::{ServerConfig, ServerEvent, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::io::ClientStream;
use crate::limits::Slot;
use crate::play_auth::{Action, Ask};
use crate::server::AppState;

/// What a connection asked for, gathered from `connect` and `publish`/`play`.
pub(super) struct Request {
    pub stream_id: u32,
    pub key: StreamKey,
    /// Query parameters of the app (`live?token=..`) and of the stream name.
    pub query: String,
    pub accepted_at: Instant,
}

impl Request {
    /// What the play/publish policy is asked (RTMP has no headers: tokens
    /// come in the query).
    pub fn ask(&self, action: Action, client_ip: Option<std::net::IpAddr>) -> Ask<'_> {
        Ask {
            key: &self.key,
            action,
            protocol: "rtmp",
            query: &self.query,
            authorization: None,
            client_ip,
        }
    }
}

/// How long closing may take: over TLS a close is a write (close_notify)
/// that a client which reads nothing would hold up.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Serves one connection, accepted (its TLS handshake included, if any)
/// at `accepted_at`.
pub(super) async fn serve<S: ClientStream>(
    mut socket: S,
    state: Arc<AppState>,
    _slot: Slot,
    accepted_at: Instant,
) {
    match run(&mut socket, &state, accepted_at).await {
        Ok(()) => tracing::debug!("connection closed"),
        Err(e) => tracing::info!("connection closed: {e:#}"),
    }
    let limit = CLOSE_LIMIT.min(state.config.rtmp.write_timeout);
    let _ = tokio::time::timeout(limit, socket.shutdown()).await;
}

/// Writes (and flushes) `out` within `limit` (`rtmp.write_timeout`): a
/// client that never reads cannot hold the connection's task.
pub(super) async fn write_out<S: ClientStream>(
    socket: &mut S,
    out: &[u8],
    limit: Duration,
) -> anyhow::Result<()> {
    let write = async {
        socket.write_all(out).await?;
        socket.flush().await
    };
    let result = tokio::time::timeout(limit, write).await;
    match result {
        Ok(r) => Ok(r?),
        Err(_) => {
            crate::io::write_timed_out("rtmp", socket, limit);
            anyhow::bail!("the client read nothing for {limit:?}")
        }
    }
}

async fn run<S: ClientStream>(
    socket: &mut S,
    state: &Arc<AppState>,
    accepted_at: Instant,
) -> anyhow::Result<()> {
    let rtmp = &state.config.rtmp;
    let mut session = ServerSession::new(ServerConfig {
        chunk_size: rtmp.chunk_size,
        window_ack_size: 2_500_000,
        max_message_size: rtmp.max_message_size,
    });
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut app = String::new();
    let mut app_query = String::new();
    // Bytes trickling in never extend the setup: one deadline for all of it.
    let setup_deadline = tokio::time::Instant::from_std(accepted_at + rtmp.setup_timeout);
    loop {
        let wait = tokio::time::Instant::now() + rtmp.idle_timeout;
        let n = tokio::time::timeout_at(wait.min(setup_deadline), socket.read_buf(&mut buf))
            .await
            .map_err(|_| {
                let ip = socket.tcp().peer_addr().ok().map(|a| a.ip());
                crate::metrics::refused(
                    "rtmp",
                    "setup_timeout",
                    ip,
                    format_args!("setup too slow"),
                );
                anyhow::anyhow!(
                    "no publish or play request within {:?} (or {:?} of silence)",
                    rtmp.setup_timeout,
                    rtmp.idle_timeout
                )
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
                    let asked = Asked {
                        stream_id,
                        name,
                        query,
                        publish: true,
                    };
                    return dispatch(
                        socket,
                        session,
                        buf,
                        asked,
                        &app,
                        &app_query,
                        accepted_at,
                        state,
                    )
                    .await;
                }
                ServerEvent::Play {
                    stream_id,
                    name,
                    query,
                    ..
                } => {
                    let asked = Asked {
                        stream_id,
                        name,
                        query,
                        publish: false,
                    };
                    return dispatch(
                        socket,
                        session,
                        buf,
                        asked,
                        &app,
                        &app_query,
                        accepted_at,
                        state,
                    )
                    .await;
                }
                _ => {}
            }
        }
        let out = session.take_output();
        if !out.is_empty() {
            write_out(socket, &out, rtmp.write_timeout).await?;
        }
    }
}

/// A publish or play request as the session reported it.
struct Asked {
    stream_id: u32,
    name: String,
    query: Option<String>,
    publish: bool,
}

/// Validates the stream key (a bad one is refused with an error status),
/// then hands the connection to publishing or playing.
#[allow(clippy::too_many_arguments)]
async fn dispatch<S: ClientStream>(
    socket: &mut S,
    mut session: ServerSession,
    buf: BytesMut,
    asked: Asked,
    app: &str,
    app_query: &str,
    accepted_at: Instant,
    state: &Arc<AppState>,
) -> anyhow::Result<()> {
    let Asked {
        stream_id,
        name,
        query,
        publish,
    } = asked;
    let key = match StreamKey::new(app, &name) {
        Ok(key) => key,
        Err(e) => {
            tracing::info!(app, name, "refused: bad stream key: {e}");
            let desc = format!("bad stream key {app}/{name}: {e}");
            if publish {
                session.reject_publish(stream_id, "NetStream.Publish.BadName", &desc)?;
            } else {
                session.reject_play(stream_id, "NetStream.Play.StreamNotFound", &desc)?;
            }
            metrics::counter!(crate::metrics::REJECTED, "protocol" => "rtmp", "reason" => "bad_key").increment(1);
            return flush_and_linger(socket, &mut session, state).await;
        }
    };
    let mut q = app_query.to_owned();
    if let Some(extra) = query.filter(|s| !s.is_empty()) {
        if !q.is_empty() {
            q.push('&');
        }
        q.push_str(&extra);
    }
    let req = Request {
        stream_id,
        key,
        query: q,
        accepted_at,
    };
    if publish {
        super::ingest::run(socket, session, buf, req, state).await
    } else {
        super::play::run(socket, session, buf, req, state).await
    }
}

/// Sends what the session has to say (an error status) and gives the client
/// a moment to read it before the connection closes.
pub(super) async fn flush_and_linger<S: ClientStream>(
    socket: &mut S,
    session: &mut ServerSession,
    state: &AppState,
) -> anyhow::Result<()> {
    let out = session.take_output();
    write_out(socket, &out, state.config.rtmp.write_timeout).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that reads nothing: the write gives up at the limit
    /// instead of holding its task.
    #[tokio::test]
    async fn a_write_the_client_never_reads_ends_at_the_limit() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut socket, _) = listener.accept().await.unwrap();
        // Far more than the kernel buffers of both ends hold.
        let out = vec![0u8; 64 << 20];
        let started = Instant::now();
        let err = write_out(&mut socket, &out, Duration::from_millis(200))
            .await
            .expect_err("the client reads nothing");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert!(err.to_string().contains("read nothing"), "{err}");
    }
}
