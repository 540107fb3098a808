use std::time::Duration;

use std::sync::Arc;

use bytes::Bytes;

use super::*;

fn key() -> StreamKey {
    StreamKey::parse("live/test").unwrap()
}

fn video(dts: i64, keyframe: bool) -> Frame {
    // One IDR (type 5) or non-IDR reference slice (type 1, nal_ref_idc 2).
    let nal: &[u8] = if keyframe {
        &[0, 0, 0, 2, 0x65, 0]
    } else {
        &[0, 0, 0, 2, 0x41, 0]
    };
    Frame::video(dts, dts, keyframe, Bytes::from_static(nal))
}

fn config() -> Frame {
    Frame::new(
        FrameKind::VideoConfig,
        0,
        0,
        Bytes::from_static(&[1, 0x42, 0, 0x1e, 0xff, 0xe0, 0]),
    )
}

fn hub(grace_ms: u64) -> Hub {
    Hub::new(HubConfig {
        ring_frames: 64,
        max_viewer_lag: Duration::from_millis(1000),
        reconnect_grace: Duration::from_millis(grace_ms),
        max_gop_frames: 100,
        ..HubConfig::default()
    })
}

fn sized(dts: i64, keyframe: bool, bytes: usize) -> Frame {
    let mut nal = vec![0u8; bytes.max(6)];
    nal[..4].copy_from_slice(&((bytes.max(6) - 4) as u32).to_be_bytes());
    nal[4] = if keyframe { 0x65 } else { 0x41 };
    Frame::video(dts, dts, keyframe, Bytes::from(nal))
}

fn budget_hub(budget: Budget, max_gop_bytes: usize, burst: usize) -> Hub {
    Hub::new(HubConfig {
        ring_frames: 16,
        max_viewer_lag: Duration::from_secs(60),
        reconnect_grace: Duration::from_secs(5),
        max_gop_frames: 1000,
        max_gop_bytes,
        gop_burst_bytes: burst,
        budget,
    })
}

#[tokio::test]
async fn an_oversized_frame_cuts_the_publisher_off_and_ends_the_stream() {
    let hub = budget_hub(
        Budget {
            max_frame: 1000,
            ..Budget::default()
        },
        1 << 20,
        1 << 20,
    );
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(sized(0, true, 1000)).unwrap();
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    let e = p.push(sized(40, false, 1001)).unwrap_err();
    assert_eq!(
        e,
        PushError::FrameTooLarge {
            size: 1001,
            max: 1000
        }
    );
    assert!(e.is_over_budget());
    assert!(hub.stream(&key()).is_none(), "ended at once, no grace");
    assert_eq!(p.push(sized(80, false, 10)), Err(PushError::NotPublishing));
    assert!(s.recv().await.unwrap().keyframe);
    assert!(s.recv().await.is_none());
    drop(s);
    assert_eq!(hub.totals().held_bytes(), 0, "every charge given back");
}

#[tokio::test]
async fn stream_and_server_budgets_count_what_frames_hold() {
    let hub = budget_hub(
        Budget {
            max_frame: 10_000,
            max_stream: 20_000,
            max_total: 30_000,
        },
        1 << 20,
        1 << 20,
    );
    let a = hub.publish(key(), Protocol::Rtmp).unwrap();
    a.push(sized(0, true, 8_000)).unwrap();
    a.push(sized(40, false, 8_000)).unwrap();
    let stream = hub.stream(&key()).unwrap();
    assert_eq!(stream.held_bytes(), 16_000);
    // A muxed copy counts too, once for every viewer of that format.
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    let kf = s.recv().await.unwrap();
    kf.muxed(MuxFormat::FlvTag, |f| f.data.clone());
    kf.muxed(MuxFormat::FlvTag, |_| unreachable!("muxed once"));
    assert_eq!(stream.held_bytes(), 24_000);
    assert_eq!(hub.totals().held_bytes(), 24_000);
    drop((kf, s));

    // Another stream now finds the server's budget nearly spent.
    let other = StreamKey::parse("live/other").unwrap();
    let b = hub.publish(other.clone(), Protocol::Rtmp).unwrap();
    b.push(sized(0, true, 5_000)).unwrap();
    let e = b.push(sized(40, false, 2_000)).unwrap_err();
    assert_eq!(e.reason(), "server_memory");
    assert!(hub.stream(&other).is_none());

    let e = a.push(sized(80, false, 5_000)).unwrap_err();
    assert_eq!(e.reason(), "stream_memory");
    drop((a, b, stream));
    assert_eq!(hub.totals().held_bytes(), 0);
}

#[tokio::test]
async fn a_gop_over_its_byte_bound_is_not_cached() {
    let hub = budget_hub(Budget::default(), 10_000, 1 << 20);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    p.push(sized(0, true, 6_000)).unwrap();
    p.push(sized(40, false, 3_000)).unwrap();
    assert_eq!(
        hub.subscribe(&key(), Protocol::Flv).unwrap().backlog_len(),
        3
    );
    p.push(sized(80, false, 3_000)).unwrap();
    let mut late = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert_eq!(late.backlog_len(), 1, "only the config: the GOP went over");
    assert_eq!(late.recv().await.unwrap().kind, FrameKind::VideoConfig);
    assert!(matches!(late.try_recv(), TryRecv::Empty));
    p.push(sized(120, true, 100)).unwrap();
    assert!(
        late.recv().await.unwrap().keyframe,
        "starts on the next keyframe"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cached_gop_past_the_burst_goes_at_four_times_real_time() {
    let hub = budget_hub(Budget::default(), 1 << 20, 3_000);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    // A 2 s GOP of 1 kB frames at 25 fps: 3 go at once, the rest is paced.
    for i in 0..50 {
        p.push(sized(i * 40, i == 0, 1_000)).unwrap();
    }
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(s.recv().await.unwrap().kind, FrameKind::VideoConfig);
    for i in 0..3 {
        assert_eq!(s.recv().await.unwrap().dts, i * 40);
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "the burst goes at once");
    assert!(
        matches!(s.try_recv(), TryRecv::Frame(_)),
        "first paced frame is due at once"
    );
    assert!(matches!(s.try_recv(), TryRecv::Empty), "the next waits");
    for i in 4..50 {
        let f = s.recv().await.unwrap();
        assert_eq!(f.dts, i * 40);
        let due = Duration::from_millis(((i - 3) * 40 / 4) as u64);
        assert_eq!(start.elapsed(), due, "frame {i}");
    }
    // The live frames after the backlog are not held back.
    p.push(sized(2000, false, 1_000)).unwrap();
    assert_eq!(s.recv().await.unwrap().dts, 2000);
    assert_eq!(start.elapsed(), Duration::from_millis(460));
}

#[tokio::test]
async fn late_viewer_starts_on_cached_keyframe() {
    let hub = hub(0);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    for i in 0..10 {
        p.push(video(i * 40, i % 5 == 0)).unwrap();
    }
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    let first = s.recv().await.unwrap();
    assert_eq!(first.kind, FrameKind::VideoConfig);
    let kf = s.recv().await.unwrap();
    assert!(kf.keyframe);
    assert_eq!(kf.dts, 200, "starts on the last keyframe, not the first");
    for want in [240, 280, 320, 360] {
        assert_eq!(s.recv().await.unwrap().dts, want);
    }
    p.push(video(400, false)).unwrap();
    assert_eq!(s.recv().await.unwrap().dts, 400);
    assert_eq!(hub.stream(&key()).unwrap().stats.viewers(Protocol::Flv), 1);
    drop(s);
    assert_eq!(hub.stream(&key()).unwrap().stats.viewers(Protocol::Flv), 0);
}

#[tokio::test]
async fn second_publisher_is_refused_and_end_closes_viewers() {
    let hub = hub(0);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    assert_eq!(
        hub.publish(key(), Protocol::Rtmp).err(),
        Some(PublishError::AlreadyPublishing(key()))
    );
    p.push(video(0, true)).unwrap();
    let mut s = hub.subscribe(&key(), Protocol::Rtmp).unwrap();
    p.end();
    assert!(s.recv().await.unwrap().keyframe);
    assert!(s.recv().await.is_none());
    assert!(hub.stream(&key()).is_none());
    assert!(matches!(
        hub.subscribe(&key(), Protocol::Flv),
        Err(SubscribeError::NotFound(_))
    ));
}

#[tokio::test]
async fn slow_viewer_skips_to_next_keyframe_without_touching_others() {
    let hub = hub(0);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    p.push(video(0, true)).unwrap();
    let mut slow = hub.subscribe(&key(), Protocol::Flv).unwrap();
    let mut fast = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert_eq!(fast.recv().await.unwrap().kind, FrameKind::VideoConfig);
    // 200 frames overflow the 64-frame ring for the viewer that reads nothing.
    for i in 1..200 {
        p.push(video(i * 40, i % 50 == 0)).unwrap();
        p.push(Frame::audio(i * 40, Bytes::from_static(b"aac")))
            .unwrap();
        while let TryRecv::Frame(_) = fast.try_recv() {}
    }
    assert_eq!(fast.dropped(), 0);
    p.push(video(200 * 40, true)).unwrap();
    assert_eq!(slow.recv().await.unwrap().kind, FrameKind::VideoConfig);
    assert_eq!(slow.recv().await.unwrap().dts, 0, "the cached keyframe");
    // The slow viewer resumes on a keyframe, and audio does not run ahead.
    let f = slow.recv().await.unwrap();
    assert!(f.keyframe, "first frame after lagging is a keyframe: {f:?}");
    assert!(slow.dropped() > 0);
    assert_eq!(slow.skips(), 1);
    assert_eq!(f.dts, 200 * 40);
}

#[tokio::test]
async fn lag_behind_live_edge_drops_to_keyframe() {
    let hub = hub(0);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    // 2 s of video lands before the viewer reads: with max lag 1 s, the
    // viewer is moved to the keyframe at 1600 ms.
    for i in 0..50 {
        p.push(video(i * 40, i % 40 == 0)).unwrap();
    }
    let _cfg = s.recv().await.unwrap();
    let first = s.recv().await.unwrap();
    assert!(first.keyframe);
    assert_eq!(first.dts, 1600);
}

#[tokio::test]
async fn publisher_resumes_within_grace_with_monotonic_clock() {
    let hub = hub(2000);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    p.push(config()).unwrap();
    p.push(video(5000, true)).unwrap();
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    s.recv().await.unwrap();
    assert_eq!(s.recv().await.unwrap().dts, 5000);
    drop(p); // network drop: no end()
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(hub.stream(&key()).is_some(), "stream kept during grace");
    let p2 = hub.publish(key(), Protocol::Rtmp).unwrap();
    p2.push(config()).unwrap();
    p2.push(video(0, true)).unwrap();
    let cfg = s.recv().await.unwrap();
    assert_eq!(cfg.kind, FrameKind::VideoConfig);
    let kf = s.recv().await.unwrap();
    assert!(kf.dts > 5000 && kf.dts < 7000, "re-based dts {}", kf.dts);
    assert_eq!(hub.stream(&key()).unwrap().snapshot().publisher_sessions, 2);
}

#[tokio::test(start_paused = true)]
async fn stream_ends_after_grace() {
    let hub = hub(5000);
    let mut events = hub.events();
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    let mut s = hub.subscribe(&key(), Protocol::Flv).unwrap();
    drop(p);
    assert!(s.recv().await.is_none());
    assert!(hub.stream(&key()).is_none());
    assert_eq!(events.recv().await.unwrap(), HubEvent::StreamStarted(key()));
    assert_eq!(events.recv().await.unwrap(), HubEvent::StreamEnded(key()));
}

#[tokio::test]
async fn kick_ends_now() {
    let hub = hub(5000);
    let p = hub.publish(key(), Protocol::Rtmp).unwrap();
    assert!(hub.kick(&key()));
    tokio::time::timeout(Duration::from_secs(1), p.kicked())
        .await
        .unwrap();
    assert!(p.push(video(0, true)).is_err());
    assert!(hub.stream(&key()).is_none());
    assert!(hub.publish(key(), Protocol::Rtmp).is_ok());
}

fn config_b() -> Frame {
    Frame::new(
        FrameKind::VideoConfig,
        0,
        0,
        Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
    )
}

/// Drains what is ready now.
fn ready(s: &mut Subscriber) -> Vec<Arc<Frame>> {
    let mut v = Vec::new();
    while let TryRecv::Frame(f) = s.try_recv() {
        v.push(f);
    }
    v
}

#[tokio::test]
async fn takeover_switches_viewers_and_gives_the_stream_back() {
    let hub = hub(0);
    let host = hub.publish(key(), Protocol::Rtmp).unwrap();
    host.push(config()).unwrap();
    for i in 0..3 {
        host.push(video(1000 + i * 40, i == 0)).unwrap();
    }
    let mut viewer = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert_eq!(ready(&mut viewer).len(), 4);

    let mix = hub.take_over(&key(), Protocol::Internal).unwrap();
    assert_eq!(
        hub.take_over(&key(), Protocol::Internal).err(),
        Some(TakeOverError::AlreadyTakenOver(key()))
    );
    // The host's own feed starts with its config and cached GOP.
    let feed = own_feed(&key());
    let mut own = hub.subscribe(&feed, Protocol::Internal).unwrap();
    let cached = ready(&mut own);
    assert_eq!(cached.len(), 4);
    assert_eq!(cached[0].kind, FrameKind::VideoConfig);
    // The host's frames now go there, the mix's to the viewers, on a clock
    // that goes on from where it was.
    host.push(video(1120, false)).unwrap();
    mix.push(config_b()).unwrap();
    mix.push(video(0, true)).unwrap();
    mix.push(video(40, false)).unwrap();
    assert_eq!(
        ready(&mut own).iter().map(|f| f.dts).collect::<Vec<_>>(),
        [1120]
    );
    let seen = ready(&mut viewer);
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].data, config_b().data);
    assert!(seen[1].keyframe && seen[1].dts > 1080 && seen[1].dts < 1200);
    assert_eq!(seen[2].dts, seen[1].dts + 40);
    let last = seen[2].dts;

    // Given back: the host's config first, then its pictures from its
    // next keyframe, which it is asked for; the own feed ends.
    mix.end();
    let stream = hub.stream(&key()).unwrap();
    assert!(stream
        .stats
        .keyframe_wanted
        .load(std::sync::atomic::Ordering::Relaxed));
    host.push(video(1160, false)).unwrap();
    host.push(video(1200, true)).unwrap();
    let seen = ready(&mut viewer);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].data, config().data);
    assert!(seen[1].keyframe && seen[1].dts > last);
    assert!(matches!(own.try_recv(), TryRecv::Ended));
    assert!(hub.stream(&feed).is_none());
    // And the host can be taken over again.
    drop(hub.take_over(&key(), Protocol::Internal).unwrap());
    host.push(video(1240, false)).unwrap();
    assert!(hub.stream(&key()).is_some());
}

#[tokio::test]
async fn a_host_that_leaves_under_a_takeover_ends_the_stream_at_give_back() {
    let hub = hub(0);
    let host = hub.publish(key(), Protocol::Rtmp).unwrap();
    host.push(config()).unwrap();
    let mix = hub.take_over(&key(), Protocol::Internal).unwrap();
    host.end();
    assert!(hub.stream(&own_feed(&key())).is_none());
    // The mix goes on while it runs...
    mix.push(video(0, true)).unwrap();
    let mut viewer = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert!(!ready(&mut viewer).is_empty());
    // ...and the stream ends with it.
    drop(mix);
    assert!(matches!(viewer.try_recv(), TryRecv::Ended));
    assert!(hub.stream(&key()).is_none());
}

#[tokio::test]
async fn a_host_reconnecting_under_a_takeover_feeds_its_own_feed() {
    let hub = hub(5000);
    let host = hub.publish(key(), Protocol::Rtmp).unwrap();
    let mix = hub.take_over(&key(), Protocol::Internal).unwrap();
    drop(host); // network drop
    let host = hub.publish(key(), Protocol::Rtmp).unwrap();
    let mut own = hub
        .subscribe(&own_feed(&key()), Protocol::Internal)
        .unwrap();
    host.push(video(0, true)).unwrap();
    assert_eq!(ready(&mut own).len(), 1);
    mix.end();
    host.push(video(40, true)).unwrap();
    let mut viewer = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert!(ready(&mut viewer).iter().any(|f| f.keyframe));
}

#[tokio::test]
async fn a_viewer_waiting_for_a_keyframe_asks_for_one() {
    let hub = hub(0);
    let p = hub.publish(key(), Protocol::WebRtc).unwrap();
    p.push(config()).unwrap();
    p.push(video(0, false)).unwrap();
    let wanted = || {
        hub.stream(&key())
            .unwrap()
            .stats
            .keyframe_wanted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert!(!wanted());
    // Nothing cached to start from: the publisher is asked for a keyframe.
    let _viewer = hub.subscribe(&key(), Protocol::Flv).unwrap();
    assert!(wanted());
}

fn audio(dts: i64) -> Frame {
    Frame::audio(dts, Bytes::from_static(&[0x21, 0]))
}

/// Each track's dts of what is ready now.
fn tracks(s: &mut Subscriber) -> (Vec<i64>, Vec<i64>) {
    let (mut v, mut a) = (Vec::new(), Vec::new());
    while let TryRecv::Frame(f) = s.try_recv() {
        match f.kind {
            FrameKind::Video => v.push(f.dts),
            FrameKind::Audio => a.push(f.dts),
            _ => {}
        }
    }
    (v, a)
}

fn forward(dts: &[i64]) -> bool {
    dts.windows(2).all(|w| w[1] > w[0])
}

#[tokio::test]
async fn each_track_keeps_going_forward_across_a_takeover_and_back() {
    let hub = hub(0);
    let key = key();
    let host = hub.publish(key.clone(), Protocol::Rtmp).unwrap();
    let mut viewer = hub.subscribe(&key, Protocol::Flv).unwrap();
    // The host: pictures every 40 ms, sound every 21 ms, its last
    // sound frame after its last picture.
    for i in 0..10 {
        host.push(video(1000 + i * 40, i == 0)).unwrap();
        host.push(audio(1000 + i * 40 + 5)).unwrap();
        host.push(audio(1000 + i * 40 + 26)).unwrap();
    }
    let (mut v, mut a) = tracks(&mut viewer);
    // A mix whose sound encoder stamps its first packets before its
    // first picture (its priming).
    let mix = hub.take_over(&key, Protocol::Internal).unwrap();
    mix.push(video(100, true)).unwrap();
    mix.push(audio(57)).unwrap();
    mix.push(audio(78)).unwrap();
    for i in 1..5 {
        mix.push(video(100 + i * 66, false)).unwrap();
        mix.push(audio(78 + i * 21)).unwrap();
    }
    let (mv, ma) = tracks(&mut viewer);
    assert_eq!((mv.len(), ma.len()), (5, 6));
    v.extend(mv);
    a.extend(ma);
    // Given back: the host's keyframe comes first, its sound of a few
    // ms before it next (interleaving).
    mix.end();
    host.push(video(1600, true)).unwrap();
    host.push(audio(1598)).unwrap();
    host.push(audio(1619)).unwrap();
    host.push(video(1640, false)).unwrap();
    let (hv, ha) = tracks(&mut viewer);
    assert_eq!((hv.len(), ha.len()), (2, 2));
    v.extend(hv);
    a.extend(ha);
    assert!(forward(&v), "video: {v:?}");
    assert!(forward(&a), "audio: {a:?}");
}
