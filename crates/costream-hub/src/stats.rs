//! Per-stream counters, kept as atomics so the hot path never takes a lock
//! to count and the API/metrics read them without disturbing anyone.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Who receives a stream. Used to count viewers per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Rtmp,
    Flv,
    Hls,
    WebRtc,
    /// A server-side consumer (HLS segmenter, bridge, mixer).
    Internal,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Rtmp,
        Protocol::Flv,
        Protocol::Hls,
        Protocol::WebRtc,
        Protocol::Internal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Flv => "flv",
            Protocol::Hls => "hls",
            Protocol::WebRtc => "webrtc",
            Protocol::Internal => "internal",
        }
    }
}

/// Counters over all streams of a hub, for metrics that must never go down.
#[derive(Debug, Default)]
pub struct HubTotals {
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) viewer_skips: AtomicU64,
    /// Bytes all streams' frames hold now (payloads and muxed copies).
    pub(crate) held_bytes: std::sync::atomic::AtomicUsize,
}

impl HubTotals {
    pub fn held_bytes(&self) -> usize {
        self.held_bytes.load(Relaxed)
    }
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Relaxed)
    }
    pub fn viewer_skips(&self) -> u64 {
        self.viewer_skips.load(Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct StreamStats {
    pub(crate) viewers: [AtomicU64; 5],
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    /// Frames not delivered to viewers that fell behind.
    pub(crate) frames_dropped: AtomicU64,
    /// How many times a viewer fell behind and was skipped to a keyframe.
    pub(crate) viewer_skips: AtomicU64,
    /// Newest dts pushed, to measure how far behind a viewer is.
    pub(crate) live_edge_dts: AtomicI64,
    /// A viewer waits for a keyframe (it joined without one cached, or fell
    /// behind): a publisher that can make one on demand (WebRTC) should.
    pub keyframe_wanted: AtomicBool,
    pub(crate) totals: Arc<HubTotals>,
}

impl StreamStats {
    pub fn viewers(&self, p: Protocol) -> u64 {
        self.viewers[p as usize].load(Relaxed)
    }
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Relaxed)
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Relaxed)
    }
    pub fn frames_dropped(&self) -> u64 {
        self.frames_dropped.load(Relaxed)
    }
    pub fn viewer_skips(&self) -> u64 {
        self.viewer_skips.load(Relaxed)
    }
    /// Viewers that are people (everything but internal consumers).
    pub fn total_viewers(&self) -> u64 {
        Protocol::ALL
            .iter()
            .filter(|p| **p != Protocol::Internal)
            .map(|p| self.viewers(*p))
            .sum()
    }
    /// Adjusts the viewer count of a protocol whose viewers are not
    /// subscribers (HLS clients are stateless HTTP requests).
    pub fn set_viewers(&self, p: Protocol, n: u64) {
        self.viewers[p as usize].store(n, Relaxed);
    }
    pub(crate) fn viewer_joined(&self, p: Protocol) {
        self.viewers[p as usize].fetch_add(1, Relaxed);
    }
    pub(crate) fn viewer_left(&self, p: Protocol) {
        self.viewers[p as usize].fetch_sub(1, Relaxed);
    }
}
