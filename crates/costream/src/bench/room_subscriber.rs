//! A bench participant's subscriber connection: one str0m peer answering
//! the server's offers, with the statistics of each publication it carries
//! kept apart by mid.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::anyhow;
use str0m::media::Mid;
use str0m::Event;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::h264_synth::opus_stamp;
use super::room::{MediaResult, STEADY_AFTER};
use super::rtc_client::{RtcClientFactory, RtcPeer};
use super::rtc_stats::RtcViewerStats;

/// An offer to answer: its SDP and the new tracks (identity, audio mid,
/// video mid).
type OfferIn = (
    String,
    Vec<(String, String, String)>,
    oneshot::Sender<anyhow::Result<String>>,
);

pub struct SubscriberConnection {
    offers: mpsc::Sender<OfferIn>,
    task: JoinHandle<Vec<MediaResult>>,
}

struct Track {
    stats: RtcViewerStats,
    latency_ms: Vec<f64>,
    steady: Instant,
}

impl SubscriberConnection {
    pub fn start(
        factory: &RtcClientFactory,
        local: std::net::IpAddr,
        deadline: Instant,
    ) -> anyhow::Result<Self> {
        let mut peer = RtcPeer::answering(factory, local)?;
        let (offers, mut rx) = mpsc::channel::<OfferIn>(8);
        let task = tokio::spawn(async move {
            let mut tracks: HashMap<String, Track> = HashMap::new();
            let mut connected = false;
            let mut error = None;
            let mut events: Vec<Event> = Vec::new();
            let mut open = true;
            while Instant::now() < deadline && peer.is_alive() {
                // An offer is answered as soon as it comes, not at the next wake.
                let mut collect = |e| events.push(e);
                let offer = tokio::select! {
                    offer = rx.recv(), if open => {
                        open = offer.is_some();
                        offer
                    }
                    stepped = peer.step(deadline, &mut collect) => {
                        if let Err(e) = stepped {
                            error = Some(format!("subscriber connection: {e:#}"));
                            break;
                        }
                        None
                    }
                };
                if let Some((sdp, new, reply)) = offer {
                    let answer = peer.answer(&sdp);
                    if answer.is_ok() {
                        for (identity, audio, video) in new {
                            let mut stats = RtcViewerStats::new(
                                Mid::from(video.as_str()),
                                Mid::from(audio.as_str()),
                                false,
                                None,
                            );
                            stats.answered_at = Some(Instant::now());
                            if connected {
                                stats.on_event(Event::Connected);
                            }
                            let steady = Instant::now() + STEADY_AFTER;
                            tracks.insert(
                                identity,
                                Track {
                                    stats,
                                    latency_ms: Vec::new(),
                                    steady,
                                },
                            );
                        }
                    }
                    let _ = reply.send(answer);
                    // Send the answer's consequences (nothing before ICE) now.
                    if let Err(e) = peer.drain(&mut |e| events.push(e)) {
                        error = Some(format!("subscriber connection: {e:#}"));
                        break;
                    }
                }
                for e in events.drain(..) {
                    on_event(&mut tracks, &mut connected, e);
                }
            }
            let bytes_each = peer.udp_bytes_in / tracks.len().max(1) as u64;
            tracks
                .into_values()
                .map(|t| MediaResult {
                    summary: Some(t.stats.finish(Instant::now(), bytes_each, error.clone())),
                    error: error.clone(),
                    latency_ms: t.latency_ms,
                    first_video_at: t.stats.first_video_at,
                })
                .collect()
        });
        Ok(SubscriberConnection { offers, task })
    }

    /// Answers an offer (its new tracks as identity, audio mid, video mid).
    pub async fn answer(
        &self,
        sdp: String,
        tracks: Vec<(String, String, String)>,
    ) -> anyhow::Result<String> {
        let (tx, rx) = oneshot::channel();
        self.offers
            .send((sdp, tracks, tx))
            .await
            .map_err(|_| anyhow!("the subscriber connection ended"))?;
        rx.await
            .map_err(|_| anyhow!("the subscriber connection ended"))?
    }

    pub async fn finish(self) -> Vec<MediaResult> {
        self.task.await.unwrap_or_default()
    }
}

/// Routes one event to the publication it is about (or to all of them).
fn on_event(tracks: &mut HashMap<String, Track>, connected: &mut bool, e: Event) {
    match e {
        Event::Connected => {
            *connected = true;
            for t in tracks.values_mut() {
                t.stats.on_event(Event::Connected);
            }
        }
        Event::IceConnectionStateChange(s) => {
            for t in tracks.values_mut() {
                t.stats.on_event(Event::IceConnectionStateChange(s));
            }
        }
        Event::MediaData(d) => {
            let Some(t) = tracks
                .values_mut()
                .find(|t| t.stats.video == d.mid || t.stats.audio == d.mid)
            else {
                return;
            };
            if d.mid == t.stats.audio && Instant::now() >= t.steady {
                if let Some(sent) = opus_stamp(&d.data) {
                    t.latency_ms.push(
                        Instant::now().saturating_duration_since(sent).as_secs_f64() * 1000.0,
                    );
                }
            }
            t.stats.on_event(Event::MediaData(d));
        }
        Event::MediaIngressStats(s) => {
            if let Some(t) = tracks
                .values_mut()
                .find(|t| t.stats.video == s.mid || t.stats.audio == s.mid)
            {
                t.stats.on_event(Event::MediaIngressStats(s));
            }
        }
        _ => {}
    }
}
