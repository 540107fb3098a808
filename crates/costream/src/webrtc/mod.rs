//! WebRTC: WHIP publishing and WHEP playback. One task owns the UDP socket
//! and the `costream_rtc::RtcHost` (all sessions); HTTP handlers and the
//! per-viewer forwarders talk to it over bounded channels.

mod convert;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
mod levels;
pub mod resources;
mod shared;
pub mod simulcast;
mod video_gate;
pub use levels::AudioLevels;
pub use shared::OfferedTrack;
mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use costream_hub::{
    Frame, Hub, Protocol, PublishError, Publisher, StreamKey, SubscribeError, Subscriber,
};
use costream_rtc::{
    Direction, HostOutput, RtcError, RtcHost, RtcHostConfig, SessionEvent, SessionId, Transport,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::RtcConfig;
use convert::{EgressState, IngestClock};
use video_gate::VideoGate;

/// Keyframe requests forwarded to a publisher at most this often.
const PLI_INTERVAL: Duration = Duration::from_millis(500);

/// Whether a keyframe request may go out now (at most one per interval).
fn pli_due(last: &mut Option<Instant>, now: Instant) -> bool {
    let due = last.is_none_or(|t| now.duration_since(t) >= PLI_INTERVAL);
    if due {
        *last = Some(now);
    }
    due
}

/// Asks publish session `id` for a keyframe on every encoding the hub
/// takes from it, unless one was asked for less than `PLI_INTERVAL` ago.
/// Returns whether it asked.
fn ask_for_keyframe(
    host: &mut RtcHost,
    id: SessionId,
    last_pli: &mut Option<Instant>,
    layers: &simulcast::LayerPick,
    now: Instant,
) -> bool {
    if !pli_due(last_pli, now) {
        return false;
    }
    for rid in layers.targets() {
        let _ = host.request_keyframe_of(id, rid.as_deref(), now);
    }
    true
}
/// A new viewer does not ask for a keyframe when the last one is younger:
/// the cached GOP it starts from is short.
const RECENT_KEYFRAME: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RtcService {
    commands: mpsc::Sender<Command>,
    pub udp_addr: SocketAddr,
    /// The ICE-TCP listener, when enabled.
    pub tcp_addr: Option<SocketAddr>,
    /// `Link` header values naming the ICE servers clients may use.
    pub ice_links: Arc<Vec<String>>,
    /// Publishers' audio levels (rooms' active speakers).
    pub levels: AudioLevels,
    /// WHIP/WHEP sessions by the random id of their URL.
    pub resources: Arc<resources::Resources>,
}

#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    #[error(transparent)]
    Rtc(#[from] RtcError),
    #[error(transparent)]
    Busy(#[from] PublishError),
    #[error("stream {0} is not live")]
    NotLive(StreamKey),
    /// Live, but a limit keeps this viewer from it (the text says which).
    #[error("{0}")]
    Unavailable(String),
    #[error("the WebRTC service is not running")]
    Stopped,
    /// A subscriber connection whose retired m-lines reached the limit:
    /// the caller offers a new connection instead of a longer offer.
    #[error("the subscriber connection has {0} retired m-lines")]
    Renew(usize),
}

enum Command {
    Offer {
        direction: Direction,
        key: StreamKey,
        sdp: String,
        reply: oneshot::Sender<Result<(SessionId, String), OfferError>>,
        /// Told when the session ends (rooms track their participants' sessions).
        closed: Option<oneshot::Sender<()>>,
    },
    Candidates {
        session: SessionId,
        lines: Vec<String>,
        reply: oneshot::Sender<Result<(), RtcError>>,
    },
    Delete {
        key: StreamKey,
        session: SessionId,
        reply: oneshot::Sender<bool>,
    },
    Media {
        session: SessionId,
        frame: Arc<Frame>,
    },
    Ended {
        session: SessionId,
    },
    /// Opens a shared subscriber session (server-offered).
    SharedOpen {
        closed: oneshot::Sender<()>,
        reply: oneshot::Sender<Result<SessionId, OfferError>>,
    },
    /// Adds and removes publications of a shared session: the new offer.
    SharedUpdate {
        session: SessionId,
        add: Vec<StreamKey>,
        remove: Vec<StreamKey>,
        reply: oneshot::Sender<SharedOffer>,
    },
    /// The client's answer to a shared session's offer.
    SharedAnswer {
        session: SessionId,
        sdp: String,
        reply: oneshot::Sender<Result<(), OfferError>>,
    },
    /// A frame for one publication of a shared session.
    MediaTo {
        session: SessionId,
        out: u32,
        frame: Arc<Frame>,
    },
    /// Forward another hub stream (a simulcast encoding) for a publication
    /// of a shared session.
    SharedSelect {
        session: SessionId,
        key: StreamKey,
        source: StreamKey,
    },
    /// Pause (or resume) one publication's video in a shared session.
    SharedPause {
        session: SessionId,
        key: StreamKey,
        paused: bool,
    },
    /// Stop (or resume) sending video to a viewer (rooms' bandwidth budget).
    PauseVideo {
        session: SessionId,
        paused: bool,
    },
    /// Drop (or pass again) a publish session's audio or video.
    Mute {
        session: SessionId,
        video: bool,
        muted: bool,
    },
    Sessions {
        reply: oneshot::Sender<Vec<SessionInfo>>,
    },
    TcpOpened {
        peer: SocketAddr,
        writer: tcp::TcpWriter,
    },
    TcpPacket {
        peer: SocketAddr,
        local: SocketAddr,
        data: bytes::Bytes,
    },
    TcpClosed {
        peer: SocketAddr,
    },
}

/// What a shared session's update gives: the offer and its tracks, or
/// nothing to negotiate.
pub type SharedOffer = Result<Option<(String, Vec<OfferedTrack>)>, OfferError>;

/// A session as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub stream: String,
    pub direction: &'static str,
    pub connected: bool,
    pub remote: Option<String>,
    pub rtt_ms: Option<f64>,
    pub loss: Option<f32>,
    pub rx_kbps: u64,
    pub tx_kbps: u64,
}

impl RtcService {
    pub async fn start(
        config: &RtcConfig,
        hub: Hub,
        bridges: crate::bridge::Bridges,
    ) -> anyhow::Result<RtcService> {
        let socket = UdpSocket::bind(config.udp_listen)
            .await
            .with_context(|| format!("binding WebRTC UDP to {}", config.udp_listen))?;
        let udp_addr = socket.local_addr()?;
        let listener = match config.tcp_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding WebRTC ICE-TCP to {addr}"))?,
            ),
            None => None,
        };
        let tcp_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let candidates = candidates(config, udp_addr);
        let tcp_candidates = tcp_addr.map_or(Vec::new(), |a| self::candidates(config, a));
        tracing::info!(
            "WebRTC on udp://{udp_addr} (WHIP /whip/APP/STREAM, WHEP /whep/APP/STREAM), candidates {candidates:?}"
        );
        match tcp_addr {
            Some(a) => tracing::info!("WebRTC ICE-TCP on tcp://{a}, candidates {tcp_candidates:?}"),
            None => tracing::info!("WebRTC ICE-TCP is off"),
        }
        let ice_links = Arc::new(ice_links(config, &candidates));
        let host = RtcHost::new(RtcHostConfig {
            session_timeout: config.session_timeout,
            connect_timeout: config.connect_timeout,
            tcp_candidates,
            ..RtcHostConfig::new(candidates)
        });
        let (tx, rx) = mpsc::channel(4096);
        let levels = AudioLevels::default();
        if let Some(listener) = listener {
            let limits = tcp::Limits::new(config);
            tokio::spawn(tcp::accept_loop(listener, tx.clone(), limits));
        }
        let task = Task {
            host,
            socket,
            local: udp_addr,
            hub,
            bridges,
            commands: tx.clone(),
            sessions: HashMap::new(),
            publishers: HashMap::new(),
            tcp: HashMap::new(),
            levels: levels.clone(),
            shared: HashMap::new(),
            layer_keys: HashMap::new(),
        };
        tokio::spawn(task.run(rx));
        Ok(RtcService {
            commands: tx,
            udp_addr,
            tcp_addr,
            ice_links,
            levels,
            resources: Arc::default(),
        })
    }

    pub async fn offer(
        &self,
        direction: Direction,
        key: StreamKey,
        sdp: String,
    ) -> Result<(SessionId, String), OfferError> {
        self.offer_inner(direction, key, sdp, None).await
    }

    /// Like [`RtcService::offer`]; the receiver completes when the session ends.
    pub async fn offer_watched(
        &self,
        direction: Direction,
        key: StreamKey,
        sdp: String,
    ) -> Result<(SessionId, String, oneshot::Receiver<()>), OfferError> {
        let (tx, rx) = oneshot::channel();
        let (id, answer) = self.offer_inner(direction, key, sdp, Some(tx)).await?;
        Ok((id, answer, rx))
    }

    async fn offer_inner(
        &self,
        direction: Direction,
        key: StreamKey,
        sdp: String,
        closed: Option<oneshot::Sender<()>>,
    ) -> Result<(SessionId, String), OfferError> {
        self.ask(|reply| Command::Offer {
            direction,
            key,
            sdp,
            reply,
            closed,
        })
        .await
        .ok_or(OfferError::Stopped)?
    }

    /// Sends a command that answers on `reply`; `None` when the WebRTC task
    /// is gone (or dropped the command).
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.commands.send(command(reply)).await.ok()?;
        rx.await.ok()
    }

    pub async fn add_candidates(
        &self,
        session: SessionId,
        lines: Vec<String>,
    ) -> Result<(), RtcError> {
        self.ask(|reply| Command::Candidates {
            session,
            lines,
            reply,
        })
        .await
        .unwrap_or(Err(RtcError::UnknownSession(session)))
    }

    /// Ends a session of `key`; false when there is no such session.
    pub async fn delete(&self, key: StreamKey, session: SessionId) -> bool {
        self.ask(|reply| Command::Delete {
            key,
            session,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// Stops (or resumes) passing on a publisher's audio or video; the
    /// room admin API's server-side mute.
    pub async fn mute(&self, session: SessionId, video: bool, muted: bool) {
        let _ = self
            .commands
            .send(Command::Mute {
                session,
                video,
                muted,
            })
            .await;
    }

    /// Opens a server-offered subscriber session; the receiver completes
    /// when it ends. Tracks come with [`RtcService::shared_update`].
    pub async fn shared_open(&self) -> Result<(SessionId, oneshot::Receiver<()>), OfferError> {
        let (closed, watch) = oneshot::channel();
        let id = self
            .ask(|reply| Command::SharedOpen { closed, reply })
            .await
            .ok_or(OfferError::Stopped)??;
        Ok((id, watch))
    }

    /// Adds (those live) and removes publications; the offer to send.
    pub async fn shared_update(
        &self,
        session: SessionId,
        add: Vec<StreamKey>,
        remove: Vec<StreamKey>,
    ) -> SharedOffer {
        self.ask(|reply| Command::SharedUpdate {
            session,
            add,
            remove,
            reply,
        })
        .await
        .ok_or(OfferError::Stopped)?
    }

    pub async fn shared_answer(&self, session: SessionId, sdp: String) -> Result<(), OfferError> {
        self.ask(|reply| Command::SharedAnswer {
            session,
            sdp,
            reply,
        })
        .await
        .ok_or(OfferError::Stopped)?
    }

    /// Forwards `source` (a simulcast encoding's hub stream, or `key`
    /// itself) for the publication `key` of a shared session.
    pub async fn shared_select(&self, session: SessionId, key: StreamKey, source: StreamKey) {
        let _ = self
            .commands
            .send(Command::SharedSelect {
                session,
                key,
                source,
            })
            .await;
    }

    /// Pauses or resumes one publication's video in a shared session.
    pub async fn shared_pause(&self, session: SessionId, key: StreamKey, paused: bool) {
        let _ = self
            .commands
            .send(Command::SharedPause {
                session,
                key,
                paused,
            })
            .await;
    }

    /// Ends any session (publish, play or shared subscriber).
    pub async fn close(&self, session: SessionId) {
        let _ = self.commands.send(Command::Ended { session }).await;
    }

    /// Stops or resumes a viewer's video; audio keeps flowing. Resumed
    /// video starts at the next keyframe, which the publisher is asked for.
    pub async fn pause_video(&self, session: SessionId, paused: bool) {
        let _ = self
            .commands
            .send(Command::PauseVideo { session, paused })
            .await;
    }

    pub async fn sessions(&self) -> Vec<SessionInfo> {
        self.ask(|reply| Command::Sessions { reply })
            .await
            .unwrap_or_default()
    }
}

/// `Link` header values (RFC 9725 section 4.6) for the configured ICE
/// servers, or for this server's own STUN service on its UDP port.
fn ice_links(config: &RtcConfig, candidates: &[SocketAddr]) -> Vec<String> {
    if config.ice_servers.is_empty() {
        return candidates
            .first()
            .map(|a| format!("<stun:{a}>; rel=\"ice-server\""))
            .into_iter()
            .collect();
    }
    config
        .ice_servers
        .iter()
        .map(|s| {
            let mut link = format!("<{}>; rel=\"ice-server\"", s.url);
            if let Some(u) = &s.username {
                link.push_str(&format!("; username=\"{}\"", u.replace('"', "")));
            }
            if let Some(c) = &s.credential {
                link.push_str(&format!(
                    "; credential=\"{}\"; credential-type=\"password\"",
                    c.replace('"', "")
                ));
            }
            link
        })
        .collect()
}

/// ICE candidates to announce for a bound (UDP or TCP) address.
fn candidates(config: &RtcConfig, bound: SocketAddr) -> Vec<SocketAddr> {
    let port = bound.port();
    if !config.public_ips.is_empty() {
        return config
            .public_ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
    }
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut out = Vec::new();
    if let Some(ip) = primary_ip() {
        out.push(SocketAddr::new(ip, port));
    }
    out.push(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
    out
}

/// The address this host uses for outbound traffic. A UDP `connect` only
/// picks a route; no packet is sent.
fn primary_ip() -> Option<IpAddr> {
    let s = StdUdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

struct Session {
    key: StreamKey,
    direction: Direction,
    /// Publish sessions: the hub slot and the clock conversion.
    publisher: Option<(Publisher, IngestClock)>,
    /// Play sessions: the viewer, until the connection is up.
    pending_viewer: Option<Subscriber>,
    forwarder: Option<JoinHandle<()>>,
    egress: EgressState,
    /// When the viewer asked for a keyframe the publisher hasn't been asked for yet.
    last_pli: Option<Instant>,
    /// Publish sessions: when the last keyframe arrived.
    last_keyframe: Option<Instant>,
    /// Publish sessions: video was lost since the last keyframe.
    broken: bool,
    /// Completed (by dropping it) when the session ends.
    _closed: Option<oneshot::Sender<()>>,
    /// Publish sessions muted by an admin: [audio, video].
    muted: [bool; 2],
    /// Play sessions: video held back (bandwidth budget), or until a keyframe.
    video: VideoGate,
    /// Publish sessions: which simulcast encoding the hub stream carries.
    layers: simulcast::LayerPick,
    /// Publish sessions: each simulcast encoding as a hub stream of its own
    /// (`app/stream~sim-RID`, with the audio too), for subscribers that
    /// get a smaller one.
    layer_streams: HashMap<String, (Publisher, IngestClock)>,
}

impl Session {
    /// Whether a keyframe request may go to this publisher now (at most one
    /// per `PLI_INTERVAL`); if so, it counts as sent.
    fn pli_due(&mut self, now: Instant) -> bool {
        pli_due(&mut self.last_pli, now)
    }
}

struct Task {
    host: RtcHost,
    socket: UdpSocket,
    local: SocketAddr,
    hub: Hub,
    bridges: crate::bridge::Bridges,
    commands: mpsc::Sender<Command>,
    sessions: HashMap<SessionId, Session>,
    /// The WHIP session publishing each stream, for keyframe requests.
    publishers: HashMap<StreamKey, SessionId>,
    /// Open ICE-TCP connections by client address.
    tcp: HashMap<SocketAddr, tcp::TcpWriter>,
    levels: AudioLevels,
    /// Shared (server-offered) subscriber sessions.
    shared: HashMap<SessionId, shared::Shared>,
    /// The publish session and encoding of each simulcast layer stream.
    layer_keys: HashMap<StreamKey, (SessionId, String)>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.drain(Instant::now()).await;
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => self.host.handle_datagram(Instant::now(), source, self.local, &buf[..n]),
                    Err(e) => tracing::debug!("webrtc recv: {e}"),
                },
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    /// Sends what the host has to send, handles its events; returns when
    /// it next wants time.
    async fn drain(&mut self, now: Instant) -> Instant {
        loop {
            match self.host.poll(now) {
                HostOutput::Transmit {
                    transport: Transport::Udp,
                    destination,
                    data,
                    ..
                } => {
                    if let Err(e) = self.socket.send_to(&data, destination).await {
                        tracing::debug!("webrtc send to {destination}: {e}");
                    }
                }
                HostOutput::Transmit {
                    transport: Transport::Tcp,
                    destination,
                    data,
                    ..
                } => {
                    // Full: the client reads too slowly; dropped like a datagram.
                    if let Some(w) = self.tcp.get(&destination) {
                        let _ = w.try_send(data.into());
                    }
                }
                HostOutput::Event { session, event } => self.event(session, event, now),
                HostOutput::Timeout(t) => return t.min(now + Duration::from_millis(100)),
            }
        }
    }

    fn event(&mut self, id: SessionId, event: SessionEvent, now: Instant) {
        match event {
            SessionEvent::Connected => {
                if self.shared_connected(id, now) {
                    tracing::info!(session = %id, "WebRTC subscriber session connected");
                    return;
                }
                let Some(s) = self.sessions.get_mut(&id) else {
                    return;
                };
                tracing::info!(session = %id, stream = %s.key, "WebRTC connected");
                if s.direction == Direction::Publish && s.publisher.is_none() {
                    self.publisher_connected(id);
                    return;
                }
                if let Some(sub) = s.pending_viewer.take() {
                    s.forwarder = Some(tokio::spawn(forward(sub, id, self.commands.clone())));
                    // Browsers send keyframes rarely: unless one came
                    // recently, a WebRTC publisher is asked for a fresh one so
                    // the new viewer need not decode a long cached GOP first.
                    let key = s.key.clone();
                    let recent = self
                        .publishers
                        .get(&key)
                        .and_then(|p| self.sessions.get(p))
                        .and_then(|p| p.last_keyframe)
                        .is_some_and(|t| now.duration_since(t) < RECENT_KEYFRAME);
                    if !recent {
                        self.request_publisher_keyframe(&key, now);
                    }
                }
            }
            SessionEvent::MediaIn(frame) => {
                let Some(s) = self.sessions.get_mut(&id) else {
                    return;
                };
                let Some((publisher, clock)) = &mut s.publisher else {
                    return;
                };
                let video = frame.kind == costream_rtc::MediaKind::Video;
                if s.muted[usize::from(video)] {
                    return;
                }
                if let Some(level) = frame.audio_level {
                    self.levels.update(id, level, now);
                }
                simulcast::feed_layers(
                    &self.hub,
                    &mut self.layer_keys,
                    id,
                    &s.key,
                    &mut s.layer_streams,
                    &frame,
                );
                match s.layers.admit(&frame) {
                    simulcast::Verdict::Pass => {}
                    simulcast::Verdict::Drop => return,
                    simulcast::Verdict::Switched => {
                        tracing::info!(session = %id, stream = %s.key, rid = ?frame.rid, "simulcast: the stream carries this encoding now");
                        clock.restart_video();
                    }
                }
                if video && frame.keyframe {
                    s.last_keyframe = Some(now);
                    s.broken = false;
                } else if video && !frame.contiguous {
                    // Packets were lost: frames until the next keyframe
                    // would decode with errors, so they are not passed on.
                    s.broken = true;
                }
                if video && s.broken {
                    ask_for_keyframe(&mut self.host, id, &mut s.last_pli, &s.layers, now);
                    return;
                }
                // A viewer of the stream (or of its bridge) waits for a keyframe.
                let wanted = &publisher.stream().stats.keyframe_wanted;
                if video
                    && wanted.load(std::sync::atomic::Ordering::Relaxed)
                    && ask_for_keyframe(&mut self.host, id, &mut s.last_pli, &s.layers, now)
                {
                    wanted.store(false, std::sync::atomic::Ordering::Relaxed);
                }
                let had_config = clock.has_video_config();
                for f in clock.convert(&frame) {
                    if let Err(e) = publisher.push(f) {
                        // Kicked through the API, or cut off: end the session.
                        if e.is_over_budget() {
                            crate::metrics::refused(
                                "webrtc",
                                e.reason(),
                                None,
                                format_args!("{e}"),
                            );
                        }
                        self.host.close(id);
                        return;
                    }
                }
                if !had_config
                    && !clock.has_video_config()
                    && frame.kind == costream_rtc::MediaKind::Video
                {
                    // Joined mid-GOP: nothing decodes until the next keyframe.
                    ask_for_keyframe(&mut self.host, id, &mut s.last_pli, &s.layers, now);
                }
            }
            SessionEvent::KeyframeRequest(_, mid) => {
                if let Some(key) = self.shared_key_of(id, &mid) {
                    self.request_publisher_keyframe(&key, now);
                } else if let Some(key) = self.sessions.get(&id).map(|s| s.key.clone()) {
                    self.request_publisher_keyframe(&key, now);
                }
            }
            SessionEvent::Closed { reason } => {
                if self.shared.remove(&id).is_some() {
                    tracing::info!(session = %id, "WebRTC subscriber session closed: {reason:?}");
                    return;
                }
                let Some(s) = self.sessions.remove(&id) else {
                    return;
                };
                tracing::info!(session = %id, stream = %s.key, "WebRTC session closed: {reason:?}");
                self.levels.remove(id);
                if let Some(f) = s.forwarder {
                    f.abort();
                }
                if s.direction == Direction::Publish {
                    if self.publishers.get(&s.key) == Some(&id) {
                        self.publishers.remove(&s.key);
                    }
                    self.layer_keys.retain(|_, (session, _)| *session != id);
                    for (_, (publisher, _)) in s.layer_streams {
                        if matches!(reason, costream_rtc::CloseReason::Local) {
                            publisher.end();
                        }
                    }
                    if let Some((publisher, _)) = s.publisher {
                        // A DELETE is a goodbye; a timeout may be a network
                        // switch, so the grace period applies.
                        if matches!(reason, costream_rtc::CloseReason::Local) {
                            publisher.end();
                        }
                    }
                }
            }
            // Events this server has no use for yet.
            _ => {}
        }
    }

    /// A WHIP session's ICE connected: now it takes its stream's slot. Of
    /// two offers for one stream the first to connect wins; the other ends.
    fn publisher_connected(&mut self, id: SessionId) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        match self.hub.publish(s.key.clone(), Protocol::WebRtc) {
            Ok(p) => {
                s.publisher = Some((p, IngestClock::default()));
                self.publishers.insert(s.key.clone(), id);
            }
            Err(e) => {
                tracing::warn!(session = %id, "WHIP session connected too late: {e}");
                metrics::counter!(crate::metrics::REJECTED, "protocol" => "webrtc", "reason" => "busy")
                    .increment(1);
                self.host.close(id);
            }
        }
    }

    /// Asks the WHIP publisher of `key` (if any) for a keyframe, at most
    /// once per `PLI_INTERVAL`.
    fn request_publisher_keyframe(&mut self, key: &StreamKey, now: Instant) {
        if let Some((session, rid)) = self.layer_keys.get(key).cloned() {
            if let Some(p) = self.sessions.get_mut(&session) {
                if p.pli_due(now) {
                    let _ = self.host.request_keyframe_of(session, Some(&rid), now);
                }
            }
            return;
        }
        let Some(&publisher) = self.publishers.get(key) else {
            // Not a WHIP stream: a bridge re-encoding it can make one.
            self.bridges.request_keyframe(key);
            return;
        };
        if let Some(p) = self.sessions.get_mut(&publisher) {
            ask_for_keyframe(&mut self.host, publisher, &mut p.last_pli, &p.layers, now);
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Offer {
                direction,
                key,
                sdp,
                reply,
                closed,
            } => {
                let _ = reply.send(self.offer(direction, key, &sdp, closed, now));
            }
            Command::Candidates {
                session,
                lines,
                reply,
            } => {
                let r = lines
                    .iter()
                    .try_for_each(|l| self.host.add_remote_candidate(session, l, now));
                let _ = reply.send(r);
            }
            Command::Delete {
                key,
                session,
                reply,
            } => {
                let ok = self.sessions.get(&session).is_some_and(|s| s.key == key)
                    && self.host.close(session);
                let _ = reply.send(ok);
            }
            Command::Media { session, frame } => {
                let Some(s) = self.sessions.get_mut(&session) else {
                    return;
                };
                if !s.video.admit(&frame) {
                    return;
                }
                if let Some((codec, rtp_time, data)) = s.egress.convert(&frame) {
                    if let Err(e) = self.host.write_media(
                        session,
                        convert::media_out(codec, rtp_time, &data),
                        now,
                    ) {
                        tracing::trace!(%session, "write_media: {e}");
                    }
                }
            }
            Command::Ended { session } => {
                self.host.close(session);
            }
            Command::SharedOpen { closed, reply } => {
                let _ = reply.send(self.shared_open(closed, now));
            }
            Command::SharedUpdate {
                session,
                add,
                remove,
                reply,
            } => {
                let _ = reply.send(self.shared_update(session, add, remove, now));
            }
            Command::SharedAnswer {
                session,
                sdp,
                reply,
            } => {
                let _ = reply.send(self.shared_answer(session, &sdp, now));
            }
            Command::MediaTo {
                session,
                out,
                frame,
            } => self.shared_media(session, out, &frame, now),
            Command::SharedPause {
                session,
                key,
                paused,
            } => self.shared_pause(session, &key, paused, now),
            Command::SharedSelect {
                session,
                key,
                source,
            } => self.shared_select(session, &key, source, now),
            Command::PauseVideo { session, paused } => {
                let Some(s) = self.sessions.get_mut(&session) else {
                    return;
                };
                if s.video.set_paused(paused) {
                    let key = s.key.clone();
                    self.request_publisher_keyframe(&key, now);
                }
            }
            Command::Mute {
                session,
                video,
                muted,
            } => {
                if let Some(s) = self.sessions.get_mut(&session) {
                    s.muted[usize::from(video)] = muted;
                    // Viewers need a keyframe to start again.
                    if video && !muted {
                        s.broken = true;
                    }
                }
            }
            Command::TcpOpened { peer, writer } => {
                self.tcp.insert(peer, writer);
            }
            Command::TcpPacket { peer, local, data } => {
                self.host
                    .handle_packet(now, Transport::Tcp, peer, local, &data);
            }
            Command::TcpClosed { peer } => {
                self.tcp.remove(&peer);
            }
            Command::Sessions { reply } => {
                let single = self.sessions.iter().map(|(id, s)| {
                    let direction = if s.direction == Direction::Publish {
                        "whip"
                    } else {
                        "whep"
                    };
                    (*id, s.key.to_string(), direction)
                });
                let shared = self
                    .shared
                    .keys()
                    .map(|id| (*id, String::new(), "room-subscriber"));
                let list = single
                    .chain(shared)
                    .map(|(id, stream, direction)| {
                        let st = self.host.stats(id);
                        SessionInfo {
                            id: id.0.to_string(),
                            stream,
                            direction,
                            connected: st.as_ref().is_some_and(|x| x.connected),
                            remote: st.as_ref().and_then(|x| x.remote.map(|r| r.to_string())),
                            rtt_ms: st
                                .as_ref()
                                .and_then(|x| x.rtt.map(|d| d.as_secs_f64() * 1000.0)),
                            loss: st.as_ref().and_then(|x| x.ingress_loss.or(x.egress_loss)),
                            rx_kbps: st.as_ref().map_or(0, |x| x.rx_bitrate / 1000),
                            tx_kbps: st.as_ref().map_or(0, |x| x.tx_bitrate / 1000),
                        }
                    })
                    .collect();
                let _ = reply.send(list);
            }
        }
    }

    fn offer(
        &mut self,
        direction: Direction,
        key: StreamKey,
        sdp: &str,
        closed: Option<oneshot::Sender<()>>,
        now: Instant,
    ) -> Result<(SessionId, String), OfferError> {
        // A live stream's key is open to any publisher: one already
        // published is refused at once, and the slot is taken only once
        // ICE connects (see `publisher_connected`), so an offer that never
        // connects holds no stream. A room feed's key belongs to one
        // authenticated participant, and the room announces the publication
        // as soon as it is answered: its slot is taken now, so subscribers
        // can follow it at once. A viewer's stream must be live; its bridge
        // (a transcoder) starts only once the offer has been accepted, so a
        // bad offer costs none.
        let mut publisher = None;
        match direction {
            Direction::Publish if crate::room::is_room_feed(&key) => {
                publisher = Some(self.hub.publish(key.clone(), Protocol::WebRtc)?);
            }
            Direction::Publish => {
                if !self.hub.can_publish(&key) {
                    return Err(PublishError::AlreadyPublishing(key).into());
                }
            }
            Direction::Play => {
                if self.hub.stream(&key).is_none() {
                    return Err(OfferError::NotLive(key));
                }
            }
        }
        let (id, answer) = match self.host.accept_offer(direction, sdp, now) {
            Ok(ok) => ok,
            Err(e) => {
                if let Some(p) = publisher {
                    p.end();
                }
                return Err(e.into());
            }
        };
        if publisher.is_some() {
            self.publishers.insert(key.clone(), id);
        }
        let mut viewer = None;
        if direction == Direction::Play {
            // The viewer must take the stream's video codec (VP8 passes
            // through as VP8; H.264, re-encoded or not, as H.264).
            let video = self
                .hub
                .stream(&key)
                .and_then(|s| s.info().video)
                .map(|v| match v.codec {
                    costream_hub::VideoCodec::H264 => costream_rtc::Codec::H264,
                    costream_hub::VideoCodec::Vp8 => costream_rtc::Codec::Vp8,
                });
            if let Some(codec) = video.filter(|&c| !self.host.negotiated(id, c)) {
                self.host.close(id);
                return Err(RtcError::NoSupportedCodec(format!(
                    "stream {key} sends {} video and the offer does not receive it",
                    codec.name().to_uppercase()
                ))
                .into());
            }
            match self.bridges.subscribe(&key, Protocol::WebRtc) {
                Ok(sub) => viewer = Some(sub),
                Err(e) => {
                    self.host.close(id);
                    return Err(match e {
                        SubscribeError::Unavailable(why) => OfferError::Unavailable(why),
                        SubscribeError::NotFound(_) => OfferError::NotLive(key),
                    });
                }
            }
        }
        tracing::info!(session = %id, stream = %key, ?direction, "WebRTC session offered");
        self.sessions.insert(
            id,
            Session {
                key,
                direction,
                publisher: publisher.map(|p| (p, IngestClock::default())),
                pending_viewer: viewer,
                forwarder: None,
                egress: EgressState::default(),
                last_pli: None,
                last_keyframe: None,
                broken: false,
                _closed: closed,
                muted: [false; 2],
                video: VideoGate::default(),
                layers: simulcast::LayerPick::default(),
                layer_streams: HashMap::new(),
            },
        );
        Ok((id, answer))
    }
}

/// Moves a WHEP viewer's frames from the hub to the RTC task; ends the
/// session when the stream ends.
async fn forward(sub: Subscriber, session: SessionId, commands: mpsc::Sender<Command>) {
    let ended = pump(sub, &commands, |frame| Command::Media { session, frame }).await;
    if ended {
        let _ = commands.send(Command::Ended { session }).await;
    }
}

/// Hands a viewer's frames to the RTC task, each wrapped by `wrap`, audio
/// as it comes. If the task is too busy to take them, the viewer waits for
/// the next keyframe. True when the stream ended (false: the task is gone).
async fn pump(
    mut sub: Subscriber,
    commands: &mpsc::Sender<Command>,
    wrap: impl Fn(Arc<Frame>) -> Command,
) -> bool {
    sub.wake_for_audio();
    let mut skipping = false;
    while let Some(frame) = sub.recv().await {
        if skipping && !frame.keyframe && !frame.kind.is_config() {
            continue;
        }
        skipping = false;
        match commands.try_send(wrap(frame)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => skipping = true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
        }
    }
    true
}
