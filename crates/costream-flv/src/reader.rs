//! A sans-IO FLV stream reader: the caller appends received bytes to a
//! `BytesMut` and takes out whole tags, whose bodies are zero-copy slices of
//! that buffer.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::FlvError;
use crate::TAG_HEADER_LEN;

/// One tag of an FLV stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// 8 audio, 9 video, 18 script data (see [`crate::TAG_AUDIO`] and friends).
    pub tag_type: u8,
    /// Milliseconds, the extended byte included.
    pub timestamp: u32,
    pub body: Bytes,
}

/// What the FLV file header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

/// Splits an FLV byte stream into tags.
///
/// The caller's buffer holds at most one partial tag, so it stays under
/// `max_tag_size + 15` bytes when the caller reads tags out as they complete.
/// Errors are final: the same error comes back on every later call, since a
/// corrupt FLV stream has no way to find the next tag again.
#[derive(Debug)]
pub struct FlvReader {
    max_tag_size: usize,
    state: State,
    header: Option<FlvHeader>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    /// Skipping the rest of a header longer than 9 bytes.
    Skip(usize),
    /// Reading PreviousTagSize then a tag; the size expected is that of the
    /// tag before (0 before the first).
    Tags {
        previous: u32,
    },
}

/// Bytes before PreviousTagSize0; the spec's DataOffset.
const HEADER_LEN: usize = 9;
/// Room allowed for a header extension in future FLV versions; more than this
/// is not an FLV stream.
const MAX_HEADER_EXTRA: u32 = 1024;
/// PreviousTagSize then the tag header.
const PREFIX_LEN: usize = 4 + TAG_HEADER_LEN;

impl FlvReader {
    /// A reader rejecting tags whose body exceeds `max_tag_size` bytes.
    pub fn new(max_tag_size: usize) -> Self {
        FlvReader {
            max_tag_size,
            state: State::Header,
            header: None,
        }
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// The next complete tag in `input`, consuming it; `Ok(None)` when more
    /// bytes are needed. Call again until it returns `None`.
    pub fn next_tag(&mut self, input: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match self.state {
                State::Header => {
                    // Reject a wrong signature as soon as its bytes arrive.
                    let sig_len = input.len().min(3);
                    if input.get(..sig_len) != b"FLV".get(..sig_len) {
                        return Err(FlvError::BadSignature);
                    }
                    let Some(&[_, _, _, version, flags, o0, o1, o2, o3]) =
                        input.first_chunk::<HEADER_LEN>()
                    else {
                        return Ok(None);
                    };
                    let offset = u32::from_be_bytes([o0, o1, o2, o3]);
                    let extra = offset
                        .checked_sub(HEADER_LEN as u32)
                        .filter(|e| *e <= MAX_HEADER_EXTRA)
                        .ok_or(FlvError::BadDataOffset(offset))?;
                    self.header = Some(FlvHeader {
                        version,
                        has_audio: flags & 0x04 != 0,
                        has_video: flags & 0x01 != 0,
                    });
                    input.advance(HEADER_LEN);
                    self.state = State::Skip(extra as usize);
                }
                State::Skip(n) => {
                    let k = n.min(input.len());
                    input.advance(k);
                    if k < n {
                        self.state = State::Skip(n - k);
                        return Ok(None);
                    }
                    self.state = State::Tags { previous: 0 };
                }
                State::Tags { previous } => {
                    let Some(&[p0, p1, p2, p3, kind, s0, s1, s2, t0, t1, t2, ext, ..]) =
                        input.first_chunk::<PREFIX_LEN>()
                    else {
                        return Ok(None);
                    };
                    let found = u32::from_be_bytes([p0, p1, p2, p3]);
                    if found != previous {
                        return Err(FlvError::PreviousTagSize {
                            expected: previous,
                            found,
                        });
                    }
                    if kind & 0x20 != 0 {
                        return Err(FlvError::Encrypted);
                    }
                    let size = u32::from_be_bytes([0, s0, s1, s2]) as usize;
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge {
                            size,
                            max: self.max_tag_size,
                        });
                    }
                    if input.len() < PREFIX_LEN + size {
                        return Ok(None);
                    }
                    input.advance(PREFIX_LEN);
                    let body = input.split_to(size).freeze();
                    self.state = State::Tags {
                        previous: (TAG_HEADER_LEN + size) as u32,
                    };
                    return Ok(Some(FlvTag {
                        tag_type: kind & 0x1f,
                        timestamp: u32::from_be_bytes([ext, t0, t1, t2]),
                        body,
                    }));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{demux_audio, demux_video, flv_header, script_tag, tag, FLV_HEADER};
    use costream_hub::{Frame, FrameKind};

    fn frames() -> Vec<Frame> {
        vec![
            Frame::new(
                FrameKind::VideoConfig,
                0,
                0,
                Bytes::from_static(&[1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0]),
            ),
            Frame::new(
                FrameKind::AudioConfig,
                0,
                0,
                Bytes::from_static(&[0x12, 0x10]),
            ),
            Frame::video(0, 80, true, Bytes::from_static(&[0, 0, 0, 2, 0x65, 1])),
            Frame::audio(10, Bytes::from_static(&[0x21, 0x10, 0x05])),
            // Negative composition time and a timestamp past 24 bits.
            Frame::video(
                0x0123_4567,
                0x0123_4567 - 40,
                false,
                Bytes::from_static(&[0, 0, 0, 1, 0x41]),
            ),
            Frame::audio(0xff00_0000, Bytes::from_static(&[0x21])),
        ]
    }

    fn stream() -> BytesMut {
        let mut s = BytesMut::from(&FLV_HEADER[..]);
        s.extend_from_slice(&script_tag(0, b"\x02\x00\x0aonMetaData"));
        for f in frames() {
            s.extend_from_slice(&tag(&f));
        }
        s
    }

    fn read_all(reader: &mut FlvReader, input: &mut BytesMut, out: &mut Vec<FlvTag>) {
        while let Some(t) = reader.next_tag(input).unwrap() {
            out.push(t);
        }
    }

    fn check(tags: &[FlvTag]) {
        assert_eq!(tags.len(), 7);
        assert_eq!(tags[0].tag_type, crate::TAG_SCRIPT);
        assert_eq!(&tags[0].body[..], b"\x02\x00\x0aonMetaData");
        for (t, f) in tags[1..].iter().zip(frames()) {
            assert_eq!(t.timestamp, f.dts as u32);
            let back = if t.tag_type == crate::TAG_VIDEO {
                demux_video(i64::from(t.timestamp), t.body.clone(), 4)
            } else {
                assert_eq!(t.tag_type, crate::TAG_AUDIO);
                demux_audio(i64::from(t.timestamp), t.body.clone())
            };
            let back = back.unwrap().unwrap();
            assert_eq!(back.kind, f.kind);
            assert_eq!((back.dts, back.pts), (f.dts, f.pts));
            assert_eq!(back.keyframe, f.keyframe);
            assert_eq!(back.data, f.data);
        }
    }

    #[test]
    fn round_trip_whole() {
        let mut input = stream();
        let mut reader = FlvReader::new(1 << 20);
        let mut tags = Vec::new();
        read_all(&mut reader, &mut input, &mut tags);
        assert_eq!(
            reader.header(),
            Some(FlvHeader {
                version: 1,
                has_audio: true,
                has_video: true
            })
        );
        check(&tags);
        assert_eq!(input.len(), 4, "only the last PreviousTagSize is left");
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let all = stream();
        let mut reader = FlvReader::new(1 << 20);
        let mut input = BytesMut::new();
        let mut tags = Vec::new();
        for b in all.iter() {
            input.extend_from_slice(&[*b]);
            read_all(&mut reader, &mut input, &mut tags);
        }
        check(&tags);
    }

    #[test]
    fn header_extension_is_skipped() {
        let mut input = BytesMut::from(&flv_header(false, true)[..9]);
        input[8] = 12;
        input.extend_from_slice(&[0xee; 3]);
        input.extend_from_slice(&[0, 0, 0, 0]);
        input.extend_from_slice(&tag(&frames()[0]));
        let mut reader = FlvReader::new(100);
        let t = reader.next_tag(&mut input).unwrap().unwrap();
        assert_eq!(t.tag_type, 9);
        assert!(!reader.header().unwrap().has_audio);
    }

    #[test]
    fn garbage() {
        let mut reader = FlvReader::new(100);
        let mut input = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(
            reader.next_tag(&mut input).unwrap_err(),
            FlvError::BadSignature
        );
        let mut input = BytesMut::from(&b"FX"[..]);
        assert_eq!(
            FlvReader::new(100).next_tag(&mut input).unwrap_err(),
            FlvError::BadSignature
        );
        let mut input = BytesMut::from(&b"FL"[..]);
        assert_eq!(FlvReader::new(100).next_tag(&mut input), Ok(None));

        for offset in [0u8, 8] {
            let mut input = BytesMut::from(&FLV_HEADER[..]);
            input[8] = offset;
            assert_eq!(
                FlvReader::new(100).next_tag(&mut input).unwrap_err(),
                FlvError::BadDataOffset(u32::from(offset))
            );
        }
        let mut input = BytesMut::from(&FLV_HEADER[..]);
        input[5] = 0x80;
        assert!(matches!(
            FlvReader::new(100).next_tag(&mut input),
            Err(FlvError::BadDataOffset(_))
        ));
    }

    #[test]
    fn oversized_tag() {
        let big = Frame::audio(0, Bytes::from(vec![0u8; 200]));
        let mut input = BytesMut::from(&FLV_HEADER[..]);
        // Only the tag header has arrived: the size is enough to refuse it.
        input.extend_from_slice(&tag(&big)[..11]);
        let mut reader = FlvReader::new(100);
        let err = reader.next_tag(&mut input).unwrap_err();
        assert_eq!(
            err,
            FlvError::TagTooLarge {
                size: 202,
                max: 100
            }
        );
        assert_eq!(
            reader.next_tag(&mut input).unwrap_err(),
            err,
            "errors are final"
        );
    }

    #[test]
    fn desync_and_encryption() {
        let mut input = BytesMut::from(&FLV_HEADER[..]);
        input.extend_from_slice(&tag(&frames()[1]));
        input.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut reader = FlvReader::new(100);
        assert!(reader.next_tag(&mut input).unwrap().is_some());
        // The tag's own trailing size matched; the garbage is the next tag.
        assert!(matches!(
            reader.next_tag(&mut input),
            Err(FlvError::TagTooLarge { .. }) | Err(FlvError::PreviousTagSize { .. })
        ));

        let mut input = BytesMut::from(&FLV_HEADER[..9]);
        input.extend_from_slice(&[0, 0, 0, 1]);
        input.extend_from_slice(&tag(&frames()[1])[..11]);
        assert_eq!(
            FlvReader::new(100).next_tag(&mut input).unwrap_err(),
            FlvError::PreviousTagSize {
                expected: 0,
                found: 1
            }
        );

        let mut input = BytesMut::from(&FLV_HEADER[..]);
        let mut t = BytesMut::from(&tag(&frames()[1])[..]);
        t[0] |= 0x20;
        input.extend_from_slice(&t);
        assert_eq!(
            FlvReader::new(100).next_tag(&mut input).unwrap_err(),
            FlvError::Encrypted
        );
    }

    #[test]
    fn garbage_after_the_header_is_an_error_not_a_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for round in 0..2000 {
            let mut input = BytesMut::from(&FLV_HEADER[..]);
            for _ in 0..(round % 300) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                input.extend_from_slice(&[x as u8]);
            }
            let mut reader = FlvReader::new(64);
            while let Ok(Some(_)) = reader.next_tag(&mut input) {}
            assert!(input.len() < 64 + 15 + 300);
        }
    }

    #[test]
    fn truncated_stream_waits() {
        let all = stream();
        for n in 0..all.len() {
            let mut input = BytesMut::from(&all[..n]);
            let mut reader = FlvReader::new(1 << 20);
            let mut tags = Vec::new();
            read_all(&mut reader, &mut input, &mut tags);
            assert!(tags.len() < 7 || n >= all.len() - 4);
        }
    }
}
