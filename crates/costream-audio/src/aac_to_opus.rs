//! RTMP → WebRTC: AAC access units in, 20 ms Opus packets at 48 kHz out.

use std::collections::VecDeque;

use bytes::BytesMut;
use opus::{Application, Bitrate, Channels};

use crate::aac_decoder::{AacDecoder, MAX_FRAME_SAMPLES};
use crate::error::AudioError;
use crate::pcm::{i16_to_f32, FrameBuffer};
use crate::resample::Resampler;
use crate::timeline::{Timeline, REANCHOR_MS};
use crate::EncodedPacket;

/// Opus's native rate; WebRTC always signals opus/48000.
pub const OPUS_RATE: u32 = 48000;
/// 20 ms at 48 kHz: the packet size browsers send and expect.
pub const OPUS_FRAME_SAMPLES: usize = 960;
/// libopus's recommended upper bound for one packet.
const MAX_OPUS_PACKET: usize = 1500;

/// Opus encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusEncoderConfig {
    /// Bits per second; `None` picks 64 kbit/s for stereo, 32 kbit/s for mono.
    pub bitrate: Option<u32>,
    /// libopus complexity, 0–10: CPU against quality.
    pub complexity: u8,
    /// Expected packet loss in percent; above 0 the encoder adds in-band FEC that browsers
    /// (useinbandfec=1) use to recover a lost packet.
    pub fec_loss_percent: u8,
}

impl Default for OpusEncoderConfig {
    fn default() -> Self {
        OpusEncoderConfig {
            bitrate: None,
            complexity: 10,
            fec_loss_percent: 0,
        }
    }
}

/// The encoding stage, rebuilt when the decoded layout (rate, channels) changes.
struct Pipeline {
    rate: u32,
    channels: usize,
    resampler: Option<Resampler>,
    encoder: opus::Encoder,
    /// Samples (at 48 kHz) the resampler and encoder emit before the input's first sample.
    delay: u32,
}

/// Transcodes one AAC stream to Opus. Sans-IO: push frames in, pop packets out.
///
/// The first decoded frame fixes the layout: Opus is stereo when the AAC decodes to two
/// channels (wider layouts are downmixed), mono otherwise.
pub struct AacToOpus {
    decoder: AacDecoder,
    config: OpusEncoderConfig,
    pipeline: Option<Pipeline>,
    timeline: Timeline,
    /// Decoder output, interleaved; reused.
    pcm: Vec<i16>,
    pcm_f32: Vec<f32>,
    resampled: Vec<f32>,
    fifo: FrameBuffer<f32>,
    /// Encoded packets are split off this buffer so they share few allocations.
    arena: BytesMut,
    out: VecDeque<EncodedPacket>,
}

impl AacToOpus {
    /// `asc`: the AudioSpecificConfig (FLV AAC sequence header payload, hub AudioConfig).
    pub fn new(asc: &[u8]) -> Result<Self, AudioError> {
        Self::with_config(asc, OpusEncoderConfig::default())
    }

    pub fn with_config(asc: &[u8], config: OpusEncoderConfig) -> Result<Self, AudioError> {
        Ok(AacToOpus {
            decoder: AacDecoder::new(asc)?,
            config,
            pipeline: None,
            timeline: Timeline::new(OPUS_RATE),
            pcm: vec![0; MAX_FRAME_SAMPLES],
            pcm_f32: Vec::with_capacity(MAX_FRAME_SAMPLES),
            resampled: Vec::with_capacity(MAX_FRAME_SAMPLES * 2),
            fifo: FrameBuffer::new(OPUS_FRAME_SAMPLES, 2),
            arena: BytesMut::new(),
            out: VecDeque::new(),
        })
    }

    /// Decodes one raw AAC frame (no ADTS) with its presentation time in ms. An error means
    /// the frame was dropped; the converter stays usable.
    pub fn push(&mut self, aac_raw_frame: &[u8], pts_ms: i64) -> Result<(), AudioError> {
        let frame = self.decoder.decode(aac_raw_frame, &mut self.pcm)?;
        let pcm = &self.pcm[..frame.samples * frame.channels];

        let layout_changed = self
            .pipeline
            .as_ref()
            .is_none_or(|p| p.rate != frame.rate || p.channels != frame.channels);
        if layout_changed {
            self.pipeline = Some(self.build_pipeline(frame.rate, frame.channels)?);
            self.fifo = FrameBuffer::new(OPUS_FRAME_SAMPLES, frame.channels);
        }
        let Some(pipeline) = self.pipeline.as_mut() else {
            return Ok(());
        };

        // A jump (reconnect, clock reset) starts a new segment: drop the partial frame and
        // the resampler's history, which belong to the old one. Smaller gaps are jitter or a
        // few lost frames; timestamps stay continuous through them.
        let jumped = self
            .timeline
            .drift_ms(pts_ms)
            .is_none_or(|d| !(-REANCHOR_MS..=REANCHOR_MS).contains(&d));
        if layout_changed || jumped {
            self.fifo.clear();
            if let Some(r) = pipeline.resampler.as_mut() {
                r.reset();
            }
            self.timeline.anchor(pts_ms, pipeline.delay);
        }
        self.timeline.advance_input(frame.samples, frame.rate);

        i16_to_f32(pcm, &mut self.pcm_f32);
        match pipeline.resampler.as_mut() {
            Some(r) => {
                r.process(&self.pcm_f32, &mut self.resampled)?;
                self.fifo.extend(&self.resampled);
            }
            None => self.fifo.extend(&self.pcm_f32),
        }

        while let Some(frame) = self.fifo.pop_frame() {
            self.arena.resize(MAX_OPUS_PACKET, 0);
            let len = pipeline.encoder.encode_float(frame, &mut self.arena)?;
            self.arena.truncate(len);
            let samples = OPUS_FRAME_SAMPLES as u32;
            self.out.push_back(EncodedPacket {
                data: self.arena.split().freeze(),
                pts_ms: self.timeline.next_output(samples),
                samples,
            });
        }
        Ok(())
    }

    /// The next Opus packet (20 ms, 48 kHz), oldest first.
    pub fn pop(&mut self) -> Option<EncodedPacket> {
        self.out.pop_front()
    }

    /// Opus channel count, once the first frame has been decoded.
    pub fn channels(&self) -> Option<usize> {
        self.pipeline.as_ref().map(|p| p.channels)
    }

    fn build_pipeline(&self, rate: u32, channels: usize) -> Result<Pipeline, AudioError> {
        let (opus_channels, default_bitrate) = if channels == 2 {
            (Channels::Stereo, 64_000)
        } else {
            (Channels::Mono, 32_000)
        };
        let mut encoder = opus::Encoder::new(OPUS_RATE, opus_channels, Application::Audio)?;
        let bitrate = self.config.bitrate.unwrap_or(default_bitrate);
        encoder.set_bitrate(Bitrate::Bits(i32::try_from(bitrate).unwrap_or(i32::MAX)))?;
        encoder.set_complexity(i32::from(self.config.complexity.min(10)))?;
        if self.config.fec_loss_percent > 0 {
            encoder.set_inband_fec(true)?;
            encoder.set_packet_loss_perc(i32::from(self.config.fec_loss_percent.min(100)))?;
        }
        let resampler = if rate == OPUS_RATE {
            None
        } else {
            Some(Resampler::new(rate, OPUS_RATE, channels)?)
        };
        let lookahead = u32::try_from(encoder.get_lookahead()?).unwrap_or(0);
        let resampler_delay = resampler.as_ref().map_or(0, |r| r.delay() as u32);
        Ok(Pipeline {
            rate,
            channels,
            resampler,
            encoder,
            delay: lookahead + resampler_delay,
        })
    }
}
