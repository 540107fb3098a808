//! Any input's audio as 48 kHz stereo f32 PCM: what the mixer adds up.
//! AAC (any rate, mono or stereo) is decoded and resampled; Opus decodes at
//! 48 kHz directly.

use crate::aac_decoder::{AacDecoder, MAX_FRAME_SAMPLES};
use crate::aac_to_opus::OPUS_RATE;
use crate::error::AudioError;
use crate::pcm::i16_to_f32;
use crate::resample::Resampler;

/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_OPUS_SAMPLES: usize = 5760;

enum Inner {
    Aac {
        decoder: AacDecoder,
        /// Made when the stream's rate is not 48 kHz (boxed: it is large).
        resampler: Option<Box<(u32, usize, Resampler)>>,
    },
    Opus(opus::Decoder),
}

/// Decodes one input's audio frames to interleaved 48 kHz stereo f32.
pub struct PcmDecoder {
    inner: Inner,
    pcm: Vec<i16>,
    f32s: Vec<f32>,
    resampled: Vec<f32>,
    out: Vec<f32>,
}

impl PcmDecoder {
    /// For AAC, from its AudioSpecificConfig.
    pub fn aac(asc: &[u8]) -> Result<Self, AudioError> {
        Ok(Self::with(Inner::Aac {
            decoder: AacDecoder::new(asc)?,
            resampler: None,
        }))
    }

    /// For Opus (decoded as stereo; a mono stream comes out on both channels).
    pub fn opus() -> Result<Self, AudioError> {
        Ok(Self::with(Inner::Opus(opus::Decoder::new(
            OPUS_RATE,
            opus::Channels::Stereo,
        )?)))
    }

    fn with(inner: Inner) -> Self {
        PcmDecoder {
            inner,
            pcm: vec![0; MAX_FRAME_SAMPLES.max(MAX_OPUS_SAMPLES * 2)],
            f32s: Vec::new(),
            resampled: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Decodes one frame; returns its samples (interleaved stereo, 48 kHz).
    /// A resampling decoder may return fewer samples now and more later.
    /// A bad frame is an `Err`; the decoder stays usable.
    pub fn decode(&mut self, frame: &[u8]) -> Result<&[f32], AudioError> {
        if frame.is_empty() {
            return Err(AudioError::EmptyFrame);
        }
        self.out.clear();
        match &mut self.inner {
            Inner::Opus(decoder) => {
                let samples = opus::packet::get_nb_samples(frame, OPUS_RATE)?;
                if samples == 0 || samples > MAX_OPUS_SAMPLES {
                    return Err(AudioError::InvalidOpusPacket);
                }
                let n = decoder.decode(frame, &mut self.pcm[..MAX_OPUS_SAMPLES * 2], false)?;
                i16_to_f32(&self.pcm[..n * 2], &mut self.out);
            }
            Inner::Aac { decoder, resampler } => {
                let d = decoder.decode(frame, &mut self.pcm)?;
                i16_to_f32(&self.pcm[..d.samples * d.channels], &mut self.f32s);
                if d.rate == OPUS_RATE {
                    std::mem::swap(&mut self.f32s, &mut self.resampled);
                } else {
                    if resampler
                        .as_ref()
                        .is_none_or(|r| r.0 != d.rate || r.1 != d.channels)
                    {
                        let r = Resampler::new(d.rate, OPUS_RATE, d.channels)?;
                        *resampler = Some(Box::new((d.rate, d.channels, r)));
                    }
                    if let Some(r) = resampler {
                        r.2.process(&self.f32s, &mut self.resampled)?;
                    }
                }
                if d.channels == 1 {
                    self.out.extend(self.resampled.iter().flat_map(|&s| [s, s]));
                } else {
                    self.out.extend_from_slice(&self.resampled);
                }
            }
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdk_aac::enc::{self, AudioObjectType, BitRate, ChannelMode, EncoderParams, Transport};

    #[test]
    fn aac_at_44k1_mono_comes_out_at_48k_stereo() {
        let encoder = enc::Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(64_000),
            sample_rate: 44_100,
            transport: Transport::Raw,
            channels: ChannelMode::Mono,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .unwrap();
        let info = encoder.info().unwrap();
        let asc = &info.confBuf[..info.confSize as usize];
        let mut dec = PcmDecoder::aac(asc).unwrap();
        let tone: Vec<i16> = (0..44_100)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 44_100.0).sin()) as i16
            })
            .collect();
        let mut out = Vec::new();
        let mut buf = [0u8; 1536];
        for block in tone.chunks(1024) {
            let r = encoder.encode(block, &mut buf).unwrap();
            if r.output_size > 0 {
                out.extend_from_slice(dec.decode(&buf[..r.output_size]).unwrap());
            }
        }
        // About a second at 48 kHz, two channels, the same on both.
        let frames = out.len() / 2;
        assert!((40_000..=48_000).contains(&frames), "{frames}");
        assert!(out.chunks(2).all(|lr| lr[0] == lr[1]));
        // Zero crossings of the left channel: ~880 a second for 440 Hz.
        let left: Vec<f32> = out.iter().step_by(2).copied().skip(4800).collect();
        let crossings = left
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        let hz = crossings as f32 / 2.0 / (left.len() as f32 / 48_000.0);
        assert!((hz - 440.0).abs() < 10.0, "{hz} Hz");
        assert!(dec.decode(&[]).is_err());
    }
}
