//! Test helpers: sample frames, and a strict TS demuxer that checks what
//! every reader relies on (packet size, sync byte, continuity, CRCs).

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use costream_hub::avc::AvcConfig;
use costream_hub::{Frame, FrameKind};

use super::pes::decode_timestamp;
use super::{PACKET_LEN, PID_PAT, PID_PMT};
use crate::crc::crc32_mpeg2;

// SPS/PPS of a 640x360 x264 baseline stream.
pub(crate) const SPS: &[u8] = &[
    0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
    0x00, 0x03, 0x00, 0xc8, 0x3c, 0x58, 0xba, 0x80,
];
pub(crate) const PPS: &[u8] = &[0x68, 0xce, 0x0f, 0xc8];

pub(crate) fn video_config() -> Frame {
    let record = AvcConfig::from_parameter_sets(
        vec![Bytes::from_static(SPS)],
        vec![Bytes::from_static(PPS)],
    )
    .unwrap()
    .to_record();
    Frame::new(FrameKind::VideoConfig, 0, 0, record)
}

pub(crate) fn audio_config() -> Frame {
    Frame::new(
        FrameKind::AudioConfig,
        0,
        0,
        Bytes::from_static(&[0x12, 0x10]),
    )
}

/// One slice NAL of `size` bytes (IDR for keyframes).
pub(crate) fn video(dts: i64, pts: i64, keyframe: bool, size: usize) -> Frame {
    let mut au = BytesMut::with_capacity(size + 4);
    au.put_u32(size as u32);
    au.put_u8(if keyframe { 0x65 } else { 0x41 });
    au.extend((1..size).map(|i| (i % 251) as u8 + 1));
    Frame::video(dts, pts, keyframe, au.freeze())
}

pub(crate) fn audio(dts: i64, size: usize) -> Frame {
    Frame::audio(dts, Bytes::from(vec![0x21; size]))
}

#[derive(Debug, Default)]
pub(crate) struct Pes {
    pub pid: u16,
    pub pts: u64,
    pub dts: Option<u64>,
    pub payload: Vec<u8>,
    pub random_access: bool,
    pub pcr: Option<u64>,
    /// PES_packet_length, when not 0.
    pub declared_len: Option<usize>,
    raw: Vec<u8>,
}

#[derive(Debug, Default)]
pub(crate) struct Ts {
    pub pmt_streams: Vec<(u8, u16)>,
    pub pcr_pid: u16,
    /// Each PMT version, as it changes.
    pub pmt_versions: Vec<u8>,
    pub pes: Vec<Pes>,
    pub pats: usize,
}

pub(crate) fn parse(data: &[u8]) -> Ts {
    assert_eq!(data.len() % PACKET_LEN, 0, "whole packets");
    let mut ts = Ts::default();
    let mut cc: HashMap<u16, u8> = HashMap::new();
    let mut open: HashMap<u16, usize> = HashMap::new();
    for p in data.chunks(PACKET_LEN) {
        assert_eq!(p[0], 0x47, "sync byte");
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let unit_start = p[1] & 0x40 != 0;
        let control = p[3] >> 4 & 0x03;
        let counter = p[3] & 0x0f;
        assert!(control & 1 != 0, "every packet here has a payload");
        if let Some(prev) = cc.insert(pid, counter) {
            assert_eq!(counter, (prev + 1) % 16, "continuity on PID {pid:#x}");
        }
        let mut at = 4;
        let (mut rai, mut pcr) = (false, None);
        if control & 2 != 0 {
            let len = p[4] as usize;
            if len > 0 {
                rai = p[5] & 0x40 != 0;
                if p[5] & 0x10 != 0 {
                    pcr = Some(
                        (u64::from(p[6]) << 25)
                            | (u64::from(p[7]) << 17)
                            | (u64::from(p[8]) << 9)
                            | (u64::from(p[9]) << 1)
                            | u64::from(p[10] >> 7),
                    );
                }
                assert!(p[6 + if pcr.is_some() { 6 } else { 0 }..5 + len]
                    .iter()
                    .all(|b| *b == 0xff));
            }
            at += 1 + len;
        }
        let payload = &p[at..];
        match pid {
            PID_PAT | PID_PMT => {
                assert!(unit_start);
                assert_eq!(payload[0], 0, "pointer field");
                let section_len = (usize::from(payload[2] & 0x0f) << 8) | usize::from(payload[3]);
                let section = &payload[1..4 + section_len];
                assert_eq!(crc32_mpeg2(section), 0, "section CRC");
                assert!(payload[4 + section_len..].iter().all(|b| *b == 0xff));
                if pid == PID_PAT {
                    assert_eq!(section[0], 0);
                    assert_eq!(&section[8..12], &[0, 1, 0xf0, 0x00]);
                    ts.pats += 1;
                } else {
                    assert_eq!(section[0], 2);
                    let version = section[5] >> 1 & 0x1f;
                    if ts.pmt_versions.last() != Some(&version) {
                        ts.pmt_versions.push(version);
                    }
                    ts.pcr_pid = u16::from_be_bytes([section[8] & 0x1f, section[9]]);
                    ts.pmt_streams = section[12..section.len() - 4]
                        .chunks(5)
                        .map(|es| (es[0], u16::from_be_bytes([es[1] & 0x1f, es[2]])))
                        .collect();
                }
            }
            _ => {
                if unit_start {
                    open.insert(pid, ts.pes.len());
                    ts.pes.push(Pes {
                        pid,
                        random_access: rai,
                        pcr,
                        ..Pes::default()
                    });
                }
                let i = *open.get(&pid).expect("PES continues a started one");
                ts.pes[i].raw.extend_from_slice(payload);
            }
        }
    }
    for pes in &mut ts.pes {
        let h = &pes.raw;
        assert_eq!(&h[..3], &[0, 0, 1], "PES start code");
        let packet_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let header_len = 9 + usize::from(h[8]);
        let flags = h[7] >> 6;
        pes.pts = decode_timestamp(&h[9..]).unwrap();
        if flags == 3 {
            pes.dts = decode_timestamp(&h[14..]);
        }
        pes.payload = h[header_len..].to_vec();
        if packet_len != 0 {
            pes.declared_len = Some(packet_len);
            assert_eq!(packet_len, h.len() - 6, "PES_packet_length");
        }
    }
    ts
}
