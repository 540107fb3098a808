//! Audio transcoding for bridges, over `costream-audio`.

use bytes::Bytes;
use costream_audio::{opus_head_channels, AacToOpus, OpusToAac};
use costream_hub::aac::AacConfig;
use costream_hub::{Codec, Frame};

/// The audio codec a bridge produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioTarget {
    /// For RTMP, HTTP-FLV and HLS viewers of a WebRTC stream.
    Aac,
    /// For WebRTC viewers of an RTMP stream.
    Opus,
}

impl AudioTarget {
    pub fn name(self) -> &'static str {
        match self {
            AudioTarget::Aac => "aac",
            AudioTarget::Opus => "opus",
        }
    }

    /// The suffix of the twin stream's key: the protocols it is for.
    pub fn suffix(self) -> &'static str {
        match self {
            AudioTarget::Aac => "rtmp",
            AudioTarget::Opus => "webrtc",
        }
    }
}

/// A transcoder of one audio track: encoded frames in, encoded frames out.
pub trait AudioConverter: Send {
    /// The output codec's config frame payload (AAC AudioSpecificConfig or
    /// OpusHead).
    fn config(&self) -> Bytes;
    /// One input frame at `pts_ms`. An error is about that frame only.
    fn push(&mut self, data: &[u8], pts_ms: i64) -> Result<(), String>;
    /// The next output frame and its timestamp.
    fn pop(&mut self) -> Option<(Bytes, i64)>;
}

/// A converter from the codec of `config` (an audio config frame) to `target`.
pub fn converter(config: &Frame, target: AudioTarget) -> Result<Box<dyn AudioConverter>, String> {
    match (config.codec, target) {
        (Codec::Aac, AudioTarget::Opus) => {
            let channels = AacConfig::parse(&config.data)
                .map(|c| c.channels.clamp(1, 2))
                .map_err(|e| format!("AAC config: {e}"))?;
            let conv = AacToOpus::new(&config.data).map_err(|e| e.to_string())?;
            Ok(Box::new(ToOpus { conv, channels }))
        }
        (Codec::Opus, AudioTarget::Aac) => {
            let channels = opus_head_channels(&config.data).unwrap_or(2).clamp(1, 2);
            let conv = OpusToAac::new(channels).map_err(|e| e.to_string())?;
            Ok(Box::new(ToAac(conv)))
        }
        (from, to) => Err(format!("no {from:?} to {} transcoder", to.name())),
    }
}

struct ToOpus {
    conv: AacToOpus,
    channels: u8,
}

impl AudioConverter for ToOpus {
    fn config(&self) -> Bytes {
        // The OpusHead with this stream's channel count.
        let mut head = costream_audio::OPUS_HEAD_STEREO.to_vec();
        head[9] = self.channels;
        Bytes::from(head)
    }
    fn push(&mut self, data: &[u8], pts_ms: i64) -> Result<(), String> {
        self.conv.push(data, pts_ms).map_err(|e| e.to_string())
    }
    fn pop(&mut self) -> Option<(Bytes, i64)> {
        self.conv.pop().map(|p| (p.data, p.pts_ms))
    }
}

struct ToAac(OpusToAac);

impl AudioConverter for ToAac {
    fn config(&self) -> Bytes {
        self.0.audio_specific_config()
    }
    fn push(&mut self, data: &[u8], pts_ms: i64) -> Result<(), String> {
        self.0.push(data, pts_ms).map_err(|e| e.to_string())
    }
    fn pop(&mut self) -> Option<(Bytes, i64)> {
        self.0.pop().map(|p| (p.data, p.pts_ms))
    }
}
