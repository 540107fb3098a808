//! Protocol bridges. A viewer whose protocol cannot carry a stream's audio
//! codec (Opus over RTMP, HTTP-FLV and HLS; AAC over WebRTC) plays the
//! stream's bridged twin instead: `app/stream~rtmp` (AAC audio, for RTMP,
//! HTTP-FLV and HLS) or `app/stream~webrtc` (Opus audio), a
//! hub stream published by a bridge task that subscribes to the original,
//! passes video through untouched (the same payload bytes) and transcodes
//! the audio. One bridge per twin serves all its viewers; it starts with
//! the first viewer and stops soon after the last one leaves, or when the
//! original stream ends.

mod audio;
mod task;
pub(crate) use task::heavy;
pub(crate) mod video;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use costream_hub::{AudioCodec, Hub, Protocol, StreamKey, SubscribeError, Subscriber};
use parking_lot::Mutex;

pub use audio::AudioTarget;

/// The HTTP status for a viewer [`Bridges::subscribe`] refused.
pub fn refusal_status(e: &SubscribeError) -> axum::http::StatusCode {
    match e {
        SubscribeError::NotFound(_) => axum::http::StatusCode::NOT_FOUND,
        SubscribeError::Unavailable(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The running bridges, by twin key.
#[derive(Clone)]
pub struct Bridges {
    hub: Hub,
    running: Arc<Mutex<HashMap<StreamKey, Arc<BridgeStats>>>>,
    /// `transcode.max_bridges` and `transcode.max_reencode_resolution`.
    max: usize,
    max_reencode: u32,
}

/// What a bridge has done, for the API.
#[derive(Debug)]
pub struct BridgeStats {
    pub source: StreamKey,
    pub twin: StreamKey,
    pub target: AudioTarget,
    pub started: Instant,
    pub frames_in: AtomicU64,
    pub audio_in: AtomicU64,
    pub audio_out: AtomicU64,
    pub audio_errors: AtomicU64,
    /// A WebRTC viewer asked for a keyframe (served by a video re-encoder).
    pub keyframe_wanted: std::sync::atomic::AtomicBool,
    /// Frames out of the video re-encoder (streams with B-frames, to WebRTC).
    pub video_reencoded: AtomicU64,
    /// Time spent transcoding, nanoseconds (one thread, so CPU time).
    pub transcode_ns: AtomicU64,
}

/// A bridge as `GET /api/v1/bridges` shows it.
#[derive(Debug, serde::Serialize)]
pub struct BridgeInfo {
    pub source: String,
    pub stream: String,
    pub audio: &'static str,
    pub uptime_secs: f64,
    pub viewers: u64,
    pub frames_in: u64,
    pub audio_frames_in: u64,
    pub audio_frames_out: u64,
    pub audio_errors: u64,
    /// `passthrough`, or `reencoded` (B-frames removed for WebRTC).
    pub video: &'static str,
    pub video_frames_reencoded: u64,
    pub transcode_cpu_ms: f64,
    /// Transcoding CPU as a share of one core over the bridge's life.
    pub cpu_percent: f64,
}

impl Bridges {
    pub fn new(hub: Hub) -> Bridges {
        let limits = crate::config::TranscodeConfig::default();
        Bridges {
            hub,
            running: Arc::default(),
            max: limits.max_bridges,
            max_reencode: limits.max_reencode_resolution,
        }
    }

    pub fn with_limits(mut self, limits: &crate::config::TranscodeConfig) -> Bridges {
        self.max = limits.max_bridges;
        self.max_reencode = limits.max_reencode_resolution;
        self
    }

    /// Whether another bridge for `key` may start; refusals are counted.
    fn may_start(
        &self,
        key: &StreamKey,
        target: AudioTarget,
        running: usize,
    ) -> Result<(), SubscribeError> {
        let refuse = |reason: &'static str, why: String| {
            crate::metrics::refused("bridge", reason, None, format_args!("{key}: {why}"));
            Err(SubscribeError::Unavailable(why))
        };
        if running >= self.max {
            return refuse(
                "bridge_limit",
                format!("{} bridges run already (transcode.max_bridges)", self.max),
            );
        }
        let info = self.hub.stream(key).map(|s| s.info()).unwrap_or_default();
        if target == AudioTarget::Opus && info.b_frames {
            if let Some(v) = info
                .video
                .filter(|v| v.width.min(v.height) > self.max_reencode)
            {
                return refuse(
                    "reencode_resolution",
                    format!(
                        "the stream is {}x{} with B-frames; WebRTC needs it re-encoded, which is capped at {}p (transcode.max_reencode_resolution)",
                        v.width, v.height, self.max_reencode
                    ),
                );
            }
        }
        Ok(())
    }

    /// Subscribes a viewer of `protocol` to `key`: directly when the protocol
    /// carries the stream's audio codec (or the codec is not known yet),
    /// else to the bridged twin, starting its bridge if needed.
    pub fn subscribe(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Subscriber, SubscribeError> {
        let Some(target) = self.target_for(key, protocol) else {
            return self.hub.subscribe(key, protocol);
        };
        let twin = key.bridged(target.suffix());
        // Held while starting, and by a stopping bridge while it checks for
        // viewers, so a new viewer never subscribes to a twin being ended.
        let mut running = self.running.lock();
        if self.hub.stream(&twin).is_none() || !running.contains_key(&twin) {
            self.may_start(key, target, running.len())?;
            let stats = task::start(&self.hub, key, &twin, target, self.running.clone())?;
            running.insert(twin.clone(), stats);
        }
        self.hub.subscribe(&twin, protocol)
    }

    /// The audio a viewer of `protocol` needs, when `key`'s audio is
    /// something else.
    fn target_for(&self, key: &StreamKey, protocol: Protocol) -> Option<AudioTarget> {
        let info = self.hub.stream(key)?.info();
        let audio = info.audio.map(|a| a.codec);
        match (protocol, audio) {
            (Protocol::WebRtc, Some(AudioCodec::Aac)) => Some(AudioTarget::Opus),
            // Re-encoded without B-frames for browsers.
            (Protocol::WebRtc, _) if info.b_frames => Some(AudioTarget::Opus),
            (Protocol::Rtmp | Protocol::Flv | Protocol::Hls, Some(AudioCodec::Opus)) => {
                Some(AudioTarget::Aac)
            }
            _ => None,
        }
    }

    pub fn list(&self) -> Vec<BridgeInfo> {
        let running = self.running.lock();
        let mut out: Vec<BridgeInfo> = running
            .values()
            .map(|s| {
                let uptime = s.started.elapsed().as_secs_f64();
                let cpu_ms = s.transcode_ns.load(Relaxed) as f64 / 1e6;
                BridgeInfo {
                    source: s.source.to_string(),
                    stream: s.twin.to_string(),
                    audio: s.target.name(),
                    uptime_secs: (uptime * 10.0).round() / 10.0,
                    viewers: self
                        .hub
                        .stream(&s.twin)
                        .map_or(0, |st| st.stats.total_viewers()),
                    frames_in: s.frames_in.load(Relaxed),
                    audio_frames_in: s.audio_in.load(Relaxed),
                    audio_frames_out: s.audio_out.load(Relaxed),
                    audio_errors: s.audio_errors.load(Relaxed),
                    video: if s.video_reencoded.load(Relaxed) > 0 {
                        "reencoded"
                    } else {
                        "passthrough"
                    },
                    video_frames_reencoded: s.video_reencoded.load(Relaxed),
                    transcode_cpu_ms: (cpu_ms * 10.0).round() / 10.0,
                    cpu_percent: if uptime > 0.0 {
                        (cpu_ms / 10.0 / uptime * 100.0).round() / 100.0
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| a.stream.cmp(&b.stream));
        out
    }

    /// Passes a WebRTC viewer's keyframe request to the bridge that
    /// re-encodes `key` for WebRTC, if there is one.
    pub fn request_keyframe(&self, key: &StreamKey) {
        if let Some(s) = self
            .running
            .lock()
            .get(&key.bridged(AudioTarget::Opus.suffix()))
        {
            s.keyframe_wanted.store(true, Relaxed);
        }
    }

    pub fn count(&self) -> usize {
        self.running.lock().len()
    }
}
