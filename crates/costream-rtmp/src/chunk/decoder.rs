//! Chunk stream decoding: reassembles messages from interleaved chunks.
//!
//! The decoder is incremental: it consumes headers only when complete, but
//! consumes chunk bodies as they arrive, so the caller's read buffer never
//! has to hold a whole (up to 16 MiB) chunk.

use std::collections::HashMap;

use bytes::{Buf, BytesMut};

use super::{
    RawMessage, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_MESSAGE_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE,
    MAX_IN_FLIGHT_CHUNK_STREAMS, MAX_TRACKED_CHUNK_STREAMS,
};
use crate::error::ChunkError;
use crate::message::msg_type;

/// Assembly buffers start at most this big and grow as data actually
/// arrives, so a header announcing 16 MiB does not reserve 16 MiB.
const INITIAL_ASSEMBLY_CAPACITY: usize = 256 << 10;

/// Per-chunk-stream memory of the previous header, which later compressed
/// headers (types 1–3) refer to.
#[derive(Debug, Default)]
struct ChunkStream {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Last timestamp field: the delta for types 1/2, the absolute value for
    /// type 0 (ffmpeg and librtmp both reuse it as the delta of a following
    /// type-3 message).
    ts_field: u32,
    /// Whether the last type 0/1/2 header used the extended timestamp.
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
    /// The message being assembled, if any.
    partial: Option<BytesMut>,
}

/// A parsed chunk header (basic + message header + extended timestamp).
#[derive(Debug)]
struct Header {
    /// Bytes the header occupies in the input.
    len: usize,
    fmt: u8,
    csid: u32,
    ts_field: u32,
    extended: bool,
    length: usize,
    type_id: u8,
    stream_id: u32,
}

/// The body of the current chunk still to be read.
#[derive(Debug, Clone, Copy)]
struct Body {
    csid: u32,
    remaining: usize,
}

/// Incoming chunk stream state.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: usize,
    max_message_size: usize,
    max_buffered: usize,
    streams: HashMap<u32, ChunkStream>,
    in_flight: usize,
    buffered: usize,
    body: Option<Body>,
    /// Whether the peer repeats the extended timestamp on type-3
    /// continuation chunks (spec, ffmpeg, librtmp do; some encoders do not).
    /// Learned from the first such chunk.
    repeats_extended: Option<bool>,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl ChunkDecoder {
    /// A decoder accepting messages of up to `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_size,
            // One maximal message plus plenty for interleaved small ones.
            max_buffered: max_message_size.saturating_mul(2),
            streams: HashMap::new(),
            in_flight: 0,
            buffered: 0,
            body: None,
            repeats_extended: None,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Sets the incoming chunk size (normally done automatically when a Set
    /// Chunk Size message is decoded).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        if size as usize > MAX_CHUNK_SIZE {
            return Err(ChunkError::ChunkSizeTooLarge(size));
        }
        self.chunk_size = size as usize;
        Ok(())
    }

    /// Consumes bytes from `input` until one message is complete (returned)
    /// or the input is exhausted (`Ok(None)`; call again with more data).
    /// Incomplete headers are left in `input`.
    ///
    /// Set Chunk Size and Abort messages are applied here, before the next
    /// chunk is parsed, and also returned. After an error the decoder is in
    /// an unspecified state and the connection should be closed.
    pub fn push(&mut self, input: &mut BytesMut) -> Result<Option<RawMessage>, ChunkError> {
        loop {
            if let Some(body) = self.body {
                if input.is_empty() {
                    return Ok(None);
                }
                if let Some(msg) = self.read_body(body, input)? {
                    return Ok(Some(msg));
                }
                continue;
            }
            let Some(header) = self.parse_header(input)? else {
                return Ok(None);
            };
            input.advance(header.len);
            if let Some(msg) = self.begin_chunk(header, input)? {
                return Ok(Some(msg));
            }
        }
    }

    fn read_body(
        &mut self,
        body: Body,
        input: &mut BytesMut,
    ) -> Result<Option<RawMessage>, ChunkError> {
        let n = body.remaining.min(input.len());
        let Some(partial) = self
            .streams
            .get_mut(&body.csid)
            .and_then(|s| s.partial.as_mut())
        else {
            // Unreachable by construction; recover by dropping the chunk.
            self.body = None;
            return Ok(None);
        };
        partial.extend_from_slice(&input[..n]);
        input.advance(n);
        self.buffered += n;
        if self.buffered > self.max_buffered {
            return Err(ChunkError::TooMuchBuffered);
        }
        let remaining = body.remaining - n;
        if remaining > 0 {
            self.body = Some(Body { remaining, ..body });
            return Ok(None);
        }
        self.body = None;
        self.finish_if_complete(body.csid)
    }

    fn parse_header(&mut self, input: &[u8]) -> Result<Option<Header>, ChunkError> {
        let mut c = Cursor { buf: input, pos: 0 };
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(None),
                }
            };
        }
        let b0 = need!(c.uint(1)) as u8;
        let fmt = b0 >> 6;
        let csid = match b0 & 0x3f {
            0 => 64 + need!(c.uint(1)),
            1 => {
                let lo = need!(c.uint(1));
                let hi = need!(c.uint(1));
                64 + lo + (hi << 8)
            }
            n => u32::from(n),
        };
        let prev = self.streams.get(&csid);
        if fmt >= 2 && prev.is_none() {
            return Err(ChunkError::MissingPreviousHeader(csid));
        }
        // Type 1 without a previous header happens in practice (librtmp
        // sends control messages that way); default to stream 0.
        let (prev_extended, prev_ts_field, continuing) = prev
            .map(|p| (p.extended, p.ts_field, p.partial.is_some()))
            .unwrap_or_default();
        let mut h = Header {
            len: 0,
            fmt,
            csid,
            ts_field: prev_ts_field,
            extended: prev_extended,
            length: prev.map_or(0, |p| p.length),
            type_id: prev.map_or(0, |p| p.type_id),
            stream_id: prev.map_or(0, |p| p.stream_id),
        };
        if fmt <= 2 {
            h.ts_field = need!(c.uint(3));
            if fmt <= 1 {
                h.length = need!(c.uint(3)) as usize;
                h.type_id = need!(c.uint(1)) as u8;
                if fmt == 0 {
                    h.stream_id = need!(c.u32_le());
                }
            }
            h.extended = h.ts_field == EXTENDED_TIMESTAMP;
            if h.extended {
                h.ts_field = need!(c.uint(4));
            }
        } else if prev_extended {
            match (continuing, self.repeats_extended) {
                (_, Some(false)) => {}
                (true, Some(true)) => {
                    need!(c.uint(4));
                }
                // A type-3 header starting a new message: the spec says the
                // extended timestamp (the delta) is present.
                (false, _) => h.ts_field = need!(c.uint(4)),
                (true, None) => {
                    let peek = need!(c.peek_u32());
                    let repeats = peek == prev_ts_field;
                    if repeats {
                        c.pos += 4;
                    }
                    self.repeats_extended = Some(repeats);
                }
            }
        }
        h.len = c.pos;
        Ok(Some(h))
    }

    fn begin_chunk(
        &mut self,
        h: Header,
        input: &mut BytesMut,
    ) -> Result<Option<RawMessage>, ChunkError> {
        if h.fmt != 3 {
            // A new header in the middle of a message: the peer abandoned it.
            self.discard_partial(h.csid);
        }
        if !self.streams.contains_key(&h.csid) && self.streams.len() >= MAX_TRACKED_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let stream = self.streams.entry(h.csid).or_default();
        let starting = stream.partial.is_none();
        match h.fmt {
            0 => stream.timestamp = h.ts_field,
            3 if !starting => {}
            _ => stream.timestamp = stream.timestamp.wrapping_add(h.ts_field),
        }
        if h.fmt != 3 {
            stream.extended = h.extended;
        }
        stream.ts_field = h.ts_field;
        stream.length = h.length;
        stream.type_id = h.type_id;
        stream.stream_id = h.stream_id;

        if starting {
            if h.length > self.max_message_size {
                return Err(ChunkError::MessageTooLarge {
                    size: h.length,
                    max: self.max_message_size,
                });
            }
            // Fast path: a message that fits in this chunk and is fully
            // buffered is split off without copying.
            if h.length <= self.chunk_size && input.len() >= h.length {
                let payload = input.split_to(h.length).freeze();
                let msg = RawMessage {
                    csid: h.csid,
                    timestamp: stream.timestamp,
                    type_id: stream.type_id,
                    stream_id: stream.stream_id,
                    payload,
                };
                self.apply_control(&msg)?;
                return Ok(Some(msg));
            }
            if self.in_flight >= MAX_IN_FLIGHT_CHUNK_STREAMS {
                return Err(ChunkError::TooManyChunkStreams);
            }
            stream.partial = Some(BytesMut::with_capacity(
                h.length.min(INITIAL_ASSEMBLY_CAPACITY),
            ));
            self.in_flight += 1;
        }
        let received = stream.partial.as_ref().map_or(0, BytesMut::len);
        let remaining = self.chunk_size.min(stream.length.saturating_sub(received));
        self.body = Some(Body {
            csid: h.csid,
            remaining,
        });
        if remaining == 0 {
            // Only reachable for a zero-length continuation; complete it.
            self.body = None;
            return self.finish_if_complete(h.csid);
        }
        Ok(None)
    }

    fn finish_if_complete(&mut self, csid: u32) -> Result<Option<RawMessage>, ChunkError> {
        let Some(stream) = self.streams.get_mut(&csid) else {
            return Ok(None);
        };
        let complete = stream
            .partial
            .as_ref()
            .is_some_and(|p| p.len() >= stream.length);
        if !complete {
            return Ok(None);
        }
        let Some(payload) = stream.partial.take() else {
            return Ok(None);
        };
        self.in_flight -= 1;
        self.buffered -= payload.len();
        let msg = RawMessage {
            csid,
            timestamp: stream.timestamp,
            type_id: stream.type_id,
            stream_id: stream.stream_id,
            payload: payload.freeze(),
        };
        self.apply_control(&msg)?;
        Ok(Some(msg))
    }

    fn discard_partial(&mut self, csid: u32) {
        if let Some(partial) = self.streams.get_mut(&csid).and_then(|s| s.partial.take()) {
            self.in_flight -= 1;
            self.buffered -= partial.len();
        }
    }

    /// Chunk-level control messages must take effect before the next chunk
    /// header is parsed, so the decoder handles them itself.
    fn apply_control(&mut self, msg: &RawMessage) -> Result<(), ChunkError> {
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let size =
                    be_u32(&msg.payload).ok_or(ChunkError::MalformedControl("Set Chunk Size"))?;
                self.set_chunk_size(size)
            }
            msg_type::ABORT => {
                let csid = be_u32(&msg.payload).ok_or(ChunkError::MalformedControl("Abort"))?;
                self.discard_partial(csid);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn be_u32(buf: &[u8]) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// Bounds-checked big-endian reads; `None` means "need more input".
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn uint(&mut self, n: usize) -> Option<u32> {
        let bytes = self.buf.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
    }

    fn u32_le(&mut self) -> Option<u32> {
        self.uint(4).map(u32::swap_bytes)
    }

    fn peek_u32(&self) -> Option<u32> {
        be_u32(self.buf.get(self.pos..)?)
    }
}

#[cfg(test)]
mod tests;
