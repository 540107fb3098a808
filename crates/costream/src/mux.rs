//! Per-protocol encodings of hub frames, computed once per frame and shared
//! by every viewer of that protocol (see `Frame::muxed`).

use bytes::{Bytes, BytesMut};
use costream_hub::{Codec, Frame, FrameKind, MuxFormat, StreamInfo};
use costream_rtmp::{amf0, encode_message, msg_type, Amf0Value, CSID_AUDIO, CSID_VIDEO};

/// The complete FLV tag of a frame (HTTP-FLV).
pub fn flv_tag(frame: &Frame) -> Bytes {
    frame.muxed(MuxFormat::FlvTag, costream_flv::tag)
}

/// The FLV tag body, which is also the RTMP message payload: a slice of the
/// shared FLV tag, no copy.
pub fn flv_body(frame: &Frame) -> Bytes {
    let tag = flv_tag(frame);
    if tag.len() < costream_flv::TAG_HEADER_LEN + 4 {
        return Bytes::new();
    }
    tag.slice(costream_flv::TAG_HEADER_LEN..tag.len() - 4)
}

/// Chunk size and message stream id the shared RTMP encoding uses; viewers
/// with other values (rare: a second createStream) get their own encoding.
pub fn rtmp_chunks(
    frame: &Frame,
    chunk_size: usize,
    stream_id: u32,
    shared_chunk_size: usize,
) -> Bytes {
    let encode = |f: &Frame| {
        let (csid, type_id) = if f.kind.is_video() {
            (CSID_VIDEO, msg_type::VIDEO)
        } else {
            (CSID_AUDIO, msg_type::AUDIO)
        };
        encode_message(
            chunk_size,
            csid,
            rtmp_timestamp(f.dts),
            type_id,
            stream_id,
            &flv_body(f),
        )
    };
    if chunk_size == shared_chunk_size && stream_id == 1 {
        frame.muxed(MuxFormat::RtmpChunks, encode)
    } else {
        encode(frame)
    }
}

pub fn rtmp_timestamp(dts: i64) -> u32 {
    dts.clamp(0, u32::MAX as i64) as u32
}

/// `onMetaData` as FLV players expect it, from what the hub knows.
pub fn on_metadata(info: &StreamInfo) -> Vec<Amf0Value> {
    let mut props: Vec<(String, Amf0Value)> = Vec::new();
    if let Some(v) = &info.video {
        props.push(("width".into(), Amf0Value::Number(v.width as f64)));
        props.push(("height".into(), Amf0Value::Number(v.height as f64)));
        props.push(("videocodecid".into(), Amf0Value::Number(7.0)));
        if let Some(fps) = v.declared_fps.or((info.fps > 0.0).then_some(info.fps)) {
            props.push(("framerate".into(), Amf0Value::Number(fps)));
        }
    }
    if let Some(a) = &info.audio {
        props.push(("audiocodecid".into(), Amf0Value::Number(10.0)));
        props.push((
            "audiosamplerate".into(),
            Amf0Value::Number(a.sample_rate as f64),
        ));
        props.push(("audiochannels".into(), Amf0Value::Number(a.channels as f64)));
        props.push(("stereo".into(), Amf0Value::Boolean(a.channels >= 2)));
    }
    props.push((
        "encoder".into(),
        Amf0Value::String(concat!("costream/", env!("CARGO_PKG_VERSION")).into()),
    ));
    vec![
        Amf0Value::String("onMetaData".into()),
        Amf0Value::EcmaArray(props),
    ]
}

/// The FLV script tag carrying `onMetaData`.
pub fn flv_metadata_tag(info: &StreamInfo) -> Bytes {
    let mut body = BytesMut::with_capacity(256);
    amf0::encode(&on_metadata(info), &mut body);
    costream_flv::script_tag(0, &body)
}

/// Whether FLV (and so RTMP and HLS's MPEG-TS) can carry the frame's codec.
/// Opus from WebRTC publishers needs the bridge to become AAC first.
pub fn flv_carries(frame: &Frame) -> bool {
    matches!(frame.codec, Codec::H264 | Codec::Aac)
}

/// Whether a frame is a picture a player can show (for first-frame timing).
pub fn is_picture(frame: &Frame) -> bool {
    frame.kind == FrameKind::Video
}
