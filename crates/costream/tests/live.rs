//! Live core, end to end with real clients: ffmpeg pushes RTMP, ffprobe and
//! our own readers play RTMP, HTTP-FLV and HLS.

mod common;

use std::time::{Duration, Instant};

use common::*;
use costream_rtmp::ClientEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn stream_facts(probe: &serde_json::Value) -> (Vec<String>, u64, u64, String) {
    let streams = probe["streams"].as_array().expect("streams");
    let codecs = streams
        .iter()
        .filter_map(|s| s["codec_name"].as_str().map(String::from))
        .collect();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .expect("a video stream");
    (
        codecs,
        video["width"].as_u64().unwrap_or(0),
        video["height"].as_u64().unwrap_or(0),
        video["r_frame_rate"].as_str().unwrap_or("").to_owned(),
    )
}

/// The last video packet time ffprobe reads in about a second of the stream.
async fn last_video_time(url: &str) -> f64 {
    let probe = ffprobe(
        url,
        &[
            "-select_streams",
            "v",
            "-show_entries",
            "packet=pts_time",
            "-read_intervals",
            "%+#30",
        ],
    )
    .await;
    probe["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| p["pts_time"].as_str()?.parse::<f64>().ok())
        .fold(f64::MIN, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffprobe_reads_rtmp_flv_and_hls_with_codecs_size_rate_and_growing_time() {
    let server = start_server(|c| c.hls.segment_duration = Duration::from_secs(1)).await;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/probe"), &["-g", "25"]);
    wait_for_stream(&server, "live/probe").await;
    let urls = [
        rtmp_url(&server, "live/probe"),
        http_url(&server, "/live/probe.flv"),
        http_url(&server, "/live/probe.m3u8"),
    ];
    let mut first_times = Vec::new();
    for url in &urls {
        let probe = ffprobe(
            url,
            &[
                "-show_entries",
                "stream=codec_name,codec_type,width,height,r_frame_rate",
            ],
        )
        .await;
        let (codecs, w, h, rate) = stream_facts(&probe);
        assert!(codecs.contains(&"h264".to_string()), "{url}: {codecs:?}");
        assert!(codecs.contains(&"aac".to_string()), "{url}: {codecs:?}");
        assert_eq!((w, h), (640, 360), "{url}");
        assert_eq!(rate, "25/1", "{url}");
        first_times.push(last_video_time(url).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (url, first) in urls.iter().zip(first_times) {
        let later = last_video_time(url).await;
        assert!(
            later > first + 2.0,
            "{url}: media time {first} then {later} should keep growing"
        );
    }
    let (status, body) = http_get(server.http_addr, "/live/probe.m3u8").await;
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("#EXT-X-TARGETDURATION") && !text.contains("#EXT-X-ENDLIST"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_viewer_starts_on_a_cached_keyframe_within_a_second() {
    let server = start_server(|_| {}).await;
    // A 4 s GOP: a viewer that had to wait for the next keyframe would be slow.
    let _push = ffmpeg_push(&rtmp_url(&server, "live/late"), &["-g", "100"]);
    wait_for_stream(&server, "live/late").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let t = Instant::now();
    let mut flv = FlvViewer::connect(server.http_addr, "/live/late.flv").await;
    let (_, keyframe) = flv.next_picture().await.expect("a picture");
    let flv_first = t.elapsed();
    assert!(keyframe, "HTTP-FLV viewer's first picture is a keyframe");
    assert!(
        flv_first < Duration::from_secs(1),
        "HTTP-FLV first frame after {flv_first:?}"
    );

    let t = Instant::now();
    let mut rtmp = RtmpClient::connect(server.rtmp_addr, "live").await;
    rtmp.session.create_stream_and_play("late");
    let ev = rtmp
        .wait_for(|e| matches!(e, ClientEvent::Video { payload, .. } if payload.len() > 1 && payload[1] == 1))
        .await
        .expect("a picture over RTMP");
    let rtmp_first = t.elapsed();
    let ClientEvent::Video { payload, .. } = ev else {
        unreachable!()
    };
    assert_eq!(
        payload[0] >> 4,
        1,
        "RTMP player's first picture is a keyframe"
    );
    assert!(
        rtmp_first < Duration::from_secs(1),
        "RTMP first frame after {rtmp_first:?}"
    );
    println!("first frame: HTTP-FLV {flv_first:?}, RTMP {rtmp_first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_viewer_slows_neither_the_publisher_nor_other_viewers() {
    let server = start_server(|_| {}).await;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/stall"), &[]);
    wait_for_stream(&server, "live/stall").await;
    let key = costream_hub::StreamKey::parse("live/stall").unwrap();
    let stream = server.hub().stream(&key).unwrap();

    // A viewer with a tiny receive buffer that reads nothing after the headers.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stalled_socket = sock.connect(server.http_addr).await.unwrap();
    let mut stalled = FlvViewer::connect_with(stalled_socket, "/live/stall.flv").await;
    let mut healthy = FlvViewer::connect(server.http_addr, "/live/stall.flv").await;
    let rss_before = rss_kib();
    let frames_before = stream.stats.frames_in();

    let t = Instant::now();
    let (first_ts, _) = healthy.next_picture().await.unwrap();
    let mut last_ts = first_ts;
    let mut pictures = 0;
    while t.elapsed() < Duration::from_secs(10) {
        let (ts, _) = healthy
            .next_picture()
            .await
            .expect("healthy viewer keeps receiving");
        last_ts = ts;
        pictures += 1;
    }
    let wall = t.elapsed().as_secs_f64();
    let media = (last_ts - first_ts) as f64 / 1000.0;
    // The healthy viewer's media clock keeps pace with the wall clock.
    assert!(
        media > wall - 3.0,
        "healthy viewer got {media:.1}s of media in {wall:.1}s"
    );
    assert!(
        pictures >= 200,
        "healthy viewer got {pictures} pictures in 10 s"
    );
    // The publisher kept real-time pace: ~68 frames/s of audio+video.
    let pushed = stream.stats.frames_in() - frames_before;
    assert!(
        pushed as f64 > 55.0 * wall,
        "publisher pushed {pushed} frames in {wall:.1}s"
    );
    // Memory stays bounded (the ring and GOP cache, not the stalled backlog).
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "RSS grew {grown} KiB");
    assert_eq!(stream.stats.viewers(costream_hub::Protocol::Flv), 2);

    // The stalled viewer wakes up and is moved on to recent pictures.
    let t = Instant::now();
    let mut latest = 0;
    while t.elapsed() < Duration::from_secs(5) {
        let (ts, _) = stalled
            .next_picture()
            .await
            .expect("stalled viewer resumes");
        latest = ts;
        if ts + 4000 > last_ts {
            break;
        }
    }
    assert!(
        latest + 4000 > last_ts,
        "stalled viewer caught up ({latest} vs {last_ts})"
    );
    assert!(
        stream.stats.viewer_skips() >= 1,
        "the stalled viewer was skipped ahead"
    );
    println!(
        "stalled viewer: dropped {} frames, {} skips; RSS grew {grown} KiB",
        stream.stats.frames_dropped(),
        stream.stats.viewer_skips()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_and_harms_no_one() {
    let server = start_server(|c| c.rtmp.idle_timeout = Duration::from_secs(3)).await;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/safe"), &[]);
    wait_for_stream(&server, "live/safe").await;
    let mut viewer = FlvViewer::connect(server.http_addr, "/live/safe.flv").await;
    viewer.next_picture().await.unwrap();

    async fn closed_by_server(mut s: TcpStream) {
        let mut scratch = vec![0u8; 64 * 1024];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut scratch).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "server closed the connection");
    }

    // Random bytes instead of a handshake.
    let mut s = TcpStream::connect(server.rtmp_addr).await.unwrap();
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = s.write_all(&noise).await;
    closed_by_server(s).await;

    // A truncated handshake that then goes quiet: the idle timeout ends it.
    let mut s = TcpStream::connect(server.rtmp_addr).await.unwrap();
    s.write_all(&[3u8; 700]).await.unwrap();
    closed_by_server(s).await;

    // An absurd chunk size after a proper handshake and connect.
    let mut c = RtmpClient::connect(server.rtmp_addr, "live").await;
    c.wait_for(|e| matches!(e, ClientEvent::Connected))
        .await
        .expect("connected");
    let set_chunk_size = [2u8, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
    c.socket.write_all(&set_chunk_size).await.unwrap();
    c.socket.write_all(&[3u8; 64]).await.unwrap();
    closed_by_server(c.socket).await;

    // A command message whose AMF is garbage.
    let mut c = RtmpClient::connect(server.rtmp_addr, "live").await;
    c.wait_for(|e| matches!(e, ClientEvent::Connected))
        .await
        .expect("connected");
    let mut bad = vec![3u8, 0, 0, 0, 0, 0, 8, 20, 0, 0, 0, 0];
    bad.extend_from_slice(&[0x02, 0xff, 0xff, 0x41, 0x42, 0x0d, 0x0e, 0x0f]);
    c.socket.write_all(&bad).await.unwrap();
    closed_by_server(c.socket).await;

    // A path-traversal stream name and friends, over RTMP and HTTP.
    let mut c = RtmpClient::connect(server.rtmp_addr, "live").await;
    c.session.create_stream_and_publish("../../etc/passwd");
    let ev = c
        .wait_for(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Publishing))
        .await;
    assert!(
        matches!(&ev, Some(ClientEvent::Error { code, .. }) if code == "NetStream.Publish.BadName"),
        "{ev:?}"
    );
    for path in [
        "/live/nothing.flv",
        "/live/..%2F..%2Fetc%2Fpasswd.flv",
        "/live/../../etc/passwd.flv",
        "/live/%2e%2e.flv",
        "/live/nothing.m3u8",
        "/live/nothing-1.ts",
        "/live/safe-99999.ts",
        "/etc/passwd",
    ] {
        let (status, body) = http_get(server.http_addr, path).await;
        assert!(matches!(status, 400 | 404), "{path}: {status}");
        assert!(
            String::from_utf8_lossy(&body).contains("error"),
            "{path}: a JSON error"
        );
    }

    // The real viewer and publisher never noticed.
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(1) {
        viewer.next_picture().await.expect("viewer unaffected");
        n += 1;
    }
    assert!(
        n >= 15,
        "viewer got {n} pictures in a second after the attacks"
    );
    let (status, _) = http_get(server.http_addr, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reconnecting_within_grace_keeps_the_flv_viewer() {
    let server = start_server(|c| c.hub.reconnect_grace = Duration::from_secs(5)).await;
    let url = rtmp_url(&server, "live/phone");
    let mut push = ffmpeg_push(&url, &[]);
    wait_for_stream(&server, "live/phone").await;
    let mut viewer = FlvViewer::connect(server.http_addr, "/live/phone.flv").await;
    let (mut last, _) = viewer.next_picture().await.unwrap();

    // The phone loses its network: the connection dies without unpublishing.
    push.kill().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _push2 = ffmpeg_push(&url, &[]);

    let t = Instant::now();
    let mut after = 0;
    while after < 50 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "frames resumed on the same connection"
        );
        let (ts, _) = viewer
            .next_picture()
            .await
            .expect("viewer connection survives");
        assert!(
            ts + 100 >= last,
            "timestamps keep going forward: {last} then {ts}"
        );
        last = last.max(ts);
        after += 1;
    }
    let key = costream_hub::StreamKey::parse("live/phone").unwrap();
    assert_eq!(
        server
            .hub()
            .stream(&key)
            .unwrap()
            .snapshot()
            .publisher_sessions,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_token_is_required_when_a_secret_is_set() {
    let secret = "publish-secret-1";
    let server = start_server(|c| c.auth.publish_secret = Some(secret.into())).await;
    let key = costream_hub::StreamKey::parse("live/tok").unwrap();

    for name in ["tok", "tok?token=123.abcd", "tok?token=garbage"] {
        let mut c = RtmpClient::connect(server.rtmp_addr, "live").await;
        c.session.create_stream_and_publish(name);
        let ev = c
            .wait_for(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Publishing))
            .await;
        match ev {
            Some(ClientEvent::Error { code, description }) => {
                assert_eq!(code, "NetStream.Publish.Unauthorized");
                assert!(description.contains("token"), "{description}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    let token = costream::auth::sign_publish(secret, &key, Duration::from_secs(60));
    let mut push = ffmpeg_push(&rtmp_url(&server, &format!("live/tok?token={token}")), &[]);
    wait_for_stream(&server, "live/tok").await;
    assert!(
        push.try_wait().unwrap().is_none(),
        "ffmpeg with a valid token keeps publishing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_lists_kicks_and_refuses_a_second_publisher() {
    let server = start_server(|c| c.hub.reconnect_grace = Duration::from_secs(30)).await;
    let mut push = ffmpeg_push(&rtmp_url(&server, "live/api"), &[]);
    wait_for_stream(&server, "live/api").await;
    let mut viewer = FlvViewer::connect(server.http_addr, "/live/api.flv").await;
    viewer.next_picture().await.unwrap();

    let mut second = RtmpClient::connect(server.rtmp_addr, "live").await;
    second.session.create_stream_and_publish("api");
    let ev = second
        .wait_for(|e| matches!(e, ClientEvent::Error { .. } | ClientEvent::Publishing))
        .await;
    assert!(
        matches!(&ev, Some(ClientEvent::Error { description, .. }) if description.contains("already")),
        "{ev:?}"
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = http_get(server.http_addr, "/api/v1/streams/live/api").await;
    assert_eq!(status, 200);
    let s: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s["video"]["codec"], "h264");
    assert_eq!(s["video"]["width"], 640);
    assert_eq!(s["audio"]["codec"], "aac");
    assert_eq!(s["viewers"]["flv"], 1);
    assert!(s["fps"].as_f64().unwrap() > 15.0, "{s}");
    assert!(s["bitrate_kbps"].as_u64().unwrap() > 100, "{s}");
    let (_, list) = http_get(server.http_addr, "/api/v1/streams").await;
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["streams"][0]["key"], "live/api");

    // /metrics names every stream and room: admins only by default.
    let (status, _) = http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 401, "anonymous /metrics");
    let (status, metrics) = admin_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    let metrics = String::from_utf8(metrics).unwrap();
    for name in [
        "costream_streams",
        "costream_viewers{protocol=\"flv\"}",
        "costream_first_frame_seconds_bucket",
        "costream_bytes_sent_total",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }

    // Kick: the stream ends at once (no grace), the viewer's response ends,
    // and ffmpeg is disconnected.
    // Not by a stranger, nor with a wrong key.
    let (status, _) = http_request(server.http_addr, "DELETE", "/api/v1/streams/live/api").await;
    assert_eq!(status, 401, "anonymous DELETE");
    let wrong = "Authorization: Basic dGVzdC1hZG1pbjp3cm9uZw==\r\n"; // test-admin:wrong
    let (status, _) = http_request_with(
        server.http_addr,
        "DELETE",
        "/api/v1/streams/live/api",
        wrong,
    )
    .await;
    assert_eq!(status, 401, "a wrong secret");
    for path in ["/api/v1/webrtc/sessions", "/api/v1/bridges"] {
        let (status, _) = http_get(server.http_addr, path).await;
        assert_eq!(status, 401, "anonymous {path}");
        let (status, _) = admin_get(server.http_addr, path).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _) = admin_request(server.http_addr, "DELETE", "/api/v1/streams/live/api").await;
    assert_eq!(status, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while viewer.next_tag().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "viewer's stream ended after the kick");
    let (status, _) = http_get(server.http_addr, "/api/v1/streams/live/api").await;
    assert_eq!(status, 404);
    let exited = tokio::time::timeout(Duration::from_secs(10), push.wait()).await;
    assert!(exited.is_ok(), "ffmpeg was disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_playlist_ends_with_endlist_when_the_publisher_leaves() {
    let server = start_server(|c| c.hls.segment_duration = Duration::from_secs(1)).await;
    // A 4 s push that ends with a clean unpublish.
    let mut push = ffmpeg_push(&rtmp_url(&server, "live/ends"), &["-g", "25", "-t", "4"]);
    wait_for_stream(&server, "live/ends").await;
    let (status, body) = http_get(server.http_addr, "/live/ends.m3u8").await;
    assert_eq!(status, 200);
    assert!(!String::from_utf8_lossy(&body).contains("#EXT-X-ENDLIST"));
    let exit = tokio::time::timeout(Duration::from_secs(20), push.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "ffmpeg finished its push");
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        let (_, body) = http_get(server.http_addr, "/live/ends.m3u8").await;
        let text = String::from_utf8(body).unwrap();
        if text.contains("#EXT-X-ENDLIST") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(text.contains("#EXT-X-ENDLIST"), "{text}");
    // The ended playlist still plays: ffprobe counts about 4 s of video.
    let probe = ffprobe(
        &http_url(&server, "/live/ends.m3u8"),
        &[
            "-select_streams",
            "v",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
        ],
    )
    .await;
    let packets: u64 = probe["streams"][0]["nb_read_packets"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        packets >= 50,
        "{packets} video packets in the ended playlist"
    );
}

/// Players' media answers every site's pages (`[http] cors_origin`, `*`),
/// but the control API and the console's token endpoint only the server's
/// own pages and `[http] api_cors_origins`: a page of another site open in
/// an operator's browser can neither read the API nor mint itself a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_answers_other_sites_only_when_named() {
    let server = start_server(|c| {
        c.console.dev_tokens = costream::config::DevTokens::Loopback;
        c.http.api_cors_origins = vec!["https://ops.example".into()];
    })
    .await;
    let addr = server.http_addr;
    let _push = ffmpeg_push(&rtmp_url(&server, "live/cors"), &[]);
    wait_for_stream(&server, "live/cors").await;
    let get = |path: &str, origin: &str| {
        format!(
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\r\n",
            addr.port()
        )
    };
    let preflight = |path: &str, origin: &str| {
        format!(
            "OPTIONS {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: DELETE\r\nAccess-Control-Request-Headers: authorization\r\n\r\n",
            addr.port()
        )
    };
    let acao = |head: &str| header(head, "access-control-allow-origin").map(str::to_owned);
    // Media: any site.
    let (status, head, _) = http_raw(
        addr,
        get("/live/cors.m3u8", "https://evil.example").as_bytes(),
        b"",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(acao(&head).as_deref(), Some("*"), "{head}");
    // The control API: not for another site, read or preflight...
    for request in [
        get("/api/v1/streams", "https://evil.example"),
        preflight("/api/v1/streams/live/cors", "https://evil.example"),
        get("/metrics", "https://evil.example"),
    ] {
        let (_, head, _) = http_raw(addr, request.as_bytes(), b"").await;
        assert_eq!(acao(&head), None, "{request}\n{head}");
    }
    // ...but for the configured one.
    let (_, head, _) = http_raw(
        addr,
        preflight("/api/v1/streams/live/cors", "https://ops.example").as_bytes(),
        b"",
    )
    .await;
    assert_eq!(
        acao(&head).as_deref(),
        Some("https://ops.example"),
        "{head}"
    );
    // The development token: the console's own page gets one, another
    // site's page or a rebound name does not.
    let token = "/api/v1/dev/token?room=r1&identity=h&role=host";
    let own = format!("http://127.0.0.1:{}", addr.port());
    let (status, _, _) = http_raw(addr, get(token, &own).as_bytes(), b"").await;
    assert_eq!(status, 200);
    let (status, _, body) =
        http_raw(addr, get(token, "https://evil.example").as_bytes(), b"").await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let rebound = format!(
        "GET {token} HTTP/1.0\r\nHost: evil.example:{}\r\n\r\n",
        addr.port()
    );
    let (status, _, _) = http_raw(addr, rebound.as_bytes(), b"").await;
    assert_eq!(status, 403);
}
