//! Per-viewer measurements of a WHEP viewer, from str0m's events: setup
//! times, media counts, and loss as RTP sequence numbers that never made
//! it into a delivered frame. Fixed-size state; media is counted, never
//! kept.

use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_hub::avc::{annexb_nalus, sps_info};
use str0m::media::{MediaData, Mid};
use str0m::rtp::SeqNo;
use str0m::{Event, IceConnectionState};

use super::viewer::Counters;

/// A jump between consecutive video timestamps above this counts as a gap:
/// the server skipped the viewer ahead (it fell behind), or media stalled.
pub const VIDEO_GAP_MS: u64 = 1000;

/// Loss of one RTP stream, from the sequence numbers of delivered media.
///
/// str0m hands over whole frames (with the range of sequence numbers they
/// were carried in) only when every packet of the frame arrived, possibly
/// after a NACK and retransmission. So numbers between the first and the
/// last seen that belong to no delivered frame were lost for the viewer:
/// never received, or received but useless. Counting starts at the first
/// delivered frame: losses before it show as a late first frame (or one
/// that is not a keyframe), not here.
#[derive(Debug, Clone, Copy, Default)]
pub struct SeqLoss {
    first: Option<u64>,
    highest: u64,
    delivered: u64,
}

impl SeqLoss {
    pub fn on_delivered(&mut self, range: &RangeInclusive<SeqNo>) {
        let (start, end) = (**range.start(), **range.end());
        if end < start {
            return;
        }
        // Sequence numbers are extended to 64 bits by str0m, so they never
        // wrap; a range before the first one (reordering) extends the window.
        let first = self.first.get_or_insert(start);
        *first = (*first).min(start);
        self.highest = self.highest.max(end);
        self.delivered += end - start + 1;
    }

    /// Sequence numbers spanned from the first to the highest delivered.
    pub fn expected(&self) -> u64 {
        self.first.map_or(0, |f| self.highest - f + 1)
    }

    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.delivered)
    }
}

/// What one WHEP viewer observed.
#[derive(Debug)]
pub struct RtcViewerStats {
    /// When the offer POST started.
    pub started: Instant,
    pub answered_at: Option<Instant>,
    /// ICE and DTLS up (str0m's `Connected`).
    pub connected_at: Option<Instant>,
    pub first_video_at: Option<Instant>,
    pub first_video_keyframe: Option<bool>,
    /// Picture size from the SPS in the first video frame, when asked for.
    pub first_video_size: Option<(u32, u32)>,
    parse_first_sps: bool,
    /// Since when ICE has reported the connection lost (consent failed).
    pub disconnected_since: Option<Instant>,
    pub video: Mid,
    pub audio: Mid,
    pub video_frames: u64,
    pub audio_packets: u64,
    pub media_bytes: u64,
    pub video_loss: SeqLoss,
    pub audio_loss: SeqLoss,
    /// Delivered frames str0m flagged as not following on from the previous.
    pub discontinuities: u64,
    /// NACKs this viewer sent (str0m's ingress statistics, per m-line).
    video_nacks: u64,
    audio_nacks: u64,
    last_video_us: Option<u64>,
    pub video_gaps: u32,
    pub max_video_gap_ms: u64,
    counters: Option<Arc<Counters>>,
}

impl RtcViewerStats {
    pub fn new(
        video: Mid,
        audio: Mid,
        parse_first_sps: bool,
        counters: Option<Arc<Counters>>,
    ) -> Self {
        RtcViewerStats {
            started: Instant::now(),
            answered_at: None,
            connected_at: None,
            first_video_at: None,
            first_video_keyframe: None,
            first_video_size: None,
            parse_first_sps,
            disconnected_since: None,
            video,
            audio,
            video_frames: 0,
            audio_packets: 0,
            media_bytes: 0,
            video_loss: SeqLoss::default(),
            audio_loss: SeqLoss::default(),
            discontinuities: 0,
            video_nacks: 0,
            audio_nacks: 0,
            last_video_us: None,
            video_gaps: 0,
            max_video_gap_ms: 0,
            counters,
        }
    }

    pub fn nacks(&self) -> u64 {
        self.video_nacks + self.audio_nacks
    }

    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected_at.get_or_insert_with(Instant::now);
                self.count(|c| &c.connected);
            }
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Disconnected => {
                    self.disconnected_since.get_or_insert_with(Instant::now);
                }
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.disconnected_since = None;
                }
                _ => {}
            },
            Event::MediaData(data) => self.on_media(&data),
            Event::MediaIngressStats(s) => {
                // Cumulative per m-line: the latest value is the total.
                if s.mid == self.video {
                    self.video_nacks = s.nacks;
                } else if s.mid == self.audio {
                    self.audio_nacks = s.nacks;
                }
            }
            _ => {}
        }
    }

    fn on_media(&mut self, data: &MediaData) {
        self.media_bytes += data.data.len() as u64;
        if let Some(c) = &self.counters {
            c.bytes.fetch_add(data.data.len() as u64, Ordering::Relaxed);
        }
        if !data.contiguous {
            self.discontinuities += 1;
        }
        if data.mid == self.audio {
            self.audio_packets += 1;
            self.audio_loss.on_delivered(&data.seq_range);
            return;
        }
        if data.mid != self.video {
            return;
        }
        self.video_frames += 1;
        self.video_loss.on_delivered(&data.seq_range);
        let us = data.time.as_micros();
        if let Some(last) = self.last_video_us {
            let gap_ms = us.saturating_sub(last) / 1000;
            self.max_video_gap_ms = self.max_video_gap_ms.max(gap_ms);
            if gap_ms > VIDEO_GAP_MS {
                self.video_gaps += 1;
            }
        }
        self.last_video_us = Some(us);
        if self.first_video_at.is_none() {
            self.first_video_at = Some(data.network_time);
            self.count(|c| &c.with_video);
            self.first_video_keyframe = Some(is_idr(&data.data));
            if self.parse_first_sps {
                self.first_video_size = picture_size(&data.data);
            }
        }
    }

    fn count(&self, which: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) {
        if let Some(c) = &self.counters {
            which(c).fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn since_start(&self, at: Option<Instant>) -> Option<Duration> {
        at.map(|t| t.saturating_duration_since(self.started))
    }
}

/// Rates need at least this much time to mean anything.
const MIN_RATE_WINDOW: Duration = Duration::from_millis(500);

/// What one viewer measured, for the report.
#[derive(Debug, Clone, Default)]
pub struct RtcViewerSummary {
    /// The server answered the offer with `201 Created`.
    pub answered: bool,
    /// ICE and DTLS came up.
    pub connected: bool,
    pub error: Option<String>,
    /// From the start of the offer POST.
    pub answer: Option<Duration>,
    pub connect: Option<Duration>,
    pub first_video: Option<Duration>,
    pub first_video_keyframe: Option<bool>,
    pub video_frames: u64,
    pub audio_packets: u64,
    /// Per second from connected to the end, when that lasted ≥ 0.5 s.
    pub video_fps: Option<f64>,
    pub audio_pps: Option<f64>,
    /// UDP payload bytes received (SRTP, RTCP, STUN and DTLS included).
    pub bitrate_bps: Option<f64>,
    pub udp_bytes: u64,
    pub packets_expected: u64,
    pub packets_lost: u64,
    pub nacks: u64,
    pub discontinuities: u64,
    pub video_gaps: u32,
    pub max_video_gap_ms: u64,
}

impl RtcViewerSummary {
    /// A viewer that never got as far as sending its offer.
    pub fn failed(error: String) -> Self {
        RtcViewerSummary {
            error: Some(error),
            ..Self::default()
        }
    }

    /// Lost over expected RTP packets, in percent; `None` without media.
    pub fn loss_percent(&self) -> Option<f64> {
        (self.packets_expected > 0)
            .then(|| self.packets_lost as f64 * 100.0 / self.packets_expected as f64)
    }
}

impl RtcViewerStats {
    pub fn finish(
        &self,
        ended: Instant,
        udp_bytes: u64,
        error: Option<String>,
    ) -> RtcViewerSummary {
        let window = self
            .connected_at
            .map(|c| ended.saturating_duration_since(c))
            .filter(|w| *w >= MIN_RATE_WINDOW);
        let per_second = |n: f64| window.map(|w| n / w.as_secs_f64());
        RtcViewerSummary {
            answered: self.answered_at.is_some(),
            connected: self.connected_at.is_some(),
            error,
            answer: self.since_start(self.answered_at),
            connect: self.since_start(self.connected_at),
            first_video: self.since_start(self.first_video_at),
            first_video_keyframe: self.first_video_keyframe,
            video_frames: self.video_frames,
            audio_packets: self.audio_packets,
            video_fps: per_second(self.video_frames as f64),
            audio_pps: per_second(self.audio_packets as f64),
            bitrate_bps: per_second(udp_bytes as f64 * 8.0),
            udp_bytes,
            packets_expected: self.video_loss.expected() + self.audio_loss.expected(),
            packets_lost: self.video_loss.lost() + self.audio_loss.lost(),
            nacks: self.nacks(),
            discontinuities: self.discontinuities,
            video_gaps: self.video_gaps,
            max_video_gap_ms: self.max_video_gap_ms,
        }
    }
}

/// Whether an Annex B access unit holds an IDR slice.
fn is_idr(au: &[u8]) -> bool {
    annexb_nalus(au).any(|nal| nal.first().map(|h| h & 0x1f) == Some(5))
}

/// Width and height from the first SPS in an Annex B access unit.
fn picture_size(au: &[u8]) -> Option<(u32, u32)> {
    let sps = annexb_nalus(au).find(|nal| nal.first().map(|h| h & 0x1f) == Some(7))?;
    let info = sps_info(sps).ok()?;
    Some((info.width, info.height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::h264_synth::access_unit;

    fn range(a: u64, b: u64) -> RangeInclusive<SeqNo> {
        SeqNo::from(a)..=SeqNo::from(b)
    }

    #[test]
    fn loss_counts_numbers_in_no_delivered_frame() {
        let mut l = SeqLoss::default();
        assert_eq!((l.expected(), l.lost()), (0, 0));
        l.on_delivered(&range(100, 104));
        l.on_delivered(&range(105, 105));
        assert_eq!((l.expected(), l.lost()), (6, 0));
        // 106..=109 never delivered (a frame with a lost packet).
        l.on_delivered(&range(110, 112));
        assert_eq!((l.expected(), l.lost()), (13, 4));
        // Reordered older frame.
        l.on_delivered(&range(98, 99));
        assert_eq!((l.expected(), l.lost()), (15, 4));
        // Nonsense ranges are ignored.
        l.on_delivered(&range(200, 150));
        assert_eq!(l.expected(), 15);
    }

    #[test]
    fn keyframes_and_picture_size() {
        let idr = access_unit(true, 500, 0);
        assert!(is_idr(&idr));
        assert_eq!(picture_size(&idr), Some((640, 360)));
        let p = access_unit(false, 500, 0);
        assert!(!is_idr(&p));
        assert_eq!(picture_size(&p), None);
        assert!(!is_idr(&[0, 0, 1]));
    }
}
