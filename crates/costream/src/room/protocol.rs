//! The room signaling messages (docs/signaling.md), as serde types. Each is
//! one JSON object with a `type`.

use serde::{Deserialize, Serialize};

use crate::access::{Grants, Role};

/// What a client sends. `id`, when present, is echoed in the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientEnvelope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub message: ClientMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Publish {
        sdp: String,
    },
    Unpublish,
    /// With `sdp`: a peer connection of its own for this publication,
    /// offered by the client. Without: the publication is added to the
    /// participant's subscriber connection, which the server (re)offers.
    Subscribe {
        identity: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp: Option<String>,
    },
    /// The answer to the server's `offer` for the subscriber connection.
    Answer {
        sdp: String,
    },
    Unsubscribe {
        identity: String,
    },
    /// The client could not use its subscriber connection `session` (an
    /// offer failed to apply, ICE failed): the server closes it and offers
    /// a new one with everything it carried.
    SubscriberFailed {
        session: String,
        #[serde(default)]
        reason: Option<String>,
    },
    Trickle {
        session: String,
        candidate: String,
    },
    Mute {
        kind: TrackKind,
        muted: bool,
    },
    Update {
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        metadata: Option<String>,
    },
    Request,
    Invite {
        identity: String,
    },
    Accept {
        identity: String,
    },
    Reject {
        identity: String,
    },
    Kick {
        identity: String,
        #[serde(default)]
        to: KickTo,
    },
    /// A host starts the room's mix (the body of `POST
    /// /api/v1/rooms/{room}/mix`), or changes the running mix's layout.
    Mix {
        #[serde(flatten)]
        spec: serde_json::Map<String, serde_json::Value>,
    },
    /// A host stops the room's mix.
    MixStop,
    Leave,
    Ping,
}

impl ClientMessage {
    /// The `type` name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            ClientMessage::Publish { .. } => "publish",
            ClientMessage::Unpublish => "unpublish",
            ClientMessage::Subscribe { .. } => "subscribe",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::SubscriberFailed { .. } => "subscriber_failed",
            ClientMessage::Trickle { .. } => "trickle",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Update { .. } => "update",
            ClientMessage::Request => "request",
            ClientMessage::Invite { .. } => "invite",
            ClientMessage::Accept { .. } => "accept",
            ClientMessage::Reject { .. } => "reject",
            ClientMessage::Kick { .. } => "kick",
            ClientMessage::Mix { .. } => "mix",
            ClientMessage::MixStop => "mix_stop",
            ClientMessage::Leave => "leave",
            ClientMessage::Ping => "ping",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KickTo {
    #[default]
    Audience,
    Out,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub kind: TrackKind,
    pub muted: bool,
}

/// A participant as every other participant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub identity: String,
    pub name: String,
    pub role: Role,
    pub grants: Grants,
    pub metadata: String,
    pub tracks: Vec<TrackInfo>,
    pub connected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferTrack {
    pub mid: String,
    pub identity: String,
    pub kind: TrackKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    pub identity: String,
    /// Linear, 0 to 1.
    pub level: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Excellent,
    Good,
    Poor,
    /// No media is flowing (not connected).
    Lost,
}

impl Quality {
    /// From a session's round-trip time and loss (a fraction).
    pub fn of(connected: bool, rtt_ms: Option<f64>, loss: Option<f32>) -> Quality {
        let rtt = rtt_ms.unwrap_or(0.0);
        let loss = loss.unwrap_or(0.0);
        match () {
            _ if !connected => Quality::Lost,
            _ if loss < 0.02 && rtt < 150.0 => Quality::Excellent,
            _ if loss < 0.05 && rtt < 300.0 => Quality::Good,
            _ => Quality::Poor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityUpdate {
    pub identity: String,
    pub quality: Quality,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMicAction {
    Requested,
    Invited,
    Accepted,
    Rejected,
    Kicked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftReason {
    Left,
    Dropped,
    Kicked,
    Removed,
    RoomClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    NotGranted,
    RoomFull,
    UnknownParticipant,
    NotPublishing,
    BadOffer,
    BadRequest,
    Replaced,
    Unavailable,
    /// Control messages faster than the connection's rate (10 a second,
    /// bursts of 30).
    RateLimited,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Joined {
        room: String,
        resumed: bool,
        reconnect_grace_ms: u64,
        you: ParticipantInfo,
        participants: Vec<ParticipantInfo>,
        requests: Vec<String>,
        invites: Vec<String>,
    },
    PublishAnswer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        session: String,
        sdp: String,
    },
    /// The server's offer for the participant's subscriber connection:
    /// which publication each new m-line carries.
    Offer {
        session: String,
        sdp: String,
        tracks: Vec<OfferTrack>,
    },
    SubscribeAnswer {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        identity: String,
        session: String,
        sdp: String,
    },
    TrackPublished {
        identity: String,
        tracks: Vec<TrackInfo>,
    },
    TrackUnpublished {
        identity: String,
    },
    TrackMuted {
        identity: String,
        kind: TrackKind,
        muted: bool,
    },
    ParticipantJoined {
        participant: ParticipantInfo,
    },
    ParticipantUpdated {
        participant: ParticipantInfo,
    },
    ParticipantLeft {
        identity: String,
        reason: LeftReason,
    },
    LinkMic {
        action: LinkMicAction,
        identity: String,
        by: String,
    },
    /// The server paused (or resumed) the video of a subscription to keep
    /// within this participant's bandwidth budget; audio keeps flowing.
    VideoPaused {
        identity: String,
        paused: bool,
    },
    /// Who is speaking now, loudest first (from the audio levels the
    /// publishers send); sent when it changes.
    Speakers {
        speakers: Vec<Speaker>,
    },
    /// Participants whose connection quality changed.
    ConnectionQuality {
        updates: Vec<QualityUpdate>,
    },
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// The answer to `mix` and `mix_stop`: the room's mix now (its id in
    /// `GET /api/v1/mixes/{mix}`), `null` when none runs. Also sent to
    /// everybody, with `reason`, when the mix stops without a host asking.
    Mix {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        mix: Option<String>,
        /// Why the mix stopped by itself: `host_left`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        code: ErrorCode,
        message: String,
    },
}

impl ServerMessage {
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMessage {
        ServerMessage::Error {
            id: None,
            request: None,
            code,
            message: message.into(),
        }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (string keys, no maps of other keys).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_documented() {
        let m: ClientEnvelope =
            serde_json::from_str(r#"{"type":"kick","identity":"carol","to":"out","id":"7"}"#)
                .unwrap();
        assert_eq!(m.id.as_deref(), Some("7"));
        assert_eq!(
            m.message,
            ClientMessage::Kick {
                identity: "carol".into(),
                to: KickTo::Out
            }
        );
        let m: ClientEnvelope = serde_json::from_str(
            r#"{"type":"mix","id":"8","replace":"live/host1","layout":"pip"}"#,
        )
        .unwrap();
        assert_eq!(m.id.as_deref(), Some("8"));
        let ClientMessage::Mix { spec } = m.message else {
            panic!("{m:?}")
        };
        assert_eq!(
            serde_json::Value::Object(spec),
            serde_json::json!({"replace": "live/host1", "layout": "pip"})
        );
        let m: ClientEnvelope = serde_json::from_str(r#"{"type":"leave"}"#).unwrap();
        assert_eq!(m.message, ClientMessage::Leave);
        assert!(serde_json::from_str::<ClientEnvelope>(r#"{"type":"launch"}"#).is_err());
        let e = ServerMessage::LinkMic {
            action: LinkMicAction::Accepted,
            identity: "carol".into(),
            by: "alice".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"link_mic","action":"accepted","identity":"carol","by":"alice"}"#
        );
    }
}
