//! Cost of one transcoded stream: CPU time per second of audio through each converter.
//!
//! `cargo bench -p costream-audio` runs the criterion benches (their throughput, in
//! "elem/s", is seconds of audio per second of one core: streams per core), then prints a
//! summary measured in thread CPU time, which other load on the machine does not inflate.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use costream_audio::{AacToOpus, OpusEncoderConfig, OpusToAac};
use criterion::{Criterion, Throughput};

const SECONDS: f64 = 10.0;

/// Programme-like test signal: a chord with vibrato plus a little noise, so the encoders do
/// real work (a pure sine is unrealistically cheap).
fn signal(rate: u32, channels: usize) -> Vec<i16> {
    let n = (f64::from(rate) * SECONDS) as usize;
    let mut seed = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(n * channels);
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let vib = 1.0 + 0.01 * (std::f64::consts::TAU * 5.0 * t).sin();
        let mut s = 0.0;
        for (f, a) in [(220.0, 0.2), (277.2, 0.15), (329.6, 0.15), (1760.0, 0.05)] {
            s += a * (std::f64::consts::TAU * f * vib * t).sin();
        }
        for c in 0..channels {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (f64::from(seed) / f64::from(u32::MAX) - 0.5) * 0.05;
            let pan = if c == 0 { 1.0 } else { 0.8 };
            out.push(((s * pan + noise) * 32767.0) as i16);
        }
    }
    out
}

struct Inputs {
    asc: Vec<u8>,
    aac: Vec<(i64, Vec<u8>)>,
    opus: Vec<(i64, Vec<u8>)>,
}

fn inputs() -> Inputs {
    let (asc, frames) = common::aac_encode(&signal(44100, 2), 44100, 2);
    let aac = frames
        .into_iter()
        .enumerate()
        .map(|(i, f)| ((i as u64 * 1024 * 1000 / 44100) as i64, f))
        .collect();
    let opus = common::opus_encode(&signal(48000, 2), 2)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i as i64 * 20, p))
        .collect();
    Inputs { asc, aac, opus }
}

fn aac_to_opus(input: &Inputs) -> usize {
    aac_to_opus_with(input, OpusEncoderConfig::default())
}

/// Complexity 5 trades some Opus quality for CPU, for operators who need more streams.
fn aac_to_opus_c5(input: &Inputs) -> usize {
    let config = OpusEncoderConfig {
        complexity: 5,
        ..OpusEncoderConfig::default()
    };
    aac_to_opus_with(input, config)
}

fn aac_to_opus_with(input: &Inputs, config: OpusEncoderConfig) -> usize {
    let mut conv = AacToOpus::with_config(&input.asc, config).unwrap();
    let mut bytes = 0;
    for (pts, frame) in &input.aac {
        conv.push(frame, *pts).unwrap();
        while let Some(p) = conv.pop() {
            bytes += black_box(p).data.len();
        }
    }
    bytes
}

fn opus_to_aac(input: &Inputs) -> usize {
    let mut conv = OpusToAac::new(2).unwrap();
    let mut bytes = 0;
    for (pts, packet) in &input.opus {
        conv.push(packet, *pts).unwrap();
        while let Some(p) = conv.pop() {
            bytes += black_box(p).data.len();
        }
    }
    bytes
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn summary(input: &Inputs) {
    type Run = fn(&Inputs) -> usize;
    let runs: [(&str, Run); 3] = [
        ("AAC→Opus", aac_to_opus),
        ("AAC→Opus (Opus complexity 5)", aac_to_opus_c5),
        ("Opus→AAC", opus_to_aac),
    ];
    for (name, run) in runs {
        // Best of five: the least disturbed run.
        let best = (0..5)
            .map(|_| {
                let start = thread_cpu();
                black_box(run(input));
                thread_cpu() - start
            })
            .fold(f64::MAX, f64::min);
        let ms_per_second = best * 1000.0 / SECONDS;
        println!(
            "{name}: {ms_per_second:.2} ms CPU per second of audio ({:.0} streams per core)",
            1000.0 / ms_per_second
        );
    }
}

fn main() {
    let input = inputs();
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    let mut group = c.benchmark_group("transcode_10s_stereo");
    // One element per second of audio: elem/s is streams per core.
    group.throughput(Throughput::Elements(SECONDS as u64));
    group.bench_function("aac_44k1_to_opus", |b| b.iter(|| aac_to_opus(&input)));
    group.bench_function("opus_to_aac_48k", |b| b.iter(|| opus_to_aac(&input)));
    group.finish();
    c.final_summary();
    // Only under `cargo bench`, not when `cargo test --all-targets` runs benches once.
    if std::env::args().any(|a| a == "--bench") {
        summary(&input);
    }
}
