//! Room signaling: a WebSocket text message as crates/costream/src/room/
//! signal.rs and host_mix.rs take it (the message, then a host's mix spec
//! and its scope check).

use costream::mix::scope::{self, MixOwner};
use costream::mix::{room_spec, LayoutSpec};
use costream::room::protocol::{ClientEnvelope, ClientMessage, ErrorCode, ServerMessage};
use costream_hub::StreamKey;
use serde_json::Value;

/// Input: one text message (a WebSocket text frame is UTF-8).
pub fn signaling(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let envelope: ClientEnvelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            let reply = ServerMessage::error(
                ErrorCode::BadRequest,
                format!("not a signaling message: {e}"),
            );
            let _ = reply.to_json();
            return;
        }
    };
    let _ = envelope.message.name();
    let _ = serde_json::to_string(&envelope).expect("a client message serializes");
    if let ClientMessage::Mix { spec } = envelope.message {
        // A running mix: only layout and gain may change.
        let mut running = spec.clone();
        if let Some(Ok(layout)) = running
            .remove("layout")
            .map(serde_json::from_value::<LayoutSpec>)
        {
            let _ = layout.layout(&inputs());
        }
        if let Some(gain) = running.remove("gain") {
            let _ = serde_json::from_value::<std::collections::BTreeMap<String, f32>>(gain);
        }
        // No mix yet: a new one for the room.
        if let Ok(spec) = room_spec("room", Value::Object(spec)) {
            let owner = MixOwner::Host {
                live: Some("live/cam"),
            };
            let _ = scope::check(&spec, "room", &owner, &["cdn.example".to_string()]);
            let _ = spec.layout.layout(&inputs());
        }
    }
}

fn inputs() -> Vec<StreamKey> {
    ["a", "b", "c"]
        .iter()
        .filter_map(|s| StreamKey::new("room.room", s).ok())
        .collect()
}
