//! Link-mic rooms: participants with roles, their publications and
//! subscriptions (each a WebRTC session on a hub stream
//! `room.ROOM/IDENTITY`), signaled over one WebSocket each. The protocol is
//! in docs/signaling.md.

mod admin;
mod budget;
pub mod client;
mod host_mix;
pub mod protocol;
mod registry;
mod signal;
mod state;
pub mod webhooks;

pub use admin::{router as admin_router, ALL_ROOMS};
pub use registry::{ParticipantChange, RoomSummary, Rooms};
pub use signal::upgrade;
pub use state::feed_key;

use crate::access::ApiKey;

/// Why RTMP and WHIP may not publish to a room's streams.
pub const ROOM_FEED_REFUSAL: &str =
    "streams under room.* are published by room participants (over /rtc), not by RTMP or WHIP";

/// Whether `key` is a room participant's publication (`room.ROOM/IDENTITY`).
pub fn is_room_feed(key: &costream_hub::StreamKey) -> bool {
    key.app().starts_with("room.")
}

/// The configured API keys, or a development key made for this run (and
/// printed, so that tokens can be minted for it) when none is configured.
pub fn api_keys(configured: &[ApiKey]) -> Vec<ApiKey> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let key = ApiKey {
        key: "dev".into(),
        secret: random_secret(),
    };
    tracing::warn!(
        "no [[auth.api_keys]] configured: room tokens use a development key made for this run. Mint one with: \
         COSTREAM_API_KEY={} COSTREAM_API_SECRET={} costream token create --room ROOM --identity NAME --role host",
        key.key,
        key.secret
    );
    vec![key]
}

/// 32 hex digits from the OS's randomness (std seeds `RandomState` from it).
fn random_secret() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..2)
        .map(|_| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(std::process::id().into());
            format!("{:016x}", h.finish())
        })
        .collect()
}
