//! What [`RtcHost::poll`](crate::RtcHost::poll) hands back: datagrams to send,
//! session events, and the next time it wants to be polled.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::types::{Codec, MediaKind, SessionId, Transport};

/// One output of the host.
#[derive(Debug)]
pub enum HostOutput {
    /// Send `data` from the UDP socket bound to `source` to `destination`.
    /// `source` is one of the configured candidate addresses.
    Transmit {
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        data: Vec<u8>,
    },
    /// Something happened in a session.
    Event {
        session: SessionId,
        event: SessionEvent,
    },
    /// Nothing is pending: call `poll` again at this instant, or earlier when a
    /// datagram arrives or the application writes media.
    Timeout(Instant),
}

/// Events of one session.
#[derive(Debug)]
#[non_exhaustive]
pub enum SessionEvent {
    /// ICE and DTLS are up; media can flow.
    Connected,
    /// A whole depacketized frame from a publisher.
    MediaIn(MediaFrame),
    /// A viewer asked for a keyframe (RTCP PLI or FIR) on a Play session;
    /// the mid of the track it is for.
    KeyframeRequest(KeyframeRequestKind, String),
    /// The session is gone (and already removed from the host). This is the
    /// last event of every session, including ones ended with
    /// [`RtcHost::close`](crate::RtcHost::close).
    Closed { reason: CloseReason },
}

/// A frame received from a publisher.
#[derive(Debug, Clone)]
pub struct MediaFrame {
    pub kind: MediaKind,
    pub codec: Codec,
    /// RTP timestamp extended to 64 bits (no wrap), in `clock_rate` units
    /// (90 kHz video, 48 kHz Opus). The origin is the publisher's random offset.
    pub rtp_time: u64,
    pub clock_rate: u32,
    /// When the first datagram of this frame was received.
    pub network_time: Instant,
    /// For H.264: the access unit contains an IDR slice. For VP8: a key frame.
    pub keyframe: bool,
    /// The publisher's clock mapping from its latest RTCP sender report for
    /// this track, once one has arrived: what lip sync across tracks is
    /// computed from.
    pub sender_clock: Option<SenderClock>,
    /// False when packets were lost between the previous frame and this one:
    /// the decoder may need a keyframe (see `RtcHost::request_keyframe`).
    pub contiguous: bool,
    /// Audio: the level the sender put in the RTP header (RFC 6464), in
    /// dBov (0 loudest, -127 silence), when it sends one.
    pub audio_level: Option<i8>,
    /// Simulcast: the encoding (RTP stream id) this frame belongs to.
    pub rid: Option<String>,
    /// The payload. H.264: Annex B, each NAL unit behind a 4-byte start code
    /// (00 00 00 01), as str0m's depacketizer produces it; the publisher's
    /// SPS/PPS arrive in-band in the same framing. VP8 and Opus: the codec's
    /// frame as-is.
    pub data: Bytes,
}

/// Kind of a keyframe request from a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeRequestKind {
    /// Picture Loss Indication.
    Pli,
    /// Full Intra Request.
    Fir,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// [`RtcHost::close`](crate::RtcHost::close) was called.
    Local,
    /// No datagram from the client for the configured session timeout.
    Timeout,
    /// Not connected within the configured connect timeout (a client that
    /// sends checks but never completes ICE and DTLS).
    NeverConnected,
    /// ICE consent was lost and did not come back within the grace period.
    IceDisconnected,
    /// The client closed DTLS (close_notify).
    PeerClosed,
    /// The WebRTC stack failed; the text says how.
    Error(String),
}

/// Per-session statistics, refreshed about once a second from str0m's
/// peer statistics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionStats {
    pub connected: bool,
    /// The client's address that media currently flows to/from.
    pub remote: Option<SocketAddr>,
    /// Round-trip time (from RTCP reports or ICE consent checks).
    pub rtt: Option<Duration>,
    /// Fraction (0..1) of packets from the client lost in the last interval.
    pub ingress_loss: Option<f32>,
    /// Fraction (0..1) of our packets the client reported lost.
    pub egress_loss: Option<f32>,
    /// Total bytes received / sent on the transport, all protocols.
    pub bytes_rx: u64,
    pub bytes_tx: u64,
    /// Transport bitrate over the last stats interval, bits per second.
    pub rx_bitrate: u64,
    pub tx_bitrate: u64,
}

/// Counters of the host's demultiplexer: what it could not deliver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// Datagrams that are neither STUN, DTLS nor RTP/RTCP, or fail to parse.
    pub dropped_malformed: u64,
    /// Well-formed datagrams that belong to no session (unknown ICE ufrag or
    /// unknown source address).
    pub dropped_unknown: u64,
    /// Datagrams a session refused (failed STUN integrity, unknown ICE pair).
    pub dropped_rejected: u64,
    /// Datagrams a session accepted but str0m reported an error for.
    pub input_errors: u64,
    /// Plain STUN binding requests answered.
    pub stun_replies: u64,
}

/// A point on a publisher's RTP clock and the wall-clock (NTP) time it
/// stands for, from an RTCP sender report (RFC 3550 section 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderClock {
    pub ntp_time: std::time::SystemTime,
    /// The RTP timestamp at `ntp_time`, 32 bits as on the wire.
    pub rtp_time: u32,
}

impl SenderClock {
    /// The sender's wall-clock time of a frame at `rtp_time` (any width; the
    /// low 32 bits are compared), for a track at `clock_rate`.
    pub fn wallclock(&self, rtp_time: u64, clock_rate: u32) -> std::time::SystemTime {
        let delta = (rtp_time as u32).wrapping_sub(self.rtp_time) as i32 as i64;
        let micros = delta * 1_000_000 / i64::from(clock_rate.max(1));
        if micros >= 0 {
            self.ntp_time + std::time::Duration::from_micros(micros as u64)
        } else {
            self.ntp_time - std::time::Duration::from_micros(micros.unsigned_abs())
        }
    }
}
