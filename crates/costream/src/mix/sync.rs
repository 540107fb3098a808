//! Lip sync of one mixer input (sans-IO): its decoded sound and pictures
//! kept on the input's own timestamps, so that each composite shows the
//! picture taken at the instant of the sound mixed with it.
//!
//! Whatever arrives first (the cached GOP as a burst when the mix joins, a
//! network burst), the sound is kept within a short backlog, and pictures
//! wait in a small queue until the sound reaches their time. The mix's
//! clock maps to the input's through the last audio block taken: that is
//! what keeps the two together for the life of the mix.

use std::collections::VecDeque;

/// Interleaved stereo samples per millisecond at 48 kHz.
const PER_MS: f64 = 96.0;
/// An input's audio joins the mix once this much is buffered (its jitter
/// buffer).
pub const JITTER_MS: f64 = 60.0;
/// Audio beyond this backlog (a GOP burst, a network burst) is dropped,
/// oldest first, down to `TRIM_TO_MS`: more would only add latency.
const MAX_BACKLOG_MS: f64 = 200.0;
const TRIM_TO_MS: f64 = 120.0;
/// Audio timestamps within these of where the sound was expected continue
/// it (ms rounding, resampling); a gap beyond is filled with silence, an
/// overlap (frames sent again on a new subscription) skipped.
const GAP_MS: f64 = 30.0;
const OVERLAP_MS: f64 = 10.0;
/// A jump of the input's clock beyond this starts its timeline over.
const RESYNC_MS: f64 = 1000.0;
/// Pictures waiting for the sound to reach them: enough for the backlog
/// at 50 fps, and a bound on memory (a picture is up to a few MB).
const MAX_PICTURES: usize = 12;
/// Sound taken this recently (mix time) still places the pictures; after
/// that (no audio, or it ran dry) the input shows its latest picture.
const MAP_VALID_MS: f64 = 100.0;

/// One input's sound and pictures. `P` is the picture (shared, cheap to
/// clone).
pub struct AvSync<P> {
    /// Decoded sound not mixed yet, interleaved stereo at 48 kHz.
    pcm: VecDeque<f32>,
    /// Input time (ms) of `pcm`'s first sample, or of the next one expected.
    front_ms: Option<f64>,
    /// Audio is being taken (its jitter buffer filled once).
    started: bool,
    /// Decoded pictures not shown yet, by input pts, oldest first.
    pictures: VecDeque<(i64, P)>,
    shown: Option<(i64, P)>,
    /// Input time minus mix time of the last audio block taken, and the mix
    /// time it was taken at.
    map: Option<(f64, f64)>,
    av_offset_ms: Option<f64>,
}

impl<P> Default for AvSync<P> {
    fn default() -> Self {
        AvSync {
            pcm: VecDeque::new(),
            front_ms: None,
            started: false,
            pictures: VecDeque::new(),
            shown: None,
            map: None,
            av_offset_ms: None,
        }
    }
}

impl<P: Clone> AvSync<P> {
    /// Decoded samples whose first one is at input time `ts_ms`.
    pub fn push_audio(&mut self, ts_ms: i64, samples: &[f32]) {
        let ts = ts_ms as f64;
        let mut samples = samples;
        if let Some(front) = self.front_ms {
            let late = ts - (front + self.pcm.len() as f64 / PER_MS);
            if late.abs() > RESYNC_MS {
                // The input's clock jumped (a new publisher): start over.
                self.pcm.clear();
                self.front_ms = Some(ts);
                self.started = false;
                self.map = None;
            } else if late > GAP_MS {
                // Lost frames: silence keeps the later sound at its time.
                let gap = (late * PER_MS) as usize & !1;
                self.pcm.extend(std::iter::repeat_n(0.0, gap));
            } else if late < -OVERLAP_MS {
                // Sound we have already (a GOP sent again): its new part only.
                let skip = (-late * PER_MS) as usize & !1;
                samples = samples.get(skip..).unwrap_or_default();
            }
        } else {
            self.front_ms = Some(ts);
        }
        self.pcm.extend(samples.iter().copied());
        let backlog = self.pcm.len() as f64 / PER_MS;
        if backlog > MAX_BACKLOG_MS {
            let drop = ((backlog - TRIM_TO_MS) * PER_MS) as usize & !1;
            self.advance(drop);
        }
        self.prune_pictures();
    }

    /// A decoded picture at input pts `pts`.
    pub fn push_picture(&mut self, pts: i64, picture: P) {
        let newest = self.pictures.back().or(self.shown.as_ref()).map(|p| p.0);
        if let Some(newest) = newest {
            if pts.abs_diff(newest) as f64 > RESYNC_MS {
                // The input's clock jumped: what waits or shows belongs to
                // the old one (the next composite shows this picture).
                self.pictures.clear();
                self.shown = None;
            } else if pts <= newest {
                // Already had it (a GOP sent again on a new subscription).
                return;
            }
        }
        self.pictures.push_back((pts, picture));
        self.prune_pictures();
        while self.pictures.len() > MAX_PICTURES {
            self.pictures.pop_front();
        }
    }

    /// Takes up to `n` samples for the audio block at mix time `out_ms` into
    /// `out` (nothing while the jitter buffer fills or when none is left).
    pub fn take_audio(&mut self, out_ms: f64, n: usize, out: &mut Vec<f32>) {
        if !self.started && self.pcm.len() as f64 >= JITTER_MS * PER_MS {
            self.started = true;
        }
        if !self.started {
            return;
        }
        if let Some(front) = self.front_ms {
            self.map = Some((front - out_ms, out_ms));
        }
        let k = self.pcm.len().min(n);
        out.extend(self.pcm.range(..k));
        self.advance(k);
        if k < n {
            // Ran dry: wait for the jitter buffer again.
            self.started = false;
        }
    }

    /// The picture for the composite at mix time `out_ms`: the one nearest
    /// the sound mixed at that time (within `half_frame_ms`), or, without
    /// sound to follow, the latest. `true` when it was not shown before.
    pub fn picture(&mut self, out_ms: f64, half_frame_ms: f64) -> Option<(P, bool)> {
        let mut fresh = false;
        match self.map {
            Some((map, at)) if out_ms - at <= MAP_VALID_MS => {
                let target = out_ms + map;
                while self
                    .pictures
                    .front()
                    .is_some_and(|(pts, _)| *pts as f64 <= target + half_frame_ms)
                {
                    self.shown = self.pictures.pop_front();
                    fresh = true;
                }
                if self.shown.is_none() {
                    // The first picture: early is better than none.
                    self.shown = self.pictures.pop_front();
                    fresh = self.shown.is_some();
                }
                self.av_offset_ms = self.shown.as_ref().map(|(pts, _)| target - *pts as f64);
            }
            _ => {
                if let Some(latest) = self.pictures.pop_back() {
                    self.pictures.clear();
                    self.shown = Some(latest);
                    fresh = true;
                }
                self.av_offset_ms = None;
            }
        }
        self.shown.as_ref().map(|(_, p)| (p.clone(), fresh))
    }

    /// How far the picture of the last composite lagged the sound mixed
    /// with it, in ms (negative: ahead); `None` without sound to follow.
    pub fn av_offset_ms(&self) -> Option<f64> {
        self.av_offset_ms
    }

    /// A picture was decoded (shown or waiting).
    pub fn has_picture(&self) -> bool {
        self.shown.is_some() || !self.pictures.is_empty()
    }

    /// Audio waiting, in ms.
    #[cfg(test)]
    pub fn backlog_ms(&self) -> f64 {
        self.pcm.len() as f64 / PER_MS
    }

    fn advance(&mut self, n: usize) {
        let n = n.min(self.pcm.len());
        self.pcm.drain(..n);
        if let Some(front) = self.front_ms.as_mut() {
            *front += n as f64 / PER_MS;
        }
    }

    /// Pictures older than the sound still to mix are never shown, but
    /// the newest of them (the one on screen at that instant).
    fn prune_pictures(&mut self) {
        let Some(front) = self.front_ms else {
            return;
        };
        if self.pcm.is_empty() {
            return;
        }
        while self.pictures.len() >= 2 && self.pictures[1].0 as f64 <= front {
            self.pictures.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms of sound at `ts`, each sample valued its own time (ms).
    fn block(sync: &mut AvSync<i64>, ts: i64) {
        let pcm: Vec<f32> = (0..1920)
            .map(|i| ts as f32 + (i / 2) as f32 / 48.0)
            .collect();
        sync.push_audio(ts, &pcm);
    }

    /// An input's GOP arriving as a burst: 2 s of audio (20 ms frames) and
    /// pictures (every 40 ms), each picture's pts also its value.
    fn burst(sync: &mut AvSync<i64>, until: i64) {
        for t in (0..until).step_by(20) {
            block(sync, t);
            if t % 40 == 0 {
                sync.push_picture(t, t);
            }
        }
    }

    #[test]
    fn a_gop_burst_leaves_a_short_backlog_and_pictures_at_the_sound() {
        let mut s = AvSync::default();
        burst(&mut s, 2000);
        // Trimmed to the short backlog, not a second of audio.
        assert!(s.backlog_ms() <= MAX_BACKLOG_MS, "{}", s.backlog_ms());
        let mut out = Vec::new();
        s.take_audio(0.0, 1920, &mut out);
        // The sound taken is the burst's recent end...
        let first = out[0] as f64;
        assert!(
            (2000.0 - MAX_BACKLOG_MS..2000.0).contains(&first),
            "{first}"
        );
        // ...and the picture shown is the one at that sound.
        let (pts, fresh) = s.picture(0.0, 10.0).unwrap();
        assert!(fresh);
        // Pictures are 40 ms apart, taken up to 10 ms ahead.
        assert!(
            (pts as f64 - first).abs() <= 30.0,
            "picture {pts}, sound {first}"
        );
        assert!(s.av_offset_ms().unwrap().abs() <= 30.0);
    }

    #[test]
    fn pictures_follow_the_sound_on_a_fake_clock() {
        let mut s = AvSync::default();
        burst(&mut s, 1000);
        let mut out = Vec::new();
        // The input goes on live, the mix takes 20 ms per tick; its video
        // ticks every 66.7 ms (15 fps).
        let mut input_t = 1000;
        for tick in 0..300u32 {
            let out_ms = f64::from(tick) * 20.0;
            block(&mut s, input_t);
            if input_t % 40 == 0 {
                s.push_picture(input_t, input_t);
            }
            input_t += 20;
            out.clear();
            s.take_audio(out_ms, 1920, &mut out);
            assert_eq!(out.len(), 1920, "no underrun at tick {tick}");
            if tick % 10 == 0 {
                let sound = f64::from(out[0]);
                let (pts, _) = s.picture(out_ms, 33.0).unwrap();
                assert!(
                    (pts as f64 - sound).abs() <= 33.0,
                    "tick {tick}: picture {pts}, sound {sound}"
                );
                let off = s.av_offset_ms().unwrap();
                assert!(off.abs() <= 33.0, "{off}");
            }
        }
    }

    #[test]
    fn a_gop_sent_again_is_not_taken_twice() {
        let mut s = AvSync::default();
        burst(&mut s, 400);
        let before = s.backlog_ms();
        // A new subscription sends the same GOP again, then goes on.
        burst(&mut s, 400);
        assert_eq!(s.backlog_ms(), before);
        block(&mut s, 400);
        // The sound goes on where it was (trimmed at its front perhaps).
        let end = s.front_ms.unwrap() + s.backlog_ms();
        assert!((end - 420.0).abs() < 0.1, "{end}");
        assert!((s.pcm.back().copied().unwrap() - 419.98).abs() < 0.01);
        s.push_picture(400, 400);
        assert_eq!(s.pictures.back().map(|p| p.0), Some(400));
        // Pictures are strictly forward.
        assert!(s
            .pictures
            .iter()
            .zip(s.pictures.iter().skip(1))
            .all(|(a, b)| a.0 < b.0));
    }

    #[test]
    fn lost_audio_is_filled_and_a_clock_jump_starts_over() {
        let mut s = AvSync::default();
        block(&mut s, 0);
        block(&mut s, 60); // 40 ms lost
        assert!((s.backlog_ms() - 80.0).abs() < 0.1, "{}", s.backlog_ms());
        let mut out = Vec::new();
        s.take_audio(0.0, 1920, &mut out);
        assert_eq!(out.len(), 1920);
        block(&mut s, 50_000);
        assert!((s.backlog_ms() - 20.0).abs() < 0.1);
        // Not enough buffered: the jitter buffer fills again.
        out.clear();
        s.take_audio(20.0, 1920, &mut out);
        assert!(out.is_empty());
        assert!(s.picture(20.0, 10.0).is_none());
    }

    #[test]
    fn a_picture_clock_jump_starts_the_pictures_over() {
        let mut s = AvSync::default();
        s.push_picture(90_000, 1);
        assert_eq!(s.picture(0.0, 10.0), Some((1, true)));
        // A new publisher starting its clock again.
        s.push_picture(0, 2);
        s.push_picture(40, 3);
        assert_eq!(s.picture(40.0, 10.0), Some((3, true)));
    }

    #[test]
    fn a_video_only_input_shows_its_latest_picture() {
        let mut s = AvSync::default();
        for t in (0..2000).step_by(40) {
            s.push_picture(t, t);
        }
        assert!(s.pictures.len() <= MAX_PICTURES);
        assert_eq!(s.picture(0.0, 10.0), Some((1960, true)));
        assert_eq!(s.picture(66.0, 10.0), Some((1960, false)));
        assert_eq!(s.av_offset_ms(), None);
    }

    #[test]
    fn audio_that_stops_lets_the_pictures_go_on() {
        let mut s = AvSync::default();
        burst(&mut s, 200);
        let mut out = Vec::new();
        s.take_audio(0.0, 1920, &mut out);
        assert!(s.picture(0.0, 10.0).is_some());
        // No more sound; pictures keep coming.
        for t in (200..1000).step_by(40) {
            s.push_picture(t, t);
        }
        assert_eq!(s.picture(500.0, 10.0).map(|p| p.0), Some(960));
        assert_eq!(s.av_offset_ms(), None);
    }
}
