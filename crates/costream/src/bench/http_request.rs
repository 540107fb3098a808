//! A minimal HTTP/1.1 client for the WHIP/WHEP signalling requests: one
//! request per connection (`Connection: close`), the whole response read
//! into memory with hard limits on the head and body, since the answer
//! comes from the server under test and is not trusted.

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::ChunkedDecoder;

/// Most bytes of a response head (status line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// Most bytes of a response body: an SDP answer is a few kilobytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Headers parsed per response.
const MAX_HEADERS: usize = 64;

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The reason phrase, control characters removed, for error messages.
    pub reason: String,
    pub location: Option<String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// `"404 Not Found: stream live/x is not live"`: for error reports.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(200)]);
        let body: String = body.chars().filter(|c| !c.is_control()).collect();
        if body.is_empty() {
            format!("{} {}", self.status, self.reason)
        } else {
            format!("{} {}: {body}", self.status, self.reason)
        }
    }
}

/// How the body is delimited.
enum Framing {
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Sends one request to `addr` and reads the whole response. `host` is the
/// Host header, `target` the path and query; `content_type` is sent with
/// a body. Callers bound the time with a timeout.
pub async fn request(
    addr: SocketAddr,
    host: &str,
    method: &str,
    target: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: &[u8],
) -> anyhow::Result<HttpResponse> {
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|e| anyhow!("connect to {addr}: {e}"))?;
    sock.set_nodelay(true)?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: costream-bench\r\n\
         Connection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(auth) = authorization {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    sock.write_all(&out)
        .await
        .map_err(|e| anyhow!("send {method} request: {e}"))?;

    let mut buf = Vec::with_capacity(4096);
    let (mut response, framing, head_len) = loop {
        if read_more(&mut sock, &mut buf, MAX_HEAD).await? == 0 {
            bail!("connection closed before the response header");
        }
        if let Some(parsed) = parse_head(&buf)? {
            break parsed;
        }
        if buf.len() >= MAX_HEAD {
            bail!("response header larger than {MAX_HEAD} bytes");
        }
    };
    let mut body = buf.split_off(head_len);
    response.body = match framing {
        Framing::Length(len) => {
            if len > MAX_BODY {
                bail!("response body of {len} bytes (at most {MAX_BODY} accepted)");
            }
            while body.len() < len {
                if read_more(&mut sock, &mut body, len).await? == 0 {
                    bail!(
                        "connection closed {} bytes into a {len}-byte body",
                        body.len()
                    );
                }
            }
            body.truncate(len);
            body
        }
        Framing::Chunked(mut decoder) => {
            let mut decoded = decoder.decode_in_place(&mut body)?;
            body.truncate(decoded);
            while !decoder.is_done() {
                // Room for framing on top of the largest accepted body.
                if read_more(&mut sock, &mut body, MAX_BODY + 4096).await? == 0 {
                    bail!("connection closed inside a chunked body");
                }
                decoded += decoder.decode_in_place(&mut body[decoded..])?;
                body.truncate(decoded);
                if decoded > MAX_BODY {
                    bail!("response body larger than {MAX_BODY} bytes");
                }
            }
            body
        }
        Framing::UntilClose => {
            while read_more(&mut sock, &mut body, MAX_BODY + 1).await? > 0 {}
            if body.len() > MAX_BODY {
                bail!("response body larger than {MAX_BODY} bytes");
            }
            body
        }
    };
    Ok(response)
}

/// Reads once into `buf`, never growing it past `limit` bytes (an error
/// when it is already full); 0 at end of stream.
async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> anyhow::Result<usize> {
    let room = limit.saturating_sub(buf.len());
    if room == 0 {
        bail!("response larger than {limit} bytes");
    }
    let before = buf.len();
    buf.resize(before + room.min(16 * 1024), 0);
    let n = sock.read(&mut buf[before..]).await;
    buf.truncate(before + *n.as_ref().unwrap_or(&0));
    n.map_err(|e| anyhow!("read response: {e}"))
}

/// The response head once `buf` holds all of it: the response (without
/// body), how the body is framed, and the head's length.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(HttpResponse, Framing, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(buf).context("malformed HTTP response")? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = parsed.code.context("HTTP response without a status")?;
    let reason: String = parsed
        .reason
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let mut location = None;
    let mut length = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
        if h.name.eq_ignore_ascii_case("location") {
            location = Some(value.to_owned());
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .ok()
                    .context("bad Content-Length in the response")?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or_default().trim();
            if !last.eq_ignore_ascii_case("chunked") {
                bail!("unsupported Transfer-Encoding in the response");
            }
            chunked = true;
        }
    }
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked(ChunkedDecoder::new()),
        // No body, whatever the headers say.
        _ if status == 204 || status == 304 || (100..200).contains(&status) => Framing::Length(0),
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    };
    let response = HttpResponse {
        status,
        reason,
        location,
        body: Vec::new(),
    };
    Ok(Some((response, framing, head_len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot server answering with `raw`; returns its address.
    async fn serve(raw: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let _ = s.read(&mut req).await;
            for piece in raw.chunks(7) {
                if s.write_all(piece).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    async fn get(raw: &[u8]) -> anyhow::Result<HttpResponse> {
        let addr = serve(raw.to_vec()).await;
        request(
            addr,
            "h",
            "POST",
            "/whep/a/b",
            Some("application/sdp"),
            None,
            b"v=0",
        )
        .await
    }

    #[tokio::test]
    async fn length_chunked_and_close_delimited_bodies() {
        let r = get(b"HTTP/1.1 201 Created\r\nLocation: /whep/a/b/7\r\nContent-Length: 5\r\n\r\nv=0\r\nextra")
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.location.as_deref()),
            (201, Some("/whep/a/b/7"))
        );
        assert_eq!(r.body, b"v=0\r\n");

        let r = get(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nv=0\r\n2;x\r\n\r\n\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(r.body, b"v=0\r\n");

        let r = get(b"HTTP/1.0 404 Not Found\r\n\r\nstream is not live")
            .await
            .unwrap();
        assert_eq!(r.describe(), "404 Not Found: stream is not live");
    }

    #[tokio::test]
    async fn hostile_responses_are_bounded() {
        let big = format!(
            "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(get(big.as_bytes()).await.is_err());
        let mut endless = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b'x', MAX_BODY + 10));
        assert!(get(&endless).await.is_err());
        let mut huge_head = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge_head.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        assert!(get(&huge_head).await.is_err());
        assert!(get(b"SSH-2.0-OpenSSH\r\n\r\n").await.is_err());
        assert!(get(b"HTTP/1.1 201 Created\r\nContent-Length: -3\r\n\r\n")
            .await
            .is_err());
        assert!(
            get(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\nv=0")
                .await
                .is_err()
        );
    }
}
