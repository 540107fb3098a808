//! The mixing loop: on its own clock, every 20 ms it mixes the inputs'
//! audio, and at the frame rate it composites each input's picture of the
//! instant of the sound just mixed (`sync.rs`); both
//! are encoded and published as one hub stream. A late or frozen input
//! never holds it up: its last picture is reused and its audio is silence.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_audio::{AacEncoder, OpusEncoder};
use costream_hub::{Codec, Frame, FrameKind, Publisher};
use costream_mixer::{AudioMixer, Compositor, Layout, Picture};
use openh264::formats::YUVSource;
use parking_lot::Mutex;

use super::input::SharedInput;
use crate::bridge::video::Output;

/// Audio block: 20 ms of 48 kHz stereo.
const BLOCK: usize = 960 * 2;
/// The output's clock starts here rather than at 0: the sound encoders
/// stamp their first packets earlier by their own delay (AAC priming, Opus
/// lookahead), and those stamps must stay as they are (not clamped to 0)
/// for the sound to keep its place against the pictures.
const OUT_BASE_MS: i64 = 100;
/// The first composite waits (at most this long) for every input to have
/// a picture, rather than showing the background first.
const FIRST_PICTURE_WAIT: Duration = Duration::from_millis(1500);

#[derive(Clone)]
pub struct MixParams {
    pub width: usize,
    pub height: usize,
    pub fps: f32,
    pub bitrate: u32,
    /// Encode the sound as Opus rather than AAC: when the mix replaces a
    /// WebRTC-published stream, whose WebRTC viewers play Opus as it is
    /// (and RTMP, HTTP-FLV and HLS viewers get AAC from its bridge).
    pub opus: bool,
}

/// The mix's sound encoder.
enum AudioOut {
    Aac(AacEncoder),
    Opus(OpusEncoder),
}

impl AudioOut {
    fn new(opus: bool) -> Result<AudioOut, costream_audio::AudioError> {
        Ok(if opus {
            AudioOut::Opus(OpusEncoder::new(None)?)
        } else {
            AudioOut::Aac(AacEncoder::new(Some(128_000))?)
        })
    }

    fn config(&self) -> Frame {
        let (data, codec) = match self {
            AudioOut::Aac(a) => (a.audio_specific_config(), Codec::Aac),
            AudioOut::Opus(o) => (o.opus_head(), Codec::Opus),
        };
        Frame::new(FrameKind::AudioConfig, 0, 0, data).with_codec(codec)
    }

    fn push(&mut self, pcm: &[f32], pts_ms: i64) -> Result<(), costream_audio::AudioError> {
        match self {
            AudioOut::Aac(a) => a.push(pcm, pts_ms),
            AudioOut::Opus(o) => o.push(pcm, pts_ms),
        }
    }

    fn pop(&mut self) -> Option<Frame> {
        let (p, codec) = match self {
            AudioOut::Aac(a) => (a.pop()?, Codec::Aac),
            AudioOut::Opus(o) => (o.pop()?, Codec::Opus),
        };
        Some(Frame::audio(p.pts_ms.max(0), p.data).with_codec(codec))
    }
}

#[derive(Default)]
pub struct MixStats {
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    /// Pictures the loop skipped, being far behind its clock.
    pub frames_dropped: AtomicU64,
    pub cpu_us: AtomicU64,
    /// Input picture arrival to its first composite published: sum, count
    /// and largest, in microseconds.
    pub latency_sum_us: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_us: AtomicU64,
}

impl MixStats {
    fn record_latency(&self, d: Duration) {
        let us = d.as_micros() as u64;
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// (average, largest) added latency in milliseconds.
    pub fn latency_ms(&self) -> (f64, f64) {
        let n = self.latency_count.load(Ordering::Relaxed).max(1) as f64;
        (
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / n / 1000.0,
            self.latency_max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        )
    }
}

/// Runs until `stop` is set; publishes into `publisher`.
pub fn run(
    params: MixParams,
    layout: Arc<Mutex<Layout>>,
    inputs: Arc<Mutex<Vec<SharedInput>>>,
    publisher: Publisher,
    stats: Arc<MixStats>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut compositor = Compositor::new(params.width, params.height);
    let mut video = Output::new(params.bitrate);
    let mut mixer = AudioMixer::new();
    let mut sound = match AudioOut::new(params.opus) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("mixer: audio encoder: {e}");
            return;
        }
    };
    let _ = publisher.push(sound.config());
    wait_for_pictures(&inputs, &stop);
    let start = Instant::now();
    let frame_ms = 1000.0 / f64::from(params.fps.max(1.0));
    let (mut blocks, mut pictures) = (0u64, 0u64);
    let mut taken: Vec<Vec<f32>> = Vec::new();
    let mut gains: Vec<f32> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let work = Instant::now();
        // The inputs of this tick (a room's mix follows its publications).
        let inputs: Vec<SharedInput> = inputs.lock().clone();
        taken.resize(inputs.len(), Vec::new());
        gains.clear();
        gains.extend(inputs.iter().map(|i| i.lock().gain.unwrap_or(1.0)));
        let now_ms = start.elapsed().as_secs_f64() * 1000.0;
        // Audio: every block that is due.
        while (blocks as f64) * 20.0 <= now_ms {
            let block_ms = blocks as f64 * 20.0;
            for (input, buf) in inputs.iter().zip(taken.iter_mut()) {
                buf.clear();
                input.lock().sync.take_audio(block_ms, BLOCK, buf);
            }
            let ins: Vec<(&[f32], f32)> = taken
                .iter()
                .zip(&gains)
                .map(|(b, g)| (b.as_slice(), *g))
                .collect();
            let pts = OUT_BASE_MS + (blocks * 20) as i64;
            if sound.push(mixer.mix(BLOCK, &ins), pts).is_ok() {
                while let Some(f) = sound.pop() {
                    if publisher.push(f).is_err() {
                        lost_output(&stop);
                    }
                    stats.audio_frames.fetch_add(1, Ordering::Relaxed);
                }
            }
            blocks += 1;
        }
        // Video: the next picture, if due.
        if (pictures as f64) * frame_ms <= now_ms {
            let picture_ms = pictures as f64 * frame_ms;
            // New pictures in this composite: their arrival times.
            let mut fresh: Vec<Instant> = Vec::new();
            // Each input's picture at the time of the sound just mixed.
            let latest: Vec<Option<Arc<Picture>>> = inputs
                .iter()
                .map(|i| {
                    let ((picture, at), new) = i.lock().sync.picture(picture_ms, frame_ms / 2.0)?;
                    if new {
                        fresh.push(at);
                    }
                    Some(picture)
                })
                .collect();
            let refs: Vec<Option<&Picture>> = latest.iter().map(|p| p.as_deref()).collect();
            let layout = layout.lock().clone();
            let canvas = compositor.compose(&layout, &refs);
            let pts = OUT_BASE_MS + picture_ms as i64;
            if let Err(e) = video.encode(&Yuv(canvas), pts, params.fps) {
                tracing::debug!("mixer: encode: {e}");
            }
            let mut published = false;
            while let Some(f) = video.pop() {
                if publisher.push(f).is_err() {
                    lost_output(&stop);
                }
                published = true;
                stats.video_frames.fetch_add(1, Ordering::Relaxed);
            }
            if published {
                for at in fresh {
                    stats.record_latency(at.elapsed());
                }
            }
            pictures += 1;
            // Far behind (a stalled machine): skip ahead rather than burst.
            if (now_ms - pictures as f64 * frame_ms) > 10.0 * frame_ms {
                let due = (now_ms / frame_ms) as u64;
                stats
                    .frames_dropped
                    .fetch_add(due.saturating_sub(pictures), Ordering::Relaxed);
                pictures = due;
            }
        }
        stats
            .cpu_us
            .fetch_add(work.elapsed().as_micros() as u64, Ordering::Relaxed);
        let next_audio = blocks as f64 * 20.0;
        let next_video = pictures as f64 * frame_ms;
        let wait = next_audio.min(next_video) - start.elapsed().as_secs_f64() * 1000.0;
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / 1000.0));
        }
    }
    publisher.end();
}

/// Holds the first composite until every input has a picture (an input
/// without video once it has shown some frames), at most
/// [`FIRST_PICTURE_WAIT`]: a mix taking a stream over starts with its
/// inputs' pictures rather than the plain background.
fn wait_for_pictures(inputs: &Mutex<Vec<SharedInput>>, stop: &std::sync::atomic::AtomicBool) {
    let deadline = Instant::now() + FIRST_PICTURE_WAIT;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        let inputs: Vec<SharedInput> = inputs.lock().clone();
        let ready = !inputs.is_empty()
            && inputs.iter().all(|i| {
                let st = i.lock();
                st.sync.has_picture() || (!st.video && st.frames_in >= 20)
            });
        if ready {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The output stream was ended under the mix (kicked): the loop stops.
fn lost_output(stop: &std::sync::atomic::AtomicBool) {
    if !stop.swap(true, Ordering::Relaxed) {
        tracing::info!("mixer: its output stream ended; the mixing loop stops");
    }
}

/// A composite as OpenH264's input.
struct Yuv<'a>(&'a Picture);

impl YUVSource for Yuv<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width, self.0.height)
    }
    fn strides(&self) -> (usize, usize, usize) {
        (self.0.width, self.0.width / 2, self.0.width / 2)
    }
    fn y(&self) -> &[u8] {
        &self.0.y
    }
    fn u(&self) -> &[u8] {
        &self.0.u
    }
    fn v(&self) -> &[u8] {
        &self.0.v
    }
}
