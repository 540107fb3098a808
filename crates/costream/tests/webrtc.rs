//! WHIP publish and WHEP play through the server's HTTP endpoints and its one
//! UDP port, with str0m clients (what OBS or a browser would be).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use costream_hub::AudioCodec;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaData, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::rtp::rtcp::Rtcp;
use str0m::rtp::RawPacket;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

/// How a test peer reaches the server.
enum Link {
    Udp(UdpSocket),
    /// An ICE-TCP connection: RFC 4571 frames, with what was read so far.
    Tcp(TcpStream, Vec<u8>),
}

/// A WebRTC client on its own UDP socket or TCP connection.
struct Peer {
    rtc: Rtc,
    link: Link,
    addr: SocketAddr,
    video: Mid,
    audio: Mid,
    connected: bool,
    media: Vec<MediaData>,
    /// TWCC feedback and sender reports received (with raw packets enabled).
    twcc_received: usize,
    sender_reports: usize,
    /// When media packet 0 was due: one clock for the whole stream, as a
    /// real sender's RTP timestamps follow its capture clock.
    media_start: Option<Instant>,
    /// Loss made on purpose: the next `drop_video` H.264 RTP packets are
    /// not sent, nor is any retransmission (so NACKs cannot repair it).
    drop_video: usize,
    dropping_rtx: bool,
    video_pts: Option<(u8, Option<u8>)>,
    keyframe_requests: usize,
    timeout: Instant,
    pending: Option<SdpPendingOffer>,
}

impl Peer {
    fn new(dir: Direction) -> (Peer, String) {
        Peer::with(dir, RtcConfig::new(), None)
    }

    /// A peer with its own str0m config; with `tcp_server` it offers only an
    /// ICE-TCP candidate and connects to that address (no UDP at all).
    fn with(dir: Direction, config: RtcConfig, tcp_server: Option<SocketAddr>) -> (Peer, String) {
        let (link, addr, candidate) = match tcp_server {
            None => {
                let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
                socket.set_nonblocking(true).unwrap();
                let addr = socket.local_addr().unwrap();
                (
                    Link::Udp(socket),
                    addr,
                    Candidate::host(addr, "udp").unwrap(),
                )
            }
            Some(server) => {
                let stream = TcpStream::connect(server).unwrap();
                stream.set_nonblocking(true).unwrap();
                stream.set_nodelay(true).unwrap();
                let addr = stream.local_addr().unwrap();
                let c = Candidate::builder()
                    .tcp()
                    .host(addr)
                    .tcptype(TcpType::Active)
                    .build()
                    .unwrap();
                (Link::Tcp(stream, Vec::new()), addr, c)
            }
        };
        let now = Instant::now();
        let mut rtc = config.build(now);
        rtc.add_local_candidate(candidate);
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, dir, None, None, None);
        let audio = api.add_media(MediaKind::Audio, dir, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        let peer = Peer {
            rtc,
            link,
            addr,
            video,
            audio,
            connected: false,
            media: Vec::new(),
            twcc_received: 0,
            sender_reports: 0,
            media_start: None,
            drop_video: 0,
            dropping_rtx: false,
            video_pts: None,
            keyframe_requests: 0,
            timeout: now,
            pending: Some(pending),
        };
        (peer, offer.to_sdp_string())
    }

    fn accept_answer(&mut self, answer: &str) {
        let answer = SdpAnswer::from_sdp_string(answer).expect("the answer parses");
        let pending = self.pending.take().unwrap();
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
        self.drain();
    }

    fn pump(&mut self) {
        let mut buf = [0u8; 2048];
        let mut received: Vec<(Protocol, SocketAddr, Vec<u8>)> = Vec::new();
        match &mut self.link {
            Link::Udp(socket) => {
                while let Ok((n, source)) = socket.recv_from(&mut buf) {
                    received.push((Protocol::Udp, source, buf[..n].to_vec()));
                }
            }
            Link::Tcp(stream, pending) => {
                let source = stream.peer_addr().unwrap();
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                }
                while pending.len() >= 2 {
                    let len = u16::from_be_bytes([pending[0], pending[1]]) as usize;
                    if pending.len() < 2 + len {
                        break;
                    }
                    received.push((Protocol::Tcp, source, pending[2..2 + len].to_vec()));
                    pending.drain(..2 + len);
                }
            }
        }
        for (proto, source, data) in received {
            if let Ok(r) = Receive::new(proto, source, self.addr, &data) {
                let _ = self.rtc.handle_input(Input::Receive(Instant::now(), r));
                self.drain();
            }
        }
        let now = Instant::now();
        if now >= self.timeout {
            let _ = self.rtc.handle_input(Input::Timeout(now));
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Ok(out) = self.rtc.poll_output() {
            match out {
                Output::Timeout(t) => {
                    self.timeout = t;
                    return;
                }
                Output::Transmit(t) if self.dropped_on_purpose(&t.contents) => {}
                Output::Transmit(t) => match &mut self.link {
                    Link::Udp(socket) => {
                        let _ = socket.send_to(&t.contents, t.destination);
                    }
                    Link::Tcp(stream, _) => {
                        let mut framed = (t.contents.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&t.contents);
                        // Loopback with small test rates: the send buffer never fills.
                        stream.write_all(&framed).unwrap();
                    }
                },
                Output::Event(Event::Connected) => self.connected = true,
                Output::Event(Event::KeyframeRequest(_)) => self.keyframe_requests += 1,
                Output::Event(Event::MediaData(d)) => self.media.push(d),
                Output::Event(Event::RawPacket(p)) => match *p {
                    RawPacket::RtcpRx(Rtcp::Twcc(_)) => self.twcc_received += 1,
                    RawPacket::RtcpRx(Rtcp::SenderReport(_)) => self.sender_reports += 1,
                    _ => {}
                },
                Output::Event(_) => {}
            }
        }
    }

    /// RTP headers are not encrypted: the payload type tells video apart.
    fn dropped_on_purpose(&mut self, packet: &[u8]) -> bool {
        let Some((video, rtx)) = self.video_pts else {
            return false;
        };
        let pt = match packet {
            [b0, b1, ..] if b0 & 0xc0 == 0x80 => b1 & 0x7f,
            _ => return false,
        };
        if Some(pt) == rtx && self.dropping_rtx {
            return true;
        }
        if pt == video && self.drop_video > 0 {
            self.drop_video -= 1;
            self.dropping_rtx = true;
            return true;
        }
        false
    }

    fn write(&mut self, codec: Codec, rtp_time: u64, data: &[u8]) {
        let (mid, hz) = match codec {
            Codec::Opus => (self.audio, Frequency::FORTY_EIGHT_KHZ),
            _ => (self.video, Frequency::NINETY_KHZ),
        };
        let writer = self.rtc.writer(mid).expect("a writer");
        let pt = writer
            .payload_params()
            .find(|p| {
                p.spec().codec == codec
                    && (codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
            })
            .expect("codec negotiated");
        let (pt, rtx) = (pt.pt(), pt.resend());
        if codec == Codec::H264 {
            self.video_pts = Some((*pt, rtx.map(|r| *r)));
        }
        writer
            .write(
                pt,
                Instant::now(),
                MediaTime::new(rtp_time, hz),
                data.to_vec(),
            )
            .unwrap();
        self.drain();
    }
}

// A real 640x360 baseline SPS and a PPS, then slices of filler bytes.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
    0x00, 0x03, 0x00, 0xc8, 0x3c, 0x58, 0xba, 0x80,
];
const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

fn access_unit(idr: bool, seed: u8) -> Vec<u8> {
    let mut au = Vec::new();
    if idr {
        for ps in [SPS, PPS] {
            au.extend_from_slice(&[0, 0, 0, 1]);
            au.extend_from_slice(ps);
        }
    }
    au.extend_from_slice(&[0, 0, 0, 1, if idr { 0x65 } else { 0x41 }]);
    au.extend((0..2500u32).map(|i| ((i * 7 + seed as u32) % 251 + 1) as u8));
    au
}

async fn pump_until(
    peers: &mut [&mut Peer],
    limit: Duration,
    mut done: impl FnMut(&[&mut Peer]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        for p in peers.iter_mut() {
            p.pump();
        }
        if done(peers) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

async fn start() -> costream::server::Server {
    start_server(|_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_publish_whep_play_trickle_and_delete() {
    let server = start().await;
    let http = server.http_addr;

    // Publish (WHIP).
    let (mut publisher, offer) = Peer::new(Direction::SendOnly);
    let (status, head, answer) = http_send(
        http,
        "POST",
        "/whip/live/w",
        "application/sdp",
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{head}");
    let whip_location = header(&head, "location").expect("a Location").to_string();
    assert!(
        whip_location.starts_with("/whip/live/w/"),
        "{whip_location}"
    );
    publisher.accept_answer(&String::from_utf8(answer).unwrap());
    assert!(
        pump_until(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected)
        .await,
        "WHIP connected"
    );

    // A second WHIP publisher on the same key is refused.
    let (_, offer2) = Peer::new(Direction::SendOnly);
    let (status, _, _) = http_send(
        http,
        "POST",
        "/whip/live/w",
        "application/sdp",
        offer2.as_bytes(),
    )
    .await;
    assert_eq!(status, 409);

    // 25 fps video with a keyframe every 25 frames, 20 ms Opus, over 3 s;
    // a WHEP viewer joins after one second.
    let mut viewer: Option<Peer> = None;
    let mut whep_location = String::new();
    let t0 = Instant::now();
    for i in 0..150u64 {
        let at = t0 + Duration::from_millis(20 * i);
        while Instant::now() < at {
            publisher.pump();
            if let Some(v) = viewer.as_mut() {
                v.pump();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if i % 2 == 0 {
            let n = i / 2;
            publisher.write(
                Codec::H264,
                n * 3600,
                &access_unit(n.is_multiple_of(25), n as u8),
            );
        }
        publisher.write(
            Codec::Opus,
            i * 960,
            &[0xfc, 0xff, 0xfe, (i % 250) as u8 + 1],
        );
        if i == 50 {
            let key = costream_hub::StreamKey::parse("live/w").unwrap();
            let info = server
                .hub()
                .stream(&key)
                .expect("the WHIP stream is in the hub")
                .info();
            let video = info.video.expect("video config from the in-band SPS");
            assert_eq!((video.width, video.height), (640, 360));
            assert_eq!(
                info.audio.expect("audio").codec,
                costream_hub::AudioCodec::Opus
            );

            let (mut v, offer) = Peer::new(Direction::RecvOnly);
            let (status, head, answer) = http_send(
                http,
                "POST",
                "/whep/live/w",
                "application/sdp",
                offer.as_bytes(),
            )
            .await;
            assert_eq!(status, 201, "{head}");
            whep_location = header(&head, "location").unwrap().to_string();
            v.accept_answer(&String::from_utf8(answer).unwrap());
            viewer = Some(v);
        }
    }
    let mut viewer = viewer.unwrap();
    let got = pump_until(
        &mut [&mut publisher, &mut viewer],
        Duration::from_secs(5),
        |p| {
            p[1].media.iter().filter(|m| m.mid == p[1].video).count() >= 20
                && p[1].media.iter().any(|m| m.mid == p[1].audio)
        },
    )
    .await;
    let video: Vec<&MediaData> = viewer
        .media
        .iter()
        .filter(|m| m.mid == viewer.video)
        .collect();
    assert!(got, "viewer got {} video frames", video.len());
    // The first picture is a keyframe with SPS and PPS in front.
    let first = &video[0].data;
    assert!(
        first.windows(SPS.len()).any(|w| w == SPS),
        "SPS before the first IDR"
    );
    assert!(
        first.windows(2).any(|w| w == [1, 0x65]),
        "the first frame is an IDR"
    );

    // Trickle: a candidate fragment is accepted; a bogus session is not.
    let frag = format!(
        "a=candidate:1 1 udp 2130706431 {} {} typ host\r\n",
        viewer.addr.ip(),
        viewer.addr.port()
    );
    let (status, _, _) = http_send(
        http,
        "PATCH",
        &whep_location,
        "application/trickle-ice-sdpfrag",
        frag.as_bytes(),
    )
    .await;
    assert_eq!(status, 204);
    // A flood of candidates: at most 20 per session in all.
    let flood: String = (0..40)
        .map(|i| {
            format!(
                "a=candidate:{i} 1 udp 2130706431 192.0.2.1 {} typ host\r\n",
                40000 + i
            )
        })
        .collect();
    let (status, _, body) = http_send(
        http,
        "PATCH",
        &whep_location,
        "application/trickle-ice-sdpfrag",
        flood.as_bytes(),
    )
    .await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = http_send(
        http,
        "PATCH",
        "/whep/live/w/999999",
        "application/trickle-ice-sdpfrag",
        frag.as_bytes(),
    )
    .await;
    assert_eq!(status, 404);

    // The API shows both sessions; DELETE ends them and the stream.
    let sessions = api(http, "/api/v1/webrtc/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        2,
        "{sessions}"
    );
    // A session's URL is a capability: 128 random bits, bound to its
    // stream. Neither the internal id (listed by the admin API) nor the
    // right id under another stream ends it, and the refusals look alike.
    for loc in [&whep_location, &whip_location] {
        let id = loc.rsplit('/').next().unwrap();
        assert_eq!(id.len(), 32, "{loc}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{loc}");
        let base = loc.trim_end_matches(id);
        let mut wrong: Vec<String> = sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let id = s["id"].as_str().unwrap_or("0");
                format!("{base}{}", id.trim_start_matches("rtc-"))
            })
            .collect();
        wrong.push(loc.replace("/live/w/", "/live/other/"));
        for w in &wrong {
            let (status, _, body) = http_send(http, "DELETE", w, "text/plain", b"").await;
            assert_eq!(status, 404, "{w}");
            assert!(
                String::from_utf8_lossy(&body).contains("no such session"),
                "{w}"
            );
        }
    }
    for loc in [&whep_location, &whip_location] {
        let (status, _, _) = http_send(http, "DELETE", loc, "text/plain", b"").await;
        assert_eq!(status, 200, "{loc}");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sessions = api(http, "/api/v1/webrtc/sessions").await;
        let gone = sessions["sessions"].as_array().unwrap().is_empty();
        let key = costream_hub::StreamKey::parse("live/w").unwrap();
        if gone && server.hub().stream(&key).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions and stream ended: {sessions}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_get_clear_4xx_and_sessions_do_not_leak() {
    // 200 sessions from this one address, below.
    let server = start_server(|c| c.rtc.max_sessions_per_ip = 1000).await;
    let http = server.http_addr;
    let (status, _, body) = http_send(
        http,
        "POST",
        "/whip/live/x",
        "application/sdp",
        b"hello, not SDP",
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = http_send(http, "POST", "/whip/live/x", "text/plain", b"v=0").await;
    assert_eq!(status, 415);
    let (_, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, body) = http_send(
        http,
        "POST",
        "/whep/live/nothing",
        "application/sdp",
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not live"));
    let (status, _, _) = http_send(
        http,
        "POST",
        "/whip/live/..",
        "application/sdp",
        offer.as_bytes(),
    )
    .await;
    assert!(matches!(status, 400 | 404), "{status}");
    // An offer with only codecs costream does not take.
    let pcmu_only = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\n";
    let (status, _, body) = http_send(
        http,
        "POST",
        "/whip/live/x",
        "application/sdp",
        pcmu_only.as_bytes(),
    )
    .await;
    assert!(
        matches!(status, 400 | 406),
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
    // Garbage on the UDP port is dropped.
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..200u32 {
        let data: Vec<u8> = (0..(i % 300 + 1))
            .map(|j| (j.wrapping_mul(2654435761) >> (i % 24)) as u8)
            .collect();
        junk.send_to(&data, server.rtc_addr.unwrap()).unwrap();
    }
    // 200 offers opened and deleted leave no session behind.
    let mut locations = Vec::new();
    for i in 0..200 {
        let (_, offer) = Peer::new(Direction::SendOnly);
        let (status, head, _) = http_send(
            http,
            "POST",
            &format!("/whip/live/s{i}"),
            "application/sdp",
            offer.as_bytes(),
        )
        .await;
        assert_eq!(status, 201);
        locations.push(header(&head, "location").unwrap().to_string());
    }
    for loc in &locations {
        let (status, _, _) = http_send(http, "DELETE", loc, "text/plain", b"").await;
        assert_eq!(status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sessions = api(http, "/api/v1/webrtc/sessions").await;
        if sessions["sessions"].as_array().unwrap().is_empty() && server.hub().streams().is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "sessions left: {sessions}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publishes `frames` video frames at 25 fps (`video(n)` makes frame n,
/// with its codec) and 20 ms Opus packets, pumping every peer meanwhile.
async fn publish_for(
    publisher: &mut Peer,
    others: &mut [&mut Peer],
    frames: u64,
    video: impl Fn(u64) -> (Codec, Vec<u8>),
) {
    publish_av(publisher, others, 0..frames, video, |i| {
        vec![0xfc, 0xff, 0xfe, (i % 250) as u8 + 1]
    })
    .await;
}

/// Like `publish_for` for video frames `frames`, with Opus packet i made by
/// `audio(i)` (packet i is at 20 ms x i).
async fn publish_av(
    publisher: &mut Peer,
    others: &mut [&mut Peer],
    frames: std::ops::Range<u64>,
    video: impl Fn(u64) -> (Codec, Vec<u8>),
    mut audio: impl FnMut(u64) -> Vec<u8>,
) {
    let t0 = *publisher
        .media_start
        .get_or_insert_with(|| Instant::now() - Duration::from_millis(40 * frames.start));
    for i in frames.start * 2..frames.end * 2 {
        let at = t0 + Duration::from_millis(20 * i);
        while Instant::now() < at {
            publisher.pump();
            for p in others.iter_mut() {
                p.pump();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if i % 2 == 0 {
            let n = i / 2;
            let (codec, data) = video(n);
            publisher.write(codec, n * 3600, &data);
        }
        publisher.write(Codec::Opus, i * 960, &audio(i));
    }
}

/// A WHIP publisher connected to `path`.
async fn whip_publisher(http: SocketAddr, path: &str) -> Peer {
    let (mut publisher, offer) = Peer::new(Direction::SendOnly);
    let (status, _, answer) = post_offer(http, path, &offer).await;
    assert_eq!(status, 201, "{answer}");
    publisher.accept_answer(&answer);
    assert!(
        pump_until(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected)
        .await
    );
    publisher
}

async fn post_offer(http: SocketAddr, path: &str, offer: &str) -> (u16, String, String) {
    let (status, head, body) =
        http_send(http, "POST", path, "application/sdp", offer.as_bytes()).await;
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_only_clients_publish_and_play() {
    let server = start().await;
    let http = server.http_addr;
    let tcp = server.rtc_tcp_addr.expect("ICE-TCP is on");

    // OPTIONS names costream's own STUN service as the ICE server.
    let (status, head, _) = http_send(http, "OPTIONS", "/whip/live/t", "text/plain", b"").await;
    assert!(matches!(status, 200 | 204), "{head}");
    let stun = format!("<stun:127.0.0.1:{}>", server.rtc_addr.unwrap().port());
    assert!(
        header(&head, "link").is_some_and(|l| l.starts_with(&stun) && l.contains("ice-server")),
        "{head}"
    );

    let (mut publisher, offer) = Peer::with(Direction::SendOnly, RtcConfig::new(), Some(tcp));
    let (status, head, answer) = post_offer(http, "/whip/live/t", &offer).await;
    assert_eq!(status, 201, "{answer}");
    assert!(header(&head, "link").is_some(), "201 carries Link: {head}");
    // UDP first, then the passive TCP candidate with a lower priority.
    let cands: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate"))
        .collect();
    assert_eq!(cands.len(), 2, "{answer}");
    assert!(cands[0].contains(" udp "), "{cands:?}");
    assert!(cands[1].contains(" tcp ") && cands[1].contains("tcptype passive"));
    let prio = |c: &str| c.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap();
    assert!(prio(cands[0]) > prio(cands[1]), "{cands:?}");
    publisher.accept_answer(&answer);
    assert!(
        pump_until(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected)
        .await,
        "WHIP over ICE-TCP connected"
    );
    publish_for(&mut publisher, &mut [], 10, |n| {
        (Codec::H264, access_unit(n.is_multiple_of(25), n as u8))
    })
    .await;

    let (mut viewer, offer) = Peer::with(Direction::RecvOnly, RtcConfig::new(), Some(tcp));
    let (status, _, answer) = post_offer(http, "/whep/live/t", &offer).await;
    assert_eq!(status, 201, "{answer}");
    viewer.accept_answer(&answer);
    publish_for(&mut publisher, &mut [&mut viewer], 75, |n| {
        (Codec::H264, access_unit(n.is_multiple_of(25), n as u8))
    })
    .await;
    let frames = viewer
        .media
        .iter()
        .filter(|m| m.mid == viewer.video)
        .count();
    assert!(viewer.connected, "WHEP over ICE-TCP connected");
    assert!(frames >= 20, "viewer got {frames} video frames over TCP");
    assert!(viewer.media.iter().any(|m| m.mid == viewer.audio));

    // The API shows both sessions on their TCP addresses.
    let sessions = api(http, "/api/v1/webrtc/sessions").await;
    let remotes: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["remote"].as_str())
        .collect();
    for addr in [publisher.addr, viewer.addr] {
        assert!(remotes.contains(&addr.to_string().as_str()), "{sessions}");
    }

    // The publisher leaves: the viewer is told (DTLS close) and no session
    // is left on the server.
    let loc = header(&head, "location").unwrap().to_string();
    let (status, _, _) = http_send(http, "DELETE", &loc, "text/plain", b"").await;
    assert_eq!(status, 200);
    assert!(
        pump_until(&mut [&mut viewer], Duration::from_secs(5), |p| !p[0]
            .rtc
            .is_alive())
        .await,
        "the viewer's session was closed by the server"
    );
    let sessions = api(http, "/api/v1/webrtc/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        0,
        "{sessions}"
    );
}

/// A VP8 frame: key frames carry the 640x480 header (RFC 6386 9.1).
fn vp8_frame(n: u64) -> (Codec, Vec<u8>) {
    let mut f = if n.is_multiple_of(25) {
        vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
    } else {
        vec![0x31, 0x02, 0x00]
    };
    f.extend((0..3000u32).map(|i| ((i * 13 + n as u32) % 251) as u8));
    (Codec::Vp8, f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_passes_through_with_twcc_and_sender_reports() {
    let server = start().await;
    let http = server.http_addr;
    let raw = || RtcConfig::new().enable_raw_packets(true);

    let (mut publisher, offer) = Peer::with(Direction::SendOnly, raw(), None);
    let (status, _, answer) = post_offer(http, "/whip/live/v", &offer).await;
    assert_eq!(status, 201, "{answer}");
    publisher.accept_answer(&answer);
    assert!(
        pump_until(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected)
        .await
    );
    publish_for(&mut publisher, &mut [], 10, vp8_frame).await;

    let info = api(http, "/api/v1/streams/live/v").await;
    let text = info.to_string();
    assert!(
        text.contains("\"vp8\"") && text.contains("640") && text.contains("480"),
        "{text}"
    );

    // A viewer that cannot take VP8 is told so.
    let h264_only = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false);
    let (_, offer) = Peer::with(Direction::RecvOnly, h264_only, None);
    let (status, _, body) = post_offer(http, "/whep/live/v", &offer).await;
    assert_eq!(status, 406, "{body}");
    assert!(body.contains("VP8"), "{body}");

    let (mut viewer, offer) = Peer::with(Direction::RecvOnly, raw(), None);
    let (status, _, answer) = post_offer(http, "/whep/live/v", &offer).await;
    assert_eq!(status, 201, "{answer}");
    viewer.accept_answer(&answer);
    publish_for(&mut publisher, &mut [&mut viewer], 75, vp8_frame).await;

    let video: Vec<&MediaData> = viewer
        .media
        .iter()
        .filter(|m| m.mid == viewer.video)
        .collect();
    assert!(video.len() >= 20, "viewer got {} VP8 frames", video.len());
    assert!(video.iter().all(|m| m.params.spec().codec == Codec::Vp8));
    // The first frame is a key frame, byte for byte what was published.
    let first = &video[0].data;
    assert_eq!(&first[3..6], &[0x9d, 0x01, 0x2a], "starts on a key frame");
    let n = first[10] as u64; // the first filler byte is n (n < 251)
    assert_eq!(&first[..], &vp8_frame(n).1[..], "passed through unchanged");
    // Congestion feedback to the publisher, sender reports to the viewer.
    assert!(
        publisher.twcc_received > 0,
        "TWCC feedback to the publisher"
    );
    assert!(viewer.sender_reports > 0, "sender reports to the viewer");
}

/// Opus packets of a continuous 440 Hz tone, 20 ms each.
fn tone_packets(seconds: u64) -> Vec<Vec<u8>> {
    let mut enc =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
    (0..seconds * 50)
        .map(|i| {
            let pcm: Vec<i16> = (0..960)
                .map(|j| {
                    let t = (i * 960 + j) as f64 / 48_000.0;
                    ((t * 440.0 * std::f64::consts::TAU).sin() * 12_000.0) as i16
                })
                .collect();
            enc.encode_vec(&pcm, 4000).unwrap()
        })
        .collect()
}

/// ffmpeg decodes the audio of `url` for `seconds`: mono 48 kHz samples.
async fn decode_audio(url: String, seconds: u32) -> Vec<i16> {
    let out = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-rw_timeout",
            "10000000",
            "-i",
        ])
        .arg(&url)
        .args([
            "-t",
            &seconds.to_string(),
            "-vn",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            "48000",
            "pipe:1",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(40), out)
        .await
        .expect("ffmpeg finishes")
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The strongest frequency between 100 Hz and 2 kHz (Goertzel, 1 Hz steps
/// around the coarse peak), and the RMS level.
fn dominant_frequency(samples: &[i16]) -> (f64, f64) {
    let x: Vec<f64> = samples.iter().map(|&s| s as f64 / 32768.0).collect();
    let power = |f: f64| {
        let w = std::f64::consts::TAU * f / 48_000.0;
        let c = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in &x {
            let s0 = v + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        s1 * s1 + s2 * s2 - c * s1 * s2
    };
    let best = |from: f64, to: f64, step: f64| {
        let mut f = from;
        let (mut bf, mut bp) = (from, 0.0);
        while f <= to {
            let p = power(f);
            if p > bp {
                (bf, bp) = (f, p);
            }
            f += step;
        }
        bf
    };
    let coarse = best(100.0, 2000.0, 10.0);
    let fine = best(coarse - 10.0, coarse + 10.0, 0.5);
    let rms = (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt();
    (fine, rms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_tone_plays_over_flv_rtmp_and_hls_as_aac() {
    let server = start_server(|c| c.hls.segment_duration = Duration::from_secs(1)).await;
    let http = server.http_addr;
    let tone = tone_packets(30);
    let (mut publisher, offer) = Peer::new(Direction::SendOnly);
    let (status, head, answer) = post_offer(http, "/whip/live/tone", &offer).await;
    assert_eq!(status, 201, "{answer}");
    let whip_location = header(&head, "location").unwrap().to_string();
    publisher.accept_answer(&answer);
    assert!(
        pump_until(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected)
        .await
    );
    let video = |n: u64| (Codec::H264, access_unit(n.is_multiple_of(25), n as u8));
    let audio = |i: u64| tone[(i as usize) % tone.len()].clone();
    publish_av(&mut publisher, &mut [], 0..25, video, audio).await;
    // No one consumes AAC yet (HLS included): no transcoder runs.
    let bridges = api(http, "/api/v1/bridges").await;
    assert_eq!(bridges["bridges"].as_array().unwrap().len(), 0, "{bridges}");

    // Three players at once, plus packet timestamps for the A/V skew.
    let flv = format!("http://{http}/live/tone.flv");
    let rtmp = format!("rtmp://{}/live/tone", server.rtmp_addr);
    let hls = format!("http://{http}/live/tone.m3u8");
    let players = tokio::spawn(async move {
        let (a, b, c) = tokio::join!(
            decode_audio(flv.clone(), 3),
            decode_audio(rtmp, 3),
            decode_audio(hls, 2)
        );
        let packets = ffprobe(&flv, &["-show_packets", "-read_intervals", "%+4"]).await;
        (a, b, c, packets)
    });
    let mut frame = 25;
    while !players.is_finished() {
        assert!(frame < 25 * 40, "the players did not finish in 40 s");
        publish_av(&mut publisher, &mut [], frame..frame + 5, video, audio).await;
        frame += 5;
    }
    let (flv_pcm, rtmp_pcm, hls_pcm, packets) = players.await.unwrap();
    for (name, pcm) in [
        ("HTTP-FLV", &flv_pcm),
        ("RTMP", &rtmp_pcm),
        ("HLS", &hls_pcm),
    ] {
        assert!(pcm.len() >= 48_000, "{name}: only {} samples", pcm.len());
        let (freq, rms) = dominant_frequency(&pcm[pcm.len() / 4..]);
        assert!(
            (freq - 440.0).abs() <= 440.0 * 0.02,
            "{name}: dominant frequency {freq} Hz, sent 440 Hz"
        );
        assert!(rms > 0.05, "{name}: RMS {rms}");
    }

    // Both tracks are there, AAC and H.264, and stay together: each video
    // packet's timestamp is near that of the audio just before it.
    let packets = packets["packets"].as_array().expect("packets").clone();
    let mut last_audio: Option<f64> = None;
    let mut skews = Vec::new();
    let mut codecs = std::collections::BTreeSet::new();
    for p in &packets {
        let t: f64 = p["pts_time"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        match p["codec_type"].as_str() {
            Some("audio") => last_audio = Some(t),
            Some("video") => {
                if let Some(a) = last_audio {
                    skews.push((t - a) * 1000.0);
                }
            }
            _ => {}
        }
        codecs.insert(p["codec_type"].as_str().unwrap_or("").to_string());
    }
    assert!(
        codecs.contains("audio") && codecs.contains("video"),
        "{codecs:?}"
    );
    skews.sort_by(|a, b| a.total_cmp(b));
    assert!(
        skews.len() > 20,
        "{} video packets after audio",
        skews.len()
    );
    let median = skews[skews.len() / 2];
    let order: Vec<String> = packets
        .iter()
        .step_by(7)
        .map(|p| {
            let kind = p["codec_type"].as_str().unwrap_or("?");
            format!("{}{}", &kind[..1], p["pts_time"].as_str().unwrap_or("?"))
        })
        .collect();
    assert!(
        median.abs() < 100.0,
        "A/V skew {median} ms (median of {}): {order:?}",
        skews.len()
    );
    // H.264 and AAC on each of the three protocols.
    let urls = [
        format!("http://{http}/live/tone.flv"),
        format!("rtmp://{}/live/tone", server.rtmp_addr),
        format!("http://{http}/live/tone.m3u8"),
    ];
    let probes = async {
        tokio::join!(
            ffprobe(&urls[0], &["-show_streams"]),
            ffprobe(&urls[1], &["-show_streams"]),
            ffprobe(&urls[2], &["-show_streams"])
        )
    };
    let publishing = publish_av(&mut publisher, &mut [], frame..frame + 150, video, audio);
    let ((a, b, c), ()) = tokio::join!(probes, publishing);
    for (url, streams) in urls.iter().zip([a, b, c]) {
        let names: Vec<&str> = streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["codec_name"].as_str())
            .collect();
        assert!(
            names.contains(&"h264") && names.contains(&"aac"),
            "{url}: {names:?}"
        );
    }

    // One bridge served them all; it stops when the stream ends.
    let bridges = api(http, "/api/v1/bridges").await;
    assert_eq!(bridges["bridges"][0]["audio"], "aac", "{bridges}");
    assert_eq!(bridges["bridges"].as_array().unwrap().len(), 1, "{bridges}");
    let (status, _, _) = http_send(http, "DELETE", &whip_location, "text/plain", b"").await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let bridges = api(http, "/api/v1/bridges").await;
        if bridges["bridges"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "bridge left: {bridges}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_b_frames_reach_whep_viewers_reencoded_in_order() {
    use openh264::formats::YUVSource;
    let server = start_server(|c| c.hub.reconnect_grace = Duration::from_millis(500)).await;
    let http = server.http_addr;
    let mut ffmpeg = ffmpeg_push(
        &rtmp_url(&server, "live/bf"),
        &["-profile:v", "high", "-bf", "2"],
    );
    wait_for_stream(&server, "live/bf").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = api(http, "/api/v1/streams/live/bf").await;
        if info["video"]["b_frames"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg sends no B-frames: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (mut viewer, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, answer) = post_offer(http, "/whep/live/bf", &offer).await;
    assert_eq!(status, 201, "{answer}");
    viewer.accept_answer(&answer);
    let got = pump_until(&mut [&mut viewer], Duration::from_secs(15), |p| {
        p[0].media.iter().filter(|m| m.mid == p[0].video).count() >= 75
    })
    .await;
    let video: Vec<&MediaData> = viewer
        .media
        .iter()
        .filter(|m| m.mid == viewer.video)
        .collect();
    assert!(got, "viewer got {} video frames", video.len());

    // In presentation order (RTP time only goes up), and every frame
    // decodes: what a browser's decoder, which takes no B-frames, needs.
    for w in video.windows(2) {
        assert!(
            w[1].time > w[0].time,
            "RTP time went back: {:?} -> {:?}",
            w[0].time,
            w[1].time
        );
    }
    let mut decoder = openh264::decoder::Decoder::new().unwrap();
    let mut pictures = 0;
    for (i, m) in video.iter().enumerate() {
        match decoder.decode(&m.data) {
            Ok(Some(yuv)) => {
                assert_eq!(yuv.dimensions(), (640, 360), "frame {i}");
                pictures += 1;
            }
            Ok(None) => {}
            Err(e) => panic!("frame {i} of {} does not decode: {e}", video.len()),
        }
    }
    assert!(
        pictures + 2 >= video.len(),
        "{pictures} pictures from {} frames",
        video.len()
    );

    let bridges = api(http, "/api/v1/bridges").await;
    assert_eq!(bridges["bridges"][0]["video"], "reencoded", "{bridges}");
    assert_eq!(bridges["bridges"][0]["audio"], "opus", "{bridges}");

    // The publisher leaves: the viewer's session is closed, the bridge stops.
    ffmpeg.kill().await.unwrap();
    assert!(
        pump_until(&mut [&mut viewer], Duration::from_secs(8), |p| !p[0]
            .rtc
            .is_alive())
        .await,
        "the WHEP viewer was told the stream ended"
    );
    let bridges = api(http, "/api/v1/bridges").await;
    assert_eq!(bridges["bridges"].as_array().unwrap().len(), 0, "{bridges}");
    let sessions = api(http, "/api/v1/webrtc/sessions").await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        0,
        "{sessions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_video_loss_waits_for_a_keyframe_and_asks_for_one() {
    let server = start().await;
    let http = server.http_addr;
    let mut publisher = whip_publisher(http, "/whip/live/loss").await;
    // Keyframes every 50 frames (2 s).
    let video = |n: u64| (Codec::H264, access_unit(n.is_multiple_of(50), n as u8));
    publish_for(&mut publisher, &mut [], 10, video).await;
    let key = costream_hub::StreamKey::parse("live/loss").unwrap();
    let frames_in = || server.hub().stream(&key).unwrap().stats.frames_in();
    assert_eq!(publisher.keyframe_requests, 0);

    // Lose two packets of frame 10 for good; NACKs cannot bring them back.
    publisher.drop_video = 2;
    let mut frame = 10;
    while publisher.keyframe_requests == 0 && frame < 45 {
        publish_av(&mut publisher, &mut [], frame..frame + 1, video, |i| {
            vec![0xfc, 0xff, 0xfe, (i % 250) as u8 + 1]
        })
        .await;
        frame += 1;
    }
    assert!(
        publisher.keyframe_requests > 0,
        "no keyframe request within {} frames of the loss",
        frame - 10
    );
    // Until the next keyframe (frame 50) no video reaches the hub; audio does.
    let before = frames_in();
    publish_for_range(&mut publisher, frame..48, video).await;
    let audio_only = frames_in() - before;
    assert!(
        audio_only <= 2 * (48 - frame) + 2,
        "{audio_only} frames in while waiting for a keyframe ({} audio packets sent)",
        2 * (48 - frame)
    );
    let before = frames_in();
    publish_for_range(&mut publisher, 48..60, video).await;
    assert!(
        frames_in() - before >= 2 * 12 + 8,
        "video flows again after the keyframe: {} frames",
        frames_in() - before
    );
}

async fn publish_for_range(
    publisher: &mut Peer,
    frames: std::ops::Range<u64>,
    video: impl Fn(u64) -> (Codec, Vec<u8>),
) {
    publish_av(publisher, &mut [], frames, video, |i| {
        vec![0xfc, 0xff, 0xfe, (i % 250) as u8 + 1]
    })
    .await;
}

/// GET an API path as JSON.
async fn api(http: SocketAddr, path: &str) -> serde_json::Value {
    let (_, body) = admin_get(http, path).await;
    serde_json::from_slice(&body).unwrap()
}

/// A mix replacing a WHIP-published stream speaks its language: its sound
/// is Opus, so WHEP viewers' sessions go on as they are (RTMP, HTTP-FLV and
/// HLS viewers get AAC from the stream's bridge, as before). Stopped, the
/// stream is the publisher's own again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_replacing_a_whip_stream_sounds_opus() {
    let server = start().await;
    let mut publisher = whip_publisher(server.http_addr, "/whip/live/w").await;
    let video = |n: u64| (Codec::H264, access_unit(n.is_multiple_of(25), n as u8));
    publish_for_range(&mut publisher, 0..25, video).await;
    let key = costream_hub::StreamKey::parse("live/w").unwrap();
    let now = |server: &costream::server::Server| {
        let info = server.hub().stream(&key).unwrap().info();
        (info.video.map(|v| v.width), info.audio.map(|a| a.codec))
    };
    assert_eq!(now(&server), (Some(640), Some(AudioCodec::Opus)));

    let mixes = costream::mix::Mixes::new(server.hub().clone());
    let spec = serde_json::from_str(
        r#"{"inputs":["live/w"],"replace":"live/w","width":480,"height":360,"fps":15}"#,
    )
    .unwrap();
    let id = mixes.create(spec).unwrap();
    // The first composite waits (up to 1.5 s) for the input's first
    // picture, which these synthetic frames never decode to.
    let mut n = 25;
    while now(&server) != (Some(480), Some(AudioCodec::Opus)) {
        assert!(n < 25 * 5, "no switch to the mix: {:?}", now(&server));
        publish_for_range(&mut publisher, n..n + 25, video).await;
        n += 25;
    }
    let own = costream_hub::own_feed(&key);
    assert!(
        server.hub().stream(&own).is_some(),
        "the publisher's own feed"
    );

    assert!(mixes.stop(&id));
    publish_for_range(&mut publisher, n..n + 30, video).await;
    assert_eq!(now(&server), (Some(640), Some(AudioCodec::Opus)));
    assert!(server.hub().stream(&own).is_none());
}

/// One address may hold at most `rtc.max_sessions_per_ip` WHIP/WHEP
/// sessions (429 beyond, counted); ending one makes room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_a_bounded_number_of_sessions() {
    let server = start_server(|c| c.rtc.max_sessions_per_ip = 2).await;
    let http = server.http_addr;
    let _publisher = whip_publisher(http, "/whip/live/cap").await;
    let (_viewer, offer) = Peer::new(Direction::RecvOnly);
    let (status, head, answer) = post_offer(http, "/whep/live/cap", &offer).await;
    assert_eq!(status, 201, "{answer}");
    let location = header(&head, "location").expect("Location").to_owned();
    let (_, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, body) = post_offer(http, "/whep/live/cap", &offer).await;
    assert_eq!(status, 429, "{body}");
    let (_, metrics) = admin_get(http, "/metrics").await;
    assert!(
        String::from_utf8_lossy(&metrics).contains("reason=\"sessions_per_ip\""),
        "counted"
    );
    let (status, _, _) = http_send(http, "DELETE", &location, "text/plain", b"").await;
    assert_eq!(status, 200);
    let (_, offer) = Peer::new(Direction::RecvOnly);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = post_offer(http, "/whep/live/cap", &offer).await;
        if status == 201 {
            break;
        }
        // The ended session's URL goes when its end is processed.
        assert_eq!(status, 429, "{body}");
        assert!(Instant::now() < deadline, "no room after a DELETE");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WHEP viewer of an AAC stream needs a transcoding bridge; one whose
/// offer is refused never starts one (it used to start before the offer
/// was read, and ran for seconds after).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_whep_offer_starts_no_bridge() {
    let server = start().await;
    let http = server.http_addr;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/aac"), &[]);
    wait_for_stream(&server, "live/aac").await;
    let bridges = || async {
        api(http, "/api/v1/bridges").await["bridges"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let (status, _, body) = post_offer(http, "/whep/live/aac", "v=0\r\nnot an offer\r\n").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(bridges().await, 0, "a bridge for a refused offer");
    // A good offer starts one.
    let (_viewer, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, body) = post_offer(http, "/whep/live/aac", &offer).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(bridges().await, 1);
}

/// Transcoding is capped: a stream with B-frames above
/// `transcode.max_reencode_resolution` (240 here, the source is 360p) is
/// not re-encoded for a WHEP viewer (503 naming the setting), and past
/// `transcode.max_bridges` (1 here) a viewer needing another bridge gets a
/// 503 too; both counted. The viewer of the first bridge is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcoding_is_capped_in_resolution_and_number() {
    let server = start_server(|c| {
        c.transcode.max_bridges = 1;
        c.transcode.max_reencode_resolution = 240;
    })
    .await;
    let http = server.http_addr;
    let _bf = ffmpeg_push(
        &rtmp_url(&server, "live/bf"),
        &["-profile:v", "high", "-bf", "2"],
    );
    let _a = ffmpeg_push(&rtmp_url(&server, "live/a"), &[]);
    let _b = ffmpeg_push(&rtmp_url(&server, "live/b"), &[]);
    for key in ["live/bf", "live/a", "live/b"] {
        wait_for_stream(&server, key).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while api(http, "/api/v1/streams/live/bf").await["video"]["b_frames"] != true {
        assert!(Instant::now() < deadline, "ffmpeg sends no B-frames");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, body) = post_offer(http, "/whep/live/bf", &offer).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("transcode.max_reencode_resolution"), "{body}");

    // AAC streams need an Opus bridge each: the first runs, the second is refused.
    let (mut viewer, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, answer) = post_offer(http, "/whep/live/a", &offer).await;
    assert_eq!(status, 201, "{answer}");
    viewer.accept_answer(&answer);
    let (_, offer) = Peer::new(Direction::RecvOnly);
    let (status, _, body) = post_offer(http, "/whep/live/b", &offer).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("transcode.max_bridges"), "{body}");
    let got = pump_until(&mut [&mut viewer], Duration::from_secs(10), |p| {
        p[0].media.iter().filter(|m| m.mid == p[0].video).count() >= 25
    })
    .await;
    assert!(got, "the first bridge's viewer got no video");
    let (_, metrics) = admin_get(http, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("reason=\"reencode_resolution\""),
        "counted"
    );
    assert!(metrics.contains("reason=\"bridge_limit\""), "counted");
}
