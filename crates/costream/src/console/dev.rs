//! Development tokens for the console's pages: a page asks for a token for
//! a room, an identity and a role, and gets one signed with the server's
//! first API key. Only as `console.dev_tokens` allows: by default for
//! browsers on this machine, and never through a proxy (a proxy on the same
//! machine would make every visitor look local).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::{mint, Role};
use crate::config::DevTokens;
use crate::http::error;
use crate::server::AppState;

/// Console tokens last a working session.
const TTL: Duration = Duration::from_secs(6 * 3600);

#[derive(Deserialize)]
pub struct TokenQuery {
    room: String,
    identity: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

pub async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(why) = allowed(state.config.dev_tokens(), peer, &headers) {
        return error(StatusCode::FORBIDDEN, &why);
    }
    let role = match q.role.as_deref().unwrap_or("audience") {
        "host" => Role::Host,
        "guest" => Role::Guest,
        "audience" => Role::Audience,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("role {other:?}: host, guest or audience"),
            )
        }
    };
    if q.room == "*" && role != Role::Host {
        return error(
            StatusCode::BAD_REQUEST,
            "room * is for operators (role host)",
        );
    }
    let identity = q
        .identity
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("viewer-{:04x}", rand_u16()));
    let Some(key) = state.rooms.keys().first() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no API key to sign with");
    };
    match mint(key, &q.room, &identity, role, None, TTL) {
        Ok(token) => Json(json!({
            "token": token,
            "room": q.room,
            "identity": identity,
            "role": role,
        }))
        .into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// What the pages need to know of the server besides the API.
pub async fn info(State(state): State<Arc<AppState>>) -> Response {
    Json(json!({
        "rtmp_port": state.rtmp_port,
        "dev_tokens": state.config.dev_tokens(),
    }))
    .into_response()
}

fn allowed(mode: DevTokens, peer: SocketAddr, headers: &HeaderMap) -> Result<(), String> {
    match mode {
        DevTokens::Any => Ok(()),
        DevTokens::Off | DevTokens::Auto => Err(
            "development tokens are off: API keys are configured (set console.dev_tokens, or start with --dev)"
                .into(),
        ),
        DevTokens::Loopback => {
            let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
                .iter()
                .any(|h| headers.contains_key(*h));
            if peer.ip().is_loopback() && !proxied {
                Ok(())
            } else {
                Err(
                    "development tokens are only for browsers on the server's own machine \
                     (console.dev_tokens = \"loopback\"; start with --dev for a demo on a network)"
                        .into(),
                )
            }
        }
    }
}

fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_gets_development_tokens() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        assert!(allowed(DevTokens::Loopback, local, &none).is_ok());
        assert!(allowed(DevTokens::Loopback, remote, &none).is_err());
        assert!(allowed(DevTokens::Loopback, local, &proxied).is_err());
        assert!(allowed(DevTokens::Any, remote, &proxied).is_ok());
        assert!(allowed(DevTokens::Off, local, &none).is_err());
        // `auto`: on the development key only.
        let mut config = crate::config::Config::default();
        assert_eq!(config.dev_tokens(), DevTokens::Loopback);
        config.auth.api_keys = vec![crate::access::ApiKey {
            key: "prod".into(),
            secret: "a-production-secret-0123".into(),
        }];
        assert_eq!(config.dev_tokens(), DevTokens::Off);
        config.console.dev_tokens = DevTokens::Any;
        assert_eq!(config.dev_tokens(), DevTokens::Any);
    }
}
