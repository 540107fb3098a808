//! Output timestamps: anchored at an input pts, advanced by the samples produced, re-anchored
//! when the input jumps.
//!
//! Samples, not milliseconds, are counted so that 44.1 kHz input (23.2 ms frames, rounded
//! to whole ms in FLV) neither drifts nor jitters the output.

/// Input that strays further than this from where the samples say it should be is taken as
/// a discontinuity (publisher reconnect, clock reset) rather than jitter.
pub const REANCHOR_MS: i64 = 100;

#[derive(Debug)]
pub(crate) struct Timeline {
    anchor_ms: Option<i64>,
    /// Where input is expected: `in_base_ms` plus `in_samples` at `in_rate`.
    in_base_ms: i64,
    in_rate: u32,
    in_samples: u64,
    out_rate: u32,
    /// Output samples emitted since the anchor, minus the pipeline delay: the position, on
    /// the input clock, of the first sample of the next output frame.
    out_samples: i64,
}

impl Timeline {
    pub fn new(out_rate: u32) -> Self {
        Timeline {
            anchor_ms: None,
            in_base_ms: 0,
            in_rate: out_rate,
            in_samples: 0,
            out_rate,
            out_samples: 0,
        }
    }

    /// How far `pts_ms` is from where the input was expected (positive: later, a gap);
    /// `None` before the first anchor.
    pub fn drift_ms(&self, pts_ms: i64) -> Option<i64> {
        self.anchor_ms?;
        // Saturating: pts come from the network and may be anything.
        let expected = self.in_base_ms.saturating_add(
            (self.in_samples as i64 * 1000 + self.in_rate as i64 / 2) / self.in_rate as i64,
        );
        Some(pts_ms.saturating_sub(expected))
    }

    /// Starts a new segment at `pts_ms`. `delay_samples` (at the output rate) is what the
    /// codec pipeline emits before the first input sample comes out (resampler delay, encoder
    /// lookahead): the first frames are stamped that much earlier, so the audio itself plays
    /// at the input's time.
    pub fn anchor(&mut self, pts_ms: i64, delay_samples: u32) {
        self.anchor_ms = Some(pts_ms);
        self.in_base_ms = pts_ms;
        self.in_samples = 0;
        self.out_samples = -i64::from(delay_samples);
    }

    /// Accounts for `samples` (per channel) of decoded input at `rate`.
    pub fn advance_input(&mut self, samples: usize, rate: u32) {
        if rate != self.in_rate {
            // Fold what was counted at the old rate into the base before switching.
            if self.in_samples > 0 {
                self.in_base_ms = self
                    .in_base_ms
                    .saturating_add((self.in_samples as i64 * 1000) / self.in_rate as i64);
            }
            self.in_samples = 0;
            self.in_rate = rate;
        }
        self.in_samples += samples as u64;
    }

    /// The pts of the next output frame of `samples` samples, then moves past it.
    pub fn next_output(&mut self, samples: u32) -> i64 {
        let anchor = self.anchor_ms.unwrap_or(0);
        let pts = anchor.saturating_add((self.out_samples * 1000).div_euclid(self.out_rate as i64));
        self.out_samples += i64::from(samples);
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_steps_follow_samples_and_delay_shifts_start() {
        let mut t = Timeline::new(48000);
        assert_eq!(t.drift_ms(500), None);
        t.anchor(1000, 552);
        // 552 samples = 11.5 ms earlier, floored.
        assert_eq!(t.next_output(960), 988);
        assert_eq!(t.next_output(960), 1008);
        assert_eq!(t.next_output(960), 1028);
    }

    #[test]
    fn input_expectation_is_sample_exact_at_44k1() {
        let mut t = Timeline::new(48000);
        t.anchor(0, 0);
        for i in 1..=1000i64 {
            t.advance_input(1024, 44100);
            // FLV timestamps are whole ms, rounded: never more than 1 ms off.
            let flv_pts = (i * 1024 * 1000 + 22050) / 44100;
            assert!(t.drift_ms(flv_pts).unwrap().abs() <= 1);
        }
        assert_eq!(t.drift_ms(23220 + 5000), Some(5000));
    }

    #[test]
    fn extreme_pts_do_not_overflow() {
        let mut t = Timeline::new(48000);
        t.anchor(i64::MAX, 552);
        t.advance_input(960, 48000);
        assert_eq!(t.drift_ms(i64::MIN), Some(i64::MIN));
        t.next_output(960);
        assert_eq!(t.next_output(960), i64::MAX);
        t.anchor(i64::MIN, 552);
        assert_eq!(t.next_output(960), i64::MIN);
    }

    #[test]
    fn rate_change_keeps_expected_position() {
        let mut t = Timeline::new(48000);
        t.anchor(0, 0);
        t.advance_input(44100, 44100);
        t.advance_input(48000, 48000);
        assert_eq!(t.drift_ms(2000), Some(0));
    }
}
