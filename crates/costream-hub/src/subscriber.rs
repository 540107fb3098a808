//! The viewing side of a stream: the cached start (configs + GOP), then the
//! live ring. A viewer that falls behind drops frames here, never upstream.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::{self, error::TryRecvError};

use crate::frame::{Frame, FrameKind};
use crate::stats::Protocol;
use crate::stream::Stream;

pub struct Subscriber {
    stream: Arc<Stream>,
    protocol: Protocol,
    backlog: VecDeque<Arc<Frame>>,
    rx: broadcast::Receiver<Arc<Frame>>,
    max_lag_ms: i64,
    /// Dropping everything until the next keyframe.
    skipping: bool,
    has_video: bool,
    dropped: u64,
    skips: u64,
    coalesce: Duration,
    /// Woken for each audio frame, not once per picture.
    audio_wakes: bool,
    /// Bytes of the cached GOP still to go out at once; past them the rest
    /// is paced (see [`crate::HubConfig::gop_burst_bytes`]).
    burst_left: usize,
    pace: Option<Pace>,
}

/// The paced part of a cached GOP goes at this multiple of real time.
const PACE_SPEED: i64 = 4;

/// Where the paced part of the cached GOP began.
#[derive(Debug, Clone, Copy)]
struct Pace {
    dts: i64,
    at: tokio::time::Instant,
    /// When the frame at the front of the backlog may go.
    next: Option<tokio::time::Instant>,
}

/// What [`Subscriber::try_recv`] found.
#[derive(Debug)]
pub enum TryRecv {
    Frame(Arc<Frame>),
    Empty,
    Ended,
}

impl Subscriber {
    pub(crate) fn new(
        stream: Arc<Stream>,
        protocol: Protocol,
        config: &crate::HubConfig,
    ) -> Option<Self> {
        let st = stream.state.lock();
        let rx = st.tx.as_ref()?.subscribe();
        let mut backlog = VecDeque::with_capacity(st.gop.len() + 2);
        backlog.extend(st.video_config.iter().cloned());
        backlog.extend(st.audio_config.iter().cloned());
        backlog.extend(st.gop.iter().cloned());
        let has_video = st.video_config.is_some();
        // Without a cached keyframe, video must wait for the next one.
        let skipping = has_video && !st.gop.iter().any(|f| f.keyframe);
        drop(st);
        if skipping {
            stream.stats.keyframe_wanted.store(true, Relaxed);
        }
        stream.stats.viewer_joined(protocol);
        Some(Subscriber {
            stream,
            protocol,
            backlog,
            rx,
            max_lag_ms: config.max_viewer_lag.as_millis() as i64,
            skipping,
            has_video,
            dropped: 0,
            skips: 0,
            coalesce: Duration::ZERO,
            audio_wakes: false,
            burst_left: config.gop_burst_bytes,
            pace: None,
        })
    }

    /// Frames still waiting in the cached start (configs and GOP).
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Frames this viewer missed because it fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Times this viewer fell behind and was moved to a later keyframe.
    pub fn skips(&self) -> u64 {
        self.skips
    }

    /// The next frame; `None` when the stream has ended.
    pub async fn recv(&mut self) -> Option<Arc<Frame>> {
        let stream = self.stream.clone();
        loop {
            // Registered before looking, so a wake between the look and
            // the wait is not lost.
            let notified = stream.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let audio = stream.audio_wake.notified();
            tokio::pin!(audio);
            if self.audio_wakes {
                audio.as_mut().enable();
            }
            match self.try_recv() {
                TryRecv::Frame(f) => return Some(f),
                TryRecv::Ended => return None,
                TryRecv::Empty if self.paced_until().is_some() => {
                    if let Some(at) = self.paced_until() {
                        tokio::time::sleep_until(at).await;
                    }
                }
                TryRecv::Empty if self.audio_wakes => {
                    tokio::select! {
                        _ = notified => {}
                        _ = audio => {}
                    }
                }
                TryRecv::Empty => {
                    notified.await;
                    if !self.coalesce.is_zero() {
                        // Let a few more frames queue so they go out in one write.
                        tokio::time::sleep(self.coalesce).await;
                    }
                }
            }
        }
    }

    /// Wake for every audio frame. By default audio waits for the next
    /// picture (one write per picture for every viewer); a real-time
    /// conversation cannot afford those tens of milliseconds.
    pub fn wake_for_audio(&mut self) {
        self.audio_wakes = true;
    }

    /// After the queue runs dry, wait this long past the next wake before
    /// handing out frames: fewer, larger writes for more latency.
    pub fn set_coalesce(&mut self, delay: Duration) {
        self.coalesce = delay;
    }

    /// The next frame if one is ready, without waiting.
    pub fn try_recv(&mut self) -> TryRecv {
        loop {
            if let Some(f) = self.backlog.pop_front() {
                if !self.burst_allows(&f) {
                    self.backlog.push_front(f);
                    return TryRecv::Empty;
                }
                if self.admit_cached(&f) {
                    return TryRecv::Frame(f);
                }
                continue;
            }
            match self.rx.try_recv() {
                Ok(f) => {
                    if self.admit(&f) {
                        return TryRecv::Frame(f);
                    }
                }
                Err(TryRecvError::Lagged(n)) => self.fell_behind(n),
                Err(TryRecvError::Empty) => return TryRecv::Empty,
                Err(TryRecvError::Closed) => return TryRecv::Ended,
            }
        }
    }

    /// Waits for at least one frame, then takes what else is ready, up to
    /// `max` in all, so the caller can write them with one vectored write.
    /// Returns false when the stream has ended and nothing was taken.
    pub async fn recv_batch(&mut self, out: &mut Vec<Arc<Frame>>, max: usize) -> bool {
        match self.recv().await {
            Some(f) => out.push(f),
            None => return false,
        }
        while out.len() < max {
            match self.try_recv() {
                TryRecv::Frame(f) => out.push(f),
                TryRecv::Empty | TryRecv::Ended => break,
            }
        }
        true
    }

    /// While the cached GOP is paced: when its next frame may go.
    fn paced_until(&self) -> Option<tokio::time::Instant> {
        self.pace.and_then(|p| p.next)
    }

    /// The first `gop_burst_bytes` of the cached GOP go at once; after
    /// them, each cached frame waits until its time at [`PACE_SPEED`]
    /// times real time since the first paced one.
    fn burst_allows(&mut self, f: &Frame) -> bool {
        if f.kind.is_config() {
            return true;
        }
        if let Some(left) = self.burst_left.checked_sub(f.data.len()) {
            if self.pace.is_none() {
                self.burst_left = left;
                return true;
            }
        }
        let now = tokio::time::Instant::now();
        let pace = self.pace.get_or_insert(Pace {
            dts: f.dts,
            at: now,
            next: None,
        });
        let due_ms = (f.dts - pace.dts).max(0) / PACE_SPEED;
        let due = pace.at + Duration::from_millis(due_ms as u64);
        if due <= now {
            pace.next = None;
            true
        } else {
            pace.next = Some(due);
            false
        }
    }

    fn fell_behind(&mut self, missed: u64) {
        self.count_drop(missed);
        self.start_skip();
    }

    fn start_skip(&mut self) {
        self.stream.stats.keyframe_wanted.store(true, Relaxed);
        if !self.skipping {
            self.skipping = true;
            self.skips += 1;
            self.stream.stats.viewer_skips.fetch_add(1, Relaxed);
            self.stream.stats.totals.viewer_skips.fetch_add(1, Relaxed);
            tracing::debug!(stream = %self.stream.key(), protocol = self.protocol.name(), "viewer fell behind, skipping to the next keyframe");
        }
    }

    fn count_drop(&mut self, n: u64) {
        self.dropped += n;
        self.stream.stats.frames_dropped.fetch_add(n, Relaxed);
        self.stream
            .stats
            .totals
            .frames_dropped
            .fetch_add(n, Relaxed);
    }

    /// Cached frames were chosen at subscribe time; only the no-keyframe
    /// case drops any.
    fn admit_cached(&mut self, f: &Frame) -> bool {
        if f.kind.is_config() || !self.skipping {
            return true;
        }
        if f.keyframe {
            self.skipping = false;
            return true;
        }
        false
    }

    fn admit(&mut self, f: &Frame) -> bool {
        match f.kind {
            FrameKind::VideoConfig => {
                self.has_video = true;
                return true;
            }
            FrameKind::AudioConfig => return true,
            _ => {}
        }
        if self.has_video {
            let lag = self.stream.stats.live_edge_dts.load(Relaxed) - f.dts;
            if lag > self.max_lag_ms {
                self.start_skip();
            }
            if self.skipping {
                // A keyframe ends the skip only if it is close to the live edge.
                if f.keyframe && lag <= self.max_lag_ms {
                    self.skipping = false;
                    return true;
                }
                // Audio waits for video too, so it never runs ahead of the picture.
                self.count_drop(1);
                return false;
            }
            if f.disposable && lag > self.max_lag_ms / 2 {
                self.count_drop(1);
                return false;
            }
        } else if self.skipping {
            self.skipping = false;
        }
        true
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stream.stats.viewer_left(self.protocol);
    }
}
