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
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Lower is more important (hosts first, then who published first).
    pub rank: (u8, u64),
    /// The bitrates it can be received at, best first: its simulcast
    /// encodings, or just the one stream.
    pub options: Vec<u64>,
    /// The option received now; `None` while its video is paused. Moving
    /// up (or resuming) needs some headroom, so that a rate near the limit
    /// does not switch back and forth.
    pub current: Option<usize>,
}

/// Headroom, in percent, moving up to a larger option needs.
const UPGRADE_HEADROOM: u64 = 15;

/// What each candidate gets (`None`: its video is paused). First, in
/// order of importance, each gets its smallest option while that fits (the
/// most important always does; once one does not fit, it and every less
/// important one are paused); then, in the same order, each moves up to
/// the best option that still fits. So everybody is seen before anybody is
/// seen sharp.
pub fn choose(budget_bps: u64, candidates: &[Candidate]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&i| candidates[i].rank);
    let extra = |bps: u64| (bps * (100 + OVERHEAD_PERCENT) / 100).saturating_sub(AUDIO_BPS);
    // Moving up from `current` to option `j` needs headroom.
    let needed = |c: &Candidate, j: usize| {
        let e = extra(c.options[j]);
        if c.current.is_none_or(|cur| j < cur) {
            e * (100 + UPGRADE_HEADROOM) / 100
        } else {
            e
        }
    };
    let mut got = vec![None; candidates.len()];
    // Every paused publication still costs its audio.
    let mut used = AUDIO_BPS * candidates.len() as u64;
    for (n, &i) in order.iter().enumerate() {
        let c = &candidates[i];
        let Some(lowest) = c.options.len().checked_sub(1) else {
            break;
        };
        if n > 0 && used + needed(c, lowest) > budget_bps {
            break;
        }
        got[i] = Some(lowest);
        used += extra(c.options[lowest]);
    }
    for &i in &order {
        let c = &candidates[i];
        let Some(at) = got[i] else {
            break;
        };
        let base = used - extra(c.options[at]);
        if let Some(j) = (0..at).find(|&j| base + needed(c, j) <= budget_bps) {
            got[i] = Some(j);
            used = base + extra(c.options[j]);
        }
    }
    got
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

    /// The measured simulcast encodings of a publication (`key~sim-RID`).
    pub fn layers_of(&self, key: &StreamKey) -> Vec<(StreamKey, u64)> {
        let prefix = format!("{}~sim-", key.stream());
        self.rates
            .iter()
            .filter(|(k, _)| k.app() == key.app() && k.stream().starts_with(&prefix))
            .map(|(k, bps)| (k.clone(), *bps))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(rank: u8, seq: u64, kbps: u64) -> Candidate {
        Candidate {
            rank: (rank, seq),
            options: vec![kbps * 1000],
            current: Some(0),
        }
    }

    fn on(got: Vec<Option<usize>>) -> Vec<bool> {
        got.into_iter().map(|g| g.is_some()).collect()
    }

    #[test]
    fn least_important_video_is_paused_first() {
        // Four 800 kbps guests, host first: two fit in 2 Mbps with the
        // others' audio.
        let four = [c(1, 3, 800), c(0, 9, 800), c(1, 1, 800), c(1, 2, 800)];
        assert_eq!(on(choose(2_000_000, &four)), vec![false, true, true, false]);
        // Four of 1 Mbps: only the host's video fits.
        let four = four.map(|x| Candidate {
            options: vec![1_000_000],
            ..x
        });
        assert_eq!(
            on(choose(2_000_000, &four)),
            vec![false, true, false, false]
        );
        // Everything fits.
        assert_eq!(
            on(choose(2_000_000, &[c(1, 1, 500), c(1, 2, 500)])),
            vec![true, true]
        );
        // Strict order: a small, less important one waits behind a large one.
        assert_eq!(
            on(choose(
                2_000_000,
                &[c(0, 1, 1500), c(1, 2, 900), c(1, 3, 200)]
            )),
            vec![true, false, false]
        );
        // The most important keeps its video even over budget.
        assert_eq!(on(choose(1_000_000, &[c(0, 1, 3000)])), vec![true]);
        // A paused video resumes only with headroom.
        let near = [
            c(0, 1, 800),
            Candidate {
                current: None,
                ..c(1, 2, 1000)
            },
        ];
        assert_eq!(on(choose(2_000_000, &near)), vec![true, false]);
        let near = [c(0, 1, 800), c(1, 2, 1000)];
        assert_eq!(on(choose(2_000_000, &near)), vec![true, true]);
    }

    #[test]
    fn simulcast_encodings_are_chosen_before_pausing() {
        // Three publishers with 1.5 M / 500 k / 150 k encodings.
        let layered = |rank: u8, seq: u64| Candidate {
            rank: (rank, seq),
            options: vec![1_500_000, 500_000, 150_000],
            current: Some(0),
        };
        // 2 Mbps: the host keeps its best; the next two get what fits.
        let got = choose(2_000_000, &[layered(1, 2), layered(0, 1), layered(1, 3)]);
        assert_eq!(got, vec![Some(2), Some(0), Some(2)]);
        // 1 Mbps: everyone at the smallest but the host at the middle.
        let got = choose(1_000_000, &[layered(1, 2), layered(0, 1), layered(1, 3)]);
        assert_eq!(got, vec![Some(2), Some(1), Some(2)]);
        // Moving up needs headroom; staying does not.
        let one = |current| Candidate {
            current,
            ..layered(0, 1)
        };
        assert_eq!(choose(600_000, &[one(Some(1))]), vec![Some(1)]);
        assert_eq!(choose(600_000, &[one(Some(2))]), vec![Some(2)]);
    }
}
