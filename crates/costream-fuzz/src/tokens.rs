//! What clients present to be let in: room access tokens (JWT, with the
//! issuer read before the signature is checked), publish and play tokens
//! (`EXPIRY.HEXMAC` in a URL query), and stream keys from URL paths.

use std::time::Duration;

use costream::access::{self, ApiKey};
use costream::auth;
use costream_hub::StreamKey;

/// The server's one API key; seeds hold tokens signed with it.
pub fn api_key() -> ApiKey {
    ApiKey {
        key: "fuzz".into(),
        secret: "a-secret-of-16-or-more".into(),
    }
}

/// Input: a mode byte, then text. Mode % 3: 0 a room token (the signaling
/// upgrade's `?token=`), 1 a query string with a publish or play token,
/// 2 a stream key path (`app/stream`).
pub fn tokens(data: &[u8]) {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    match mode % 3 {
        0 => {
            let keys = [api_key()];
            if let Ok(claims) = access::verify(&keys, &text, "room", Duration::from_secs(5)) {
                let _ = (claims.require_publish(), claims.require_admin());
            }
        }
        1 => {
            let key = StreamKey::new("live", "cam").expect("a stream key");
            let token = auth::query_param(Some(&text), "token");
            let _ = auth::verify_publish("a-publish-secret", &key, token);
        }
        _ => {
            if let Ok(key) = StreamKey::parse(&text) {
                let again = StreamKey::parse(&key.to_string()).expect("a key's name parses");
                assert_eq!(again, key, "stream key round trip");
            }
        }
    }
}
