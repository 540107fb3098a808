//! The RTMP edge: accepts TCP connections and drives `costream_rtmp`'s
//! sans-IO session for publishers (into the hub) and players (out of it).

mod conn;
mod ingest;
mod play;

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::Instrument;

use crate::limits::Connections;
use crate::server::AppState;

pub async fn accept_loop(listener: TcpListener, state: Arc<AppState>) {
    let rtmp = &state.config.rtmp;
    let conns = Connections::new(rtmp.max_connections, rtmp.max_connections_per_ip);
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                let Some(slot) = conns.admit_or_refuse("rtmp", peer.ip()) else {
                    continue; // closed at once: a flood costs an accept, no more
                };
                let state = state.clone();
                let span = tracing::info_span!("rtmp", %peer);
                tokio::spawn(conn::serve(socket, state, slot).instrument(span));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, don't spin.
                tracing::warn!("rtmp accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
