//! `/api/v1`: streams as JSON.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use costream_hub::{Protocol, Stream, StreamKey};
use serde_json::{json, Value};

use super::admin::{Admin, MaybeAdmin};
use super::error;
use crate::bridge::AudioTarget;
use crate::server::AppState;

pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/streams", get(list))
        .route("/streams/{app}/{stream}", get(show).delete(kick))
        .route("/webrtc/sessions", get(rtc_sessions))
        .route("/bridges", get(bridges))
}

/// Whether the caller may see `key` in the stream list: admins see
/// everything, anonymous callers never a room's feeds (private to the room).
fn visible(admin: bool, key: &StreamKey) -> bool {
    admin || !crate::room::is_room_feed(key)
}

/// Anonymous callers get the list only with `[http] public_stream_list`.
#[allow(clippy::result_large_err)]
fn list_allowed(state: &AppState, admin: bool) -> Result<(), Response> {
    if admin || state.config.http.public_stream_list {
        return Ok(());
    }
    Err(error(
        StatusCode::UNAUTHORIZED,
        "the stream list needs an admin token ([http] public_stream_list = false)",
    ))
}

/// Live streams; bridged twins are listed under `/bridges`, their viewers
/// counted with the stream they bridge.
async fn list(MaybeAdmin(admin): MaybeAdmin, State(state): State<Arc<AppState>>) -> Response {
    if let Err(refused) = list_allowed(&state, admin) {
        return refused;
    }
    let streams: Vec<Value> = state
        .hub
        .streams()
        .iter()
        .filter(|s| !s.key().is_bridged() && visible(admin, s.key()))
        .map(|s| describe(&state, s))
        .collect();
    Json(json!({ "streams": streams })).into_response()
}

async fn bridges(_: Admin, State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "bridges": state.bridges.list() }))
}

async fn show(
    MaybeAdmin(admin): MaybeAdmin,
    State(state): State<Arc<AppState>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    if let Err(refused) = list_allowed(&state, admin) {
        return refused;
    }
    match lookup(&state, &app, &stream) {
        Ok(s) if visible(admin, s.key()) => Json(describe(&state, &s)).into_response(),
        // As if it were not there.
        Ok(s) => error(
            StatusCode::NOT_FOUND,
            &format!("stream {} is not live", s.key()),
        ),
        Err(r) => *r,
    }
}

/// Kicks the publisher; the stream ends for every viewer.
async fn kick(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path((app, stream)): Path<(String, String)>,
) -> Response {
    match lookup(&state, &app, &stream) {
        Ok(s) => {
            state.hub.kick(s.key());
            tracing::info!(stream = %s.key(), "publisher kicked through the API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => *r,
    }
}

async fn rtc_sessions(_: Admin, State(state): State<Arc<AppState>>) -> Json<Value> {
    let sessions = match &state.rtc {
        Some(rtc) => rtc.sessions().await,
        None => Vec::new(),
    };
    Json(json!({ "sessions": sessions }))
}

fn lookup(state: &AppState, app: &str, stream: &str) -> Result<Arc<Stream>, Box<Response>> {
    let key = StreamKey::new(app, stream).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("bad stream key: {e}"),
        ))
    })?;
    state.hub.stream(&key).ok_or_else(|| {
        Box::new(error(
            StatusCode::NOT_FOUND,
            &format!("stream {key} is not live"),
        ))
    })
}

fn describe(state: &AppState, stream: &Stream) -> Value {
    let snap = stream.snapshot();
    let stats = &stream.stats;
    let twins: Vec<Arc<Stream>> = [AudioTarget::Aac, AudioTarget::Opus]
        .iter()
        .filter_map(|t| state.hub.stream(&snap.key.bridged(t.suffix())))
        .collect();
    let mut viewers = serde_json::Map::new();
    let mut total = 0;
    for p in Protocol::ALL {
        let mut n = stats.viewers(p);
        // A twin's HLS "viewer" is the segmenter; HLS clients are counted
        // on the stream itself.
        if p != Protocol::Hls {
            n += twins.iter().map(|t| t.stats.viewers(p)).sum::<u64>();
        }
        if p != Protocol::Internal {
            total += n;
        }
        viewers.insert(p.name().into(), n.into());
    }
    viewers.insert("total".into(), total.into());
    json!({
        "key": snap.key.to_string(),
        "app": snap.key.app(),
        "stream": snap.key.stream(),
        "publisher": snap.publisher.map(|p| p.name()),
        "state": if snap.publisher.is_some() { "live" } else { "waiting_for_publisher" },
        "uptime_secs": round(snap.uptime_secs),
        "publisher_uptime_secs": snap.publisher_uptime_secs.map(round),
        "publisher_sessions": snap.publisher_sessions,
        "video": snap.info.video.as_ref().map(|v| json!({
            "codec": v.codec.name(),
            "codec_string": v.codec_string,
            "width": v.width,
            "height": v.height,
            "declared_fps": v.declared_fps,
            "b_frames": snap.info.b_frames,
        })),
        "audio": snap.info.audio.as_ref().map(|a| json!({
            "codec": a.codec.name(),
            "codec_string": a.codec_string,
            "sample_rate": a.sample_rate,
            "channels": a.channels,
        })),
        "fps": snap.info.fps,
        "bitrate_kbps": snap.info.bitrate_bps / 1000,
        "viewers": viewers,
        "frames_in": stats.frames_in(),
        "bytes_in": stats.bytes_in(),
        "dropped_frames": stats.frames_dropped(),
        "viewer_skips": stats.viewer_skips(),
        // What its frames hold now, against hub.max_stream_bytes.
        "memory_bytes": stream.held_bytes(),
    })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
