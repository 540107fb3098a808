//! The HTTP accept loop. A connection whose first request is an HTTP-FLV
//! play of a live stream is served here directly: one response head, then
//! the shared FLV tags written with vectored writes, no HTTP chunk framing
//! and no per-frame trips through hyper. Everything else goes to hyper/axum
//! with the bytes already read replayed in front of the socket.
//!
//! HTTPS is the same code over a TLS stream: the handshake first, within
//! the head deadline, then everything as over plain TCP.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use costream_hub::{Protocol, StreamKey, Subscriber};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::io::{write_viewer, ClientStream};
use crate::limits::{Connections, Slot};
use crate::play_auth::{authorize, Action, Client};
use crate::server::AppState;
use crate::tls::Tls;

/// Bound on the first request head we look at ourselves.
const MAX_HEAD: usize = 16 * 1024;
const BATCH: usize = 64;

/// Serves HTTP, or HTTPS with `tls`. `conns` is shared by both listeners:
/// the caps count a client's connections over either.
pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    router: Router,
    conns: Connections,
    tls: Option<Arc<Tls>>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let Some(slot) = conns.admit_or_refuse("http", peer.ip()) else {
                    continue; // closed at once: a flood costs an accept, no more
                };
                let started = Instant::now();
                let _ = tcp.set_nodelay(true);
                crate::io::set_send_buffer(&tcp, state.config.hub.viewer_send_buffer);
                let (state, router) = (state.clone(), router.clone());
                let Some(tls) = &tls else {
                    tokio::spawn(connection(tcp, peer, state, router, started, slot));
                    continue;
                };
                // Taken now: a reload later changes nothing for this one.
                let acceptor = tls.https();
                tokio::spawn(async move {
                    let deadline = head_deadline(started, &state);
                    let handshake = crate::tls::handshake(
                        &acceptor,
                        tcp,
                        peer,
                        deadline,
                        "http",
                        "head_timeout",
                    );
                    if let Some(stream) = handshake.await {
                        connection(stream, peer, state, router, started, slot).await;
                    }
                });
            }
            Err(e) => {
                tracing::warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// When the first request head must be in: `http.head_timeout` after the
/// connection was accepted (a TLS handshake included).
fn head_deadline(started: Instant, state: &AppState) -> tokio::time::Instant {
    tokio::time::Instant::from_std(started + state.config.http.head_timeout)
}

async fn connection<S: ClientStream>(
    mut tcp: S,
    peer: SocketAddr,
    state: Arc<AppState>,
    router: Router,
    started: Instant,
    _slot: Slot,
) {
    let head_timeout = state.config.http.head_timeout;
    // One deadline for the whole head, not per read: a client trickling a
    // byte at a time (slowloris) is cut off all the same.
    let head_deadline = head_deadline(started, &state);
    let mut head = BytesMut::with_capacity(1024);
    let flv = loop {
        match tokio::time::timeout_at(head_deadline, tcp.read_buf(&mut head)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return,
            Err(_) => {
                crate::metrics::refused(
                    "http",
                    "head_timeout",
                    Some(peer.ip()),
                    format_args!("request head too slow"),
                );
                return;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&head) {
            Ok(httparse::Status::Complete(_)) => break flv_request(&req, peer),
            Ok(httparse::Status::Partial) if head.len() < MAX_HEAD => continue,
            // Too large or malformed: hyper answers with the right error.
            _ => break None,
        }
    };
    if let Some((key, client)) = flv {
        // Answered here, refused or not: asked once (an on_play callback
        // is an HTTP call).
        if let Err(refusal) = authorize(&state, &client.ask(&key, Action::Play, "flv")).await {
            write_error(&mut tcp, &state, refusal.status, &refusal.message).await;
            return close(&mut tcp).await;
        }
        match state.bridges.subscribe(&key, Protocol::Flv) {
            Ok(sub) => {
                if let Err(e) = serve_flv(&mut tcp, key, sub, &state, started).await {
                    tracing::debug!(%peer, "HTTP-FLV viewer left: {e}");
                }
            }
            Err(e) => {
                let message = e.to_string();
                write_error(
                    &mut tcp,
                    &state,
                    crate::bridge::refusal_status(&e),
                    &message,
                )
                .await;
            }
        }
        return close(&mut tcp).await;
    }
    let io = TokioIo::new(Rewind {
        prefix: head.freeze(),
        inner: tcp,
    });
    let service = router.map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // Each later request head on a kept-alive connection, and the wait
        // for it, is bounded too (hyper needs a timer for that).
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(io, TowerToHyperService::new(service))
        // Room signaling WebSockets are upgrades of these connections.
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, "HTTP connection error: {e}");
    }
}

/// Ends a connection the fast path answered. Over TLS the end of a body
/// that runs until the close (HTTP-FLV) is a close_notify, without which
/// a client cannot tell it from a cut; a write, so briefly bounded.
async fn close<S: ClientStream>(tcp: &mut S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.shutdown()).await;
}

/// A JSON error, as `crate::http::error` makes it, written by hand on the
/// fast path (the connection then closes).
async fn write_error<S: ClientStream>(
    tcp: &mut S,
    state: &AppState,
    status: axum::http::StatusCode,
    message: &str,
) {
    let body = serde_json::json!({ "error": message }).to_string();
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Access-Control-Allow-Origin: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        state.config.http.cors_origin
    );
    // Flushed too: over TLS the last record may still be in the session.
    let write = async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.flush().await
    };
    let _ = tokio::time::timeout(state.config.rtmp.write_timeout, write).await;
}

/// A `GET /{app}/{stream}.flv`: its key and who asks (for the play policy).
fn flv_request(req: &httparse::Request, peer: SocketAddr) -> Option<(StreamKey, Client)> {
    if req.method != Some("GET") {
        return None;
    }
    let (path, query) = match req.path?.split_once('?') {
        Some((p, q)) => (p, q),
        None => (req.path?, ""),
    };
    let (app, file) = path.strip_prefix('/')?.split_once('/')?;
    let key = StreamKey::new(app, file.strip_suffix(".flv")?).ok()?;
    let authorization = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("authorization"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(str::to_owned);
    let client = Client {
        query: query.to_owned(),
        authorization,
        ip: Some(peer.ip()),
    };
    Some((key, client))
}

async fn serve_flv<S: ClientStream>(
    tcp: &mut S,
    key: StreamKey,
    mut sub: Subscriber,
    state: &AppState,
    started: Instant,
) -> anyhow::Result<()> {
    tracing::info!(stream = %key, "HTTP-FLV viewer");
    metrics::counter!(crate::metrics::SESSIONS, "protocol" => "flv", "role" => "play").increment(1);
    let sent = metrics::counter!(crate::metrics::BYTES_SENT, "protocol" => "flv");
    sub.set_coalesce(state.config.hub.write_coalesce);
    let response_head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache, no-store\r\n\
         Access-Control-Allow-Origin: {}\r\nConnection: close\r\n\r\n",
        state.config.http.cors_origin
    );
    let write_timeout = state.config.rtmp.write_timeout;
    let mut bufs = vec![Bytes::from(response_head), super::flv::stream_head(&sub)];
    let mut batch = Vec::with_capacity(BATCH);
    let mut first_picture = false;
    // Counted in bulk: a shared atomic per write costs more than the rest.
    let mut unsent = 0u64;
    let result = loop {
        let bytes: usize = bufs.iter().map(|b| b.len()).sum();
        if let Err(e) = write_viewer(tcp, &mut bufs, write_timeout).await {
            if e.kind() == std::io::ErrorKind::TimedOut {
                crate::io::write_timed_out("flv", tcp, write_timeout);
            }
            break Err(e.into());
        }
        unsent += bytes as u64;
        if unsent >= 1 << 20 {
            sent.increment(std::mem::take(&mut unsent));
        }
        bufs.clear();
        if !sub.recv_batch(&mut batch, BATCH).await {
            break Ok(());
        }
        for frame in batch.drain(..).filter(|f| crate::mux::flv_carries(f)) {
            if !first_picture && crate::mux::is_picture(&frame) {
                first_picture = true;
                metrics::histogram!(crate::metrics::FIRST_FRAME, "protocol" => "flv")
                    .record(started.elapsed().as_secs_f64());
            }
            bufs.push(crate::mux::flv_tag(&frame));
        }
    };
    sent.increment(unsent);
    result
}

/// A socket with bytes already read put back in front.
struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
