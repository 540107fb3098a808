//! Room access tokens: JWTs (HS256) signed with an API key's secret, naming
//! the room, the participant, their role and what they may do. Minted by
//! `costream token create` or an application's backend; checked on every
//! room signaling and admin call.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The default of `auth.leeway`: how long after its expiry a token is still
/// taken, for the clocks of the minting backend and this server being a
/// little apart (jsonwebtoken's own default, a minute, is far too long).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);

/// An API key and its secret (config `[[auth.api_keys]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub key: String,
    pub secret: String,
}

/// A participant's role in a link-mic room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Host,
    Guest,
    Audience,
}

/// What the bearer may do in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub publish: bool,
    pub subscribe: bool,
    pub admin: bool,
}

impl Role {
    /// The grants a role has unless the token says otherwise: hosts run the
    /// room, guests are on stage, the audience watches.
    pub fn default_grants(self) -> Grants {
        Grants {
            publish: self != Role::Audience,
            subscribe: true,
            admin: self == Role::Host,
        }
    }
}

/// The token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The API key that signed it.
    pub iss: String,
    /// The participant's identity, unique in the room.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    pub room: String,
    pub role: Role,
    pub grants: Grants,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The live stream (`app/stream`) this participant owns: what a host's
    /// room mix may replace (the link-mic switch of her own stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not a JWT signed with HS256: {0}")]
    Malformed(String),
    #[error("the token was signed with an unknown API key {0:?}")]
    UnknownKey(String),
    #[error("the token's signature is not valid for API key {0:?}")]
    BadSignature(String),
    #[error("the token expired")]
    Expired,
    #[error("the token is for room {token:?}, not {wanted:?}")]
    WrongRoom { token: String, wanted: String },
    #[error("the token does not grant {0}")]
    NotGranted(&'static str),
}

/// Mints a token valid for `ttl`.
pub fn mint(
    key: &ApiKey,
    room: &str,
    identity: &str,
    role: Role,
    name: Option<String>,
    ttl: Duration,
) -> Result<String, TokenError> {
    mint_owning(key, room, identity, role, name, None, ttl)
}

/// Mints a token whose participant owns the live stream `live` (see
/// [`Claims::live`]).
pub fn mint_owning(
    key: &ApiKey,
    room: &str,
    identity: &str,
    role: Role,
    name: Option<String>,
    live: Option<String>,
    ttl: Duration,
) -> Result<String, TokenError> {
    let exp = now_secs().saturating_add(ttl.as_secs());
    let claims = Claims {
        iss: key.key.clone(),
        sub: identity.to_owned(),
        exp,
        room: room.to_owned(),
        role,
        grants: role.default_grants(),
        name,
        live,
    };
    sign(key, &claims)
}

/// Signs any claims (other grants than the role's, a given expiry).
pub fn sign(key: &ApiKey, claims: &Claims) -> Result<String, TokenError> {
    let secret = EncodingKey::from_secret(key.secret.as_bytes())
        .map_err(|e| TokenError::Malformed(format!("API secret: {e}")))?;
    encode(&Header::new(Algorithm::HS256), claims, &secret)
        .map_err(|e| TokenError::Malformed(e.to_string()))
}

/// Checks a token against the server's keys and the room it is used for;
/// `leeway` is `auth.leeway`.
pub fn verify(
    keys: &[ApiKey],
    token: &str,
    room: &str,
    leeway: Duration,
) -> Result<Claims, TokenError> {
    let claims = verify_token(keys, token, leeway)?;
    if claims.room != room {
        return Err(TokenError::WrongRoom {
            token: claims.room,
            wanted: room.to_owned(),
        });
    }
    Ok(claims)
}

/// Checks a token's signature and expiry (taken up to `leeway`, whole
/// seconds, after it); the room is the token's.
pub fn verify_token(keys: &[ApiKey], token: &str, leeway: Duration) -> Result<Claims, TokenError> {
    let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::Malformed(format!("algorithm {:?}", header.alg)));
    }
    // The issuer picks the secret; read it before the signature is checked,
    // and trust nothing else from the unverified claims.
    let issuer = unverified_issuer(token)?;
    let key = keys
        .iter()
        .find(|k| k.key == issuer)
        .ok_or_else(|| TokenError::UnknownKey(issuer.clone()))?;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.leeway = leeway.as_secs();
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let secret = DecodingKey::from_secret(key.secret.as_bytes())
        .map_err(|e| TokenError::Malformed(format!("API secret: {e}")))?;
    let data = decode::<Claims>(token, &secret, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            TokenError::BadSignature(issuer.clone())
        }
        _ => TokenError::Malformed(e.to_string()),
    })?;
    Ok(data.claims)
}

impl Claims {
    /// Fails unless the token grants publishing.
    pub fn require_publish(&self) -> Result<(), TokenError> {
        self.grants
            .publish
            .then_some(())
            .ok_or(TokenError::NotGranted("publish"))
    }

    /// Fails unless the token grants administering the room.
    pub fn require_admin(&self) -> Result<(), TokenError> {
        self.grants
            .admin
            .then_some(())
            .ok_or(TokenError::NotGranted("admin"))
    }
}

/// The `iss` claim, read without checking the signature (it only selects
/// which secret to check the signature with).
fn unverified_issuer(token: &str) -> Result<String, TokenError> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| TokenError::Malformed("no payload".into()))?;
    if payload.len() > 8192 {
        return Err(TokenError::Malformed("payload too large".into()));
    }
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|e| TokenError::Malformed(e.to_string()))?;
    serde_json::from_slice::<Issuer>(&bytes)
        .map(|i| i.iss)
        .map_err(|e| TokenError::Malformed(format!("claims: {e}")))
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str, s: &str) -> ApiKey {
        ApiKey {
            key: k.into(),
            secret: s.into(),
        }
    }

    #[test]
    fn each_refusal_says_why() {
        let keys = [key("dev", "s3cret-s3cret-s3cret-s3cret-s3cret")];
        let hour = Duration::from_secs(3600);
        let host = mint(
            &keys[0],
            "r1",
            "alice",
            Role::Host,
            Some("Alice".into()),
            hour,
        )
        .unwrap();
        let claims = verify(&keys, &host, "r1", DEFAULT_LEEWAY).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::Host));
        assert!(claims.require_admin().is_ok() && claims.require_publish().is_ok());

        let audience = mint(&keys[0], "r1", "bob", Role::Audience, None, hour).unwrap();
        let claims = verify(&keys, &audience, "r1", DEFAULT_LEEWAY).unwrap();
        assert_eq!(
            claims.require_publish(),
            Err(TokenError::NotGranted("publish"))
        );
        assert_eq!(claims.require_admin(), Err(TokenError::NotGranted("admin")));

        assert!(matches!(
            verify(&keys, &host, "r2", DEFAULT_LEEWAY),
            Err(TokenError::WrongRoom { .. })
        ));
        let forged = mint(
            &key("dev", "another-secret-another-secret"),
            "r1",
            "eve",
            Role::Host,
            None,
            hour,
        )
        .unwrap();
        assert_eq!(
            verify(&keys, &forged, "r1", DEFAULT_LEEWAY),
            Err(TokenError::BadSignature("dev".into()))
        );
        let stranger = mint(&key("other", "x"), "r1", "eve", Role::Host, None, hour).unwrap();
        assert_eq!(
            verify(&keys, &stranger, "r1", DEFAULT_LEEWAY),
            Err(TokenError::UnknownKey("other".into()))
        );
        // Expired (an hour ago; beyond the 5 s leeway).
        let mut claims = verify(&keys, &host, "r1", DEFAULT_LEEWAY).unwrap();
        claims.exp = now_secs() - 3600;
        let secret = EncodingKey::from_secret(keys[0].secret.as_bytes()).unwrap();
        let old = encode(&Header::new(Algorithm::HS256), &claims, &secret).unwrap();
        assert_eq!(
            verify(&keys, &old, "r1", DEFAULT_LEEWAY),
            Err(TokenError::Expired)
        );
        for junk in ["", "a.b.c", "not a token", "eyJhbGciOiJub25lIn0.e30."] {
            assert!(
                matches!(
                    verify(&keys, junk, "r1", DEFAULT_LEEWAY),
                    Err(TokenError::Malformed(_))
                ),
                "{junk}"
            );
        }
    }

    /// A token expired `ago` seconds ago.
    fn expired(key: &ApiKey, ago: u64) -> String {
        let mut claims = verify_token(
            std::slice::from_ref(key),
            &mint(
                key,
                "r1",
                "alice",
                Role::Guest,
                None,
                Duration::from_secs(60),
            )
            .unwrap(),
            DEFAULT_LEEWAY,
        )
        .unwrap();
        claims.exp = now_secs() - ago;
        sign(key, &claims).unwrap()
    }

    #[test]
    fn the_leeway_takes_a_token_just_expired_and_no_older() {
        let keys = [key("dev", "s3cret-s3cret-s3cret-s3cret-s3cret")];
        // 3 s late joins with the default leeway (5 s), 10 s late does not.
        let late = expired(&keys[0], 3);
        assert_eq!(
            verify(&keys, &late, "r1", DEFAULT_LEEWAY).map(|c| c.sub),
            Ok("alice".to_string())
        );
        let later = expired(&keys[0], 10);
        assert_eq!(
            verify(&keys, &later, "r1", DEFAULT_LEEWAY),
            Err(TokenError::Expired)
        );
        // No leeway: 3 s late is refused.
        assert_eq!(
            verify(&keys, &late, "r1", Duration::ZERO),
            Err(TokenError::Expired)
        );
    }
}
