//! One WHEP viewer: offer, answer, receive until the deadline (or the first
//! video frame), then DELETE the session so a run leaves nothing behind on
//! the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use str0m::media::Direction;

use super::rtc_client::{HttpEndpoint, RtcClientFactory, RtcPeer};
use super::rtc_stats::RtcViewerStats;
use super::viewer::Counters;

/// From the offer POST to ICE and DTLS connected, at most.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// ICE may report the connection lost this long before the viewer gives up
/// (str0m recovers by itself when consent checks get answered again).
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);
/// The DELETE at the end may take this long.
const DELETE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct ViewerOptions {
    /// Return as soon as the first video frame is in.
    pub stop_at_first_video: bool,
    /// Read the picture size from the first frame's SPS.
    pub parse_first_sps: bool,
    pub counters: Option<Arc<Counters>>,
}

/// How a viewer's run went.
#[derive(Debug)]
pub struct Watched {
    pub stats: RtcViewerStats,
    /// When it stopped receiving (before the DELETE).
    pub ended: Instant,
    pub udp_bytes_in: u64,
    pub error: Option<String>,
}

/// Runs one viewer of `endpoint` until `deadline`. Fails only if the peer
/// could not even be set up; anything later is in `Watched::error`.
pub async fn watch(
    endpoint: &HttpEndpoint,
    factory: &RtcClientFactory,
    deadline: Instant,
    options: &ViewerOptions,
) -> anyhow::Result<Watched> {
    let mut peer = RtcPeer::new(factory, endpoint.local_ip, Direction::RecvOnly)?;
    let mut stats = RtcViewerStats::new(
        peer.video,
        peer.audio,
        options.parse_first_sps,
        options.counters.clone(),
    );
    let connect_by = (stats.started + CONNECT_TIMEOUT).min(deadline);
    let target = endpoint.url.request_target();
    let negotiated =
        tokio::time::timeout_at(connect_by.into(), peer.negotiate(endpoint, &target, None)).await;
    let (location, error) = match negotiated {
        Ok(Ok(location)) => {
            stats.answered_at = Some(Instant::now());
            let received = receive(&mut peer, &mut stats, connect_by, deadline, options).await;
            (location, received.err().map(|e| format!("{e:#}")))
        }
        Ok(Err(e)) => (None, Some(format!("{e:#}"))),
        Err(_) => (None, Some("no SDP answer in time".to_owned())),
    };
    let ended = Instant::now();
    if error.is_some() {
        if let Some(c) = &options.counters {
            c.failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if let Some(location) = location {
        // Best effort: the server also times the session out on its own.
        let _ = tokio::time::timeout(DELETE_TIMEOUT, endpoint.delete(&location)).await;
    }
    Ok(Watched {
        stats,
        ended,
        udp_bytes_in: peer.udp_bytes_in,
        error,
    })
}

async fn receive(
    peer: &mut RtcPeer,
    stats: &mut RtcViewerStats,
    connect_by: Instant,
    deadline: Instant,
    options: &ViewerOptions,
) -> anyhow::Result<()> {
    loop {
        let now = Instant::now();
        let connected = stats.connected_at.is_some();
        if options.stop_at_first_video && stats.first_video_at.is_some() {
            return Ok(());
        }
        if !connected && now >= connect_by {
            // `connect_by` is the deadline when the run ends first.
            if connect_by < stats.started + CONNECT_TIMEOUT {
                bail!("ICE+DTLS not connected before the end of the run");
            }
            bail!("ICE+DTLS not connected within {CONNECT_TIMEOUT:?}");
        }
        if now >= deadline {
            return Ok(());
        }
        if let Some(since) = stats.disconnected_since {
            if now.saturating_duration_since(since) >= DISCONNECT_GRACE {
                bail!("ICE disconnected (consent checks unanswered)");
            }
        }
        if !peer.is_alive() {
            bail!("the WebRTC session closed");
        }
        let wake = if connected { deadline } else { connect_by };
        // Wake up to check the disconnect grace even without traffic.
        let wake = match stats.disconnected_since {
            Some(since) => wake.min(since + DISCONNECT_GRACE),
            None => wake,
        };
        peer.step(wake, &mut |e| stats.on_event(e)).await?;
    }
}
