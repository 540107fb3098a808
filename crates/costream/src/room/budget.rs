//! The per-subscriber bandwidth budget: when the publications a
//! participant receives add up to more than the budget, the video of the
//! least important ones is paused (their audio keeps flowing).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use costream_hub::{Hub, StreamKey};

/// What a paused publication still costs: its audio.
pub const AUDIO_BPS: u64 = 64_000;
/// RTP, SRTP and RTCP on top of the media bytes the hub counts.
const OVERHEAD_PERCENT: u64 = 8;
/// Rates are measured over at least this long.
const WINDOW: Duration = Duration::from_secs(1);

/// One publication a subscriber receives.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// Lower is more important (hosts first, then who published first).
    pub rank: (u8, u64),
    pub bps: u64,
    /// Its video is paused now: resuming it needs some headroom, so that a
    /// rate near the limit does not pause and resume it over and over.
    pub paused: bool,
}

/// Headroom, in percent, a paused video needs to be resumed.
const RESUME_HEADROOM: u64 = 15;

/// Which candidates keep their video: in order of importance, as many as
/// fit in the budget; the most important always keeps its video.
pub fn choose(budget_bps: u64, candidates: &[Candidate]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| candidates[i].rank);
    let mut keep = vec![false; candidates.len()];
    // Every paused publication still costs its audio.
    let mut used = AUDIO_BPS * candidates.len() as u64;
    for (n, &i) in order.iter().enumerate() {
        let c = candidates[i];
        let extra = (c.bps * (100 + OVERHEAD_PERCENT) / 100).saturating_sub(AUDIO_BPS);
        let needed = if c.paused {
            extra * (100 + RESUME_HEADROOM) / 100
        } else {
            extra
        };
        if n > 0 && used + needed > budget_bps {
            break;
        }
        keep[i] = true;
        used += extra;
    }
    keep
}

/// Media bitrates of hub streams, from their byte counters.
#[derive(Default)]
pub struct Rates {
    samples: HashMap<StreamKey, (u64, Instant)>,
    rates: HashMap<StreamKey, u64>,
}

impl Rates {
    /// Updates the rates of `keys` (forgetting other streams).
    pub fn sample(&mut self, hub: &Hub, keys: &[StreamKey], now: Instant) {
        self.samples.retain(|k, _| keys.contains(k));
        self.rates.retain(|k, _| keys.contains(k));
        for key in keys {
            let Some(stream) = hub.stream(key) else {
                continue;
            };
            let bytes = stream.stats.bytes_in();
            match self.samples.get(key) {
                Some(&(then, at)) if now.duration_since(at) >= WINDOW => {
                    let secs = now.duration_since(at).as_secs_f64();
                    let bps = (bytes.saturating_sub(then) as f64 * 8.0 / secs) as u64;
                    self.rates.insert(key.clone(), bps);
                    self.samples.insert(key.clone(), (bytes, now));
                }
                Some(_) => {}
                None => {
                    self.samples.insert(key.clone(), (bytes, now));
                }
            }
        }
    }

    /// bits/s, once measured.
    pub fn get(&self, key: &StreamKey) -> Option<u64> {
        self.rates.get(key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rank: u8, seq: u64, kbps: u64) -> Candidate {
        Candidate {
            rank: (rank, seq),
            bps: kbps * 1000,
            paused: false,
        }
    }

    #[test]
    fn least_important_video_is_paused_first() {
        // Four 800 kbps guests, host first: two fit in 2 Mbps with the
        // others' audio.
        let four = [c(1, 3, 800), c(0, 9, 800), c(1, 1, 800), c(1, 2, 800)];
        assert_eq!(choose(2_000_000, &four), vec![false, true, true, false]);
        // Four of 1 Mbps: only the host's video fits.
        let four = four.map(|x| Candidate {
            bps: 1_000_000,
            ..x
        });
        assert_eq!(choose(2_000_000, &four), vec![false, true, false, false]);
        // Everything fits.
        assert_eq!(
            choose(2_000_000, &[c(1, 1, 500), c(1, 2, 500)]),
            vec![true, true]
        );
        // Strict order: a small, less important one waits behind a large one.
        assert_eq!(
            choose(2_000_000, &[c(0, 1, 1500), c(1, 2, 900), c(1, 3, 200)]),
            vec![true, false, false]
        );
        // The most important keeps its video even over budget.
        assert_eq!(choose(1_000_000, &[c(0, 1, 3000)]), vec![true]);
        // A paused video resumes only with headroom.
        let near = [
            c(0, 1, 800),
            Candidate {
                paused: true,
                ..c(1, 2, 1000)
            },
        ];
        assert_eq!(choose(2_000_000, &near), vec![true, false]);
        let near = [c(0, 1, 800), c(1, 2, 1000)];
        assert_eq!(choose(2_000_000, &near), vec![true, true]);
    }
}
