//! Hub frames to FLV tag bodies (FLV spec E.4.2/E.4.3) and whole tags. A tag
//! body is also the payload of an RTMP audio/video message.
//!
//! Each function allocates exactly one buffer of the final size: these run
//! once per frame and their output is shared by every viewer.

use bytes::{BufMut, Bytes, BytesMut};
use costream_hub::{Frame, FrameKind};

use crate::{MAX_BODY_LEN, TAG_AUDIO, TAG_HEADER_LEN, TAG_SCRIPT, TAG_VIDEO};

/// CodecID of AVC (H.264).
const CODEC_AVC: u8 = 7;
/// SoundFormat 10 (AAC) with the rate/size/type bits the spec requires for
/// AAC (44 kHz, 16-bit, stereo); players take the real values from the
/// AudioSpecificConfig.
const AAC_SOUND_HEADER: u8 = 0xaf;

/// The video tag body of a `VideoConfig` or `Video` frame: the AVC
/// VideoTagHeader (frame type, codec id 7, AVCPacketType, composition time)
/// then the record or the AVCC access unit. Frames of other kinds are encoded
/// as coded video frames; use [`body`] to dispatch on the kind.
pub fn video_body(frame: &Frame) -> Bytes {
    build(VIDEO_HEADER_LEN + frame.data.len(), |out| {
        put_video(frame, out)
    })
}

/// The audio tag body of an `AudioConfig` or `Audio` frame: 0xAF, the
/// AACPacketType (0 = AudioSpecificConfig, 1 = raw frame), then the data.
/// Frames of other kinds are encoded as raw audio; use [`body`] to dispatch.
pub fn audio_body(frame: &Frame) -> Bytes {
    build(AUDIO_HEADER_LEN + frame.data.len(), |out| {
        put_audio(frame, out)
    })
}

/// The tag body (RTMP message payload) of any frame.
pub fn body(frame: &Frame) -> Bytes {
    if frame.kind.is_video() {
        video_body(frame)
    } else {
        audio_body(frame)
    }
}

/// A complete FLV tag: header (type 8/9, size, dts with the extended byte,
/// stream id 0), body, and the trailing PreviousTagSize.
///
/// Returns an empty `Bytes` when the body exceeds the 24-bit size field
/// (16 MiB): skipping one frame keeps the stream parseable, a wrong size
/// would not.
pub fn tag(frame: &Frame) -> Bytes {
    let timestamp = flv_timestamp(frame.dts);
    if frame.kind.is_video() {
        let len = VIDEO_HEADER_LEN + frame.data.len();
        wrap(TAG_VIDEO, timestamp, len, |out| put_video(frame, out))
    } else {
        let len = AUDIO_HEADER_LEN + frame.data.len();
        wrap(TAG_AUDIO, timestamp, len, |out| put_audio(frame, out))
    }
}

/// A script data tag (type 18) around an already AMF0-encoded body such as
/// `"onMetaData", {...}`. Empty when the body exceeds 16 MiB, as for [`tag`].
pub fn script_tag(timestamp_ms: u32, amf_body: &[u8]) -> Bytes {
    wrap(TAG_SCRIPT, timestamp_ms, amf_body.len(), |out| {
        out.put_slice(amf_body)
    })
}

const VIDEO_HEADER_LEN: usize = 5;
const AUDIO_HEADER_LEN: usize = 2;

fn put_video(frame: &Frame, out: &mut BytesMut) {
    if frame.kind == FrameKind::VideoConfig {
        // Keyframe + AVC, AVCPacketType 0, composition time 0.
        out.put_slice(&[0x10 | CODEC_AVC, 0, 0, 0, 0]);
    } else {
        let frame_type: u8 = if frame.keyframe {
            1
        } else if frame.disposable {
            3
        } else {
            2
        };
        out.put_u8((frame_type << 4) | CODEC_AVC);
        out.put_u8(1);
        // Two's complement in 24 bits; cts() is already clamped to that range.
        let [_, a, b, c] = frame.cts().to_be_bytes();
        out.put_slice(&[a, b, c]);
    }
    out.put_slice(&frame.data);
}

fn put_audio(frame: &Frame, out: &mut BytesMut) {
    let packet_type = u8::from(frame.kind != FrameKind::AudioConfig);
    out.put_slice(&[AAC_SOUND_HEADER, packet_type]);
    out.put_slice(&frame.data);
}

fn build(len: usize, put: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut out = BytesMut::with_capacity(len);
    put(&mut out);
    debug_assert_eq!(out.len(), len);
    out.freeze()
}

fn wrap(tag_type: u8, timestamp: u32, body_len: usize, put: impl FnOnce(&mut BytesMut)) -> Bytes {
    if body_len > MAX_BODY_LEN {
        return Bytes::new();
    }
    let total = TAG_HEADER_LEN + body_len + 4;
    let mut out = BytesMut::with_capacity(total);
    let [ts_ext, ts_hi, ts_mid, ts_lo] = timestamp.to_be_bytes();
    let [_, size_hi, size_mid, size_lo] = (body_len as u32).to_be_bytes();
    out.put_slice(&[
        tag_type, size_hi, size_mid, size_lo, ts_hi, ts_mid, ts_lo, ts_ext, 0, 0, 0,
    ]);
    put(&mut out);
    out.put_u32((TAG_HEADER_LEN + body_len) as u32);
    debug_assert_eq!(out.len(), total);
    out.freeze()
}

/// FLV timestamps are unsigned 32-bit milliseconds that wrap; a negative hub
/// timestamp (before the stream's zero) is sent as 0.
fn flv_timestamp(ms: i64) -> u32 {
    ms.max(0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(dts: i64, pts: i64, keyframe: bool, data: &'static [u8]) -> Frame {
        Frame::video(dts, pts, keyframe, Bytes::from_static(data))
    }

    #[test]
    fn video_bodies() {
        let cfg = Frame::new(
            FrameKind::VideoConfig,
            0,
            0,
            Bytes::from_static(&[1, 0x42, 0, 0x1e]),
        );
        assert_eq!(&video_body(&cfg)[..], &[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e]);

        let key = video(0, 80, true, &[0, 0, 0, 1, 0x65]);
        assert_eq!(&body(&key)[..], &[0x17, 1, 0, 0, 80, 0, 0, 0, 1, 0x65]);

        // Reference P slice (nal_ref_idc != 0): inter frame.
        let inter = video(40, 40, false, &[0, 0, 0, 1, 0x41]);
        assert_eq!(&body(&inter)[..5], &[0x27, 1, 0, 0, 0]);

        // Non-reference slice: disposable; negative composition time.
        let b = video(100, 60, false, &[0, 0, 0, 1, 0x01]);
        assert!(b.disposable);
        assert_eq!(&body(&b)[..5], &[0x37, 1, 0xff, 0xff, 0xd8]);
    }

    #[test]
    fn audio_bodies() {
        let cfg = Frame::new(
            FrameKind::AudioConfig,
            0,
            0,
            Bytes::from_static(&[0x12, 0x10]),
        );
        assert_eq!(&body(&cfg)[..], &[0xaf, 0, 0x12, 0x10]);
        let raw = Frame::audio(23, Bytes::from_static(&[0x21, 0x1b]));
        assert_eq!(&audio_body(&raw)[..], &[0xaf, 1, 0x21, 0x1b]);
    }

    #[test]
    fn tag_layout() {
        let raw = Frame::audio(0x1234_5678, Bytes::from_static(&[9, 9, 9]));
        let t = tag(&raw);
        assert_eq!(t.len(), 11 + 5 + 4);
        assert_eq!(
            &t[..11],
            &[8, 0, 0, 5, 0x34, 0x56, 0x78, 0x12, 0, 0, 0],
            "24-bit size, lower 24 timestamp bits then the extended byte"
        );
        assert_eq!(&t[11..16], &[0xaf, 1, 9, 9, 9]);
        assert_eq!(&t[16..], &16u32.to_be_bytes());

        let key = video(-5, -5, true, &[0, 0, 0, 1, 0x65]);
        let t = tag(&key);
        assert_eq!(t[0], 9);
        assert_eq!(&t[4..8], &[0, 0, 0, 0], "negative dts is sent as 0");
    }

    #[test]
    fn script() {
        let t = script_tag(0x0100_0000, b"\x02\x00\x0aonMetaData");
        assert_eq!(&t[..8], &[18, 0, 0, 13, 0, 0, 0, 1]);
        assert_eq!(&t[11..24], b"\x02\x00\x0aonMetaData");
        assert_eq!(&t[24..], &24u32.to_be_bytes());
    }

    #[test]
    fn oversized_tag_is_skipped() {
        let big = Frame::audio(0, Bytes::from(vec![0u8; MAX_BODY_LEN]));
        assert!(tag(&big).is_empty());
        let fits = Frame::audio(0, Bytes::from(vec![0u8; MAX_BODY_LEN - 2]));
        assert_eq!(tag(&fits).len(), 11 + MAX_BODY_LEN + 4);
    }
}
