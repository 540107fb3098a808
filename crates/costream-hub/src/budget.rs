//! Memory bounded in bytes. Every frame a stream takes in carries a
//! [`Charge`]: its payload and, once computed, its muxed copies count
//! against the stream and the hub until the last holder (ring, GOP cache,
//! a viewer's queue) drops it. A publisher whose next frame would pass a
//! budget is cut off: the hub never grows past what the operator allows,
//! however large or fast the frames a client sends.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::stats::HubTotals;

/// Bytes held by one stream's frames, and the hub's total they add to.
#[derive(Debug)]
pub(crate) struct Meter {
    held: AtomicUsize,
    totals: Arc<HubTotals>,
}

impl Meter {
    pub(crate) fn new(totals: Arc<HubTotals>) -> Arc<Meter> {
        Arc::new(Meter {
            held: AtomicUsize::new(0),
            totals,
        })
    }

    pub(crate) fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    pub(crate) fn total_held(&self) -> usize {
        self.totals.held_bytes.load(Relaxed)
    }

    fn add(&self, n: usize) {
        self.held.fetch_add(n, Relaxed);
        self.totals.held_bytes.fetch_add(n, Relaxed);
    }

    fn sub(&self, n: usize) {
        self.held.fetch_sub(n, Relaxed);
        self.totals.held_bytes.fetch_sub(n, Relaxed);
    }
}

/// What one frame holds; given back when the frame is dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    bytes: AtomicUsize,
    meter: Arc<Meter>,
}

impl Charge {
    pub(crate) fn new(meter: &Arc<Meter>, bytes: usize) -> Charge {
        meter.add(bytes);
        Charge {
            bytes: AtomicUsize::new(bytes),
            meter: meter.clone(),
        }
    }

    /// A muxed copy of the frame was made and is kept with it.
    pub(crate) fn add(&self, bytes: usize) {
        self.bytes.fetch_add(bytes, Relaxed);
        self.meter.add(bytes);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.meter.sub(self.bytes.load(Relaxed));
    }
}

/// Memory limits of the hub, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Largest frame a publisher may send.
    pub max_frame: usize,
    /// Bytes one stream's frames may hold (ring, GOP cache, mux caches).
    pub max_stream: usize,
    /// Bytes all streams' frames may hold together.
    pub max_total: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_frame: 4 << 20,
            max_stream: 128 << 20,
            max_total: 4 << 30,
        }
    }
}

/// Why a frame was not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum PushError {
    /// Kicked, taken over for good, or the stream ended.
    #[error("the stream is no longer published by this session")]
    NotPublishing,
    #[error("a frame of {size} bytes is over the limit of {max} (hub.max_frame_bytes)")]
    FrameTooLarge { size: usize, max: usize },
    #[error("the stream holds {held} bytes, over its budget of {max} (hub.max_stream_bytes)")]
    StreamOverBudget { held: usize, max: usize },
    #[error(
        "the server's streams hold {held} bytes, over the budget of {max} (hub.max_total_bytes)"
    )]
    ServerOverBudget { held: usize, max: usize },
}

impl PushError {
    /// A short, stable name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::NotPublishing => "not_publishing",
            PushError::FrameTooLarge { .. } => "frame_too_large",
            PushError::StreamOverBudget { .. } => "stream_memory",
            PushError::ServerOverBudget { .. } => "server_memory",
        }
    }

    /// The publisher was cut off for what it sent (not merely ended).
    pub fn is_over_budget(&self) -> bool {
        !matches!(self, PushError::NotPublishing)
    }
}

impl Budget {
    /// May a frame of `size` bytes join a stream metered by `meter`?
    pub(crate) fn admit(&self, meter: &Meter, size: usize) -> Result<(), PushError> {
        if size > self.max_frame {
            return Err(PushError::FrameTooLarge {
                size,
                max: self.max_frame,
            });
        }
        let held = meter.held();
        if held.saturating_add(size) > self.max_stream {
            return Err(PushError::StreamOverBudget {
                held,
                max: self.max_stream,
            });
        }
        let total = meter.total_held();
        if total.saturating_add(size) > self.max_total {
            return Err(PushError::ServerOverBudget {
                held: total,
                max: self.max_total,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_given_back_when_frames_go() {
        let totals = Arc::new(HubTotals::default());
        let a = Meter::new(totals.clone());
        let b = Meter::new(totals.clone());
        let c1 = Charge::new(&a, 100);
        let c2 = Charge::new(&b, 50);
        c1.add(30);
        assert_eq!((a.held(), b.held(), a.total_held()), (130, 50, 180));
        drop(c1);
        assert_eq!((a.held(), a.total_held()), (0, 50));
        drop(c2);
        assert_eq!(totals.held_bytes(), 0);
    }

    #[test]
    fn each_budget_refuses_with_its_reason() {
        let totals = Arc::new(HubTotals::default());
        let m = Meter::new(totals.clone());
        let other = Meter::new(totals);
        let budget = Budget {
            max_frame: 10,
            max_stream: 25,
            max_total: 40,
        };
        assert_eq!(
            budget.admit(&m, 11).unwrap_err().reason(),
            "frame_too_large"
        );
        let _held = Charge::new(&m, 20);
        assert_eq!(budget.admit(&m, 5), Ok(()));
        assert_eq!(budget.admit(&m, 6).unwrap_err().reason(), "stream_memory");
        let _other = Charge::new(&other, 15);
        assert_eq!(
            budget.admit(&other, 6).unwrap_err().reason(),
            "server_memory"
        );
        assert_eq!(budget.admit(&other, 5), Ok(()));
    }
}
