//! Audio transcoding for bridges, over `costream-audio`.

use bytes::Bytes;
use costream_hub::Frame;

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
        (c, t) if c == t.codec() => Err(format!("the audio is already {}", t.name())),
        (from, to) => Err(format!("no {from:?} to {} transcoder yet", to.name())),
    }
}
