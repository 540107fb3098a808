//! What a room's mix may touch, by who asks. An operator (an API key, or an
//! admin token for every room) may mix into and push to anything; a host
//! (an admin token for one room, from the room's signaling or its admin
//! API) only what the room owns: its own live stream to replace (the
//! token's `live` claim), outputs named after the room, and pushes to the
//! hosts `[mix] push_allow` lists. Otherwise any host could take over any
//! live stream on the node, or make the server connect anywhere.

use costream_hub::StreamKey;

use super::MixSpec;

/// Who starts a room's mix.
pub enum MixOwner<'a> {
    Operator,
    /// A host, owning the live stream `live` if its token names one.
    Host {
        live: Option<&'a str>,
    },
}

pub fn check(
    spec: &MixSpec,
    room: &str,
    owner: &MixOwner<'_>,
    push_allow: &[String],
) -> Result<(), String> {
    let MixOwner::Host { live } = owner else {
        return Ok(());
    };
    if let Some(replace) = &spec.replace {
        if Some(replace.as_str()) != *live {
            return Err(match live {
                Some(own) => format!("a host may replace only its own live stream, {own}"),
                None => "a host may replace only its own live stream, and this token names none \
                         (costream token create --live app/stream)"
                    .into(),
            });
        }
    }
    if let Some(output) = &spec.output {
        let stream = StreamKey::parse(output).map_err(|e| format!("output {output}: {e}"))?;
        let name = stream.stream();
        let ours = name == room
            || name
                .strip_prefix(room)
                .is_some_and(|rest| rest.starts_with('-'));
        if !ours {
            return Err(format!(
                "a host's mix goes out under its room's name ({room} or {room}-…), not {output}"
            ));
        }
    }
    for url in &spec.push {
        let host = push_host(url).ok_or_else(|| format!("push {url}: not an rtmp(s):// URL"))?;
        if !push_allow.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            return Err(format!(
                "a host may push only to the hosts [mix] push_allow lists, not {host}"
            ));
        }
    }
    Ok(())
}

/// The host (without port or credentials) of an `rtmp://` or `rtmps://` URL.
fn push_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("rtmp://")
        .or_else(|| url.strip_prefix("rtmps://"))?;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> MixSpec {
        super::super::room_spec("r1", v).unwrap()
    }

    #[test]
    fn a_host_touches_only_what_its_room_owns() {
        let host = MixOwner::Host {
            live: Some("live/host1"),
        };
        let allow = vec!["cdn.example".to_string()];
        let ok = |v| check(&spec(v), "r1", &host, &allow);
        assert!(ok(serde_json::json!({ "replace": "live/host1" })).is_ok());
        assert!(ok(serde_json::json!({ "replace": "live/other" })).is_err());
        // The default output is live/r1.
        assert!(ok(serde_json::json!({})).is_ok());
        assert!(ok(serde_json::json!({ "output": "live/r1-wide" })).is_ok());
        assert!(ok(serde_json::json!({ "output": "live/r10" })).is_err());
        assert!(ok(serde_json::json!({ "output": "live/someone" })).is_err());
        assert!(ok(serde_json::json!({ "push": ["rtmp://CDN.example:1935/app/key"] })).is_ok());
        assert!(ok(serde_json::json!({ "push": ["rtmp://user@cdn.example/app/key"] })).is_ok());
        assert!(ok(serde_json::json!({ "push": ["rtmp://127.0.0.1/app/key"] })).is_err());
        assert!(ok(serde_json::json!({ "push": ["http://cdn.example/x"] })).is_err());
        let nothing = MixOwner::Host { live: None };
        let e = check(
            &spec(serde_json::json!({ "replace": "live/host1" })),
            "r1",
            &nothing,
            &allow,
        );
        assert!(e.unwrap_err().contains("names none"));
        let ops = MixOwner::Operator;
        let any =
            spec(serde_json::json!({ "replace": "live/x", "push": ["rtmp://192.0.2.1/a/b"] }));
        assert!(check(&any, "r1", &ops, &[]).is_ok());
    }
}
