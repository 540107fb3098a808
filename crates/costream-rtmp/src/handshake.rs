//! The RTMP "simple" handshake (version 3, 1536-byte C1/S1/C2/S2).
//!
//! We never use the digest ("complex") handshake: S1/C1 carry zeros in
//! bytes 4..8, which tells ffmpeg/librtmp/OBS to skip digest verification,
//! and we do not verify the peer's echo either (clients in the wild fill it
//! inconsistently).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::HandshakeError;

/// The only RTMP version we speak (C0/S0).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

/// What a handshake step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeProgress {
    /// Bytes to write to the peer (may be empty).
    pub send: Bytes,
    /// The handshake is complete; any bytes left in the input buffer belong
    /// to the chunk stream.
    pub done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    WaitC0C1,
    WaitC2,
    Done,
}

/// Server side: reads C0+C1, answers S0+S1+S2 (S2 echoes C1), then waits
/// for C2.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    pub fn new() -> Self {
        Self {
            state: ServerState::WaitC0C1,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// Consumes as much handshake data from `input` as is complete; leaves
    /// partial packets (and anything after C2) in place.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<HandshakeProgress, HandshakeError> {
        let mut send = BytesMut::new();
        loop {
            match self.state {
                ServerState::WaitC0C1 => {
                    // Check the version as soon as it arrives so that
                    // non-RTMP clients fail fast instead of idling.
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        break;
                    }
                    input.advance(1);
                    let c1 = input.split_to(HANDSHAKE_SIZE);
                    send.reserve(1 + 2 * HANDSHAKE_SIZE);
                    send.put_u8(RTMP_VERSION);
                    put_own_packet(&mut send);
                    send.extend_from_slice(&c1);
                    self.state = ServerState::WaitC2;
                }
                ServerState::WaitC2 => {
                    if input.len() < HANDSHAKE_SIZE {
                        break;
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = ServerState::Done;
                }
                ServerState::Done => break,
            }
        }
        Ok(HandshakeProgress {
            send: send.freeze(),
            done: self.is_done(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    Start,
    WaitS0S1,
    WaitS2,
    Done,
}

/// Client side: sends C0+C1, answers S0+S1 with C2 (an echo of S1), then
/// waits for S2.
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    pub fn new() -> Self {
        Self {
            state: ClientState::Start,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// C0+C1, to be written first. Returns an empty buffer if already sent.
    pub fn start(&mut self) -> Bytes {
        if self.state != ClientState::Start {
            return Bytes::new();
        }
        let mut out = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        put_own_packet(&mut out);
        self.state = ClientState::WaitS0S1;
        out.freeze()
    }

    /// Consumes server handshake data. If [`start`](Self::start) was not
    /// called yet, C0+C1 is included at the front of `send`.
    pub fn feed(&mut self, input: &mut BytesMut) -> Result<HandshakeProgress, HandshakeError> {
        let mut send = BytesMut::new();
        send.extend_from_slice(&self.start());
        loop {
            match self.state {
                ClientState::Start | ClientState::Done => break,
                ClientState::WaitS0S1 => {
                    check_version(input)?;
                    if input.len() < 1 + HANDSHAKE_SIZE {
                        break;
                    }
                    input.advance(1);
                    let s1 = input.split_to(HANDSHAKE_SIZE);
                    send.extend_from_slice(&s1);
                    self.state = ClientState::WaitS2;
                }
                ClientState::WaitS2 => {
                    if input.len() < HANDSHAKE_SIZE {
                        break;
                    }
                    input.advance(HANDSHAKE_SIZE);
                    self.state = ClientState::Done;
                }
            }
        }
        Ok(HandshakeProgress {
            send: send.freeze(),
            done: self.is_done(),
        })
    }
}

fn check_version(input: &[u8]) -> Result<(), HandshakeError> {
    match input.first() {
        Some(&v) if v != RTMP_VERSION => Err(HandshakeError::UnsupportedVersion(v)),
        _ => Ok(()),
    }
}

/// C1/S1: 4-byte time (0: we have no clock and peers ignore it), 4 zero
/// bytes (no digest handshake), then random filler.
fn put_own_packet(out: &mut BytesMut) {
    let mut packet = [0u8; HANDSHAKE_SIZE];
    fill_random(&mut packet[8..]);
    out.put_slice(&packet);
}

/// The filler only has to look random to peers, not be unpredictable, so a
/// xorshift generator seeded from std's per-process random hash keys avoids
/// a dependency on `rand`.
fn fill_random(buf: &mut [u8]) {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_usize(buf.as_ptr() as usize);
    let mut state = hasher.finish() | 1;
    for chunk in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();
        let c0c1 = client.start();
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(c0c1[0], 3);
        assert_eq!(&c0c1[1..9], &[0; 8], "time 0 and zero version field");

        let mut to_server = BytesMut::from(&c0c1[..]);
        let s = server.feed(&mut to_server).unwrap();
        assert!(!s.done);
        assert!(to_server.is_empty());
        assert_eq!(s.send.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(s.send[0], 3);
        assert_eq!(&s.send[5..9], &[0; 4], "S1 zero field");
        assert_eq!(&s.send[1 + HANDSHAKE_SIZE..], &c0c1[1..], "S2 echoes C1");

        let mut to_client = BytesMut::from(&s.send[..]);
        let c = client.feed(&mut to_client).unwrap();
        assert!(c.done);
        assert!(to_client.is_empty());
        assert_eq!(&c.send[..], &s.send[1..1 + HANDSHAKE_SIZE], "C2 echoes S1");

        // C2 followed by chunk data: the extra bytes stay in the buffer.
        let mut to_server = BytesMut::from(&c.send[..]);
        to_server.extend_from_slice(b"rest");
        let s = server.feed(&mut to_server).unwrap();
        assert!(s.done && s.send.is_empty());
        assert_eq!(&to_server[..], b"rest");
    }

    #[test]
    fn byte_by_byte() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();
        let mut to_server: Vec<u8> = client.start().to_vec();
        let mut to_client = Vec::new();
        let mut buf_s = BytesMut::new();
        let mut buf_c = BytesMut::new();
        while !(client.is_done() && server.is_done()) {
            if !to_server.is_empty() {
                buf_s.extend_from_slice(&[to_server.remove(0)]);
                to_client.extend_from_slice(&server.feed(&mut buf_s).unwrap().send);
            }
            if !to_client.is_empty() {
                buf_c.extend_from_slice(&[to_client.remove(0)]);
                to_server.extend_from_slice(&client.feed(&mut buf_c).unwrap().send);
            }
        }
        assert!(to_server.is_empty() && to_client.is_empty());
    }

    #[test]
    fn feed_without_start_sends_c0c1() {
        let mut client = ClientHandshake::new();
        let p = client.feed(&mut BytesMut::new()).unwrap();
        assert_eq!(p.send.len(), 1 + HANDSHAKE_SIZE);
        assert!(client.start().is_empty());
    }

    #[test]
    fn rejects_bad_versions() {
        let mut server = ServerHandshake::new();
        let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
        assert_eq!(
            server.feed(&mut http),
            Err(HandshakeError::UnsupportedVersion(b'G'))
        );
        let mut client = ClientHandshake::new();
        client.start();
        let mut rtmpe = BytesMut::from(&[6u8][..]);
        assert_eq!(
            client.feed(&mut rtmpe),
            Err(HandshakeError::UnsupportedVersion(6))
        );
    }

    #[test]
    fn random_filler_differs() {
        let a = ClientHandshake::new().start();
        let b = ClientHandshake::new().start();
        assert_ne!(a[9..], b[9..]);
    }
}
