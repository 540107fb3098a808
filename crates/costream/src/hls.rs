//! HLS: one segmenter per live stream (a hub subscriber), its playlist and
//! segments kept in memory for the HTTP handlers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use costream_hls::{Playlist, Segmenter, SegmenterConfig};
use costream_hub::{Hub, HubEvent, Protocol, StreamKey, Subscriber};
use parking_lot::Mutex;
use tokio::sync::{broadcast::error::RecvError, watch, Notify};

use crate::config::HlsConfig;

/// A stream segmented on demand (see `ensure`) stops being segmented this
/// long after the last HLS request.
const HLS_IDLE: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct HlsService {
    streams: Arc<Mutex<HashMap<StreamKey, Arc<HlsStream>>>>,
    config: HlsConfig,
    bridges: crate::bridge::Bridges,
    /// The hub's per-stream memory budget, which bounds segment sizes too.
    max_stream_bytes: usize,
}

pub struct HlsStream {
    playlist: Mutex<Playlist>,
    /// Signalled by each client request: segmenting on demand starts.
    demand: Notify,
    last_request: Mutex<Instant>,
    /// Bumped on every new segment so playlist requests can wait for the first.
    segments: watch::Sender<u64>,
    /// Clients seen recently, to report an HLS viewer count.
    clients: Mutex<HashMap<IpAddr, Instant>>,
    hub_stream: Arc<costream_hub::Stream>,
}

impl HlsService {
    /// Starts watching the hub for streams to segment.
    pub fn start(hub: Hub, config: HlsConfig, bridges: crate::bridge::Bridges) -> HlsService {
        let service = HlsService {
            streams: Arc::default(),
            config,
            bridges,
            max_stream_bytes: hub.config().budget.max_stream,
        };
        if service.config.enabled {
            let svc = service.clone();
            let mut events = hub.events();
            tokio::spawn(async move {
                for s in hub.streams() {
                    svc.ensure(&hub, s.key().clone());
                }
                loop {
                    match events.recv().await {
                        Ok(HubEvent::StreamStarted(key)) => svc.ensure(&hub, key),
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => {
                            for s in hub.streams() {
                                svc.ensure(&hub, s.key().clone());
                            }
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        }
        service
    }

    pub fn get(&self, key: &StreamKey) -> Option<Arc<HlsStream>> {
        self.streams.lock().get(key).cloned()
    }

    pub fn segment_duration(&self) -> Duration {
        self.config.segment_duration
    }

    /// Starts a segmenter for `key` unless one runs for the live stream.
    fn ensure(&self, hub: &Hub, key: StreamKey) {
        if key.is_bridged() {
            return;
        }
        let Some(hub_stream) = hub.stream(&key) else {
            return;
        };
        let mut streams = self.streams.lock();
        if let Some(existing) = streams.get(&key) {
            if Arc::ptr_eq(&existing.hub_stream, &hub_stream) {
                return;
            }
        }
        let Ok(sub) = hub.subscribe(&key, Protocol::Internal) else {
            return;
        };
        let hls = Arc::new(HlsStream {
            playlist: Mutex::new(Playlist::new(self.config.window)),
            demand: Notify::new(),
            last_request: Mutex::new(Instant::now()),
            segments: watch::channel(0).0,
            clients: Mutex::default(),
            hub_stream,
        });
        streams.insert(key.clone(), hls.clone());
        drop(streams);
        let svc = self.clone();
        let seg_config = SegmenterConfig {
            target_duration_ms: self.config.segment_duration.as_millis() as u64,
            // A stream's HLS window holds at most what its frames may hold.
            max_segment_bytes: self.max_stream_bytes / (self.config.window + 1),
            ..Default::default()
        };
        tokio::spawn(async move {
            let mut source = sub;
            // Opus audio (a WHIP stream): TS carries AAC, so the segments
            // come from the stream's AAC twin, and only while HLS clients
            // ask, so that its transcoder runs only then.
            let mut on_demand = false;
            let mut twin: Option<Subscriber> = None;
            let mut segmenter = Segmenter::new(seg_config);
            let mut idle_check = tokio::time::interval(HLS_IDLE / 4);
            loop {
                let frame = tokio::select! {
                    f = async {
                        match twin.as_mut() {
                            Some(t) => t.recv().await,
                            None => std::future::pending().await,
                        }
                    } => match f {
                        Some(f) => f,
                        None => break,
                    },
                    f = source.recv() => match f {
                        Some(_) if on_demand => continue,
                        Some(f) => f,
                        None => break,
                    },
                    _ = hls.demand.notified(), if on_demand && twin.is_none() => {
                        if let Ok(t) = svc.bridges.subscribe(&key, Protocol::Hls) {
                            if t.stream().key().is_bridged() {
                                tracing::debug!(stream = %key, "HLS segments the AAC twin");
                                twin = Some(t);
                                segmenter = Segmenter::new(seg_config);
                                hls.playlist.lock().restart();
                            }
                        }
                        continue;
                    },
                    _ = idle_check.tick(), if twin.is_some() => {
                        if hls.last_request.lock().elapsed() > HLS_IDLE {
                            tracing::debug!(stream = %key, "no HLS client: the AAC twin is let go");
                            twin = None;
                        }
                        continue;
                    },
                };
                if frame.kind == costream_hub::FrameKind::AudioConfig
                    && frame.codec == costream_hub::Codec::Opus
                    && twin.is_none()
                {
                    on_demand = true;
                    continue;
                }
                if !crate::mux::flv_carries(&frame) {
                    continue;
                }
                if let Some(seg) = segmenter.push(&frame) {
                    hls.add(seg);
                }
            }
            if let Some(seg) = segmenter.finish() {
                hls.add(seg);
            }
            hls.playlist.lock().end();
            hls.segments.send_modify(|n| *n += 1);
            tracing::debug!(stream = %key, "HLS playlist ended");
            tokio::time::sleep(svc.config.keep_after_end).await;
            let mut streams = svc.streams.lock();
            if streams.get(&key).is_some_and(|s| Arc::ptr_eq(s, &hls)) {
                streams.remove(&key);
            }
        });
    }
}

impl HlsStream {
    fn add(&self, seg: costream_hls::Segment) {
        self.playlist.lock().push(seg);
        self.segments.send_modify(|n| *n += 1);
    }

    /// The playlist text, waiting up to `wait` for the first segment.
    pub async fn playlist(
        &self,
        segment_uri: impl Fn(u64) -> String,
        wait: Duration,
    ) -> Option<String> {
        let mut rx = self.segments.subscribe();
        let ready = |p: &Playlist| !p.is_empty() || p.is_ended();
        if !ready(&self.playlist.lock()) {
            let _ = tokio::time::timeout(wait, rx.wait_for(|_| ready(&self.playlist.lock()))).await;
        }
        let playlist = self.playlist.lock();
        (!playlist.is_empty()).then(|| playlist.render(segment_uri))
    }

    pub fn segment(&self, sequence: u64) -> Option<Bytes> {
        self.playlist.lock().get(sequence)
    }

    /// Notes a client; HLS viewers are the addresses seen in the last `window`.
    pub fn saw_client(&self, ip: IpAddr, window: Duration) {
        *self.last_request.lock() = Instant::now();
        self.demand.notify_one();
        let mut clients = self.clients.lock();
        let now = Instant::now();
        clients.insert(ip, now);
        clients.retain(|_, seen| now.duration_since(*seen) < window);
        self.hub_stream
            .stats
            .set_viewers(Protocol::Hls, clients.len() as u64);
    }
}
