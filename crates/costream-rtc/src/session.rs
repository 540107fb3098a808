//! One WebRTC session: a str0m `Rtc` plus what the host needs to route to it,
//! time it out, and translate its events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use str0m::media::{KeyframeRequestKind as S0Keyframe, MediaData};
use str0m::stats::PeerStats;
use str0m::{Event, IceConnectionState, Output, Rtc};

use crate::config::Timeouts;
use crate::event::{
    CloseReason, HostOutput, KeyframeRequestKind, MediaFrame, SenderClock, SessionEvent,
    SessionStats,
};
use crate::offer_lines::OfferLines;
use crate::sdp::Tracks;
use crate::types::{Codec, Direction, SessionId, Transport};

/// How long ICE may stay disconnected (consent lost) before the session ends.
/// ICE recovers from short outages by itself (a client switching networks),
/// so a disconnect is not final at once.
const ICE_DISCONNECT_GRACE: Duration = Duration::from_secs(5);

/// Remote addresses remembered per session. A client normally uses one; a few
/// more cover candidate changes. Bounded so that one client cannot grow the
/// host's address table.
pub(crate) const MAX_ADDRS_PER_SESSION: usize = 4;

pub(crate) struct Session {
    pub id: SessionId,
    pub direction: Direction,
    pub rtc: Rtc,
    /// Our ICE ufrag: the routing key of connectivity checks.
    pub ufrag: String,
    pub tracks: Tracks,
    /// Remote addresses whose packets are routed here, oldest first.
    pub addrs: Vec<(Transport, SocketAddr)>,
    /// Last datagram accepted from the client (or the creation time).
    pub last_recv: Instant,
    pub created: Instant,
    /// str0m's next timeout.
    pub rtc_timeout: Instant,
    disconnected_since: Option<Instant>,
    pub stats: SessionStats,
    last_peer_stats: Option<PeerStats>,
    /// Sessions this side offers: the offer waiting for its answer.
    pub pending_offer: Option<str0m::change::SdpPendingOffer>,
    /// Sessions this side offers: their m-lines.
    pub offer_lines: OfferLines,
    /// Candidates trickled by the client so far.
    pub remote_candidates: usize,
}

impl Session {
    pub fn new(id: SessionId, direction: Direction, rtc: Rtc, ufrag: String, now: Instant) -> Self {
        Session {
            id,
            direction,
            rtc,
            ufrag,
            tracks: Tracks::default(),
            addrs: Vec::new(),
            last_recv: now,
            created: now,
            rtc_timeout: now,
            disconnected_since: None,
            stats: SessionStats::default(),
            pending_offer: None,
            offer_lines: OfferLines::default(),
            remote_candidates: 0,
            last_peer_stats: None,
        }
    }

    /// Drains str0m's output until its next timeout, as str0m requires after
    /// every input or write. Transmits and translated events go to `out`.
    /// Returns why the session must end, if it must.
    pub fn drain(&mut self, now: Instant, out: &mut VecDeque<HostOutput>) -> Option<CloseReason> {
        let mut close = None;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => out.push_back(HostOutput::Transmit {
                    transport: Transport::from_str0m(t.proto),
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
                Ok(Output::Event(e)) => {
                    if let Some(reason) = self.on_event(e, now, out) {
                        close.get_or_insert(reason);
                    }
                }
                Err(e) => {
                    close.get_or_insert(CloseReason::Error(e.to_string()));
                    break;
                }
            }
        }
        if close.is_none() && !self.rtc.is_alive() {
            close = Some(CloseReason::PeerClosed);
        }
        close
    }

    fn on_event(
        &mut self,
        e: Event,
        now: Instant,
        out: &mut VecDeque<HostOutput>,
    ) -> Option<CloseReason> {
        let event = match e {
            Event::Connected => {
                self.stats.connected = true;
                SessionEvent::Connected
            }
            Event::IceConnectionStateChange(state) => {
                match state {
                    // Before the first connection the session timeout
                    // governs: a client may take a while to start ICE.
                    IceConnectionState::Disconnected if self.stats.connected => {
                        self.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        self.disconnected_since = None;
                    }
                    _ => {}
                }
                return None;
            }
            Event::MediaData(d) => SessionEvent::MediaIn(self.frame(d)?),
            Event::KeyframeRequest(r) => SessionEvent::KeyframeRequest(
                match r.kind {
                    S0Keyframe::Pli => KeyframeRequestKind::Pli,
                    S0Keyframe::Fir => KeyframeRequestKind::Fir,
                },
                r.mid.to_string(),
            ),
            Event::PeerStats(s) => {
                self.update_stats(s);
                return None;
            }
            Event::Closed => return Some(CloseReason::PeerClosed),
            _ => return None,
        };
        out.push_back(HostOutput::Event {
            session: self.id,
            event,
        });
        None
    }

    fn frame(&self, d: MediaData) -> Option<MediaFrame> {
        // Media from a Play client is not expected (it negotiated recvonly);
        // str0m would not deliver it, and we would not know what to do with it.
        if self.direction != Direction::Publish {
            return None;
        }
        let codec = Codec::from_str0m(d.params.spec().codec)?;
        Some(MediaFrame {
            kind: codec.kind(),
            codec,
            rtp_time: d.time.numer(),
            clock_rate: d.time.denom(),
            network_time: d.network_time,
            keyframe: d.is_keyframe(),
            contiguous: d.contiguous,
            audio_level: d.ext_vals.audio_level,
            rid: d.rid.map(|r| r.to_string()),
            sender_clock: d.last_sender_info.map(|i| SenderClock {
                ntp_time: i.ntp_time,
                // The SR carries the low 32 bits of the sender's RTP clock.
                rtp_time: i.rtp_time.numer() as u32,
            }),
            // Zero-copy: the Bytes keeps str0m's Arc alive.
            data: Bytes::from_owner(d.data),
        })
    }

    fn update_stats(&mut self, s: PeerStats) {
        if let Some(prev) = &self.last_peer_stats {
            let secs = s
                .timestamp
                .saturating_duration_since(prev.timestamp)
                .as_secs_f64();
            if secs > 0.0 {
                let rate =
                    |now: u64, before: u64| (now.saturating_sub(before) as f64 * 8.0 / secs) as u64;
                self.stats.rx_bitrate = rate(s.peer_bytes_rx, prev.peer_bytes_rx);
                self.stats.tx_bitrate = rate(s.peer_bytes_tx, prev.peer_bytes_tx);
            }
        }
        self.stats.bytes_rx = s.peer_bytes_rx;
        self.stats.bytes_tx = s.peer_bytes_tx;
        if s.rtt.is_some() {
            self.stats.rtt = s.rtt;
        }
        if let Some(pair) = &s.selected_candidate_pair {
            self.stats.remote = Some(pair.remote.addr);
            if self.stats.rtt.is_none() {
                self.stats.rtt = pair.current_round_trip_time;
            }
        }
        self.stats.ingress_loss = s.ingress_loss_fraction;
        self.stats.egress_loss = s.egress_loss_fraction;
        self.last_peer_stats = Some(s);
    }

    /// Whether the session has outlived its welcome at `now`.
    pub fn expired(&self, now: Instant, timeouts: Timeouts) -> Option<CloseReason> {
        let timeout = timeouts.silence;
        if now >= self.last_recv + timeout {
            return Some(CloseReason::Timeout);
        }
        if !self.stats.connected && now >= self.created + timeouts.connect {
            return Some(CloseReason::NeverConnected);
        }
        let grace = ICE_DISCONNECT_GRACE.min(timeout);
        match self.disconnected_since {
            Some(since) if now >= since + grace => Some(CloseReason::IceDisconnected),
            _ => None,
        }
    }

    /// When the host must next look at this session.
    pub fn deadline(&self, timeouts: Timeouts) -> Instant {
        let timeout = timeouts.silence;
        let mut at = self.rtc_timeout.min(self.last_recv + timeout);
        if !self.stats.connected {
            at = at.min(self.created + timeouts.connect);
        }
        if let Some(since) = self.disconnected_since {
            at = at.min(since + ICE_DISCONNECT_GRACE.min(timeout));
        }
        at
    }
}
