//! The reverse proxy: forwards a routed request to one server of its upstream and streams the answer back.
//!
//! - [`cluster`]: an upstream's servers and their state in the process (healthy, ejected, in flight), shared by
//!   every worker; [`balance`]: which server a try goes to, and which side of a split a request goes to;
//!   [`retry`]: which failures are retried, the backoff and the retry budget; [`background`]: the health checks
//!   and re-resolution (one thread per process); [`connect`]: TLS, connect timeouts and the socket bound.
//! - Upstream URLs are parsed once at start-up ([`Upstreams::resolve`]) into scheme, authority, base path and
//!   `Host` value, so a request only concatenates its path and clones a few reference-counted parts. Each worker
//!   owns a [`Proxy`]: one keep-alive connection pool per server, so workers never contend for a pool (except an
//!   upstream with `max_connections`, whose one pool every worker shares so that the bound holds for the process).
//! - An upstream of one server with no checks, retries, ejection or bound is forwarded to without touching any
//!   shared state: what the resilience features cost is paid only by upstreams that use them.
//!
//! Bodies are streamed both ways: the downstream request body is handed to the upstream connection as it
//! arrives, and the upstream response body is handed back the same way; nothing is buffered, so a 1 GiB upload
//! costs the gateway a few kilobytes. The exception is a small body of known length (up to 64 KiB) of a request
//! that may be retried: it is read first, so that a retry can resend it. [`UpstreamSpec::timeout`] bounds each
//! try's wait for the response head (`504` when exceeded) and then each wait for the next piece of the response
//! body (the response is aborted when exceeded), so a stalled upstream never holds a client forever, while a long
//! but steady download is never cut.
//!
//! Upstream connections speak HTTP/1.1 (plain or TLS via rustls), like nginx's `proxy_http_version 1.1`.
//! Connection upgrades are hop-by-hop and removed, except on operations marked `websocket: true`: there a
//! client's `Upgrade: websocket` (HTTP/1.1) goes to the upstream, and when it answers `101` the two connections
//! are spliced, byte for byte in both directions, until either side closes ([`websocket`]).

mod background;
mod balance;
mod cluster;
mod connect;
mod hosts;
mod pool;
mod retry;
mod websocket;

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode, Uri, Version, request};
use http_body::Body as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::OwnedSemaphorePermit;

pub use background::Background;
pub use cluster::ClusterView;
pub use connect::TlsConfig;
pub use hosts::{Hosts, HostsError};

use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::{RequestCtx, UpstreamCall, X_REQUEST_ID};
use crate::spec::{ApiSpec, Balance, PathPart, SplitSide, SplitTarget, UpstreamTarget};
use crate::stage::{self, ResolvedStage};
use crate::template::{Placeholder, RequestView, TemplatePart, Values};
use cluster::{Cluster, Server};
use connect::{SendError, UpstreamClient};
use pool::UpstreamBody;
use retry::Failure;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Characters percent-encoded in a path-parameter value so that it stays exactly one path segment.
///
/// Everything but RFC 3986 unreserved characters and sub-delims is encoded, so `/`, `?`, `#` and `%` can never
/// end the segment, start a query or fragment, or form a new escape. `;` is a sub-delim but is encoded as well:
/// servlet containers (Tomcat, Jetty) treat `;...` as a path parameter and strip it before matching, which makes
/// `..;` climb a level there.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'&')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b'=');

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy `Keep-Alive` and `Proxy-Connection`): they
/// describe one connection, never the message, so a proxy must not forward them.
fn hop_by_hop() -> [&'static HeaderName; 9] {
    [
        &CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &PROXY_AUTHENTICATE,
        &PROXY_AUTHORIZATION,
        &TE,
        &TRAILER,
        &TRANSFER_ENCODING,
        &UPGRADE,
    ]
}

/// `--upstream NAME=URL[,URL...]`: replaces the URLs of one upstream at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOverride {
    /// The upstream's name in the spec.
    pub name: String,
    /// The URL to use instead (several, comma-separated: one per server).
    pub url: String,
}

impl UpstreamOverride {
    /// The URLs given, one per server.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim).filter(|u| !u.is_empty())
    }
}

impl std::str::FromStr for UpstreamOverride {
    type Err = UpstreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, url)) if !name.is_empty() && !url.is_empty() => Ok(Self {
                name: name.to_owned(),
                url: url.to_owned(),
            }),
            _ => Err(UpstreamError::OverrideSyntax(s.to_owned())),
        }
    }
}

/// Why the upstream configuration was refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// `--upstream` without `NAME=URL` shape.
    #[error("expected NAME=URL, got `{0}`")]
    OverrideSyntax(String),
    /// `--upstream` names an upstream the spec does not declare.
    #[error("unknown upstream `{name}` (this gateway has: {known})")]
    UnknownUpstream {
        /// The name given.
        name: String,
        /// The declared names, comma-separated.
        known: String,
    },
    /// An upstream URL that cannot be proxied to (shown as written in the spec when stage variables filled it).
    #[error("invalid URL `{url}` for upstream `{name}`: {reason}")]
    InvalidUrl {
        /// The upstream.
        name: String,
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An upstream URL names a stage variable, and no stage is being served.
    #[error("upstream `{name}`: its URL `{url}` uses stage variables, and no stage is being served")]
    NoStage {
        /// The upstream.
        name: String,
        /// The URL as written in the spec.
        url: String,
    },
    /// An upstream URL names a variable the stage does not define.
    #[error("upstream `{name}`: its URL uses {{stage.{variable}}}, which stage `{stage}` does not define")]
    StageVariable {
        /// The upstream.
        name: String,
        /// The variable.
        variable: String,
        /// The stage.
        stage: &'static str,
    },
    /// The TLS client configuration could not be built.
    #[error("cannot configure TLS for upstreams: {0}")]
    Tls(String),
}

/// The upstreams of an API with overrides and the stage applied: one [`Cluster`] each, shared (with its servers'
/// state) by every worker of the process.
#[derive(Debug, Clone)]
pub struct Upstreams {
    clusters: Arc<[Arc<Cluster>]>,
}

impl Upstreams {
    /// Parses every upstream URL of `api`, replacing those named in `overrides`, and makes each upstream's servers.
    ///
    /// `{stage.X}` placeholders in a spec URL are filled from `stage` first (an override replaces the whole URL,
    /// placeholders included). A URL so filled is logged and reported as written in the spec, since stage values
    /// may be secrets. An upstream with `resolve:` resolves its host names now (blocking, once).
    pub fn resolve(
        api: &'static ApiSpec,
        stage: Option<&ResolvedStage>,
        overrides: &[UpstreamOverride],
        hosts: Option<&Hosts>,
    ) -> Result<Self, UpstreamError> {
        for o in overrides {
            if !api.upstreams.iter().any(|u| u.name == o.name) {
                let known = api.upstreams.iter().map(|u| u.name).collect::<Vec<_>>();
                return Err(UpstreamError::UnknownUpstream {
                    name: o.name.clone(),
                    known: if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        let mut parsed = Vec::with_capacity(api.upstreams.len());
        for (index, spec) in api.upstreams.iter().enumerate() {
            // What the stage changes of this upstream: its URLs, its timeouts.
            let staged = stage.and_then(|stage| stage.upstream(index));
            let spec_urls: &[&str] = match staged {
                Some(s) if !s.urls.is_empty() => s.urls,
                _ => spec.urls,
            };
            let timeout = staged.and_then(|s| s.timeout).unwrap_or(spec.timeout);
            let connect_timeout = staged.and_then(|s| s.connect_timeout).unwrap_or(spec.connect_timeout);
            // The last override of a name wins, like any repeated command-line option.
            let overridden = overrides.iter().rev().find(|o| o.name == spec.name);
            let mut written: Vec<(Cow<'_, str>, String)> = Vec::new();
            match overridden {
                Some(o) => written.extend(o.urls().map(|url| (Cow::Borrowed(url), url.to_owned()))),
                None => {
                    for &spec_url in spec_urls {
                        if !stage::has_placeholder(spec_url) {
                            written.push((Cow::Borrowed(spec_url), spec_url.to_owned()));
                            continue;
                        }
                        let Some(stage) = stage else {
                            return Err(UpstreamError::NoStage {
                                name: spec.name.to_owned(),
                                url: spec_url.to_owned(),
                            });
                        };
                        let filled = stage
                            .substitute(spec_url)
                            .map_err(|variable| UpstreamError::StageVariable {
                                name: spec.name.to_owned(),
                                variable,
                                stage: stage.name(),
                            })?;
                        written.push((Cow::Owned(filled), format!("{spec_url} (stage `{}`)", stage.name())));
                    }
                }
            }
            if written.is_empty() {
                return Err(UpstreamError::InvalidUrl {
                    name: spec.name.to_owned(),
                    url: String::new(),
                    reason: "the upstream has no URL".to_owned(),
                });
            }
            let mut urls = Vec::with_capacity(written.len());
            let mut base_path: Option<String> = None;
            for (url, shown) in written {
                let invalid = |reason: String| UpstreamError::InvalidUrl {
                    name: spec.name.to_owned(),
                    url: shown.clone(),
                    reason,
                };
                let (url, path) = parse_upstream_url(&url, shown.clone()).map_err(invalid)?;
                match &base_path {
                    None => base_path = Some(path),
                    Some(first) if *first != path => {
                        return Err(invalid(format!(
                            "every URL of an upstream has the same base path (`{first}` before, `{path}` here)"
                        )));
                    }
                    Some(_) => {}
                }
                urls.push(url);
            }
            parsed.push((spec, urls, base_path.unwrap_or_default(), timeout, connect_timeout));
        }
        // One configuration for the upstreams without TLS settings of their own (root certificates are read once);
        // one each for those with (their CA files and client certificates read now, so a bad one fails start-up).
        let needs_tls = parsed
            .iter()
            .any(|(spec, urls, ..)| spec.tls.is_none() && urls.iter().any(|u| u.scheme == Scheme::HTTPS));
        let shared_tls = TlsConfig::new(needs_tls)?;
        let mut clusters = Vec::with_capacity(parsed.len());
        for (spec, urls, base_path, timeout, connect_timeout) in parsed {
            let tls = match &spec.tls {
                Some(own) => TlsConfig::for_upstream(spec.name, own)?,
                None => shared_tls.clone(),
            };
            clusters.push(Arc::new(Cluster::new(
                spec,
                urls,
                base_path,
                timeout,
                connect_timeout,
                tls,
                hosts.cloned(),
            )));
        }
        Ok(Self {
            clusters: clusters.into(),
        })
    }

    /// `(name, servers)` of every upstream, in spec order, for start-up logs.
    pub fn urls(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.clusters.iter().map(|c| {
            let servers: Vec<&str> = c.servers.load().servers.iter().map(|s| s.endpoint.label).collect();
            (c.name, servers.join(", "))
        })
    }

    /// The rotation of upstream `name` in a few words (`2 of 2 up`, `1 of 2 up, 1 ejected`), for the live page;
    /// `None` for an unknown upstream or one without health checks or ejection, whose servers are always in it.
    pub fn health(&self, name: &str) -> Option<String> {
        self.clusters.iter().find(|c| c.name == name).and_then(|c| c.health())
    }

    /// Every upstream's servers and their state, for `GET /_gateway/upstreams`.
    pub fn views(&self) -> Vec<cluster::ClusterView> {
        self.clusters.iter().map(|c| c.view()).collect()
    }

    /// Starts the health checks and re-resolution of every upstream of `all` that has them, on one thread for the
    /// process; `None` when there are none.
    pub fn start_background(all: &[&Upstreams]) -> std::io::Result<Option<Background>> {
        Background::start(all.iter().flat_map(|u| u.clusters.iter().cloned()).collect())
    }
}

/// Splits an absolute `http(s)://` URL into what upstream requests need, and its base path (without its trailing
/// `/`, empty for the root).
fn parse_upstream_url(raw: &str, shown: String) -> Result<(cluster::Url, String), String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    let (scheme, default_port) = match url.scheme() {
        "http" => (Scheme::HTTP, 80),
        "https" => (Scheme::HTTPS, 443),
        other => return Err(format!("scheme must be http or https, not `{other}`")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("a query or fragment is not allowed in an upstream URL".to_owned());
    }
    let host = url.host_str().ok_or("the URL has no host")?;
    // `Url::port` is `None` for the scheme's default port, which is also how `Host` should be written.
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let host_value = HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
    let authority = Authority::try_from(authority.as_str()).map_err(|e| e.to_string())?;
    let base_path = url.path().trim_end_matches('/').to_owned();
    let hostname = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    Ok((
        cluster::Url {
            shown,
            scheme,
            authority,
            host: host_value,
            hostname,
            port: url.port().unwrap_or(default_port),
        },
        base_path,
    ))
}

/// One server as one worker sees it: its shared state, the worker's pool of connections to it, and the worker's
/// own copy of what every request to it carries (so that no request touches a reference count shared between
/// cores).
struct LocalServer {
    shared: Arc<Server>,
    client: UpstreamClient,
    /// `Host` of requests to it.
    host: HeaderValue,
}

impl LocalServer {
    fn new(shared: &Arc<Server>, client: UpstreamClient) -> Self {
        Self {
            host: HeaderValue::from_bytes(shared.endpoint.host.as_bytes())
                .unwrap_or_else(|_| shared.endpoint.host.clone()),
            shared: Arc::clone(shared),
            client,
        }
    }
}

impl balance::Candidate for LocalServer {
    fn available(&self, now: u64) -> bool {
        self.shared.available(now)
    }

    fn in_flight(&self) -> u32 {
        self.shared.in_flight.load(Relaxed)
    }

    fn label(&self) -> &str {
        self.shared.endpoint.label
    }
}

/// A worker's servers of one upstream, for one generation of the cluster's server set.
struct Local {
    generation: u64,
    servers: Box<[LocalServer]>,
}

/// One upstream as one worker sees it: the shared cluster, the worker's pools, its round-robin position.
struct Upstream {
    cluster: Arc<Cluster>,
    local: ArcSwap<Local>,
    next: AtomicUsize,
}

impl Upstream {
    fn new(cluster: &Arc<Cluster>) -> Self {
        let set = cluster.servers.load();
        let local = Local {
            generation: set.generation,
            servers: set
                .servers
                .iter()
                .map(|server| LocalServer::new(server, cluster.worker_client(server)))
                .collect(),
        };
        Self {
            cluster: Arc::clone(cluster),
            local: ArcSwap::from_pointee(local),
            // Workers start at different servers, so that their first requests do not all go to the first one.
            next: AtomicUsize::new(fastrand::usize(..)),
        }
    }

    /// This worker's servers, brought up to date first when re-resolution changed the cluster's.
    fn servers(&self) -> Arc<Local> {
        let local = self.local.load_full();
        if self.cluster.spec.resolve.is_none() {
            return local;
        }
        let set = self.cluster.servers.load();
        if set.generation == local.generation {
            return local;
        }
        let servers = set
            .servers
            .iter()
            .map(|server| {
                let kept = local.servers.iter().find(|l| Arc::ptr_eq(&l.shared, server));
                LocalServer::new(
                    server,
                    kept.map_or_else(|| self.cluster.worker_client(server), |l| l.client.clone()),
                )
            })
            .collect();
        let local = Arc::new(Local {
            generation: set.generation,
            servers,
        });
        self.local.store(Arc::clone(&local));
        local
    }
}

/// A try in flight on a server of a tracked upstream: counted until the response body ends (or the try fails),
/// holding its place under `max_connections`.
struct InFlight {
    server: Arc<Server>,
    _admitted: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    fn new(server: Arc<Server>, admitted: Option<OwnedSemaphorePermit>) -> Self {
        server.in_flight.fetch_add(1, Relaxed);
        server.requests.fetch_add(1, Relaxed);
        Self {
            server,
            _admitted: admitted,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Relaxed);
    }
}

/// A worker's proxy: its pools of every upstream. Cheap to clone (shares the pools).
#[derive(Clone)]
pub struct Proxy {
    upstreams: Arc<[Arc<Upstream>]>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.upstreams.iter().map(|u| u.cluster.name))
            .finish()
    }
}

impl Proxy {
    /// A worker's pools for `upstreams`. Needs no runtime: connections are made on first use, on the runtime of
    /// the task that uses them.
    pub fn new(upstreams: &Upstreams) -> Self {
        Self {
            upstreams: upstreams.clusters.iter().map(|c| Arc::new(Upstream::new(c))).collect(),
        }
    }

    /// The forwarding state of one operation, or `None` if an upstream index is out of range. Stage variables
    /// of its path are filled in from `stage` now (a variable the stage lacks is empty: the start-up checks of
    /// [`ResolvedStage::resolve`] rule that out).
    pub(crate) fn route(
        &self,
        target: &'static UpstreamTarget,
        stage: Option<&ResolvedStage>,
    ) -> Option<UpstreamRoute> {
        self.split_route(
            &[SplitSide {
                upstream: target.upstream,
                weight: 1,
            }],
            None,
            target.path,
            stage,
        )
    }

    /// The forwarding state of an operation split between upstreams.
    pub(crate) fn split(&self, target: &'static SplitTarget, stage: Option<&ResolvedStage>) -> Option<UpstreamRoute> {
        self.split_route(target.sides, target.sticky, target.path, stage)
    }

    fn split_route(
        &self,
        sides: &[SplitSide],
        sticky: Option<Placeholder>,
        path: &'static [PathPart],
        stage: Option<&ResolvedStage>,
    ) -> Option<UpstreamRoute> {
        let mut pieces: Vec<Piece> = Vec::with_capacity(path.len());
        for part in path {
            let text = match *part {
                PathPart::Param(i) => {
                    pieces.push(Piece::Param(i));
                    continue;
                }
                PathPart::Literal(text) => text,
                PathPart::Stage(name) => stage.and_then(|s| s.variable(name)).unwrap_or(""),
            };
            match pieces.last_mut() {
                Some(Piece::Text(last)) => last.push_str(text),
                _ => pieces.push(Piece::Text(text.to_owned())),
            }
        }
        let constant = pieces.iter().all(|p| matches!(p, Piece::Text(_)));
        let mut total = 0u32;
        let mut cumulative = Vec::with_capacity(sides.len());
        let mut routed = Vec::with_capacity(sides.len());
        for side in sides {
            let upstream = Arc::clone(self.upstreams.get(side.upstream)?);
            // Operations whose upstream path has no parameters get their whole path prepared now; without a query
            // string the request then needs no path formatting at all.
            let fixed = constant
                .then(|| {
                    let mut path = String::new();
                    push_path(&mut path, &upstream.cluster.base_path, &pieces, |_| None);
                    PathAndQuery::try_from(path).ok()
                })
                .flatten();
            total = total.saturating_add(side.weight);
            cumulative.push(total);
            routed.push(Side { upstream, fixed });
        }
        Some(UpstreamRoute {
            sides: routed.into(),
            cumulative: cumulative.into(),
            sticky,
            path: pieces.into(),
        })
    }
}

/// Why a side call (an authorizer's) got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The upstream index is out of range, or the URI cannot be built.
    Invalid,
    /// The upstream could not be reached, or broke the exchange (or has no server in rotation).
    Failed,
    /// The upstream did not answer in time.
    Timeout,
}

/// A server picked for a try, and its place in flight: by its index in the worker's servers, whose `Arc` is the
/// worker's own (nothing shared between cores is counted for a pick).
struct Picked {
    local: Arc<Local>,
    index: usize,
    in_flight: Option<InFlight>,
}

impl Picked {
    fn local(&self) -> &LocalServer {
        &self.local.servers[self.index]
    }

    fn server(&self) -> &Server {
        &self.local().shared
    }

    fn client(&self) -> &UpstreamClient {
        &self.local().client
    }

    fn host(&self) -> HeaderValue {
        self.local().host.clone()
    }
}

impl Upstream {
    /// A server for one try of a request with hash value `key`, avoiding those in `tried`; `SERVICE_UNAVAILABLE`
    /// when none is in rotation or `max_connections` stay in use past the queue timeout.
    async fn pick(&self, key: Option<&str>, tried: u64) -> Result<(usize, Picked), GatewayError> {
        let cluster = &*self.cluster;
        let local = self.servers();
        if cluster.plain && !local.servers.is_empty() {
            return Ok((
                0,
                Picked {
                    local,
                    index: 0,
                    in_flight: None,
                },
            ));
        }
        let Some(i) = balance::pick(
            &cluster.spec.balance,
            &local.servers,
            &self.next,
            key,
            tried,
            cluster.now(),
        ) else {
            return Err(GatewayError::new(
                ErrorKind::ServiceUnavailable,
                format!("no server of upstream `{}` is available", cluster.name),
            )
            .with_reason("no_server")
            .with_retry_after(NO_SERVER_RETRY_AFTER));
        };
        let in_flight = Arc::clone(&local.servers[i].shared);
        let admitted = match &cluster.admission {
            None => None,
            Some(admission) => {
                match tokio::time::timeout(cluster.spec.queue_timeout, Arc::clone(admission).acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => {
                        return Err(GatewayError::new(
                            ErrorKind::ServiceUnavailable,
                            format!(
                                "upstream `{}` has {} requests in flight, its max_connections",
                                cluster.name,
                                cluster.spec.max_connections.unwrap_or(0)
                            ),
                        )
                        .with_reason("max_connections")
                        .with_retry_after(NO_SERVER_RETRY_AFTER));
                    }
                }
            }
        };
        Ok((
            i,
            Picked {
                local,
                index: i,
                in_flight: Some(InFlight::new(in_flight, admitted)),
            },
        ))
    }

    /// The URI of `path_and_query` under the upstream's base path on `server`, for the gateway's own requests.
    fn uri(&self, server: &Server, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(server.endpoint.scheme.clone())
            .authority(server.endpoint.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.cluster.base_path))
            .build()
    }
}

impl Proxy {
    /// A `GET` of `path` (under the base path) on upstream `index` with `headers`, bounded by the upstream's
    /// timeouts: the gateway asking a service of its own (an authorizer), not forwarding a client's request. The
    /// response body is read (up to 64 KiB) and dropped, so the connection returns to the pool.
    pub(crate) async fn call(
        &self,
        index: usize,
        path: &str,
        headers: HeaderMap,
    ) -> Result<(http::StatusCode, HeaderMap), CallError> {
        let upstream = self.upstreams.get(index).ok_or(CallError::Invalid)?;
        let cluster = &upstream.cluster;
        let (_, picked) = upstream.pick(None, 0).await.map_err(|_| CallError::Failed)?;
        let uri = upstream.uri(picked.server(), path).map_err(|_| CallError::Invalid)?;
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        request.headers_mut().insert(HOST, picked.host());
        let sent = tokio::time::timeout(cluster.timeout, picked.client().request(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(upstream = cluster.name, error = %ErrorChain(&err), "side call failed");
                cluster.record(picked.server(), true);
                return Err(CallError::Failed);
            }
            Err(_) => {
                tracing::warn!(upstream = cluster.name, timeout = ?cluster.timeout, "side call did not answer in time");
                cluster.record(picked.server(), true);
                return Err(CallError::Timeout);
            }
        };
        let (head, body) = response.into_parts();
        let drained =
            tokio::time::timeout(cluster.timeout, crate::bodies::read_up_to(Body::new(body), 64 * 1024)).await;
        if !matches!(drained, Ok(crate::bodies::UpTo::Whole(_))) {
            tracing::debug!(upstream = cluster.name, "side call's body was not read whole");
        }
        Ok((head.status, head.headers))
    }

    /// The index of the upstream named `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.cluster.name == name)
    }

    /// The name of upstream `index`.
    pub(crate) fn name_of(&self, index: usize) -> Option<&'static str> {
        self.upstreams.get(index).map(|u| u.cluster.name)
    }

    /// A request of the gateway's own (a function's) to upstream `index`: `path_and_query` under its base path, the
    /// given method, headers and body, bounded by the upstream's timeouts; the response body is read whole, up to
    /// `limit` bytes (`UPSTREAM_ERROR` beyond).
    pub(crate) async fn exchange(
        &self,
        index: usize,
        mut request: Request<Body>,
        limit: u64,
    ) -> Result<http::Response<Bytes>, GatewayError> {
        let upstream = self.upstreams.get(index).ok_or_else(GatewayError::internal)?;
        let cluster = &upstream.cluster;
        let (_, picked) = upstream.pick(None, 0).await?;
        let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let uri = upstream
            .uri(picked.server(), path)
            .map_err(|_| GatewayError::new(ErrorKind::Internal, "a function asked for an invalid upstream path"))?;
        *request.uri_mut() = uri;
        request.headers_mut().insert(HOST, picked.host());
        let sent = tokio::time::timeout(cluster.timeout, picked.client().request(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(upstream = cluster.name, error = %ErrorChain(&err), "a function's upstream request failed");
                cluster.record(picked.server(), true);
                return Err(GatewayError::upstream(if err.is_connect() {
                    "the upstream could not be reached"
                } else {
                    "the upstream connection failed"
                }));
            }
            Err(_) => {
                tracing::warn!(upstream = cluster.name, timeout = ?cluster.timeout, "a function's upstream request did not answer in time");
                cluster.record(picked.server(), true);
                return Err(GatewayError::upstream_timeout());
            }
        };
        let (head, body) = response.into_parts();
        match tokio::time::timeout(cluster.timeout, crate::bodies::read_up_to(Body::new(body), limit)).await {
            Ok(crate::bodies::UpTo::Whole(bytes)) => Ok(http::Response::from_parts(head, bytes)),
            Ok(crate::bodies::UpTo::Larger(_)) => Err(GatewayError::upstream("the upstream response is too large")),
            Ok(crate::bodies::UpTo::Failed(_)) => Err(GatewayError::upstream("the upstream response broke off")),
            Err(_) => Err(GatewayError::upstream_timeout()),
        }
    }
}

/// A piece of an upstream path once stage variables are filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Literal text (the spec's, and stage values, inserted as they are).
    Text(String),
    /// Path parameter `i`, percent-encoded as one segment.
    Param(usize),
}

/// Writes base path + upstream path, substituting parameters (`param(i)`) as single encoded segments.
fn push_path<'v>(out: &mut String, base: &str, path: &[Piece], param: impl Fn(usize) -> Option<&'v str>) {
    out.push_str(base);
    for part in path {
        match part {
            Piece::Text(text) => out.push_str(text),
            Piece::Param(i) => out.extend(utf8_percent_encode(param(*i).unwrap_or(""), SEGMENT)),
        }
    }
    if out.is_empty() {
        out.push('/');
    }
}

/// One upstream an operation may go to.
struct Side {
    upstream: Arc<Upstream>,
    /// The full upstream path when it has no parameters.
    fixed: Option<PathAndQuery>,
}

/// How one operation reaches its upstream (or one of the upstreams of its split).
pub(crate) struct UpstreamRoute {
    sides: Box<[Side]>,
    /// The sides' cumulative weights.
    cumulative: Box<[u32]>,
    sticky: Option<Placeholder>,
    path: Box<[Piece]>,
}

/// The `Retry-After` of a `503` for an upstream with no server in rotation or no connection to spare: health
/// checks and ejections change the rotation within seconds.
const NO_SERVER_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The largest request body kept in memory so that a failed try can be resent.
const REPLAY_LIMIT: u64 = 64 * 1024;

/// How one try ended.
enum Tried {
    /// The upstream answered (and the answer is no failure worth retrying or ejecting for).
    Answered(http::Response<UpstreamBody>),
    /// The try failed; with the upstream's answer when it gave one.
    Failed(Failure, Option<http::Response<UpstreamBody>>, Option<SendError>),
    /// The client's body broke the try (it grew past the operation's limit).
    TooLarge,
    /// The client's body could not be read (malformed chunked framing, the client went away).
    BadBody,
}

/// The request value `placeholder` names, when the request has it (non-empty).
fn request_value(ctx: &RequestCtx, parts: &request::Parts, placeholder: Placeholder) -> Option<String> {
    let values = Values {
        ctx,
        error: None,
        request: Some(RequestView {
            query: parts.uri.query(),
            headers: &parts.headers,
        }),
    };
    let value = values.fill(&[TemplatePart::Value(placeholder)]);
    (!value.is_empty()).then_some(value)
}

impl UpstreamRoute {
    fn path_and_query(
        &self,
        side: &Side,
        ctx: &RequestCtx,
        query: Option<&str>,
    ) -> Result<PathAndQuery, http::uri::InvalidUri> {
        if let (Some(fixed), None) = (&side.fixed, query) {
            return Ok(fixed.clone());
        }
        let base = &side.upstream.cluster.base_path;
        let mut out = String::with_capacity(base.len() + 64 + query.map_or(0, str::len));
        push_path(&mut out, base, &self.path, |i| ctx.path_value(i));
        if let Some(query) = query {
            // Passed through byte for byte: re-encoding could change what the upstream parses.
            out.push('?');
            out.push_str(query);
        }
        PathAndQuery::from_maybe_shared(Bytes::from(out))
    }

    /// Forwards the request (path parameters already validated) and returns the upstream's response, or
    /// `UPSTREAM_ERROR`/`UPSTREAM_TIMEOUT`/`SERVICE_UNAVAILABLE`; failed tries are retried as the upstream's
    /// `retries` say.
    pub(crate) async fn forward(
        &self,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        body: Body,
    ) -> Result<Response, GatewayError> {
        let side = match &*self.sides {
            [only] => only,
            sides => {
                let sticky = self.sticky.and_then(|p| request_value(ctx, &parts, p));
                &sides[balance::pick_side(&self.cumulative, sticky.as_deref())]
            }
        };
        let upstream = &*side.upstream;
        let cluster = &*upstream.cluster;
        let key = match cluster.spec.balance {
            Balance::Hash(source) if !cluster.plain => request_value(ctx, &parts, source),
            _ => None,
        };
        let path_and_query = match self.path_and_query(side, ctx, parts.uri.query()) {
            Ok(pq) => pq,
            Err(err) => {
                tracing::error!(upstream = cluster.name, error = %err, "cannot build the upstream path");
                return Err(GatewayError::internal());
            }
        };
        // Taken before the request's extensions are dropped with the rest of this hop.
        let upgrade = websocket::requested(ctx, &mut parts);
        prepare_headers(ctx, &mut parts, &body);
        if upgrade.is_some() {
            websocket::ask_upstream(&mut parts.headers);
        }
        let max_body = ctx.operation.map_or(0, |op| op.body.max);

        // A retried request resends its body, so only a body the gateway holds whole is retried: none, or a small
        // one of known length read now. A streamed body is sent once.
        let retry = cluster
            .spec
            .retries
            .filter(|r| r.attempts > 0 && r.methods.allows(&parts.method));
        let (mut streamed, replay) = match retry {
            Some(_) if body.is_end_stream() => (None, Some(Bytes::new())),
            Some(_) if body.size_hint().exact().is_some_and(|n| n <= REPLAY_LIMIT) => {
                match crate::bodies::read_up_to(body, REPLAY_LIMIT).await {
                    crate::bodies::UpTo::Whole(bytes) => (None, Some(bytes)),
                    crate::bodies::UpTo::Larger(body) => (Some(body), None),
                    crate::bodies::UpTo::Failed(err) => {
                        if crate::policies::validate::body::is_too_large(&err) {
                            return Err(GatewayError::payload_too_large(max_body));
                        }
                        return Err(GatewayError::new(
                            ErrorKind::BadRequestBody,
                            "the request body could not be read",
                        ));
                    }
                }
            }
            _ => (Some(body), None),
        };
        let tries = match (&retry, &replay) {
            (Some(retry), Some(_)) => retry.attempts.saturating_add(1),
            _ => 1,
        };
        if let Some(budget) = &cluster.budget {
            budget.request();
        }

        let sent = std::time::Instant::now();
        let mut tried: u64 = 0;
        let mut attempt: u32 = 0;
        let mut last: Option<Failure> = None;
        let mut server_label = "";
        let outcome = loop {
            attempt += 1;
            let (index, picked) = match upstream.pick(key.as_deref(), tried).await {
                Ok(picked) => picked,
                // Out of servers (or of connections) on a retry: the last try's failure is the answer.
                Err(err) => match last {
                    Some(failure) => break Err(failure),
                    None => {
                        ctx.upstream = Some(UpstreamCall {
                            name: cluster.name,
                            server: None,
                            sent,
                            elapsed: sent.elapsed(),
                            status: None,
                            attempts: attempt - 1,
                        });
                        return Err(err);
                    }
                },
            };
            if index < 64 {
                tried |= 1 << index;
            }
            server_label = picked.server().endpoint.label;
            // The gateway's own pool sends the path alone (origin-form); hyper-util's wants the absolute URI.
            let uri = if picked.client().origin_form() {
                Uri::from(path_and_query.clone())
            } else {
                let endpoint = &picked.server().endpoint;
                let mut uri = http::uri::Parts::default();
                uri.scheme = Some(endpoint.scheme.clone());
                uri.authority = Some(endpoint.authority.clone());
                uri.path_and_query = Some(path_and_query.clone());
                let Ok(uri) = Uri::from_parts(uri) else {
                    tracing::error!(upstream = cluster.name, "cannot build the upstream URI");
                    return Err(GatewayError::internal());
                };
                uri
            };
            let last_try = attempt >= tries;
            let mut request = Request::new(match (&replay, streamed.take()) {
                (Some(bytes), _) => Body::from(bytes.clone()),
                (None, Some(body)) => body,
                (None, None) => Body::empty(),
            });
            *request.method_mut() = parts.method.clone();
            *request.uri_mut() = uri;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = if last_try {
                std::mem::take(&mut parts.headers)
            } else {
                parts.headers.clone()
            };
            request.headers_mut().insert(HOST, picked.host());

            let tried_now = try_once(cluster, picked.client(), request, retry.as_ref()).await;
            let failure = match &tried_now {
                Tried::Answered(_) => None,
                Tried::Failed(failure, ..) => Some(*failure),
                Tried::TooLarge | Tried::BadBody => None,
            };
            if !cluster.plain {
                cluster.record(picked.server(), failure.is_some_and(Failure::counts_against_server));
            }
            match tried_now {
                Tried::Answered(response) => break Ok((response, picked.in_flight)),
                Tried::TooLarge => {
                    // The request body grew past the operation's limit while it streamed: the client's doing.
                    return Err(GatewayError::payload_too_large(max_body));
                }
                Tried::BadBody => {
                    // Not the upstream's failure either: nothing to retry, nothing against the server.
                    return Err(GatewayError::new(
                        ErrorKind::BadRequestBody,
                        "the request body could not be read",
                    ));
                }
                Tried::Failed(failure, answer, error) => {
                    match &error {
                        Some(err) => {
                            tracing::warn!(upstream = cluster.name, server = server_label, attempt, error = %ErrorChain(err), "upstream request failed")
                        }
                        None if failure == Failure::Timeout => {
                            tracing::warn!(upstream = cluster.name, server = server_label, attempt, timeout = ?cluster.timeout, "upstream did not respond in time")
                        }
                        None => {
                            tracing::debug!(upstream = cluster.name, server = server_label, attempt, status = ?answer.as_ref().map(|a| a.status().as_u16()), "upstream answered with a failure")
                        }
                    }
                    let retried = !last_try
                        && retry.is_some_and(|r| failure.retried_by(&r))
                        && cluster.budget.as_ref().is_none_or(|b| b.try_retry());
                    if !retried {
                        match answer {
                            // The upstream's own answer stands when it is not retried.
                            Some(response) => break Ok((response, picked.in_flight)),
                            None => break Err(failure),
                        }
                    }
                    tracing::debug!(
                        upstream = cluster.name,
                        server = server_label,
                        attempt,
                        reason = failure.name(),
                        "retrying on another server"
                    );
                    // The failed answer's body is dropped (its connection closed) before the next try.
                    drop(answer);
                    drop(picked);
                    last = Some(failure);
                    if let Some(retry) = &retry {
                        tokio::time::sleep(retry::backoff(retry, attempt)).await;
                    }
                }
            }
        };
        ctx.upstream = Some(UpstreamCall {
            name: cluster.name,
            server: Some(server_label),
            sent,
            elapsed: sent.elapsed(),
            status: outcome.as_ref().ok().map(|(response, _)| response.status().as_u16()),
            attempts: attempt,
        });
        match outcome {
            Ok((response, in_flight)) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                websocket::splice(upgrade, response, cluster.name, in_flight)
            }
            Ok((response, in_flight)) => {
                let idle = cluster.timeout;
                let mut response =
                    response.map(|body| Body::new(IdleTimeout::new(body, idle, cluster.name, in_flight)));
                strip_hop_by_hop(response.headers_mut());
                Ok(response)
            }
            Err(Failure::Timeout) => Err(GatewayError::upstream_timeout()),
            Err(Failure::Connect) => Err(GatewayError::upstream("the upstream could not be reached")),
            Err(Failure::Reset) => Err(GatewayError::upstream("the upstream connection failed")),
            Err(Failure::Status(status)) => Err(GatewayError::new(
                ErrorKind::UpstreamError,
                format!("the upstream answered {status}, and no server was left to retry on"),
            )),
        }
    }
}

/// Whether sending failed because the client's request body did: hyper's client reports a body that errored as a
/// user error caused by the body's own error — for a client's body, its connection's `hyper::Error`.
fn is_client_body_error(err: &SendError) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err.inner());
    while let Some(e) = current {
        if let Some(hyper_err) = e.downcast_ref::<hyper::Error>()
            && hyper_err.is_user()
        {
            let mut cause = e.source();
            while let Some(c) = cause {
                // The client's body failed: its connection (hyper), or its decoding (a corrupt compressed body).
                if c.is::<hyper::Error>() || c.is::<std::io::Error>() {
                    return true;
                }
                cause = c.source();
            }
            return false;
        }
        current = e.source();
    }
    false
}

/// One try: the request sent to one server, bounded by the upstream's timeout.
async fn try_once(
    cluster: &Cluster,
    client: &UpstreamClient,
    request: Request<Body>,
    retry: Option<&crate::spec::RetrySpec>,
) -> Tried {
    match tokio::time::timeout(cluster.timeout, client.request(request)).await {
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            let failure = Failure::Status(status);
            if status >= 500 && (failure.counts_against_server() || retry.is_some_and(|r| failure.retried_by(r))) {
                Tried::Failed(failure, Some(response), None)
            } else {
                Tried::Answered(response)
            }
        }
        Ok(Err(err)) if crate::policies::validate::body::is_too_large(err.inner()) => Tried::TooLarge,
        Ok(Err(err)) if is_client_body_error(&err) => Tried::BadBody,
        Ok(Err(err)) => {
            let failure = if err.is_connect() {
                Failure::Connect
            } else {
                Failure::Reset
            };
            Tried::Failed(failure, None, Some(err))
        }
        Err(_) => Tried::Failed(Failure::Timeout, None, None),
    }
}

/// Turns the client's request head into the upstream's: hop-by-hop headers out, the forwarding headers and the
/// request id and trace context in (`Host` is the server's, set per try).
fn prepare_headers(ctx: &mut RequestCtx, parts: &mut request::Parts, body: &Body) {
    let original_host = parts.headers.remove(HOST).or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let headers = &mut parts.headers;
    strip_hop_by_hop(headers);
    // `Expect: 100-continue` is this hop's: the gateway's server already answers it (when the body is first
    // read), and an upstream's own `100` would only reach the gateway.
    headers.remove(EXPECT);
    if !body.is_end_stream() && body.size_hint().exact().is_none() {
        // The client's `Transfer-Encoding` went with the hop-by-hop headers. hyper frames a body of unknown length
        // as chunked by itself, except on GET, HEAD and CONNECT requests, where it would drop the body unless
        // told: say so, for every method.
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    }
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(ctx.scheme()));
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    // One more hop of the caller's trace (or a new trace): the upstream sees the gateway's span as its parent.
    // With trace export on, the context was made on arrival (its span id is the exported client span's).
    let trace = ctx
        .trace
        .unwrap_or_else(|| crate::pipeline::trace::TraceContext::of(headers));
    trace.apply(headers);
    ctx.trace = Some(trace);
    if let Some(peer) = &ctx.forwarded_for {
        append_forwarded_for(headers, peer);
    }
    // Extensions are this hop's (router captures, client address); none is meant for the upstream.
    parts.extensions = http::Extensions::new();
}
/// An upstream response body that fails if the upstream sends nothing for `idle`.
///
/// The head is bounded by the upstream timeout; this bounds each wait for the next piece of the body by the same
/// duration, so a stalled upstream cannot hold a client connection open forever, while a slow but progressing
/// download is never cut. The timer is only created when the body actually has to wait, which small responses
/// (already buffered with the head) never do.
struct IdleTimeout {
    inner: UpstreamBody,
    idle: Duration,
    upstream: &'static str,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The try's place in flight, given back when the body ends (or is dropped).
    _in_flight: Option<InFlight>,
}

/// The error ending a response body whose upstream went quiet.
#[derive(Debug, thiserror::Error)]
#[error("upstream `{upstream}` sent no response data for {idle:?}")]
struct BodyIdle {
    upstream: &'static str,
    idle: Duration,
}

impl IdleTimeout {
    fn new(inner: UpstreamBody, idle: Duration, upstream: &'static str, in_flight: Option<InFlight>) -> Self {
        Self {
            inner,
            idle,
            upstream,
            timer: None,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                // Progress: the next wait gets a full `idle` again.
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        let err = BodyIdle {
                            upstream: this.upstream,
                            idle,
                        };
                        tracing::warn!(upstream = this.upstream, error = %err, "aborting response");
                        Poll::Ready(Some(Err(err.into())))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Removes hop-by-hop headers, including any the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) headers tells whether there is anything to remove: most messages have no hop-by-hop
    // header at all, and each removal below is a hashed lookup.
    let hop = hop_by_hop();
    if !headers.keys().any(|name| hop.contains(&name)) {
        return;
    }
    if headers.contains_key(&CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(&CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    // With `Transfer-Encoding` the message was framed by it, not by `Content-Length` (RFC 9112 §6.3); the next
    // hop frames the body anew, so a stale length must not survive the encoding's removal.
    if headers.contains_key(&TRANSFER_ENCODING) {
        headers.remove(CONTENT_LENGTH);
    }
    for name in hop_by_hop() {
        headers.remove(name);
    }
}

/// Appends the client's address to `X-Forwarded-For`, keeping what earlier proxies recorded: `peer` is the
/// connection's, as [`Arrival::forwarded_for`](crate::pipeline::Arrival::forwarded_for) made it once for all its
/// requests (which are then, as the first proxy of a chain, given it without a copy).
fn append_forwarded_for(headers: &mut HeaderMap, peer: &HeaderValue) {
    if !headers.contains_key(&X_FORWARDED_FOR) {
        headers.insert(X_FORWARDED_FOR.clone(), peer.clone());
        return;
    }
    let mut value = Vec::with_capacity(48);
    for existing in headers.get_all(&X_FORWARDED_FOR) {
        value.extend_from_slice(existing.as_bytes());
        value.extend_from_slice(b", ");
    }
    value.extend_from_slice(peer.as_bytes());
    // Only refused if a client sent bytes not allowed in a header value; the chain then starts afresh.
    let value = HeaderValue::from_maybe_shared(Bytes::from(value)).unwrap_or_else(|_| peer.clone());
    headers.insert(X_FORWARDED_FOR.clone(), value);
}

/// Displays an error with its chain of sources, which is where hyper puts the useful part.
struct ErrorChain<'a>(&'a dyn StdError);

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

    fn encoded(value: &str) -> String {
        utf8_percent_encode(value, SEGMENT).to_string()
    }

    #[test]
    fn parameter_values_stay_one_segment() {
        assert_eq!(encoded("a/b"), "a%2Fb");
        assert_eq!(encoded("../admin"), "..%2Fadmin");
        assert_eq!(encoded("a?b#c"), "a%3Fb%23c");
        assert_eq!(encoded("100%"), "100%25");
        assert_eq!(encoded("..;"), "..%3B");
        assert_eq!(encoded("a b"), "a%20b");
        assert_eq!(encoded("é"), "%C3%A9");
        assert_eq!(encoded("a-b.c_d~e!$&'()*+,="), "a-b.c_d~e!$&'()*+,=");
    }

    #[test]
    fn upstream_urls_are_split() {
        let parse = |raw: &str| parse_upstream_url(raw, raw.to_owned());
        let (url, base) = parse("http://127.0.0.1:8081/api/v1/").expect("valid");
        assert_eq!(url.scheme, Scheme::HTTP);
        assert_eq!(url.authority.as_str(), "127.0.0.1:8081");
        assert_eq!(base, "/api/v1");
        assert_eq!(url.host, "127.0.0.1:8081");
        assert_eq!((url.hostname.as_str(), url.port), ("127.0.0.1", 8081));

        let (url, base) = parse("https://example.com:443").expect("valid");
        assert_eq!(url.scheme, Scheme::HTTPS);
        assert_eq!(url.authority.as_str(), "example.com");
        assert_eq!(base, "");
        assert_eq!(url.host, "example.com");
        assert_eq!(url.port, 443);

        let (url, _) = parse("http://[::1]:9000/x").expect("valid");
        assert_eq!(url.authority.as_str(), "[::1]:9000");
        assert_eq!(url.hostname, "::1");

        for bad in ["ftp://x", "http://u:p@x", "http://x/?q=1", "not a url", "http://x/#f"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("content-length", "10"),
            ("proxy-authorization", "Basic x"),
            ("x-kept", "1"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_appends() {
        let peer =
            |addr: &str| crate::pipeline::Arrival::forwarded_for(addr.parse().expect("addr")).expect("a header value");
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &peer("10.0.0.1:4000"));
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1");
        // With a chain already there, the connection's value is appended, not put in its place; a dual-stack
        // listener's IPv4 client is recorded as the address it has.
        append_forwarded_for(&mut headers, &peer("[::ffff:127.0.0.1]:4000"));
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn overrides_parse() {
        let o: UpstreamOverride = "pets=http://127.0.0.1:1/x".parse().expect("valid");
        assert_eq!(o.name, "pets");
        assert_eq!(o.url, "http://127.0.0.1:1/x");
        assert!("pets".parse::<UpstreamOverride>().is_err());
        assert!("=http://x".parse::<UpstreamOverride>().is_err());
        let several: UpstreamOverride = "pets=http://127.0.0.1:1, http://127.0.0.1:2".parse().expect("valid");
        assert_eq!(
            several.urls().collect::<Vec<_>>(),
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
    }
}
