//! Codec policy: which codecs each direction offers to negotiate, whether a
//! negotiated session is usable, and a readable account of what an offer
//! proposed when it is not.

use str0m::change::SdpOffer;
use str0m::format::Codec as S0Codec;
use str0m::media::{Direction as S0Direction, MediaKind as S0Kind, Mid};
use str0m::{Rtc, RtcConfig};

use crate::error::RtcError;
use crate::types::{Codec, Direction};

/// H.264 payload types we propose, all packetization-mode=1, each with an RTX
/// payload type so NACKed packets are resent from str0m's send buffer:
/// (pt, rtx pt, profile-level-id). Constrained Baseline, Baseline, Main, High,
/// all at level 3.1 with level-asymmetry-allowed, as browsers offer them.
const H264_PARAMS: [(u8, u8, u32); 4] = [
    (108, 109, 0x42e01f),
    (127, 121, 0x42001f),
    (123, 119, 0x4d001f),
    (114, 115, 0x64001f),
];

/// Codecs a session of this direction accepts.
pub(crate) fn accepted_codecs(direction: Direction) -> &'static [Codec] {
    match direction {
        // VP8 is passed through to viewers that take VP8.
        Direction::Publish => &[Codec::H264, Codec::Vp8, Codec::Opus],
        Direction::Play => &[Codec::H264, Codec::Vp8, Codec::Opus],
    }
}

/// Narrows `config` to the codecs of `direction`.
pub(crate) fn with_codecs(config: RtcConfig, direction: Direction) -> RtcConfig {
    let codecs = accepted_codecs(direction);
    let mut config = config
        .clear_codecs()
        .enable_opus(codecs.contains(&Codec::Opus), false);
    // H.264 before VP8: str0m answers with its first match, and H.264 is
    // what RTMP, HTTP-FLV, HLS and the mixer can carry.
    if codecs.contains(&Codec::H264) {
        let cc = config.codec_config();
        for (pt, rtx, profile) in H264_PARAMS {
            cc.add_h264(pt.into(), Some(rtx.into()), true, profile);
        }
    }
    config.enable_vp8(codecs.contains(&Codec::Vp8))
}

/// The media of a session after negotiation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tracks {
    pub video: Option<Mid>,
    pub audio: Option<Mid>,
}

/// The mids of the offer's m-lines, in order (read before str0m consumes the
/// offer: its MediaAdded events only come once the session is connected).
pub(crate) fn offer_mids(offer: &SdpOffer) -> Vec<Mid> {
    offer.media_lines.iter().map(|line| line.mid()).collect()
}

/// Picks the first usable video and audio m-line among the offer's `mids`.
/// Usable: not rejected (some codec matched, see `Media::disabled`) and
/// flowing the way `direction` needs.
pub(crate) fn usable_tracks(
    rtc: &Rtc,
    mids: &[Mid],
    direction: Direction,
    offer_sdp: &str,
) -> Result<Tracks, RtcError> {
    let mut tracks = Tracks::default();
    let mut matched_codec = false;
    for &mid in mids {
        let Some(media) = rtc.media(mid) else {
            continue;
        };
        if media.disabled() {
            continue;
        }
        matched_codec = true;
        // `media.direction()` is ours: the inverse of the client's.
        let ok = match direction {
            Direction::Publish => matches!(
                media.direction(),
                S0Direction::RecvOnly | S0Direction::SendRecv
            ),
            Direction::Play => matches!(
                media.direction(),
                S0Direction::SendOnly | S0Direction::SendRecv
            ),
        };
        if !ok {
            continue;
        }
        let slot = match media.kind() {
            S0Kind::Video => &mut tracks.video,
            S0Kind::Audio => &mut tracks.audio,
        };
        slot.get_or_insert(mid);
    }
    if tracks.video.is_some() || tracks.audio.is_some() {
        return Ok(tracks);
    }
    if matched_codec {
        return Err(RtcError::WrongDirection(match direction {
            Direction::Publish => "a WHIP offer must send media (sendonly or sendrecv)".into(),
            Direction::Play => "a WHEP offer must receive media (recvonly or sendrecv)".into(),
        }));
    }
    Err(RtcError::NoSupportedCodec(format!(
        "offered: {}; supported: {}",
        offered_codecs(offer_sdp),
        supported_list(direction)
    )))
}

/// The payload type to send `codec` with on `mid`: the client's most preferred
/// negotiated one (H.264 only in packetization-mode=1).
pub(crate) fn negotiated_pt(rtc: &Rtc, mid: Mid, codec: Codec) -> Option<str0m::media::Pt> {
    let media = rtc.media(mid)?;
    let wanted: S0Codec = codec.to_str0m();
    media.remote_pts().iter().copied().find(|pt| {
        rtc.codec_config().params().iter().any(|p| {
            p.pt() == *pt
                && p.spec().codec == wanted
                && (codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
        })
    })
}

fn supported_list(direction: Direction) -> String {
    accepted_codecs(direction)
        .iter()
        .map(|c| match c {
            Codec::H264 => "H264 (packetization-mode=1)",
            Codec::Vp8 => "VP8",
            Codec::Opus => "opus",
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Encoding names of the offer's `a=rtpmap` lines, for error messages only
/// (str0m drops the codecs it does not know, which are the interesting ones
/// here). Bounded: at most 16 distinct names of at most 32 characters.
pub(crate) fn offered_codecs(sdp: &str) -> String {
    let mut names: Vec<&str> = Vec::new();
    for line in sdp.lines() {
        let Some(rest) = line.trim().strip_prefix("a=rtpmap:") else {
            continue;
        };
        let Some(name) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|enc| enc.split('/').next())
        else {
            continue;
        };
        let cut = name.char_indices().nth(32).map_or(name.len(), |(i, _)| i);
        let name = name.get(..cut).unwrap_or(name);
        if ["rtx", "red", "ulpfec", "flexfec-03"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
        {
            continue;
        }
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name);
            if names.len() == 16 {
                break;
            }
        }
    }
    if names.is_empty() {
        "no codecs".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_offered_codecs() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=rtpmap:96 H265/90000\r\n\
                   a=rtpmap:97 rtx/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(offered_codecs(sdp), "H265, PCMU");
        assert_eq!(offered_codecs("v=0\r\n"), "no codecs");
        assert_eq!(offered_codecs("a=rtpmap:\r\na=rtpmap:1\r\n"), "no codecs");
    }
}
