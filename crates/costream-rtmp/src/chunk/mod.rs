//! The RTMP chunk stream: messages are split into chunks of at most the
//! sender's chunk size, each prefixed by a (compressible) header, and chunks
//! of different chunk streams (csids) may interleave.

mod decoder;
mod encoder;

use bytes::Bytes;

pub use decoder::ChunkDecoder;
pub use encoder::{encode_message, encoded_len, write_message, ChunkEncoder};

/// Chunk size both sides start with.
pub const DEFAULT_CHUNK_SIZE: usize = 128;
/// Largest incoming chunk size a peer may set (larger is
/// [`ChunkError::ChunkSizeTooLarge`](crate::ChunkError::ChunkSizeTooLarge)).
pub const MAX_CHUNK_SIZE: usize = 16 << 20;
/// Default limit on one message's payload.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Most messages the decoder assembles at the same time.
pub const MAX_IN_FLIGHT_CHUNK_STREAMS: usize = 64;
/// Most chunk streams whose previous header the decoder remembers.
pub const MAX_TRACKED_CHUNK_STREAMS: usize = 256;
/// Smallest chunk stream id (0 and 1 select the longer header forms).
pub const MIN_CSID: u32 = 2;
/// Largest chunk stream id (3-byte basic header form).
pub const MAX_CSID: u32 = 65_599;

/// A timestamp field with this value means "see the 4-byte extended
/// timestamp".
pub(crate) const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

/// A complete, reassembled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream it arrived on.
    pub csid: u32,
    /// Absolute timestamp in milliseconds (wrapping).
    pub timestamp: u32,
    /// Message type id, see [`msg_type`](crate::msg_type).
    pub type_id: u8,
    /// Message stream id (0 for the NetConnection).
    pub stream_id: u32,
    pub payload: Bytes,
}
