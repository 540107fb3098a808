//! Plain STUN server (RFC 8489 binding method) on the shared UDP port, so
//! clients may use costream as their STUN server.
//!
//! Written by hand because str0m's STUN parser only accepts ICE connectivity
//! checks: it rejects a binding request without USERNAME, MESSAGE-INTEGRITY
//! and PRIORITY, which is exactly what a plain STUN client sends. Only the
//! 20-byte header is read; attributes are ignored (RFC 8489 §6.3.1 lets a
//! server ignore comprehension-optional ones, and a binding request needs none).

use std::net::{IpAddr, SocketAddr};

/// STUN magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const HEADER_LEN: usize = 20;
const BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const BINDING_SUCCESS: [u8; 2] = [0x01, 0x01];
const ATTR_XOR_MAPPED_ADDRESS: [u8; 2] = [0x00, 0x20];

/// A STUN transaction id: 96 bits, echoed in the response.
pub(crate) type TransactionId = [u8; 12];

/// If `data` is a well-formed STUN binding request, its transaction id.
pub(crate) fn parse_binding_request(data: &[u8]) -> Option<TransactionId> {
    let header = data.get(..HEADER_LEN)?;
    if header.get(0..2)? != BINDING_REQUEST || header.get(4..8)? != MAGIC_COOKIE {
        return None;
    }
    // The length field counts the attributes after the header; it must match
    // the datagram exactly and be a multiple of 4 (RFC 8489 §5).
    let len = u16::from_be_bytes([*header.get(2)?, *header.get(3)?]) as usize;
    if !len.is_multiple_of(4) || HEADER_LEN + len != data.len() {
        return None;
    }
    header.get(8..20)?.try_into().ok()
}

/// A binding success response telling the client its address as we see it,
/// in an XOR-MAPPED-ADDRESS attribute (RFC 8489 §14.2).
pub(crate) fn binding_success(tid: &TransactionId, mapped: SocketAddr) -> Vec<u8> {
    let (family, addr): (u8, Vec<u8>) = match mapped.ip() {
        IpAddr::V4(ip) => (0x01, xor(&ip.octets(), &MAGIC_COOKIE)),
        IpAddr::V6(ip) => {
            // IPv6 addresses are XORed with the cookie followed by the transaction id.
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE);
            key[4..].copy_from_slice(tid);
            (0x02, xor(&ip.octets(), &key))
        }
    };
    let port = mapped.port() ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    let value_len = 4 + addr.len();

    let mut out = Vec::with_capacity(HEADER_LEN + 4 + value_len);
    out.extend_from_slice(&BINDING_SUCCESS);
    out.extend_from_slice(&((4 + value_len) as u16).to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(tid);
    out.extend_from_slice(&ATTR_XOR_MAPPED_ADDRESS);
    out.extend_from_slice(&(value_len as u16).to_be_bytes());
    out.push(0);
    out.push(family);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&addr);
    out
}

fn xor(data: &[u8], key: &[u8]) -> Vec<u8> {
    data.iter()
        .zip(key.iter().cycle())
        .map(|(a, b)| a ^ b)
        .collect()
}

/// Decodes the XOR-MAPPED-ADDRESS of a binding success response; the client
/// side of `binding_success`, used by tests and the bench client.
pub fn parse_binding_success(data: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    let header = data.get(..HEADER_LEN)?;
    if header.get(0..2)? != BINDING_SUCCESS
        || header.get(4..8)? != MAGIC_COOKIE
        || header.get(8..20)? != tid
    {
        return None;
    }
    let mut rest = data.get(HEADER_LEN..)?;
    while rest.len() >= 4 {
        let typ = rest.get(0..2)?;
        let len = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]) as usize;
        let value = rest.get(4..4 + len)?;
        if typ == ATTR_XOR_MAPPED_ADDRESS {
            return decode_xor_address(value, tid);
        }
        // Attribute values are padded to 4 bytes.
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    None
}

fn decode_xor_address(value: &[u8], tid: &[u8; 12]) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?])
        ^ u16::from_be_bytes([MAGIC_COOKIE[0], MAGIC_COOKIE[1]]);
    let ip: IpAddr = match family {
        0x01 => {
            let raw: [u8; 4] = xor(value.get(4..8)?, &MAGIC_COOKIE).try_into().ok()?;
            raw.into()
        }
        0x02 => {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&MAGIC_COOKIE);
            key[4..].copy_from_slice(tid);
            let raw: [u8; 16] = xor(value.get(4..20)?, &key).try_into().ok()?;
            raw.into()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A plain binding request with the given transaction id (for tests and clients).
pub fn binding_request(tid: &[u8; 12]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(&BINDING_REQUEST);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&MAGIC_COOKIE);
    out.extend_from_slice(tid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn request_round_trip() {
        assert_eq!(parse_binding_request(&binding_request(&TID)), Some(TID));
    }

    #[test]
    fn rejects_malformed_requests() {
        let good = binding_request(&TID);
        assert_eq!(parse_binding_request(&good[..19]), None);
        let mut bad_cookie = good.clone();
        bad_cookie[5] ^= 1;
        assert_eq!(parse_binding_request(&bad_cookie), None);
        let mut bad_len = good.clone();
        bad_len[3] = 4;
        assert_eq!(parse_binding_request(&bad_len), None);
        let mut not_binding = good.clone();
        not_binding[1] = 0x03;
        assert_eq!(parse_binding_request(&not_binding), None);
        let mut response = good;
        response[0] = 0x01;
        assert_eq!(parse_binding_request(&response), None);
        assert_eq!(parse_binding_request(&[]), None);
    }

    #[test]
    fn xor_mapped_address_v4_and_v6() {
        for addr in ["192.0.2.7:54321", "[2001:db8::1:2]:40000"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let reply = binding_success(&TID, addr);
            assert_eq!(parse_binding_success(&reply, &TID), Some(addr));
            // Length field matches the body.
            let len = u16::from_be_bytes([reply[2], reply[3]]) as usize;
            assert_eq!(len + 20, reply.len());
        }
    }

    #[test]
    fn rfc5769_ipv4_mapped_address() {
        // RFC 5769 §2.2: 192.0.2.1:32853 is encoded as port 0xA147, address 0xE112A643.
        let reply = binding_success(&TID, "192.0.2.1:32853".parse().unwrap());
        assert_eq!(
            &reply[24..32],
            &[0x00, 0x01, 0xA1, 0x47, 0xE1, 0x12, 0xA6, 0x43]
        );
    }
}
