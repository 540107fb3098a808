//! Clips come from ffmpeg's test source encoded by x264, read back through
//! costream's FLV reader the way RTMP ingest turns tags into hub frames.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use costream_flv::{demux_video, record_with_nal_length_4, FlvReader, TAG_VIDEO};
use openh264::decoder::Decoder;

use super::*;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is needed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A testsrc2 clip at 25 fps encoded by x264, as FLV; and ffmpeg's own
/// decoding of it (I420, presentation order) to compare pictures with.
struct Clip {
    flv: Vec<u8>,
    yuv: Vec<u8>,
    width: usize,
    height: usize,
}

/// High profile (CABAC), 2 B-frames, a keyframe every second.
const HIGH_BF2: &[&str] = &["-profile:v", "high", "-bf", "2", "-g", "25"];

fn clip(name: &str, (width, height): (usize, usize), seconds: u32, x264: &[&str]) -> Clip {
    let dir = std::env::temp_dir().join(format!("costream-video-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let flv: PathBuf = dir.join("clip.flv");
    let yuv = dir.join("clip.yuv");
    let (src, secs) = (
        format!("testsrc2=size={width}x{height}:rate=25"),
        seconds.to_string(),
    );
    let flv_s = flv.to_str().unwrap();
    let mut args = vec!["-f", "lavfi", "-i", &src, "-t", &secs, "-c:v", "libx264"];
    args.extend_from_slice(x264);
    args.extend_from_slice(&["-f", "flv", flv_s]);
    ffmpeg(&args);
    ffmpeg(&[
        "-i",
        flv_s,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        yuv.to_str().unwrap(),
    ]);
    let clip = Clip {
        flv: std::fs::read(&flv).unwrap(),
        yuv: std::fs::read(&yuv).unwrap(),
        width,
        height,
    };
    let _ = std::fs::remove_dir_all(&dir);
    clip
}

impl Clip {
    /// Hub frames, made as RTMP ingest makes them from FLV tag bodies.
    fn frames(&self) -> Vec<Frame> {
        let mut reader = FlvReader::new(16 << 20);
        let mut buf = BytesMut::from(&self.flv[..]);
        let mut nal_length_size = 4;
        let mut frames = Vec::new();
        while let Some(tag) = reader.next_tag(&mut buf).unwrap() {
            if tag.tag_type != TAG_VIDEO {
                continue;
            }
            let body = tag.body;
            let Some(frame) = demux_video(tag.timestamp.into(), body, nal_length_size).unwrap()
            else {
                continue;
            };
            if frame.kind == FrameKind::VideoConfig {
                nal_length_size = AvcConfig::parse(&frame.data).unwrap().nal_length_size;
                let record = record_with_nal_length_4(frame.data.clone());
                frames.push(Frame::new(
                    FrameKind::VideoConfig,
                    frame.dts,
                    frame.pts,
                    record,
                ));
            } else {
                frames.push(frame);
            }
        }
        frames
    }

    /// Luma of source picture `n` (presentation order).
    fn luma(&self, n: usize) -> &[u8] {
        let frame = self.width * self.height * 3 / 2;
        &self.yuv[n * frame..n * frame + self.width * self.height]
    }
}

fn shifted(frames: &[Frame], ms: i64) -> Vec<Frame> {
    frames.iter().map(|f| f.shifted(ms)).collect()
}

fn drain(r: &mut VideoReencoder, out: &mut Vec<Frame>) {
    out.extend(std::iter::from_fn(|| r.pop()));
}

/// Pushes frames that must all be good; returns what comes out.
fn reencode(r: &mut VideoReencoder, frames: &[Frame]) -> Vec<Frame> {
    let mut out = Vec::new();
    for f in frames {
        r.push(f).unwrap();
        drain(r, &mut out);
    }
    out
}

fn finish(r: &mut VideoReencoder) -> Vec<Frame> {
    r.flush().unwrap();
    std::iter::from_fn(|| r.pop()).collect()
}

/// Decodes output frames in order with a fresh OpenH264 decoder: each video
/// frame must give its picture at once (Baseline has no reordering).
/// Returns each picture's size and luma, tightly packed.
fn decode(out: &[Frame]) -> Vec<((usize, usize), Vec<u8>)> {
    let mut decoder = Decoder::new().unwrap();
    let mut pictures = Vec::new();
    let mut annexb = BytesMut::new();
    for f in out {
        annexb.clear();
        if f.kind == FrameKind::VideoConfig {
            let cfg = AvcConfig::parse(&f.data).unwrap();
            for nal in cfg.sps.iter().chain(&cfg.pps) {
                annexb.put_slice(&[0, 0, 0, 1]);
                annexb.put_slice(nal);
            }
            assert!(decoder.decode(&annexb).unwrap().is_none());
            continue;
        }
        avc::avcc_to_annexb(&f.data, &mut annexb);
        let yuv = decoder
            .decode(&annexb)
            .unwrap()
            .expect("a picture per frame");
        let (w, h) = yuv.dimensions();
        let stride = yuv.strides().0;
        let rows = yuv.y().chunks(stride).take(h);
        let luma = rows.flat_map(|row| &row[..w]).copied().collect();
        pictures.push(((w, h), luma));
    }
    pictures
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let se: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = se / a.len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-9)).log10()
}

fn video(frames: &[Frame]) -> Vec<&Frame> {
    frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video)
        .collect()
}

fn keyframes(out: &[Frame]) -> Vec<i64> {
    video(out)
        .iter()
        .filter(|f| f.keyframe)
        .map(|f| f.pts)
        .collect()
}

fn size_of(config: &Frame) -> (u32, u32) {
    let info = AvcConfig::parse(&config.data).unwrap().sps_info().unwrap();
    (info.width, info.height)
}

fn print_timing(what: &str, frames: usize, start: Instant) {
    let elapsed = start.elapsed();
    let per_frame = elapsed.as_secs_f64() * 1000.0 / frames as f64;
    println!("{what}: {frames} frames in {elapsed:.2?}, {per_frame:.2} ms per frame");
}

/// What the output of a whole clip must be, given its input.
fn check_clip(clip: &Clip, input: &[Frame], out: &[Frame]) {
    let in_video = video(input);
    assert!(
        in_video.iter().any(|f| has_b_frames(f)),
        "the clip has no B-frames"
    );
    assert!(!has_b_frames(&input[0]), "a config frame is not a B-frame");

    // A config, then an IDR; Constrained Baseline at the source's size.
    assert_eq!(out[0].kind, FrameKind::VideoConfig);
    assert_eq!(out[1].kind, FrameKind::Video);
    assert!(out[1].keyframe);
    let cfg = AvcConfig::parse(&out[0].data).unwrap();
    assert_eq!((cfg.profile, cfg.compatibility & 0xc0), (66, 0xc0));
    assert_eq!(size_of(&out[0]), (clip.width as u32, clip.height as u32));
    assert_eq!(
        out.iter()
            .filter(|f| f.kind == FrameKind::VideoConfig)
            .count(),
        1
    );

    let out_video = video(out);
    let n_in = in_video.len();
    assert!(
        out_video.len().abs_diff(n_in) <= 2,
        "{} frames out of {n_in}",
        out_video.len()
    );
    for w in out_video.windows(2) {
        assert!(w[1].pts > w[0].pts, "{} then {}", w[0].pts, w[1].pts);
    }
    for f in &out_video {
        assert_eq!(f.dts, f.pts);
        assert!(!has_b_frames(f));
        // AVCC with no parameter sets inside, keyframe flag on IDRs.
        assert!(avc::avcc_nalus(&f.data, 4).all(|n| !matches!(n[0] & 0x1f, 7 | 8)));
        assert_eq!(f.keyframe, avc::has_idr(&f.data));
    }
    let in_pts: BTreeSet<i64> = in_video.iter().map(|f| f.pts).collect();
    let out_pts: BTreeSet<i64> = out_video.iter().map(|f| f.pts).collect();
    assert!(out_pts.is_subset(&in_pts));
    assert!(in_pts.len() - out_pts.len() <= 2);

    // Each output picture is the source picture of its pts: closer to
    // ffmpeg's decoding of that one than to its neighbours'.
    let pictures = decode(out);
    assert_eq!(pictures.len(), out_video.len());
    let rank: Vec<i64> = in_pts.iter().copied().collect();
    let (mut worst, mut best_neighbour) = (f64::MAX, 0.0f64);
    for (f, (size, luma)) in out_video.iter().zip(&pictures) {
        assert_eq!(*size, (clip.width, clip.height));
        let n = rank.binary_search(&f.pts).unwrap();
        let same = psnr(luma, clip.luma(n));
        for other in [n.wrapping_sub(1), n + 1]
            .into_iter()
            .filter(|&o| o < rank.len())
        {
            let p = psnr(luma, clip.luma(other));
            assert!(
                same > p + 1.0,
                "pts {}: {same:.1} dB, picture {other} {p:.1} dB",
                f.pts
            );
            best_neighbour = best_neighbour.max(p);
        }
        worst = worst.min(same);
    }
    println!(
        "{}x{}: PSNR to the same picture >= {worst:.1} dB, to a neighbour <= {best_neighbour:.1} dB",
        clip.width, clip.height
    );
    assert!(worst > 30.0);
}

#[test]
fn reencodes_b_frames_to_baseline() {
    let clip = clip("320", (320, 240), 3, HIGH_BF2);
    let input = clip.frames();
    let mut r = VideoReencoder::new(0);
    let start = Instant::now();
    let mut out = reencode(&mut r, &input);
    out.extend(finish(&mut r));
    print_timing("320x240", video(&input).len(), start);
    check_clip(&clip, &input, &out);
    // An IDR every 2 s, no more (the clip has no scene cuts).
    assert_eq!(keyframes(&out), [80, 2080]);
}

#[test]
fn decodes_other_x264_b_frame_layouts() {
    let layouts: [&[&str]; 4] = [
        // OBS's default: 3 B-frames, B-pyramid.
        &["-preset", "veryfast"],
        &["-bf", "5", "-b_strategy", "0", "-g", "50"],
        &["-x264-params", "open-gop=1:keyint=30:bframes=3:b-adapt=0"],
        // CAVLC, weighted prediction, several reference frames.
        &[
            "-profile:v",
            "main",
            "-bf",
            "2",
            "-x264-params",
            "cabac=0:weightp=2:ref=4",
        ],
    ];
    for (i, x264) in layouts.into_iter().enumerate() {
        println!("x264 {x264:?}");
        let clip = clip(&format!("layout{i}"), (320, 240), 2, x264);
        let input = clip.frames();
        let mut r = VideoReencoder::new(0);
        let mut out = reencode(&mut r, &input);
        out.extend(finish(&mut r));
        check_clip(&clip, &input, &out);
    }
}

#[test]
fn follows_a_resolution_change_and_keyframe_requests() {
    let small = clip("change-small", (320, 240), 1, HIGH_BF2);
    let big = clip("change-big", (640, 360), 3, HIGH_BF2);
    let first = small.frames();
    let second = shifted(&big.frames(), 1500);
    let mut r = VideoReencoder::new(800_000);
    let mut out = reencode(&mut r, &first);
    let before = out.len();
    assert_eq!(second[0].kind, FrameKind::VideoConfig);
    out.extend(reencode(&mut r, &second[..1]));
    assert_eq!(out.len(), before, "a config frame makes no picture");

    let start = Instant::now();
    out.extend(reencode(&mut r, &second[1..20]));
    // A WHEP viewer joins: the next frame out is an IDR.
    let requested = out.len();
    r.request_keyframe();
    out.extend(reencode(&mut r, &second[20..]));
    out.extend(finish(&mut r));
    print_timing("640x360", video(&second).len(), start);
    assert!(out[requested].keyframe);

    let configs: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].kind == FrameKind::VideoConfig)
        .collect();
    assert_eq!(configs.len(), 2);
    assert_eq!(size_of(&out[configs[0]]), (320, 240));
    assert_eq!(size_of(&out[configs[1]]), (640, 360));
    let switch = configs[1];
    assert!(out[switch + 1].keyframe);
    assert!(out[..switch].iter().all(|f| f.pts < 1500));
    assert!(out[switch..].iter().all(|f| f.pts >= 1500));
    // Every picture of the first clip came out, the one held back for
    // reordering too.
    assert_eq!(video(&out[..switch]).len(), video(&first).len());
    for w in video(&out).windows(2) {
        assert!(w[1].pts > w[0].pts);
    }
    // IDRs: the new size, the request, then 2 s after the request.
    let key = keyframes(&out[switch..]);
    assert_eq!(key.len(), 3, "{key:?}");
    assert_eq!(key[1], out[requested].pts);
    assert!((IDR_INTERVAL_MS..IDR_INTERVAL_MS + 40).contains(&(key[2] - key[1])));
    check_clip(&big, &second, &out[switch..]);
}

/// A tiny deterministic generator for garbage.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn with_payload(f: &Frame, data: Vec<u8>) -> Frame {
    Frame::video(f.dts, f.pts, f.keyframe, Bytes::from(data))
}

/// NAL units with 4-byte length prefixes.
fn avcc<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut v = Vec::new();
    for nal in nals {
        v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        v.extend_from_slice(nal);
    }
    v
}

#[test]
fn survives_garbage_and_recovers_at_the_next_idr() {
    let clip = clip("garbage", (320, 240), 2, HIGH_BF2);
    let input = clip.frames();
    let mut r = VideoReencoder::new(0);
    assert!(matches!(r.push(&input[1]), Err(ReencodeError::NoConfig)));
    let mut out = reencode(&mut r, &input[..10]);
    assert!(!out.is_empty());

    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let victim = &input[10];
    let idr = input.iter().find(|f| f.keyframe).unwrap();
    let idr_nal = avc::avcc_nalus(&idr.data, 4)
        .find(|n| n[0] & 0x1f == 5)
        .unwrap();
    let slice = avc::avcc_nalus(&victim.data, 4).last().unwrap();
    let mut flipped = idr_nal.to_vec();
    for i in (8..flipped.len()).step_by(7) {
        flipped[i] ^= 0x5a;
    }
    let mut bad = vec![
        with_payload(victim, rng.bytes(1000)),
        with_payload(victim, Vec::new()),
        with_payload(victim, avcc([&[][..]])),
        with_payload(victim, avcc([&[0xe5, 1, 2, 3][..]])),
        with_payload(victim, victim.data[..victim.data.len() / 2].to_vec()),
        // Well framed, but nonsense or cut short inside.
        with_payload(victim, avcc([&[0x65][..]])),
        with_payload(victim, avcc([&slice[..slice.len() / 3]])),
        with_payload(victim, avcc([&idr_nal[..idr_nal.len() / 2]])),
        with_payload(victim, avcc([&flipped[..]])),
        Frame::new(FrameKind::VideoConfig, 0, 0, Bytes::from(rng.bytes(40))),
        Frame::new(
            FrameKind::AudioConfig,
            0,
            0,
            Bytes::from_static(&[0x12, 0x10]),
        ),
    ];
    for n in 1..40 {
        let mut nal = rng.bytes(n * 37);
        nal[0] = [0x65, 0x41, 0x01, 0x06][n % 4];
        bad.push(with_payload(victim, avcc([&nal[..]])));
    }
    let mut errors = 0;
    for f in &bad {
        errors += usize::from(r.push(f).is_err());
        drain(&mut r, &mut out);
    }
    assert!(errors >= 10, "{errors} errors");

    // The frames after the garbage up to the next IDR may fail; from the
    // IDR on, every frame comes out again.
    let next_idr = input
        .iter()
        .position(|f| f.keyframe && f.dts > victim.dts)
        .unwrap();
    for f in &input[11..next_idr] {
        let _ = r.push(f);
        drain(&mut r, &mut out);
    }
    out.extend(reencode(&mut r, &input[next_idr..]));
    out.extend(finish(&mut r));
    let idr_pts = input[next_idr].pts;
    let resumed = video(&out).iter().filter(|f| f.pts >= idr_pts).count();
    assert_eq!(
        resumed,
        video(&input).iter().filter(|f| f.pts >= idr_pts).count()
    );
    for w in video(&out).windows(2) {
        assert!(w[1].pts > w[0].pts);
    }
    // The output itself never broke (the encoder kept its references): a
    // viewer decodes all of it.
    let pictures = decode(&out);
    assert_eq!(pictures.len(), video(&out).len());
    assert!(pictures.iter().all(|(size, _)| *size == (320, 240)));
}

/// Corrupts a frame: flipped bytes, a truncated last NAL unit (framing kept
/// right), or random bytes for the last two thirds.
fn corrupt(f: &Frame, rng: &mut XorShift) -> Frame {
    let mut data = f.data.to_vec();
    match rng.next() % 3 {
        0 => {
            for _ in 0..1 + rng.next() % 8 {
                let at = 5 + rng.next() as usize % (data.len() - 5);
                data[at] ^= rng.next() as u8 | 1;
            }
        }
        1 => {
            let nals: Vec<&[u8]> = avc::avcc_nalus(&f.data, 4).collect();
            let (last, rest) = nals.split_last().unwrap();
            data = avc::avcc_nalus(&f.data, 4)
                .take(rest.len())
                .flat_map(|n| avcc([n]))
                .collect();
            data.extend(avcc([&last[..last.len().div_ceil(2)]]));
        }
        _ => {
            let keep = 4 + data.len() / 3;
            let tail = rng.bytes(data.len() - keep);
            data.truncate(keep);
            data.extend(tail);
        }
    }
    with_payload(f, data)
}

#[test]
fn corrupt_frames_keep_timestamps_paired_with_pictures() {
    let clip = clip(
        "corrupt",
        (320, 240),
        4,
        &["-preset", "veryfast", "-g", "25"],
    );
    let input = clip.frames();
    let mut rng = XorShift(7);
    let mut r = VideoReencoder::new(0);
    let mut out = Vec::new();
    // IDR pts of each GOP, and whether any frame of it was corrupted.
    let mut gops: Vec<(i64, bool)> = Vec::new();
    let rounds = 6;
    for round in 0..rounds {
        for f in shifted(&input, round * 4000) {
            if f.keyframe {
                gops.push((f.pts, false));
            }
            let hit = f.kind == FrameKind::Video && rng.next().is_multiple_of(32);
            let f = if hit {
                gops.last_mut().unwrap().1 = true;
                corrupt(&f, &mut rng)
            } else {
                f
            };
            let _ = r.push(&f);
            drain(&mut r, &mut out);
        }
    }
    out.extend(finish(&mut r));
    let out_video = video(&out);
    for w in out_video.windows(2) {
        assert!(w[1].pts > w[0].pts);
    }
    let pictures = decode(&out);
    assert_eq!(pictures.len(), out_video.len());

    // In every GOP left intact, each picture is the one of its pts (the
    // decoder was replaced at its IDR if the GOP before broke).
    let rank: BTreeSet<i64> = video(&input).iter().map(|f| f.pts).collect();
    let rank: Vec<i64> = rank.into_iter().collect();
    let mut checked = 0;
    for (f, (_, luma)) in out_video.iter().zip(&pictures) {
        let gop = gops.partition_point(|g| g.0 <= f.pts);
        if gop == 0 || gops[gop - 1].1 {
            continue;
        }
        let n = (0..rounds)
            .find_map(|k| rank.binary_search(&(f.pts - k * 4000)).ok())
            .unwrap();
        let same = psnr(luma, clip.luma(n));
        assert!(same > 35.0, "pts {}: {same:.1} dB", f.pts);
        checked += 1;
    }
    let broken = gops.iter().filter(|g| g.1).count();
    println!(
        "{broken} of {} GOPs corrupted, {checked} pictures checked",
        gops.len()
    );
    assert!(broken >= 3 && checked >= 100);
}

#[test]
fn pending_pts_are_bounded_and_only_go_up() {
    let mut p = PendingPts::default();
    for pts in [120, 40, 80] {
        p.insert(pts);
    }
    assert_eq!(p.take(), Some(40));
    p.insert(10); // older than what already came out: stale
    assert_eq!(p.take(), Some(80));
    for pts in 0..40 {
        p.insert(1000 + pts);
    }
    assert_eq!(p.ts.len(), MAX_PENDING);
    assert_eq!(p.take(), Some(1040 - MAX_PENDING as i64));
    p.remove(1039);
    assert_eq!(p.ts.last(), Some(&1038));
}

#[test]
fn frame_rate_ignores_gaps() {
    let mut m = FpsMeter::default();
    for dts in (0..1000).step_by(40).chain((5000..6100).step_by(40)) {
        m.observe(dts);
    }
    assert_eq!(m.fps, Some(25.0));
    assert!(!has_b_frames(&Frame::audio(0, Bytes::new())));
}

#[test]
fn reencoder_is_send() {
    fn send<T: Send>() {}
    send::<VideoReencoder>();
}
