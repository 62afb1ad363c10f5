//! Retries: which failed tries are retried, the backoff between tries, and the budget that keeps retries from
//! multiplying an outage.
//!
//! The budget is Finagle's and Linkerd's: over a sliding window, retries may be at most `ratio` of the requests
//! plus a small constant (`min`), so that a quiet upstream can still be retried while a failing one under load
//! sees at most `1 + ratio` times its normal traffic, however many tries each request is allowed.

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::spec::RetrySpec;

/// Buckets of the sliding window.
const BUCKETS: usize = 10;

/// Why a try failed, as far as retrying and ejection care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No connection could be made: nothing of the request was sent.
    Connect,
    /// The connection broke before the response head arrived.
    Reset,
    /// No response head within the timeout.
    Timeout,
    /// The upstream answered with this (`5xx`) status.
    Status(u16),
}

impl Failure {
    /// Whether `spec` retries this failure.
    pub(super) fn retried_by(self, spec: &RetrySpec) -> bool {
        match self {
            Failure::Connect => spec.on.connect_error,
            Failure::Reset => spec.on.reset,
            Failure::Timeout => spec.on.timeout,
            Failure::Status(status) => spec.on.statuses.contains(&status),
        }
    }

    /// Whether the failure counts against the server for passive ejection: transport failures and the gateway
    /// statuses (`502`, `503`, `504`), like Envoy's `consecutive_gateway_failure`.
    pub(super) fn counts_against_server(self) -> bool {
        match self {
            Failure::Status(status) => matches!(status, 502..=504),
            Failure::Connect | Failure::Reset | Failure::Timeout => true,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Failure::Connect => "connect_error",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status",
        }
    }
}

/// The wait before retry `n` (1 for the first): a random duration up to `backoff × 2^(n-1)`, capped.
pub(super) fn backoff(spec: &RetrySpec, n: u32) -> Duration {
    let ceiling = spec
        .backoff
        .saturating_mul(1 << n.saturating_sub(1).min(16))
        .min(spec.max_backoff);
    let ceiling_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
    Duration::from_micros(fastrand::u64(0..=ceiling_us))
}

/// Requests and retries over a sliding window of [`BUCKETS`] buckets, shared by every worker.
#[derive(Debug)]
pub(super) struct Budget {
    ratio: f64,
    min: u64,
    bucket_ms: u64,
    epoch: Instant,
    /// Which bucket period (`now / bucket_ms`) each slot holds.
    periods: [AtomicU64; BUCKETS],
    requests: [AtomicU64; BUCKETS],
    retries: [AtomicU64; BUCKETS],
    /// Retries refused by the budget since start.
    refused: AtomicU64,
}

impl Budget {
    pub(super) fn new(spec: &RetrySpec) -> Self {
        let window_ms = u64::try_from(spec.budget_window.as_millis())
            .unwrap_or(u64::MAX)
            .max(BUCKETS as u64);
        Self {
            ratio: spec.budget_ratio,
            min: u64::from(spec.budget_min),
            bucket_ms: window_ms / BUCKETS as u64,
            epoch: Instant::now(),
            periods: Default::default(),
            requests: Default::default(),
            retries: Default::default(),
            refused: AtomicU64::new(0),
        }
    }

    fn period(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX) / self.bucket_ms
    }

    /// The slot of the current period, cleared if it held an older one. Two workers clearing it at once may lose
    /// a count or two; the budget is a bound on an outage's amplification, not an invoice.
    fn slot(&self, period: u64) -> usize {
        let i = usize::try_from(period % BUCKETS as u64).unwrap_or(0);
        if self.periods[i].load(Relaxed) != period {
            self.periods[i].store(period, Relaxed);
            self.requests[i].store(0, Relaxed);
            self.retries[i].store(0, Relaxed);
        }
        i
    }

    /// Counts a request (its first try).
    pub(super) fn request(&self) {
        let i = self.slot(self.period());
        self.requests[i].fetch_add(1, Relaxed);
    }

    /// Sums of `(requests, retries)` over the window.
    fn window(&self, period: u64) -> (u64, u64) {
        let mut sums = (0, 0);
        for i in 0..BUCKETS {
            let p = self.periods[i].load(Relaxed);
            if p + (BUCKETS as u64) > period && p <= period {
                sums.0 += self.requests[i].load(Relaxed);
                sums.1 += self.retries[i].load(Relaxed);
            }
        }
        sums
    }

    /// Takes one retry from the budget, if it has one.
    pub(super) fn try_retry(&self) -> bool {
        let period = self.period();
        let (requests, retries) = self.window(period);
        // `as` on a count of requests: exact far beyond any window's traffic.
        let allowed = self.min + (requests as f64 * self.ratio) as u64;
        if retries >= allowed {
            self.refused.fetch_add(1, Relaxed);
            return false;
        }
        let i = self.slot(period);
        self.retries[i].fetch_add(1, Relaxed);
        true
    }

    pub(super) fn view(&self) -> BudgetView {
        let (requests, retries) = self.window(self.period());
        BudgetView {
            requests_in_window: requests,
            retries_in_window: retries,
            allowed_in_window: self.min + (requests as f64 * self.ratio) as u64,
            refused_total: self.refused.load(Relaxed),
        }
    }
}

/// The retry budget as `GET /_gateway/upstreams` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct BudgetView {
    requests_in_window: u64,
    retries_in_window: u64,
    allowed_in_window: u64,
    refused_total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{RetryMethods, RetryOn};

    fn spec(ratio: f64, min: u32) -> RetrySpec {
        RetrySpec {
            attempts: 2,
            on: RetryOn {
                connect_error: true,
                reset: true,
                timeout: false,
                statuses: &[502, 503, 504],
            },
            methods: RetryMethods::Idempotent,
            budget_ratio: ratio,
            budget_min: min,
            budget_window: Duration::from_secs(10),
            backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
        }
    }

    #[test]
    fn the_budget_allows_the_ratio_of_requests_plus_the_minimum() {
        let budget = Budget::new(&spec(0.2, 3));
        for _ in 0..100 {
            budget.request();
        }
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 23);
        assert_eq!(budget.view().refused_total, 77);
    }

    #[test]
    fn backoff_is_jittered_under_a_doubling_capped_ceiling() {
        let spec = spec(0.2, 0);
        for n in 1..8 {
            let ceiling = Duration::from_millis(25 * (1 << (n - 1))).min(Duration::from_millis(250));
            for _ in 0..50 {
                assert!(backoff(&spec, n) <= ceiling);
            }
        }
        let waits: std::collections::HashSet<Duration> = (0..20).map(|_| backoff(&spec, 3)).collect();
        assert!(waits.len() > 1, "the wait is random");
    }

    #[test]
    fn failures_are_classified() {
        let spec = spec(0.2, 0);
        assert!(Failure::Connect.retried_by(&spec));
        assert!(!Failure::Timeout.retried_by(&spec));
        assert!(Failure::Status(503).retried_by(&spec));
        assert!(!Failure::Status(500).retried_by(&spec));
        assert!(!Failure::Status(500).counts_against_server());
        assert!(Failure::Status(502).counts_against_server());
    }
}
