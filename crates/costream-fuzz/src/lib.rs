//! Fuzz target bodies: one `pub fn <target>(data: &[u8])` per parser of
//! network input. Each drives the parser the way the server does and must
//! not panic on any input; a panic (or an assertion here) is a bug found.
//!
//! libFuzzer runs them from `fuzz/fuzz_targets/` (see `scripts/fuzz`);
//! `tests/replay.rs` replays every corpus and regression file on stable.
//!
//! Inputs are raw bytes. Where a target needs a few choices (which side of
//! a connection, read sizes) it takes them from the first byte(s), so the
//! rest stays the bytes a peer would send.

mod media;
mod rtmp;

#[cfg(feature = "full")]
mod audio;
#[cfg(feature = "full")]
mod rtc;
#[cfg(feature = "full")]
mod signaling;
#[cfg(feature = "full")]
mod tokens;

pub use media::{flv, h264};
pub use rtmp::{amf0, rtmp};

#[cfg(feature = "full")]
pub use audio::aac;
#[cfg(feature = "full")]
pub use rtc::{rtc_packets, sdp};
#[cfg(feature = "full")]
pub use signaling::signaling;
#[cfg(feature = "full")]
pub use tokens::{api_key, tokens};

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/` call it.
pub const TARGETS: &[(&str, Target)] = &[
    ("rtmp", rtmp),
    ("amf0", amf0),
    ("flv", flv),
    ("h264", h264),
    #[cfg(feature = "full")]
    ("aac", aac),
    #[cfg(feature = "full")]
    ("sdp", sdp),
    #[cfg(feature = "full")]
    ("rtc_packets", rtc_packets),
    #[cfg(feature = "full")]
    ("signaling", signaling),
    #[cfg(feature = "full")]
    ("tokens", tokens),
];

/// Reads the fuzzer's choices off the front of an input; past its end
/// every read gives zeros (or nothing), so any input is usable.
pub(crate) struct Input<'a>(&'a [u8]);

// Some readers serve only the targets behind the `full` feature.
#[cfg_attr(not(feature = "full"), allow(dead_code))]
impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input(data)
    }

    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn rest(self) -> &'a [u8] {
        self.0
    }
}

/// A socket read size from one byte: 1 to 4081 bytes, small ones likely,
/// so messages get split at every boundary.
pub(crate) fn read_size(b: u8) -> usize {
    match b {
        0 => 4096,
        1..=127 => usize::from(b),
        _ => usize::from(b - 127) * 32,
    }
}
