//! Hostile clients against a real server, over sockets: each is refused
//! (a close, a status, a counter) while a well-behaved HTTP-FLV viewer of
//! a live ffmpeg push on the same server keeps real-time pace throughout.
//! Attackers connect from 127.0.0.2, the viewer from 127.0.0.1, so the caps
//! per client address fall on the attacker alone.
//! (Other hostile clients are tested where their defence lives: signaling
//! floods and host scope in rooms.rs, candidate floods and session caps in
//! webrtc.rs, unauthenticated control calls in live.rs, room feeds without
//! a token in play_auth.rs.)

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
    fn kept_pace(&self) {
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
    calm.kept_pace();
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
    calm.kept_pace();
}
