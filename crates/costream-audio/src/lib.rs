//! Audio transcoding for the RTMP ↔ WebRTC bridge.
//!
//! RTMP carries AAC, WebRTC carries Opus, so audio crossing the bridge is decoded and
//! re-encoded:
//!
//! - [`AacToOpus`]: AAC (any rate, from the FLV sequence header's AudioSpecificConfig) →
//!   decoded → resampled to 48 kHz when needed → 20 ms Opus packets.
//! - [`OpusToAac`]: Opus → decoded at 48 kHz → AAC-LC 48 kHz, 1024-sample raw frames, with
//!   the [`OpusToAac::audio_specific_config`] for the sequence header.
//!
//! Both are sans-IO and single-threaded: `push` a frame with its millisecond pts, then
//! `pop` the encoded packets. Output pts come from the sample count since an anchor (the first
//! input pts), so they are continuous whatever the input's ms rounding or jitter; an input
//! jump of more than 100 ms re-anchors. The codecs' own delay (resampler, Opus lookahead, AAC
//! priming) is subtracted, so the first packets are stamped slightly before the first input
//! pts and the audio content keeps the input's timing (lip sync).
//!
//! For the mixer: [`PcmDecoder`] turns AAC or Opus into 48 kHz stereo PCM, and
//! [`AacEncoder`] turns the mix back into AAC-LC ([`OpusEncoder`] into Opus).
//!
//! A bad frame from the network is an `Err` (never a panic); drop it and keep pushing.
//!
//! Codecs are built from vendored C sources (libopus, Fraunhofer FDK AAC) and linked
//! statically: no system codec library is needed or used.

mod aac_decoder;
mod aac_encoder;
mod aac_to_opus;
mod error;
mod opus_encoder;
mod opus_to_aac;
mod pcm;
mod pcm_decoder;
mod resample;
mod timeline;

use bytes::Bytes;

pub use aac_encoder::AacEncoder;
pub use aac_to_opus::{AacToOpus, OpusEncoderConfig, OPUS_FRAME_SAMPLES, OPUS_RATE};
pub use error::AudioError;
pub use opus_encoder::{OpusEncoder, OPUS_HEAD_STEREO};
pub use opus_to_aac::{opus_head_channels, AacEncoderConfig, OpusToAac, AAC_FRAME_SAMPLES};
pub use pcm_decoder::PcmDecoder;
pub use timeline::REANCHOR_MS;

/// One encoded packet: an Opus packet or a raw AAC frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPacket {
    pub data: Bytes,
    /// Presentation time in ms, on the input's clock.
    pub pts_ms: i64,
    /// Duration in samples per channel at 48 kHz (960 for Opus, 1024 for AAC).
    pub samples: u32,
}

#[cfg(test)]
mod tests {
    /// The vendored libopus is the one linked (Debian's shared libopus0 is 1.3).
    #[test]
    fn bundled_libopus_is_linked() {
        assert!(
            opus::version().starts_with("libopus 1.6"),
            "{}",
            opus::version()
        );
    }
}
