//! Who may use the control API: one policy for every mutating or
//! revealing endpoint (streams, WebRTC sessions, bridges, rooms, mixes,
//! and `/metrics` and the stream list when they are not public).
//!
//! A caller is an admin of a room with either
//! - `Authorization: Bearer JWT`: a token with the `admin` grant for that
//!   room or for every room (`*`), as `costream token create` mints; or
//! - `Authorization: Basic base64(KEY:SECRET)`: a configured API key and its
//!   secret (what a Prometheus scraper or a backend script holds), admin
//!   of every room.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;

use super::error;
use crate::access::{Claims, TokenError};
use crate::room::ALL_ROOMS;
use crate::server::AppState;

/// A request carrying admin rights over every room: the extractor of every
/// handler of the control API that is not about one room.
pub struct Admin;

impl axum::extract::FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        authorize(state, &parts.headers, ALL_ROOMS).map(|()| Admin)
    }
}

/// An admin of every room, or an anonymous caller: for endpoints that show
/// anonymous callers less (the stream list without room feeds). A present
/// but wrong credential is refused, never taken as anonymous.
pub struct MaybeAdmin(pub bool);

impl axum::extract::FromRequestParts<Arc<AppState>> for MaybeAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Response> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Ok(MaybeAdmin(false));
        }
        authorize(state, &parts.headers, ALL_ROOMS).map(|()| MaybeAdmin(true))
    }
}

/// What an admin may reach.
pub enum Scope {
    /// Every room and stream: an API key, or a token for room `*`.
    Operator,
    /// One room: a token with the admin grant for it (a host's), whose
    /// claims say what else it owns.
    Room(Box<Claims>),
}

/// Checks the caller is an admin of `room` (or of every room).
#[allow(clippy::result_large_err)]
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap, room: &str) -> Result<(), Response> {
    authorize_scope(state, headers, room).map(drop)
}

/// Like [`authorize`], saying how far the caller's rights go.
#[allow(clippy::result_large_err)]
pub(crate) fn authorize_scope(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
) -> Result<Scope, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(basic) = value.strip_prefix("Basic ") {
        return if api_key_matches(state, basic.trim()) {
            Ok(Scope::Operator)
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "unknown API key or wrong secret",
            ))
        };
    }
    let token = value.strip_prefix("Bearer ").ok_or_else(|| {
        error(
            StatusCode::UNAUTHORIZED,
            "an admin token is required: Authorization: Bearer JWT (costream token create --role host), \
             or Basic with an API key and its secret",
        )
    })?;
    let claims = crate::access::verify_token(state.rooms.keys(), token, state.config.auth.leeway)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, &e.to_string()))?;
    if claims.room != ALL_ROOMS && claims.room != room {
        let e = TokenError::WrongRoom {
            token: claims.room,
            wanted: room.to_owned(),
        };
        return Err(error(StatusCode::FORBIDDEN, &e.to_string()));
    }
    claims
        .require_admin()
        .map_err(|e| error(StatusCode::FORBIDDEN, &e.to_string()))?;
    Ok(if claims.room == ALL_ROOMS {
        Scope::Operator
    } else {
        Scope::Room(Box::new(claims))
    })
}

/// `KEY:SECRET` (base64) names a configured API key with its secret.
pub(crate) fn api_key_matches(state: &AppState, basic: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic) else {
        return false;
    };
    let Some((key, secret)) = std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| s.split_once(':'))
    else {
        return false;
    };
    // Every key is compared, each in constant time: the answer's timing
    // tells nothing about a secret.
    state.rooms.keys().iter().fold(false, |found, k| {
        let same = constant_time_eq(k.key.as_bytes(), key.as_bytes())
            & constant_time_eq(k.secret.as_bytes(), secret.as_bytes());
        found | same
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::digest::Digest;
    // Equal-length digests, compared without an early exit.
    let (da, db) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
