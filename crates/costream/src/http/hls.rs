//! HLS playlist and segment requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use costream_hub::StreamKey;

use super::error;
use crate::play_auth::{authorize, Action, Client};
use crate::server::AppState;

pub(super) async fn playlist(
    state: Arc<AppState>,
    key: StreamKey,
    peer: SocketAddr,
    client: Client,
) -> Response {
    if let Err(refusal) = authorize(&state, &client.ask(&key, Action::Play, "hls")).await {
        return refusal.response();
    }
    let Some(hls) = state.hls.get(&key) else {
        return error(StatusCode::NOT_FOUND, &format!("stream {key} is not live"));
    };
    let target = state.hls.segment_duration();
    hls.saw_client(peer.ip(), target * 3);
    let name = key.stream().to_owned();
    // The segments are asked for with the playlist's query (its token,
    // what the on_play callback looks at), so a player that got the
    // playlist gets its segments.
    let query = segment_query(&client.query);
    match hls
        .playlist(|seq| format!("{name}-{seq}.ts{query}"), target * 3)
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

/// `?QUERY` for the segment URIs, or nothing. A request target's query is
/// already URL-encoded; anything else (it would break the playlist's lines)
/// is left out.
fn segment_query(query: &str) -> String {
    let safe = query
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'"');
    if query.is_empty() || !safe {
        String::new()
    } else {
        format!("?{query}")
    }
}

pub(super) async fn segment(
    state: Arc<AppState>,
    key: StreamKey,
    sequence: u64,
    client: Client,
) -> Response {
    if let Err(refusal) = authorize(&state, &client.ask(&key, Action::Play, "hls")).await {
        return refusal.response();
    }
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
