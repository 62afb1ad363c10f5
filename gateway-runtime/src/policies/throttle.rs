//! The throttle and quota phases: token buckets (API-wide, per operation, per key plan) and quotas, behind traits.
//!
//! The checks run in a fixed order — API-wide, then the operation's bucket, then the caller's plan — and stop at the
//! first that refuses, so a rejected request takes nothing from the buckets after the one that refused it. A quota
//! is charged last, only for requests every other check admitted.
//!
//! State is in memory here ([`MemoryLimits`], [`MemoryQuotas`]): governor's GCRA token buckets and per-key period
//! counters. Both sit behind [`RateLimits`] and [`Quotas`], so replicas can later share them through a store such
//! as Redis without the request path changing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use jiff::{ToSpan as _, Zoned, tz::TimeZone};

use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::RequestCtx;
use crate::policies::auth::Caller;
use crate::shared::limits::{BucketCheck, QuotaCharge, SharedLimits};
use crate::spec::{ApiSpec, FailMode, OnFailure, QuotaPeriod, QuotaSpec, ThrottleScope, ThrottleSpec};

/// Which bucket a check takes from.
#[derive(Debug, Clone, Copy)]
pub enum Bucket<'a> {
    /// The API-wide bucket.
    Api {
        /// The client's address, when the bucket is per address.
        client: IpAddr,
    },
    /// An operation's bucket.
    Operation {
        /// Index into [`ApiSpec::operations`].
        index: usize,
        /// The client's address, when the bucket is per address.
        client: IpAddr,
    },
    /// A key's bucket under its plan.
    Plan {
        /// Index into [`ApiSpec::usage_plans`].
        index: usize,
        /// The key's name.
        key: &'a Arc<str>,
    },
}

/// The state of a bucket after a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    /// Whether the request was admitted (and took a token).
    pub admitted: bool,
    /// Tokens left.
    pub remaining: u32,
    /// When refused: how long until a token is available.
    pub retry_after: Duration,
}

/// Token buckets.
pub trait RateLimits: Send + Sync + 'static {
    /// Takes a token from `bucket` (whose limit is `limit`) if one is available.
    fn acquire(&self, bucket: Bucket<'_>, limit: &ThrottleSpec) -> BucketState;
}

/// Per-key quotas.
pub trait Quotas: Send + Sync + 'static {
    /// Counts one request of `key` against `quota` if any is left in the current period.
    fn charge(&self, key: &str, quota: &QuotaSpec) -> QuotaState;
    /// The current period's figures for `key`, without charging.
    fn peek(&self, key: &str, quota: &QuotaSpec) -> QuotaState;
}

/// A quota's state after a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaState {
    /// Whether the request was counted (it was within the quota).
    pub admitted: bool,
    /// Requests counted in this period.
    pub used: u64,
    /// Requests left in this period.
    pub remaining: u64,
    /// When the period ends, in UTC.
    pub resets_at: jiff::Timestamp,
    /// Seconds from now until then.
    pub resets_in: Duration,
    /// The period's length.
    pub window: Duration,
}

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// One limit: shared by all callers, or kept per client address.
enum Limiter {
    All(Direct),
    PerClient(Keyed<IpAddr>),
}

fn quota(limit: &ThrottleSpec) -> Quota {
    let rate = NonZeroU32::new(limit.rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl Limiter {
    fn new(limit: &ThrottleSpec) -> Self {
        match limit.per {
            ThrottleScope::All => Limiter::All(RateLimiter::direct(quota(limit)).with_middleware()),
            ThrottleScope::ClientIp => Limiter::PerClient(RateLimiter::keyed(quota(limit)).with_middleware()),
        }
    }

    fn acquire(&self, client: IpAddr) -> BucketState {
        let outcome = match self {
            Limiter::All(l) => l.check(),
            Limiter::PerClient(l) => l.check_key(&client),
        };
        state(outcome)
    }
}

fn state<P: governor::clock::Reference>(
    outcome: Result<governor::middleware::StateSnapshot, governor::NotUntil<P>>,
) -> BucketState
where
    DefaultClock: governor::clock::Clock<Instant = P>,
{
    match outcome {
        Ok(snapshot) => BucketState {
            admitted: true,
            remaining: snapshot.remaining_burst_capacity(),
            retry_after: Duration::ZERO,
        },
        Err(not_until) => BucketState {
            admitted: false,
            remaining: 0,
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
        },
    }
}

/// Token buckets in this process's memory.
pub struct MemoryLimits {
    api: Option<Limiter>,
    operations: Vec<Option<Limiter>>,
    plans: Vec<Option<Keyed<Arc<str>>>>,
}

impl MemoryLimits {
    /// The buckets `api` declares, with `api_throttle` as the API-wide one (the stage's or the API's).
    pub fn new(api: &ApiSpec, api_throttle: Option<&ThrottleSpec>) -> Self {
        Self {
            api: api_throttle.map(Limiter::new),
            operations: api
                .operations
                .iter()
                .map(|op| op.throttle.as_ref().map(Limiter::new))
                .collect(),
            plans: api
                .usage_plans
                .iter()
                .map(|plan| {
                    plan.throttle
                        .as_ref()
                        .map(|t| RateLimiter::keyed(quota(t)).with_middleware())
                })
                .collect(),
        }
    }
}

impl RateLimits for MemoryLimits {
    fn acquire(&self, bucket: Bucket<'_>, _limit: &ThrottleSpec) -> BucketState {
        let admitted = BucketState {
            admitted: true,
            remaining: u32::MAX,
            retry_after: Duration::ZERO,
        };
        match bucket {
            Bucket::Api { client } => self.api.as_ref().map_or(admitted, |l| l.acquire(client)),
            Bucket::Operation { index, client } => self
                .operations
                .get(index)
                .and_then(Option::as_ref)
                .map_or(admitted, |l| l.acquire(client)),
            Bucket::Plan { index, key } => match self.plans.get(index).and_then(Option::as_ref) {
                // Keyed by the key's name, shared with the key set: no allocation per request.
                Some(limiter) => state(limiter.check_key(key)),
                None => admitted,
            },
        }
    }
}

/// The calendar period containing `now`: its start and end.
fn period_bounds(period: QuotaPeriod, now: &Zoned) -> (Zoned, Zoned) {
    let day = now.start_of_day().unwrap_or_else(|_| now.clone());
    let (start, length) = match period {
        QuotaPeriod::Day => (day, 1.day()),
        QuotaPeriod::Week => {
            let back = i64::from(now.weekday().to_monday_zero_offset());
            (day.checked_sub(back.days()).unwrap_or(day), 1.week())
        }
        QuotaPeriod::Month => {
            let first = day.first_of_month().unwrap_or(day);
            (first, 1.month())
        }
    };
    let end = start.checked_add(length).unwrap_or_else(|_| start.clone());
    (start, end)
}

/// The current day, week and month, recomputed only when they end: calendar arithmetic in time zones is not work
/// for every request. Each is one word (see [`Periods::pack`]) read without a lock by every worker.
#[derive(Debug, Default)]
pub(crate) struct Periods {
    slots: [AtomicU64; 3],
}

/// Bits of a packed period holding its length in seconds (a month is at most 2,678,400 s, under 2^22); the start,
/// in seconds since 1970, is above them.
const PERIOD_LENGTH_BITS: u32 = 22;

impl Periods {
    /// The start and end of the `period` containing `now`.
    pub(crate) fn bounds(&self, period: QuotaPeriod, now: jiff::Timestamp) -> (jiff::Timestamp, jiff::Timestamp) {
        let slot = &self.slots[match period {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Week => 1,
            QuotaPeriod::Month => 2,
        }];
        if let Some((start, end)) = Self::unpack(slot.load(Ordering::Relaxed))
            && start <= now.as_second()
            && now.as_second() < end
            && let (Ok(start), Ok(end)) = (jiff::Timestamp::from_second(start), jiff::Timestamp::from_second(end))
        {
            return (start, end);
        }
        let (start, end) = period_bounds(period, &now.to_zoned(TimeZone::UTC));
        let bounds = (start.timestamp(), end.timestamp());
        if let Some(packed) = Self::pack(bounds) {
            slot.store(packed, Ordering::Relaxed);
        }
        bounds
    }

    /// A period as one word: its start's second above its length in seconds; `None` for one that does not fit
    /// (before 1970, a length over 2^22 s, a start with a fraction), which is then computed on every request.
    fn pack((start, end): (jiff::Timestamp, jiff::Timestamp)) -> Option<u64> {
        let length = u64::try_from(end.as_second().checked_sub(start.as_second())?).ok()?;
        let first = u64::try_from(start.as_second()).ok()?;
        let fits = start.subsec_nanosecond() == 0
            && end.subsec_nanosecond() == 0
            && length > 0
            && length < 1 << PERIOD_LENGTH_BITS
            && first < 1 << (64 - PERIOD_LENGTH_BITS);
        fits.then_some((first << PERIOD_LENGTH_BITS) | length)
    }

    /// The start and end seconds of a packed period; `None` for an empty slot.
    fn unpack(packed: u64) -> Option<(i64, i64)> {
        let length = packed & ((1 << PERIOD_LENGTH_BITS) - 1);
        let start = i64::try_from(packed >> PERIOD_LENGTH_BITS).ok()?;
        (length > 0).then(|| (start, start + i64::try_from(length).unwrap_or(0)))
    }
}

/// The figures of a quota with `used` counted in the period from `start` to `end`, at `now`.
fn quota_state(
    quota: &QuotaSpec,
    admitted: bool,
    used: u64,
    (start, end): (jiff::Timestamp, jiff::Timestamp),
    now: jiff::Timestamp,
) -> QuotaState {
    QuotaState {
        admitted,
        used,
        remaining: quota.limit.saturating_sub(used),
        resets_at: end,
        resets_in: Duration::try_from(end.duration_since(now)).unwrap_or_default(),
        window: Duration::try_from(end.duration_since(start)).unwrap_or_default(),
    }
}

/// Per-key counters for the current period, in this process's memory. A key's counter is one atomic word shared by
/// every worker (a quota holds across them); each worker finds it through its own index of the keys it has met, so
/// that a charge takes no lock another worker takes: only the first request of a key on a worker visits the
/// process-wide map.
#[derive(Default)]
pub struct MemoryQuotas {
    /// Every key's counter, by name.
    counters: Mutex<HashMap<Arc<str>, Arc<QuotaCounter>>>,
    /// Each worker's index of the counters it has charged.
    shards: PerThread<Arc<QuotaCounter>>,
    periods: Periods,
}

/// A key's count in its current period: the period (its kind, and the number since 1970 of its first day) in the
/// bits above [`COUNT_BITS`], the requests counted in it below. One word, so that a new period's reset and a charge
/// are one compare-and-swap: no request is counted into a period it is not in.
#[derive(Default)]
struct QuotaCounter(AtomicU64);

/// Bits of a [`QuotaCounter`] holding the count (up to 2^40 - 1 requests in a period). Above them the day number
/// ([`DAY_BITS`], to the year 13,000), and above that the period's kind (2 bits).
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
const DAY_BITS: u32 = 22;
const DAY_MASK: u64 = (1 << DAY_BITS) - 1;

/// A quota period as a [`QuotaCounter`] holds it: its kind and the day it starts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeriodTag {
    kind: u64,
    day: u64,
}

impl PeriodTag {
    fn new(period: QuotaPeriod, start: jiff::Timestamp) -> Self {
        let kind = match period {
            QuotaPeriod::Day => 0,
            QuotaPeriod::Week => 1,
            QuotaPeriod::Month => 2,
        };
        let day = u64::try_from(start.as_second().div_euclid(86_400)).unwrap_or(0) & DAY_MASK;
        Self { kind, day }
    }

    fn of(word: u64) -> Self {
        Self {
            kind: word >> (COUNT_BITS + DAY_BITS),
            day: (word >> COUNT_BITS) & DAY_MASK,
        }
    }

    fn word(self, count: u64) -> u64 {
        (self.kind << (COUNT_BITS + DAY_BITS)) | (self.day << COUNT_BITS) | count
    }
}

impl QuotaCounter {
    /// Counts one request (with `charge`, if within `limit`) in `period`; whether it was within the limit, and the
    /// count. A period of the same kind later than the caller's (the caller raced its end) is the one counted into:
    /// a count never goes back to an earlier period. A period of another kind (the key's plan changed on a reload)
    /// starts the count again.
    fn apply(&self, period: PeriodTag, limit: u64, charge: bool) -> (bool, u64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let stored = PeriodTag::of(current);
            let (period, used) = if stored.kind == period.kind && stored.day >= period.day {
                (stored, current & COUNT_MASK)
            } else {
                // A new period: the count starts again.
                (period, 0)
            };
            let admitted = used < limit;
            if !charge || !admitted || used == COUNT_MASK {
                return (admitted, used);
            }
            match self
                .0
                .compare_exchange_weak(current, period.word(used + 1), Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (true, used + 1),
                Err(actual) => current = actual,
            }
        }
    }
}

impl MemoryQuotas {
    fn apply(&self, key: &str, quota: &QuotaSpec, charge: bool) -> QuotaState {
        let now = jiff::Timestamp::now();
        let (start, end) = self.periods.bounds(quota.period, now);
        let period = PeriodTag::new(quota.period, start);
        let (admitted, used) = self.with_counter(key, |counter| counter.apply(period, quota.limit, charge));
        quota_state(quota, admitted, used, (start, end), now)
    }

    /// `f` of `key`'s counter, found through this worker's index (the counter's `Arc` is not cloned: its count
    /// would be one more write to the line every worker's charges share).
    fn with_counter<R>(&self, key: &str, f: impl FnOnce(&QuotaCounter) -> R) -> R {
        let mut shard = self.shards.mine();
        if let Some(counter) = shard.get(key) {
            return f(counter);
        }
        let (name, counter) = {
            let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
            match counters.get_key_value(key) {
                Some((name, counter)) => (Arc::clone(name), Arc::clone(counter)),
                None => {
                    // The key's name is allocated once, on its first request.
                    let name: Arc<str> = Arc::from(key);
                    let counter = Arc::new(QuotaCounter::default());
                    counters.insert(Arc::clone(&name), Arc::clone(&counter));
                    (name, counter)
                }
            }
        };
        let answer = f(&counter);
        shard.insert(name, counter);
        answer
    }
}

impl Quotas for MemoryQuotas {
    fn charge(&self, key: &str, quota: &QuotaSpec) -> QuotaState {
        self.apply(key, quota, true)
    }

    fn peek(&self, key: &str, quota: &QuotaSpec) -> QuotaState {
        self.apply(key, quota, false)
    }
}

/// Per-key request counts, for `/_gateway/usage`: one shard per thread that counts (a worker's), merged on read,
/// so that counting a request takes only a lock no other worker takes and writes only memory no other core
/// writes.
#[derive(Default)]
pub struct UsageBook {
    /// Requests admitted and refused (by a throttle or quota) per key, by thread.
    shards: PerThread<(u64, u64)>,
}

/// Maps by key name, one per thread that uses them (see [`thread_shard`]), so that a worker takes only a lock no
/// other worker takes: [`UsageBook`]'s counts, [`MemoryQuotas`]' indexes.
struct PerThread<T>([ThreadShard<T>; THREAD_SHARDS]);

/// Shards of a [`PerThread`]: threads beyond this many share them.
const THREAD_SHARDS: usize = 16;

/// One thread's map of a [`PerThread`]. Aligned to its own cache lines, so that two workers' never share one.
#[repr(align(128))]
struct ThreadShard<T>(Mutex<HashMap<Arc<str>, T>>);

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self(std::array::from_fn(|_| ThreadShard(Mutex::default())))
    }
}

impl<T> PerThread<T> {
    /// The calling thread's map.
    fn mine(&self) -> MutexGuard<'_, HashMap<Arc<str>, T>> {
        self.0[thread_shard()].0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every thread's map, in turn.
    fn each(&self) -> impl Iterator<Item = MutexGuard<'_, HashMap<Arc<str>, T>>> {
        self.0
            .iter()
            .map(|shard| shard.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Whether a counted request was admitted or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    Admitted,
    Throttled,
}

std::thread_local! {
    /// The shard this thread uses, given out in turn as threads first need one.
    static THREAD_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % THREAD_SHARDS
    };
}

/// The calling thread's shard of a [`PerThread`]: a worker's own, as long as there are at most [`THREAD_SHARDS`]
/// threads.
fn thread_shard() -> usize {
    THREAD_SHARD.with(|s| *s)
}

impl UsageBook {
    /// Counts one request of `key`.
    pub fn count(&self, key: &Arc<str>, counted: Counted) {
        let mut keys = self.shards.mine();
        // Looked up by the name itself: the key's `Arc` (shared by every worker) is cloned once per shard only.
        let counts = match keys.get_mut(&**key) {
            Some(counts) => counts,
            None => keys.entry(Arc::clone(key)).or_default(),
        };
        match counted {
            Counted::Admitted => counts.0 += 1,
            Counted::Throttled => counts.1 += 1,
        }
    }

    /// Every key seen so far with its counts (admitted, throttled), summed over the shards, by name.
    pub fn snapshot(&self) -> Vec<(Arc<str>, u64, u64)> {
        let mut merged: HashMap<Arc<str>, (u64, u64)> = HashMap::new();
        for keys in self.shards.each() {
            for (key, (admitted, throttled)) in keys.iter() {
                let total = merged.entry(Arc::clone(key)).or_default();
                total.0 += admitted;
                total.1 += throttled;
            }
        }
        let mut out: Vec<_> = merged.into_iter().map(|(k, (a, t))| (k, a, t)).collect();
        out.sort();
        out
    }
}

impl std::fmt::Debug for MemoryLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryLimits")
    }
}

impl std::fmt::Debug for MemoryQuotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryQuotas")
    }
}

impl std::fmt::Debug for UsageBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsageBook")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_calendar_periods_in_utc() {
        let now: Zoned = "2026-11-25T13:45:00+00:00[UTC]".parse().expect("time");
        let (s, e) = period_bounds(QuotaPeriod::Day, &now);
        assert_eq!(
            (s.to_string(), e.to_string()),
            (
                "2026-11-25T00:00:00+00:00[UTC]".into(),
                "2026-11-26T00:00:00+00:00[UTC]".into()
            )
        );
        let (s, e) = period_bounds(QuotaPeriod::Week, &now);
        assert_eq!(s.to_string(), "2026-11-23T00:00:00+00:00[UTC]", "weeks start on Monday");
        assert_eq!(e.to_string(), "2026-11-30T00:00:00+00:00[UTC]");
        let (s, e) = period_bounds(QuotaPeriod::Month, &now);
        assert_eq!(
            (s.to_string(), e.to_string()),
            (
                "2026-11-01T00:00:00+00:00[UTC]".into(),
                "2026-12-01T00:00:00+00:00[UTC]".into()
            )
        );
    }

    #[test]
    fn quotas_count_admitted_requests_only() {
        let quotas = MemoryQuotas::default();
        let q = QuotaSpec {
            limit: 2,
            period: QuotaPeriod::Day,
        };
        assert!(quotas.charge("a", &q).admitted);
        assert!(quotas.charge("a", &q).admitted);
        let third = quotas.charge("a", &q);
        assert!(!third.admitted);
        assert_eq!((third.used, third.remaining), (2, 0));
        assert!(quotas.charge("b", &q).admitted, "keys do not share a quota");
    }

    #[test]
    fn a_quota_shared_by_threads_admits_exactly_its_limit() {
        let quotas = Arc::new(MemoryQuotas::default());
        let q = QuotaSpec {
            limit: 1_000,
            period: QuotaPeriod::Month,
        };
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let quotas = Arc::clone(&quotas);
                std::thread::spawn(move || (0..400).filter(|_| quotas.charge("shared", &q).admitted).count())
            })
            .collect();
        let admitted: usize = threads.into_iter().map(|t| t.join().expect("charging thread")).sum();
        assert_eq!(
            admitted, 1_000,
            "1,600 requests on four threads against a quota of 1,000"
        );
        let state = quotas.peek("shared", &q);
        assert_eq!((state.used, state.remaining, state.admitted), (1_000, 0, false));
    }

    #[test]
    fn a_counter_starts_again_in_a_new_period_and_never_goes_back() {
        let counter = QuotaCounter::default();
        let day = |day| PeriodTag { kind: 0, day };
        assert_eq!(counter.apply(day(20_000), 2, true), (true, 1));
        assert_eq!(counter.apply(day(20_000), 2, true), (true, 2));
        assert_eq!(counter.apply(day(20_000), 2, true), (false, 2));
        assert_eq!(
            counter.apply(day(20_000), 2, false),
            (false, 2),
            "a peek counts nothing"
        );
        assert_eq!(
            counter.apply(day(20_001), 2, true),
            (true, 1),
            "the next day starts at zero"
        );
        assert_eq!(
            counter.apply(day(20_000), 2, true),
            (true, 2),
            "a request that raced the day's end counts into the new day"
        );
        let week = PeriodTag { kind: 1, day: 19_999 };
        assert_eq!(
            counter.apply(week, 2, true),
            (true, 1),
            "another kind of period (a new plan) starts again, even one that began earlier"
        );
    }

    #[test]
    fn cached_periods_match_the_calendar() {
        let periods = Periods::default();
        for text in [
            "2026-11-25T13:45:00Z",
            "2026-11-30T23:59:59.999Z",
            "2026-12-01T00:00:00Z",
            "2024-02-29T12:00:00Z",
            "2026-12-31T23:59:59Z",
            "2027-01-01T00:00:00.5Z",
        ] {
            let now: jiff::Timestamp = text.parse().expect("time");
            for period in [QuotaPeriod::Day, QuotaPeriod::Week, QuotaPeriod::Month] {
                let (start, end) = period_bounds(period, &now.to_zoned(TimeZone::UTC));
                let expected = (start.timestamp(), end.timestamp());
                // Twice: computed (and stored), then read from the slot.
                assert_eq!(periods.bounds(period, now), expected, "{period:?} at {text}");
                assert_eq!(periods.bounds(period, now), expected, "{period:?} at {text}, cached");
            }
        }
    }

    #[test]
    fn buckets_admit_the_burst_then_refuse() {
        let limit = ThrottleSpec {
            rate: 1,
            burst: 3,
            per: ThrottleScope::All,
        };
        let limiter = Limiter::new(&limit);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let admitted: Vec<bool> = (0..5).map(|_| limiter.acquire(ip).admitted).collect();
        assert_eq!(admitted, [true, true, true, false, false]);
        let refused = limiter.acquire(ip);
        assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1));
    }

    #[test]
    fn usage_counted_on_several_threads_is_summed_per_key() {
        let book = Arc::new(UsageBook::default());
        let a: Arc<str> = Arc::from("key-a");
        let b: Arc<str> = Arc::from("key-b");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (book, a, b) = (Arc::clone(&book), Arc::clone(&a), Arc::clone(&b));
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        book.count(&a, Counted::Admitted);
                    }
                    book.count(&b, Counted::Throttled);
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("counting thread");
        }
        assert_eq!(book.snapshot(), vec![(a, 400, 0), (b, 0, 4)]);
    }
}

/// One line of the rate-limit headers (IETF draft `RateLimit-Policy` / `RateLimit`).
#[derive(Debug, Clone, Copy)]
struct Item {
    name: &'static str,
    /// Quota units per window.
    quota: u64,
    /// Window, in seconds.
    window: u64,
    /// Units left.
    remaining: u64,
    /// Seconds until the limit is back to full.
    reset: u64,
}

/// The `RateLimit-Policy` values of one operation and plan, by how many limits a report holds: the value only
/// depends on which limits apply, so it is written once and shared by every response.
type PolicyValues = [OnceLock<http::HeaderValue>; 5];

/// The limits a request went through, for its `RateLimit-Policy` and `RateLimit` headers.
#[derive(Debug, Default)]
pub struct Report {
    items: Vec<Item>,
    policies: Option<Arc<PolicyValues>>,
}

impl Report {
    fn bucket(&mut self, name: &'static str, limit: &ThrottleSpec, state: &BucketState) {
        let rate = u64::from(limit.rate.max(1));
        let burst = u64::from(limit.burst);
        let remaining = u64::from(state.remaining).min(burst);
        self.items.push(Item {
            name,
            quota: burst,
            window: burst.div_ceil(rate),
            remaining,
            reset: (burst - remaining).div_ceil(rate),
        });
    }

    fn quota(&mut self, limit: &QuotaSpec, state: &QuotaState) {
        self.items.push(Item {
            name: "quota",
            quota: limit.limit,
            window: state.window.as_secs(),
            remaining: state.remaining,
            reset: state.resets_in.as_secs(),
        });
    }

    /// Adds `RateLimit-Policy` and `RateLimit` to `headers` (nothing for an operation without limits).
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        if self.items.is_empty() {
            return;
        }
        let policy = match self.policies.as_ref().and_then(|p| p.get(self.items.len())) {
            Some(cached) => cached
                .get_or_init(|| self.write(|i| ("q", i.quota, "w", i.window)))
                .clone(),
            None => self.write(|i| ("q", i.quota, "w", i.window)),
        };
        headers.insert(RATELIMIT_POLICY.clone(), policy);
        headers.insert(RATELIMIT.clone(), self.write(|i| ("r", i.remaining, "t", i.reset)));
    }

    /// `"name";a=1;b=2, …` for every item; plain ASCII, so always a valid header value.
    fn write(&self, fields: impl Fn(&Item) -> (&'static str, u64, &'static str, u64)) -> http::HeaderValue {
        let mut out = Vec::with_capacity(32 * self.items.len());
        let mut digits = itoa::Buffer::new();
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                out.extend_from_slice(b", ");
            }
            let (a, x, b, y) = fields(item);
            out.push(b'"');
            out.extend_from_slice(item.name.as_bytes());
            out.extend_from_slice(b"\";");
            out.extend_from_slice(a.as_bytes());
            out.push(b'=');
            out.extend_from_slice(digits.format(x).as_bytes());
            out.push(b';');
            out.extend_from_slice(b.as_bytes());
            out.push(b'=');
            out.extend_from_slice(digits.format(y).as_bytes());
        }
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(out))
            .unwrap_or_else(|_| http::HeaderValue::from_static(""))
    }
}

static RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
static RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// Runs the throttles and the quota of one request, in order.
#[derive(Clone)]
pub struct Limits {
    rates: Arc<dyn RateLimits>,
    /// `RateLimit-Policy` values per operation and plan slot (no plan, then each plan).
    policies: Arc<Vec<Arc<PolicyValues>>>,
    plan_slots: usize,
    quotas: Arc<dyn Quotas>,
    /// Per-key counts.
    pub usage: Arc<UsageBook>,
    trust_proxy: bool,
    /// The API-wide bucket in force: the stage's when it sets one, else [`ApiSpec::throttle`].
    api_throttle: Option<ThrottleSpec>,
    /// Buckets, quotas and usage shared with the API's other replicas (`x-gateway.shared`): `rates` then only
    /// pre-checks what this replica alone has used.
    shared: Option<Shared>,
}

/// The shared side of [`Limits`].
#[derive(Clone)]
struct Shared {
    limits: Arc<SharedLimits>,
    on_failure: OnFailure,
    /// Before every key of this API's limits: the stage served (`prod:`), so that stages sharing a Redis keep their
    /// limits apart; empty without stages.
    scope: Arc<str>,
    periods: Arc<Periods>,
}

/// What the throttle phase charged in Redis, for the quota phase to enforce, or to give back if the request is
/// refused in between.
pub struct SharedCharge {
    limits: Arc<SharedLimits>,
    /// The quota's verdict; `None` without a quota; `Some(None)` when Redis could not say.
    quota: Option<Option<(QuotaSpec, QuotaState)>>,
    /// The quota counter charged, to give back.
    quota_key: Option<String>,
    /// The key whose usage was counted as admitted, to give back.
    counted: Option<Arc<str>>,
}

impl std::fmt::Debug for SharedCharge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCharge")
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl SharedCharge {
    /// Gives the charge back: the request it was made for was refused after the throttle phase.
    pub fn refund(self) {
        drop(self);
    }

    /// Keeps the charge: the quota phase admitted the request.
    fn keep(&mut self) {
        self.quota_key = None;
        self.counted = None;
    }
}

impl Drop for SharedCharge {
    /// A charge dropped without [`SharedCharge::keep`] — the request refused before the quota phase, or gone (the
    /// client disconnected, the request timed out) — is given back.
    fn drop(&mut self) {
        self.limits.refund(self.quota_key.take(), self.counted.take());
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("trust_proxy", &self.trust_proxy)
            .field("shared", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// One check of a request: its name in the headers, its bucket (which may borrow the caller's key name) and its
/// limit.
type Check<'a, 'c> = (&'static str, Bucket<'c>, &'a ThrottleSpec);

impl Limits {
    /// In-memory limits for `api`, with `api_throttle` as the API-wide bucket (what the stage being served says,
    /// else [`ApiSpec::throttle`]). With `trust_proxy`, the client address comes from `X-Forwarded-For`.
    pub fn in_memory(api: &ApiSpec, api_throttle: Option<ThrottleSpec>, trust_proxy: bool) -> Self {
        let plan_slots = api.usage_plans.len() + 1;
        Self {
            rates: Arc::new(MemoryLimits::new(api, api_throttle.as_ref())),
            policies: Arc::new((0..api.operations.len() * plan_slots).map(|_| Arc::default()).collect()),
            plan_slots,
            quotas: Arc::new(MemoryQuotas::default()),
            usage: Arc::new(UsageBook::default()),
            trust_proxy,
            api_throttle,
            shared: None,
        }
    }

    /// The limits kept in `shared` as well (the in-memory buckets stay, as this replica's pre-check), their keys
    /// scoped to `stage` when one is served; `on_failure` says what happens while Redis cannot answer.
    #[must_use]
    pub fn with_shared(mut self, shared: Arc<SharedLimits>, on_failure: OnFailure, stage: Option<&str>) -> Self {
        self.shared = Some(Shared {
            limits: shared,
            on_failure,
            scope: Arc::from(crate::shared::stage_scope(stage)),
            periods: Arc::default(),
        });
        self
    }

    /// The shared limits, when the API has them.
    pub fn shared(&self) -> Option<&Arc<SharedLimits>> {
        self.shared.as_ref().map(|s| &s.limits)
    }

    /// Whether the checks wait for Redis ([`Limits::check_shared`] instead of [`Limits::check`]).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// The API-wide bucket in force.
    pub fn api_throttle(&self) -> Option<&ThrottleSpec> {
        self.api_throttle.as_ref()
    }

    /// The quotas store (for usage reports).
    pub fn quotas(&self) -> &dyn Quotas {
        &*self.quotas
    }

    /// The client's address: the connection's peer, or the last `X-Forwarded-For` hop behind a trusted proxy.
    pub fn client_ip(&self, parts: &http::request::Parts, ctx: &RequestCtx) -> IpAddr {
        let peer = ctx.client.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        if !self.trust_proxy {
            return peer;
        }
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse().ok())
            .next_back()
            .unwrap_or(peer)
    }

    /// The report a request's headers will show, and its checks in order (API-wide, operation, the caller's plan).
    fn checks<'a, 'c>(
        &'a self,
        api: &'a ApiSpec,
        index: usize,
        parts: &http::request::Parts,
        ctx: &'c RequestCtx,
    ) -> (Report, [Option<Check<'a, 'c>>; 3]) {
        let caller = ctx.caller.as_ref();
        let slot = index * self.plan_slots + caller.and_then(|c| c.plan).map_or(0, |p| p + 1);
        let report = Report {
            items: Vec::with_capacity(4),
            policies: self.policies.get(slot).cloned(),
        };
        let op = &api.operations[index.min(api.operations.len().saturating_sub(1))];
        let needs_ip = [self.api_throttle.as_ref(), op.throttle.as_ref()]
            .into_iter()
            .flatten()
            .any(|t| t.per == ThrottleScope::ClientIp);
        let client = if needs_ip {
            self.client_ip(parts, ctx)
        } else {
            IpAddr::from([0, 0, 0, 0])
        };
        let plan = caller.and_then(|c| c.plan.map(|p| (c, p, &api.usage_plans[p])));
        let checks = [
            self.api_throttle.as_ref().map(|l| ("api", Bucket::Api { client }, l)),
            op.throttle
                .as_ref()
                .map(|l| ("operation", Bucket::Operation { index, client }, l)),
            plan.and_then(|(c, p, plan)| {
                let key = c.key_name()?;
                plan.throttle
                    .as_ref()
                    .map(|l| ("plan", Bucket::Plan { index: p, key }, l))
            }),
        ];
        (report, checks)
    }

    /// The throttles, in order (API-wide, operation, the caller's plan); the first refusal stops the checks. The
    /// report (for the `RateLimit-*` headers) comes back either way.
    pub fn check(
        &self,
        api: &ApiSpec,
        index: usize,
        parts: &http::request::Parts,
        ctx: &RequestCtx,
    ) -> (Report, Result<(), GatewayError>) {
        let (mut report, checks) = self.checks(api, index, parts, ctx);
        for (name, bucket, limit) in checks.into_iter().flatten() {
            let state = self.rates.acquire(bucket, limit);
            report.bucket(name, limit, &state);
            if !state.admitted {
                if let Some(name) = ctx.caller.as_ref().and_then(Caller::key_name) {
                    self.usage.count(name, Counted::Throttled);
                }
                return (report, Err(throttled(name, limit, state.retry_after)));
            }
        }
        // The quota joins the report when it is charged (see `charge`): one look at the counters per request.
        (report, Ok(()))
    }

    /// [`Limits::check`] against the buckets shared through Redis, charging the quota and counting the usage in the
    /// same round trip (the quota phase enforces the quota's verdict, see [`crate::shared::limits`]). This replica's
    /// own buckets are asked first: what they refuse is refused without a round trip.
    pub async fn check_shared(
        &self,
        api: &ApiSpec,
        index: usize,
        parts: &http::request::Parts,
        ctx: &mut RequestCtx,
    ) -> Result<(), GatewayError> {
        let Some(shared) = &self.shared else {
            let (report, admitted) = self.check(api, index, parts, ctx);
            ctx.limits = Some(report);
            return admitted;
        };
        let (mut report, checks) = self.checks(api, index, parts, ctx);
        let key_name = ctx.caller.as_ref().and_then(Caller::key_name).cloned();
        let mut buckets = Vec::with_capacity(3);
        let mut names = Vec::with_capacity(3);
        let mut refused_here = None;
        for (name, bucket, limit) in checks.into_iter().flatten() {
            let state = self.rates.acquire(bucket, limit);
            if !state.admitted {
                report.bucket(name, limit, &state);
                refused_here = Some(throttled(name, limit, state.retry_after));
                break;
            }
            buckets.push(BucketCheck {
                key: bucket_key(&shared.scope, api, bucket, limit),
                limit,
            });
            names.push(name);
        }
        if let Some(refused) = refused_here {
            shared.limits.throttled_locally(key_name.as_ref());
            ctx.limits = Some(report);
            return Err(refused);
        }
        let caller = ctx.caller.as_ref();
        let quota = caller
            .and_then(|c| Some((c.key_name()?, api.usage_plans.get(c.plan?)?.quota.as_ref()?)))
            .map(|(name, limit)| {
                let now = jiff::Timestamp::now();
                let bounds = shared.periods.bounds(limit.period, now);
                let charge = QuotaCharge {
                    key: quota_counter(&shared.scope, name, limit.period, bounds.0),
                    limit,
                    expires_at: bounds.1.as_second(),
                };
                (charge, bounds, now)
            });
        if buckets.is_empty() && quota.is_none() && key_name.is_none() {
            // A caller with a token alone on an operation without buckets: nothing to ask Redis.
            ctx.limits = Some(report);
            return Ok(());
        }
        let verdict = shared
            .limits
            .check(&buckets, quota.as_ref().map(|(q, ..)| q), key_name.as_deref())
            .await;
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(err) => {
                tracing::debug!(error = %err, "shared limits unavailable");
                ctx.limits = Some(report);
                if shared.on_failure.limits == FailMode::Closed && !buckets.is_empty() {
                    return Err(GatewayError::new(
                        ErrorKind::ServiceUnavailable,
                        "the rate limits cannot be checked right now",
                    )
                    .with_reason("limits_unavailable"));
                }
                ctx.charged = quota.map(|_| {
                    Box::new(SharedCharge {
                        limits: Arc::clone(&shared.limits),
                        quota: Some(None),
                        quota_key: None,
                        counted: None,
                    })
                });
                return Ok(());
            }
        };
        for (i, ((name, bucket), remaining)) in names.iter().zip(&buckets).zip(&verdict.remaining).enumerate() {
            let refused = verdict.refused == Some(i);
            let state = BucketState {
                admitted: !refused,
                remaining: *remaining,
                retry_after: if refused { verdict.retry_after } else { Duration::ZERO },
            };
            report.bucket(name, bucket.limit, &state);
            if refused {
                ctx.limits = Some(report);
                return Err(throttled(name, bucket.limit, verdict.retry_after));
            }
        }
        ctx.limits = Some(report);
        let (quota_admitted, quota_state) = match (quota, verdict.quota) {
            (Some((charge, bounds, now)), Some((admitted, used))) => {
                let state = quota_state(charge.limit, admitted, used, bounds, now);
                (admitted.then_some(charge.key), Some(Some((*charge.limit, state))))
            }
            (Some(_), None) => (None, Some(None)),
            (None, _) => (None, None),
        };
        let counted_admitted = quota_state
            .as_ref()
            .is_none_or(|q| q.as_ref().is_some_and(|(_, s)| s.admitted));
        let counted = key_name.filter(|_| counted_admitted);
        if quota_state.is_some() || counted.is_some() {
            ctx.charged = Some(Box::new(SharedCharge {
                limits: Arc::clone(&shared.limits),
                quota: quota_state,
                quota_key: quota_admitted,
                counted,
            }));
        }
        Ok(())
    }

    /// Charges the caller's quota, last of all checks, so that only admitted requests count.
    pub fn charge(&self, api: &ApiSpec, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
        if let Some(shared) = &self.shared {
            return charged(shared, ctx);
        }
        // Usage and quotas are per API key: a caller admitted by a token alone has neither.
        let Some((caller, name)) = ctx.caller.as_ref().and_then(|c| Some((c, c.key_name()?))) else {
            return Ok(());
        };
        let quota = caller.plan.and_then(|p| api.usage_plans[p].quota.as_ref());
        if let Some(quota) = quota {
            let state = self.quotas.charge(name, quota);
            ctx.limits.get_or_insert_with(Report::default).quota(quota, &state);
            if !state.admitted {
                self.usage.count(name, Counted::Throttled);
                return Err(quota_exceeded(quota, &state));
            }
        }
        self.usage.count(name, Counted::Admitted);
        Ok(())
    }

    /// The quotas' figures now for each (key name, quota) of `keys`, in order: from Redis in one round trip when
    /// they are shared (all `None` when Redis cannot say).
    pub async fn quotas_now(&self, keys: &[(&str, &QuotaSpec)]) -> Vec<Option<QuotaState>> {
        let Some(shared) = &self.shared else {
            return keys
                .iter()
                .map(|(name, quota)| Some(self.quotas.peek(name, quota)))
                .collect();
        };
        let now = jiff::Timestamp::now();
        let bounds: Vec<_> = keys.iter().map(|(_, q)| shared.periods.bounds(q.period, now)).collect();
        let counters: Vec<String> = keys
            .iter()
            .zip(&bounds)
            .map(|((name, quota), bounds)| quota_counter(&shared.scope, name, quota.period, bounds.0))
            .collect();
        match shared.limits.quotas_used(&counters).await {
            Ok(used) => keys
                .iter()
                .zip(bounds)
                .zip(used)
                .map(|(((_, quota), bounds), used)| Some(quota_state(quota, used < quota.limit, used, bounds, now)))
                .collect(),
            Err(_) => vec![None; keys.len()],
        }
    }
}

/// The quota phase of shared limits: the verdict the throttle phase brought back from Redis.
fn charged(shared: &Shared, ctx: &mut RequestCtx) -> Result<(), GatewayError> {
    // Taken and kept: from here on the charge stands (nothing gives it back).
    let Some(mut charge) = ctx.charged.take() else {
        return Ok(());
    };
    charge.keep();
    match charge.quota.take() {
        None => Ok(()),
        Some(Some((quota, state))) => {
            ctx.limits.get_or_insert_with(Report::default).quota(&quota, &state);
            if state.admitted {
                Ok(())
            } else {
                Err(quota_exceeded(&quota, &state))
            }
        }
        Some(None) => match shared.on_failure.quotas {
            FailMode::Open => {
                tracing::debug!("quota not counted: Redis is unavailable (on_failure: open)");
                Ok(())
            }
            FailMode::Closed => Err(GatewayError::new(
                ErrorKind::ServiceUnavailable,
                "the quota cannot be checked right now",
            )
            .with_reason("quota_unavailable")),
        },
    }
}

/// The Redis key (without the prefix) of the quota counter of key `name` for the `period` starting at `start`: a
/// new period is a new counter.
fn quota_counter(scope: &str, name: &str, period: QuotaPeriod, start: jiff::Timestamp) -> String {
    format!("{scope}quota:{name}:{}{}", period_name(period), start.as_second())
}

/// The key of `bucket` in Redis (without the prefix): by operation id and plan name, which every replica agrees
/// on, never by index.
fn bucket_key(scope: &str, api: &ApiSpec, bucket: Bucket<'_>, limit: &ThrottleSpec) -> String {
    // A bucket for every caller has one key, whatever address the request came from.
    let client = |client: IpAddr| match limit.per {
        ThrottleScope::All => String::from("*"),
        ThrottleScope::ClientIp => client.to_string(),
    };
    match bucket {
        Bucket::Api { client: ip } => format!("{scope}rl:api:{}", client(ip)),
        Bucket::Operation { index, client: ip } => {
            let id = api.operations.get(index).map_or("?", |op| op.id);
            format!("{scope}rl:op:{id}:{}", client(ip))
        }
        Bucket::Plan { index, key } => {
            let plan = api.usage_plans.get(index).map_or("?", |p| p.name);
            format!("{scope}rl:plan:{plan}:{key}")
        }
    }
}

fn throttled(name: &'static str, limit: &ThrottleSpec, retry_after: Duration) -> GatewayError {
    let detail = format!(
        "too many requests: the {name} limit of {} a second is used up",
        limit.rate
    );
    GatewayError::too_many(ErrorKind::Throttled, detail, retry_after).with_reason(name)
}

fn quota_exceeded(quota: &QuotaSpec, state: &QuotaState) -> GatewayError {
    let detail = format!(
        "the quota of {} requests a {} is used up",
        quota.limit,
        period_name(quota.period)
    );
    GatewayError {
        resets_at: Some(state.resets_at.to_string().into_boxed_str()),
        ..GatewayError::too_many(ErrorKind::QuotaExceeded, detail, state.resets_in)
    }
}

fn period_name(period: QuotaPeriod) -> &'static str {
    match period {
        QuotaPeriod::Day => "day",
        QuotaPeriod::Week => "week",
        QuotaPeriod::Month => "month",
    }
}
