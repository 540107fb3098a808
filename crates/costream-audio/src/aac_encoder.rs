//! 48 kHz stereo PCM to AAC-LC: the mixer's audio output for RTMP,
//! HTTP-FLV and HLS. Push any number of samples; whole 1024-sample frames
//! come out, stamped by the sample count from the first push.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use fdk_aac::enc::{self, AudioObjectType, BitRate, ChannelMode, EncoderParams, Transport};

use crate::pcm::f32_to_i16;

use crate::aac_to_opus::OPUS_RATE;
use crate::error::AudioError;
use crate::opus_to_aac::AAC_FRAME_SAMPLES;
use crate::EncodedPacket;

/// FDK's bound for one AAC-LC frame is 768 bytes per channel.
pub(crate) const MAX_AAC_FRAME: usize = 768 * 2;

/// An FDK AAC-LC encoder at 48 kHz, CBR, raw frames (no ADTS): the encoder,
/// its AudioSpecificConfig, and the samples per channel it emits before the
/// first input sample.
pub(crate) fn fdk_aac_lc(
    channels: ChannelMode,
    bitrate: u32,
) -> Result<(enc::Encoder, Bytes, u32), AudioError> {
    let encoder = enc::Encoder::new(EncoderParams {
        bit_rate: BitRate::Cbr(bitrate),
        sample_rate: OPUS_RATE,
        transport: Transport::Raw,
        channels,
        audio_object_type: AudioObjectType::Mpeg4LowComplexity,
    })
    .map_err(|e| AudioError::AacEncode(e.to_string()))?;
    let info = encoder
        .info()
        .map_err(|e| AudioError::AacEncode(e.to_string()))?;
    let asc_len = (info.confSize as usize).min(info.confBuf.len());
    let asc = Bytes::copy_from_slice(&info.confBuf[..asc_len]);
    Ok((encoder, asc, info.nDelay))
}

pub struct AacEncoder {
    encoder: enc::Encoder,
    asc: Bytes,
    /// Samples per channel the encoder emits before the first input sample.
    delay: u32,
    /// Interleaved i16 waiting for a whole frame.
    fifo: Vec<i16>,
    /// pts of the first sample pushed, and samples per channel since.
    origin_ms: Option<i64>,
    emitted: u64,
    arena: BytesMut,
    out: VecDeque<EncodedPacket>,
}

impl AacEncoder {
    /// Stereo AAC-LC at 48 kHz, CBR `bitrate` (128 kbit/s when `None`).
    pub fn new(bitrate: Option<u32>) -> Result<Self, AudioError> {
        let (encoder, asc, delay) = fdk_aac_lc(ChannelMode::Stereo, bitrate.unwrap_or(128_000))?;
        Ok(AacEncoder {
            asc,
            delay,
            encoder,
            fifo: Vec::with_capacity(AAC_FRAME_SAMPLES * 4),
            origin_ms: None,
            emitted: 0,
            arena: BytesMut::new(),
            out: VecDeque::new(),
        })
    }

    /// The AudioSpecificConfig for the hub's AudioConfig frame.
    pub fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    /// Adds interleaved stereo samples (-1..1) whose first sample plays at
    /// `pts_ms` (used for the first push only: after that, the sample count
    /// is the clock).
    pub fn push(&mut self, pcm: &[f32], pts_ms: i64) -> Result<(), AudioError> {
        self.origin_ms.get_or_insert(pts_ms);
        self.fifo.extend(pcm.iter().map(|s| f32_to_i16(*s)));
        let frame = AAC_FRAME_SAMPLES * 2;
        let mut used = 0;
        while self.fifo.len() - used >= frame {
            self.encode(used, frame)?;
            used += frame;
        }
        self.fifo.drain(..used);
        Ok(())
    }

    fn encode(&mut self, at: usize, len: usize) -> Result<(), AudioError> {
        self.arena.resize(MAX_AAC_FRAME, 0);
        let info = self
            .encoder
            .encode(&self.fifo[at..at + len], &mut self.arena)
            .map_err(|e| AudioError::AacEncode(e.to_string()))?;
        self.arena.truncate(info.output_size);
        if info.output_size > 0 {
            let data = self.arena.split().freeze();
            // Stamped by position, less the encoder's own delay.
            let start = self.emitted as i64 - i64::from(self.delay);
            let pts_ms =
                self.origin_ms.unwrap_or(0) + (start * 1000).div_euclid(i64::from(OPUS_RATE));
            self.emitted += AAC_FRAME_SAMPLES as u64;
            self.out.push_back(EncodedPacket {
                data,
                pts_ms,
                samples: AAC_FRAME_SAMPLES as u32,
            });
        }
        Ok(())
    }

    /// The next AAC frame, oldest first.
    pub fn pop(&mut self) -> Option<EncodedPacket> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PcmDecoder;

    fn tone(freq: f32, seconds: f32) -> Vec<f32> {
        let n = (48_000.0 * seconds) as usize;
        (0..n)
            .flat_map(|i| {
                let s = 0.3 * (2.0 * std::f32::consts::PI * freq * i as f32 / 48_000.0).sin();
                [s, s]
            })
            .collect()
    }

    /// Energy at `freq` in interleaved stereo (left channel), by Goertzel.
    fn power(pcm: &[f32], freq: f32) -> f32 {
        let coeff = 2.0 * (2.0 * std::f32::consts::PI * freq / 48_000.0).cos();
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for s in pcm.iter().step_by(2) {
            let s0 = s + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (pcm.len() / 2) as f32
    }

    #[test]
    fn pcm_to_aac_and_back_keeps_the_tones() {
        let mut enc = AacEncoder::new(None).unwrap();
        let mix: Vec<f32> = tone(440.0, 1.0)
            .iter()
            .zip(tone(1000.0, 1.0))
            .map(|(a, b)| a + b)
            .collect();
        // Pushed in odd-sized pieces, as a mixer's 20 ms blocks are.
        for (i, chunk) in mix.chunks(1920).enumerate() {
            enc.push(chunk, 1000 + i as i64 * 20).unwrap();
        }
        let mut dec = PcmDecoder::aac(&enc.audio_specific_config()).unwrap();
        let mut pcm = Vec::new();
        let mut stamps = Vec::new();
        while let Some(p) = enc.pop() {
            stamps.push(p.pts_ms);
            pcm.extend_from_slice(dec.decode(&p.data).unwrap());
        }
        // 1024 samples are 21.33 ms: stamped from the sample count, no drift.
        for w in stamps.windows(2) {
            assert!((21..=22).contains(&(w[1] - w[0])), "{stamps:?}");
        }
        let n = stamps.len() as i64 - 1;
        let span = stamps[stamps.len() - 1] - stamps[0];
        assert!(
            (span - n * 1024 * 1000 / 48_000).abs() <= 1,
            "{span} for {n} frames"
        );
        assert!(
            stamps[0] < 1000,
            "the encoder's delay is taken off: {}",
            stamps[0]
        );
        assert!(pcm.len() > 40_000 * 2, "{}", pcm.len());
        let (a, b, off) = (power(&pcm, 440.0), power(&pcm, 1000.0), power(&pcm, 700.0));
        assert!(
            a > 50.0 * off && b > 50.0 * off,
            "440: {a}, 1000: {b}, 700: {off}"
        );
    }

    #[test]
    fn opus_decodes_to_48k_stereo() {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Audio).unwrap();
        let mono: Vec<f32> = tone(440.0, 0.5).iter().step_by(2).copied().collect();
        let mut dec = PcmDecoder::opus().unwrap();
        let mut pcm = Vec::new();
        for block in mono.chunks(960) {
            let packet = enc.encode_vec_float(block, 4000).unwrap();
            pcm.extend_from_slice(dec.decode(&packet).unwrap());
        }
        assert_eq!(pcm.len(), mono.len() * 2, "stereo out");
        assert!(power(&pcm, 440.0) > 50.0 * power(&pcm, 1000.0));
        assert!(
            dec.decode(&[0xff, 0xff, 0xff]).is_err(),
            "garbage is an error"
        );
    }
}
