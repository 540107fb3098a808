//! Frames between WebRTC and the hub. WebRTC carries H.264 in Annex B with
//! parameter sets in band and RTP clocks per track; the hub keeps AVCC
//! frames, configs as separate frames, and one millisecond clock.

use std::time::{Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use costream_hub::avc::{self, AvcConfig};
use costream_hub::{vp8, Codec, Frame, FrameKind, MuxFormat};
use costream_rtc::{Codec as RtcCodec, MediaFrame, MediaOut};

/// One WHIP publisher's conversion state.
#[derive(Default)]
pub struct IngestClock {
    start: Option<Instant>,
    video: Option<TrackClock>,
    audio: Option<TrackClock>,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    /// VP8 picture size of the last key frame.
    vp8_size: Option<(u16, u16)>,
    /// Sender-report time and the stream time it maps to, fixed by the
    /// first frame that had a sender report: from then on every track is
    /// timed by the publisher's own wall clock, which is what keeps audio
    /// and video in sync (their RTP clocks have unrelated origins).
    ntp_origin: Option<(SystemTime, i64)>,
    sent_audio_config: bool,
}

struct TrackClock {
    first_rtp: u64,
    base_ms: i64,
}

impl IngestClock {
    /// The video track starts over (a simulcast publisher's hub stream
    /// moved to another encoding, with its own RTP clock).
    pub fn restart_video(&mut self) {
        self.video = None;
    }

    /// Hub frames for one received WebRTC frame (a config may come first).
    /// Video before the first SPS/PPS is dropped: nothing could decode it.
    pub fn convert(&mut self, frame: &MediaFrame) -> Vec<Frame> {
        let start = *self.start.get_or_insert(frame.network_time);
        let slot = match frame.codec {
            RtcCodec::H264 | RtcCodec::Vp8 => &mut self.video,
            RtcCodec::Opus => &mut self.audio,
        };
        // Tracks start on the wall clock's arrival time; afterwards their own
        // RTP clock times them (sender-report sync comes with the bridge).
        let clock = slot.get_or_insert_with(|| TrackClock {
            first_rtp: frame.rtp_time,
            base_ms: frame
                .network_time
                .saturating_duration_since(start)
                .as_millis() as i64,
        });
        let elapsed = frame.rtp_time.wrapping_sub(clock.first_rtp) as i64;
        let by_arrival = clock.base_ms + elapsed * 1000 / frame.clock_rate.max(1) as i64;
        let ms = match frame.sender_clock {
            Some(sc) => {
                let ntp = sc.wallclock(frame.rtp_time, frame.clock_rate);
                let (origin, origin_ms) = *self.ntp_origin.get_or_insert((ntp, by_arrival));
                let since = match ntp.duration_since(origin) {
                    Ok(d) => d.as_millis() as i64,
                    Err(e) => -(e.duration().as_millis() as i64),
                };
                origin_ms + since
            }
            // Before the first sender report (about a second): arrival time.
            None => by_arrival,
        };
        match frame.codec {
            RtcCodec::H264 => self.h264(ms, frame),
            RtcCodec::Opus => {
                let mut out = Vec::with_capacity(2);
                if !self.sent_audio_config {
                    self.sent_audio_config = true;
                    out.push(
                        Frame::new(
                            FrameKind::AudioConfig,
                            ms,
                            ms,
                            Bytes::from_static(costream_audio::OPUS_HEAD_STEREO),
                        )
                        .with_codec(Codec::Opus),
                    );
                }
                out.push(Frame::audio(ms, frame.data.clone()).with_codec(Codec::Opus));
                out
            }
            RtcCodec::Vp8 => self.vp8(ms, frame),
        }
    }

    /// VP8 passes through as it came; a size change on a key frame becomes
    /// a config frame. Frames before the first key frame are dropped.
    fn vp8(&mut self, ms: i64, frame: &MediaFrame) -> Vec<Frame> {
        let mut out = Vec::with_capacity(2);
        let keyframe = vp8::is_keyframe(&frame.data);
        if let Some(size) = vp8::keyframe_size(&frame.data) {
            if self.vp8_size != Some(size) {
                self.vp8_size = Some(size);
                let record = vp8::config_record(size.0, size.1);
                out.push(
                    Frame::new(
                        FrameKind::VideoConfig,
                        ms,
                        ms,
                        Bytes::copy_from_slice(&record),
                    )
                    .with_codec(Codec::Vp8),
                );
            }
        }
        if self.vp8_size.is_some() {
            // Not `Frame::video`, which reads H.264 headers for disposability.
            let mut f =
                Frame::new(FrameKind::Video, ms, ms, frame.data.clone()).with_codec(Codec::Vp8);
            f.keyframe = keyframe;
            out.push(f);
        }
        out
    }

    fn h264(&mut self, ms: i64, frame: &MediaFrame) -> Vec<Frame> {
        let mut out = Vec::with_capacity(2);
        let mut au = BytesMut::with_capacity(frame.data.len() + 16);
        let (mut sps, mut pps) = (None, None);
        for nal in avc::annexb_nalus(&frame.data) {
            let Some(&header) = nal.first() else { continue };
            match header & 0x1f {
                avc::NAL_SPS => sps = Some(Bytes::copy_from_slice(nal)),
                avc::NAL_PPS => pps = Some(Bytes::copy_from_slice(nal)),
                avc::NAL_AUD => {}
                _ => {
                    au.put_u32(nal.len() as u32);
                    au.put_slice(nal);
                }
            }
        }
        let changed = (sps.is_some() && sps != self.sps) || (pps.is_some() && pps != self.pps);
        if sps.is_some() {
            self.sps = sps;
        }
        if pps.is_some() {
            self.pps = pps;
        }
        if changed {
            if let (Some(s), Some(p)) = (&self.sps, &self.pps) {
                if let Ok(cfg) = AvcConfig::from_parameter_sets(vec![s.clone()], vec![p.clone()]) {
                    out.push(Frame::new(FrameKind::VideoConfig, ms, ms, cfg.to_record()));
                }
            }
        }
        if self.sps.is_some() && self.pps.is_some() && !au.is_empty() {
            let au = au.freeze();
            let keyframe = avc::has_idr(&au);
            out.push(Frame::video(ms, ms, keyframe, au));
        }
        out
    }

    pub fn has_video_config(&self) -> bool {
        (self.sps.is_some() && self.pps.is_some()) || self.vp8_size.is_some()
    }
}

/// One WHEP viewer's conversion state.
#[derive(Default)]
pub struct EgressState {
    parameter_sets: Option<Bytes>,
}

impl EgressState {
    /// The WebRTC payload for a hub frame, if WebRTC can carry it. The
    /// Annex B form of an H.264 frame is made once and shared by every
    /// WHEP viewer (the parameter sets in front of an IDR are the stream's,
    /// the same for all of them).
    pub fn convert(&mut self, frame: &Frame) -> Option<(RtcCodec, u64, Bytes)> {
        match (frame.kind, frame.codec) {
            (FrameKind::VideoConfig, Codec::H264) => {
                let cfg = AvcConfig::parse(&frame.data).ok()?;
                self.parameter_sets = Some(cfg.parameter_sets_annexb());
                None
            }
            (FrameKind::Video, Codec::H264) => {
                // Browsers need SPS/PPS in front of every IDR.
                let ps = if frame.keyframe {
                    Some(self.parameter_sets.clone()?)
                } else {
                    None
                };
                let au = frame.muxed(MuxFormat::AnnexB, |f| {
                    let ps = ps.as_deref().unwrap_or_default();
                    let mut au = BytesMut::with_capacity(f.data.len() + ps.len() + 16);
                    au.put_slice(ps);
                    avc::avcc_to_annexb(&f.data, &mut au);
                    au.freeze()
                });
                Some((RtcCodec::H264, rtp_time(frame.pts, 90), au))
            }
            (FrameKind::Video, Codec::Vp8) => {
                Some((RtcCodec::Vp8, rtp_time(frame.pts, 90), frame.data.clone()))
            }
            (FrameKind::Audio, Codec::Opus) => {
                Some((RtcCodec::Opus, rtp_time(frame.dts, 48), frame.data.clone()))
            }
            _ => None,
        }
    }
}

fn rtp_time(ms: i64, ticks_per_ms: u64) -> u64 {
    ms.max(0) as u64 * ticks_per_ms
}

/// Borrow form for `RtcHost::write_media`.
pub fn media_out(codec: RtcCodec, rtp_time: u64, data: &[u8]) -> MediaOut<'_> {
    MediaOut {
        codec,
        rtp_time,
        wallclock: Instant::now(),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use costream_rtc::{MediaKind, SenderClock};
    use std::time::Duration;

    fn frame(codec: RtcCodec, rtp: u64, arrival: Instant, sc: Option<SenderClock>) -> MediaFrame {
        let (kind, rate, data) = match codec {
            RtcCodec::Opus => (MediaKind::Audio, 48_000, Bytes::from_static(&[0xfc, 1])),
            _ => (
                MediaKind::Video,
                90_000,
                Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9a, 0x00]),
            ),
        };
        MediaFrame {
            kind,
            codec,
            rtp_time: rtp,
            clock_rate: rate,
            network_time: arrival,
            keyframe: false,
            contiguous: true,
            audio_level: None,
            rid: None,
            sender_clock: sc,
            data,
        }
    }

    #[test]
    fn sender_reports_put_both_tracks_on_the_publishers_clock() {
        let mut clock = IngestClock::default();
        let t0 = Instant::now();
        let ntp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        // Audio's RTP clock starts at 1000, video's at 5_000_000; the audio
        // packets arrive 80 ms late relative to video (a jitter buffer, say).
        let audio_sc = SenderClock {
            ntp_time: ntp,
            rtp_time: 1000,
        };
        let video_sc = SenderClock {
            ntp_time: ntp,
            rtp_time: 5_000_000,
        };
        let a = clock.convert(&frame(
            RtcCodec::Opus,
            1000,
            t0 + Duration::from_millis(80),
            Some(audio_sc),
        ));
        let a_ms = a.last().unwrap().dts;
        // Video captured 1 s after that audio frame (by the sender's clock).
        let v_rtp = 5_000_000 + 90_000;
        let mut f = frame(RtcCodec::H264, v_rtp, t0, Some(video_sc));
        f.data = Bytes::from_static(&[0, 0, 0, 1, 0x41, 0x9a, 0x00]);
        clock.sps = Some(Bytes::from_static(&[0x67]));
        clock.pps = Some(Bytes::from_static(&[0x68]));
        let v = clock.convert(&f);
        let v_ms = v.last().unwrap().dts;
        assert_eq!(v_ms - a_ms, 1000, "one second apart on the sender's clock");
        // Without sender reports, arrival times rule.
        let mut plain = IngestClock::default();
        let a = plain.convert(&frame(
            RtcCodec::Opus,
            1000,
            t0 + Duration::from_millis(80),
            None,
        ));
        assert_eq!(a.last().unwrap().dts, 0);
    }
}
