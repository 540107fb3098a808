//! (d) Sessions come and go without leaving anything behind.

use std::time::{Duration, Instant};

use str0m::media::Direction as S0Direction;

use super::harness::{connect, run_until, HostSide, Peer};
use crate::{CloseReason, Direction, HostOutput, RtcError, RtcHost, RtcHostConfig, SessionEvent};

fn closed_events(host: &mut RtcHost, now: Instant) -> Vec<CloseReason> {
    let mut reasons = Vec::new();
    loop {
        match host.poll(now) {
            HostOutput::Event {
                event: SessionEvent::Closed { reason },
                ..
            } => reasons.push(reason),
            HostOutput::Timeout(_) => return reasons,
            _ => {}
        }
    }
}

#[test]
fn two_hundred_sessions_opened_and_closed() {
    let (_, addr) = super::harness::bind();
    let mut host = RtcHost::new(RtcHostConfig::new(vec![addr]));
    let (_peer, offer) = Peer::new(S0Direction::SendOnly);
    let now = Instant::now();
    let ids: Vec<_> = (0..200)
        .map(|_| {
            host.accept_offer(Direction::Publish, &offer, now)
                .expect("offer accepted")
                .0
        })
        .collect();
    assert_eq!(host.session_count(), 200);
    assert_eq!(host.routing_table_sizes().0, 200, "one ufrag each");
    for id in &ids {
        assert!(host.close(*id));
        assert!(!host.close(*id), "closing twice is a no-op");
    }
    assert_eq!(host.session_count(), 0);
    assert_eq!(host.routing_table_sizes(), (0, 0));
    let reasons = closed_events(&mut host, now);
    assert_eq!(reasons.len(), 200);
    assert!(reasons.iter().all(|r| *r == CloseReason::Local));
}

/// A host with one WHEP session whose client never sends a datagram, with
/// these silence and connect timeouts (seconds); and when it was made.
fn one_unconnected_viewer(silence: u64, connect: u64) -> (RtcHost, Instant) {
    let config = RtcHostConfig {
        session_timeout: Duration::from_secs(silence),
        connect_timeout: Duration::from_secs(connect),
        ..RtcHostConfig::new(vec!["127.0.0.1:9".parse().expect("addr")])
    };
    let mut host = RtcHost::new(config);
    let (_peer, offer) = Peer::new(S0Direction::RecvOnly);
    let t0 = Instant::now();
    host.accept_offer(Direction::Play, &offer, t0)
        .expect("offer accepted");
    (host, t0)
}

#[test]
fn silent_sessions_time_out() {
    let (mut host, t0) = one_unconnected_viewer(15, 60);
    assert!(closed_events(&mut host, t0 + Duration::from_secs(14)).is_empty());
    assert_eq!(host.session_count(), 1);
    let reasons = closed_events(&mut host, t0 + Duration::from_secs(16));
    assert_eq!(reasons, vec![CloseReason::Timeout]);
    assert_eq!(host.session_count(), 0);
    assert_eq!(host.routing_table_sizes(), (0, 0));
}

/// A session that never connects ends at the connect deadline, before its
/// silence timeout: a client may not hold one by sending checks alone.
#[test]
fn unconnected_sessions_end_at_the_connect_deadline() {
    let (mut host, t0) = one_unconnected_viewer(60, 10);
    assert!(closed_events(&mut host, t0 + Duration::from_secs(9)).is_empty());
    let reasons = closed_events(&mut host, t0 + Duration::from_secs(11));
    assert_eq!(reasons, vec![CloseReason::NeverConnected]);
    assert_eq!(host.session_count(), 0);
}

#[test]
fn session_limit_is_enforced() {
    let config = RtcHostConfig {
        max_sessions: 2,
        ..RtcHostConfig::new(vec!["127.0.0.1:9".parse().expect("addr")])
    };
    let mut host = RtcHost::new(config);
    let (_peer, offer) = Peer::new(S0Direction::SendOnly);
    let now = Instant::now();
    host.accept_offer(Direction::Publish, &offer, now)
        .expect("first");
    host.accept_offer(Direction::Publish, &offer, now)
        .expect("second");
    let err = host
        .accept_offer(Direction::Publish, &offer, now)
        .unwrap_err();
    assert!(matches!(err, RtcError::TooManySessions(2)), "{err}");
}

#[test]
fn closing_a_connected_session_tells_the_client() {
    let mut host = HostSide::new();
    let (mut peer, offer) = Peer::new(S0Direction::SendOnly);
    let (id, _) = connect(&mut host, &mut peer, &offer, Direction::Publish);
    assert!(host.host.close(id));
    let gone = run_until(
        &mut host,
        &mut [&mut peer],
        Duration::from_secs(5),
        |_, p| !p[0].rtc.is_alive(),
    );
    assert!(gone, "the client did not see the DTLS close");
    assert!(host.events.iter().any(|(s, e)| *s == id
        && matches!(
            e,
            SessionEvent::Closed {
                reason: CloseReason::Local
            }
        )));
    assert_eq!(host.host.session_count(), 0);
    assert_eq!(host.host.routing_table_sizes(), (0, 0));
}

#[test]
fn client_hangup_and_silence_end_sessions() {
    let mut host = HostSide::new();
    let (mut leaving, offer) = Peer::new(S0Direction::SendOnly);
    let (left, _) = connect(&mut host, &mut leaving, &offer, Direction::Publish);
    let (mut silent, offer) = Peer::new(S0Direction::RecvOnly);
    let (quiet, _) = connect(&mut host, &mut silent, &offer, Direction::Play);

    // The publisher hangs up (DTLS close_notify).
    leaving.rtc.close().expect("client close");
    let told = run_until(
        &mut host,
        &mut [&mut leaving, &mut silent],
        Duration::from_secs(5),
        |h, _| {
            h.events.iter().any(|(s, e)| {
                *s == left
                    && matches!(
                        e,
                        SessionEvent::Closed {
                            reason: CloseReason::PeerClosed
                        }
                    )
            })
        },
    );
    assert!(told, "no PeerClosed: {:?}", host.events.last());
    assert_eq!(host.host.session_count(), 1);

    // The viewer goes silent: 16 s later (on the host's clock) it is gone.
    let later = Instant::now() + Duration::from_secs(16);
    let reasons = closed_events(&mut host.host, later);
    assert_eq!(reasons, vec![CloseReason::Timeout]);
    assert_eq!(host.host.session_count(), 0);
    assert_eq!(host.host.routing_table_sizes(), (0, 0));
    assert!(host.host.stats(quiet).is_none());
}

#[test]
fn trickled_candidates() {
    let (_, addr) = super::harness::bind();
    let mut host = RtcHost::new(RtcHostConfig::new(vec![addr]));
    let (_peer, offer) = Peer::new(S0Direction::SendOnly);
    let now = Instant::now();
    let (id, _) = host
        .accept_offer(Direction::Publish, &offer, now)
        .expect("offer accepted");
    for line in [
        "candidate:1 1 udp 2113929471 192.0.2.10 40000 typ host",
        "a=candidate:2 1 udp 1677729535 198.51.100.7 50000 typ srflx raddr 192.0.2.10 rport 40000\r\n",
    ] {
        host.add_remote_candidate(id, line, now).expect(line);
    }
    for bad in ["", "candidate:", "hello", &"x".repeat(5000)] {
        let err = host.add_remote_candidate(id, bad, now).unwrap_err();
        assert!(matches!(err, RtcError::BadCandidate(_)), "{bad:?}: {err}");
    }
    let gone = crate::SessionId(9999);
    let err = host.add_remote_candidate(gone, "candidate:1 1 udp 1 192.0.2.1 1 typ host", now);
    assert!(matches!(err, Err(RtcError::UnknownSession(_))));
    assert_eq!(host.session_count(), 1);
    // Up to MAX_TRICKLED_CANDIDATES in all (2 above), then refused: a
    // client cannot grow the session's candidate pairs without end.
    let max = crate::config::MAX_TRICKLED_CANDIDATES;
    for port in 0..(max - 2) {
        let line = format!(
            "candidate:{port} 1 udp 2113929471 192.0.2.10 {} typ host",
            41000 + port
        );
        host.add_remote_candidate(id, &line, now)
            .expect("within the cap");
    }
    let err = host
        .add_remote_candidate(
            id,
            "candidate:99 1 udp 2113929471 192.0.2.10 42000 typ host",
            now,
        )
        .unwrap_err();
    assert!(
        matches!(err, RtcError::TooManyCandidates(n) if n == max),
        "{err}"
    );
}
