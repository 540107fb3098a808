//! (b) A str0m client plays (WHEP); frames written with `write_media` arrive intact.

use std::time::{Duration, Instant};
use str0m::RtcConfig;

use str0m::media::Direction as S0Direction;

use super::harness::{annexb, idr_nals, nalus, p_nals, payload, run_until, HostSide, Peer};
use crate::{Codec, Direction, MediaOut, RtcError, SessionEvent};

#[test]
fn written_frames_reach_the_viewer() {
    let mut host = HostSide::new();
    // H.264 and Opus only, so that VP8 is a codec it did not negotiate.
    let config = RtcConfig::new()
        .clear_codecs()
        .enable_h264(true)
        .enable_opus(true, false);
    let (mut peer, offer) = Peer::with_config(config, S0Direction::RecvOnly);
    let (id, answer) = host
        .host
        .accept_offer(Direction::Play, &offer, Instant::now())
        .expect("offer accepted");
    assert!(answer.contains("a=ice-lite"), "an ICE-lite answer");
    assert!(
        answer.contains(&format!("{}", host.addr.port())),
        "our candidate"
    );

    // Before ICE and DTLS are up, writing is refused rather than lost silently.
    let early = MediaOut {
        codec: Codec::Opus,
        rtp_time: 0,
        wallclock: Instant::now(),
        data: &[1, 2, 3],
    };
    let err = host
        .host
        .write_media(id, early, Instant::now())
        .unwrap_err();
    assert!(matches!(err, RtcError::NotConnected(_)), "{err}");

    peer.accept_answer(&answer);
    let up = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(10),
        |h, p| h.is_connected(id) && p[0].connected,
    );
    assert!(up, "viewer did not connect");

    let mut sent_video = vec![idr_nals(9)];
    sent_video.extend((10..13).map(p_nals));
    let sent_audio: Vec<Vec<u8>> = (0..5).map(|i| payload(50 + i, 90)).collect();
    let start = Instant::now();
    for (i, au) in sent_video.iter().enumerate() {
        let data = annexb(au);
        let out = MediaOut {
            codec: Codec::H264,
            rtp_time: 3000 * i as u64,
            wallclock: start + Duration::from_millis(33 * i as u64),
            data: &data,
        };
        host.host
            .write_media(id, out, Instant::now())
            .expect("video written");
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(5),
            |_, _| false,
        );
    }
    for (i, packet) in sent_audio.iter().enumerate() {
        let out = MediaOut {
            codec: Codec::Opus,
            rtp_time: 960 * i as u64,
            wallclock: start + Duration::from_millis(20 * i as u64),
            data: packet,
        };
        host.host
            .write_media(id, out, Instant::now())
            .expect("audio written");
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(5),
            |_, _| false,
        );
    }

    let (v, a) = (peer.video, peer.audio);
    let all = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |_, p| {
            p[0].media.iter().filter(|m| m.mid == v).count() >= sent_video.len()
                && p[0].media.iter().filter(|m| m.mid == a).count() >= sent_audio.len()
        },
    );
    assert!(all, "viewer got {} frames", peer.media.len());
    let video: Vec<_> = peer.media.iter().filter(|m| m.mid == v).collect();
    let audio: Vec<_> = peer.media.iter().filter(|m| m.mid == a).collect();
    for (i, (got, want)) in video.iter().zip(&sent_video).enumerate() {
        assert_eq!(&nalus(&got.data), want, "video frame {i}");
    }
    for (got, want) in audio.iter().zip(&sent_audio) {
        assert_eq!(&got.data[..], &want[..]);
    }

    // A codec the viewer did not negotiate, and a publish-only call.
    let vp8 = MediaOut {
        codec: Codec::Vp8,
        rtp_time: 0,
        wallclock: Instant::now(),
        data: &[1],
    };
    let err = host.host.write_media(id, vp8, Instant::now()).unwrap_err();
    assert!(matches!(err, RtcError::CodecNotNegotiated { .. }), "{err}");
    let err = host.host.request_keyframe(id, Instant::now()).unwrap_err();
    assert!(
        matches!(err, RtcError::WrongSessionDirection { .. }),
        "{err}"
    );

    // The viewer's PLI surfaces as a KeyframeRequest event.
    peer.request_keyframe();
    let asked = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |h, _| {
            h.events
                .iter()
                .any(|(s, e)| *s == id && matches!(e, SessionEvent::KeyframeRequest(..)))
        },
    );
    assert!(asked, "no KeyframeRequest event");
}

#[test]
fn lost_packets_are_retransmitted_to_the_viewer() {
    let mut host = HostSide::new();
    let (mut peer, offer) = Peer::new(S0Direction::RecvOnly);
    let (id, _) = super::harness::connect(&mut host, &mut peer, &offer, Direction::Play);
    // Lose a fragment of the IDR and one P frame: the viewer NACKs them and
    // the host resends them (RTX) from str0m's send buffer.
    host.drop_rtp = vec![1, 5];
    let mut sent = vec![idr_nals(20)];
    sent.extend((21..26).map(p_nals));
    let start = Instant::now();
    for (i, au) in sent.iter().enumerate() {
        let data = annexb(au);
        let out = MediaOut {
            codec: Codec::H264,
            rtp_time: 3000 * i as u64,
            wallclock: start + Duration::from_millis(33 * i as u64),
            data: &data,
        };
        host.host
            .write_media(id, out, Instant::now())
            .expect("video written");
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(20),
            |_, _| false,
        );
    }
    let v = peer.video;
    let all = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |_, p| p[0].media.iter().filter(|m| m.mid == v).count() >= sent.len(),
    );
    assert!(
        all,
        "viewer got {} of {} frames",
        peer.media.len(),
        sent.len()
    );
    // 14 original packets at str0m's default MTU, plus the 2 resends.
    assert!(
        host.rtp_sent >= 16,
        "only {} RTP datagrams sent",
        host.rtp_sent
    );
    for (i, (got, want)) in peer.media.iter().zip(&sent).enumerate() {
        assert_eq!(&nalus(&got.data), want, "frame {i}");
    }
}
