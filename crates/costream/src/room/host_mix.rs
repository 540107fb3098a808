//! The hosts' signaling actions on the room's mix: `mix` starts it (the
//! same spec as `POST /api/v1/rooms/{room}/mix`) or changes its layout,
//! `mix_stop` stops it.

use serde_json::Value;

use super::protocol::{ClientMessage, ErrorCode, ServerMessage};
use super::registry::{Membership, Rooms};
use crate::mix::scope::MixOwner;
use crate::mix::{LayoutSpec, Mixes};

pub fn handle(
    rooms: &Rooms,
    mixes: &Mixes,
    m: &Membership,
    id: Option<String>,
    message: ClientMessage,
    push_allow: &[String],
) -> ServerMessage {
    let request = message.name();
    let refuse = |code, message: String| ServerMessage::Error {
        id: id.clone(),
        request: Some(request.into()),
        code,
        message,
    };
    if !rooms.is_host(m) {
        return refuse(
            ErrorCode::NotGranted,
            "only a host controls the room's mix".into(),
        );
    }
    let running = mixes.of_room(&m.room);
    let mix = match (message, running) {
        (ClientMessage::MixStop, Some(mix)) => {
            mixes.stop(&mix);
            tracing::info!(room = %m.room, by = %m.identity, %mix, "room mix stopped by a host");
            None
        }
        (ClientMessage::MixStop, None) => None,
        (ClientMessage::Mix { mut spec }, Some(mix)) => {
            // A running mix changes its layout and levels; anything else
            // needs a restart.
            let (layout, gain) = (spec.remove("layout"), spec.remove("gain"));
            if !spec.is_empty() {
                return refuse(
                    ErrorCode::BadRequest,
                    "the room's mix runs: only its layout and gain can change (mix_stop first)"
                        .into(),
                );
            }
            let layout = layout.map(serde_json::from_value::<LayoutSpec>).transpose();
            let gain = gain.map(serde_json::from_value).transpose();
            let (layout, gain) = match (layout, gain) {
                (Ok(l), Ok(g)) => (l, g),
                (Err(e), _) | (_, Err(e)) => return refuse(ErrorCode::BadRequest, e.to_string()),
            };
            if let Err(e) = mixes.update(&mix, layout, gain) {
                return refuse(ErrorCode::BadRequest, e);
            }
            Some(mix)
        }
        (ClientMessage::Mix { spec }, None) => {
            let spec = match crate::mix::room_spec(&m.room, Value::Object(spec)) {
                Ok(s) => s,
                Err(e) => return refuse(ErrorCode::BadRequest, e),
            };
            let owner = MixOwner::Host {
                live: m.live.as_deref(),
            };
            if let Err(e) = crate::mix::scope::check(&spec, &m.room, &owner, push_allow) {
                return refuse(ErrorCode::NotGranted, e);
            }
            match mixes.create_for_room(rooms.clone(), m.room.clone(), spec) {
                Ok(mix) => {
                    tracing::info!(room = %m.room, by = %m.identity, %mix, "room mix started by a host");
                    Some(mix)
                }
                Err((_, why)) => return refuse(ErrorCode::BadRequest, why),
            }
        }
        _ => None,
    };
    ServerMessage::Mix {
        id,
        mix,
        reason: None,
    }
}
