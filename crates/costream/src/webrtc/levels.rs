//! Publishers' audio levels, from the level each RTP packet carries
//! (RFC 6464): what rooms pick their active speakers from.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_rtc::SessionId;
use parking_lot::Mutex;

/// A level older than this counts as silence (the publisher stopped).
const STALE: Duration = Duration::from_secs(1);
/// Per packet (20 ms), the held peak decays by this factor: about -0.9 dB
/// per packet, so a word keeps a speaker active for a few hundred ms.
const DECAY: f32 = 0.9;

#[derive(Clone, Default)]
pub struct AudioLevels {
    levels: Arc<Mutex<HashMap<SessionId, (f32, Instant)>>>,
}

impl AudioLevels {
    /// `dbov` as str0m reads it: 0 is the loudest, -127 silence (the sign
    /// is ignored).
    pub fn update(&self, session: SessionId, dbov: i8, now: Instant) {
        let linear = 10f32.powf(-f32::from(dbov.unsigned_abs().min(127)) / 20.0);
        let mut levels = self.levels.lock();
        let held = levels.entry(session).or_insert((0.0, now));
        held.0 = linear.max(held.0 * DECAY);
        held.1 = now;
    }

    pub fn remove(&self, session: SessionId) {
        self.levels.lock().remove(&session);
    }

    /// The held level, linear 0 to 1 (0 when unknown or stale).
    pub fn get(&self, session: SessionId, now: Instant) -> f32 {
        self.levels
            .lock()
            .get(&session)
            .filter(|(_, at)| now.duration_since(*at) < STALE)
            .map_or(0.0, |(l, _)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loud_packets_raise_the_level_and_silence_decays_it() {
        let levels = AudioLevels::default();
        let s = SessionId(1);
        let t = Instant::now();
        levels.update(s, -6, t);
        let loud = levels.get(s, t);
        assert!((loud - 0.5).abs() < 0.01, "{loud}");
        for i in 1..=20 {
            levels.update(s, -127, t + Duration::from_millis(20 * i));
        }
        let later = levels.get(s, t + Duration::from_millis(400));
        assert!(later < loud * 0.15 && later > 0.0, "{later}");
        assert_eq!(levels.get(s, t + Duration::from_secs(5)), 0.0);
        assert_eq!(levels.get(SessionId(2), t), 0.0);
    }
}
