//! The one error type of the crate. Every variant is recoverable: the caller drops the frame
//! (or the converter, for a bad configuration) and carries on.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AudioError {
    /// The AudioSpecificConfig (FLV AAC sequence header) is missing, short or rejected.
    #[error("invalid AAC AudioSpecificConfig: {0}")]
    InvalidConfig(&'static str),
    #[error("empty audio frame")]
    EmptyFrame,
    /// The FDK decoder rejected an access unit; `code` is its AAC_DECODER_ERROR.
    #[error("AAC decode failed (fdk error {code:#06x})")]
    AacDecode { code: u32 },
    /// The decoded stream has a layout the bridge does not carry (more than two channels
    /// after downmix, or a zero sample rate).
    #[error("unsupported decoded audio: {rate} Hz, {channels} channels")]
    UnsupportedFormat { rate: u32, channels: usize },
    #[error("AAC encoder: {0}")]
    AacEncode(String),
    #[error("Opus packet has no frames or lasts over 120 ms")]
    InvalidOpusPacket,
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),
    #[error("unsupported channel count {0} (1 or 2)")]
    Channels(u8),
    #[error("resampler: {0}")]
    Resample(String),
}
