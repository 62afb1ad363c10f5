//! The reverse proxy: forwards a routed request to its upstream and streams the answer back.
//!
//! Upstream URLs are parsed once at start-up ([`Upstreams::resolve`]) into scheme, authority, base path and
//! `Host` value, so a request only concatenates its path and clones a few reference-counted parts. Each worker
//! owns a [`Proxy`]: one keep-alive connection pool per upstream, so workers never contend for a pool.
//!
//! Bodies are streamed both ways: the downstream request body is handed to the upstream connection as it
//! arrives, and the upstream response body is handed back the same way; nothing is buffered, so a 1 GiB upload
//! costs the gateway a few kilobytes. [`UpstreamSpec::timeout`](crate::spec::UpstreamSpec::timeout) bounds the wait
//! for the response head (`504` when exceeded) and then each wait for the next piece of the response body (the
//! response is aborted when exceeded), so a stalled upstream never holds a client forever, while a long but
//! steady download is never cut.
//!
//! Upstream connections speak HTTP/1.1 (plain or TLS via rustls), like nginx's `proxy_http_version 1.1`.
//! Connection upgrades (WebSocket) are not proxied: `Upgrade` is hop-by-hop and is removed.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, EXPECT, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING,
    UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, Version, request};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::GatewayError;
use crate::pipeline::{RequestCtx, UpstreamCall, X_REQUEST_ID};
use crate::spec::{ApiSpec, PathPart, UpstreamTarget};
use crate::stage::{self, ResolvedStage};

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

/// Idle upstream connections each worker keeps per upstream.
const MAX_IDLE_PER_WORKER: usize = 256;

/// The scheme the gateway was reached over, as told to upstreams in `X-Forwarded-Proto` (and keyed by the cache).
/// Plain HTTP until the gateway serves TLS.
pub const FORWARDED_PROTO: &str = "http";

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

/// `--upstream NAME=URL`: replaces the URL of one upstream at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamOverride {
    /// The upstream's name in the spec.
    pub name: String,
    /// The URL to use instead.
    pub url: String,
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

/// One upstream, pre-parsed.
#[derive(Debug, Clone)]
struct Endpoint {
    name: &'static str,
    /// The URL as configured, for logs (as written in the spec when stage variables filled it: they may be secret).
    url: String,
    scheme: Scheme,
    authority: Authority,
    /// The URL's path without its trailing `/` (empty for the root), prefixed to every upstream path.
    base_path: String,
    /// `Host` for upstream requests: the authority, with the port only when it is not the scheme's default.
    host: HeaderValue,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Endpoint {
    /// The URI of `path_and_query` under the upstream's base path, for the gateway's own requests.
    fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(format!("{}{path_and_query}", self.base_path))
            .build()
    }
}

/// The upstreams of a gateway with overrides applied, parsed once and shared (read-only) by every worker.
#[derive(Debug, Clone)]
pub struct Upstreams {
    endpoints: Arc<[Endpoint]>,
}

impl Upstreams {
    /// Parses every upstream URL of `api`, replacing those named in `overrides`.
    ///
    /// `{stage.X}` placeholders in a spec URL are filled from `stage` first (an override replaces the whole URL,
    /// placeholders included). A URL so filled is logged and reported as written in the spec, since stage values
    /// may be secrets.
    pub fn resolve(
        api: &ApiSpec,
        stage: Option<&ResolvedStage>,
        overrides: &[UpstreamOverride],
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
        let endpoints = api
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                // What the stage changes of this upstream: its URL, its timeouts.
                let staged = stage.and_then(|stage| stage.upstream(index));
                let spec_url = staged.and_then(|s| s.url).unwrap_or(spec.url);
                let timeout = staged.and_then(|s| s.timeout).unwrap_or(spec.timeout);
                let connect_timeout = staged.and_then(|s| s.connect_timeout).unwrap_or(spec.connect_timeout);
                // The last override of a name wins, like any repeated command-line option.
                let overridden = overrides.iter().rev().find(|o| o.name == spec.name);
                let (url, shown) = match overridden {
                    Some(o) => (Cow::Borrowed(o.url.as_str()), o.url.clone()),
                    None if stage::has_placeholder(spec_url) => {
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
                        (Cow::Owned(filled), format!("{spec_url} (stage `{}`)", stage.name()))
                    }
                    None => (Cow::Borrowed(spec_url), spec_url.to_owned()),
                };
                let (scheme, authority, base_path, host) =
                    parse_upstream_url(&url).map_err(|reason| UpstreamError::InvalidUrl {
                        name: spec.name.to_owned(),
                        url: shown.clone(),
                        reason,
                    })?;
                Ok(Endpoint {
                    name: spec.name,
                    url: shown,
                    scheme,
                    authority,
                    base_path,
                    host,
                    timeout,
                    connect_timeout,
                })
            })
            .collect::<Result<Vec<_>, UpstreamError>>()?;
        Ok(Self {
            endpoints: endpoints.into(),
        })
    }

    /// `(name, url)` of every upstream, in spec order, for start-up logs.
    pub fn urls(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.endpoints.iter().map(|e| (e.name, e.url.as_str()))
    }

    fn needs_tls(&self) -> bool {
        self.endpoints.iter().any(|e| e.scheme == Scheme::HTTPS)
    }
}

/// Splits an absolute `http(s)://` URL into what an upstream request needs.
fn parse_upstream_url(raw: &str) -> Result<(Scheme, Authority, String, HeaderValue), String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    let scheme = match url.scheme() {
        "http" => Scheme::HTTP,
        "https" => Scheme::HTTPS,
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
    Ok((scheme, authority, base_path, host_value))
}

/// The TLS settings every upstream connection uses: rustls with aws-lc-rs, the platform's root certificates
/// (Mozilla's bundled roots when the platform has none). Built once and shared, since loading roots reads the
/// certificate store from disk.
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ClientConfig>);

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsConfig")
    }
}

impl TlsConfig {
    /// Builds the configuration; root certificates are loaded only when some upstream uses `https`, so plain
    /// HTTP gateways start without touching the certificate store.
    pub fn for_upstreams(upstreams: &Upstreams) -> Result<Self, UpstreamError> {
        // An explicit provider: `ClientConfig::builder()` would panic if a dependency enabled a second one.
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| UpstreamError::Tls(e.to_string()))
        };
        let config = if !upstreams.needs_tls() {
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
        Ok(Self(Arc::new(config)))
    }
}

/// Bounds the whole connection set-up (TCP connect and TLS handshake) by the upstream's connect timeout.
#[derive(Clone)]
struct TimeoutConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

/// The error of a connection attempt that took longer than the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
struct ConnectTimeout(Duration);

impl tower::Service<Uri> for TimeoutConnector {
    type Response = <HttpsConnector<HttpConnector> as tower::Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(ConnectTimeout(timeout).into()),
            }
        })
    }
}

type UpstreamClient = Client<TimeoutConnector, Body>;

/// One upstream as one worker sees it: its parsed endpoint and its own connection pool.
struct Upstream {
    endpoint: Endpoint,
    client: UpstreamClient,
}

/// A worker's proxy: a keep-alive connection pool per upstream. Cheap to clone (shares the pools).
#[derive(Clone)]
pub struct Proxy {
    upstreams: Arc<[Arc<Upstream>]>,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.upstreams.iter().map(|u| u.endpoint.name))
            .finish()
    }
}

impl Proxy {
    /// New pools for `upstreams`. Needs no runtime: connections are made on first use, on the runtime of the
    /// task that uses them.
    pub fn new(upstreams: &Upstreams, tls: &TlsConfig) -> Self {
        let upstreams = upstreams
            .endpoints
            .iter()
            .map(|endpoint| {
                let mut http = HttpConnector::new();
                // The HTTPS wrapper decides by scheme; the inner connector must accept `https://` URIs too.
                http.enforce_http(false);
                http.set_nodelay(true);
                let https = HttpsConnectorBuilder::new()
                    .with_tls_config((*tls.0).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let connector = TimeoutConnector {
                    inner: https,
                    timeout: endpoint.connect_timeout,
                };
                let client = Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    // Enough idle connections per worker that 256 busy clients never churn the pool, bounded so
                    // that a burst of thousands does not leave thousands of idle sockets (and their buffers) behind.
                    .pool_max_idle_per_host(MAX_IDLE_PER_WORKER)
                    // We always set `Host` ourselves.
                    .set_host(false)
                    .build(connector);
                Arc::new(Upstream {
                    endpoint: endpoint.clone(),
                    client,
                })
            })
            .collect::<Vec<_>>();
        Self {
            upstreams: upstreams.into(),
        }
    }

    /// The forwarding state of one operation, or `None` if its upstream index is out of range. Stage variables
    /// of its path are filled in from `stage` now (a variable the stage lacks is empty: the start-up checks of
    /// [`ResolvedStage::resolve`] rule that out).
    pub(crate) fn route(
        &self,
        target: &'static UpstreamTarget,
        stage: Option<&ResolvedStage>,
    ) -> Option<UpstreamRoute> {
        let upstream = Arc::clone(self.upstreams.get(target.upstream)?);
        let mut pieces: Vec<Piece> = Vec::with_capacity(target.path.len());
        for part in target.path {
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
        // Operations whose upstream path has no parameters get their whole path prepared now; without a query
        // string the request then needs no path formatting at all.
        let fixed = if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
            let mut path = String::new();
            push_path(&mut path, &upstream.endpoint.base_path, &pieces, |_| None);
            PathAndQuery::try_from(path).ok()
        } else {
            None
        };
        Some(UpstreamRoute {
            upstream,
            path: pieces.into(),
            fixed,
        })
    }
}

/// Why a side call (an authorizer's) got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The upstream index is out of range, or the URI cannot be built.
    Invalid,
    /// The upstream could not be reached, or broke the exchange.
    Failed,
    /// The upstream did not answer in time.
    Timeout,
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
        let endpoint = &upstream.endpoint;
        let uri = endpoint.uri(path).map_err(|_| CallError::Invalid)?;
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        request.headers_mut().insert(HOST, endpoint.host.clone());
        let sent = tokio::time::timeout(endpoint.timeout, upstream.client.request(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(upstream = endpoint.name, error = %ErrorChain(&err), "side call failed");
                return Err(CallError::Failed);
            }
            Err(_) => {
                tracing::warn!(upstream = endpoint.name, timeout = ?endpoint.timeout, "side call did not answer in time");
                return Err(CallError::Timeout);
            }
        };
        let (head, body) = response.into_parts();
        let drained =
            tokio::time::timeout(endpoint.timeout, crate::bodies::read_up_to(Body::new(body), 64 * 1024)).await;
        if !matches!(drained, Ok(crate::bodies::UpTo::Whole(_))) {
            tracing::debug!(upstream = endpoint.name, "side call's body was not read whole");
        }
        Ok((head.status, head.headers))
    }
}

impl Proxy {
    /// The index of the upstream named `name`.
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.upstreams.iter().position(|u| u.endpoint.name == name)
    }

    /// The name of upstream `index`.
    pub(crate) fn name_of(&self, index: usize) -> Option<&'static str> {
        self.upstreams.get(index).map(|u| u.endpoint.name)
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
        let endpoint = &upstream.endpoint;
        let path = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let uri = endpoint.uri(path).map_err(|_| {
            GatewayError::new(
                crate::error::ErrorKind::Internal,
                "a function asked for an invalid upstream path",
            )
        })?;
        *request.uri_mut() = uri;
        request.headers_mut().insert(HOST, endpoint.host.clone());
        let sent = tokio::time::timeout(endpoint.timeout, upstream.client.request(request)).await;
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                tracing::warn!(upstream = endpoint.name, error = %ErrorChain(&err), "a function's upstream request failed");
                return Err(GatewayError::upstream(if err.is_connect() {
                    "the upstream could not be reached"
                } else {
                    "the upstream connection failed"
                }));
            }
            Err(_) => {
                tracing::warn!(upstream = endpoint.name, timeout = ?endpoint.timeout, "a function's upstream request did not answer in time");
                return Err(GatewayError::upstream_timeout());
            }
        };
        let (head, body) = response.into_parts();
        match tokio::time::timeout(endpoint.timeout, crate::bodies::read_up_to(Body::new(body), limit)).await {
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

/// How one operation reaches its upstream.
pub(crate) struct UpstreamRoute {
    upstream: Arc<Upstream>,
    path: Box<[Piece]>,
    /// The full upstream path when it has no parameters.
    fixed: Option<PathAndQuery>,
}

impl UpstreamRoute {
    fn path_and_query(&self, ctx: &RequestCtx, query: Option<&str>) -> Result<PathAndQuery, http::uri::InvalidUri> {
        if let (Some(fixed), None) = (&self.fixed, query) {
            return Ok(fixed.clone());
        }
        let base = &self.upstream.endpoint.base_path;
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
    /// `UPSTREAM_ERROR`/`UPSTREAM_TIMEOUT`.
    pub(crate) async fn forward(
        &self,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        body: Body,
    ) -> Result<Response, GatewayError> {
        let endpoint = &self.upstream.endpoint;
        let path_and_query = match self.path_and_query(ctx, parts.uri.query()) {
            Ok(pq) => pq,
            Err(err) => {
                tracing::error!(upstream = endpoint.name, error = %err, "cannot build the upstream path");
                return Err(GatewayError::internal());
            }
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(endpoint.scheme.clone());
        uri.authority = Some(endpoint.authority.clone());
        uri.path_and_query = Some(path_and_query);
        let uri = match Uri::from_parts(uri) {
            Ok(uri) => uri,
            Err(err) => {
                tracing::error!(upstream = endpoint.name, error = %err, "cannot build the upstream URI");
                return Err(GatewayError::internal());
            }
        };

        let client_ip = ctx.client.map(|addr| addr.ip());
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
        headers.insert(HOST, endpoint.host.clone());
        if let Some(host) = original_host {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(FORWARDED_PROTO));
        headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
        // One more hop of the caller's trace (or a new trace): the upstream sees the gateway's span as its parent.
        // With trace export on, the context was made on arrival (its span id is the exported client span's).
        let trace = ctx
            .trace
            .unwrap_or_else(|| crate::pipeline::trace::TraceContext::of(headers));
        trace.apply(headers);
        ctx.trace = Some(trace);
        if let Some(ip) = client_ip {
            append_forwarded_for(headers, ip);
        }
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        // Extensions are this hop's (router captures, client address); none is meant for the upstream.
        parts.extensions = http::Extensions::new();

        let max_body = ctx.operation.map_or(0, |op| op.body.max);
        let request = Request::from_parts(parts, body);
        let sent = std::time::Instant::now();
        let outcome = tokio::time::timeout(endpoint.timeout, self.upstream.client.request(request)).await;
        ctx.upstream = Some(UpstreamCall {
            name: endpoint.name,
            sent,
            elapsed: sent.elapsed(),
            status: match &outcome {
                Ok(Ok(response)) => Some(response.status().as_u16()),
                _ => None,
            },
        });
        match outcome {
            Ok(Ok(response)) => {
                let name = endpoint.name;
                let idle = endpoint.timeout;
                let mut response = response.map(|body| Body::new(IdleTimeout::new(body, idle, name)));
                strip_hop_by_hop(response.headers_mut());
                Ok(response)
            }
            Ok(Err(err)) if crate::policies::validate::body::is_too_large(&err) => {
                // The request body grew past the operation's limit while it streamed: the client's doing.
                Err(GatewayError::payload_too_large(max_body))
            }
            Ok(Err(err)) => {
                tracing::warn!(upstream = endpoint.name, error = %ErrorChain(&err), "upstream request failed");
                let reason = if err.is_connect() {
                    "the upstream could not be reached"
                } else {
                    "the upstream connection failed"
                };
                Err(GatewayError::upstream(reason))
            }
            Err(_) => {
                tracing::warn!(upstream = endpoint.name, timeout = ?endpoint.timeout, "upstream did not respond in time");
                Err(GatewayError::upstream_timeout())
            }
        }
    }
}

/// An upstream response body that fails if the upstream sends nothing for `idle`.
///
/// The head is bounded by the upstream timeout; this bounds each wait for the next piece of the body by the same
/// duration, so a stalled upstream cannot hold a client connection open forever, while a slow but progressing
/// download is never cut. The timer is only created when the body actually has to wait, which small responses
/// (already buffered with the head) never do.
struct IdleTimeout {
    inner: Incoming,
    idle: Duration,
    upstream: &'static str,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// The error ending a response body whose upstream went quiet.
#[derive(Debug, thiserror::Error)]
#[error("upstream `{upstream}` sent no response data for {idle:?}")]
struct BodyIdle {
    upstream: &'static str,
    idle: Duration,
}

impl IdleTimeout {
    fn new(inner: Incoming, idle: Duration, upstream: &'static str) -> Self {
        Self {
            inner,
            idle,
            upstream,
            timer: None,
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

/// Appends the client's address to `X-Forwarded-For`, keeping what earlier proxies recorded.
fn append_forwarded_for(headers: &mut HeaderMap, ip: IpAddr) {
    // Dual-stack listeners see IPv4 clients as `::ffff:a.b.c.d`; record the address the client actually has.
    let ip = ip.to_canonical();
    let mut value = Vec::with_capacity(48);
    for existing in headers.get_all(&X_FORWARDED_FOR) {
        value.extend_from_slice(existing.as_bytes());
        value.extend_from_slice(b", ");
    }
    // Writing to a Vec cannot fail.
    let _ = write!(value, "{ip}");
    match HeaderValue::from_maybe_shared(Bytes::from(value)) {
        Ok(value) => {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
        Err(_) => {
            // Only reachable if a client sent bytes not allowed in a header value; start the chain afresh.
            if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
                headers.insert(X_FORWARDED_FOR.clone(), value);
            }
        }
    }
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
        let (scheme, authority, base, host) = parse_upstream_url("http://127.0.0.1:8081/api/v1/").expect("valid");
        assert_eq!(scheme, Scheme::HTTP);
        assert_eq!(authority.as_str(), "127.0.0.1:8081");
        assert_eq!(base, "/api/v1");
        assert_eq!(host, "127.0.0.1:8081");

        let (scheme, authority, base, host) = parse_upstream_url("https://example.com:443").expect("valid");
        assert_eq!(scheme, Scheme::HTTPS);
        assert_eq!(authority.as_str(), "example.com");
        assert_eq!(base, "");
        assert_eq!(host, "example.com");

        let (_, authority, _, _) = parse_upstream_url("http://[::1]:9000/x").expect("valid");
        assert_eq!(authority.as_str(), "[::1]:9000");

        for bad in ["ftp://x", "http://u:p@x", "http://x/?q=1", "not a url", "http://x/#f"] {
            assert!(parse_upstream_url(bad).is_err(), "{bad}");
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
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.1".parse().expect("ip"));
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1");
        append_forwarded_for(&mut headers, "::ffff:127.0.0.1".parse().expect("ip"));
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 127.0.0.1");
    }

    #[test]
    fn overrides_parse() {
        let o: UpstreamOverride = "pets=http://127.0.0.1:1/x".parse().expect("valid");
        assert_eq!(o.name, "pets");
        assert_eq!(o.url, "http://127.0.0.1:1/x");
        assert!("pets".parse::<UpstreamOverride>().is_err());
        assert!("=http://x".parse::<UpstreamOverride>().is_err());
    }
}
