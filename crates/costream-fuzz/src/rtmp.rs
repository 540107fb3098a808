//! RTMP: the handshake, the chunk decoder, message parsing and AMF0, driven
//! through the server's and the client's session state machines.

use bytes::{Bytes, BytesMut};
use costream_rtmp::amf0;
use costream_rtmp::{
    ClientConfig, ClientEvent, ClientSession, Message, ServerConfig, ServerEvent, ServerSession,
};

use crate::media::Media;
use crate::{read_size, Input};

/// C0/S0 and two 1536-byte handshake packets: the handshake checks only the
/// version byte, so a valid one is this, and the fuzzer need not find it.
fn handshake() -> Vec<u8> {
    let mut h = vec![0u8; 1 + 2 * 1536];
    h[0] = 3;
    h
}

/// Input: a flags byte (bit 0: client side instead of server; bit 1: put a
/// valid handshake in front; bit 2: refuse requests instead of accepting
/// them), a read-size byte, then the bytes the peer sends.
pub fn rtmp(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let step = read_size(input.byte());
    let mut stream = if flags & 2 != 0 {
        handshake()
    } else {
        Vec::new()
    };
    stream.extend_from_slice(input.rest());
    if flags & 1 == 0 {
        server(&stream, step, flags & 4 != 0);
    } else {
        client(&stream, step, flags & 4 != 0);
    }
}

fn server(stream: &[u8], step: usize, refuse: bool) {
    // The server's own settings (crates/costream's RTMP listener).
    let mut session = ServerSession::new(ServerConfig::default());
    let mut media = Media::new();
    for piece in stream.chunks(step) {
        let mut buf = BytesMut::from(piece);
        if session.feed(&mut buf).is_err() {
            return;
        }
        while let Some(event) = session.poll_event() {
            let answered = match event {
                ServerEvent::Connect { .. } if refuse => session.reject_connect("no"),
                ServerEvent::Connect { .. } => session.accept_connect(),
                ServerEvent::Publish { stream_id, .. } if refuse => {
                    session.reject_publish(stream_id, "NetStream.Publish.BadName", "no")
                }
                ServerEvent::Publish { stream_id, .. } => session.accept_publish(stream_id),
                ServerEvent::Play { stream_id, .. } if refuse => {
                    session.reject_play(stream_id, "NetStream.Play.StreamNotFound", "no")
                }
                ServerEvent::Play { stream_id, .. } => {
                    let r = session.accept_play(stream_id);
                    session.send_play_end(stream_id);
                    r
                }
                ServerEvent::Audio {
                    timestamp, payload, ..
                } => {
                    media.audio(timestamp, payload);
                    Ok(())
                }
                ServerEvent::Video {
                    timestamp, payload, ..
                } => {
                    media.video(timestamp, payload);
                    Ok(())
                }
                ServerEvent::Data { values, .. } => {
                    reencode(&values);
                    Ok(())
                }
                _ => Ok(()),
            };
            if answered.is_err() {
                return;
            }
        }
        let _ = session.take_output();
    }
}

fn client(stream: &[u8], step: usize, play: bool) {
    let mut session = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        chunk_size: 4096,
    });
    if play {
        session.create_stream_and_play("cam");
    } else {
        session.create_stream_and_publish("cam");
    }
    let mut media = Media::new();
    for piece in stream.chunks(step) {
        let mut buf = BytesMut::from(piece);
        if session.feed(&mut buf).is_err() {
            return;
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::Publishing => {
                    let sent = session
                        .send_video(0, b"\x17\x01\0\0\0\0\0\0\x01\x65")
                        .and_then(|_| session.send_audio(0, b"\xaf\x01\x21"));
                    if sent.is_err() {
                        return;
                    }
                }
                ClientEvent::Audio { timestamp, payload } => media.audio(timestamp, payload),
                ClientEvent::Video { timestamp, payload } => media.video(timestamp, payload),
                ClientEvent::Data { values, .. } => reencode(&values),
                _ => {}
            }
        }
        let _ = session.take_output();
    }
    session.close();
}

/// Decoded AMF0 must encode, and decode again to the same encoding.
fn reencode(values: &[costream_rtmp::Amf0Value]) {
    let mut out = BytesMut::new();
    amf0::encode(values, &mut out);
    let again = amf0::decode_all(&out).expect("AMF0 that costream encoded decodes");
    let mut out2 = BytesMut::new();
    amf0::encode(&again, &mut out2);
    assert_eq!(out, out2, "AMF0 re-encoding is not stable");
}

/// Input: a message type id, then the message payload (what the chunk
/// decoder hands to `Message::parse`).
pub fn amf0(data: &[u8]) {
    let Some((&type_id, body)) = data.split_first() else {
        return;
    };
    match Message::parse(type_id, Bytes::copy_from_slice(body)) {
        Ok(Message::Data(values)) => reencode(&values),
        Ok(Message::Command(c)) => {
            // What a command carries must survive the way back out.
            let mut out = BytesMut::new();
            c.encode(&mut out);
            let _ = amf0::decode_all(&out).expect("an encoded command decodes");
        }
        Ok(m) => {
            let _ = m.to_payload();
        }
        Err(_) => {}
    }
    if let Ok(values) = amf0::decode_all(body) {
        reencode(&values);
    }
    let _ = amf0::decode_value(body);
}
