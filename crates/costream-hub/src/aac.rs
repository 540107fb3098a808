//! AAC helpers: AudioSpecificConfig (ISO 14496-3 §1.6.2.1) and ADTS headers.

use bytes::Bytes;
use thiserror::Error;

pub const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AacError {
    #[error("AudioSpecificConfig shorter than 2 bytes")]
    Truncated,
    #[error("AudioSpecificConfig sample rate index {0} is not supported")]
    SampleRate(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    pub sample_rate_index: u8,
    pub channels: u8,
}

impl AacConfig {
    pub fn parse(asc: &[u8]) -> Result<AacConfig, AacError> {
        if asc.len() < 2 {
            return Err(AacError::Truncated);
        }
        let object_type = asc[0] >> 3;
        let sample_rate_index = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
        if sample_rate_index as usize >= SAMPLE_RATES.len() {
            return Err(AacError::SampleRate(sample_rate_index));
        }
        Ok(AacConfig {
            object_type,
            sample_rate_index,
            channels: (asc[1] >> 3) & 0x0f,
        })
    }

    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATES[self.sample_rate_index as usize % SAMPLE_RATES.len()]
    }

    pub fn to_asc(&self) -> Bytes {
        Bytes::copy_from_slice(&[
            (self.object_type << 3) | (self.sample_rate_index >> 1),
            ((self.sample_rate_index & 1) << 7) | (self.channels << 3),
        ])
    }

    /// The 7-byte ADTS header (no CRC) for a raw frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> [u8; 7] {
        let len = (payload_len + 7).min(0x1fff);
        let profile = self.object_type.saturating_sub(1) & 0x03;
        [
            0xff,
            0xf1,
            (profile << 6) | ((self.sample_rate_index & 0x0f) << 2) | ((self.channels >> 2) & 1),
            ((self.channels & 3) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            (((len & 7) as u8) << 5) | 0x1f,
            0xfc,
        ]
    }

    /// `mp4a.40.N` codec string for HLS.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asc_round_trip() {
        let cfg = AacConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(cfg.object_type, 2);
        assert_eq!(cfg.sample_rate(), 44100);
        assert_eq!(cfg.channels, 2);
        assert_eq!(&cfg.to_asc()[..], &[0x12, 0x10]);
        assert!(AacConfig::parse(&[0x12]).is_err());
        assert!(AacConfig::parse(&[0x17, 0x90]).is_err());
        let h = cfg.adts_header(100);
        assert_eq!(&h[..2], &[0xff, 0xf1]);
        let len = ((h[3] as usize & 3) << 11) | ((h[4] as usize) << 3) | (h[5] as usize >> 5);
        assert_eq!(len, 107);
    }
}
