//! `costream bench room`: link-mic rooms under load. In each room the
//! publishers join over the signaling WebSocket, publish synthetic H.264
//! and Opus and subscribe to each other (a full mesh through the SFU);
//! once they are live, audience members join and subscribe to every
//! publisher. Reported: join and join-to-first-remote-frame times, frame
//! rates and loss of every subscription, the audio's path latency, and the
//! server's CPU per forwarded stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use str0m::media::Direction;
use str0m::Event;
use tokio::task::JoinSet;

use super::cpu::{CpuReport, CpuSampler};
use super::h264_synth::opus_stamp;
use super::room_subscriber::SubscriberConnection;
use super::rtc_client::{HttpEndpoint, RtcClientFactory, RtcPeer};
use super::rtc_stats::{RtcViewerStats, RtcViewerSummary};
use super::stats::Summary;
use super::whip_publisher::{send_media, PublishOptions, PublisherReport};
use super::RoomArgs;
use crate::access::{mint, ApiKey, Role};
use crate::room::client::RoomClient;
use crate::room::protocol::{ClientMessage, ServerMessage};

/// Publishers get this long to go live before the audience joins.
const WARM_UP: Duration = Duration::from_secs(3);
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);
/// A new subscriber first gets the cached GOP and the audio beside it (up
/// to a keyframe interval old); the audio path is timed after that.
pub(super) const STEADY_AFTER: Duration = Duration::from_millis(2500);

/// What one participant saw.
#[derive(Debug, Default)]
struct Participant {
    publisher: bool,
    error: Option<String>,
    join: Option<Duration>,
    /// From the start of joining to the first video frame of any remote.
    first_remote_frame: Option<Duration>,
    subscriptions: Vec<RtcViewerSummary>,
    /// Opus packet send-to-receive times, ms.
    audio_latency_ms: Vec<f64>,
    /// Subscriptions whose video the server's bandwidth budget paused (at the end).
    videos_paused: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomReport {
    /// Subscriptions on one server-offered connection per participant
    /// (false: a connection per subscription).
    pub subscriber_connection: bool,
    pub rooms: u64,
    pub publishers_per_room: u64,
    pub viewers_per_room: u64,
    pub bitrate_bps: u64,
    pub duration_s: f64,
    pub participants_failed: u64,
    pub errors: Vec<String>,
    /// Subscriptions that connected (forwarded streams).
    pub forwarded_streams: u64,
    pub subscriptions_failed: u64,
    /// Subscriptions whose video the budget paused (their fps is near 0).
    pub videos_paused: u64,
    pub join_ms: Option<Summary>,
    /// Audience members: join start to the first remote video frame.
    pub viewer_first_frame_ms: Option<Summary>,
    /// Publishers: join start to the first remote video frame (includes
    /// waiting for the others to publish).
    pub publisher_first_frame_ms: Option<Summary>,
    pub video_fps: Option<Summary>,
    pub loss_percent: Option<f64>,
    pub nacks: u64,
    /// Publisher to subscriber, through the server (no capture, encode,
    /// jitter buffer or playout).
    pub audio_path_ms: Option<Summary>,
    pub cpu: CpuReport,
    /// Server CPU (% of a core) per forwarded stream.
    pub server_cpu_percent_per_stream: Option<f64>,
}

pub(crate) async fn run(args: RoomArgs) -> anyhow::Result<()> {
    let report = bench_room(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    if report.forwarded_streams == 0 {
        bail!("no subscription connected");
    }
    Ok(())
}

pub async fn bench_room(args: &RoomArgs) -> anyhow::Result<RoomReport> {
    if args.publishers == 0 || args.rooms == 0 {
        bail!("--rooms and --publishers must be at least 1");
    }
    let key = ApiKey {
        key: args.api_key.clone(),
        secret: args.api_secret.clone(),
    };
    let endpoint = Arc::new(HttpEndpoint::resolve(&args.url).await?);
    let ws = format!(
        "ws://{}/rtc?auto_subscribe={}&access_token=",
        endpoint.url.authority().trim_end_matches('/'),
        // On the subscriber connection the server subscribes everybody to
        // everything (its default); otherwise each subscription is asked for.
        !args.own_connections
    );
    let factory = Arc::new(RtcClientFactory::default());
    let start = Instant::now();
    let deadline = start + args.duration;
    let cpu = CpuSampler::start(args.server_pid);
    let cpu_at_deadline = tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        cpu.finish()
    });
    let options = Arc::new(PublishOptions {
        bitrate_bps: args.bitrate,
        fps: args.fps,
        keyframe_interval: KEYFRAME_INTERVAL,
        token: None,
        stop: Default::default(),
        audio_level: Some(-30),
        stamp_audio: true,
    });
    let shared = !args.own_connections;
    let mut set = JoinSet::new();
    for r in 0..args.rooms {
        let room = format!("bench-{r}");
        for i in 0..args.publishers + args.viewers {
            let publisher = i < args.publishers;
            let role = match (publisher, i) {
                (true, 0) => Role::Host,
                (true, _) => Role::Guest,
                (false, _) => Role::Audience,
            };
            let identity = if publisher {
                format!("p{i}")
            } else {
                format!("v{i}")
            };
            let token = mint(&key, &room, &identity, role, None, args.duration * 2)
                .map_err(|e| anyhow!("minting a token: {e}"))?;
            let url = format!("{ws}{token}");
            let (endpoint, factory, options) = (endpoint.clone(), factory.clone(), options.clone());
            let begin = if publisher { start } else { start + WARM_UP };
            set.spawn(async move {
                tokio::time::sleep_until(begin.into()).await;
                let mut p = Participant {
                    publisher,
                    ..Default::default()
                };
                let run = participant(
                    &url, &endpoint, &factory, &options, deadline, shared, &mut p,
                );
                if let Err(e) = run.await {
                    p.error = Some(format!("{identity}: {e:#}"));
                }
                p
            });
        }
    }
    let mut all = Vec::new();
    while let Some(p) = set.join_next().await {
        all.push(p.unwrap_or_else(|e| Participant {
            error: Some(format!("task: {e}")),
            ..Default::default()
        }));
    }
    let cpu = cpu_at_deadline.await.unwrap_or_default();
    Ok(RoomReport::build(args, &all, cpu, start.elapsed()))
}

/// Joins, publishes (a publisher) and subscribes to every publisher, until
/// `deadline`.
async fn participant(
    url: &str,
    endpoint: &HttpEndpoint,
    factory: &RtcClientFactory,
    options: &PublishOptions,
    deadline: Instant,
    shared: bool,
    out: &mut Participant,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let (mut client, joined) = RoomClient::join(url).await.map_err(|e| anyhow!("{e}"))?;
    out.join = Some(started.elapsed());
    let ServerMessage::Joined {
        participants, you, ..
    } = joined
    else {
        bail!("expected joined");
    };
    let mut media = JoinSet::new();
    if out.publisher {
        let mut peer = RtcPeer::new(factory, endpoint.local_ip, Direction::SendOnly)?;
        let sdp = peer.take_offer()?;
        match client.request(ClientMessage::Publish { sdp }).await? {
            ServerMessage::PublishAnswer { sdp, .. } => peer.accept_answer(&sdp)?,
            other => bail!("publish: {other:?}"),
        }
        let options = options.clone();
        media.spawn(async move {
            let mut report = PublisherReport::default();
            let sent = send_media(&mut peer, &mut report, &options, Instant::now(), deadline).await;
            MediaResult {
                error: sent.err().map(|e| format!("publishing: {e:#}")),
                ..MediaResult::default()
            }
        });
    }
    // Publishers already live, then each new one.
    let mut pending: Vec<String> = participants
        .iter()
        .filter(|p| !p.tracks.is_empty())
        .map(|p| p.identity.clone())
        .collect();
    let mut subscribed = 0;
    let mut connection = None;
    loop {
        if shared {
            // The server offers what it subscribed us to.
            pending.clear();
        }
        for publisher in pending.drain(..) {
            let mut peer = RtcPeer::new(factory, endpoint.local_ip, Direction::RecvOnly)?;
            let stats = RtcViewerStats::new(peer.video, peer.audio, false, None);
            let sdp = peer.take_offer()?;
            let answer = client
                .request(ClientMessage::Subscribe {
                    identity: publisher.clone(),
                    sdp: Some(sdp),
                })
                .await?;
            let ServerMessage::SubscribeAnswer { sdp, .. } = answer else {
                bail!("subscribe to {publisher}: {answer:?}");
            };
            peer.accept_answer(&sdp)?;
            subscribed += 1;
            media.spawn(receive(peer, stats, deadline));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let next = client
            .wait_for(left, |m| {
                matches!(
                    m,
                    ServerMessage::TrackPublished { .. } | ServerMessage::Offer { .. }
                )
            })
            .await;
        match next {
            Ok(ServerMessage::TrackPublished { identity, .. }) if identity != you.identity => {
                pending.push(identity)
            }
            Ok(ServerMessage::Offer { sdp, tracks, .. }) => {
                if connection.is_none() {
                    connection = Some(SubscriberConnection::start(
                        factory,
                        endpoint.local_ip,
                        deadline,
                    )?);
                }
                let Some(c) = &connection else {
                    bail!("no subscriber connection");
                };
                let mut new: Vec<(String, String, String)> = Vec::new();
                for t in &tracks {
                    let entry = match new.iter_mut().find(|n| n.0 == t.identity) {
                        Some(e) => e,
                        None => {
                            new.push((t.identity.clone(), String::new(), String::new()));
                            new.last_mut().context("just pushed")?
                        }
                    };
                    match t.kind {
                        crate::room::protocol::TrackKind::Audio => entry.1 = t.mid.clone(),
                        crate::room::protocol::TrackKind::Video => entry.2 = t.mid.clone(),
                    }
                }
                subscribed += new.len();
                let answer = c.answer(sdp, new).await?;
                client.send(ClientMessage::Answer { sdp: answer }).await?;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let mut results = match connection {
        Some(c) => c.finish().await,
        None => Vec::new(),
    };
    if subscribed == 0 && !out.publisher {
        bail!("nobody to subscribe to");
    }
    while let Some(done) = media.join_next().await {
        results.push(done.context("media task")?);
    }
    let mut first_frame: Option<Instant> = None;
    for done in results {
        out.subscriptions.extend(done.summary);
        out.audio_latency_ms.extend(done.latency_ms);
        if let Some(e) = done.error {
            out.error.get_or_insert(e);
        }
        first_frame = match (first_frame, done.first_video_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    out.first_remote_frame = first_frame.map(|t| t.saturating_duration_since(started));
    let _ = client.pump(Duration::from_millis(10)).await;
    let mut paused = std::collections::HashSet::new();
    for m in &client.log {
        if let ServerMessage::VideoPaused {
            identity,
            paused: p,
        } = m
        {
            if *p {
                paused.insert(identity.clone());
            } else {
                paused.remove(identity);
            }
        }
    }
    out.videos_paused = paused.len() as u64;
    let _ = client.leave().await;
    Ok(())
}

#[derive(Default)]
pub(super) struct MediaResult {
    pub summary: Option<RtcViewerSummary>,
    pub error: Option<String>,
    pub latency_ms: Vec<f64>,
    pub first_video_at: Option<Instant>,
}

/// One subscription until `deadline`: frames, loss and audio path latency.
async fn receive(mut peer: RtcPeer, mut stats: RtcViewerStats, deadline: Instant) -> MediaResult {
    let audio = stats.audio;
    let mut latency = Vec::new();
    stats.answered_at = Some(Instant::now());
    let mut error = None;
    let steady = Instant::now() + STEADY_AFTER;
    while Instant::now() < deadline && peer.is_alive() {
        let stepped = peer
            .step(deadline, &mut |e| {
                if let Event::MediaData(d) = &e {
                    if d.mid == audio && Instant::now() >= steady {
                        if let Some(sent) = opus_stamp(&d.data) {
                            latency.push(
                                Instant::now().saturating_duration_since(sent).as_secs_f64()
                                    * 1000.0,
                            );
                        }
                    }
                }
                stats.on_event(e)
            })
            .await;
        if let Err(e) = stepped {
            error = Some(format!("subscription: {e:#}"));
            break;
        }
    }
    let summary = stats.finish(Instant::now(), peer.udp_bytes_in, error.clone());
    MediaResult {
        summary: Some(summary),
        error,
        latency_ms: latency,
        first_video_at: stats.first_video_at,
    }
}

impl RoomReport {
    fn build(args: &RoomArgs, all: &[Participant], cpu: CpuReport, ran: Duration) -> RoomReport {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let summary = |mut v: Vec<f64>| Summary::of(&mut v);
        let subs: Vec<&RtcViewerSummary> = all.iter().flat_map(|p| &p.subscriptions).collect();
        let forwarded = subs.iter().filter(|s| s.connected).count() as u64;
        let (expected, lost) = subs.iter().fold((0, 0), |(e, l), s| {
            (e + s.packets_expected, l + s.packets_lost)
        });
        let first = |publisher: bool| {
            summary(
                all.iter()
                    .filter(|p| p.publisher == publisher)
                    .filter_map(|p| p.first_remote_frame.map(ms))
                    .collect(),
            )
        };
        RoomReport {
            subscriber_connection: !args.own_connections,
            rooms: args.rooms,
            publishers_per_room: args.publishers,
            viewers_per_room: args.viewers,
            bitrate_bps: args.bitrate,
            duration_s: ran.as_secs_f64(),
            participants_failed: all.iter().filter(|p| p.error.is_some()).count() as u64,
            errors: all.iter().filter_map(|p| p.error.clone()).take(5).collect(),
            forwarded_streams: forwarded,
            subscriptions_failed: subs.len() as u64 - forwarded,
            videos_paused: all.iter().map(|p| p.videos_paused).sum(),
            join_ms: summary(all.iter().filter_map(|p| p.join.map(ms)).collect()),
            viewer_first_frame_ms: first(false),
            publisher_first_frame_ms: first(true),
            video_fps: summary(subs.iter().filter_map(|s| s.video_fps).collect()),
            loss_percent: (expected > 0).then(|| lost as f64 * 100.0 / expected as f64),
            nacks: subs.iter().map(|s| s.nacks).sum(),
            audio_path_ms: summary(
                all.iter()
                    .flat_map(|p| p.audio_latency_ms.iter().copied())
                    .collect(),
            ),
            server_cpu_percent_per_stream: cpu
                .server_cpu_percent
                .filter(|_| forwarded > 0)
                .map(|c| c / forwarded as f64),
            cpu,
        }
    }

    pub fn text(&self) -> String {
        let s = |x: &Option<Summary>| {
            x.map_or("n/a".to_owned(), |x| {
                format!("median {:.0}, p95 {:.0}, max {:.0}", x.median, x.p95, x.max)
            })
        };
        let mut out = format!(
            "rooms: {} x ({} publishers + {} viewers), {} kbit/s video each, {:.0} s, {}\n",
            self.rooms,
            self.publishers_per_room,
            self.viewers_per_room,
            self.bitrate_bps / 1000,
            self.duration_s,
            if self.subscriber_connection {
                "one subscriber connection each"
            } else {
                "a connection per subscription"
            }
        );
        out += &format!(
            "forwarded streams: {} ({} failed, video paused by the budget on {}); participants failed: {}\n",
            self.forwarded_streams,
            self.subscriptions_failed,
            self.videos_paused,
            self.participants_failed
        );
        for e in &self.errors {
            out += &format!("  error: {e}\n");
        }
        out += &format!("join (WebSocket to joined), ms: {}\n", s(&self.join_ms));
        out += &format!(
            "viewer join to first remote frame, ms: {}\n",
            s(&self.viewer_first_frame_ms)
        );
        out += &format!(
            "publisher join to first remote frame, ms: {}\n",
            s(&self.publisher_first_frame_ms)
        );
        out += &format!(
            "video fps per subscription: {}\n",
            self.video_fps.map_or("n/a".to_owned(), |x| format!(
                "median {:.1}, min {:.1}",
                x.median, x.min
            ))
        );
        out += &format!(
            "RTP loss after NACK: {}; NACKs {}\n",
            self.loss_percent
                .map_or("n/a".to_owned(), |l| format!("{l:.3} %")),
            self.nacks
        );
        out += &format!(
            "audio path (publisher to subscriber through the server), ms: {}\n",
            s(&self.audio_path_ms)
        );
        out += &format!("cpu: {}\n", self.cpu.text());
        if let Some(c) = self.server_cpu_percent_per_stream {
            out += &format!("server cpu per forwarded stream: {c:.2} % of a core\n");
        }
        out
    }
}
