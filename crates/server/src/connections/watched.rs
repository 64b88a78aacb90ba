//! A socket that reports its reads to the connection table: bytes arrived (a request is in progress),
//! or a read would block (nothing more is waiting). Writes pass through untouched.
//!
//! The first bytes also tell the protocol: the HTTP/2 preface makes the connection multiplexed, whose
//! reads no longer mark it busy (see the module above). Until the bytes read could still be the start
//! of the preface, they mark nothing either, so a client that sends `PRI` and stalls stays quiet.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Conn;

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
    protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes read, all of them the start of the preface.
    Undecided(usize),
    Http1,
    Http2,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, conn: Arc<Conn>) -> Watched<S> {
        Watched {
            inner,
            conn,
            protocol: Protocol::Undecided(0),
        }
    }
}

impl Protocol {
    /// Follows the preface through `bytes`, the next ones read.
    fn after(self, bytes: &[u8]) -> Protocol {
        let Protocol::Undecided(seen) = self else {
            return self;
        };
        let expected = &PREFACE[seen..];
        let n = bytes.len().min(expected.len());
        if bytes[..n] != expected[..n] {
            Protocol::Http1
        } else if seen + n == PREFACE.len() {
            Protocol::Http2
        } else {
            Protocol::Undecided(seen + n)
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        match &polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let this = &mut *self;
                this.protocol = this.protocol.after(&buf.filled()[before..]);
                if this.protocol == Protocol::Http1 {
                    this.conn.read_bytes();
                }
            }
            Poll::Pending => self.conn.read_would_block(),
            // End of stream or an error: the connection is ending, its slot goes with it.
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol_after(chunks: &[&[u8]]) -> Protocol {
        chunks
            .iter()
            .fold(Protocol::Undecided(0), |p, chunk| p.after(chunk))
    }

    #[test]
    fn preface_in_pieces_is_http2() {
        assert_eq!(
            protocol_after(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n\0\0"]),
            Protocol::Http2
        );
    }

    #[test]
    fn request_line_is_http1() {
        assert_eq!(
            protocol_after(&[b"POST /validate HTTP/1.1\r\n"]),
            Protocol::Http1
        );
        assert_eq!(protocol_after(&[b"PR", b"IX"]), Protocol::Http1);
    }

    #[test]
    fn start_of_preface_is_undecided() {
        assert_eq!(protocol_after(&[b"PRI"]), Protocol::Undecided(3));
    }
}
