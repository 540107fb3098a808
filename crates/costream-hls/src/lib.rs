//! HLS for costream: pure, sans-IO.
//!
//! - [`ts`]: an MPEG-TS muxer (ISO 13818-1) for hub H.264/AAC frames.
//! - [`segmenter`]: cuts a stream of hub frames into TS segments on keyframes.
//! - [`playlist`]: a live media playlist (RFC 8216) over a sliding window of
//!   segments, which also keeps the segments themselves.

pub mod crc;
pub mod playlist;
pub mod segmenter;
pub mod ts;

pub use playlist::Playlist;
pub use segmenter::{Segment, Segmenter, SegmenterConfig};
pub use ts::{TsError, TsMuxer};
