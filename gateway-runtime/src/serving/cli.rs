//! The command line of every generated gateway: `fn main() -> ExitCode { gateway_runtime::cli::run(&api::API) }`,
//! or `gateway_runtime::cli::run_gateway(&GATEWAY)` for a gateway of several APIs ([`GatewaySpec`]).
//!
//! In a gateway of several APIs the flags apply to all of them: one listener, one key file (whose entries say
//! which API they are for), one access log. `--stage NAME` picks stage `NAME` of every API that declares stages
//! (an API without stages is served as it is; one that has stages but not this one is a usage error naming the
//! stages that would work); `--upstream`, `--jwks-url` and `--oidc-url` take `API/NAME` for one API's upstream or
//! scheme, or a plain `NAME` for every API that declares it.
//!
//! Bad input is a message and a non-zero exit code (clap's usage errors exit with 2, start-up failures with 1),
//! never a panic. Once every worker is listening, `admin on http://ADDR …` (when the admin listener is on) and then
//! `listening on http://ADDR` go to stdout (everything else is logged to stderr, and after those lines stdout is the
//! access log's), so a supervisor or test can learn the ephemeral ports.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory as _, FromArgMatches as _};

use crate::admin::AdminToken;
use crate::observe::access_log::{AccessLogHandle, AccessLogTarget};
use crate::observe::logging::{self, LogFormat};
use crate::observe::otlp::{OtlpConfig, OtlpEndpoint};
use crate::policies::auth::AuthOverrides;
use crate::policies::auth::keys::{KeyScope, KeyStore};
use crate::router;
use crate::serving::scoped;
use crate::serving::server::{self, ServedApi, ServerConfig};
use crate::serving::tls::{CertPair, ClientAuth, ClientAuthMode, Tls, TlsConfig, TlsError};
use crate::spec::{ApiMount, ApiSpec, GatewaySpec, SchemeKind};
use crate::stage::{self, ResolvedStage, StageError, VariableSource};
use crate::store::StoreOverride;
use crate::targets::proxy::{Hosts, UpstreamOverride, Upstreams};

/// The runtime's own version, reported by `--version`.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit code after a second SIGINT/SIGTERM cut the drain short (128 + SIGINT, as shells report it).
const FORCED_EXIT: i32 = 130;

#[derive(Debug, clap::Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "GATEWAY_LISTEN", default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,

    /// Address of the admin listener: metrics (`/metrics`), health, readiness, info, the live page (`/`) and the
    /// admin endpoints; `off` turns it off.
    #[arg(
        long,
        env = "GATEWAY_ADMIN_LISTEN",
        default_value = "127.0.0.1:9090",
        value_parser = parse_admin_listen,
        value_name = "ADDR|off"
    )]
    admin_listen: AdminListen,

    /// Bearer token that enables the admin endpoints that change state or show callers (cache flush and stats,
    /// usage, drift) on the admin listener [default: off].
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// YAML file of API keys (`- { key, name, plan, enabled }`), re-read on SIGHUP [default: no keys].
    #[arg(long, env = "GATEWAY_API_KEYS", value_name = "FILE")]
    api_keys: Option<std::path::PathBuf>,

    /// Take the client address for per-client limits from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long)]
    trust_proxy: bool,

    /// Deployment stage to serve [default: the spec's `default_stage`]. Its variables can be overridden with
    /// GATEWAY_STAGE_VAR_<NAME upper-cased>.
    #[arg(long, env = "GATEWAY_STAGE", value_name = "NAME")]
    stage: Option<String>,

    /// Worker threads, each with its own listener and connection pools [default: one per core].
    #[arg(long, value_name = "N")]
    workers: Option<NonZeroUsize>,

    /// How long in-flight requests may take to finish after SIGTERM/SIGINT (e.g. 250ms, 10s, 5m).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    shutdown_timeout: Duration,

    /// Use URL for the upstream NAME instead of the spec's; several servers: NAME=URL,URL (repeatable).
    #[arg(long = "upstream", value_name = "NAME=URL")]
    upstreams: Vec<UpstreamOverride>,

    /// Resolve the upstreams' host names listed in FILE (the format of /etc/hosts) from it, before the system's
    /// resolver; re-read at every resolution.
    #[arg(long, env = "GATEWAY_HOSTS", value_name = "FILE")]
    hosts: Option<std::path::PathBuf>,

    /// Keep the items of store NAME in the SQLite file PATH (created with its directory if missing), or in the
    /// PostgreSQL database at postgres://… (repeatable), instead of the spec's.
    #[arg(long = "store", value_name = "NAME=PATH|URL")]
    stores: Vec<StoreOverride>,

    /// Share limits, quotas, usage, the cache and keys with the other replicas through the Redis at URL, instead of
    /// the spec's `shared.redis.url` (only for APIs with `x-gateway.shared`); may carry a password, never logged.
    #[arg(long, env = "GATEWAY_REDIS_URL", value_name = "URL", hide_env_values = true)]
    redis: Option<String>,

    /// The most writes a store commits in one transaction, and so in one flush to disk [default: 1024]; 1 commits
    /// every write on its own.
    #[arg(long, value_name = "N")]
    store_max_batch: Option<NonZeroUsize>,

    /// Fetch the JWKS of the JWT scheme NAME from URL instead of its `jwks_url` (repeatable).
    #[arg(long = "jwks-url", value_name = "NAME=URL", value_parser = parse_assignment)]
    jwks_urls: Vec<(String, String)>,

    /// Read the OpenID Connect discovery document of scheme NAME from URL instead of its `openIdConnectUrl`
    /// (repeatable).
    #[arg(long = "oidc-url", value_name = "NAME=URL", value_parser = parse_assignment)]
    oidc_urls: Vec<(String, String)>,

    /// Keep verified JWTs briefly, so that a token presented again is not verified again (`on` or `off`).
    #[arg(
        long,
        env = "GATEWAY_TOKEN_CACHE",
        default_value = "on",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set,
        value_name = "on|off"
    )]
    token_cache: bool,

    /// Where the access log goes: one JSON line per request to `stdout` (after the `listening on` line), to a file
    /// (appended to, reopened on SIGUSR1), or `off`.
    #[arg(
        long,
        env = "GATEWAY_ACCESS_LOG",
        default_value = "stdout",
        value_name = "stdout|PATH|off"
    )]
    access_log: AccessLogTarget,

    /// Export a span per request (and one per upstream exchange) to the OpenTelemetry collector at URL over
    /// OTLP/HTTP: its base URL, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`), or the traces URL itself
    /// [default: off].
    #[arg(long, env = "GATEWAY_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<OtlpEndpoint>,

    /// The share of new traces (requests without a caller's `traceparent`) that are exported, from 0 to 1. A
    /// caller's own sampling decision is always kept.
    #[arg(
        long,
        env = "GATEWAY_OTLP_SAMPLE_RATIO",
        default_value = "1.0",
        value_parser = parse_ratio,
        value_name = "RATIO"
    )]
    otlp_sample_ratio: f64,

    /// The `service.name` of the exported spans [default: the API's name].
    #[arg(long, env = "GATEWAY_OTLP_SERVICE_NAME", value_name = "NAME")]
    otlp_service_name: Option<String>,

    #[command(flatten)]
    limits: crate::serving::limits::LimitArgs,

    /// Serve HTTPS with the PEM certificate chain in FILE (repeatable: one per host name or wildcard, picked by
    /// SNI; the first is the default). Each needs a --tls-key, paired in order. Re-read on SIGHUP.
    #[arg(
        long = "tls-cert",
        env = "GATEWAY_TLS_CERT",
        value_name = "FILE",
        value_delimiter = ','
    )]
    tls_certs: Vec<std::path::PathBuf>,

    /// With HTTPS: also listen for plain HTTP on ADDR, answering every request with a 308 redirect to HTTPS.
    #[arg(long, env = "GATEWAY_REDIRECT_HTTP", value_name = "ADDR")]
    redirect_http: Option<SocketAddr>,

    /// The PEM private key of the --tls-cert in the same position (repeatable).
    #[arg(
        long = "tls-key",
        env = "GATEWAY_TLS_KEY",
        value_name = "FILE",
        value_delimiter = ','
    )]
    tls_keys: Vec<std::path::PathBuf>,

    /// With HTTPS: ask clients for certificates (mutual TLS) and verify them against the PEM CA certificates in
    /// FILE. Operations with a `mutualTLS` scheme or `x-gateway: { mtls: required }` need this.
    #[arg(long, env = "GATEWAY_TLS_CLIENT_CA", value_name = "FILE")]
    tls_client_ca: Option<std::path::PathBuf>,

    /// With --tls-client-ca: `required` refuses handshakes without a valid client certificate; `optional` admits
    /// them, and only operations that require a certificate answer 401.
    #[arg(
        long,
        env = "GATEWAY_TLS_CLIENT_AUTH",
        value_enum,
        default_value = "required",
        value_name = "MODE",
        requires = "tls_client_ca"
    )]
    tls_client_auth: ClientAuthMode,

    /// Log line format (logs go to stderr; filter with GATEWAY_LOG or RUST_LOG).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    log_format: LogFormat,
}

/// `--admin-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy)]
struct AdminListen(Option<SocketAddr>);

fn parse_admin_listen(raw: &str) -> Result<AdminListen, String> {
    match raw {
        "off" => Ok(AdminListen(None)),
        addr => addr
            .parse()
            .map(|addr| AdminListen(Some(addr)))
            .map_err(|e| format!("{e}: expected an address like 127.0.0.1:9090, or `off`")),
    }
}

/// `on` or `off`.
fn parse_on_off(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("expected `on` or `off`, got `{raw}`")),
    }
}

/// `NAME=VALUE`, both non-empty.
fn parse_assignment(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=URL, got `{raw}`")),
    }
}

/// A number from 0 to 1.
fn parse_ratio(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("expected a number from 0 to 1, got `{raw}`")),
    }
}

pub(super) fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (expected e.g. 250ms, 10s, 5m)"))
}

/// The `--version` text: gateway name (added by clap), API version, spec file, runtime version.
fn version(api: &ApiSpec) -> String {
    format!(
        "{} (spec {}, gateway-runtime {RUNTIME_VERSION})",
        api.api_version, api.spec_file
    )
}

/// The gateway's command-line definition, named after the gateway.
pub fn command(api: &ApiSpec) -> clap::Command {
    Args::command()
        .name(api.name)
        .version(version(api))
        .about(format!("API gateway `{}`, generated from {}", api.name, api.spec_file))
}

/// What a process serves: a gateway's name and its APIs.
struct Served {
    name: &'static str,
    mounts: Vec<ApiMount>,
}

impl Served {
    fn one(api: &'static ApiSpec) -> Self {
        Self {
            name: api.name,
            mounts: vec![ApiMount::root(api)],
        }
    }

    fn gateway(gateway: &'static GatewaySpec) -> Self {
        Self {
            name: gateway.name,
            mounts: gateway.apis.to_vec(),
        }
    }

    fn apis(&self) -> Vec<&'static ApiSpec> {
        self.mounts.iter().map(|m| m.api).collect()
    }

    /// [`command`], for the gateway's APIs.
    fn command(&self) -> clap::Command {
        match self.mounts.as_slice() {
            [mount] => command(mount.api).name(self.name),
            mounts => {
                let apis: Vec<String> = mounts
                    .iter()
                    .map(|m| format!("{} {} (spec {})", m.api.name, m.api.api_version, m.api.spec_file))
                    .collect();
                let files: Vec<&str> = mounts.iter().map(|m| m.api.spec_file).collect();
                Args::command()
                    .name(self.name)
                    .version(format!("{}; gateway-runtime {RUNTIME_VERSION}", apis.join(", ")))
                    .about(format!(
                        "API gateway `{}`, generated from {}",
                        self.name,
                        files.join(", ")
                    ))
            }
        }
    }
}

/// Runs the gateway with the process's arguments until SIGTERM or SIGINT, then drains and exits.
///
/// A second signal during the drain exits at once (code 130).
pub fn run(api: &'static ApiSpec) -> ExitCode {
    run_inner(
        &Served::one(api),
        std::env::args_os(),
        &mut std::io::stdout(),
        Shutdown::<std::future::Pending<()>>::Signals,
    )
}

/// [`run`] for a gateway of several APIs, each under its base path.
pub fn run_gateway(gateway: &'static GatewaySpec) -> ExitCode {
    run_inner(
        &Served::gateway(gateway),
        std::env::args_os(),
        &mut std::io::stdout(),
        Shutdown::<std::future::Pending<()>>::Signals,
    )
}

/// Like [`run`], with explicit arguments (the first is the program name), stdout, and a future that starts the
/// graceful shutdown when it completes instead of signals. For tests and embedding.
pub fn run_with<I, T, F>(api: &'static ApiSpec, args: I, stdout: &mut dyn Write, shutdown: F) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    F: Future<Output = ()>,
{
    run_inner(&Served::one(api), args, stdout, Shutdown::Future(shutdown))
}

/// [`run_with`] for a gateway of several APIs.
pub fn run_gateway_with<I, T, F>(
    gateway: &'static GatewaySpec,
    args: I,
    stdout: &mut dyn Write,
    shutdown: F,
) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    F: Future<Output = ()>,
{
    run_inner(&Served::gateway(gateway), args, stdout, Shutdown::Future(shutdown))
}

/// What starts the graceful shutdown.
enum Shutdown<F> {
    Signals,
    Future(F),
}

/// [`Shutdown`] once armed (signal handlers installed).
enum Trigger<F> {
    Signals(Signals),
    Future(F),
}

fn run_inner<I, T, F>(served: &Served, args: I, stdout: &mut dyn Write, shutdown: Shutdown<F>) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
    F: Future<Output = ()>,
{
    let mut command = served.command();
    let args = match command
        .try_get_matches_from_mut(args)
        .and_then(|matches| Args::from_arg_matches(&matches))
    {
        Ok(args) => args,
        Err(err) => return clap_exit(&err),
    };
    let apis = served.apis();
    // The stages first: upstream URLs may use their variables. The one place the process environment is read for
    // stage variables.
    let stages = match choose_stages(&mut command, &apis, args.stage.as_deref(), &|name| {
        std::env::var_os(name)
    }) {
        Ok(stages) => stages,
        Err(StageFailure::Usage(err)) => return clap_exit(&err),
        Err(StageFailure::Config(err)) => return fail(&err.to_string()),
    };
    // An unknown store is a usage error too, before anything is opened.
    if let Err(err) = scoped::stores(&apis, &args.stores) {
        let err = command.error(ErrorKind::InvalidValue, format!("--store: {err}"));
        return clap_exit(&err);
    }
    // Checked now so that an unknown name or a bad URL is reported as the usage error it is.
    let mut usage = |err: &dyn std::fmt::Display| command.error(ErrorKind::InvalidValue, format!("--upstream: {err}"));
    let overrides = match scoped::upstreams(&apis, &args.upstreams) {
        Ok(overrides) => overrides,
        Err(err) => return clap_exit(&usage(&err)),
    };
    let hosts = match args.hosts.clone().map(Hosts::open).transpose() {
        Ok(hosts) => hosts,
        Err(err) => return clap_exit(&command.error(ErrorKind::InvalidValue, format!("--hosts: {err}"))),
    };
    if args.tls_certs.len() != args.tls_keys.len() {
        let message = format!(
            "{} --tls-cert and {} --tls-key: give each certificate its key, in the same order",
            args.tls_certs.len(),
            args.tls_keys.len()
        );
        return clap_exit(&command.error(ErrorKind::WrongNumberOfValues, message));
    }
    let tls = if args.tls_certs.is_empty() {
        None
    } else {
        let pairs = args
            .tls_certs
            .iter()
            .zip(&args.tls_keys)
            .map(|(cert, key)| CertPair {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        let client_auth = args.tls_client_ca.clone().map(|ca| ClientAuth {
            ca,
            mode: args.tls_client_auth,
        });
        match Tls::new(TlsConfig { pairs, client_auth }) {
            Ok(tls) => Some(tls),
            Err(err @ TlsError::ClientCa { .. }) => {
                return clap_exit(&command.error(ErrorKind::InvalidValue, err.to_string()));
            }
            Err(err) => return clap_exit(&command.error(ErrorKind::InvalidValue, format!("--tls-cert: {err}"))),
        }
    };
    if args.tls_client_ca.is_some() && tls.is_none() {
        let message =
            "--tls-client-ca needs --tls-cert and --tls-key: client certificates are asked for in the TLS handshake";
        return clap_exit(&command.error(ErrorKind::MissingRequiredArgument, message));
    }
    let asks_certs = tls.as_ref().is_some_and(Tls::asks_client_certs);
    if let Some((api, scheme)) = apis.iter().find_map(|api| {
        let scheme = api.schemes.iter().find(|s| matches!(s.kind, SchemeKind::MutualTls))?;
        Some((api, scheme))
    }) && !asks_certs
    {
        let message = format!(
            "API `{}` has operations that require a client certificate (security scheme `{}`): start with --tls-cert, --tls-key and --tls-client-ca",
            api.name, scheme.name
        );
        return clap_exit(&command.error(ErrorKind::MissingRequiredArgument, message));
    }
    let mut upstreams = Vec::with_capacity(apis.len());
    for ((api, stage), overrides) in apis.iter().zip(&stages).zip(&overrides) {
        match Upstreams::resolve(api, stage.as_ref(), overrides, hosts.as_ref()) {
            Ok(resolved) => upstreams.push(resolved),
            Err(err) => return clap_exit(&usage(&err)),
        }
    }

    logging::init(args.log_format);
    let several = apis.len() > 1;
    if several {
        tracing::info!(
            gateway = served.name,
            apis = apis.len(),
            runtime = RUNTIME_VERSION,
            "starting"
        );
    }
    for (((mount, stage), upstreams), api) in served.mounts.iter().zip(&stages).zip(&upstreams).zip(&apis) {
        if several {
            tracing::info!(
                api = api.name,
                api_version = api.api_version,
                spec = api.spec_file,
                base_path = mount.base_path,
                "serving"
            );
        } else {
            tracing::info!(
                gateway = served.name,
                api_version = api.api_version,
                spec = api.spec_file,
                runtime = RUNTIME_VERSION,
                "starting"
            );
        }
        if let Some(stage) = stage {
            log_stage(stage);
        }
        for (name, url) in upstreams.urls() {
            tracing::info!("upstream {name} = {url}");
        }
        let prefix = format!("{}{}", stage.as_ref().map_or("", |s| s.base_path()), mount.base_path);
        router::log_routes(api, &prefix);
    }

    // A small runtime on the main thread, for signals and for waiting on the workers.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&format!("cannot start the runtime: {err}")),
    };
    // Signal handlers go in before the port opens: a SIGTERM sent as soon as we are listening must drain, not
    // kill the process.
    let trigger = match shutdown {
        Shutdown::Signals => match runtime.block_on(async { Signals::register() }) {
            Ok(signals) => Trigger::Signals(signals),
            Err(err) => return fail(&format!("cannot install signal handlers: {err}")),
        },
        Shutdown::Future(future) => Trigger::Future(future),
    };

    // SIGHUP's default action ends the process: its handler must be in place before the port opens too, or a reload
    // sent right after start-up would kill the gateway instead.
    #[cfg(unix)]
    let hangups = if args.api_keys.is_some() || !args.tls_certs.is_empty() {
        match runtime.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) }) {
            Ok(signal) => Some(signal),
            Err(err) => return fail(&format!("cannot listen for SIGHUP: {err}")),
        }
    } else {
        None
    };
    // SIGUSR1 (logrotate's "reopen your log") also ends the process by default: handled from before the port opens,
    // whatever the access log's target, so that a rotation never kills the gateway.
    #[cfg(unix)]
    let reopens = match runtime
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) })
    {
        Ok(signal) => signal,
        Err(err) => return fail(&format!("cannot listen for SIGUSR1: {err}")),
    };
    let keys = match KeyStore::open_for(args.api_keys.as_deref(), KeyScope::of(&apis)) {
        Ok(keys) => keys,
        Err(err) => return fail(&err.to_string()),
    };
    if args.api_keys.is_some() {
        tracing::info!(keys = keys.current().len(), "API keys loaded");
    }
    let config = ServerConfig {
        listen: args.listen,
        workers: args.workers,
        shutdown_timeout: args.shutdown_timeout,
        upstream_overrides: args.upstreams,
        hosts,
        admin_listen: args.admin_listen.0,
        admin_token: args.admin_token.as_deref().and_then(AdminToken::new),
        keys: keys.clone(),
        trust_proxy: args.trust_proxy,
        auth_overrides: AuthOverrides {
            jwks_urls: args.jwks_urls,
            oidc_urls: args.oidc_urls,
            token_cache: args.token_cache,
        },
        stage: None,
        access_log: args.access_log.clone(),
        access_log_capacity: crate::observe::access_log::DEFAULT_CAPACITY,
        otlp: args.otlp_endpoint.clone().map(|endpoint| OtlpConfig {
            sample_ratio: args.otlp_sample_ratio,
            service_name: args.otlp_service_name.clone(),
            ..OtlpConfig::new(endpoint)
        }),
        store_overrides: args.stores,
        store_max_batch: args.store_max_batch,
        limits: args.limits.limits(),
        tls: tls.clone(),
        redirect_http: args.redirect_http,
        redis_url: args.redis.clone(),
    };
    let served_name = served.name;
    let served = served
        .mounts
        .iter()
        .zip(stages)
        .map(|(mount, stage)| ServedApi { mount: *mount, stage })
        .collect();
    let handle = match server::start_gateway(served_name, served, config) {
        Ok(handle) => handle,
        Err(err) => return fail(&err.to_string()),
    };
    let addr = handle.local_addr();
    if let Some(admin) = handle.admin_addr() {
        // Before the `listening on` line, after which stdout is the access log's.
        let _ = writeln!(stdout, "admin on http://{admin} (metrics: http://{admin}/metrics)");
        tracing::info!(%admin, "admin listener");
    }
    if let Some(redirect) = handle.redirect_addr() {
        let _ = writeln!(stdout, "redirecting http://{redirect} to https");
        tracing::info!(%redirect, "redirecting plain HTTP to HTTPS");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Err(err) = writeln!(stdout, "listening on {scheme}://{addr}").and_then(|()| stdout.flush()) {
        tracing::warn!(error = %err, "cannot write the listening line to stdout");
    }
    tracing::info!(%addr, "listening");
    tracing::info!(access_log = %args.access_log, "access log");
    match &args.otlp_endpoint {
        Some(endpoint) => tracing::info!(
            %endpoint,
            sample_ratio = args.otlp_sample_ratio,
            service = args.otlp_service_name.as_deref().unwrap_or(served_name),
            "exporting trace spans over OTLP/HTTP"
        ),
        None => tracing::debug!("trace export is off"),
    }
    let access_log = handle.access_log();

    runtime.block_on(async {
        #[cfg(unix)]
        if let Some(hangups) = hangups {
            tokio::spawn(reload_on_hangup(keys, args.api_keys.is_some(), tls, hangups));
        }
        #[cfg(unix)]
        tokio::spawn(reopen_access_log_on_usr1(access_log, reopens));
        #[cfg(not(unix))]
        drop(access_log);
        match trigger {
            Trigger::Signals(mut signals) => {
                let name = signals.recv().await;
                tracing::info!(signal = name, "shutting down");
                tokio::spawn(async move {
                    let name = signals.recv().await;
                    tracing::warn!(
                        signal = name,
                        "second signal; exiting without waiting for in-flight requests"
                    );
                    std::process::exit(FORCED_EXIT);
                });
            }
            Trigger::Future(future) => {
                future.await;
                tracing::info!("shutting down");
            }
        }
    });
    handle.shutdown();
    // Joined off the runtime thread so that the second-signal task above keeps running meanwhile.
    let joined = runtime.block_on(async { tokio::task::spawn_blocking(move || handle.join()).await });
    match joined {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Ok(Err(err)) => fail(&err.to_string()),
        Err(err) => fail(&format!("shutdown failed: {err}")),
    }
}

/// Why no stage can be served.
#[derive(Debug)]
enum StageFailure {
    /// A bad or missing `--stage` (exit code 2).
    Usage(clap::Error),
    /// The stage's values do not pass the start-up checks (exit code 1).
    Config(StageError),
}

/// The stage `--stage` (`requested`) picks, else the default, with its variables overridden from `env`.
fn choose_stage(
    command: &mut clap::Command,
    api: &'static ApiSpec,
    requested: Option<&str>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Option<ResolvedStage>, StageFailure> {
    let index = stage::select(api, requested).map_err(|err| {
        let kind = match err {
            StageError::NoneChosen { .. } => ErrorKind::MissingRequiredArgument,
            _ => ErrorKind::InvalidValue,
        };
        StageFailure::Usage(command.error(kind, format!("--stage: {err}")))
    })?;
    index
        .map(|index| ResolvedStage::resolve(api, index, env))
        .transpose()
        .map_err(StageFailure::Config)
}

/// Each API's stage (in the order of `apis`): `--stage NAME` is stage `NAME` of every API that declares stages,
/// and is refused when one of them lacks it; without it, each API's default.
fn choose_stages(
    command: &mut clap::Command,
    apis: &[&'static ApiSpec],
    requested: Option<&str>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Vec<Option<ResolvedStage>>, StageFailure> {
    if let [api] = apis {
        return Ok(vec![choose_stage(command, api, requested, env)?]);
    }
    let staged: Vec<&ApiSpec> = apis.iter().copied().filter(|api| !api.stages.is_empty()).collect();
    if let Some(name) = requested {
        if staged.is_empty() {
            let err = StageError::NoStages { name: name.to_owned() };
            return Err(StageFailure::Usage(
                command.error(ErrorKind::InvalidValue, format!("--stage: {err}")),
            ));
        }
        if let Some(lacking) = staged.iter().find(|api| !api.stages.iter().any(|s| s.name == name)) {
            // The names that would work: those every API with stages declares.
            let common: Vec<&str> = staged[0]
                .stages
                .iter()
                .map(|s| s.name)
                .filter(|n| staged.iter().all(|api| api.stages.iter().any(|s| s.name == *n)))
                .collect();
            let message = format!(
                "--stage: API `{}` has no stage `{name}` (it has: {}); the stages every API with stages declares: {}",
                lacking.name,
                stage::known_names(lacking),
                if common.is_empty() {
                    "none".to_owned()
                } else {
                    common.join(", ")
                }
            );
            return Err(StageFailure::Usage(command.error(ErrorKind::InvalidValue, message)));
        }
    }
    let mut stages = Vec::with_capacity(apis.len());
    for api in apis {
        let requested = requested.filter(|_| !api.stages.is_empty());
        let index = stage::select(api, requested).map_err(|err| {
            let kind = match err {
                StageError::NoneChosen { .. } => ErrorKind::MissingRequiredArgument,
                _ => ErrorKind::InvalidValue,
            };
            StageFailure::Usage(command.error(kind, format!("--stage: API `{}`: {err}", api.name)))
        })?;
        let stage = index
            .map(|index| ResolvedStage::resolve(api, index, env))
            .transpose()
            .map_err(StageFailure::Config)?;
        stages.push(stage);
    }
    Ok(stages)
}

/// The stage being served, its base path and where each variable came from (never a value: they may be secrets).
fn log_stage(stage: &ResolvedStage) {
    tracing::info!(
        stage = stage.name(),
        base_path = stage.base_path(),
        cache = if stage.cache_enabled() { "on" } else { "off" },
        "serving stage {}",
        stage.name()
    );
    for (name, source) in stage.sources() {
        match source {
            VariableSource::Spec => tracing::info!("stage variable {name} from the spec"),
            VariableSource::Environment => {
                tracing::info!("stage variable {name} from {}", stage::env_name(name));
            }
        }
    }
}

fn clap_exit(err: &clap::Error) -> ExitCode {
    // Help and version go to stdout with code 0; usage errors to stderr with code 2.
    let _ = err.print();
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// SIGTERM and SIGINT (Ctrl-C).
/// Re-reads the key file on every SIGHUP; a bad file keeps the keys in force and says why.
#[cfg(unix)]
async fn reload_on_hangup(keys: KeyStore, key_file: bool, tls: Option<Tls>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        if key_file {
            match keys.reload() {
                Ok(count) => tracing::info!(keys = count, "API keys reloaded"),
                Err(err) => tracing::error!(error = %err, "API keys not reloaded; the previous keys stay in force"),
            }
        }
        if let Some(tls) = &tls {
            match tls.reload() {
                Ok(count) => tracing::info!(certificates = count, "TLS certificates reloaded"),
                Err(err) => tracing::error!(
                    error = %err,
                    "TLS certificates not reloaded; the previous certificates stay in force"
                ),
            }
        }
    }
}

/// Reopens the access log file on every SIGUSR1 (a failed reopen keeps the previous file, and is logged).
#[cfg(unix)]
async fn reopen_access_log_on_usr1(access_log: Option<AccessLogHandle>, mut signals: tokio::signal::unix::Signal) {
    while signals.recv().await.is_some() {
        match &access_log {
            Some(access_log) => access_log.reopen(),
            None => tracing::debug!("SIGUSR1: the access log is off; nothing to reopen"),
        }
    }
}

struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the runtime that will poll [`recv`](Self::recv).
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "ctrl-c",
                // Without a working handler, never trigger a shutdown by accident.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
    }

    static STAGED: ApiSpec = ApiSpec {
        stages: &[
            crate::spec::StageSpec {
                name: "dev",
                variables: &[("greeting", "hello")],
                base_path: "",
                cache_enabled: true,
                throttle: None,
                cors_origins: None,
                upstreams: &[],
            },
            crate::spec::StageSpec {
                name: "prod",
                variables: &[("greeting", "hi")],
                base_path: "/prod",
                cache_enabled: true,
                throttle: None,
                cors_origins: None,
                upstreams: &[],
            },
        ],
        default_stage: Some(1),
        spec_sha256: "",
        published: None,
        ..crate::spec::ApiSpec::EMPTY
    };

    static NO_DEFAULT: ApiSpec = ApiSpec {
        default_stage: None,
        spec_sha256: "",
        published: None,
        ..STAGED
    };

    fn choose(
        api: &'static ApiSpec,
        requested: Option<&str>,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<ResolvedStage>, StageFailure> {
        choose_stage(&mut command(api), api, requested, env)
    }

    fn usage_error(result: Result<Option<ResolvedStage>, StageFailure>) -> (String, i32) {
        match result {
            Err(StageFailure::Usage(err)) => (err.to_string(), err.exit_code()),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_stage_is_a_usage_error_listing_the_stages() {
        let (text, code) = usage_error(choose(&STAGED, Some("qa"), &|_| None));
        assert_eq!(code, 2);
        assert!(
            text.contains("unknown stage `qa` (this gateway has: dev, prod)"),
            "{text}"
        );
    }

    #[test]
    fn without_stage_the_default_is_served_and_the_environment_overrides_variables() {
        let stage = choose(&STAGED, None, &|_| None).expect("default").expect("a stage");
        assert_eq!((stage.name(), stage.variable("greeting")), ("prod", Some("hi")));
        let env = |name: &str| (name == "GATEWAY_STAGE_VAR_GREETING").then(|| OsString::from("salut"));
        let stage = choose(&STAGED, Some("dev"), &env).expect("dev").expect("a stage");
        assert_eq!((stage.name(), stage.variable("greeting")), ("dev", Some("salut")));
    }

    #[test]
    fn stages_without_a_default_must_be_picked() {
        let (text, code) = usage_error(choose(&NO_DEFAULT, None, &|_| None));
        assert_eq!(code, 2);
        assert!(text.contains("--stage") && text.contains("dev, prod"), "{text}");
        assert_eq!(
            choose(&NO_DEFAULT, Some("dev"), &|_| None)
                .expect("picked")
                .map(|s| s.name()),
            Some("dev")
        );
    }

    #[test]
    fn a_stage_for_an_api_without_stages_is_refused_and_none_is_fine() {
        let api = &crate::spec::ApiSpec::EMPTY;
        let (text, code) = usage_error(choose(api, Some("dev"), &|_| None));
        assert_eq!(code, 2);
        assert!(text.contains("declares no stages"), "{text}");
        assert!(matches!(choose(api, None, &|_| None), Ok(None)));
    }

    /// Stages `dev` and `qa`, no default.
    static OTHER_STAGES: ApiSpec = ApiSpec {
        name: "other",
        stages: &[
            crate::spec::StageSpec {
                name: "dev",
                variables: &[("greeting", "yo")],
                base_path: "",
                cache_enabled: true,
                throttle: None,
                cors_origins: None,
                upstreams: &[],
            },
            crate::spec::StageSpec {
                name: "qa",
                variables: &[("greeting", "hey")],
                base_path: "/qa",
                cache_enabled: true,
                throttle: None,
                cors_origins: None,
                upstreams: &[],
            },
        ],
        default_stage: None,
        ..crate::spec::ApiSpec::EMPTY
    };

    static UNSTAGED: ApiSpec = ApiSpec {
        name: "unstaged",
        ..crate::spec::ApiSpec::EMPTY
    };

    fn choose_all(
        apis: &[&'static ApiSpec],
        requested: Option<&str>,
    ) -> Result<Vec<Option<&'static str>>, StageFailure> {
        let stages = choose_stages(&mut Args::command(), apis, requested, &|_| None)?;
        Ok(stages.iter().map(|s| s.as_ref().map(ResolvedStage::name)).collect())
    }

    #[test]
    fn a_stage_applies_to_every_api_with_stages_and_one_lacking_it_is_a_usage_error() {
        assert_eq!(
            choose_all(&[&STAGED, &OTHER_STAGES, &UNSTAGED], Some("dev")).expect("both have dev"),
            [Some("dev"), Some("dev"), None]
        );
        let Err(StageFailure::Usage(err)) = choose_all(&[&STAGED, &OTHER_STAGES], Some("prod")) else {
            panic!("`other` has no prod");
        };
        let text = err.to_string();
        assert!(
            text.contains(
                "API `other` has no stage `prod` (it has: dev, qa); the stages every API with stages declares: dev"
            ),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);
        // Without `--stage`, each API's default; an API with stages and no default needs one.
        assert_eq!(
            choose_all(&[&STAGED, &UNSTAGED], None).expect("defaults"),
            [Some("prod"), None]
        );
        let Err(StageFailure::Usage(err)) = choose_all(&[&STAGED, &OTHER_STAGES], None) else {
            panic!("`other` has no default");
        };
        assert!(
            err.to_string().contains("API `other`: this gateway declares stages"),
            "{err}"
        );
        let Err(StageFailure::Usage(err)) = choose_all(&[&UNSTAGED, &crate::spec::ApiSpec::EMPTY], Some("dev")) else {
            panic!("no API has stages");
        };
        assert!(err.to_string().contains("declares no stages"), "{err}");
    }

    #[test]
    fn command_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn the_token_cache_is_on_unless_turned_off_and_overrides_are_name_url_pairs() {
        let parse = |extra: &[&str]| {
            let argv = std::iter::once("gw").chain(extra.iter().copied());
            Args::from_arg_matches(&Args::command().try_get_matches_from(argv).expect("valid flags")).expect("args")
        };
        assert!(parse(&[]).token_cache);
        assert!(!parse(&["--token-cache", "off"]).token_cache);
        assert!(parse(&["--token-cache", "on"]).token_cache);
        let args = parse(&[
            "--jwks-url",
            "bearer=http://127.0.0.1:1/jwks.json",
            "--oidc-url",
            "oidc=http://x/.well-known",
        ]);
        assert_eq!(
            args.jwks_urls,
            [("bearer".to_owned(), "http://127.0.0.1:1/jwks.json".to_owned())]
        );
        assert_eq!(args.oidc_urls[0].0, "oidc");
        assert!(
            Args::command()
                .try_get_matches_from(["gw", "--token-cache", "maybe"])
                .is_err()
        );
        assert!(
            Args::command()
                .try_get_matches_from(["gw", "--jwks-url", "no-equals"])
                .is_err()
        );
    }
}
