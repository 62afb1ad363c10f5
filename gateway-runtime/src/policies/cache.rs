//! The response cache, in front of the target.
//!
//! Responses are kept in one moka cache shared by every worker (TinyLFU admission, weighted by bytes, each entry
//! with the TTL of its operation). A stored body is a `Bytes`: a hit clones a reference, never the body.
//!
//! A miss is coalesced: while one request fetches a key, the others asking for it wait for that one answer
//! (moka's `or_try_insert_with`). Only a storable answer is shared. One that is not storable — a status not in
//! the operation's list, `Set-Cookie`, `Cache-Control: no-store`/`private`, a body over `max_entry` — goes to the
//! request that fetched it (streamed), and each waiter then fetches its own, so nothing meant for one caller is
//! ever given to another, and an upstream error is neither stored nor handed to the waiters.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{AGE, CACHE_CONTROL, CONTENT_LENGTH, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, request};
use http_body::Frame;
use http_body_util::BodyExt as _;
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;

use crate::error::GatewayError;
use crate::observe::metrics::CacheGauges;
use crate::pipeline::{CacheStatus, RequestCtx};
use crate::policies::auth::Caller;
use crate::shared::cache::SharedCache;
use crate::spec::{CacheKeyPart, CacheSettings, CacheSpec, Invalidate};
/// Bytes counted per entry on top of its body and headers (key, bookkeeping).
pub(crate) const ENTRY_OVERHEAD: u64 = 256;

/// A stored response.
#[derive(Debug)]
pub struct Cached {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When it was stored (by the replica that fetched it, for an entry from the shared layer).
    pub(crate) stored: Instant,
    /// How long after `stored` it expires.
    pub(crate) ttl: Duration,
    pub(crate) weight: u32,
}

/// Why a fetched response was not stored.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("response not storable")]
pub struct NotStored;

struct PerEntryTtl;

impl Expiry<Arc<str>, Arc<Cached>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Arc<str>, value: &Arc<Cached>, _now: Instant) -> Option<Duration> {
        // What is left of its TTL: an entry from the shared layer was stored a while ago, by another replica.
        Some(value.ttl.saturating_sub(value.stored.elapsed()))
    }
}

/// The shared response cache.
#[derive(Clone)]
pub struct ResponseCache {
    entries: Cache<Arc<str>, Arc<Cached>>,
    max_entry: u64,
    removals: Arc<Removals>,
    /// The layer shared with the API's other replicas in Redis, behind this one.
    shared: Option<SharedCache>,
}

/// Entries the cache removed on its own, for the metrics.
#[derive(Debug, Default)]
struct Removals {
    /// To make room.
    evicted: AtomicU64,
    /// Their TTL ran out.
    expired: AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// Entry count and resident size, for the admin endpoint and tests.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CacheStats {
    /// Stored responses.
    pub entries: u64,
    /// Their total weight in bytes.
    pub bytes: u64,
    /// The configured capacity in bytes.
    pub capacity: u64,
}

/// What the request looks like to the cache, read before the request is handed to the target.
pub struct Lookup {
    /// Made for every cached request; turned into the stored `Arc<str>` only when the response is stored.
    key: Option<String>,
    refresh: bool,
    head: bool,
}

impl ResponseCache {
    /// A cache of `settings.capacity` bytes.
    pub fn new(settings: CacheSettings) -> Self {
        let removals = Arc::new(Removals::default());
        let counted = Arc::clone(&removals);
        let entries = Cache::builder()
            .max_capacity(settings.capacity)
            .weigher(|_key: &Arc<str>, value: &Arc<Cached>| value.weight)
            .expire_after(PerEntryTtl)
            // Needed by the per-operation flush.
            .support_invalidation_closures()
            .eviction_listener(move |_key, _value, cause| match cause {
                RemovalCause::Size => {
                    counted.evicted.fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Expired => {
                    counted.expired.fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Self {
            entries,
            max_entry: settings.max_entry,
            removals,
            shared: None,
        }
    }

    /// The cache with `shared` behind it, following the flushes every replica publishes.
    #[must_use]
    pub fn with_shared(mut self, shared: SharedCache) -> Self {
        shared.listen(self.clone());
        self.shared = Some(shared);
        self
    }

    /// The metrics' gauges of a cache of `capacity` bytes: entries and bytes stored (as of the last maintenance),
    /// entries evicted for room and expired so far; read without waiting.
    pub fn gauges(&self, capacity: u64) -> CacheGauges {
        CacheGauges {
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
            capacity,
            evicted: self.removals.evicted.load(Ordering::Relaxed),
            expired: self.removals.expired.load(Ordering::Relaxed),
        }
    }

    /// Decides how `parts` is served under `policy`: its key (none when it is not cached), and whether it asks
    /// for a refresh it is allowed to force.
    pub fn lookup(&self, op_id: &str, policy: &CacheSpec, parts: &request::Parts, ctx: &RequestCtx) -> Lookup {
        let head = parts.method == Method::HEAD;
        let cached_method = policy.methods.contains(&parts.method) || (head && policy.methods.contains(&Method::GET));
        // A claim in the key that the caller's token does not carry (or a caller without a token) would key every
        // such caller to one entry: those requests are not cached at all.
        let token = ctx.caller.as_ref().and_then(|c| c.token.as_deref());
        let unfilled = policy.key.iter().any(|k| match k {
            CacheKeyPart::JwtClaim(name) => token.and_then(|t| t.claim(name)).is_none_or(serde_json::Value::is_null),
            _ => false,
        });
        if !cached_method || unfilled {
            return Lookup {
                key: None,
                refresh: false,
                head,
            };
        }
        let refresh = asks_refresh(&parts.headers)
            && match policy.invalidate {
                Invalidate::None => false,
                Invalidate::Any => true,
                Invalidate::ApiKey => ctx.caller.as_ref().is_some_and(|c| c.key.is_some()),
            };
        Lookup {
            key: Some(cache_key(op_id, policy, parts, ctx)),
            refresh,
            head,
        }
    }

    /// The stored answer to `lookup`, when it may be served from the cache: one look-up, nothing else made.
    /// Apart from [`serve`](Self::serve) so that a hit does not build (nor move) the coalescing machinery's future.
    pub async fn hit(&self, lookup: &Lookup) -> Option<Response> {
        let key = lookup.key.as_deref().filter(|_| !lookup.refresh)?;
        self.entries.get(key).await.map(|hit| hit_response(&hit))
    }

    /// Serves a cached operation that [`hit`](Self::hit) found nothing for: from the cache (an entry stored
    /// meanwhile, or by the request that leads a fetch of the same key), or through `fetch` (called at most once,
    /// and only when the target must be asked), storing what may be stored. Says how it answered.
    pub async fn serve<F, Fut>(
        &self,
        policy: &CacheSpec,
        lookup: Lookup,
        fetch: F,
    ) -> (CacheStatus, Result<Response, GatewayError>)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Response, GatewayError>>,
    {
        let Some(key) = lookup.key else {
            return (CacheStatus::Bypass, fetch().await);
        };
        if lookup.head {
            // HEAD is answered from a stored GET; it is never stored itself (it has no body to store).
            return (CacheStatus::Miss, fetch().await);
        }
        let key: Arc<str> = Arc::from(key);
        if lookup.refresh {
            self.entries.invalidate(&key).await;
            if let Some(shared) = &self.shared {
                shared.invalidate(&key).await;
            }
        }

        // The fetch runs inside the coalescing initializer when this request leads, or not at all when another
        // request is already fetching the key; a leader's unstorable answer is handed back through this slot.
        let fetch = Arc::new(Mutex::new(Some(fetch)));
        let leader_answer: Arc<Mutex<Option<Result<Response, GatewayError>>>> = Arc::default();
        // Whether the leader found the entry in the shared layer (a hit for this replica's callers too); only with
        // a shared layer, so that a cache without one allocates nothing for it.
        let from_shared = self
            .shared
            .as_ref()
            .map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let init = {
            let fetch = fetch.clone();
            let leader_answer = leader_answer.clone();
            let max_entry = self.max_entry;
            let shared = self.shared.as_ref();
            let from_shared = from_shared.clone();
            let key = shared.map(|_| Arc::clone(&key));
            async move {
                if let (Some(shared), Some(key)) = (shared, &key)
                    && let Some(hit) = shared.get(key).await
                {
                    if let Some(flag) = &from_shared {
                        flag.store(true, Ordering::Relaxed);
                    }
                    return Ok(Arc::new(hit));
                }
                let Some(fetch) = fetch.lock().unwrap_or_else(PoisonError::into_inner).take() else {
                    return Err(NotStored);
                };
                let answer = match fetch().await {
                    Ok(response) => match store(response, policy, max_entry).await {
                        Ok(cached) => {
                            if let (Some(shared), Some(key)) = (shared, &key) {
                                shared.put(key, &cached).await;
                            }
                            return Ok(Arc::new(cached));
                        }
                        Err(response) => Ok(response),
                    },
                    // A gateway error (the upstream down, say) is never stored nor handed to waiters.
                    Err(error) => Err(error),
                };
                *leader_answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
                Err(NotStored)
            }
        };
        let result = match self.entries.entry(key).or_try_insert_with(init).await {
            Ok(entry) if entry.is_fresh() && from_shared.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) => {
                return (CacheStatus::Hit, Ok(hit_response(entry.value())));
            }
            Ok(entry) if entry.is_fresh() => return (CacheStatus::Miss, Ok(serve_stored(entry.value()))),
            Ok(entry) => return (CacheStatus::Hit, Ok(hit_response(entry.value()))),
            Err(_) => leader_answer.lock().unwrap_or_else(PoisonError::into_inner).take(),
        };
        let answer = match result {
            Some(answer) => answer,
            None => {
                // Another request fetched and could not store: this one asks for itself.
                let fetch = fetch.lock().unwrap_or_else(PoisonError::into_inner).take();
                match fetch {
                    Some(fetch) => fetch().await,
                    None => Err(GatewayError::internal()),
                }
            }
        };
        (CacheStatus::Miss, answer)
    }

    /// Drops every stored response, or those of one operation: here, and with a shared layer in Redis and every
    /// replica too (an error then says the other replicas may still hold them).
    pub async fn flush(&self, op_id: Option<&str>) -> Result<(), crate::shared::SharedError> {
        self.flush_here(op_id).await;
        match &self.shared {
            Some(shared) => shared.flush(op_id).await,
            None => Ok(()),
        }
    }

    /// Drops the response of operation `op_id` whose key has the SHA-256 `digest` (hex), in this replica.
    pub(crate) async fn invalidate_digest(&self, op_id: &str, digest: &str) {
        let prefix: Arc<str> = Arc::from(format!("{op_id}\u{0}"));
        let digest: Arc<str> = Arc::from(digest);
        let _ = self.entries.invalidate_entries_if(move |key, _| {
            key.starts_with(&*prefix) && crate::shared::cache::digest(key).1 == *digest
        });
        self.entries.run_pending_tasks().await;
    }

    /// Drops every response stored in this replica, or those of one operation.
    pub(crate) async fn flush_here(&self, op_id: Option<&str>) {
        match op_id {
            None => self.entries.invalidate_all(),
            Some(id) => {
                let prefix: Arc<str> = Arc::from(format!("{id}\u{0}"));
                let _ = self
                    .entries
                    .invalidate_entries_if(move |key, _| key.starts_with(&*prefix));
            }
        }
        self.entries.run_pending_tasks().await;
    }

    /// Current size, after pending evictions are applied.
    pub async fn stats(&self, capacity: u64) -> CacheStats {
        self.entries.run_pending_tasks().await;
        CacheStats {
            entries: self.entries.entry_count(),
            bytes: self.entries.weighted_size(),
            capacity,
        }
    }
}

fn asks_refresh(headers: &HeaderMap) -> bool {
    has_cache_directive(headers, &["no-cache", "max-age=0"])
}

/// Whether any `Cache-Control` header holds one of `directives` (case-insensitive).
fn has_cache_directive(headers: &HeaderMap, directives: &[&str]) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|d| directives.iter().any(|wanted| d.eq_ignore_ascii_case(wanted)))
}

/// The key: operation, the host and scheme the upstream is told about (they can shape its answer: absolute links,
/// redirects), path parameter values, then the listed query parameters and headers, normalised: query parameters
/// are taken by name (their order in the URL does not matter), header names are case-insensitive. Every value is
/// length-prefixed, so no value can be crafted to look like another key.
fn cache_key(op_id: &str, policy: &CacheSpec, parts: &request::Parts, ctx: &RequestCtx) -> String {
    let mut key = String::with_capacity(96);
    key.push_str(op_id);
    key.push('\u{0}');
    push_part(&mut key, "s", ctx.scheme());
    // The host is written straight into the key (lower-cased as it goes), length-prefixed like every value.
    let host = crate::policies::hosts::normalised(parts).over_tls(ctx.tls);
    push_tag(&mut key, "a", host.len());
    host.write(&mut key);
    let mut push = |tag: &str, value: &str| push_part(&mut key, tag, value);
    for value in ctx.path_values() {
        push("p", value);
    }
    for part in policy.key {
        match part {
            CacheKeyPart::Query(name) => {
                let query = parts.uri.query().unwrap_or("");
                let values: Vec<String> = form_urlencoded::parse(query.as_bytes())
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
                    .collect();
                push("q", &values.len().to_string());
                for v in &values {
                    push("", v);
                }
            }
            CacheKeyPart::Header(name) => {
                let values: Vec<&[u8]> = parts.headers.get_all(*name).iter().map(HeaderValue::as_bytes).collect();
                push("h", &values.len().to_string());
                for v in values {
                    push("", &String::from_utf8_lossy(v));
                }
            }
            CacheKeyPart::ApiKey => push("k", ctx.caller.as_ref().and_then(Caller::key_name).map_or("", |n| &**n)),
            // `lookup` does not cache a request whose key would hold a claim its token lacks. The claim goes in as
            // JSON (so `"42"` and `42` differ), after the token's issuer: one provider's `sub: u-1` is not another's.
            CacheKeyPart::JwtClaim(name) => {
                let token = ctx.caller.as_ref().and_then(|c| c.token.as_ref());
                let issuer = token.and_then(|t| t.claim("iss")).map(serde_json::Value::to_string);
                push("i", issuer.as_deref().unwrap_or(""));
                let claim = token.and_then(|t| t.claim(name)).map(serde_json::Value::to_string);
                push("j", claim.as_deref().unwrap_or(""));
            }
        }
    }
    key
}

/// `{tag}{value's length}:{value}` onto `key`.
fn push_part(key: &mut String, tag: &str, value: &str) {
    push_tag(key, tag, value.len());
    key.push_str(value);
}

/// `{tag}{len}:` onto `key` (without `fmt`: this is on every cached request's path).
fn push_tag(key: &mut String, tag: &str, len: usize) {
    key.push_str(tag);
    key.push_str(itoa::Buffer::new().format(len));
    key.push(':');
}

/// Whether a response may be stored: a listed status, nothing private, and a body within `max_entry`.
/// Storable responses come back buffered; the others come back as responses again, their body intact.
async fn store(response: Response, policy: &CacheSpec, max_entry: u64) -> Result<Cached, Response> {
    let headers = response.headers();
    let private = headers.contains_key(SET_COOKIE) || has_cache_directive(headers, &["no-store", "private"]);
    let declared_len = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if private
        || !policy.statuses.contains(&response.status().as_u16())
        || declared_len.is_some_and(|len| len > max_entry)
    {
        return Err(response);
    }
    let (parts, mut body) = response.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size: u64 = 0;
    loop {
        match body.frame().await {
            None => break,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else { continue };
                size += data.len() as u64;
                chunks.push(data);
                if size > max_entry {
                    // Too large after all: give the client what was read, then the rest as it comes.
                    let body = Body::new(Prefixed {
                        prefix: chunks,
                        rest: body,
                    });
                    return Err(Response::from_parts(parts, body));
                }
            }
            Some(Err(err)) => {
                // The body broke off: the client gets the part that arrived and then the error, nothing is stored.
                let body = Body::new(Prefixed {
                    prefix: chunks,
                    rest: Body::new(http_body_util::Full::new(Bytes::new()).map_err(|never| match never {})),
                });
                tracing::warn!(error = %err, "upstream body failed while caching");
                let mut response = Response::from_parts(parts, body);
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                return Err(response);
            }
        }
    }
    let body = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = bytes::BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    };
    let header_bytes: u64 = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64)
        .sum();
    let weight = u32::try_from(size + header_bytes + ENTRY_OVERHEAD).unwrap_or(u32::MAX);
    Ok(Cached {
        status: parts.status,
        headers: parts.headers,
        body,
        stored: Instant::now(),
        ttl: policy.ttl,
        weight,
    })
}

fn serve_stored(cached: &Cached) -> Response {
    let mut response = Response::new(Body::from(cached.body.clone()));
    *response.status_mut() = cached.status;
    // Copied into a map with room for what the gateway adds (`Age`, `X-Cache`, `X-Request-Id`, ...): a clone
    // of the stored map is exactly full, and growing it re-hashes it once per added header.
    let mut headers = HeaderMap::with_capacity(cached.headers.len() + ADDED_HEADERS);
    headers.extend(cached.headers.iter().map(|(name, value)| (name.clone(), value.clone())));
    *response.headers_mut() = headers;
    response
}

/// Room for the headers a served entry usually gets on its way out (`Age`, `X-Cache`, `X-Request-Id`, a rate-limit
/// pair); more (CORS, trace context) grow the map as before.
const ADDED_HEADERS: usize = 5;

fn hit_response(cached: &Cached) -> Response {
    let mut response = serve_stored(cached);
    let age = cached.stored.elapsed().as_secs();
    response.headers_mut().insert(AGE, HeaderValue::from(age));
    response
}

/// A body that yields already-read chunks, then the rest of the original body.
struct Prefixed {
    prefix: Vec<Bytes>,
    rest: Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if !self.prefix.is_empty() {
            let chunk = self.prefix.remove(0);
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static POLICY: CacheSpec = CacheSpec {
        ttl: Duration::from_secs(60),
        key: &[CacheKeyPart::Query("fields"), CacheKeyPart::Header("accept-language")],
        statuses: &[200],
        methods: &[Method::GET, Method::HEAD],
        invalidate: Invalidate::Any,
    };

    fn key(uri: &str, headers: &[(&str, &str)]) -> String {
        let mut builder = http::Request::get(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let (parts, ()) = builder.body(()).unwrap_or_default().into_parts();
        cache_key("op", &POLICY, &parts, &RequestCtx::new(&parts, None))
    }

    #[test]
    fn keys_are_normalised() {
        let base = key("/a/7?fields=x&other=1", &[("Accept-Language", "en")]);
        assert_eq!(
            base,
            key("/a/7?other=2&fields=x", &[("accept-language", "en")]),
            "unlisted query ignored"
        );
        assert_ne!(base, key("/a/7?fields=y", &[("accept-language", "en")]));
        assert_ne!(base, key("/a/7?fields=x", &[("accept-language", "de")]));
        assert_ne!(base, key("/a/7?fields=x", &[]));
        assert_ne!(
            base,
            key("/a/7?fields=x", &[("accept-language", "en"), ("host", "evil.example")]),
            "the host is in the key"
        );
        assert_eq!(
            key("/a/7", &[("host", "API.example:80")]),
            key("/a/7", &[("host", "api.example")]),
            "hosts are normalised"
        );
        // Length prefixes keep crafted values apart.
        assert_ne!(key("/a?fields=a&fields=b", &[]), key("/a?fields=a%3Ab", &[]));
    }

    #[test]
    fn refresh_directives() {
        let mut h = HeaderMap::new();
        assert!(!asks_refresh(&h));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=0"));
        assert!(asks_refresh(&h));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, No-Cache"));
        assert!(asks_refresh(&h));
    }
}
