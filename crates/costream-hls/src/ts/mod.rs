//! MPEG-TS (ISO 13818-1) muxing of hub H.264/AAC frames into 188-byte packets:
//! one program, PAT and PMT, one PES per frame.

mod muxer;
mod packet;
mod pes;
mod psi;

#[cfg(test)]
pub(crate) mod testutil;

pub use muxer::{TsError, TsMuxer};

pub const PACKET_LEN: usize = 188;
pub const PID_PAT: u16 = 0x0000;
pub const PID_PMT: u16 = 0x1000;
pub const PID_VIDEO: u16 = 0x0100;
pub const PID_AUDIO: u16 = 0x0101;
/// PMT stream_type of H.264 video.
pub const STREAM_TYPE_H264: u8 = 0x1b;
/// PMT stream_type of AAC audio in ADTS framing.
pub const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;

/// Milliseconds to the 90 kHz clock of PTS/DTS/PCR, wrapped to 33 bits as
/// the fields are (negative times wrap too, as the clock would have).
pub fn to_90khz(ms: i64) -> u64 {
    ms.wrapping_mul(90).rem_euclid(1 << 33) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_wraps_at_33_bits() {
        assert_eq!(to_90khz(1000), 90_000);
        assert_eq!(to_90khz(-1), (1 << 33) - 90);
        let wrap_ms = (1i64 << 33) / 90 + 1;
        assert!(to_90khz(wrap_ms) < 90);
        assert!(to_90khz(i64::MAX) < 1 << 33);
    }
}
