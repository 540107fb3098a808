//! A sans-IO, in-place decoder for HTTP/1.1 `Transfer-Encoding: chunked`
//! bodies (RFC 9112 §7.1).
//!
//! The decoder rewrites a buffer of received bytes so that only body bytes
//! remain, moving data over the chunk framing with `copy_within`: no second
//! buffer, no allocation. Partial chunk-size lines, extensions and trailers
//! are carried in the state, so input may be split anywhere. Every line is
//! bounded; anything malformed is an error (the connection is then useless).

use std::fmt;

/// Longest chunk-size line (digits, whitespace and extensions) accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Largest chunk size accepted (1 TiB: only a guard against overflow).
const MAX_CHUNK: u64 = 1 << 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedError(&'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed chunked body: {}", self.0)
    }
}

impl std::error::Error for ChunkedError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `line` counts the line's bytes so far.
    Size {
        value: u64,
        line: usize,
    },
    /// Whitespace after the size.
    SizeWs {
        value: u64,
        line: usize,
    },
    /// Skipping a chunk extension.
    Ext {
        value: u64,
        line: usize,
    },
    /// Got the CR ending the size line.
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart {
        total: usize,
    },
    TrailerLine {
        total: usize,
    },
    TrailerEndLf,
    Done,
}

/// Decodes one chunked body; see the module docs.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size { value: 0, line: 0 },
        }
    }

    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes all of `buf` (received bytes) in place and returns how many
    /// body bytes are now at its start; the caller truncates to that.
    /// Bytes after the end of the body are discarded.
    pub fn decode_in_place(&mut self, buf: &mut [u8]) -> Result<usize, ChunkedError> {
        let len = buf.len();
        let mut read = 0;
        let mut write = 0;
        while read < len {
            match self.state {
                State::Data { remaining } => {
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(len - read);
                    if write != read {
                        buf.copy_within(read..read + n, write);
                    }
                    read += n;
                    write += n;
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                }
                State::Done => break,
                _ => {
                    let b = buf[read];
                    read += 1;
                    self.step(b)?;
                }
            }
        }
        Ok(write)
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { value, line } => {
                let line = bounded_line(line)?;
                if let Some(d) = hex_digit(b) {
                    let value = value * 16 + u64::from(d);
                    if value > MAX_CHUNK {
                        return Err(ChunkedError("chunk size too large"));
                    }
                    State::Size { value, line }
                } else if line == 1 {
                    return Err(ChunkedError("chunk size is not hexadecimal"));
                } else {
                    match b {
                        b' ' | b'\t' => State::SizeWs { value, line },
                        b';' => State::Ext { value, line },
                        b'\r' => State::SizeLf { value },
                        _ => return Err(ChunkedError("chunk size is not hexadecimal")),
                    }
                }
            }
            State::SizeWs { value, line } => {
                let line = bounded_line(line)?;
                match b {
                    b' ' | b'\t' => State::SizeWs { value, line },
                    b';' => State::Ext { value, line },
                    b'\r' => State::SizeLf { value },
                    _ => return Err(ChunkedError("junk after chunk size")),
                }
            }
            State::Ext { value, line } => {
                let line = bounded_line(line)?;
                match b {
                    b'\r' => State::SizeLf { value },
                    b'\n' => return Err(ChunkedError("bare LF in chunk extension")),
                    _ => State::Ext { value, line },
                }
            }
            State::SizeLf { value } => match (b, value) {
                (b'\n', 0) => State::TrailerStart { total: 0 },
                (b'\n', remaining) => State::Data { remaining },
                _ => return Err(ChunkedError("chunk size line not ended by CRLF")),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(ChunkedError("chunk data not followed by CRLF")),
            },
            State::DataLf => match b {
                b'\n' => State::Size { value: 0, line: 0 },
                _ => return Err(ChunkedError("chunk data not followed by CRLF")),
            },
            State::TrailerStart { total } => match b {
                b'\r' => State::TrailerEndLf,
                _ => State::TrailerLine {
                    total: bounded_trailers(total)?,
                },
            },
            State::TrailerLine { total } => {
                let total = bounded_trailers(total)?;
                match b {
                    b'\n' => State::TrailerStart { total },
                    _ => State::TrailerLine { total },
                }
            }
            State::TrailerEndLf => match b {
                b'\n' => State::Done,
                _ => return Err(ChunkedError("trailers not ended by CRLF")),
            },
            // Handled by the caller.
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }
}

fn bounded_line(line: usize) -> Result<usize, ChunkedError> {
    if line >= MAX_LINE {
        Err(ChunkedError("chunk size line too long"))
    } else {
        Ok(line + 1)
    }
}

fn bounded_trailers(total: usize) -> Result<usize, ChunkedError> {
    if total >= MAX_TRAILERS {
        Err(ChunkedError("trailers too long"))
    } else {
        Ok(total + 1)
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `piece` bytes; returns the body and
    /// whether the end was seen.
    fn decode(input: &[u8], piece: usize) -> Result<(Vec<u8>, bool), ChunkedError> {
        let mut d = ChunkedDecoder::new();
        let mut body = Vec::new();
        for p in input.chunks(piece.max(1)) {
            let mut buf = p.to_vec();
            let n = d.decode_in_place(&mut buf)?;
            body.extend_from_slice(&buf[..n]);
        }
        Ok((body, d.is_done()))
    }

    const BODY: &[u8] =
        b"5\r\nhello\r\n1;name=value;x\r\n \r\nA  \r\n0123456789\r\n000\r\nTrailer: x\r\n\r\n";

    #[test]
    fn whole_and_split_at_every_size() {
        for piece in 1..=BODY.len() {
            let (body, done) = decode(BODY, piece).unwrap();
            assert_eq!(body, b"hello 0123456789", "piece {piece}");
            assert!(done);
        }
    }

    #[test]
    fn split_at_every_point() {
        for cut in 0..BODY.len() {
            let mut d = ChunkedDecoder::new();
            let mut a = BODY[..cut].to_vec();
            let mut b = BODY[cut..].to_vec();
            let na = d.decode_in_place(&mut a).unwrap();
            let nb = d.decode_in_place(&mut b).unwrap();
            let mut body = a[..na].to_vec();
            body.extend_from_slice(&b[..nb]);
            assert_eq!(body, b"hello 0123456789", "cut {cut}");
            assert!(d.is_done());
        }
    }

    #[test]
    fn incomplete_is_not_done_and_junk_after_end_is_ignored() {
        let (body, done) = decode(b"3\r\nabc\r\n4\r\nde", 100).unwrap();
        assert_eq!(body, b"abcde");
        assert!(!done);
        let (body, done) = decode(b"0\r\n\r\nGARBAGE", 3).unwrap();
        assert!(body.is_empty());
        assert!(done);
    }

    #[test]
    fn large_chunk_sizes() {
        let mut input = b"ffff\r\n".to_vec();
        input.extend_from_slice(&[7u8; 0xffff]);
        input.extend_from_slice(b"\r\n0\r\n\r\n");
        let (body, done) = decode(&input, 4096).unwrap();
        assert_eq!(body.len(), 0xffff);
        assert!(done);
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"\r\n",
            b"g\r\n",
            b"5 x\r\n",
            b"5\n",
            b"5\r\r",
            b"2\r\nabX\r\n",
            b"2\r\nab\rX",
            b"2;ext\n",
            b"0\r\n\r\r",
            b"1000000000000000000\r\n",
            b"fffffffffff\r\n",
        ] {
            assert!(
                decode(bad, 1).is_err(),
                "{:?}",
                bad.escape_ascii().to_string()
            );
            assert!(
                decode(bad, 64).is_err(),
                "{:?}",
                bad.escape_ascii().to_string()
            );
        }
    }

    #[test]
    fn lines_and_trailers_are_bounded() {
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(MAX_LINE + 10, b'a');
        assert!(decode(&long_ext, 1000).is_err());
        let mut long_trailer = b"0\r\n".to_vec();
        long_trailer.resize(MAX_TRAILERS + 10, b'a');
        assert!(decode(&long_trailer, 1000).is_err());
        // Leading zeros are fine, within the line bound.
        let (body, _) = decode(b"0000000000000000000001\r\nz\r\n", 5).unwrap();
        assert_eq!(body, b"z");
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..3000 {
            let mut input = Vec::new();
            for _ in 0..(round % 200) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias towards the interesting bytes.
                let b = match x % 8 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'0' + (x >> 8) as u8 % 10,
                    3 => b';',
                    _ => (x >> 16) as u8,
                };
                input.push(b);
            }
            let mut d = ChunkedDecoder::new();
            for piece in input.chunks(1 + round % 17) {
                let mut buf = piece.to_vec();
                match d.decode_in_place(&mut buf) {
                    Ok(n) => assert!(n <= buf.len()),
                    Err(_) => break,
                }
            }
        }
    }
}
