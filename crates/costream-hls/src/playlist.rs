//! A live HLS media playlist (RFC 8216) over a sliding window of segments,
//! which also holds the segments for serving.

use std::collections::VecDeque;
use std::fmt::Write;

use bytes::Bytes;

use crate::segmenter::Segment;

/// Segments kept after they leave the listed window: a client that fetched
/// the playlist just before they left can still get them (RFC 8216 §6.2.2
/// asks for at least the playlist's duration; clients lag far less than that).
const EXTRA_KEPT: usize = 2;

/// The media playlist of one live stream.
#[derive(Debug)]
pub struct Playlist {
    window: usize,
    /// Oldest first; the last `window` are listed.
    segments: VecDeque<Segment>,
    /// `#EXT-X-DISCONTINUITY` tags of segments no longer kept.
    dropped_discontinuities: u64,
    /// Largest segment duration so far, in whole seconds rounded up: the
    /// target duration must never shrink (RFC 8216 §6.2.1).
    target_duration_s: u64,
    ended: bool,
    /// After [`Playlist::restart`]: the next segment's sequence number.
    resume_at: Option<u64>,
}

impl Default for Playlist {
    fn default() -> Self {
        Playlist::new(6)
    }
}

impl Playlist {
    /// A playlist listing the last `window` segments (at least 1).
    pub fn new(window: usize) -> Self {
        let window = window.max(1);
        Playlist {
            window,
            segments: VecDeque::with_capacity(window + EXTRA_KEPT + 1),
            dropped_discontinuities: 0,
            target_duration_s: 1,
            ended: false,
            resume_at: None,
        }
    }

    /// Adds the newest segment, returning the sequence number it is listed
    /// under. Sequence numbers must go up by one; a segment that breaks that
    /// (a new segmenter restarting at 0) is renumbered to follow on and
    /// flagged as a discontinuity. Pushing after [`end`](Self::end) reopens
    /// the playlist, also with a discontinuity.
    pub fn push(&mut self, mut segment: Segment) -> u64 {
        let next = self
            .segments
            .back()
            .map(|last| last.sequence + 1)
            .or_else(|| self.resume_at.take());
        if let Some(next) = next {
            if segment.sequence != next {
                segment.sequence = next;
                segment.discontinuity = true;
            }
        }
        if self.ended {
            self.ended = false;
            segment.discontinuity = true;
        }
        let seconds = segment.duration_ms.div_ceil(1000);
        self.target_duration_s = self.target_duration_s.max(seconds);
        let sequence = segment.sequence;
        self.segments.push_back(segment);
        while self.segments.len() > self.window + EXTRA_KEPT {
            if let Some(old) = self.segments.pop_front() {
                self.dropped_discontinuities += u64::from(old.discontinuity);
            }
        }
        sequence
    }

    /// The data of a segment still kept (listed, or just out of the window).
    pub fn get(&self, sequence: u64) -> Option<Bytes> {
        let first = self.segments.front()?.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        let segment = self.segments.get(index)?;
        (segment.sequence == sequence).then(|| segment.data.clone())
    }

    /// Marks the stream as ended: the playlist gets `#EXT-X-ENDLIST`.
    pub fn end(&mut self) {
        self.ended = true;
    }

    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// No segment yet: there is no playlist worth serving.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Forgets the listed segments, after a pause in segmenting: the next
    /// segment continues the numbering, marked as a discontinuity, so a
    /// player that comes back is not sent old media.
    pub fn restart(&mut self) {
        while let Some(old) = self.segments.pop_front() {
            self.dropped_discontinuities += u64::from(old.discontinuity);
            self.resume_at = Some(old.sequence + 1);
        }
    }

    /// The sequence number of the newest segment.
    pub fn last_sequence(&self) -> Option<u64> {
        self.segments.back().map(|s| s.sequence)
    }

    /// The playlist text, naming each segment with `segment_uri(sequence)`.
    pub fn render(&self, segment_uri: impl Fn(u64) -> String) -> String {
        let skipped = self.segments.len().saturating_sub(self.window);
        let listed = self.segments.iter().skip(skipped);
        let media_sequence = self.segments.get(skipped).map_or(0, |s| s.sequence);
        let discontinuity_sequence = self.dropped_discontinuities
            + self
                .segments
                .iter()
                .take(skipped)
                .filter(|s| s.discontinuity)
                .count() as u64;

        let mut out = String::with_capacity(128 + 64 * self.window);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
            self.target_duration_s, media_sequence
        );
        if discontinuity_sequence > 0 {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
            );
        }
        for segment in listed {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let ms = segment.duration_ms;
            let _ = write!(
                out,
                "#EXTINF:{}.{:03},\n{}\n",
                ms / 1000,
                ms % 1000,
                segment_uri(segment.sequence)
            );
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(sequence: u64, duration_ms: u64, discontinuity: bool) -> Segment {
        Segment {
            sequence,
            duration_ms,
            data: Bytes::from(format!("segment {sequence}")),
            discontinuity,
        }
    }

    fn uri(n: u64) -> String {
        format!("seg-{n}.ts")
    }

    #[test]
    fn window_and_endlist() {
        let mut p = Playlist::new(3);
        assert!(p.is_empty());
        for i in 0..5 {
            assert_eq!(p.push(seg(i, 2000 + i, false)), i);
        }
        p.end();
        assert_eq!(
            p.render(uri),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:2\n\
             #EXTINF:2.002,\nseg-2.ts\n#EXTINF:2.003,\nseg-3.ts\n#EXTINF:2.004,\nseg-4.ts\n\
             #EXT-X-ENDLIST\n"
        );
        assert_eq!(p.last_sequence(), Some(4));
    }

    #[test]
    fn restart_forgets_old_segments_and_continues_the_numbering() {
        let mut p = Playlist::new(3);
        for i in 0..4 {
            p.push(seg(i, 1000, false));
        }
        p.restart();
        assert!(p.is_empty());
        assert!(p.get(3).is_none());
        // A new segmenter numbers from 0 again.
        assert_eq!(p.push(seg(0, 1000, false)), 4);
        let text = p.render(uri);
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:4\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    }

    #[test]
    fn segments_outlive_the_window_briefly() {
        let mut p = Playlist::new(2);
        for i in 0..10 {
            p.push(seg(i, 1000, false));
        }
        // Listed: 8, 9; kept: 6..=9.
        assert!(p.get(5).is_none());
        assert_eq!(p.get(6), Some(Bytes::from("segment 6")));
        assert_eq!(p.get(9), Some(Bytes::from("segment 9")));
        assert!(p.get(10).is_none());
        assert!(p.render(uri).contains("#EXT-X-MEDIA-SEQUENCE:8\n"));
        assert!(!p.render(uri).contains("seg-7.ts"));
    }

    #[test]
    fn discontinuities() {
        let mut p = Playlist::new(2);
        p.push(seg(0, 2000, false));
        p.push(seg(1, 500, true));
        p.push(seg(2, 2000, false));
        let text = p.render(uri);
        assert!(!text.contains("seg-0.ts"), "out of the window");
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXTINF:0.500,\nseg-1.ts\n"));
        assert!(!text.contains("DISCONTINUITY-SEQUENCE"));
        p.push(seg(3, 2000, false));
        // Segment 1 left the window: its tag counts in the sequence.
        let text = p.render(uri);
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
        assert!(!text.contains("#EXT-X-DISCONTINUITY\n"));
        for i in 4..10 {
            p.push(seg(i, 2000, false));
        }
        assert!(p.render(uri).contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"));
    }

    #[test]
    fn restarts_are_renumbered_and_flagged() {
        let mut p = Playlist::new(6);
        p.push(seg(0, 2000, false));
        p.push(seg(1, 2000, false));
        p.end();
        // A new publisher's segmenter starts again at 0.
        assert_eq!(p.push(seg(0, 2000, false)), 2);
        assert!(!p.is_ended());
        let text = p.render(uri);
        assert!(text.ends_with("#EXT-X-DISCONTINUITY\n#EXTINF:2.000,\nseg-2.ts\n"));
        assert_eq!(p.get(2), Some(Bytes::from("segment 0")));
    }

    #[test]
    fn target_duration_never_shrinks() {
        let mut p = Playlist::new(1);
        assert!(p.render(uri).contains("#EXT-X-TARGETDURATION:1\n"));
        p.push(seg(0, 6001, false));
        p.push(seg(1, 2000, false));
        p.push(seg(2, 2000, false));
        p.push(seg(3, 2000, false));
        assert!(p.render(uri).contains("#EXT-X-TARGETDURATION:7\n"));
    }
}
