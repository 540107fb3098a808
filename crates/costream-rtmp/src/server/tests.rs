use bytes::{Bytes, BytesMut};

use super::*;
use crate::chunk::{encode_message, ChunkDecoder};
use crate::error::ChunkError;
use crate::handshake::HANDSHAKE_SIZE;
use crate::message::{CSID_AUDIO, CSID_COMMAND};

/// A hand-driven client talking to a `ServerSession`.
struct Peer {
    server: ServerSession,
    decoder: ChunkDecoder,
    wire: BytesMut,
}

impl Peer {
    fn new() -> Self {
        Self::with_config(ServerConfig::default())
    }

    fn with_config(config: ServerConfig) -> Self {
        let mut server = ServerSession::new(config);
        let mut hs = BytesMut::from(&[3u8][..]);
        hs.extend_from_slice(&[0u8; 2 * HANDSHAKE_SIZE]);
        server.feed(&mut hs).unwrap();
        assert!(server.is_handshake_done());
        assert_eq!(server.take_output().len(), 1 + 2 * HANDSHAKE_SIZE);
        Self {
            server,
            decoder: ChunkDecoder::default(),
            wire: BytesMut::new(),
        }
    }

    fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.server.feed(&mut BytesMut::from(bytes))
    }

    fn encode(csid: u32, stream_id: u32, msg: &Message) -> Bytes {
        encode_message(128, csid, 0, msg.type_id(), stream_id, &msg.to_payload())
    }

    fn send(&mut self, csid: u32, stream_id: u32, msg: &Message) -> Result<(), Error> {
        self.bytes(&Self::encode(csid, stream_id, msg))
    }

    fn command(&mut self, stream_id: u32, name: &str, tid: f64, args: Vec<Amf0Value>) {
        let cmd = Message::Command(Command::new(name, tid, Amf0Value::Null, args));
        self.send(CSID_COMMAND, stream_id, &cmd).unwrap();
    }

    fn connect(&mut self, app: &str) {
        let object = Amf0Value::object([
            ("app", Amf0Value::from(app)),
            ("tcUrl", Amf0Value::from(format!("rtmp://host/{app}"))),
        ]);
        let cmd = Message::Command(Command::new("connect", 1.0, object, vec![]));
        self.send(CSID_COMMAND, 0, &cmd).unwrap();
    }

    fn connected() -> Self {
        let mut peer = Self::new();
        peer.connect("live");
        assert!(matches!(peer.events()[..], [ServerEvent::Connect { .. }]));
        peer.server.accept_connect().unwrap();
        peer.replies();
        peer
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Decodes everything the server wrote: (stream id, message).
    fn replies(&mut self) -> Vec<(u32, Message)> {
        self.wire.extend_from_slice(&self.server.take_output());
        let mut out = Vec::new();
        while let Some(raw) = self.decoder.push(&mut self.wire).unwrap() {
            out.push((
                raw.stream_id,
                Message::parse(raw.type_id, raw.payload).unwrap(),
            ));
        }
        out
    }

    /// Replies reduced to command names / status codes for compact asserts.
    fn reply_names(&mut self) -> Vec<String> {
        self.replies()
            .into_iter()
            .map(|(stream, msg)| match msg {
                Message::Command(cmd) => match cmd.arg(0).and_then(|i| i.get("code")) {
                    Some(code) => format!("{}:{}@{stream}", cmd.name, code.as_str().unwrap_or("")),
                    None => format!("{}#{}@{stream}", cmd.name, cmd.transaction_id),
                },
                Message::Data(values) => format!("data:{}", values[0].as_str().unwrap_or("")),
                other => format!("{other:?}"),
            })
            .collect()
    }
}

#[test]
fn connect_accept() {
    let mut peer = Peer::new();
    let object = Amf0Value::object([
        ("app", Amf0Value::from("live?token=x")),
        ("tcUrl", Amf0Value::from("rtmp://host/live?token=x")),
    ]);
    peer.send(
        CSID_COMMAND,
        0,
        &Message::Command(Command::new("connect", 1.0, object, vec![])),
    )
    .unwrap();
    assert_eq!(
        peer.events(),
        vec![ServerEvent::Connect {
            app: "live".into(),
            tc_url: Some("rtmp://host/live?token=x".into()),
            query: Some("token=x".into()),
            transaction_id: 1.0,
        }]
    );
    assert!(!peer.server.has_output());
    assert_eq!(peer.server.chunk_size(), 128);
    peer.server.accept_connect().unwrap();
    assert!(peer.server.is_connected());
    assert_eq!(peer.server.chunk_size(), 4096);
    let replies = peer.replies();
    assert_eq!(replies[0], (0, Message::WindowAckSize(2_500_000)));
    assert_eq!(
        replies[1],
        (
            0,
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit: PeerBandwidthLimit::Dynamic
            }
        )
    );
    assert_eq!(replies[2], (0, Message::SetChunkSize(4096)));
    let Message::Command(result) = &replies[3].1 else {
        panic!("{replies:?}")
    };
    assert_eq!(
        (result.name.as_str(), result.transaction_id),
        ("_result", 1.0)
    );
    assert_eq!(
        result.object.get("fmsVer").and_then(Amf0Value::as_str),
        Some("FMS/3,0,1,123")
    );
    let info = &result.args[0];
    assert_eq!(
        info.get("code").and_then(Amf0Value::as_str),
        Some("NetConnection.Connect.Success")
    );
    assert_eq!(replies.len(), 4);
}

#[test]
fn connect_reject_ignores_later_commands() {
    let mut peer = Peer::new();
    peer.connect("live");
    peer.events();
    peer.server.reject_connect("bad token").unwrap();
    assert_eq!(
        peer.reply_names(),
        vec!["_error:NetConnection.Connect.Rejected@0"]
    );
    peer.command(0, "createStream", 2.0, vec![]);
    assert!(peer.replies().is_empty());
    assert!(!peer.server.is_connected());
}

#[test]
fn pipelined_commands_wait_for_decisions() {
    let mut peer = Peer::new();
    let mut wire = BytesMut::new();
    let object = Amf0Value::object([("app", Amf0Value::from("live"))]);
    for (stream, cmd) in [
        (0, Command::new("connect", 1.0, object, vec![])),
        (
            0,
            Command::new("releaseStream", 2.0, Amf0Value::Null, vec!["s".into()]),
        ),
        (
            0,
            Command::new("FCPublish", 3.0, Amf0Value::Null, vec!["s".into()]),
        ),
        (
            0,
            Command::new("createStream", 4.0, Amf0Value::Null, vec![]),
        ),
        (
            1,
            Command::new(
                "publish",
                5.0,
                Amf0Value::Null,
                vec!["s?k=v".into(), "live".into()],
            ),
        ),
    ] {
        wire.extend_from_slice(&Peer::encode(CSID_COMMAND, stream, &Message::Command(cmd)));
    }
    wire.extend_from_slice(&Peer::encode(
        CSID_AUDIO,
        1,
        &Message::Audio(Bytes::from_static(b"a")),
    ));
    peer.server.feed(&mut wire).unwrap();
    assert!(wire.is_empty(), "feed consumes everything");
    assert!(matches!(peer.events()[..], [ServerEvent::Connect { .. }]));
    assert!(peer.replies().is_empty());

    peer.server.accept_connect().unwrap();
    assert_eq!(
        peer.events(),
        vec![ServerEvent::Publish {
            stream_id: 1,
            name: "s".into(),
            query: Some("k=v".into()),
            publish_type: "live".into(),
        }]
    );
    let names = peer.reply_names();
    assert_eq!(
        names[3..],
        [
            "_result:NetConnection.Connect.Success@0",
            "_result#2@0",
            "onFCPublish:NetStream.Publish.Start@0",
            "_result#3@0",
            "_result#4@0",
        ]
    );
    peer.server.accept_publish(1).unwrap();
    assert_eq!(
        peer.reply_names(),
        vec!["onStatus:NetStream.Publish.Start@1"]
    );
    assert_eq!(
        peer.events(),
        vec![ServerEvent::Audio {
            stream_id: 1,
            timestamp: 0,
            payload: Bytes::from_static(b"a")
        }]
    );
}

#[test]
fn create_stream_ids_and_limit() {
    let mut peer = Peer::connected();
    for i in 1..=MAX_STREAMS as u32 {
        peer.command(0, "createStream", 10.0, vec![]);
        let replies = peer.replies();
        let Message::Command(cmd) = &replies[0].1 else {
            panic!()
        };
        assert_eq!(cmd.name, "_result");
        assert_eq!(cmd.arg(0), Some(&Amf0Value::Number(f64::from(i))));
    }
    peer.command(0, "createStream", 11.0, vec![]);
    assert_eq!(
        peer.reply_names(),
        vec!["_error:NetConnection.Call.Failed@0"]
    );
}

#[test]
fn media_only_from_accepted_publishers() {
    let mut peer = Peer::connected();
    peer.command(0, "createStream", 2.0, vec![]);
    // Media on a stream that is not publishing is dropped.
    peer.send(CSID_AUDIO, 1, &Message::Audio(Bytes::from_static(b"x")))
        .unwrap();
    assert!(peer.events().is_empty());

    peer.command(1, "publish", 0.0, vec!["s".into()]);
    peer.send(CSID_AUDIO, 1, &Message::Audio(Bytes::from_static(b"y")))
        .unwrap();
    assert!(matches!(peer.events()[..], [ServerEvent::Publish { .. }]));
    peer.server
        .reject_publish(1, "NetStream.Publish.BadName", "taken")
        .unwrap();
    assert!(
        peer.events().is_empty(),
        "media after a rejected publish is dropped"
    );
    let replies = peer.replies();
    let Message::Command(status) = &replies.last().unwrap().1 else {
        panic!()
    };
    let info = &status.args[0];
    assert_eq!(info.get("level").and_then(Amf0Value::as_str), Some("error"));
    assert_eq!(
        info.get("code").and_then(Amf0Value::as_str),
        Some("NetStream.Publish.BadName")
    );
    assert_eq!(
        info.get("description").and_then(Amf0Value::as_str),
        Some("taken")
    );
}

#[test]
fn publish_media_data_and_teardown() {
    let mut peer = Peer::connected();
    peer.command(0, "createStream", 2.0, vec![]);
    peer.command(1, "publish", 0.0, vec!["s".into(), "live".into()]);
    peer.events();
    peer.server.accept_publish(1).unwrap();
    let meta = Amf0Value::ecma_array([("width", Amf0Value::from(1280.0))]);
    peer.send(
        CSID_DATA,
        1,
        &Message::Data(vec![
            "@setDataFrame".into(),
            "onMetaData".into(),
            meta.clone(),
        ]),
    )
    .unwrap();
    peer.send(CSID_AUDIO, 1, &Message::Video(Bytes::from_static(b"v")))
        .unwrap();
    // AMF3-wrapped data (type 15) is accepted too.
    let mut amf3 = BytesMut::from(&[0u8][..]);
    amf0::encode(&["onCuePoint".into()], &mut amf3);
    peer.bytes(&encode_message(
        128,
        CSID_DATA,
        7,
        msg_type::DATA_AMF3,
        1,
        &amf3,
    ))
    .unwrap();
    peer.command(0, "FCUnpublish", 0.0, vec!["s?k".into()]);
    peer.command(1, "closeStream", 0.0, vec![]);
    peer.command(0, "deleteStream", 0.0, vec![1.0.into()]);
    peer.command(0, "deleteStream", 0.0, vec![99.0.into()]);
    assert_eq!(
        peer.events(),
        vec![
            ServerEvent::Data {
                stream_id: 1,
                timestamp: 0,
                values: vec!["onMetaData".into(), meta],
            },
            ServerEvent::Video {
                stream_id: 1,
                timestamp: 0,
                payload: Bytes::from_static(b"v"),
            },
            ServerEvent::Data {
                stream_id: 1,
                timestamp: 7,
                values: vec!["onCuePoint".into()],
            },
            ServerEvent::FcUnpublish { name: "s".into() },
            ServerEvent::CloseStream { stream_id: 1 },
            ServerEvent::DeleteStream { stream_id: 1 },
        ]
    );
}

#[test]
fn play_accept_and_end() {
    let mut peer = Peer::connected();
    peer.command(0, "createStream", 2.0, vec![]);
    peer.replies();
    peer.command(1, "play", 0.0, vec!["s?t=1".into(), (-1.0).into()]);
    assert_eq!(
        peer.events(),
        vec![ServerEvent::Play {
            stream_id: 1,
            name: "s".into(),
            query: Some("t=1".into()),
            start: -1.0,
        }]
    );
    peer.server.accept_play(1).unwrap();
    assert_eq!(
        peer.reply_names(),
        vec![
            "UserControl(StreamBegin(1))",
            "onStatus:NetStream.Play.Reset@1",
            "onStatus:NetStream.Play.Start@1",
            "data:|RtmpSampleAccess",
        ]
    );
    peer.server.send_play_end(1);
    assert_eq!(
        peer.reply_names(),
        vec![
            "UserControl(StreamEof(1))",
            "onStatus:NetStream.Play.UnpublishNotify@1",
            "onStatus:NetStream.Play.Stop@1",
        ]
    );
}

#[test]
fn play_reject_and_busy_stream() {
    let mut peer = Peer::connected();
    peer.command(0, "createStream", 2.0, vec![]);
    peer.replies();
    peer.command(1, "play", 0.0, vec!["missing".into()]);
    peer.events();
    assert_eq!(
        peer.server.accept_publish(1),
        Err(Error::NoPendingRequest("publish")),
        "wrong kind of answer"
    );
    assert_eq!(
        peer.server.accept_play(2),
        Err(Error::NoPendingRequest("play"))
    );
    peer.server
        .reject_play(1, "NetStream.Play.StreamNotFound", "no such stream")
        .unwrap();
    assert_eq!(
        peer.reply_names(),
        vec!["onStatus:NetStream.Play.StreamNotFound@1"]
    );

    peer.command(1, "play", 0.0, vec!["s".into()]);
    peer.events();
    peer.server.accept_play(1).unwrap();
    peer.replies();
    // A second play on a playing stream is refused by the session itself.
    peer.command(1, "play", 0.0, vec!["s".into()]);
    assert!(peer.events().is_empty());
    assert_eq!(peer.reply_names(), vec!["onStatus:NetStream.Play.Failed@1"]);
    // Stream 0 is the NetConnection.
    peer.command(0, "publish", 0.0, vec!["s".into()]);
    assert!(peer.events().is_empty());
    assert_eq!(
        peer.reply_names(),
        vec!["onStatus:NetStream.Publish.BadConnection@0"]
    );
}

#[test]
fn unknown_commands_are_answered_or_ignored() {
    let mut peer = Peer::connected();
    peer.command(0, "getStreamLength", 5.0, vec!["s".into()]);
    peer.command(0, "whatever", 0.0, vec![]);
    peer.command(0, "_result", 6.0, vec![]);
    peer.command(0, "onBWDone", 7.0, vec![]);
    let replies = peer.replies();
    assert_eq!(replies.len(), 1);
    let Message::Command(result) = &replies[0].1 else {
        panic!()
    };
    assert_eq!(
        (result.name.as_str(), result.transaction_id),
        ("_result", 5.0)
    );
    assert_eq!(result.args, vec![Amf0Value::Number(0.0)]);
    peer.command(0, "releaseStream", 8.0, vec!["s".into()]);
    assert_eq!(peer.reply_names(), vec!["_result#8@0"]);
    assert!(peer.events().is_empty());
    assert!(peer.server.accept_connect().is_err());
}

#[test]
fn ping_ack_and_peer_chunk_size() {
    let mut peer = Peer::connected();
    peer.send(
        CSID_CONTROL,
        0,
        &Message::UserControl(UserControl::PingRequest(42)),
    )
    .unwrap();
    assert_eq!(
        peer.replies(),
        vec![(0, Message::UserControl(UserControl::PingResponse(42)))]
    );
    peer.send(CSID_CONTROL, 0, &Message::WindowAckSize(100))
        .unwrap();
    peer.send(CSID_CONTROL, 0, &Message::SetChunkSize(1000))
        .unwrap();
    peer.bytes(&encode_message(
        1000,
        CSID_AUDIO,
        0,
        msg_type::AUDIO,
        1,
        &[0; 500],
    ))
    .unwrap();
    // One ack when the window is set (the handshake alone exceeds it), one
    // after the next 100+ bytes.
    let replies = peer.replies();
    assert!(
        matches!(
            replies[..],
            [(0, Message::Acknowledgement(a)), (0, Message::Acknowledgement(b))] if b > a + 500
        ),
        "{replies:?}"
    );
    assert_eq!(
        peer.send(CSID_CONTROL, 0, &Message::SetChunkSize((16 << 20) + 1)),
        Err(Error::Chunk(ChunkError::ChunkSizeTooLarge((16 << 20) + 1)))
    );
}

#[test]
fn input_while_undecided_is_bounded() {
    let mut peer = Peer::with_config(ServerConfig {
        max_message_size: 1000,
        ..ServerConfig::default()
    });
    peer.connect("live");
    assert!(peer.bytes(&[0u8; 600]).is_ok());
    assert_eq!(peer.bytes(&[0u8; 600]), Err(Error::InputOverflow(1200)));
}

#[test]
fn rejects_non_rtmp() {
    let mut server = ServerSession::new(ServerConfig::default());
    let mut http = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert!(matches!(server.feed(&mut http), Err(Error::Handshake(_))));
}

#[test]
fn malformed_command_is_an_error() {
    let mut peer = Peer::new();
    let bad = encode_message(
        128,
        CSID_COMMAND,
        0,
        msg_type::COMMAND_AMF0,
        0,
        &[0x02, 0, 7, b'c'],
    );
    assert!(matches!(peer.bytes(&bad), Err(Error::Message(_))));
}
