//! A token bucket per signaling connection (sans-IO: the caller passes the
//! time). Control messages (`update`, `request`, `invite`, `mute`, …) each
//! take a token; a client that sends faster than the refill is refused
//! with `rate_limited`, and one that keeps at it is disconnected, so one
//! connection cannot keep the room's owner busy for everybody.

use std::time::Instant;

/// Messages per second a connection may keep up.
pub const RATE: f64 = 10.0;
/// How many it may send at once.
pub const BURST: f64 = 30.0;
/// Refusals in a row after which the connection is closed.
pub const MAX_REFUSED: u32 = 50;

pub struct Bucket {
    tokens: f64,
    at: Instant,
    refused: u32,
}

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Take,
    Refuse,
    /// Refused too often: close the connection.
    Close,
}

impl Bucket {
    pub fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: BURST,
            at: now,
            refused: 0,
        }
    }

    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            return Verdict::Take;
        }
        self.refused += 1;
        if self.refused >= MAX_REFUSED {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate_then_the_door() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        for _ in 0..BURST as usize {
            assert_eq!(b.take(t0), Verdict::Take);
        }
        assert_eq!(b.take(t0), Verdict::Refuse);
        // A second later, RATE more.
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..RATE as usize {
            assert_eq!(b.take(t1), Verdict::Take);
        }
        assert_eq!(b.take(t1), Verdict::Refuse);
        // A client that keeps hammering is shown the door.
        let mut last = Verdict::Refuse;
        for _ in 0..MAX_REFUSED {
            last = b.take(t1);
        }
        assert_eq!(last, Verdict::Close);
        // A well-paced client never is.
        let mut paced = Bucket::new(t0);
        for i in 0..1000u64 {
            let at = t0 + Duration::from_millis(i * 100);
            assert_eq!(paced.take(at), Verdict::Take, "message {i}");
        }
    }
}
