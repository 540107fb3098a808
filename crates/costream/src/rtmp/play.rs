//! An RTMP player: hub frames out as pre-chunked RTMP messages shared by all
//! players, written with vectored writes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use costream_hub::Protocol;
use costream_rtmp::{ServerEvent, ServerSession};
use tokio::io::AsyncReadExt;

use super::conn::{flush_and_linger, Request};
use crate::io::{write_all_vectored, write_viewer, ClientStream};
use crate::mux;
use crate::play_auth::{authorize, Action};
use crate::server::AppState;

/// Frames taken from the queue per vectored write.
const BATCH: usize = 32;

pub(super) async fn run<S: ClientStream>(
    socket: &mut S,
    mut session: ServerSession,
    mut buf: BytesMut,
    req: Request,
    state: &Arc<AppState>,
) -> anyhow::Result<()> {
    let ip = socket.tcp().peer_addr().ok().map(|a| a.ip());
    if let Err(refusal) = authorize(state, &req.ask(Action::Play, ip)).await {
        session.reject_play(
            req.stream_id,
            refusal.rtmp_code(Action::Play),
            &refusal.message,
        )?;
        return flush_and_linger(socket, &mut session, state).await;
    }
    let mut sub = match state.bridges.subscribe(&req.key, Protocol::Rtmp) {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(stream = %req.key, "play refused: {e}");
            metrics::counter!(crate::metrics::REJECTED, "protocol" => "rtmp", "reason" => "not_found").increment(1);
            session.reject_play(
                req.stream_id,
                "NetStream.Play.StreamNotFound",
                &e.to_string(),
            )?;
            return flush_and_linger(socket, &mut session, state).await;
        }
    };
    crate::io::set_send_buffer(socket.tcp(), state.config.hub.viewer_send_buffer);
    sub.set_coalesce(state.config.hub.write_coalesce);
    session.accept_play(req.stream_id)?;
    session.send_data(req.stream_id, &mux::on_metadata(&sub.stream().info()));
    tracing::info!(stream = %req.key, "playing");
    metrics::counter!(crate::metrics::SESSIONS, "protocol" => "rtmp", "role" => "play")
        .increment(1);
    let sent = metrics::counter!(crate::metrics::BYTES_SENT, "protocol" => "rtmp");
    let write_timeout = state.config.rtmp.write_timeout;
    let shared_chunk_size = state.config.rtmp.chunk_size;
    let mut first_picture = false;
    let mut batch = Vec::with_capacity(BATCH);
    let mut bufs: Vec<Bytes> = Vec::with_capacity(BATCH + 1);
    loop {
        let out = session.take_output();
        if !out.is_empty() {
            bufs.push(out);
        }
        if !bufs.is_empty() {
            let bytes: usize = bufs.iter().map(|b| b.len()).sum();
            if let Err(e) = write_viewer(socket, &mut bufs, write_timeout).await {
                if e.kind() == std::io::ErrorKind::TimedOut {
                    crate::io::write_timed_out("rtmp", socket, write_timeout);
                }
                return Err(e.into());
            }
            bufs.clear();
            sent.increment(bytes as u64);
        }
        tokio::select! {
            r = socket.read_buf(&mut buf) => {
                if r? == 0 {
                    return Ok(());
                }
                session.feed(&mut buf)?;
                while let Some(event) = session.poll_event() {
                    if let ServerEvent::DeleteStream { .. } | ServerEvent::CloseStream { .. } = event {
                        return Ok(());
                    }
                }
            }
            more = sub.recv_batch(&mut batch, BATCH) => {
                if !more {
                    tracing::info!(stream = %req.key, "stream ended, closing player");
                    session.send_play_end(req.stream_id);
                    let mut end = vec![session.take_output()];
                    let _ = tokio::time::timeout(write_timeout, write_all_vectored(socket, &mut end)).await;
                    return Ok(());
                }
                let chunk_size = session.chunk_size();
                for frame in batch.drain(..).filter(|f| mux::flv_carries(f)) {
                    if !first_picture && mux::is_picture(&frame) {
                        first_picture = true;
                        metrics::histogram!(crate::metrics::FIRST_FRAME, "protocol" => "rtmp")
                            .record(req.accepted_at.elapsed().as_secs_f64());
                    }
                    bufs.push(mux::rtmp_chunks(&frame, chunk_size, req.stream_id, shared_chunk_size));
                }
            }
        }
    }
}
