//! The RTMP edge: accepts TCP connections and drives `costream_rtmp`'s
//! sans-IO session for publishers (into the hub) and players (out of it).
//! RTMPS is the same code over a TLS stream, once its handshake is done
//! (within the setup deadline).

mod conn;
mod ingest;
mod play;

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tracing::Instrument;

use crate::limits::Connections;
use crate::server::AppState;
use crate::tls::Tls;

/// Serves RTMP, or RTMPS with `tls`. `conns` is shared by both listeners:
/// the caps count a client's connections over either.
pub async fn accept_loop(
    listener: TcpListener,
    state: Arc<AppState>,
    conns: Connections,
    tls: Option<Arc<Tls>>,
) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let Some(slot) = conns.admit_or_refuse("rtmp", peer.ip()) else {
                    continue; // closed at once: a flood costs an accept, no more
                };
                let accepted_at = Instant::now();
                let _ = socket.set_nodelay(true);
                let state = state.clone();
                let Some(tls) = &tls else {
                    let span = tracing::info_span!("rtmp", %peer);
                    tokio::spawn(conn::serve(socket, state, slot, accepted_at).instrument(span));
                    continue;
                };
                // Taken now: a reload later changes nothing for this one.
                let acceptor = tls.rtmps();
                let span = tracing::info_span!("rtmps", %peer);
                let connection = async move {
                    let deadline = tokio::time::Instant::from_std(
                        accepted_at + state.config.rtmp.setup_timeout,
                    );
                    let handshake = crate::tls::handshake(
                        &acceptor,
                        socket,
                        peer,
                        deadline,
                        "rtmp",
                        "setup_timeout",
                    );
                    if let Some(stream) = handshake.await {
                        conn::serve(stream, state, slot, accepted_at).await;
                    }
                };
                tokio::spawn(connection.instrument(span));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!("rtmp accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
