//! Development tokens for the console's pages: a page asks for a token for
//! a room, an identity and a role, and gets one signed with the server's
//! first API key. Only as `console.dev_tokens` allows: by default for
//! browsers on this machine, and never through a proxy (a proxy on the same
//! machine would make every visitor look local).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::{mint_owning, Role};
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
    /// A host's own live stream (`app/stream`), which her room's mix may
    /// replace.
    #[serde(default)]
    live: Option<String>,
}

pub async fn token(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(why) = allowed(state.config.dev_tokens(), peer, &headers)
        .and_then(|()| same_site(&state.config.http.api_cors_origins, &headers))
    {
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
    let live = match q.live.filter(|l| !l.is_empty()) {
        Some(l) if role == Role::Host => match costream_hub::StreamKey::parse(&l) {
            Ok(k) => Some(k.to_string()),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("live {l:?}: {e}")),
        },
        Some(_) => return error(StatusCode::BAD_REQUEST, "only a host owns a live stream"),
        None => None,
    };
    match mint_owning(key, &q.room, &identity, role, None, live, TTL) {
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
            if peer.ip().is_loopback() && !proxied && loopback_host(headers) {
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

/// The request names this machine: a page of another site whose name
/// resolves to 127.0.0.1 (DNS rebinding) sends its own name as `Host`.
fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        // `[::1]:8080`, `127.0.0.1:8080`, `localhost:8080`
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A browser's request from a page of this server's own origin (or of one
/// of `[http] api_cors_origins`): another site's page open in the same
/// browser must not mint itself a host token.
fn same_site(allowed: &[String], headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(()); // not a cross-origin browser request (curl, same-origin GET)
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, a)| a);
    if (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || allowed.iter().any(|o| o == origin)
    {
        Ok(())
    } else {
        Err(format!(
            "development tokens are for the console's own pages, not for {origin}"
        ))
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
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let none = headers(&[("host", "127.0.0.1:8080")]);
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert!(allowed(DevTokens::Loopback, local, &none).is_ok());
        for host in ["localhost:8080", "[::1]:8080", "127.0.0.1"] {
            assert!(
                allowed(DevTokens::Loopback, local, &headers(&[("host", host)])).is_ok(),
                "{host}"
            );
        }
        // A site whose name resolves to 127.0.0.1 (DNS rebinding).
        let rebound = headers(&[("host", "evil.example:8080")]);
        assert!(allowed(DevTokens::Loopback, local, &rebound).is_err());
        // Another site's page in the same browser.
        let cross = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(same_site(&[], &cross).is_err());
        assert!(same_site(&["http://evil.example".into()], &cross).is_ok());
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(same_site(&[], &own).is_ok());
        assert!(same_site(&[], &none).is_ok());
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
