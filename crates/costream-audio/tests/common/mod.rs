//! Test signals, reference codecs (fdk-aac's own encoder/decoder, libopus) and a small
//! frequency/energy analysis, shared by the integration tests and the bench.
#![allow(dead_code)]

use fdk_aac::{dec, enc};

/// An interleaved sine at half scale, the same on every channel.
pub fn sine(freq: f64, rate: u32, channels: usize, seconds: f64) -> Vec<i16> {
    let n = (rate as f64 * seconds) as usize;
    let mut v = Vec::with_capacity(n * channels);
    for i in 0..n {
        let s = (std::f64::consts::TAU * freq * i as f64 / rate as f64).sin() * 0.5;
        let s = (s * 32767.0) as i16;
        v.extend(std::iter::repeat_n(s, channels));
    }
    v
}

/// Encodes `pcm` to raw AAC-LC frames with FDK; returns the ASC and the frames.
pub fn aac_encode(pcm: &[i16], rate: u32, channels: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let encoder = enc::Encoder::new(enc::EncoderParams {
        bit_rate: enc::BitRate::Cbr(64_000 * channels as u32),
        sample_rate: rate,
        transport: enc::Transport::Raw,
        channels: if channels == 2 {
            enc::ChannelMode::Stereo
        } else {
            enc::ChannelMode::Mono
        },
        audio_object_type: enc::AudioObjectType::Mpeg4LowComplexity,
    })
    .unwrap();
    let info = encoder.info().unwrap();
    let asc = info.confBuf[..info.confSize as usize].to_vec();
    let mut frames = Vec::new();
    let mut out = vec![0u8; 8192];
    for chunk in pcm.chunks_exact(1024 * channels) {
        let r = encoder.encode(chunk, &mut out).unwrap();
        assert_eq!(r.input_consumed, chunk.len());
        if r.output_size > 0 {
            frames.push(out[..r.output_size].to_vec());
        }
    }
    (asc, frames)
}

/// Decodes raw AAC frames; returns (rate, channels, interleaved pcm).
pub fn aac_decode<'a>(
    asc: &[u8],
    frames: impl IntoIterator<Item = &'a [u8]>,
) -> (u32, usize, Vec<i16>) {
    let mut decoder = dec::Decoder::new(dec::Transport::Raw);
    decoder.config_raw(asc).unwrap();
    let mut buf = vec![0i16; 2048 * 8];
    let mut pcm = Vec::new();
    for frame in frames {
        decoder.fill(frame).unwrap();
        decoder.decode_frame(&mut buf).unwrap();
        pcm.extend_from_slice(&buf[..decoder.decoded_frame_size()]);
    }
    let info = decoder.stream_info();
    (info.sampleRate as u32, info.numChannels as usize, pcm)
}

/// Encodes 48 kHz `pcm` into 20 ms Opus packets.
pub fn opus_encode(pcm: &[i16], channels: usize) -> Vec<Vec<u8>> {
    let ch = if channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut encoder = opus::Encoder::new(48000, ch, opus::Application::Audio).unwrap();
    pcm.chunks_exact(960 * channels)
        .map(|frame| encoder.encode_vec(frame, 1500).unwrap())
        .collect()
}

/// Decodes Opus packets at 48 kHz into `channels` interleaved channels.
pub fn opus_decode<'a>(packets: impl IntoIterator<Item = &'a [u8]>, channels: usize) -> Vec<i16> {
    let ch = if channels == 2 {
        opus::Channels::Stereo
    } else {
        opus::Channels::Mono
    };
    let mut decoder = opus::Decoder::new(48000, ch).unwrap();
    let mut buf = vec![0i16; 5760 * channels];
    let mut pcm = Vec::new();
    for packet in packets {
        let n = decoder.decode(packet, &mut buf, false).unwrap();
        pcm.extend_from_slice(&buf[..n * channels]);
    }
    pcm
}

/// One channel of interleaved pcm, as floats.
pub fn channel(pcm: &[i16], channels: usize, which: usize) -> Vec<f64> {
    pcm.iter()
        .skip(which)
        .step_by(channels)
        .map(|&s| f64::from(s) / 32768.0)
        .collect()
}

pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Goertzel power of `x` at `freq`, normalised by length.
fn goertzel(x: &[f64], rate: f64, freq: f64) -> f64 {
    let coeff = 2.0 * (std::f64::consts::TAU * freq / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
}

/// The strongest frequency in 50 Hz–8 kHz: a 10 Hz scan, then 0.5 Hz around the peak.
pub fn dominant_frequency(x: &[f64], rate: u32) -> f64 {
    let rate = f64::from(rate);
    let peak = |from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut f = from;
        while f <= to {
            let p = goertzel(x, rate, f);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best.0
    };
    let coarse = peak(50.0, 8000.0, 10.0);
    peak(coarse - 15.0, coarse + 15.0, 0.5)
}

/// Asserts the tone is `freq` within 2 % and clearly audible.
pub fn assert_tone(x: &[f64], rate: u32, freq: f64) {
    let found = dominant_frequency(x, rate);
    assert!(
        (found - freq).abs() <= freq * 0.02,
        "dominant frequency {found} Hz, expected {freq} Hz"
    );
    // A half-scale sine has an RMS of 0.354; allow for codec loss.
    let level = rms(x);
    assert!(level > 0.2, "RMS {level} too low");
}
