//! One WHIP publisher: offer, answer, wait for ICE+DTLS, then synthetic
//! H.264 at a fixed frame rate and 20 ms Opus packets in real time until
//! the deadline; keyframes every interval and whenever the server asks
//! (PLI/FIR), as a browser or OBS would; DELETE at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaTime, Mid, Pt};
use str0m::{Event, IceConnectionState};

use super::h264_synth::{opus_packet, stamped_opus_packet, SyntheticVideo};
use super::rtc_client::{HttpEndpoint, RtcClientFactory, RtcPeer};
use super::whep_viewer::CONNECT_TIMEOUT;

/// One Opus packet per 20 ms, at 48 kHz.
const AUDIO_INTERVAL_US: u64 = 20_000;
const AUDIO_SAMPLES_PER_PACKET: u64 = 960;
/// A publisher whose ICE stays disconnected this long gives up.
const DISCONNECT_GRACE: Duration = Duration::from_secs(5);
/// The DELETE at the end may take this long.
const DELETE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct PublishOptions {
    pub bitrate_bps: u64,
    pub fps: f64,
    pub keyframe_interval: Duration,
    /// Sent as `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// Set to stop before the deadline (Ctrl-C); checked at least every
    /// 20 ms while media flows.
    pub stop: Arc<AtomicBool>,
    /// The audio level (RFC 6464, dBov: 0 loudest, -127 silence) put on
    /// each Opus packet, if any.
    pub audio_level: Option<i8>,
    /// Opus packets carry their send time (see `h264_synth::stamped_opus_packet`).
    pub stamp_audio: bool,
}

/// What one publisher did. Durations in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PublisherReport {
    pub url: String,
    pub error: Option<String>,
    /// Offer POST to ICE+DTLS connected.
    pub connect_ms: Option<f64>,
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_packets: u64,
    /// Access unit and Opus bytes handed to str0m.
    pub media_bytes: u64,
    /// UDP payload bytes sent (SRTP, RTCP, STUN, DTLS).
    pub udp_bytes_sent: u64,
    /// Datagrams the kernel would not queue.
    pub dropped_sends: u64,
    /// PLI/FIR received from the server.
    pub keyframe_requests: u64,
    /// How far behind its schedule a frame was written, at worst.
    pub max_late_ms: f64,
}

#[derive(Debug, Default)]
struct PublisherEvents {
    connected_at: Option<Instant>,
    keyframe_wanted: bool,
    keyframe_requests: u64,
    disconnected_since: Option<Instant>,
}

impl PublisherEvents {
    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected => {
                self.connected_at.get_or_insert_with(Instant::now);
            }
            Event::KeyframeRequest(_) => {
                self.keyframe_wanted = true;
                self.keyframe_requests += 1;
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.disconnected_since.get_or_insert_with(Instant::now);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) => self.disconnected_since = None,
            _ => {}
        }
    }
}

/// Publishes to `target` (path and query of a WHIP URL) on `endpoint`
/// until `deadline`.
pub async fn publish(
    endpoint: &HttpEndpoint,
    target: &str,
    factory: &RtcClientFactory,
    options: &PublishOptions,
    deadline: Instant,
) -> PublisherReport {
    let mut report = PublisherReport {
        url: format!("http://{}{target}", endpoint.url.authority()),
        ..PublisherReport::default()
    };
    let mut peer = match RtcPeer::new(factory, endpoint.local_ip, Direction::SendOnly) {
        Ok(p) => p,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return report;
        }
    };
    let started = Instant::now();
    let connect_by = (started + CONNECT_TIMEOUT).min(deadline);
    let negotiated = tokio::time::timeout_at(
        connect_by.into(),
        peer.negotiate(endpoint, target, options.token.as_deref()),
    )
    .await;
    let location = match negotiated {
        Ok(Ok(location)) => {
            let sent = send_media(&mut peer, &mut report, options, started, deadline).await;
            report.error = sent.err().map(|e| format!("{e:#}"));
            location
        }
        Ok(Err(e)) => {
            report.error = Some(format!("{e:#}"));
            None
        }
        Err(_) => {
            report.error = Some("no SDP answer in time".to_owned());
            None
        }
    };
    report.udp_bytes_sent = peer.udp_bytes_out;
    report.dropped_sends = peer.dropped_sends;
    if let Some(location) = location {
        if let Ok(Err(e)) = tokio::time::timeout(DELETE_TIMEOUT, endpoint.delete(&location)).await {
            report.error.get_or_insert(format!("{e:#}"));
        }
    }
    report
}

pub async fn send_media(
    peer: &mut RtcPeer,
    report: &mut PublisherReport,
    options: &PublishOptions,
    started: Instant,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut events = PublisherEvents::default();
    let connect_by = (started + CONNECT_TIMEOUT).min(deadline);
    while events.connected_at.is_none() {
        if Instant::now() >= connect_by {
            bail!("ICE+DTLS not connected within {CONNECT_TIMEOUT:?}");
        }
        if !peer.is_alive() {
            bail!("the WebRTC session closed");
        }
        peer.step(connect_by, &mut |e| events.on_event(e)).await?;
    }
    report.connect_ms = events
        .connected_at
        .map(|t| t.saturating_duration_since(started).as_secs_f64() * 1000.0);
    let (video_mid, audio_mid) = (peer.video, peer.audio);
    let video_pt = payload_type(peer, video_mid, Codec::H264)
        .context("the answer accepted no H.264 with packetization-mode 1")?;
    // A server may refuse audio; video alone is still a publish.
    let audio_pt = payload_type(peer, audio_mid, Codec::Opus);

    let video = SyntheticVideo::new(options.bitrate_bps, options.fps);
    let frames_per_keyframe = (options.keyframe_interval.as_secs_f64() * options.fps)
        .round()
        .max(1.0) as u64;
    let frame_at = |n: u64| Duration::from_secs_f64(n as f64 / options.fps);
    let packet_at = |n: u64| Duration::from_micros(n * AUDIO_INTERVAL_US);
    let t0 = Instant::now();
    let (mut n_video, mut n_audio) = (0u64, 0u64);
    let mut since_keyframe = frames_per_keyframe;
    loop {
        let now = Instant::now();
        if now >= deadline || options.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if !peer.is_alive() {
            bail!("the WebRTC session closed");
        }
        if events
            .disconnected_since
            .is_some_and(|t| now.saturating_duration_since(t) >= DISCONNECT_GRACE)
        {
            bail!("ICE disconnected (consent checks unanswered)");
        }
        while t0 + frame_at(n_video) <= now {
            let due = t0 + frame_at(n_video);
            let keyframe = since_keyframe >= frames_per_keyframe || events.keyframe_wanted;
            let au = if keyframe { &video.idr } else { &video.non_idr };
            let rtp_time = (n_video as f64 * 90_000.0 / options.fps).round() as u64;
            peer.rtc()
                .writer(video_mid)
                .context("no writer for the video m-line")?
                .write(
                    video_pt,
                    due,
                    MediaTime::new(rtp_time, Frequency::NINETY_KHZ),
                    au.clone(),
                )
                .map_err(|e| anyhow!("write video: {e}"))?;
            report.video_frames += 1;
            report.media_bytes += au.len() as u64;
            report.max_late_ms = report
                .max_late_ms
                .max(now.saturating_duration_since(due).as_secs_f64() * 1000.0);
            if keyframe {
                report.keyframes += 1;
                since_keyframe = 0;
                events.keyframe_wanted = false;
            }
            since_keyframe += 1;
            n_video += 1;
        }
        if let Some(pt) = audio_pt {
            while t0 + packet_at(n_audio) <= now {
                let due = t0 + packet_at(n_audio);
                let packet = if options.stamp_audio {
                    stamped_opus_packet(Instant::now()).to_vec()
                } else {
                    opus_packet(n_audio).to_vec()
                };
                let mut writer = peer
                    .rtc()
                    .writer(audio_mid)
                    .context("no writer for the audio m-line")?;
                if let Some(level) = options.audio_level {
                    let db = level.unsigned_abs().min(127) as i8;
                    writer = writer.audio_level(-db, db < 127);
                }
                writer
                    .write(
                        pt,
                        due,
                        MediaTime::new(
                            n_audio * AUDIO_SAMPLES_PER_PACKET,
                            Frequency::FORTY_EIGHT_KHZ,
                        ),
                        packet.clone(),
                    )
                    .map_err(|e| anyhow!("write audio: {e}"))?;
                report.audio_packets += 1;
                report.media_bytes += packet.len() as u64;
                n_audio += 1;
            }
        }
        peer.drain(&mut |e| events.on_event(e))?;
        report.keyframe_requests = events.keyframe_requests;
        let mut wake = (t0 + frame_at(n_video)).min(deadline);
        if audio_pt.is_some() {
            wake = wake.min(t0 + packet_at(n_audio));
        }
        peer.step(wake, &mut |e| events.on_event(e)).await?;
    }
}

/// The payload type negotiated for `codec` on `mid` (H.264: the
/// non-interleaved packetization every WebRTC stack takes).
fn payload_type(peer: &mut RtcPeer, mid: Mid, codec: Codec) -> Option<Pt> {
    let writer = peer.rtc().writer(mid)?;
    let pt = writer
        .payload_params()
        .find(|p| {
            let spec = p.spec();
            spec.codec == codec
                && (codec != Codec::H264 || spec.format.packetization_mode == Some(1))
        })
        .map(|p| p.pt());
    pt
}
