//! H.264 re-encoding for WebRTC viewers. Browsers' WebRTC decoders do not
//! take B-frames, so a stream that has them is decoded (OpenH264 decodes
//! Main and High profile, CABAC and B-slices included) and encoded again as
//! Constrained Baseline, which has no B-frames, with dts == pts.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use costream_hub::avc::{self, AvcConfig, AvcError};
use costream_hub::{Codec, Frame, FrameKind};
use openh264::decoder::{DecodeOptions, Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

const DEFAULT_BITRATE: u32 = 1_500_000;
/// OpenH264 takes the bitrate as an i32; far above anything WebRTC carries.
const MAX_BITRATE: u32 = 100_000_000;
const IDR_INTERVAL_MS: i64 = 2000;
/// Input timestamps waiting for their decoded picture. A decoder holds a
/// few pictures back for reordering; more than this means pictures were
/// lost without an error, and the oldest timestamps are the stale ones.
const MAX_PENDING: usize = 16;
/// Until the stream's frame rate is known (neither in the SPS nor measured).
const FALLBACK_FPS: f32 = 30.0;
/// Output payloads are cut from buffers of this size.
const OUT_CHUNK: usize = 64 * 1024;
/// Frame rates believed; the encoder needs one.
const MIN_FPS: f32 = 2.0;
const MAX_FPS: f32 = 120.0;
/// Time over which the input frame rate is measured.
const FPS_WINDOW_MS: i64 = 2000;
/// A longer step between two frames' dts is a gap, not the frame rate.
const MAX_FRAME_STEP_MS: i64 = 500;
/// A measured frame rate this far (relative) from the encoder's rebuilds it,
/// at the next periodic IDR so that costs nothing in the stream.
const FPS_TOLERANCE: f32 = 0.2;

/// Whether a frame has a B-frame's reordering (pts differs from dts), the
/// sign that a stream needs [`VideoReencoder`] before it goes to WebRTC.
pub fn has_b_frames(frame: &Frame) -> bool {
    frame.kind == FrameKind::Video && frame.pts != frame.dts
}

#[derive(Debug, thiserror::Error)]
pub enum ReencodeError {
    #[error("not an H.264 video frame")]
    NotH264Video,
    #[error("video before any H.264 configuration")]
    NoConfig,
    #[error("bad AVC configuration: {0}")]
    Config(#[from] AvcError),
    #[error("malformed H.264 access unit")]
    Malformed,
    #[error("H.264 decoder: {0}")]
    Decode(String),
    #[error("H.264 encoder: {0}")]
    Encode(String),
}

/// Decodes an H.264 stream (hub frames, B-frames allowed) and encodes it
/// again as Constrained Baseline. Sans-IO: push input frames, pop output
/// frames (a `VideoConfig` first and whenever the parameter sets change,
/// then `Video` frames with dts == pts, strictly increasing).
pub struct VideoReencoder {
    /// Created on the first configuration, again after [`Self::flush`] and
    /// when resynchronising.
    decoder: Option<Decoder>,
    /// The source's SPS and PPS in Annex B, fed to each new decoder.
    param_sets: Vec<u8>,
    /// Frame rate the source's SPS announces.
    sps_fps: Option<f32>,
    /// Set by a decode error or new parameter sets: the decoder may hold
    /// pictures it will never give out, or must start a new sequence, so at
    /// the next IDR it is drained and replaced, which pairs timestamps and
    /// pictures exactly again.
    resync: bool,
    /// Scratch buffer: the access unit being decoded, in Annex B.
    annexb: BytesMut,
    pending: PendingPts,
    fps: FpsMeter,
    out: Output,
}

impl VideoReencoder {
    /// `bitrate_bps` 0 means 1.5 Mbit/s. Nothing is allocated in OpenH264
    /// before the first configuration frame.
    pub fn new(bitrate_bps: u32) -> Self {
        let bitrate = match bitrate_bps {
            0 => DEFAULT_BITRATE,
            b => b.min(MAX_BITRATE),
        };
        VideoReencoder {
            decoder: None,
            param_sets: Vec::new(),
            sps_fps: None,
            resync: false,
            annexb: BytesMut::new(),
            pending: PendingPts::default(),
            fps: FpsMeter::default(),
            out: Output::new(bitrate),
        }
    }

    /// Makes the next output frame an IDR (a WHEP viewer joined or lost one).
    pub fn request_keyframe(&mut self) {
        self.out.keyframe_requested = true;
    }

    /// Takes one hub frame: an H.264 `VideoConfig` or `Video` frame. An
    /// error is about that frame only; decoding recovers at the next IDR.
    pub fn push(&mut self, frame: &Frame) -> Result<(), ReencodeError> {
        match (frame.codec, frame.kind) {
            (Codec::H264, FrameKind::VideoConfig) => self.config(&frame.data),
            (Codec::H264, FrameKind::Video) => self.video(frame),
            _ => Err(ReencodeError::NotH264Video),
        }
    }

    /// The next output frame.
    pub fn pop(&mut self) -> Option<Frame> {
        self.out.frames.pop_front()
    }

    /// Encodes the pictures the decoder still holds back for reordering, at
    /// the end of a stream. Frames pushed afterwards start a new decoder,
    /// from an IDR.
    pub fn flush(&mut self) -> Result<(), ReencodeError> {
        let Some(mut decoder) = self.decoder.take() else {
            return Ok(());
        };
        // OpenH264 (single-threaded) leaks a picture buffer per flushed
        // picture, so a flushed decoder is not used again.
        let fps = self.current_fps();
        let result = match decoder.flush_remaining() {
            Ok(pictures) => pictures
                .iter()
                .try_for_each(|picture| match self.pending.take() {
                    Some(pts) => self.out.encode(picture, pts, fps),
                    None => Ok(()),
                }),
            Err(e) => Err(ReencodeError::Decode(e.to_string())),
        };
        // Every frame pushed so far has had its chance to come out.
        self.pending.ts.clear();
        result
    }

    fn current_fps(&self) -> f32 {
        self.fps.fps.or(self.sps_fps).unwrap_or(FALLBACK_FPS)
    }

    fn config(&mut self, record: &Bytes) -> Result<(), ReencodeError> {
        let cfg = AvcConfig::parse(record)?;
        let sets = cfg.parameter_sets_annexb().to_vec();
        if sets == self.param_sets {
            return Ok(());
        }
        self.sps_fps = cfg
            .sps_info()
            .ok()
            .and_then(|i| i.fps)
            .map(|f| (f as f32).clamp(MIN_FPS, MAX_FPS));
        self.param_sets = sets;
        if self.decoder.is_some() {
            // The frames up to the next IDR still use the old sets.
            self.resync = true;
            Ok(())
        } else {
            open_decoder(&mut self.decoder, &self.param_sets).map(drop)
        }
    }

    fn video(&mut self, frame: &Frame) -> Result<(), ReencodeError> {
        if self.param_sets.is_empty() {
            return Err(ReencodeError::NoConfig);
        }
        self.annexb.clear();
        let mut covered = 0;
        let mut slices = false;
        for nal in avc::avcc_nalus(&frame.data, 4) {
            // An empty NAL unit or a set forbidden_zero_bit is not H.264.
            let Some(&header) = nal.first().filter(|h| *h & 0x80 == 0) else {
                return Err(ReencodeError::Malformed);
            };
            slices |= (1..=avc::NAL_IDR).contains(&(header & 0x1f));
            covered += 4 + nal.len();
            self.annexb.put_slice(&[0, 0, 0, 1]);
            self.annexb.put_slice(nal);
        }
        // Lengths that do not cover the payload exactly: truncated or corrupt.
        if covered == 0 || covered != frame.data.len() {
            return Err(ReencodeError::Malformed);
        }
        self.fps.observe(frame.dts);
        if self.resync && avc::has_idr(&frame.data) {
            self.resync = false;
            self.flush()?;
        }
        let fps = self.current_fps();
        let decoder = open_decoder(&mut self.decoder, &self.param_sets)?;
        // Only a frame with slices makes a picture to pair its pts with.
        if slices {
            self.pending.insert(frame.pts);
        }
        match decoder.decode_with_options(&self.annexb, no_flush()) {
            Ok(Some(picture)) => {
                // The decoder gives pictures out in presentation order: this
                // one is the earliest still waiting.
                if let Some(pts) = self.pending.take() {
                    self.out.encode(&picture, pts, fps)?;
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.pending.remove(frame.pts);
                self.resync = true;
                Err(ReencodeError::Decode(e.to_string()))
            }
        }
    }
}

/// The decoder in `slot`, created and given the parameter sets if needed.
fn open_decoder<'a>(
    slot: &'a mut Option<Decoder>,
    param_sets: &[u8],
) -> Result<&'a mut Decoder, ReencodeError> {
    if slot.is_none() {
        // No flushing after each decode: a flush hands out a picture the
        // decoder held back for reordering, in decode order instead of
        // presentation order (and leaks its buffer, see `flush`).
        let config = DecoderConfig::new().flush_after_decode(Flush::NoFlush);
        let mut decoder = Decoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| ReencodeError::Decode(e.to_string()))?;
        // Parameter sets alone make no picture.
        decoder
            .decode_with_options(param_sets, no_flush())
            .map_err(|e| ReencodeError::Decode(e.to_string()))?;
        *slot = Some(decoder);
    }
    slot.as_mut().ok_or(ReencodeError::NoConfig)
}

fn no_flush() -> DecodeOptions {
    DecodeOptions::new().flush_after_decode(Flush::NoFlush)
}

/// Input pts values whose pictures have not come out of the decoder yet,
/// sorted; bounded, so no allocation after the first frames.
#[derive(Default)]
struct PendingPts {
    ts: Vec<i64>,
    last_out: Option<i64>,
}

impl PendingPts {
    fn insert(&mut self, pts: i64) {
        let at = self.ts.partition_point(|&t| t <= pts);
        self.ts.insert(at, pts);
        if self.ts.len() > MAX_PENDING {
            self.ts.remove(0);
        }
    }

    fn remove(&mut self, pts: i64) {
        if let Ok(at) = self.ts.binary_search(&pts) {
            self.ts.remove(at);
        }
    }

    /// The smallest pending pts after the last one handed out: output
    /// timestamps only go up, so stale ones are dropped.
    fn take(&mut self) -> Option<i64> {
        while !self.ts.is_empty() {
            let pts = self.ts.remove(0);
            if self.last_out.is_none_or(|last| pts > last) {
                self.last_out = Some(pts);
                return Some(pts);
            }
        }
        None
    }
}

/// The input frame rate, from the dts steps of a window of frames.
#[derive(Default)]
struct FpsMeter {
    last_dts: Option<i64>,
    steps: u32,
    span: i64,
    fps: Option<f32>,
}

impl FpsMeter {
    fn observe(&mut self, dts: i64) {
        let Some(last) = self.last_dts.replace(dts) else {
            return;
        };
        // A gap (the publisher stalled or came back) or a step back says
        // nothing about the rate.
        let step = dts.saturating_sub(last);
        if !(1..=MAX_FRAME_STEP_MS).contains(&step) {
            return;
        }
        self.steps += 1;
        self.span += step;
        if self.span >= FPS_WINDOW_MS {
            let fps = self.steps as f32 * 1000.0 / self.span as f32;
            self.fps = Some(fps.clamp(MIN_FPS, MAX_FPS));
            self.steps = 0;
            self.span = 0;
        }
    }
}

struct Encoding {
    encoder: Encoder,
    size: (usize, usize),
    fps: f32,
    /// Nothing encoded yet: the first frame is an IDR by itself.
    fresh: bool,
}

/// The encoding half: decoded pictures in, hub frames out (also the
/// mixer's encoder).
pub(crate) struct Output {
    bitrate: u32,
    encoding: Option<Encoding>,
    keyframe_requested: bool,
    last_idr_pts: Option<i64>,
    /// The first output pts: OpenH264 wants timestamps from 0 up.
    base_pts: Option<i64>,
    /// The parameter sets last announced in a `VideoConfig` frame.
    sps: Vec<Bytes>,
    pps: Vec<Bytes>,
    /// Scratch buffer for the access unit being built (AVCC); each frame's
    /// payload is split off it, so its allocation is reused.
    buf: BytesMut,
    frames: VecDeque<Frame>,
}

impl Output {
    pub(crate) fn new(bitrate: u32) -> Self {
        Output {
            bitrate,
            encoding: None,
            keyframe_requested: false,
            last_idr_pts: None,
            base_pts: None,
            sps: Vec::new(),
            pps: Vec::new(),
            buf: BytesMut::new(),
            frames: VecDeque::new(),
        }
    }

    /// The next hub frame made (a `VideoConfig` first, then `Video`).
    pub(crate) fn pop(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    pub(crate) fn encode(
        &mut self,
        picture: &impl YUVSource,
        pts: i64,
        fps: f32,
    ) -> Result<(), ReencodeError> {
        let size = picture.dimensions();
        let idr_due = self.keyframe_requested
            || self
                .last_idr_pts
                .is_none_or(|t| pts.saturating_sub(t) >= IDR_INTERVAL_MS);
        let rebuild = match &self.encoding {
            None => true,
            Some(e) if e.size != size => true,
            Some(e) => idr_due && (fps - e.fps).abs() > e.fps * FPS_TOLERANCE,
        };
        if rebuild {
            self.encoding = Some(Encoding {
                encoder: new_encoder(self.bitrate, fps)?,
                size,
                fps,
                fresh: true,
            });
        }
        let Some(encoding) = self.encoding.as_mut() else {
            return Ok(());
        };
        if idr_due && !encoding.fresh {
            encoding.encoder.force_intra_frame();
        }
        encoding.fresh = false;
        let base = *self.base_pts.get_or_insert(pts);
        let ts = Timestamp::from_millis(u64::try_from(pts.saturating_sub(base)).unwrap_or(0));
        let stream = encoding
            .encoder
            .encode_at(picture, ts)
            .map_err(|e| ReencodeError::Encode(e.to_string()))?;

        // Frames share chunks of this buffer until they are all dropped.
        if self.buf.capacity() < OUT_CHUNK / 4 {
            self.buf.reserve(OUT_CHUNK);
        }
        let mut sps = Vec::new();
        let mut pps = Vec::new();
        for layer in (0..stream.num_layers()).filter_map(|i| stream.layer(i)) {
            for nal in (0..layer.nal_count()).filter_map(|i| layer.nal_unit(i)) {
                // OpenH264 hands out NAL units with their start codes.
                for nal in avc::annexb_nalus(nal) {
                    match nal[0] & 0x1f {
                        avc::NAL_SPS => sps.push(Bytes::copy_from_slice(nal)),
                        avc::NAL_PPS => pps.push(Bytes::copy_from_slice(nal)),
                        _ => {
                            self.buf.put_u32(nal.len() as u32);
                            self.buf.put_slice(nal);
                        }
                    }
                }
            }
        }
        if self.buf.is_empty() {
            // A skipped frame (frame skipping is off, so it should not happen).
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let keyframe = avc::has_idr(&data);
        if keyframe {
            self.last_idr_pts = Some(pts);
            self.keyframe_requested = false;
            if !sps.is_empty() && (sps != self.sps || pps != self.pps) {
                let cfg = AvcConfig::from_parameter_sets(sps, pps)?;
                let record = cfg.to_record();
                (self.sps, self.pps) = (cfg.sps, cfg.pps);
                self.frames
                    .push_back(Frame::new(FrameKind::VideoConfig, pts, pts, record));
            }
        }
        if self.sps.is_empty() {
            // No configuration announced yet: nothing could decode this.
            return Ok(());
        }
        self.frames
            .push_back(Frame::video(pts, pts, keyframe, data));
        Ok(())
    }
}

fn new_encoder(bitrate: u32, fps: f32) -> Result<Encoder, ReencodeError> {
    let config = EncoderConfig::new()
        .profile(Profile::Baseline)
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(fps))
        // Every picture in gives a frame out, so timestamps stay paired.
        .skip_frames(false)
        // One thread per stream: a server runs many of them.
        .num_threads(1);
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| ReencodeError::Encode(e.to_string()))
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
