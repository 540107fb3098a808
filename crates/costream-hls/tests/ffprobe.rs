//! ffprobe must recognise H.264 + AAC in our segments. Skipped, with a note,
//! where ffprobe is not installed.

use std::process::Command;

use bytes::{BufMut, Bytes, BytesMut};
use costream_hls::{Segmenter, SegmenterConfig};
use costream_hub::avc::AvcConfig;
use costream_hub::{Frame, FrameKind};

// SPS/PPS of a 640x360 x264 baseline stream.
const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
    0x00, 0x03, 0x00, 0xc8, 0x3c, 0x58, 0xba, 0x80,
];
const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

fn slice(keyframe: bool) -> Bytes {
    let mut au = BytesMut::new();
    let nal: &[u8] = if keyframe {
        &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff]
    } else {
        &[0x41, 0x9a, 0x02, 0x04, 0x0f, 0xff]
    };
    au.put_u32(nal.len() as u32);
    au.put_slice(nal);
    au.freeze()
}

#[test]
fn ffprobe_reads_h264_and_aac() {
    if Command::new("ffprobe").arg("-version").output().is_err() {
        eprintln!("note: ffprobe is not installed; skipping the ffprobe check");
        return;
    }
    let record = AvcConfig::from_parameter_sets(
        vec![Bytes::from_static(SPS)],
        vec![Bytes::from_static(PPS)],
    )
    .unwrap()
    .to_record();
    let mut seg = Segmenter::new(SegmenterConfig::default());
    seg.push(&Frame::new(FrameKind::VideoConfig, 0, 0, record));
    seg.push(&Frame::new(
        FrameKind::AudioConfig,
        0,
        0,
        Bytes::from_static(&[0x12, 0x10]),
    ));
    // AAC-LC silence: one channel pair element of zeros, then END.
    let silence = Bytes::from_static(&[0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]);
    let (mut v, mut a) = (0i64, 0i64);
    while v < 75 {
        let (vd, ad) = (v * 40, a * 1024 * 1000 / 44_100);
        if vd <= ad {
            seg.push(&Frame::video(vd, vd, v % 25 == 0, slice(v % 25 == 0)));
            v += 1;
        } else {
            seg.push(&Frame::audio(ad, silence.clone()));
            a += 1;
        }
    }
    let segment = seg.finish().unwrap();
    let path = std::env::temp_dir().join(format!("costream-hls-ffprobe-{}.ts", std::process::id()));
    std::fs::write(&path, &segment.data).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height,sample_rate,channels",
        ])
        .args(["-of", "compact=p=0:nk=1"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Width and height need decodable slices, which these are not.
    assert!(text.contains("h264|"), "ffprobe said: {text}");
    assert!(text.contains("aac|44100|2"), "ffprobe said: {text}");
}
