//! H.264 helpers: AVCDecoderConfigurationRecord (ISO 14496-15 §5.2.4.1),
//! AVCC/Annex B framing, SPS facts (via the `h264-reader` crate).

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AvcError {
    #[error("AVC configuration record truncated")]
    Truncated,
    #[error("AVC configuration record version {0} is not 1")]
    Version(u8),
    #[error("AVC configuration record has no SPS")]
    NoSps,
    #[error("SPS could not be parsed: {0}")]
    Sps(String),
}

/// A parsed AVCDecoderConfigurationRecord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    pub profile: u8,
    pub compatibility: u8,
    pub level: u8,
    /// Bytes in each NAL length prefix of the frames (1, 2 or 4).
    pub nal_length_size: u8,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
}

/// What the SPS says about the picture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    /// From the VUI timing info, when the encoder wrote it.
    pub fps: Option<f64>,
}

impl AvcConfig {
    pub fn parse(record: &Bytes) -> Result<AvcConfig, AvcError> {
        let r = record.as_ref();
        if r.len() < 6 {
            return Err(AvcError::Truncated);
        }
        if r[0] != 1 {
            return Err(AvcError::Version(r[0]));
        }
        let nal_length_size = (r[4] & 0x03) + 1;
        let mut pos = 5;
        let take_sets = |pos: &mut usize, count: usize| -> Result<Vec<Bytes>, AvcError> {
            let mut sets = Vec::with_capacity(count.min(32));
            for _ in 0..count {
                let len_bytes = r.get(*pos..*pos + 2).ok_or(AvcError::Truncated)?;
                let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]) as usize;
                *pos += 2;
                if r.len() < *pos + len {
                    return Err(AvcError::Truncated);
                }
                sets.push(record.slice(*pos..*pos + len));
                *pos += len;
            }
            Ok(sets)
        };
        let sps_count = (r[5] & 0x1f) as usize;
        pos += 1;
        let sps = take_sets(&mut pos, sps_count)?;
        let pps_count = *r.get(pos).ok_or(AvcError::Truncated)? as usize;
        pos += 1;
        let pps = take_sets(&mut pos, pps_count)?;
        if sps.is_empty() {
            return Err(AvcError::NoSps);
        }
        Ok(AvcConfig {
            profile: r[1],
            compatibility: r[2],
            level: r[3],
            nal_length_size,
            sps,
            pps,
        })
    }

    /// Builds a record from parameter sets (used when a protocol sends SPS/PPS in band).
    pub fn from_parameter_sets(sps: Vec<Bytes>, pps: Vec<Bytes>) -> Result<AvcConfig, AvcError> {
        let first = sps.first().ok_or(AvcError::NoSps)?;
        if first.len() < 4 {
            return Err(AvcError::Truncated);
        }
        Ok(AvcConfig {
            profile: first[1],
            compatibility: first[2],
            level: first[3],
            nal_length_size: 4,
            sps,
            pps,
        })
    }

    pub fn to_record(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(
            11 + self
                .sps
                .iter()
                .chain(&self.pps)
                .map(|s| s.len() + 2)
                .sum::<usize>(),
        );
        out.put_u8(1);
        out.put_u8(self.profile);
        out.put_u8(self.compatibility);
        out.put_u8(self.level);
        out.put_u8(0xfc | (self.nal_length_size.clamp(1, 4) - 1));
        out.put_u8(0xe0 | (self.sps.len().min(31) as u8));
        for s in self.sps.iter().take(31) {
            out.put_u16(s.len() as u16);
            out.put_slice(s);
        }
        out.put_u8(self.pps.len().min(255) as u8);
        for p in self.pps.iter().take(255) {
            out.put_u16(p.len() as u16);
            out.put_slice(p);
        }
        out.freeze()
    }

    /// The SPS and PPS in Annex B framing (start codes), as decoders and
    /// WebRTC take them.
    pub fn parameter_sets_annexb(&self) -> Bytes {
        let mut out = BytesMut::new();
        for nal in self.sps.iter().chain(&self.pps) {
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(nal);
        }
        out.freeze()
    }

    /// Picture size and frame rate from the first SPS.
    pub fn sps_info(&self) -> Result<SpsInfo, AvcError> {
        let sps = self.sps.first().ok_or(AvcError::NoSps)?;
        sps_info(sps)
    }

    /// The `avc1.PPCCLL` codec string (RFC 6381) that HLS and browsers use.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }
}

pub fn sps_info(sps: &[u8]) -> Result<SpsInfo, AvcError> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    // h264-reader 0.9's decode_nal panics (a length underflow) on an empty
    // NAL; a header byte and at least one byte of payload are required.
    if sps.len() < 2 {
        return Err(AvcError::Sps(format!("an SPS of {} bytes", sps.len())));
    }
    let rbsp = decode_nal(sps).map_err(|e| AvcError::Sps(e.to_string()))?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
        .map_err(|e| AvcError::Sps(format!("{e:?}")))?;
    let (width, height) = sps
        .pixel_dimensions()
        .map_err(|e| AvcError::Sps(format!("{e:?}")))?;
    Ok(SpsInfo {
        width,
        height,
        fps: sps
            .fps()
            .filter(|f| f.is_finite() && *f > 0.0 && *f < 1000.0),
    })
}

/// Iterates the NAL units of an AVCC (length-prefixed) access unit. Stops at
/// the first malformed length instead of reading past the end.
pub fn avcc_nalus(data: &[u8], length_size: u8) -> impl Iterator<Item = &[u8]> {
    let n = length_size.clamp(1, 4) as usize;
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        let nal = rest.get(n..n + len)?;
        rest = &rest[n + len..];
        Some(nal)
    })
}

/// Whether the access unit holds only non-reference slices (nal_ref_idc == 0),
/// so no other frame depends on it. Expects 4-byte length prefixes.
pub fn is_disposable(data: &[u8]) -> bool {
    let mut saw_slice = false;
    for nal in avcc_nalus(data, 4) {
        let Some(&h) = nal.first() else { continue };
        let t = h & 0x1f;
        if (1..=5).contains(&t) {
            saw_slice = true;
            if h & 0x60 != 0 {
                return false;
            }
        }
    }
    saw_slice
}

/// Whether the access unit contains an IDR slice.
pub fn has_idr(data: &[u8]) -> bool {
    avcc_nalus(data, 4).any(|n| n.first().map(|h| h & 0x1f) == Some(NAL_IDR))
}

/// Re-frames an access unit with `from` -byte length prefixes into 4-byte
/// prefixes. Returns the input unchanged (no copy) when it already is.
pub fn to_avcc4(data: Bytes, from: u8) -> Bytes {
    if from == 4 {
        return data;
    }
    let mut out = BytesMut::with_capacity(data.len() + 64);
    for nal in avcc_nalus(&data, from) {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    out.freeze()
}

/// Appends an AVCC (4-byte prefixed) access unit to `out` in Annex B framing.
pub fn avcc_to_annexb(data: &[u8], out: &mut BytesMut) {
    for nal in avcc_nalus(data, 4) {
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(nal);
    }
}

/// Splits an Annex B byte stream into NAL units (start codes removed).
pub fn annexb_nalus(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0usize;
    // Skip to the first start code.
    let first = find_start_code(data, 0);
    pos = match first {
        Some((at, len)) => at + len,
        None => data.len().min(pos.max(data.len())),
    };
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let start = pos;
        let (end, next) = match find_start_code(data, start) {
            Some((at, len)) => (at, at + len),
            None => (data.len(), data.len()),
        };
        pos = next;
        let mut nal = &data[start..end];
        while let [rest @ .., 0] = nal {
            nal = rest;
        }
        Some(nal)
    })
    .filter(|n| !n.is_empty())
}

fn find_start_code(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 {
            if data[i + 2] == 1 {
                return Some((i, 3));
            }
            if data[i + 2] == 0 && data.get(i + 3) == Some(&1) {
                return Some((i, 4));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPS/PPS of a 640x360 x264 baseline stream.
    const SPS: &[u8] = &[
        0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04,
        0x00, 0x00, 0x03, 0x00, 0xc8, 0x3c, 0x58, 0xba, 0x80,
    ];
    const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

    #[test]
    fn record_round_trip_and_sps() {
        let cfg = AvcConfig::from_parameter_sets(
            vec![Bytes::from_static(SPS)],
            vec![Bytes::from_static(PPS)],
        )
        .unwrap();
        let rec = cfg.to_record();
        let back = AvcConfig::parse(&rec).unwrap();
        assert_eq!(back, cfg);
        let info = back.sps_info().unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.fps, Some(25.0));
        assert_eq!(cfg.codec_string(), "avc1.42c01e");
    }

    #[test]
    fn truncated_records_are_errors() {
        let rec = AvcConfig::from_parameter_sets(vec![Bytes::from_static(SPS)], vec![])
            .unwrap()
            .to_record();
        for n in 0..rec.len() - 1 {
            assert!(AvcConfig::parse(&rec.slice(..n)).is_err(), "len {n}");
        }
    }

    #[test]
    fn framing() {
        let mut au = BytesMut::new();
        au.put_u32(3);
        au.put_slice(&[0x65, 1, 2]);
        au.put_u32(2);
        au.put_slice(&[0x01, 9]);
        au.put_u32(99); // lies about its length: ignored
        let au = au.freeze();
        assert_eq!(avcc_nalus(&au, 4).count(), 2);
        assert!(has_idr(&au));
        let mut annexb = BytesMut::new();
        avcc_to_annexb(&au, &mut annexb);
        let nals: Vec<_> = annexb_nalus(&annexb).collect();
        assert_eq!(nals, vec![&[0x65, 1, 2][..], &[0x01, 9][..]]);
        assert!(is_disposable(&[0, 0, 0, 2, 0x01, 0]));
        assert!(!is_disposable(&[0, 0, 0, 2, 0x41, 0]));
    }

    #[test]
    fn empty_and_one_byte_sps_are_errors_not_panics() {
        assert!(sps_info(&[]).is_err());
        assert!(sps_info(&[0x67]).is_err());
    }
}
