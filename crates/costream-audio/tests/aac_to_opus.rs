//! AacToOpus against realistic input: FDK-encoded AAC, with FLV-style whole-ms timestamps.

mod common;

use common::*;
use costream_audio::{AacToOpus, AudioError, EncodedPacket, OpusEncoderConfig};

/// FLV timestamps: whole ms, rounded from the sample position.
fn flv_pts(frame: usize, rate: u32) -> i64 {
    ((frame as u64 * 1024 * 1000 + u64::from(rate) / 2) / u64::from(rate)) as i64
}

fn transcode(
    conv: &mut AacToOpus,
    frames: &[Vec<u8>],
    rate: u32,
    offset_ms: i64,
) -> Vec<EncodedPacket> {
    let mut out = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        conv.push(frame, offset_ms + flv_pts(i, rate)).unwrap();
        while let Some(p) = conv.pop() {
            out.push(p);
        }
    }
    out
}

fn assert_20ms_steps(packets: &[EncodedPacket]) {
    for w in packets.windows(2) {
        assert_eq!(
            w[1].pts_ms - w[0].pts_ms,
            20,
            "{:?} -> {:?}",
            w[0].pts_ms,
            w[1].pts_ms
        );
    }
    assert!(packets.iter().all(|p| p.samples == 960));
}

/// 2 s of a 44.1 kHz stereo tone becomes stereo 48 kHz Opus carrying the same tone, with
/// 20 ms timestamps spanning the input's duration.
#[test]
fn aac_44k1_stereo_tones_become_opus_48k() {
    for freq in [440.0, 1000.0] {
        let rate = 44100;
        let (asc, frames) = aac_encode(&sine(freq, rate, 2, 2.0), rate, 2);
        let mut conv = AacToOpus::new(&asc).unwrap();
        let start = 1000;
        let packets = transcode(&mut conv, &frames, rate, start);
        assert_eq!(conv.channels(), Some(2));

        assert_20ms_steps(&packets);
        let input_ms = frames.len() as f64 * 1024.0 * 1000.0 / f64::from(rate);
        let output_ms = (packets.len() * 20) as f64;
        assert!(
            (input_ms - output_ms).abs() <= 50.0,
            "in {input_ms} ms, out {output_ms} ms"
        );
        // Stamped from the first input pts, less the pipeline delay (5 ms resampler + 6.5 ms
        // Opus lookahead).
        let first = packets[0].pts_ms;
        assert!((start - 20..=start).contains(&first), "first pts {first}");

        for p in &packets {
            assert_eq!(
                opus::packet::get_nb_channels(&p.data).unwrap(),
                opus::Channels::Stereo
            );
        }
        let pcm = opus_decode(packets.iter().map(|p| &p.data[..]), 2);
        assert_eq!(pcm.len(), packets.len() * 960 * 2);
        // Past the codecs' start-up (AAC priming is ~45 ms): 0.5 s from each channel.
        for ch in 0..2 {
            let x = channel(&pcm, 2, ch);
            assert_tone(&x[9600..9600 + 24000], 48000, freq);
        }
    }
}

/// 48 kHz mono needs no resampling and gives mono Opus at the mono default bitrate.
#[test]
fn aac_48k_mono_becomes_mono_opus() {
    let (asc, frames) = aac_encode(&sine(440.0, 48000, 1, 1.0), 48000, 1);
    let mut conv = AacToOpus::new(&asc).unwrap();
    let packets = transcode(&mut conv, &frames, 48000, 0);
    assert_eq!(conv.channels(), Some(1));
    assert_20ms_steps(&packets);
    assert!(packets
        .iter()
        .all(|p| opus::packet::get_nb_channels(&p.data).unwrap() == opus::Channels::Mono));
    // Only the 6.5 ms Opus lookahead is subtracted.
    assert_eq!(packets[0].pts_ms, -7);
    let pcm = opus_decode(packets.iter().map(|p| &p.data[..]), 1);
    assert_tone(&channel(&pcm, 1, 0)[9600..9600 + 24000], 48000, 440.0);
    // 32 kbit/s: 80 bytes a packet on average.
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    let kbps = bytes as f64 * 8.0 / (packets.len() as f64 * 0.02) / 1000.0;
    assert!((24.0..=40.0).contains(&kbps), "{kbps} kbit/s");
}

#[test]
fn bitrate_is_configurable() {
    let (asc, frames) = aac_encode(&sine(440.0, 44100, 2, 1.0), 44100, 2);
    let kbps = |bitrate| {
        let config = OpusEncoderConfig {
            bitrate: Some(bitrate),
            ..OpusEncoderConfig::default()
        };
        let mut conv = AacToOpus::with_config(&asc, config).unwrap();
        let packets = transcode(&mut conv, &frames, 44100, 0);
        let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
        bytes as f64 * 8.0 / (packets.len() as f64 * 0.02) / 1000.0
    };
    let low = kbps(24_000);
    let high = kbps(128_000);
    assert!(low < 32.0 && high > 96.0, "{low} / {high} kbit/s");
}

#[test]
fn bad_config_is_an_error() {
    assert!(matches!(
        AacToOpus::new(&[]),
        Err(AudioError::InvalidConfig(_))
    ));
    assert!(matches!(
        AacToOpus::new(&[0x12]),
        Err(AudioError::InvalidConfig(_))
    ));
    assert!(matches!(
        AacToOpus::new(&[0xff, 0xff]),
        Err(AudioError::InvalidConfig(_))
    ));
}

/// Empty, garbage and truncated frames are errors; the stream goes on undisturbed.
#[test]
fn garbage_input_is_an_error_and_the_stream_continues() {
    let rate = 44100;
    let (asc, frames) = aac_encode(&sine(440.0, rate, 2, 2.0), rate, 2);
    let mut conv = AacToOpus::new(&asc).unwrap();
    let garbage: Vec<u8> = (0..300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut packets = Vec::new();
    let mut errors = 0;
    for (i, frame) in frames.iter().enumerate() {
        let pts = flv_pts(i, rate);
        if i == 20 {
            assert!(matches!(conv.push(&[], pts), Err(AudioError::EmptyFrame)));
            assert!(conv.push(&garbage, pts).is_err());
            assert!(conv.push(&[0xff; 64], pts).is_err());
            errors += 3;
        }
        if i == 40 {
            // A truncated frame replaces the real one, as a broken upstream would send.
            assert!(conv.push(&frame[..frame.len() / 3], pts).is_err());
            errors += 1;
            continue;
        }
        conv.push(frame, pts).unwrap();
        while let Some(p) = conv.pop() {
            packets.push(p);
        }
    }
    assert_eq!(errors, 4);
    // One frame (23 ms) was lost: below the re-anchor threshold, so the output runs on.
    assert_20ms_steps(&packets);
    let pcm = opus_decode(packets.iter().map(|p| &p.data[..]), 2);
    let x = channel(&pcm, 2, 0);
    // After the garbage (frame 40 ≈ 0.93 s): the tone is intact.
    assert_tone(&x[48000..48000 + 24000], 48000, 440.0);
}

/// A jump of the input clock (publisher reconnect) re-anchors the output; ms jitter does not.
#[test]
fn timestamp_jump_reanchors_but_jitter_does_not() {
    let rate = 44100;
    let (asc, frames) = aac_encode(&sine(440.0, rate, 2, 2.0), rate, 2);
    let mut conv = AacToOpus::new(&asc).unwrap();
    let half = frames.len() / 2;
    let mut packets = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        // ±7 ms jitter, as a phone's encoder clock gives.
        let jitter = [0, 7, -5, 3, -7][i % 5];
        let jump = if i >= half { 5000 } else { 0 };
        conv.push(frame, flv_pts(i, rate) + jitter + jump).unwrap();
        while let Some(p) = conv.pop() {
            packets.push(p);
        }
    }
    let split = packets
        .windows(2)
        .position(|w| w[1].pts_ms - w[0].pts_ms != 20)
        .expect("a discontinuity");
    let (before, after) = packets.split_at(split + 1);
    assert_20ms_steps(before);
    assert_20ms_steps(after);
    let jump_input = flv_pts(half, rate) + 5000;
    let first_after = after[0].pts_ms;
    assert!(
        (jump_input - 20..=jump_input).contains(&first_after),
        "first pts after the jump {first_after}, input {jump_input}"
    );
    assert!(before.last().unwrap().pts_ms < flv_pts(half, rate));
    // Both segments still carry the tone.
    let pcm = opus_decode(after.iter().map(|p| &p.data[..]), 2);
    assert_tone(&channel(&pcm, 2, 0)[4800..4800 + 24000], 48000, 440.0);
}

/// The resampler delay and the Opus lookahead are taken off the timestamps: a tone that
/// starts 500 ms in plays at 500 ms on the output clock (plus the AAC encoder's priming,
/// which is inside the AAC input and which FLV does not signal).
#[test]
fn codec_delay_is_taken_off_the_timestamps() {
    let rate = 44100;
    let mut pcm = vec![0i16; rate as usize / 2 * 2];
    pcm.extend(sine(1000.0, rate, 2, 0.5));
    let (asc, frames) = aac_encode(&pcm, rate, 2);
    let mut conv = AacToOpus::new(&asc).unwrap();
    let packets = transcode(&mut conv, &frames, rate, 0);
    let out = channel(&opus_decode(packets.iter().map(|p| &p.data[..]), 2), 2, 0);
    let onset = out.iter().position(|v| v.abs() > 0.1).unwrap();
    let onset_ms = packets[0].pts_ms as f64 + onset as f64 / 48.0;
    // FDK's encoder delay is 2048 samples.
    let expected = 500.0 + 2048.0 * 1000.0 / f64::from(rate);
    assert!(
        (onset_ms - expected).abs() < 3.0,
        "onset at {onset_ms} ms, expected {expected}"
    );
}
