//! A mix taking a live stream over and giving it back (the link-mic
//! switch): the stream's viewers stay connected and see new codec configs
//! and a keyframe, on a clock that keeps going forward. Meanwhile the
//! displaced publisher's frames feed the stream's own-feed twin
//! (`key~src`), which the mix reads as the host's picture.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use thiserror::Error;
use tokio::sync::Notify;

use crate::frame::FrameKind;
use crate::hub::{Hub, HubEvent};
use crate::key::StreamKey;
use crate::publisher::Publisher;
use crate::stats::Protocol;
use crate::stream::{Displaced, Slot, Stream};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TakeOverError {
    #[error("stream {0} is not live")]
    NotLive(StreamKey),
    #[error("stream {0} is already taken over")]
    AlreadyTakenOver(StreamKey),
}

/// The key under which a taken-over stream's own publisher goes on.
pub fn own_feed(key: &StreamKey) -> StreamKey {
    key.bridged("src")
}

impl Hub {
    /// Makes the returned publisher the source of `key`'s viewers. The
    /// current publisher goes on feeding [`own_feed`]`(key)`, which starts
    /// with its configs and cached GOP. Ending or dropping the returned
    /// publisher gives the stream back.
    pub fn take_over(
        &self,
        key: &StreamKey,
        protocol: Protocol,
    ) -> Result<Publisher, TakeOverError> {
        let id = self.next_publisher_id();
        let kick = Arc::new(Notify::new());
        let src_key = own_feed(key);
        let mut streams = self.inner.streams.lock();
        let main = streams
            .get(key)
            .cloned()
            .ok_or_else(|| TakeOverError::NotLive(key.clone()))?;
        let mut st = main.state.lock();
        if st.displaced.is_some() || streams.contains_key(&src_key) {
            return Err(TakeOverError::AlreadyTakenOver(key.clone()));
        }
        let (own, own_protocol, since, own_kick) = match &st.slot {
            Slot::Live {
                id,
                protocol,
                since,
                kick,
            } => (*id, *protocol, *since, kick.clone()),
            _ => return Err(TakeOverError::NotLive(key.clone())),
        };
        let src = Arc::new(Stream::new(
            src_key.clone(),
            self.inner.config.ring_frames,
            self.inner.totals.clone(),
        ));
        {
            let mut s = src.state.lock();
            s.slot = Slot::Live {
                id: own,
                protocol: own_protocol,
                since,
                kick: own_kick,
            };
            s.publishers = 1;
            s.video_config = st.video_config.take();
            s.audio_config = st.audio_config.take();
            s.gop = std::mem::take(&mut st.gop);
            s.info = st.info.clone();
            s.ts_offset = st.ts_offset;
            s.last_dts = st.last_dts;
            s.last_video_dts = st.last_video_dts;
            s.track_last = st.track_last;
        }
        src.stats
            .live_edge_dts
            .store(main.stats.live_edge_dts.load(Relaxed), Relaxed);
        st.displaced = Some(Displaced {
            id: own,
            src: src.clone(),
        });
        st.slot = Slot::Live {
            id,
            protocol,
            since: Instant::now(),
            kick: kick.clone(),
        };
        // The takeover's first frame continues the clock where it stopped.
        st.rebase_gap = Some(1);
        st.await_keyframe = false;
        drop(st);
        streams.insert(src_key.clone(), src);
        drop(streams);
        let _ = self
            .inner
            .events
            .send(HubEvent::StreamStarted(src_key.clone()));
        tracing::info!(stream = %key, own_feed = %src_key, "stream taken over");
        Ok(Publisher::new(self.clone(), main, id, kick).taking_over())
    }

    /// Takeover `id` of `main` ended: the displaced publisher feeds `main`
    /// again, its configs sent ahead and its pictures from its next
    /// keyframe. If it left meanwhile, `main` ends (or waits for it).
    pub(crate) fn give_back(&self, main: &Arc<Stream>, id: u64) {
        let mut st = main.state.lock();
        if !matches!(st.slot, Slot::Live { id: live, .. } if live == id) {
            return;
        }
        let Some(d) = st.displaced.take() else {
            return;
        };
        let (own, configs) = {
            let mut s = d.src.state.lock();
            s.tx = None;
            let own = std::mem::replace(&mut s.slot, Slot::Ended);
            (own, [s.video_config.clone(), s.audio_config.clone()])
        };
        d.src.wake.notify_waiters();
        self.forget(&d.src);
        let waiting = match own {
            Slot::Ended => {
                drop(st);
                tracing::info!(stream = %main.key(), "taken-over stream ends: its publisher left");
                return self.end(main, None);
            }
            Slot::Waiting { id, .. } => Some(id),
            Slot::Live { .. } => None,
        };
        st.slot = own;
        st.rebase_gap = Some(1);
        st.await_keyframe = true;
        // A publisher that makes keyframes on demand (WebRTC) sends one now.
        main.stats.keyframe_wanted.store(true, Relaxed);
        st.clear_gop();
        let at = st.last_dts.unwrap_or(0);
        for cfg in configs.into_iter().flatten() {
            let cfg = Arc::new(cfg.shifted(at - cfg.dts));
            st.info.apply_config(&cfg);
            if cfg.kind == FrameKind::VideoConfig {
                st.video_config = Some(cfg.clone());
            } else {
                st.audio_config = Some(cfg.clone());
            }
            if let Some(tx) = &st.tx {
                let _ = tx.send(cfg);
            }
        }
        drop(st);
        main.wake.notify_waiters();
        tracing::info!(stream = %main.key(), "stream given back to its own publisher");
        if let Some(own) = waiting {
            self.end_after_grace(main, own);
        }
    }
}

impl Stream {
    /// A publisher comes back to a stream waiting for it.
    pub(crate) fn resume(&self, id: u64, protocol: Protocol, kick: Arc<Notify>) -> bool {
        let mut st = self.state.lock();
        let Slot::Waiting { since, .. } = st.slot else {
            return false;
        };
        st.rebase_gap = Some(since.elapsed().as_millis() as i64);
        st.slot = Slot::Live {
            id,
            protocol,
            since: Instant::now(),
            kick,
        };
        st.publishers += 1;
        true
    }
}
