//! What one client may take of the gateway before a request is even routed: header bytes and count, how long it may
//! take to send a head, how many connections the process holds, how many requests one connection carries, and the
//! HTTP/2 stream limits. Each has a default fit for an edge, set from the command line ([`crate::cli`]).
//!
//! The HTTP/1.1 limits are hyper's, configured here: a head larger than `max_header_bytes` or with more than
//! `max_headers` fields is answered `431` and the connection closed; a head not complete within `header_timeout` —
//! counted from when the connection is ready for the next request, so it also bounds an idle keep-alive connection —
//! closes it (slowloris). A new connection's first bytes (which tell HTTP/1 from HTTP/2) must come within
//! `header_timeout` too, before that count starts: a client that sends nothing is closed after one timeout, and its
//! first head may take up to two. Request smuggling is refused by hyper's parser (two different `Content-Length`s, a
//! `Transfer-Encoding` whose last coding is not `chunked`, obs-fold, bad chunk sizes: `400`); a request with both
//! `Content-Length` and `Transfer-Encoding: chunked` is read by the chunked framing alone, with the length dropped
//! before anything sees it, and its connection is closed after the response (RFC 9112 §6.3), so no byte of it can
//! be read as another request.
//!
//! HTTP/2 (h2c by prior knowledge on a plain listener) has its own: at most `h2_max_streams` concurrent streams,
//! a header list of at most `max_header_bytes`, and h2's defence against rapid reset (CVE-2023-44487): a client
//! that keeps opening and cancelling streams is sent `GOAWAY` (`ENHANCE_YOUR_CALM`) and cut off.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits of the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of a request head (request line and header fields): `431` beyond. At least 8 KiB.
    pub max_header_bytes: usize,
    /// The most header fields of a request: `431` beyond.
    pub max_headers: usize,
    /// How long a client has to send a complete request head, from when the connection can take one (so also
    /// how long an HTTP/1.1 connection may stay idle between requests).
    pub header_timeout: Duration,
    /// The most client connections the process holds; more wait in the listen backlog, not accepted.
    pub max_connections: Option<NonZeroUsize>,
    /// How long a request may wait for its response head after its head was read: `408` beyond; `None`: no bound
    /// but the targets' own.
    pub request_timeout: Option<Duration>,
    /// The most requests one HTTP/1.1 connection carries; the last one's response says `Connection: close`.
    pub max_requests_per_connection: Option<NonZeroU32>,
    /// HTTP/2: the most concurrent streams of a connection.
    pub h2_max_streams: u32,
}

impl Limits {
    /// 32 KiB of head (nginx allows 4 × 8 KiB buffers, Envoy 60 KiB).
    pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
    /// 100 fields (Envoy's default; nginx has no count limit).
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// 10 s to send a head (nginx: 60 s `client_header_timeout`; Envoy: none by default).
    pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// 5 minutes from a request's head to its response head (Envoy's `stream_idle_timeout` default; nginx bounds
    /// each body read by 60 s, `client_body_timeout`).
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
    /// 10,000 connections per process.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
    /// 10,000 requests per connection (nginx: 1,000 `keepalive_requests`; Envoy: unlimited).
    pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u32 = 10_000;
    /// 100 concurrent streams (nginx: 128; Envoy: 2^31 − 1).
    pub const DEFAULT_H2_MAX_STREAMS: u32 = 100;
    /// hyper's read buffer cannot be smaller.
    const MIN_HEADER_BYTES: usize = 8 * 1024;

    /// The connection builders: HTTP/1.1, and HTTP/2 for clients that open with its preface.
    pub(crate) fn builders(&self) -> Builders {
        let mut http1 = http1::Builder::new();
        http1
            .keep_alive(true)
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .max_headers(self.max_headers)
            .max_buf_size(self.max_header_bytes.max(Self::MIN_HEADER_BYTES));
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_streams)
            .max_header_list_size(u32::try_from(self.max_header_bytes).unwrap_or(u32::MAX))
            // h2's own defaults against rapid reset, stated here so that they are not lost: at most 20 streams
            // reset by the client before the server saw them, and 1,024 the server had to reset itself.
            .max_pending_accept_reset_streams(20)
            .max_local_error_reset_streams(1024);
        Builders {
            http1,
            http2,
            header_timeout: self.header_timeout,
        }
    }
}

/// How client connections are served, by the protocol they open with (see [`super::preface`]).
#[derive(Debug)]
pub(crate) struct Builders {
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
    /// Also bounds the wait for a connection's first bytes, before either builder has the connection.
    pub(crate) header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: Self::DEFAULT_MAX_HEADER_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            header_timeout: Self::DEFAULT_HEADER_TIMEOUT,
            max_connections: NonZeroUsize::new(Self::DEFAULT_MAX_CONNECTIONS),
            max_requests_per_connection: NonZeroU32::new(Self::DEFAULT_MAX_REQUESTS_PER_CONNECTION),
            h2_max_streams: Self::DEFAULT_H2_MAX_STREAMS,
            request_timeout: Some(Self::DEFAULT_REQUEST_TIMEOUT),
        }
    }
}

/// The process's connection slots, shared by every worker: a worker takes one before it accepts, so that a client
/// over the limit waits in the kernel's backlog instead of being accepted and dropped.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlots(Option<Arc<Semaphore>>);

impl ConnectionSlots {
    pub(crate) fn new(max: Option<NonZeroUsize>) -> Self {
        Self(max.map(|max| Arc::new(Semaphore::new(max.get().min(Semaphore::MAX_PERMITS)))))
    }

    /// A slot, once one is free; `None` without a limit.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        match &self.0 {
            // The semaphore is never closed.
            Some(slots) => Arc::clone(slots).acquire_owned().await.ok(),
            None => None,
        }
    }
}

/// The command-line flags of [`Limits`], flattened into the gateway's.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// The most bytes of a request head (request line and headers), at least 8KiB; `431` beyond.
    #[arg(long, env = "GATEWAY_MAX_HEADER_BYTES", default_value = "32KiB", value_parser = parse_size, value_name = "SIZE")]
    max_header_bytes: usize,

    /// The most header fields of a request; `431` beyond.
    #[arg(long, env = "GATEWAY_MAX_HEADERS", default_value_t = Limits::DEFAULT_MAX_HEADERS, value_name = "N")]
    max_headers: usize,

    /// How long a client may take to send a request head, and an HTTP/1.1 connection may stay idle between
    /// requests (e.g. 10s).
    #[arg(long, env = "GATEWAY_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    header_timeout: Duration,

    /// The most client connections the process holds (more wait in the listen backlog), or `off`.
    #[arg(long, env = "GATEWAY_MAX_CONNECTIONS", default_value = "10000", value_parser = parse_count, value_name = "N|off")]
    max_connections: Count,

    /// The most requests one connection carries before the gateway closes it (gracefully), or `off`.
    #[arg(long, env = "GATEWAY_MAX_REQUESTS_PER_CONNECTION", default_value = "10000", value_parser = parse_count, value_name = "N|off")]
    max_requests_per_connection: Count,

    /// How long a request may wait for its response head, from the moment its head was read (a slow body upload,
    /// a slow target): `408` beyond. Or `off`.
    #[arg(long, env = "GATEWAY_REQUEST_TIMEOUT", default_value = "5m", value_parser = parse_timeout, value_name = "DURATION|off")]
    request_timeout: Timeout,

    /// HTTP/2: the most concurrent streams of one connection.
    #[arg(long, env = "GATEWAY_H2_MAX_STREAMS", default_value_t = Limits::DEFAULT_H2_MAX_STREAMS, value_name = "N")]
    h2_max_streams: u32,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            header_timeout: self.header_timeout,
            max_connections: self
                .max_connections
                .0
                .and_then(|n| NonZeroUsize::new(usize::try_from(n).ok()?)),
            max_requests_per_connection: self
                .max_requests_per_connection
                .0
                .and_then(|n| NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX))),
            h2_max_streams: self.h2_max_streams,
            request_timeout: self.request_timeout.0,
        }
    }
}

/// A duration, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct Timeout(Option<Duration>);

fn parse_timeout(raw: &str) -> Result<Timeout, String> {
    match raw.trim() {
        "off" => Ok(Timeout(None)),
        text => parse_duration(text).map(|d| Timeout(Some(d))),
    }
}

/// A positive count, or `off` (`None`).
#[derive(Debug, Clone, Copy)]
struct Count(Option<u64>);

fn parse_count(raw: &str) -> Result<Count, String> {
    match raw.trim() {
        "off" => Ok(Count(None)),
        text => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Count(Some(n))),
            _ => Err(format!("expected a positive number or `off`, got `{raw}`")),
        },
    }
}

fn parse_size(raw: &str) -> Result<usize, String> {
    let size = raw
        .trim()
        .parse::<bytesize::ByteSize>()
        .map_err(|_| format!("expected a size like 32KiB or 65536, got `{raw}`"))?;
    let bytes = usize::try_from(size.as_u64()).map_err(|_| format!("`{raw}` is too large"))?;
    if bytes < Limits::MIN_HEADER_BYTES {
        return Err(format!("`{raw}` is below the smallest head limit, 8KiB"));
    }
    Ok(bytes)
}

/// A duration above zero (a zero timeout would close every connection at once).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    match super::cli::parse_duration(raw)? {
        d if d.is_zero() => Err("expected a duration above zero".to_owned()),
        d => Ok(d),
    }
}
