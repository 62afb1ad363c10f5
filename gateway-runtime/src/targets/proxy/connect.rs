//! Making upstream connections: TLS settings, the connect timeout, a server's fixed address, and the bound on
//! sockets an upstream with `max_connections` may have open.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::Uri;
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::hosts::Hosts;
use super::pool::{Dial, Http1Pool, IDLE_TIMEOUT, PoolError, UpstreamBody};
use super::{BoxError, UpstreamError};

/// Idle upstream connections a pool keeps per server.
const MAX_IDLE: usize = 256;

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
    /// Builds the configuration; root certificates are loaded only when some upstream uses `https` (`needs_roots`),
    /// so plain HTTP gateways start without touching the certificate store.
    pub fn new(needs_roots: bool) -> Result<Self, UpstreamError> {
        // An explicit provider: `ClientConfig::builder()` would panic if a dependency enabled a second one.
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| UpstreamError::Tls(e.to_string()))
        };
        let config = if !needs_roots {
            builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        } else {
            system_roots(builder()?).with_no_client_auth()
        };
        Ok(Self(Arc::new(config)))
    }

    /// The configuration of upstream `name` with TLS settings of its own: only the CA in `ca_file` trusted (when
    /// given; else the system's roots), and the client certificate presented (when given).
    pub fn for_upstream(name: &str, spec: &crate::spec::UpstreamTlsSpec) -> Result<Self, UpstreamError> {
        use std::path::Path;
        let bad = |file: &str, reason: String| UpstreamError::Tls(format!("upstream `{name}`: {file}: {reason}"));
        let builder =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
        let builder = match spec.ca_file {
            Some(file) => builder.with_root_certificates(crate::pem::roots(Path::new(file)).map_err(|e| bad(file, e))?),
            None => system_roots(builder),
        };
        let config = match spec.client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = crate::pem::chain(Path::new(cert_file)).map_err(|e| bad(cert_file, e))?;
                let key = crate::pem::key(Path::new(key_file)).map_err(|e| bad(key_file, e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad(cert_file, e.to_string()))?
            }
        };
        Ok(Self(Arc::new(config)))
    }
}

/// `builder` trusting the platform's root certificates, or Mozilla's bundled ones when the platform has none.
fn system_roots(
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    match builder.clone().with_native_roots() {
        Ok(b) => b,
        Err(err) => {
            tracing::warn!(error = %err, "no usable native root certificates; using the bundled Mozilla roots");
            builder.with_webpki_roots()
        }
    }
}

/// Where a connector finds the server's address: the system resolver for the URL's host, or one address fixed by
/// re-resolution (the URL's host name still goes in `Host` and in TLS's server name).
#[derive(Clone)]
pub(super) enum Resolve {
    /// The system's resolver, after `--hosts` when it is given.
    System(GaiResolver, Option<Hosts>),
    Fixed(SocketAddr),
}

impl tower::Service<Name> for Resolve {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        match self {
            Resolve::System(gai, _) => gai.poll_ready(cx),
            Resolve::Fixed(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            Resolve::System(gai, hosts) => {
                if let Some(ips) = hosts.as_ref().and_then(|h| h.lookup(name.as_str())) {
                    // The port is the connector's: it replaces the 0 of these addresses.
                    let addrs: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
                    return Box::pin(async move { Ok(addrs.into_iter()) });
                }
                let resolving = gai.call(name);
                Box::pin(async move { Ok(resolving.await?.collect::<Vec<_>>().into_iter()) })
            }
            Resolve::Fixed(addr) => {
                let addr = *addr;
                Box::pin(async move { Ok(vec![addr].into_iter()) })
            }
        }
    }
}

/// The sockets an upstream may have open at once, shared by every worker's pool of it.
#[derive(Debug, Clone)]
pub(super) struct SocketLimit {
    pub(super) sockets: Arc<Semaphore>,
    /// How long a new connection waits for a socket to close before it fails.
    pub(super) wait: Duration,
}

impl SocketLimit {
    /// A socket of the bound, waiting up to `wait` for one to close.
    pub(super) async fn acquire(&self) -> Result<OwnedSemaphorePermit, TooManySockets> {
        match tokio::time::timeout(self.wait, Arc::clone(&self.sockets).acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(TooManySockets),
        }
    }
}

/// Bounds the whole connection set-up (TCP connect and TLS handshake) by the upstream's connect timeout, connects
/// to the server's address, and holds a socket of the upstream's bound for each connection's life.
#[derive(Clone)]
pub(super) struct TimeoutConnector {
    inner: HttpsConnector<HttpConnector<Resolve>>,
    timeout: Duration,
    limit: Option<SocketLimit>,
}

/// The error of a connection attempt that took longer than the connect timeout.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub(super) struct ConnectTimeout(pub(super) Duration);

/// The error of a connection that would open more sockets than `max_connections`.
#[derive(Debug, thiserror::Error)]
#[error("the upstream's max_connections sockets are open")]
pub(super) struct TooManySockets;

impl tower::Service<Uri> for TimeoutConnector {
    type Response = Counted;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Counted, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut inner = self.inner.clone();
        let timeout = self.timeout;
        let limit = self.limit.clone();
        Box::pin(async move {
            let permit = match limit {
                None => None,
                Some(limit) => Some(limit.acquire().await?),
            };
            match tokio::time::timeout(timeout, tower::ServiceExt::oneshot(&mut inner, uri)).await {
                Ok(Ok(io)) => Ok(Counted { io, _permit: permit }),
                Ok(Err(err)) => Err(err),
                Err(_) => Err(ConnectTimeout(timeout).into()),
            }
        })
    }
}

/// An upstream connection, holding its socket of the upstream's bound (if it has one) until it closes.
pub(super) struct Counted {
    io: MaybeHttpsStream<TokioIo<TcpStream>>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Connection for Counted {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl hyper::rt::Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Counted {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// A worker's connections to one server.
#[derive(Clone)]
pub(super) enum UpstreamClient {
    /// Plain `http` over HTTP/1.1: the gateway's own pool.
    Http1(Http1Pool),
    /// `https`, or HTTP/2: hyper-util's pool (TLS, ALPN, multiplexing).
    Legacy(Box<Client<TimeoutConnector, Body>>),
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http1(pool) => pool.fmt(f),
            Self::Legacy(_) => f.write_str("Client"),
        }
    }
}

/// Why an upstream request got no response.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error(transparent)]
    Pool(PoolError),
    #[error(transparent)]
    Legacy(hyper_util::client::legacy::Error),
}

impl SendError {
    /// No connection could be made (nothing reached the server).
    pub(super) fn is_connect(&self) -> bool {
        match self {
            Self::Pool(err) => matches!(err, PoolError::Connect(_)),
            Self::Legacy(err) => err.is_connect(),
        }
    }

    /// The error itself, for walking its chain of causes.
    pub(super) fn inner(&self) -> &(dyn std::error::Error + 'static) {
        match self {
            Self::Pool(PoolError::Exchange(err)) => err,
            Self::Pool(err) => err,
            Self::Legacy(err) => err,
        }
    }
}

impl UpstreamClient {
    /// Whether requests go out with the path alone as their URI (else absolute, scheme and authority included).
    pub(super) fn origin_form(&self) -> bool {
        matches!(self, Self::Http1(_))
    }

    /// Sends `request` (an absolute URI, `Host` set) and waits for the response head.
    pub(super) async fn request(
        &self,
        request: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        match self {
            Self::Http1(pool) => pool.send(request).await.map_err(SendError::Pool),
            Self::Legacy(client) => match client.request(request).await {
                Ok(response) => Ok(response.map(UpstreamBody::unpooled)),
                Err(err) => Err(SendError::Legacy(err)),
            },
        }
    }
}

/// Whether, and how, a pool speaks HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Http2 {
    /// HTTP/1.1 only.
    Off,
    /// `h2` offered by ALPN on TLS, HTTP/1.1 if the server does not take it.
    Alpn,
    /// HTTP/2 from the first byte on a plain connection (h2c).
    PriorKnowledge,
}

/// A keep-alive pool of connections to one server. Needs no runtime: connections are made on first use, on the
/// runtime of the task that uses them.
///
/// Plain `http` over HTTP/1.1 gets the gateway's own pool ([`Http1Pool`]). With `http2`, `https` connections offer
/// `h2` by ALPN (falling back to HTTP/1.1), and `http` ones speak HTTP/2 with prior knowledge: one connection then
/// carries many requests at once.
pub(super) fn client(
    tls: &TlsConfig,
    dial: Dial,
    https: bool,
    connect_timeout: Duration,
    limit: Option<SocketLimit>,
    http2: Http2,
) -> UpstreamClient {
    // With a socket bound, no more idle sockets than the bound; else enough per pool that 256 busy clients never
    // churn it, bounded so that a burst of thousands does not leave thousands of idle sockets (and buffers) behind.
    let max_idle = limit
        .as_ref()
        .map_or(MAX_IDLE, |l| l.sockets.available_permits().min(MAX_IDLE));
    if !https && http2 == Http2::Off {
        return UpstreamClient::Http1(Http1Pool::new(dial, connect_timeout, limit, max_idle));
    }
    // hyper-util's connector takes the host from each request's URI; only the resolver is ours.
    let resolve = match dial {
        Dial::Fixed(addr) => Resolve::Fixed(addr),
        Dial::Named { hosts, .. } => Resolve::System(GaiResolver::new(), hosts),
    };
    let mut http = HttpConnector::new_with_resolver(resolve);
    // The HTTPS wrapper decides by scheme; the inner connector must accept `https://` URIs too.
    http.enforce_http(false);
    http.set_nodelay(true);
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config((*tls.0).clone())
        .https_or_http()
        .enable_http1();
    let https = if http2 != Http2::Off {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.wrap_connector(http)
    };
    let connector = TimeoutConnector {
        inner: https,
        timeout: connect_timeout,
        limit,
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(http2 == Http2::PriorKnowledge);
    UpstreamClient::Legacy(Box::new(
        client
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(max_idle)
            // We always set `Host` ourselves.
            .set_host(false)
            .build(connector),
    ))
}
