//! Classifies a datagram arriving on the shared UDP port so the host can route
//! it: ICE checks by the ufrag in their USERNAME, plain STUN to the built-in
//! STUN server, everything else (DTLS, SRTP, SRTCP) by source address.
//!
//! The first-byte ranges follow RFC 7983 §7 (as str0m does): 0..=3 STUN,
//! 20..=63 DTLS, 128..=191 RTP/RTCP.

use str0m::ice::StunMessage;

use crate::stun_server::{self, TransactionId};

/// Larger datagrams are never produced by WebRTC peers (str0m's own limit is
/// 2000 bytes); refusing them early bounds the work hostile input can cause.
pub(crate) const MAX_DATAGRAM: usize = 2000;

/// What a datagram is, as far as routing goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    /// An ICE connectivity check for the session whose local ufrag this is.
    IceCheck { local_ufrag: &'a str },
    /// A STUN binding request without ICE credentials.
    PlainBinding(TransactionId),
    /// Other STUN (responses, indications), DTLS or RTP/RTCP: route by address.
    ByAddress,
    /// Nothing we understand.
    Malformed,
}

pub(crate) fn classify(data: &[u8]) -> Datagram<'_> {
    let Some(&first) = data.first() else {
        return Datagram::Malformed;
    };
    if data.len() > MAX_DATAGRAM {
        return Datagram::Malformed;
    }
    match first {
        0..=3 => classify_stun(data),
        20..=63 => Datagram::ByAddress,
        128..=191 if data.len() >= 12 => Datagram::ByAddress,
        _ => Datagram::Malformed,
    }
}

fn classify_stun(data: &[u8]) -> Datagram<'_> {
    match StunMessage::parse(data) {
        Ok(msg) if msg.is_binding_request() => {
            // str0m only parses a binding request that has a USERNAME, so a
            // missing or unsplittable one is malformed here.
            match msg.username().and_then(split_ice_username) {
                Some((local, _remote)) => Datagram::IceCheck { local_ufrag: local },
                None => Datagram::Malformed,
            }
        }
        Ok(_) => Datagram::ByAddress,
        // str0m refuses binding requests without ICE attributes: those are
        // plain STUN clients, answered by our STUN server.
        Err(_) => match stun_server::parse_binding_request(data) {
            Some(tid) => Datagram::PlainBinding(tid),
            None => Datagram::Malformed,
        },
    }
}

/// Splits an ICE USERNAME "recipientUfrag:senderUfrag" (RFC 8445 §7.2.2).
/// In a check sent to us the first part is our (the server's) ufrag.
pub(crate) fn split_ice_username(username: &str) -> Option<(&str, &str)> {
    let (local, remote) = username.split_once(':')?;
    if local.is_empty() || remote.is_empty() {
        return None;
    }
    Some((local, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_usernames() {
        assert_eq!(split_ice_username("srv:cli"), Some(("srv", "cli")));
        assert_eq!(split_ice_username("srv:"), None);
        assert_eq!(split_ice_username(":cli"), None);
        assert_eq!(split_ice_username("nocolon"), None);
        // Only the first colon separates: ufrags cannot contain one.
        assert_eq!(split_ice_username("a:b:c"), Some(("a", "b:c")));
    }

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[]), Datagram::Malformed);
        assert_eq!(classify(&[0xff; 40]), Datagram::Malformed);
        assert_eq!(classify(&[22, 0xfe, 0xfd, 0, 0]), Datagram::ByAddress);
        assert_eq!(classify(&[0x80; 12]), Datagram::ByAddress);
        assert_eq!(classify(&[0x80; 11]), Datagram::Malformed);
        assert_eq!(classify(&vec![22; MAX_DATAGRAM + 1]), Datagram::Malformed);
    }

    #[test]
    fn plain_binding_requests_go_to_the_stun_server() {
        let tid = [7u8; 12];
        let req = stun_server::binding_request(&tid);
        assert_eq!(classify(&req), Datagram::PlainBinding(tid));
        // A truncated or garbled STUN header is malformed, not routed.
        assert_eq!(classify(&req[..18]), Datagram::Malformed);
        let mut garbled = req.clone();
        garbled[4] = 0;
        assert_eq!(classify(&garbled), Datagram::Malformed);
    }
}
