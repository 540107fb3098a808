//! HTTP-FLV: an endless chunked response of FLV tags, each shared by every
//! viewer (muxed once per frame).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use costream_hub::{Protocol, StreamKey, Subscriber};
use futures_util::stream;

use super::error;
use crate::mux;
use crate::play_auth::{authorize, Action, Client};
use crate::server::AppState;

pub(super) async fn play(state: Arc<AppState>, key: StreamKey, client: Client) -> Response {
    if let Err(refusal) = authorize(&state, &client.ask(&key, Action::Play, "flv")).await {
        return refusal.response();
    }
    let mut sub = match state.bridges.subscribe(&key, Protocol::Flv) {
        Ok(s) => s,
        Err(e) => {
            metrics::counter!(crate::metrics::REJECTED, "protocol" => "flv", "reason" => "not_found").increment(1);
            return error(crate::bridge::refusal_status(&e), &e.to_string());
        }
    };
    sub.set_coalesce(state.config.hub.write_coalesce);
    tracing::info!(stream = %key, "HTTP-FLV viewer");
    metrics::counter!(crate::metrics::SESSIONS, "protocol" => "flv", "role" => "play").increment(1);
    let head = Bytes::from(
        [
            &costream_flv::FLV_HEADER[..],
            &mux::flv_metadata_tag(&sub.stream().info()),
        ]
        .concat(),
    );
    let viewer = Viewer {
        sub,
        head: Some(head),
        started: Instant::now(),
        first_picture: false,
        sent: metrics::counter!(crate::metrics::BYTES_SENT, "protocol" => "flv"),
        unsent: 0,
    };
    let body = stream::unfold(viewer, |mut v| async move {
        let bytes = v.next().await?;
        Some((Ok::<_, Infallible>(bytes), v))
    });
    (
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The FLV file header and `onMetaData`, the first bytes every viewer gets.
pub(super) fn stream_head(sub: &Subscriber) -> Bytes {
    let meta = mux::flv_metadata_tag(&sub.stream().info());
    Bytes::from([&costream_flv::FLV_HEADER[..], &meta].concat())
}

/// HTTP-FLV through axum: used when a keep-alive connection asks for a
/// stream after another request (the first request is served by
/// `listener.rs` directly).
struct Viewer {
    sub: Subscriber,
    head: Option<Bytes>,
    started: Instant,
    first_picture: bool,
    sent: metrics::Counter,
    /// Bytes not yet added to `sent` (one counter update per ~256 KiB).
    unsent: u64,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.sent.increment(self.unsent);
    }
}

impl Viewer {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(head) = self.head.take() {
            return Some(head);
        }
        let frame = loop {
            let f = self.sub.recv().await?;
            if mux::flv_carries(&f) {
                break f;
            }
        };
        if !self.first_picture && mux::is_picture(&frame) {
            self.first_picture = true;
            metrics::histogram!(crate::metrics::FIRST_FRAME, "protocol" => "flv")
                .record(self.started.elapsed().as_secs_f64());
        }
        let tag = mux::flv_tag(&frame);
        self.unsent += tag.len() as u64;
        if self.unsent >= 256 * 1024 {
            self.sent.increment(std::mem::take(&mut self.unsent));
        }
        Some(tag)
    }
}
