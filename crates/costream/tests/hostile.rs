//! Hostile clients against a real server, over sockets: each is refused
//! (a close, a status, a counter) while a well-behaved HTTP-FLV viewer of
//! a live ffmpeg push on the same server keeps real-time pace throughout.
//! Attackers connect from 127.0.0.2, the viewer from 127.0.0.1, so the caps
//! per client address fall on the attacker alone.
//! (Signaling floods and host scope are tested in rooms.rs, where a calm
//! participant is answered throughout; every play and publish policy over
//! every protocol in play_auth.rs; TLS handshakes that trickle in tls.rs.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection from 127.0.0.2 (another client address than the
/// viewer's).
async fn connect_from_other_address(to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// The video timestamps (ms) a viewer received, with when.
type Received = Arc<Mutex<Vec<(Instant, u32)>>>;

/// The well-behaved viewer: an ffmpeg push of `live/calm` and an HTTP-FLV
/// viewer of it from 127.0.0.1, reading until dropped.
struct CalmViewer {
    received: Received,
    since: Instant,
    _push: tokio::process::Child,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for CalmViewer {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl CalmViewer {
    async fn start(server: &costream::server::Server) -> CalmViewer {
        let push = ffmpeg_push(&rtmp_url(server, "live/calm"), &[]);
        wait_for_stream(server, "live/calm").await;
        let mut viewer = FlvViewer::connect(server.http_addr, "/live/calm.flv").await;
        let received: Received = Arc::default();
        let log = received.clone();
        let reader = tokio::spawn(async move {
            while let Some(tag) = viewer.next_tag().await {
                if tag.tag_type == 9 {
                    log.lock().push((Instant::now(), tag.timestamp));
                }
            }
        });
        CalmViewer {
            received,
            since: Instant::now(),
            _push: push,
            reader,
        }
    }

    /// It kept pace since it started: its media time advanced at least
    /// 80 % of the wall-clock time, with no silence longer than a second.
    /// Watched until a second past the call, so that a stall the attacks
    /// caused at their end shows too.
    async fn kept_pace(&self) {
        let until = Instant::now() + Duration::from_secs(1);
        let deadline = until + Duration::from_secs(5);
        while self
            .received
            .lock()
            .last()
            .is_none_or(|(at, _)| *at < until)
        {
            assert!(
                Instant::now() < deadline,
                "the calm viewer got nothing after the attacks"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        kept_pace(&self.received, self.since);
    }
}

fn kept_pace(received: &Received, since: Instant) {
    let r = received.lock();
    let during: Vec<&(Instant, u32)> = r.iter().filter(|(at, _)| *at >= since).collect();
    let (first, last) = (
        during.first().expect("frames"),
        during.last().expect("frames"),
    );
    let wall = last.0.duration_since(since).as_secs_f64();
    let media = f64::from(last.1 - first.1) / 1000.0;
    assert!(
        media >= 0.8 * wall - 0.2,
        "media {media:.2} s in {wall:.2} s"
    );
    let gap = during
        .windows(2)
        .map(|w| w[1].0.duration_since(w[0].0))
        .max()
        .unwrap_or_default();
    assert!(gap < Duration::from_secs(1), "the viewer stalled {gap:?}");
}

async fn metrics_text(http: SocketAddr) -> String {
    String::from_utf8_lossy(&admin_get(http, "/metrics").await.1).into_owned()
}

/// Waits until the peer closes `s` (read gives 0 or an error); how long.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while t.elapsed() < limit {
        match tokio::time::timeout(limit - t.elapsed(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A slowloris client trickles its request head a header every 200 ms, and
/// an RTMP client its handshake a byte every 200 ms: each is cut off at its
/// deadline (1 s here), whatever it sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_are_cut_off_at_their_deadline() {
    let server = start_server(|c| {
        c.http.head_timeout = Duration::from_secs(1);
        c.rtmp.setup_timeout = Duration::from_secs(1);
    })
    .await;
    let http = server.http_addr;
    let calm = CalmViewer::start(&server).await;

    let mut slow = connect_from_other_address(http).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rtmp = connect_from_other_address(server.rtmp_addr).await;
    rtmp.write_all(&[3]).await.unwrap(); // C0
    let trickle = tokio::spawn(async move {
        let t = Instant::now();
        let (mut http_open, mut rtmp_open) = (true, true);
        while t.elapsed() < Duration::from_secs(4) && (http_open || rtmp_open) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            http_open = http_open && slow.write_all(b"X-Slow: 1\r\n").await.is_ok();
            rtmp_open = rtmp_open && rtmp.write_all(&[7]).await.is_ok();
        }
        (slow, rtmp)
    });
    let (mut slow, mut rtmp) = trickle.await.unwrap();
    for (name, s) in [("slowloris", &mut slow), ("rtmp", &mut rtmp)] {
        let closed = closed_after(s, Duration::from_secs(3)).await;
        assert!(
            closed.is_some(),
            "{name} still open after trickling for 4 s"
        );
    }
    let metrics = metrics_text(http).await;
    assert!(metrics.contains("reason=\"head_timeout\""), "counted");
    assert!(metrics.contains("reason=\"setup_timeout\""), "counted");
    calm.kept_pace().await;
}

/// One address may hold a bounded number of connections: beyond it, each
/// new one is closed at accept and counted, and a place comes back when a
/// connection ends. Other addresses are not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_a_bounded_number_of_connections() {
    let server = start_server(|c| {
        c.http.max_connections_per_ip = 5;
        c.rtmp.max_connections_per_ip = 5;
    })
    .await;
    let http = server.http_addr;
    let calm = CalmViewer::start(&server).await;

    for to in [http, server.rtmp_addr] {
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(connect_from_other_address(to).await);
        }
        let mut over = connect_from_other_address(to).await;
        let closed = closed_after(&mut over, Duration::from_secs(2)).await;
        assert!(closed.is_some(), "the 6th connection to {to} stayed open");
        drop(held.pop());
        // The place comes back once the server sees the close.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut again = connect_from_other_address(to).await;
            if closed_after(&mut again, Duration::from_millis(300))
                .await
                .is_none()
            {
                break; // held open: admitted
            }
            assert!(Instant::now() < deadline, "no place came back on {to}");
        }
    }
    let metrics = metrics_text(http).await;
    assert!(metrics.contains("reason=\"connections_per_ip\""), "counted");
    calm.kept_pace().await;
}

/// The value of `costream_refused_total` for one reason (0 when absent).
fn refused(metrics: &str, reason: &str) -> u64 {
    let needle = format!("reason=\"{reason}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("costream_refused_total") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// An FLV video tag body: AVC, keyframe, `kind` 0 (sequence header) or 1
/// (NAL units), no composition offset.
fn avc_tag(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut tag = vec![0x17, kind, 0, 0, 0];
    tag.extend_from_slice(body);
    tag
}

/// A publisher whose frame is over `hub.max_frame_bytes` (256 KiB here) is
/// cut off at that frame, and one whose RTMP message is over
/// `rtmp.max_message_size` (1 MiB) at the message's header: each close is
/// counted as `frame_too_large`, each stream ends at once, and the calm
/// viewer kept pace throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_of_oversized_frames_are_cut_off() {
    let server = start_server(|c| {
        c.hub.max_frame_bytes = 256 << 10;
        c.hub.max_gop_bytes = 4 << 20;
        c.rtmp.max_message_size = 1 << 20;
    })
    .await;
    let calm = CalmViewer::start(&server).await;
    let before = refused(&metrics_text(server.http_addr).await, "frame_too_large");
    for (name, size) in [("big", 512 << 10), ("huge", 2 << 20)] {
        let mut c = RtmpClient::connect(server.rtmp_addr, "live").await;
        c.session.create_stream_and_publish(name);
        c.wait_for(|e| matches!(e, costream_rtmp::ClientEvent::Publishing))
            .await
            .expect("publishing");
        let key = costream_hub::StreamKey::parse(&format!("live/{name}")).unwrap();
        assert!(server.hub().stream(&key).is_some());
        let record = [1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 0, 1, 0, 0];
        c.session.send_video(0, &avc_tag(0, &record)).unwrap();
        let mut nal = ((size - 4) as u32).to_be_bytes().to_vec();
        nal.resize(size, 0x65);
        c.session.send_video(0, &avc_tag(1, &nal)).unwrap();
        // The server may close while this is still being written.
        let out = c.session.take_output();
        let _ = c.socket.write_all(&out).await;
        let closed = closed_after(&mut c.socket, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "{name}: the publisher stayed connected");
        let deadline = Instant::now() + Duration::from_secs(2);
        while server.hub().stream(&key).is_some() {
            assert!(Instant::now() < deadline, "{name}: its stream did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after = refused(&metrics_text(server.http_addr).await, "frame_too_large");
    assert_eq!(after - before, 2, "both counted");
    // The calm stream's frames are metered, within its budget.
    let (_, body) = admin_get(server.http_addr, "/api/v1/streams/live/calm").await;
    let info: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let held = info["memory_bytes"].as_u64().unwrap();
    assert!(held > 0 && held < 128 << 20, "{info}");
    calm.kept_pace().await;
}

/// An RTMP player that never reads (a tiny receive window, then silence)
/// is dropped once a write has waited `rtmp.write_timeout` (1 s here), and
/// counted; the publisher and the calm viewer never notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_player_that_never_reads_is_dropped() {
    let server = start_server(|c| {
        c.rtmp.write_timeout = Duration::from_secs(1);
        c.hub.viewer_send_buffer = 16 << 10;
    })
    .await;
    let calm = CalmViewer::start(&server).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut stuck = socket.connect(server.rtmp_addr).await.unwrap();
    let mut session = costream_rtmp::ClientSession::new(costream_rtmp::ClientConfig {
        app: "live".into(),
        tc_url: format!("rtmp://{}/live", server.rtmp_addr),
        chunk_size: 4096,
    });
    session.create_stream_and_play("calm");
    // Read only until the first picture arrives, then never again.
    let mut buf = bytes::BytesMut::with_capacity(4096);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let out = session.take_output();
            stuck.write_all(&out).await.unwrap();
            while let Some(ev) = session.poll_event() {
                if matches!(ev, costream_rtmp::ClientEvent::Video { .. }) {
                    return;
                }
            }
            assert!(stuck.read_buf(&mut buf).await.unwrap() > 0);
            session.feed(&mut buf).unwrap();
        }
    })
    .await
    .expect("the stuck player got a picture first");
    let key = costream_hub::StreamKey::parse("live/calm").unwrap();
    let stream = server.hub().stream(&key).unwrap();
    let rtmp_viewers = || stream.stats.viewers(costream_hub::Protocol::Rtmp);
    assert_eq!(rtmp_viewers(), 1);
    let t = Instant::now();
    while rtmp_viewers() > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the player that never reads is still served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = metrics_text(server.http_addr).await;
    assert!(refused(&metrics, "write_timeout") >= 1, "counted");
    calm.kept_pace().await;
    drop(stuck);
}

/// A POST of `body` from 127.0.0.2; the status.
async fn post_from_other_address(http: SocketAddr, path: &str, body: &str) -> u16 {
    request_from_other_address(http, "POST", path, "application/sdp", body.as_bytes())
        .await
        .0
}

/// A WHEP offer (receive audio and video) made by str0m.
fn whep_offer() -> String {
    offer(str0m::media::Direction::RecvOnly)
}

/// An offer of audio and video in `direction`, made by str0m.
fn offer(direction: str0m::media::Direction) -> String {
    let mut rtc = str0m::Rtc::new(Instant::now());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    rtc.add_local_candidate(str0m::Candidate::host(socket.local_addr().unwrap(), "udp").unwrap());
    let mut api = rtc.sdp_api();
    api.add_media(str0m::media::MediaKind::Video, direction, None, None, None);
    api.add_media(str0m::media::MediaKind::Audio, direction, None, None, None);
    let (offer, _) = api.apply().unwrap();
    offer.to_sdp_string()
}

/// A flood of WHEP offers from one address: the first
/// `rtc.max_sessions_per_ip` (10 here) get sessions, every other one 429,
/// counted; none of them connects, so each session ends at
/// `rtc.connect_timeout` and the address may offer again. The calm viewer
/// kept pace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_whep_offers_from_one_address_is_capped() {
    let server = start_server(|c| {
        c.rtc.max_sessions_per_ip = 10;
        c.rtc.connect_timeout = Duration::from_secs(5);
    })
    .await;
    let http = server.http_addr;
    let calm = CalmViewer::start(&server).await;
    let offer = whep_offer();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for _ in 0..200 {
        *statuses
            .entry(post_from_other_address(http, "/whep/live/calm", &offer).await)
            .or_default() += 1;
    }
    assert_eq!(
        statuses,
        [(201, 10), (429, 190)].into_iter().collect(),
        "statuses"
    );
    let metrics = metrics_text(http).await;
    assert!(refused(&metrics, "sessions_per_ip") >= 190, "counted");
    // The unconnected sessions end; the address has room again.
    let t = Instant::now();
    loop {
        match post_from_other_address(http, "/whep/live/calm", &offer).await {
            201 => break,
            429 => {}
            other => panic!("status {other}"),
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no room after the connect deadline"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    calm.kept_pace().await;
}

/// ICE-TCP: a connection whose first packet is not STUN is closed at once,
/// and one that never completes a packet at `rtc.connect_timeout` (1 s
/// here); both counted, before anything reaches the WebRTC task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_junk_is_dropped_at_the_door() {
    let server = start_server(|c| c.rtc.connect_timeout = Duration::from_secs(1)).await;
    let tcp = server.rtc_tcp_addr.expect("ICE-TCP is on");
    let calm = CalmViewer::start(&server).await;
    let mut junk = connect_from_other_address(tcp).await;
    junk.write_all(&[0, 4, b'j', b'u', b'n', b'k'])
        .await
        .unwrap();
    let closed = closed_after(&mut junk, Duration::from_secs(1)).await;
    assert!(closed.is_some(), "a junk packet was let through");
    // An HTTP request reads as a frame of 18 KB that never completes.
    let mut http = connect_from_other_address(tcp).await;
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = closed_after(&mut http, Duration::from_secs(4)).await;
    let after = closed.expect("an unfinished frame held the connection");
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    let metrics = metrics_text(server.http_addr).await;
    assert!(refused(&metrics, "junk") >= 1, "junk counted");
    assert!(
        refused(&metrics, "connect_timeout") >= 1,
        "deadline counted"
    );
    calm.kept_pace().await;
}

/// A request from 127.0.0.2: (status, body).
async fn request_from_other_address(
    http: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String) {
    let mut s = connect_from_other_address(http).await;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before taking a body it refuses.
    let _ = s.write_all(body).await;
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Control-plane abuse on one server while the calm viewer watches: an
/// unauthenticated DELETE of its stream (401, the stream stays), a room
/// feed played without a token (401), and 40,000 trickled candidates for
/// one WHEP session, in one PATCH (refused whole) and one at a time (20
/// taken, then 429, counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_abuse_is_refused() {
    let server = start_server(|_| {}).await;
    let http = server.http_addr;
    let calm = CalmViewer::start(&server).await;

    let (status, _) = request_from_other_address(
        http,
        "DELETE",
        "/api/v1/streams/live/calm",
        "text/plain",
        b"",
    )
    .await;
    assert_eq!(status, 401, "anonymous DELETE");
    let (status, body) =
        request_from_other_address(http, "GET", "/room.r1/alice.flv", "text/plain", b"").await;
    assert_eq!(status, 401, "room feed without a token: {body}");

    let offer = whep_offer();
    let (status, answer) = request_from_other_address(
        http,
        "POST",
        "/whep/live/calm",
        "application/sdp",
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let location = answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        })
        .expect("Location");
    let candidate = |i: u32| {
        format!(
            "a=candidate:{i} 1 udp 2130706431 192.0.2.1 {} typ host\r\n",
            10000 + i % 50000
        )
    };
    let flood: String = (0..40_000).map(candidate).collect();
    let trickle = "application/trickle-ice-sdpfrag";
    let (status, _) =
        request_from_other_address(http, "PATCH", &location, trickle, flood.as_bytes()).await;
    assert!(matches!(status, 413 | 429), "40,000 candidates: {status}");
    let mut taken = 0;
    for i in 0..100 {
        let (status, body) =
            request_from_other_address(http, "PATCH", &location, trickle, candidate(i).as_bytes())
                .await;
        match status {
            204 => taken += 1,
            429 => {}
            other => panic!("PATCH {i}: {other} {body}"),
        }
    }
    assert_eq!(taken, 20, "candidates taken one at a time");
    let metrics = metrics_text(http).await;
    assert!(refused(&metrics, "too_many_candidates") >= 80, "counted");
    assert!(server
        .hub()
        .stream(&costream_hub::StreamKey::parse("live/calm").unwrap())
        .is_some());
    calm.kept_pace().await;
}

/// A WHIP offer that never connects holds no stream: an RTMP publisher of
/// the same key is accepted right after it, and a WHIP offer for a stream
/// already live is refused (409).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_offer_that_never_connects_holds_no_stream() {
    let server = start_server(|_| {}).await;
    let http = server.http_addr;
    let whip = offer(str0m::media::Direction::SendOnly);
    let post = || post_from_other_address(http, "/whip/live/squat", &whip);
    assert_eq!(post().await, 201);
    let key = costream_hub::StreamKey::parse("live/squat").unwrap();
    assert!(
        server.hub().stream(&key).is_none(),
        "taken before connecting"
    );
    let _push = ffmpeg_push(&rtmp_url(&server, "live/squat"), &[]);
    wait_for_stream(&server, "live/squat").await;
    assert_eq!(
        server
            .hub()
            .stream(&key)
            .and_then(|s| s.snapshot().publisher),
        Some(costream_hub::Protocol::Rtmp)
    );
    assert_eq!(post().await, 409);
}
