//! [`RtcHost`]: many str0m sessions behind one UDP port, as an ICE-lite
//! WHIP/WHEP server. Sans-IO: the caller owns the socket and the clock.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::ice::IceCreds;
use str0m::media::{Frequency, KeyframeRequestKind as S0Keyframe, MediaTime};
use str0m::net::{Receive, TcpType};
use str0m::{Candidate, Input, RtcConfig};
use tracing::{debug, warn};

use crate::config::{RtcHostConfig, MAX_OFFER_LEN, MAX_TRICKLED_CANDIDATES};
use crate::demux::{self, Datagram};
use crate::error::RtcError;
use crate::event::{CloseReason, HostCounters, HostOutput, SessionEvent, SessionStats};
use crate::offer_lines::{OfferLine, OfferLines};
use crate::sdp;
use crate::session::{Session, MAX_ADDRS_PER_SESSION};
use crate::stun_server;
use crate::types::{Direction, MediaKind, MediaOut, SessionId, Transport};

/// How often str0m reports peer statistics (RTT, loss, bytes).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Many WebRTC sessions multiplexed on one UDP port. See the crate docs for
/// the driving loop.
pub struct RtcHost {
    config: RtcHostConfig,
    crypto: Arc<CryptoProvider>,
    /// One DTLS certificate for all sessions: generating a key pair per
    /// session would cost more than the rest of session setup.
    cert: Option<DtlsCert>,
    sessions: HashMap<SessionId, Session>,
    by_ufrag: HashMap<String, SessionId>,
    by_addr: HashMap<(Transport, SocketAddr), SessionId>,
    queue: VecDeque<HostOutput>,
    next_id: u64,
    /// Earliest deadline over all sessions (may be early, never late).
    next_wake: Option<Instant>,
    counters: HostCounters,
}

impl RtcHost {
    pub fn new(config: RtcHostConfig) -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let cert = crypto.dtls_provider.generate_certificate();
        if cert.is_none() {
            warn!("no shared DTLS certificate; each session generates its own");
        }
        RtcHost {
            config,
            crypto,
            cert,
            sessions: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            queue: VecDeque::new(),
            next_id: 1,
            next_wake: None,
            counters: HostCounters::default(),
        }
    }

    /// Accepts a WHIP (`Publish`) or WHEP (`Play`) offer: creates a session and
    /// returns its id and the SDP answer.
    pub fn accept_offer(
        &mut self,
        direction: Direction,
        offer_sdp: &str,
        now: Instant,
    ) -> Result<(SessionId, String), RtcError> {
        if offer_sdp.len() > MAX_OFFER_LEN {
            return Err(RtcError::OfferTooLarge {
                len: offer_sdp.len(),
                max: MAX_OFFER_LEN,
            });
        }
        if self.sessions.len() >= self.config.max_sessions {
            return Err(RtcError::TooManySessions(self.config.max_sessions));
        }
        // str0m's parser errors are combinator traces; say plainly what is
        // wrong with the commonest mistake (a body that is not SDP at all).
        if !offer_sdp.trim_start().starts_with("v=0") {
            return Err(RtcError::NotSdp("it does not start with \"v=0\"".into()));
        }
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| RtcError::NotSdp(e.to_string()))?;

        let mids = sdp::offer_mids(&offer);
        let (mut rtc, creds) = self.new_rtc(direction, now);
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| RtcError::Negotiation(e.to_string()))?;

        let id = SessionId(self.next_id);
        let mut session = Session::new(id, direction, rtc, creds.ufrag, now);
        // Nothing is sent yet: an ICE-lite agent waits for the client's checks.
        // The first timeout input starts the session's clocks (str0m's own
        // examples do the same before the first datagram).
        let mut scratch = VecDeque::new();
        let started = session.rtc.handle_input(Input::Timeout(now));
        if let Err(e) = started {
            return Err(RtcError::Negotiation(e.to_string()));
        }
        if let Some(reason) = session.drain(now, &mut scratch) {
            return Err(RtcError::Negotiation(format!("{reason:?}")));
        }
        session.tracks = sdp::usable_tracks(&session.rtc, &mids, direction, offer_sdp)?;

        self.next_id += 1;
        self.queue.extend(scratch);
        self.by_ufrag.insert(session.ufrag.clone(), id);
        self.wake_at(session.deadline(self.config.timeouts()));
        debug!(session = %id, ?direction, ?session.tracks, "accepted offer");
        self.sessions.insert(id, session);
        Ok((id, answer.to_sdp_string()))
    }

    /// Creates a Play session that this side offers (a room participant's
    /// subscriber connection, renegotiated as publications come and go). It
    /// has no media until [`RtcHost::renegotiate`].
    pub fn create_offerer(&mut self, now: Instant) -> Result<SessionId, RtcError> {
        if self.sessions.len() >= self.config.max_sessions {
            return Err(RtcError::TooManySessions(self.config.max_sessions));
        }
        let (rtc, creds) = self.new_rtc(Direction::Play, now);
        let id = SessionId(self.next_id);
        let mut session = Session::new(id, Direction::Play, rtc, creds.ufrag, now);
        let mut scratch = VecDeque::new();
        if let Err(e) = session.rtc.handle_input(Input::Timeout(now)) {
            return Err(RtcError::Negotiation(e.to_string()));
        }
        if let Some(reason) = session.drain(now, &mut scratch) {
            return Err(RtcError::Negotiation(format!("{reason:?}")));
        }
        self.next_id += 1;
        self.queue.extend(scratch);
        self.by_ufrag.insert(session.ufrag.clone(), id);
        self.wake_at(session.deadline(self.config.timeouts()));
        self.sessions.insert(id, session);
        Ok(id)
    }

    /// Adds publications (a label each, the publisher's identity) to a
    /// session from [`RtcHost::create_offerer`], each as an audio and a video
    /// send-only m-line, and makes the `remove` mids inactive; returns the
    /// offer and the new publications' `(audio mid, video mid)`. The
    /// session's [`OfferLines`](crate::offer_lines::OfferLines) gives every
    /// publication msids never used before in it, so any sequence of
    /// publish/unpublish makes offers browsers accept. One offer at a time:
    /// the answer must be accepted before the next.
    pub fn renegotiate(
        &mut self,
        session: SessionId,
        add: &[String],
        remove: &[String],
        now: Instant,
    ) -> Result<(String, Vec<(String, String)>), RtcError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        if s.pending_offer.is_some() {
            return Err(RtcError::Negotiation(
                "the previous offer has not been answered".into(),
            ));
        }
        let lines = &mut s.offer_lines;
        let mut api = s.rtc.sdp_api();
        let mut added = Vec::with_capacity(add.len());
        for label in add {
            let stream_id = lines.new_stream_id(label);
            let mut mid_of = |kind: str0m::media::MediaKind| {
                let mid = api.add_media(
                    kind,
                    str0m::media::Direction::SendOnly,
                    Some(stream_id.clone()),
                    Some(OfferLines::track_id(&stream_id, kind)),
                    None,
                );
                lines.added(mid, kind, stream_id.clone());
                mid.to_string()
            };
            let audio = mid_of(str0m::media::MediaKind::Audio);
            let video = mid_of(str0m::media::MediaKind::Video);
            added.push((audio, video));
        }
        for mid in remove {
            if lines.retire(mid) {
                api.set_direction(
                    str0m::media::Mid::from(mid.as_str()),
                    str0m::media::Direction::Inactive,
                );
            }
        }
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| RtcError::Negotiation("nothing to negotiate".into()))?;
        s.pending_offer = Some(pending);
        self.after_mutation(session, now);
        Ok((offer.to_sdp_string(), added))
    }

    /// The m-lines a session from [`RtcHost::create_offerer`] has offered.
    pub fn offer_lines(&self, session: SessionId) -> Option<&[OfferLine]> {
        Some(self.sessions.get(&session)?.offer_lines.lines())
    }

    /// Applies the client's answer to the last offer of [`RtcHost::renegotiate`].
    pub fn accept_answer(
        &mut self,
        session: SessionId,
        sdp: &str,
        now: Instant,
    ) -> Result<(), RtcError> {
        if sdp.len() > MAX_OFFER_LEN {
            return Err(RtcError::OfferTooLarge {
                len: sdp.len(),
                max: MAX_OFFER_LEN,
            });
        }
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        let pending = s
            .pending_offer
            .take()
            .ok_or_else(|| RtcError::Negotiation("no offer is waiting for an answer".into()))?;
        let answer = str0m::change::SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| RtcError::NotSdp(e.to_string()))?;
        let accepted = s.rtc.sdp_api().accept_answer(pending, answer);
        self.after_mutation(session, now);
        accepted.map_err(|e| RtcError::Negotiation(e.to_string()))
    }

    /// Sends one frame on the track `mid` of a Play session (an offerer's).
    pub fn write_media_to(
        &mut self,
        session: SessionId,
        mid: &str,
        media: MediaOut<'_>,
        now: Instant,
    ) -> Result<(), RtcError> {
        let mid = str0m::media::Mid::from(mid);
        self.write_on(session, Some(mid), media, now)
    }

    /// A str0m `Rtc` for a new session: ICE-lite, this host's codecs for
    /// `direction`, its candidates (UDP first).
    fn new_rtc(&self, direction: Direction, now: Instant) -> (str0m::Rtc, IceCreds) {
        let creds = self.fresh_credentials();
        let mut config = RtcConfig::new()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds.clone())
            .set_crypto_provider(self.crypto.clone())
            .set_stats_interval(Some(STATS_INTERVAL));
        if let Some(cert) = &self.cert {
            config = config.set_dtls_cert(cert.clone());
        }
        let mut rtc = sdp::with_codecs(config, direction).build(now);
        // UDP first: host candidates of other protocols get a lower type
        // preference, so clients that can use UDP do.
        for &addr in &self.config.candidates {
            match Candidate::host(addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "unusable ICE candidate: {e}"),
            }
        }
        for &addr in &self.config.tcp_candidates {
            let c = Candidate::builder()
                .tcp()
                .host(addr)
                .tcptype(TcpType::Passive)
                .build();
            match c {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(%addr, "unusable ICE-TCP candidate: {e}"),
            }
        }
        (rtc, creds)
    }

    /// Feeds one datagram received on the shared UDP socket. `destination`
    /// is the address it was sent to; if that is not one of the candidates (a
    /// socket bound to 0.0.0.0, or NAT), the candidate with the same port is
    /// assumed. Never fails: what cannot be delivered is dropped and counted.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_packet(now, Transport::Udp, source, destination, data);
    }

    /// Feeds one packet: a UDP datagram, or one de-framed RFC 4571 packet
    /// of an ICE-TCP connection whose peer address is `source`. Replies to a
    /// TCP packet come out as `Transmit { transport: Tcp, destination:
    /// source }`: the caller writes them, framed, on that connection.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        let local = self.local_address(transport, destination);
        match demux::classify(data) {
            Datagram::Malformed => self.counters.dropped_malformed += 1,
            Datagram::PlainBinding(tid) => {
                self.counters.stun_replies += 1;
                self.queue.push_back(HostOutput::Transmit {
                    transport,
                    source: local,
                    destination: source,
                    data: stun_server::binding_success(&tid, source),
                });
            }
            Datagram::IceCheck { local_ufrag } => match self.by_ufrag.get(local_ufrag) {
                Some(&id) => self.deliver(id, now, (transport, source), local, data, true),
                // A check for a session that is gone (or never was). Not
                // answered: a reply without MESSAGE-INTEGRITY would be
                // useless to an ICE agent.
                None => self.counters.dropped_unknown += 1,
            },
            Datagram::ByAddress => match self.by_addr.get(&(transport, source)) {
                Some(&id) => self.deliver(id, now, (transport, source), local, data, false),
                None => self.counters.dropped_unknown += 1,
            },
        }
    }

    fn deliver(
        &mut self,
        id: SessionId,
        now: Instant,
        from: (Transport, SocketAddr),
        local: SocketAddr,
        data: &[u8],
        learn_address: bool,
    ) {
        let (transport, source) = from;
        let Some(s) = self.sessions.get_mut(&id) else {
            self.counters.dropped_unknown += 1;
            return;
        };
        let Ok(receive) = Receive::new(transport.to_str0m(), source, local, data) else {
            self.counters.dropped_malformed += 1;
            return;
        };
        let input = Input::Receive(now, receive);
        // For a check this verifies MESSAGE-INTEGRITY with the session's
        // password, so only the client that got the answer can claim an
        // address; for the rest it checks the address belongs to a valid pair.
        if !s.rtc.accepts(&input) {
            self.counters.dropped_rejected += 1;
            return;
        }
        if let Err(e) = s.rtc.handle_input(input) {
            // A bad packet from the right address (corrupt DTLS, SRTP that
            // fails authentication) is the packet's problem, not the session's.
            debug!(session = %id, "input error: {e}");
            self.counters.input_errors += 1;
        }
        s.last_recv = now;
        if learn_address && !s.addrs.contains(&from) {
            if s.addrs.len() >= MAX_ADDRS_PER_SESSION {
                let oldest = s.addrs.remove(0);
                if self.by_addr.get(&oldest) == Some(&id) {
                    self.by_addr.remove(&oldest);
                }
            }
            s.addrs.push(from);
        }
        if learn_address {
            self.by_addr.insert(from, id);
        }
        let close = s.drain(now, &mut self.queue);
        let deadline = s.deadline(self.config.timeouts());
        self.wake_at(deadline);
        if let Some(reason) = close {
            self.finish(id, reason);
        }
    }

    /// The next output: a datagram to send, an event, or when to poll again.
    /// Call until it returns [`HostOutput::Timeout`], then wait for that
    /// instant, a datagram, or media to write.
    pub fn poll(&mut self, now: Instant) -> HostOutput {
        if let Some(out) = self.queue.pop_front() {
            return out;
        }
        if self.next_wake.is_some_and(|w| w <= now) {
            self.service(now);
            if let Some(out) = self.queue.pop_front() {
                return out;
            }
        }
        HostOutput::Timeout(self.next_wake.unwrap_or(now + self.config.session_timeout))
    }

    /// Runs due str0m timeouts and ends expired sessions; recomputes the wake time.
    fn service(&mut self, now: Instant) {
        let timeouts = self.config.timeouts();
        let mut ended = Vec::new();
        let mut wake: Option<Instant> = None;
        for (&id, s) in self.sessions.iter_mut() {
            if let Some(reason) = s.expired(now, timeouts) {
                ended.push((id, reason));
                continue;
            }
            if s.rtc_timeout <= now {
                if let Err(e) = s.rtc.handle_input(Input::Timeout(now)) {
                    ended.push((id, CloseReason::Error(e.to_string())));
                    continue;
                }
                if let Some(reason) = s.drain(now, &mut self.queue) {
                    ended.push((id, reason));
                    continue;
                }
            }
            let d = s.deadline(timeouts);
            wake = Some(wake.map_or(d, |w| w.min(d)));
        }
        self.next_wake = wake;
        for (id, reason) in ended {
            self.finish(id, reason);
        }
    }

    /// Sends one frame to a Play session.
    pub fn write_media(
        &mut self,
        session: SessionId,
        media: MediaOut<'_>,
        now: Instant,
    ) -> Result<(), RtcError> {
        self.write_on(session, None, media, now)
    }

    fn write_on(
        &mut self,
        session: SessionId,
        mid: Option<str0m::media::Mid>,
        media: MediaOut<'_>,
        now: Instant,
    ) -> Result<(), RtcError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        if s.direction != Direction::Play {
            return Err(RtcError::WrongSessionDirection {
                session,
                expected: "play",
            });
        }
        if !s.rtc.is_connected() {
            return Err(RtcError::NotConnected(session));
        }
        let kind = media.codec.kind();
        let mid = mid
            .or(match kind {
                MediaKind::Video => s.tracks.video,
                MediaKind::Audio => s.tracks.audio,
            })
            .ok_or(RtcError::NoTrack { session, kind })?;
        let pt =
            sdp::negotiated_pt(&s.rtc, mid, media.codec).ok_or(RtcError::CodecNotNegotiated {
                session,
                codec: media.codec,
            })?;
        let frequency = match kind {
            MediaKind::Video => Frequency::NINETY_KHZ,
            MediaKind::Audio => Frequency::FORTY_EIGHT_KHZ,
        };
        let writer = s
            .rtc
            .writer(mid)
            .ok_or_else(|| RtcError::Stack("the session is closing".into()))?;
        let result = writer.write(
            pt,
            media.wallclock,
            MediaTime::new(media.rtp_time, frequency),
            media.data,
        );
        self.after_mutation(session, now);
        result.map_err(|e| RtcError::Stack(e.to_string()))
    }

    /// Asks a publisher for a keyframe (RTCP PLI, or FIR if PLI was not
    /// negotiated). Fails before the first video packet arrived.
    pub fn request_keyframe(&mut self, session: SessionId, now: Instant) -> Result<(), RtcError> {
        self.request_keyframe_of(session, None, now)
    }

    /// Asks for a keyframe of one simulcast encoding (`rid`), or of the
    /// only one (`None`).
    pub fn request_keyframe_of(
        &mut self,
        session: SessionId,
        rid: Option<&str>,
        now: Instant,
    ) -> Result<(), RtcError> {
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        if s.direction != Direction::Publish {
            return Err(RtcError::WrongSessionDirection {
                session,
                expected: "publish",
            });
        }
        let mid = s.tracks.video.ok_or(RtcError::NoTrack {
            session,
            kind: MediaKind::Video,
        })?;
        let mut writer = s
            .rtc
            .writer(mid)
            .ok_or_else(|| RtcError::Stack("the session is closing".into()))?;
        let kind = if writer.is_request_keyframe_possible(S0Keyframe::Pli) {
            S0Keyframe::Pli
        } else {
            S0Keyframe::Fir
        };
        let result = writer.request_keyframe(rid.map(str0m::media::Rid::from), kind);
        self.after_mutation(session, now);
        result.map_err(|e| RtcError::Stack(e.to_string()))
    }

    /// Adds a candidate the client trickled (a WHIP/WHEP PATCH body line,
    /// `candidate:...` or `a=candidate:...`). Optional for an ICE-lite server,
    /// which learns the client's address from its checks anyway, but it lets
    /// a check from that address be matched at once.
    pub fn add_remote_candidate(
        &mut self,
        session: SessionId,
        candidate: &str,
        now: Instant,
    ) -> Result<(), RtcError> {
        const MAX_CANDIDATE_LEN: usize = 1024;
        let s = self
            .sessions
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        // A browser trickles a handful; more only grows str0m's pair list
        // (checks sent to every pair) for nothing.
        if s.remote_candidates >= MAX_TRICKLED_CANDIDATES {
            return Err(RtcError::TooManyCandidates(MAX_TRICKLED_CANDIDATES));
        }
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.len() > MAX_CANDIDATE_LEN {
            return Err(RtcError::BadCandidate("longer than 1024 bytes".into()));
        }
        let c =
            Candidate::from_sdp_string(line).map_err(|e| RtcError::BadCandidate(e.to_string()))?;
        s.rtc.add_remote_candidate(c);
        s.remote_candidates += 1;
        self.after_mutation(session, now);
        Ok(())
    }

    /// Drains a session after a write, as str0m requires.
    fn after_mutation(&mut self, id: SessionId, now: Instant) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        let close = s.drain(now, &mut self.queue);
        let deadline = s.deadline(self.config.timeouts());
        self.wake_at(deadline);
        if let Some(reason) = close {
            self.finish(id, reason);
        }
    }

    /// Ends a session: sends DTLS close_notify (and RTCP BYE) to the client,
    /// forgets the session, and queues its `Closed { reason: Local }` event.
    /// Returns false if there was no such session.
    pub fn close(&mut self, session: SessionId) -> bool {
        if !self.sessions.contains_key(&session) {
            return false;
        }
        self.finish(session, CloseReason::Local);
        true
    }

    fn finish(&mut self, id: SessionId, reason: CloseReason) {
        let Some(mut s) = self.sessions.remove(&id) else {
            return;
        };
        if reason == CloseReason::Local && s.rtc.is_alive() && s.rtc.close().is_ok() {
            // Only the goodbye datagrams matter now, not late events.
            let mut scratch = VecDeque::new();
            let _ = s.drain(s.rtc_timeout, &mut scratch);
            self.queue.extend(
                scratch
                    .into_iter()
                    .filter(|o| matches!(o, HostOutput::Transmit { .. })),
            );
        }
        self.by_ufrag.remove(&s.ufrag);
        for addr in &s.addrs {
            if self.by_addr.get(addr) == Some(&id) {
                self.by_addr.remove(addr);
            }
        }
        debug!(session = %id, ?reason, "session closed");
        self.queue.push_back(HostOutput::Event {
            session: id,
            event: SessionEvent::Closed { reason },
        });
    }

    /// Whether a session negotiated `codec` on its track of that kind.
    pub fn negotiated(&self, session: SessionId, codec: crate::types::Codec) -> bool {
        let Some(s) = self.sessions.get(&session) else {
            return false;
        };
        let mid = match codec.kind() {
            MediaKind::Video => s.tracks.video,
            MediaKind::Audio => s.tracks.audio,
        };
        mid.is_some_and(|mid| sdp::negotiated_pt(&s.rtc, mid, codec).is_some())
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The direction of a live session.
    pub fn direction(&self, session: SessionId) -> Option<Direction> {
        self.sessions.get(&session).map(|s| s.direction)
    }

    pub fn stats(&self, session: SessionId) -> Option<SessionStats> {
        self.sessions.get(&session).map(|s| s.stats.clone())
    }

    pub fn counters(&self) -> HostCounters {
        self.counters
    }

    fn wake_at(&mut self, at: Instant) {
        self.next_wake = Some(self.next_wake.map_or(at, |w| w.min(at)));
    }

    fn fresh_credentials(&self) -> IceCreds {
        loop {
            let creds = IceCreds::new();
            if !self.by_ufrag.contains_key(&creds.ufrag) {
                return creds;
            }
        }
    }

    fn local_address(&self, transport: Transport, destination: SocketAddr) -> SocketAddr {
        let c = match transport {
            Transport::Udp => &self.config.candidates,
            Transport::Tcp => &self.config.tcp_candidates,
        };
        if c.contains(&destination) {
            return destination;
        }
        c.iter()
            .find(|a| a.port() == destination.port() && a.is_ipv4() == destination.is_ipv4())
            .or_else(|| c.first())
            .copied()
            .unwrap_or(destination)
    }

    #[cfg(test)]
    pub(crate) fn routing_table_sizes(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}
