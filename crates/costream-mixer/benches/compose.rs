//! What a composite costs: four inputs into a 1280x720 grid, whose cells
//! are 640x360: inputs of that size (plain copies), of twice that size
//! (2x2 averages) and of another size (bilinear).

use costream_mixer::{Color, Compositor, Layout, Picture};
use criterion::{criterion_group, criterion_main, Criterion};

fn compose(c: &mut Criterion) {
    let inputs: Vec<Picture> = (0..4)
        .map(|i| Picture::filled(640, 360, Color::rgb(60 * i as u8, 100, 200)))
        .collect();
    let refs: Vec<Option<&Picture>> = inputs.iter().map(Some).collect();
    let mut comp = Compositor::new(1280, 720);
    c.bench_function("grid of 4 x 640x360 into 1280x720 (copies)", |b| {
        b.iter(|| comp.compose(&Layout::Grid, &refs).y[0])
    });
    let big: Vec<Picture> = (0..4)
        .map(|i| Picture::filled(1280, 720, Color::rgb(60 * i as u8, 100, 200)))
        .collect();
    let refs: Vec<Option<&Picture>> = big.iter().map(Some).collect();
    c.bench_function("grid of 4 x 1280x720 into 1280x720 (halved)", |b| {
        b.iter(|| comp.compose(&Layout::Grid, &refs).y[0])
    });
    let odd: Vec<Picture> = (0..4)
        .map(|i| Picture::filled(960, 540, Color::rgb(60 * i as u8, 100, 200)))
        .collect();
    let refs: Vec<Option<&Picture>> = odd.iter().map(Some).collect();
    c.bench_function("grid of 4 x 960x540 into 1280x720 (bilinear)", |b| {
        b.iter(|| comp.compose(&Layout::Grid, &refs).y[0])
    });
    let mut mixer = costream_mixer::AudioMixer::new();
    let block: Vec<f32> = (0..1920).map(|i| (i as f32 * 0.01).sin() * 0.5).collect();
    let ins: Vec<(&[f32], f32)> = (0..8).map(|_| (block.as_slice(), 0.7)).collect();
    c.bench_function("mix 8 inputs, 20 ms of 48 kHz stereo", |b| {
        b.iter(|| mixer.mix(1920, &ins)[0])
    });
}

criterion_group!(benches, compose);
criterion_main!(benches);
