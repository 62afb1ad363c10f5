//! The static description of a gateway that generated code hands to the runtime.
//!
//! Everything here is `'static` and const-constructible, so a generated crate is a set of `static` tables plus
//! typed parameter parsers: no start-up parsing, no allocation, and nothing generic for the compiler to
//! instantiate per operation. The runtime knows nothing of OpenAPI; these types are its whole input.

use std::time::Duration;

use http::Method;

use crate::error::ErrorKind;
use crate::params::{ParamError, RequestParams};
use crate::template::TemplatePart;

/// One generated gateway: its upstreams and operations.
#[derive(Debug)]
pub struct ApiSpec {
    /// The gateway's name (`x-gateway.name` or the spec's file stem).
    pub name: &'static str,
    /// The spec file the gateway was generated from, for logs and `--version`.
    pub spec_file: &'static str,
    /// `info.version` of the spec.
    pub api_version: &'static str,
    /// Named upstreams; operations refer to them by index.
    pub upstreams: &'static [UpstreamSpec],
    /// Every operation served, in a stable order (by route, then method).
    pub operations: &'static [OperationSpec],
    /// The response cache's size limits (the cache exists when some operation has a [`CacheSpec`]).
    pub cache: CacheSettings,
    /// The API-wide token bucket, checked before every request.
    pub throttle: Option<ThrottleSpec>,
    /// Usage plans that API keys may be on; operations refer to them by index.
    pub usage_plans: &'static [UsagePlanSpec],
    /// The host names the API is served under (`x-gateway.hosts`), lower case, each optionally with a port; a
    /// request for another host is refused with `MISDIRECTED_REQUEST`. Empty: any host.
    pub hosts: &'static [&'static str],
    /// The spec's renderings of gateway responses (`x-gateway.responses` at the top level).
    pub responses: &'static [GatewayResponseSpec],
}

/// Which gateway responses a [`GatewayResponseSpec`] renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseSelector {
    /// Responses of one kind.
    Kind(ErrorKind),
    /// `DEFAULT_4XX`: every client-error kind without a rendering of its own.
    Default4xx,
    /// `DEFAULT_5XX`: every server-error kind without a rendering of its own.
    Default5xx,
}

/// The spec's rendering of a gateway response (one entry of `x-gateway.responses`).
#[derive(Debug)]
pub struct GatewayResponseSpec {
    /// The responses it renders.
    pub selector: ResponseSelector,
    /// The status; `None` keeps the kind's.
    pub status: Option<u16>,
    /// Extra headers; values are templates. The headers the gateway must send (`Allow`, `Retry-After`,
    /// `WWW-Authenticate`) are always added after these.
    pub headers: &'static [(&'static str, &'static [TemplatePart])],
    /// `Content-Type` of `body`.
    pub content_type: &'static str,
    /// The body, a template (a JSON document or text); `None` keeps the default problem+json body.
    pub body: Option<&'static [TemplatePart]>,
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSpec {
    /// Requests a second, sustained.
    pub rate: u32,
    /// Requests admitted at once from a full bucket.
    pub burst: u32,
    /// Whether the bucket is shared by every caller or kept per client address.
    pub per: ThrottleScope,
}

/// Who shares a token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// Every caller.
    All,
    /// Each client address (from `X-Forwarded-For` only when the gateway is told to trust its proxy).
    ClientIp,
}

/// A usage plan: what a key on it may do.
#[derive(Debug)]
pub struct UsagePlanSpec {
    /// The name keys refer to in the key file.
    pub name: &'static str,
    /// Per-key token bucket.
    pub throttle: Option<ThrottleSpec>,
    /// Per-key request quota.
    pub quota: Option<QuotaSpec>,
}

/// A number of requests per calendar period (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaSpec {
    /// Requests admitted per period.
    pub limit: u64,
    /// The period.
    pub period: QuotaPeriod,
}

/// A calendar period in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the 1st, 00:00 UTC.
    Month,
}

/// An `apiKey` security scheme: where the key is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyScheme {
    /// The scheme's name under `components.securitySchemes`.
    pub scheme: &'static str,
    /// Where the key is read from.
    pub location: KeyLocation,
    /// The header, query parameter or cookie name.
    pub name: &'static str,
    /// Forward the credential to the upstream (`x-gateway: { forward_credentials: true }` on the scheme). By
    /// default the gateway, having checked it, removes it from the forwarded request.
    pub forward: bool,
}

/// Where an API key is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
    /// A cookie.
    Cookie,
}

/// API-wide response cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Total bytes of cached responses (bodies and headers) kept before the least valuable are evicted.
    pub capacity: u64,
    /// Largest body stored; larger responses are passed through, not cached.
    pub max_entry: u64,
}

/// An HTTP upstream: a base URL that may carry a base path.
#[derive(Debug)]
pub struct UpstreamSpec {
    /// The name under `x-gateway.upstreams` (or `default` for the implicit `servers` upstream).
    pub name: &'static str,
    /// Absolute `http://` or `https://` URL, checked at generate time; may be overridden with `--upstream`.
    pub url: &'static str,
    /// Time allowed from sending the request to receiving the response head; `504` when exceeded.
    pub timeout: Duration,
    /// Time allowed to establish the TCP (and TLS) connection; `502` when exceeded.
    pub connect_timeout: Duration,
}

/// One OpenAPI operation (a method on a path template).
#[derive(Debug)]
pub struct OperationSpec {
    /// The `operationId` (or a derived one for specs that have none).
    pub id: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// The OpenAPI path template as written in the spec, e.g. `/pets/{petId}`.
    pub template: &'static str,
    /// The route given to the router: the template with parameters renamed positionally (`/pets/{p0}`), so that
    /// templates differing only in parameter names share one route.
    pub route: &'static str,
    /// Path parameter names, in the order they appear in the template (route capture `p{i}` is `path_params[i]`).
    pub path_params: &'static [&'static str],
    /// Empty, or one entry per path parameter: literal text that follows the parameter inside its segment
    /// (`.json` in `/calls/{sid}.json`). The router of axum 0.8 cannot match such a suffix, so the segment is routed
    /// whole (`/calls/{p0}`) and the runtime strips the suffix from the captured value, answering `404` when the
    /// value does not end with it.
    pub path_suffixes: &'static [&'static str],
    /// Parses and type-checks the operation's parameters; `None` when it declares none worth checking.
    pub validate: Option<Validator>,
    /// The operation's `security`: alternatives, each a set of API key schemes that must all be satisfied.
    /// Empty: no key needed.
    pub security: &'static [&'static [ApiKeyScheme]],
    /// Usage plans whose keys may call the operation (indexes into [`ApiSpec::usage_plans`]); empty: all.
    pub plans: &'static [usize],
    /// The operation's own token bucket.
    pub throttle: Option<ThrottleSpec>,
    /// Response caching, when the operation's TTL is above zero.
    pub cache: Option<&'static CacheSpec>,
    /// Renderings of gateway responses set on the operation or its path item; they override
    /// [`ApiSpec::responses`] kind by kind.
    pub responses: &'static [GatewayResponseSpec],
    /// Where the request goes.
    pub target: TargetSpec,
}

/// How an operation's responses are cached.
#[derive(Debug)]
pub struct CacheSpec {
    /// How long a stored response is served.
    pub ttl: Duration,
    /// What the key holds besides the operation and its path parameters.
    pub key: &'static [CacheKeyPart],
    /// Response statuses that are stored.
    pub statuses: &'static [u16],
    /// Request methods that are looked up (HEAD is answered from a stored GET and never stored itself).
    pub methods: &'static [Method],
    /// Who may force a refresh with `Cache-Control: max-age=0` / `no-cache`.
    pub invalidate: Invalidate,
}

/// A request value that is part of a cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheKeyPart {
    /// A query parameter, by name.
    Query(&'static str),
    /// A request header, by lower-case name.
    Header(&'static str),
    /// The caller's API key (empty when the caller presented none).
    ApiKey,
    /// A claim of the caller's verified JWT. Until JWT verification exists the gateway refuses to start with one
    /// (a part that is never filled would share one entry between every caller).
    JwtClaim(&'static str),
}

/// Who may force a cached response to be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidate {
    /// Nobody: `Cache-Control: max-age=0` is ignored.
    None,
    /// Any caller.
    Any,
    /// Callers holding a valid API key.
    ApiKey,
}

/// Type-checks a request's parameters; generated code passes `params::check::<GetPetParams>`.
pub type Validator = fn(&RequestParams<'_>) -> Result<(), ParamError>;

/// Where an operation's requests go.
#[derive(Debug)]
pub enum TargetSpec {
    /// Reverse-proxy to an upstream.
    Upstream(UpstreamTarget),
    /// Answer with a fixed response.
    Mock(MockSpec),
}

/// Reverse-proxy to `upstreams[upstream]`, at the rewritten path.
#[derive(Debug)]
pub struct UpstreamTarget {
    /// Index into [`ApiSpec::upstreams`].
    pub upstream: usize,
    /// The upstream path (appended to the upstream's base path), as literal text and path parameters. Parameter
    /// values are percent-encoded as one path segment when substituted.
    pub path: &'static [PathPart],
}

/// A piece of a rewritten upstream path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPart {
    /// Literal text, already percent-encoded as needed.
    Literal(&'static str),
    /// The value of path parameter `i` (index into [`OperationSpec::path_params`]).
    Param(usize),
}

/// A fixed response.
#[derive(Debug)]
pub struct MockSpec {
    /// The status code (checked to be 100..=599 at generate time).
    pub status: u16,
    /// Extra response headers (names and values checked at generate time).
    pub headers: &'static [(&'static str, &'static str)],
    /// `Content-Type` of the body; empty for none.
    pub content_type: &'static str,
    /// The body, exactly as sent.
    pub body: &'static str,
}
