//! Error types. Every error coming from peer data means "close the
//! connection": the state machines make no attempt to resynchronise.

use thiserror::Error;

/// The handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// C0/S0 carried a version other than 3 (6 would be RTMPE, anything
    /// else is usually not RTMP at all, e.g. an HTTP request).
    #[error("unsupported RTMP version {0} (only 3 is supported)")]
    UnsupportedVersion(u8),
}

/// The chunk stream is malformed or exceeds a limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChunkError {
    /// The peer asked for an incoming chunk size above
    /// [`MAX_CHUNK_SIZE`](crate::chunk::MAX_CHUNK_SIZE).
    #[error("peer chunk size {0} exceeds the maximum of 16 MiB")]
    ChunkSizeTooLarge(u32),
    /// The peer asked for a chunk size of 0.
    #[error("invalid chunk size {0}")]
    InvalidChunkSize(u32),
    /// A message header announced a length above the configured maximum.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    /// Too many chunk streams are tracked, or too many messages are being
    /// assembled at once.
    #[error("too many chunk streams")]
    TooManyChunkStreams,
    /// A type 2 or type 3 chunk header arrived on a chunk stream that never
    /// had a full header.
    #[error("chunk stream {0} refers to a previous header that was never sent")]
    MissingPreviousHeader(u32),
    /// The partially assembled messages together hold too many bytes.
    #[error("too many bytes buffered in partial messages")]
    TooMuchBuffered,
    /// A Set Chunk Size or Abort message is shorter than 4 bytes.
    #[error("malformed {0} message")]
    MalformedControl(&'static str),
}

/// AMF0 data could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AmfError {
    /// The data ends inside a value.
    #[error("AMF0 data ends unexpectedly")]
    UnexpectedEof,
    /// A type marker that AMF0 does not define.
    #[error("unknown AMF0 marker 0x{0:02x}")]
    UnknownMarker(u8),
    /// A defined marker this implementation does not decode (movie clip,
    /// reference, record set, AVM+ switch).
    #[error("unsupported AMF0 marker 0x{0:02x}")]
    UnsupportedMarker(u8),
    /// An object-end marker where a value was expected.
    #[error("unexpected AMF0 object-end marker")]
    UnexpectedObjectEnd,
    /// Objects/arrays nested deeper than [`MAX_DEPTH`](crate::amf0::MAX_DEPTH).
    #[error("AMF0 nesting deeper than {0}")]
    TooDeep(usize),
    /// More values than [`MAX_VALUES`](crate::amf0::MAX_VALUES) in one decode.
    #[error("more than {0} AMF0 values")]
    TooManyValues(usize),
}

/// A message payload does not match its type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// The payload is shorter than its type requires.
    #[error("message type {type_id} is truncated")]
    Truncated { type_id: u8 },
    /// The AMF body of a command or data message is malformed.
    #[error("invalid AMF in message type {type_id}: {source}")]
    Amf {
        type_id: u8,
        #[source]
        source: AmfError,
    },
    /// A command message whose first value is not a string.
    #[error("command message does not start with a command name")]
    MissingCommandName,
}

/// Errors returned by [`ServerSession`](crate::ServerSession) and
/// [`ClientSession`](crate::ClientSession).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The peer kept sending while the session waited for the application
    /// to decide on a connect/publish/play request.
    #[error("peer sent {0} bytes while a decision was pending")]
    InputOverflow(usize),
    /// `accept_*`/`reject_*` was called without a matching pending request.
    #[error("no pending {0} request to answer")]
    NoPendingRequest(&'static str),
    /// Media was sent by a client that is not publishing.
    #[error("the client is not publishing")]
    NotPublishing,
}
