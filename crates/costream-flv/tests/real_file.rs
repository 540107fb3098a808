//! Reads a real FLV file through the reader and demuxers.
//!
//! `data/tiny.flv` was made by ffmpeg from synthetic sources (2 s, 64x48,
//! 10 fps H.264 Main with B-frames and a keyframe every 10 frames, 22.05 kHz
//! mono AAC):
//! `ffmpeg -f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=22050
//!  -t 2 -c:v libx264 -profile:v main -bf 2 -g 10 -pix_fmt yuv420p -c:a aac -b:a 16k -ac 1 -f flv tiny.flv`

use bytes::BytesMut;
use costream_flv::{demux_audio, demux_video, FlvReader, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use costream_hub::aac::AacConfig;
use costream_hub::avc::{avcc_nalus, AvcConfig};
use costream_hub::FrameKind;

#[test]
fn tiny_flv() {
    let file = include_bytes!("data/tiny.flv");
    let mut input = BytesMut::new();
    let mut reader = FlvReader::new(1 << 20);
    let mut frames = Vec::new();
    let mut scripts = 0;
    let mut nal_length_size = 4;
    // Arriving in uneven pieces, as from a socket.
    for chunk in file.chunks(777) {
        input.extend_from_slice(chunk);
        while let Some(tag) = reader.next_tag(&mut input).unwrap() {
            let ts = i64::from(tag.timestamp);
            let frame = match tag.tag_type {
                TAG_VIDEO => demux_video(ts, tag.body, nal_length_size).unwrap(),
                TAG_AUDIO => demux_audio(ts, tag.body).unwrap(),
                TAG_SCRIPT => {
                    scripts += 1;
                    None
                }
                other => panic!("tag type {other}"),
            };
            let Some(frame) = frame else { continue };
            if frame.kind == FrameKind::VideoConfig {
                let config = AvcConfig::parse(&frame.data).unwrap();
                nal_length_size = config.nal_length_size;
                let info = config.sps_info().unwrap();
                assert_eq!((info.width, info.height), (64, 48));
            }
            if frame.kind == FrameKind::AudioConfig {
                let config = AacConfig::parse(&frame.data).unwrap();
                assert_eq!((config.sample_rate(), config.channels), (22050, 1));
            }
            frames.push(frame);
        }
    }
    assert_eq!(input.len(), 4, "only the last PreviousTagSize is left");
    assert_eq!(scripts, 1);
    let count = |kind| frames.iter().filter(|f| f.kind == kind).count();
    assert_eq!(count(FrameKind::VideoConfig), 1);
    assert_eq!(count(FrameKind::AudioConfig), 1);
    assert_eq!(count(FrameKind::Video), 20);
    assert_eq!(count(FrameKind::Audio), 45);
    let video: Vec<_> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video)
        .collect();
    let keyframes: Vec<_> = video.iter().filter(|f| f.keyframe).map(|f| f.dts).collect();
    assert_eq!(keyframes, vec![0, 1000]);
    assert!(video.iter().any(|f| f.pts > f.dts), "B-frames reorder");
    assert!(video.iter().any(|f| f.disposable), "non-reference B-frames");
    for f in &video {
        let covered: usize = avcc_nalus(&f.data, 4).map(|n| n.len() + 4).sum();
        assert_eq!(covered, f.data.len());
    }
}
