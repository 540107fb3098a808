//! Publish tokens: `{expiry}.{signature}` where the signature is
//! HMAC-SHA256(secret, "{app}/{stream}:{expiry}") in hex and the expiry is a
//! Unix time in seconds. Stateless, so any node with the secret can check it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use costream_hub::StreamKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a publish token is required (add ?token=... to the stream name)")]
    Missing,
    #[error("the publish token is malformed")]
    Malformed,
    #[error("the publish token has expired")]
    Expired,
    #[error("the publish token's signature does not match this stream")]
    BadSignature,
}

fn mac(secret: &str, key: &StreamKey, expiry: u64) -> HmacSha256 {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{key}:{expiry}").as_bytes());
    mac
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn sign_publish(secret: &str, key: &StreamKey, ttl: Duration) -> String {
    sign_until(secret, key, now() + ttl.as_secs())
}

/// A token valid until `expiry` (Unix seconds). Play tokens are the same
/// scheme signed with `[auth] play_secret`.
pub fn sign_until(secret: &str, key: &StreamKey, expiry: u64) -> String {
    let sig = mac(secret, key, expiry).finalize().into_bytes();
    format!("{expiry}.{}", hex::encode(sig))
}

pub fn verify_publish(secret: &str, key: &StreamKey, token: Option<&str>) -> Result<(), AuthError> {
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing)?;
    let (expiry, sig) = token.split_once('.').ok_or(AuthError::Malformed)?;
    let expiry: u64 = expiry.parse().map_err(|_| AuthError::Malformed)?;
    let sig = hex::decode(sig).map_err(|_| AuthError::Malformed)?;
    mac(secret, key, expiry)
        .verify_slice(&sig)
        .map_err(|_| AuthError::BadSignature)?;
    if expiry < now() {
        return Err(AuthError::Expired);
    }
    Ok(())
}

/// The value of `name` in a URL query string (`a=1&token=x`).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let key = StreamKey::parse("live/a").unwrap();
        let other = StreamKey::parse("live/b").unwrap();
        let t = sign_publish("s3cret-key", &key, Duration::from_secs(60));
        assert_eq!(verify_publish("s3cret-key", &key, Some(&t)), Ok(()));
        assert_eq!(
            verify_publish("s3cret-key", &other, Some(&t)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_publish("other-key", &key, Some(&t)),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            verify_publish("s3cret-key", &key, None),
            Err(AuthError::Missing)
        );
        assert_eq!(
            verify_publish("s3cret-key", &key, Some("x")),
            Err(AuthError::Malformed)
        );
        let expired = {
            let sig = mac("s3cret-key", &key, 1).finalize().into_bytes();
            format!("1.{}", hex::encode(sig))
        };
        assert_eq!(
            verify_publish("s3cret-key", &key, Some(&expired)),
            Err(AuthError::Expired)
        );
        assert_eq!(query_param(Some("a=1&token=zz"), "token"), Some("zz"));
        assert_eq!(query_param(None, "token"), None);
    }
}
