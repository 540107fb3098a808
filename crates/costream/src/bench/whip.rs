//! `costream bench whip`: one or more WHIP publishers of synthetic media
//! (see [`whip_publisher`](super::whip_publisher)), then a report. With
//! more than one publisher, publisher `i` publishes `STREAM-i`.
//!
//! # JSON (`--json`)
//!
//! `{protocol: "whip", url, duration_s, bitrate_kbps, fps, publishers:
//! [{url, error, connect_ms, video_frames, keyframes, audio_packets,
//! media_bytes, udp_bytes_sent, dropped_sends, keyframe_requests,
//! max_late_ms}], cpu}`; `cpu` as in `bench whep`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::task::JoinSet;

use super::cpu::{CpuReport, CpuSampler};
use super::rtc_client::{HttpEndpoint, RtcClientFactory};
use super::url::BenchUrl;
use super::whip_publisher::{publish, PublishOptions, PublisherReport};
use super::WhipArgs;

/// Keyframe interval of the synthetic stream.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Serialize)]
pub struct WhipReport {
    pub protocol: String,
    pub url: String,
    pub duration_s: f64,
    pub bitrate_kbps: f64,
    pub fps: f64,
    pub publishers: Vec<PublisherReport>,
    pub cpu: CpuReport,
}

pub(crate) async fn run(args: WhipArgs) -> anyhow::Result<()> {
    // Ctrl-C ends the run early but cleanly: the sessions are DELETEd, so
    // the server ends the stream at once instead of holding the key for a
    // reconnect, and the report is still printed.
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    let report = publish_all(&args, stop).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("serialize the report")?
        );
    } else {
        print!("{}", report.to_text());
    }
    if report.publishers.iter().all(|p| p.connect_ms.is_none()) {
        bail!("no publisher connected");
    }
    Ok(())
}

/// Runs the publishers to the end of `--duration` and reports (the
/// library entry point).
pub async fn bench_whip(args: &WhipArgs) -> anyhow::Result<WhipReport> {
    publish_all(args, Arc::new(AtomicBool::new(false))).await
}

async fn publish_all(args: &WhipArgs, stop: Arc<AtomicBool>) -> anyhow::Result<WhipReport> {
    let start = Instant::now();
    let deadline = start + args.duration;
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if !(args.fps.is_finite() && args.fps > 0.0 && args.fps <= 240.0) {
        bail!("--fps must be above 0 and at most 240");
    }
    let endpoint = Arc::new(HttpEndpoint::resolve(&args.url).await?);
    let factory = Arc::new(RtcClientFactory::default());
    let options = Arc::new(PublishOptions {
        bitrate_bps: args.bitrate,
        fps: args.fps,
        keyframe_interval: KEYFRAME_INTERVAL,
        token: args.token.clone(),
        stop,
        audio_level: None,
        stamp_audio: false,
    });
    let cpu = CpuSampler::start(args.server_pid);
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let target = publisher_target(&endpoint.url, i, args.clients);
        let (endpoint, factory, options) = (endpoint.clone(), factory.clone(), options.clone());
        set.spawn(async move {
            (
                i,
                publish(&endpoint, &target, &factory, &options, deadline).await,
            )
        });
    }
    let mut publishers = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(done) => publishers.push(done),
            Err(e) => bail!("publisher task: {e}"),
        }
    }
    let cpu = cpu.finish();
    publishers.sort_by_key(|(i, _)| *i);
    Ok(WhipReport {
        protocol: "whip".to_owned(),
        url: endpoint.url.to_string(),
        duration_s: start.elapsed().as_secs_f64(),
        bitrate_kbps: args.bitrate as f64 / 1000.0,
        fps: args.fps,
        publishers: publishers.into_iter().map(|(_, p)| p).collect(),
        cpu,
    })
}

/// The request target of publisher `i` of `n`: the URL's own stream for a
/// single publisher, else `STREAM-i` (query kept).
fn publisher_target(url: &BenchUrl, i: u64, n: u64) -> String {
    if n == 1 {
        return url.request_target();
    }
    let path = format!("{}-{i}", url.path.trim_end_matches('/'));
    match &url.query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

impl WhipReport {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "costream bench: whip {} for {:.1} s ({} publisher(s), {:.0} kbps at {} fps)",
            self.url,
            self.duration_s,
            self.publishers.len(),
            self.bitrate_kbps,
            self.fps
        );
        for (i, p) in self.publishers.iter().enumerate() {
            let connected = p.connect_ms.map_or("not connected".to_owned(), |ms| {
                format!("connected in {ms:.0} ms")
            });
            let _ = writeln!(
                s,
                "publisher {i:<4} {}: {connected}; {} video frames ({} keyframes, {} keyframe requests), {} audio packets, {:.1} MB media, {:.1} MB UDP sent ({} dropped), max {:.0} ms behind schedule",
                p.url,
                p.video_frames,
                p.keyframes,
                p.keyframe_requests,
                p.audio_packets,
                p.media_bytes as f64 / 1e6,
                p.udp_bytes_sent as f64 / 1e6,
                p.dropped_sends,
                p.max_late_ms
            );
            if let Some(e) = &p.error {
                let _ = writeln!(s, "               error: {e}");
            }
        }
        let _ = writeln!(s, "cpu            {}", self.cpu.text());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let url = BenchUrl::parse("http://h:8080/whip/live/s?x=1").unwrap();
        assert_eq!(publisher_target(&url, 0, 1), "/whip/live/s?x=1");
        assert_eq!(publisher_target(&url, 2, 3), "/whip/live/s-2?x=1");
    }
}
