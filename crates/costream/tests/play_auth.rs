//! Who may play: room feeds only with a room token of a current member
//! (or an admin credential), live streams with signed play URLs
//! (`[auth] play_secret`) or an HTTP callback (`[auth] on_play`,
//! `on_publish`), over RTMP, HTTP-FLV, HLS and WHEP alike.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use costream::access::Role;
use costream::bench::rtc_client::{RtcClientFactory, RtcPeer};
use costream::room::client::RoomClient;
use costream::server::Server;
use costream_hub::{Frame, FrameKind, Protocol, StreamKey};
use costream_rtmp::ClientEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status and head of a response, without waiting for its body (an
/// HTTP-FLV body never ends). `headers`: whole lines ending in CRLF.
async fn head_of(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: test\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return end;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a response head in time");
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    // A refusal is a short JSON body: read it (to its end) for the reason.
    let mut rest = buf[end + 4..].to_vec();
    if status != 200 {
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    }
    (status, head, rest)
}

async fn get_status(addr: SocketAddr, path: &str, headers: &str) -> u16 {
    head_of(addr, "GET", path, headers, b"").await.0
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

/// A playlist, asked again while the stream has no segment yet (503).
async fn playlist(addr: SocketAddr, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = http_get(addr, path).await;
        if status == 200 {
            return String::from_utf8(body).unwrap();
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
}

/// The first segment URI a playlist lists.
fn first_segment(text: &str) -> String {
    text.lines()
        .find(|l| !l.starts_with('#') && l.contains(".ts"))
        .unwrap_or_else(|| panic!("no segment in {text}"))
        .to_string()
}

/// An RTMP play of `app`/`name`: `Ok` when playing, else the status code.
async fn rtmp_play(server: &Server, app: &str, name: &str) -> Result<(), String> {
    let mut c = RtmpClient::connect(server.rtmp_addr, app).await;
    c.session.create_stream_and_play(name);
    match c
        .wait_for(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Playing))
        .await
    {
        Some(ClientEvent::Playing) => Ok(()),
        Some(ClientEvent::Error { code, description }) => {
            assert!(!description.is_empty(), "{code} says why");
            Err(code)
        }
        other => panic!("{app}/{name}: {other:?}"),
    }
}

/// An RTMP publish of `app`/`name`: `Ok` when accepted, else the status code.
async fn rtmp_publish(server: &Server, app: &str, name: &str) -> Result<(), String> {
    let mut c = RtmpClient::connect(server.rtmp_addr, app).await;
    c.session.create_stream_and_publish(name);
    match c
        .wait_for(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Publishing))
        .await
    {
        Some(ClientEvent::Publishing) => Ok(()),
        Some(ClientEvent::Error { code, .. }) => Err(code),
        other => panic!("{app}/{name}: {other:?}"),
    }
}

/// A WHEP offer's status; `headers` carry a bearer token if any.
async fn whep(server: &Server, path: &str, headers: &str) -> (u16, String) {
    let factory = RtcClientFactory::default();
    let mut peer = RtcPeer::new(
        &factory,
        "127.0.0.1".parse().unwrap(),
        str0m::media::Direction::RecvOnly,
    )
    .unwrap();
    let offer = peer.take_offer().unwrap();
    let headers = format!("{headers}Content-Type: application/sdp\r\n");
    let (status, _, body) =
        head_of(server.http_addr, "POST", path, &headers, offer.as_bytes()).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Republishes `from`'s frames as `to` (a room feed, as a participant's
/// publication would be) until aborted.
fn relay(server: &Server, from: &str, to: &str) -> tokio::task::JoinHandle<()> {
    let hub = server.hub().clone();
    let mut sub = hub
        .subscribe(&StreamKey::parse(from).unwrap(), Protocol::Internal)
        .unwrap();
    let publisher = hub
        .publish(StreamKey::parse(to).unwrap(), Protocol::WebRtc)
        .unwrap();
    tokio::spawn(async move {
        while let Some(f) = sub.recv().await {
            let copy = match f.kind {
                FrameKind::Video => Frame::video(f.dts, f.pts, f.keyframe, f.data.clone()),
                kind => Frame::new(kind, f.dts, f.pts, f.data.clone()),
            };
            if publisher.push(copy.with_codec(f.codec)).is_err() {
                return;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_feeds_play_only_for_current_members_with_a_room_token() {
    let server = start_server(|c| c.auth.api_keys = vec![room_key()]).await;
    let http = server.http_addr;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/src"), &[]);
    wait_for_stream(&server, "live/src").await;
    let _relay = relay(&server, "live/src", "room.r1/alice");
    wait_for_stream(&server, "room.r1/alice").await;

    // Bob is in the room (audience: subscribe, no admin).
    let bob = room_token("r1", "bob", Role::Audience);
    let url = format!(
        "ws://{http}/rtc?access_token={bob}&auto_subscribe=false",
        http = server.http_addr
    );
    let (_bob_in_room, _) = RoomClient::join(&url).await.expect("bob joins r1");
    let elsewhere = room_token("r2", "bob", Role::Audience);
    let outsider = room_token("r1", "carol", Role::Audience);

    // No token: refused over every protocol, with a reason.
    let (status, _, body) = head_of(http, "GET", "/room.r1/alice.flv", "", b"").await;
    assert_eq!(status, 401);
    assert!(
        String::from_utf8_lossy(&body).contains("room token"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(get_status(http, "/room.r1/alice.m3u8", "").await, 401);
    assert_eq!(get_status(http, "/room.r1/alice-0.ts", "").await, 401);
    assert_eq!(
        rtmp_play(&server, "room.r1", "alice").await,
        Err("NetStream.Play.Unauthorized".into())
    );
    assert_eq!(whep(&server, "/whep/room.r1/alice", "").await.0, 401);
    // A forged or foreign token is no token.
    assert_eq!(
        get_status(http, "/room.r1/alice.flv?token=a.b.c", "").await,
        401
    );

    // Bob's token plays, as ?token= and as a bearer token.
    let flv = format!("/room.r1/alice.flv?token={bob}");
    let mut viewer = FlvViewer::connect(http, &flv).await;
    assert!(viewer.next_picture().await.is_some(), "bob sees alice");
    drop(viewer);
    assert_eq!(
        get_status(http, "/room.r1/alice.flv", &bearer(&bob)).await,
        200
    );
    let text = playlist(http, &format!("/room.r1/alice.m3u8?token={bob}")).await;
    let segment = first_segment(&text);
    assert!(
        segment.ends_with(&format!("?token={bob}")),
        "segments carry the token: {segment}"
    );
    let (status, body) = http_get(http, &format!("/room.r1/{segment}")).await;
    assert_eq!(status, 200);
    assert!(!body.is_empty() && body[0] == 0x47, "an MPEG-TS segment");
    let bare = segment.split('?').next().unwrap();
    assert_eq!(get_status(http, &format!("/room.r1/{bare}"), "").await, 401);
    assert_eq!(
        rtmp_play(&server, "room.r1", &format!("alice?token={bob}")).await,
        Ok(())
    );
    let (status, answer) = whep(&server, &format!("/whep/room.r1/alice?token={bob}"), "").await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = whep(&server, "/whep/room.r1/alice", &bearer(&bob)).await;
    assert_eq!(status, 201, "{answer}");
    // The tests' admin credentials (Basic API key:secret) play too.
    assert_eq!(
        get_status(http, "/room.r1/alice.flv", &admin_header()).await,
        200
    );

    // A token for another room, or of someone not in the room: forbidden.
    for token in [&elsewhere, &outsider] {
        assert_eq!(
            get_status(http, &format!("/room.r1/alice.flv?token={token}"), "").await,
            403
        );
        assert_eq!(
            get_status(http, &format!("/room.r1/alice.m3u8?token={token}"), "").await,
            403
        );
        assert_eq!(
            rtmp_play(&server, "room.r1", &format!("alice?token={token}")).await,
            Err("NetStream.Play.Forbidden".into())
        );
        assert_eq!(
            whep(&server, "/whep/room.r1/alice", &bearer(token)).await.0,
            403
        );
    }

    // Bob is removed: his token no longer plays anything of the room.
    let (status, _) = admin_request(http, "DELETE", "/api/v1/rooms/r1/participants/bob").await;
    assert!(matches!(status, 200 | 204), "{status}");
    let (status, _, body) = head_of(http, "GET", &flv, "", b"").await;
    assert_eq!(status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("not in room"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        get_status(http, &format!("/room.r1/{segment}"), "").await,
        403
    );
    assert_eq!(
        get_status(http, &format!("/room.r1/alice.m3u8?token={bob}"), "").await,
        403
    );
    assert_eq!(
        rtmp_play(&server, "room.r1", &format!("alice?token={bob}")).await,
        Err("NetStream.Play.Forbidden".into())
    );
    assert_eq!(
        whep(&server, &format!("/whep/room.r1/alice?token={bob}"), "")
            .await
            .0,
        403
    );

    // Refusals are counted by reason.
    let (_, metrics) = admin_get(http, "/metrics").await;
    let metrics = String::from_utf8_lossy(&metrics);
    for reason in ["room_token_missing", "wrong_room", "not_in_room"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("costream_refused_total") && l.contains(reason)),
            "{reason} counted"
        );
    }
}

/// `costream token play`, the CLI a backend would run.
fn cli_play_token(stream: &str, secret: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_costream"))
        .args(["token", "play", "--stream", stream, "--ttl", "1h"])
        .args(["--secret", secret])
        .output()
        .expect("the costream binary runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_play_urls_guard_live_streams_over_every_protocol() {
    let secret = "play-secret-1";
    let server = start_server(|c| c.auth.play_secret = Some(secret.into())).await;
    let http = server.http_addr;
    // Publishing stays open (only play_secret is set).
    let _push = ffmpeg_push(&rtmp_url(&server, "live/cam"), &[]);
    wait_for_stream(&server, "live/cam").await;
    let key = StreamKey::parse("live/cam").unwrap();

    let good = cli_play_token("live/cam", secret);
    let other_stream = costream::auth::sign_publish(
        secret,
        &StreamKey::parse("live/other").unwrap(),
        Duration::from_secs(600),
    );
    let expired = costream::auth::sign_until(secret, &key, costream::access::now_secs() - 60);
    let wrong_secret = cli_play_token("live/cam", "another-secret");

    for bad in [
        String::new(),
        format!("?token={other_stream}"),
        format!("?token={expired}"),
        format!("?token={wrong_secret}"),
        "?token=junk".into(),
    ] {
        let (status, _, body) = head_of(http, "GET", &format!("/live/cam.flv{bad}"), "", b"").await;
        assert_eq!(status, 401, "flv {bad}");
        assert!(
            String::from_utf8_lossy(&body).contains("play token"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(
            get_status(http, &format!("/live/cam.m3u8{bad}"), "").await,
            401,
            "hls {bad}"
        );
        assert_eq!(
            get_status(http, &format!("/live/cam-0.ts{bad}"), "").await,
            401,
            "segment {bad}"
        );
        assert_eq!(
            rtmp_play(&server, "live", &format!("cam{bad}")).await,
            Err("NetStream.Play.Unauthorized".into()),
            "rtmp {bad}"
        );
        assert_eq!(
            whep(&server, &format!("/whep/live/cam{bad}"), "").await.0,
            401,
            "whep {bad}"
        );
    }

    // The good token plays everywhere: HTTP-FLV, HLS playlist and segment,
    // RTMP with ffmpeg's own client, WHEP (query or bearer).
    let mut viewer = FlvViewer::connect(http, &format!("/live/cam.flv?token={good}")).await;
    assert!(viewer.next_picture().await.is_some());
    drop(viewer);
    let text = playlist(http, &format!("/live/cam.m3u8?token={good}")).await;
    let segment = first_segment(&text);
    assert!(segment.ends_with(&format!("?token={good}")), "{segment}");
    let (status, body) = http_get(http, &format!("/live/{segment}")).await;
    assert_eq!(status, 200);
    assert_eq!(body.first(), Some(&0x47));
    let probe = ffprobe(
        &rtmp_url(&server, &format!("live/cam?token={good}")),
        &["-show_entries", "stream=codec_name"],
    )
    .await;
    assert!(probe.to_string().contains("h264"), "{probe}");
    let (status, answer) = whep(&server, &format!("/whep/live/cam?token={good}"), "").await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = whep(&server, "/whep/live/cam", &bearer(&good)).await;
    assert_eq!(status, 201, "{answer}");
}

/// An `on_play` / `on_publish` receiver: 200 for `user=good`, never an
/// answer for `user=slow`, 403 otherwise; every body goes to the channel.
async fn auth_callback() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use axum::http::StatusCode;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/auth",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let tx = tx.clone();
            async move {
                let query = body["query"].as_str().unwrap_or("").to_string();
                let _ = tx.send(body);
                if query.contains("user=slow") {
                    std::future::pending::<()>().await;
                }
                if query.contains("user=good") {
                    StatusCode::OK
                } else {
                    StatusCode::FORBIDDEN
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/auth"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_on_play_and_on_publish_callbacks_decide() {
    let (url, mut calls) = auth_callback().await;
    let server = start_server(|c| {
        c.auth.on_play = Some(url.clone());
        c.auth.on_publish = Some(url.clone());
    })
    .await;
    let http = server.http_addr;

    // Publishing asks on_publish: RTMP and WHIP refused for a bad user,
    // ffmpeg's push with a good one goes live.
    assert_eq!(
        rtmp_publish(&server, "live", "cb?user=bad").await,
        Err("NetStream.Publish.Forbidden".into())
    );
    let (status, _, _) = head_of(
        http,
        "POST",
        "/whip/live/cb2?user=bad",
        "Content-Type: application/sdp\r\n",
        b"v=0\r\n",
    )
    .await;
    assert_eq!(status, 403);
    let _push = ffmpeg_push(&rtmp_url(&server, "live/cb?user=good"), &[]);
    wait_for_stream(&server, "live/cb").await;

    // 2xx allows, over every protocol.
    let mut viewer = FlvViewer::connect(http, "/live/cb.flv?user=good").await;
    assert!(viewer.next_picture().await.is_some());
    drop(viewer);
    let text = playlist(http, "/live/cb.m3u8?user=good").await;
    let segment = first_segment(&text);
    assert!(segment.ends_with("?user=good"), "{segment}");
    assert_eq!(get_status(http, &format!("/live/{segment}"), "").await, 200);
    assert_eq!(rtmp_play(&server, "live", "cb?user=good").await, Ok(()));
    let (status, answer) = whep(&server, "/whep/live/cb?user=good", "").await;
    assert_eq!(status, 201, "{answer}");

    // 403 refuses, over every protocol.
    assert_eq!(get_status(http, "/live/cb.flv?user=bad", "").await, 403);
    assert_eq!(get_status(http, "/live/cb.m3u8?user=bad", "").await, 403);
    assert_eq!(get_status(http, "/live/cb-0.ts?user=bad", "").await, 403);
    assert_eq!(
        rtmp_play(&server, "live", "cb?user=bad").await,
        Err("NetStream.Play.Forbidden".into())
    );
    assert_eq!(whep(&server, "/whep/live/cb?user=bad", "").await.0, 403);

    // A callback that never answers refuses after the timeout (2 s).
    let started = Instant::now();
    let (status, _, body) = head_of(http, "GET", "/live/cb.flv?user=slow", "", b"").await;
    let waited = started.elapsed();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert!(String::from_utf8_lossy(&body).contains("did not answer"));

    // What the callback was told: the stream, the protocol, the client.
    let mut seen = std::collections::BTreeSet::new();
    while let Ok(call) = calls.try_recv() {
        if call["query"] == "user=good" {
            assert_eq!(call["stream"], "live/cb", "{call}");
            assert_eq!(call["client_ip"], "127.0.0.1", "{call}");
            seen.insert(format!(
                "{} {}",
                call["action"].as_str().unwrap_or(""),
                call["protocol"].as_str().unwrap_or("")
            ));
        }
    }
    for want in [
        "publish rtmp",
        "play flv",
        "play hls",
        "play rtmp",
        "play whep",
    ] {
        assert!(seen.contains(want), "{want} in {seen:?}");
    }
}
