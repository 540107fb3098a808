//! Errors of the public API. Each carries a message fit for an HTTP 4xx body
//! (WHIP/WHEP handlers map them to status codes).

use crate::types::{Codec, MediaKind, SessionId};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RtcError {
    /// The offer body is not SDP at all (a WHIP/WHEP client sent something else).
    #[error("the offer is not valid SDP: {0}")]
    NotSdp(String),

    #[error("the offer is {len} bytes; at most {max} are accepted")]
    OfferTooLarge { len: usize, max: usize },

    /// The offer has media, but none in a codec we accept.
    #[error("no supported codec in the offer ({0})")]
    NoSupportedCodec(String),

    /// A publish offer that sends nothing, or a play offer that receives nothing.
    #[error("{0}")]
    WrongDirection(String),

    /// str0m refused the offer for another reason (missing fingerprint or ICE
    /// credentials, inconsistent m-lines, both sides ICE-lite, ...).
    #[error("the offer was refused: {0}")]
    Negotiation(String),

    /// A trickled ICE candidate that does not parse.
    #[error("bad ICE candidate: {0}")]
    BadCandidate(String),

    #[error("at most {0} ICE candidates may be trickled to a session")]
    TooManyCandidates(usize),

    #[error("too many WebRTC sessions (limit {0})")]
    TooManySessions(usize),

    #[error("no such WebRTC session: {0}")]
    UnknownSession(SessionId),

    /// `write_media` on a Publish session or `request_keyframe` on a Play session.
    #[error("session {session} is not a {expected} session")]
    WrongSessionDirection {
        session: SessionId,
        expected: &'static str,
    },

    /// Media written before ICE and DTLS are up would be dropped by str0m.
    #[error("session {0} is not connected yet")]
    NotConnected(SessionId),

    #[error("session {session} has no {kind:?} track")]
    NoTrack { session: SessionId, kind: MediaKind },

    #[error("session {session} did not negotiate {codec}")]
    CodecNotNegotiated { session: SessionId, codec: Codec },

    /// str0m refused a write or a keyframe request.
    #[error("WebRTC stack error: {0}")]
    Stack(String),
}
