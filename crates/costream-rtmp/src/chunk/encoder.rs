//! Chunk stream encoding.
//!
//! Every message is written as one type-0 chunk (full header, absolute
//! timestamp) followed by type-3 continuation chunks. Never using the
//! compressed type 1/2 headers costs a few bytes per message but makes the
//! encoding independent of what was previously sent on the connection: the
//! server encodes each media frame once and writes the same bytes to every
//! viewer.

use bytes::{BufMut, Bytes, BytesMut};

use super::{DEFAULT_CHUNK_SIZE, EXTENDED_TIMESTAMP, MAX_CHUNK_SIZE, MAX_CSID, MIN_CSID};

/// Outgoing chunking state: just the chunk size we announced to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEncoder {
    chunk_size: usize,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder with the protocol's initial chunk size (128).
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Changes the outgoing chunk size (clamped to 1..=16 MiB). Only call
    /// this right after a Set Chunk Size message has been written.
    pub fn set_chunk_size(&mut self, size: usize) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Encodes one message into a new buffer, see [`encode_message`].
    pub fn encode(
        &self,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> Bytes {
        encode_message(
            self.chunk_size,
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        )
    }

    /// Appends one encoded message to `out`, see [`write_message`].
    pub fn write(
        &self,
        out: &mut BytesMut,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        write_message(
            out,
            self.chunk_size,
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        );
    }
}

/// Encodes one message as chunks of `chunk_size` bytes: a type-0 first
/// chunk and type-3 continuations, with the extended timestamp (repeated on
/// every continuation) when `timestamp >= 0xFFFFFF`.
///
/// Allocates exactly once, with exact capacity. `csid` must be in
/// `2..=65599` and the payload shorter than 16 MiB (both clamped otherwise).
pub fn encode_message(
    chunk_size: usize,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(encoded_len(chunk_size, csid, timestamp, payload.len()));
    write_message(
        &mut out, chunk_size, csid, timestamp, type_id, stream_id, payload,
    );
    out.freeze()
}

/// Number of bytes [`encode_message`] produces.
pub fn encoded_len(chunk_size: usize, csid: u32, timestamp: u32, payload_len: usize) -> usize {
    let chunk_size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
    let chunks = payload_len.div_ceil(chunk_size).max(1);
    let ext = if timestamp >= EXTENDED_TIMESTAMP {
        4
    } else {
        0
    };
    let basic = basic_header_len(clamp_csid(csid));
    (basic + 11 + ext) + (chunks - 1) * (basic + ext) + payload_len
}

/// Appends the chunks of one message to `out` (see [`encode_message`]).
pub fn write_message(
    out: &mut BytesMut,
    chunk_size: usize,
    csid: u32,
    timestamp: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
) {
    debug_assert!((MIN_CSID..=MAX_CSID).contains(&csid), "csid {csid}");
    debug_assert!(payload.len() <= 0xFF_FFFF, "payload too large");
    let csid = clamp_csid(csid);
    let chunk_size = chunk_size.clamp(1, MAX_CHUNK_SIZE);
    let extended = timestamp >= EXTENDED_TIMESTAMP;
    out.reserve(encoded_len(chunk_size, csid, timestamp, payload.len()));

    put_basic_header(out, 0, csid);
    out.put_uint(u64::from(timestamp.min(EXTENDED_TIMESTAMP)), 3);
    out.put_uint(payload.len().min(0xFF_FFFF) as u64, 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
    if extended {
        out.put_u32(timestamp);
    }

    let mut chunks = payload.chunks(chunk_size);
    if let Some(first) = chunks.next() {
        out.put_slice(first);
    }
    for chunk in chunks {
        put_basic_header(out, 3, csid);
        // Spec and ffmpeg/librtmp: type-3 chunks repeat the extended
        // timestamp of the header they continue.
        if extended {
            out.put_u32(timestamp);
        }
        out.put_slice(chunk);
    }
}

fn clamp_csid(csid: u32) -> u32 {
    csid.clamp(MIN_CSID, MAX_CSID)
}

fn basic_header_len(csid: u32) -> usize {
    match csid {
        0..=63 => 1,
        64..=319 => 2,
        _ => 3,
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        0..=63 => out.put_u8(fmt | csid as u8),
        64..=319 => {
            out.put_u8(fmt);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            let id = csid - 64;
            out.put_u8(fmt | 1);
            out.put_u8((id & 0xff) as u8);
            out.put_u8((id >> 8) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_chunk_layout() {
        let bytes = encode_message(128, 3, 0x010203, 20, 1, b"abc");
        assert_eq!(
            &bytes[..],
            &[0x03, 0x01, 0x02, 0x03, 0, 0, 3, 20, 1, 0, 0, 0, b'a', b'b', b'c']
        );
        assert_eq!(bytes.len(), encoded_len(128, 3, 0x010203, 3));
    }

    #[test]
    fn continuation_chunks_and_extended_timestamp() {
        let payload: Vec<u8> = (0..10).collect();
        let bytes = encode_message(4, 6, 0x0100_0000, 9, 1, &payload);
        let mut expected = vec![0x06, 0xff, 0xff, 0xff, 0, 0, 10, 9, 1, 0, 0, 0, 1, 0, 0, 0];
        expected.extend_from_slice(&[0, 1, 2, 3]);
        expected.extend_from_slice(&[0xc6, 1, 0, 0, 0, 4, 5, 6, 7]);
        expected.extend_from_slice(&[0xc6, 1, 0, 0, 0, 8, 9]);
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(bytes.len(), encoded_len(4, 6, 0x0100_0000, 10));
    }

    #[test]
    fn timestamp_ffffff_is_extended() {
        let bytes = encode_message(128, 2, 0xFF_FFFF, 1, 0, &[]);
        assert_eq!(&bytes[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&bytes[12..16], &[0, 0xff, 0xff, 0xff]);
        assert_eq!(bytes.len(), 16);
    }

    #[test]
    fn basic_header_forms() {
        assert_eq!(&encode_message(128, 63, 0, 1, 0, &[])[..1], &[63]);
        assert_eq!(&encode_message(128, 64, 0, 1, 0, &[])[..2], &[0, 0]);
        assert_eq!(&encode_message(128, 319, 0, 1, 0, &[])[..2], &[0, 255]);
        assert_eq!(&encode_message(128, 320, 0, 1, 0, &[])[..3], &[1, 0, 1]);
        assert_eq!(
            &encode_message(128, 65_599, 0, 1, 0, &[])[..3],
            &[1, 255, 255]
        );
        for csid in [2, 63, 64, 319, 320, 65_599] {
            let bytes = encode_message(2, csid, 0, 1, 0, &[1, 2, 3]);
            assert_eq!(bytes.len(), encoded_len(2, csid, 0, 3));
        }
    }

    #[test]
    fn exact_capacity() {
        let payload = vec![7u8; 10_000];
        let bytes = encode_message(4096, 6, 5, 9, 1, &payload);
        assert_eq!(bytes.len(), 12 + 10_000 + 2);
        let mut out = BytesMut::with_capacity(bytes.len());
        write_message(&mut out, 4096, 6, 5, 9, 1, &payload);
        assert_eq!(out.capacity(), bytes.len());
        assert_eq!(out.freeze(), bytes);
    }

    #[test]
    fn encoder_uses_its_chunk_size() {
        let mut enc = ChunkEncoder::new();
        assert_eq!(enc.chunk_size(), 128);
        enc.set_chunk_size(0);
        assert_eq!(enc.chunk_size(), 1);
        enc.set_chunk_size(4096);
        let payload = vec![1u8; 5000];
        assert_eq!(
            enc.encode(4, 0, 8, 1, &payload),
            encode_message(4096, 4, 0, 8, 1, &payload)
        );
    }
}
