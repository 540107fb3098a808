//! The mix to Opus: 48 kHz stereo PCM in, 20 ms Opus packets out, stamped
//! by sample count. For a mix that replaces a WebRTC-published stream,
//! whose WebRTC viewers take Opus as it is.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use opus::{Application, Bitrate, Channels};

use crate::aac_to_opus::{OPUS_FRAME_SAMPLES, OPUS_RATE};
use crate::error::AudioError;
use crate::EncodedPacket;

/// libopus's recommended upper bound for one packet.
const MAX_OPUS_PACKET: usize = 1500;

/// An OpusHead (RFC 7845 §5.1): version 1, stereo, no pre-skip, 48 kHz: the
/// hub's AudioConfig for a stereo Opus stream.
pub const OPUS_HEAD_STEREO: &[u8] = b"OpusHead\x01\x02\x00\x00\x80\xbb\x00\x00\x00\x00\x00";

pub struct OpusEncoder {
    encoder: opus::Encoder,
    /// Samples per channel the encoder emits before the first input sample.
    delay: u32,
    fifo: Vec<f32>,
    origin_ms: Option<i64>,
    emitted: u64,
    arena: BytesMut,
    out: VecDeque<EncodedPacket>,
}

impl OpusEncoder {
    /// Stereo Opus at 48 kHz, `bitrate` bits per second (64 kbit/s when `None`).
    pub fn new(bitrate: Option<u32>) -> Result<Self, AudioError> {
        let mut encoder = opus::Encoder::new(OPUS_RATE, Channels::Stereo, Application::Audio)?;
        let bits = i32::try_from(bitrate.unwrap_or(64_000)).unwrap_or(i32::MAX);
        encoder.set_bitrate(Bitrate::Bits(bits))?;
        let delay = u32::try_from(encoder.get_lookahead()?).unwrap_or(0);
        Ok(OpusEncoder {
            encoder,
            delay,
            fifo: Vec::with_capacity(OPUS_FRAME_SAMPLES * 4),
            origin_ms: None,
            emitted: 0,
            arena: BytesMut::new(),
            out: VecDeque::new(),
        })
    }

    /// The OpusHead for the hub's AudioConfig frame.
    pub fn opus_head(&self) -> Bytes {
        Bytes::from_static(OPUS_HEAD_STEREO)
    }

    /// Adds interleaved stereo samples (-1..1) whose first sample plays at
    /// `pts_ms` (the first push only: after that the sample count is the clock).
    pub fn push(&mut self, pcm: &[f32], pts_ms: i64) -> Result<(), AudioError> {
        self.origin_ms.get_or_insert(pts_ms);
        self.fifo.extend_from_slice(pcm);
        let frame = OPUS_FRAME_SAMPLES * 2;
        let mut used = 0;
        while self.fifo.len() - used >= frame {
            self.arena.resize(MAX_OPUS_PACKET, 0);
            let len = self
                .encoder
                .encode_float(&self.fifo[used..used + frame], &mut self.arena)?;
            self.arena.truncate(len);
            let start = self.emitted as i64 - i64::from(self.delay);
            let pts_ms =
                self.origin_ms.unwrap_or(0) + (start * 1000).div_euclid(i64::from(OPUS_RATE));
            self.emitted += OPUS_FRAME_SAMPLES as u64;
            self.out.push_back(EncodedPacket {
                data: self.arena.split().freeze(),
                pts_ms,
                samples: OPUS_FRAME_SAMPLES as u32,
            });
            used += frame;
        }
        self.fifo.drain(..used);
        Ok(())
    }

    /// The next Opus packet, oldest first.
    pub fn pop(&mut self) -> Option<EncodedPacket> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PcmDecoder;

    #[test]
    fn a_tone_survives_the_round_trip() {
        let mut enc = OpusEncoder::new(None).unwrap();
        let tone: Vec<f32> = (0..48_000)
            .flat_map(|i| {
                let s = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin();
                [s, s]
            })
            .collect();
        for block in tone.chunks(960 * 2) {
            enc.push(block, 1000).unwrap();
        }
        let mut dec = PcmDecoder::opus().unwrap();
        let (mut n, mut energy, mut last_pts) = (0, 0.0f32, i64::MIN);
        while let Some(p) = enc.pop() {
            assert!(p.pts_ms > last_pts, "pts go forward");
            last_pts = p.pts_ms;
            let pcm = dec.decode(&p.data).unwrap();
            energy += pcm.iter().map(|s| s * s).sum::<f32>();
            n += 1;
        }
        assert_eq!(n, 50, "one packet per 20 ms");
        assert!(energy / (48_000.0 * 2.0) > 0.02, "energy {energy}");
        assert!((980..=1000).contains(&(last_pts - 49 * 20)), "{last_pts}");
    }
}
