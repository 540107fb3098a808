//! (a) A str0m client publishes H.264 + Opus (WHIP); the host emits MediaIn
//! with the same frames.

use std::time::Duration;

use str0m::format::Codec as S0Codec;
use str0m::media::Direction as S0Direction;

use super::harness::{
    annexb, connect, idr_nals, nalus, p_nals, payload, run_until, HostSide, Peer,
};
use crate::{Codec, Direction, MediaKind};

#[test]
fn publisher_frames_arrive_as_media_in() {
    let mut host = HostSide::new();
    let (mut peer, offer) = Peer::new(S0Direction::SendOnly);
    let (id, _) = connect(&mut host, &mut peer, &offer, Direction::Publish);
    assert_eq!(host.host.session_count(), 1);
    assert_eq!(host.host.direction(id), Some(Direction::Publish));

    // One IDR access unit, then three P frames, 30 fps; 20 ms Opus packets.
    let mut sent_video = vec![idr_nals(1)];
    sent_video.extend((2..5).map(p_nals));
    let sent_audio: Vec<Vec<u8>> = (0..5).map(|i| payload(100 + i, 120)).collect();
    for (i, au) in sent_video.iter().enumerate() {
        peer.write(S0Codec::H264, 3000 * i as u64, &annexb(au));
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(5),
            |_, _| false,
        );
    }
    for (i, packet) in sent_audio.iter().enumerate() {
        peer.write(S0Codec::Opus, 960 * i as u64, packet);
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(5),
            |_, _| false,
        );
    }

    let all = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |h, _| {
            let frames = h.media_in(id);
            frames.iter().filter(|f| f.kind == MediaKind::Video).count() >= sent_video.len()
                && frames.iter().filter(|f| f.kind == MediaKind::Audio).count() >= sent_audio.len()
        },
    );
    assert!(all, "not all frames arrived: {:?}", host.media_in(id).len());

    let frames = host.media_in(id);
    let video: Vec<_> = frames
        .iter()
        .filter(|f| f.kind == MediaKind::Video)
        .collect();
    let audio: Vec<_> = frames
        .iter()
        .filter(|f| f.kind == MediaKind::Audio)
        .collect();
    for (i, (got, want)) in video.iter().zip(&sent_video).enumerate() {
        assert_eq!(got.codec, Codec::H264);
        assert_eq!(got.clock_rate, 90_000);
        assert_eq!(&nalus(&got.data), want, "video frame {i}");
        assert_eq!(got.keyframe, i == 0, "keyframe flag of frame {i}");
        // Annex B with 4-byte start codes, as documented.
        assert_eq!(&got.data[..4], &[0, 0, 0, 1]);
    }
    for w in video.windows(2) {
        assert_eq!(w[1].rtp_time - w[0].rtp_time, 3000);
    }
    for (got, want) in audio.iter().zip(&sent_audio) {
        assert_eq!(got.codec, Codec::Opus);
        assert_eq!(got.clock_rate, 48_000);
        assert_eq!(&got.data[..], &want[..]);
    }

    // Keyframe requests reach the publisher as PLI.
    host.host
        .request_keyframe(id, std::time::Instant::now())
        .expect("keyframe request");
    let asked = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |_, p| p[0].keyframe_requests > 0,
    );
    assert!(asked, "the publisher got no PLI");

    // Asking a Publish session to play is an error.
    let err = host
        .host
        .write_media(
            id,
            crate::MediaOut {
                codec: Codec::Opus,
                rtp_time: 0,
                wallclock: std::time::Instant::now(),
                data: &[1, 2, 3],
            },
            std::time::Instant::now(),
        )
        .unwrap_err();
    assert!(
        matches!(err, crate::RtcError::WrongSessionDirection { .. }),
        "{err}"
    );

    // str0m reports peer statistics once a second.
    let counted = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(3),
        |h, _| h.host.stats(id).is_some_and(|s| s.bytes_rx > 0),
    );
    let stats = host.host.stats(id).expect("stats");
    assert!(counted && stats.connected, "{stats:?}");
    assert!(stats.remote == Some(peer.addr), "{stats:?}");
}
