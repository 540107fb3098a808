//! A WebRTC viewer's video switch: paused by the bandwidth budget, and after
//! a resume or a change of encoding held until a keyframe (the frames
//! before it would not decode).

use costream_hub::{Frame, FrameKind};

#[derive(Debug, Default)]
pub(super) struct VideoGate {
    paused: bool,
    resync: bool,
}

impl VideoGate {
    /// Whether `frame` goes to the viewer. Audio always does.
    pub(super) fn admit(&mut self, frame: &Frame) -> bool {
        if frame.kind != FrameKind::Video {
            return true;
        }
        if self.paused {
            return false;
        }
        if self.resync {
            if !frame.keyframe {
                return false;
            }
            self.resync = false;
        }
        true
    }

    /// Pauses or resumes the video. True when it resumes: the publisher
    /// should be asked for the keyframe it now waits for.
    pub(super) fn set_paused(&mut self, paused: bool) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if !paused {
            self.resync = true;
        }
        !paused
    }

    /// The video restarts at the next keyframe (another encoding).
    pub(super) fn resync(&mut self) {
        self.resync = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn paused_video_resumes_at_a_keyframe_and_audio_always_passes() {
        let video = |key| Frame::video(0, 0, key, Bytes::from_static(&[0, 0, 0, 1, 0x41]));
        let audio = Frame::audio(0, Bytes::from_static(&[1]));
        let mut g = VideoGate::default();
        assert!(g.admit(&video(false)));
        assert!(!g.set_paused(true));
        assert!(!g.admit(&video(true)));
        assert!(g.admit(&audio));
        assert!(g.set_paused(false), "resuming wants a keyframe");
        assert!(!g.admit(&video(false)));
        assert!(g.admit(&video(true)));
        assert!(g.admit(&video(false)));
        g.resync();
        assert!(!g.admit(&video(false)));
    }
}
