//! OpusToAac against realistic input: libopus-encoded 20 ms packets with RTP-derived
//! timestamps.

mod common;

use common::*;
use costream_audio::{opus_head_channels, AudioError, EncodedPacket, OpusToAac};

fn transcode(conv: &mut OpusToAac, packets: &[(i64, Vec<u8>)]) -> Vec<EncodedPacket> {
    let mut out = Vec::new();
    for (pts, packet) in packets {
        conv.push(packet, *pts).unwrap();
        while let Some(p) = conv.pop() {
            out.push(p);
        }
    }
    out
}

/// Packets with pts every 20 ms from `start`.
fn stamped(packets: Vec<Vec<u8>>, start: i64) -> Vec<(i64, Vec<u8>)> {
    packets
        .into_iter()
        .enumerate()
        .map(|(i, p)| (start + i as i64 * 20, p))
        .collect()
}

/// AAC frames are 1024 samples at 48 kHz: 21.333 ms, so pts steps are 21 or 22 ms and never
/// drift from the sample count.
fn assert_aac_steps(frames: &[EncodedPacket]) {
    assert!(frames.iter().all(|f| f.samples == 1024));
    for w in frames.windows(2) {
        let step = w[1].pts_ms - w[0].pts_ms;
        assert!(
            step == 21 || step == 22,
            "{} -> {}",
            w[0].pts_ms,
            w[1].pts_ms
        );
    }
    let span = frames.last().unwrap().pts_ms - frames[0].pts_ms;
    let expected = (frames.len() - 1) as f64 * 1024.0 / 48.0;
    assert!(
        (span as f64 - expected).abs() <= 1.0,
        "{span} vs {expected}"
    );
}

fn decode(conv: &OpusToAac, frames: &[EncodedPacket]) -> (u32, usize, Vec<i16>) {
    aac_decode(
        &conv.audio_specific_config(),
        frames.iter().map(|f| &f.data[..]),
    )
}

/// A stereo 1000 Hz Opus stream becomes AAC-LC 48 kHz stereo carrying the same tone.
#[test]
fn opus_tone_becomes_aac_lc_48k() {
    let packets = stamped(opus_encode(&sine(1000.0, 48000, 2, 2.0), 2), 3000);
    let mut conv = OpusToAac::new(2).unwrap();
    let frames = transcode(&mut conv, &packets);

    // AudioSpecificConfig: object type 2 (AAC-LC), rate index 3 (48 kHz), 2 channels.
    let asc = conv.audio_specific_config();
    assert_eq!(asc.len(), 2);
    assert_eq!(asc[0] >> 3, 2);
    assert_eq!(((asc[0] & 7) << 1) | (asc[1] >> 7), 3);
    assert_eq!((asc[1] >> 3) & 0xf, 2);

    assert_aac_steps(&frames);
    let input_ms = packets.len() as f64 * 20.0;
    let output_ms = frames.len() as f64 * 1024.0 / 48.0;
    assert!(
        (input_ms - output_ms).abs() <= 50.0,
        "in {input_ms} ms, out {output_ms} ms"
    );
    // The first frames are stamped the encoder's 2048-sample (42.7 ms) priming early.
    assert_eq!(frames[0].pts_ms, 3000 - 43);

    let (rate, channels, pcm) = decode(&conv, &frames);
    assert_eq!((rate, channels), (48000, 2));
    for ch in 0..2 {
        let x = channel(&pcm, 2, ch);
        assert_tone(&x[9600..9600 + 24000], 48000, 1000.0);
    }
}

#[test]
fn mono_opus_becomes_mono_aac() {
    let packets = stamped(opus_encode(&sine(440.0, 48000, 1, 1.0), 1), 0);
    let mut conv = OpusToAac::new(1).unwrap();
    let frames = transcode(&mut conv, &packets);
    assert_eq!((conv.audio_specific_config()[1] >> 3) & 0xf, 1);
    let (rate, channels, pcm) = decode(&conv, &frames);
    assert_eq!((rate, channels), (48000, 1));
    assert_tone(&channel(&pcm, 1, 0)[9600..9600 + 24000], 48000, 440.0);
}

/// Stereo Opus into a converter opened for mono (a wrong OpusHead) still works: libopus
/// downmixes.
#[test]
fn channel_count_comes_from_opus_head_or_defaults() {
    let head = b"OpusHead\x01\x01\x38\x01\x80\xbb\0\0\0\0\0";
    let channels = opus_head_channels(head).unwrap_or(2);
    assert_eq!(channels, 1);
    let packets = stamped(opus_encode(&sine(440.0, 48000, 2, 1.0), 2), 0);
    let mut conv = OpusToAac::new(channels).unwrap();
    let frames = transcode(&mut conv, &packets);
    let (_, ch, pcm) = decode(&conv, &frames);
    assert_eq!(ch, 1);
    assert_tone(&channel(&pcm, 1, 0)[9600..9600 + 24000], 48000, 440.0);
}

/// Empty and malformed packets are errors; the stream goes on undisturbed.
#[test]
fn garbage_input_is_an_error_and_the_stream_continues() {
    let packets = stamped(opus_encode(&sine(1000.0, 48000, 2, 2.0), 2), 0);
    let mut conv = OpusToAac::new(2).unwrap();
    let mut frames = Vec::new();
    for (i, (pts, packet)) in packets.iter().enumerate() {
        if i == 30 {
            assert!(matches!(conv.push(&[], *pts), Err(AudioError::EmptyFrame)));
            // Code 3 (arbitrary frame count) with a count of 0.
            assert!(conv.push(&[0x03, 0x00], *pts).is_err());
            // Code 3 with 63 frames of 20 ms: over 120 ms.
            assert!(conv.push(&[0xfb, 0x3f, 0, 0, 0], *pts).is_err());
            // Code 1 (two equal frames) with an odd payload length.
            assert!(conv.push(&[0x01, 0x00], *pts).is_err());
            // Code 2 whose first frame length runs past the end.
            assert!(conv.push(&[0xfa, 0xfb, 0x01, 0x02], *pts).is_err());
        }
        conv.push(packet, *pts).unwrap();
        while let Some(f) = conv.pop() {
            frames.push(f);
        }
    }
    assert_aac_steps(&frames);
    let (_, _, pcm) = decode(&conv, &frames);
    assert_tone(&channel(&pcm, 2, 0)[48000..48000 + 24000], 48000, 1000.0);
}

/// Lost packets (a 60 ms hole) are concealed: the AAC timeline runs on through the gap and
/// covers it, and a duplicate packet is ignored.
#[test]
fn packet_loss_is_concealed_and_duplicates_ignored() {
    let packets = stamped(opus_encode(&sine(1000.0, 48000, 2, 2.0), 2), 0);
    let mut conv = OpusToAac::new(2).unwrap();
    let mut frames = Vec::new();
    for (i, (pts, packet)) in packets.iter().enumerate() {
        if (40..43).contains(&i) {
            continue;
        }
        conv.push(packet, *pts).unwrap();
        if i == 60 {
            conv.push(packet, *pts).unwrap();
            conv.push(&packets[59].1, packets[59].0).unwrap();
        }
        while let Some(f) = conv.pop() {
            frames.push(f);
        }
    }
    assert_aac_steps(&frames);
    // Same frame count as the unbroken stream: the gap was filled, the duplicates dropped.
    let mut clean = OpusToAac::new(2).unwrap();
    assert_eq!(frames.len(), transcode(&mut clean, &packets).len());
    let (_, _, pcm) = decode(&conv, &frames);
    // The tone after the gap is intact.
    assert_tone(&channel(&pcm, 2, 0)[60000..60000 + 24000], 48000, 1000.0);
}

/// A jump of more than 100 ms re-anchors: the next frames follow the new clock.
#[test]
fn timestamp_jump_reanchors() {
    let mut packets = stamped(opus_encode(&sine(1000.0, 48000, 2, 2.0), 2), 0);
    let half = packets.len() / 2;
    for (pts, _) in &mut packets[half..] {
        *pts += 3000;
    }
    let mut conv = OpusToAac::new(2).unwrap();
    let frames = transcode(&mut conv, &packets);
    let split = frames
        .windows(2)
        .position(|w| w[1].pts_ms - w[0].pts_ms > 22)
        .expect("a discontinuity");
    let (before, after) = frames.split_at(split + 1);
    assert_aac_steps(before);
    assert_aac_steps(after);
    let jump_input = packets[half].0;
    assert_eq!(after[0].pts_ms, jump_input - 43);
    assert!(before.last().unwrap().pts_ms < packets[half - 1].0);
}

/// The AAC encoder's priming is taken off the timestamps: a tone that starts 500 ms in plays
/// at 500 ms on the output clock (plus the Opus encoder's 6.5 ms lookahead, which is inside
/// the Opus input).
#[test]
fn codec_delay_is_taken_off_the_timestamps() {
    let mut pcm = vec![0i16; 24000 * 2];
    pcm.extend(sine(1000.0, 48000, 2, 0.5));
    let packets = stamped(opus_encode(&pcm, 2), 0);
    let mut conv = OpusToAac::new(2).unwrap();
    let frames = transcode(&mut conv, &packets);
    // The reference decoder runs with FDK's defaults, which add 1744 samples of output delay
    // (limiter, concealment); take that off too.
    let (_, _, out) = decode(&conv, &frames);
    let out = channel(&out, 2, 0);
    let onset = out.iter().position(|v| v.abs() > 0.1).unwrap() as f64 - 1744.0;
    let onset_ms = frames[0].pts_ms as f64 + onset / 48.0;
    let expected = 500.0 + 312.0 / 48.0;
    assert!(
        (onset_ms - expected).abs() < 3.0,
        "onset at {onset_ms} ms, expected {expected}"
    );
}
