//! ICE-TCP (RFC 6544) connections: clients whose network blocks UDP connect
//! to the passive TCP candidate, and every STUN, DTLS and SRTP packet then
//! travels as an RFC 4571 frame (a 2-byte big-endian length, then the
//! packet). Written by hand: the framing is four lines, and the packets go
//! to the same `RtcHost` as UDP datagrams.
//!
//! Each connection has a reader (this task) and a writer task fed by a
//! small bounded queue. When the client reads too slowly the queue fills
//! and packets are dropped, as they would be on UDP: a slow TCP viewer
//! never holds up the RTC task that serves everyone.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Command;

/// Packets queued for one connection's writer before new ones are dropped.
const WRITE_QUEUE: usize = 512;
/// A connection that carries nothing for this long is closed (ICE consent
/// checks arrive every few seconds on a live one).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// At most this many ICE-TCP connections at once.
const MAX_CONNECTIONS: usize = 4096;

/// What the RTC task keeps per connection: where to send its packets.
pub(super) type TcpWriter = mpsc::Sender<Bytes>;

pub(super) async fn accept_loop(listener: TcpListener, commands: mpsc::Sender<Command>) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("ICE-TCP listener has no address: {e}");
            return;
        }
    };
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("ICE-TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "ICE-TCP connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let commands = commands.clone();
        tokio::spawn(async move {
            connection(stream, peer, local, commands).await;
            drop(permit);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
    commands: mpsc::Sender<Command>,
) {
    // The address the client connected to, for matching the candidate.
    let local = stream.local_addr().unwrap_or(listen);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let write_task = tokio::spawn(write_loop(writer, rx));
    if commands
        .send(Command::TcpOpened { peer, writer: tx })
        .await
        .is_err()
    {
        write_task.abort();
        return;
    }
    tracing::debug!(%peer, "ICE-TCP connection");
    let mut buf = BytesMut::with_capacity(4096);
    let result: Result<(), String> = async {
        loop {
            while let Some(packet) = next_frame(&mut buf) {
                commands
                    .send(Command::TcpPacket {
                        peer,
                        local,
                        data: packet,
                    })
                    .await
                    .map_err(|_| "the WebRTC service stopped".to_string())?;
            }
            buf.reserve(4096);
            let n = tokio::time::timeout(IDLE_TIMEOUT, reader.read_buf(&mut buf))
                .await
                .map_err(|_| "idle".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(%peer, "ICE-TCP connection ends: {e}");
    }
    let _ = commands.send(Command::TcpClosed { peer }).await;
    write_task.abort();
}

/// Takes one whole RFC 4571 frame off the front of `buf`. The 2-byte
/// length bounds a frame to 64 KiB, so the buffer is bounded too.
fn next_frame(buf: &mut BytesMut) -> Option<Bytes> {
    let header: [u8; 2] = buf.get(..2)?.try_into().ok()?;
    let len = u16::from_be_bytes(header) as usize;
    if buf.len() < 2 + len {
        return None;
    }
    buf.advance(2);
    Some(buf.split_to(len).freeze())
}

/// Writes queued packets, framed; everything queued goes out in one write.
async fn write_loop(mut writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Bytes>) {
    let mut out = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = rx.recv().await {
        out.clear();
        frame_into(&mut out, &first);
        while out.len() < 64 * 1024 {
            match rx.try_recv() {
                Ok(p) => frame_into(&mut out, &p),
                Err(_) => break,
            }
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
    }
    let _ = writer.shutdown().await;
}

fn frame_into(out: &mut BytesMut, packet: &[u8]) {
    // Packets from str0m fit a datagram; anything longer cannot be framed.
    let Ok(len) = u16::try_from(packet.len()) else {
        return;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads_and_joined_in_one() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 3, 1, 2]);
        assert_eq!(next_frame(&mut buf), None, "incomplete frame waits");
        buf.extend_from_slice(&[3, 0, 1, 9, 0]);
        assert_eq!(next_frame(&mut buf).as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(next_frame(&mut buf).as_deref(), Some(&[9u8][..]));
        assert_eq!(next_frame(&mut buf), None);
        assert_eq!(&buf[..], &[0], "a lone length byte is kept");
        let mut empty = BytesMut::from(&[0u8, 0][..]);
        assert_eq!(next_frame(&mut empty).as_deref(), Some(&[][..]));
    }

    #[test]
    fn framing_round_trips() {
        let mut out = BytesMut::new();
        frame_into(&mut out, b"abc");
        frame_into(&mut out, &vec![7u8; 70_000]);
        frame_into(&mut out, b"");
        assert_eq!(next_frame(&mut out).as_deref(), Some(&b"abc"[..]));
        assert_eq!(next_frame(&mut out).as_deref(), Some(&b""[..]));
        assert!(out.is_empty(), "an oversized packet is not framed");
    }
}
