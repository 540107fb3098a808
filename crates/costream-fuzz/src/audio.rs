//! The audio bridges between RTMP and WebRTC viewers, fed a publisher's
//! codec config and frames: AAC (FDK's decoder) to Opus, Opus (libopus's
//! decoder) to AAC.

use costream_audio::{opus_head_channels, AacToOpus, OpusToAac};
use costream_hub::aac::AacConfig;

use crate::Input;

/// Input: a mode byte (bit 0: Opus to AAC instead of AAC to Opus; bit 1:
/// stereo Opus), a config length byte and the AudioSpecificConfig (or
/// OpusHead), then frames, each a 2-byte length, a timestamp step byte and
/// the frame.
pub fn aac(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let config_len = usize::from(input.byte() % 64);
    let config = input.take(config_len);
    let mut pts = 0i64;
    let mut frames = 0;
    if mode & 1 == 0 {
        let _ = AacConfig::parse(config);
        let Ok(mut bridge) = AacToOpus::new(config) else {
            return;
        };
        while !input.is_empty() && frames < 32 {
            let (frame, step) = next_frame(&mut input);
            pts += step;
            let _ = bridge.push(frame, pts);
            while bridge.pop().is_some() {}
            frames += 1;
        }
    } else {
        let channels = opus_head_channels(config).unwrap_or(1 + (mode >> 1) % 2);
        let Ok(mut bridge) = OpusToAac::new(channels) else {
            return;
        };
        while !input.is_empty() && frames < 32 {
            let (frame, step) = next_frame(&mut input);
            pts += step;
            let _ = bridge.push(frame, pts);
            while bridge.pop().is_some() {}
            frames += 1;
        }
    }
}

/// A frame and how far its timestamp moves on: about a frame's duration,
/// sometimes a jump (a reconnect), sometimes backwards.
fn next_frame<'a>(input: &mut Input<'a>) -> (&'a [u8], i64) {
    let len = usize::from(input.u16()) % 4096;
    let step = match input.byte() {
        255 => 100_000,
        254 => -100_000,
        b => i64::from(b) - 32,
    };
    (input.take(len), step)
}
