//! Small I/O helpers shared by the protocol edges.

/// Sets a socket's kernel send buffer (best effort: a failure only costs latency).
pub fn set_send_buffer(socket: &tokio::net::TcpStream, bytes: usize) {
    if bytes > 0 {
        let _ = socket2::SockRef::from(socket).set_send_buffer_size(bytes);
    }
}

use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes every buffer to a viewer's socket, failing after `limit` without
/// progress. The common case (the socket has room) completes in one
/// non-blocking `writev` without arming a timer.
pub async fn write_viewer(
    socket: &mut tokio::net::TcpStream,
    bufs: &mut [Bytes],
    limit: std::time::Duration,
) -> std::io::Result<()> {
    const MAX_IOV: usize = 64;
    let mut first = 0;
    while first < bufs.len() {
        let end = (first + MAX_IOV).min(bufs.len());
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        for (slot, b) in slices.iter_mut().zip(&bufs[first..end]) {
            *slot = IoSlice::new(b);
        }
        match socket.try_write_vectored(&slices[..end - first]) {
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
            format!("viewer accepted nothing for {limit:?}"),
        )),
    }
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
    const MAX_IOV: usize = 64;
    let mut first = 0;
    while first < bufs.len() {
        if bufs[first].is_empty() {
            first += 1;
            continue;
        }
        let end = (first + MAX_IOV).min(bufs.len());
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        for (slot, b) in slices.iter_mut().zip(&bufs[first..end]) {
            *slot = IoSlice::new(b);
        }
        let n = w.write_vectored(&slices[..end - first]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        first = advance(bufs, first, n);
    }
    w.flush().await
}
