//! The publishing side of a stream.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::Notify;

use crate::budget::PushError;
use crate::frame::Frame;
use crate::hub::Hub;
use crate::stream::{Ingest, Limits, Stream};

/// Held by whoever feeds a stream. Dropping it without [`Publisher::end`]
/// starts the reconnect grace period.
pub struct Publisher {
    hub: Hub,
    stream: Arc<Stream>,
    id: u64,
    kick: Arc<Notify>,
    ended: bool,
    /// Took the stream over from its own publisher ([`Hub::take_over`]);
    /// leaving gives it back.
    takeover: bool,
}

impl Publisher {
    pub(crate) fn new(hub: Hub, stream: Arc<Stream>, id: u64, kick: Arc<Notify>) -> Self {
        Publisher {
            hub,
            stream,
            id,
            kick,
            ended: false,
            takeover: false,
        }
    }

    pub(crate) fn taking_over(mut self) -> Self {
        self.takeover = true;
        self
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Resolves when the stream's publisher is kicked (API `DELETE`).
    pub async fn kicked(&self) {
        self.kick.notified().await
    }

    /// Pushes one frame to every viewer. Never blocks on viewers. While a
    /// mix has taken the stream over, the frame goes to the stream's own
    /// feed (`key~src`) instead (see [`Hub::take_over`]). A frame past a
    /// memory budget cuts the publisher off: its stream ends at once.
    pub fn push(&self, frame: Frame) -> Result<(), PushError> {
        let c = self.hub.config();
        let limits = Limits {
            max_gop_frames: c.max_gop_frames,
            max_gop_bytes: c.max_gop_bytes,
            budget: c.budget,
        };
        let (stream, refused) = match self.stream.ingest(self.id, frame, &limits) {
            Ingest::Done => return Ok(()),
            Ingest::Diverted(src, frame) => {
                // The own feed's viewers (the mix) ask this publisher's
                // source for keyframes through the stream it publishes to.
                if src.stats.keyframe_wanted.swap(false, Relaxed) {
                    self.stream.stats.keyframe_wanted.store(true, Relaxed);
                }
                match src.ingest(self.id, frame, &limits) {
                    Ingest::Done => return Ok(()),
                    Ingest::Refused(e) => (src, e),
                    _ => return Err(PushError::NotPublishing),
                }
            }
            Ingest::Refused(e) => (self.stream.clone(), e),
            Ingest::NotPublishing => return Err(PushError::NotPublishing),
        };
        tracing::warn!(stream = %stream.key(), reason = refused.reason(), "publisher cut off: {refused}");
        self.hub.end(&stream, Some(self.id));
        Err(refused)
    }

    /// The publisher left on purpose: end the stream now, no grace period.
    /// A takeover gives the stream back to its own publisher instead.
    pub fn end(mut self) {
        self.ended = true;
        if self.takeover {
            self.hub.give_back(&self.stream, self.id);
        } else {
            self.hub.end(&self.stream, Some(self.id));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        match (self.ended, self.takeover) {
            (true, _) => {}
            (false, true) => self.hub.give_back(&self.stream, self.id),
            (false, false) => self.hub.publisher_lost(&self.stream, self.id),
        }
    }
}
