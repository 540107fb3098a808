//! WebRTC for costream: WHIP publishers and WHEP viewers as str0m sessions,
//! all behind one UDP port.
//!
//! [`RtcHost`] is sans-IO like str0m itself: it owns no socket, spawns no
//! task and never reads the clock. The caller (the server) owns one UDP
//! socket and runs this loop, on one task:
//!
//! ```no_run
//! # use std::net::UdpSocket;
//! # use std::time::Instant;
//! # use costream_rtc::{HostOutput, RtcHost, RtcHostConfig};
//! # fn run(socket: UdpSocket) -> std::io::Result<()> {
//! let local = socket.local_addr()?;
//! let mut host = RtcHost::new(RtcHostConfig::new(vec![local]));
//! let mut buf = vec![0u8; 2000];
//! loop {
//!     // Drain: send datagrams, dispatch events, learn the next deadline.
//!     let deadline = loop {
//!         match host.poll(Instant::now()) {
//!             HostOutput::Transmit { destination, data, .. } => {
//!                 socket.send_to(&data, destination)?;
//!             }
//!             HostOutput::Event { session, event } => { /* MediaIn → hub, ... */ }
//!             HostOutput::Timeout(t) => break t,
//!         }
//!     };
//!     // Wait for a datagram or the deadline (or, in the server, media to write
//!     // with `write_media` and offers to accept).
//!     let wait = deadline.saturating_duration_since(Instant::now());
//!     socket.set_read_timeout(Some(wait.max(std::time::Duration::from_millis(1))))?;
//!     if let Ok((n, source)) = socket.recv_from(&mut buf) {
//!         host.handle_datagram(Instant::now(), source, local, &buf[..n]);
//!     }
//! }
//! # }
//! ```
//!
//! - Offers come from the WHIP/WHEP HTTP handlers: [`RtcHost::accept_offer`]
//!   returns the session id and the SDP answer (ICE-lite, with the configured
//!   host candidates, no trickle needed).
//! - Routing (module `demux`): an ICE check goes to the session
//!   whose ufrag is the first half of its USERNAME, and teaches the host the
//!   client's address once the session has verified the check's integrity;
//!   DTLS and SRTP are routed by that address. A STUN binding request
//!   without ICE credentials is answered as by a plain STUN server. Anything
//!   else is dropped and counted ([`RtcHost::counters`]).
//! - Publish sessions emit [`SessionEvent::MediaIn`] with whole frames (H.264
//!   in Annex B); Play sessions take frames via [`RtcHost::write_media`].
//!   NACKs from viewers are answered by str0m from its send buffer (RTX);
//!   str0m sends NACKs, receiver reports and TWCC feedback to publishers.
//! - ICE-TCP (RFC 6544): with `tcp_candidates` configured, answers also
//!   carry passive TCP candidates (after UDP, at a lower priority). The
//!   caller accepts the TCP connections, undoes the RFC 4571 framing and
//!   feeds packets with [`RtcHost::handle_packet`]; replies come out as
//!   `Transmit { transport: Tcp, .. }` for the connection of `destination`.
//! - Every session ends with exactly one [`SessionEvent::Closed`]: after
//!   [`RtcHost::close`], a DTLS close from the client, lost ICE consent, or
//!   `session_timeout` without datagrams.

mod config;
mod demux;
pub mod error;
pub mod event;
mod host;
pub mod offer_lines;
mod sdp;
mod session;
pub mod stun_server;
pub mod types;

pub use config::{RtcHostConfig, MAX_OFFER_LEN, MAX_TRICKLED_CANDIDATES};
pub use error::RtcError;
pub use event::{
    CloseReason, HostCounters, HostOutput, KeyframeRequestKind, MediaFrame, SenderClock,
    SessionEvent, SessionStats,
};
pub use host::RtcHost;
pub use types::{Codec, Direction, MediaKind, MediaOut, SessionId, Transport};

#[cfg(test)]
mod tests;
