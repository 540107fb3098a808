//! (c) Bad offers get the right errors; garbage datagrams are dropped and
//! counted without disturbing an established session.

use std::time::{Duration, Instant};

use str0m::format::Codec as S0Codec;
use str0m::media::Direction as S0Direction;
use str0m::RtcConfig;

use super::harness::{annexb, answer_ufrag, bind, connect, idr_nals, run_until, HostSide, Peer};
use crate::{Direction, MediaKind, RtcError, SessionEvent, MAX_OFFER_LEN};

#[test]
fn bad_offers_get_clear_errors() {
    let mut host = HostSide::new();
    let now = Instant::now();
    for body in [
        "",
        "hello",
        "{\"type\":\"offer\"}",
        "v=0\r\nthis is not sdp\r\n",
    ] {
        let err = host
            .host
            .accept_offer(Direction::Publish, body, now)
            .unwrap_err();
        assert!(matches!(err, RtcError::NotSdp(_)), "{body:?}: {err}");
    }
    let huge = format!("v=0\r\n{}", "a=x\r\n".repeat(MAX_OFFER_LEN / 4));
    let err = host
        .host
        .accept_offer(Direction::Publish, &huge, now)
        .unwrap_err();
    assert!(matches!(err, RtcError::OfferTooLarge { .. }), "{err}");

    // VP9 video and PCMU audio only: nothing we take.
    let config = RtcConfig::new()
        .clear_codecs()
        .enable_vp9(true)
        .enable_pcmu(true, false);
    let (_peer, offer) = Peer::with_config(config, S0Direction::SendOnly);
    let err = host
        .host
        .accept_offer(Direction::Publish, &offer, now)
        .unwrap_err();
    match &err {
        RtcError::NoSupportedCodec(msg) => {
            let msg = msg.to_ascii_lowercase();
            assert!(msg.contains("vp9") && msg.contains("pcmu"), "{msg}");
        }
        other => panic!("expected NoSupportedCodec, got {other}"),
    }

    // A viewer's offer (recvonly) for publishing, and a publisher's for playing.
    let (_peer, recv_offer) = Peer::new(S0Direction::RecvOnly);
    let err = host
        .host
        .accept_offer(Direction::Publish, &recv_offer, now)
        .unwrap_err();
    assert!(matches!(err, RtcError::WrongDirection(_)), "{err}");
    let (_peer, send_offer) = Peer::new(S0Direction::SendOnly);
    let err = host
        .host
        .accept_offer(Direction::Play, &send_offer, now)
        .unwrap_err();
    assert!(matches!(err, RtcError::WrongDirection(_)), "{err}");

    assert_eq!(
        host.host.session_count(),
        0,
        "failed offers leave no session"
    );
    assert_eq!(host.host.routing_table_sizes(), (0, 0));
}

/// xorshift64: deterministic garbage.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn stun_attr(out: &mut Vec<u8>, typ: u16, value: &[u8]) {
    out.extend_from_slice(&typ.to_be_bytes());
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().div_ceil(4) * 4, 0);
}

/// An ICE check that parses but carries a wrong MESSAGE-INTEGRITY.
fn forged_check(server_ufrag: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    stun_attr(
        &mut attrs,
        0x0006,
        format!("{server_ufrag}:evil").as_bytes(),
    );
    stun_attr(&mut attrs, 0x0024, &[0x6e, 0x00, 0x1e, 0xff]);
    stun_attr(&mut attrs, 0x0008, &[0xab; 20]);
    let mut msg = vec![0x00, 0x01];
    msg.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    msg.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    msg.extend_from_slice(&[9; 12]);
    msg.extend_from_slice(&attrs);
    msg
}

#[test]
fn garbage_datagrams_do_not_disturb_a_session() {
    let mut host = HostSide::new();
    let (mut peer, offer) = Peer::new(S0Direction::SendOnly);
    let (id, answer) = connect(&mut host, &mut peer, &offer, Direction::Publish);
    let ufrag = answer_ufrag(&answer);

    let (attacker, _) = bind();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut junk: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let len = (rng.next() % 1400) as usize;
            rng.bytes(len)
        })
        .collect();
    // STUN-looking: a binding request header whose length lies, a truncated one.
    let mut lying = crate::stun_server::binding_request(&[1; 12]);
    lying[3] = 8;
    junk.push(lying);
    junk.push(crate::stun_server::binding_request(&[2; 12])[..19].to_vec());
    // ICE checks: forged integrity for the live session, and an unknown ufrag.
    junk.push(forged_check(&ufrag));
    junk.push(forged_check("nosuchufrag"));
    // DTLS and RTP from an address no session knows.
    let mut dtls = vec![22, 0xfe, 0xfd];
    dtls.extend(rng.bytes(60));
    junk.push(dtls);
    let mut rtp = vec![0x80, 0x60];
    rtp.extend(rng.bytes(100));
    junk.push(rtp);
    // In small batches, so the kernel's socket buffer never overflows.
    for batch in junk.chunks(16) {
        for d in batch {
            let _ = attacker.send_to(d, host.addr);
        }
        run_until(
            &mut host,
            &mut [&mut peer],
            Duration::from_millis(2),
            |_, _| false,
        );
    }
    // Corrupt DTLS and SRTP from the publisher's own address reach the
    // session itself, which must shrug them off.
    let mut bad_dtls = vec![23, 0xfe, 0xfd, 0, 1];
    bad_dtls.extend(rng.bytes(80));
    let mut bad_srtp = vec![0x80, 0x66, 0, 1];
    bad_srtp.extend(rng.bytes(200));
    for d in [&bad_dtls, &bad_srtp] {
        let _ = peer.socket.send_to(d, host.addr);
    }

    run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_millis(200),
        |_, _| false,
    );
    let c = host.host.counters();
    assert!(c.dropped_malformed > 0, "{c:?}");
    assert!(
        c.dropped_malformed + c.dropped_unknown + c.dropped_rejected >= junk.len() as u64,
        "every junk datagram is accounted for: {c:?}"
    );
    assert!(c.dropped_unknown >= 3, "{c:?}");
    assert!(c.dropped_rejected >= 1, "the forged check: {c:?}");
    assert_eq!(
        c.stun_replies, 0,
        "nothing here is a valid plain request: {c:?}"
    );
    assert_eq!(host.host.session_count(), 1);
    assert!(!host
        .events
        .iter()
        .any(|(_, e)| matches!(e, SessionEvent::Closed { .. })));

    // The session still carries media.
    peer.write(S0Codec::H264, 0, &annexb(&idr_nals(3)));
    let got = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |h, _| {
            h.media_in(id)
                .iter()
                .any(|f| f.kind == MediaKind::Video && f.keyframe)
        },
    );
    assert!(
        got,
        "no media after the garbage; counters {:?}",
        host.host.counters()
    );
}
