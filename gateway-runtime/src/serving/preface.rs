//! Which HTTP a client connection speaks, told from its first bytes: HTTP/2 opens with a fixed 24-byte preface
//! (prior knowledge on a plain listener, and after ALPN on TLS), anything else is HTTP/1.
//!
//! hyper-util's `auto` builder does the same, but hands the bytes it read back to hyper as a read of their own:
//! hyper then finds its 8 KiB buffer holding a partial head and doubles it, so every client connection kept a
//! 16 KiB read buffer. [`Replay`] gives the bytes back together with whatever else the socket already holds, in one
//! read. The sniffing also runs under the header timeout here, which `auto` could not give it: a client that
//! connected and sent nothing held its connection for ever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The client connection preface of HTTP/2 (RFC 9113, section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    Http2,
}

/// Reads from `io` until its first bytes tell the protocol: as soon as they leave the HTTP/2 preface (one read,
/// for every HTTP/1 request), or once the whole preface has come. A connection closed before then is HTTP/1: hyper
/// ends it quietly when nothing came, and as a malformed head (a debug log line) when part of a preface did.
pub(crate) async fn sniff<I: AsyncRead + Unpin>(mut io: I) -> io::Result<(Protocol, Replay<I>)> {
    let mut first = [0_u8; 24];
    let mut filled = 0;
    let protocol = loop {
        let n = io.read(&mut first[filled..]).await?;
        filled += n;
        if n == 0 || first[..filled] != H2_PREFACE[..filled] {
            break Protocol::Http1;
        }
        if filled == H2_PREFACE.len() {
            break Protocol::Http2;
        }
    };
    let replay = Replay {
        first,
        start: 0,
        end: filled,
        inner: io,
        error: None,
    };
    Ok((protocol, replay))
}

/// A connection with the bytes [`sniff`] read put back in front.
pub(crate) struct Replay<I> {
    first: [u8; 24],
    start: usize,
    end: usize,
    inner: I,
    /// An error of the read that followed the replayed bytes, returned by the next read.
    error: Option<io::Error>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            let n = (this.end - this.start).min(buf.remaining());
            buf.put_slice(&this.first[this.start..this.start + n]);
            this.start += n;
            if this.start == this.end && buf.remaining() > 0 {
                // The rest of what the client sent with its first bytes, in the same read: hyper sees the whole
                // head at once. Not ready yet is fine (the replayed bytes are this read's answer).
                if let Poll::Ready(Err(err)) = Pin::new(&mut this.inner).poll_read(cx, buf) {
                    this.error = Some(err);
                }
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = this.error.take() {
            return Poll::Ready(Err(err));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// `chunks` written by the client, in turn; what the server's side sniffs and then reads in its first read.
    async fn sniffed(chunks: &[&[u8]]) -> (Protocol, Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.expect("write");
                tokio::task::yield_now().await;
            }
            // Dropped: the server's side then reads the end of the stream after what was sent.
        });
        let (protocol, mut replay) = sniff(server).await.expect("sniff");
        writer.await.expect("writer");
        let mut first = vec![0_u8; 8192];
        let n = replay.read(&mut first).await.expect("first read");
        first.truncate(n);
        let mut rest = Vec::new();
        replay.read_to_end(&mut rest).await.expect("rest");
        (protocol, first, rest)
    }

    #[tokio::test]
    async fn an_http1_request_comes_back_whole_in_one_read() {
        let head = b"GET /pets/1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let (protocol, first, rest) = sniffed(&[head]).await;
        assert_eq!(protocol, Protocol::Http1);
        assert_eq!(
            first, head,
            "the sniffed bytes and the rest of the head in the first read"
        );
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn the_http2_preface_is_told_even_in_pieces_and_replayed() {
        let (protocol, first, rest) = sniffed(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n", b"\0\0\0\x04"]).await;
        assert_eq!(protocol, Protocol::Http2);
        let mut all = first;
        all.extend_from_slice(&rest);
        assert_eq!(&all[..24], H2_PREFACE);
        assert_eq!(&all[24..], b"\0\0\0\x04");
    }

    #[tokio::test]
    async fn a_request_that_starts_like_the_preface_is_http1() {
        let (protocol, first, rest) = sniffed(&[b"PRI", b"NT / HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(protocol, Protocol::Http1);
        let mut all = first;
        all.extend_from_slice(&rest);
        assert_eq!(all, b"PRINT / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn a_connection_closed_at_once_is_http1_with_nothing_to_read() {
        let (protocol, first, rest) = sniffed(&[]).await;
        assert_eq!((protocol, first.len(), rest.len()), (Protocol::Http1, 0, 0));
    }
}
