//! Garbage and mutated input: sessions must return errors, never panic.

use bytes::BytesMut;
use costream_rtmp::{ClientConfig, ClientSession, Error, ServerConfig, ServerEvent, ServerSession};

/// Deterministic xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn handshaken_server() -> ServerSession {
    let mut server = ServerSession::new(ServerConfig::default());
    let mut hs = BytesMut::from(&[3u8][..]);
    hs.extend_from_slice(&[0u8; 2 * 1536]);
    server.feed(&mut hs).unwrap();
    assert!(server.is_handshake_done());
    server.take_output();
    server
}

/// Feeds `bytes` in random pieces, accepting every request; returns the
/// first error.
fn feed_server(server: &mut ServerSession, bytes: &[u8], rng: &mut Rng) -> Result<(), Error> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = (rng.next() % 4096) as usize + 1;
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        server.feed(&mut BytesMut::from(piece))?;
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect { .. } => server.accept_connect()?,
                ServerEvent::Publish { stream_id, .. } => server.accept_publish(stream_id)?,
                ServerEvent::Play { stream_id, .. } => server.accept_play(stream_id)?,
                _ => {}
            }
        }
        server.take_output();
    }
    Ok(())
}

#[test]
fn random_bytes_after_handshake_are_an_error() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..300 {
        let mut server = handshaken_server();
        let garbage = rng.bytes(64 << 10);
        assert!(feed_server(&mut server, &garbage, &mut rng).is_err());
    }
}

#[test]
fn random_bytes_before_handshake_are_an_error() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..300 {
        let mut server = ServerSession::new(ServerConfig::default());
        let mut garbage = rng.bytes(8 << 10);
        if garbage[0] == 3 {
            garbage[0] = 4;
        }
        assert!(server.feed(&mut BytesMut::from(&garbage[..])).is_err());
    }
}

#[test]
fn random_bytes_to_client_never_panic() {
    let mut rng = Rng(0x5151_5151_5151_5151);
    for _ in 0..300 {
        let mut client = ClientSession::new(ClientConfig {
            app: "live".into(),
            tc_url: "rtmp://h/live".into(),
            chunk_size: 4096,
        });
        let mut input = BytesMut::from(&[3u8][..]);
        input.extend_from_slice(&[0u8; 2 * 1536]);
        input.extend_from_slice(&rng.bytes(16 << 10));
        let _ = client.feed(&mut input);
        while client.poll_event().is_some() {}
    }
}

/// A realistic client byte stream: handshake, connect, publish, media.
fn recorded_publisher() -> Vec<u8> {
    let mut client = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://h/live".into(),
        chunk_size: 4096,
    });
    let mut server = ServerSession::new(ServerConfig::default());
    let mut recorded = Vec::new();
    client.create_stream_and_publish("s");
    let mut sent_media = false;
    for _ in 0..20 {
        let out = client.take_output();
        recorded.extend_from_slice(&out);
        server.feed(&mut BytesMut::from(&out[..])).unwrap();
        while let Some(event) = server.poll_event() {
            match event {
                ServerEvent::Connect { .. } => server.accept_connect().unwrap(),
                ServerEvent::Publish { stream_id, .. } => server.accept_publish(stream_id).unwrap(),
                _ => {}
            }
        }
        client
            .feed(&mut BytesMut::from(&server.take_output()[..]))
            .unwrap();
        while client.poll_event().is_some() {}
        if client.is_publishing() && !sent_media {
            sent_media = true;
            client
                .send_metadata(&["onMetaData".into(), costream_rtmp::Amf0Value::Null])
                .unwrap();
            for ts in [0, 40, 0xFF_FFFF, 0x0100_0000] {
                client.send_video(ts, &vec![7u8; 9000]).unwrap();
                client.send_audio(ts, &[0xaf, 1, 2, 3]).unwrap();
            }
        }
    }
    assert!(sent_media);
    recorded
}

#[test]
fn mutated_streams_never_panic() {
    let recorded = recorded_publisher();
    let mut rng = Rng(0x0f0f_1234_5678_9abc);
    let mut errors = 0;
    for _ in 0..500 {
        let mut bytes = recorded.clone();
        // Keep the handshake intact so the mutations reach the chunk layer.
        for _ in 0..(rng.next() % 8 + 1) {
            let i = 3073 + (rng.next() as usize) % (bytes.len() - 3073);
            bytes[i] = rng.next() as u8;
        }
        let mut server = ServerSession::new(ServerConfig::default());
        if feed_server(&mut server, &bytes, &mut rng).is_err() {
            errors += 1;
        }
    }
    // Some mutations hit payload bytes and are harmless; many are not.
    assert!(errors > 0);
}
