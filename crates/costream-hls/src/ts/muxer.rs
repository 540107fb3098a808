//! The TS muxer: turns hub frames into PES packets on the video and audio
//! PIDs, keeping what the codecs need between frames (SPS/PPS, the AAC
//! configuration) and the per-PID continuity counters.

use bytes::{BufMut, Bytes, BytesMut};
use costream_hub::aac::{AacConfig, AacError};
use costream_hub::avc::{avcc_nalus, AvcConfig, AvcError, NAL_AUD, NAL_SPS};
use costream_hub::{Frame, FrameKind};
use thiserror::Error;

use super::packet::PesWriter;
use super::pes::{PesHeader, STREAM_ID_AUDIO, STREAM_ID_VIDEO};
use super::psi::{write_pat, write_pmt, Es};
use super::{to_90khz, PID_AUDIO, PID_VIDEO, STREAM_TYPE_AAC_ADTS, STREAM_TYPE_H264};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TsError {
    #[error("invalid AVC configuration: {0}")]
    VideoConfig(#[from] AvcError),
    #[error("invalid AAC configuration: {0}")]
    AudioConfig(#[from] AacError),
    #[error("AAC frame before any AAC configuration")]
    NoAudioConfig,
    #[error("AAC frame of {0} bytes is too large for an ADTS header")]
    AudioFrameTooLarge(usize),
}

/// An access unit delimiter (primary_pic_type 7: any slice type). Apple's
/// HLS rules want one at the start of every video PES.
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xf0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];
/// The ADTS frame length field has 13 bits and counts the 7-byte header.
const MAX_ADTS_PAYLOAD: usize = 0x1fff - 7;
/// PCR at least this often on the PCR PID (ISO 13818-1 asks for 100 ms).
const PCR_INTERVAL_MS: i64 = 100;

/// The streams a PMT declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    video: bool,
    audio: bool,
}

impl Streams {
    /// Video carries the PCR when there is video, audio otherwise.
    fn pcr_pid(self) -> u16 {
        if self.video || !self.audio {
            PID_VIDEO
        } else {
            PID_AUDIO
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    pat: u8,
    pmt: u8,
    video: u8,
    audio: u8,
}

/// Writes hub frames as MPEG-TS into caller-provided buffers.
///
/// Config frames update the muxer and write nothing. A video frame becomes
/// one PES: an AUD, SPS+PPS before keyframes (from the last `VideoConfig`,
/// unless the frame carries its own), then its NAL units in Annex B. An audio
/// frame becomes one PES of ADTS header + raw AAC.
#[derive(Debug, Default)]
pub struct TsMuxer {
    /// SPS and PPS of the last VideoConfig, in Annex B, ready to insert.
    parameter_sets: Option<Bytes>,
    aac: Option<AacConfig>,
    cc: Counters,
    declared: Option<Streams>,
    pmt_version: u8,
    last_pcr_ms: Option<i64>,
}

impl TsMuxer {
    pub fn new() -> Self {
        TsMuxer::default()
    }

    /// A valid `VideoConfig` has been seen (the last one parsed).
    pub fn has_video_config(&self) -> bool {
        self.parameter_sets.is_some()
    }

    /// A valid `AudioConfig` has been seen: audio frames can be written.
    pub fn has_audio_config(&self) -> bool {
        self.aac.is_some()
    }

    /// Writes a PAT and a PMT declaring the given streams; what starts every
    /// segment. The PMT version changes when the streams do, and the next
    /// frame on the PCR PID carries a PCR.
    pub fn write_tables(&mut self, video: bool, audio: bool, out: &mut BytesMut) {
        let streams = Streams { video, audio };
        if self.declared.is_some_and(|d| d != streams) {
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
        }
        self.declared = Some(streams);
        self.last_pcr_ms = None;
        let video_es = Es {
            stream_type: STREAM_TYPE_H264,
            pid: PID_VIDEO,
        };
        let audio_es = Es {
            stream_type: STREAM_TYPE_AAC_ADTS,
            pid: PID_AUDIO,
        };
        let both = [video_es, audio_es];
        let es: &[Es] = match (video, audio) {
            (true, true) => &both,
            (true, false) => &both[..1],
            (false, true) => &both[1..],
            (false, false) => &[],
        };
        out.reserve(2 * super::PACKET_LEN);
        write_pat(out, &mut self.cc.pat);
        write_pmt(
            out,
            &mut self.cc.pmt,
            self.pmt_version,
            streams.pcr_pid(),
            es,
        );
    }

    /// Writes one frame (nothing for config frames). On error nothing is
    /// written; a config that does not parse also forgets the previous one,
    /// which no longer describes the stream.
    pub fn write_frame(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), TsError> {
        match frame.kind {
            FrameKind::VideoConfig => {
                self.parameter_sets = None;
                let config = AvcConfig::parse(&frame.data)?;
                self.parameter_sets = Some(annexb_parameter_sets(&config));
                Ok(())
            }
            FrameKind::AudioConfig => {
                self.aac = None;
                self.aac = Some(AacConfig::parse(&frame.data)?);
                Ok(())
            }
            FrameKind::Video => {
                self.write_video(frame, out);
                Ok(())
            }
            FrameKind::Audio => self.write_audio(frame, out),
        }
    }

    fn write_video(&mut self, frame: &Frame, out: &mut BytesMut) {
        let data = &frame.data[..];
        let parameter_sets = match &self.parameter_sets {
            Some(p) if frame.keyframe && !has_nal(data, NAL_SPS) => &p[..],
            _ => &[],
        };
        let nal_bytes: usize = avcc_nalus(data, 4)
            .filter(|n| keep_nal(n))
            .map(|n| START_CODE.len() + n.len())
            .sum();
        let payload_len = AUD.len() + parameter_sets.len() + nal_bytes;
        let header = PesHeader::new(
            STREAM_ID_VIDEO,
            to_90khz(frame.pts),
            Some(to_90khz(frame.dts)),
            payload_len,
        );
        let pcr = pcr_due(&mut self.last_pcr_ms, self.declared, PID_VIDEO, frame);
        let mut w = PesWriter::new(
            out,
            PID_VIDEO,
            &mut self.cc.video,
            header.len() + payload_len,
            pcr,
            frame.keyframe,
        );
        w.put(header.as_bytes());
        w.put(&AUD);
        w.put(parameter_sets);
        for nal in avcc_nalus(data, 4).filter(|n| keep_nal(n)) {
            w.put(&START_CODE);
            w.put(nal);
        }
        w.finish();
    }

    fn write_audio(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), TsError> {
        let aac = self.aac.ok_or(TsError::NoAudioConfig)?;
        let len = frame.data.len();
        if len > MAX_ADTS_PAYLOAD {
            return Err(TsError::AudioFrameTooLarge(len));
        }
        let adts = aac.adts_header(len);
        let header = PesHeader::new(STREAM_ID_AUDIO, to_90khz(frame.pts), None, adts.len() + len);
        let pcr = pcr_due(&mut self.last_pcr_ms, self.declared, PID_AUDIO, frame);
        let mut w = PesWriter::new(
            out,
            PID_AUDIO,
            &mut self.cc.audio,
            header.len() + adts.len() + len,
            pcr,
            // Every AAC frame can be decoded on its own.
            true,
        );
        w.put(header.as_bytes());
        w.put(&adts);
        w.put(&frame.data);
        w.finish();
        Ok(())
    }
}

/// The PCR (90 kHz) to put in this frame's first packet, if `pid` carries the
/// PCR and one is due: on keyframes and at least every 100 ms. PCR = DTS.
fn pcr_due(
    last: &mut Option<i64>,
    declared: Option<Streams>,
    pid: u16,
    frame: &Frame,
) -> Option<u64> {
    let pcr_pid = declared.map_or(PID_VIDEO, Streams::pcr_pid);
    if pid != pcr_pid {
        return None;
    }
    let due = match *last {
        None => true,
        Some(last) => {
            frame.keyframe || frame.dts < last || frame.dts.saturating_sub(last) >= PCR_INTERVAL_MS
        }
    };
    if !due {
        return None;
    }
    *last = Some(frame.dts);
    Some(to_90khz(frame.dts))
}

/// Empty NAL units say nothing, and in-band AUDs would duplicate ours.
fn keep_nal(nal: &[u8]) -> bool {
    nal.first().is_some_and(|h| h & 0x1f != NAL_AUD)
}

fn has_nal(data: &[u8], nal_type: u8) -> bool {
    avcc_nalus(data, 4).any(|n| n.first().is_some_and(|h| h & 0x1f == nal_type))
}

fn annexb_parameter_sets(config: &AvcConfig) -> Bytes {
    let sets = || config.sps.iter().chain(&config.pps);
    let mut out = BytesMut::with_capacity(sets().map(|s| START_CODE.len() + s.len()).sum());
    for s in sets() {
        out.put_slice(&START_CODE);
        out.put_slice(s);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::testutil::{self, PPS, SPS};

    fn muxer() -> TsMuxer {
        let mut m = TsMuxer::new();
        let mut out = BytesMut::new();
        m.write_frame(&testutil::video_config(), &mut out).unwrap();
        m.write_frame(&testutil::audio_config(), &mut out).unwrap();
        assert!(out.is_empty(), "configs write nothing");
        m
    }

    #[test]
    fn video_pes_has_aud_and_parameter_sets_on_keyframes() {
        let mut m = muxer();
        let mut out = BytesMut::new();
        m.write_tables(true, true, &mut out);
        let key = testutil::video(1000, 1080, true, 3000);
        m.write_frame(&key, &mut out).unwrap();
        let inter = testutil::video(1040, 1040, false, 100);
        m.write_frame(&inter, &mut out).unwrap();

        let ts = testutil::parse(&out);
        assert_eq!(ts.pmt_streams, vec![(0x1b, PID_VIDEO), (0x0f, PID_AUDIO)]);
        assert_eq!(ts.pcr_pid, PID_VIDEO);
        assert_eq!(ts.pes.len(), 2);

        let k = &ts.pes[0];
        assert_eq!(
            (k.pid, k.pts, k.dts),
            (PID_VIDEO, 1080 * 90, Some(1000 * 90))
        );
        assert!(k.random_access);
        assert_eq!(k.pcr, Some(1000 * 90));
        let mut expect = AUD.to_vec();
        for set in [SPS, PPS] {
            expect.extend_from_slice(&START_CODE);
            expect.extend_from_slice(set);
        }
        expect.extend_from_slice(&START_CODE);
        expect.extend_from_slice(&key.data[4..]);
        assert_eq!(k.payload, expect);

        let p = &ts.pes[1];
        assert_eq!((p.pts, p.dts), (1040 * 90, None));
        assert!(!p.random_access);
        assert_eq!(p.pcr, None, "40 ms after the last PCR");
        assert_eq!(&p.payload[..6], &AUD);
        assert_eq!(&p.payload[6..10], &START_CODE);
        assert_eq!(p.payload.len(), 6 + 4 + 100);
    }

    #[test]
    fn in_band_parameter_sets_and_auds_are_not_duplicated() {
        let mut m = muxer();
        let mut au = BytesMut::new();
        for nal in [&[0x09, 0xf0][..], SPS, PPS, &[], &[0x65, 0x88, 0x84]] {
            au.put_u32(nal.len() as u32);
            au.put_slice(nal);
        }
        let key = Frame::video(0, 0, true, au.freeze());
        let mut out = BytesMut::new();
        m.write_tables(true, false, &mut out);
        m.write_frame(&key, &mut out).unwrap();
        let ts = testutil::parse(&out);
        let payload = &ts.pes[0].payload;
        let mut expect = AUD.to_vec();
        for nal in [SPS, PPS, &[0x65, 0x88, 0x84]] {
            expect.extend_from_slice(&START_CODE);
            expect.extend_from_slice(nal);
        }
        assert_eq!(payload, &expect);
    }

    #[test]
    fn audio_pes_is_adts() {
        let mut m = muxer();
        let mut out = BytesMut::new();
        m.write_tables(false, true, &mut out);
        for i in 0..10 {
            m.write_frame(&testutil::audio(i * 23, 300), &mut out)
                .unwrap();
        }
        let ts = testutil::parse(&out);
        assert_eq!(ts.pmt_streams, vec![(0x0f, PID_AUDIO)]);
        assert_eq!(ts.pcr_pid, PID_AUDIO);
        assert_eq!(ts.pes.len(), 10);
        let a = &ts.pes[0];
        assert_eq!((a.pid, a.pts, a.dts), (PID_AUDIO, 0, None));
        assert_eq!(&a.payload[..2], &[0xff, 0xf1]);
        assert_eq!(a.payload.len(), 307);
        assert_eq!(a.declared_len, Some(3 + 5 + 307));
        // Audio-only: the PCR rides on audio, at least every 100 ms.
        let pcrs: Vec<_> = ts.pes.iter().filter_map(|p| p.pcr).collect();
        assert_eq!(pcrs, vec![0, 115 * 90]);
    }

    #[test]
    fn bad_input_writes_nothing() {
        let mut m = TsMuxer::new();
        let mut out = BytesMut::new();
        assert_eq!(
            m.write_frame(&testutil::audio(0, 10), &mut out),
            Err(TsError::NoAudioConfig)
        );
        let garbage = Frame::new(FrameKind::AudioConfig, 0, 0, Bytes::from_static(&[0x17]));
        assert!(m.write_frame(&garbage, &mut out).is_err());
        let garbage = Frame::new(FrameKind::VideoConfig, 0, 0, Bytes::from_static(&[1, 2, 3]));
        assert!(m.write_frame(&garbage, &mut out).is_err());
        assert!(!m.has_video_config() && !m.has_audio_config());

        let mut m = muxer();
        let garbage = Frame::new(FrameKind::VideoConfig, 0, 0, Bytes::from_static(&[2; 9]));
        assert!(matches!(
            m.write_frame(&garbage, &mut out),
            Err(TsError::VideoConfig(_))
        ));
        assert!(!m.has_video_config(), "a bad config replaces the old one");
        let big = testutil::audio(0, MAX_ADTS_PAYLOAD + 1);
        assert_eq!(
            m.write_frame(&big, &mut out),
            Err(TsError::AudioFrameTooLarge(MAX_ADTS_PAYLOAD + 1))
        );
        assert!(out.is_empty());

        // A video frame whose NAL lengths lie: the valid prefix is kept,
        // the packets stay well-formed.
        let lying = Frame::video(
            0,
            0,
            false,
            Bytes::from_static(&[0, 0, 0, 2, 0x41, 1, 0, 0, 9]),
        );
        m.write_frame(&lying, &mut out).unwrap();
        let ts = testutil::parse(&out);
        assert_eq!(ts.pes[0].payload.len(), 6 + 4 + 2);
    }

    #[test]
    fn continuity_and_pmt_version_across_tables() {
        let mut m = muxer();
        let mut out = BytesMut::new();
        m.write_tables(true, true, &mut out);
        for i in 0..40 {
            m.write_frame(
                &testutil::video(i * 40, i * 40, i % 10 == 0, 500 + 97 * i as usize),
                &mut out,
            )
            .unwrap();
            m.write_frame(&testutil::audio(i * 40, 200), &mut out)
                .unwrap();
            if i == 20 {
                m.write_tables(true, false, &mut out);
            }
        }
        // testutil::parse checks sync bytes, sizes and continuity per PID.
        let ts = testutil::parse(&out);
        assert_eq!(ts.pmt_versions, vec![0, 1]);
        assert_eq!(ts.pes.len(), 80);
    }
}
