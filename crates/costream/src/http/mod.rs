//! The HTTP edge: HTTP-FLV and HLS playback, the JSON API, health and metrics.

pub mod admin;
mod api;
mod flv;
mod hls;
mod listener;

pub use listener::accept_loop;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use costream_hub::StreamKey;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::server::AppState;

pub fn router(state: Arc<AppState>) -> Router {
    // Players' media (HTTP-FLV, HLS, WHIP/WHEP, the SDK) may be fetched by
    // pages of any site (`[http] cors_origin`); the control API and the
    // console's token endpoint answer other sites' pages only when named in
    // `[http] api_cors_origins` (none by default: same-origin only).
    let media_origin = match state.config.http.cors_origin.as_str() {
        "*" => AllowOrigin::any(),
        o => {
            AllowOrigin::exact(HeaderValue::from_str(o).unwrap_or(HeaderValue::from_static("null")))
        }
    };
    let api_origins: Vec<HeaderValue> = state
        .config
        .http
        .api_cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let control = Router::new()
        .route("/metrics", get(metrics))
        .nest(
            "/api/v1",
            api::router()
                .merge(crate::room::admin_router())
                .merge(crate::mix::router()),
        )
        .merge(crate::console::api_router())
        .layer(cors(AllowOrigin::list(api_origins)));
    let media = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::webrtc::http::router())
        .route("/rtc", get(crate::room::upgrade))
        .route("/sdk/costream.js", get(sdk))
        .merge(crate::console::router())
        .route("/{app}/{file}", get(media))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such resource") })
        .layer(cors(media_origin));
    control
        .merge(media)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::webrtc::http::links_on_options,
        ))
        .with_state(state)
}

fn cors(origin: AllowOrigin) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_MATCH,
        ])
        .expose_headers([header::LOCATION, header::ETAG, header::LINK])
}

/// The browser SDK for rooms, an ES module embedded in the binary.
async fn sdk() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../../sdk/costream.js"),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if !state.config.http.public_metrics {
        if let Err(refused) = admin::authorize(&state, &headers, crate::room::ALL_ROOMS) {
            return refused;
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&state.hub, &state.rooms),
    )
        .into_response()
}

/// `/{app}/{stream}.flv`, `/{app}/{stream}.m3u8`, `/{app}/{stream}-{n}.ts`.
async fn media(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, file)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    // Who asks, for the play policy (crate::play_auth).
    let client = crate::play_auth::Client::from_http(&uri, &headers, Some(peer.ip()));
    if let Some(stream) = file.strip_suffix(".flv") {
        return match StreamKey::new(&app, stream) {
            Ok(key) => flv::play(state, key, client).await,
            Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad stream key: {e}")),
        };
    }
    if let Some(stream) = file.strip_suffix(".m3u8") {
        return match StreamKey::new(&app, stream) {
            Ok(key) => hls::playlist(state, key, peer, client).await,
            Err(e) => error(StatusCode::BAD_REQUEST, &format!("bad stream key: {e}")),
        };
    }
    if let Some(name) = file.strip_suffix(".ts") {
        let parsed = name
            .rsplit_once('-')
            .and_then(|(s, n)| Some((StreamKey::new(&app, s).ok()?, n.parse::<u64>().ok()?)));
        return match parsed {
            Some((key, seq)) => hls::segment(state, key, seq, client).await,
            None => error(StatusCode::BAD_REQUEST, "bad segment name"),
        };
    }
    error(
        StatusCode::NOT_FOUND,
        "no such resource (try /{app}/{stream}.flv or .m3u8)",
    )
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}
