//! Small I/O helpers shared by the protocol edges.

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Buffers handed to one `writev`.
const MAX_IOV: usize = 64;

/// Sets a socket's kernel send buffer (best effort: a failure only costs latency).
pub fn set_send_buffer(socket: &TcpStream, bytes: usize) {
    if bytes > 0 {
        let _ = socket2::SockRef::from(socket).set_send_buffer_size(bytes);
    }
}

/// A client's connection as the protocol edges see it: plain TCP, or TLS
/// over TCP (HTTPS, RTMPS). The HTTP and RTMP code is generic over it.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The TCP socket underneath: addresses and socket options.
    fn tcp(&self) -> &TcpStream;

    /// Writes what the socket takes at once without waiting, or fails
    /// with `WouldBlock`. TLS has no such write (a record may be half
    /// sent): its streams keep this default, and [`write_viewer`] goes
    /// straight to its bounded wait.
    fn try_write_now(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let _ = bufs;
        Err(std::io::ErrorKind::WouldBlock.into())
    }
}

impl ClientStream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }

    #[inline]
    fn try_write_now(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        self.try_write_vectored(bufs)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Counts (and logs) a write to a `protocol` client that ran out of `limit`.
pub fn write_timed_out<S: ClientStream>(
    protocol: &'static str,
    socket: &S,
    limit: std::time::Duration,
) {
    let ip = socket.tcp().peer_addr().ok().map(|a| a.ip());
    crate::metrics::refused(
        protocol,
        "write_timeout",
        ip,
        format_args!("a write took over {limit:?}"),
    );
}

/// Writes every buffer to a viewer's socket, failing when what the socket
/// could not take at once needs longer than `limit`. Over TCP the common
/// case (the socket has room) completes in one non-blocking `writev`
/// without arming a timer.
pub async fn write_viewer<S: ClientStream>(
    socket: &mut S,
    bufs: &mut [Bytes],
    limit: std::time::Duration,
) -> std::io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = fill_iovecs(&mut slices, &bufs[first..]);
        match socket.try_write_now(&slices[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => first = advance(bufs, first, n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    if first == bufs.len() {
        return Ok(());
    }
    match tokio::time::timeout(limit, write_all_vectored(socket, &mut bufs[first..])).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("viewer could not keep up: a write took over {limit:?}"),
        )),
    }
}

/// Points `slices` at the first buffers; returns how many it filled.
fn fill_iovecs<'a>(slices: &mut [IoSlice<'a>; MAX_IOV], bufs: &'a [Bytes]) -> usize {
    let n = bufs.len().min(MAX_IOV);
    for (slot, b) in slices.iter_mut().zip(&bufs[..n]) {
        *slot = IoSlice::new(b);
    }
    n
}

/// Marks `n` written bytes from `bufs[first..]`; returns the new first index.
fn advance(bufs: &mut [Bytes], mut first: usize, mut n: usize) -> usize {
    while n > 0 && first < bufs.len() {
        let len = bufs[first].len();
        if n >= len {
            n -= len;
            bufs[first].clear();
            first += 1;
        } else {
            bufs[first].advance(n);
            n = 0;
        }
    }
    while first < bufs.len() && bufs[first].is_empty() {
        first += 1;
    }
    first
}

/// Writes every buffer with as few `writev` calls as the socket allows. The
/// buffers are shared frame bytes: nothing is copied into a staging buffer.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [Bytes],
) -> std::io::Result<()> {
    let mut first = 0;
    while first < bufs.len() {
        if bufs[first].is_empty() {
            first += 1;
            continue;
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let count = fill_iovecs(&mut slices, &bufs[first..]);
        let n = w.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        first = advance(bufs, first, n);
    }
    w.flush().await
}
