//! Per-viewer measurements, shared by the HTTP-FLV and RTMP clients: the
//! protocol code reports bytes and media tags; this turns them into
//! first-frame time, continuity (timestamp gaps, lag behind the wall clock)
//! and push-to-play latency. Fixed-size state apart from one small
//! interval sample and an optional histogram, both allocated once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::media::{classify_video, is_audio_config, VideoTag};
use super::publish::SendTimes;
use super::stats::{percentile, Histogram};

/// Frame intervals sampled per viewer for its median.
const INTERVAL_SAMPLES: usize = 512;
/// Gaps over 1 s kept per viewer (only their count matters beyond this).
const MAX_BIG_GAPS: usize = 64;
/// The smallest timestamp gap that counts as a skip.
pub const MIN_GAP_THRESHOLD_MS: u32 = 1000;

/// Live totals for the progress line.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub with_video: AtomicU64,
    pub bytes: AtomicU64,
}

/// What a viewer measured; see [`ViewerStats::finish`].
#[derive(Debug)]
pub struct ViewerSummary {
    /// The play was accepted (HTTP 200, RTMP Play.Start or media).
    pub connected: bool,
    pub error: Option<String>,
    pub bytes: u64,
    /// Bits per second from acceptance to the end, if that was ≥ 0.5 s.
    pub bitrate_bps: Option<f64>,
    pub first_video: Option<Duration>,
    pub first_video_keyframe: Option<bool>,
    pub median_interval_ms: Option<u32>,
    pub gap_threshold_ms: u32,
    /// Gaps between consecutive video timestamps above the threshold.
    pub gaps_over_threshold: u32,
    pub max_gap_ms: u32,
    /// Wall time since the first frame minus media time since it, at the end.
    pub lag_ms: Option<f64>,
    pub latency: Option<Box<Histogram>>,
    /// Only frames sent after this viewer started connecting (no cache).
    pub latency_live: Option<Box<Histogram>>,
    pub latency_unmatched: u64,
}

/// Measurement state of one viewer.
#[derive(Debug)]
pub struct ViewerStats {
    /// When the TCP connect started.
    pub connect_started: Instant,
    accepted_at: Option<Instant>,
    first_video_at: Option<Instant>,
    first_video_keyframe: Option<bool>,
    first_video_ts: Option<u32>,
    /// Whether the first video tag seen was a sequence header.
    first_video_tag_was_config: Option<bool>,
    bytes: u64,
    /// First frame (not configuration) of any kind: arrival and timestamp.
    first_media: Option<(Instant, u32)>,
    last_media_ts: u32,
    last_video_ts: Option<u32>,
    intervals: Vec<u32>,
    max_gap_ms: u32,
    big_gaps: Vec<u32>,
    big_gap_count: u32,
    send_times: Option<Arc<SendTimes>>,
    latency: Option<Box<Histogram>>,
    latency_live: Option<Box<Histogram>>,
    latency_unmatched: u64,
    counters: Option<Arc<Counters>>,
}

impl ViewerStats {
    pub fn new(send_times: Option<Arc<SendTimes>>, counters: Option<Arc<Counters>>) -> Self {
        ViewerStats {
            connect_started: Instant::now(),
            accepted_at: None,
            first_video_at: None,
            first_video_keyframe: None,
            first_video_ts: None,
            first_video_tag_was_config: None,
            bytes: 0,
            first_media: None,
            last_media_ts: 0,
            last_video_ts: None,
            intervals: Vec::new(),
            max_gap_ms: 0,
            big_gaps: Vec::new(),
            big_gap_count: 0,
            latency: send_times.as_ref().map(|_| Box::new(Histogram::new())),
            latency_live: send_times.as_ref().map(|_| Box::new(Histogram::new())),
            send_times,
            latency_unmatched: 0,
            counters,
        }
    }

    /// Marks the start of the TCP connect.
    pub fn start_connect(&mut self) {
        self.connect_started = Instant::now();
    }

    /// The server accepted the play request.
    pub fn accepted(&mut self, now: Instant) {
        if self.accepted_at.is_none() {
            self.accepted_at = Some(now);
            if let Some(c) = &self.counters {
                c.connected.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn is_accepted(&self) -> bool {
        self.accepted_at.is_some()
    }

    pub fn add_bytes(&mut self, n: usize) {
        self.bytes += n as u64;
        if let Some(c) = &self.counters {
            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// The first video frame, once seen: (connect-to-frame, keyframe,
    /// sequence header came first, timestamp).
    pub fn first_video(&self) -> Option<(Duration, bool, bool, u32)> {
        Some((
            self.first_video_at?
                .saturating_duration_since(self.connect_started),
            self.first_video_keyframe?,
            self.first_video_tag_was_config?,
            self.first_video_ts?,
        ))
    }

    /// A video tag arrived (fully) at `now`. Returns true if it was the
    /// first video frame.
    pub fn on_video(&mut self, timestamp: u32, body: &[u8], now: Instant) -> bool {
        self.accepted(now);
        let kind = classify_video(body);
        if self.first_video_tag_was_config.is_none() && kind != VideoTag::Other {
            self.first_video_tag_was_config = Some(kind == VideoTag::SequenceHeader);
        }
        let VideoTag::Frame { keyframe } = kind else {
            return false;
        };
        self.on_media(timestamp, now);
        if let (Some(times), Some(all), Some(live)) =
            (&self.send_times, &mut self.latency, &mut self.latency_live)
        {
            match times.lookup(timestamp) {
                Some(sent) => {
                    let us = now.saturating_duration_since(sent).as_micros() as u64;
                    all.record(us);
                    if sent >= self.connect_started {
                        live.record(us);
                    }
                }
                None => self.latency_unmatched += 1,
            }
        }
        if let Some(prev) = self.last_video_ts.replace(timestamp) {
            // Timestamps going backwards (a new publisher) are not gaps.
            let delta = timestamp.wrapping_sub(prev) as i32;
            if delta > 0 {
                let delta = delta as u32;
                if self.intervals.len() < INTERVAL_SAMPLES {
                    if self.intervals.capacity() == 0 {
                        self.intervals.reserve_exact(INTERVAL_SAMPLES);
                    }
                    self.intervals.push(delta);
                }
                self.max_gap_ms = self.max_gap_ms.max(delta);
                if delta > MIN_GAP_THRESHOLD_MS {
                    self.big_gap_count += 1;
                    if self.big_gaps.len() < MAX_BIG_GAPS {
                        self.big_gaps.push(delta);
                    }
                }
            }
        }
        if self.first_video_at.is_some() {
            return false;
        }
        self.first_video_at = Some(now);
        self.first_video_keyframe = Some(keyframe);
        self.first_video_ts = Some(timestamp);
        if let Some(c) = &self.counters {
            c.with_video.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    pub fn on_audio(&mut self, timestamp: u32, body: &[u8], now: Instant) {
        self.accepted(now);
        if !body.is_empty() && !is_audio_config(body) {
            self.on_media(timestamp, now);
        }
    }

    fn on_media(&mut self, timestamp: u32, now: Instant) {
        if self.first_media.is_none() {
            self.first_media = Some((now, timestamp));
        }
        self.last_media_ts = timestamp;
    }

    /// Final numbers, as of `end`.
    pub fn finish(mut self, end: Instant, error: Option<String>) -> ViewerSummary {
        if error.is_some() {
            if let Some(c) = &self.counters {
                c.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.intervals.sort_unstable();
        let median_interval_ms = percentile(&self.intervals, 50.0);
        let gap_threshold_ms = median_interval_ms
            .map_or(MIN_GAP_THRESHOLD_MS, |m| m.saturating_mul(5))
            .max(MIN_GAP_THRESHOLD_MS);
        let gaps_over_threshold = if gap_threshold_ms == MIN_GAP_THRESHOLD_MS {
            self.big_gap_count
        } else {
            let kept = self.big_gaps.iter().filter(|g| **g > gap_threshold_ms);
            let kept = kept.count() as u32;
            // Gaps beyond the kept sample are counted as over, an upper bound.
            kept + self.big_gap_count - self.big_gaps.len() as u32
        };
        let lag_ms = self.first_media.map(|(at, ts)| {
            let wall = end.saturating_duration_since(at).as_secs_f64() * 1000.0;
            let media = f64::from(self.last_media_ts.wrapping_sub(ts) as i32);
            wall - media
        });
        let bitrate_bps = self.accepted_at.and_then(|at| {
            let secs = end.saturating_duration_since(at).as_secs_f64();
            (secs >= 0.5).then(|| self.bytes as f64 * 8.0 / secs)
        });
        ViewerSummary {
            connected: self.accepted_at.is_some(),
            error,
            bytes: self.bytes,
            bitrate_bps,
            first_video: self
                .first_video_at
                .map(|at| at.saturating_duration_since(self.connect_started)),
            first_video_keyframe: self.first_video_keyframe,
            median_interval_ms,
            gap_threshold_ms,
            gaps_over_threshold,
            max_gap_ms: self.max_gap_ms,
            lag_ms,
            latency: self.latency,
            latency_live: self.latency_live,
            latency_unmatched: self.latency_unmatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = &[0x17, 1, 0, 0, 0];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0];
    const CONFIG: &[u8] = &[0x17, 0, 0, 0, 0];

    #[test]
    fn first_frame_gaps_and_lag() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut v = ViewerStats::new(None, None);
        v.connect_started = t0;
        assert!(!v.on_video(0, CONFIG, ms(10)));
        assert!(v.on_video(1000, INTER, ms(20)));
        assert!(!v.on_video(1040, KEY, ms(60)));
        assert_eq!(
            v.first_video(),
            Some((Duration::from_millis(20), false, true, 1000))
        );
        for i in 2..100u32 {
            v.on_video(1000 + i * 40, INTER, ms(20 + u64::from(i) * 40));
        }
        // A skip to the next keyframe: 1.5 s of timestamps missing.
        v.on_video(1000 + 99 * 40 + 1500, KEY, ms(20 + 100 * 40));
        v.on_audio(6000, &[0xaf, 1, 0x21], ms(4100));
        let s = v.finish(ms(9020), None);
        assert!(s.connected);
        assert_eq!(s.median_interval_ms, Some(40));
        assert_eq!(s.gap_threshold_ms, 1000);
        assert_eq!(s.gaps_over_threshold, 1);
        assert_eq!(s.max_gap_ms, 1500);
        assert_eq!(s.first_video_keyframe, Some(false));
        // Wall: 9000 ms since the first frame; media: 5000 ms.
        assert_eq!(s.lag_ms, Some(4000.0));
    }

    #[test]
    fn low_frame_rate_raises_the_threshold() {
        let t0 = Instant::now();
        let mut v = ViewerStats::new(None, None);
        for i in 0..20u32 {
            v.on_video(i * 500, KEY, t0);
        }
        v.on_video(19 * 500 + 2000, KEY, t0);
        let s = v.finish(t0, None);
        assert_eq!(s.gap_threshold_ms, 2500);
        assert_eq!(s.gaps_over_threshold, 0);
        assert_eq!(s.max_gap_ms, 2000);
    }

    #[test]
    fn latency_from_send_times() {
        let t0 = Instant::now();
        let times = Arc::new(SendTimes::new(Duration::from_secs(30)));
        times.record(40, t0);
        times.record(80, t0 + Duration::from_millis(40));
        let mut v = ViewerStats::new(Some(times), None);
        v.connect_started = t0 + Duration::from_millis(10);
        v.on_video(40, KEY, t0 + Duration::from_millis(15));
        v.on_video(80, INTER, t0 + Duration::from_millis(65));
        v.on_video(120, INTER, t0 + Duration::from_millis(65));
        let s = v.finish(t0, None);
        let h = s.latency.unwrap();
        assert_eq!(h.count(), 2);
        assert_eq!(h.percentile(0.0), Some(15_000));
        assert_eq!(h.percentile(100.0), Some(25_000));
        assert_eq!(s.latency_unmatched, 1);
        // The frame sent before the viewer connected is not live.
        let live = s.latency_live.unwrap();
        assert_eq!(live.count(), 1);
        assert_eq!(live.percentile(50.0), Some(25_000));
    }
}
