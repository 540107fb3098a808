//! An RTMP player: [`ClientSession`] over a tokio `TcpStream`, reading into
//! one buffer whose tail is reused until it runs low (the session takes
//! what was read without copying).

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::anyhow;
use bytes::BytesMut;
use costream_rtmp::ClientEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::url::RtmpTarget;
use super::viewer::ViewerStats;
use super::{reserve_read_buffer, READ_BUFFER};

/// Plays `target` from `addr`, reporting into `stats`, until an error,
/// the end of the stream (an error), or with `until_first_video` the first
/// video frame (`Ok`).
pub(crate) async fn play(
    addr: SocketAddr,
    target: &RtmpTarget,
    stats: &mut ViewerStats,
    until_first_video: bool,
) -> anyhow::Result<()> {
    stats.start_connect();
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow!("connect: {e}"))?;
    sock.set_nodelay(true)?;
    let mut session = target.play_session();
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    loop {
        if session.has_output() {
            sock.write_all(&session.take_output())
                .await
                .map_err(|e| anyhow!("write: {e}"))?;
        }
        reserve_read_buffer(&mut buf);
        let n = sock
            .read_buf(&mut buf)
            .await
            .map_err(|e| anyhow!("read: {e}"))?;
        let now = Instant::now();
        stats.add_bytes(n);
        if n == 0 {
            return Err(anyhow!("the server closed the connection"));
        }
        session.feed(&mut buf).map_err(|e| anyhow!("RTMP: {e}"))?;
        while let Some(event) = session.poll_event() {
            let first_video = match event {
                ClientEvent::Playing => {
                    stats.accepted(now);
                    false
                }
                ClientEvent::Video { timestamp, payload } => {
                    stats.on_video(timestamp, &payload, now)
                }
                ClientEvent::Audio { timestamp, payload } => {
                    stats.on_audio(timestamp, &payload, now);
                    false
                }
                ClientEvent::Error { code, description } => {
                    return Err(anyhow!("RTMP error: {code} {description}"))
                }
                ClientEvent::Status { code, .. } if code == "NetStream.Play.Stop" => {
                    return Err(anyhow!("RTMP: {code}"))
                }
                _ => false,
            };
            if first_video && until_first_video {
                return Ok(());
            }
        }
    }
}
