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
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Command;
use crate::config::RtcConfig;
use crate::limits::Connections;

/// Packets queued for one connection's writer before new ones are dropped.
const WRITE_QUEUE: usize = 512;
/// A connection that carries nothing for this long is closed (ICE consent
/// checks arrive every few seconds on a live one).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the RTC task keeps per connection: where to send its packets.
pub(super) type TcpWriter = mpsc::Sender<Bytes>;

/// The bounds every ICE-TCP connection lives within.
#[derive(Clone)]
pub(super) struct Limits {
    conns: Arc<Connections>,
    bytes_per_sec: usize,
    /// The client's first STUN check must arrive within this.
    first_check: Duration,
}

impl Limits {
    pub(super) fn new(config: &RtcConfig) -> Limits {
        Limits {
            conns: Arc::new(Connections::new(
                config.tcp_max_connections,
                config.tcp_max_connections_per_ip,
            )),
            bytes_per_sec: config.tcp_max_bytes_per_sec.max(64 * 1024),
            first_check: config.connect_timeout,
        }
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    commands: mpsc::Sender<Command>,
    limits: Limits,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("ICE-TCP listener has no address: {e}");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("ICE-TCP accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = limits.conns.admit_or_refuse("webrtc-tcp", peer.ip()) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let commands = commands.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            connection(stream, peer, local, commands, &limits).await;
            drop(slot);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    listen: SocketAddr,
    commands: mpsc::Sender<Command>,
    limits: &Limits,
) {
    // The address the client connected to, for matching the candidate.
    let local = stream.local_addr().unwrap_or(listen);
    let (mut reader, writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    // Nothing reaches the RTC task (shared by every session) until the
    // client has sent a well-formed STUN check, in time.
    let first = async {
        loop {
            if let Some(frame) = next_frame(&mut buf) {
                return Ok(frame);
            }
            if reader.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    let first: std::io::Result<Bytes> = match tokio::time::timeout(limits.first_check, first).await
    {
        Ok(r) => r,
        Err(_) => {
            crate::metrics::refused(
                "webrtc-tcp",
                "connect_timeout",
                Some(peer.ip()),
                format_args!("no STUN check within {:?}", limits.first_check),
            );
            return;
        }
    };
    let first = match first {
        Ok(f) if is_stun(&f) => f,
        Ok(_) => {
            crate::metrics::refused(
                "webrtc-tcp",
                "junk",
                Some(peer.ip()),
                format_args!("the first packet is not a STUN message"),
            );
            return;
        }
        Err(_) => return,
    };
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
    let mut pace = Pace::new(limits.bytes_per_sec);
    let mut pending = Some(first);
    let result: Result<(), String> = async {
        loop {
            while let Some(packet) = pending.take().or_else(|| next_frame(&mut buf)) {
                if !is_webrtc(&packet) {
                    crate::metrics::refused(
                        "webrtc-tcp",
                        "junk",
                        Some(peer.ip()),
                        format_args!("a packet that is not STUN, DTLS, RTP or RTCP"),
                    );
                    return Err("junk".into());
                }
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
            // Past its rate the client waits: the kernel's window fills
            // and TCP slows it down, no packet is dropped.
            if let Some(wait) = pace.spend(n, tokio::time::Instant::now()) {
                tokio::time::sleep(wait).await;
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

/// A STUN message (RFC 8489 section 5): two zero bits, a length that
/// matches and is a multiple of 4, and the magic cookie.
pub(super) fn is_stun(p: &[u8]) -> bool {
    p.len() >= 20
        && p[0] & 0xc0 == 0
        && p[4..8] == [0x21, 0x12, 0xa4, 0x42]
        && usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len() - 20
        && p.len().is_multiple_of(4)
}

/// What may travel on a WebRTC transport, by its first byte (RFC 7983):
/// STUN, DTLS, or RTP/RTCP. Anything else is junk.
pub(super) fn is_webrtc(p: &[u8]) -> bool {
    match p.first() {
        Some(0..=3) => is_stun(p),
        Some(20..=63) | Some(128..=191) => true,
        _ => false,
    }
}

/// A byte budget refilled at a fixed rate, one second's worth deep.
struct Pace {
    rate: usize,
    tokens: f64,
    at: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(rate: usize) -> Pace {
        Pace {
            rate,
            tokens: rate as f64,
            at: None,
        }
    }

    /// Takes `n` bytes; how long to wait before reading more, if at all.
    fn spend(&mut self, n: usize, now: tokio::time::Instant) -> Option<Duration> {
        let rate = self.rate as f64;
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * rate;
            self.tokens = (self.tokens + refill).min(rate);
        }
        self.at = Some(now);
        self.tokens -= n as f64;
        (self.tokens < 0.0).then(|| Duration::from_secs_f64(-self.tokens / rate))
    }
}

/// Takes one whole RFC 4571 frame off the front of `buf`. The 2-byte
/// length bounds a frame to 64 KiB, so the buffer is bounded too.
pub(super) fn next_frame(buf: &mut BytesMut) -> Option<Bytes> {
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
    fn only_stun_dtls_and_rtp_pass() {
        let mut stun = vec![0u8, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[7; 12]); // transaction id
        stun.extend_from_slice(&[0; 4]); // one attribute's worth
        assert!(is_stun(&stun) && is_webrtc(&stun));
        let mut bad_len = stun.clone();
        bad_len[3] = 8;
        assert!(!is_stun(&bad_len) && !is_webrtc(&bad_len));
        assert!(is_webrtc(&[22, 254, 253]), "DTLS handshake");
        assert!(is_webrtc(&[0x80, 96]), "RTP");
        assert!(!is_webrtc(b"GET / HTTP/1.1"), "HTTP is junk");
        assert!(!is_webrtc(&[]));
    }

    #[test]
    fn pace_lets_a_second_through_then_makes_the_client_wait() {
        let t0 = tokio::time::Instant::now();
        let mut pace = Pace::new(1000);
        assert_eq!(pace.spend(1000, t0), None, "one second's worth at once");
        assert_eq!(pace.spend(500, t0), Some(Duration::from_millis(500)));
        // Half a second later the debt is paid; another 100 bytes are free
        // only after 100 ms more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(pace.spend(100, t1), Some(Duration::from_millis(100)));
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(pace.spend(1000, t2), None, "refills to one second, no more");
        assert!(pace.spend(1, t2).is_some());
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
