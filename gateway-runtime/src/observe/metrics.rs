//! Metrics: counters and latency histograms per operation, read by the admin listener as Prometheus text
//! (`GET /metrics`) and as JSON for the live page (`GET /_gateway/stats`).
//!
//! ```text
//! worker 0 ─► its WorkerMetrics (one OpCounters per operation, the unmatched requests, the upstreams) ─┐
//! worker 1 ─► its WorkerMetrics                                                                       ├─► snapshot
//! …                                                                                                   ┘   (summed on
//!                                                                                    scrape) ─► text or JSON
//! ```
//!
//! Like everything on the request path, the counters are per worker: each worker's router holds its own
//! [`WorkerMetrics`], so that recording a request is a handful of relaxed atomic additions on cache lines no other
//! core writes. A scrape sums the workers' shards into a [`Snapshot`]; the Prometheus text is encoded from it by
//! `prometheus-client` (the Prometheus project's Rust client, which has no global registry: several gateways in
//! one test process, or several APIs in one gateway, each keep their own). Label values are bounded by the spec:
//! operation ids, upstream names, error kinds — never a raw path.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::response::Response;
use http::Method;
use http_body::Body as _;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::error::ErrorKind;
use crate::pipeline::{CacheStatus, RequestCtx};
use crate::spec::ApiSpec;

/// The upper bounds of the latency buckets, in seconds (a `+Inf` bucket follows): from half a millisecond, where a
/// cache hit or a mock lands, to ten seconds, a slow upstream's timeout.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`LATENCY_BUCKETS`] in microseconds, to place a sample without floating point.
const BUCKET_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Buckets including `+Inf`.
const BUCKETS: usize = LATENCY_BUCKETS.len() + 1;

/// Status classes `1xx` to `5xx`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Cache outcomes, in the order of [`cache_index`].
const CACHE_RESULTS: [&str; 3] = ["hit", "miss", "bypass"];

/// Which bucket refused a throttled request ([`crate::error::GatewayError::reason`]).
pub const THROTTLE_SCOPES: [&str; 3] = ["api", "operation", "plan"];

/// Why authentication refused a request ([`crate::error::GatewayError::reason`]).
pub const AUTH_REASONS: [&str; 4] = ["missing", "invalid", "unavailable", "forbidden"];

/// The methods unmatched requests are counted by; anything else is `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// The `operation` label of requests that matched no operation (`404`, `405`, CORS preflights): no operation id
/// can contain parentheses.
pub const UNMATCHED: &str = "(none)";

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// A latency histogram with [`LATENCY_BUCKETS`].
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = micros(elapsed);
        // The first bucket whose bound is at least the sample (`le`), or `+Inf`.
        let bucket = BUCKET_MICROS.partition_point(|&bound| bound < us);
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(us, Relaxed);
    }

    fn add_to(&self, into: &mut LatencySnapshot) {
        for (sum, count) in into.counts.iter_mut().zip(&self.counts) {
            *sum += count.load(Relaxed);
        }
        into.sum_micros += self.sum_micros.load(Relaxed);
    }
}

fn add(into: &mut [u64], from: &[AtomicU64]) {
    for (sum, count) in into.iter_mut().zip(from) {
        *sum += count.load(Relaxed);
    }
}

/// One operation's counters in one worker.
#[derive(Debug, Default)]
struct OpCounters {
    /// By status class.
    requests: [AtomicU64; 5],
    duration: Histogram,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// By [`CACHE_RESULTS`].
    cache: [AtomicU64; 3],
    /// Gateway-made responses, by [`ErrorKind::index`].
    errors: [AtomicU64; ErrorKind::ALL.len()],
    /// By [`THROTTLE_SCOPES`].
    throttled: [AtomicU64; 3],
    /// By [`AUTH_REASONS`].
    auth_failures: [AtomicU64; 4],
    /// Responses that failed: a `5xx`, or any response the gateway made itself ([`OperationSnapshot::failures`]).
    failures: AtomicU64,
}

impl OpCounters {
    fn record(&self, ctx: &RequestCtx, response: &Response) {
        let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
        self.requests[class].fetch_add(1, Relaxed);
        self.duration.observe(ctx.started.elapsed());
        if let Some(bytes) = ctx.bytes_in {
            self.bytes_in.fetch_add(bytes, Relaxed);
        }
        // Bodies of a known length; a streamed body of unknown length is not counted.
        if let Some(bytes) = response.body().size_hint().exact() {
            self.bytes_out.fetch_add(bytes, Relaxed);
        }
        if let Some(cache) = ctx.cache {
            self.cache[cache_index(cache)].fetch_add(1, Relaxed);
        }
        if ctx.error.is_some() || response.status().is_server_error() {
            self.failures.fetch_add(1, Relaxed);
        }
        if let Some(kind) = ctx.error {
            self.errors[kind.index()].fetch_add(1, Relaxed);
            let reasons: &[&str] = match kind {
                ErrorKind::Throttled => &THROTTLE_SCOPES,
                ErrorKind::Unauthorized | ErrorKind::Forbidden | ErrorKind::ServiceUnavailable => &AUTH_REASONS,
                _ => &[],
            };
            if let Some(i) = ctx.reason.and_then(|r| reasons.iter().position(|known| *known == r)) {
                let counters = if kind == ErrorKind::Throttled {
                    &self.throttled[..]
                } else {
                    &self.auth_failures[..]
                };
                counters[i].fetch_add(1, Relaxed);
            }
        }
    }

    fn add_to(&self, into: &mut OperationSnapshot) {
        add(&mut into.requests, &self.requests);
        self.duration.add_to(&mut into.latency);
        into.bytes_in += self.bytes_in.load(Relaxed);
        into.bytes_out += self.bytes_out.load(Relaxed);
        add(&mut into.cache, &self.cache);
        add(&mut into.errors, &self.errors);
        add(&mut into.throttled, &self.throttled);
        add(&mut into.auth_failures, &self.auth_failures);
        into.failures += self.failures.load(Relaxed);
    }
}

fn cache_index(status: CacheStatus) -> usize {
    match status {
        CacheStatus::Hit => 0,
        CacheStatus::Miss => 1,
        CacheStatus::Bypass => 2,
    }
}

/// One worker's counters: what its router records into, and nothing else writes.
#[derive(Debug)]
pub struct WorkerMetrics {
    api: &'static ApiSpec,
    operations: Box<[OpCounters]>,
    /// Requests that matched no operation, by method ([`METHODS`], then `OTHER`) and status class.
    unmatched_requests: [[AtomicU64; 5]; METHODS.len() + 1],
    unmatched: OpCounters,
    /// Upstream exchanges, by upstream index.
    upstreams: Box<[Histogram]>,
    in_flight: AtomicI64,
}

impl WorkerMetrics {
    fn new(api: &'static ApiSpec) -> Self {
        Self {
            api,
            operations: api.operations.iter().map(|_| OpCounters::default()).collect(),
            unmatched_requests: Default::default(),
            unmatched: OpCounters::default(),
            upstreams: api.upstreams.iter().map(|_| Histogram::default()).collect(),
            in_flight: AtomicI64::new(0),
        }
    }

    /// Counts a request in flight until the guard is dropped (when its response head is made, or when the client
    /// went away first).
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }
}

/// A request in flight ([`WorkerMetrics::in_flight`]).
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Where one request is counted: its worker's counters, and its operation (none for unmatched requests).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meter<'a> {
    /// The worker's counters.
    pub worker: &'a WorkerMetrics,
    /// The operation's index in the API, or `None` for a request that matched none.
    pub operation: Option<usize>,
}

impl Meter<'_> {
    /// Records a finished request: called once per response by [`crate::pipeline::finish`].
    pub(crate) fn record(self, ctx: &RequestCtx, response: &Response) {
        let counters = match self.operation.and_then(|i| self.worker.operations.get(i)) {
            Some(counters) => counters,
            None => {
                let method = METHODS.iter().position(|m| *m == ctx.method).unwrap_or(METHODS.len());
                let class = usize::from(response.status().as_u16() / 100).clamp(1, 5) - 1;
                self.worker.unmatched_requests[method][class].fetch_add(1, Relaxed);
                &self.worker.unmatched
            }
        };
        counters.record(ctx, response);
        if let Some(call) = ctx.upstream
            && let Some(i) = self
                .worker
                .api
                .upstreams
                .iter()
                .position(|u| std::ptr::eq(u.name, call.name))
            && let Some(histogram) = self.worker.upstreams.get(i)
        {
            histogram.observe(call.elapsed);
        }
    }
}

/// The metrics of one API in one process: one [`WorkerMetrics`] per worker.
#[derive(Debug, Clone)]
pub struct Metrics {
    api: &'static ApiSpec,
    workers: Arc<[Arc<WorkerMetrics>]>,
    started: Instant,
}

impl Metrics {
    /// Counters for `workers` workers serving `api`.
    pub fn new(api: &'static ApiSpec, workers: usize) -> Self {
        Self {
            api,
            workers: (0..workers.max(1)).map(|_| Arc::new(WorkerMetrics::new(api))).collect(),
            started: Instant::now(),
        }
    }

    /// Worker `index`'s counters (the last worker's for an index beyond them).
    pub fn worker(&self, index: usize) -> Arc<WorkerMetrics> {
        let last = self.workers.len() - 1;
        Arc::clone(&self.workers[index.min(last)])
    }

    /// Every worker's counters summed.
    pub fn snapshot(&self) -> Snapshot {
        let api = self.api;
        let mut operations: Vec<OperationSnapshot> = api
            .operations
            .iter()
            .map(|op| OperationSnapshot::new(op.id, op.method.as_str(), op.template, op.cache.is_some()))
            .collect();
        let mut unmatched = OperationSnapshot::new(UNMATCHED, "", "", false);
        let mut unmatched_requests = vec![[0u64; 5]; METHODS.len() + 1];
        let mut upstreams: Vec<UpstreamSnapshot> = api
            .upstreams
            .iter()
            .map(|u| UpstreamSnapshot {
                name: u.name,
                latency: LatencySnapshot::default(),
                health: None,
            })
            .collect();
        let mut in_flight = 0;
        for worker in self.workers.iter() {
            for (snapshot, counters) in operations.iter_mut().zip(worker.operations.iter()) {
                counters.add_to(snapshot);
            }
            worker.unmatched.add_to(&mut unmatched);
            for (into, from) in unmatched_requests.iter_mut().zip(&worker.unmatched_requests) {
                add(into, from);
            }
            for (snapshot, histogram) in upstreams.iter_mut().zip(worker.upstreams.iter()) {
                histogram.add_to(&mut snapshot.latency);
            }
            in_flight += worker.in_flight.load(Relaxed);
        }
        Snapshot {
            api: api.name,
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            in_flight: in_flight.max(0),
            latency_buckets: LATENCY_BUCKETS,
            error_kinds: ErrorKind::ALL.map(ErrorKind::name),
            operations,
            unmatched,
            unmatched_by_method: METHODS
                .iter()
                .map(Method::as_str)
                .chain(["OTHER"])
                .zip(unmatched_requests)
                .filter(|(_, counts)| counts.iter().any(|&n| n > 0))
                .collect(),
            upstreams,
            cache: None,
            shared: None,
            access_log_dropped: None,
        }
    }
}

/// Summed counters of one API, as the admin listener serves them.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The API's name.
    pub api: &'static str,
    /// Since the server started.
    pub uptime_seconds: f64,
    /// Requests being handled now.
    pub in_flight: i64,
    /// The histograms' bucket bounds, in seconds (`+Inf` is last and implicit).
    pub latency_buckets: [f64; LATENCY_BUCKETS.len()],
    /// The names of the error kinds, in the order of every operation's `errors`.
    pub error_kinds: [&'static str; ErrorKind::ALL.len()],
    /// Per operation, in the spec's table order.
    pub operations: Vec<OperationSnapshot>,
    /// Requests that matched no operation.
    pub unmatched: OperationSnapshot,
    /// Unmatched requests by method and status class (methods with any).
    #[serde(skip)]
    pub unmatched_by_method: Vec<(&'static str, [u64; 5])>,
    /// Per upstream: the time from sending a request to its response head.
    pub upstreams: Vec<UpstreamSnapshot>,
    /// The response cache, when there is one.
    pub cache: Option<CacheGauges>,
    /// The Redis shared with other replicas, when the API has one.
    pub shared: Option<SharedCounters>,
    /// Access log lines dropped because its writer fell behind (when the access log is on).
    pub access_log_dropped: Option<u64>,
}

/// One operation's summed counters.
#[derive(Debug, Clone, Serialize)]
pub struct OperationSnapshot {
    /// Its id ([`UNMATCHED`] for requests that matched none).
    pub id: &'static str,
    /// Its method.
    pub method: &'static str,
    /// Its path template.
    pub template: &'static str,
    /// Its responses may be cached (it has a `cache` setting; the cache may still be off in the stage served).
    pub cached: bool,
    /// Responses by status class, `1xx` to `5xx`.
    pub requests: [u64; 5],
    /// Time from arrival to the response head.
    pub latency: LatencySnapshot,
    /// Request body bytes (of requests with a `Content-Length`).
    pub bytes_in: u64,
    /// Response body bytes (of bodies with a known length).
    pub bytes_out: u64,
    /// Cache hits, misses and bypasses.
    pub cache: [u64; 3],
    /// Gateway-made responses by error kind, in the order of `ErrorKind::ALL`.
    pub errors: [u64; ErrorKind::ALL.len()],
    /// Throttled requests by the bucket that refused them: API-wide, the operation's, the caller's plan.
    pub throttled: [u64; 3],
    /// Authentication refusals: credentials missing, invalid, an authorizer unavailable, forbidden.
    pub auth_failures: [u64; 4],
    /// Responses that failed: every `5xx`, whoever made it, and every response the gateway made itself (`errors`,
    /// of any status). Each response counts once, so this over [`OperationSnapshot::total`] is the error rate.
    pub failures: u64,
}

impl OperationSnapshot {
    fn new(id: &'static str, method: &'static str, template: &'static str, cached: bool) -> Self {
        Self {
            id,
            method,
            template,
            cached,
            requests: [0; 5],
            latency: LatencySnapshot::default(),
            bytes_in: 0,
            bytes_out: 0,
            cache: [0; 3],
            errors: [0; ErrorKind::ALL.len()],
            throttled: [0; 3],
            auth_failures: [0; 4],
            failures: 0,
        }
    }

    /// Every response counted.
    pub fn total(&self) -> u64 {
        self.requests.iter().sum()
    }
}

/// A latency histogram's counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySnapshot {
    /// Samples per bucket (not cumulative), the last being `+Inf`.
    pub counts: [u64; BUCKETS],
    /// The samples' sum, in microseconds.
    pub sum_micros: u64,
}

impl LatencySnapshot {
    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `(upper bound, count)` pairs of the buckets, `+Inf` last, each bucket's own count (the encoder writes
    /// them cumulatively, as Prometheus histograms are).
    fn buckets(&self) -> Vec<(f64, u64)> {
        LATENCY_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts)
            .collect()
    }
}

/// One upstream's exchanges.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamSnapshot {
    /// Its name.
    pub name: &'static str,
    /// From sending the request to the response head (or the failure).
    pub latency: LatencySnapshot,
    /// How many of its servers are in rotation (`2 of 2 up`, `1 of 2 up, 1 ejected`); `None` (not serialized)
    /// without health checks or ejection. Filled in by the admin listener, which knows the upstreams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
}

/// The response cache's size, read at scrape time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CacheGauges {
    /// Stored responses.
    pub entries: u64,
    /// Their weight in bytes.
    pub bytes: u64,
    /// The capacity in bytes.
    pub capacity: u64,
    /// Entries evicted to make room.
    pub evicted: u64,
    /// Entries dropped when their TTL ran out.
    pub expired: u64,
}

/// Calls to the Redis an API shares with its other replicas, read at scrape time.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SharedCounters {
    /// Calls Redis answered.
    pub succeeded: u64,
    /// Calls that failed or timed out, or were not made during the pause after a failure.
    pub failures: u64,
    /// Requests refused by the replica's own buckets without asking Redis.
    pub local_refusals: u64,
}

/// What `gateway_build_info` says.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// The gateway runtime's version.
    pub version: &'static str,
    /// The stage served, if any.
    pub stage: Option<&'static str>,
}

/// The Prometheus (OpenMetrics) text of `snapshots`, one per API (each with its build: its stage), every metric
/// family written once with a series per API (`api` label), as OpenMetrics requires of a gateway of several APIs.
pub fn prometheus_text(snapshots: Vec<(Snapshot, &'static ApiSpec, BuildInfo)>) -> String {
    let mut registry = Registry::with_prefix("gateway");
    registry.register_collector(Box::new(Exported { apis: snapshots }));
    let mut text = String::new();
    // Writing into a `String` cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// The content type of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every API's snapshot, as the registry encodes it on a scrape.
#[derive(Debug)]
struct Exported {
    apis: Vec<(Snapshot, &'static ApiSpec, BuildInfo)>,
}

type Fmt = Result<(), std::fmt::Error>;

/// One series: the API it is of, its other labels, its value.
type Series<'a, T> = (&'a str, Vec<(&'a str, &'a str)>, T);

impl Exported {
    /// A counter family: one series per item `values` yields with a non-zero count.
    fn counters<'a>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        values: impl Iterator<Item = Series<'a, u64>>,
    ) -> Fmt {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (api, labels, value) in values {
            if value == 0 {
                continue;
            }
            let labels: Vec<(&str, &str)> = [("api", api)].into_iter().chain(labels).collect();
            let metric = prometheus_client::metrics::counter::ConstCounter::new(value);
            metric.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn gauges<'a>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        values: impl Iterator<Item = (&'a str, i64)>,
    ) -> Fmt {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (api, value) in values {
            let labels = [("api", api)];
            prometheus_client::metrics::gauge::ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn histograms<'a>(
        encoder: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        values: impl Iterator<Item = Series<'a, &'a LatencySnapshot>>,
    ) -> Fmt {
        let unit = prometheus_client::registry::Unit::Seconds;
        let mut family = encoder.encode_descriptor(name, help, Some(&unit), MetricType::Histogram)?;
        for (api, labels, latency) in values {
            let count = latency.count();
            if count == 0 {
                continue;
            }
            let labels: Vec<(&str, &str)> = [("api", api)].into_iter().chain(labels).collect();
            let sum = Duration::from_micros(latency.sum_micros).as_secs_f64();
            family
                .encode_family(&labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &latency.buckets(), None)?;
        }
        Ok(())
    }

    /// Every API's snapshot.
    fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.apis.iter().map(|(snapshot, _, _)| snapshot)
    }

    /// The operations of every API that served requests, with their API's name.
    fn ops(&self) -> impl Iterator<Item = (&'static str, &OperationSnapshot)> {
        self.snapshots().flat_map(|s| {
            s.operations
                .iter()
                .filter(|op| op.total() > 0)
                .map(move |op| (s.api, op))
        })
    }

    /// [`Exported::ops`], and each API's unmatched requests when there were any.
    fn all(&self) -> impl Iterator<Item = (&'static str, &OperationSnapshot)> {
        self.snapshots().flat_map(|s| {
            s.operations
                .iter()
                .filter(|op| op.total() > 0)
                .chain((s.unmatched.total() > 0).then_some(&s.unmatched))
                .map(move |op| (s.api, op))
        })
    }
}

impl Collector for Exported {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Fmt {
        {
            let mut info = encoder.encode_descriptor(
                "build",
                "The gateway's build: its version, the API compiled in, the spec's SHA-256, the stage served.",
                None,
                MetricType::Info,
            )?;
            for (s, api, build) in &self.apis {
                let labels = [
                    ("api", s.api),
                    ("api_version", api.api_version),
                    ("version", build.version),
                    ("spec_sha256", api.spec_sha256),
                    ("stage", build.stage.unwrap_or("")),
                ];
                info.encode_info(&labels)?;
            }
        }
        let requests = self
            .ops()
            .flat_map(|(api, op)| {
                CLASSES.iter().zip(op.requests).map(move |(class, n)| {
                    (
                        api,
                        vec![("operation", op.id), ("method", op.method), ("status", *class)],
                        n,
                    )
                })
            })
            .chain(self.snapshots().flat_map(|s| {
                s.unmatched_by_method.iter().flat_map(move |(method, counts)| {
                    CLASSES.iter().zip(*counts).map(move |(class, n)| {
                        (
                            s.api,
                            vec![("operation", UNMATCHED), ("method", *method), ("status", *class)],
                            n,
                        )
                    })
                })
            }));
        Self::counters(
            &mut encoder,
            "requests",
            "Responses sent, by operation, method and status class.",
            requests,
        )?;
        Self::histograms(
            &mut encoder,
            "request_duration",
            "Time from a request's arrival to its response head, by operation.",
            self.all()
                .map(|(api, op)| (api, vec![("operation", op.id)], &op.latency)),
        )?;
        Self::histograms(
            &mut encoder,
            "upstream_duration",
            "Time from sending a request upstream to its response head (or failure), by upstream.",
            self.snapshots().flat_map(|s| {
                s.upstreams
                    .iter()
                    .map(move |u| (s.api, vec![("upstream", u.name)], &u.latency))
            }),
        )?;
        Self::counters(
            &mut encoder,
            "request_body_bytes",
            "Request body bytes received (requests with a Content-Length), by operation.",
            self.all()
                .map(|(api, op)| (api, vec![("operation", op.id)], op.bytes_in)),
        )?;
        Self::counters(
            &mut encoder,
            "response_body_bytes",
            "Response body bytes sent (bodies of a known length), by operation.",
            self.all()
                .map(|(api, op)| (api, vec![("operation", op.id)], op.bytes_out)),
        )?;
        Self::counters(
            &mut encoder,
            "cache_lookups",
            "Response cache lookups of cached operations, by result (hit, miss, bypass).",
            self.ops().flat_map(|(api, op)| {
                CACHE_RESULTS
                    .iter()
                    .zip(op.cache)
                    .map(move |(result, n)| (api, vec![("operation", op.id), ("result", *result)], n))
            }),
        )?;
        Self::counters(
            &mut encoder,
            "errors",
            "Responses the gateway made itself, by operation and error kind.",
            self.all().flat_map(|(api, op)| {
                ErrorKind::ALL
                    .iter()
                    .zip(op.errors)
                    .map(move |(kind, n)| (api, vec![("operation", op.id), ("kind", kind.name())], n))
            }),
        )?;
        Self::counters(
            &mut encoder,
            "throttled",
            "Requests refused by a token bucket, by operation and the bucket's scope (api, operation, plan).",
            self.ops().flat_map(|(api, op)| {
                THROTTLE_SCOPES
                    .iter()
                    .zip(op.throttled)
                    .map(move |(scope, n)| (api, vec![("operation", op.id), ("scope", *scope)], n))
            }),
        )?;
        Self::counters(
            &mut encoder,
            "quota_rejections",
            "Requests refused because the caller's quota for the period is used up, by operation.",
            self.ops().map(|(api, op)| {
                (
                    api,
                    vec![("operation", op.id)],
                    op.errors[ErrorKind::QuotaExceeded.index()],
                )
            }),
        )?;
        Self::counters(
            &mut encoder,
            "auth_failures",
            "Requests refused by authentication, by operation and reason (missing, invalid, unavailable, forbidden).",
            self.ops().flat_map(|(api, op)| {
                AUTH_REASONS
                    .iter()
                    .zip(op.auth_failures)
                    .map(move |(reason, n)| (api, vec![("operation", op.id), ("reason", *reason)], n))
            }),
        )?;
        Self::gauges(
            &mut encoder,
            "in_flight_requests",
            "Requests being handled.",
            self.snapshots().map(|s| (s.api, s.in_flight)),
        )?;
        let caches: Vec<(&'static str, CacheGauges)> =
            self.snapshots().filter_map(|s| Some((s.api, s.cache?))).collect();
        if !caches.is_empty() {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            Self::gauges(
                &mut encoder,
                "cache_entries",
                "Responses in the cache.",
                caches.iter().map(|(api, c)| (*api, gauge(c.entries))),
            )?;
            Self::gauges(
                &mut encoder,
                "cache_size_bytes",
                "Bytes of responses in the cache.",
                caches.iter().map(|(api, c)| (*api, gauge(c.bytes))),
            )?;
            Self::gauges(
                &mut encoder,
                "cache_capacity_bytes",
                "The cache's capacity.",
                caches.iter().map(|(api, c)| (*api, gauge(c.capacity))),
            )?;
            Self::counters(
                &mut encoder,
                "cache_evictions",
                "Cached responses removed before being read again, by cause (size: to make room; expired: TTL).",
                caches.iter().flat_map(|(api, c)| {
                    [("size", c.evicted), ("expired", c.expired)]
                        .into_iter()
                        .map(move |(cause, n)| (*api, vec![("cause", cause)], n))
                }),
            )?;
        }
        let shared: Vec<(&'static str, SharedCounters)> =
            self.snapshots().filter_map(|s| Some((s.api, s.shared?))).collect();
        if !shared.is_empty() {
            Self::counters(
                &mut encoder,
                "shared_redis_calls",
                "Calls to the Redis shared with other replicas, by outcome (ok; failed: failed, timed out, or not made \
                 while paused after a failure).",
                shared.iter().flat_map(|(api, c)| {
                    [("ok", c.succeeded), ("failed", c.failures)]
                        .into_iter()
                        .map(move |(outcome, n)| (*api, vec![("outcome", outcome)], n))
                }),
            )?;
            Self::counters(
                &mut encoder,
                "shared_local_refusals",
                "Requests this replica's own buckets refused without asking Redis.",
                shared.iter().map(|(api, c)| (*api, Vec::new(), c.local_refusals)),
            )?;
        }
        // One access log for the whole gateway: counted once, with the first API's label.
        if let Some((api, dropped)) = self.snapshots().find_map(|s| Some((s.api, s.access_log_dropped?))) {
            Self::counters(
                &mut encoder,
                "access_log_dropped_lines",
                "Access log lines dropped because the writer fell behind.",
                std::iter::once((api, Vec::new(), dropped)),
            )?;
        }
        Ok(())
    }
}
