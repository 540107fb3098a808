//! All rooms of this node, and what their participants ask for: the room
//! state is changed under one lock, and the WebRTC offers are answered
//! outside it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use costream_hub::StreamKey;
use costream_rtc::{Direction, RtcError, SessionId};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::protocol::{ClientMessage, ErrorCode, LeftReason, OfferTrack, ServerMessage, TrackKind};
use super::state::{
    feed_key, offered_tracks, Conn, Joining, Outgoing, Pause, Publication, Refusal, Room,
    SessionRef, OUTBOX,
};
use crate::access::{ApiKey, Claims};
use crate::config::{MixOnHostLeave, RoomsConfig};
use crate::mix::Mixes;
use crate::webrtc::{OfferError, RtcService};

/// How often grace periods and empty rooms are checked.
const REAP_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    rooms: Mutex<HashMap<String, Room>>,
    config: RoomsConfig,
    keys: Vec<ApiKey>,
    rtc: Option<RtcService>,
    hooks: super::webhooks::Webhooks,
    hub: costream_hub::Hub,
    rates: Mutex<super::budget::Rates>,
    next_conn: AtomicU64,
    /// The server's mixes (a room's mix may stop when its last host
    /// leaves); set by `bind_mixes`.
    mixes: OnceLock<Mixes>,
}

/// A participant's connection, as the signaling handler holds it.
pub struct Membership {
    pub room: String,
    pub identity: String,
    /// The live stream its token says it owns (`Claims::live`).
    pub live: Option<String>,
    pub conn: u64,
    pub outbox: mpsc::Receiver<Outgoing>,
    pub joined: ServerMessage,
}

/// A room as the API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomSummary {
    pub room: String,
    pub participants: usize,
    pub publishers: usize,
    pub age_secs: u64,
}

impl Rooms {
    pub fn new(
        config: RoomsConfig,
        keys: Vec<ApiKey>,
        hub: costream_hub::Hub,
        rtc: Option<RtcService>,
    ) -> Rooms {
        let hooks = super::webhooks::Webhooks::start(&config.webhooks, keys.first().cloned());
        let rooms = Rooms {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                config,
                keys,
                rtc,
                hooks,
                hub,
                rates: Mutex::new(Default::default()),
                next_conn: AtomicU64::new(1),
                mixes: OnceLock::new(),
            }),
        };
        let weak = Arc::downgrade(&rooms.inner);
        tokio::spawn(quality_loop(weak.clone()));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_INTERVAL);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Rooms { inner }.reap(Instant::now());
            }
        });
        rooms
    }

    /// Lets the rooms stop their mixes (`rooms.mix_on_host_leave`); called
    /// once, at start.
    pub fn bind_mixes(&self, mixes: &Mixes) {
        let _ = self.inner.mixes.get_or_init(|| mixes.clone());
    }

    pub fn keys(&self) -> &[ApiKey] {
        &self.inner.keys
    }

    pub fn config(&self) -> &RoomsConfig {
        &self.inner.config
    }

    /// Admits the token's participant (creating the room on first join).
    /// `keep`: on a reconnect, the sessions of the previous connection
    /// the client still holds (see `Room::join`).
    pub fn join(
        &self,
        claims: &Claims,
        auto_subscribe: bool,
        keep: &[SessionId],
    ) -> Result<Membership, Refusal> {
        feed_key(&claims.room, &claims.sub).map_err(|e| {
            (
                ErrorCode::BadRequest,
                format!("room names and identities use letters, digits, '-', '_' and '.': {e}"),
            )
        })?;
        let (tx, outbox) = mpsc::channel(OUTBOX);
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut rooms = self.inner.rooms.lock();
        let room = rooms.entry(claims.room.clone()).or_insert_with(|| {
            tracing::info!(room = %claims.room, "room created");
            Room::new(&claims.room, now, self.inner.hooks.clone())
        });
        let joining = Joining {
            conn: Conn { id: conn, tx },
            auto_subscribe,
            keep,
        };
        let (joined, ended) = room.join(
            claims,
            joining,
            now,
            self.inner.config.max_participants,
            self.inner.config.reconnect_grace,
        )?;
        // A rejoin ended its old publication: the others' subscriber
        // connections drop it now rather than at the next reap.
        let others: Vec<String> = if ended.is_empty() {
            Vec::new()
        } else {
            room.participants()
                .map(|p| p.info.identity.clone())
                .filter(|i| *i != claims.sub)
                .collect()
        };
        drop(rooms);
        if !ended.is_empty() {
            tracing::info!(room = %claims.room, identity = %claims.sub, sessions = ended.len(), "rejoined: the old connection's sessions end");
        }
        self.close_sessions(ended);
        for identity in others {
            self.spawn_renegotiate(&claims.room, &identity);
        }
        // Auto-subscribed to what is live already.
        self.spawn_renegotiate(&claims.room, &claims.sub);
        tracing::info!(room = %claims.room, identity = %claims.sub, role = ?claims.role, "participant joined");
        Ok(Membership {
            room: claims.room.clone(),
            identity: claims.sub.clone(),
            live: claims.live.clone(),
            conn,
            outbox,
            joined,
        })
    }

    /// The connection ended: `left` when the participant said `leave`,
    /// otherwise the grace period starts.
    pub fn disconnected(&self, m: &Membership, left: bool) {
        let now = Instant::now();
        let (close, hosts_gone) = {
            let mut rooms = self.inner.rooms.lock();
            let Some(room) = rooms.get_mut(&m.room) else {
                return;
            };
            if !room.is_member(&m.identity, m.conn) {
                return;
            }
            if left {
                let close = room.remove(&m.identity, LeftReason::Left, now);
                (close, room.take_hosts_gone())
            } else {
                tracing::info!(room = %m.room, identity = %m.identity, "participant disconnected; waiting for it to come back");
                room.disconnect(&m.identity, Some(m.conn), now);
                (Vec::new(), false)
            }
        };
        self.close_sessions(close);
        if hosts_gone {
            self.hosts_gone(&m.room);
        }
    }

    /// The last host of `room` left for good. With `rooms.mix_on_host_leave
    /// = "stop"` the room's mix that replaces a live stream stops (the
    /// stream is its publisher's own again, and nobody is left to stop it);
    /// a mix into a stream of its own (a meeting's) goes on.
    fn hosts_gone(&self, room: &str) {
        if self.inner.config.mix_on_host_leave != MixOnHostLeave::Stop {
            return;
        }
        let Some(mixes) = self.inner.mixes.get() else {
            return;
        };
        let Some(mix) = mixes.of_room(room) else {
            return;
        };
        let replace = mixes
            .describe(&mix)
            .and_then(|d| d["replace"].as_str().map(String::from));
        let Some(replace) = replace else {
            return;
        };
        // A host who joined since keeps it.
        let host_back = self
            .inner
            .rooms
            .lock()
            .get(room)
            .is_some_and(|r| r.has_host());
        if host_back || !mixes.stop(&mix) {
            return;
        }
        tracing::info!(%room, %mix, %replace, "the room's last host left: its mix stopped, the stream is its publisher's again");
        let mut rooms = self.inner.rooms.lock();
        match rooms.get_mut(room) {
            Some(r) => r.mix_stopped(&mix, &replace, "host_left", Instant::now()),
            // The room closed with her.
            None => self
                .inner
                .hooks
                .mix_stopped(room, &mix, &replace, "host_left"),
        }
    }

    /// Handles one message; returns the answer for the sender, if any.
    pub async fn handle(
        &self,
        m: &Membership,
        id: Option<String>,
        message: ClientMessage,
    ) -> Option<ServerMessage> {
        let request = message.name();
        let result = self.dispatch(m, id.clone(), message).await;
        match result {
            Ok(answer) => answer,
            Err((code, text)) => {
                tracing::debug!(room = %m.room, identity = %m.identity, request, ?code, "refused: {text}");
                Some(ServerMessage::Error {
                    id,
                    request: Some(request.to_owned()),
                    code,
                    message: text,
                })
            }
        }
    }

    async fn dispatch(
        &self,
        m: &Membership,
        id: Option<String>,
        message: ClientMessage,
    ) -> Result<Option<ServerMessage>, Refusal> {
        let now = Instant::now();
        match message {
            ClientMessage::Publish { sdp } => self.publish(m, id, sdp).await.map(Some),
            ClientMessage::Subscribe {
                identity,
                sdp: Some(sdp),
            } => self.subscribe(m, id, identity, sdp).await.map(Some),
            ClientMessage::Subscribe {
                identity,
                sdp: None,
            } => {
                self.subscribe_shared(m, identity).await?;
                Ok(None)
            }
            ClientMessage::Answer { sdp } => {
                self.answer_shared(m, sdp).await?;
                Ok(None)
            }
            ClientMessage::Unsubscribe { identity } => {
                let ended = self.with_member(m, |p| {
                    p.shared.wanted.remove(&identity);
                    Ok(p.subscriptions
                        .remove(&identity)
                        .map(|s| (identity.clone(), s)))
                })?;
                self.spawn_renegotiate(&m.room, &m.identity);
                if let Some((publisher, session)) = ended {
                    if let Ok(key) = feed_key(&m.room, &publisher) {
                        self.close_sessions(vec![(key, session)]);
                    }
                }
                Ok(None)
            }
            ClientMessage::SubscriberFailed { session, reason } => {
                let Some(session) = session.parse().ok().map(SessionId) else {
                    return Err((ErrorCode::BadRequest, "no such session".to_string()));
                };
                let reason = reason.unwrap_or_default();
                let reason: String = reason.chars().take(200).collect();
                tracing::info!(room = %m.room, identity = %m.identity, %session, %reason, "the client's subscriber connection failed: a new one is offered");
                self.renew_shared(&m.room, &m.identity, Some(session));
                Ok(None)
            }
            ClientMessage::Trickle { session, candidate } => {
                self.trickle(m, &session, candidate).await?;
                Ok(None)
            }
            ClientMessage::Unpublish => {
                let ended = self.with_room(m, |room| Ok(room.unpublish(&m.identity, None, now)))?;
                self.close_sessions(ended.into_iter().collect());
                Ok(None)
            }
            ClientMessage::Mute { kind, muted } => self.with_room(m, |room| {
                room.mute(&m.identity, kind, muted, now);
                Ok(None)
            }),
            ClientMessage::Update { name, metadata } => self.with_room(m, |room| {
                room.update(&m.identity, name, metadata, now)?;
                Ok(None)
            }),
            ClientMessage::Request => self.with_room(m, |room| {
                room.request(&m.identity, now)?;
                Ok(None)
            }),
            ClientMessage::Invite { identity } => self.with_room(m, |room| {
                room.invite(&m.identity, &identity, now)?;
                Ok(None)
            }),
            ClientMessage::Accept { identity } => self.with_room(m, |room| {
                room.accept(&m.identity, &identity, now)?;
                Ok(None)
            }),
            ClientMessage::Reject { identity } => self.with_room(m, |room| {
                room.reject(&m.identity, &identity, now)?;
                Ok(None)
            }),
            ClientMessage::Kick { identity, to } => {
                let (ended, hosts_gone) = self.with_room(m, |room| {
                    let ended = room.kick(&m.identity, &identity, to, now)?;
                    Ok((ended, room.take_hosts_gone()))
                })?;
                self.close_sessions(ended);
                if hosts_gone {
                    self.hosts_gone(&m.room);
                }
                Ok(None)
            }
            // The handler closes the socket; `disconnected(left)` removes.
            ClientMessage::Leave => Ok(None),
            // The signaling handler runs these (they need the mixes).
            ClientMessage::Mix { .. } | ClientMessage::MixStop => Ok(None),
            ClientMessage::Ping => Ok(Some(ServerMessage::Pong { id })),
        }
    }

    /// Runs `f` on the sender's room if the sender is still its member on
    /// this connection.
    fn with_room<T>(
        &self,
        m: &Membership,
        f: impl FnOnce(&mut Room) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut rooms = self.inner.rooms.lock();
        match rooms.get_mut(&m.room) {
            Some(room) if room.is_member(&m.identity, m.conn) => f(room),
            _ => Err(gone()),
        }
    }

    /// Whether the sender is (still) a host of its room.
    pub fn is_host(&self, m: &Membership) -> bool {
        self.with_member(m, |p| Ok(p.info.role == crate::access::Role::Host))
            .unwrap_or(false)
    }

    fn with_member<T>(
        &self,
        m: &Membership,
        f: impl FnOnce(&mut super::state::Participant) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut rooms = self.inner.rooms.lock();
        let room = rooms.get_mut(&m.room).ok_or_else(gone)?;
        f(room.member(&m.identity, m.conn).ok_or_else(gone)?)
    }

    fn rtc(&self) -> Result<&RtcService, Refusal> {
        self.inner.rtc.as_ref().ok_or((
            ErrorCode::Unavailable,
            "WebRTC is disabled on this server".to_string(),
        ))
    }

    async fn publish(
        &self,
        m: &Membership,
        id: Option<String>,
        sdp: String,
    ) -> Result<ServerMessage, Refusal> {
        let rtc = self.rtc()?.clone();
        let max = self.inner.config.max_publishers;
        let key = feed_key(&m.room, &m.identity).map_err(|e| (ErrorCode::BadRequest, e))?;
        // Reserve a publisher slot, ending an earlier publication first.
        let previous = self.with_room(m, |room| {
            let others = room.publishers();
            let name = room.name.clone();
            let p = room.member(&m.identity, m.conn).ok_or_else(gone)?;
            if !p.info.grants.publish {
                return Err((
                    ErrorCode::NotGranted,
                    "publishing is not granted: an audience member must be accepted on stage first"
                        .to_string(),
                ));
            }
            let previous = match p.publication {
                Publication::Pending => {
                    return Err((
                        ErrorCode::BadRequest,
                        "a publish offer is already being answered".to_string(),
                    ))
                }
                Publication::Live(s) => Some(s),
                Publication::None if others >= max => {
                    return Err((
                        ErrorCode::RoomFull,
                        format!("room {name} already has {max} publishers (rooms.max_publishers)"),
                    ))
                }
                Publication::None => None,
            };
            p.publication = Publication::Pending;
            Ok(previous)
        })?;
        if let Some(s) = previous {
            rtc.delete(key.clone(), s).await;
        }
        let tracks = offered_tracks(&sdp);
        let offered = rtc
            .offer_watched(Direction::Publish, key.clone(), sdp)
            .await;
        let now = Instant::now();
        let (session, answer, closed) = match offered {
            Ok(ok) => ok,
            Err(e) => {
                let mut rooms = self.inner.rooms.lock();
                // A newer connection's own offer may be pending by now.
                if let Some(p) = rooms
                    .get_mut(&m.room)
                    .and_then(|r| r.member(&m.identity, m.conn))
                    .filter(|p| p.publication == Publication::Pending)
                {
                    p.publication = Publication::None;
                }
                return Err(offer_refusal(e));
            }
        };
        let live = {
            let mut rooms = self.inner.rooms.lock();
            rooms.get_mut(&m.room).is_some_and(|room| {
                room.is_member(&m.identity, m.conn)
                    && room.published(&m.identity, session, tracks, now)
            })
        };
        if !live {
            // Left (or was replaced by a new connection) while the offer
            // was answered.
            self.close_sessions(vec![(key, session)]);
            return Err(gone());
        }
        tracing::info!(room = %m.room, identity = %m.identity, %session, "participant publishing");
        // Auto-subscribers get it on their subscriber connections.
        let others: Vec<String> = self
            .inner
            .rooms
            .lock()
            .get(&m.room)
            .map(|r| r.participants().map(|p| p.info.identity.clone()).collect())
            .unwrap_or_default();
        for identity in others {
            self.spawn_renegotiate(&m.room, &identity);
        }
        let this = self.clone();
        let (room, identity) = (m.room.clone(), m.identity.clone());
        tokio::spawn(async move {
            let _ = closed.await;
            let mut rooms = this.inner.rooms.lock();
            if let Some(r) = rooms.get_mut(&room) {
                r.unpublish(&identity, Some(session), Instant::now());
            }
        });
        Ok(ServerMessage::PublishAnswer {
            id,
            session: session.0.to_string(),
            sdp: answer,
        })
    }

    async fn subscribe(
        &self,
        m: &Membership,
        id: Option<String>,
        publisher: String,
        sdp: String,
    ) -> Result<ServerMessage, Refusal> {
        let rtc = self.rtc()?.clone();
        let (key, previous) = self.with_room(m, |room| {
            let key = subscribable(room, m, &publisher)?;
            let p = room.member(&m.identity, m.conn).ok_or_else(gone)?;
            Ok((key, p.subscriptions.remove(&publisher)))
        })?;
        if let Some(s) = previous {
            rtc.delete(key.clone(), s).await;
        }
        let (session, answer, closed) = rtc
            .offer_watched(Direction::Play, key.clone(), sdp)
            .await
            .map_err(|e| match e {
                OfferError::NotLive(_) => (
                    ErrorCode::NotPublishing,
                    format!("{publisher} publishes nothing"),
                ),
                e => offer_refusal(e),
            })?;
        let kept = self
            .with_member(m, |p| {
                p.subscriptions.insert(publisher.clone(), session);
                Ok(())
            })
            .is_ok();
        if !kept {
            self.close_sessions(vec![(key, session)]);
            return Err(gone());
        }
        let this = self.clone();
        let (room, identity, from) = (m.room.clone(), m.identity.clone(), publisher.clone());
        tokio::spawn(async move {
            let _ = closed.await;
            let mut rooms = this.inner.rooms.lock();
            if let Some(p) = rooms.get_mut(&room).and_then(|r| r.get_mut(&identity)) {
                if p.subscriptions.get(&from) == Some(&session) {
                    p.subscriptions.remove(&from);
                }
            }
        });
        Ok(ServerMessage::SubscribeAnswer {
            id,
            identity: publisher,
            session: session.0.to_string(),
            sdp: answer,
        })
    }

    /// Adds a publication to the participant's subscriber connection
    /// (opening it the first time); the server's offer follows.
    async fn subscribe_shared(&self, m: &Membership, publisher: String) -> Result<(), Refusal> {
        let rtc = self.rtc()?.clone();
        self.with_room(m, |room| {
            subscribable(room, m, &publisher)?;
            let p = room.member(&m.identity, m.conn).ok_or_else(gone)?;
            p.shared.wanted.insert(publisher.clone());
            Ok(())
        })?;
        self.open_shared(&rtc, &m.room, &m.identity).await?;
        self.renegotiate(&m.room, &m.identity).await;
        Ok(())
    }

    /// Opens the participant's subscriber connection if it wants one and
    /// has none.
    async fn open_shared(
        &self,
        rtc: &RtcService,
        room: &str,
        identity: &str,
    ) -> Result<(), Refusal> {
        let open = {
            let mut rooms = self.inner.rooms.lock();
            let p = rooms
                .get_mut(room)
                .and_then(|r| r.get_mut(identity))
                .ok_or_else(gone)?;
            let open = p.shared.session.is_none() && !p.shared.busy && !p.shared.wanted.is_empty();
            if open {
                p.shared.busy = true;
            }
            open
        };
        if !open {
            return Ok(());
        }
        let opened = rtc.shared_open().await;
        // Some(kept) when the participant still waits for this connection.
        let kept = {
            let mut rooms = self.inner.rooms.lock();
            match rooms.get_mut(room).and_then(|r| r.get_mut(identity)) {
                None => None,
                // A new connection reset it meanwhile (a rejoin): this one
                // is not wanted.
                Some(p) if !p.shared.busy || p.shared.session.is_some() => Some(false),
                Some(p) => {
                    p.shared.busy = false;
                    if let Ok((session, _)) = &opened {
                        p.shared.session = Some(*session);
                    }
                    Some(true)
                }
            }
        };
        let (session, closed) = opened.map_err(offer_refusal)?;
        match kept {
            Some(true) => {}
            Some(false) | None => {
                rtc.close(session).await;
                return kept.map(|_| ()).ok_or_else(gone);
            }
        }
        let this = self.clone();
        let (room, identity) = (room.to_owned(), identity.to_owned());
        tokio::spawn(async move {
            let _ = closed.await;
            let mut rooms = this.inner.rooms.lock();
            if let Some(p) = rooms.get_mut(&room).and_then(|r| r.get_mut(&identity)) {
                if p.shared.session == Some(session) {
                    // Gone (ICE timed out, say): what it should carry stays,
                    // and a new connection is offered.
                    p.shared.reset();
                }
            }
        });
        Ok(())
    }

    async fn answer_shared(&self, m: &Membership, sdp: String) -> Result<(), Refusal> {
        let rtc = self.rtc()?.clone();
        let session = self.with_member(m, |p| {
            p.shared
                .session
                .ok_or((ErrorCode::BadRequest, "no offer to answer".to_string()))
        })?;
        let answered = rtc.shared_answer(session, sdp).await;
        let _ = self.with_member(m, |p| {
            p.shared.busy = false;
            Ok(())
        });
        answered.map_err(offer_refusal)?;
        // Changes that came while the offer was out.
        self.spawn_renegotiate(&m.room, &m.identity);
        Ok(())
    }

    /// Closes a participant's subscriber connection (`only` that session,
    /// when given and still current) and offers a new one carrying what the
    /// old one should have: a client that cannot use its connection, or
    /// one whose retired m-lines pile up, starts afresh.
    fn renew_shared(&self, room: &str, identity: &str, only: Option<SessionId>) {
        let closed = {
            let mut rooms = self.inner.rooms.lock();
            let Some(p) = rooms.get_mut(room).and_then(|r| r.get_mut(identity)) else {
                return;
            };
            let Some(session) = p.shared.session else {
                return;
            };
            if only.is_some_and(|s| s != session) {
                return; // an older one, gone already
            }
            p.shared.reset();
            feed_key(room, identity).ok().map(|key| (key, session))
        };
        self.close_sessions(closed.into_iter().collect());
        self.spawn_renegotiate(room, identity);
    }

    fn spawn_renegotiate(&self, room: &str, identity: &str) {
        let this = self.clone();
        let (room, identity) = (room.to_owned(), identity.to_owned());
        tokio::spawn(async move { this.renegotiate(&room, &identity).await });
    }

    /// Brings a participant's subscriber connection to what it should
    /// carry: one offer, when there is a change and no offer is out. Opens
    /// the connection the first time.
    async fn renegotiate(&self, room: &str, identity: &str) {
        let Some(rtc) = self.inner.rtc.clone() else {
            return;
        };
        if self.open_shared(&rtc, room, identity).await.is_err() {
            return;
        }
        let plan = {
            let mut rooms = self.inner.rooms.lock();
            let Some(p) = rooms.get_mut(room).and_then(|r| r.get_mut(identity)) else {
                return;
            };
            let Some(session) = p.shared.session.filter(|_| !p.shared.busy) else {
                return;
            };
            let (add, remove) = p.shared.diff();
            if add.is_empty() && remove.is_empty() {
                return;
            }
            p.shared.busy = true;
            (session, add, remove)
        };
        let (session, add, remove) = plan;
        let keys = |ids: &[String]| -> Vec<_> {
            ids.iter().filter_map(|i| feed_key(room, i).ok()).collect()
        };
        let offered = rtc.shared_update(session, keys(&add), keys(&remove)).await;
        let mut rooms = self.inner.rooms.lock();
        let Some(r) = rooms.get_mut(room) else {
            return;
        };
        let Some(p) = r.get_mut(identity) else {
            return;
        };
        if p.shared.session != Some(session) {
            // Closed meanwhile (a rejoin): the new connection gets its own.
            return;
        }
        if let Err(OfferError::Renew(retired)) = &offered {
            tracing::info!(%room, %identity, %session, retired, "subscriber connection renewed: too many retired m-lines");
            drop(rooms);
            self.renew_shared(room, identity, Some(session));
            return;
        }
        for i in &remove {
            p.shared.offered.remove(i);
            p.shared.stale.remove(i);
            p.shared.paused.remove(i);
            p.shared.sources.remove(i);
        }
        match offered {
            Ok(Some((sdp, tracks))) => {
                let added: BTreeSet<String> =
                    tracks.iter().map(|t| t.key.stream().to_owned()).collect();
                for i in &add {
                    if !added.contains(i) {
                        // Not live any more: not retried.
                        p.shared.wanted.remove(i);
                    }
                }
                p.shared.offered.extend(added);
                let tracks = tracks
                    .into_iter()
                    .map(|t| OfferTrack {
                        mid: t.mid,
                        identity: t.key.stream().to_owned(),
                        kind: match t.kind {
                            costream_rtc::MediaKind::Audio => TrackKind::Audio,
                            costream_rtc::MediaKind::Video => TrackKind::Video,
                        },
                    })
                    .collect();
                r.send_to(
                    identity,
                    &ServerMessage::Offer {
                        session: session.0.to_string(),
                        sdp,
                        tracks,
                    },
                );
            }
            Ok(None) => {
                for i in &add {
                    p.shared.wanted.remove(i);
                }
                p.shared.busy = false;
            }
            Err(e) => {
                for i in &add {
                    p.shared.wanted.remove(i);
                }
                p.shared.busy = false;
                let (code, message) = offer_refusal(e);
                r.send_to(identity, &ServerMessage::error(code, message));
            }
        }
    }

    async fn trickle(
        &self,
        m: &Membership,
        session: &str,
        candidate: String,
    ) -> Result<(), Refusal> {
        let rtc = self.rtc()?.clone();
        let session = session
            .parse()
            .ok()
            .map(SessionId)
            .ok_or_else(|| (ErrorCode::BadRequest, "no such session".to_string()))?;
        let own = self.with_member(m, |p| {
            Ok(p.publication == Publication::Live(session)
                || p.shared.session == Some(session)
                || p.subscriptions.values().any(|s| *s == session))
        })?;
        if !own {
            return Err((ErrorCode::BadRequest, "no such session".to_string()));
        }
        let line = candidate.trim().trim_start_matches("a=").to_owned();
        if line.is_empty() {
            return Ok(()); // end of candidates
        }
        rtc.add_candidates(session, vec![line])
            .await
            .map_err(|e| (ErrorCode::BadRequest, e.to_string()))
    }

    /// Ends grace periods that ran out and rooms empty for too long.
    fn reap(&self, now: Instant) {
        let grace = self.inner.config.reconnect_grace;
        let empty = self.inner.config.empty_timeout;
        let budget = self.inner.config.subscriber_budget_kbps * 1000;
        let mut close = Vec::new();
        let mut pauses = Vec::new();
        let mut offers = Vec::new();
        let mut hosts_gone = Vec::new();
        {
            let mut rooms = self.inner.rooms.lock();
            let levels = self.inner.rtc.as_ref().map(|r| r.levels.clone());
            for room in rooms.values_mut() {
                close.extend(room.expire(now, grace));
                if room.take_hosts_gone() {
                    hosts_gone.push(room.name.clone());
                }
                for identity in room.shared_due() {
                    offers.push((room.name.clone(), identity));
                }
                if let Some(levels) = &levels {
                    room.update_speakers(|s| levels.get(s, now), now);
                }
            }
            if budget > 0 {
                let mut keys: Vec<_> = rooms.values().flat_map(|r| r.publication_keys()).collect();
                // Their simulcast encodings' streams.
                keys.extend(
                    self.inner
                        .hub
                        .streams()
                        .iter()
                        .map(|s| s.key().clone())
                        .filter(|k| super::is_room_feed(k) && k.stream().contains("~sim-")),
                );
                let mut rates = self.inner.rates.lock();
                rates.sample(&self.inner.hub, &keys, now);
                for room in rooms.values_mut() {
                    pauses.extend(room.apply_budget(budget, &rates));
                }
            }
            rooms.retain(|name, room| {
                let keep = !room.is_empty() || room.empty_since.is_none_or(|t| now < t + empty);
                if !keep {
                    tracing::info!(room = %name, "room closed after being empty for {empty:?}");
                    room.finished();
                }
                keep
            });
        }
        self.close_sessions(close);
        for room in hosts_gone {
            self.hosts_gone(&room);
        }
        for (room, identity) in offers {
            self.spawn_renegotiate(&room, &identity);
        }
        if let (Some(rtc), false) = (self.inner.rtc.clone(), pauses.is_empty()) {
            tokio::spawn(async move {
                for pause in pauses {
                    match pause {
                        Pause::Own(session, paused) => rtc.pause_video(session, paused).await,
                        Pause::Shared(session, key, paused) => {
                            rtc.shared_pause(session, key, paused).await
                        }
                        Pause::Select(session, key, source) => {
                            rtc.shared_select(session, key, source).await
                        }
                    }
                }
            });
        }
    }

    fn close_sessions(&self, sessions: Vec<SessionRef>) {
        let Some(rtc) = self.inner.rtc.clone() else {
            return;
        };
        if sessions.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for (_, id) in sessions {
                rtc.close(id).await;
            }
        });
    }

    pub fn list(&self) -> Vec<RoomSummary> {
        let now = Instant::now();
        let rooms = self.inner.rooms.lock();
        let mut list: Vec<RoomSummary> = rooms
            .values()
            .map(|r| RoomSummary {
                room: r.name.clone(),
                participants: r.participants().count(),
                publishers: r.publishers(),
                age_secs: now.duration_since(r.created).as_secs(),
            })
            .collect();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        list
    }
}

/// The admin API's operations.
impl Rooms {
    /// Creates an empty room (kept for `empty_timeout` unless joined);
    /// false when it exists.
    pub fn create_room(&self, name: &str) -> Result<bool, String> {
        feed_key(name, "x")?;
        let mut rooms = self.inner.rooms.lock();
        if rooms.contains_key(name) {
            return Ok(false);
        }
        tracing::info!(room = %name, "room created through the API");
        let room = Room::new(name, Instant::now(), self.inner.hooks.clone());
        rooms.insert(name.to_owned(), room);
        Ok(true)
    }

    /// Closes a room: everybody is removed; false when there is no such room.
    pub fn close_room(&self, name: &str) -> bool {
        let close = {
            let mut rooms = self.inner.rooms.lock();
            let Some(mut room) = rooms.remove(name) else {
                return false;
            };
            tracing::info!(room = %name, "room closed through the API");
            let close = room.clear(Instant::now());
            room.finished();
            (close, room.take_hosts_gone())
        };
        self.close_sessions(close.0);
        if close.1 {
            self.hosts_gone(name);
        }
        true
    }

    /// Removes a participant; false when there is no such participant.
    pub fn remove_participant(&self, room: &str, identity: &str) -> bool {
        let close = {
            let mut rooms = self.inner.rooms.lock();
            let Some(r) = rooms.get_mut(room).filter(|r| r.get(identity).is_some()) else {
                return false;
            };
            let close = r.remove(identity, LeftReason::Removed, Instant::now());
            (close, r.take_hosts_gone())
        };
        self.close_sessions(close.0);
        if close.1 {
            self.hosts_gone(room);
        }
        true
    }

    /// Server-side mute of a participant's audio or video: the server stops
    /// passing it on, and everybody gets `track_muted`.
    pub async fn mute_participant(
        &self,
        room: &str,
        identity: &str,
        kind: super::protocol::TrackKind,
        muted: bool,
    ) -> Result<(), Refusal> {
        let session = {
            let mut rooms = self.inner.rooms.lock();
            let r = rooms.get_mut(room).ok_or_else(|| no_room(room))?;
            let Some(p) = r.get(identity) else {
                return Err(no_participant(room, identity));
            };
            let Publication::Live(session) = p.publication else {
                return Err((
                    ErrorCode::NotPublishing,
                    format!("{identity} publishes nothing"),
                ));
            };
            r.mute(identity, kind, muted, Instant::now());
            session
        };
        let video = kind == super::protocol::TrackKind::Video;
        self.rtc()?.mute(session, video, muted).await;
        Ok(())
    }

    /// Changes a participant's role (grants follow it), grants, name or
    /// metadata.
    pub fn update_participant(
        &self,
        room: &str,
        identity: &str,
        change: ParticipantChange,
    ) -> Result<super::protocol::ParticipantInfo, Refusal> {
        let now = Instant::now();
        let (info, close) = {
            let mut rooms = self.inner.rooms.lock();
            let r = rooms.get_mut(room).ok_or_else(|| no_room(room))?;
            if r.get(identity).is_none() {
                return Err(no_participant(room, identity));
            }
            let mut close = Vec::new();
            if let Some(role) = change.role {
                close.extend(r.set_role(identity, role, now));
            }
            if let Some(grants) = change.grants {
                close.extend(r.set_grants(identity, grants, now));
            }
            if change.name.is_some() || change.metadata.is_some() {
                r.update(identity, change.name, change.metadata, now)?;
            }
            let info = r.get(identity).map(|p| p.info.clone());
            (info, close)
        };
        self.close_sessions(close);
        info.ok_or_else(|| no_participant(room, identity))
    }

    /// A room's live publications (hub streams), hosts first, then in the
    /// order they started publishing, each with whether its publisher is a
    /// host; empty when there is no such room.
    pub fn publications(&self, room: &str) -> Vec<(StreamKey, bool)> {
        let rooms = self.inner.rooms.lock();
        let Some(r) = rooms.get(room) else {
            return Vec::new();
        };
        let mut live: Vec<((bool, u64), StreamKey)> = r
            .participants()
            .filter_map(|p| match p.publication {
                Publication::Live(s) => Some((
                    (p.info.role != crate::access::Role::Host, s.0),
                    feed_key(room, &p.info.identity).ok()?,
                )),
                _ => None,
            })
            .collect();
        live.sort_by_key(|(rank, _)| *rank);
        live.into_iter()
            .map(|((guest, _), k)| (k, !guest))
            .collect()
    }

    /// A participant's current grants, `None` when they are not (or no
    /// longer) in the room: whether a room token still admits its bearer
    /// to the room's media (a kicked participant keeps their token).
    pub fn member_grants(&self, room: &str, identity: &str) -> Option<crate::access::Grants> {
        let rooms = self.inner.rooms.lock();
        rooms.get(room)?.get(identity).map(|p| p.info.grants)
    }

    /// A room and its participants, `None` when there is no such room.
    pub fn room(&self, name: &str) -> Option<(RoomSummary, Vec<super::protocol::ParticipantInfo>)> {
        let now = Instant::now();
        let rooms = self.inner.rooms.lock();
        let r = rooms.get(name)?;
        Some((
            RoomSummary {
                room: r.name.clone(),
                participants: r.participants().count(),
                publishers: r.publishers(),
                age_secs: now.duration_since(r.created).as_secs(),
            },
            r.participants().map(|p| p.info.clone()).collect(),
        ))
    }
}

/// What `update_participant` changes; `None` leaves it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantChange {
    pub role: Option<crate::access::Role>,
    pub grants: Option<crate::access::Grants>,
    pub name: Option<String>,
    pub metadata: Option<String>,
}

/// Checks that the sender may subscribe to `publisher` (it is in the room,
/// publishes, is someone else, and subscribing is granted); its stream.
fn subscribable(room: &Room, m: &Membership, publisher: &str) -> Result<StreamKey, Refusal> {
    let live = match room.get(publisher) {
        None => return Err(no_participant(&room.name, publisher)),
        Some(p) => matches!(p.publication, Publication::Live(_)),
    };
    if !live {
        return Err((
            ErrorCode::NotPublishing,
            format!("{publisher} publishes nothing"),
        ));
    }
    if publisher == m.identity {
        return Err((
            ErrorCode::BadRequest,
            "one does not subscribe to oneself".to_string(),
        ));
    }
    let me = room.get(&m.identity).ok_or_else(gone)?;
    if !me.info.grants.subscribe {
        return Err((
            ErrorCode::NotGranted,
            "subscribing is not granted".to_string(),
        ));
    }
    feed_key(&room.name, publisher).map_err(|e| (ErrorCode::BadRequest, e))
}

fn no_room(room: &str) -> Refusal {
    (ErrorCode::UnknownParticipant, format!("no room {room}"))
}

fn no_participant(room: &str, identity: &str) -> Refusal {
    (
        ErrorCode::UnknownParticipant,
        format!("{identity} is not in room {room}"),
    )
}

/// Every `QUALITY_INTERVAL`: the participants' connection quality, from
/// their sessions' RTCP figures.
async fn quality_loop(weak: std::sync::Weak<Inner>) {
    const QUALITY_INTERVAL: Duration = Duration::from_secs(2);
    let mut tick = tokio::time::interval(QUALITY_INTERVAL);
    loop {
        tick.tick().await;
        let Some(inner) = weak.upgrade() else { return };
        let Some(rtc) = inner.rtc.clone() else { return };
        if inner.rooms.lock().is_empty() {
            continue;
        }
        let stats: HashMap<SessionId, _> = rtc
            .sessions()
            .await
            .into_iter()
            .filter_map(|s| {
                Some((
                    SessionId(s.id.parse().ok()?),
                    (s.connected, s.rtt_ms, s.loss),
                ))
            })
            .collect();
        let now = Instant::now();
        for room in inner.rooms.lock().values_mut() {
            room.update_quality(&stats, now);
        }
    }
}

fn gone() -> Refusal {
    (
        ErrorCode::UnknownParticipant,
        "this connection is no longer in the room".to_string(),
    )
}

fn offer_refusal(e: OfferError) -> Refusal {
    match e {
        OfferError::Stopped
        | OfferError::Unavailable(_)
        | OfferError::Rtc(RtcError::TooManySessions(_)) => (ErrorCode::Unavailable, e.to_string()),
        OfferError::Busy(_) => (
            ErrorCode::BadOffer,
            format!("{e} (the previous publication is still ending; try again)"),
        ),
        e => (ErrorCode::BadOffer, e.to_string()),
    }
}
