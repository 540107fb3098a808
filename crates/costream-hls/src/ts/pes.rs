//! PES packet headers (ISO 13818-1 §2.4.3.6) with PTS and DTS.

pub(super) const STREAM_ID_VIDEO: u8 = 0xe0;
pub(super) const STREAM_ID_AUDIO: u8 = 0xc0;

/// The longest header written here: 9 bytes, PTS and DTS.
const MAX_LEN: usize = 19;

/// A PES header, built on the stack.
pub(super) struct PesHeader {
    bytes: [u8; MAX_LEN],
    len: usize,
}

impl PesHeader {
    /// `pts`/`dts` are 90 kHz; `dts` is left out when it equals `pts`.
    /// PES_packet_length is 0 ("unbounded", allowed for video only) when the
    /// packet would not fit 16 bits.
    pub(super) fn new(stream_id: u8, pts: u64, dts: Option<u64>, payload_len: usize) -> Self {
        let dts = dts.filter(|d| *d != pts);
        let data_len: u8 = if dts.is_some() { 10 } else { 5 };
        let packet_len = 3 + usize::from(data_len) + payload_len;
        let [len_hi, len_lo] = u16::try_from(packet_len).unwrap_or(0).to_be_bytes();
        let flags = if dts.is_some() { 0xc0 } else { 0x80 };
        let mut bytes = [0u8; MAX_LEN];
        bytes[..9].copy_from_slice(&[0, 0, 1, stream_id, len_hi, len_lo, 0x80, flags, data_len]);
        match dts {
            Some(dts) => {
                bytes[9..14].copy_from_slice(&encode_timestamp(0x3, pts));
                bytes[14..19].copy_from_slice(&encode_timestamp(0x1, dts));
            }
            None => bytes[9..14].copy_from_slice(&encode_timestamp(0x2, pts)),
        }
        PesHeader {
            bytes,
            len: 9 + usize::from(data_len),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The 5-byte PTS/DTS field: a 4-bit prefix, then 33 bits in groups of 3, 15
/// and 15, each followed by a marker bit.
fn encode_timestamp(prefix: u8, ts: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((ts >> 30) as u8 & 0x07) << 1) | 1,
        (ts >> 22) as u8,
        (((ts >> 15) as u8) << 1) | 1,
        (ts >> 7) as u8,
        ((ts as u8) << 1) | 1,
    ]
}

#[cfg(test)]
pub(crate) fn decode_timestamp(b: &[u8]) -> Option<u64> {
    let b: &[u8; 5] = b.get(..5)?.try_into().ok()?;
    Some(
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trip() {
        for ts in [
            0,
            1,
            90_000,
            0x1_0000_0000,
            (1 << 33) - 1,
            0x1_5555_5555,
            0xaaaa_aaaa,
        ] {
            let b = encode_timestamp(0x2, ts);
            assert_eq!(decode_timestamp(&b), Some(ts));
            assert_eq!(b[0] & 0xf1, 0x21, "prefix and marker");
            assert_eq!(b[2] & 1, 1);
            assert_eq!(b[4] & 1, 1);
        }
    }

    #[test]
    fn headers() {
        let h = PesHeader::new(STREAM_ID_AUDIO, 900, None, 100);
        assert_eq!(h.len(), 14);
        assert_eq!(&h.as_bytes()[..9], &[0, 0, 1, 0xc0, 0, 108, 0x80, 0x80, 5]);
        assert_eq!(decode_timestamp(&h.as_bytes()[9..]), Some(900));

        let h = PesHeader::new(STREAM_ID_VIDEO, 2700, Some(900), 70_000);
        assert_eq!(h.len(), 19);
        assert_eq!(&h.as_bytes()[..9], &[0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10]);
        assert_eq!(h.as_bytes()[9] >> 4, 3);
        assert_eq!(h.as_bytes()[14] >> 4, 1);
        assert_eq!(decode_timestamp(&h.as_bytes()[9..]), Some(2700));
        assert_eq!(decode_timestamp(&h.as_bytes()[14..]), Some(900));

        // DTS equal to PTS is not written.
        assert_eq!(PesHeader::new(STREAM_ID_VIDEO, 5, Some(5), 1).len(), 14);
    }
}
