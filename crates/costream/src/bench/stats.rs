//! Percentiles and a compact latency histogram.
//!
//! Percentiles use the nearest-rank method: the p-th percentile of n sorted
//! samples is the sample at rank ⌈p/100 · n⌉ (1-based, at least 1). So the
//! median of an even count is the lower middle sample, p0 is the minimum
//! and p100 the maximum; every reported value is an observed one.

use serde::Serialize;

/// The nearest-rank percentile `p` (0..=100) of `sorted` (ascending).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// Distribution of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Sorts `samples` in place; `None` when empty.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        samples.sort_by(f64::total_cmp);
        let p = |q| percentile(samples, q);
        Some(Summary {
            count: samples.len() as u64,
            min: p(0.0)?,
            median: p(50.0)?,
            p95: p(95.0)?,
            p99: p(99.0)?,
            max: p(100.0)?,
        })
    }
}

/// Sub-buckets per power of two: relative error ≤ 1/64 (≈1.6 %).
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this have a bucket each.
const LINEAR: u64 = 2 * SUB;
/// Values are clamped below 2^MAX_BITS (µs: about 67 s).
const MAX_BITS: u32 = 26;
const BUCKETS: usize = (LINEAR + (MAX_BITS as u64 - SUB_BITS as u64 - 1) * SUB) as usize;

/// A log-linear histogram of microsecond values (≈2.8 KiB, fixed size):
/// exact below 64 µs, then 32 buckets per power of two. Min and max are
/// exact; percentiles are bucket midpoints.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < LINEAR {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // ≥ SUB_BITS + 1
        let shift = e - SUB_BITS;
        (LINEAR + u64::from(e - SUB_BITS - 1) * SUB + ((v >> shift) - SUB)) as usize
    }

    /// The midpoint of bucket `i`.
    fn value_of(i: usize) -> u64 {
        let i = i as u64;
        if i < LINEAR {
            return i;
        }
        let octave = (i - LINEAR) / SUB; // 0 for [64, 128)
        let shift = octave + 1;
        let low = (SUB + (i - LINEAR) % SUB) << shift;
        low + (1 << shift) / 2
    }

    pub fn record(&mut self, micros: u64) {
        let v = micros.min((1 << MAX_BITS) - 1);
        let c = &mut self.counts[Self::index(v)];
        *c = c.saturating_add(1);
        self.total += 1;
        self.min = self.min.min(micros);
        self.max = self.max.max(micros);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Nearest-rank percentile in µs (bucket midpoint, kept within the
    /// exact min and max).
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0 * self.total as f64).ceil() as u64).max(1);
        // The extremes are known exactly.
        if rank == 1 {
            return Some(self.min);
        }
        if rank >= self.total {
            return Some(self.max);
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return Some(Self::value_of(i).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// The distribution in milliseconds.
    pub fn summary_ms(&self) -> Option<Summary> {
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Summary {
            count: self.total,
            min: ms(self.percentile(0.0)?),
            median: ms(self.percentile(50.0)?),
            p95: ms(self.percentile(95.0)?),
            p99: ms(self.percentile(99.0)?),
            max: ms(self.percentile(100.0)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 95.0), Some(10));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&v, 100.0), Some(10));
        assert_eq!(percentile(&v, 150.0), Some(10));
        assert_eq!(percentile(&v, -1.0), Some(1));
        assert_eq!(percentile(&[7], 50.0), Some(7));
        assert_eq!(percentile::<u32>(&[], 50.0), None);
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 99.5), Some(100));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
    }

    #[test]
    fn summary_sorts() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        let s = Summary::of(&mut v).unwrap();
        assert_eq!((s.count, s.min, s.median, s.max), (5, 1.0, 3.0, 5.0));
        assert_eq!((s.p95, s.p99), (5.0, 5.0));
        assert!(Summary::of(&mut []).is_none());
    }

    #[test]
    fn histogram_buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..1 << 20).step_by(7).chain([(1 << MAX_BITS) - 1]) {
            let i = Histogram::index(v);
            assert!(i >= last && i < BUCKETS, "{v}");
            last = i;
            let mid = Histogram::value_of(i);
            let err = mid.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 1.0 / 64.0 + 1e-9, "{v} -> {mid}");
        }
        assert_eq!(Histogram::index((1 << MAX_BITS) - 1), BUCKETS - 1);
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::new();
        assert!(h.summary_ms().is_none());
        for ms in 1..=1000u64 {
            h.record(ms * 1000);
        }
        let s = h.summary_ms().unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 1000.0);
        let close = |got: f64, want: f64| (got - want).abs() / want <= 1.0 / 64.0;
        assert!(close(s.median, 500.0), "{}", s.median);
        assert!(close(s.p95, 950.0), "{}", s.p95);
        assert!(close(s.p99, 990.0), "{}", s.p99);

        let mut other = Histogram::new();
        other.record(u64::MAX);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.percentile(100.0), Some(u64::MAX));
        assert_eq!(h.percentile(0.0), Some(1000));
    }
}
