//! The admin listener: what an operator, a load balancer and a metrics scraper ask the gateway, on an address of
//! its own (`--admin-listen`, default `127.0.0.1:9090`), apart from the API's traffic.
//!
//! | endpoint | what | guarded |
//! |---|---|---|
//! | `GET /` | the live page: per operation rates, errors, latencies, cache hits, throttles (see [`page`]) | no |
//! | `GET /metrics` | Prometheus (OpenMetrics) text: requests, latencies, cache, throttles, auth failures | no |
//! | `GET /_gateway/health` | liveness: `200` while the process serves | no |
//! | `GET /_gateway/ready` | readiness: `200` once every worker listens and every JWT scheme has keys; `503` before, and while draining | no |
//! | `GET /_gateway/info` | the gateway, its version, the spec's SHA-256 as compiled in, the stage, the uptime | no |
//! | `GET /_gateway/stats` | the metrics as JSON, for the live page | no |
//! | `POST /_gateway/cache/flush`, `GET /_gateway/cache/stats`, `GET /_gateway/usage`, `GET /_gateway/drift` | see [`guarded`] | admin token |
//!
//! In a gateway of several APIs, `/metrics` has one series per API (the `api` label), `/_gateway/info` and
//! `/_gateway/stats` answer per API (`{"apis": {NAME: …}}`, or as a gateway of that API alone with `?api=NAME`,
//! which the live page passes on from its own URL), readiness waits for the JWT keys of every API, and the guarded
//! endpoints take `?api=NAME` ([`guarded`]).
//!
//! The listener has one thread and a single-threaded runtime of its own, so that a scrape never takes a worker's
//! time and a busy worker never delays a probe. Its requests are not in the access log or the metrics (a scraper
//! every few seconds is not API traffic). It serves until the workers have drained, so that readiness says
//! `503` while they do.

pub mod guarded;
pub mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::CONTENT_TYPE;
use tokio::sync::watch;

pub use guarded::AdminToken;

use crate::observe::access_log::AccessLogHandle;
use crate::observe::metrics::{self, BuildInfo, Metrics, Snapshot};
use crate::spec::ApiSpec;
use crate::state::SharedState;

/// What the server tells the admin listener about itself.
#[derive(Debug)]
pub struct Status {
    /// Every worker is accepting connections.
    listening: AtomicBool,
    /// Shutdown has started: the workers drain.
    draining: AtomicBool,
    started: Instant,
    started_at: jiff::Timestamp,
    workers: usize,
}

impl Status {
    /// A server of `workers` workers, starting now.
    pub fn new(workers: usize) -> Self {
        Self {
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            workers,
        }
    }

    /// Every worker accepts connections.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    /// Shutdown started.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }
}

/// One API of the gateway, as the admin endpoints read it.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// The API.
    pub api: &'static ApiSpec,
    /// Its process-wide state: cache, keys, limits, contracts, metrics.
    pub state: SharedState,
}

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The gateway's name (its API's, for a gateway of one API).
    pub gateway: &'static str,
    /// The APIs served, in the gateway's order (never empty).
    pub apis: Arc<[AdminApi]>,
    /// The server's state.
    pub status: Arc<Status>,
    /// The access log, when it is on (for its dropped lines).
    pub access_log: Option<AccessLogHandle>,
}

impl Admin {
    /// The admin endpoints of a gateway of one API.
    pub fn one(
        api: &'static ApiSpec,
        state: SharedState,
        status: Arc<Status>,
        access_log: Option<AccessLogHandle>,
    ) -> Self {
        Self {
            gateway: api.name,
            apis: Arc::new([AdminApi { api, state }]),
            status,
            access_log,
        }
    }

    /// Whether the gateway serves several APIs (its answers then say which API each part is about).
    fn several(&self) -> bool {
        self.apis.len() > 1
    }

    /// One API's metrics summed over the workers, with its cache's and the access log's gauges.
    fn snapshot(&self, api: &AdminApi) -> Snapshot {
        let mut snapshot = match &api.state.metrics {
            Some(metrics) => metrics.snapshot(),
            // The server counts whenever the admin listener is on; an admin router made without counters shows none.
            None => Metrics::new(api.api, 1).snapshot(),
        };
        snapshot.cache = api
            .state
            .cache
            .as_ref()
            .map(|cache| cache.gauges(api.api.cache.capacity));
        snapshot.shared = api
            .state
            .redis
            .as_ref()
            .map(|redis| crate::observe::metrics::SharedCounters {
                succeeded: redis.succeeded(),
                failures: redis.failures(),
                local_refusals: api.state.limits.shared().map_or(0, |l| l.local_refusals()),
            });
        snapshot.access_log_dropped = self.access_log.as_ref().map(AccessLogHandle::dropped);
        if let Some(upstreams) = &api.state.upstreams {
            for upstream in &mut snapshot.upstreams {
                upstream.health = upstreams.health(upstream.name);
            }
        }
        snapshot
    }

    fn build_info(api: &AdminApi) -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            stage: api.state.stage.map(|stage| stage.name()),
        }
    }
}

/// The admin listener's routes.
pub fn router(admin: &Admin) -> Router {
    let open = Router::new()
        .route("/", get(page::page))
        .route("/metrics", get(prometheus))
        .route("/_gateway/health", get(health))
        .route("/_gateway/ready", get(ready))
        .route("/_gateway/info", get(info))
        .route("/_gateway/stats", get(stats))
        .route("/_gateway/upstreams", get(upstreams))
        .with_state(admin.clone());
    let router = match guarded::routes(admin) {
        Some(guarded) => open.merge(guarded),
        None => open,
    };
    router.fallback(|| async {
        crate::error::GatewayError::new(
            crate::error::ErrorKind::NotFound,
            "no such admin endpoint: see / (the live page), /metrics, /_gateway/health, /_gateway/ready, /_gateway/info, /_gateway/stats, /_gateway/upstreams",
        )
        .into_response()
    })
}

async fn prometheus(State(admin): State<Admin>) -> Response {
    let snapshots = admin
        .apis
        .iter()
        .map(|api| (admin.snapshot(api), api.api, Admin::build_info(api)))
        .collect();
    let text = metrics::prometheus_text(snapshots);
    ([(CONTENT_TYPE, metrics::PROMETHEUS_CONTENT_TYPE)], text).into_response()
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// `200` once the workers listen and every JWT scheme (of every API) has its keys, `503` (with what is missing)
/// otherwise.
async fn ready(State(admin): State<Admin>) -> Response {
    let listening = admin.status.listening.load(Ordering::Acquire);
    let draining = admin.status.draining.load(Ordering::Acquire);
    // With several APIs a scheme is named `API/SCHEME`, as `--jwks-url` names it.
    let loading: Vec<String> = admin
        .apis
        .iter()
        .flat_map(|a| {
            let several = admin.several();
            a.state.auth.schemes_without_keys(a.api).into_iter().map(move |scheme| {
                if several {
                    format!("{}/{scheme}", a.api.name)
                } else {
                    scheme.to_owned()
                }
            })
        })
        .collect();
    let ready = listening && !draining && loading.is_empty();
    let body = serde_json::json!({
        "ready": ready,
        "checks": {
            "listeners": if listening { "up" } else { "starting" },
            "draining": draining,
            "jwt_keys": if loading.is_empty() { "loaded" } else { "loading" },
            "jwt_schemes_without_keys": loading,
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The gateway and its API, as a gateway of one API (or `?api=NAME`) answers; with several, every API's.
async fn info(State(admin): State<Admin>, Query(query): Query<guarded::ApiQuery>) -> Response {
    let apis = match guarded::select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    let mut body = serde_json::json!({
        "gateway": admin.gateway,
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": admin.status.started_at.to_string(),
        "uptime_seconds": admin.status.started.elapsed().as_secs(),
        "workers": admin.status.workers,
    });
    let api_info = |a: &AdminApi| {
        serde_json::json!({
            "api_version": a.api.api_version,
            "spec_file": a.api.spec_file,
            "spec_sha256": a.api.spec_sha256,
            "stage": a.state.stage.map(|stage| stage.name()),
        })
    };
    match apis.as_slice() {
        [one] => {
            if admin.several() {
                body["api"] = serde_json::Value::from(one.api.name);
            }
            merge(&mut body, api_info(one));
        }
        apis => {
            let apis: serde_json::Map<String, serde_json::Value> =
                apis.iter().map(|a| (a.api.name.to_owned(), api_info(a))).collect();
            body["apis"] = serde_json::Value::Object(apis);
        }
    }
    axum::Json(body).into_response()
}

/// `into`'s fields, then `from`'s.
fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (serde_json::Value::Object(into), serde_json::Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// The metrics of the API (of a gateway of one, or `?api=NAME`) as JSON; with several, `{"apis": {NAME: …}}`.
async fn stats(State(admin): State<Admin>, Query(query): Query<guarded::ApiQuery>) -> Response {
    let apis = match guarded::select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    match apis.as_slice() {
        [one] => axum::Json(admin.snapshot(one)).into_response(),
        apis => {
            let snapshots: serde_json::Map<String, serde_json::Value> = apis
                .iter()
                .map(|a| {
                    let snapshot = serde_json::to_value(admin.snapshot(a)).unwrap_or_default();
                    (a.api.name.to_owned(), snapshot)
                })
                .collect();
            axum::Json(serde_json::json!({ "apis": snapshots })).into_response()
        }
    }
}

/// `GET /_gateway/upstreams`: every upstream's servers and their state (healthy, ejected for how long, in flight,
/// failures), and the retry budget.
async fn upstreams(State(admin): State<Admin>, Query(query): Query<guarded::ApiQuery>) -> Response {
    let apis = match guarded::select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    let of = |api: &AdminApi| {
        serde_json::json!({
            "upstreams": api.state.upstreams.as_ref().map(crate::targets::proxy::Upstreams::views).unwrap_or_default()
        })
    };
    match apis.as_slice() {
        [one] => axum::Json(of(one)).into_response(),
        apis => {
            let all: serde_json::Map<String, serde_json::Value> =
                apis.iter().map(|a| (a.api.name.to_owned(), of(a))).collect();
            axum::Json(serde_json::json!({ "apis": all })).into_response()
        }
    }
}

/// The admin listener, serving on its own thread.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Serves `router` on `listener` from a thread of its own, named `thread` (also the HTTP-to-HTTPS redirect's).
    pub fn start(listener: std::net::TcpListener, router: Router, thread: &str) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, mut stopped) = watch::channel(false);
        let thread = std::thread::Builder::new().name(thread.to_owned()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(err) => {
                        tracing::error!(error = %err, "the admin listener cannot start");
                        return;
                    }
                };
                let shutdown = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                if let Err(err) = axum::serve(listener, router).with_graceful_shutdown(shutdown).await {
                    tracing::warn!(error = %err, "the admin listener stopped");
                }
            });
        })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for its thread.
    pub fn stop(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
