//! User Control messages (type 4): stream lifecycle notifications and
//! pings, a 16-bit event type followed by event data.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A User Control event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    /// The stream (id) became functional (sent before playback starts).
    StreamBegin(u32),
    /// Playback of the stream ended.
    StreamEof(u32),
    /// No more data on the stream for now.
    StreamDry(u32),
    /// The client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        stream_id: u32,
        buffer_ms: u32,
    },
    StreamIsRecorded(u32),
    /// Must be answered with a `PingResponse` carrying the same timestamp.
    PingRequest(u32),
    PingResponse(u32),
    /// An event type we do not interpret, with its data.
    Unknown {
        event_type: u16,
        data: Bytes,
    },
}

impl UserControl {
    /// Parses a User Control payload; `None` if it is truncated.
    pub fn parse(mut payload: Bytes) -> Option<UserControl> {
        if payload.len() < 2 {
            return None;
        }
        let event_type = payload.get_u16();
        let mut u32_arg = || (payload.len() >= 4).then(|| payload.get_u32());
        Some(match event_type {
            0 => UserControl::StreamBegin(u32_arg()?),
            1 => UserControl::StreamEof(u32_arg()?),
            2 => UserControl::StreamDry(u32_arg()?),
            3 => {
                let stream_id = u32_arg()?;
                let buffer_ms = u32_arg()?;
                UserControl::SetBufferLength {
                    stream_id,
                    buffer_ms,
                }
            }
            4 => UserControl::StreamIsRecorded(u32_arg()?),
            6 => UserControl::PingRequest(u32_arg()?),
            7 => UserControl::PingResponse(u32_arg()?),
            _ => UserControl::Unknown {
                event_type,
                data: payload,
            },
        })
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (event_type, value) = match self {
            UserControl::StreamBegin(v) => (0, *v),
            UserControl::StreamEof(v) => (1, *v),
            UserControl::StreamDry(v) => (2, *v),
            UserControl::SetBufferLength {
                stream_id,
                buffer_ms,
            } => {
                out.put_u16(3);
                out.put_u32(*stream_id);
                out.put_u32(*buffer_ms);
                return;
            }
            UserControl::StreamIsRecorded(v) => (4, *v),
            UserControl::PingRequest(v) => (6, *v),
            UserControl::PingResponse(v) => (7, *v),
            UserControl::Unknown { event_type, data } => {
                out.put_u16(*event_type);
                out.put_slice(data);
                return;
            }
        };
        out.put_u16(event_type);
        out.put_u32(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_all_events() {
        let events = [
            UserControl::StreamBegin(1),
            UserControl::StreamEof(2),
            UserControl::StreamDry(3),
            UserControl::SetBufferLength {
                stream_id: 1,
                buffer_ms: 3000,
            },
            UserControl::StreamIsRecorded(4),
            UserControl::PingRequest(5),
            UserControl::PingResponse(6),
            UserControl::Unknown {
                event_type: 0x1f,
                data: Bytes::from_static(&[0, 0, 0, 1]),
            },
        ];
        for event in events {
            let mut out = BytesMut::new();
            event.encode(&mut out);
            assert_eq!(UserControl::parse(out.freeze()), Some(event));
        }
    }

    #[test]
    fn wire_format() {
        let mut out = BytesMut::new();
        UserControl::StreamBegin(1).encode(&mut out);
        assert_eq!(&out[..], &[0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn truncated() {
        assert_eq!(UserControl::parse(Bytes::from_static(&[0])), None);
        assert_eq!(UserControl::parse(Bytes::from_static(&[0, 6, 0, 0])), None);
        assert_eq!(
            UserControl::parse(Bytes::from_static(&[0, 3, 0, 0, 0, 1, 0])),
            None
        );
    }
}
