//! Synthetic media for the WHIP publisher: H.264 access units in Annex B
//! framing that a server parses like a real encoder's (a real SPS and PPS
//! in front of every IDR, then one slice of filler bytes), and small
//! Opus-shaped packets. Nothing decodes to a picture; servers only look at
//! NAL headers and parameter sets.

use std::sync::Arc;

/// A real 640x360 Constrained Baseline SPS (level 3.0).
pub const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
    0x00, 0x03, 0x00, 0xc8, 0x3c, 0x58, 0xba, 0x80,
];
/// The PPS that goes with [`SPS`].
pub const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// NAL header bytes: IDR slice and non-IDR slice, both with nal_ref_idc 3.
const NAL_IDR: u8 = 0x65;
const NAL_NON_IDR: u8 = 0x61;
/// Smallest slice payload, so that tiny bitrates still make valid-looking NALs.
const MIN_SLICE: usize = 16;

/// An access unit of about `size` bytes (Annex B, start codes included):
/// SPS + PPS + IDR slice when `idr`, else one non-IDR slice.
///
/// The filler never contains a zero byte, so no start code or emulation
/// prevention sequence can appear inside the slice.
pub fn access_unit(idr: bool, size: usize, seed: u8) -> Vec<u8> {
    let mut au = Vec::with_capacity(size.max(64));
    if idr {
        for ps in [SPS, PPS] {
            au.extend_from_slice(&START_CODE);
            au.extend_from_slice(ps);
        }
    }
    au.extend_from_slice(&START_CODE);
    au.push(if idr { NAL_IDR } else { NAL_NON_IDR });
    let filler = size.saturating_sub(au.len()).max(MIN_SLICE);
    au.extend((0..filler).map(|i| ((i * 7 + usize::from(seed)) % 251 + 1) as u8));
    au
}

/// The two access units a constant-bitrate synthetic stream alternates
/// between, built once and shared: every write hands str0m a reference
/// instead of a fresh buffer.
#[derive(Debug, Clone)]
pub struct SyntheticVideo {
    pub idr: Arc<[u8]>,
    pub non_idr: Arc<[u8]>,
}

impl SyntheticVideo {
    /// Frames sized so that `fps` of them carry `bitrate_bps` (every frame
    /// the same size: the bench measures delivery, not rate control).
    pub fn new(bitrate_bps: u64, fps: f64) -> Self {
        let per_frame = (bitrate_bps as f64 / 8.0 / fps.max(1.0)).round() as usize;
        SyntheticVideo {
            idr: access_unit(true, per_frame, 0).into(),
            non_idr: access_unit(false, per_frame, 1).into(),
        }
    }
}

/// A 20 ms Opus-looking packet: TOC byte for CELT fullband 20 ms, then a
/// few bytes that vary with `n` so consecutive packets differ.
pub fn opus_packet(n: u64) -> [u8; 4] {
    [0xfc, 0xff, 0xfe, (n % 250) as u8 + 1]
}

/// The process's clock origin for send-time stamps.
pub fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// An Opus-looking packet that carries when it was sent (µs since
/// [`epoch`]), so a receiver in the same process can time the path.
pub fn stamped_opus_packet(sent: std::time::Instant) -> [u8; 11] {
    let us = sent.saturating_duration_since(epoch()).as_micros() as u64;
    let mut p = [0xfc, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0];
    p[3..].copy_from_slice(&us.to_be_bytes());
    p
}

/// When a [`stamped_opus_packet`] was sent.
pub fn opus_stamp(packet: &[u8]) -> Option<std::time::Instant> {
    let bytes: [u8; 8] = packet.get(3..11)?.try_into().ok()?;
    Some(epoch() + std::time::Duration::from_micros(u64::from_be_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_hub::avc::{annexb_nalus, sps_info};

    #[test]
    fn idr_carries_parameter_sets_and_reaches_the_size() {
        let au = access_unit(true, 7500, 3);
        assert_eq!(au.len(), 7500);
        let nals: Vec<&[u8]> = annexb_nalus(&au).collect();
        assert_eq!(nals.len(), 3);
        assert_eq!(nals[0], SPS);
        assert_eq!(nals[1], PPS);
        assert_eq!(nals[2][0] & 0x1f, 5);
        let info = sps_info(SPS).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
    }

    #[test]
    fn non_idr_is_one_slice_without_zero_bytes() {
        let au = access_unit(false, 100, 9);
        assert_eq!(au.len(), 100);
        let nals: Vec<&[u8]> = annexb_nalus(&au).collect();
        assert_eq!(nals.len(), 1);
        assert_eq!(nals[0][0] & 0x1f, 1);
        assert!(!au[4..].contains(&0));
        // Tiny targets still make a slice with a body.
        assert!(access_unit(false, 0, 0).len() > MIN_SLICE);
    }

    #[test]
    fn constant_bitrate_sizes() {
        let v = SyntheticVideo::new(1_500_000, 25.0);
        assert_eq!(v.idr.len(), 7500);
        assert_eq!(v.non_idr.len(), 7500);
        assert_eq!(opus_packet(0), [0xfc, 0xff, 0xfe, 1]);
        assert_eq!(opus_packet(499)[3], 250);
        let t = epoch() + std::time::Duration::from_millis(1234);
        assert_eq!(opus_stamp(&stamped_opus_packet(t)), Some(t));
    }
}
