//! The publishing side of a stream.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::frame::{Frame, FrameKind};
use crate::hub::Hub;
use crate::stream::{Slot, Stream};

/// Held by whoever feeds a stream. Dropping it without [`Publisher::end`]
/// starts the reconnect grace period.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
    id: u64,
    kick: Arc<Notify>,
    ended: bool,
}

/// The publisher no longer owns the stream (kicked, or the stream ended).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the stream is no longer published by this session")]
pub struct NotPublishing;

/// Audio-only streams cache this many frames for new viewers.
const AUDIO_ONLY_CACHE: usize = 64;

impl Publisher {
    pub(crate) fn new(hub: Hub, stream: Arc<Stream>, id: u64, kick: Arc<Notify>) -> Self {
        Publisher {
            hub,
            stream,
            id,
            kick,
            ended: false,
        }
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Resolves when the stream's publisher is kicked (API `DELETE`).
    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    /// Pushes one frame to every viewer. Never blocks on viewers.
    pub fn push(&self, frame: Frame) -> Result<(), NotPublishing> {
        let stats = &self.stream.stats;
        let mut guard = self.stream.state.lock();
        if !matches!(guard.slot, Slot::Live { id, .. } if id == self.id) {
            return Err(NotPublishing);
        }
        let frame = guard.retime(frame);
        let st = &mut *guard;
        st.rate.record(&frame, &mut st.info);
        stats.frames_in.fetch_add(1, Relaxed);
        stats.bytes_in.fetch_add(frame.data.len() as u64, Relaxed);
        let frame = Arc::new(frame);
        match frame.kind {
            FrameKind::VideoConfig => {
                st.info.apply_config(&frame);
                if st
                    .video_config
                    .as_ref()
                    .is_some_and(|old| old.data != frame.data)
                {
                    // Frames cached so far belong to the old parameter sets.
                    st.gop.clear();
                }
                st.video_config = Some(frame.clone());
            }
            FrameKind::AudioConfig => {
                st.info.apply_config(&frame);
                st.audio_config = Some(frame.clone());
            }
            FrameKind::Video => {
                stats.live_edge_dts.store(frame.dts, Relaxed);
                if frame.keyframe {
                    st.gop.clear();
                    st.gop.push_back(frame.clone());
                } else if !st.gop.is_empty() {
                    if st.gop.len() >= self.hub.config().max_gop_frames {
                        st.gop.clear();
                    } else {
                        st.gop.push_back(frame.clone());
                    }
                }
            }
            FrameKind::Audio => {
                if st.video_config.is_none() {
                    stats.live_edge_dts.store(frame.dts, Relaxed);
                    if st.gop.len() >= AUDIO_ONLY_CACHE {
                        st.gop.pop_front();
                    }
                    st.gop.push_back(frame.clone());
                } else if !st.gop.is_empty() && st.gop.len() < self.hub.config().max_gop_frames {
                    st.gop.push_back(frame.clone());
                }
            }
        }
        // Audio waits for the next picture, unless pictures stopped coming.
        let wake = match frame.kind {
            FrameKind::Audio => st.video_config.is_none() || frame.dts - st.last_video_dts > 100,
            FrameKind::Video => {
                st.last_video_dts = frame.dts;
                true
            }
            _ => true,
        };
        if let Some(tx) = &st.tx {
            // An error only means nobody is watching right now.
            let _ = tx.send(frame);
        }
        drop(guard);
        if wake {
            self.stream.wake.notify_waiters();
        } else {
            self.stream.audio_wake.notify_waiters();
        }
        Ok(())
    }

    /// The publisher left on purpose: end the stream now, no grace period.
    pub fn end(mut self) {
        self.ended = true;
        self.hub.end(&self.stream, Some(self.id));
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.ended {
            self.hub.publisher_lost(&self.stream, self.id);
        }
    }
}
