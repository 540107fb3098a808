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
        let mut n = w.write_vectored(&slices[..end - first]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
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
    }
    w.flush().await
}
