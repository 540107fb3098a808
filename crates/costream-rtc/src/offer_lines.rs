//! The m-lines of a session this side offers (a room participant's
//! subscriber connection): which publication each carries, which are
//! retired, and the `a=msid` each was offered with. The one place that
//! decides what a renegotiation adds and retires.
//!
//! Browsers refuse a whole offer in which two m-lines carry the same
//! `a=msid` stream and track ids ("Duplicate a=msid lines detected"), and
//! a retired (inactive) m-line keeps its msid in every later offer. So a
//! publication that comes back (a guest who publishes again, is accepted
//! again, or reloads) gets new m-lines with msids never used before in this
//! session: each publication added is numbered, and the number is part of
//! its stream id. Retired lines are not reused for another publication:
//! their SSRC and RTP clock belong to the publication they carried.

use str0m::media::{MediaKind, Mid};

/// Longest identity kept in an msid: RFC 8830 allows 64 characters in all,
/// and the publication number and track suffix must survive the cut.
const MAX_LABEL: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferLine {
    pub mid: Mid,
    pub kind: MediaKind,
    /// The `a=msid` stream id; audio and video of one publication share it.
    pub stream_id: String,
    pub track_id: String,
    /// Still carries its publication (not made inactive).
    pub live: bool,
}

#[derive(Debug, Default)]
pub struct OfferLines {
    lines: Vec<OfferLine>,
    publications: u64,
}

impl OfferLines {
    /// A stream id for a new publication labelled `label`, never used
    /// before in this session.
    pub fn new_stream_id(&mut self, label: &str) -> String {
        self.publications += 1;
        let base: String = label
            .chars()
            .filter(is_token_char)
            .take(MAX_LABEL)
            .collect();
        format!("{base}.{}", self.publications)
    }

    /// The track id of `kind` in the publication `stream_id`.
    pub fn track_id(stream_id: &str, kind: MediaKind) -> String {
        format!("{stream_id}-{}", if kind.is_audio() { "a" } else { "v" })
    }

    pub fn added(&mut self, mid: Mid, kind: MediaKind, stream_id: String) {
        let track_id = Self::track_id(&stream_id, kind);
        self.lines.push(OfferLine {
            mid,
            kind,
            stream_id,
            track_id,
            live: true,
        });
    }

    /// Marks `mid` retired; false when it is not a live line of this
    /// session (unknown, or retired already), which needs no change.
    pub fn retire(&mut self, mid: &str) -> bool {
        match self
            .lines
            .iter_mut()
            .find(|l| l.live && l.mid.to_string() == mid)
        {
            Some(line) => {
                line.live = false;
                true
            }
            None => false,
        }
    }

    pub fn lines(&self) -> &[OfferLine] {
        &self.lines
    }

    /// m-lines no publication uses any more.
    pub fn retired(&self) -> usize {
        self.lines.iter().filter(|l| !l.live).count()
    }
}

/// RFC 8830's token-char, as str0m filters msid ids.
fn is_token_char(c: &char) -> bool {
    let u = *c as u32;
    u == 0x21
        || (0x23..=0x27).contains(&u)
        || (0x2a..=0x2b).contains(&u)
        || (0x2d..=0x2e).contains(&u)
        || (0x30..=0x39).contains(&u)
        || (0x41..=0x5a).contains(&u)
        || (0x5e..0x7e).contains(&u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_that_comes_back_gets_new_ids() {
        let mut book = OfferLines::default();
        let mut mids = 0u32;
        let mut mid = || {
            mids += 1;
            Mid::from(mids.to_string().as_str())
        };
        for _ in 0..5 {
            let stream = book.new_stream_id("guest");
            book.added(mid(), MediaKind::Audio, stream.clone());
            book.added(mid(), MediaKind::Video, stream);
            let live: Vec<String> = book
                .lines()
                .iter()
                .filter(|l| l.live)
                .map(|l| l.mid.to_string())
                .collect();
            for m in live {
                assert!(book.retire(&m));
                assert!(!book.retire(&m), "retired twice");
            }
        }
        let mut pairs: Vec<_> = book
            .lines()
            .iter()
            .map(|l| (l.stream_id.clone(), l.track_id.clone()))
            .collect();
        assert_eq!(pairs.len(), 10);
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 10, "every m-line has its own msid");
        assert_eq!(book.retired(), 10);
        assert!(!book.retire("99"));
    }

    #[test]
    fn long_and_odd_labels_keep_their_number() {
        let mut book = OfferLines::default();
        let long = "x".repeat(200);
        let a = book.new_stream_id(&long);
        let b = book.new_stream_id(&long);
        assert_ne!(a, b);
        let track = OfferLines::track_id(&b, MediaKind::Video);
        assert!(track.len() <= 64, "{track}");
        assert_eq!(book.new_stream_id("a b/c"), "abc.3");
    }
}
