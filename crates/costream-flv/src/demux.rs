//! FLV tag bodies (RTMP audio/video message payloads) to hub frames.

use bytes::{Bytes, BytesMut};
use costream_hub::avc::{avcc_nalus, to_avcc4};
use costream_hub::{Frame, FrameKind};

use crate::error::{FlvError, VideoCodecId};

const CODEC_AVC: u8 = 7;
const SOUND_FORMAT_AAC: u8 = 10;
/// Video info/command frame: carries a seek command, not a picture.
const FRAME_COMMAND: u8 = 5;

/// Decodes a video tag body.
///
/// Returns the AVCDecoderConfigurationRecord as a `VideoConfig` frame (the
/// record unchanged), or a `Video` frame re-framed with 4-byte NAL lengths
/// (`nal_length_size` comes from that record), with pts = dts + the signed
/// 24-bit composition time. Returns `None` for end-of-sequence, command
/// frames and empty access units. Enhanced-RTMP headers are reported as
/// [`FlvError::UnsupportedVideoCodec`] with their FourCC.
pub fn demux_video(
    timestamp_ms: i64,
    body: Bytes,
    nal_length_size: u8,
) -> Result<Option<Frame>, FlvError> {
    let &first = body.first().ok_or(FlvError::Truncated)?;
    if first & 0x80 != 0 {
        return enhanced_video(&body);
    }
    let frame_type = first >> 4;
    match frame_type {
        FRAME_COMMAND => return Ok(None),
        1..=4 => {}
        _ => return Err(FlvError::InvalidFrameType(frame_type)),
    }
    let codec = first & 0x0f;
    if codec != CODEC_AVC {
        return Err(FlvError::UnsupportedVideoCodec(VideoCodecId::Flv(codec)));
    }
    let &[_, packet_type, c0, c1, c2] = body.first_chunk::<5>().ok_or(FlvError::Truncated)?;
    // Shifting the 24 bits into the top of an i32 and back sign-extends them.
    let cts = i32::from_be_bytes([c0, c1, c2, 0]) >> 8;
    let data = body.slice(5..);
    match packet_type {
        0 if data.is_empty() => Err(FlvError::Truncated),
        0 => Ok(Some(Frame::new(
            FrameKind::VideoConfig,
            timestamp_ms,
            timestamp_ms,
            data,
        ))),
        1 => {
            if !(1..=4).contains(&nal_length_size) {
                return Err(FlvError::InvalidNalLengthSize(nal_length_size));
            }
            if data.is_empty() {
                return Ok(None);
            }
            check_avcc(&data, nal_length_size)?;
            let data = to_avcc4(data, nal_length_size);
            let pts = timestamp_ms.saturating_add(i64::from(cts));
            Ok(Some(Frame::video(timestamp_ms, pts, frame_type == 1, data)))
        }
        2 => Ok(None),
        t => Err(FlvError::InvalidAvcPacketType(t)),
    }
}

/// Decodes an audio tag body: AAC sequence header to `AudioConfig`, raw AAC
/// to `Audio`; `None` for an empty raw frame.
pub fn demux_audio(timestamp_ms: i64, body: Bytes) -> Result<Option<Frame>, FlvError> {
    let &first = body.first().ok_or(FlvError::Truncated)?;
    let format = first >> 4;
    if format != SOUND_FORMAT_AAC {
        return Err(FlvError::UnsupportedAudioCodec(format));
    }
    let &packet_type = body.get(1).ok_or(FlvError::Truncated)?;
    let data = body.slice(2..);
    match packet_type {
        // An AudioSpecificConfig is at least 2 bytes.
        0 if data.len() < 2 => Err(FlvError::Truncated),
        0 => Ok(Some(Frame::new(
            FrameKind::AudioConfig,
            timestamp_ms,
            timestamp_ms,
            data,
        ))),
        1 if data.is_empty() => Ok(None),
        1 => Ok(Some(Frame::audio(timestamp_ms, data))),
        t => Err(FlvError::InvalidAacPacketType(t)),
    }
}

/// The record with lengthSizeMinusOne set to 3, for publishers whose frames
/// [`demux_video`] re-framed to 4-byte lengths: players reading the record
/// must then expect 4-byte lengths. Returns the input (no copy) when it
/// already says 4 or is too short to say anything.
pub fn record_with_nal_length_4(record: Bytes) -> Bytes {
    match record.get(4) {
        Some(&b) if b & 0x03 != 0x03 => {
            let mut out = BytesMut::from(&record[..]);
            if let Some(b) = out.get_mut(4) {
                *b |= 0x03;
            }
            out.freeze()
        }
        _ => record,
    }
}

/// The NAL lengths must cover the access unit exactly: anything else is a
/// truncated or corrupt message, which would otherwise lose NAL units silently.
fn check_avcc(data: &[u8], length_size: u8) -> Result<(), FlvError> {
    let n = usize::from(length_size);
    let covered: usize = avcc_nalus(data, length_size).map(|nal| n + nal.len()).sum();
    if covered == data.len() {
        Ok(())
    } else {
        Err(FlvError::Truncated)
    }
}

/// Enhanced RTMP (veovera E-RTMP): only far enough to name the codec.
fn enhanced_video(body: &[u8]) -> Result<Option<Frame>, FlvError> {
    const METADATA: u8 = 4;
    const MULTITRACK: u8 = 6;
    const MOD_EX: u8 = 7;
    let (&first, mut rest) = body.split_first().ok_or(FlvError::Truncated)?;
    let frame_type = (first >> 4) & 0x07;
    let mut packet_type = first & 0x0f;
    // ModEx packets put modifier data before the real packet type; each
    // round consumes at least two bytes, so this ends.
    while packet_type == MOD_EX {
        let (&size, r) = rest.split_first().ok_or(FlvError::Truncated)?;
        let (size, r) = if size == 0xff {
            let (&[hi, lo], r) = r.split_first_chunk::<2>().ok_or(FlvError::Truncated)?;
            (usize::from(u16::from_be_bytes([hi, lo])) + 1, r)
        } else {
            (usize::from(size) + 1, r)
        };
        let r = r.get(size..).ok_or(FlvError::Truncated)?;
        let (&next, r) = r.split_first().ok_or(FlvError::Truncated)?;
        packet_type = next & 0x0f;
        rest = r;
    }
    if frame_type == FRAME_COMMAND && packet_type != METADATA {
        return Ok(None);
    }
    if packet_type == MULTITRACK {
        // AvMultitrackType and the inner packet type come before the FourCC.
        rest = rest.get(1..).ok_or(FlvError::Truncated)?;
    }
    let fourcc = rest.first_chunk::<4>().ok_or(FlvError::Truncated)?;
    Err(FlvError::UnsupportedVideoCodec(VideoCodecId::FourCc(
        *fourcc,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(body: &'static [u8], nal_length_size: u8) -> Result<Option<Frame>, FlvError> {
        demux_video(1000, Bytes::from_static(body), nal_length_size)
    }

    #[test]
    fn config_and_frames() {
        let cfg = video(&[0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e], 4)
            .unwrap()
            .unwrap();
        assert_eq!(cfg.kind, FrameKind::VideoConfig);
        assert_eq!(&cfg.data[..], &[1, 0x42, 0, 0x1e]);
        assert_eq!((cfg.dts, cfg.pts), (1000, 1000));

        let key = video(&[0x17, 1, 0, 0, 40, 0, 0, 0, 2, 0x65, 7], 4)
            .unwrap()
            .unwrap();
        assert_eq!(key.kind, FrameKind::Video);
        assert!(key.keyframe);
        assert_eq!((key.dts, key.pts), (1000, 1040));
        assert_eq!(&key.data[..], &[0, 0, 0, 2, 0x65, 7]);

        // Negative composition time (-40), inter frame, 2-byte NAL lengths.
        let p = video(&[0x27, 1, 0xff, 0xff, 0xd8, 0, 2, 0x41, 7], 2)
            .unwrap()
            .unwrap();
        assert!(!p.keyframe);
        assert_eq!(p.pts, 960);
        assert_eq!(&p.data[..], &[0, 0, 0, 2, 0x41, 7]);
    }

    #[test]
    fn nothing_to_decode() {
        assert_eq!(video(&[0x17, 2, 0, 0, 0], 4).unwrap().map(|f| f.kind), None);
        assert!(video(&[0x57, 0], 4).unwrap().is_none(), "command frame");
        assert!(
            video(&[0x27, 1, 0, 0, 0], 4).unwrap().is_none(),
            "empty frame"
        );
    }

    #[test]
    fn unsupported_and_invalid() {
        let err = |b, n| video(b, n).unwrap_err();
        assert_eq!(
            err(&[0x12, 0, 0], 4),
            FlvError::UnsupportedVideoCodec(VideoCodecId::Flv(2))
        );
        assert_eq!(
            err(&[0x91, b'h', b'v', b'c', b'1', 0, 0, 0], 4),
            FlvError::UnsupportedVideoCodec(VideoCodecId::FourCc(*b"hvc1"))
        );
        // ModEx (size 1, one data byte) then CodedFrames, then the FourCC.
        assert_eq!(
            err(&[0x97, 0, 0xaa, 0x01, b'a', b'v', b'0', b'1'], 4),
            FlvError::UnsupportedVideoCodec(VideoCodecId::FourCc(*b"av01"))
        );
        assert_eq!(
            err(&[0x96, 0x01, b'v', b'p', b'0', b'9'], 4),
            FlvError::UnsupportedVideoCodec(VideoCodecId::FourCc(*b"vp09"))
        );
        assert!(video(&[0xd1, 0], 4).unwrap().is_none(), "enhanced command");
        assert_eq!(
            err(&[0x07, 1, 0, 0, 0, 0], 4),
            FlvError::InvalidFrameType(0)
        );
        assert_eq!(
            err(&[0x17, 9, 0, 0, 0, 0], 4),
            FlvError::InvalidAvcPacketType(9)
        );
        assert_eq!(
            err(&[0x17, 1, 0, 0, 0, 0], 0),
            FlvError::InvalidNalLengthSize(0)
        );
        assert_eq!(
            err(&[0x17, 1, 0, 0, 0, 0], 5),
            FlvError::InvalidNalLengthSize(5)
        );
    }

    #[test]
    fn truncated_video_is_an_error() {
        let full: &[u8] = &[0x17, 1, 0, 0, 0, 0, 0, 0, 3, 0x65, 1, 2];
        for n in 0..full.len() {
            let r = demux_video(0, Bytes::copy_from_slice(&full[..n]), 4);
            // Cutting right after the 5-byte header leaves an empty frame.
            if n == 5 {
                assert!(r.unwrap().is_none());
            } else {
                assert_eq!(r.unwrap_err(), FlvError::Truncated, "len {n}");
            }
        }
        assert!(demux_video(0, Bytes::from_static(full), 4)
            .unwrap()
            .is_some());
        for n in 0..5 {
            let r = demux_video(
                0,
                Bytes::copy_from_slice(&[0x90, b'a', b'v', b'c', b'1'][..n]),
                4,
            );
            assert_eq!(r.unwrap_err(), FlvError::Truncated);
        }
        assert_eq!(
            video(&[0x17, 0, 0, 0, 0], 4).unwrap_err(),
            FlvError::Truncated
        );
        assert_eq!(video(&[0x97, 0xff, 0], 4).unwrap_err(), FlvError::Truncated);
    }

    #[test]
    fn audio() {
        let a = |b: &'static [u8]| demux_audio(500, Bytes::from_static(b));
        let cfg = a(&[0xaf, 0, 0x12, 0x10]).unwrap().unwrap();
        assert_eq!(cfg.kind, FrameKind::AudioConfig);
        assert_eq!(&cfg.data[..], &[0x12, 0x10]);
        let raw = a(&[0xaf, 1, 0x21, 0x00]).unwrap().unwrap();
        assert_eq!((raw.kind, raw.dts, raw.pts), (FrameKind::Audio, 500, 500));
        assert_eq!(&raw.data[..], &[0x21, 0x00]);
        assert!(a(&[0xaf, 1]).unwrap().is_none());
        assert_eq!(
            a(&[0x2f, 1, 0]).unwrap_err(),
            FlvError::UnsupportedAudioCodec(2)
        );
        assert_eq!(
            a(&[0x9f, 1, 0]).unwrap_err(),
            FlvError::UnsupportedAudioCodec(9)
        );
        assert_eq!(
            a(&[0xaf, 3, 0]).unwrap_err(),
            FlvError::InvalidAacPacketType(3)
        );
        assert_eq!(a(&[]).unwrap_err(), FlvError::Truncated);
        assert_eq!(a(&[0xaf]).unwrap_err(), FlvError::Truncated);
        assert_eq!(a(&[0xaf, 0, 0x12]).unwrap_err(), FlvError::Truncated);
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Bias towards valid headers to reach the deeper paths.
            if let Some(b) = body.first_mut() {
                match next() % 3 {
                    0 => *b = 0x17,
                    1 => *b = 0xaf,
                    _ => {}
                }
            }
            let body = Bytes::from(body);
            let _ = demux_video(next() as i64, body.clone(), (next() % 6) as u8);
            let _ = demux_audio(next() as i64, body.clone());
            let _ = record_with_nal_length_4(body);
        }
    }

    #[test]
    fn record_nal_length() {
        let rec = Bytes::from_static(&[1, 0x42, 0, 0x1e, 0xfd, 0xe0, 0]);
        assert_eq!(record_with_nal_length_4(rec)[4], 0xff);
        let rec = Bytes::from_static(&[1, 0x42, 0, 0x1e, 0xff, 0xe0, 0]);
        assert_eq!(record_with_nal_length_4(rec.clone()).as_ptr(), rec.as_ptr());
        assert!(record_with_nal_length_4(Bytes::from_static(&[1])).len() == 1);
    }
}
