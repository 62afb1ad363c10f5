//! The serving loop: worker threads, listeners, connections, graceful shutdown.
//!
//! Built for throughput on many cores without shared state: each worker thread runs its own single-threaded
//! tokio runtime with its own `SO_REUSEPORT` listener on the same address (the kernel spreads connections
//! across them), its own router and its own upstream connection pools. A request never crosses threads and
//! never touches a lock or a reference count shared with another worker. The only thing shared is the shutdown
//! signal.
//!
//! Shutdown is graceful: workers stop accepting, idle keep-alive connections are closed, in-flight requests
//! finish (their responses carry `Connection: close`), all bounded by the drain timeout, after which remaining
//! connections are dropped.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, Admin, AdminApi, AdminServer, AdminToken, Status};
use crate::observe::access_log::{self, AccessLog, AccessLogError, AccessLogHandle, AccessLogTarget, Sink};
use crate::observe::otlp::{self, Otlp, OtlpConfig, OtlpError, OtlpHandle};
use crate::pipeline::Arrival;
use crate::policies::auth::keys::{KeyScope, KeyStore};
use crate::policies::auth::{AuthOverrides, AuthSetupError, Authenticators};
use crate::router::{self, ApiRouting, RouterError};
use crate::serving::limits::{Builders, ConnectionSlots, Limits};
use crate::serving::preface::{self, Protocol as Http};
use crate::serving::redirect;
use crate::serving::scoped;
use crate::serving::tls::{ClientCert, Tls};
use crate::spec::{ApiMount, ApiSpec};
use crate::stage::{self, ResolvedStage, StageError};
use crate::state::SharedState;
use crate::store::{StoreError, StoreOverride};
use crate::targets::proxy::{Background, Hosts, Proxy, UpstreamError, UpstreamOverride, Upstreams};

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen; port `0` picks a free port (see [`ServerHandle::local_addr`]).
    pub listen: SocketAddr,
    /// Worker threads; `None` for one per available core.
    pub workers: Option<NonZeroUsize>,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub shutdown_timeout: Duration,
    /// Upstream URL replacements.
    pub upstream_overrides: Vec<UpstreamOverride>,
    /// Host names resolved from a file before the system's resolver (`--hosts`).
    pub hosts: Option<Hosts>,
    /// Where the admin listener (metrics, health, the live page, the admin endpoints) listens; `None`: nowhere.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token for the admin endpoints that change state or show callers; `None` turns them off.
    pub admin_token: Option<AdminToken>,
    /// The API keys (loaded by the caller, reloadable through the handle).
    pub keys: KeyStore,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_proxy: bool,
    /// Replacements for the URLs JWT keys come from.
    pub auth_overrides: AuthOverrides,
    /// The deployment stage to serve, resolved ([`ResolvedStage::resolve`]). `None` serves the spec's
    /// `default_stage` with the variables as the spec writes them (no environment overrides), and is the only
    /// choice for an API without stages. Used by [`start`]; [`start_gateway`] takes each API's stage with it.
    pub stage: Option<ResolvedStage>,
    /// Where the access log goes ([`AccessLogTarget::Off`] by default here; the command line's default is stdout).
    pub access_log: AccessLogTarget,
    /// Lines the access log queues for its writer before it drops (and counts) new ones.
    pub access_log_capacity: usize,
    /// Where and how to export trace spans over OTLP/HTTP; `None` (the default) exports nothing.
    pub otlp: Option<OtlpConfig>,
    /// Database files of stores, instead of the spec's (`--store NAME=PATH`).
    pub store_overrides: Vec<StoreOverride>,
    /// The most writes a store commits in one transaction (`--store-max-batch`); `None`: the default, 1024.
    pub store_max_batch: Option<NonZeroUsize>,
    /// What one client may take: header size and count, the header timeout, connections, requests per connection.
    pub limits: Limits,
    /// Serve HTTPS with these certificates instead of plain HTTP.
    pub tls: Option<Tls>,
    /// A plain-HTTP listener that redirects every request to the HTTPS one (only with `tls`).
    pub redirect_http: Option<SocketAddr>,
    /// The Redis that APIs with `x-gateway.shared` use, instead of their spec's (`--redis`).
    pub redis_url: Option<String>,
}

impl ServerConfig {
    /// Defaults (one worker per core, 30 s drain, no overrides) on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
            upstream_overrides: Vec::new(),
            hosts: None,
            admin_listen: None,
            admin_token: None,
            keys: KeyStore::empty(),
            trust_proxy: false,
            auth_overrides: AuthOverrides::default(),
            stage: None,
            access_log: AccessLogTarget::Off,
            access_log_capacity: access_log::DEFAULT_CAPACITY,
            otlp: None,
            store_overrides: Vec::new(),
            store_max_batch: None,
            limits: Limits::default(),
            tls: None,
            redirect_http: None,
            redis_url: None,
        }
    }
}

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Bad upstream configuration.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Bad operation table.
    #[error(transparent)]
    Router(#[from] RouterError),
    /// A security scheme cannot be prepared (a missing secret, a bad override).
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// No stage can be served, or the one given does not belong to the API.
    #[error("{0}")]
    Stage(#[from] StageError),
    /// The access log cannot be opened.
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
    /// Trace export cannot start.
    #[error(transparent)]
    Otlp(#[from] OtlpError),
    /// A schema or filter of the spec does not compile.
    #[error("{0}")]
    Contract(#[from] crate::policies::validate::ContractError),
    /// A store cannot be opened, or `--store` names none.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The shared state's Redis URL is unusable.
    #[error(transparent)]
    Shared(#[from] crate::shared::SharedError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker could not start.
    #[error("worker {worker} failed to start: {source}")]
    Worker {
        /// The worker's index.
        worker: usize,
        /// The error.
        source: std::io::Error,
    },
    /// A worker thread panicked.
    #[error("{0} worker thread(s) panicked")]
    WorkerPanicked(usize),
    /// A key does not fit the gateway's APIs (a plan without `api` in a gateway of several).
    #[error("API keys: {0}")]
    Keys(String),
    /// [`start_gateway`] was given no API.
    #[error("a gateway serves at least one API")]
    NoApis,
    /// `--redirect-http` without HTTPS to redirect to.
    #[error("--redirect-http {0} needs --tls-cert and --tls-key: there is no HTTPS listener to redirect to")]
    RedirectWithoutTls(SocketAddr),
}

/// A running server. Dropping it starts a graceful shutdown without waiting for it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
    access_log: Option<AccessLog>,
    otlp: Option<Otlp>,
    admin: Option<AdminServer>,
    /// The HTTP listener redirecting to HTTPS.
    redirect: Option<AdminServer>,
    status: Arc<Status>,
    /// The upstreams' health checks and re-resolution, when some upstream has them.
    upstreams: Option<Background>,
}

impl ServerHandle {
    /// The address every worker listens on (with the actual port when port `0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the HTTP-to-HTTPS redirect listens, if it is on.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().map(AdminServer::local_addr)
    }

    /// Where the admin listener listens, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::local_addr)
    }

    /// The access log's handle (reopen, dropped lines), if it is on.
    pub fn access_log(&self) -> Option<AccessLogHandle> {
        self.access_log.as_ref().map(AccessLog::handle)
    }

    /// Trace export's handle (dropped spans), if it is on.
    pub fn otlp(&self) -> Option<OtlpHandle> {
        self.otlp.as_ref().map(Otlp::handle)
    }

    /// Starts a graceful shutdown: stop accepting, drain in-flight requests. Returns at once.
    pub fn shutdown(&self) {
        self.status.set_draining();
        self.shutdown.send_replace(true);
    }

    /// Blocks until every worker has stopped (after [`shutdown`](Self::shutdown) and the drain), the access log
    /// has written every line queued and trace export has sent the spans queued (waiting a few seconds at most for
    /// the collector).
    pub fn join(mut self) -> Result<(), ServerError> {
        let panicked = self
            .workers
            .drain(..)
            .map(JoinHandle::join)
            .filter(Result::is_err)
            .count();
        // The workers are gone, and their senders with them: the writer drains the channel and ends.
        if let Some(access_log) = &mut self.access_log {
            access_log.join();
        }
        // Nothing more can be queued: the last batch goes now.
        if let Some(otlp) = self.otlp.take() {
            otlp.shutdown();
        }
        // Readiness said `503` while the workers drained; now the admin listener goes too.
        if let Some(admin) = &mut self.admin {
            admin.stop();
        }
        if let Some(redirect) = &mut self.redirect {
            redirect.stop();
        }
        // Health checks and re-resolution stop with the last request they served.
        drop(self.upstreams.take());
        if panicked == 0 {
            Ok(())
        } else {
            Err(ServerError::WorkerPanicked(panicked))
        }
    }

    /// [`shutdown`](Self::shutdown), then [`join`](Self::join).
    pub fn stop(self) -> Result<(), ServerError> {
        self.shutdown();
        self.join()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds, starts the workers and returns once every worker is accepting connections.
///
/// Blocking (binds sockets, spawns threads): call it from outside an async context, or via
/// `tokio::task::spawn_blocking`. Works in-process, which is how the tests run gateways on `127.0.0.1:0`.
pub fn start(api: &'static ApiSpec, config: ServerConfig) -> Result<ServerHandle, ServerError> {
    let served = ServedApi {
        mount: ApiMount::root(api),
        stage: config.stage.clone(),
    };
    start_gateway(api.name, vec![served], config)
}

/// One API of a gateway to serve, with its stage.
#[derive(Debug, Clone)]
pub struct ServedApi {
    /// The API and its base path.
    pub mount: ApiMount,
    /// Its stage, resolved ([`ResolvedStage::resolve`]); `None` serves its `default_stage` with the variables as the
    /// spec writes them, and is the only choice for an API without stages.
    pub stage: Option<ResolvedStage>,
}

/// [`start`] for gateway `gateway` of several APIs, each with its own state (cache, limits, quotas, contracts,
/// auth, metrics) and upstream connection pools; the listeners, the workers, the key file, the access log and
/// trace export are shared.
///
/// Each API's stage comes with it ([`ServedApi::stage`]; [`ServerConfig::stage`] is for [`start`]). Upstream and
/// JWT-source overrides name `API/NAME` to address one API's, or `NAME` for every API that declares it. With
/// several APIs, every key of [`ServerConfig::keys`] must fit them ([`KeyScope`]).
pub fn start_gateway(
    gateway: &'static str,
    apis: Vec<ServedApi>,
    config: ServerConfig,
) -> Result<ServerHandle, ServerError> {
    let several = apis.len() > 1;
    let specs: Vec<&'static ApiSpec> = apis.iter().map(|a| a.mount.api).collect();
    if several {
        config
            .keys
            .current()
            .check(&KeyScope::of(&specs))
            .map_err(ServerError::Keys)?;
    }
    if config.redis_url.is_some() && specs.iter().all(|api| api.shared.is_none()) {
        tracing::warn!("--redis is ignored: no API of this gateway has `x-gateway.shared`");
    }
    let upstream_overrides = scoped::upstreams(&specs, &config.upstream_overrides)?;
    let auth_overrides = scoped::auth(&specs, &config.auth_overrides)?;
    let store_overrides = scoped::stores(&specs, &config.store_overrides)?;
    let workers = config
        .workers
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    // Without SO_REUSEPORT there is nothing to spread connections across several listeners.
    let workers = if cfg!(unix) { workers } else { 1 };

    // Everything that can fail is done here, before any thread starts: each API's stage, upstreams and state, the
    // per-worker routers (each with its own connection pools) and the listeners.
    let mut prepared = Vec::with_capacity(apis.len());
    for ((served, (upstream_overrides, auth_overrides)), store_overrides) in apis
        .into_iter()
        .zip(upstream_overrides.into_iter().zip(auth_overrides))
        .zip(store_overrides)
    {
        let api = served.mount.api;
        let stage = match served.stage {
            Some(stage) => {
                stage.check(api)?;
                Some(stage)
            }
            None => stage::select(api, None)?
                .map(|index| ResolvedStage::resolve(api, index, &|_| None))
                .transpose()?,
        };
        // Leaked once per start (a few hundred bytes, once per process outside tests): every request then carries a
        // plain `&'static` to it in its `Arrival`, with no reference count shared between cores.
        let stage: Option<&'static ResolvedStage> = stage.map(|stage| &*Box::leak(Box::new(stage)));
        let upstreams = Upstreams::resolve(api, stage, &upstream_overrides, config.hosts.as_ref())?;
        let auth = Authenticators::new(api, &auth_overrides)?;
        let mut state = SharedState::new(
            api,
            stage,
            config.admin_token.clone(),
            config.keys.clone(),
            auth,
            config.trust_proxy,
        )?
        .with_stores(api, &store_overrides, config.store_max_batch.map(NonZeroUsize::get))?
        .with_shared(api, config.redis_url.as_deref(), several)?;
        state.upstreams = Some(upstreams.clone());
        state.request_timeout = config.limits.request_timeout;
        // The published spec's `servers` say where it is served: under the stage's base path, then the API's.
        if !served.mount.base_path.is_empty() {
            let prefix = format!("{}{}", stage.map_or("", |s| s.base_path()), served.mount.base_path);
            state.published = api.published.map(|json| crate::state::published(json, &prefix));
        }
        // Counted only where something reads the counts.
        if config.admin_listen.is_some() {
            state = state.with_metrics(api, workers);
        }
        prepared.push((served.mount, upstreams, state));
    }
    // With one API the server tells every request its stage; with several, the API's routes do.
    let stage = match prepared.as_slice() {
        [(_, _, state)] => state.stage,
        _ => None,
    };
    let mut routers = Vec::with_capacity(workers);
    for worker in 0..workers {
        let proxies: Vec<Proxy> = prepared.iter().map(|(_, upstreams, _)| Proxy::new(upstreams)).collect();
        let routing: Vec<ApiRouting<'_>> = prepared
            .iter()
            .zip(&proxies)
            .map(|((mount, _, state), proxy)| ApiRouting {
                mount: *mount,
                proxy,
                state,
            })
            .collect();
        routers.push(router::build_gateway(&routing, worker)?);
    }
    let first = bind(config.listen).map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let addr = first.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        // With port 0 the first bind chose the port; the others join it.
        listeners.push(bind(addr).map_err(|source| ServerError::Bind { addr, source })?);
    }

    let admin_listener = config
        .admin_listen
        .map(|addr| bind_one(addr).map_err(|source| ServerError::Bind { addr, source }))
        .transpose()?;

    let access = AccessLog::start(&config.access_log, config.access_log_capacity)?;
    let (access_log, sink) = access.map_or((None, None), |(log, sink)| (Some(log), Some(sink)));
    // Spans belong to the gateway: with several APIs, the service is named after it unless `--otlp-service-name`
    // says otherwise (its version is the first API's).
    let (first_api, first_state) = prepared
        .first()
        .map(|(mount, _, state)| (mount.api, state))
        .ok_or(ServerError::NoApis)?;
    let export = config
        .otlp
        .as_ref()
        .map(|otlp| {
            let named;
            let otlp = if several && otlp.service_name.is_none() {
                named = OtlpConfig {
                    service_name: Some(gateway.to_owned()),
                    ..otlp.clone()
                };
                &named
            } else {
                otlp
            };
            Otlp::start(otlp, first_api, first_state.stage)
        })
        .transpose()?;
    let (otlp, spans) = export.map_or((None, None), |(otlp, sink)| (Some(otlp), Some(sink)));
    let status = Arc::new(Status::new(workers));
    let admin = match admin_listener {
        Some(listener) => {
            let admin = Admin {
                gateway,
                apis: prepared
                    .iter()
                    .map(|(mount, _, state)| AdminApi {
                        api: mount.api,
                        state: state.clone(),
                    })
                    .collect(),
                status: Arc::clone(&status),
                access_log: access_log.as_ref().map(AccessLog::handle),
            };
            let addr = listener.local_addr().map_err(|source| ServerError::Bind {
                addr: config.listen,
                source,
            })?;
            Some(
                AdminServer::start(listener, admin::router(&admin), "gateway-admin")
                    .map_err(|source| ServerError::Bind { addr, source })?,
            )
        }
        None => None,
    };

    let https_port = addr.port();
    let redirect = match (config.redirect_http, &config.tls) {
        (None, _) => None,
        (Some(addr), None) => return Err(ServerError::RedirectWithoutTls(addr)),
        (Some(addr), Some(_)) => {
            let listener = bind_one(addr).map_err(|source| ServerError::Bind { addr, source })?;
            Some(
                AdminServer::start(listener, redirect::router(https_port), "gateway-redirect")
                    .map_err(|source| ServerError::Bind { addr, source })?,
            )
        }
    };

    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    let all: Vec<&Upstreams> = prepared.iter().map(|(_, upstreams, _)| upstreams).collect();
    let background = Upstreams::start_background(&all).map_err(|source| ServerError::Worker {
        worker: workers,
        source,
    })?;
    let mut handle = ServerHandle {
        addr,
        shutdown,
        workers: Vec::with_capacity(workers),
        access_log,
        otlp,
        admin,
        redirect,
        status,
        upstreams: background,
    };
    let slots = ConnectionSlots::new(config.limits.max_connections);
    for (index, (listener, router)) in listeners.into_iter().zip(routers).enumerate() {
        let worker = Worker {
            index,
            listener,
            router,
            shutdown: shutdown_rx.clone(),
            drain: config.shutdown_timeout,
            limits: config.limits,
            slots: slots.clone(),
            tls: config.tls.as_ref().map(Tls::acceptor),
            ready: ready_tx.clone(),
            stage,
            access: sink.clone(),
            spans: spans.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("gateway-worker-{index}"))
            .spawn(move || worker.run())
            .map_err(|source| ServerError::Worker { worker: index, source })?;
        handle.workers.push(thread);
    }
    drop(ready_tx);
    // Only the workers hold senders, so that the writer ends with them.
    drop(sink);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(err),
            // A worker died before reporting (a panic); `handle` shuts the others down when dropped.
            Err(_) => return Err(ServerError::WorkerPanicked(1)),
        }
    }
    handle.status.set_listening();
    Ok(handle)
}

/// A listening socket that other workers' sockets can share.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    listen(addr, true)
}

/// The admin listener's socket: one listener, not shared with anything.
fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    listen(addr, false)
}

/// A non-blocking listening socket on `addr`, which other sockets may join when `shared`.
fn listen(addr: SocketAddr, shared: bool) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting must not wait for the previous process's connections to leave TIME_WAIT.
    socket.set_reuse_address(true)?;
    // Every worker binds its own socket to the same address; the kernel balances new connections across
    // them, which avoids the thundering herd and the shared accept queue of one listener polled by N threads.
    // (As with nginx's `reuseport`, another process of the same user could join the port too.)
    #[cfg(unix)]
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// One worker thread's state.
struct Worker {
    index: usize,
    listener: std::net::TcpListener,
    router: Router,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
    /// What a client may take of the gateway.
    limits: Limits,
    /// The process's connection slots, shared by the workers.
    slots: ConnectionSlots,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ready: mpsc::Sender<Result<(), ServerError>>,
    stage: Option<&'static ResolvedStage>,
    /// This worker's access log sender, installed in its thread for the pipeline to find.
    access: Option<Sink>,
    /// This worker's trace exporter, installed in its thread likewise.
    spans: Option<otlp::Sink>,
}

impl Worker {
    fn run(self) {
        let Worker {
            index,
            listener,
            router,
            shutdown,
            drain,
            limits,
            slots,
            tls,
            ready,
            stage,
            access,
            spans,
        } = self;
        access_log::install(access);
        otlp::install(spans);
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(source) => {
                let _ = ready.send(Err(ServerError::Worker { worker: index, source }));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(source) => {
                    let _ = ready.send(Err(ServerError::Worker { worker: index, source }));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            drop(ready);
            let serving = Serving {
                index,
                router,
                shutdown,
                drain,
                limits,
                slots,
                stage,
                tls,
            };
            serving.serve(listener).await;
        });
        // Dropping the runtime here cancels whatever outlived the drain timeout.
        drop(runtime);
        access_log::uninstall();
        otlp::uninstall();
    }
}

/// What a worker's accept loop and its connections need.
struct Serving {
    index: usize,
    router: Router,
    shutdown: watch::Receiver<bool>,
    drain: Duration,
    limits: Limits,
    slots: ConnectionSlots,
    stage: Option<&'static ResolvedStage>,
    /// The HTTPS listener's acceptor; `None`: plain HTTP.
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Serving {
    /// Accepts connections until shutdown, then drains them.
    async fn serve(self, listener: TcpListener) {
        let builders = Arc::new(self.limits.builders());
        let mut connections = tokio::task::JoinSet::new();
        let mut stop = self.shutdown.clone();
        let stop = async move {
            // An error means the handle is gone, which also means stop.
            let _ = stop.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stop);
        loop {
            // A slot first: over `max_connections`, clients wait in the backlog rather than being accepted.
            let slot = tokio::select! {
                biased;
                () = &mut stop => break,
                slot = self.slots.acquire() => slot,
            };
            let accepted = tokio::select! {
                biased;
                () = &mut stop => break,
                // Reap finished connections so that the set holds only live ones.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Responses are written whole by hyper; waiting for more data (Nagle) only adds latency.
                    let _ = stream.set_nodelay(true);
                    connections.spawn(self.connection(&builders, stream, peer, slot));
                }
                // The peer gave up before we accepted: nothing to do.
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) => {}
                Err(err) => {
                    // Typically out of file descriptors; the connection stays queued, so back off briefly
                    // instead of spinning on the same error.
                    tracing::warn!(worker = self.index, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // Closing the listener makes the kernel stop queueing connections for this worker.
        drop(listener);
        tracing::debug!(worker = self.index, open = connections.len(), "draining connections");
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(self.drain, drained).await.is_err() {
            tracing::warn!(worker = self.index, timeout = ?self.drain, "drain timeout reached; closing remaining connections");
        }
    }

    /// One client connection — after its TLS handshake, bounded by the header timeout, on an HTTPS listener —
    /// served until it ends, shutdown closes it gracefully (idle at once, busy after the response in flight;
    /// `GOAWAY` on HTTP/2), or it has carried `max_requests_per_connection` requests.
    fn connection(
        &self,
        builders: &Arc<Builders>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let builders = Arc::clone(builders);
        let handshake_timeout = self.limits.header_timeout;
        let tls = self.tls.clone();
        let shutdown = self.shutdown.clone();
        let enough = Arc::new(tokio::sync::Notify::new());
        let mut service = ConnectionService {
            router: self.router.clone(),
            peer,
            stage: self.stage,
            tls: tls.is_some(),
            client_cert: None,
            forwarded_for: Arrival::forwarded_for(peer),
            max_requests: self.limits.max_requests_per_connection,
            served: Arc::new(std::sync::atomic::AtomicU32::new(0)),
            enough: Arc::clone(&enough),
        };
        async move {
            let result = match tls {
                None => drive(&builders, stream, service, shutdown, &enough).await,
                // Boxed: a TLS stream's state is large, and inline it would make every connection's task, plain
                // ones too, that much larger.
                Some(acceptor) => {
                    Box::pin(async move {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                // rustls verified it against --tls-client-ca; the leaf is what requests know.
                                service.client_cert = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|leaf| ClientCert::from_der(leaf))
                                    .map(Arc::new);
                                drive(&builders, stream, service, shutdown, &enough).await
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                Ok(())
                            }
                        }
                    })
                    .await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(slot);
        }
    }
}

/// Serves one connection over `io` until it ends, closing it gracefully on shutdown or once `enough` is notified.
/// Its first bytes, which tell HTTP/1 from HTTP/2, must come within the header timeout.
async fn drive<I>(
    builders: &Builders,
    io: I,
    service: ConnectionService,
    mut shutdown: watch::Receiver<bool>,
    enough: &tokio::sync::Notify,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(builders.header_timeout, preface::sniff(io)) => sniffed,
        // Shutdown before a request began: nothing to finish.
        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
    };
    let (protocol, io) = match sniffed {
        Ok(found) => found?,
        Err(_) => {
            tracing::debug!(timeout = ?builders.header_timeout, "no request began within the header timeout");
            return Ok(());
        }
    };
    let close = async move {
        tokio::select! {
            // An error means the handle is gone, which also means stop.
            _ = shutdown.wait_for(|stop| *stop) => {}
            () = enough.notified() => {}
        }
    };
    let io = TokioIo::new(io);
    let service = TowerToHyperService::new(service);
    // The connection until it ends, or until `close`: then gracefully (idle at once, busy after the response in
    // flight; `GOAWAY` on HTTP/2).
    macro_rules! serve_until_closed {
        ($pinned:expr) => {{
            let mut connection = $pinned;
            tokio::select! {
                result = connection.as_mut() => result,
                () = close => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        }};
    }
    let served = match protocol {
        Http::Http1 => serve_until_closed!(std::pin::pin!(
            builders.http1.serve_connection(io, service).with_upgrades()
        )),
        // Boxed: HTTP/2's connection state is large, and inline it would make every connection's task, most of
        // them HTTP/1, that much larger.
        Http::Http2 => serve_until_closed!(Box::pin(builders.http2.serve_connection(io, service))),
    };
    Ok(served?)
}

/// The router, for one connection: it stamps each request with its [`Arrival`] and counts them against
/// `max_requests_per_connection`.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    stage: Option<&'static ResolvedStage>,
    tls: bool,
    client_cert: Option<Arc<ClientCert>>,
    /// The peer as `X-Forwarded-For` records it, made once for the connection's requests.
    forwarded_for: Option<http::HeaderValue>,
    max_requests: Option<std::num::NonZeroU32>,
    /// Requests so far (shared: hyper's adapter clones the service for every request).
    served: Arc<std::sync::atomic::AtomicU32>,
    enough: Arc<tokio::sync::Notify>,
}

impl tower::Service<Request<Incoming>> for ConnectionService {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = futures_util::future::Map<axum::routing::future::RouteFuture<std::convert::Infallible>, Respond>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        // When and from where: the request context is made from this once routing picked a service.
        request.extensions_mut().insert(Arrival {
            peer: self.peer,
            at: std::time::Instant::now(),
            stage: self.stage,
            tls: self.tls,
            client_cert: self.client_cert.clone(),
            forwarded_for: self.forwarded_for.clone(),
        });
        let mut respond: Respond = std::convert::identity;
        if let Some(max) = self.max_requests
            && self.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 >= max.get()
        {
            if request.version() <= http::Version::HTTP_11 {
                // The response itself says `Connection: close`, so hyper closes the connection once it is written
                // and the client knows not to send another request on it. (Shutting the connection down from
                // outside could race the client's next request, which would then meet a closed socket.)
                respond = close_after;
            } else {
                // HTTP/2: a `GOAWAY`; requests in flight finish.
                self.enough.notify_one();
            }
        }
        futures_util::FutureExt::map(tower::Service::call(&mut self.router, request), respond)
    }
}

/// What a connection does to a response before it is written.
type Respond = fn(
    Result<axum::response::Response, std::convert::Infallible>,
) -> Result<axum::response::Response, std::convert::Infallible>;

/// The last response of an HTTP/1 connection: `Connection: close`.
fn close_after(
    response: Result<axum::response::Response, std::convert::Infallible>,
) -> Result<axum::response::Response, std::convert::Infallible> {
    response.map(|mut response| {
        // An upgrade's `101` keeps the connection for the new protocol.
        if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
        }
        response
    })
}
