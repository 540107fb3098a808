//! What a stream carries, as far as viewers and the API care: codecs,
//! picture size, rates. Derived from the codec configs and measured on push.

use std::time::{Duration, Instant};

use crate::aac::AacConfig;
use crate::avc::AvcConfig;
use crate::frame::{AudioCodec, Codec, Frame, FrameKind, VideoCodec};

#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub codec: VideoCodec,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    /// Frame rate the encoder declared in its SPS, if any.
    pub declared_fps: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    pub codec: AudioCodec,
    pub codec_string: String,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamInfo {
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
    /// Video frames per second measured over the last second.
    pub fps: f64,
    /// Incoming bits per second measured over the last second.
    pub bitrate_bps: u64,
    /// A video frame has had pts != dts: the encoder uses B-frames (which
    /// browsers' WebRTC decoders do not take).
    pub b_frames: bool,
}

impl StreamInfo {
    /// Updates codec facts from a config frame. An unparsable config leaves
    /// the previous facts (the frame still reaches viewers, whose decoders
    /// will judge it).
    pub(crate) fn apply_config(&mut self, frame: &Frame) {
        match frame.kind {
            FrameKind::VideoConfig if frame.codec == Codec::Vp8 => {
                if let Some((width, height)) = crate::vp8::parse_config_record(&frame.data) {
                    self.video = Some(VideoInfo {
                        codec: VideoCodec::Vp8,
                        codec_string: "vp8".into(),
                        width: width.into(),
                        height: height.into(),
                        declared_fps: None,
                    });
                }
            }
            FrameKind::VideoConfig => match AvcConfig::parse(&frame.data) {
                Ok(cfg) => {
                    let sps = cfg.sps_info().ok();
                    self.video = Some(VideoInfo {
                        codec: VideoCodec::H264,
                        codec_string: cfg.codec_string(),
                        width: sps.map_or(0, |s| s.width),
                        height: sps.map_or(0, |s| s.height),
                        declared_fps: sps.and_then(|s| s.fps),
                    });
                }
                Err(e) => tracing::debug!("video config not understood: {e}"),
            },
            FrameKind::AudioConfig if frame.codec == Codec::Opus => {
                self.audio = Some(AudioInfo {
                    codec: AudioCodec::Opus,
                    codec_string: "opus".into(),
                    sample_rate: 48_000,
                    channels: frame.data.get(9).copied().unwrap_or(2),
                })
            }
            FrameKind::AudioConfig => match AacConfig::parse(&frame.data) {
                Ok(cfg) => {
                    self.audio = Some(AudioInfo {
                        codec: AudioCodec::Aac,
                        codec_string: cfg.codec_string(),
                        sample_rate: cfg.sample_rate(),
                        channels: cfg.channels,
                    })
                }
                Err(e) => tracing::debug!("audio config not understood: {e}"),
            },
            _ => {}
        }
    }
}

/// Counts frames and bytes over one-second windows.
#[derive(Debug)]
pub(crate) struct RateMeter {
    window_start: Instant,
    video_frames: u32,
    bytes: u64,
}

impl RateMeter {
    pub(crate) fn new() -> Self {
        RateMeter {
            window_start: Instant::now(),
            video_frames: 0,
            bytes: 0,
        }
    }

    pub(crate) fn record(&mut self, frame: &Frame, info: &mut StreamInfo) {
        self.bytes += frame.data.len() as u64;
        if frame.kind == FrameKind::Video {
            self.video_frames += 1;
            info.b_frames |= frame.pts != frame.dts;
        }
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            let secs = elapsed.as_secs_f64();
            info.fps = (self.video_frames as f64 / secs * 10.0).round() / 10.0;
            info.bitrate_bps = (self.bytes as f64 * 8.0 / secs) as u64;
            *self = RateMeter::new();
        }
    }
}
