//! `costream bench whep`: many WebRTC viewers of one stream, ramped up at
//! the connect rate, each a tokio task owning its str0m peer and socket,
//! all running to a common deadline; then a report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::task::JoinSet;

use super::cpu::{CpuReport, CpuSampler};
use super::play::progress;
use super::rtc_client::{HttpEndpoint, RtcClientFactory};
use super::rtc_stats::RtcViewerSummary;
use super::viewer::Counters;
use super::whep_report::WhepReport;
use super::whep_viewer::{watch, ViewerOptions};
use super::WhepArgs;

pub(crate) async fn run(args: WhepArgs) -> anyhow::Result<()> {
    let report = bench_whep(&args).await?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    if report.clients.connected == 0 {
        bail!("no viewer connected");
    }
    Ok(())
}

/// Runs the viewers and builds the report (the library entry point).
pub async fn bench_whep(args: &WhepArgs) -> anyhow::Result<WhepReport> {
    let tool_start = Instant::now();
    let deadline = tool_start + args.duration;
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if !(args.connect_rate.is_finite() && args.connect_rate > 0.0) {
        bail!("--connect-rate must be a positive number");
    }
    let endpoint = Arc::new(HttpEndpoint::resolve(&args.url).await?);
    let factory = Arc::new(RtcClientFactory::new(args.recv_buffer));
    let counters = Arc::new(Counters::default());
    let options = Arc::new(ViewerOptions {
        counters: Some(counters.clone()),
        ..ViewerOptions::default()
    });

    // CPU is sampled over exactly the run, not the teardown after it.
    let cpu = CpuSampler::start(args.server_pid);
    let cpu_at_deadline = tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        cpu.finish()
    });
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
        let (endpoint, factory, options) = (endpoint.clone(), factory.clone(), options.clone());
        set.spawn(async move {
            tokio::time::sleep_until(start_at.into()).await;
            match watch(&endpoint, &factory, deadline, &options).await {
                Ok(w) => w.stats.finish(w.ended, w.udp_bytes_in, w.error),
                Err(e) => RtcViewerSummary::failed(format!("{e:#}")),
            }
        });
    }
    let mut summaries = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        summaries.push(joined.unwrap_or_else(|e| RtcViewerSummary::failed(format!("task: {e}"))));
    }
    progress.abort();
    let cpu = cpu_at_deadline
        .await
        .unwrap_or_else(|_| CpuReport::default());
    Ok(WhepReport::build(
        &endpoint.url.to_string(),
        args.clients,
        // The run proper; the DELETEs after the deadline are not part of it.
        deadline.saturating_duration_since(tool_start).as_secs_f64(),
        &summaries,
        cpu,
    ))
}
