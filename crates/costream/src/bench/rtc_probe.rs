//! One WHEP viewer, up to its first video frame: for integration tests (the
//! WebRTC counterpart of [`probe_first_frame`](super::probe_first_frame)).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde::Serialize;

use super::rtc_client::{HttpEndpoint, RtcClientFactory};
use super::whep_viewer::{watch, ViewerOptions};

/// How a WHEP viewer's first video frame arrived. Durations are from the
/// start of the offer POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RtcFirstFrame {
    #[serde(serialize_with = "as_millis")]
    pub answer: Duration,
    /// ICE and DTLS connected.
    #[serde(serialize_with = "as_millis")]
    pub connected: Duration,
    /// The first complete video frame was received.
    #[serde(serialize_with = "as_millis")]
    pub first_video: Duration,
    /// That frame holds an IDR slice.
    pub first_video_is_keyframe: bool,
    /// From the SPS in that frame, if it has one.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Plays `url` (`http://host:port/whep/app/stream`) over WebRTC and returns
/// as soon as the first video frame is in (the session is then deleted).
/// Fails on a refused offer, a connection that does not come up, or no
/// video frame within `timeout` (everything included).
pub async fn whep_first_frame(url: &str, timeout: Duration) -> anyhow::Result<RtcFirstFrame> {
    let deadline = Instant::now() + timeout;
    let endpoint = HttpEndpoint::resolve(url).await?;
    let factory = RtcClientFactory::default();
    let options = ViewerOptions {
        stop_at_first_video: true,
        parse_first_sps: true,
        counters: None,
    };
    let watched = watch(&endpoint, &factory, deadline, &options).await?;
    if let Some(e) = watched.error {
        return Err(anyhow!(e).context(format!("WHEP {url}")));
    }
    let s = &watched.stats;
    let first_video = s
        .since_start(s.first_video_at)
        .with_context(|| format!("no video frame from {url} within {timeout:?}"))?;
    Ok(RtcFirstFrame {
        answer: s.since_start(s.answered_at).unwrap_or_default(),
        connected: s.since_start(s.connected_at).unwrap_or_default(),
        first_video,
        first_video_is_keyframe: s.first_video_keyframe.unwrap_or(false),
        width: s.first_video_size.map(|(w, _)| w),
        height: s.first_video_size.map(|(_, h)| h),
    })
}
