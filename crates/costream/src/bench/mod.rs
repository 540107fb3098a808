//! `costream bench`: the load tool. Many simulated viewers (HTTP-FLV,
//! RTMP or WebRTC/WHEP) against one stream, optionally fed by a real-time
//! publisher, then a report: connect success, time to first video frame,
//! bitrate, viewers that fell behind, push-to-play latency, packet loss,
//! CPU and errors.
//!
//! ```text
//! costream bench play --url http://127.0.0.1:8080/live/s.flv --clients 2000 \
//!     --duration 60s --connect-rate 500 --publish test.flv [--json]
//! costream bench publish --url rtmp://127.0.0.1:1935/live/s --file test.flv
//! costream bench probe --url rtmp://127.0.0.1:1935/live/s
//! costream bench whip --url http://127.0.0.1:8080/whip/live/s --bitrate 1500k \
//!     --fps 25 --duration 60s [--token T] [--json]
//! costream bench whep --url http://127.0.0.1:8080/whep/live/s --clients 500 \
//!     --duration 30s --connect-rate 200 [--server-pid PID] [--json]
//! ```
//!
//! Built to share a small machine with the server it measures: one task per
//! viewer on the multi-threaded runtime, one 64 KiB read buffer per viewer
//! reused in place, only tag headers parsed, fixed-size per-viewer state.
//! The WebRTC modes use str0m, one `Rtc` and one UDP socket per peer (see
//! `rtc_client`), one 2 KiB datagram buffer each; received media is
//! counted, never kept.
//!
//! For tests: [`probe_first_frame`], [`publish_flv_file`],
//! [`whep_first_frame`], [`bench_whip`] and [`bench_whep`].

mod chunked;
mod cpu;
pub mod h264_synth;
mod http_flv;
pub(crate) mod http_request;
mod media;
mod play;
pub(crate) mod probe;
mod publish;
mod report;
pub mod room;
mod room_subscriber;
pub mod rtc_client;
mod rtc_probe;
mod rtc_stats;
mod rtmp_play;
mod stats;
mod units;
pub(crate) mod url;
mod viewer;
mod whep;
mod whep_report;
mod whep_viewer;
mod whip;
pub mod whip_publisher;

#[cfg(test)]
mod rtc_tests;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use clap::{Args, Subcommand};

pub use probe::{probe_first_frame, FirstFrame};
pub use publish::{publish_flv_file, PublishStats};
pub use report::Report;
pub use rtc_probe::{whep_first_frame, RtcFirstFrame};
pub use whep::bench_whep;
pub use whep_report::WhepReport;
pub use whip::{bench_whip, WhipReport};

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
    /// Publish synthetic H.264 + Opus over WebRTC (WHIP) in real time
    /// until --duration or Ctrl-C (the session is DELETEd either way).
    Whip(WhipArgs),
    /// Simulate many WebRTC (WHEP) viewers of one stream and report how
    /// they fared, packet loss included.
    Whep(WhepArgs),
    /// Link-mic rooms under load: publishers in a full mesh through the
    /// SFU, audience members joining later; join and first-frame times,
    /// loss, audio path latency and CPU per forwarded stream.
    Room(RoomArgs),
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

#[derive(Debug, Clone, Args)]
pub struct WhipArgs {
    /// http://host:port/whip/app/stream
    #[arg(long)]
    pub url: String,
    /// Number of publishers; with more than one, publisher i publishes
    /// STREAM-i.
    #[arg(long, default_value_t = 1)]
    pub clients: u64,
    /// How long to publish, e.g. 30s or 5m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Video bitrate, e.g. 1500k or 2M (every frame the same size).
    #[arg(long, default_value = "1500k", value_parser = units::parse_bitrate)]
    pub bitrate: u64,
    /// Video frames per second (a keyframe every 2 s).
    #[arg(long, default_value_t = 25.0)]
    pub fps: f64,
    /// Publish token, sent as `Authorization: Bearer TOKEN`.
    #[arg(long)]
    pub token: Option<String>,
    /// The server's process id: its CPU use over the run is reported too.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct WhepArgs {
    /// http://host:port/whep/app/stream
    #[arg(long)]
    pub url: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 1)]
    pub clients: u64,
    /// How long the run lasts, from the tool's start, e.g. 30s or 5m.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Viewers started per second (each costs the server a DTLS handshake).
    #[arg(long, default_value_t = 200.0)]
    pub connect_rate: f64,
    /// SO_RCVBUF of each viewer's UDP socket, e.g. 2M [default: the
    /// system's]. A larger buffer absorbs bursts (a server sending its
    /// cached GOP at once) that would otherwise count as loss.
    #[arg(long, value_parser = units::parse_bytes)]
    pub recv_buffer: Option<usize>,
    /// The server's process id: its CPU use over the run is reported too.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as one JSON object (see the bench::whep_report docs).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RoomArgs {
    /// The server's HTTP address, http://host:port
    #[arg(long)]
    pub url: String,
    /// The API key tokens are minted with (the server prints its dev key).
    #[arg(long, env = "COSTREAM_API_KEY")]
    pub api_key: String,
    #[arg(long, env = "COSTREAM_API_SECRET", hide_env_values = true)]
    pub api_secret: String,
    #[arg(long, default_value_t = 1)]
    pub rooms: u64,
    /// Publishers per room; each subscribes to all the others.
    #[arg(long, default_value_t = 8)]
    pub publishers: u64,
    /// Audience members per room, joining after the publishers are live
    /// and subscribing to all of them.
    #[arg(long, default_value_t = 1)]
    pub viewers: u64,
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Video bitrate per publisher.
    #[arg(long, default_value = "500k", value_parser = units::parse_bitrate)]
    pub bitrate: u64,
    #[arg(long, default_value_t = 25.0)]
    pub fps: f64,
    /// A peer connection per subscription, offered by the client, instead
    /// of one server-offered subscriber connection per participant.
    #[arg(long)]
    pub own_connections: bool,
    /// The server's process id: its CPU use over the run is reported too.
    #[arg(long)]
    pub server_pid: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Play(a) => play::run(a).await,
        BenchCommand::Whip(a) => whip::run(a).await,
        BenchCommand::Whep(a) => whep::run(a).await,
        BenchCommand::Room(a) => room::run(a).await,
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
