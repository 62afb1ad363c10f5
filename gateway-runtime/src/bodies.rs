//! Reading a streamed body whole, up to a limit, without losing it when it turns out larger.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};

/// What reading up to a limit found.
pub enum UpTo {
    /// The whole body.
    Whole(Bytes),
    /// The body is larger than the limit (or has trailers): everything read so far, then the rest, as one body
    /// again.
    Larger(Body),
    /// The body failed (the upstream broke off, or went quiet).
    Failed(axum::Error),
}

/// Reads `body` whole if it is at most `limit` bytes.
pub async fn read_up_to(mut body: Body, limit: u64) -> UpTo {
    if body.size_hint().lower() > limit {
        return UpTo::Larger(body);
    }
    let mut read: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut total: u64 = 0;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => break,
            Some(Err(err)) => return UpTo::Failed(err),
            Some(Ok(frame)) => {
                let trailers = !frame.is_data();
                total += frame.data_ref().map_or(0, |d| d.len() as u64);
                read.push_back(frame);
                if total > limit || trailers {
                    return UpTo::Larger(Body::new(Replay { read, rest: body }));
                }
            }
        }
    }
    let mut chunks = read.into_iter().filter_map(|f| f.into_data().ok());
    UpTo::Whole(match (chunks.next(), chunks.next()) {
        (None, _) => Bytes::new(),
        (Some(only), None) => only,
        (Some(first), Some(second)) => {
            let mut whole = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
            for chunk in [first, second].into_iter().chain(chunks) {
                whole.extend_from_slice(&chunk);
            }
            whole.freeze()
        }
    })
}

/// The frames already read, then the rest of the body.
struct Replay {
    read: VecDeque<Frame<Bytes>>,
    rest: Body,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(frame) = self.read.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.is_empty() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .read
            .iter()
            .map(|f| f.data_ref().map_or(0, |d| d.len() as u64))
            .sum();
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + read);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + read);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    /// A body of several data frames.
    fn chunked(chunks: &[&'static str]) -> Body {
        Body::new(Replay {
            read: chunks
                .iter()
                .map(|c| Frame::data(Bytes::from_static(c.as_bytes())))
                .collect(),
            rest: Body::empty(),
        })
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole() {
        match read_up_to(chunked(&["hel", "lo"]), 10).await {
            UpTo::Whole(bytes) => assert_eq!(bytes, "hello"),
            _ => panic!("expected the whole body"),
        }
    }

    #[tokio::test]
    async fn larger_bodies_are_replayed_in_full() {
        match read_up_to(chunked(&["hello", " ", "world"]), 4).await {
            UpTo::Larger(body) => {
                let bytes = body.collect().await.expect("body").to_bytes();
                assert_eq!(bytes, "hello world");
            }
            _ => panic!("expected a larger body"),
        }
    }
}
