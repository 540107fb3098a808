//! Typed RTMP messages: protocol control, user control, media, data and
//! command messages, with parsing from and encoding to message payloads.

mod command;
mod user_control;

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub use command::{status_object, Command};
pub use user_control::UserControl;

use crate::amf0::{self, Amf0Value};
use crate::error::MessageError;

/// Message type ids.
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream for protocol and user control messages (fixed by the spec).
pub const CSID_CONTROL: u32 = 2;
/// Chunk stream for command messages.
pub const CSID_COMMAND: u32 = 3;
/// Chunk stream for audio messages.
pub const CSID_AUDIO: u32 = 4;
/// Chunk stream for data messages (onMetaData, |RtmpSampleAccess).
pub const CSID_DATA: u32 = 5;
/// Chunk stream for video messages.
pub const CSID_VIDEO: u32 = 6;

/// Bandwidth limit type of Set Peer Bandwidth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerBandwidthLimit {
    Hard,
    Soft,
    Dynamic,
}

/// A parsed message payload (the header fields stay in
/// [`RawMessage`](crate::RawMessage)).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    /// Abort the message being assembled on this chunk stream id.
    Abort(u32),
    /// Sequence number: bytes received so far (wrapping).
    Acknowledgement(u32),
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit: PeerBandwidthLimit,
    },
    /// An FLV audio tag body.
    Audio(Bytes),
    /// An FLV video tag body.
    Video(Bytes),
    /// A data message (type 18, or 15 with its leading 0x00 removed);
    /// always encoded as type 18.
    Data(Vec<Amf0Value>),
    /// A command message (type 20, or 17 with its leading 0x00 removed);
    /// always encoded as type 20.
    Command(Command),
    /// Shared objects, aggregates and unknown types, passed through.
    Other {
        type_id: u8,
        payload: Bytes,
    },
}

impl Message {
    /// Parses the payload of a message of type `type_id`.
    pub fn parse(type_id: u8, mut payload: Bytes) -> Result<Message, MessageError> {
        let truncated = MessageError::Truncated { type_id };
        let amf_error = |source| MessageError::Amf { type_id, source };
        Ok(match type_id {
            msg_type::SET_CHUNK_SIZE => {
                Message::SetChunkSize(read_u32(&mut payload).ok_or(truncated)?)
            }
            msg_type::ABORT => Message::Abort(read_u32(&mut payload).ok_or(truncated)?),
            msg_type::ACKNOWLEDGEMENT => {
                Message::Acknowledgement(read_u32(&mut payload).ok_or(truncated)?)
            }
            msg_type::USER_CONTROL => {
                Message::UserControl(UserControl::parse(payload).ok_or(truncated)?)
            }
            msg_type::WINDOW_ACK_SIZE => {
                Message::WindowAckSize(read_u32(&mut payload).ok_or(truncated)?)
            }
            msg_type::SET_PEER_BANDWIDTH => {
                let size = read_u32(&mut payload).ok_or(truncated)?;
                // Some peers omit the limit byte; dynamic is the harmless default.
                let limit = match payload.first() {
                    Some(0) => PeerBandwidthLimit::Hard,
                    Some(1) => PeerBandwidthLimit::Soft,
                    _ => PeerBandwidthLimit::Dynamic,
                };
                Message::SetPeerBandwidth { size, limit }
            }
            msg_type::AUDIO => Message::Audio(payload),
            msg_type::VIDEO => Message::Video(payload),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
                let body = strip_amf3_prefix(type_id, &payload);
                Message::Data(amf0::decode_all(body).map_err(amf_error)?)
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let body = strip_amf3_prefix(type_id, &payload);
                let values = amf0::decode_all(body).map_err(amf_error)?;
                Message::Command(Command::from_values(values)?)
            }
            _ => Message::Other { type_id, payload },
        })
    }

    /// The type id this message is encoded with.
    pub fn type_id(&self) -> u8 {
        match self {
            Message::SetChunkSize(_) => msg_type::SET_CHUNK_SIZE,
            Message::Abort(_) => msg_type::ABORT,
            Message::Acknowledgement(_) => msg_type::ACKNOWLEDGEMENT,
            Message::UserControl(_) => msg_type::USER_CONTROL,
            Message::WindowAckSize(_) => msg_type::WINDOW_ACK_SIZE,
            Message::SetPeerBandwidth { .. } => msg_type::SET_PEER_BANDWIDTH,
            Message::Audio(_) => msg_type::AUDIO,
            Message::Video(_) => msg_type::VIDEO,
            Message::Data(_) => msg_type::DATA_AMF0,
            Message::Command(_) => msg_type::COMMAND_AMF0,
            Message::Other { type_id, .. } => *type_id,
        }
    }

    /// Appends the payload to `out`.
    pub fn encode_payload(&self, out: &mut BytesMut) {
        match self {
            Message::SetChunkSize(v)
            | Message::Abort(v)
            | Message::Acknowledgement(v)
            | Message::WindowAckSize(v) => out.put_u32(*v),
            Message::UserControl(event) => event.encode(out),
            Message::SetPeerBandwidth { size, limit } => {
                out.put_u32(*size);
                out.put_u8(match limit {
                    PeerBandwidthLimit::Hard => 0,
                    PeerBandwidthLimit::Soft => 1,
                    PeerBandwidthLimit::Dynamic => 2,
                });
            }
            Message::Audio(p) | Message::Video(p) | Message::Other { payload: p, .. } => {
                out.put_slice(p)
            }
            Message::Data(values) => amf0::encode(values, out),
            Message::Command(command) => command.encode(out),
        }
    }

    /// The encoded payload as a new buffer.
    pub fn to_payload(&self) -> Bytes {
        match self {
            Message::Audio(p) | Message::Video(p) | Message::Other { payload: p, .. } => p.clone(),
            _ => {
                let mut out = BytesMut::new();
                self.encode_payload(&mut out);
                out.freeze()
            }
        }
    }
}

fn read_u32(payload: &mut Bytes) -> Option<u32> {
    if payload.len() < 4 {
        return None;
    }
    Some(payload.get_u32())
}

/// AMF3 command/data messages start with a format byte 0x00 followed by
/// AMF0 values (what Flash and some encoders send).
fn strip_amf3_prefix(type_id: u8, payload: &[u8]) -> &[u8] {
    let amf3 = matches!(type_id, msg_type::DATA_AMF3 | msg_type::COMMAND_AMF3);
    match payload {
        [0, rest @ ..] if amf3 => rest,
        _ => payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: Message) {
        let parsed = Message::parse(msg.type_id(), msg.to_payload()).unwrap();
        assert_eq!(parsed, msg);
    }

    #[test]
    fn roundtrips() {
        roundtrip(Message::SetChunkSize(4096));
        roundtrip(Message::Abort(6));
        roundtrip(Message::Acknowledgement(123_456));
        roundtrip(Message::WindowAckSize(2_500_000));
        for limit in [
            PeerBandwidthLimit::Hard,
            PeerBandwidthLimit::Soft,
            PeerBandwidthLimit::Dynamic,
        ] {
            roundtrip(Message::SetPeerBandwidth { size: 5, limit });
        }
        roundtrip(Message::UserControl(UserControl::PingRequest(9)));
        roundtrip(Message::Audio(Bytes::from_static(b"\xaf\x01")));
        roundtrip(Message::Video(Bytes::from_static(b"\x17\x01")));
        roundtrip(Message::Data(vec!["onMetaData".into(), Amf0Value::Null]));
        roundtrip(Message::Command(Command::new(
            "play",
            0.0,
            Amf0Value::Null,
            vec!["x".into()],
        )));
        roundtrip(Message::Other {
            type_id: 22,
            payload: Bytes::from_static(b"agg"),
        });
    }

    #[test]
    fn amf3_wrapped_command_and_data() {
        let mut payload = BytesMut::new();
        payload.put_u8(0);
        Command::new("connect", 1.0, Amf0Value::Null, vec![]).encode(&mut payload);
        let msg = Message::parse(msg_type::COMMAND_AMF3, payload.freeze()).unwrap();
        let Message::Command(cmd) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!((cmd.name.as_str(), cmd.transaction_id), ("connect", 1.0));

        let mut payload = BytesMut::from(&[0u8][..]);
        amf0::encode(&["onMetaData".into()], &mut payload);
        assert_eq!(
            Message::parse(msg_type::DATA_AMF3, payload.freeze()).unwrap(),
            Message::Data(vec!["onMetaData".into()])
        );
    }

    #[test]
    fn truncated_and_malformed() {
        for type_id in [1, 2, 3, 4, 5, 6] {
            assert_eq!(
                Message::parse(type_id, Bytes::from_static(&[0, 0])),
                Err(MessageError::Truncated { type_id })
            );
        }
        assert!(matches!(
            Message::parse(20, Bytes::from_static(&[0x02, 0, 9, b'x'])),
            Err(MessageError::Amf { type_id: 20, .. })
        ));
        assert!(matches!(
            Message::parse(18, Bytes::from_static(&[0x03, 0, 0])),
            Err(MessageError::Amf { type_id: 18, .. })
        ));
        assert_eq!(
            Message::parse(20, Bytes::from_static(&[0x05])),
            Err(MessageError::MissingCommandName)
        );
        // Peer bandwidth without the limit byte is tolerated.
        assert_eq!(
            Message::parse(6, Bytes::from_static(&[0, 0, 0, 1])),
            Ok(Message::SetPeerBandwidth {
                size: 1,
                limit: PeerBandwidthLimit::Dynamic
            })
        );
    }

    #[test]
    fn random_payloads_never_panic() {
        let mut state = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..5_000 {
            let type_id = (next() % 24) as u8;
            let len = (next() % 40) as usize;
            let payload: Vec<u8> = (0..len).map(|_| (next() % 16) as u8).collect();
            let _ = Message::parse(type_id, Bytes::from(payload));
        }
    }
}
