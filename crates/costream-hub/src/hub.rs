//! The registry of live streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::{broadcast, Notify};

use crate::key::StreamKey;
use crate::publisher::Publisher;
use crate::stats::{HubTotals, Protocol};
use crate::stream::{Slot, Stream};
use crate::subscriber::Subscriber;

#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Frames the broadcast ring of a stream holds; bounds memory per stream
    /// whatever the number of viewers.
    pub ring_frames: usize,
    /// A viewer further than this behind the live edge skips to the next
    /// keyframe (half of it: non-reference frames are dropped first).
    pub max_viewer_lag: Duration,
    /// How long a stream waits for a publisher that dropped to come back.
    pub reconnect_grace: Duration,
    /// GOP cache bound: a GOP longer than this is not cached (viewers then
    /// wait for the next keyframe instead of getting a huge burst).
    pub max_gop_frames: usize,
    /// The same bound in bytes: a GOP holding more is not cached.
    pub max_gop_bytes: usize,
    /// Bytes of a new viewer's cached GOP sent at once; the rest goes at
    /// four times real time, so one request cannot pull a burst of any size.
    pub gop_burst_bytes: usize,
    /// Memory limits; a publisher past one is cut off.
    pub budget: crate::Budget,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            ring_frames: 1024,
            max_viewer_lag: Duration::from_secs(3),
            reconnect_grace: Duration::from_secs(5),
            max_gop_frames: 2048,
            max_gop_bytes: 32 << 20,
            gop_burst_bytes: 4 << 20,
            budget: crate::Budget::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    StreamStarted(StreamKey),
    /// A publisher came back within the grace period.
    StreamResumed(StreamKey),
    StreamEnded(StreamKey),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("stream {0} is already being published")]
    AlreadyPublishing(StreamKey),
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("stream {0} is not live")]
    NotFound(StreamKey),
    /// Live, but this viewer cannot be served now (a limit; the text says which).
    #[error("{0}")]
    Unavailable(String),
}

/// Cheap to clone; all clones share one registry.
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: HubConfig,
    pub(crate) streams: Mutex<HashMap<StreamKey, Arc<Stream>>>,
    pub(crate) next_id: AtomicU64,
    pub(crate) events: broadcast::Sender<HubEvent>,
    pub(crate) totals: Arc<HubTotals>,
}

impl Hub {
    pub fn new(config: HubConfig) -> Hub {
        let (events, _) = broadcast::channel(1024);
        Hub {
            inner: Arc::new(Inner {
                config,
                streams: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                events,
                totals: Arc::default(),
            }),
        }
    }

    pub fn totals(&self) -> &HubTotals {
        &self.inner.totals
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Stream lifecycle events. A receiver that lags should re-read [`Hub::streams`].
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.events.subscribe()
    }

    pub fn streams(&self) -> Vec<Arc<Stream>> {
        let mut v: Vec<_> = self.inner.streams.lock().values().cloned().collect();
        v.sort_by(|a, b| a.key().cmp(b.key()));
        v
    }

    pub fn stream(&self, key: &StreamKey) -> Option<Arc<Stream>> {
        self.inner.streams.lock().get(key).cloned()
    }

    /// Takes the publisher slot of `key`: creates the stream, or resumes one
    /// whose publisher dropped less than the grace period ago.
    pub fn publish(&self, key: StreamKey, protocol: Protocol) -> Result<Publisher, PublishError> {
        let id = self.next_publisher_id();
        let kick = Arc::new(Notify::new());
        let live = Slot::Live {
            id,
            protocol,
            since: Instant::now(),
            kick: kick.clone(),
        };
        let mut streams = self.inner.streams.lock();
        if let Some(stream) = streams.get(&key) {
            let mut st = stream.state.lock();
            if let Some(d) = &mut st.displaced {
                // Taken over by a mix: a returning publisher feeds `key~src`.
                if !d.src.resume(id, protocol, kick.clone()) {
                    return Err(PublishError::AlreadyPublishing(key));
                }
                d.id = id;
                drop(st);
                tracing::info!(stream = %key, "publisher resumed under a mix");
                return Ok(Publisher::new(self.clone(), stream.clone(), id, kick));
            }
            drop(st);
            if !stream.resume(id, protocol, kick.clone()) {
                return Err(PublishError::AlreadyPublishing(key));
            }
            let _ = self.inner.events.send(HubEvent::StreamResumed(key.clone()));
            tracing::info!(stream = %key, "publisher resumed");
            return Ok(Publisher::new(self.clone(), stream.clone(), id, kick));
        }
        let stream = Arc::new(Stream::new(
            key.clone(),
            self.inner.config.ring_frames,
            self.inner.totals.clone(),
        ));
        {
            let mut st = stream.state.lock();
            st.slot = live;
            st.publishers = 1;
        }
        streams.insert(key.clone(), stream.clone());
        drop(streams);
        let _ = self.inner.events.send(HubEvent::StreamStarted(key.clone()));
        tracing::info!(stream = %key, protocol = protocol.name(), "stream started");
        Ok(Publisher::new(self.clone(), stream, id, kick))
    }

    /// Whether [`Hub::publish`] of `key` would succeed now (nobody is
    /// publishing it, or its publisher is gone and it waits for one).
    pub fn can_publish(&self, key: &StreamKey) -> bool {
        let Some(stream) = self.stream(key) else {
            return true;
        };
        let st = stream.state.lock();
        // Only a stream waiting for its publisher can be resumed.
        let slot_free = |slot: &Slot| matches!(slot, Slot::Waiting { .. });
        match &st.displaced {
            Some(d) => slot_free(&d.src.state.lock().slot),
            None => slot_free(&st.slot),
        }
    }

    pub(crate) fn next_publisher_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Relaxed)
    }

    /// Drops `stream` from the registry (if it is still the one under its key).
    pub(crate) fn forget(&self, stream: &Arc<Stream>) {
        let mut streams = self.inner.streams.lock();
        if streams
            .get(stream.key())
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(stream.key());
            drop(streams);
            let _ = self
                .inner
                .events
                .send(HubEvent::StreamEnded(stream.key().clone()));
        }
    }

    /// Starts a viewer on `key`: its first frames are the codec configs and
    /// the cached GOP, so it can decode at once.
    pub fn subscribe(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Subscriber, SubscribeError> {
        let stream = self
            .stream(key)
            .ok_or_else(|| SubscribeError::NotFound(key.clone()))?;
        Subscriber::new(stream, protocol, &self.inner.config)
            .ok_or_else(|| SubscribeError::NotFound(key.clone()))
    }

    /// Kicks the publisher of `key` and ends the stream at once (no grace
    /// period). Returns false when there is no such stream.
    pub fn kick(&self, key: &StreamKey) -> bool {
        let Some(stream) = self.stream(key) else {
            return false;
        };
        stream.notify_kick();
        self.end(&stream, None);
        true
    }

    /// Ends a stream at once (kick, or its publisher said goodbye).
    pub(crate) fn end(&self, stream: &Arc<Stream>, publisher_id: Option<u64>) {
        let mut streams = self.inner.streams.lock();
        let mut st = stream.state.lock();
        let owner = match st.slot {
            Slot::Live { id, .. } | Slot::Waiting { id, .. } => Some(id),
            Slot::Ended => return,
        };
        if let (Some(id), Some(d)) = (publisher_id, &st.displaced) {
            if d.id == id {
                // The displaced publisher left: its own feed ends, the mix goes on.
                let src = d.src.clone();
                drop(st);
                drop(streams);
                return self.end(&src, publisher_id);
            }
        }
        if publisher_id.is_some() && publisher_id != owner {
            return;
        }
        st.slot = Slot::Ended;
        st.tx = None;
        // Nobody can join an ended stream: its cache only held memory.
        st.clear_gop();
        let displaced = st.displaced.take();
        drop(st);
        stream.wake.notify_waiters();
        if streams
            .get(stream.key())
            .is_some_and(|s| Arc::ptr_eq(s, stream))
        {
            streams.remove(stream.key());
        }
        drop(streams);
        if let Some(d) = displaced {
            // Ended under a mix: its own publisher goes too.
            d.src.notify_kick();
            self.end(&d.src, None);
        }
        let _ = self
            .inner
            .events
            .send(HubEvent::StreamEnded(stream.key().clone()));
        tracing::info!(stream = %stream.key(), "stream ended");
    }

    /// The publisher `id` vanished: keep the stream for the grace period.
    pub(crate) fn publisher_lost(&self, stream: &Arc<Stream>, id: u64) {
        {
            let mut st = stream.state.lock();
            match (&st.slot, &st.displaced) {
                (Slot::Live { id: live, .. }, _) if *live == id => {}
                (_, Some(d)) if d.id == id => {
                    let src = d.src.clone();
                    drop(st);
                    return self.publisher_lost(&src, id);
                }
                _ => return,
            }
            st.slot = Slot::Waiting {
                id,
                since: Instant::now(),
            };
        }
        let grace = self.inner.config.reconnect_grace;
        tracing::info!(stream = %stream.key(), "publisher lost, waiting {grace:?} for it to come back");
        self.end_after_grace(stream, id);
    }

    /// Ends `stream` after the grace period unless publisher `id`'s slot was
    /// taken again meanwhile.
    pub(crate) fn end_after_grace(&self, stream: &Arc<Stream>, id: u64) {
        let grace = self.inner.config.reconnect_grace;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) if !grace.is_zero() => {
                let hub = self.clone();
                let stream = stream.clone();
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    let still_waiting =
                        matches!(stream.state.lock().slot, Slot::Waiting { id: w, .. } if w == id);
                    if still_waiting {
                        hub.end(&stream, Some(id));
                    }
                });
            }
            _ => self.end(stream, Some(id)),
        }
    }
}
