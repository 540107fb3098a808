//! A minimal HTTP/1.1 GET client for HTTP-FLV: one request, then the body
//! (chunked, Content-Length or until close) is decoded in place in one
//! reusable read buffer and split into FLV tags by [`FlvReader`].

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BytesMut};
use costream_flv::{FlvReader, TAG_AUDIO, TAG_VIDEO};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::ChunkedDecoder;
use super::url::BenchUrl;
use super::viewer::ViewerStats;
use super::{reserve_read_buffer, MAX_TAG_SIZE, READ_BUFFER};

/// Most bytes of a response head (status line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// How the response body is delimited.
#[derive(Debug)]
enum Body {
    Chunked(ChunkedDecoder),
    Length(u64),
    UntilClose,
}

/// What the response head says.
#[derive(Debug)]
struct Head {
    status: u16,
    status_line: String,
    body: Body,
}

/// Plays `url` over HTTP-FLV from `addr`, reporting into `stats`, until an
/// error, the end of the stream (an error too: a live stream should not
/// end), or with `until_first_video` the first video frame (`Ok`).
pub(crate) async fn play(
    addr: SocketAddr,
    url: &BenchUrl,
    stats: &mut ViewerStats,
    until_first_video: bool,
) -> anyhow::Result<()> {
    stats.start_connect();
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow!("connect: {e}"))?;
    sock.set_nodelay(true)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: costream-bench\r\nAccept: */*\r\n\r\n",
        url.request_target(),
        url.authority()
    );
    sock.write_all(request.as_bytes())
        .await
        .map_err(|e| anyhow!("send request: {e}"))?;

    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let head = loop {
        let n = sock
            .read_buf(&mut buf)
            .await
            .map_err(|e| anyhow!("read response: {e}"))?;
        stats.add_bytes(n);
        if n == 0 {
            bail!("connection closed before the response header");
        }
        if let Some(end) = find_head_end(&buf) {
            let head = parse_head(&buf[..end])?;
            buf.advance(end);
            break head;
        }
        if buf.len() > MAX_HEAD {
            bail!("response header larger than {MAX_HEAD} bytes");
        }
    };
    if head.status != 200 {
        bail!("HTTP status: {}", head.status_line);
    }
    stats.accepted(Instant::now());

    let mut body = head.body;
    let mut flv = FlvReader::new(MAX_TAG_SIZE);
    // buf[..decoded] is FLV data; the rest is as received.
    let mut decoded = 0;
    let mut now = Instant::now();
    loop {
        let ended = match &mut body {
            Body::Chunked(dec) => {
                let n = dec.decode_in_place(&mut buf[decoded..])?;
                buf.truncate(decoded + n);
                dec.is_done()
            }
            Body::Length(remaining) => {
                let fresh = (buf.len() - decoded) as u64;
                if fresh > *remaining {
                    buf.truncate(decoded + *remaining as usize);
                }
                *remaining -= fresh.min(*remaining);
                *remaining == 0
            }
            Body::UntilClose => false,
        };
        while let Some(tag) = flv.next_tag(&mut buf).map_err(|e| anyhow!("FLV: {e}"))? {
            let first_video = match tag.tag_type {
                TAG_VIDEO => stats.on_video(tag.timestamp, &tag.body, now),
                TAG_AUDIO => {
                    stats.on_audio(tag.timestamp, &tag.body, now);
                    false
                }
                _ => false,
            };
            if first_video && until_first_video {
                return Ok(());
            }
        }
        decoded = buf.len();
        if ended {
            bail!("the server ended the stream");
        }
        reserve_read_buffer(&mut buf);
        let n = sock
            .read_buf(&mut buf)
            .await
            .map_err(|e| anyhow!("read: {e}"))?;
        now = Instant::now();
        stats.add_bytes(n);
        if n == 0 {
            bail!("the server closed the connection");
        }
    }
}

/// The length of the head including its final CRLFCRLF.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_head(head: &[u8]) -> anyhow::Result<Head> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = printable(lines.next().unwrap_or_default());
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("not an HTTP/1.x response: {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // The last coding decides; anything else (gzip...) is unsupported.
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                bail!("unsupported Transfer-Encoding: {}", printable(value));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .with_context(|| format!("bad Content-Length {:?}", printable(value)))?,
            );
        }
    }
    let body = match (chunked, length) {
        (true, _) => Body::Chunked(ChunkedDecoder::new()),
        (false, Some(n)) => Body::Length(n),
        (false, None) => Body::UntilClose,
    };
    Ok(Head {
        status,
        status_line,
        body,
    })
}

/// At most 100 characters, control characters dropped: for error reports.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.status, 200);
        assert!(matches!(h.body, Body::Chunked(_)));
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 42\r\n\r\n").unwrap();
        assert!(matches!(h.body, Body::Length(42)));
        let h = parse_head(b"HTTP/1.1 404 Not Found\r\n\r\n").unwrap();
        assert_eq!(
            (h.status, h.status_line.as_str()),
            (404, "HTTP/1.1 404 Not Found")
        );
        assert!(matches!(h.body, Body::UntilClose));
        for bad in [
            &b"ICY 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r\nFLV"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 200 OK\r\n\r"), None);
    }

    #[test]
    fn printable_status() {
        assert_eq!(printable("a\u{1b}[31mb"), "a[31mb");
        assert_eq!(printable(&"x".repeat(500)).len(), 100);
    }
}
