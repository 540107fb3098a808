//! FLV tags and bodies, H.264 (AVC records, SPS, AVCC and Annex B framing),
//! AAC configs, and what the hub's consumers (HLS segmenter, FLV muxer,
//! WebRTC egress) do with the frames a publisher's bytes become.

use bytes::{Bytes, BytesMut};
use costream_flv::{demux_audio, demux_video, record_with_nal_length_4, FlvReader};
use costream_hls::{Segmenter, SegmenterConfig};
use costream_hub::aac::AacConfig;
use costream_hub::avc::{self, AvcConfig};
use costream_hub::{vp8, Frame, FrameKind};

use crate::{read_size, Input};

/// Frames kept for the WebRTC egress at the end of an input.
#[cfg(feature = "full")]
const MAX_KEPT: usize = 64;

/// One publisher's media, demuxed as the RTMP ingest does
/// (crates/costream/src/rtmp/ingest.rs) and handed to every consumer.
pub(crate) struct Media {
    nal_length_size: u8,
    segmenter: Segmenter,
    #[cfg(feature = "full")]
    kept: Vec<Frame>,
}

impl Media {
    pub fn new() -> Self {
        Media {
            nal_length_size: 4,
            segmenter: Segmenter::new(SegmenterConfig::default()),
            #[cfg(feature = "full")]
            kept: Vec::new(),
        }
    }

    pub fn audio(&mut self, timestamp: u32, body: Bytes) {
        if let Ok(Some(frame)) = demux_audio(i64::from(timestamp), body) {
            if frame.kind == FrameKind::AudioConfig {
                aac_config(&frame.data);
            }
            self.frame(frame);
        }
    }

    pub fn video(&mut self, timestamp: u32, body: Bytes) {
        let Ok(Some(frame)) = demux_video(i64::from(timestamp), body, self.nal_length_size) else {
            return;
        };
        let frame = if frame.kind == FrameKind::VideoConfig {
            if let Ok(cfg) = AvcConfig::parse(&frame.data) {
                self.nal_length_size = cfg.nal_length_size;
                avc_config(&cfg);
            }
            Frame::new(
                FrameKind::VideoConfig,
                frame.dts,
                frame.pts,
                record_with_nal_length_4(frame.data.clone()),
            )
        } else {
            access_unit(&frame.data);
            frame
        };
        self.frame(frame);
    }

    pub fn frame(&mut self, frame: Frame) {
        let _ = costream_flv::tag(&frame);
        let _ = self.segmenter.push(&frame);
        #[cfg(feature = "full")]
        if self.kept.len() < MAX_KEPT {
            self.kept.push(frame);
        }
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        let _ = self.segmenter.finish();
        #[cfg(feature = "full")]
        let _ = costream::webrtc::fuzzing::egress(&self.kept);
    }
}

fn aac_config(asc: &[u8]) {
    if let Ok(cfg) = AacConfig::parse(asc) {
        let _ = (cfg.sample_rate(), cfg.codec_string(), cfg.adts_header(8000));
        assert_eq!(
            AacConfig::parse(&cfg.to_asc()),
            Ok(cfg),
            "AudioSpecificConfig round trip"
        );
    }
}

fn avc_config(cfg: &AvcConfig) {
    let _ = cfg.sps_info();
    let _ = cfg.codec_string();
    let _ = cfg.parameter_sets_annexb();
    let record = cfg.to_record();
    assert_eq!(
        AvcConfig::parse(&record).as_ref(),
        Ok(cfg),
        "AVCDecoderConfigurationRecord round trip"
    );
}

/// An AVCC (4-byte lengths) access unit, as the hub keeps them.
fn access_unit(data: &[u8]) {
    let _ = (avc::is_disposable(data), avc::has_idr(data));
    let mut annexb = BytesMut::new();
    avc::avcc_to_annexb(data, &mut annexb);
    let _ = avc::annexb_nalus(&annexb).count();
}

/// Input: a read-size byte, then an FLV file or HTTP-FLV response body.
pub fn flv(data: &[u8]) {
    let mut input = Input::new(data);
    let step = read_size(input.byte());
    // The limit of the load tool's HTTP-FLV reader (MAX_TAG_SIZE in
    // crates/costream/src/bench/mod.rs).
    let mut reader = FlvReader::new(8 << 20);
    let mut media = Media::new();
    let mut buf = BytesMut::new();
    for piece in input.rest().chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match reader.next_tag(&mut buf) {
                Ok(Some(tag)) => match tag.tag_type {
                    8 => media.audio(tag.timestamp, tag.body),
                    9 => media.video(tag.timestamp, tag.body),
                    _ => {
                        let _ = costream_rtmp::amf0::decode_all(&tag.body);
                    }
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = reader.header();
}

/// Input: a mode byte, then (mode % 4) 0: an AVCDecoderConfigurationRecord;
/// 1: an SPS NAL unit; 2: an AVCC access unit with (mode / 4 % 4 + 1)-byte
/// lengths; 3: WebRTC frames (Annex B H.264, VP8, Opus) as str0m hands
/// them to the WHIP ingest, each a header byte (codec, key frame), a
/// 2-byte length and the payload.
pub fn h264(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    match mode % 4 {
        0 => {
            if let Ok(cfg) = AvcConfig::parse(&Bytes::copy_from_slice(input.rest())) {
                avc_config(&cfg);
            }
        }
        1 => {
            let _ = avc::sps_info(input.rest());
        }
        2 => {
            let from = mode / 4 % 4 + 1;
            let data = input.rest();
            let n = avc::avcc_nalus(data, from).count();
            let four = avc::to_avcc4(Bytes::copy_from_slice(data), from);
            assert_eq!(
                avc::avcc_nalus(&four, 4).count(),
                n,
                "re-framing keeps every NAL unit"
            );
            access_unit(&four);
        }
        _ => webrtc_frames(input),
    }
}

#[cfg(not(feature = "full"))]
fn webrtc_frames(input: Input) {
    let data = input.rest();
    let _ = avc::annexb_nalus(data).count();
    let _ = (vp8::keyframe_size(data), vp8::parse_config_record(data));
}

#[cfg(feature = "full")]
fn webrtc_frames(mut input: Input) {
    use costream_rtc::{Codec, MediaFrame};
    use std::time::{Duration, Instant};

    let start = Instant::now();
    let mut frames = Vec::new();
    let mut rtp_time = 0u64;
    while !input.is_empty() && frames.len() < 64 {
        let header = input.byte();
        let len = usize::from(input.u16()) % 8192;
        let data = Bytes::copy_from_slice(input.take(len));
        let codec = match header % 3 {
            0 => Codec::H264,
            1 => Codec::Vp8,
            _ => Codec::Opus,
        };
        let _ = avc::annexb_nalus(&data).count();
        let _ = (vp8::keyframe_size(&data), vp8::parse_config_record(&data));
        rtp_time += u64::from(header >> 2) * 1500;
        frames.push(MediaFrame {
            kind: codec.kind(),
            codec,
            rtp_time,
            clock_rate: if codec == Codec::Opus { 48_000 } else { 90_000 },
            network_time: start + Duration::from_millis(rtp_time / 90),
            keyframe: header & 0x80 != 0,
            sender_clock: None,
            contiguous: true,
            audio_level: None,
            rid: None,
            data,
        });
    }
    let mut media = Media::new();
    for frame in costream::webrtc::fuzzing::ingest(&frames) {
        if frame.kind == FrameKind::VideoConfig {
            if let Ok(cfg) = AvcConfig::parse(&frame.data) {
                avc_config(&cfg);
            }
        } else if frame.kind == FrameKind::Video {
            access_unit(&frame.data);
        }
        media.frame(frame);
    }
}
