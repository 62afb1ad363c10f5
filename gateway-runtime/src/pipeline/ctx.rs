//! The per-request context: created once when a request arrives, read by every phase and by the response side.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher as _, Hasher as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::RawPathParams;
use bytes::BytesMut;
use http::{HeaderMap, HeaderName, HeaderValue, Method, request};

use crate::error::ErrorKind;
use crate::policies::auth::Caller;
use crate::policies::cors::CorsReply;
use crate::policies::throttle::Report;
use crate::spec::OperationSpec;
use crate::stage::ResolvedStage;

/// `X-Request-Id`, on every response and every upstream request.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming `X-Request-Id` that is kept.
const MAX_REQUEST_ID: usize = 128;

/// When and from where a request arrived: put into its extensions by the server, the one thing a request carries
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// When the request's head was read.
    pub at: Instant,
    /// The stage being served (resolved once at start-up and leaked for the process's lifetime, so that each
    /// request carries a pointer, not a reference count shared between cores).
    pub stage: Option<&'static ResolvedStage>,
    /// Whether the connection is TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The connection's verified client certificate (mutual TLS).
    pub client_cert: Option<std::sync::Arc<crate::serving::tls::ClientCert>>,
    /// The peer's address as `X-Forwarded-For` records it, made once per connection.
    pub forwarded_for: Option<http::HeaderValue>,
}

impl Arrival {
    /// The peer's address as `X-Forwarded-For` records it: IPv4 clients of dual-stack listeners (`::ffff:a.b.c.d`)
    /// as the address they actually have.
    pub fn forwarded_for(peer: SocketAddr) -> Option<http::HeaderValue> {
        http::HeaderValue::from_str(&peer.ip().to_canonical().to_string()).ok()
    }
}

/// How the response cache answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// From a stored response.
    Hit,
    /// From the target (and stored if it could be).
    Miss,
    /// The request is not one the operation caches (its method).
    Bypass,
}

impl CacheStatus {
    /// The `X-Cache` value.
    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Bypass => "BYPASS",
        })
    }
}

/// What the upstream exchange of a request was.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamCall {
    /// The upstream's name.
    pub name: &'static str,
    /// The server that gave the answer (or was tried last); `None` when no server could be tried.
    pub server: Option<&'static str>,
    /// Tries made: 1 without retries, 0 when no server could be tried.
    pub attempts: u32,
    /// When the request was sent.
    pub sent: Instant,
    /// From sending the request to receiving the response head (or failing), over every try.
    pub elapsed: Duration,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
}

/// Everything known about one request, from arrival to the last byte of the response head.
///
/// The access log, metrics and tracing read it when the request ends, for every request: operations, `404`s,
/// `405`s and the admin endpoints alike.
#[derive(Debug)]
pub struct RequestCtx {
    /// The request id: the client's `X-Request-Id` when well-formed, else a new one.
    pub request_id: HeaderValue,
    /// The request method.
    pub method: Method,
    /// When the request arrived.
    pub started: Instant,
    /// The connection's peer (absent only for requests that did not come through the server).
    pub client: Option<SocketAddr>,
    /// [`client`](Self::client) as `X-Forwarded-For` records it.
    pub forwarded_for: Option<http::HeaderValue>,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// The verified client certificate of the connection (mutual TLS).
    pub client_cert: Option<std::sync::Arc<crate::serving::tls::ClientCert>>,
    /// The API the request was for (its name; none when it matched no API of the gateway, or did not come through a
    /// router).
    pub api: Option<&'static str>,
    /// The operation matched (none for `404`, `405`, CORS preflights and admin requests).
    pub operation: Option<&'static OperationSpec>,
    /// The path captures (percent-decoded, with their segment suffixes; see [`RequestCtx::path_value`]).
    pub captures: Option<RawPathParams>,
    /// Where each path parameter lies in `captures`, for an operation with a segment of several parameters
    /// (`{name}.{ext}`); empty otherwise, when capture `i` is parameter `i` with its segment's suffix.
    pub(crate) path_spans: Vec<super::path::PathSpan>,
    /// The authenticated caller.
    pub caller: Option<Caller>,
    /// The limits the request went through, for the `RateLimit-*` headers.
    pub limits: Option<Report>,
    /// How the cache answered, for cached operations.
    pub cache: Option<CacheStatus>,
    /// The upstream exchange, for proxied requests.
    pub upstream: Option<UpstreamCall>,
    /// The request's W3C trace context, forwarded upstream: set on arrival when the gateway exports traces
    /// ([`crate::observe::otlp`]), else only for proxied requests, by the proxy.
    pub trace: Option<super::trace::TraceContext>,
    /// The kind of the gateway-made response, if the request ended in one.
    pub error: Option<ErrorKind>,
    /// What refined the error's kind, for metrics ([`crate::error::GatewayError::reason`]).
    pub reason: Option<&'static str>,
    /// The CORS headers the response gets, decided on arrival: operations with a CORS policy, and requests that
    /// match none in an API with one.
    pub cors: Option<CorsReply>,
    /// The stage being served, whose variables fill `{stage.X}` in templates (none without stages, and for a
    /// request that did not come through the server).
    pub stage: Option<&'static ResolvedStage>,
    /// The request's `Content-Length`, when it has a valid one (for the access log).
    pub bytes_in: Option<u64>,
    /// What shared limits charged in Redis at the throttle phase: enforced by the quota phase, given back if the
    /// request is refused before it. Boxed: most requests have none.
    pub charged: Option<Box<crate::policies::throttle::SharedCharge>>,
}

impl RequestCtx {
    /// The scheme the gateway was reached over, as upstreams are told in `X-Forwarded-Proto` (and the cache keys).
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The context of the request `parts`, matched to `operation`. The server records when and from where it
    /// arrived ([`Arrival`]); a request that did not come through the server arrived now, from nowhere.
    pub fn new(parts: &request::Parts, operation: Option<&'static OperationSpec>) -> Self {
        let arrival = parts.extensions.get::<Arrival>();
        Self {
            request_id: request_id(&parts.headers),
            method: parts.method.clone(),
            started: arrival.map_or_else(Instant::now, |a| a.at),
            client: arrival.map(|a| a.peer),
            forwarded_for: arrival.and_then(|a| a.forwarded_for.clone()),
            tls: arrival.is_some_and(|a| a.tls),
            client_cert: arrival.and_then(|a| a.client_cert.clone()),
            api: None,
            operation,
            captures: None,
            path_spans: Vec::new(),
            caller: None,
            limits: None,
            cache: None,
            upstream: None,
            // `None` at the cost of one thread-local look-up unless this worker exports traces.
            trace: crate::observe::otlp::trace_context(&parts.headers),
            error: None,
            reason: None,
            cors: None,
            stage: arrival.and_then(|a| a.stage),
            bytes_in: parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
            charged: None,
        }
    }

    /// Path parameter `i`'s value (without its segment's literals), once the route phase has run.
    pub fn path_value(&self, i: usize) -> Option<&str> {
        let captures = self.captures.as_ref()?;
        if !self.path_spans.is_empty() {
            let span = self.path_spans.get(i)?;
            let (_, value) = captures.iter().nth(span.capture)?;
            return value.get(span.range.clone());
        }
        let (_, value) = captures.iter().nth(i)?;
        let suffix = self
            .operation
            .and_then(|op| op.path_suffixes.get(i))
            .copied()
            .unwrap_or("");
        Some(value.strip_suffix(suffix).unwrap_or(value))
    }

    /// Every path parameter value, in template order.
    pub fn path_values(&self) -> Vec<&str> {
        let count = match &self.captures {
            None => 0,
            Some(_) if !self.path_spans.is_empty() => self.path_spans.len(),
            Some(captures) => captures.iter().count(),
        };
        (0..count).filter_map(|i| self.path_value(i)).collect()
    }
}

/// The client's request id if it is well-formed (1 to 128 visible ASCII characters), else a new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(&X_REQUEST_ID) {
        let bytes = given.as_bytes();
        if !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID && bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
            return given.clone();
        }
    }
    new_request_id()
}

/// Bytes of request ids written into one buffer before a new one is taken.
const ID_SLAB: usize = 16 * 1024;

/// One thread's request ids: a random prefix and a counter (unique without a lock or an atomic shared between
/// cores, unpredictable across processes and restarts), written into a shared buffer so that an id costs no
/// allocation of its own (the header value shares the buffer).
struct Ids {
    prefix: u64,
    counter: Cell<u64>,
    slab: RefCell<BytesMut>,
}

thread_local! {
    static IDS: Ids = Ids {
        prefix: random_u64(),
        counter: Cell::new(0),
        slab: RefCell::new(BytesMut::new()),
    };
}

fn random_u64() -> u64 {
    // `RandomState` keys come from the OS, once per thread: hashing anything with them gives a random value.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// A new request id: a UUID (version 8, RFC 9562 "custom") made of this thread's random prefix and its counter.
pub fn new_request_id() -> HeaderValue {
    IDS.with(|ids| {
        let n = ids.counter.get().wrapping_add(1);
        ids.counter.set(n);
        // Version 8 in bits 12..16 of the first half, the RFC 4122 variant in the top bits of the second.
        let high = (ids.prefix & !0xf000) | 0x8000;
        let low = (n & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid::Uuid::from_u64_pair(high, low).hyphenated().encode_lower(&mut buf);
        let mut slab = ids.slab.borrow_mut();
        if slab.capacity() - slab.len() < text.len() {
            *slab = BytesMut::with_capacity(ID_SLAB);
        }
        slab.extend_from_slice(text.as_bytes());
        HeaderValue::from_maybe_shared(slab.split().freeze()).unwrap_or_else(|_| HeaderValue::from_static("-"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("client-id-42"));
        assert_eq!(request_id(&headers), "client-id-42");
        for bad in ["", "has space", &"x".repeat(129)] {
            headers.insert(&X_REQUEST_ID, HeaderValue::from_str(bad).expect("header"));
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert!(uuid::Uuid::try_parse(id.to_str().expect("ascii")).is_ok(), "{id:?}");
        }
    }

    #[test]
    fn new_ids_are_distinct_uuids() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        let parsed = uuid::Uuid::try_parse(a.to_str().expect("ascii")).expect("a UUID");
        assert_eq!(parsed.get_version_num(), 8);
        // Across several buffers, every id is whole and distinct.
        let ids: std::collections::HashSet<HeaderValue> = (0..2_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 2_000);
        assert!(
            ids.iter()
                .all(|id| uuid::Uuid::try_parse(id.to_str().unwrap_or("")).is_ok())
        );
    }
}
