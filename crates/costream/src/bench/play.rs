//! `costream bench play`: start the publisher (optional), ramp viewers up
//! at the connect rate, let every one run to the common deadline, report.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::probe::resolve;
use super::publish::{publish, Publish, PublishStats, SendTimes};
use super::report::{PublishReport, Report};
use super::url::{BenchUrl, RtmpTarget, Scheme};
use super::viewer::{Counters, ViewerStats, ViewerSummary};
use super::{http_flv, rtmp_play, PlayArgs};

/// How long send instants are kept for latency matching.
const SEND_TIMES_WINDOW: Duration = Duration::from_secs(30);
/// Viewers start at least this long after the publisher is accepted.
const PUBLISH_HEAD_START: Duration = Duration::from_millis(1500);
/// How long the publisher may take to send its first keyframe.
const FIRST_KEYFRAME_TIMEOUT: Duration = Duration::from_secs(20);
/// Progress line period (stderr).
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

struct Target {
    addr: std::net::SocketAddr,
    url: BenchUrl,
    rtmp: Option<RtmpTarget>,
}

struct Publisher {
    url: BenchUrl,
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<anyhow::Result<PublishStats>>,
}

pub(crate) async fn run(args: PlayArgs) -> anyhow::Result<()> {
    let tool_start = Instant::now();
    let deadline = tool_start + args.duration;
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if !(args.connect_rate.is_finite() && args.connect_rate > 0.0) {
        bail!("--connect-rate must be a positive number");
    }
    let url = BenchUrl::parse(&args.url)?;
    let rtmp = match url.scheme {
        Scheme::Rtmp => Some(url.rtmp_target()?),
        Scheme::HttpFlv => None,
    };
    let addr = resolve(&url).await?;
    let target = Arc::new(Target { addr, url, rtmp });

    let send_times = args
        .publish
        .as_ref()
        .map(|_| Arc::new(SendTimes::new(SEND_TIMES_WINDOW)));
    let publisher = match &args.publish {
        Some(path) => Some(
            start_publisher(
                &args,
                &target.url,
                path.clone(),
                send_times.clone(),
                deadline,
            )
            .await?,
        ),
        None => None,
    };

    let counters = Arc::new(Counters::default());
    let progress = tokio::spawn(progress(
        counters.clone(),
        args.clients,
        tool_start,
        deadline,
    ));
    let viewers_start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..args.clients {
        let start_at = viewers_start + Duration::from_secs_f64(i as f64 / args.connect_rate);
        if start_at >= deadline {
            break;
        }
        set.spawn(viewer(
            start_at,
            deadline,
            target.clone(),
            send_times.clone(),
            counters.clone(),
        ));
    }
    let mut summaries = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Some(summary)) => summaries.push(summary),
            Ok(None) => {}
            Err(e) => summaries.push(
                ViewerStats::new(None, None).finish(Instant::now(), Some(format!("task: {e}"))),
            ),
        }
    }
    progress.abort();

    let publish = match publisher {
        Some(p) => Some(stop_publisher(p).await),
        None => None,
    };
    let report = Report::build(
        &target.url.scheme.to_string(),
        &target.url.to_string(),
        args.clients,
        tool_start.elapsed().as_secs_f64(),
        &summaries,
        send_times.is_some(),
        publish,
    );
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.clients.connected == 0 {
        bail!("no client connected");
    }
    Ok(())
}

/// One viewer: waits for its turn, plays until the deadline.
async fn viewer(
    start_at: Instant,
    deadline: Instant,
    target: Arc<Target>,
    send_times: Option<Arc<SendTimes>>,
    counters: Arc<Counters>,
) -> Option<ViewerSummary> {
    tokio::time::sleep_until(start_at.into()).await;
    if Instant::now() >= deadline {
        return None;
    }
    let mut stats = ViewerStats::new(send_times, Some(counters));
    let play = async {
        match &target.rtmp {
            Some(rtmp) => rtmp_play::play(target.addr, rtmp, &mut stats, false).await,
            None => http_flv::play(target.addr, &target.url, &mut stats, false).await,
        }
    };
    let error = match tokio::time::timeout_at(deadline.into(), play).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => None,
    };
    let error = error.or_else(|| {
        (!stats.is_accepted()).then(|| "play not accepted before the end of the run".to_owned())
    });
    Some(stats.finish(Instant::now(), error))
}

async fn start_publisher(
    args: &PlayArgs,
    play_url: &BenchUrl,
    path: PathBuf,
    send_times: Option<Arc<SendTimes>>,
    deadline: Instant,
) -> anyhow::Result<Publisher> {
    let url = match &args.publish_url {
        Some(u) => BenchUrl::parse(u)?,
        None => play_url
            .derived_publish_url()
            .context("cannot derive the publish URL; give --publish-url")?,
    };
    let (stop, stop_rx) = watch::channel(false);
    let (keyframe_tx, keyframe_rx) = oneshot::channel();
    let (done_tx, mut done) = oneshot::channel();
    let started = Instant::now();
    // Its own thread and runtime, so that thousands of busy viewers do not
    // delay its schedule (nor the send instants it records).
    std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn({
            let url = url.clone();
            move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| {
                        rt.block_on(publish(Publish {
                            url: &url,
                            path: &path,
                            stop: stop_rx,
                            loops: true,
                            send_times,
                            first_keyframe: Some(keyframe_tx),
                        }))
                    });
                let _ = done_tx.send(result);
            }
        })
        .context("start the publisher thread")?;
    let waited = tokio::time::timeout(FIRST_KEYFRAME_TIMEOUT, keyframe_rx).await;
    match waited {
        Ok(Ok(())) => {}
        Ok(Err(_)) => {
            // The publisher ended before its first keyframe.
            let err = match (&mut done).await {
                Ok(Err(e)) => e,
                Ok(Ok(_)) => anyhow!("the file has no keyframe"),
                Err(_) => anyhow!("the publisher thread died"),
            };
            return Err(err.context(format!("publish to {url}")));
        }
        Err(_) => {
            let _ = stop.send(true);
            bail!("publish to {url}: no keyframe sent within {FIRST_KEYFRAME_TIMEOUT:?}");
        }
    }
    let go = (started + PUBLISH_HEAD_START).min(deadline);
    tokio::time::sleep_until(go.into()).await;
    Ok(Publisher { url, stop, done })
}

async fn stop_publisher(p: Publisher) -> PublishReport {
    let _ = p.stop.send(true);
    let (stats, error) = match tokio::time::timeout(Duration::from_secs(5), p.done).await {
        Ok(Ok(Ok(stats))) => (Some(stats), None),
        Ok(Ok(Err(e))) => (None, Some(format!("{e:#}"))),
        Ok(Err(_)) => (None, Some("the publisher thread died".to_owned())),
        // Left to finish on its own; the process is about to exit.
        Err(_) => (None, Some("did not stop within 5 s".to_owned())),
    };
    PublishReport {
        url: p.url.to_string(),
        error,
        stats,
    }
}

/// A status line on stderr every few seconds.
pub(crate) async fn progress(
    counters: Arc<Counters>,
    clients: u64,
    start: Instant,
    deadline: Instant,
) {
    let mut tick = tokio::time::interval_at((start + PROGRESS_EVERY).into(), PROGRESS_EVERY);
    let mut last_bytes = 0;
    let mut last_at = start;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let secs = now
            .saturating_duration_since(last_at)
            .as_secs_f64()
            .max(1e-3);
        let mbps = (bytes - last_bytes) as f64 * 8.0 / secs / 1e6;
        (last_bytes, last_at) = (bytes, now);
        eprintln!(
            "[{:>6.1}s] {}/{} connected, {} with video, {} ended with errors, {:.1} Mbps",
            now.saturating_duration_since(start).as_secs_f64(),
            counters.connected.load(Ordering::Relaxed),
            clients,
            counters.with_video.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
            mbps
        );
    }
}
