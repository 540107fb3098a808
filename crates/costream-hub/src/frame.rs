//! Protocol-neutral media frames: what every stream in the hub is made of.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::budget::Charge;

/// What a [`Frame`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Video decoder configuration. For H.264: an AVCDecoderConfigurationRecord
    /// (ISO 14496-15), which holds the SPS and PPS.
    VideoConfig,
    /// Audio decoder configuration. For AAC: an AudioSpecificConfig (ISO 14496-3).
    AudioConfig,
    /// One video access unit. For H.264: NAL units each prefixed by a 4-byte
    /// big-endian length (AVCC framing), no start codes.
    Video,
    /// One audio access unit. For AAC: a raw AAC frame, no ADTS header.
    Audio,
}

impl FrameKind {
    pub fn is_video(self) -> bool {
        matches!(self, FrameKind::Video | FrameKind::VideoConfig)
    }
    pub fn is_config(self) -> bool {
        matches!(self, FrameKind::VideoConfig | FrameKind::AudioConfig)
    }
}

/// The codec of a frame's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Aac,
    /// Config data is an OpusHead (RFC 7845 §5.1); frames are Opus packets.
    Opus,
    /// Config data is the picture size (see [`crate::vp8`]); frames are VP8
    /// frames as the encoder made them. Only WebRTC carries VP8.
    Vp8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    H264,
    Vp8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Opus,
}

impl VideoCodec {
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }
}

impl AudioCodec {
    pub fn name(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Opus => "opus",
        }
    }
}

/// The encodings of a frame that are worth computing once and sharing with
/// every viewer of the same protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxFormat {
    /// A complete FLV tag (header, body, previous-tag-size), as sent over HTTP-FLV.
    FlvTag = 0,
    /// A complete RTMP message split into chunks, as sent to RTMP players.
    RtmpChunks = 1,
    /// An H.264 access unit in Annex B, parameter sets in front of an IDR,
    /// as WebRTC viewers get it.
    AnnexB = 2,
}
const MUX_FORMATS: usize = 3;

/// One timestamped unit of a stream. Frames are immutable once published and
/// shared (`Arc<Frame>`) by every viewer; payloads are `Bytes`, never copied.
#[derive(Debug)]
pub struct Frame {
    pub kind: FrameKind,
    pub codec: Codec,
    /// Decode timestamp, milliseconds on the stream's clock.
    pub dts: i64,
    /// Presentation timestamp, milliseconds; differs from `dts` with B-frames.
    pub pts: i64,
    /// A video frame that a decoder can start from (IDR). Config frames are
    /// not keyframes.
    pub keyframe: bool,
    /// A video frame that no other frame references (H.264 nal_ref_idc == 0):
    /// the first thing to drop for a viewer that falls behind.
    pub disposable: bool,
    pub data: Bytes,
    muxed: [OnceLock<Bytes>; MUX_FORMATS],
    /// Set when a stream takes the frame in: what it holds of the hub's
    /// memory budget, given back when the last holder drops it.
    pub(crate) charge: Option<Charge>,
}

impl Frame {
    pub fn new(kind: FrameKind, dts: i64, pts: i64, data: Bytes) -> Self {
        Frame {
            kind,
            codec: if kind.is_video() {
                Codec::H264
            } else {
                Codec::Aac
            },
            dts,
            pts,
            keyframe: false,
            disposable: false,
            data,
            muxed: Default::default(),
            charge: None,
        }
    }

    pub fn video(dts: i64, pts: i64, keyframe: bool, data: Bytes) -> Self {
        let disposable = !keyframe && crate::avc::is_disposable(&data);
        Frame {
            keyframe,
            disposable,
            ..Frame::new(FrameKind::Video, dts, pts, data)
        }
    }

    pub fn audio(dts: i64, data: Bytes) -> Self {
        Frame::new(FrameKind::Audio, dts, dts, data)
    }

    /// The same frame with another codec (the constructors assume H.264 and AAC).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Composition time offset (pts - dts), clamped to what containers carry.
    pub fn cts(&self) -> i32 {
        (self.pts - self.dts).clamp(-(1 << 23), (1 << 23) - 1) as i32
    }

    /// The frame encoded in `format`, computed by `mux` the first time any
    /// viewer asks and shared afterwards.
    pub fn muxed(&self, format: MuxFormat, mux: impl FnOnce(&Frame) -> Bytes) -> Bytes {
        self.muxed[format as usize]
            .get_or_init(|| {
                let bytes = mux(self);
                if let Some(charge) = &self.charge {
                    charge.add(bytes.len());
                }
                bytes
            })
            .clone()
    }

    /// A copy of this frame with its timestamps shifted by `offset_ms`;
    /// the payload is shared, the mux cache is not (timestamps changed).
    pub fn shifted(&self, offset_ms: i64) -> Self {
        Frame {
            kind: self.kind,
            codec: self.codec,
            dts: self.dts + offset_ms,
            pts: self.pts + offset_ms,
            keyframe: self.keyframe,
            disposable: self.disposable,
            data: self.data.clone(),
            muxed: Default::default(),
            charge: None,
        }
    }
}
