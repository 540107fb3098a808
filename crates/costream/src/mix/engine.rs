//! A mix's mixing loop and where its output goes: a stream of its own, or
//! a live stream it takes over (the link-mic switch), given back when the
//! loop stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use costream_hub::{AudioCodec, Hub, Protocol, Publisher, StreamKey};
use costream_mixer::Layout;
use parking_lot::Mutex;

use super::input::SharedInput;
use super::layout::LayoutSpec;
use super::task::{self, MixParams, MixStats};
use super::Slot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A stream the mix publishes.
    Publish(StreamKey),
    /// A live stream whose viewers see the mix instead of its publisher.
    Replace(StreamKey),
}

impl Target {
    pub fn key(&self) -> &StreamKey {
        match self {
            Target::Publish(k) | Target::Replace(k) => k,
        }
    }
}

/// Cheap to clone: a room's follower starts and stops the loop.
#[derive(Clone)]
pub struct Engine {
    pub id: String,
    pub hub: Hub,
    pub target: Target,
    pub params: MixParams,
    /// The layout as given, and as it applies to the inputs of the moment.
    pub layout_spec: Arc<Mutex<LayoutSpec>>,
    pub layout: Arc<Mutex<Layout>>,
    /// Sound levels by input name (see [`super::MixSpec::gain`]).
    pub gains: Arc<Mutex<std::collections::BTreeMap<String, f32>>>,
    pub feed: Arc<Mutex<Vec<SharedInput>>>,
    pub stats: Arc<MixStats>,
    /// The running loop's stop flag; the loop sets it too when it loses
    /// its output (stream kicked).
    running: Arc<Mutex<Option<Arc<AtomicBool>>>>,
}

impl Engine {
    pub fn new(
        id: String,
        hub: Hub,
        target: Target,
        params: MixParams,
        layout: LayoutSpec,
    ) -> Engine {
        Engine {
            id,
            hub,
            target,
            params,
            layout: Arc::new(Mutex::new(layout.layout(&[]))),
            layout_spec: Arc::new(Mutex::new(layout)),
            gains: Arc::default(),
            feed: Arc::default(),
            stats: Arc::default(),
            running: Arc::default(),
        }
    }

    /// Mixes `slots`, in their order, from the next tick on.
    pub fn follow(&self, slots: &[Slot]) {
        let keys: Vec<StreamKey> = slots.iter().map(|s| s.key.clone()).collect();
        let layout = self.layout_spec.lock().layout(&keys);
        let gains = self.gains.lock();
        for slot in slots {
            let gain = gains
                .iter()
                .find(|(name, _)| super::layout::names(name, &slot.key))
                .map(|(_, g)| *g);
            slot.state.lock().gain = gain;
        }
        drop(gains);
        // Inputs and layout change together (the loop reads them in this order).
        let mut feed = self.feed.lock();
        *feed = slots.iter().map(|s| s.state.clone()).collect();
        *self.layout.lock() = layout;
    }

    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .as_ref()
            .is_some_and(|s| !s.load(Ordering::Relaxed))
    }

    /// Starts the loop unless it runs: publishes or takes over the target.
    pub fn start(&self) -> Result<(), (u16, String)> {
        let mut running = self.running.lock();
        if running.as_ref().is_some_and(|s| !s.load(Ordering::Relaxed)) {
            return Ok(());
        }
        let mut params = self.params.clone();
        let publisher: Publisher = match &self.target {
            Target::Publish(k) => self
                .hub
                .publish(k.clone(), Protocol::Internal)
                .map_err(|e| (409, e.to_string()))?,
            Target::Replace(k) => {
                // The replaced stream's own sound codec, so that its viewers'
                // sessions (and bridges) go on as they are.
                params.opus = self
                    .hub
                    .stream(k)
                    .and_then(|s| s.info().audio)
                    .is_some_and(|a| a.codec == AudioCodec::Opus);
                self.hub
                    .take_over(k, Protocol::Internal)
                    .map_err(|e| (409, e.to_string()))?
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (layout, feed, stats, flag) = (
            self.layout.clone(),
            self.feed.clone(),
            self.stats.clone(),
            stop.clone(),
        );
        std::thread::Builder::new()
            .name(format!("costream-{}", self.id))
            .spawn(move || task::run(params, layout, feed, publisher, stats, flag))
            .map_err(|e| (500u16, e.to_string()))?;
        tracing::info!(id = %self.id, target = ?self.target, "mixing loop started");
        *running = Some(stop);
        Ok(())
    }

    /// Stops the loop; a replaced stream goes back to its publisher.
    pub fn stop(&self) {
        if let Some(stop) = self.running.lock().take() {
            stop.store(true, Ordering::Relaxed);
            tracing::info!(id = %self.id, target = ?self.target, "mixing loop stopped");
        }
    }
}
