//! Trace export: the spans of each sampled request, sent to an OpenTelemetry collector over OTLP/HTTP (protobuf),
//! off the hot path.
//!
//! ```text
//! worker thread (pipeline::finish) ─► record: the request's spans, built from its context ─► the SDK's batch
//!     processor: try_send on a bounded channel (full: the spans are dropped, counted, warned about once a second)
//! batch thread (opentelemetry_sdk) ─► every 5 s, or 512 spans: one ExportTraceServiceRequest (opentelemetry-otlp)
//! export thread (a one-worker tokio runtime) ─► POST {endpoint}/v1/traces over hyper-util, the answer handed back
//! ```
//!
//! # The spans
//!
//! Every sampled request gets a `SERVER` span, from its arrival ([`RequestCtx::started`]) to its response head, named
//! `METHOD /the/{template}` (or `METHOD` for a request that matched no operation). A proxied request also gets a
//! `CLIENT` span, its child, for the upstream exchange; the client span's id is the one the upstream received as the
//! parent in its `traceparent` ([`TraceContext::span_id`]). So the upstream's spans hang under the gateway's client
//! span, the client span under the server span, and the server span under the caller's span when the caller sent a
//! `traceparent`.
//!
//! Their attributes follow OpenTelemetry's HTTP semantic conventions: `http.request.method`, `http.route` (the
//! operation's path template, never the raw path), `http.response.status_code`, `client.address`, `url.scheme`;
//! and the gateway's own `gateway.operation`, `gateway.request_id`, `gateway.upstream`, `gateway.cache` and
//! `error.type` (the kind of a response the gateway made itself). A `5xx` makes the server span's status an error.
//! A span never carries a header value, a key, a token or a query string, and no `tracestate`.
//!
//! # Sampling
//!
//! Parent-based: a caller's `traceparent` keeps its sampled flag (and an unsampled caller's request exports
//! nothing); a request without one starts a new trace sampled with the configured ratio ([`Sampler`]). Only sampled
//! requests are exported. With export on, every request gets a trace context on arrival (`trace_context`), not
//! only proxied ones; with export off, nothing changes: proxied requests get one from the proxy, unsampled.
//!
//! # Why this shape
//!
//! - Spans are made from data the request context already holds, once, when the request ends: no span object lives
//!   through the request and no `tracing` layer runs on the hot path. They are [`SpanData`] handed straight to the
//!   processor, not spans of an SDK `Tracer`, because the tracer of opentelemetry_sdk 0.33 picks span ids from its
//!   own generator, and the client span's id must be the one already sent upstream.
//! - The SDK's thread-based [`BatchSpanProcessor`] bounds the queue and never blocks the caller. It drives an export
//!   with `futures_executor::block_on` on its own thread, outside any tokio runtime, where hyper-util's client (its
//!   connector, its connection tasks, its timers) cannot run. So `CollectorClient` spawns each POST onto a
//!   one-worker tokio runtime of its own and awaits the task's handle, which works from any executor. The SDK's
//!   experimental tokio batch processor would need a runtime to live in too, and a worker's runtime is the wrong
//!   one: it stops with the worker, before the final flush.
//! - The HTTP client is the runtime's hyper-util client with rustls and aws-lc-rs: no reqwest, tonic or second TLS
//!   stack comes in with the OpenTelemetry crates.
//! - A collector that is down costs the requests nothing: exports fail on the export thread, are retried a few times
//!   within a 10 s deadline, and the spans are dropped; the failures are logged at most once a minute.
//!
//! Each worker thread holds its own `Sink` in a thread-local (`install`), as the access log does, so a request
//! that did not come through the server exports nothing.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanEvents, SpanExporter, SpanLinks, SpanProcessor as _,
};

use crate::pipeline::trace::{self, Sampler, TraceContext};
use crate::pipeline::{CacheStatus, RequestCtx};
use crate::spec::ApiSpec;
use crate::stage::ResolvedStage;

/// Spans queued between the workers and the exporter by default (the SDK's own default).
pub const DEFAULT_QUEUE: usize = 2048;

/// How long one export (its retries included) may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a graceful shutdown waits for the last spans to be sent.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest collector answer read (the SDK's own HTTP clients' limit).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// At most one warning about spans dropped from a full queue per this many milliseconds.
const WARN_DROPS_EVERY_MS: u64 = 1000;

/// At most one warning about failing exports per this long.
const WARN_FAILURES_EVERY: Duration = Duration::from_secs(60);

/// The gateway serves plain HTTP (TLS is terminated in front of it).
const URL_SCHEME: &str = "http";

/// Where spans are POSTed: a collector's OTLP/HTTP traces URL.
///
/// Given as the collector's base URL (`http://127.0.0.1:4318`, to which `/v1/traces` is added) or as the traces URL
/// itself (ending in `/v1/traces`). `http` or `https`, with a host, without credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    url: String,
    tls: bool,
}

impl OtlpEndpoint {
    /// The traces URL.
    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl FromStr for OtlpEndpoint {
    type Err = OtlpError;

    fn from_str(raw: &str) -> Result<Self, OtlpError> {
        let bad = |reason: &str| OtlpError::Endpoint {
            url: raw.to_owned(),
            reason: reason.to_owned(),
        };
        let mut url = url::Url::parse(raw.trim()).map_err(|err| bad(&err.to_string()))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            _ => return Err(bad("the scheme must be `http` or `https`")),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not belong in the URL (an OTLP header can be set with OTEL_EXPORTER_OTLP_HEADERS)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a query or a fragment is not part of a collector's URL"));
        }
        let path = url.path().trim_end_matches('/');
        let path = if path.ends_with("/v1/traces") {
            path.to_owned()
        } else {
            format!("{path}/v1/traces")
        };
        url.set_path(&path);
        let url = url.to_string();
        // What the exporter parses it with.
        url.parse::<http::Uri>().map_err(|err| bad(&err.to_string()))?;
        Ok(Self { url, tls })
    }
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// How to export traces (`--otlp-endpoint` and its companions).
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector's traces URL.
    pub endpoint: OtlpEndpoint,
    /// The share of new traces (requests without a caller's `traceparent`) that are sampled, from 0 to 1.
    pub sample_ratio: f64,
    /// The `service.name` of the spans; `None` for the API's name.
    pub service_name: Option<String>,
    /// Spans queued for the exporter before new ones are dropped (and counted).
    pub queue: usize,
    /// How often the queue is sent; `None` for the SDK's default (5 s, or `OTEL_BSP_SCHEDULE_DELAY` in
    /// milliseconds). A batch also goes as soon as 512 spans are queued, and whatever is queued at shutdown.
    pub export_interval: Option<Duration>,
}

impl OtlpConfig {
    /// Every new trace sampled, the API's name as the service's, the default queue and interval.
    pub fn new(endpoint: OtlpEndpoint) -> Self {
        Self {
            endpoint,
            sample_ratio: 1.0,
            service_name: None,
            queue: DEFAULT_QUEUE,
            export_interval: None,
        }
    }
}

/// Why trace export cannot start.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// `--otlp-endpoint` is not a collector URL.
    #[error("bad OTLP endpoint `{url}`: {reason}")]
    Endpoint {
        /// What was given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter's thread or its HTTP client cannot be set up.
    #[error("cannot start the OTLP exporter: {0}")]
    Setup(String),
}

/// What the workers, the exporter and the server share.
#[derive(Debug)]
struct Shared {
    /// How new traces are sampled.
    sampler: Sampler,
    /// The instrumentation scope every span names: this runtime.
    scope: InstrumentationScope,
    /// Spans handed to the processor and not yet taken by the exporter.
    queued: AtomicUsize,
    /// The processor's queue size: a span that would go past it is dropped here instead.
    capacity: usize,
    /// Spans dropped because the queue was full.
    dropped: AtomicU64,
    /// When the last warning about drops was logged, in milliseconds since `epoch` (plus one: zero is never).
    warned_at: AtomicU64,
    epoch: Instant,
}

impl Shared {
    /// Takes `n` places in the queue, or counts `n` dropped spans (warned about at most once a second).
    fn reserve(&self, n: usize) -> bool {
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n <= self.capacity {
            return true;
        }
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let total = self.dropped.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= WARN_DROPS_EVERY_MS)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped = total,
                "trace spans dropped: the OTLP exporter is not keeping up"
            );
        }
        false
    }
}

/// What a worker thread exports its requests' spans with.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    processor: Arc<BatchSpanProcessor>,
    shared: Arc<Shared>,
}

impl Sink {
    /// Queues the spans of a request that ended with `status`, unless the queue is full. Never blocks.
    fn export(&self, ctx: &RequestCtx, status: StatusCode, trace: &TraceContext) {
        // Places first: with the queue full, the spans are not even built.
        if !self.shared.reserve(1 + usize::from(ctx.upstream.is_some())) {
            return;
        }
        let (server, client) = spans(
            ctx,
            status,
            trace,
            &self.shared.scope,
            Instant::now(),
            SystemTime::now(),
        );
        self.processor.on_end(server);
        if let Some(client) = client {
            self.processor.on_end(client);
        }
    }
}

thread_local! {
    /// This worker's sink, if trace export is on.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Makes this thread's requests export their spans through `sink` (until [`uninstall`]).
pub(crate) fn install(sink: Option<Sink>) {
    SINK.with(|slot| *slot.borrow_mut() = sink);
}

/// Stops this thread's requests from exporting, dropping its sink.
pub(crate) fn uninstall() {
    SINK.with(|slot| slot.borrow_mut().take());
}

/// The trace context of a request arriving with `headers`, if this thread exports traces: the caller's trace
/// continued, or a new one sampled as configured. `None` otherwise (the proxy then makes one, as without export).
pub(crate) fn trace_context(headers: &HeaderMap) -> Option<TraceContext> {
    SINK.with(|slot| {
        slot.borrow()
            .as_ref()
            .map(|sink| TraceContext::sampled_by(headers, sink.shared.sampler))
    })
}

/// Exports the spans of the request `ctx` answered with `response`, if it is sampled and this thread exports
/// traces. Never blocks.
pub(crate) fn record(ctx: &RequestCtx, response: &Response) {
    let Some(trace) = ctx.trace.filter(TraceContext::is_sampled) else {
        return;
    };
    SINK.with(|slot| {
        if let Some(sink) = slot.borrow().as_ref() {
            sink.export(ctx, response.status(), &trace);
        }
    });
}

/// The trace export of a running server: the batch processor (its thread, the export thread) and its counters.
#[derive(Debug)]
pub(crate) struct Otlp {
    processor: Arc<BatchSpanProcessor>,
    shared: Arc<Shared>,
    endpoint: OtlpEndpoint,
}

impl Otlp {
    /// Starts exporting to `config`'s collector, for `api` served at `stage`. The sink is for the workers.
    pub(crate) fn start(
        config: &OtlpConfig,
        api: &ApiSpec,
        stage: Option<&ResolvedStage>,
    ) -> Result<(Self, Sink), OtlpError> {
        let queue = config.queue.max(1);
        let shared = Arc::new(Shared {
            sampler: Sampler::ratio(config.sample_ratio),
            scope: InstrumentationScope::builder("gateway-runtime")
                .with_version(crate::serving::cli::RUNTIME_VERSION)
                .build(),
            queued: AtomicUsize::new(0),
            capacity: queue,
            dropped: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        let client = CollectorClient::new(&config.endpoint)?;
        let inner = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(config.endpoint.as_str())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|err| OtlpError::Setup(err.to_string()))?;
        let mut exporter = Counted {
            inner,
            shared: Arc::clone(&shared),
        };
        exporter.set_resource(&resource(config, api, stage));
        let mut batch = BatchConfigBuilder::default().with_max_queue_size(queue);
        if let Some(interval) = config.export_interval {
            batch = batch.with_scheduled_delay(interval);
        }
        let processor = Arc::new(BatchSpanProcessor::new(exporter, batch.build()));
        let sink = Sink {
            processor: Arc::clone(&processor),
            shared: Arc::clone(&shared),
        };
        Ok((
            Self {
                processor,
                shared,
                endpoint: config.endpoint.clone(),
            },
            sink,
        ))
    }

    /// A handle for counting drops.
    pub(crate) fn handle(&self) -> OtlpHandle {
        OtlpHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Sends what is queued and stops the exporter (once the workers stopped, so that nothing more comes), waiting
    /// at most a few seconds for the collector.
    pub(crate) fn shutdown(&self) {
        if let Err(err) = self.processor.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(endpoint = %self.endpoint, error = %err, "the last trace spans may not have been exported");
        }
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::info!(
                dropped,
                "trace spans dropped while serving because the exporter was not keeping up"
            );
        }
    }
}

/// Counts what trace export dropped (cheap to clone).
#[derive(Debug, Clone)]
pub struct OtlpHandle {
    shared: Arc<Shared>,
}

impl OtlpHandle {
    /// Spans dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// The resource every span belongs to: the service (`--otlp-service-name`, else the API's name), its version (the
/// API's) and the deployment environment (the stage, if any).
fn resource(config: &OtlpConfig, api: &ApiSpec, stage: Option<&ResolvedStage>) -> Resource {
    let name = config.service_name.clone().unwrap_or_else(|| api.name.to_owned());
    let mut attributes = vec![
        KeyValue::new("service.name", name),
        KeyValue::new("service.version", api.api_version.to_owned()),
    ];
    if let Some(stage) = stage {
        attributes.push(KeyValue::new("deployment.environment.name", stage.name().to_owned()));
    }
    Resource::builder_empty().with_attributes(attributes).build()
}

/// The OTLP exporter, telling [`Shared`] when spans leave the processor's queue.
#[derive(Debug)]
struct Counted {
    inner: opentelemetry_otlp::SpanExporter,
    shared: Arc<Shared>,
}

impl SpanExporter for Counted {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        // Taken off the queue: their places are free again, whatever becomes of the export.
        self.shared.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        self.inner.export(batch)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A request's spans: the server span, and the client span of its upstream exchange if it was proxied. `now` and
/// `wall` are the same moment, the end of the request, on the two clocks.
fn spans(
    ctx: &RequestCtx,
    status: StatusCode,
    trace: &TraceContext,
    scope: &InstrumentationScope,
    now: Instant,
    wall: SystemTime,
) -> (SpanData, Option<SpanData>) {
    let at = |instant: Instant| wall.checked_sub(now.saturating_duration_since(instant)).unwrap_or(wall);
    let trace_id = TraceId::from(trace.trace_id);
    let server_id = SpanId::from(trace::new_span_id());
    let method = method_name(&ctx.method);
    let code = status.as_u16();

    let mut attributes = Vec::with_capacity(10);
    attributes.push(KeyValue::new("http.request.method", method));
    if let Some(api) = ctx.api {
        attributes.push(KeyValue::new("gateway.api", api));
    }
    if let Some(op) = ctx.operation {
        attributes.push(KeyValue::new("http.route", op.template));
        attributes.push(KeyValue::new("gateway.operation", op.id));
    }
    attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
    attributes.push(KeyValue::new("url.scheme", URL_SCHEME));
    if let Some(peer) = ctx.client {
        attributes.push(KeyValue::new("client.address", peer.ip().to_string()));
    }
    if let Ok(id) = ctx.request_id.to_str() {
        attributes.push(KeyValue::new("gateway.request_id", id.to_owned()));
    }
    if let Some(upstream) = ctx.upstream {
        attributes.push(KeyValue::new("gateway.upstream", upstream.name));
    }
    if let Some(cache) = ctx.cache {
        attributes.push(KeyValue::new("gateway.cache", cache_name(cache)));
    }
    if let Some(kind) = ctx.error {
        attributes.push(KeyValue::new("error.type", kind.name()));
    }
    let name = match ctx.operation {
        Some(op) => Cow::Owned(format!("{method} {}", op.template)),
        None => Cow::Borrowed(method),
    };
    let server = SpanData {
        span_context: span_context(trace_id, server_id),
        parent_span_id: trace.parent_id.map_or(SpanId::INVALID, SpanId::from),
        parent_span_is_remote: trace.parent_id.is_some(),
        span_kind: SpanKind::Server,
        name,
        start_time: at(ctx.started),
        end_time: wall,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        // Only a 5xx is the server's failure; a 4xx is the client's.
        status: if status.is_server_error() {
            Status::error(ctx.error.map_or("", |kind| kind.name()))
        } else {
            Status::Unset
        },
        instrumentation_scope: scope.clone(),
    };

    let client = ctx.upstream.map(|upstream| {
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new("http.request.method", method));
        attributes.push(KeyValue::new("gateway.upstream", upstream.name));
        // An answer of 4xx or 5xx is the client span's error; so is no answer (the gateway's error kind says why).
        let failure = match upstream.status {
            Some(code) => {
                attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
                (code >= 400).then(|| Cow::Owned(code.to_string()))
            }
            None => Some(Cow::Borrowed(ctx.error.map_or("_OTHER", |kind| kind.name()))),
        };
        if let Some(failure) = &failure {
            attributes.push(KeyValue::new("error.type", failure.clone()));
        }
        let start = at(upstream.sent);
        SpanData {
            span_context: span_context(trace_id, SpanId::from(trace.span_id)),
            parent_span_id: server_id,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: Cow::Borrowed(method),
            start_time: start,
            end_time: start + upstream.elapsed,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: failure.map_or(Status::Unset, Status::error),
            instrumentation_scope: scope.clone(),
        }
    });
    (server, client)
}

/// A sampled span's context (no `tracestate`: it is the caller's header, and never exported).
fn span_context(trace_id: TraceId, span_id: SpanId) -> SpanContext {
    SpanContext::new(trace_id, span_id, TraceFlags::SAMPLED, false, TraceState::NONE)
}

/// `http.request.method`: one of the methods HTTP defines, else `_OTHER` (as the conventions ask: a made-up method
/// is the client's text).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

fn cache_name(cache: CacheStatus) -> &'static str {
    match cache {
        CacheStatus::Hit => "hit",
        CacheStatus::Miss => "miss",
        CacheStatus::Bypass => "bypass",
    }
}

/// The HTTP client opentelemetry-otlp sends its batches with: hyper-util's pooled client (rustls with aws-lc-rs for
/// an `https` collector), each exchange run on a one-worker tokio runtime of its own (see the module docs) and
/// bounded by the export timeout.
#[derive(Debug)]
struct CollectorClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: ExportRuntime,
    health: Mutex<Health>,
}

impl CollectorClient {
    fn new(endpoint: &OtlpEndpoint) -> Result<Self, OtlpError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gateway-otlp")
            .enable_all()
            .build()
            .map_err(|err| OtlpError::Setup(format!("cannot start the export thread: {err}")))?;
        let builder = || {
            // An explicit provider, as for upstreams: the process-wide default would panic if there were two.
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|err| OtlpError::Setup(err.to_string()))
        };
        // Root certificates are only loaded for an `https` collector.
        let tls = if !endpoint.tls {
            builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        } else {
            match builder()?.with_native_roots() {
                Ok(b) => b.with_no_client_auth(),
                Err(err) => {
                    tracing::warn!(error = %err, "no usable native root certificates; using the bundled Mozilla roots");
                    builder()?.with_webpki_roots().with_no_client_auth()
                }
            }
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            client,
            runtime: ExportRuntime::new(runtime),
            health: Mutex::new(Health::default()),
        })
    }
}

#[async_trait::async_trait]
impl HttpClient for CollectorClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok::<_, HttpError>(http::Response::from_parts(head, body))
        };
        let task = self.runtime.spawn(async move {
            tokio::time::timeout(EXPORT_TIMEOUT, exchange)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {EXPORT_TIMEOUT:?}").into()))
        });
        let result = match task.await {
            Ok(result) => result,
            Err(err) => Err(HttpError::from(err)),
        };
        let mut health = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(response) if response.status().is_success() => health.succeeded(),
            Ok(response) => health.failed(&format_args!("the collector answered {}", response.status())),
            Err(err) => health.failed(&ErrorChain(&**err)),
        }
        result
    }
}

/// The export thread's runtime, shut down without waiting when the exporter goes (which may be anywhere, even in an
/// async context, where dropping a runtime would panic).
#[derive(Debug)]
struct ExportRuntime {
    handle: tokio::runtime::Handle,
    /// Taken only by `drop`.
    runtime: Option<tokio::runtime::Runtime>,
}

impl ExportRuntime {
    fn new(runtime: tokio::runtime::Runtime) -> Self {
        Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        }
    }

    fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }
}

impl Drop for ExportRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Whether exports reach the collector: failures are warned about at most once a minute, a recovery once.
#[derive(Debug, Default)]
struct Health {
    /// Failed attempts since the last warning.
    failures: u64,
    /// When the last warning was logged.
    warned: Option<Instant>,
    /// The last attempt failed.
    failing: bool,
}

impl Health {
    fn failed(&mut self, reason: &dyn fmt::Display) {
        self.failures += 1;
        self.failing = true;
        if self.warned.is_none_or(|at| at.elapsed() >= WARN_FAILURES_EVERY) {
            tracing::warn!(
                failures = self.failures,
                error = %reason,
                "cannot export trace spans to the OTLP collector; they are dropped until it answers"
            );
            self.warned = Some(Instant::now());
            self.failures = 0;
        }
    }

    fn succeeded(&mut self) {
        if self.failing {
            tracing::info!("trace spans reach the OTLP collector again");
        }
        self.failing = false;
    }
}

/// An error with its sources, `: `-separated (hyper's own message is only "client error (Connect)").
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::pipeline::UpstreamCall;
    use crate::spec::{MockSpec, OperationSpec, TargetSpec};

    static OP: OperationSpec = OperationSpec {
        id: "getPet",
        method: Method::GET,
        template: "/pets/{petId}",
        route: "/pets/{p0}",
        path_params: &["petId"],
        target: TargetSpec::Mock(MockSpec {
            status: 200,
            headers: &[],
            content_type: "",
            body: "",
        }),
        ..OperationSpec::DEFAULT
    };

    fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a opentelemetry::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[test]
    fn a_proxied_request_is_a_server_span_over_a_client_span_whose_id_went_upstream() {
        // The path value is letters no id or timestamp in the spans' text can contain (unlike digits).
        let request = http::Request::get("/pets/zebra?api_key=query-secret")
            .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .header("authorization", "Bearer token-secret")
            .header("x-request-id", "req-1")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, Some(&OP));
        let trace = TraceContext::of(&parts.headers);
        let started = ctx.started;
        ctx.trace = Some(trace);
        ctx.cache = Some(CacheStatus::Miss);
        ctx.error = Some(ErrorKind::UpstreamTimeout);
        ctx.upstream = Some(UpstreamCall {
            name: "pets",
            server: Some("http://127.0.0.1:1"),
            attempts: 1,
            sent: started,
            elapsed: Duration::from_millis(3),
            status: None,
        });
        let scope = InstrumentationScope::builder("test").build();
        let now = started + Duration::from_millis(5);
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let (server, client) = spans(&ctx, StatusCode::GATEWAY_TIMEOUT, &trace, &scope, now, wall);
        let client = client.expect("a client span");

        assert_eq!(server.span_kind, SpanKind::Server);
        assert_eq!(server.name, "GET /pets/{petId}");
        assert_eq!(server.span_context.trace_id(), TraceId::from(trace.trace_id));
        assert_eq!(server.parent_span_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
        assert!(server.parent_span_is_remote);
        assert_eq!(server.start_time, wall - Duration::from_millis(5));
        assert_eq!(server.end_time, wall);
        assert_eq!(
            attribute(&server, "http.route").map(|v| v.as_str()).as_deref(),
            Some("/pets/{petId}")
        );
        assert_eq!(
            attribute(&server, "http.response.status_code"),
            Some(&opentelemetry::Value::I64(504))
        );
        assert_eq!(
            attribute(&server, "gateway.cache").map(|v| v.as_str()).as_deref(),
            Some("miss")
        );
        assert_eq!(
            attribute(&server, "error.type").map(|v| v.as_str()).as_deref(),
            Some("UPSTREAM_TIMEOUT")
        );
        assert!(matches!(server.status, Status::Error { .. }));

        assert_eq!(client.span_kind, SpanKind::Client);
        assert_eq!(client.span_context.span_id(), SpanId::from(trace.span_id));
        assert_eq!(client.span_context.trace_id(), server.span_context.trace_id());
        assert_eq!(client.parent_span_id, server.span_context.span_id());
        assert_eq!(
            (client.start_time, client.end_time),
            (server.start_time, server.start_time + Duration::from_millis(3))
        );
        assert!(matches!(client.status, Status::Error { .. }));

        let text = format!("{server:?} {client:?}");
        assert!(
            !text.contains("secret") && !text.contains("api_key") && !text.contains("zebra"),
            "{text}"
        );
    }

    #[test]
    fn a_request_the_gateway_answers_itself_is_a_root_server_span_without_a_route() {
        let (parts, ()) = http::Request::get("/nowhere").body(()).expect("request").into_parts();
        let ctx = RequestCtx::new(&parts, None);
        let trace = TraceContext::sampled_by(&parts.headers, Sampler::ALWAYS);
        let scope = InstrumentationScope::builder("test").build();
        let (server, client) = spans(
            &ctx,
            StatusCode::NOT_FOUND,
            &trace,
            &scope,
            Instant::now(),
            SystemTime::now(),
        );
        assert!(client.is_none());
        assert_eq!(server.name, "GET");
        assert_eq!(server.parent_span_id, SpanId::INVALID);
        assert!(attribute(&server, "http.route").is_none());
        // A 4xx is the client's doing: the server span's status stays unset.
        assert_eq!(server.status, Status::Unset);
    }

    #[test]
    fn a_full_queue_drops_and_counts_spans_instead_of_waiting() {
        let shared = Shared {
            sampler: Sampler::ALWAYS,
            scope: InstrumentationScope::builder("test").build(),
            queued: AtomicUsize::new(0),
            capacity: 3,
            dropped: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
            epoch: Instant::now(),
        };
        assert!(shared.reserve(2));
        // A proxied request's two spans do not fit in the one place left: both are dropped, none half-exported.
        assert!(!shared.reserve(2));
        assert!(shared.reserve(1));
        assert!(!shared.reserve(1));
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 3);
        // The exporter took a batch of two: their places are free again.
        shared.queued.fetch_sub(2, Ordering::AcqRel);
        assert!(shared.reserve(2));
    }

    #[test]
    fn the_endpoint_is_a_base_url_or_the_traces_url() {
        let parse = |raw: &str| raw.parse::<OtlpEndpoint>().map(|e| e.to_string());
        assert_eq!(
            parse("http://127.0.0.1:4318").as_deref().ok(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            parse("http://127.0.0.1:4318/").as_deref().ok(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            parse("https://otel.example.com/v1/traces").as_deref().ok(),
            Some("https://otel.example.com/v1/traces")
        );
        assert_eq!(
            parse("http://collector:4318/otlp/").as_deref().ok(),
            Some("http://collector:4318/otlp/v1/traces")
        );
        for bad in [
            "",
            "127.0.0.1:4318",
            "grpc://collector:4317",
            "http://user:secret@collector:4318",
            "http://collector:4318/?token=x",
            "http://",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().starts_with("bad OTLP endpoint"), "{bad}: {err}");
        }
    }
}
