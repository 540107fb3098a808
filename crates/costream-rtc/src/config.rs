//! Configuration of an [`RtcHost`](crate::RtcHost).

use std::net::SocketAddr;
use std::time::Duration;

/// Offers larger than this are refused before parsing. Browser offers are a
/// few kilobytes; this leaves room for many m-lines.
pub const MAX_OFFER_LEN: usize = 64 * 1024;

/// Candidates a client may trickle to one session (PATCH, or the room
/// signaling's `trickle`): browsers send a handful.
pub const MAX_TRICKLED_CANDIDATES: usize = 20;

/// When sessions end by themselves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    /// No datagram for this long.
    pub silence: Duration,
    /// Not connected this long after being made.
    pub connect: Duration,
}

/// Configuration of an [`RtcHost`](crate::RtcHost).
#[derive(Debug, Clone)]
pub struct RtcHostConfig {
    /// Host candidates announced in every answer: the address(es) clients can
    /// reach the UDP socket at (public IPs when behind NAT). Unspecified
    /// addresses (0.0.0.0) are not valid candidates.
    pub candidates: Vec<SocketAddr>,
    /// ICE-TCP passive candidates (RFC 6544): where clients whose network
    /// blocks UDP can connect. Announced after the UDP ones and with a lower
    /// priority, so UDP wins whenever it works.
    pub tcp_candidates: Vec<SocketAddr>,
    /// A session that receives no datagram for this long ends (also one whose
    /// client never connects).
    pub session_timeout: Duration,
    /// A session not connected (ICE and DTLS up) this long after it was
    /// made ends, even while its client keeps sending checks.
    pub connect_timeout: Duration,
    /// Offers beyond this many live sessions are refused.
    pub max_sessions: usize,
}

impl RtcHostConfig {
    pub(crate) fn timeouts(&self) -> Timeouts {
        Timeouts {
            silence: self.session_timeout,
            connect: self.connect_timeout,
        }
    }

    pub fn new(candidates: Vec<SocketAddr>) -> Self {
        RtcHostConfig {
            candidates,
            ..Default::default()
        }
    }
}

impl Default for RtcHostConfig {
    fn default() -> Self {
        RtcHostConfig {
            candidates: Vec::new(),
            tcp_candidates: Vec::new(),
            session_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            max_sessions: 10_000,
        }
    }
}
