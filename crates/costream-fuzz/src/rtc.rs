//! WebRTC: SDP offers and answers, trickled candidates, and the packets of
//! the shared UDP port and of ICE-TCP connections (STUN, then DTLS and
//! SRTP once a check has taught the host the client's address), all
//! through `RtcHost` as the server drives it.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use bytes::BytesMut;
use costream_rtc::{Direction, HostOutput, RtcHost, RtcHostConfig, SessionId, Transport};
use str0m::ice::{StunMessage, TransId};
use str0m::media::{Direction as S0Direction, MediaKind};
use str0m::{Candidate, Rtc};

use crate::{read_size, Input};

const UDP: &str = "127.0.0.1:5000";
const TCP: &str = "127.0.0.1:5001";
const CLIENT: &str = "127.0.0.1:40000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

thread_local! {
    /// One host for all inputs (it makes a DTLS certificate when created);
    /// every input's sessions are closed before the next.
    static HOST: RefCell<RtcHost> = RefCell::new(RtcHost::new(RtcHostConfig {
        tcp_candidates: vec![addr(TCP)],
        ..RtcHostConfig::new(vec![addr(UDP)])
    }));
}

/// A browser-like offer made by a str0m client: audio and video, sent for
/// a publish session, received for a play one.
fn offer(direction: Direction) -> &'static str {
    static PUBLISH: OnceLock<String> = OnceLock::new();
    static PLAY: OnceLock<String> = OnceLock::new();
    let (cell, dir) = match direction {
        Direction::Publish => (&PUBLISH, S0Direction::SendOnly),
        Direction::Play => (&PLAY, S0Direction::RecvOnly),
    };
    cell.get_or_init(|| {
        let mut rtc = Rtc::new(Instant::now());
        let c = Candidate::host(addr(CLIENT), "udp").expect("a host candidate");
        rtc.add_local_candidate(c);
        let mut api = rtc.sdp_api();
        api.add_media(MediaKind::Audio, dir, None, None, None);
        api.add_media(MediaKind::Video, dir, None, None, None);
        let (offer, _) = api.apply().expect("an offer");
        offer.to_sdp_string()
    })
}

/// Polls until the host has nothing more to do now.
fn drain(host: &mut RtcHost, now: Instant) {
    while !matches!(host.poll(now), HostOutput::Timeout(_)) {}
}

fn finish(host: &mut RtcHost, session: SessionId, now: Instant) {
    host.close(session);
    drain(host, now);
}

/// Input: a mode byte, then text. Mode % 4: 0 a WHIP offer, 1 a WHEP offer,
/// 2 an answer to the server's offer (a room's subscriber connection),
/// 3 a trickle (PATCH) body for a session.
pub fn sdp(data: &[u8]) {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    HOST.with_borrow_mut(|host| {
        let now = Instant::now();
        match mode % 4 {
            m @ (0 | 1) => {
                // The WHIP/WHEP handlers refuse a body that is not UTF-8.
                let Ok(text) = std::str::from_utf8(text) else {
                    return;
                };
                let direction = if m == 0 {
                    Direction::Publish
                } else {
                    Direction::Play
                };
                if let Ok((session, answer)) = host.accept_offer(direction, text, now) {
                    assert!(answer.starts_with("v=0"), "an answer is SDP");
                    finish(host, session, now);
                }
            }
            2 => {
                let session = host.create_offerer(now).expect("a subscriber session");
                host.renegotiate(session, &["alice".to_string()], &[], now)
                    .expect("an offer to answer");
                if let Ok(text) = std::str::from_utf8(text) {
                    let _ = host.accept_answer(session, text, now);
                }
                finish(host, session, now);
            }
            _ => {
                let (session, _) = host
                    .accept_offer(Direction::Publish, offer(Direction::Publish), now)
                    .expect("a str0m offer is accepted");
                // As the RTC task takes a trickle's lines: up to the first refusal.
                for line in costream::webrtc::fuzzing::trickle_lines(text) {
                    if host.add_remote_candidate(session, &line, now).is_err() {
                        break;
                    }
                }
                finish(host, session, now);
            }
        }
        drain(host, now);
    });
}

/// Input: a flags byte (bit 0: a play session instead of publish; bit 1:
/// one ICE-TCP connection's byte stream, RFC 4571 framed, instead of UDP
/// datagrams), a read-size byte, then the packets. UDP datagrams are each
/// a 2-byte length and the datagram. A packet starting 0xff (which no
/// protocol on the port uses) stands for a valid ICE check for the session,
/// its remaining bytes giving the priority and flags, so the fuzzer gets
/// past MESSAGE-INTEGRITY and on to DTLS and SRTP. An ICE-TCP connection
/// ends at the first packet it refuses (a first one that is not STUN, a
/// later one that is no WebRTC protocol), as the server's does.
pub fn rtc_packets(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let step = read_size(input.byte());
    let direction = if flags & 1 == 0 {
        Direction::Publish
    } else {
        Direction::Play
    };
    HOST.with_borrow_mut(|host| {
        let now = Instant::now();
        let (session, answer) = host
            .accept_offer(direction, offer(direction), now)
            .expect("a str0m offer is accepted");
        drain(host, now);
        let creds = Creds::new(offer(direction), &answer);
        if flags & 2 == 0 {
            while !input.is_empty() {
                let len = usize::from(input.u16()) % 2048;
                let packet = input.take(len);
                deliver(host, Transport::Udp, packet, &creds, now, false);
            }
        } else {
            let mut buf = BytesMut::new();
            let mut first = true;
            'connection: for piece in input.rest().chunks(step) {
                buf.extend_from_slice(piece);
                while let Some(packet) = costream::webrtc::fuzzing::ice_tcp_next_frame(&mut buf) {
                    // A packet the connection refuses ends it.
                    if !deliver(host, Transport::Tcp, &packet, &creds, now, first) {
                        break 'connection;
                    }
                    first = false;
                }
            }
        }
        finish(host, session, now);
    });
}

/// The session's ICE credentials, from its answer, and the client's ufrag,
/// from the offer (a check's USERNAME must name both).
struct Creds {
    ufrag: String,
    pwd: String,
    remote_ufrag: String,
}

impl Creds {
    fn new(offer: &str, answer: &str) -> Creds {
        let attr = |sdp: &str, name: &str| {
            sdp.lines()
                .find_map(|l| l.strip_prefix(name))
                .expect("ICE credentials in the SDP")
                .trim()
                .to_string()
        };
        Creds {
            ufrag: attr(answer, "a=ice-ufrag:"),
            pwd: attr(answer, "a=ice-pwd:"),
            remote_ufrag: attr(offer, "a=ice-ufrag:"),
        }
    }
}

/// Feeds one packet; false if an ICE-TCP connection would have refused
/// it (and closed).
fn deliver(
    host: &mut RtcHost,
    transport: Transport,
    packet: &[u8],
    creds: &Creds,
    now: Instant,
    first: bool,
) -> bool {
    let (source, local) = match transport {
        Transport::Udp => (addr(CLIENT), addr(UDP)),
        Transport::Tcp => (addr(CLIENT), addr(TCP)),
    };
    let check;
    let packet = match packet.split_first() {
        Some((0xff, params)) => {
            check = ice_check(params, creds);
            &check[..]
        }
        _ => packet,
    };
    if transport == Transport::Tcp && !costream::webrtc::fuzzing::ice_tcp_admits(packet, first) {
        return false;
    }
    host.handle_packet(now, transport, source, local, packet);
    drain(host, now);
    true
}

/// A binding request as a browser sends it, signed with the session's password.
fn ice_check(params: &[u8], creds: &Creds) -> Vec<u8> {
    static CRYPTO: OnceLock<str0m::config::CryptoProvider> = OnceLock::new();
    let crypto = CRYPTO.get_or_init(str0m::crypto::from_feature_flags);
    let mut p = Input::new(params);
    let username = format!("{}:{}", creds.ufrag, creds.remote_ufrag);
    let prio = u32::from(p.u16()) << 16 | u32::from(p.u16());
    let flags = p.byte();
    let msg = StunMessage::binding_request(
        &username,
        TransId::new(),
        flags & 1 != 0,
        u64::from(p.u16()),
        prio,
        flags & 2 != 0,
    );
    let mut buf = vec![0u8; 1500];
    let n = msg
        .to_bytes(Some(creds.pwd.as_bytes()), &mut buf, |key, parts| {
            crypto.sha1_hmac_provider.sha1_hmac(key, parts)
        })
        .expect("a binding request fits 1500 bytes");
    buf.truncate(n);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 0xff stand-in must pass MESSAGE-INTEGRITY, or the target would
    /// never reach DTLS and SRTP.
    #[test]
    fn a_stand_in_check_is_answered() {
        HOST.with_borrow_mut(|host| {
            let now = Instant::now();
            let (session, answer) = host
                .accept_offer(Direction::Publish, offer(Direction::Publish), now)
                .expect("accepted");
            drain(host, now);
            let check = ice_check(
                &[0x6e, 0x7f, 0x1e, 0xff, 3],
                &Creds::new(offer(Direction::Publish), &answer),
            );
            host.handle_packet(now, Transport::Udp, addr(CLIENT), addr(UDP), &check);
            let mut answered = false;
            loop {
                match host.poll(now) {
                    HostOutput::Transmit { data, .. } => answered |= data.first() == Some(&1),
                    HostOutput::Timeout(_) => break,
                    HostOutput::Event { .. } => {}
                }
            }
            assert!(answered, "a binding response");
            finish(host, session, now);
        });
    }
}
