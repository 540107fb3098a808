//! One bridge: subscriber of the original stream, publisher of its twin.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_hub::{
    Codec, Frame, FrameKind, Hub, Protocol, Publisher, StreamKey, SubscribeError, Subscriber,
};
use parking_lot::Mutex;

use super::audio::{AudioConverter, AudioTarget};
use super::video::{has_b_frames, VideoReencoder};
use super::BridgeStats;

/// How often a bridge looks for viewers; it stops after two looks find none.
const IDLE_CHECK: Duration = Duration::from_secs(2);

type Running = Arc<Mutex<HashMap<StreamKey, Arc<BridgeStats>>>>;

/// Publishes the twin and spawns the bridge. Called with `running` locked.
pub(super) fn start(
    hub: &Hub,
    source: &StreamKey,
    twin: &StreamKey,
    target: AudioTarget,
    running: Running,
) -> Result<Arc<BridgeStats>, SubscribeError> {
    let sub = hub.subscribe(source, Protocol::Internal)?;
    let publisher = hub
        .publish(twin.clone(), Protocol::Internal)
        .map_err(|_| SubscribeError::NotFound(source.clone()))?;
    let stats = Arc::new(BridgeStats {
        source: source.clone(),
        twin: twin.clone(),
        target,
        started: Instant::now(),
        frames_in: AtomicU64::new(0),
        audio_in: AtomicU64::new(0),
        audio_out: AtomicU64::new(0),
        audio_errors: AtomicU64::new(0),
        keyframe_wanted: Default::default(),
        video_reencoded: AtomicU64::new(0),
        transcode_ns: AtomicU64::new(0),
    });
    tracing::info!(stream = %source, twin = %twin, audio = target.name(), "bridge started");
    let info = sub.stream().info();
    let mut bridge = Bridge {
        publisher,
        target,
        audio: None,
        video: None,
        video_config: None,
        source_bitrate: info.bitrate_bps,
        stats: stats.clone(),
    };
    if target == AudioTarget::Opus && info.b_frames {
        bridge.start_reencoding();
    }
    tokio::spawn(bridge.run(sub, running));
    Ok(stats)
}

struct Bridge {
    publisher: Publisher,
    target: AudioTarget,
    audio: Option<Box<dyn AudioConverter>>,
    /// WebRTC twins of streams with B-frames: video re-encoded without them.
    video: Option<VideoReencoder>,
    /// The last video config seen, for a re-encoder started mid-stream.
    video_config: Option<Frame>,
    source_bitrate: u64,
    stats: Arc<BridgeStats>,
}

impl Bridge {
    async fn run(mut self, mut source: Subscriber, running: Running) {
        let mut idle_checks = 0;
        let mut tick = tokio::time::interval(IDLE_CHECK);
        tick.tick().await;
        loop {
            tokio::select! {
                frame = source.recv() => {
                    let Some(frame) = frame else { break };
                    // The twin's viewers' wish for a keyframe is the source's.
                    if self.publisher.stream().stats.keyframe_wanted.swap(false, Relaxed) {
                        source.stream().stats.keyframe_wanted.store(true, Relaxed);
                    }
                    if self.frame(&frame).is_err() {
                        break;
                    }
                }
                _ = tick.tick() => {
                    if self.publisher.stream().stats.total_viewers() > 0 {
                        idle_checks = 0;
                        continue;
                    }
                    idle_checks += 1;
                    if idle_checks >= 2 {
                        let mut running = running.lock();
                        // Checked again under the lock new viewers take.
                        if self.publisher.stream().stats.total_viewers() == 0 {
                            running.remove(&self.stats.twin);
                            drop(running);
                            tracing::info!(twin = %self.stats.twin, "bridge stopped: no viewers");
                            self.publisher.end();
                            return;
                        }
                    }
                }
            }
        }
        running.lock().remove(&self.stats.twin);
        tracing::info!(twin = %self.stats.twin, "bridge stopped: the stream ended");
        self.publisher.end();
    }

    /// Passes video through and transcodes audio. Err: the twin is gone.
    fn frame(&mut self, frame: &Frame) -> Result<(), ()> {
        self.stats.frames_in.fetch_add(1, Relaxed);
        match frame.kind {
            FrameKind::Video | FrameKind::VideoConfig => {
                if frame.kind == FrameKind::VideoConfig {
                    self.video_config = Some(frame.shifted(0));
                }
                if self.video.is_none()
                    && self.target == AudioTarget::Opus
                    && frame.codec == Codec::H264
                    && has_b_frames(frame)
                {
                    self.start_reencoding();
                }
                let Some(reencoder) = self.video.as_mut() else {
                    return self.publisher.push(frame.shifted(0)).map_err(|_| ());
                };
                if self.stats.keyframe_wanted.swap(false, Relaxed) {
                    reencoder.request_keyframe();
                }
                let t0 = Instant::now();
                let twin = &self.stats.twin;
                let out = heavy(|| {
                    if let Err(e) = reencoder.push(frame) {
                        tracing::debug!(%twin, "video frame not re-encoded: {e}");
                    }
                    std::iter::from_fn(|| reencoder.pop()).collect::<Vec<_>>()
                });
                self.add_time(t0);
                for f in out {
                    self.stats.video_reencoded.fetch_add(1, Relaxed);
                    self.publisher.push(f).map_err(|_| ())?;
                }
                Ok(())
            }
            FrameKind::AudioConfig => {
                let t0 = Instant::now();
                let made = super::audio::converter(frame, self.target);
                self.add_time(t0);
                match made {
                    Ok(conv) => {
                        let config = conv.config();
                        self.audio = Some(conv);
                        let out = Frame::new(FrameKind::AudioConfig, frame.dts, frame.dts, config)
                            .with_codec(self.target.codec());
                        self.publisher.push(out).map_err(|_| ())
                    }
                    Err(e) => {
                        tracing::warn!(twin = %self.stats.twin, "audio not bridged: {e}");
                        self.audio = None;
                        Ok(())
                    }
                }
            }
            FrameKind::Audio => {
                let Some(conv) = self.audio.as_mut() else {
                    return Ok(());
                };
                self.stats.audio_in.fetch_add(1, Relaxed);
                let t0 = Instant::now();
                if let Err(e) = conv.push(&frame.data, frame.dts) {
                    self.stats.audio_errors.fetch_add(1, Relaxed);
                    tracing::debug!(twin = %self.stats.twin, "audio frame dropped: {e}");
                }
                let mut out = Vec::new();
                while let Some((data, pts)) = conv.pop() {
                    // Codec delay can stamp the very first frames before 0;
                    // FLV and TS timestamps start at 0.
                    out.push(Frame::audio(pts.max(0), data).with_codec(self.target.codec()));
                }
                self.add_time(t0);
                for f in out {
                    self.stats.audio_out.fetch_add(1, Relaxed);
                    self.publisher.push(f).map_err(|_| ())?;
                }
                Ok(())
            }
        }
    }

    /// Browsers' WebRTC decoders take no B-frames: from here on the twin's
    /// video is decoded and encoded again as Constrained Baseline.
    fn start_reencoding(&mut self) {
        // Room above the source's rate (which includes its audio): Baseline
        // needs more bits than the Main/High it replaces for the same picture.
        let bitrate = (self.source_bitrate * 5 / 4).clamp(500_000, 8_000_000) as u32;
        let mut reencoder = VideoReencoder::new(bitrate);
        if let Some(config) = &self.video_config {
            let _ = reencoder.push(config);
        }
        tracing::info!(twin = %self.stats.twin, bitrate, "the stream has B-frames: re-encoding its video for WebRTC");
        self.video = Some(reencoder);
    }

    fn add_time(&self, since: Instant) {
        self.stats
            .transcode_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Relaxed);
    }
}

/// Runs CPU-heavy work (a video frame through the re-encoder: ~12 ms at
/// 720p) so that it does not hold up the other tasks of the runtime worker
/// it runs on: on the multi-threaded runtime that worker hands its queue to
/// another first.
pub(crate) fn heavy<T>(work: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

impl AudioTarget {
    pub fn codec(self) -> Codec {
        match self {
            AudioTarget::Aac => Codec::Aac,
            AudioTarget::Opus => Codec::Opus,
        }
    }
}
