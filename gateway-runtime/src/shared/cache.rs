//! The response cache's shared layer: Redis behind each replica's own cache (`shared: { cache: redis }`).
//!
//! A request that misses its replica's cache asks Redis before the target; what a replica fetches and stores it
//! also writes to Redis, with what is left of its TTL, so that the other replicas answer it from there instead of
//! asking the upstream again. Entries have the same keys as in the local cache (hashed: `<prefix>cache:<operation
//! id>:<SHA-256 of the key>`), so the operation's entries can be found to flush them.
//!
//! Flushes reach every replica: `POST /_gateway/cache/flush` on any one deletes the entries in Redis and publishes
//! the flush on `<prefix>cache:flush`, and each replica, subscribed, flushes its own cache. A refresh a caller
//! forces (`Cache-Control: no-cache`) drops the key everywhere the same way. A replica whose subscription broke may
//! have missed flushes: it flushes its own cache when it subscribes again.
//!
//! Misses are coalesced per replica (as without Redis): N replicas missing one key at once ask the upstream at most
//! N times, not once. A cross-replica lock would cost every miss another round trip and a wait on a lock holder that
//! may be gone; with replicas counted in units, not thousands, N is the better price.
//!
//! Redis failing never fails a request: the layer is skipped (`on_failure: { cache: bypass }`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::Redis;
use crate::policies::cache::{Cached, ResponseCache};

/// The encoding's version: an entry written by another version is not read.
const FORMAT: u8 = 1;
/// The shortest TTL worth writing to Redis.
const MIN_SHARED_TTL: Duration = Duration::from_millis(100);

/// The shared layer of one API's cache.
#[derive(Debug, Clone)]
pub struct SharedCache {
    redis: Redis,
    /// The stage served (`prod:`), or empty.
    scope: Arc<str>,
}

/// What a flush message says.
#[derive(Debug, PartialEq, Eq)]
enum Flush<'a> {
    All,
    Operation(&'a str),
    /// A key, by its operation and digest.
    Key(&'a str, &'a str),
}

/// The operation of the local cache key `key`, and the key's SHA-256 in hex.
pub(crate) fn digest(key: &str) -> (&str, String) {
    use sha2::Digest as _;
    let operation = key.split('\u{0}').next().unwrap_or("");
    let mut hex = [0u8; 64];
    crate::pipeline::trace::hex_into(&mut hex, &sha2::Sha256::digest(key.as_bytes()));
    // Hex digits are ASCII.
    (operation, String::from_utf8_lossy(&hex).into_owned())
}

impl SharedCache {
    /// The layer in `redis`, its keys scoped to `stage` when one is served.
    pub fn new(redis: Redis, stage: Option<&str>) -> Self {
        Self {
            redis,
            scope: Arc::from(super::stage_scope(stage)),
        }
    }

    /// `<prefix>cache:<operation>:<digest>`: the key in Redis of the local key `key`.
    fn entry_key(&self, key: &str) -> String {
        let (operation, digest) = digest(key);
        self.redis.key(&format!("{}cache:{operation}:{digest}", self.scope))
    }

    fn channel(&self) -> String {
        self.redis.key(&format!("{}cache:flush", self.scope))
    }

    /// The entry stored under `key` by any replica, if Redis has it (and answers in time).
    pub async fn get(&self, key: &str) -> Option<Cached> {
        let mut get = redis::cmd("GET");
        get.arg(self.entry_key(key));
        let stored: Option<Vec<u8>> = match self.redis.query(get).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::debug!(error = %err, "shared cache skipped");
                return None;
            }
        };
        decode(&stored?)
    }

    /// Writes `cached` under `key` for the other replicas. Awaited (one round trip, bounded by the timeout, on a
    /// miss only): a caller who got the answer from one replica finds it on every other.
    pub async fn put(&self, key: &str, cached: &Cached) {
        let left = cached.ttl.saturating_sub(cached.stored.elapsed());
        if left < MIN_SHARED_TTL {
            return;
        }
        let millis = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
        let set = redis::cmd("SET")
            .arg(self.entry_key(key))
            .arg(encode(cached).as_ref())
            .arg("PX")
            .arg(millis)
            .to_owned();
        if let Err(err) = self.redis.query::<()>(set).await {
            tracing::debug!(error = %err, "cannot write a cache entry to Redis");
        }
    }

    /// Drops `key` everywhere: in Redis, and in every replica's cache.
    ///
    /// The message names the key by its operation and digest, never by the key itself (which holds request values:
    /// header values, claims), so what Redis relays and logs tells nothing about the request.
    pub async fn invalidate(&self, key: &str) {
        let (operation, digest) = digest(key);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.entry_key(key)).ignore();
        pipe.cmd("PUBLISH")
            .arg(self.channel())
            .arg(format!("k {operation} {digest}"))
            .ignore();
        if let Err(err) = self.redis.query::<()>(pipe).await {
            tracing::debug!(error = %err, "a refresh could not reach the shared cache");
        }
    }

    /// Drops every entry (or those of operation `op_id`) in Redis and tells every replica to do the same.
    pub async fn flush(&self, op_id: Option<&str>) -> Result<(), super::SharedError> {
        let pattern = self
            .redis
            .key(&format!("{}cache:{}:*", self.scope, op_id.unwrap_or("*")));
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000);
            let (next, names): (u64, Vec<String>) = self.redis.background(scan).await?;
            if !names.is_empty() {
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(&names);
                self.redis.background::<()>(unlink).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let message = op_id.map_or_else(|| "a".to_owned(), |id| format!("o {id}"));
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(self.channel()).arg(message);
        self.redis.background::<()>(publish).await
    }

    /// Subscribes to the flushes of every replica and applies them to `local`, for as long as the process lives,
    /// subscribing again (with a growing pause) whenever the subscription breaks.
    pub fn listen(&self, local: ResponseCache) {
        let layer = self.clone();
        super::runtime().spawn(async move {
            let channel = layer.channel();
            let mut pause = Duration::from_millis(50);
            let mut subscribed_before = false;
            loop {
                let subscription = async {
                    let mut pubsub = layer.redis.client().get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    redis::RedisResult::Ok(pubsub)
                };
                let pubsub = match tokio::time::timeout(Duration::from_secs(2), subscription).await {
                    Ok(Ok(pubsub)) => pubsub,
                    Ok(Err(_)) | Err(_) => {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                        continue;
                    }
                };
                pause = Duration::from_millis(50);
                // Flushes published while this replica was not subscribed (before its first subscription, while it
                // served with Redis down, or while the subscription was broken) were missed: start clean.
                if subscribed_before {
                    tracing::info!(
                        redis = layer.redis.at(),
                        "cache flushes followed again; flushing this replica's cache"
                    );
                }
                local.flush_here(None).await;
                subscribed_before = true;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let Ok(text) = message.get_payload::<String>() else {
                        continue;
                    };
                    match parse_flush(&text) {
                        Some(Flush::All) => local.flush_here(None).await,
                        Some(Flush::Operation(id)) => local.flush_here(Some(id)).await,
                        Some(Flush::Key(operation, digest)) => local.invalidate_digest(operation, digest).await,
                        None => tracing::debug!("an unknown message on the cache flush channel"),
                    }
                }
                tracing::warn!(
                    redis = layer.redis.at(),
                    "the cache flush subscription broke; subscribing again"
                );
            }
        });
    }
}

fn parse_flush(text: &str) -> Option<Flush<'_>> {
    match text.split_once(' ') {
        None if text == "a" => Some(Flush::All),
        Some(("o", id)) => Some(Flush::Operation(id)),
        Some(("k", rest)) => rest
            .split_once(' ')
            .map(|(operation, digest)| Flush::Key(operation, digest)),
        _ => None,
    }
}

/// `cached` as bytes: format, status, age and TTL in milliseconds, the headers (each name and value
/// length-prefixed), then the body.
fn encode(cached: &Cached) -> Bytes {
    let header_bytes: usize = cached.headers.iter().map(|(k, v)| 8 + k.as_str().len() + v.len()).sum();
    let mut out = BytesMut::with_capacity(32 + header_bytes + cached.body.len());
    out.put_u8(FORMAT);
    out.put_u16(cached.status.as_u16());
    let stored_at = SystemTime::now()
        .checked_sub(cached.stored.elapsed())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    out.put_u64(u64::try_from(stored_at.as_millis()).unwrap_or(0));
    out.put_u64(u64::try_from(cached.ttl.as_millis()).unwrap_or(u64::MAX));
    out.put_u32(u32::try_from(cached.headers.len()).unwrap_or(u32::MAX));
    for (name, value) in &cached.headers {
        out.put_u32(u32::try_from(name.as_str().len()).unwrap_or(0));
        out.put_slice(name.as_str().as_bytes());
        out.put_u32(u32::try_from(value.len()).unwrap_or(0));
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&cached.body);
    out.freeze()
}

/// An entry [`encode`] wrote, unless it is malformed, of another format, or already expired.
fn decode(bytes: &[u8]) -> Option<Cached> {
    let mut input = bytes;
    let need = |input: &[u8], n: usize| (input.remaining() >= n).then_some(());
    need(input, 1 + 2 + 8 + 8 + 4)?;
    if input.get_u8() != FORMAT {
        return None;
    }
    let status = StatusCode::from_u16(input.get_u16()).ok()?;
    let stored_at = UNIX_EPOCH + Duration::from_millis(input.get_u64());
    let ttl = Duration::from_millis(input.get_u64());
    let count = input.get_u32();
    let mut headers = HeaderMap::with_capacity(usize::try_from(count).ok()?.min(256));
    let mut header_bytes = 0u64;
    for _ in 0..count {
        need(input, 4)?;
        let len = usize::try_from(input.get_u32()).ok()?;
        need(input, len)?;
        let name = HeaderName::from_bytes(&input[..len]).ok()?;
        input.advance(len);
        need(input, 4)?;
        let len = usize::try_from(input.get_u32()).ok()?;
        need(input, len)?;
        let value = HeaderValue::from_bytes(&input[..len]).ok()?;
        input.advance(len);
        header_bytes += (name.as_str().len() + value.len()) as u64;
        headers.append(name, value);
    }
    let body = Bytes::copy_from_slice(input);
    // Age by the wall clock (the replicas' clocks agree to well under a TTL).
    let age = SystemTime::now().duration_since(stored_at).unwrap_or_default();
    if age >= ttl {
        return None;
    }
    let stored = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
    let weight =
        u32::try_from(body.len() as u64 + header_bytes + crate::policies::cache::ENTRY_OVERHEAD).unwrap_or(u32::MAX);
    Some(Cached {
        status,
        headers,
        body,
        stored,
        ttl,
        weight,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_with_their_age() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let cached = Cached {
            status: StatusCode::CREATED,
            headers,
            body: Bytes::from_static(b"{\"id\":7}"),
            stored: Instant::now()
                .checked_sub(Duration::from_secs(3))
                .unwrap_or_else(Instant::now),
            ttl: Duration::from_secs(60),
            weight: 1,
        };
        let back = decode(&encode(&cached)).expect("decodes");
        assert_eq!(
            (back.status, &back.body, back.ttl),
            (StatusCode::CREATED, &cached.body, cached.ttl)
        );
        assert_eq!(back.headers, cached.headers);
        let age = back.stored.elapsed().as_secs_f64();
        assert!((2.5..4.0).contains(&age), "age {age}");
        // Truncated, foreign or expired entries are not read.
        let bytes = encode(&cached);
        assert!(decode(&bytes[..30]).is_none(), "cut inside the headers");
        assert!(decode(&[9, 0, 200]).is_none());
        let expired = Cached {
            ttl: Duration::from_secs(1),
            ..cached
        };
        assert!(decode(&encode(&expired)).is_none());
    }

    #[test]
    fn flush_messages_parse() {
        assert_eq!(parse_flush("a"), Some(Flush::All));
        assert_eq!(parse_flush("o getPet"), Some(Flush::Operation("getPet")));
        assert_eq!(parse_flush("k getPet 0a1b"), Some(Flush::Key("getPet", "0a1b")));
        assert_eq!(
            parse_flush("k getPet"),
            None,
            "a key message names operation and digest"
        );
        let (operation, digest) = digest("getPet\u{0}s4:http");
        assert_eq!((operation, digest.len()), ("getPet", 64));
        assert_eq!(parse_flush("x"), None);
    }
}
