//! One viewer, up to its first video frame: for integration tests and
//! `costream bench probe`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context};
use serde::Serialize;

use super::url::{BenchUrl, Scheme};
use super::viewer::ViewerStats;
use super::{http_flv, rtmp_play};

/// What the first video frame looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FirstFrame {
    /// From the start of the TCP connect to the full receipt of the first
    /// video frame that is not a sequence header.
    #[serde(serialize_with = "as_millis")]
    pub connect_to_first_video: Duration,
    /// That frame's frame type is 1 (keyframe).
    pub first_video_is_keyframe: bool,
    /// A video sequence header arrived before any video frame.
    pub got_video_sequence_header_first: bool,
    /// That frame's timestamp.
    pub video_timestamp_ms: u32,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Connects one viewer to `url` (`http://…/app/stream.flv` for HTTP-FLV,
/// `rtmp://…/app/stream` for RTMP) and returns as soon as the first video
/// frame has arrived. Fails on any connection or protocol error, on a
/// non-200 HTTP status, or if no video frame arrives within `timeout`
/// (name resolution and connecting included).
pub async fn probe_first_frame(url: &str, timeout: Duration) -> anyhow::Result<FirstFrame> {
    let url = BenchUrl::parse(url)?;
    let run = async {
        let addr = resolve(&url).await?;
        let mut stats = ViewerStats::new(None, None);
        let played = match url.scheme {
            Scheme::HttpFlv => http_flv::play(addr, &url, &mut stats, true).await,
            Scheme::Rtmp => rtmp_play::play(addr, &url.rtmp_target()?, &mut stats, true).await,
        };
        played?;
        let (connect_to_first_video, keyframe, config_first, ts) = stats
            .first_video()
            .context("stream ended without a video frame")?;
        Ok(FirstFrame {
            connect_to_first_video,
            first_video_is_keyframe: keyframe,
            got_video_sequence_header_first: config_first,
            video_timestamp_ms: ts,
        })
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| anyhow!("no video frame from {url} within {timeout:?}"))?
}

/// The first address `url`'s host resolves to.
pub(crate) async fn resolve(url: &BenchUrl) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .with_context(|| format!("resolve {}", url.host))?
        .next()
        .with_context(|| format!("{} has no address", url.host))
}
