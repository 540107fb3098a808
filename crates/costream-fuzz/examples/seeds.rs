//! Writes the fuzz corpora's seed inputs (fuzz/corpus/<target>/seed-*)
//! from a short FLV file (made with ffmpeg, see README's Fuzzing section):
//! an RTMP publish and play as the server and the client see them, the
//! FLV itself, its H.264 and AAC configs and frames, Opus made from its
//! audio, WebRTC offers, an answer, candidates and ICE packets from str0m
//! peers, and signaling messages.
//!
//! cargo run -p costream-fuzz --example seeds -- seed.flv

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use costream_audio::{AacToOpus, OpusEncoder};
use costream_flv::{FlvReader, FlvTag};
use costream_hub::avc::AvcConfig;
use costream_rtc::{Direction, HostOutput, RtcHost, RtcHostConfig};
use costream_rtmp::{
    ClientConfig, ClientEvent, ClientSession, ServerConfig, ServerEvent, ServerSession,
};
use str0m::media::{Direction as S0Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Output, Rtc};

fn main() {
    let flv_path = std::env::args().nth(1).expect("usage: seeds FILE.flv");
    let flv = fs::read(&flv_path).expect("the FLV file");
    let tags = read_tags(&flv);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let w = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        let path: PathBuf = dir.join(format!("seed-{name}"));
        fs::write(&path, data).expect("seed written");
    };

    // FLV: the file, read 4 KiB at a time and byte by byte (its head).
    w("flv", "file", &[&[0u8][..], &flv].concat());
    w(
        "flv",
        "bytewise",
        &[&[1u8][..], &flv[..flv.len().min(2000)]].concat(),
    );

    // H.264 and AAC from the FLV.
    let video: Vec<&FlvTag> = tags.iter().filter(|t| t.tag_type == 9).collect();
    let audio: Vec<&FlvTag> = tags.iter().filter(|t| t.tag_type == 8).collect();
    let record = &video[0].body[5..];
    let cfg = AvcConfig::parse(&bytes::Bytes::copy_from_slice(record)).expect("an avcC");
    w("h264", "avcc-record", &[&[0u8][..], record].concat());
    w("h264", "sps", &[&[1u8][..], &cfg.sps[0]].concat());
    let small_frame = video[1..]
        .iter()
        .filter(|t| t.body.len() > 5 && t.body[1] == 1)
        .min_by_key(|t| t.body.len())
        .expect("a frame");
    // 4-byte lengths: mode 2 + 4 * 3.
    w(
        "h264",
        "access-unit",
        &[&[2u8 + 12][..], &small_frame.body[5..]].concat(),
    );
    let mut annexb = Vec::new();
    for (i, nal) in cfg.sps.iter().chain(&cfg.pps).enumerate() {
        let mut au = vec![0, 0, 0, 1];
        au.extend_from_slice(nal);
        annexb.push(0x80 | (i as u8) << 2);
        annexb.extend_from_slice(&(au.len() as u16).to_be_bytes());
        annexb.extend_from_slice(&au);
    }
    let mut idr = BytesMut::new();
    costream_hub::avc::avcc_to_annexb(&video[1].body[5..], &mut idr);
    let idr = &idr[..idr.len().min(3000)];
    annexb.push(0x80 | 4 << 2);
    annexb.extend_from_slice(&(idr.len() as u16).to_be_bytes());
    annexb.extend_from_slice(idr);
    w("h264", "webrtc-frames", &[&[3u8][..], &annexb].concat());
    w("amf0", "onmetadata", &[&[18u8][..], &tags[0].body].concat());

    let asc = &audio[0].body[2..];
    let mut aac = vec![0u8, asc.len() as u8];
    aac.extend_from_slice(asc);
    let mut to_opus = AacToOpus::new(asc).expect("the ASC decodes");
    let mut opus_packets = Vec::new();
    for t in audio[1..].iter().take(6) {
        let frame = &t.body[2..];
        aac.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        aac.push(32 + 21);
        aac.extend_from_slice(frame);
        to_opus
            .push(frame, i64::from(t.timestamp))
            .expect("AAC decodes");
        while let Some(p) = to_opus.pop() {
            opus_packets.push(p.data);
        }
    }
    w("aac", "aac-to-opus", &aac);
    let head = OpusEncoder::new(None).expect("an Opus encoder").opus_head();
    let mut opus = vec![1u8, head.len() as u8];
    opus.extend_from_slice(&head);
    for p in opus_packets.iter().take(6) {
        opus.extend_from_slice(&(p.len() as u16).to_be_bytes());
        opus.push(32 + 20);
        opus.extend_from_slice(p);
    }
    w("aac", "opus-to-aac", &opus);

    // RTMP: a publish of the FLV's first tags and a play, both sides' bytes.
    let (to_server, to_client) = rtmp_exchange(&tags[..tags.len().min(12)], false);
    w(
        "rtmp",
        "server-publish",
        &[&[0u8, 0][..], &to_server].concat(),
    );
    w(
        "rtmp",
        "server-publish-nohs",
        &[&[2u8, 0][..], &to_server[3073..]].concat(),
    );
    w(
        "rtmp",
        "client-publish",
        &[&[3u8, 0][..], &to_client[3073..]].concat(),
    );
    let (to_server, to_client) = rtmp_exchange(&tags[..tags.len().min(12)], true);
    w(
        "rtmp",
        "server-play",
        &[&[2u8, 0][..], &to_server[3073..]].concat(),
    );
    w(
        "rtmp",
        "client-play",
        &[&[7u8, 0][..], &to_client[3073..]].concat(),
    );
    let connect = &to_server[3073..];
    // The connect command's payload: after a 12-byte type-0 chunk header.
    let len =
        usize::from(connect[4]) << 16 | usize::from(connect[5]) << 8 | usize::from(connect[6]);
    w(
        "amf0",
        "connect",
        &[&[20u8][..], &connect[12..12 + len.min(128)]].concat(),
    );

    // WebRTC.
    let (offer_pub, offer_play, answer, packets) = webrtc();
    w("sdp", "whip-offer", &[b"\0", offer_pub.as_bytes()].concat());
    w(
        "sdp",
        "whep-offer",
        &[b"\x01", offer_play.as_bytes()].concat(),
    );
    w("sdp", "answer", &[b"\x02", answer.as_bytes()].concat());
    w(
        "sdp",
        "trickle",
        b"\x03a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\n\
a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1\r\n\
a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2\r\n\
a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1\r\n\
a=candidate:2154773085 1 udp 1686052607 203.0.113.5 22549 typ srflx raddr 192.0.2.1 rport 61764 generation 0\r\n\
a=end-of-candidates\r\n",
    );
    let mut udp = vec![0u8, 0];
    let mut tcp = vec![2u8, 0];
    for p in &packets {
        let p = if p.first().is_some_and(|&b| b < 4) {
            // A check: re-signed by the target for its own session.
            vec![0xff, 0x6e, 0x7f, 0x1e, 0xff, 3, 0x12, 0x34]
        } else {
            p.clone()
        };
        udp.extend_from_slice(&(p.len() as u16).to_be_bytes());
        udp.extend_from_slice(&p);
        tcp.extend_from_slice(&(p.len() as u16).to_be_bytes());
        tcp.extend_from_slice(&p);
    }
    w("rtc_packets", "udp", &udp);
    w("rtc_packets", "tcp", &tcp);
    let tid = [7u8; 12];
    let stun = costream_rtc::stun_server::binding_request(&tid);
    let mut plain = vec![0u8, 0, 0, stun.len() as u8];
    plain.extend_from_slice(&stun);
    w("rtc_packets", "plain-stun", &plain);

    // Signaling (docs/signaling.md).
    for (name, msg) in [
        ("publish", r#"{"type":"publish","id":"1","sdp":"v=0\r\n"}"#),
        ("subscribe", r#"{"type":"subscribe","identity":"bob"}"#),
        ("answer", r#"{"type":"answer","sdp":"v=0\r\n"}"#),
        (
            "trickle",
            r#"{"type":"trickle","session":"s1","candidate":"candidate:1 1 udp 2122260223 192.0.2.1 61764 typ host"}"#,
        ),
        ("mute", r#"{"type":"mute","kind":"audio","muted":true}"#),
        ("update", r#"{"type":"update","name":"Al","metadata":"{}"}"#),
        (
            "kick",
            r#"{"type":"kick","identity":"carol","to":"out","id":"7"}"#,
        ),
        (
            "mix",
            r#"{"type":"mix","layout":{"custom":[{"x":0,"y":0,"w":0.5,"h":0.5}]},"gain":{"a":0.5},"push":["rtmp://cdn.example/live/x"],"width":640}"#,
        ),
        ("mix-stop", r#"{"type":"mix_stop"}"#),
        (
            "subscriber-failed",
            r#"{"type":"subscriber_failed","session":"s2","reason":"ice"}"#,
        ),
    ] {
        w("signaling", name, msg.as_bytes());
    }
    // Tokens: signed to stay valid for a century, so they keep reaching
    // the success paths when replayed.
    let century = Duration::from_secs(100 * 365 * 86_400);
    let key = costream_fuzz::api_key();
    let jwt = costream::access::mint_owning(
        &key,
        "room",
        "alice",
        costream::access::Role::Host,
        Some("Alice".into()),
        Some("live/alice".into()),
        century,
    )
    .expect("a token");
    w("tokens", "room-token", &[b"\0", jwt.as_bytes()].concat());
    let cam = costream_hub::StreamKey::new("live", "cam").expect("a key");
    let publish = costream::auth::sign_publish("a-publish-secret", &cam, century);
    w(
        "tokens",
        "publish-token",
        format!("\x01a=1&token={publish}&b").as_bytes(),
    );
    w("tokens", "stream-key", b"\x02room.r1/alice~rtc");
    println!("seeds written under {}", corpus.display());
}

fn read_tags(flv: &[u8]) -> Vec<FlvTag> {
    let mut reader = FlvReader::new(1 << 20);
    let mut buf = BytesMut::from(flv);
    let mut tags = Vec::new();
    while let Some(t) = reader.next_tag(&mut buf).expect("a valid FLV") {
        tags.push(t);
    }
    tags
}

/// A client publishing `tags` (or playing) against a server that sends
/// them back to the player; returns what each side received.
fn rtmp_exchange(tags: &[FlvTag], play: bool) -> (Vec<u8>, Vec<u8>) {
    let mut server = ServerSession::new(ServerConfig::default());
    let mut client = ClientSession::new(ClientConfig {
        app: "live".into(),
        tc_url: "rtmp://127.0.0.1/live".into(),
        chunk_size: 4096,
    });
    if play {
        client.create_stream_and_play("cam?token=x");
    } else {
        client.create_stream_and_publish("cam?token=x");
    }
    let (mut to_server, mut to_client) = (Vec::new(), Vec::new());
    let mut sent = false;
    for _ in 0..20 {
        let out = client.take_output();
        to_server.extend_from_slice(&out);
        server
            .feed(&mut BytesMut::from(&out[..]))
            .expect("server takes it");
        while let Some(e) = server.poll_event() {
            match e {
                ServerEvent::Connect { .. } => server.accept_connect().expect("connect"),
                ServerEvent::Publish { stream_id, .. } => {
                    server.accept_publish(stream_id).expect("publish")
                }
                ServerEvent::Play { stream_id, .. } => {
                    server.accept_play(stream_id).expect("play");
                    for t in tags {
                        let (csid, ty) = match t.tag_type {
                            8 => (costream_rtmp::CSID_AUDIO, 8),
                            9 => (costream_rtmp::CSID_VIDEO, 9),
                            _ => (costream_rtmp::CSID_DATA, 18),
                        };
                        let m = costream_rtmp::encode_message(
                            server.chunk_size(),
                            csid,
                            t.timestamp,
                            ty,
                            stream_id,
                            &t.body,
                        );
                        let out = server.take_output();
                        to_client.extend_from_slice(&out);
                        to_client.extend_from_slice(&m);
                    }
                }
                _ => {}
            }
        }
        let out = server.take_output();
        to_client.extend_from_slice(&out);
        client
            .feed(&mut BytesMut::from(&out[..]))
            .expect("client takes it");
        while let Some(e) = client.poll_event() {
            if e == ClientEvent::Publishing && !sent {
                sent = true;
                for t in tags {
                    match t.tag_type {
                        8 => client.send_audio(t.timestamp, &t.body).expect("audio"),
                        9 => client.send_video(t.timestamp, &t.body).expect("video"),
                        _ => client.send_metadata(&[]).expect("data"),
                    }
                }
            }
        }
    }
    client.close();
    to_server.extend_from_slice(&client.take_output());
    (to_server, to_client)
}

/// A str0m client publishing to an `RtcHost`, in memory: the offers, an
/// answer to the host's own offer, and the client's first packets.
fn webrtc() -> (String, String, String, Vec<Vec<u8>>) {
    let host_addr: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut host = RtcHost::new(RtcHostConfig::new(vec![host_addr]));
    let start = Instant::now();
    let offer_for = |dir| {
        let mut rtc = Rtc::new(start);
        rtc.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, dir, None, None, None);
        api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        (rtc, offer.to_sdp_string(), pending)
    };
    let (_, offer_play, _) = offer_for(S0Direction::RecvOnly);
    let (mut client, offer_pub, pending) = offer_for(S0Direction::SendOnly);
    let (_, answer) = host
        .accept_offer(Direction::Publish, &offer_pub, start)
        .unwrap();
    client
        .sdp_api()
        .accept_answer(
            pending,
            str0m::change::SdpAnswer::from_sdp_string(&answer).unwrap(),
        )
        .unwrap();

    // The answer a browser gives to the host's own offer.
    let sub = host.create_offerer(start).unwrap();
    let (host_offer, _) = host
        .renegotiate(sub, &["alice".into()], &[], start)
        .unwrap();
    let mut viewer = Rtc::new(start);
    viewer.add_local_candidate(Candidate::host(client_addr, "udp").unwrap());
    let viewer_answer = viewer
        .sdp_api()
        .accept_offer(str0m::change::SdpOffer::from_sdp_string(&host_offer).unwrap())
        .unwrap()
        .to_sdp_string();

    let mut packets = Vec::new();
    let mut now = start;
    for _ in 0..200 {
        now += Duration::from_millis(5);
        client.handle_input(Input::Timeout(now)).unwrap();
        loop {
            match client.poll_output().unwrap() {
                Output::Transmit(t) => {
                    packets.push(t.contents.to_vec());
                    host.handle_datagram(now, client_addr, host_addr, &t.contents);
                }
                Output::Timeout(_) => break,
                Output::Event(_) => {}
            }
        }
        loop {
            match host.poll(now) {
                HostOutput::Transmit { data, .. } => {
                    let r = Receive::new(Protocol::Udp, host_addr, client_addr, &data).unwrap();
                    client.handle_input(Input::Receive(now, r)).unwrap();
                }
                HostOutput::Timeout(_) => break,
                HostOutput::Event { .. } => {}
            }
        }
        if packets.len() >= 8 {
            break;
        }
    }
    (offer_pub, offer_play, viewer_answer, packets)
}
