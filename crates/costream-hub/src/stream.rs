//! One live stream: its publisher slot, codec configs, GOP cache and the
//! broadcast ring its viewers read from.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::{broadcast, Notify};

use crate::budget::{Budget, Charge, Meter, PushError};
use crate::frame::{Frame, FrameKind};
use crate::info::{RateMeter, StreamInfo};
use crate::key::StreamKey;
use crate::stats::{HubTotals, Protocol, StreamStats};

pub struct Stream {
    key: StreamKey,
    started: Instant,
    started_wall: SystemTime,
    pub(crate) state: Mutex<State>,
    pub stats: StreamStats,
    /// Bytes this stream's frames hold, against [`crate::Budget::max_stream`].
    pub(crate) meter: Arc<Meter>,
    /// Wakes viewers. Signalled per video frame (and per audio frame only
    /// in audio-only streams), so a viewer wakes once per picture and takes
    /// the audio queued since with it: one write instead of three.
    pub(crate) wake: Notify,
    /// Wakes the viewers that want audio at once (conversational WebRTC)
    /// for each audio frame that does not wake everyone.
    pub(crate) audio_wake: Notify,
}

#[derive(Debug)]
pub(crate) enum Slot {
    Live {
        id: u64,
        protocol: Protocol,
        since: Instant,
        kick: Arc<Notify>,
    },
    /// The publisher dropped without saying goodbye; it may come back until
    /// the grace period ends.
    Waiting {
        id: u64,
        since: Instant,
    },
    Ended,
}

pub(crate) struct State {
    /// `None` once the stream ended: receivers then drain and see `Closed`.
    pub(crate) tx: Option<broadcast::Sender<Arc<Frame>>>,
    pub(crate) slot: Slot,
    pub(crate) video_config: Option<Arc<Frame>>,
    pub(crate) audio_config: Option<Arc<Frame>>,
    /// Frames since the last keyframe (or, for audio-only streams, the last
    /// few audio frames): what a new viewer gets first.
    pub(crate) gop: VecDeque<Arc<Frame>>,
    /// Payload bytes in `gop`.
    pub(crate) gop_bytes: usize,
    pub(crate) info: StreamInfo,
    pub(crate) rate: RateMeter,
    /// Added to the publisher's timestamps so the stream's clock never goes
    /// back, even across publisher reconnects.
    pub(crate) ts_offset: i64,
    pub(crate) last_dts: Option<i64>,
    /// Set when a publisher resumes: the next frame re-bases the clock, with
    /// the wall-clock gap (ms) the stream was silent.
    pub(crate) rebase_gap: Option<i64>,
    /// The last dts of each track (video, audio), and the tracks whose
    /// first frame since a re-base has not come yet: that frame must land
    /// after its own track's last one too, not only after the other's.
    pub(crate) track_last: [Option<i64>; 2],
    pub(crate) settling: [bool; 2],
    pub(crate) publishers: u64,
    pub(crate) last_video_dts: i64,
    /// Set while a mix has taken this stream over: its own publisher, whose
    /// frames now feed `src`.
    pub(crate) displaced: Option<Displaced>,
    /// After a stream is given back, its publisher's pictures wait for a
    /// keyframe (viewers could not decode the frames before it).
    pub(crate) await_keyframe: bool,
}

/// The publisher a takeover displaced, and the stream it feeds meanwhile.
pub(crate) struct Displaced {
    pub(crate) id: u64,
    pub(crate) src: Arc<Stream>,
}

/// Where [`Stream::ingest`] left a frame.
pub(crate) enum Ingest {
    Done,
    /// The publisher was displaced by a takeover: the frame belongs to its
    /// own-feed stream.
    Diverted(Arc<Stream>, Frame),
    NotPublishing,
    /// Over a memory budget: the publisher must be cut off.
    Refused(PushError),
}

/// Audio-only streams cache this many frames for new viewers.
const AUDIO_ONLY_CACHE: usize = 64;

/// A read-only view of a stream for the API.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub key: StreamKey,
    pub info: StreamInfo,
    /// Protocol of the current publisher; `None` while waiting for it to come back.
    pub publisher: Option<Protocol>,
    pub uptime_secs: f64,
    pub started_at: SystemTime,
    /// How many publisher sessions fed this stream (1 + reconnects).
    pub publisher_sessions: u64,
    /// Seconds the current publisher session has been live.
    pub publisher_uptime_secs: Option<f64>,
}

impl Stream {
    pub(crate) fn new(key: StreamKey, capacity: usize, totals: Arc<HubTotals>) -> Stream {
        let (tx, _) = broadcast::channel(capacity);
        Stream {
            key,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            state: Mutex::new(State {
                tx: Some(tx),
                slot: Slot::Ended,
                video_config: None,
                audio_config: None,
                gop: VecDeque::new(),
                gop_bytes: 0,
                info: StreamInfo::default(),
                rate: RateMeter::new(),
                ts_offset: 0,
                last_dts: None,
                rebase_gap: None,
                track_last: [None; 2],
                settling: [false; 2],
                publishers: 0,
                last_video_dts: 0,
                displaced: None,
                await_keyframe: false,
            }),
            meter: Meter::new(totals.clone()),
            stats: StreamStats {
                totals,
                ..Default::default()
            },
            wake: Notify::new(),
            audio_wake: Notify::new(),
        }
    }

    pub fn key(&self) -> &StreamKey {
        &self.key
    }

    pub fn snapshot(&self) -> StreamSnapshot {
        let st = self.state.lock();
        StreamSnapshot {
            key: self.key.clone(),
            info: st.info.clone(),
            publisher: match &st.slot {
                Slot::Live { protocol, .. } => Some(*protocol),
                _ => None,
            },
            uptime_secs: self.started.elapsed().as_secs_f64(),
            started_at: self.started_wall,
            publisher_sessions: st.publishers,
            publisher_uptime_secs: match &st.slot {
                Slot::Live { since, .. } => Some(since.elapsed().as_secs_f64()),
                _ => None,
            },
        }
    }

    /// Bytes this stream's frames hold now (payloads and muxed copies).
    pub fn held_bytes(&self) -> usize {
        self.meter.held()
    }

    pub fn info(&self) -> StreamInfo {
        self.state.lock().info.clone()
    }

    /// Takes one frame of publisher `id` into the stream and wakes viewers.
    pub(crate) fn ingest(&self, id: u64, frame: Frame, limits: &Limits) -> Ingest {
        let stats = &self.stats;
        let mut guard = self.state.lock();
        if !matches!(guard.slot, Slot::Live { id: live, .. } if live == id) {
            return match &guard.displaced {
                Some(d) if d.id == id => Ingest::Diverted(d.src.clone(), frame),
                _ => Ingest::NotPublishing,
            };
        }
        if guard.await_keyframe && frame.kind == FrameKind::Video {
            if !frame.keyframe {
                return Ingest::Done;
            }
            guard.await_keyframe = false;
        }
        if let Err(e) = limits.budget.admit(&self.meter, frame.data.len()) {
            return Ingest::Refused(e);
        }
        let mut frame = guard.retime(frame);
        frame.charge = Some(Charge::new(&self.meter, frame.data.len()));
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
                    st.clear_gop();
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
                    st.clear_gop();
                    st.cache(&frame, limits);
                } else if !st.gop.is_empty() {
                    st.cache(&frame, limits);
                }
            }
            FrameKind::Audio => {
                if st.video_config.is_none() {
                    stats.live_edge_dts.store(frame.dts, Relaxed);
                    if st.gop.len() >= AUDIO_ONLY_CACHE {
                        if let Some(old) = st.gop.pop_front() {
                            st.gop_bytes -= old.data.len();
                        }
                    }
                    st.cache(&frame, limits);
                } else if !st.gop.is_empty() {
                    st.cache(&frame, limits);
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
            self.wake.notify_waiters();
        } else {
            self.audio_wake.notify_waiters();
        }
        Ingest::Done
    }

    /// Wakes the current publisher's [`crate::Publisher::kicked`].
    pub(crate) fn notify_kick(&self) -> bool {
        match &self.state.lock().slot {
            Slot::Live { kick, .. } => {
                kick.notify_one();
                true
            }
            _ => false,
        }
    }
}

/// The hub's limits as [`Stream::ingest`] applies them.
pub(crate) struct Limits {
    pub(crate) max_gop_frames: usize,
    pub(crate) max_gop_bytes: usize,
    pub(crate) budget: Budget,
}

impl State {
    pub(crate) fn clear_gop(&mut self) {
        self.gop.clear();
        self.gop_bytes = 0;
    }

    /// Adds a frame to the GOP cache; a GOP past either bound is dropped
    /// (viewers then wait for the next keyframe rather than get a huge burst).
    fn cache(&mut self, frame: &Arc<Frame>, limits: &Limits) {
        let bytes = self.gop_bytes + frame.data.len();
        if self.gop.len() >= limits.max_gop_frames || bytes > limits.max_gop_bytes {
            self.clear_gop();
        } else {
            self.gop.push_back(frame.clone());
            self.gop_bytes = bytes;
        }
    }

    /// Applies the stream clock to a publisher frame, keeping dts monotonic.
    pub(crate) fn retime(&mut self, mut frame: Frame) -> Frame {
        // Config frames carry no meaningful time: the first media frame re-bases.
        let rebase = if frame.kind.is_config() {
            None
        } else {
            self.rebase_gap.take()
        };
        if let Some(gap) = rebase {
            if let Some(last) = self.last_dts {
                self.ts_offset = last + gap.max(1) - frame.dts;
            }
            self.settling = [true; 2];
        } else if let Some(last) = self.last_dts {
            // A publisher whose clock jumps back more than a second (encoder
            // restart) is re-based instead of sending players back in time.
            if frame.dts + self.ts_offset < last - 1000 {
                self.ts_offset = last + 1 - frame.dts;
            }
        }
        let track = usize::from(!frame.kind.is_video());
        if !frame.kind.is_config() && std::mem::take(&mut self.settling[track]) {
            // The new source's tracks need not start together (an encoder's
            // priming, interleaving): its first frame of a track that would
            // land at or before that track's last moves the clock on, so
            // each track's time keeps going forward across the switch.
            if let Some(last) = self.track_last[track] {
                self.ts_offset += (last + 1 - (frame.dts + self.ts_offset)).max(0);
            }
        }
        if self.ts_offset != 0 {
            frame.dts += self.ts_offset;
            frame.pts += self.ts_offset;
        }
        if !frame.kind.is_config() {
            self.last_dts = Some(self.last_dts.map_or(frame.dts, |l| l.max(frame.dts)));
            self.track_last[track] =
                Some(self.track_last[track].map_or(frame.dts, |l| l.max(frame.dts)));
        }
        frame
    }
}
