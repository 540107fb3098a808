//! WebRTC → RTMP: Opus packets in, AAC-LC access units (1024 samples at 48 kHz, raw, no
//! ADTS) out.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use fdk_aac::enc::{self, ChannelMode};
use opus::Channels;

use crate::aac_encoder::{fdk_aac_lc, MAX_AAC_FRAME};
use crate::aac_to_opus::OPUS_RATE;
use crate::error::AudioError;
use crate::pcm::FrameBuffer;
use crate::timeline::{Timeline, REANCHOR_MS};
use crate::EncodedPacket;

/// An AAC-LC frame.
pub const AAC_FRAME_SAMPLES: usize = 1024;
/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_OPUS_SAMPLES: usize = 5760;
/// Opus decodes (and conceals) in multiples of 2.5 ms.
const OPUS_GRANULE: usize = 120;

/// The channel count in an OpusHead (RFC 7845 §5.1: byte 9), e.g. from a WebM/Ogg track;
/// WebRTC has none and uses 2.
pub fn opus_head_channels(opus_head: &[u8]) -> Option<u8> {
    match opus_head {
        [b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', _, channels, ..] if *channels > 0 => {
            Some(*channels)
        }
        _ => None,
    }
}

/// AAC encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AacEncoderConfig {
    /// Bits per second (CBR); `None` picks 128 kbit/s for stereo, 64 kbit/s for mono.
    pub bitrate: Option<u32>,
}

/// Transcodes one Opus stream to AAC-LC. Sans-IO: push packets in, pop frames out.
pub struct OpusToAac {
    decoder: opus::Decoder,
    encoder: enc::Encoder,
    asc: Bytes,
    channels: usize,
    /// Samples (48 kHz) the AAC encoder emits before the first input sample.
    encoder_delay: u32,
    timeline: Timeline,
    /// Decoder output, interleaved; reused.
    pcm: Vec<i16>,
    fifo: FrameBuffer<i16>,
    arena: BytesMut,
    out: VecDeque<EncodedPacket>,
}

impl OpusToAac {
    /// `channels`: 1 or 2 (OpusHead byte 9, or 2 for WebRTC). The AAC output has as many.
    pub fn new(channels: u8) -> Result<Self, AudioError> {
        Self::with_config(channels, AacEncoderConfig::default())
    }

    pub fn with_config(channels: u8, config: AacEncoderConfig) -> Result<Self, AudioError> {
        let (opus_channels, mode, default_bitrate) = match channels {
            1 => (Channels::Mono, ChannelMode::Mono, 64_000),
            2 => (Channels::Stereo, ChannelMode::Stereo, 128_000),
            other => return Err(AudioError::Channels(other)),
        };
        let (encoder, asc, encoder_delay) =
            fdk_aac_lc(mode, config.bitrate.unwrap_or(default_bitrate))?;
        let channels = usize::from(channels);
        Ok(OpusToAac {
            decoder: opus::Decoder::new(OPUS_RATE, opus_channels)?,
            encoder,
            asc,
            channels,
            encoder_delay,
            timeline: Timeline::new(OPUS_RATE),
            pcm: vec![0; MAX_OPUS_SAMPLES * channels],
            fifo: FrameBuffer::new(AAC_FRAME_SAMPLES, channels),
            arena: BytesMut::new(),
            out: VecDeque::new(),
        })
    }

    /// The AudioSpecificConfig for the FLV AAC sequence header / hub AudioConfig frame
    /// (2 bytes: AAC-LC, 48 kHz, the channel count).
    pub fn audio_specific_config(&self) -> Bytes {
        self.asc.clone()
    }

    /// Decodes one Opus packet with its presentation time in ms. An error means the packet
    /// was dropped; the converter stays usable.
    ///
    /// A gap of up to 100 ms before `pts_ms` is filled by the decoder's loss concealment
    /// (using the packet's in-band FEC for the part just before it, when the sender added
    /// some), so the AAC timeline stays continuous; a longer gap or a jump back re-anchors.
    /// A packet that lies entirely in the past (duplicate, late) is ignored.
    pub fn push(&mut self, opus_packet: &[u8], pts_ms: i64) -> Result<(), AudioError> {
        if opus_packet.is_empty() {
            return Err(AudioError::EmptyFrame);
        }
        // Validates the TOC and frame count before anything else happens.
        let samples = opus::packet::get_nb_samples(opus_packet, OPUS_RATE)?;
        if samples == 0 || samples > MAX_OPUS_SAMPLES {
            return Err(AudioError::InvalidOpusPacket);
        }

        match self.timeline.drift_ms(pts_ms) {
            Some(d) if (-REANCHOR_MS..=REANCHOR_MS).contains(&d) => {
                let gap = d * i64::from(OPUS_RATE) / 1000;
                if gap >= samples as i64 / 2 {
                    self.conceal(gap as usize, opus_packet, samples.min(gap as usize))?;
                } else if gap <= -(samples as i64) {
                    return Ok(());
                }
            }
            _ => {
                // Drop the partial frame of the old segment. The encoder keeps its delay line:
                // the anchor's delay accounts for what is in it.
                self.fifo.clear();
                self.timeline.anchor(pts_ms, self.encoder_delay);
            }
        }

        let len = self.decoder.decode(opus_packet, &mut self.pcm, false)?;
        self.take_pcm(len)
    }

    /// The next AAC frame (1024 samples at 48 kHz), oldest first.
    pub fn pop(&mut self) -> Option<EncodedPacket> {
        self.out.pop_front()
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Fills `missing` samples before `packet`: plain concealment, then the last `fec`
    /// samples from the packet's FEC data (libopus conceals those too if it has none).
    fn conceal(&mut self, missing: usize, packet: &[u8], fec: usize) -> Result<(), AudioError> {
        let missing = missing / OPUS_GRANULE * OPUS_GRANULE;
        let fec = (fec / OPUS_GRANULE * OPUS_GRANULE).min(missing);
        let plc = missing - fec;
        if plc > 0 {
            let len = self
                .decoder
                .decode(&[], &mut self.pcm[..plc * self.channels], false)?;
            self.take_pcm(len)?;
        }
        if fec > 0 {
            let len = self
                .decoder
                .decode(packet, &mut self.pcm[..fec * self.channels], true)?;
            self.take_pcm(len)?;
        }
        Ok(())
    }

    /// Queues `samples` decoded samples and encodes every complete AAC frame.
    fn take_pcm(&mut self, samples: usize) -> Result<(), AudioError> {
        let samples = samples.min(MAX_OPUS_SAMPLES);
        self.timeline.advance_input(samples, OPUS_RATE);
        self.fifo.extend(&self.pcm[..samples * self.channels]);
        while let Some(frame) = self.fifo.pop_frame() {
            self.arena.resize(MAX_AAC_FRAME, 0);
            let info = self
                .encoder
                .encode(frame, &mut self.arena)
                .map_err(|e| AudioError::AacEncode(e.to_string()))?;
            self.arena.truncate(info.output_size);
            // FDK emits one unit per 1024 input samples, starting with the first call; the
            // priming is inside the audio and accounted for by the anchor's delay.
            if info.output_size > 0 {
                let samples = AAC_FRAME_SAMPLES as u32;
                self.out.push_back(EncodedPacket {
                    data: self.arena.split().freeze(),
                    pts_ms: self.timeline.next_output(samples),
                    samples,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_head_channel_byte() {
        let mut head = *b"OpusHead\x01\x02\x38\x01\x80\xbb\0\0\0\0\0";
        assert_eq!(opus_head_channels(&head), Some(2));
        head[9] = 1;
        assert_eq!(opus_head_channels(&head), Some(1));
        assert_eq!(opus_head_channels(b"OpusTags\x01\x02"), None);
        assert_eq!(opus_head_channels(b"OpusHead\x01"), None);
    }

    #[test]
    fn asc_is_aac_lc_48k() {
        let stereo = OpusToAac::new(2).unwrap();
        assert_eq!(&stereo.audio_specific_config()[..], &[0x11, 0x90]);
        let mono = OpusToAac::new(1).unwrap();
        assert_eq!(&mono.audio_specific_config()[..], &[0x11, 0x88]);
        assert!(OpusToAac::new(0).is_err());
        assert!(OpusToAac::new(6).is_err());
    }
}
