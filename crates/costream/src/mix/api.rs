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
use crate::http::admin::Admin;
use crate::http::error;
use crate::server::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/mixes", get(list).post(create))
        .route("/mixes/{id}", get(show).patch(update).delete(stop))
}

fn no_mix(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("no mix {id}"))
}

async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Response {
    Json(json!({ "mixes": state.mixes.list() })).into_response()
}

async fn create(
    _: Admin,
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

async fn show(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
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
    _: Admin,
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

async fn stop(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    if state.mixes.stop(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        no_mix(&id)
    }
}
