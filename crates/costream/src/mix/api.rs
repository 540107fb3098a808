//! `/api/v1/mixes`: start, list, show, change the layout of, and stop
//! mixes. Needs an admin token for every room (`costream token create
//! --room '*' --role host`), as the rooms admin API.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
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

#[allow(clippy::result_large_err)]
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    crate::room::authorize_admin(state, headers, ALL_ROOMS)
}

async fn list(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    Json(json!({ "mixes": state.mixes.list() })).into_response()
}

async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(spec): Json<MixSpec>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    match state.mixes.create(spec) {
        Ok(id) => (StatusCode::CREATED, Json(json!({ "id": id }))).into_response(),
        Err((code, message)) => error(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            &message,
        ),
    }
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    match state.mixes.describe(&id) {
        Some(v) => Json(v).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("no mix {id}")),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    layout: Option<LayoutSpec>,
    gain: Option<std::collections::BTreeMap<String, f32>>,
}

async fn update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(u): Json<Update>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    match state.mixes.update(&id, u.layout, u.gain) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, &format!("no mix {id}")),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}

async fn stop(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&state, &headers) {
        return r;
    }
    if state.mixes.stop(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("no mix {id}"))
    }
}
