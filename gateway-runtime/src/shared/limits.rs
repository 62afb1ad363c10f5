//! Token buckets, quotas and usage counts kept in Redis, so that a limit means the same for the API however many
//! replicas serve it.
//!
//! Every check of one request — its buckets in order (API-wide, operation, plan), then its quota, then its usage
//! count — is one call of one Lua script ([`SCRIPT`]): one round trip, atomic, so that replicas racing for the last
//! token cannot both take it. The buckets are GCRA (the generic cell rate algorithm, what governor implements in
//! memory): one number per bucket, the theoretical arrival time, read and written by the script against Redis's
//! own clock (`TIME`), so that the replicas' clocks do not matter. A quota is a counter per key and calendar period
//! that expires when the period ends.
//!
//! As in memory, the first bucket that refuses stops the checks (the buckets after it keep their tokens), and a
//! quota is charged only for a request every bucket admitted. The quota phase comes after the parameter and body
//! checks, though, and those cannot wait for another round trip: the script charges the quota at the throttle phase,
//! and a request refused between the two gets its charge back ([`SharedLimits::refund`], in the background).
//!
//! In front of Redis each replica keeps its own in-memory buckets at the full rate ([`crate::policies::throttle`]'s
//! [`MemoryLimits`]): a request a replica alone has already used the limit up for is refused without asking Redis
//! (the API as a whole has used it up too), which keeps a flood from costing Redis a call per request; and while
//! Redis is down with `on_failure: { limits: open }` those buckets still hold every replica to the rate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{Redis, SharedError};
use crate::spec::{QuotaSpec, ThrottleSpec};

/// The checks of one request, in one round trip.
///
/// KEYS: each bucket's key, then (with a quota) the quota's key, then the usage hashes (admitted, throttled).
/// ARGV: bucket count, `1` with a quota, the quota's limit, the quota's expiry (unix seconds), the caller's key name
/// (empty: nothing counted), then each bucket's emission interval (µs) and burst.
/// Returns: the 1-based index of the refusing bucket (0: none), its retry-after (µs), the quota's verdict (-1: no
/// quota, 0: refused, 1: admitted) and count, then each checked bucket's remaining tokens.
pub const SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local buckets = tonumber(ARGV[1])
local quota = ARGV[2] == '1'
local name = ARGV[5]
local usage = buckets + (quota and 1 or 0)
local result = {0, 0, -1, 0}
for i = 1, buckets do
  local interval = tonumber(ARGV[4 + 2 * i])
  local tolerance = interval * tonumber(ARGV[5 + 2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local next_tat = tat + interval
  local allow_at = next_tat - tolerance
  if allow_at > now then
    result[1] = i
    result[2] = allow_at - now
    result[#result + 1] = 0
    if name ~= '' then redis.call('HINCRBY', KEYS[usage + 2], name, 1) end
    return result
  end
  redis.call('SET', KEYS[i], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1)
  result[#result + 1] = math.floor((tolerance - (next_tat - now)) / interval)
end
if quota then
  local used = tonumber(redis.call('GET', KEYS[buckets + 1])) or 0
  if used < tonumber(ARGV[3]) then
    used = redis.call('INCR', KEYS[buckets + 1])
    if used == 1 then redis.call('EXPIREAT', KEYS[buckets + 1], ARGV[4]) end
    result[3] = 1
  else
    result[3] = 0
    if name ~= '' then redis.call('HINCRBY', KEYS[usage + 2], name, 1) end
  end
  result[4] = used
  if result[3] == 0 then return result end
end
if name ~= '' then redis.call('HINCRBY', KEYS[usage + 1], name, 1) end
return result
";

/// Gives back a quota charge and a usage count: the quota's counter only if it still exists (a counter that
/// expired, or a Redis that restarted, has nothing to give back, and a `DECR` would make a counter without expiry).
/// KEYS: the quota's counter (or none), the admitted and the refused-later hashes. ARGV: `1` with a quota, the key name
/// (empty: none).
pub const REFUND: &str = r"
local hashes = 1
if ARGV[1] == '1' then
  hashes = 2
  if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DECR', KEYS[1]) end
end
if ARGV[2] ~= '' then
  redis.call('HINCRBY', KEYS[hashes], ARGV[2], -1)
  redis.call('HINCRBY', KEYS[hashes + 1], ARGV[2], 1)
end
return 0
";

/// One bucket of a request.
#[derive(Debug)]
pub struct BucketCheck<'a> {
    /// Its key, without the prefix.
    pub key: String,
    /// Its limit.
    pub limit: &'a ThrottleSpec,
}

/// A quota a request is charged.
#[derive(Debug)]
pub struct QuotaCharge<'a> {
    /// Its key, without the prefix (key name, period and start: a new period is a new counter).
    pub key: String,
    /// Its limit.
    pub limit: &'a QuotaSpec,
    /// When the period ends, in unix seconds: the counter expires then (plus a minute, for clocks a little apart).
    pub expires_at: i64,
}

/// What the script said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The 0-based index of the bucket that refused, if one did.
    pub refused: Option<usize>,
    /// How long until that bucket has a token.
    pub retry_after: Duration,
    /// The quota's verdict (admitted, count), if there was a quota and every bucket admitted.
    pub quota: Option<(bool, u64)>,
    /// Tokens left in each bucket checked, in order.
    pub remaining: Vec<u32>,
}

/// Limits, quotas and usage of one API in Redis.
pub struct SharedLimits {
    redis: Redis,
    script: Arc<redis::Script>,
    /// The stage served (`prod:`), or empty: before the usage hashes' names.
    scope: Box<str>,
    /// Usage counted for requests refused without a round trip (by the replica's own buckets), added to Redis's
    /// counts once a second.
    pending_throttled: Mutex<Vec<(Arc<str>, u64)>>,
    /// Requests decided by the replica's own buckets, without Redis.
    local_refusals: AtomicU64,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("redis", &self.redis)
            .finish_non_exhaustive()
    }
}

impl SharedLimits {
    /// Limits kept in `redis`, their usage counts scoped to `stage` when one is served; starts the task that adds
    /// locally counted refusals to the shared usage.
    pub fn new(redis: Redis, stage: Option<&str>) -> Arc<Self> {
        let limits = Arc::new(Self {
            redis,
            script: Arc::new(redis::Script::new(SCRIPT)),
            scope: super::stage_scope(stage).into(),
            pending_throttled: Mutex::new(Vec::new()),
            local_refusals: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&limits);
        super::runtime().spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(limits) = weak.upgrade() else { return };
                limits.flush_throttled().await;
            }
        });
        limits
    }

    /// The Redis it uses.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// Requests refused by the replica's own buckets without asking Redis.
    pub fn local_refusals(&self) -> u64 {
        self.local_refusals.load(Ordering::Relaxed)
    }

    /// Runs the checks of one request: `buckets` in order, then `quota` if every bucket admits, counting the request
    /// for `key_name` (admitted, or throttled).
    pub async fn check(
        &self,
        buckets: &[BucketCheck<'_>],
        quota: Option<&QuotaCharge<'_>>,
        key_name: Option<&str>,
    ) -> Result<Verdict, SharedError> {
        let mut keys = Vec::with_capacity(buckets.len() + 3);
        keys.extend(buckets.iter().map(|b| self.redis.key(&b.key)));
        keys.extend(quota.map(|q| self.redis.key(&q.key)));
        keys.push(self.usage_key("admitted"));
        keys.push(self.usage_key("throttled"));
        let mut args = Vec::with_capacity(5 + 2 * buckets.len());
        args.push(buckets.len().to_string());
        args.push(if quota.is_some() { "1" } else { "0" }.to_owned());
        args.push(quota.map_or(0, |q| q.limit.limit).to_string());
        args.push(quota.map_or(0, |q| q.expires_at + 60).to_string());
        args.push(key_name.unwrap_or("").to_owned());
        for bucket in buckets {
            // Microseconds between tokens, with their fraction: an integer would be 0 above a million a second, and
            // run fast well below it.
            let interval = 1_000_000.0 / f64::from(bucket.limit.rate.max(1));
            args.push(format!("{interval:.4}"));
            args.push(bucket.limit.burst.max(1).to_string());
        }
        let answer: Vec<i64> = self.redis.script(&self.script, keys, args).await?;
        let unexpected = || SharedError::Unexpected {
            at: self.redis.at().to_owned(),
            reason: format!("the limits script answered {} numbers", answer.len()),
        };
        let [refused, retry_us, quota_verdict, quota_used, remaining @ ..] = answer.as_slice() else {
            return Err(unexpected());
        };
        Ok(Verdict {
            refused: usize::try_from(*refused).ok().and_then(|i| i.checked_sub(1)),
            retry_after: Duration::from_micros(u64::try_from(*retry_us).unwrap_or(0)),
            quota: (*quota_verdict >= 0).then(|| (*quota_verdict == 1, u64::try_from(*quota_used).unwrap_or(0))),
            remaining: remaining
                .iter()
                .map(|r| u32::try_from((*r).max(0)).unwrap_or(u32::MAX))
                .collect(),
        })
    }

    /// Gives back what [`SharedLimits::check`] charged for a request refused later (by its parameters or body):
    /// its quota count and its usage count. In the background: the refused request does not wait for it.
    pub fn refund(self: &Arc<Self>, quota_key: Option<String>, key_name: Option<Arc<str>>) {
        if quota_key.is_none() && key_name.is_none() {
            return;
        }
        let limits = Arc::clone(self);
        super::runtime().spawn(async move {
            let mut invocation = redis::cmd("EVAL");
            invocation.arg(REFUND);
            let keys: Vec<String> = quota_key
                .iter()
                .map(|q| limits.redis.key(q))
                .chain([limits.usage_key("admitted"), limits.usage_key("refused_later")])
                .collect();
            invocation.arg(keys.len()).arg(keys);
            invocation
                .arg(if quota_key.is_some() { "1" } else { "0" })
                .arg(key_name.as_deref().unwrap_or(""));
            // Off the request path: the refused request has had its answer. Tried again a little later if Redis
            // cannot take it now, then given up (the count stays one too high).
            for pause in [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(5)] {
                tokio::time::sleep(pause).await;
                match limits.redis.background::<()>(invocation.clone()).await {
                    Ok(()) => return,
                    Err(err) => tracing::debug!(error = %err, "cannot give back a refused request's quota yet"),
                }
            }
        });
    }

    /// The name of one of the usage hashes.
    fn usage_key(&self, which: &str) -> String {
        self.redis.key(&format!("{}usage:{which}", self.scope))
    }

    /// Counts a refusal of `key_name` decided without Redis (added to the shared usage within a second).
    pub fn throttled_locally(&self, key_name: Option<&Arc<str>>) {
        self.local_refusals.fetch_add(1, Ordering::Relaxed);
        let Some(name) = key_name else { return };
        let mut pending = self.pending_throttled.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.iter_mut().find(|(n, _)| n == name) {
            Some((_, count)) => *count += 1,
            None => pending.push((Arc::clone(name), 1)),
        }
    }

    async fn flush_throttled(&self) {
        let pending = std::mem::take(&mut *self.pending_throttled.lock().unwrap_or_else(PoisonError::into_inner));
        if pending.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (name, count) in &pending {
            pipe.cmd("HINCRBY")
                .arg(self.usage_key("throttled"))
                .arg(&**name)
                .arg(*count)
                .ignore();
        }
        if self.redis.background::<()>(pipe).await.is_err() {
            // Kept for the next second: Redis may be back by then.
            let mut again = self.pending_throttled.lock().unwrap_or_else(PoisonError::into_inner);
            for (name, count) in pending {
                match again.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, c)) => *c += count,
                    None => again.push((name, count)),
                }
            }
        }
    }

    /// Every key's counts in Redis: (name, admitted, throttled).
    pub async fn usage(&self) -> Result<Vec<(String, u64, u64)>, SharedError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL").arg(self.usage_key("admitted"));
        pipe.cmd("HGETALL").arg(self.usage_key("throttled"));
        let (admitted, throttled): (
            std::collections::HashMap<String, i64>,
            std::collections::HashMap<String, i64>,
        ) = self.redis.background(pipe).await?;
        let mut names: Vec<&String> = admitted.keys().chain(throttled.keys()).collect();
        names.sort();
        names.dedup();
        let count = |map: &std::collections::HashMap<String, i64>, name: &String| {
            map.get(name).map_or(0, |n| u64::try_from(*n).unwrap_or(0))
        };
        Ok(names
            .into_iter()
            .map(|name| (name.clone(), count(&admitted, name), count(&throttled, name)))
            .collect())
    }

    /// The counts of the quota counters `keys`, in order (0 for one that does not exist: nothing used in its
    /// period), in one round trip.
    pub async fn quotas_used(&self, keys: &[String]) -> Result<Vec<u64>, SharedError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = redis::cmd("MGET");
        for key in keys {
            get.arg(self.redis.key(key));
        }
        let used: Vec<Option<i64>> = self.redis.background(get).await?;
        Ok(used
            .into_iter()
            .map(|n| n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}
