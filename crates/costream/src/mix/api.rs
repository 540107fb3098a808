//! `/api/v1/mixes`: start, list, show, change the layout of, and stop
//! mixes. Needs an admin token for every room (`costream token create
//! --room '*' --role host`), as the rooms admin API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{LayoutSpec, MixSpec};
use crate::http::error;
use crate::room::ALL_ROOMS;
use crate::server::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/mixes", get(list).post(create))
        .route("/mixes/{id}", get(show).patch(update).delete(stop))
}

/// A request carrying an admin token for every room: what each handler here
/// needs before anything else.
pub struct AllRoomsAdmin;

impl axum::extract::FromRequestParts<Arc<AppState>> for AllRoomsAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        crate::room::authorize_admin(state, &parts.headers, ALL_ROOMS).map(|()| AllRoomsAdmin)
    }
}

fn no_mix(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no mix {id}"))
}

async fn list(_: AllRoomsAdmin, State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "mixes": state.mixes.list() })).into_response()
}

async fn create(
    _: AllRoomsAdmin,
    State(state): State<Arc<AppState>>,
    Json(spec): Json<MixSpec>,
) -> Response {
    match state.mixes.create(spec) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err((code, message)) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            &message,
        ),
    }
}

async fn show(
    _: AllRoomsAdmin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    match state.mixes.describe(&id) {
        Some(v) => Json(v).into_response(),
        None => no_mix(&id),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    layout: Option<LayoutSpec>,
    gain: Option<std::collections::BTreeMap<String, f32>>,
}

async fn update(
    _: AllRoomsAdmin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Json(u): Json<Update>,
) -> Response {
    match state.mixes.update(&id, u.layout, u.gain) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => no_mix(&id),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn stop(
    _: AllRoomsAdmin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Response {
    if state.mixes.stop(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        no_mix(&id)
    }
}
