//! `bench whip` and `bench whep` against a real in-process server on
//! loopback: the publisher's media must reach every viewer, whole.

use std::time::{Duration, Instant};

use costream_hub::StreamKey;

use crate::bench::{bench_whep, bench_whip, whep_first_frame, WhepArgs, WhipArgs};
use crate::config::Config;
use crate::server::Server;

async fn start_server() -> Server {
    start_server_with(|_| {}).await
}

async fn start_server_with(tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::default();
    config.rtmp.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.rtc.udp_listen = "127.0.0.1:0".parse().unwrap();
    config.rtc.tcp_listen = None;
    config.rtc.public_ips = vec!["127.0.0.1".parse().unwrap()];
    tweak(&mut config);
    Server::start(config).await.expect("server starts")
}

async fn wait_until_live(server: &Server, key: &str) {
    let key = StreamKey::parse(key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(s) = server.hub().stream(&key) {
            if s.info().video.is_some() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{key} did not go live");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_whip_feeds_bench_whep_viewers_without_loss() {
    let server = start_server().await;
    let http = server.http_addr;
    let whip = WhipArgs {
        url: format!("http://{http}/whip/live/bench"),
        clients: 1,
        duration: Duration::from_millis(5500),
        bitrate: 1_000_000,
        fps: 25.0,
        token: None,
        server_pid: None,
        json: false,
    };
    let publisher = tokio::spawn(async move { bench_whip(&whip).await });
    wait_until_live(&server, "live/bench").await;
    let url = format!("http://{http}/whep/live/bench");

    let first = whep_first_frame(&url, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(first.first_video_is_keyframe, "{first:?}");
    assert_eq!((first.width, first.height), (Some(640), Some(360)));
    assert!(first.answer <= first.connected && first.connected <= first.first_video);

    let report = bench_whep(&WhepArgs {
        url,
        clients: 5,
        duration: Duration::from_secs(3),
        connect_rate: 50.0,
        recv_buffer: None,
        server_pid: Some(std::process::id()),
        json: false,
    })
    .await
    .unwrap();
    let text = report.to_text();
    assert_eq!(report.clients.connected, 5, "{text}");
    assert_eq!(report.clients.without_video, 0, "{text}");
    assert!(report.errors.is_empty(), "{text}");
    let frames = report.video_frames.expect("video counts");
    assert!(frames.min >= 40.0, "{text}");
    let audio = report.audio_packets.expect("audio counts");
    assert!(audio.min >= 50.0, "{text}");
    assert!(report.loss.packets_expected > 0, "{text}");
    assert!(report.loss.percent < 1.0, "{text}");
    assert_eq!(report.loss.viewers_over_1pct, 0, "{text}");
    let first_video = report.first_video_ms.expect("first video times");
    assert_eq!(first_video.count, 5);
    assert!(report.cpu.bench_cpu_s.is_some() || !cfg!(target_os = "linux"));

    let whip = publisher.await.unwrap().unwrap();
    let p = &whip.publishers[0];
    assert!(p.error.is_none(), "{}", whip.to_text());
    assert!(p.connect_ms.is_some());
    // 5.5 s at 25 fps, less the connection setup.
    assert!(p.video_frames >= 120, "{}", whip.to_text());
    assert!(p.keyframes >= 3, "{}", whip.to_text());
    assert!(p.audio_packets >= 250, "{}", whip.to_text());

    // The publisher's DELETE ended the stream.
    let key = StreamKey::parse("live/bench").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.hub().stream(&key).is_some() {
        assert!(
            Instant::now() < deadline,
            "the stream outlived its publisher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_whep_reports_refused_offers() {
    let server = start_server().await;
    let url = format!("http://{}/whep/live/nothing", server.http_addr);
    let err = whep_first_frame(&url, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("404"), "{err:#}");

    let report = bench_whep(&WhepArgs {
        url,
        clients: 3,
        duration: Duration::from_millis(500),
        connect_rate: 100.0,
        recv_buffer: None,
        server_pid: None,
        json: true,
    })
    .await
    .unwrap();
    assert_eq!(report.clients.connected, 0);
    assert_eq!(report.clients.failed, 3);
    assert_eq!(report.errors.len(), 1, "{}", report.to_text());
    assert!(report.errors[0].message.contains("404"));
    assert_eq!(report.errors[0].count, 3);
}

/// `bench room`: three publishers in a full mesh and one audience member,
/// against a real server: every subscription connects and gets its video.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_room_forwards_every_publisher_to_everyone() {
    let key = crate::access::ApiKey {
        key: "bench".into(),
        secret: "bench-secret-bench-secret".into(),
    };
    let server = start_server_with(|c| c.auth.api_keys = vec![key.clone()]).await;
    let args = crate::bench::RoomArgs {
        url: format!("http://{}", server.http_addr),
        api_key: key.key,
        api_secret: key.secret,
        rooms: 1,
        publishers: 3,
        viewers: 1,
        duration: Duration::from_secs(6),
        bitrate: 300_000,
        fps: 25.0,
        own_connections: false,
        server_pid: None,
        json: false,
    };
    let report = crate::bench::room::bench_room(&args).await.unwrap();
    eprintln!("{}", report.text());
    assert_eq!(report.participants_failed, 0, "{:?}", report.errors);
    // Each publisher gets the other two; the viewer gets all three.
    assert_eq!(report.forwarded_streams, 3 * 2 + 3);
    assert!(report.loss_percent.unwrap() < 1.0, "{report:?}");
    let fps = report.video_fps.unwrap();
    assert!(fps.min >= 15.0, "{fps:?}");
    let first = report.viewer_first_frame_ms.unwrap();
    assert!(first.max < 3000.0, "{first:?}");
    assert!(report.audio_path_ms.unwrap().count > 100);
}
