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

/// A gateway serving several APIs (specs naming the same `x-gateway.gateway`), each under its base path.
///
/// A gateway of one API without a base path needs none of this: its `main` hands the [`ApiSpec`] to
/// [`crate::cli::run`] directly.
#[derive(Debug)]
pub struct GatewaySpec {
    /// The gateway's name (`x-gateway.gateway`): the binary is `<name>-gateway`.
    pub name: &'static str,
    /// The APIs, in the order their specs were given to the generator; their names are distinct.
    pub apis: &'static [ApiMount],
}

/// One API of a gateway and where it is served.
#[derive(Debug, Clone, Copy)]
pub struct ApiMount {
    /// The prefix of every route of the API (`x-gateway.base_path`, `/v1`), without a trailing `/`; empty: none.
    /// In a stage with a base path of its own, the stage's comes first: `/prod/v1/pets`.
    pub base_path: &'static str,
    /// The API.
    pub api: &'static ApiSpec,
}

impl ApiMount {
    /// `api` at the root, as a gateway of one API serves it.
    pub const fn root(api: &'static ApiSpec) -> Self {
        Self { base_path: "", api }
    }
}

/// One generated API: its upstreams and operations.
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
    /// The security schemes operations use; requirements refer to them by index.
    pub schemes: &'static [SchemeSpec],
    /// The API-wide CORS policy: what answers that match no operation (`404`, `405`) carry.
    pub cors: Option<&'static CorsSpec>,
    /// Self-contained JSON Schemas (Draft 4 dialect, converted from the spec's schemas at generate time), each
    /// compiled once at start-up; request bodies, parameters and responses refer to them by index.
    pub schemas: &'static [&'static str],
    /// jq filters of body transforms (parsed and compiled at generate time, compiled again once at start-up);
    /// transforms refer to them by index.
    pub filters: &'static [&'static str],
    /// The deployment stages (`x-gateway.stages`), in spec order; one is picked at start-up (`--stage`).
    pub stages: &'static [StageSpec],
    /// The stage served without `--stage` (index into [`ApiSpec::stages`]).
    pub default_stage: Option<usize>,
    /// The SHA-256 of the spec file as compiled in (hex), shown by `/_gateway/info` and `gateway_build_info`.
    pub spec_sha256: &'static str,
    /// The spec as published on `GET /_gateway/openapi.json` (JSON, without `x-gateway` extensions and skipped
    /// operations); `None` with `x-gateway: { publish_spec: false }`.
    pub published: Option<&'static str>,
    /// The stores store targets keep their items in (`x-gateway.stores`), opened at start-up; store targets refer
    /// to them by index.
    pub stores: &'static [StoreSpec],
    /// State shared with the API's other replicas through Redis (`x-gateway.shared`); `None`: this process alone.
    pub shared: Option<&'static SharedSpec>,
}

/// `x-gateway.shared`: what replicas of the API share through one Redis, and what each concern does when Redis
/// cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedSpec {
    /// The Redis URL (`redis://[user:password@]host:port/db`); `--redis URL` / `GATEWAY_REDIS_URL` replaces it. It
    /// may carry a password, so it is never logged (see [`crate::shared::redacted`]).
    pub redis: &'static str,
    /// Put in front of every key and channel the API uses, so that APIs (and stages) can share one Redis.
    pub prefix: &'static str,
    /// How long a Redis call may take before the concern behaves as `on_failure` says.
    pub timeout: Duration,
    /// What limits, quotas and the cache do while Redis is unreachable.
    pub on_failure: OnFailure,
    /// Token buckets and quotas are shared (always, with `shared`).
    pub limits: bool,
    /// API keys are also read from the Redis hash `<prefix>keys`, refreshed every [`SharedSpec::keys_refresh`].
    pub keys: bool,
    /// How often keys are re-read from Redis: the longest a key added or disabled there takes to reach every
    /// replica.
    pub keys_refresh: Duration,
    /// The response cache has a shared layer in Redis behind each replica's own (`cache: { shared: redis }`).
    pub cache: bool,
}

/// `shared.on_failure`: each concern's behaviour while Redis is down or slower than its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnFailure {
    /// Token buckets.
    pub limits: FailMode,
    /// Quotas.
    pub quotas: FailMode,
}

/// What a shared concern does without Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Admit the request (the replica's own in-memory bucket still applies to limits) and log.
    Open,
    /// Refuse it with `SERVICE_UNAVAILABLE`.
    Closed,
}

/// A deployment stage: its variables and the settings it overrides.
#[derive(Debug)]
pub struct StageSpec {
    /// The name `--stage` picks it by.
    pub name: &'static str,
    /// `{stage.NAME}` values, by name (every stage defines every variable the spec uses; the generator checks).
    /// `GATEWAY_STAGE_VAR_<NAME upper-cased>` overrides one at start-up.
    pub variables: &'static [(&'static str, &'static str)],
    /// A prefix for every route of the API in this stage (`/prod`); empty: none.
    pub base_path: &'static str,
    /// `cache: { enabled: false }` turns response caching off in this stage.
    pub cache_enabled: bool,
    /// Replaces the API-wide token bucket in this stage.
    pub throttle: Option<ThrottleSpec>,
    /// Replaces the origins every CORS policy admits, in this stage (`cors: { allow_origins }`).
    pub cors_origins: Option<&'static [OriginSpec]>,
    /// Upstream settings this stage overrides.
    pub upstreams: &'static [StageUpstreamSpec],
}

/// What a stage changes of one upstream (`stages.<name>.upstreams.<upstream>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageUpstreamSpec {
    /// Index into [`ApiSpec::upstreams`].
    pub upstream: usize,
    /// Its URLs in this stage (each may hold `{stage.NAME}`); empty: the upstream's own. `--upstream NAME=URL`
    /// still wins.
    pub urls: &'static [&'static str],
    /// Its timeout in this stage.
    pub timeout: Option<Duration>,
    /// Its connect timeout in this stage.
    pub connect_timeout: Option<Duration>,
}

impl ApiSpec {
    /// An API with nothing in it (no upstream, operation or policy; a 1 KiB cache), for tests and hand-written
    /// tables to fill in with struct update syntax: `ApiSpec { name, upstreams, operations, ..ApiSpec::EMPTY }`.
    pub const EMPTY: ApiSpec = ApiSpec {
        name: "t",
        spec_file: "t.yaml",
        api_version: "1",
        upstreams: &[],
        operations: &[],
        cache: CacheSettings {
            capacity: 1024,
            max_entry: 1024,
        },
        throttle: None,
        usage_plans: &[],
        hosts: &[],
        responses: &[],
        schemes: &[],
        cors: None,
        schemas: &[],
        filters: &[],
        stages: &[],
        default_stage: None,
        spec_sha256: "",
        published: None,
        stores: &[],
        shared: None,
    };
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

/// A security scheme the gateway checks (an entry of `components.securitySchemes` some operation uses).
#[derive(Debug)]
pub struct SchemeSpec {
    /// Its name under `components.securitySchemes`.
    pub name: &'static str,
    /// How a credential of this scheme is checked.
    pub kind: SchemeKind,
}

/// How a scheme's credential is checked.
#[derive(Debug)]
pub enum SchemeKind {
    /// An API key looked up in the key file (`type: apiKey`).
    ApiKey(ApiKeyScheme),
    /// A bearer JWT verified by the gateway (`type: http, scheme: bearer`, or `type: openIdConnect`).
    Jwt(JwtSpec),
    /// A credential an external authorizer decides on (`x-gateway.authorizer` on an `apiKey` or `http` scheme).
    Authorizer(AuthorizerSpec),
    /// A credential the gateway cannot verify (`http basic`, a bearer or `oauth2` scheme without a verification
    /// source): it must be presented, and is forwarded for the upstream to verify.
    Presented(PresentedSpec),
    /// A client certificate, verified at the TLS handshake against `--tls-client-ca` (`type: mutualTLS`, or
    /// `x-gateway: { mtls: required }`).
    MutualTls,
}

/// A scheme verified by the upstream: `Authorization: <auth_scheme> <credentials>` must be presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedSpec {
    /// The HTTP authentication scheme, compared case-insensitively (`Bearer`, `Basic`, …).
    pub auth_scheme: &'static str,
}

/// One scheme of a security requirement, with the scopes it must grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The scheme (index into [`ApiSpec::schemes`]).
    pub scheme: usize,
    /// Scopes the credential must carry (JWT `scope`/`scp`); empty for API keys and authorizers.
    pub scopes: &'static [&'static str],
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

/// A JWT bearer scheme: where its keys come from and what a token must say.
#[derive(Debug)]
pub struct JwtSpec {
    /// The `iss` a token must carry; `None` takes the issuer of the OpenID Connect discovery document.
    pub issuer: Option<&'static str>,
    /// Accepted `aud` values (a token must name one); empty: `aud` is not checked.
    pub audiences: &'static [&'static str],
    /// The algorithms a token may be signed with; anything else (and `none`) is refused.
    pub algorithms: &'static [JwtAlgorithm],
    /// Where the verification keys come from.
    pub keys: JwtKeys,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// Keep `Authorization` on the forwarded request (by default it is removed once verified).
    pub forward_authorization: bool,
    /// Verified claims sent to the upstream as headers: `(header, claim)`, the claim a dotted path into the
    /// payload. Such headers sent by the client are always removed.
    pub claims_headers: &'static [(&'static str, &'static str)],
}

/// Where a JWT scheme's verification keys come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtKeys {
    /// A JWKS read at generate time from `jwks_file` and built in.
    Jwks(&'static str),
    /// A JWKS fetched from this URL (`jwks_url`), cached and refreshed; may be overridden with `--jwks-url`.
    JwksUrl(&'static str),
    /// The `jwks_uri` of this OpenID Connect discovery document (`openIdConnectUrl`); may be overridden with
    /// `--oidc-url`.
    Discovery(&'static str),
    /// An HMAC secret read at start-up from this environment variable (`secret_env`).
    SecretEnv(&'static str),
}

/// A JWS signing algorithm (RFC 7518) the gateway verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// HMAC SHA-256.
    Hs256,
    /// HMAC SHA-384.
    Hs384,
    /// HMAC SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 SHA-512.
    Rs512,
    /// RSASSA-PSS SHA-256.
    Ps256,
    /// RSASSA-PSS SHA-384.
    Ps384,
    /// RSASSA-PSS SHA-512.
    Ps512,
    /// ECDSA P-256 SHA-256.
    Es256,
    /// ECDSA P-384 SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl JwtAlgorithm {
    /// The `alg` name.
    pub const fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Hs256 => "HS256",
            JwtAlgorithm::Hs384 => "HS384",
            JwtAlgorithm::Hs512 => "HS512",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Ps384 => "PS384",
            JwtAlgorithm::Ps512 => "PS512",
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::EdDsa => "EdDSA",
        }
    }

    /// Whether it is an HMAC algorithm (a shared secret, not a public key).
    pub const fn is_hmac(self) -> bool {
        matches!(self, JwtAlgorithm::Hs256 | JwtAlgorithm::Hs384 | JwtAlgorithm::Hs512)
    }
}

/// A credential decided on by an external authorizer (AWS Lambda authorizer, Envoy `ext_authz`).
#[derive(Debug)]
pub struct AuthorizerSpec {
    /// Where the credential is presented (an `http` scheme reads `Authorization`), and whether it is forwarded.
    pub credential: ApiKeyScheme,
    /// The authorizer's upstream (index into [`ApiSpec::upstreams`]); its timeouts bound the call.
    pub upstream: usize,
    /// The path called on it.
    pub path: &'static str,
    /// How long an answer is reused for the same credential; zero: every request asks.
    pub cache_ttl: Duration,
    /// Headers of the authorizer's `2xx` answer copied to the upstream request (lower case). Such headers sent
    /// by the client are always removed.
    pub forward_headers: &'static [&'static str],
}

/// Cross-origin resource sharing: which browser origins may call, and what they may send and read.
#[derive(Debug)]
pub struct CorsSpec {
    /// The origins admitted.
    pub allow_origins: &'static [OriginSpec],
    /// Request headers a cross-origin request may send (lower case); `*` for any (without credentials).
    pub allow_headers: &'static [&'static str],
    /// Response headers the browser may read.
    pub expose_headers: &'static [&'static str],
    /// Whether credentials (cookies, `Authorization`) may be sent (`Access-Control-Allow-Credentials: true`).
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    pub max_age: Option<Duration>,
}

/// An admitted origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginSpec {
    /// `*`: every origin (never with credentials, which the generator refuses).
    Any,
    /// One origin, `scheme://host[:port]`, lower case.
    Exact(&'static str),
    /// `https://*.example.com`: the text before and after the `*`, which stands for one or more DNS labels.
    Wildcard {
        /// Up to the `*`, e.g. `https://`.
        prefix: &'static str,
        /// After the `*`, e.g. `.example.com`.
        suffix: &'static str,
    },
}

/// API-wide response cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// Total bytes of cached responses (bodies and headers) kept before the least valuable are evicted.
    pub capacity: u64,
    /// Largest body stored; larger responses are passed through, not cached.
    pub max_entry: u64,
}

/// An HTTP upstream: one or more servers behind one name, with how requests are spread over them and what
/// happens when they fail ([`crate::targets::proxy`]).
///
/// Generated code writes the fields it sets and takes the rest from [`UpstreamSpec::DEFAULT`], so an upstream of
/// one URL with default settings stays two lines.
#[derive(Debug)]
pub struct UpstreamSpec {
    /// The name under `x-gateway.upstreams` (or `default` for the implicit `servers` upstream).
    pub name: &'static str,
    /// Absolute `http://` or `https://` URLs, one per server (at least one), checked at generate time; all with
    /// the same base path. `--upstream NAME=URL[,URL...]` replaces them.
    pub urls: &'static [&'static str],
    /// Time allowed from sending the request to receiving the response head, per try; `504` when exceeded.
    pub timeout: Duration,
    /// Time allowed to establish the TCP (and TLS) connection; `502` when exceeded.
    pub connect_timeout: Duration,
    /// How a request picks a server.
    pub balance: Balance,
    /// Retries of failed tries on another server.
    pub retries: Option<RetrySpec>,
    /// Active health checks.
    pub health: Option<HealthSpec>,
    /// Passive outlier detection: servers failing in a row leave the rotation for a while.
    pub eject: Option<EjectSpec>,
    /// The most requests in flight to the upstream in one process (and so the most sockets open to it); `None`:
    /// unbounded.
    pub max_connections: Option<u32>,
    /// How long a request waits for a free connection when `max_connections` are in use; `503` after it.
    pub queue_timeout: Duration,
    /// Re-resolve the URLs' host names this often; every address a name yields is a server. `None`: names are
    /// resolved when a connection is made, and each URL is one server.
    pub resolve: Option<Duration>,
    /// TLS settings of the upstream's own (`tls:`); `None`: the system's roots, no client certificate.
    pub tls: Option<UpstreamTlsSpec>,
    /// HTTP/2 to the servers: by ALPN on `https`, with prior knowledge (h2c) on `http`.
    pub http2: bool,
}

/// `upstreams.<name>.tls`: files read at start-up, relative to the gateway's working directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTlsSpec {
    /// PEM CA certificates trusted for the servers, instead of the system's roots.
    pub ca_file: Option<&'static str>,
    /// A client certificate chain and its key (upstream mutual TLS).
    pub client: Option<(&'static str, &'static str)>,
}

impl UpstreamSpec {
    /// The defaults of every setting but the name and URLs.
    pub const DEFAULT: UpstreamSpec = UpstreamSpec {
        name: "",
        urls: &[],
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(5),
        balance: Balance::RoundRobin,
        retries: None,
        health: None,
        eject: None,
        max_connections: None,
        queue_timeout: Duration::from_millis(100),
        resolve: None,
        tls: None,
        http2: false,
    };
}

/// How a request picks one of an upstream's servers (`balance:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Each server in turn.
    RoundRobin,
    /// The less busy of two servers picked at random (power of two choices).
    LeastRequests,
    /// By the hash of a request value (rendezvous hashing: a server leaving moves only its own share); requests
    /// without the value go round robin.
    Hash(crate::template::Placeholder),
}

/// When and how failed tries are retried (`retries:`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySpec {
    /// Retries after the first try (so at most `attempts + 1` tries).
    pub attempts: u32,
    /// Which failures are retried.
    pub on: RetryOn,
    /// Which methods are retried.
    pub methods: RetryMethods,
    /// Retries allowed per request over the window, as a fraction (`0.2` for `20%`).
    pub budget_ratio: f64,
    /// Retries always allowed per window, whatever the ratio (so a quiet upstream can still be retried).
    pub budget_min: u32,
    /// The sliding window the budget counts over.
    pub budget_window: Duration,
    /// The first backoff's ceiling; each later retry doubles it (up to `max_backoff`), and the wait is a random
    /// fraction of it (full jitter).
    pub backoff: Duration,
    /// The largest backoff ceiling.
    pub max_backoff: Duration,
}

/// The failures a try is retried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    /// No connection could be made (nothing was sent).
    pub connect_error: bool,
    /// The connection broke before the response head arrived.
    pub reset: bool,
    /// No response head within the upstream's `timeout`.
    pub timeout: bool,
    /// These upstream statuses.
    pub statuses: &'static [u16],
}

/// The methods whose requests are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryMethods {
    /// `GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT` and `DELETE` (RFC 9110 §9.2.2).
    Idempotent,
    /// Every method (the spec said so explicitly).
    All,
    /// Exactly these.
    Only(&'static [Method]),
}

impl RetryMethods {
    /// Whether requests with `method` are retried.
    pub fn allows(&self, method: &Method) -> bool {
        match self {
            RetryMethods::Idempotent => method.is_idempotent(),
            RetryMethods::All => true,
            RetryMethods::Only(methods) => methods.contains(method),
        }
    }
}

/// Active health checks (`health:`): a `GET` of `path` on every server each `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSpec {
    /// The path checked (under the upstream's base path).
    pub path: &'static str,
    /// Time between checks of one server.
    pub interval: Duration,
    /// Time a check may take; longer is a failure.
    pub timeout: Duration,
    /// Failed checks in a row that take a healthy server out.
    pub unhealthy_after: u32,
    /// Passed checks in a row that bring an unhealthy server back.
    pub healthy_after: u32,
    /// The statuses that pass, inclusive (`200..=399` by default).
    pub expect: (u16, u16),
}

/// Passive outlier detection (`eject:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectSpec {
    /// Failures in a row (connect errors, resets, timeouts, `502`, `503`, `504`) that eject a server.
    pub consecutive_failures: u32,
    /// How long the first ejection lasts; each ejection in a row lasts one `base_time` longer.
    pub base_time: Duration,
    /// The longest ejection.
    pub max_time: Duration,
    /// The most servers out at once by ejection, in percent of the upstream's servers (rounded down).
    pub max_percent: u8,
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
    /// The route given to the router: the template with one capture per segment that holds parameters, named
    /// positionally (`/pets/{p0}`), so that templates differing only in parameter names share one route. Literal
    /// text before a segment's first parameter stays in the route (`/v{p0}`); text after it does not (see
    /// [`OperationSpec::path_suffixes`]).
    pub route: &'static str,
    /// Path parameter names, in the order they appear in the template. Capture `p{c}` of the route is the `c`-th
    /// segment of the template that holds parameters: `path_params[c]` when every such segment holds one, else the
    /// segment's parameters in order (the runtime counts the placeholders of each segment of `template` once, at
    /// start-up).
    pub path_params: &'static [&'static str],
    /// Empty, or one entry per path parameter: literal text that follows the parameter inside its segment — the
    /// segment's suffix for its last parameter (`.json` in `/calls/{sid}.json`), the text before the next parameter
    /// for the others (`.` in `/files/{name}.{ext}`). The router of axum 0.8 cannot match text after a parameter,
    /// so the segment is routed whole (`/calls/{p0}`, `/files/{p0}`) and the runtime takes the suffix off the
    /// captured value and cuts it at the literals between parameters, each at its last occurrence (the first
    /// parameter of a segment is the only one that may contain them), answering `404` when the value lacks one
    /// or a parameter would be empty.
    pub path_suffixes: &'static [&'static str],
    /// Parses and type-checks the operation's parameters; `None` when it declares none worth checking.
    pub validate: Option<Validator>,
    /// The operation's effective `security`: alternatives (any one admits), each a set of requirements that must
    /// all be met. Empty: open.
    pub security: &'static [&'static [Requirement]],
    /// CORS for the operation (the API's, narrowed or turned off by the operation); `None`: no CORS headers.
    pub cors: Option<&'static CorsSpec>,
    /// The client addresses the operation admits (`ip`); `None`: any.
    pub ip: Option<&'static IpSpec>,
    /// Response compression and request decompression; `None`: off.
    pub compression: Option<CompressionSpec>,
    /// Whether WebSocket upgrades (`Upgrade: websocket`) pass through to the upstream.
    pub websocket: bool,
    /// Usage plans whose keys may call the operation (indexes into [`ApiSpec::usage_plans`]); empty: all.
    pub plans: &'static [usize],
    /// The operation's own token bucket.
    pub throttle: Option<ThrottleSpec>,
    /// Response caching, when the operation's TTL is above zero.
    pub cache: Option<&'static CacheSpec>,
    /// Renderings of gateway responses set on the operation or its path item; they override
    /// [`ApiSpec::responses`] kind by kind.
    pub responses: &'static [GatewayResponseSpec],
    /// The request body: its size limit and, when validated, what it may be.
    pub body: BodySpec,
    /// Parameters checked against a schema (`content` parameters, `deepObject` query parameters).
    pub schema_params: &'static [SchemaParamSpec],
    /// Header, query, body and status transforms.
    pub transform: Option<&'static TransformSpec>,
    /// Checking upstream responses against the spec's response schemas (`validate.responses`).
    pub responses_check: Option<&'static ResponseCheckSpec>,
    /// Where the request goes.
    pub target: TargetSpec,
}

impl OperationSpec {
    /// Every setting at its default: open, no policy, the default body limit, no parameters. Generated code writes
    /// the fields an operation sets — always its id, method, template, route and target — and takes the rest from
    /// here (`..OperationSpec::DEFAULT`), so that a plain operation stays a few lines.
    ///
    /// Its own target, which every generated entry replaces, answers `501 Not Implemented` without a body.
    pub const DEFAULT: OperationSpec = OperationSpec {
        id: "",
        method: Method::GET,
        template: "",
        route: "",
        path_params: &[],
        path_suffixes: &[],
        validate: None,
        security: &[],
        cors: None,
        ip: None,
        compression: None,
        websocket: false,
        plans: &[],
        throttle: None,
        cache: None,
        responses: &[],
        body: BodySpec::limit(DEFAULT_MAX_BODY),
        schema_params: &[],
        transform: None,
        responses_check: None,
        target: TargetSpec::Mock(MockSpec {
            status: 501,
            headers: &[],
            content_type: "",
            body: "",
        }),
    };
}

/// `compression`: responses compressed for clients that accept it, and optionally request bodies decompressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionSpec {
    /// Smallest response body compressed (one of unknown size is).
    pub min_size: u64,
    /// Whether request bodies with a `Content-Encoding` are decompressed (held to the body limit once
    /// decompressed).
    pub decompress_requests: bool,
}

/// `ip`: who may call, by client address. A denied address is refused even when allowed.
#[derive(Debug, Clone, Copy)]
pub struct IpSpec {
    /// Only addresses in these blocks (`None`: every address not denied).
    pub allow: Option<&'static [Cidr]>,
    /// Never addresses in these blocks.
    pub deny: &'static [Cidr],
}

/// An address block: the addresses whose first `prefix` bits are those of `addr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The block's first address.
    pub addr: std::net::IpAddr,
    /// Significant bits.
    pub prefix: u8,
}

impl Cidr {
    /// An IPv4 block.
    pub const fn v4(octets: [u8; 4], prefix: u8) -> Self {
        Self {
            addr: std::net::IpAddr::V4(std::net::Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3])),
            prefix,
        }
    }

    /// An IPv6 block.
    pub const fn v6(s: [u16; 8], prefix: u8) -> Self {
        Self {
            addr: std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])),
            prefix,
        }
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (std::net::IpAddr::V4(net), std::net::IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (std::net::IpAddr::V6(net), std::net::IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The request body of an operation (`validate.body`, `validate.max_body` and the operation's `requestBody`).
#[derive(Debug)]
pub struct BodySpec {
    /// Largest body accepted, in bytes (`PAYLOAD_TOO_LARGE` beyond).
    pub max: u64,
    /// Whether bodies are checked against `media` (`validate.body: true`).
    pub validate: bool,
    /// `requestBody.required`: a request without a body is refused (when validated).
    pub required: bool,
    /// The declared media types, in spec order; empty when the operation declares no `requestBody`.
    pub media: &'static [MediaSpec],
}

impl BodySpec {
    /// An unvalidated body of at most `max` bytes.
    pub const fn limit(max: u64) -> Self {
        Self {
            max,
            validate: false,
            required: false,
            media: &[],
        }
    }
}

/// The default `validate.max_body`: 10 MiB, AWS API Gateway's payload limit.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// One declared media type of a request body.
#[derive(Debug)]
pub struct MediaSpec {
    /// The media range as declared, lower case, without parameters: `application/json`, `application/*`, `*/*`.
    pub range: &'static str,
    /// The schema bodies of this type are checked against (index into [`ApiSpec::schemas`]); only JSON and
    /// `application/x-www-form-urlencoded` bodies are checked.
    pub schema: Option<usize>,
    /// For form bodies: how each field's text is coerced before the check.
    pub form: &'static [FormField],
}

/// A form field (or `deepObject` member) whose text is coerced to a JSON type before a schema check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormField {
    /// The field name.
    pub name: &'static str,
    /// The JSON type its text becomes (text that does not parse stays a string, for the schema to refuse).
    pub scalar: FormScalar,
    /// An array: every occurrence of the field is an item.
    pub list: bool,
}

/// The JSON type of a form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormScalar {
    /// Left as text.
    String,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// A parameter checked against a schema.
#[derive(Debug)]
pub struct SchemaParamSpec {
    /// Its name.
    pub name: &'static str,
    /// Where it is read from (query, header or cookie).
    pub location: crate::params::ParamIn,
    /// How its value is written.
    pub style: SchemaParamStyle,
    /// Whether a request without it is refused (the typed check reports that already for other parameters).
    pub required: bool,
    /// Index into [`ApiSpec::schemas`].
    pub schema: usize,
}

/// How a schema-checked parameter is written.
#[derive(Debug)]
pub enum SchemaParamStyle {
    /// `content: application/json`: the value is a JSON document.
    Json,
    /// `style: deepObject`: `name[member]=value` query pairs, coerced by `fields`.
    DeepObject(&'static [FormField]),
}

/// Transforms of an operation's requests and responses.
#[derive(Debug)]
pub struct TransformSpec {
    /// Applied to the request after validation, before the target.
    pub request: RequestTransformSpec,
    /// Applied to the target's response (before the cache stores it).
    pub response: ResponseTransformSpec,
}

/// What changes in a request.
#[derive(Debug)]
pub struct RequestTransformSpec {
    /// Header edits.
    pub headers: EditSpec,
    /// Query parameter edits.
    pub query: EditSpec,
    /// A jq filter over the JSON body (index into [`ApiSpec::filters`]).
    pub body: Option<usize>,
}

/// What changes in a response.
#[derive(Debug)]
pub struct ResponseTransformSpec {
    /// Target status → status sent.
    pub status: &'static [(u16, u16)],
    /// Header edits.
    pub headers: EditSpec,
    /// A jq filter over the JSON body of `2xx` responses (index into [`ApiSpec::filters`]).
    pub body: Option<usize>,
}

/// Edits of headers or query parameters, applied in this order: remove, rename, set. `set` values are
/// templates filled from the request as it arrived, before any edit.
#[derive(Debug)]
pub struct EditSpec {
    /// Names removed (header names lower case).
    pub remove: &'static [&'static str],
    /// `(from, to)`: the values of `from` moved to `to`.
    pub rename: &'static [(&'static str, &'static str)],
    /// `(name, template)`: replaces every value of `name`.
    pub set: &'static [(&'static str, &'static [TemplatePart])],
}

impl EditSpec {
    /// No edits.
    pub const NONE: EditSpec = EditSpec {
        remove: &[],
        rename: &[],
        set: &[],
    };

    /// Whether there is nothing to do.
    pub const fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.set.is_empty()
    }
}

/// How upstream responses are checked against the spec (`validate.responses`).
#[derive(Debug)]
pub struct ResponseCheckSpec {
    /// Report mismatches, or refuse them.
    pub mode: ResponseCheckMode,
    /// Share of responses checked, in millionths (`responses_sample: 0.1` is 100 000).
    pub sample_ppm: u32,
    /// Largest body checked; larger ones are counted as skipped and pass through.
    pub max_body: u64,
    /// The declared responses, in spec order.
    pub responses: &'static [ResponseSchemaSpec],
}

/// Whether a response that does not match the spec reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseCheckMode {
    /// Logged and counted; the client gets it unchanged.
    Report,
    /// Logged, counted and replaced by `UPSTREAM_ERROR`.
    Enforce,
}

/// One declared response of an operation.
#[derive(Debug)]
pub struct ResponseSchemaSpec {
    /// The statuses it describes.
    pub status: StatusMatch,
    /// Its media types (lower-case ranges), each with the schema its body must match, if any. Empty: no body is
    /// described, and any is accepted.
    pub media: &'static [(&'static str, Option<usize>)],
}

/// Which statuses a declared response describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// One code (`"404"`).
    Code(u16),
    /// A class (`"4XX"` is 4).
    Class(u16),
    /// `default`: any status not described otherwise.
    Default,
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
    /// Reverse-proxy to one of several upstreams by weight (a canary, blue-green).
    Split(SplitTarget),
    /// Answer with a fixed response.
    Mock(MockSpec),
    /// Read or write an item of a store table.
    Store(StoreTargetSpec),
    /// Call a Rust function of the user's, compiled into the gateway.
    Function(FunctionSpec),
}

/// A function target: the generated glue that calls the user's function, and how long it may take.
#[derive(Debug)]
pub struct FunctionSpec {
    /// The function's path in its crate (`pets::age`), for logs.
    pub name: &'static str,
    /// The generated glue: typed request in, the function called, typed answer out.
    pub call: crate::targets::function::FunctionFn,
    /// Time allowed to answer; `504` when exceeded.
    pub timeout: Duration,
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

/// Reverse-proxy to one of `sides`, picked by weight per request, or by the hash of `sticky` when the request has
/// that value. Every side gets the same rewritten path.
#[derive(Debug)]
pub struct SplitTarget {
    /// The upstreams and their weights (positive in total).
    pub sides: &'static [SplitSide],
    /// A request value that keeps one caller on one side.
    pub sticky: Option<crate::template::Placeholder>,
    /// The upstream path, as for [`UpstreamTarget::path`].
    pub path: &'static [PathPart],
}

/// One side of a [`SplitTarget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitSide {
    /// Index into [`ApiSpec::upstreams`].
    pub upstream: usize,
    /// Its share, relative to the other sides' weights.
    pub weight: u32,
}

/// A piece of a rewritten upstream path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathPart {
    /// Literal text, already percent-encoded as needed.
    Literal(&'static str),
    /// The value of path parameter `i` (index into [`OperationSpec::path_params`]).
    Param(usize),
    /// The value of stage variable `NAME` (`{stage.NAME}`), fixed at start-up and inserted as it is.
    Stage(&'static str),
}

impl TargetSpec {
    /// Reverse-proxy to `upstreams[upstream]` at `path`: a [`UpstreamTarget`], as generated code writes it (with
    /// the path spelled by [`path!`](crate::path)).
    pub const fn proxy(upstream: usize, path: &'static [PathPart]) -> TargetSpec {
        TargetSpec::Upstream(UpstreamTarget { upstream, path })
    }
}

/// The upstream path `template` as [`PathPart`]s, evaluated at compile time: literal text as it is, `{i}` for path
/// parameter `i`, `{stage.NAME}` for stage variable `NAME`. `path!("/pets/{0}/photos")` is
/// `&[PathPart::Literal("/pets/"), PathPart::Param(0), PathPart::Literal("/photos")]`; a malformed template (an
/// unclosed `{`, a stray `}`, a placeholder that is neither) does not compile. Literal text holding `{` or `}` cannot
/// be written this way: generated code spells such a path part by part.
#[macro_export]
macro_rules! path {
    ($template:literal) => {{
        const PARTS: [$crate::spec::PathPart; $crate::spec::path_len($template)] = $crate::spec::path_parts($template);
        &PARTS
    }};
}

/// How many [`PathPart`]s the upstream path `template` is (see [`path!`](crate::path)).
pub const fn path_len(template: &'static str) -> usize {
    let mut rest = template.as_bytes();
    let mut count = 0;
    while !rest.is_empty() {
        rest = next_path_part(rest).1;
        count += 1;
    }
    count
}

/// The upstream path `template` as its `N` [`PathPart`]s (see [`path!`](crate::path), which supplies `N`).
///
/// # Panics
///
/// If `template` is malformed or is not `N` parts; at compile time, when evaluated in a constant.
pub const fn path_parts<const N: usize>(template: &'static str) -> [PathPart; N] {
    let mut parts = [PathPart::Param(0); N];
    let mut rest = template.as_bytes();
    let mut i = 0;
    while !rest.is_empty() {
        assert!(i < N, "the upstream path has more parts than its length says");
        let (part, after) = next_path_part(rest);
        parts[i] = part;
        rest = after;
        i += 1;
    }
    assert!(i == N, "the upstream path has fewer parts than its length says");
    parts
}

/// The first part of a non-empty upstream path template, and the rest.
const fn next_path_part(template: &'static [u8]) -> (PathPart, &'static [u8]) {
    let mut end = 0;
    if template[0] == b'{' {
        while end < template.len() && template[end] != b'}' {
            end += 1;
        }
        assert!(
            end < template.len(),
            "an upstream path placeholder is not closed with `}}`"
        );
        let (placeholder, after) = template.split_at(end + 1);
        // Without the braces.
        let (inside, _) = placeholder.split_at(placeholder.len() - 1);
        let (_, inside) = inside.split_at(1);
        let part = match inside {
            [b's', b't', b'a', b'g', b'e', b'.', name @ ..] if !name.is_empty() => PathPart::Stage(utf8(name)),
            _ => PathPart::Param(decimal(inside)),
        };
        return (part, after);
    }
    while end < template.len() && template[end] != b'{' {
        assert!(template[end] != b'}', "an upstream path has `}}` outside a placeholder");
        end += 1;
    }
    let (text, after) = template.split_at(end);
    (PathPart::Literal(utf8(text)), after)
}

/// `bytes`, cut from a `&str` at ASCII characters, as the `&str` they are.
const fn utf8(bytes: &'static [u8]) -> &'static str {
    match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(_) => panic!("an upstream path is cut inside a character"),
    }
}

/// The path parameter index `digits` spells.
const fn decimal(digits: &[u8]) -> usize {
    assert!(
        !digits.is_empty(),
        "an upstream path placeholder is empty: `{{i}}` or `{{stage.NAME}}`"
    );
    let mut value = 0usize;
    let mut i = 0;
    while i < digits.len() {
        let digit = digits[i];
        assert!(
            digit.is_ascii_digit(),
            "an upstream path placeholder is neither `{{i}}` nor `{{stage.NAME}}`"
        );
        value = value * 10 + (digit - b'0') as usize;
        i += 1;
    }
    value
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

/// A store (`x-gateway.stores.<name>`): a database the gateway keeps JSON items in, opened once at start-up.
#[derive(Debug)]
pub struct StoreSpec {
    /// The name store targets and `--store NAME=PATH` refer to it by.
    pub name: &'static str,
    /// The database; `--store NAME=PATH` (SQLite) or `--store NAME=postgres://…` replaces it.
    pub backend: StoreBackendSpec,
    /// The tables the spec names, created at start-up if missing, each with an index per filtered field.
    pub tables: &'static [StoreTableSpec],
}

/// The database of a store: `sqlite` or `postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreBackendSpec {
    /// A SQLite file, embedded: one gateway process at a time.
    Sqlite {
        /// The database file, relative to the working directory (created, with its directory, on first start).
        path: &'static str,
        /// When a write is on disk: `Full` (the default) survives a power loss, `Normal` a killed process only.
        synchronous: StoreSync,
    },
    /// A PostgreSQL database, which several gateway processes may share.
    Postgres {
        /// Its URL (`postgres://user@host:port/database`; checked at generate time, parsed at start-up). It may hold
        /// a password: never log it.
        url: &'static str,
    },
}

/// When a committed write is on disk (SQLite's `synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSync {
    /// Every commit is flushed to disk before it is acknowledged: nothing acknowledged is lost, even to a power
    /// loss.
    Full,
    /// Commits reach the operating system before they are acknowledged and the disk at checkpoints: nothing is
    /// lost when the gateway is killed, the last commits may be lost to a power loss or an OS crash.
    Normal,
}

/// A table of a store.
#[derive(Debug)]
pub struct StoreTableSpec {
    /// Its name (`[A-Za-z_][A-Za-z0-9_]*`, checked at generate time).
    pub name: &'static str,
    /// Top-level fields that list operations filter on: each gets an index at start-up.
    pub indexes: &'static [&'static str],
}

/// A store target: one action on one table of a store.
#[derive(Debug)]
pub struct StoreTargetSpec {
    /// Index into [`ApiSpec::stores`].
    pub store: usize,
    /// The table.
    pub table: &'static str,
    /// What the operation does.
    pub action: StoreAction,
    /// The item's key, built from path parameters; empty for `List` and `Create`.
    pub key: &'static [StoreKeyPart],
    /// Equality filters of a `List`: query parameters, each naming a top-level field of the items.
    pub filters: &'static [StoreFilterSpec],
    /// For `Create`: the top-level field the new item's id is written to (when the item is a JSON object).
    pub id_field: &'static str,
}

/// What a store target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// Read one item (`200`, `304`, `404`).
    Get,
    /// Create or replace one item with the body (`201` when created, `200` when replaced).
    Put,
    /// Apply the body to one item as a JSON merge patch, RFC 7396 (`200`, `404`).
    Merge,
    /// Remove one item (`204`, `404`).
    Delete,
    /// A page of items, in key order, with equality filters (`200`).
    List,
    /// Store the body as a new item under a new id (`201` with `Location`).
    Create,
}

impl StoreAction {
    /// The action's name in the spec (`get`, `put`, …).
    pub const fn name(self) -> &'static str {
        match self {
            StoreAction::Get => "get",
            StoreAction::Put => "put",
            StoreAction::Merge => "merge",
            StoreAction::Delete => "delete",
            StoreAction::List => "list",
            StoreAction::Create => "create",
        }
    }
}

/// A piece of a store key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKeyPart {
    /// Literal text.
    Literal(&'static str),
    /// The (percent-decoded) value of path parameter `i` (index into [`OperationSpec::path_params`]).
    Param(usize),
}

/// An equality filter of a list: `?status=sold` keeps the items whose field `status` is `"sold"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreFilterSpec {
    /// The query parameter, which is also the name of the top-level field compared.
    pub query: &'static str,
    /// What JSON value the parameter's text stands for.
    pub kind: StoreFilterKind,
}

/// The JSON type a filter's query value is compared as (from the parameter's schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFilterKind {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// `true` or `false`.
    Boolean,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What generated code writes: the fields that differ, the rest from [`OperationSpec::DEFAULT`], in a `static`.
    static POST: OperationSpec = OperationSpec {
        id: "createPet",
        method: Method::POST,
        template: "/pets",
        route: "/pets",
        target: TargetSpec::Upstream(UpstreamTarget {
            upstream: 0,
            path: &[PathPart::Literal("/pets")],
        }),
        ..OperationSpec::DEFAULT
    };

    #[test]
    fn an_operation_written_against_the_default_keeps_its_fields_and_takes_the_defaults() {
        assert_eq!(
            (POST.id, POST.method.as_str(), POST.route),
            ("createPet", "POST", "/pets")
        );
        assert!(matches!(
            POST.target,
            TargetSpec::Upstream(UpstreamTarget { upstream: 0, .. })
        ));
        assert!(POST.security.is_empty() && POST.validate.is_none() && POST.cache.is_none());
        assert_eq!((POST.body.max, POST.body.validate), (DEFAULT_MAX_BODY, false));
        assert!(matches!(
            OperationSpec::DEFAULT.target,
            TargetSpec::Mock(MockSpec { status: 501, .. })
        ));
    }

    /// `path!` as generated code uses it: in a `static`, evaluated at compile time.
    static PROXIED: TargetSpec = TargetSpec::proxy(1, crate::path!("/v1/pets/{0}/photos/{1}.jpg"));

    #[test]
    fn path_spells_literals_parameters_and_stage_variables() {
        let TargetSpec::Upstream(UpstreamTarget { upstream: 1, path }) = &PROXIED else {
            panic!("a proxy to upstream 1: {PROXIED:?}");
        };
        assert_eq!(
            *path,
            [
                PathPart::Literal("/v1/pets/"),
                PathPart::Param(0),
                PathPart::Literal("/photos/"),
                PathPart::Param(1),
                PathPart::Literal(".jpg"),
            ]
        );
        assert_eq!(
            crate::path!("{stage.prefix}/é/{12}"),
            &[PathPart::Stage("prefix"), PathPart::Literal("/é/"), PathPart::Param(12)]
        );
        assert_eq!(crate::path!("/"), &[PathPart::Literal("/")]);
        assert!(crate::path!("").is_empty());
        assert_eq!(path_len("/a/{0}{1}"), 3);
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in ["/a/{0", "/a}", "/{}", "/{x}", "/{stage.}", "/{-1}"] {
            let refused = std::panic::catch_unwind(|| path_len(bad));
            assert!(refused.is_err(), "{bad}");
        }
    }
}
