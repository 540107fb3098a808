//! Cuts a stream of hub frames into MPEG-TS segments for HLS.
//!
//! Segments start on video keyframes (each with its own PAT/PMT, so it plays
//! on its own) once the current one has lasted the target duration;
//! audio-only streams cut on time. Timestamp jumps start a new segment
//! flagged as a discontinuity.

use std::mem;

use bytes::{Bytes, BytesMut};
use costream_hub::{Frame, FrameKind};

use crate::ts::TsMuxer;

/// A backward step larger than this within one track breaks the timeline;
/// smaller ones are encoder jitter and pass through.
pub const MAX_BACKWARD_STEP_MS: i64 = 500;
/// A forward step larger than this within one track breaks the timeline.
pub const MAX_FORWARD_STEP_MS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Cut at the first keyframe (or, without video, audio frame) at least
    /// this long after the segment's start.
    pub target_duration_ms: u64,
    /// Safety valve for streams whose keyframes stop coming: cut at the next
    /// frame of any kind once a segment lasts this long.
    pub max_duration_ms: u64,
    /// Safety valve bounding memory: cut at the next frame of any kind once
    /// a segment holds this many bytes.
    pub max_segment_bytes: usize,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            target_duration_ms: 2000,
            max_duration_ms: 30_000,
            max_segment_bytes: 64 << 20,
        }
    }
}

/// One finished MPEG-TS segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// 0 for the first segment of a segmenter, then +1 each.
    pub sequence: u64,
    pub duration_ms: u64,
    pub data: Bytes,
    /// The timeline or the set of tracks changed since the previous segment
    /// (`#EXT-X-DISCONTINUITY`).
    pub discontinuity: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    video: bool,
    audio: bool,
}

#[derive(Debug)]
struct Open {
    buf: BytesMut,
    start_dts: i64,
    /// Where the segment ends if nothing follows: its last dts plus one
    /// frame interval.
    end_dts: i64,
    streams: Streams,
    frames: usize,
    discontinuity: bool,
    /// Start of a segment that follows a timeline break: frames of a track
    /// not yet seen on the new timeline are checked against it.
    anchor: Option<i64>,
}

/// Timing of one track, from the frames written.
#[derive(Debug, Default, Clone, Copy)]
struct Track {
    last_dts: Option<i64>,
    /// The last positive dts step: a frame's duration, near enough.
    step: i64,
}

enum Timeline {
    Continues,
    Breaks,
    /// A frame left over from before a break: dropped.
    Stale,
}

/// Cuts hub frames into segments. Sans-IO: push frames, get segments back.
#[derive(Debug)]
pub struct Segmenter {
    config: SegmenterConfig,
    muxer: TsMuxer,
    has_video: bool,
    open: Option<Open>,
    next_sequence: u64,
    /// The next segment starts a new timeline.
    pending_discontinuity: bool,
    /// The next segment follows a break or a `finish`.
    restarted: bool,
    last_streams: Option<Streams>,
    video: Track,
    audio: Track,
    /// Size of the last segment, to allocate the next one in one go.
    size_hint: usize,
    /// The codec configs seen last (video, audio).
    configs: [Option<Bytes>; 2],
    /// A config changed (a mix took the stream over, or gave it back): the
    /// next segment starts at the next boundary, as a discontinuity.
    config_changed: bool,
}

/// First allocation of a segment buffer when there is no previous size to go by.
const MIN_SEGMENT_CAPACITY: usize = 64 << 10;

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        Segmenter {
            config,
            muxer: TsMuxer::new(),
            has_video: false,
            open: None,
            next_sequence: 0,
            pending_discontinuity: false,
            restarted: false,
            last_streams: None,
            video: Track::default(),
            audio: Track::default(),
            size_hint: 0,
            configs: [None, None],
            config_changed: false,
        }
    }

    /// The sequence number the next finished segment will have.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Takes one frame (config frames included); returns the segment this
    /// frame finished, if any. Video frames before the first keyframe, and
    /// audio before the first AudioConfig, are dropped.
    pub fn push(&mut self, frame: &Frame) -> Option<Segment> {
        let is_video = match frame.kind {
            FrameKind::VideoConfig | FrameKind::AudioConfig => {
                if frame.kind == FrameKind::VideoConfig {
                    self.has_video = true;
                }
                let seen = &mut self.configs[usize::from(frame.kind == FrameKind::AudioConfig)];
                if seen.as_ref().is_some_and(|old| *old != frame.data) {
                    self.config_changed = true;
                }
                *seen = Some(frame.data.clone());
                // A config that does not parse leaves the muxer without one:
                // audio is then dropped, video goes out without SPS/PPS.
                let _ = self.muxer.write_frame(frame, &mut BytesMut::new());
                return None;
            }
            FrameKind::Video => {
                self.has_video = true;
                true
            }
            FrameKind::Audio if !self.muxer.has_audio_config() => return None,
            FrameKind::Audio => false,
        };

        let mut finished = None;
        match self.timeline(frame, is_video) {
            Timeline::Continues => {}
            Timeline::Stale => return None,
            Timeline::Breaks => {
                finished = self.close(None);
                self.restart();
            }
        }

        let streams = Streams {
            video: self.has_video,
            audio: self.muxer.has_audio_config(),
        };
        // Where a segment may begin: a keyframe, or any audio frame without video.
        let boundary = if self.has_video {
            is_video && frame.keyframe
        } else {
            !is_video
        };
        let cut = match &self.open {
            None => boundary,
            Some(open) => {
                let elapsed = u64::try_from(frame.dts.saturating_sub(open.start_dts)).unwrap_or(0);
                let forced = elapsed >= self.config.max_duration_ms
                    || open.buf.len() >= self.config.max_segment_bytes;
                forced
                    || (boundary
                        && (elapsed >= self.config.target_duration_ms
                            || open.streams != streams
                            || self.config_changed))
            }
        };
        if cut {
            finished = finished.or(self.close(Some(frame.dts)));
            self.start(frame.dts, streams);
        }
        self.write(frame, is_video);
        finished
    }

    /// Ends the stream (the publisher left): returns the last, partial
    /// segment. Frames pushed afterwards start over at a keyframe, in a
    /// segment flagged as a discontinuity.
    pub fn finish(&mut self) -> Option<Segment> {
        let last = self.close(None);
        self.restart();
        last
    }

    fn timeline(&self, frame: &Frame, is_video: bool) -> Timeline {
        let track = if is_video { &self.video } else { &self.audio };
        match track.last_dts {
            Some(last) => {
                let step = frame.dts.saturating_sub(last);
                if !(-MAX_BACKWARD_STEP_MS..=MAX_FORWARD_STEP_MS).contains(&step) {
                    Timeline::Breaks
                } else {
                    Timeline::Continues
                }
            }
            None => match self.open.as_ref().and_then(|o| o.anchor) {
                Some(anchor) if frame.dts.abs_diff(anchor) > MAX_FORWARD_STEP_MS.unsigned_abs() => {
                    Timeline::Stale
                }
                _ => Timeline::Continues,
            },
        }
    }

    /// After a break or `finish`: the next segment starts afresh, at a
    /// keyframe, on a new timeline.
    fn restart(&mut self) {
        self.open = None;
        self.video = Track::default();
        self.audio = Track::default();
        self.pending_discontinuity = self.next_sequence > 0;
        self.restarted = true;
    }

    fn start(&mut self, dts: i64, streams: Streams) {
        let capacity = (self.size_hint + self.size_hint / 4).clamp(
            MIN_SEGMENT_CAPACITY,
            self.config.max_segment_bytes.max(MIN_SEGMENT_CAPACITY),
        );
        let mut buf = BytesMut::with_capacity(capacity);
        self.muxer
            .write_tables(streams.video, streams.audio, &mut buf);
        let tracks_changed = self.last_streams.is_some_and(|s| s != streams);
        self.last_streams = Some(streams);
        self.open = Some(Open {
            buf,
            start_dts: dts,
            end_dts: dts,
            streams,
            frames: 0,
            discontinuity: mem::take(&mut self.pending_discontinuity)
                || mem::take(&mut self.config_changed)
                || tracks_changed,
            anchor: mem::take(&mut self.restarted).then_some(dts),
        });
    }

    fn write(&mut self, frame: &Frame, is_video: bool) {
        let Some(open) = &mut self.open else {
            return; // waiting for a keyframe
        };
        // A track the PMT does not declare would be ignored by players.
        let declared = if is_video {
            open.streams.video
        } else {
            open.streams.audio
        };
        if !declared || self.muxer.write_frame(frame, &mut open.buf).is_err() {
            return;
        }
        open.frames += 1;
        let track = if is_video {
            &mut self.video
        } else {
            &mut self.audio
        };
        if let Some(last) = track.last_dts {
            if frame.dts > last {
                track.step = frame.dts.saturating_sub(last);
            }
        }
        track.last_dts = Some(frame.dts);
        open.end_dts = open.end_dts.max(frame.dts.saturating_add(track.step));
    }

    /// Finishes the open segment, ending at `end` (the next segment's start)
    /// or, when none follows, after its last frame.
    fn close(&mut self, end: Option<i64>) -> Option<Segment> {
        let open = self.open.take()?;
        if open.frames == 0 {
            return None;
        }
        let end = end.unwrap_or(open.end_dts);
        self.size_hint = open.buf.len();
        let segment = Segment {
            sequence: self.next_sequence,
            duration_ms: u64::try_from(end.saturating_sub(open.start_dts)).unwrap_or(0),
            data: open.buf.freeze(),
            discontinuity: open.discontinuity,
        };
        self.next_sequence += 1;
        Some(segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::testutil::{self, audio, video};
    use crate::ts::{PID_AUDIO, PID_VIDEO};

    fn segmenter() -> Segmenter {
        let mut s = Segmenter::new(SegmenterConfig::default());
        assert!(s.push(&testutil::video_config()).is_none());
        assert!(s.push(&testutil::audio_config()).is_none());
        s
    }

    /// 25 fps video with a keyframe every `gop` frames, and audio every
    /// 23 ms, interleaved by dts, from `from_ms` for `ms`.
    fn av(from_ms: i64, ms: i64, gop: i64) -> Vec<Frame> {
        let mut frames = Vec::new();
        let (mut v, mut a) = (0, 0);
        loop {
            let vd = from_ms + v * 40;
            let ad = from_ms + a * 23;
            if vd >= from_ms + ms && ad >= from_ms + ms {
                break;
            }
            if vd <= ad {
                frames.push(video(vd, vd + 80, v % gop == 0, 400));
                v += 1;
            } else {
                frames.push(audio(ad, 200));
                a += 1;
            }
        }
        frames
    }

    fn run(s: &mut Segmenter, frames: &[Frame]) -> Vec<Segment> {
        frames.iter().filter_map(|f| s.push(f)).collect()
    }

    #[test]
    fn cuts_on_keyframes_after_target() {
        let mut s = segmenter();
        // Keyframes every 1.2 s: cuts at 2.4 s, 4.8 s...
        let mut frames = vec![video(-80, -40, false, 100), audio(-50, 100)];
        frames.extend(av(0, 10_000, 30));
        let mut segs = run(&mut s, &frames);
        segs.extend(s.finish());
        let durations: Vec<_> = segs.iter().map(|s| s.duration_ms).collect();
        // The last one ends one audio frame after the last audio dts (9982).
        assert_eq!(durations, vec![2400, 2400, 2400, 2400, 405]);
        let seqs: Vec<_> = segs.iter().map(|s| s.sequence).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        for (i, seg) in segs.iter().enumerate() {
            assert!(!seg.discontinuity);
            let ts = testutil::parse(&seg.data);
            assert_eq!(ts.pats, 1, "PAT/PMT at the start");
            assert_eq!(ts.pmt_streams, vec![(0x1b, PID_VIDEO), (0x0f, PID_AUDIO)]);
            let first = &ts.pes[0];
            assert_eq!(first.pid, PID_VIDEO);
            assert!(first.random_access, "starts with a keyframe");
            assert_eq!(
                first.dts,
                Some(i as u64 * 2400 * 90),
                "frames before the first keyframe are dropped"
            );
        }
        let total: usize = segs
            .iter()
            .map(|s| testutil::parse(&s.data).pes.len())
            .sum();
        assert_eq!(total, frames.len() - 2);
    }

    #[test]
    fn audio_only_cuts_on_time() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.push(&audio(0, 100));
        s.push(&testutil::audio_config());
        let frames: Vec<_> = (0..400).map(|i| audio(i * 23, 200)).collect();
        let segs = run(&mut s, &frames);
        assert_eq!(segs.len(), 4);
        // The first frame at or past 2000 ms is 2001 = 87 * 23.
        assert_eq!(segs[0].duration_ms, 2001);
        let ts = testutil::parse(&segs[0].data);
        assert_eq!(ts.pmt_streams, vec![(0x0f, PID_AUDIO)]);
        assert_eq!(ts.pcr_pid, PID_AUDIO);
        assert_eq!(ts.pes.len(), 87);
    }

    #[test]
    fn timeline_breaks_start_a_discontinuity() {
        let mut s = segmenter();
        let mut segs = run(&mut s, &av(0, 3000, 25));
        assert_eq!(segs.len(), 1);
        // The encoder restarts at 0: backwards.
        segs.extend(run(&mut s, &av(0, 2000, 25)));
        // Then jumps 60 s ahead.
        segs.extend(run(&mut s, &av(62_000, 1000, 25)));
        segs.extend(s.finish());
        // Segments that end without a successor last until one frame
        // interval after their last audio frame (e.g. 2990 + 23).
        let flags: Vec<_> = segs
            .iter()
            .map(|s| (s.duration_ms, s.discontinuity))
            .collect();
        assert_eq!(
            flags,
            vec![(2000, false), (1013, false), (2001, true), (1012, true)]
        );
    }

    #[test]
    fn stale_frames_after_a_break_are_dropped() {
        let mut s = segmenter();
        run(&mut s, &av(100_000, 3000, 25));
        // Video restarts at 0 while an old-timeline audio frame trails.
        assert!(s.push(&video(0, 0, true, 100)).is_some());
        assert!(s.push(&audio(103_000, 100)).is_none());
        s.push(&audio(10, 100));
        s.push(&video(40, 40, false, 100));
        let seg = s.finish().unwrap();
        assert!(seg.discontinuity);
        let ts = testutil::parse(&seg.data);
        assert_eq!(ts.pes.len(), 3);
        assert_eq!(seg.duration_ms, 80);
    }

    #[test]
    fn a_new_video_config_cuts_at_its_keyframe_with_discontinuity() {
        let mut s = segmenter();
        let mut segs = run(&mut s, &av(0, 1000, 25));
        let mut other = testutil::video_config();
        other.data = Bytes::from([&other.data[..], &[0][..]].concat());
        s.push(&other);
        segs.extend(run(&mut s, &av(1000, 1000, 25)));
        segs.extend(s.finish());
        let flags: Vec<bool> = segs.iter().map(|x| x.discontinuity).collect();
        assert_eq!(flags, [false, true], "{segs:?}");
        assert_eq!(segs[0].duration_ms, 1000);
    }

    #[test]
    fn tracks_appearing_cut_with_discontinuity() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        s.push(&testutil::audio_config());
        let mut segs = run(&mut s, &[audio(0, 10), audio(23, 10)]);
        s.push(&testutil::video_config());
        // Non-keyframe video in an audio-only segment is not written.
        segs.extend(run(&mut s, &[video(30, 30, false, 10), audio(46, 10)]));
        segs.extend(run(&mut s, &[video(60, 60, true, 10), audio(69, 10)]));
        segs.extend(s.finish());
        assert_eq!(segs.len(), 2);
        assert_eq!(testutil::parse(&segs[0].data).pes.len(), 3);
        assert_eq!(segs[0].duration_ms, 60);
        assert!(segs[1].discontinuity);
        let ts = testutil::parse(&segs[1].data);
        assert_eq!(ts.pmt_streams.len(), 2);
        assert_eq!(ts.pes.len(), 2);
    }

    #[test]
    fn safety_valves_bound_segments() {
        let mut s = Segmenter::new(SegmenterConfig {
            max_segment_bytes: 100_000,
            ..SegmenterConfig::default()
        });
        s.push(&testutil::video_config());
        // One keyframe, then only inter frames: no keyframe cut ever comes.
        let mut segs = run(&mut s, &[video(0, 0, true, 1000)]);
        for i in 1..1000 {
            segs.extend(s.push(&video(i * 40, i * 40, false, 1000)));
        }
        assert!(segs.len() >= 9);
        assert!(segs.iter().all(|s| s.data.len() < 100_000 + 2000));
        // And on time, the default 30 s.
        let mut s = segmenter();
        s.push(&video(0, 0, true, 10));
        let segs: Vec<_> = (1..2000)
            .filter_map(|i| s.push(&video(i * 40, i * 40, false, 10)))
            .collect();
        assert_eq!(segs[0].duration_ms, 30_000);
    }

    #[test]
    fn hostile_frames_still_make_valid_ts() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut s = Segmenter::new(SegmenterConfig {
            target_duration_ms: 100,
            ..SegmenterConfig::default()
        });
        let mut segs = Vec::new();
        let mut dts = 0i64;
        for _ in 0..5000 {
            dts = match next() % 50 {
                0 => next() as i64,
                1 => i64::MAX - (next() % 10) as i64,
                2 => i64::MIN + (next() % 10) as i64,
                _ => dts.saturating_add((next() % 60) as i64),
            };
            let len = (next() % 300) as usize;
            let data = Bytes::from((0..len).map(|_| next() as u8).collect::<Vec<_>>());
            let frame = match next() % 20 {
                0 => testutil::video_config(),
                1 => testutil::audio_config(),
                2 => Frame::new(FrameKind::VideoConfig, dts, dts, data),
                3 => Frame::new(FrameKind::AudioConfig, dts, dts, data),
                4..=11 => Frame::video(dts, dts.saturating_add(40), next() % 5 == 0, data),
                _ => Frame::audio(dts, data),
            };
            segs.extend(s.push(&frame));
        }
        segs.extend(s.finish());
        assert!(!segs.is_empty());
        for seg in &segs {
            testutil::parse(&seg.data);
        }
    }

    #[test]
    fn finish_then_restart() {
        let mut s = segmenter();
        assert!(s.finish().is_none(), "nothing to flush");
        run(&mut s, &av(0, 1000, 25));
        let last = s.finish().unwrap();
        assert_eq!((last.sequence, last.duration_ms), (0, 1012));
        // The publisher comes back: waits for a keyframe, flags the break.
        assert!(s.push(&video(5000, 5000, false, 10)).is_none());
        assert!(s.push(&video(5040, 5040, true, 10)).is_none());
        let seg = s.finish().unwrap();
        assert_eq!((seg.sequence, seg.discontinuity), (1, true));
        assert_eq!(testutil::parse(&seg.data).pes.len(), 1);
    }
}
