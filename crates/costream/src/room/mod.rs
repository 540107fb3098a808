//! Link-mic rooms: participants with roles, their publications and
//! subscriptions (each a WebRTC session on a hub stream
//! `room.ROOM/IDENTITY`), signaled over one WebSocket each. The protocol is
//! in docs/signaling.md.

mod admin;
mod budget;
pub mod client;
mod host_mix;
pub mod protocol;
mod rate;
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

/// The configured API keys, or a development key made for this run when
/// none is configured (its secret never leaves the process: the console's
/// pages on this machine get their tokens from the server).
pub fn api_keys(configured: &[ApiKey]) -> Vec<ApiKey> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    let key = ApiKey {
        key: "dev".into(),
        secret: random_secret(),
    };
    // The secret stays in memory: a log is read by more people than the
    // server's owner.
    tracing::warn!(
        "no [[auth.api_keys]] configured: room tokens are signed with a development key made for this run \
         (its secret is not shown). The console's pages on this machine get tokens from /api/v1/dev/token; \
         to mint tokens yourself, configure [[auth.api_keys]] and use costream token create"
    );
    vec![key]
}

/// 128 bits from the OS's randomness, as 32 hex digits.
fn random_secret() -> String {
    let mut bits = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bits) {
        // No randomness at all: nothing safe to sign with.
        panic!("no randomness for the development key: {e}");
    }
    hex::encode(bits)
}
