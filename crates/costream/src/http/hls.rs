//! HLS playlist and segment requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use costream_hub::StreamKey;

use super::error;
use crate::server::AppState;

pub(super) async fn playlist(state: Arc<AppState>, key: StreamKey, peer: SocketAddr) -> Response {
    let Some(hls) = state.hls.get(&key) else {
        return error(StatusCode::NOT_FOUND, &format!("stream {key} is not live"));
    };
    let target = state.hls.segment_duration();
    hls.saw_client(peer.ip(), target * 3);
    let name = key.stream().to_owned();
    match hls
        .playlist(|seq| format!("{name}-{seq}.ts"), target * 3)
        .await
    {
        Some(text) => (
            [
                (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            text,
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("stream {key} has no HLS segment yet"),
        ),
    }
}

pub(super) fn segment(state: Arc<AppState>, key: StreamKey, sequence: u64) -> Response {
    match state.hls.get(&key).and_then(|h| h.segment(sequence)) {
        Some(data) => {
            metrics::counter!(crate::metrics::BYTES_SENT, "protocol" => "hls")
                .increment(data.len() as u64);
            (
                [
                    (header::CONTENT_TYPE, "video/mp2t"),
                    (header::CACHE_CONTROL, "max-age=60"),
                ],
                data,
            )
                .into_response()
        }
        None => error(
            StatusCode::NOT_FOUND,
            &format!("segment {sequence} of {key} is gone or not made yet"),
        ),
    }
}
