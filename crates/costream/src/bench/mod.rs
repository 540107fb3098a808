//! `costream bench`: the load tool. Many simulated viewers (HTTP-FLV or
//! RTMP) against one stream, optionally fed by a real-time publisher, then
//! a report: connect success, time to first video frame, bitrate, viewers
//! that fell behind, push-to-play latency and errors.
//!
//! ```text
//! costream bench play --url http://127.0.0.1:8080/live/s.flv --clients 2000 \
//!     --duration 60s --connect-rate 500 --publish test.flv [--json]
//! costream bench publish --url rtmp://127.0.0.1:1935/live/s --file test.flv
//! costream bench probe --url rtmp://127.0.0.1:1935/live/s
//! ```
//!
//! Built to share a small machine with the server it measures: one task per
//! viewer on the multi-threaded runtime, one 64 KiB read buffer per viewer
//! reused in place, only tag headers parsed, fixed-size per-viewer state.
//!
//! For tests: [`probe_first_frame`] and [`publish_flv_file`].

mod chunked;
mod http_flv;
mod media;
mod play;
mod probe;
mod publish;
mod report;
mod rtmp_play;
mod stats;
mod url;
mod viewer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use clap::{Args, Subcommand};

pub use probe::{probe_first_frame, FirstFrame};
pub use publish::{publish_flv_file, PublishStats};
pub use report::Report;

/// Read buffer size per connection.
pub(crate) const READ_BUFFER: usize = 64 * 1024;
/// Largest FLV tag accepted from an HTTP-FLV server.
pub(crate) const MAX_TAG_SIZE: usize = 8 << 20;

/// Makes room to read: keeps filling the tail of the current buffer, and
/// only when that runs low asks for half a buffer more. `BytesMut` then
/// moves the unread bytes (a partial tag) to the front of the same
/// allocation if nothing else still refers to it, so a viewer normally
/// reads into one 64 KiB allocation for its whole life; otherwise it gets
/// a fresh one.
pub(crate) fn reserve_read_buffer(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 8 * 1024 {
        buf.reserve(READ_BUFFER / 2);
    }
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Simulate many viewers of one stream and report how they fared.
    Play(PlayArgs),
    /// Publish an FLV file over RTMP in real time, looping, until Ctrl-C
    /// (or --duration).
    Publish(PublishArgs),
    /// Connect one viewer and print how its first video frame arrived.
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct PlayArgs {
    /// http://host:port/app/stream.flv (HTTP-FLV) or
    /// rtmp://host:port/app/stream (RTMP).
    #[arg(long)]
    pub url: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 1)]
    pub clients: u64,
    /// How long the run lasts, from the tool's start, e.g. 30s or 5m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Viewers started per second.
    #[arg(long, default_value_t = 500.0)]
    pub connect_rate: f64,
    /// Publish this FLV file (real time, looping) before starting viewers,
    /// and measure push-to-play latency.
    #[arg(long, value_name = "FILE.flv")]
    pub publish: Option<PathBuf>,
    /// Where to publish [default: rtmp://<host>:1935/<app>/<stream>, the
    /// play URL's port if it is rtmp://].
    #[arg(long, requires = "publish")]
    pub publish_url: Option<String>,
    /// Print the report as one JSON object (see the field list in the
    /// bench::report docs).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// rtmp://host:port/app/stream
    #[arg(long)]
    pub url: String,
    /// The FLV file to publish.
    #[arg(long, value_name = "FILE.flv")]
    pub file: PathBuf,
    /// Stop after this long, e.g. 10m [default: run until Ctrl-C].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Play the file once instead of looping.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// http://host:port/app/stream.flv or rtmp://host:port/app/stream
    #[arg(long)]
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Play(a) => play::run(a).await,
        BenchCommand::Publish(a) => run_publish(a).await,
        BenchCommand::Probe(a) => {
            let first = probe_first_frame(&a.url, a.timeout).await?;
            println!("{}", serde_json::to_string(&first)?);
            Ok(())
        }
    }
}

async fn run_publish(args: PublishArgs) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let publishing = publish_flv_file(&args.url, &args.file, stop_rx, !args.once);
    tokio::pin!(publishing);
    let stop_after = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let stats = tokio::select! {
        r = &mut publishing => r?,
        _ = async { tokio::select! { _ = tokio::signal::ctrl_c() => {}, () = stop_after => {} } } => {
            let _ = stop_tx.send(true);
            publishing.await?
        }
    };
    println!("{}", serde_json::to_string(&stats)?);
    Ok(())
}
