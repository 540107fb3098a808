//! Shared subscriber sessions: one server-offered peer connection per room
//! participant that carries the audio and video of every publication it
//! subscribes to, renegotiated (new m-lines, or inactive ones) as
//! publications come and go.

use std::collections::HashMap;
use std::time::Instant;

use costream_hub::{Frame, Protocol, StreamKey, Subscriber};
use costream_rtc::{MediaKind, RtcError, SessionId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::convert::{self, EgressState};
use super::video_gate::VideoGate;
use super::{Command, OfferError, Task};

/// Retired (inactive) m-lines a subscriber connection may carry: a guest
/// going on and off stage 16 times in one evening.
const MAX_RETIRED_LINES: usize = 32;

/// A publication's two tracks in a shared session.
pub struct Out {
    pub key: StreamKey,
    /// The hub stream forwarded: the publication, or one of its simulcast
    /// encodings (see `simulcast::layer_key`).
    pub source: StreamKey,
    pub video_mid: String,
    pub audio_mid: String,
    /// Until the track is negotiated and the session connected.
    subscriber: Option<Subscriber>,
    forwarder: Option<JoinHandle<()>>,
    egress: EgressState,
    answered: bool,
    video: VideoGate,
}

pub struct Shared {
    outs: HashMap<u32, Out>,
    next_out: u32,
    connected: bool,
    _closed: Option<oneshot::Sender<()>>,
}

/// A track of an offer: which publication, which kind, which mid.
#[derive(Debug, Clone)]
pub struct OfferedTrack {
    pub key: StreamKey,
    pub kind: MediaKind,
    pub mid: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for out in self.outs.values() {
            if let Some(f) = &out.forwarder {
                f.abort();
            }
        }
    }
}

impl Task {
    pub(super) fn shared_open(
        &mut self,
        closed: oneshot::Sender<()>,
        now: Instant,
    ) -> Result<SessionId, OfferError> {
        let id = self.host.create_offerer(now)?;
        self.shared.insert(
            id,
            Shared {
                outs: HashMap::new(),
                next_out: 0,
                connected: false,
                _closed: Some(closed),
            },
        );
        tracing::info!(session = %id, "WebRTC subscriber session opened");
        Ok(id)
    }

    /// Adds the publications `add` (those live) and removes `remove`;
    /// returns the offer, or `None` when nothing changed.
    pub(super) fn shared_update(
        &mut self,
        session: SessionId,
        add: Vec<StreamKey>,
        remove: Vec<StreamKey>,
        now: Instant,
    ) -> Result<Option<(String, Vec<OfferedTrack>)>, OfferError> {
        let shared = self
            .shared
            .get_mut(&session)
            .ok_or(RtcError::UnknownSession(session))?;
        let mut gone = Vec::new();
        shared.outs.retain(|_, out| {
            if remove.contains(&out.key) {
                if let Some(f) = out.forwarder.take() {
                    f.abort();
                }
                gone.push(out.video_mid.clone());
                gone.push(out.audio_mid.clone());
                false
            } else {
                true
            }
        });
        let mut subscribers = Vec::new();
        for key in add {
            if shared.outs.values().any(|o| o.key == key) {
                continue;
            }
            match self.bridges.subscribe(&key, Protocol::WebRtc) {
                Ok(sub) => subscribers.push((key, sub)),
                Err(_) => tracing::debug!(%session, stream = %key, "not live: not added"),
            }
        }
        if gone.is_empty() && subscribers.is_empty() {
            return Ok(None);
        }
        // Retired m-lines stay in every offer (browsers keep their
        // transceivers); past a bound, a new connection is cheaper than an
        // ever longer SDP. Its outs are gone with it.
        let retired = self
            .host
            .offer_lines(session)
            .map_or(0, |l| l.iter().filter(|l| !l.live).count());
        if retired + gone.len() > MAX_RETIRED_LINES {
            return Err(OfferError::Renew(retired));
        }
        let labels: Vec<String> = subscribers
            .iter()
            .map(|(key, _)| key.stream().to_owned())
            .collect();
        let (offer, mids) = self.host.renegotiate(session, &labels, &gone, now)?;
        let mut offered = Vec::new();
        for ((key, sub), (audio_mid, video_mid)) in subscribers.into_iter().zip(mids) {
            offered.push(OfferedTrack {
                key: key.clone(),
                kind: MediaKind::Audio,
                mid: audio_mid.clone(),
            });
            offered.push(OfferedTrack {
                key: key.clone(),
                kind: MediaKind::Video,
                mid: video_mid.clone(),
            });
            let n = shared.next_out;
            shared.next_out += 1;
            shared.outs.insert(
                n,
                Out {
                    source: key.clone(),
                    key,
                    video_mid,
                    audio_mid,
                    subscriber: Some(sub),
                    forwarder: None,
                    egress: EgressState::default(),
                    answered: false,
                    video: VideoGate::default(),
                },
            );
        }
        Ok(Some((offer, offered)))
    }

    pub(super) fn shared_answer(
        &mut self,
        session: SessionId,
        sdp: &str,
        now: Instant,
    ) -> Result<(), OfferError> {
        if !self.shared.contains_key(&session) {
            return Err(RtcError::UnknownSession(session).into());
        }
        self.host.accept_answer(session, sdp, now)?;
        if let Some(shared) = self.shared.get_mut(&session) {
            for out in shared.outs.values_mut() {
                out.answered = true;
            }
        }
        self.shared_start(session, now);
        Ok(())
    }

    /// Starts forwarding every negotiated track, once connected.
    pub(super) fn shared_start(&mut self, session: SessionId, now: Instant) {
        let Some(shared) = self.shared.get_mut(&session) else {
            return;
        };
        if !shared.connected {
            return;
        }
        let mut started = Vec::new();
        for (n, out) in shared.outs.iter_mut() {
            if !out.answered {
                continue;
            }
            if let Some(sub) = out.subscriber.take() {
                out.forwarder = Some(tokio::spawn(forward(
                    sub,
                    session,
                    *n,
                    self.commands.clone(),
                )));
                started.push(out.source.clone());
            }
        }
        for key in started {
            self.request_publisher_keyframe(&key, now);
        }
    }

    pub(super) fn shared_media(
        &mut self,
        session: SessionId,
        out: u32,
        frame: &Frame,
        now: Instant,
    ) {
        let Some(o) = self
            .shared
            .get_mut(&session)
            .and_then(|s| s.outs.get_mut(&out))
        else {
            return;
        };
        if !o.video.admit(frame) {
            return;
        }
        let Some((codec, rtp_time, data)) = o.egress.convert(frame) else {
            return;
        };
        let mid = match codec.kind() {
            MediaKind::Video => &o.video_mid,
            MediaKind::Audio => &o.audio_mid,
        };
        if let Err(e) = self.host.write_media_to(
            session,
            mid,
            convert::media_out(codec, rtp_time, &data),
            now,
        ) {
            tracing::trace!(%session, "write_media_to: {e}");
        }
    }

    /// The publication a track of a shared session carries.
    pub(super) fn shared_key_of(&self, session: SessionId, mid: &str) -> Option<StreamKey> {
        self.shared
            .get(&session)?
            .outs
            .values()
            .find(|o| o.video_mid == mid || o.audio_mid == mid)
            .map(|o| o.source.clone())
    }

    pub(super) fn shared_pause(
        &mut self,
        session: SessionId,
        key: &StreamKey,
        paused: bool,
        now: Instant,
    ) {
        let Some(o) = self
            .shared
            .get_mut(&session)
            .and_then(|s| s.outs.values_mut().find(|o| &o.key == key))
        else {
            return;
        };
        if o.video.set_paused(paused) {
            let source = o.source.clone();
            self.request_publisher_keyframe(&source, now);
        }
    }

    /// Forwards another hub stream (a simulcast encoding) for the
    /// publication `key`: from its next keyframe, which is asked for.
    pub(super) fn shared_select(
        &mut self,
        session: SessionId,
        key: &StreamKey,
        source: StreamKey,
        now: Instant,
    ) {
        let Some(shared) = self.shared.get_mut(&session) else {
            return;
        };
        let connected = shared.connected;
        let Some((n, o)) = shared.outs.iter_mut().find(|(_, o)| &o.key == key) else {
            return;
        };
        if o.source == source {
            return;
        }
        let Ok(sub) = self.bridges.subscribe(&source, Protocol::WebRtc) else {
            return;
        };
        tracing::debug!(%session, stream = %key, from = %o.source, to = %source, "subscriber switches encoding");
        if let Some(f) = o.forwarder.take() {
            f.abort();
        }
        o.source = source.clone();
        o.video.resync();
        if connected && o.answered {
            o.forwarder = Some(tokio::spawn(forward(
                sub,
                session,
                *n,
                self.commands.clone(),
            )));
        } else {
            o.subscriber = Some(sub);
        }
        self.request_publisher_keyframe(&source, now);
    }

    pub(super) fn shared_connected(&mut self, session: SessionId, now: Instant) -> bool {
        let Some(shared) = self.shared.get_mut(&session) else {
            return false;
        };
        shared.connected = true;
        self.shared_start(session, now);
        true
    }
}

/// Moves one publication's frames to the RTC task for a shared session.
async fn forward(sub: Subscriber, session: SessionId, out: u32, commands: mpsc::Sender<Command>) {
    super::pump(sub, &commands, |frame| Command::MediaTo {
        session,
        out,
        frame,
    })
    .await;
}
