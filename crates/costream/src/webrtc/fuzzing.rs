//! Entry points for the fuzz targets (crates/costream-fuzz): the parsers of
//! network input that live in this module's private parts. Not an API.

use bytes::{Bytes, BytesMut};
use costream_hub::Frame;
use costream_rtc::MediaFrame;

/// Takes one RFC 4571 frame off an ICE-TCP connection's read buffer.
pub fn ice_tcp_next_frame(buf: &mut BytesMut) -> Option<Bytes> {
    super::tcp::next_frame(buf)
}

/// Whether an ICE-TCP connection lets a packet through to the RTC task:
/// the first must be a STUN message, the rest STUN, DTLS, RTP or RTCP.
pub fn ice_tcp_admits(packet: &[u8], first: bool) -> bool {
    if first {
        super::tcp::is_stun(packet)
    } else {
        super::tcp::is_webrtc(packet)
    }
}

/// The candidate lines of a WHIP/WHEP trickle (PATCH) body.
pub fn trickle_lines(body: &[u8]) -> Vec<String> {
    super::http::trickle_lines(body)
}

/// A WHIP publisher's frames to hub frames, as the ingest does.
pub fn ingest(frames: &[MediaFrame]) -> Vec<Frame> {
    let mut clock = super::convert::IngestClock::default();
    frames.iter().flat_map(|f| clock.convert(f)).collect()
}

/// Hub frames to a WHEP viewer's payloads, as the egress does.
pub fn egress(frames: &[Frame]) -> Vec<Bytes> {
    let mut state = super::convert::EgressState::default();
    frames
        .iter()
        .filter_map(|f| state.convert(f).map(|(_, _, data)| data))
        .collect()
}
