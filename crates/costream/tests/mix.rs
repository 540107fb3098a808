//! Server-side mixing of hub streams: two RTMP pushes (ffmpeg, solid red
//! with a 440 Hz tone and solid blue with 1000 Hz) mixed into one stream
//! that ffmpeg reads back over HTTP-FLV.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use costream::access::{mint, ApiKey, Role};
use costream::server::Server;
use tokio::process::{Child, Command};

fn key() -> ApiKey {
    ApiKey {
        key: "test".into(),
        secret: "mix-test-secret-0123456789".into(),
    }
}

/// ffmpeg pushing a solid colour and a tone over RTMP in real time.
fn push_colour(url: &str, colour: &str, freq: u32) -> Child {
    push_colour_sized(url, colour, freq, "640x360")
}

fn push_colour_sized(url: &str, colour: &str, freq: u32, size: &str) -> Child {
    ffmpeg_push_lavfi(
        url,
        &format!("color=c={colour}:size={size}:rate=15"),
        &format!("sine=frequency={freq}:sample_rate=48000"),
        &["-g", "30"],
        "96k",
    )
}

/// An admin API call with a `*` admin token: (status, JSON body).
async fn call(server: &Server, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let token = mint(
        &key(),
        "*",
        "ops",
        Role::Host,
        None,
        Duration::from_secs(600),
    )
    .unwrap();
    api_call(server.http_addr, method, path, Some(&token), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pushes_mix_into_one_stream_with_both_pictures_and_both_tones() {
    let server = start_server(|c| c.auth.api_keys = vec![key()]).await;
    let _red = push_colour(&rtmp_url(&server, "live/red"), "red", 440);
    let mut blue = push_colour(&rtmp_url(&server, "live/blue"), "blue", 1000);
    wait_for_stream(&server, "live/red").await;
    wait_for_stream(&server, "live/blue").await;

    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/mixes",
        r#"{"inputs":["live/red","live/blue"],"output":"live/mix","layout":"grid","width":640,"height":360,"fps":15}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // Both inputs decoded, the mix running.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, m) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
        let pictures = m["inputs"]
            .as_array()
            .map_or(0, |i| i.iter().filter(|i| i["has_picture"] == true).count());
        if pictures == 2 && m["video_frames"].as_u64().unwrap_or(0) > 15 {
            break;
        }
        assert!(Instant::now() < deadline, "mix not running: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = http_url(&server, "/live/mix.flv");

    // Grid: red left, blue right, and both tones.
    assert_red_left_blue_right_and_both_tones(&url).await;

    // A layout change moves the pictures: red full, blue small bottom right.
    let (status, body) = call(
        &server,
        "PATCH",
        &format!("/api/v1/mixes/{id}"),
        r#"{"layout":"pip"}"#,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    // 31 frames on: past the mix's 2 s GOP, so after the change.
    let pic = grab_picture(&url, 31).await;
    assert!(
        is_red(rgb(&pic, 320, 100)),
        "host: {:?}",
        rgb(&pic, 320, 100)
    );
    assert!(
        is_blue(rgb(&pic, 560, 310)),
        "guest: {:?}",
        rgb(&pic, 560, 310)
    );
    // A custom layout whose cells name their inputs: blue left, red right.
    let custom = r#"{"layout":{"custom":[
        {"input":"live/red","rect":[0.5,0,0.5,1]},{"input":"live/blue","rect":[0,0,0.5,1]}]}}"#;
    let (status, body) = call(&server, "PATCH", &format!("/api/v1/mixes/{id}"), custom).await;
    assert_eq!(status, 204, "{body}");
    let pic = grab_picture(&url, 31).await;
    let (left, right) = (rgb(&pic, 160, 180), rgb(&pic, 480, 180));
    assert!(is_blue(left) && is_red(right), "{left:?} {right:?}");

    // Silenced by its gain, blue's tone leaves the mix (the first 2.5 s read
    // may be from the cached GOP, before the change).
    let (status, body) = call(
        &server,
        "PATCH",
        &format!("/api/v1/mixes/{id}"),
        r#"{"gain":{"live/blue":0}}"#,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let pcm: Vec<f32> = grab_audio(&url, 5)
        .await
        .into_iter()
        .skip(120_000)
        .collect();
    assert!(pcm.len() > 48_000, "{} samples", pcm.len());
    let (a, b) = (power(&pcm, 440.0), power(&pcm, 1000.0));
    assert!(
        b * 100.0 < a,
        "440 Hz {a}, 1000 Hz {b} after its gain went to 0"
    );

    // A frozen input (its publisher gone) does not stop the mix.
    let _ = blue.kill().await;
    let (_, before) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, after) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
    let made = after["video_frames"].as_u64().unwrap() - before["video_frames"].as_u64().unwrap();
    assert!(made >= 24, "{made} frames in 2 s at 15 fps: {after}");
    eprintln!("mix: {after}");

    let (status, _) = call(&server, "DELETE", &format!("/api/v1/mixes/{id}"), "").await;
    assert_eq!(status, 204);
    let (_, list) = call(&server, "GET", "/api/v1/mixes", "").await;
    assert_eq!(list["mixes"], serde_json::json!([]));
}

/// ffmpeg listening for one RTMP publish on `port` for `seconds`; the video
/// frames it decoded (scaled to 64x36).
async fn rtmp_receiver(port: u16, seconds: u32) -> usize {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-listen",
            "1",
            "-i",
            &format!("rtmp://127.0.0.1:{port}/live/cdn"),
            "-t",
            &seconds.to_string(),
            "-an",
            "-s",
            "64x36",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("the receiver got the push in time")
        .unwrap();
    out.stdout.len() / (64 * 36 * 3)
}

/// The mix also goes out to an RTMP server (here ffmpeg listening); when
/// that server goes away and comes back, the push reconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mix_is_pushed_over_rtmp_and_reconnects() {
    let server = start_server(|c| c.auth.api_keys = vec![key()]).await;
    let _red = push_colour(&rtmp_url(&server, "live/red"), "red", 440);
    wait_for_stream(&server, "live/red").await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = tokio::spawn(rtmp_receiver(port, 2));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spec = format!(
        r#"{{"inputs":["live/red"],"output":"live/out","width":640,"height":360,"fps":15,"push":["rtmp://127.0.0.1:{port}/live/cdn"]}}"#
    );
    let (status, body) = call(&server, "POST", "/api/v1/mixes", &spec).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let frames = first.await.unwrap();
    assert!(frames >= 15, "the first receiver decoded {frames} frames");
    // The receiver is gone; a new one on the same port gets the push again.
    let frames = rtmp_receiver(port, 2).await;
    assert!(frames >= 15, "the second receiver decoded {frames} frames");
    let (_, m) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
    let connects = m["push"][0]["connects"].as_u64().unwrap_or(0);
    assert!(connects >= 2, "{m}");
    eprintln!("push: {}", m["push"]);
}

/// The link-mic switch: viewers of the host's stream stay on one HTTP-FLV
/// connection while a mix takes the stream over (the composite, at its own
/// size, from its first picture showing both inputs) and gives it back (the
/// host's own picture again), each track's time going forward throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_replaces_a_live_stream_and_gives_it_back_without_dropping_viewers() {
    let server = start_server(|c| c.auth.api_keys = vec![key()]).await;
    let _host = push_colour_sized(&rtmp_url(&server, "live/host1"), "red", 440, "320x240");
    let _guest = push_colour_sized(&rtmp_url(&server, "live/guest"), "blue", 1000, "320x240");
    wait_for_stream(&server, "live/host1").await;
    wait_for_stream(&server, "live/guest").await;
    let url = http_url(&server, "/live/host1.flv");
    // One viewer for the whole switch, logging every decoded frame's size.
    let viewer = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "info",
            "-i",
            &url,
            "-t",
            "11",
            "-an",
            "-vf",
            "showinfo",
            "-f",
            "null",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let viewer =
        tokio::spawn(async move { tokio::time::timeout(Duration::from_secs(40), viewer).await });
    // Another reading every packet's time, audio and video, over both switches.
    let probe_url = url.clone();
    let packets = tokio::spawn(async move {
        ffprobe(
            &probe_url,
            &[
                "-read_intervals",
                "%+11",
                "-show_entries",
                "packet=codec_type,dts",
            ],
        )
        .await
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (status, body) = call(
        &server,
        "POST",
        "/api/v1/mixes",
        r#"{"inputs":["live/host1","live/guest"],"replace":"live/host1","width":640,"height":360,"fps":15}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // The composite shows the host's own feed (not itself) and the guest.
    let pic = grab_picture(&url, 31).await;
    assert!(
        is_red(rgb(&pic, 160, 180)),
        "host: {:?}",
        rgb(&pic, 160, 180)
    );
    assert!(
        is_blue(rgb(&pic, 480, 180)),
        "guest: {:?}",
        rgb(&pic, 480, 180)
    );
    let (_, m) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
    assert_eq!(m["replace"], "live/host1", "{m}");
    assert_eq!(m["mixing"], true, "{m}");
    let (status, _) = call(&server, "DELETE", &format!("/api/v1/mixes/{id}"), "").await;
    assert_eq!(status, 204);

    let out = viewer.await.unwrap().expect("the viewer finished").unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    let sizes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Parsed_showinfo") && l.contains(" s:"))
        .filter_map(|l| l.split(" s:").nth(1)?.split_whitespace().next())
        .collect();
    let mut runs: Vec<(&str, usize)> = Vec::new();
    for s in &sizes {
        match runs.last_mut() {
            Some((last, n)) if last == s => *n += 1,
            _ => runs.push((s, 1)),
        }
    }
    eprintln!("viewer saw: {runs:?}");
    let shape: Vec<&str> = runs.iter().map(|(s, _)| *s).collect();
    assert_eq!(shape, ["320x240", "640x360", "320x240"], "{runs:?}");
    assert!(runs.iter().all(|(_, n)| *n >= 10), "{runs:?}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("rror") && !l.contains("Parsed_showinfo"))
        .collect();
    assert!(errors.is_empty(), "decode errors: {errors:#?}");
    // Presentation times keep going forward across both switches.
    let times: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("Parsed_showinfo"))
        .filter_map(|l| {
            l.split("pts_time:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[1] >= w[0]), "{times:?}");
    // The mix's first picture is its inputs' (red left, blue right: both
    // chroma means well above the plain background's 128), not the
    // background with empty tiles.
    let first_mix = log
        .lines()
        .find(|l| l.contains("Parsed_showinfo") && l.contains(" s:640x360"))
        .expect("a composite was seen");
    let mean: Vec<u32> = first_mix
        .split("mean:[")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .map(|m| {
            m.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        mean.len() == 3 && mean[1] > 140 && mean[2] > 140,
        "the first composite: {first_mix}"
    );
    // No track's time ever goes back, across the switch and back.
    let packets = packets.await.unwrap();
    for kind in ["audio", "video"] {
        let dts: Vec<i64> = packets["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .filter(|p| p["codec_type"] == kind)
            .filter_map(|p| p["dts"].as_i64())
            .collect();
        assert!(dts.len() > 50, "{kind}: {dts:?}");
        let back: Vec<&[i64]> = dts.windows(2).filter(|w| w[1] <= w[0]).collect();
        assert!(back.is_empty(), "{kind} time went back: {back:?}");
    }
    // The host is live on its own again.
    let (_, streams) = http_get(server.http_addr, "/api/v1/streams").await;
    let streams = String::from_utf8_lossy(&streams);
    assert!(!streams.contains("host1~src"), "{streams}");
}

/// Host-to-host link-mic ("PK"): two hosts live on their own streams, each
/// stream replaced by a mix of both, its own host on the left. Each mix
/// reads the other host's own feed, not the other mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_each_replace_their_stream_with_a_mix_of_both() {
    let server = start_server(|c| c.auth.api_keys = vec![key()]).await;
    let _a = push_colour(&rtmp_url(&server, "live/a"), "red", 440);
    let _b = push_colour(&rtmp_url(&server, "live/b"), "blue", 1000);
    wait_for_stream(&server, "live/a").await;
    wait_for_stream(&server, "live/b").await;
    for (me, other) in [("a", "b"), ("b", "a")] {
        let spec = format!(
            r#"{{"inputs":["live/{me}","live/{other}"],"replace":"live/{me}","width":640,"height":360,"fps":15}}"#
        );
        let (status, body) = call(&server, "POST", "/api/v1/mixes", &spec).await;
        assert_eq!(status, 201, "{body}");
    }
    let a = grab_picture(&http_url(&server, "/live/a.flv"), 31).await;
    let b = grab_picture(&http_url(&server, "/live/b.flv"), 31).await;
    for (pic, left, right) in [(&a, "red", "blue"), (&b, "blue", "red")] {
        let is = |c: &str, px| if c == "red" { is_red(px) } else { is_blue(px) };
        assert!(
            is(left, rgb(pic, 160, 180)),
            "left: {:?}",
            rgb(pic, 160, 180)
        );
        assert!(
            is(right, rgb(pic, 480, 180)),
            "right: {:?}",
            rgb(pic, 480, 180)
        );
    }
}

/// Waits for a keyframe of `key` as it comes live (not the cached one).
async fn next_live_keyframe(server: &Server, key: &str) {
    let key = costream_hub::StreamKey::parse(key).unwrap();
    let mut sub = server
        .hub()
        .subscribe(&key, costream_hub::Protocol::Internal)
        .unwrap();
    let mut keyframes = 0;
    tokio::time::timeout(Duration::from_secs(10), async {
        while keyframes < 2 {
            let f = sub.recv().await.expect("the stream goes on");
            if f.keyframe {
                keyframes += 1;
            }
        }
    })
    .await
    .expect("keyframes every 2 s");
}

/// Lip sync through a mix: a source that flashes and beeps at the same
/// instant, mixed with a second input, keeps its sound with its pictures in
/// the mix (within ±45 ms, ITU-R BT.1359), wherever in the source's 2 s
/// GOP the mix joins (the GOP comes as a burst), and the mix reports the
/// input's A/V offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mix_keeps_lip_sync_wherever_it_joins_its_inputs_gop() {
    let server = start_server(|c| c.auth.api_keys = vec![key()]).await;
    let _fb = avsync::push_flash_and_beep(&rtmp_url(&server, "live/fb"));
    let _other = avsync::push_silent_colour(&rtmp_url(&server, "live/other"), "blue");
    wait_for_stream(&server, "live/fb").await;
    wait_for_stream(&server, "live/other").await;

    let mut report = Vec::new();
    for (n, into_gop_ms) in [300u64, 900, 1500].into_iter().enumerate() {
        next_live_keyframe(&server, "live/fb").await;
        tokio::time::sleep(Duration::from_millis(into_gop_ms)).await;
        let spec = format!(
            r#"{{"inputs":["live/fb","live/other"],"output":"live/sync{n}","layout":"grid","width":640,"height":360,"fps":24}}"#
        );
        let (status, body) = call(&server, "POST", "/api/v1/mixes", &spec).await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        // The flashing input is the left half of the grid.
        let url = http_url(&server, &format!("/live/sync{n}.flv"));
        let onsets = avsync::read_onsets(&url, 7, "crop=iw/2:ih:0:0").await;
        let offsets = onsets.offsets_ms();
        eprintln!("mix started {into_gop_ms} ms into the GOP: {onsets:?}, offsets {offsets:?} ms");
        assert!(offsets.len() >= 3, "{onsets:?}");
        assert!(
            offsets.iter().all(|o| o.abs() <= 45.0),
            "mix started {into_gop_ms} ms into the GOP: sound minus picture {offsets:?} ms"
        );
        let (_, m) = call(&server, "GET", &format!("/api/v1/mixes/{id}"), "").await;
        let reported = m["inputs"][0]["av_offset_ms"].as_f64();
        eprintln!("reported: {}", m["inputs"]);
        assert!(
            reported.is_some_and(|o| o.abs() <= 45.0),
            "the input's A/V offset in the mix: {m}"
        );
        report.push((into_gop_ms, offsets, reported));
        let (status, _) = call(&server, "DELETE", &format!("/api/v1/mixes/{id}"), "").await;
        assert_eq!(status, 204);
    }
    eprintln!("lip sync through the mix: {report:?}");
}
