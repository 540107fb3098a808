use bytes::{Buf, Bytes, BytesMut};

use super::*;
use crate::chunk::{encode_message, ChunkDecoder};
use crate::handshake::HANDSHAKE_SIZE;
use crate::message::{status_object, CSID_COMMAND};

/// A hand-driven server talking to a `ClientSession`.
struct Server {
    client: ClientSession,
    decoder: ChunkDecoder,
    wire: BytesMut,
}

impl Server {
    fn new() -> Self {
        let mut client = ClientSession::new(ClientConfig {
            app: "live".into(),
            tc_url: "rtmp://host/live".into(),
            chunk_size: 4096,
        });
        let c0c1 = client.take_output();
        assert_eq!(c0c1.len(), 1 + HANDSHAKE_SIZE);
        let mut s0s1s2 = BytesMut::from(&[3u8][..]);
        s0s1s2.extend_from_slice(&[0u8; 2 * HANDSHAKE_SIZE]);
        client.feed(&mut s0s1s2).unwrap();
        let mut wire = BytesMut::from(&client.take_output()[..]);
        wire.advance(HANDSHAKE_SIZE); // C2
        Self {
            client,
            decoder: ChunkDecoder::default(),
            wire,
        }
    }

    fn send(&mut self, stream_id: u32, msg: &Message) {
        let bytes = encode_message(
            128,
            CSID_COMMAND,
            0,
            msg.type_id(),
            stream_id,
            &msg.to_payload(),
        );
        self.client.feed(&mut BytesMut::from(&bytes[..])).unwrap();
    }

    fn reply(&mut self, name: &str, tid: f64, args: Vec<Amf0Value>) {
        self.send(
            0,
            &Message::Command(Command::new(name, tid, Amf0Value::Null, args)),
        );
    }

    fn status(&mut self, level: &str, code: &str) {
        self.send(
            1,
            &Message::Command(Command::on_status(level, code, "desc")),
        );
    }

    /// Everything the client sent since the last call.
    fn received(&mut self) -> Vec<(u32, Message)> {
        self.wire.extend_from_slice(&self.client.take_output());
        let mut out = Vec::new();
        while let Some(raw) = self.decoder.push(&mut self.wire).unwrap() {
            out.push((
                raw.stream_id,
                Message::parse(raw.type_id, raw.payload).unwrap(),
            ));
        }
        out
    }

    fn commands(&mut self) -> Vec<(u32, Command)> {
        self.received()
            .into_iter()
            .filter_map(|(s, m)| match m {
                Message::Command(c) => Some((s, c)),
                _ => None,
            })
            .collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }
}

#[test]
fn handshake_then_connect() {
    let mut server = Server::new();
    let cmds = server.commands();
    assert_eq!(cmds.len(), 1);
    let (stream, connect) = &cmds[0];
    assert_eq!(
        (*stream, connect.name.as_str(), connect.transaction_id),
        (0, "connect", 1.0)
    );
    let get = |k| connect.object.get(k).and_then(Amf0Value::as_str);
    assert_eq!(get("app"), Some("live"));
    assert_eq!(get("tcUrl"), Some("rtmp://host/live"));
    assert_eq!(get("type"), Some("nonprivate"));
    assert!(get("flashVer").is_some());
    assert!(!server.client.is_connected());
}

#[test]
fn publish_flow() {
    let mut server = Server::new();
    server.commands();
    server.client.create_stream_and_publish("stream?key=1");
    assert!(server.received().is_empty(), "waits for connect");
    assert_eq!(server.client.send_audio(0, b"a"), Err(Error::NotPublishing));

    server.reply(
        "_result",
        1.0,
        vec![status_object("status", "NetConnection.Connect.Success", "")],
    );
    assert_eq!(server.events(), vec![ClientEvent::Connected]);
    let sent = server.received();
    assert_eq!(sent[0], (0, Message::SetChunkSize(4096)));
    let names: Vec<_> = sent[1..]
        .iter()
        .map(|(_, m)| match m {
            Message::Command(c) => (
                c.name.clone(),
                c.transaction_id,
                c.arg_str(0).map(str::to_owned),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("releaseStream".into(), 2.0, Some("stream?key=1".into())),
            ("FCPublish".into(), 3.0, Some("stream?key=1".into())),
            ("createStream".into(), 4.0, None),
        ]
    );
    // An `_error` for releaseStream is not fatal (and not reported).
    server.reply(
        "_error",
        2.0,
        vec![status_object("error", "NetStream.Release.Failed", "")],
    );
    server.reply("_result", 4.0, vec![Amf0Value::from(1.0)]);
    assert_eq!(server.client.stream_id(), Some(1));
    let cmds = server.commands();
    assert_eq!(cmds[0].0, 1);
    assert_eq!(cmds[0].1.name, "publish");
    assert_eq!(cmds[0].1.args, vec!["stream?key=1".into(), "live".into()]);

    server.status("status", "NetStream.Publish.Start");
    assert_eq!(server.events(), vec![ClientEvent::Publishing]);
    assert!(server.client.is_publishing());
    server.client.send_audio(5, b"aud").unwrap();
    server.client.send_video(6, b"vid").unwrap();
    server
        .client
        .send_metadata(&[
            "onMetaData".into(),
            Amf0Value::ecma_array([("w", 1.0.into())]),
        ])
        .unwrap();
    let sent = server.received();
    assert_eq!(sent[0], (1, Message::Audio(Bytes::from_static(b"aud"))));
    assert_eq!(sent[1], (1, Message::Video(Bytes::from_static(b"vid"))));
    let Message::Data(values) = &sent[2].1 else {
        panic!()
    };
    assert_eq!(values[0].as_str(), Some("@setDataFrame"));
    assert_eq!(values[1].as_str(), Some("onMetaData"));

    server.client.close();
    let cmds = server.commands();
    assert_eq!(cmds[0].1.name, "FCUnpublish");
    assert_eq!(cmds[1].1.name, "deleteStream");
    assert_eq!(cmds[1].1.args, vec![Amf0Value::from(1.0)]);
    assert!(!server.client.is_publishing());
}

#[test]
fn play_flow_and_media() {
    let mut server = Server::new();
    server.commands();
    server.reply("_result", 1.0, vec![]);
    server.events();
    server.client.create_stream_and_play("s");
    let cmds = server.commands();
    assert_eq!(cmds[0].1.name, "createStream");
    server.reply(
        "_result",
        cmds[0].1.transaction_id,
        vec![Amf0Value::Null, Amf0Value::from(3.0)],
    );
    // A server that puts the id second is not what we expect.
    assert!(matches!(server.events()[..], [ClientEvent::Error { .. }]));
    server.client.create_stream_and_play("s");
    let tid = server.commands()[0].1.transaction_id;
    server.reply("_result", tid, vec![Amf0Value::from(3.0)]);
    let sent = server.received();
    let Message::Command(play) = &sent[0].1 else {
        panic!()
    };
    assert_eq!((sent[0].0, play.name.as_str()), (3, "play"));
    assert_eq!(
        sent[1].1,
        Message::UserControl(UserControl::SetBufferLength {
            stream_id: 3,
            buffer_ms: 3000
        })
    );

    server.status("status", "NetStream.Play.Reset");
    server.status("status", "NetStream.Play.Start");
    server.status("error", "NetStream.Play.StreamNotFound");
    let video = encode_message(128, CSID_VIDEO, 0x0100_0000, msg_type::VIDEO, 3, &[1; 300]);
    server.client.feed(&mut BytesMut::from(&video[..])).unwrap();
    assert_eq!(
        server.events(),
        vec![
            ClientEvent::Status {
                level: "status".into(),
                code: "NetStream.Play.Reset".into(),
                description: "desc".into(),
            },
            ClientEvent::Playing,
            ClientEvent::Error {
                code: "NetStream.Play.StreamNotFound".into(),
                description: "desc".into(),
            },
            ClientEvent::Video {
                timestamp: 0x0100_0000,
                payload: Bytes::from(vec![1; 300]),
            },
        ]
    );
}

#[test]
fn connect_error() {
    let mut server = Server::new();
    server.commands();
    server.reply(
        "_error",
        1.0,
        vec![status_object(
            "error",
            "NetConnection.Connect.Rejected",
            "nope",
        )],
    );
    assert_eq!(
        server.events(),
        vec![ClientEvent::Error {
            code: "NetConnection.Connect.Rejected".into(),
            description: "nope".into(),
        }]
    );
    assert!(!server.client.is_connected());
    // Unknown transaction ids and other commands are ignored.
    server.reply("_result", 99.0, vec![]);
    server.reply("onBWDone", 0.0, vec![]);
    assert!(server.events().is_empty());
}

#[test]
fn answers_ping() {
    let mut server = Server::new();
    server.commands();
    server.send(0, &Message::UserControl(UserControl::PingRequest(5)));
    assert_eq!(
        server.received(),
        vec![(0, Message::UserControl(UserControl::PingResponse(5)))]
    );
}
