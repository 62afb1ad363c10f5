//! The gateway's own keep-alive pool of HTTP/1.1 connections to one plain-`http` server, on hyper's
//! `client::conn::http1`: what nearly every proxied request goes through, so it does as little as it can.
//!
//! - **One pool per worker per server** (a shared one only when `max_connections` bounds the sockets): the lock
//!   around the idle list is only ever taken by one thread, so it never waits and its cache line never moves
//!   between cores.
//! - **LIFO reuse**: the connection used last is used next (its buffers and its socket are warm; the ones at the
//!   bottom age out). At most `max_idle` wait idle; more are closed as their exchanges end, and any idle longer
//!   than [`IDLE_TIMEOUT`] is closed when the pool is next used.
//! - **Checked in when the response body ends**, by the body itself ([`UpstreamBody`]), not by a task spawned per
//!   request as hyper-util's pool does; a body dropped before its end closes the connection (HTTP/1 cannot abandon
//!   a message half-read).
//! - A request that finds its reused connection closed before a byte of it was written (the server's keep-alive
//!   ran out) is sent again on the next connection: it never reached the server.
//! - A request that finds none idle connects, and takes whichever comes first: its new connection, or one another
//!   exchange hands back meanwhile. So a connect that stalls (a SYN dropped by a full accept queue costs a second)
//!   delays no request while others finish.
//!
//! `https` and HTTP/2 servers keep hyper-util's pool ([`super::connect::client`]), which this one replaces only
//! where it is the proxy's hot path.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::BoxError;
use super::connect::{ConnectTimeout, SocketLimit};
use super::hosts::Hosts;

/// How long a connection may wait idle before the pool closes it (hyper-util's default, which the `https` pools
/// keep too).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a pool's connections go: one fixed address (re-resolution found it), or the URL's host, resolved when a
/// connection is made (`--hosts` first).
#[derive(Debug, Clone)]
pub(super) enum Dial {
    Fixed(SocketAddr),
    Named {
        host: String,
        port: u16,
        hosts: Option<Hosts>,
    },
}

/// A pool of HTTP/1.1 connections to one server. Cheap to clone (shares the pool).
#[derive(Clone)]
pub(super) struct Http1Pool(Arc<Inner>);

impl fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Pool")
            .field("dial", &self.0.dial)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// Idle connections and the requests waiting for one.
    slots: Mutex<Slots>,
    max_idle: usize,
    dial: Dial,
    connect_timeout: Duration,
    limit: Option<SocketLimit>,
    handshake: http1::Builder,
}

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

#[derive(Default)]
struct Slots {
    /// Idle connections, the most recently used last.
    idle: Vec<Idle>,
    /// Requests connecting because none was idle, oldest first: a connection checked in goes to the first still
    /// waiting (the others gave up: their own connection came first).
    waiting: VecDeque<oneshot::Sender<http1::SendRequest<Body>>>,
}

/// Why a request got no response from the pool.
#[derive(Debug, thiserror::Error)]
pub(super) enum PoolError {
    /// No connection could be made: the address did not resolve, the connection was refused or timed out, or
    /// `max_connections` sockets stayed open.
    #[error("connecting failed: {0}")]
    Connect(BoxError),
    /// The exchange on the connection failed (it broke, the response was malformed, the request body failed).
    #[error(transparent)]
    Exchange(hyper::Error),
}

impl Http1Pool {
    pub(super) fn new(dial: Dial, connect_timeout: Duration, limit: Option<SocketLimit>, max_idle: usize) -> Self {
        let handshake = http1::Builder::new();
        Self(Arc::new(Inner {
            slots: Mutex::new(Slots::default()),
            max_idle,
            dial,
            connect_timeout,
            limit,
            handshake,
        }))
    }

    /// Sends `request` (its URI absolute or origin-form; it goes out in origin-form, with the `Host` header the
    /// caller set) on an idle connection, or a new one when none is idle.
    pub(super) async fn send(&self, mut request: Request<Body>) -> Result<Response<UpstreamBody>, PoolError> {
        origin_form(&mut request);
        loop {
            let (mut sender, reused) = match self.0.checkout() {
                Some(sender) => (sender, true),
                None => self.connect_or_lent().await?,
            };
            // The previous exchange's end may not have reached the connection's task yet.
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(self.attach(response, sender)),
                Err(mut err) => match err.take_message() {
                    // Never written: the connection was closing. The next one gets it (a new connection's
                    // failure is the answer: a request is not tried on connection after connection).
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(PoolError::Exchange(err.into_error())),
                },
            }
        }
    }

    /// A new connection, or one handed back by another exchange while it was being made, whichever comes first
    /// (the other is dropped: a connection half made is abandoned, a lent one goes to the next waiting request or
    /// back to idle). Whether it was lent (used before).
    async fn connect_or_lent(&self) -> Result<(http1::SendRequest<Body>, bool), PoolError> {
        let (tx, mut lent) = oneshot::channel();
        self.0.lock().waiting.push_back(tx);
        let connecting = self.0.connect();
        tokio::pin!(connecting);
        let made = tokio::select! {
            biased;
            made = &mut connecting => made,
            Ok(sender) = &mut lent => return Ok((sender, true)),
        };
        // One handed over just as the new one was made goes to the next request (or idle), not to waste.
        lent.close();
        if let Ok(extra) = lent.try_recv() {
            self.0.checkin(extra);
        }
        made.map(|sender| (sender, false))
    }

    /// The response, its body holding the connection until it ends; a `101` keeps none (the connection is the
    /// upgraded protocol's now).
    fn attach(&self, response: Response<Incoming>, sender: http1::SendRequest<Body>) -> Response<UpstreamBody> {
        let checkin = (response.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| Checkin {
            pool: Arc::clone(&self.0),
            sender,
        });
        response.map(|inner| UpstreamBody { inner, checkin })
    }

    /// Connections waiting idle now.
    #[cfg(test)]
    pub(super) fn idle(&self) -> usize {
        self.0.lock().idle.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        // A panic while holding the lock left the lists themselves intact (every operation on them is one call).
        self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently used idle connection still open and not expired; the expired ones are closed.
    fn checkout(&self) -> Option<http1::SendRequest<Body>> {
        let mut slots = self.lock();
        let now = Instant::now();
        expire(&mut slots.idle, now);
        while let Some(entry) = slots.idle.pop() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Hands a connection whose exchange ended to the first request still waiting for one, or puts it back on top
    /// of the idle ones, unless `max_idle` already wait.
    fn checkin(&self, mut sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut slots = self.lock();
        while let Some(waiting) = slots.waiting.pop_front() {
            match waiting.send(sender) {
                Ok(()) => return,
                // That request's own connection came first.
                Err(back) => sender = back,
            }
        }
        if slots.idle.len() < self.max_idle {
            slots.idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
        // Dropped beyond the bound (after the lock, below): its connection task closes the socket.
    }

    /// A new connection: a socket of the upstream's bound (when it has one), TCP within the connect timeout,
    /// `TCP_NODELAY`, the HTTP/1.1 handshake, and a task of its own that drives it until it closes.
    async fn connect(&self) -> Result<http1::SendRequest<Body>, PoolError> {
        let permit = match &self.limit {
            None => None,
            Some(limit) => Some(limit.acquire().await.map_err(|err| PoolError::Connect(err.into()))?),
        };
        let stream = match tokio::time::timeout(self.connect_timeout, dial(&self.dial)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(PoolError::Connect(err.into())),
            Err(_) => return Err(PoolError::Connect(ConnectTimeout(self.connect_timeout).into())),
        };
        // Requests are written whole; waiting for more data (Nagle) only adds latency.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = self
            .handshake
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|err| PoolError::Connect(err.into()))?;
        tokio::spawn(async move {
            // Held for the connection's life: it is one of the upstream's `max_connections` sockets.
            let _permit = permit;
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Drops the connections at the bottom (the least recently used) idle longer than [`IDLE_TIMEOUT`].
fn expire(idle: &mut Vec<Idle>, now: Instant) {
    let stale = idle
        .iter()
        .take_while(|entry| now.saturating_duration_since(entry.since) >= IDLE_TIMEOUT)
        .count();
    if stale > 0 {
        idle.drain(..stale);
    }
}

/// Rewrites an absolute URI to its path and query: what an HTTP/1.1 request to an origin server carries.
fn origin_form(request: &mut Request<Body>) {
    if request.uri().scheme().is_none() {
        return;
    }
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
}

/// A TCP connection to the server: its fixed address, or each address its host resolves to in turn.
async fn dial(dial: &Dial) -> io::Result<TcpStream> {
    let (host, port, hosts) = match dial {
        Dial::Fixed(addr) => return TcpStream::connect(*addr).await,
        Dial::Named { host, port, hosts } => (host.as_str(), *port, hosts.as_ref()),
    };
    let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else if let Some(ips) = hosts.and_then(|h| h.lookup(host)) {
        ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect()
    } else {
        tokio::net::lookup_host((host, port)).await?.collect()
    };
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("`{host}` resolved to no address"));
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// A connection lent to one exchange: back to its pool when the response body ends.
struct Checkin {
    pool: Arc<Inner>,
    sender: http1::SendRequest<Body>,
}

/// An upstream response body. From the gateway's own pool, it holds the connection until the body ends, then puts
/// it back; dropped before the end, it closes it.
pub(crate) struct UpstreamBody {
    inner: Incoming,
    checkin: Option<Checkin>,
}

impl UpstreamBody {
    /// A body from a pool that does its own reuse (hyper-util's).
    pub(super) fn unpooled(inner: Incoming) -> Self {
        Self { inner, checkin: None }
    }

    fn give_back(&mut self) {
        if let Some(Checkin { pool, sender }) = self.checkin.take() {
            pool.checkin(sender);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body with nothing left to read (no body at all, or read to its end) frees its connection.
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            // The last frame, or the end: the connection is free for the next request already.
            Poll::Ready(Some(Ok(_)) | None) if this.inner.is_end_stream() => this.give_back(),
            Poll::Ready(Some(Err(_))) => this.checkin = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.checkin.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    use http_body_util::BodyExt as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;

    /// An origin on 127.0.0.1 that answers every request head with `answer`, counting the connections it accepted;
    /// with `close_after`, it closes each connection after that many answers.
    async fn origin(answer: &'static [u8], close_after: Option<usize>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let mut answered = 0;
                    loop {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                            answered += 1;
                            if close_after == Some(answered) {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";

    fn pool(addr: SocketAddr, max_idle: usize) -> Http1Pool {
        Http1Pool::new(Dial::Fixed(addr), Duration::from_secs(2), None, max_idle)
    }

    fn get(addr: SocketAddr) -> Request<Body> {
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = format!("http://{addr}/x").parse().expect("uri");
        request
            .headers_mut()
            .insert(http::header::HOST, http::HeaderValue::from_static("origin.test"));
        request
    }

    async fn read(response: Response<UpstreamBody>) -> Bytes {
        response.into_body().collect().await.expect("body").to_bytes()
    }

    #[tokio::test]
    async fn one_connection_carries_requests_one_after_another() {
        let (addr, accepted) = origin(OK, None).await;
        let pool = pool(addr, 8);
        for _ in 0..5 {
            let response = pool.send(get(addr)).await.expect("answer");
            assert_eq!(response.status(), 200);
            assert_eq!(read(response).await, "hello");
        }
        assert_eq!(accepted.load(Relaxed), 1);
        assert_eq!(pool.idle(), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
        static LONG: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\npartial";
        let (addr, accepted) = origin(LONG, None).await;
        let pool = pool(addr, 8);
        let response = pool.send(get(addr)).await.expect("answer");
        drop(response);
        assert_eq!(pool.idle(), 0, "a half-read connection is not reused");
        let _second = pool.send(get(addr)).await.expect("answer");
        assert_eq!(accepted.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn a_request_on_a_connection_the_server_closed_goes_out_on_a_new_one() {
        let (addr, accepted) = origin(OK, Some(1)).await;
        let pool = pool(addr, 8);
        for _ in 0..3 {
            let response = pool.send(get(addr)).await.expect("answer");
            assert_eq!(read(response).await, "hello");
            // The server's close reaches the idle connection's task (bounded: a hang fails the test).
            tokio::time::timeout(Duration::from_secs(10), async {
                while !pool.0.lock().idle.iter().all(|idle| idle.sender.is_closed()) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .expect("the idle connection sees the server's close");
        }
        assert_eq!(accepted.load(Relaxed), 3);
    }

    #[tokio::test]
    async fn no_more_than_max_idle_connections_wait() {
        let (addr, accepted) = origin(OK, None).await;
        let pool = pool(addr, 2);
        let responses = futures_util::future::join_all((0..4).map(|_| pool.send(get(addr)))).await;
        for response in responses {
            assert_eq!(read(response.expect("answer")).await, "hello");
        }
        assert_eq!(accepted.load(Relaxed), 4, "four requests at once need four connections");
        assert_eq!(pool.idle(), 2);
    }

    #[tokio::test]
    async fn a_request_finding_no_connection_takes_one_handed_back_while_it_connects() {
        let (addr, accepted) = origin(OK, None).await;
        // One socket allowed: the second request's own connection cannot be made until the first one closes.
        let limit = SocketLimit {
            sockets: Arc::new(tokio::sync::Semaphore::new(1)),
            wait: Duration::from_secs(5),
        };
        let pool = Http1Pool::new(Dial::Fixed(addr), Duration::from_secs(2), Some(limit), 8);
        let first = pool.send(get(addr)).await.expect("answer");
        // Without the hand-over it would wait for a socket until the limit's wait ran out, and fail.
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { read(pool.send(get(addr)).await.expect("answer")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(read(first).await, "hello");
        let second = second.await.expect("join");
        assert_eq!(second, "hello");
        assert_eq!(
            accepted.load(Relaxed),
            1,
            "both requests went over the first connection"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let addr = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr")
        };
        let err = pool(addr, 2).send(get(addr)).await.expect_err("nothing listens");
        assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    }

    #[test]
    fn absolute_uris_go_out_in_origin_form() {
        let mut request = get("127.0.0.1:80".parse().expect("addr"));
        *request.uri_mut() = "http://127.0.0.1/a/b?c=d".parse().expect("uri");
        origin_form(&mut request);
        assert_eq!(request.uri(), "/a/b?c=d");
    }
}
