//! An RTMP publisher: FLV tag bodies from the session become hub frames.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use costream_flv::{demux_audio, demux_video, record_with_nal_length_4, FlvError};
use costream_hub::{avc::AvcConfig, FrameKind, Protocol, PublishError, Publisher};
use costream_rtmp::{ServerEvent, ServerSession};
use tokio::io::AsyncReadExt;

use super::conn::{flush_and_linger, write_out, Request};
use crate::io::ClientStream;
use crate::play_auth::{authorize, Action};
use crate::server::AppState;

pub(super) async fn run<S: ClientStream>(
    socket: &mut S,
    mut session: ServerSession,
    mut buf: BytesMut,
    req: Request,
    state: &Arc<AppState>,
) -> anyhow::Result<()> {
    if crate::room::is_room_feed(&req.key) {
        let why = crate::room::ROOM_FEED_REFUSAL;
        tracing::warn!(stream = %req.key, "publish refused: {why}");
        session.reject_publish(req.stream_id, "NetStream.Publish.BadName", why)?;
        return flush_and_linger(socket, &mut session, state).await;
    }
    // `[auth] publish_secret` and `on_publish`.
    let ip = socket.tcp().peer_addr().ok().map(|a| a.ip());
    if let Err(refusal) = authorize(state, &req.ask(Action::Publish, ip)).await {
        session.reject_publish(
            req.stream_id,
            refusal.rtmp_code(Action::Publish),
            &refusal.message,
        )?;
        return flush_and_linger(socket, &mut session, state).await;
    }
    let publisher = match state.hub.publish(req.key.clone(), Protocol::Rtmp) {
        Ok(p) => p,
        Err(e @ PublishError::AlreadyPublishing(_)) => {
            tracing::warn!(stream = %req.key, "publish refused: {e}");
            metrics::counter!(crate::metrics::REJECTED, "protocol" => "rtmp", "reason" => "busy")
                .increment(1);
            session.reject_publish(req.stream_id, "NetStream.Publish.BadName", &e.to_string())?;
            return flush_and_linger(socket, &mut session, state).await;
        }
    };
    session.accept_publish(req.stream_id)?;
    tracing::info!(stream = %req.key, "publishing");
    metrics::counter!(crate::metrics::SESSIONS, "protocol" => "rtmp", "role" => "publish")
        .increment(1);
    let received = metrics::counter!(crate::metrics::BYTES_RECEIVED, "protocol" => "rtmp");
    let idle = state.config.rtmp.idle_timeout;
    let write_timeout = state.config.rtmp.write_timeout;
    let mut ingest = Ingest {
        publisher: &publisher,
        nal_length_size: 4,
        warned_audio: false,
    };
    let outcome: anyhow::Result<bool> = async {
        loop {
            // Events already decoded (media right after publish) come first.
            while let Some(event) = session.poll_event() {
                if !ingest.handle(event)? {
                    return Ok(true);
                }
            }
            // Acknowledgements and the like: a publisher that reads none
            // of them is cut off like a viewer that cannot keep up.
            let out = session.take_output();
            if !out.is_empty() {
                write_out(socket, &out, write_timeout).await?;
            }
            let n = tokio::select! {
                r = tokio::time::timeout(idle, socket.read_buf(&mut buf)) => match r {
                    Ok(r) => r?,
                    Err(_) => anyhow::bail!("publisher sent nothing for {idle:?}"),
                },
                _ = publisher.kicked() => {
                    tracing::info!(stream = %req.key, "publisher kicked");
                    return Ok(true);
                }
            };
            if n == 0 {
                return Ok(false);
            }
            received.increment(n as u64);
            session.feed(&mut buf)?;
        }
    }
    .await;
    match outcome {
        // Unpublished on purpose (or kicked): end the stream now.
        Ok(true) => {
            tracing::info!(stream = %req.key, "unpublished");
            publisher.end();
            Ok(())
        }
        // Connection lost: dropping the publisher starts the grace period.
        Ok(false) => {
            tracing::info!(stream = %req.key, "publisher connection closed");
            Ok(())
        }
        Err(e) => {
            if cut_off(&e, ip) {
                // No grace for a publisher cut off for what it sent.
                publisher.end();
            }
            Err(e)
        }
    }
}

/// Counts a publisher cut off for what it sent (a frame or message too
/// large, a stream over its memory budget); false for other errors.
fn cut_off(e: &anyhow::Error, ip: Option<std::net::IpAddr>) -> bool {
    if let Some(push) = e.downcast_ref::<costream_hub::PushError>() {
        if push.is_over_budget() {
            crate::metrics::refused("rtmp", push.reason(), ip, format_args!("{push}"));
            return true;
        }
    } else if let Some(
        rtmp @ costream_rtmp::Error::Chunk(costream_rtmp::ChunkError::MessageTooLarge { .. }),
    ) = e.downcast_ref::<costream_rtmp::Error>()
    {
        crate::metrics::refused("rtmp", "frame_too_large", ip, format_args!("{rtmp}"));
        return true;
    }
    false
}

struct Ingest<'a> {
    publisher: &'a Publisher,
    /// NAL length prefix size from the publisher's AVC record.
    nal_length_size: u8,
    warned_audio: bool,
}

impl Ingest<'_> {
    /// Returns false when the publisher said goodbye.
    fn handle(&mut self, event: ServerEvent) -> anyhow::Result<bool> {
        match event {
            ServerEvent::Video {
                timestamp, payload, ..
            } => self.video(timestamp, payload)?,
            ServerEvent::Audio {
                timestamp, payload, ..
            } => self.audio(timestamp, payload)?,
            ServerEvent::Data { values, .. }
                if values.first().and_then(|v| v.as_str()) == Some("onMetaData") =>
            {
                let encoder = values
                    .get(1)
                    .and_then(|m| m.get("encoder"))
                    .and_then(|v| v.as_str());
                tracing::debug!(encoder, "publisher metadata");
            }
            ServerEvent::DeleteStream { .. }
            | ServerEvent::CloseStream { .. }
            | ServerEvent::FcUnpublish { .. } => return Ok(false),
            _ => {}
        }
        Ok(true)
    }

    fn video(&mut self, timestamp: u32, payload: Bytes) -> anyhow::Result<()> {
        let frame = match demux_video(timestamp as i64, payload, self.nal_length_size) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e @ FlvError::UnsupportedVideoCodec(_)) => {
                anyhow::bail!("{e}: costream carries H.264 video")
            }
            Err(e) => {
                tracing::debug!("dropping malformed video message: {e}");
                return Ok(());
            }
        };
        let frame = if frame.kind == FrameKind::VideoConfig {
            match AvcConfig::parse(&frame.data) {
                Ok(cfg) => self.nal_length_size = cfg.nal_length_size,
                Err(e) => tracing::warn!("publisher sent an unreadable AVC configuration: {e}"),
            }
            costream_hub::Frame::new(
                FrameKind::VideoConfig,
                frame.dts,
                frame.pts,
                record_with_nal_length_4(frame.data.clone()),
            )
        } else {
            frame
        };
        self.publisher.push(frame)?;
        Ok(())
    }

    fn audio(&mut self, timestamp: u32, payload: Bytes) -> anyhow::Result<()> {
        match demux_audio(timestamp as i64, payload) {
            Ok(Some(f)) => self.publisher.push(f)?,
            Ok(None) => {}
            Err(e) => {
                if !self.warned_audio {
                    self.warned_audio = true;
                    tracing::warn!("dropping audio: {e} (costream carries AAC audio over RTMP)");
                }
            }
        }
        Ok(())
    }
}
