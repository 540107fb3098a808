//! Errors of FLV decoding.

use std::fmt;

use thiserror::Error;

/// How a tag names a video codec it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodecId {
    /// A legacy FLV CodecID (7 = AVC).
    Flv(u8),
    /// An enhanced-RTMP FourCC such as `hvc1` or `av01`.
    FourCc([u8; 4]),
}

impl fmt::Display for VideoCodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodecId::Flv(id) => write!(f, "codec id {id}"),
            VideoCodecId::FourCc(cc) => write!(f, "fourcc '{}'", cc.escape_ascii()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvError {
    #[error("FLV tag body is truncated")]
    Truncated,
    #[error("unsupported video codec: {0}")]
    UnsupportedVideoCodec(VideoCodecId),
    #[error("unsupported audio sound format {0}")]
    UnsupportedAudioCodec(u8),
    #[error("invalid video frame type {0}")]
    InvalidFrameType(u8),
    #[error("invalid AVC packet type {0}")]
    InvalidAvcPacketType(u8),
    #[error("invalid AAC packet type {0}")]
    InvalidAacPacketType(u8),
    #[error("NAL length size {0} is not 1 to 4")]
    InvalidNalLengthSize(u8),
    #[error("not an FLV stream: bad signature")]
    BadSignature,
    #[error("FLV header data offset {0} is invalid")]
    BadDataOffset(u32),
    #[error("FLV tag is encrypted (filter bit set)")]
    Encrypted,
    #[error("FLV tag of {size} bytes exceeds the {max}-byte limit")]
    TagTooLarge { size: usize, max: usize },
    #[error("FLV PreviousTagSize is {found}, expected {expected}")]
    PreviousTagSize { expected: u32, found: u32 },
}
