//! The rooms admin API under `/api/v1/rooms`. Every call carries
//! `Authorization: Bearer JWT`: a token with the `admin` grant, minted for
//! the room in the path, or for room `*` (every room).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::protocol::{ErrorCode, TrackKind};
use super::registry::ParticipantChange;
use crate::http::admin::Scope;
use crate::http::error;
use crate::mix::scope::MixOwner;
use crate::server::AppState;

/// The room name an admin token uses for every room.
pub const ALL_ROOMS: &str = "*";

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/rooms", get(list).post(create))
        .route("/rooms/{room}", get(show).delete(close))
        .route(
            "/rooms/{room}/participants/{identity}",
            get(participant).patch(update).delete(remove),
        )
        .route("/rooms/{room}/participants/{identity}/mute", post(mute))
        .route("/rooms/{room}/mix", post(mix))
}

/// Admin of `room` (or of every room): see `crate::http::admin`.
pub(crate) use crate::http::admin::authorize;

fn refusal((code, message): (ErrorCode, String)) -> Response {
    let status = match code {
        ErrorCode::UnknownParticipant => StatusCode::NOT_FOUND,
        ErrorCode::NotPublishing => StatusCode::CONFLICT,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    error(status, &message)
}

async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers, ALL_ROOMS) {
        return r;
    }
    Json(json!({ "rooms": state.rooms.list() })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    room: String,
}

async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(body): Json<CreateRoom>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &body.room) {
        return r;
    }
    match state.rooms.create_room(&body.room) {
        Ok(true) => (StatusCode::CREATED, Json(json!({ "room": body.room }))).into_response(),
        Ok(false) => error(StatusCode::CONFLICT, &format!("room {} exists", body.room)),
        Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad room name: {e}")),
    }
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    match state.rooms.room(&room) {
        Some((summary, participants)) => {
            let mut v = json!(summary);
            v["participant_list"] = json!(participants);
            Json(v).into_response()
        }
        None => error(StatusCode::NOT_FOUND, &format!("no room {room}")),
    }
}

async fn close(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    if state.rooms.close_room(&room) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("no room {room}"))
    }
}

async fn participant(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    let found = state
        .rooms
        .room(&room)
        .and_then(|(_, list)| list.into_iter().find(|p| p.identity == identity));
    match found {
        Some(p) => Json(p).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("{identity} is not in room {room}"),
        ),
    }
}

async fn update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
    Json(change): Json<ParticipantChange>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    match state.rooms.update_participant(&room, &identity, change) {
        Ok(p) => Json(p).into_response(),
        Err(e) => refusal(e),
    }
}

async fn remove(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    if state.rooms.remove_participant(&room, &identity) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            &format!("{identity} is not in room {room}"),
        )
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Mute {
    kind: TrackKind,
    #[serde(default = "yes")]
    muted: bool,
}

fn yes() -> bool {
    true
}

async fn mute(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
    Json(body): Json<Mute>,
) -> Response {
    if let Err(r) = authorize(&state, &headers, &room) {
        return r;
    }
    match state
        .rooms
        .mute_participant(&room, &identity, body.kind, body.muted)
        .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refusal(e),
    }
}

/// Broadcasts the room: its publications mixed into one stream (by default
/// `live/ROOM`), following participants as they start and stop publishing;
/// or, with `replace`, switches a host's live stream to the host and the
/// room's guests while guests publish. The body is as for
/// `POST /api/v1/mixes`, without `inputs`.
async fn mix(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(room): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let scope = match crate::http::admin::authorize_scope(&state, &headers, &room) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let spec: serde_json::Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}")),
        }
    };
    let spec = match crate::mix::room_spec(&room, spec) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let owner = match &scope {
        Scope::Operator => MixOwner::Operator,
        Scope::Room(claims) => MixOwner::Host {
            live: claims.live.as_deref(),
        },
    };
    if let Err(e) = crate::mix::scope::check(&spec, &room, &owner, &state.config.mix.push_allow) {
        return error(StatusCode::FORBIDDEN, &e);
    }
    match state.mixes.create_for_room(state.rooms.clone(), room, spec) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err((code, message)) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            &message,
        ),
    }
}
