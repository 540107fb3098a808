//! Sample-rate conversion to 48 kHz (Opus's native rate) with rubato's synchronous FFT
//! resampler: the ratio is fixed per stream, and FFT resampling is the cheapest good-quality
//! way to do a fixed ratio.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

use crate::error::AudioError;

/// Resamples interleaved f32 PCM of any length by buffering it into the resampler's fixed
/// chunks. Buffers are kept across calls.
pub(crate) struct Resampler {
    inner: Fft<f32>,
    channels: usize,
    /// Input not yet consumed (less than one chunk between calls).
    pending: Vec<f32>,
}

impl Resampler {
    pub fn new(in_rate: u32, out_rate: u32, channels: usize) -> Result<Self, AudioError> {
        // 10 ms chunks keep the added delay small (half an FFT block, 5 ms at 44.1 kHz);
        // rubato rounds the chunk up to a block the two rates divide evenly.
        let chunk = (in_rate as usize / 100).max(1);
        let inner = Fft::new(
            in_rate as usize,
            out_rate as usize,
            chunk,
            channels,
            FixedSync::Both,
        )
        .map_err(|e| AudioError::Resample(e.to_string()))?;
        Ok(Resampler {
            pending: Vec::with_capacity(inner.input_frames_max() * channels * 2),
            inner,
            channels,
        })
    }

    /// Output frames (per channel) the resampler emits before the first input sample.
    pub fn delay(&self) -> usize {
        self.inner.output_delay()
    }

    /// Resamples `input` and appends what is ready to `out` (which is cleared first).
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        let ch = self.channels;
        out.clear();
        self.pending.extend_from_slice(input);
        let available = self.pending.len() / ch;
        let mut consumed = 0;
        loop {
            let need = self.inner.input_frames_next();
            if available - consumed < need {
                break;
            }
            let produce = self.inner.output_frames_next();
            let start = out.len();
            out.resize(start + produce * ch, 0.0);
            let input = InterleavedSlice::new(&self.pending[consumed * ch..], ch, need)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            let mut output = InterleavedSlice::new_mut(&mut out[start..], ch, produce)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            let (used, made) = self
                .inner
                .process_into_buffer(&input, &mut output, None)
                .map_err(|e| AudioError::Resample(e.to_string()))?;
            out.truncate(start + made * ch);
            consumed += used;
        }
        self.pending.drain(..consumed * ch);
        Ok(())
    }

    /// Forgets buffered input and filter state, as after a discontinuity.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.inner.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_second_at_44k1_becomes_one_second_at_48k() {
        let mut r = Resampler::new(44100, 48000, 2).unwrap();
        let input: Vec<f32> = (0..44100)
            .flat_map(|i| {
                let s = (i as f32 * 440.0 * std::f32::consts::TAU / 44100.0).sin();
                [s, s]
            })
            .collect();
        let mut out = Vec::new();
        let mut total = 0;
        // Odd-sized pushes, as AAC frames are 1024 and chunks are 441.
        for chunk in input.chunks(1024 * 2) {
            r.process(chunk, &mut out).unwrap();
            total += out.len() / 2;
        }
        assert_eq!(r.delay(), 240);
        // All but the last partial chunk (< 10 ms) came out.
        assert!((47_500..=48_000).contains(&total), "{total}");
        // Filter state reset: next output starts from scratch.
        r.reset();
        r.process(&input[..882], &mut out).unwrap();
        assert_eq!(out.len(), 960);
    }

    #[test]
    fn other_rates_construct() {
        for rate in [8000, 11025, 16000, 22050, 24000, 32000, 88200, 96000, 7350] {
            let r = Resampler::new(rate, 48000, 1).unwrap();
            assert!(r.delay() < 48000 / 50, "{rate}: {}", r.delay());
        }
    }
}
