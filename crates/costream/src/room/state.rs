//! One room's state and its rules: who is in it, who publishes, link-mic
//! requests and invitations. No I/O: a change is told to the participants
//! by queueing messages on their connections, and the WebRTC sessions a
//! change ends are returned for the caller to close.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_hub::StreamKey;
use costream_rtc::SessionId;
use tokio::sync::mpsc;

use super::protocol::{
    ErrorCode, KickTo, LeftReason, LinkMicAction, ParticipantInfo, Quality, QualityUpdate,
    ServerMessage, Speaker, TrackInfo, TrackKind,
};
use crate::access::{Claims, Role};

/// Messages waiting for a participant's WebSocket. Bounded: a client that
/// does not read is disconnected rather than buffered without end.
pub const OUTBOX: usize = 256;
/// WebSocket close code for a participant removed from the room.
pub const CLOSE_KICKED: u16 = 4403;
/// WebSocket close code for a connection replaced by a newer one.
pub const CLOSE_REPLACED: u16 = 4409;
const MAX_NAME: usize = 128;
const MAX_METADATA: usize = 4096;

pub type Refusal = (ErrorCode, String);

/// A change of the bandwidth budget: a subscription's video paused (true)
/// or resumed, on its own connection or on the subscriber connection.
#[derive(Debug, Clone)]
pub enum Pause {
    Own(SessionId, bool),
    Shared(SessionId, StreamKey, bool),
    /// On the subscriber connection, forward this hub stream (a simulcast
    /// encoding) for the publication.
    Select(SessionId, StreamKey, StreamKey),
}

/// A WebRTC session to close: its hub stream and id.
pub type SessionRef = (StreamKey, SessionId);

#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A JSON text frame, serialized once for every recipient.
    Text(Arc<str>),
    /// Close the WebSocket with this code and reason.
    Close(u16, String),
}

#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub tx: mpsc::Sender<Outgoing>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    None,
    /// An offer is being answered; it counts against the publisher limit.
    Pending,
    Live(SessionId),
}

#[derive(Debug)]
pub struct Participant {
    pub info: ParticipantInfo,
    /// `None` while disconnected (within the grace period).
    pub conn: Option<Conn>,
    pub disconnected_at: Option<Instant>,
    pub publication: Publication,
    /// Subscriptions by publisher identity.
    pub subscriptions: HashMap<String, SessionId>,
    /// Subscription sessions whose video the budget paused.
    pub video_paused: HashSet<SessionId>,
    /// The server-offered subscriber connection, once asked for.
    pub shared: SharedPc,
    /// Every publication is added to the subscriber connection as it starts.
    pub auto_subscribe: bool,
}

/// A participant's subscriber connection: what it should carry, what was
/// offered, and whether an offer is out.
#[derive(Debug, Default)]
pub struct SharedPc {
    pub session: Option<SessionId>,
    /// Publications the participant subscribed to through it.
    pub wanted: BTreeSet<String>,
    /// Publications its last offer carries.
    pub offered: BTreeSet<String>,
    /// Offered publications that ended (and may come back): their tracks
    /// are replaced at the next offer.
    pub stale: BTreeSet<String>,
    /// Publications whose video the budget paused.
    pub paused: BTreeSet<String>,
    /// The simulcast encoding forwarded per publication, when the budget
    /// chose one (otherwise the publication's own stream).
    pub sources: BTreeMap<String, StreamKey>,
    /// An offer is being made or waits for its answer.
    pub busy: bool,
}

impl SharedPc {
    /// Forgets the connection (closed, failed, or given up) but not what it
    /// should carry, so that a new one is offered with it; returns the old
    /// session.
    pub fn reset(&mut self) -> Option<SessionId> {
        let old = std::mem::take(self);
        self.wanted = old.wanted;
        old.session
    }

    /// (add, remove) to bring the connection to `wanted`.
    pub fn diff(&self) -> (Vec<String>, Vec<String>) {
        let remove: Vec<String> = self
            .offered
            .iter()
            .filter(|i| !self.wanted.contains(*i) || self.stale.contains(*i))
            .cloned()
            .collect();
        let add: Vec<String> = self
            .wanted
            .iter()
            .filter(|i| !self.offered.contains(*i) || self.stale.contains(*i))
            .cloned()
            .collect();
        (add, remove)
    }
}

#[derive(Debug)]
pub struct Room {
    pub name: String,
    participants: BTreeMap<String, Participant>,
    /// Audience members who asked to go on stage.
    requests: BTreeSet<String>,
    /// Invited audience members and who invited them.
    invites: BTreeMap<String, String>,
    pub created: Instant,
    pub empty_since: Option<Instant>,
    hooks: super::webhooks::Webhooks,
    /// The active speakers last announced.
    speakers: Vec<String>,
    /// The connection quality last announced, per participant.
    quality: HashMap<String, Quality>,
    /// The last host left for good (see `take_hosts_gone`).
    hosts_gone: bool,
}

/// A connection joining a room, with what it asks for.
pub struct Joining<'a> {
    pub conn: Conn,
    pub auto_subscribe: bool,
    /// On a reconnect: the sessions of the previous connection the client
    /// still holds.
    pub keep: &'a [SessionId],
}

/// The hub stream a participant publishes: `room.ROOM/IDENTITY`.
pub fn feed_key(room: &str, identity: &str) -> Result<StreamKey, String> {
    StreamKey::new(&format!("room.{room}"), identity).map_err(|e| e.to_string())
}

impl Room {
    pub fn new(name: &str, now: Instant, hooks: super::webhooks::Webhooks) -> Room {
        hooks.send("room_started", name, serde_json::json!({}));
        Room {
            name: name.to_owned(),
            participants: BTreeMap::new(),
            requests: BTreeSet::new(),
            invites: BTreeMap::new(),
            created: now,
            empty_since: Some(now),
            hooks,
            speakers: Vec::new(),
            quality: HashMap::new(),
            hosts_gone: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    pub fn participants(&self) -> impl Iterator<Item = &Participant> {
        self.participants.values()
    }

    pub fn get(&self, identity: &str) -> Option<&Participant> {
        self.participants.get(identity)
    }

    pub fn get_mut(&mut self, identity: &str) -> Option<&mut Participant> {
        self.participants.get_mut(identity)
    }

    /// The participant on connection `conn`, if that connection is current.
    pub fn member(&mut self, identity: &str, conn: u64) -> Option<&mut Participant> {
        self.participants
            .get_mut(identity)
            .filter(|p| p.conn.as_ref().is_some_and(|c| c.id == conn))
    }

    pub fn is_member(&self, identity: &str, conn: u64) -> bool {
        self.participants
            .get(identity)
            .is_some_and(|p| p.conn.as_ref().is_some_and(|c| c.id == conn))
    }

    pub fn publishers(&self) -> usize {
        self.participants
            .values()
            .filter(|p| p.publication != Publication::None)
            .count()
    }

    /// Queues `msg` for every connected participant. One that cannot take
    /// it (its outbox is full) loses its connection and enters the grace
    /// period.
    pub fn broadcast(&mut self, msg: &ServerMessage, now: Instant) {
        self.hooks.on_broadcast(&self.name, msg);
        let text: Arc<str> = msg.to_json().into();
        let mut slow = Vec::new();
        for p in self.participants.values_mut() {
            if let Some(c) = &p.conn {
                if c.tx.try_send(Outgoing::Text(text.clone())).is_err() {
                    slow.push(p.info.identity.clone());
                }
            }
        }
        for identity in slow {
            tracing::info!(room = %self.name, %identity, "participant does not read its messages: disconnected");
            self.disconnect(&identity, None, now);
        }
    }

    /// Adds the token's participant, or gives a returning one its new
    /// connection (replacing a live one if need be): it keeps its role,
    /// grants and place, but what its old connection published or
    /// received ends now, but for the sessions in `keep` (those a client
    /// that only lost its WebSocket still holds): a reloaded page holds
    /// none, so its old publication never lingers as a ghost. Returns the
    /// `joined` message for it and the sessions to close.
    pub fn join(
        &mut self,
        claims: &Claims,
        joining: Joining<'_>,
        now: Instant,
        max_participants: usize,
        grace: Duration,
    ) -> Result<(ServerMessage, Vec<SessionRef>), Refusal> {
        let Joining {
            conn,
            auto_subscribe,
            keep,
        } = joining;
        let identity = claims.sub.clone();
        let mut close = Vec::new();
        if self.participants.contains_key(&identity) {
            // Before the new connection is attached: it is not told of its
            // own old publication ending (its `joined` has no tracks).
            close = self.end_connection_media(&identity, keep, now);
        }
        let resumed = match self.participants.get_mut(&identity) {
            Some(p) => {
                if let Some(old) = p.conn.replace(conn) {
                    let replaced = ServerMessage::error(
                        ErrorCode::Replaced,
                        "another connection joined as this participant",
                    );
                    let _ = old.tx.try_send(Outgoing::Text(replaced.to_json().into()));
                    let _ = old.tx.try_send(Outgoing::Close(
                        CLOSE_REPLACED,
                        "another connection joined as this participant".into(),
                    ));
                }
                p.disconnected_at = None;
                p.info.connected = true;
                p.auto_subscribe = auto_subscribe;
                let info = p.info.clone();
                self.broadcast(
                    &ServerMessage::ParticipantUpdated { participant: info },
                    now,
                );
                true
            }
            None => {
                if self.participants.len() >= max_participants {
                    return Err((
                        ErrorCode::RoomFull,
                        format!(
                            "room {} already has {max_participants} participants (rooms.max_participants)",
                            self.name
                        ),
                    ));
                }
                let info = ParticipantInfo {
                    identity: identity.clone(),
                    name: claims.name.clone().unwrap_or_else(|| identity.clone()),
                    role: claims.role,
                    grants: claims.grants,
                    metadata: String::new(),
                    tracks: Vec::new(),
                    connected: true,
                };
                self.broadcast(
                    &ServerMessage::ParticipantJoined {
                        participant: info.clone(),
                    },
                    now,
                );
                self.participants.insert(
                    identity.clone(),
                    Participant {
                        info,
                        conn: Some(conn),
                        disconnected_at: None,
                        publication: Publication::None,
                        subscriptions: HashMap::new(),
                        video_paused: HashSet::new(),
                        shared: SharedPc::default(),
                        auto_subscribe,
                    },
                );
                false
            }
        };
        self.empty_since = None;
        if auto_subscribe {
            let live: Vec<String> = self
                .participants
                .values()
                .filter(|p| p.info.identity != identity)
                .filter(|p| matches!(p.publication, Publication::Live(_)))
                .map(|p| p.info.identity.clone())
                .collect();
            if let Some(p) = self.participants.get_mut(&identity) {
                if p.info.grants.subscribe {
                    p.shared.wanted.extend(live);
                }
            }
        }
        Ok((self.joined(&identity, resumed, grace), close))
    }

    /// Ends what a participant's connection set up, but for the sessions
    /// in `keep`: its publication (announced as unpublished; an offer
    /// being answered is dropped), its subscriptions and its subscriber
    /// connection. What that connection should carry stays, for the next
    /// one to be offered.
    fn end_connection_media(
        &mut self,
        identity: &str,
        keep: &[SessionId],
        now: Instant,
    ) -> Vec<SessionRef> {
        let Some(p) = self.participants.get_mut(identity) else {
            return Vec::new();
        };
        if p.publication == Publication::Pending {
            p.publication = Publication::None;
        }
        let mut close: Vec<SessionRef> = Vec::new();
        let name = &self.name;
        p.subscriptions.retain(|publisher, id| {
            let kept = keep.contains(id);
            if !kept {
                if let Ok(key) = feed_key(name, publisher) {
                    close.push((key, *id));
                }
            }
            kept
        });
        let subscriptions: HashSet<SessionId> = p.subscriptions.values().copied().collect();
        p.video_paused.retain(|s| subscriptions.contains(s));
        if !p.shared.session.is_some_and(|s| keep.contains(&s)) {
            if let (Some(id), Ok(key)) = (p.shared.reset(), feed_key(name, identity)) {
                close.push((key, id));
            }
        }
        let kept_publication = matches!(p.publication, Publication::Live(s) if keep.contains(&s));
        if !kept_publication {
            close.extend(self.unpublish(identity, None, now));
        }
        close
    }

    fn joined(&self, identity: &str, resumed: bool, grace: Duration) -> ServerMessage {
        let you = self
            .participants
            .get(identity)
            .map(|p| p.info.clone())
            .unwrap_or_else(|| unreachable_participant(identity));
        ServerMessage::Joined {
            room: self.name.clone(),
            resumed,
            reconnect_grace_ms: grace.as_millis() as u64,
            you,
            participants: self
                .participants
                .values()
                .filter(|p| p.info.identity != identity)
                .map(|p| p.info.clone())
                .collect(),
            requests: self.requests.iter().cloned().collect(),
            invites: self.invites.keys().cloned().collect(),
        }
    }

    /// The participant's connection is gone (`conn` is the one that ended,
    /// or `None` for whichever it has): it stays for the grace period.
    pub fn disconnect(&mut self, identity: &str, conn: Option<u64>, now: Instant) -> bool {
        let Some(p) = self.participants.get_mut(identity) else {
            return false;
        };
        if conn.is_some() && p.conn.as_ref().map(|c| c.id) != conn {
            return false;
        }
        p.conn = None;
        p.disconnected_at = Some(now);
        p.info.connected = false;
        let info = p.info.clone();
        self.broadcast(
            &ServerMessage::ParticipantUpdated { participant: info },
            now,
        );
        true
    }

    /// Removes a participant; returns its sessions to close.
    pub fn remove(&mut self, identity: &str, reason: LeftReason, now: Instant) -> Vec<SessionRef> {
        let Some(p) = self.participants.remove(identity) else {
            return Vec::new();
        };
        self.requests.remove(identity);
        self.invites.remove(identity);
        let mut close = self.subscription_refs(&p);
        if let (Some(id), Ok(key)) = (p.shared.session, feed_key(&self.name, identity)) {
            close.push((key, id));
        }
        if let Publication::Live(id) = p.publication {
            if let Ok(key) = feed_key(&self.name, identity) {
                close.push((key, id));
            }
            self.forget_publication(identity);
            self.broadcast(
                &ServerMessage::TrackUnpublished {
                    identity: identity.to_owned(),
                },
                now,
            );
        }
        if let (Some(c), LeftReason::Kicked | LeftReason::Removed | LeftReason::RoomClosed) =
            (&p.conn, reason)
        {
            let _ =
                c.tx.try_send(Outgoing::Close(CLOSE_KICKED, format!("{reason:?}")));
        }
        self.broadcast(
            &ServerMessage::ParticipantLeft {
                identity: identity.to_owned(),
                reason,
            },
            now,
        );
        if self.participants.is_empty() {
            self.empty_since = Some(now);
        }
        if p.info.role == Role::Host && !self.has_host() {
            self.hosts_gone = true;
        }
        tracing::info!(room = %self.name, %identity, ?reason, "participant left");
        close
    }

    /// Whether the room's last host left for good (left, dropped after the
    /// grace, kicked or removed) since the last call: the caller decides
    /// what becomes of the room's mix.
    pub fn take_hosts_gone(&mut self) -> bool {
        std::mem::take(&mut self.hosts_gone)
    }

    fn subscription_refs(&self, p: &Participant) -> Vec<SessionRef> {
        p.subscriptions
            .iter()
            .filter_map(|(publisher, id)| Some((feed_key(&self.name, publisher).ok()?, *id)))
            .collect()
    }

    /// Applies the bandwidth budget to every subscriber; returns the
    /// subscription sessions whose video is to be paused (true) or resumed.
    pub fn apply_budget(&mut self, budget_bps: u64, rates: &super::budget::Rates) -> Vec<Pause> {
        let mut changes = Vec::new();
        // Per live publication: its rank, its bitrate, and its simulcast
        // encodings (hub stream and bitrate, best first) if it has any.
        type Offer = ((u8, u64), u64, Vec<(StreamKey, u64)>);
        let publishers: HashMap<String, Offer> = self
            .participants
            .values()
            .filter_map(|p| {
                let Publication::Live(session) = p.publication else {
                    return None;
                };
                let key = feed_key(&self.name, &p.info.identity).ok()?;
                let bps = rates.get(&key)?;
                let mut layers = rates.layers_of(&key);
                layers.sort_by_key(|l| std::cmp::Reverse(l.1));
                let rank = (u8::from(p.info.role != Role::Host), session.0);
                Some((p.info.identity.clone(), (rank, bps, layers)))
            })
            .collect();
        let mut notes = Vec::new();
        for p in self.participants.values_mut() {
            // Own-connection subscriptions (Some(session)) and those on the
            // subscriber connection (None, which can take a simulcast
            // encoding), under one budget.
            let mut subs: Vec<(
                String,
                Option<SessionId>,
                Vec<StreamKey>,
                super::budget::Candidate,
            )> = p
                .subscriptions
                .iter()
                .filter_map(|(publisher, session)| {
                    let (rank, bps, _) = publishers.get(publisher)?;
                    let current = (!p.video_paused.contains(session)).then_some(0);
                    let c = super::budget::Candidate {
                        rank: *rank,
                        options: vec![*bps],
                        current,
                    };
                    Some((publisher.clone(), Some(*session), Vec::new(), c))
                })
                .collect();
            if p.shared.session.is_some() {
                for publisher in p.shared.offered.difference(&p.shared.stale) {
                    let Some((rank, bps, layers)) = publishers.get(publisher) else {
                        continue;
                    };
                    let Ok(main) = feed_key(&self.name, publisher) else {
                        continue;
                    };
                    let (sources, options): (Vec<StreamKey>, Vec<u64>) = if layers.is_empty() {
                        (vec![main.clone()], vec![*bps])
                    } else {
                        layers.iter().cloned().unzip()
                    };
                    let now_from = p.shared.sources.get(publisher).unwrap_or(&main);
                    let current = if p.shared.paused.contains(publisher) {
                        None
                    } else {
                        Some(sources.iter().position(|k| k == now_from).unwrap_or(0))
                    };
                    let c = super::budget::Candidate {
                        rank: *rank,
                        options,
                        current,
                    };
                    subs.push((publisher.clone(), None, sources, c));
                }
            }
            let candidates: Vec<_> = subs.iter().map(|s| s.3.clone()).collect();
            let got = super::budget::choose(budget_bps, &candidates);
            for ((publisher, session, sources, c), got) in subs.into_iter().zip(got) {
                let paused = got.is_none();
                let was_paused = c.current.is_none();
                match session {
                    Some(session) => {
                        if paused == was_paused {
                            continue;
                        }
                        if paused {
                            p.video_paused.insert(session);
                        } else {
                            p.video_paused.remove(&session);
                        }
                        changes.push(Pause::Own(session, paused));
                    }
                    None => {
                        let (Some(shared), Ok(main)) =
                            (p.shared.session, feed_key(&self.name, &publisher))
                        else {
                            continue;
                        };
                        if let Some(source) = got.and_then(|j| sources.get(j)) {
                            let from = p.shared.sources.get(&publisher).unwrap_or(&main);
                            if from != source {
                                tracing::debug!(room = %self.name, subscriber = %p.info.identity, %publisher, %source, "bandwidth budget: encoding");
                                p.shared.sources.insert(publisher.clone(), source.clone());
                                changes.push(Pause::Select(shared, main.clone(), source.clone()));
                            }
                        }
                        if paused == was_paused {
                            continue;
                        }
                        if paused {
                            p.shared.paused.insert(publisher.clone());
                        } else {
                            p.shared.paused.remove(&publisher);
                        }
                        changes.push(Pause::Shared(shared, main, paused));
                    }
                }
                notes.push((p.info.identity.clone(), publisher, paused));
            }
            let live: HashSet<SessionId> = p.subscriptions.values().copied().collect();
            p.video_paused.retain(|s| live.contains(s));
        }
        for (subscriber, publisher, paused) in notes {
            tracing::debug!(room = %self.name, %subscriber, %publisher, paused, "bandwidth budget");
            self.send_to(
                &subscriber,
                &ServerMessage::VideoPaused {
                    identity: publisher,
                    paused,
                },
            );
        }
        changes
    }

    /// Announces the active speakers when they changed: publishers whose
    /// held audio level (`level_of` their session) is above -40 dBov.
    pub fn update_speakers(&mut self, level_of: impl Fn(SessionId) -> f32, now: Instant) {
        const SPEAKING: f32 = 0.01;
        let mut speakers: Vec<Speaker> = self
            .participants
            .values()
            .filter_map(|p| match p.publication {
                Publication::Live(s) => Some((p, level_of(s))),
                _ => None,
            })
            .filter(|(p, level)| {
                *level >= SPEAKING
                    && !p
                        .info
                        .tracks
                        .iter()
                        .any(|t| t.kind == TrackKind::Audio && t.muted)
            })
            .map(|(p, level)| Speaker {
                identity: p.info.identity.clone(),
                level,
            })
            .collect();
        speakers.sort_by(|a, b| b.level.total_cmp(&a.level));
        let names: Vec<String> = speakers.iter().map(|s| s.identity.clone()).collect();
        if names != self.speakers {
            self.speakers = names;
            self.broadcast(&ServerMessage::Speakers { speakers }, now);
        }
    }

    /// Announces participants whose connection quality changed; `stats`
    /// gives (connected, rtt ms, loss) of a session.
    pub fn update_quality(
        &mut self,
        stats: &HashMap<SessionId, (bool, Option<f64>, Option<f32>)>,
        now: Instant,
    ) {
        let mut updates = Vec::new();
        for p in self.participants.values() {
            let session = match p.publication {
                Publication::Live(s) => Some(s),
                _ => p
                    .shared
                    .session
                    .or_else(|| p.subscriptions.values().next().copied()),
            };
            let Some(&(connected, rtt_ms, loss)) = session.and_then(|s| stats.get(&s)) else {
                continue;
            };
            let quality = Quality::of(connected, rtt_ms, loss);
            if self.quality.get(&p.info.identity) != Some(&quality) {
                updates.push(QualityUpdate {
                    identity: p.info.identity.clone(),
                    quality,
                    rtt_ms,
                    loss,
                });
            }
        }
        self.quality
            .retain(|identity, _| self.participants.contains_key(identity));
        for u in &updates {
            self.quality.insert(u.identity.clone(), u.quality);
        }
        if !updates.is_empty() {
            self.broadcast(&ServerMessage::ConnectionQuality { updates }, now);
        }
    }

    /// Queues a message for one participant (dropped if it cannot take it).
    pub fn send_to(&self, identity: &str, msg: &ServerMessage) {
        if let Some(c) = self
            .participants
            .get(identity)
            .and_then(|p| p.conn.as_ref())
        {
            let _ = c.tx.try_send(Outgoing::Text(msg.to_json().into()));
        }
    }

    /// The hub streams of live publications.
    pub fn publication_keys(&self) -> Vec<StreamKey> {
        self.participants
            .values()
            .filter(|p| matches!(p.publication, Publication::Live(_)))
            .filter_map(|p| feed_key(&self.name, &p.info.identity).ok())
            .collect()
    }

    /// Everybody whose grace period is over.
    pub fn expire(&mut self, now: Instant, grace: Duration) -> Vec<SessionRef> {
        let gone: Vec<String> = self
            .participants
            .values()
            .filter(|p| p.disconnected_at.is_some_and(|t| now >= t + grace))
            .map(|p| p.info.identity.clone())
            .collect();
        gone.iter()
            .flat_map(|i| self.remove(i, LeftReason::Dropped, now))
            .collect()
    }

    /// Ends `identity`'s publication (when it is `session`, or any); returns
    /// the session to close.
    pub fn unpublish(
        &mut self,
        identity: &str,
        session: Option<SessionId>,
        now: Instant,
    ) -> Option<SessionRef> {
        let p = self.participants.get_mut(identity)?;
        let Publication::Live(id) = p.publication else {
            return None;
        };
        if session.is_some_and(|s| s != id) {
            return None;
        }
        p.publication = Publication::None;
        p.info.tracks.clear();
        self.forget_publication(identity);
        self.broadcast(
            &ServerMessage::TrackUnpublished {
                identity: identity.to_owned(),
            },
            now,
        );
        Some((feed_key(&self.name, identity).ok()?, id))
    }

    /// A publication ended: subscriber connections that carry it drop it
    /// (at their next offer).
    fn forget_publication(&mut self, identity: &str) {
        for p in self.participants.values_mut() {
            let shared = &mut p.shared;
            shared.wanted.remove(identity);
            shared.paused.remove(identity);
            shared.sources.remove(identity);
            if shared.offered.contains(identity) {
                shared.stale.insert(identity.to_owned());
            }
        }
    }

    /// Participants whose subscriber connection needs an offer now.
    pub fn shared_due(&self) -> Vec<String> {
        self.participants
            .values()
            .filter(|p| p.conn.is_some() && !p.shared.busy)
            .filter(|p| {
                let (add, remove) = p.shared.diff();
                !add.is_empty() || !remove.is_empty()
            })
            .map(|p| p.info.identity.clone())
            .collect()
    }

    /// The publication is up: its tracks are announced.
    pub fn published(
        &mut self,
        identity: &str,
        session: SessionId,
        tracks: Vec<TrackInfo>,
        now: Instant,
    ) -> bool {
        let Some(p) = self.participants.get_mut(identity) else {
            return false;
        };
        if p.publication != Publication::Pending {
            return false;
        }
        p.publication = Publication::Live(session);
        p.info.tracks = tracks.clone();
        for other in self.participants.values_mut() {
            if other.auto_subscribe
                && other.info.grants.subscribe
                && other.info.identity != identity
            {
                other.shared.wanted.insert(identity.to_owned());
            }
        }
        self.broadcast(
            &ServerMessage::TrackPublished {
                identity: identity.to_owned(),
                tracks,
            },
            now,
        );
        true
    }

    pub fn mute(&mut self, identity: &str, kind: TrackKind, muted: bool, now: Instant) {
        let Some(p) = self.participants.get_mut(identity) else {
            return;
        };
        for t in p.info.tracks.iter_mut().filter(|t| t.kind == kind) {
            t.muted = muted;
        }
        self.broadcast(
            &ServerMessage::TrackMuted {
                identity: identity.to_owned(),
                kind,
                muted,
            },
            now,
        );
    }

    pub fn update(
        &mut self,
        identity: &str,
        name: Option<String>,
        metadata: Option<String>,
        now: Instant,
    ) -> Result<(), Refusal> {
        if name.as_ref().is_some_and(|n| n.len() > MAX_NAME)
            || metadata.as_ref().is_some_and(|m| m.len() > MAX_METADATA)
        {
            return Err((
                ErrorCode::BadRequest,
                format!("name is limited to {MAX_NAME} bytes and metadata to {MAX_METADATA}"),
            ));
        }
        let Some(p) = self.participants.get_mut(identity) else {
            return Ok(());
        };
        if let Some(n) = name {
            p.info.name = n;
        }
        if let Some(m) = metadata {
            p.info.metadata = m;
        }
        let info = p.info.clone();
        self.broadcast(
            &ServerMessage::ParticipantUpdated { participant: info },
            now,
        );
        Ok(())
    }

    fn event(&mut self, action: LinkMicAction, identity: &str, by: &str, now: Instant) {
        tracing::info!(room = %self.name, %identity, %by, ?action, "link-mic");
        self.broadcast(
            &ServerMessage::LinkMic {
                action,
                identity: identity.to_owned(),
                by: by.to_owned(),
            },
            now,
        );
    }

    fn require_admin(&self, actor: &str) -> Result<(), Refusal> {
        match self.participants.get(actor) {
            Some(p) if p.info.grants.admin => Ok(()),
            _ => Err((
                ErrorCode::NotGranted,
                "only a participant with the admin grant (the host) may do this".into(),
            )),
        }
    }

    fn audience_member(&self, identity: &str) -> Result<(), Refusal> {
        match self.participants.get(identity) {
            Some(p) if p.info.role == Role::Audience => Ok(()),
            Some(_) => Err((
                ErrorCode::BadRequest,
                format!("{identity} is already on stage"),
            )),
            None => Err((
                ErrorCode::UnknownParticipant,
                format!("{identity} is not in room {}", self.name),
            )),
        }
    }

    /// An audience member asks to go on stage.
    pub fn request(&mut self, actor: &str, now: Instant) -> Result<(), Refusal> {
        self.audience_member(actor).map_err(|_| {
            (
                ErrorCode::NotGranted,
                "only an audience member may request to go on stage".to_string(),
            )
        })?;
        self.requests.insert(actor.to_owned());
        self.event(LinkMicAction::Requested, actor, actor, now);
        Ok(())
    }

    /// The host invites an audience member on stage.
    pub fn invite(&mut self, actor: &str, target: &str, now: Instant) -> Result<(), Refusal> {
        self.require_admin(actor)?;
        self.audience_member(target)?;
        self.invites.insert(target.to_owned(), actor.to_owned());
        self.event(LinkMicAction::Invited, target, actor, now);
        Ok(())
    }

    /// Which audience member an `accept`/`reject` from `actor` naming
    /// `other` is about: the requester (the host answering a request) or
    /// the actor itself (answering an invitation from `other`).
    fn answered(&mut self, actor: &str, other: &str) -> Result<String, Refusal> {
        if self.invites.get(actor).is_some_and(|by| by == other) {
            self.invites.remove(actor);
            return Ok(actor.to_owned());
        }
        if self.requests.contains(other) {
            self.require_admin(actor)?;
            self.requests.remove(other);
            return Ok(other.to_owned());
        }
        Err((
            ErrorCode::UnknownParticipant,
            format!("there is no request from {other} and no invitation from {other} to {actor}"),
        ))
    }

    pub fn accept(&mut self, actor: &str, other: &str, now: Instant) -> Result<(), Refusal> {
        let target = self.answered(actor, other)?;
        self.event(LinkMicAction::Accepted, &target, actor, now);
        self.set_role(&target, Role::Guest, now);
        Ok(())
    }

    pub fn reject(&mut self, actor: &str, other: &str, now: Instant) -> Result<(), Refusal> {
        let target = self.answered(actor, other)?;
        self.event(LinkMicAction::Rejected, &target, actor, now);
        Ok(())
    }

    /// Changes a participant's role; the grants follow it (admin is kept).
    pub fn set_role(&mut self, identity: &str, role: Role, now: Instant) -> Option<SessionRef> {
        let p = self.participants.get_mut(identity)?;
        p.info.role = role;
        p.info.grants.publish = role != Role::Audience;
        let info = p.info.clone();
        let ended = if role == Role::Audience {
            self.unpublish(identity, None, now)
        } else {
            None
        };
        self.broadcast(
            &ServerMessage::ParticipantUpdated { participant: info },
            now,
        );
        ended
    }

    /// Sets a participant's grants (the admin API); ends its publication
    /// when publishing is no longer granted.
    pub fn set_grants(
        &mut self,
        identity: &str,
        grants: crate::access::Grants,
        now: Instant,
    ) -> Option<SessionRef> {
        let p = self.participants.get_mut(identity)?;
        p.info.grants = grants;
        let info = p.info.clone();
        let ended = if grants.publish {
            None
        } else {
            self.unpublish(identity, None, now)
        };
        self.broadcast(
            &ServerMessage::ParticipantUpdated { participant: info },
            now,
        );
        ended
    }

    /// The room's mix, replacing the live stream `replace`, stopped by
    /// itself: everybody gets `mix` (`null`, with the reason), and the
    /// webhook `mix_stopped` goes out.
    pub fn mix_stopped(&mut self, mix: &str, replace: &str, reason: &str, now: Instant) {
        self.hooks.mix_stopped(&self.name, mix, replace, reason);
        self.broadcast(
            &ServerMessage::Mix {
                id: None,
                mix: None,
                reason: Some(reason.to_owned()),
            },
            now,
        );
    }

    /// Whether one of the participants (connected or not) is a host.
    pub fn has_host(&self) -> bool {
        self.participants().any(|p| p.info.role == Role::Host)
    }

    /// Says the room is over (webhook `room_finished`).
    pub fn finished(&self) {
        self.hooks
            .send("room_finished", &self.name, serde_json::json!({}));
    }

    /// Everybody out (the room is closing).
    pub fn clear(&mut self, now: Instant) -> Vec<SessionRef> {
        let all: Vec<String> = self.participants.keys().cloned().collect();
        all.iter()
            .flat_map(|i| self.remove(i, LeftReason::RoomClosed, now))
            .collect()
    }

    /// The host sends a participant back to the audience or out of the room.
    pub fn kick(
        &mut self,
        actor: &str,
        target: &str,
        to: KickTo,
        now: Instant,
    ) -> Result<Vec<SessionRef>, Refusal> {
        self.require_admin(actor)?;
        if !self.participants.contains_key(target) {
            return Err((
                ErrorCode::UnknownParticipant,
                format!("{target} is not in room {}", self.name),
            ));
        }
        if actor == target {
            return Err((ErrorCode::BadRequest, "one cannot kick oneself".into()));
        }
        self.event(LinkMicAction::Kicked, target, actor, now);
        Ok(match to {
            KickTo::Audience => self
                .set_role(target, Role::Audience, now)
                .into_iter()
                .collect(),
            KickTo::Out => self.remove(target, LeftReason::Kicked, now),
        })
    }
}

/// `joined` is only built for a participant just inserted; this keeps the
/// code free of a panic path should that ever change.
fn unreachable_participant(identity: &str) -> ParticipantInfo {
    ParticipantInfo {
        identity: identity.to_owned(),
        name: identity.to_owned(),
        role: Role::Audience,
        grants: Role::Audience.default_grants(),
        metadata: String::new(),
        tracks: Vec::new(),
        connected: true,
    }
}

/// The tracks an SDP offer sends: one per kind of `m=` section that is
/// `sendonly` or `sendrecv` (the default).
pub fn offered_tracks(sdp: &str) -> Vec<TrackInfo> {
    let mut kinds: Vec<TrackKind> = Vec::new();
    let mut current: Option<TrackKind> = None;
    let mut sending = true;
    let finish = |kind: Option<TrackKind>, sending: bool, kinds: &mut Vec<TrackKind>| {
        if let Some(k) = kind.filter(|k| sending && !kinds.contains(k)) {
            kinds.push(k);
        }
    };
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            finish(current, sending, &mut kinds);
            let mut parts = m.split(' ');
            let kind = parts.next();
            let port = parts.next();
            current = match kind {
                Some("audio") => Some(TrackKind::Audio),
                Some("video") => Some(TrackKind::Video),
                _ => None,
            };
            // A rejected section (port 0) carries nothing.
            if port == Some("0") {
                current = None;
            }
            sending = true;
        } else if matches!(line, "a=recvonly" | "a=inactive") {
            sending = false;
        }
    }
    finish(current, sending, &mut kinds);
    kinds.sort_by_key(|k| *k == TrackKind::Video);
    kinds
        .into_iter()
        .map(|kind| TrackInfo { kind, muted: false })
        .collect()
}
