//! External authorizers: a service of the user's decides whether a credential may call (AWS API Gateway's Lambda
//! authorizers, Envoy's `ext_authz`, Traefik's ForwardAuth).
//!
//! The gateway sends `GET {upstream}{path}` with the credential — in the header it arrived in, or in
//! `X-Gateway-Credential` when it came in a query parameter or a cookie — and what the request is:
//! `X-Forwarded-Method`, `X-Forwarded-Uri` (path and query), `X-Forwarded-Host`, `X-Forwarded-Proto`,
//! `X-Forwarded-For` (the client address) and `X-Request-Id`. A `2xx` admits, and the answer's `forward_headers` are
//! copied to the upstream request; `401` is `UNAUTHORIZED`, `403` is `FORBIDDEN`. Anything else — another status,
//! no connection, no answer within the authorizer upstream's timeout — is `SERVICE_UNAVAILABLE`: a request is never
//! admitted because its authorizer could not be asked.
//!
//! With `cache.ttl` above zero, answers (admit and refuse alike, never "unavailable") are reused per credential
//! for that long, and concurrent first requests with one credential make one call between them (moka's
//! `try_get_with` coalesces them). The cache key is the credential alone, as in AWS's token authorizers: an
//! authorizer whose answer depends on the path must run without a cache.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, request};

use crate::error::ErrorKind;
use crate::pipeline::{RequestCtx, X_REQUEST_ID};
use crate::spec::{ApiSpec, AuthorizerSpec, KeyLocation, SchemeKind, SchemeSpec};
use crate::targets::proxy::{CallError, Proxy};

/// Where a credential that did not come in a header is sent to the authorizer.
pub static X_GATEWAY_CREDENTIAL: HeaderName = HeaderName::from_static("x-gateway-credential");

/// Credentials whose answers are kept at most, per authorizer.
const CACHE_ENTRIES: u64 = 10_000;

/// A worker's way to reach authorizers: its proxy's connection pools.
#[derive(Debug, Clone)]
pub struct AuthorizerClient {
    proxy: Option<Proxy>,
}

impl AuthorizerClient {
    /// Calls go through `proxy` (`None`: no upstreams, so every authorizer is unavailable).
    pub fn new(proxy: Option<Proxy>) -> Self {
        Self { proxy }
    }
}

/// What the authorizer said.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Admitted, with the headers to copy to the upstream request.
    Allow(Arc<[(HeaderName, HeaderValue)]>),
    /// Refused: `UNAUTHORIZED` or `FORBIDDEN`.
    Deny(ErrorKind),
    /// Could not be asked, or did not answer in time.
    Unavailable,
}

/// One authorizer scheme, with its answers cached per credential.
pub struct Authorizer {
    scheme: &'static SchemeSpec,
    spec: &'static AuthorizerSpec,
    forward: Box<[HeaderName]>,
    /// Query parameters that carry credentials (of any scheme): left out of `X-Forwarded-Uri`.
    query_credentials: Box<[&'static str]>,
    cache: Option<moka::future::Cache<Box<str>, Decision>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The cache's keys are credentials: never printed.
        f.debug_struct("Authorizer")
            .field("scheme", &self.scheme.name)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a call gave no decision (never cached).
#[derive(Debug, Clone, Copy)]
struct Unavailable;

impl Authorizer {
    /// The authorizer of `scheme`, one of `api`'s.
    pub fn new(api: &'static ApiSpec, scheme: &'static SchemeSpec, spec: &'static AuthorizerSpec) -> Self {
        let query_credentials = api
            .schemes
            .iter()
            .filter_map(|s| match &s.kind {
                SchemeKind::ApiKey(key) => Some(key),
                SchemeKind::Authorizer(a) => Some(&a.credential),
                SchemeKind::Jwt(_) | SchemeKind::Presented(_) | SchemeKind::MutualTls => None,
            })
            .filter(|key| key.location == KeyLocation::Query)
            .map(|key| key.name)
            .collect();
        let cache = (spec.cache_ttl > Duration::ZERO).then(|| {
            moka::future::Cache::builder()
                .max_capacity(CACHE_ENTRIES)
                .time_to_live(spec.cache_ttl)
                .build()
        });
        Self {
            scheme,
            spec,
            forward: spec
                .forward_headers
                .iter()
                .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                .collect(),
            cache,
            query_credentials,
        }
    }

    /// The decision on `credential` for this request.
    pub async fn decide(
        &self,
        client: &AuthorizerClient,
        credential: &str,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Decision {
        let ask = self.ask(client, credential, ctx, parts);
        match &self.cache {
            None => ask.await.unwrap_or(Decision::Unavailable),
            Some(cache) => cache
                .try_get_with(Box::from(credential), ask)
                .await
                .unwrap_or(Decision::Unavailable),
        }
    }

    /// One call to the authorizer.
    async fn ask(
        &self,
        client: &AuthorizerClient,
        credential: &str,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Result<Decision, Unavailable> {
        let Some(proxy) = &client.proxy else {
            return Err(Unavailable);
        };
        // A credential no header can carry cannot be valid: refused, not "unavailable".
        let Some(headers) = self.request_headers(credential, ctx, parts) else {
            return Ok(Decision::Deny(ErrorKind::Unauthorized));
        };
        let answer = proxy.call(self.spec.upstream, self.spec.path, headers).await;
        let (status, headers) = match answer {
            Ok(answer) => answer,
            Err(CallError::Invalid | CallError::Failed | CallError::Timeout) => {
                tracing::warn!(scheme = self.scheme.name, "the authorizer could not be asked");
                return Err(Unavailable);
            }
        };
        match status.as_u16() {
            200..=299 => {
                let copied: Vec<(HeaderName, HeaderValue)> = self
                    .forward
                    .iter()
                    .flat_map(|name| headers.get_all(name).iter().map(|v| (name.clone(), v.clone())))
                    .collect();
                Ok(Decision::Allow(copied.into()))
            }
            401 => Ok(Decision::Deny(ErrorKind::Unauthorized)),
            403 => Ok(Decision::Deny(ErrorKind::Forbidden)),
            other => {
                tracing::warn!(
                    scheme = self.scheme.name,
                    status = other,
                    "the authorizer answered neither 2xx, 401 nor 403"
                );
                Err(Unavailable)
            }
        }
    }

    /// What the authorizer is told: the credential and what the request is. `None` for a credential no header can
    /// carry (it cannot be valid anyway).
    fn request_headers(&self, credential: &str, ctx: &RequestCtx, parts: &request::Parts) -> Option<HeaderMap> {
        let mut headers = HeaderMap::with_capacity(8);
        let name = match self.spec.credential.location {
            KeyLocation::Header => HeaderName::from_bytes(self.spec.credential.name.as_bytes()).ok()?,
            KeyLocation::Query | KeyLocation::Cookie => X_GATEWAY_CREDENTIAL.clone(),
        };
        headers.insert(name, HeaderValue::from_str(credential).ok()?);
        let forwarded = |name: &'static str| HeaderName::from_static(name);
        headers.insert(
            forwarded("x-forwarded-method"),
            HeaderValue::from_str(parts.method.as_str()).ok()?,
        );
        // The path and query, without any credential the query carries (the authorizer gets only its own).
        let mut query = parts.uri.query().map(str::to_owned);
        for name in &self.query_credentials {
            if let Some(q) = &query
                && let Some(kept) = crate::policies::credentials::without_param(q, name)
            {
                query = Some(kept);
            }
        }
        let uri = match query.filter(|q| !q.is_empty()) {
            Some(q) => format!("{}?{q}", parts.uri.path()),
            None => parts.uri.path().to_owned(),
        };
        if let Ok(uri) = HeaderValue::from_str(&uri) {
            headers.insert(forwarded("x-forwarded-uri"), uri);
        }
        if let Some(host) = parts.headers.get(http::header::HOST) {
            headers.insert(forwarded("x-forwarded-host"), host.clone());
        }
        headers.insert(forwarded("x-forwarded-proto"), HeaderValue::from_static("http"));
        if let Some(peer) = ctx.client
            && let Ok(ip) = HeaderValue::from_str(&peer.ip().to_canonical().to_string())
        {
            headers.insert(forwarded("x-forwarded-for"), ip);
        }
        headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
        Some(headers)
    }
}
