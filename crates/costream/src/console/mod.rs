//! The web console (issue 7): the pages a person uses to try costream and
//! the page an operator keeps open, served by the binary itself at `/`
//! (`crates/costream/web/`, embedded at build time: no web server, no
//! build step). They use the same HTTP API, SDK and signaling as anyone.

mod assets;
mod dev;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::server::AppState;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console/") }))
        .route(
            "/console/",
            get(|s| asset(s, Path("index.html".to_owned()))),
        )
        .route("/console/{file}", get(asset))
        .route("/console/vendor/{file}", get(vendor))
}

/// The pages' API: development tokens and what the pages need to know
/// (under the control API's CORS policy).
pub fn api_router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/dev/token", get(dev::token))
        .route("/api/v1/console", get(dev::info))
}

async fn asset(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    serve(&state, assets::page(&file), "no-cache")
}

/// Third-party players, vendored from their npm packages by
/// `scripts/vendor-web`: they change only with a new version.
async fn vendor(State(state): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    serve(&state, assets::vendored(&file), "max-age=86400")
}

fn serve(
    state: &AppState,
    found: Option<(&'static str, &'static [u8])>,
    cache: &'static str,
) -> Response {
    if !state.config.console.enabled {
        return crate::http::error(
            StatusCode::NOT_FOUND,
            "the console is off (console.enabled)",
        );
    }
    match found {
        Some((mime, body)) => (
            [(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, cache)],
            body,
        )
            .into_response(),
        None => crate::http::error(StatusCode::NOT_FOUND, "no such page"),
    }
}
