//! A `ClientSession` talking to a `ServerSession` through in-memory byte
//! shuttling: handshake, connect, publish on one pair, play on another,
//! and media (multi-chunk, extended timestamps) arriving intact.

use bytes::{Bytes, BytesMut};
use costream_rtmp::{
    encode_message, msg_type, Amf0Value, ClientConfig, ClientEvent, ClientSession, ServerConfig,
    ServerEvent, ServerSession, CSID_AUDIO, CSID_VIDEO,
};

struct Pair {
    client: ClientSession,
    server: ServerSession,
    /// Bytes are delivered in pieces of at most this size, to exercise
    /// incremental parsing.
    piece: usize,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
}

impl Pair {
    fn new(app: &str, piece: usize) -> Self {
        Self {
            client: ClientSession::new(ClientConfig {
                app: app.into(),
                tc_url: format!("rtmp://127.0.0.1/{app}"),
                chunk_size: 4096,
            }),
            server: ServerSession::new(ServerConfig {
                chunk_size: 4096,
                window_ack_size: 2_500_000,
                max_message_size: 16 << 20,
            }),
            piece,
            server_events: Vec::new(),
            client_events: Vec::new(),
        }
    }

    /// Moves bytes both ways until both sides are quiet. Connect, publish
    /// and play requests are accepted.
    fn pump(&mut self) {
        loop {
            let to_server = self.client.take_output();
            let to_client = self.server.take_output();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            for piece in to_server.chunks(self.piece) {
                self.server.feed(&mut BytesMut::from(piece)).unwrap();
                self.drain_server();
            }
            self.deliver_to_client(&to_client);
        }
    }

    fn drain_server(&mut self) {
        while let Some(event) = self.server.poll_event() {
            match &event {
                ServerEvent::Connect { .. } => self.server.accept_connect().unwrap(),
                ServerEvent::Publish { stream_id, .. } => {
                    self.server.accept_publish(*stream_id).unwrap()
                }
                ServerEvent::Play { stream_id, .. } => self.server.accept_play(*stream_id).unwrap(),
                _ => {}
            }
            self.server_events.push(event);
        }
    }

    fn deliver_to_client(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(self.piece) {
            self.client.feed(&mut BytesMut::from(piece)).unwrap();
            self.client_events
                .extend(std::iter::from_fn(|| self.client.poll_event()));
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn publish_session(piece: usize) {
    let mut pair = Pair::new("live?token=abc", piece);
    pair.client.create_stream_and_publish("cam1?key=k");
    pair.pump();
    assert_eq!(
        pair.client_events,
        vec![ClientEvent::Connected, ClientEvent::Publishing]
    );
    assert!(
        matches!(
            &pair.server_events[..],
            [
                ServerEvent::Connect { app, query: Some(q), .. },
                ServerEvent::Publish { stream_id: 1, name, query: Some(k), publish_type },
            ] if app == "live" && q == "token=abc" && name == "cam1" && k == "key=k" && publish_type == "live"
        ),
        "{:?}",
        pair.server_events
    );
    assert_eq!(pair.client.chunk_size(), 4096);
    pair.server_events.clear();

    let metadata = Amf0Value::ecma_array([
        ("width", Amf0Value::from(1920.0)),
        ("encoder", Amf0Value::from("test")),
    ]);
    let big_video = pattern(10_000, 1);
    let other_video = pattern(9_000, 2);
    pair.client
        .send_metadata(&["onMetaData".into(), metadata.clone()])
        .unwrap();
    pair.client.send_video(0, &big_video).unwrap();
    pair.client
        .send_audio(0x0100_0005, b"\xaf\x01audio")
        .unwrap();
    pair.client.send_video(0xFF_FFFF, &other_video).unwrap();
    pair.client.send_video(u32::MAX, b"last").unwrap();
    pair.pump();
    assert_eq!(
        pair.server_events,
        vec![
            ServerEvent::Data {
                stream_id: 1,
                timestamp: 0,
                values: vec!["onMetaData".into(), metadata],
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: 0,
                payload: Bytes::from(big_video),
            },
            ServerEvent::Audio {
                stream_id: 1,
                timestamp: 0x0100_0005,
                payload: Bytes::from_static(b"\xaf\x01audio"),
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: 0xFF_FFFF,
                payload: Bytes::from(other_video),
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: u32::MAX,
                payload: Bytes::from_static(b"last"),
            },
        ]
    );
    pair.server_events.clear();

    pair.client.close();
    pair.pump();
    assert_eq!(
        pair.server_events,
        vec![
            ServerEvent::FcUnpublish {
                name: "cam1".into()
            },
            ServerEvent::DeleteStream { stream_id: 1 },
        ]
    );
}

#[test]
fn publish() {
    publish_session(usize::MAX);
}

#[test]
fn publish_fragmented() {
    for piece in [1, 7, 1000] {
        publish_session(piece);
    }
}

fn play_session(piece: usize) {
    let mut pair = Pair::new("live", piece);
    pair.client.create_stream_and_play("cam1");
    pair.pump();
    assert!(
        matches!(&pair.server_events[..], [
            ServerEvent::Connect { .. },
            ServerEvent::Play { stream_id: 1, name, query: None, .. },
        ] if name == "cam1"),
        "{:?}",
        pair.server_events
    );
    assert_eq!(
        pair.client_events,
        vec![
            ClientEvent::Connected,
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.Reset".into(),
                description: "Playing and resetting cam1.".into(),
            },
            ClientEvent::Playing,
            ClientEvent::Data {
                timestamp: 0,
                values: vec!["|RtmpSampleAccess".into(), true.into(), true.into()],
            },
        ]
    );
    pair.client_events.clear();

    // Metadata through the session, media pre-encoded once and written
    // directly (after the session's pending output, as the I/O layer does).
    let stream_id = pair.client.stream_id().unwrap();
    let metadata = Amf0Value::ecma_array([("duration", Amf0Value::from(0.0))]);
    pair.server
        .send_data(stream_id, &["onMetaData".into(), metadata.clone()]);
    let pending = pair.server.take_output();
    pair.deliver_to_client(&pending);
    let big_video = pattern(10_000, 3);
    let chunk_size = pair.server.chunk_size();
    assert_eq!(chunk_size, 4096);
    let frames = [
        encode_message(
            chunk_size,
            CSID_VIDEO,
            40,
            msg_type::VIDEO,
            stream_id,
            &big_video,
        ),
        encode_message(
            chunk_size,
            CSID_AUDIO,
            0x0123_4567,
            msg_type::AUDIO,
            stream_id,
            b"aac",
        ),
        encode_message(
            chunk_size,
            CSID_VIDEO,
            0x0123_4568,
            msg_type::VIDEO,
            stream_id,
            &big_video,
        ),
    ];
    for frame in &frames {
        pair.deliver_to_client(frame);
    }
    pair.server.send_play_end(stream_id);
    pair.pump();
    assert_eq!(
        pair.client_events,
        vec![
            ClientEvent::Data {
                timestamp: 0,
                values: vec!["onMetaData".into(), metadata],
            },
            ClientEvent::Video {
                timestamp: 40,
                payload: Bytes::from(big_video.clone()),
            },
            ClientEvent::Audio {
                timestamp: 0x0123_4567,
                payload: Bytes::from_static(b"aac"),
            },
            ClientEvent::Video {
                timestamp: 0x0123_4568,
                payload: Bytes::from(big_video),
            },
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.UnpublishNotify".into(),
                description: "cam1 is now unpublished.".into(),
            },
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.Stop".into(),
                description: "Stopped playing cam1.".into(),
            },
        ]
    );
}

#[test]
fn play() {
    play_session(usize::MAX);
}

#[test]
fn play_fragmented() {
    for piece in [1, 13, 4096] {
        play_session(piece);
    }
}

#[test]
fn one_encoding_many_viewers() {
    let mut viewers: Vec<Pair> = (0..3).map(|_| Pair::new("live", usize::MAX)).collect();
    for viewer in &mut viewers {
        viewer.client.create_stream_and_play("s");
        viewer.pump();
        viewer.client_events.clear();
    }
    let frame = encode_message(
        4096,
        CSID_VIDEO,
        0x0200_0000,
        msg_type::VIDEO,
        1,
        &pattern(20_000, 9),
    );
    for viewer in &mut viewers {
        assert_eq!(viewer.server.chunk_size(), 4096);
        viewer.deliver_to_client(&frame);
        viewer.deliver_to_client(&frame);
        assert_eq!(viewer.client_events.len(), 2);
        for event in &viewer.client_events {
            assert!(matches!(
                event,
                ClientEvent::Video { timestamp: 0x0200_0000, payload } if payload.len() == 20_000
            ));
        }
    }
}

#[test]
fn acknowledgements_flow_to_the_server() {
    // The server asks for an ack every 2.5 MB; a viewer receiving more
    // than that acknowledges without disturbing anything.
    let mut pair = Pair::new("live", usize::MAX);
    pair.client.create_stream_and_play("s");
    pair.pump();
    pair.client_events.clear();
    let frame = encode_message(4096, CSID_VIDEO, 0, msg_type::VIDEO, 1, &[0u8; 1 << 20]);
    for _ in 0..3 {
        pair.deliver_to_client(&frame);
    }
    assert!(pair.client.has_output(), "client owes an acknowledgement");
    pair.pump();
    assert_eq!(pair.client_events.len(), 3);
    assert!(pair.server_events.len() == 2, "{:?}", pair.server_events);
}
