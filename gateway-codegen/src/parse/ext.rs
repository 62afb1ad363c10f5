//! The `x-gateway` extension, as typed serde structs.
//!
//! Every struct denies unknown fields: a misspelt key is a generate-time error with a "did you mean", never a
//! silently ignored setting (typify only warns; a gateway that quietly drops `cahce:` would serve stale or
//! unprotected data). The same [`PolicyExt`] sits at the top level, on path items and on operations; settings
//! on an operation override its path item's, which override the top level's.

use std::time::Duration;

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer};

/// The extension's key, wherever it appears.
pub const EXTENSION: &str = "x-gateway";

/// `x-gateway` at the top level of the spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootExt {
    /// The API's name; the gateway's too (crate `<name>-gateway`) when the spec is compiled alone. Default: the
    /// spec's file stem.
    pub name: Option<String>,
    /// The gateway the API is compiled into: specs naming the same one make one crate, `<gateway>-gateway`.
    pub gateway: Option<String>,
    /// The prefix of every route of the API (`/v1`).
    pub base_path: Option<String>,
    /// Named HTTP upstreams that operations proxy to.
    #[serde(default)]
    pub upstreams: IndexMap<String, UpstreamExt>,
    /// The default target of every operation.
    pub target: Option<TargetExt>,
    /// Response caching: API-wide sizes, and defaults for every operation.
    pub cache: Option<CacheExt>,
    /// The API-wide token bucket: every request to the API takes a token.
    pub throttle: Option<ThrottleExt>,
    /// Usage plans API keys may be on.
    #[serde(default)]
    pub usage_plans: IndexMap<String, UsagePlanExt>,
    /// The host names the API is served under; a request for another host is refused (`421`). Default: any.
    pub hosts: Option<Vec<String>>,
    /// Client addresses let in or kept out (`403`), for every operation (an operation's or path item's replace it).
    pub ip: Option<IpExt>,
    /// Response compression (and request decompression) for every operation. Default off.
    pub compression: Option<CompressionSetting>,
    /// Renderings of the gateway's own responses, by kind (`THROTTLED`, `DEFAULT_4XX`, …).
    pub responses: Option<IndexMap<String, GatewayResponseExt>>,
    /// Request and response validation defaults for every operation.
    pub validate: Option<ValidateExt>,
    /// Transforms of every operation's requests and responses (an operation's or path item's override them
    /// part by part).
    pub transform: Option<TransformExt>,
    /// Every operation must be secured or say `security: []` explicitly. Default false.
    pub auth_required: Option<bool>,
    /// Cross-origin resource sharing for every operation (an operation's or path item's override it).
    pub cors: Option<CorsExt>,
    /// Deployment stages, by name: their variables (`{stage.NAME}`) and the settings they override.
    #[serde(default)]
    pub stages: IndexMap<String, StageExt>,
    /// The stage served without `--stage`.
    pub default_stage: Option<String>,
    /// Serve the spec (without `x-gateway` and skipped operations) on `GET /_gateway/openapi.json`. Default true.
    pub publish_spec: Option<bool>,
    /// Named stores that store targets keep their items in.
    #[serde(default)]
    pub stores: IndexMap<String, StoreExt>,
    /// The crate of Rust functions that function targets (`target: { function: pets::age }`) call.
    pub functions: Option<FunctionsExt>,
    /// State shared with the API's other replicas through Redis: limits, quotas, usage, the cache, keys.
    pub shared: Option<SharedExt>,
}

/// `x-gateway.shared`: one Redis for every replica of the API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedExt {
    /// Where Redis is.
    pub redis: Option<RedisExt>,
    /// What each concern does while Redis is down or slow.
    pub on_failure: Option<OnFailureExt>,
    /// `redis`: API keys also live in the Redis hash `<prefix>keys`, besides the key file.
    pub keys: Option<String>,
    /// How often keys are re-read from Redis. Default 2s.
    pub keys_refresh: Option<DurationValue>,
    /// `redis`: the response cache gets a shared layer in Redis behind each replica's own.
    pub cache: Option<String>,
}

/// `shared.redis`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisExt {
    /// `redis://[user:password@]host[:port][/db]`.
    pub url: Option<String>,
    /// Put before every key and channel. Default `gw:<api name>:`.
    pub prefix: Option<String>,
    /// The longest a Redis call may take. Default 50ms.
    pub timeout: Option<DurationValue>,
}

/// `shared.on_failure`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnFailureExt {
    /// `open` (default) or `closed`.
    pub limits: Option<String>,
    /// `open` (default) or `closed`.
    pub quotas: Option<String>,
    /// `bypass` (the only choice, and the default): the replica's own cache and the target answer.
    pub cache: Option<String>,
}

/// A store under `x-gateway.stores`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreExt {
    /// The SQLite database file, relative to the gateway's working directory; `--store NAME=PATH` overrides it.
    pub sqlite: Option<String>,
    /// Or a PostgreSQL database, by URL (`postgres://user@host:port/database`); `--store NAME=URL` overrides it.
    pub postgres: Option<String>,
    /// SQLite only. `full` (default): a commit is on disk before it is acknowledged; `normal`: it survives a killed
    /// gateway, not a power loss.
    pub synchronous: Option<String>,
}

/// `functions:`: the user's crate of functions, a member of the workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionsExt {
    /// The crate's package name (`petstore-functions`).
    #[serde(rename = "crate")]
    pub krate: String,
    /// Its directory, relative to the directory that holds the generated gateways' (the workspace root, for
    /// `gateways/`): `functions/petstore`. Created with one stub per function when it does not exist.
    pub path: String,
}

/// `stages.<name>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageExt {
    /// `{stage.NAME}` values.
    #[serde(default)]
    pub variables: IndexMap<String, String>,
    /// `enabled: false` turns the response cache off in this stage.
    pub cache: Option<StageCacheExt>,
    /// Replaces the API-wide token bucket in this stage.
    pub throttle: Option<ThrottleExt>,
    /// A prefix for every route in this stage (`/prod`).
    pub base_path: Option<String>,
    /// Replaces the origins every CORS policy admits, in this stage.
    pub cors: Option<StageCorsExt>,
    /// Upstream settings this stage changes, by upstream name.
    #[serde(default)]
    pub upstreams: IndexMap<String, StageUpstreamExt>,
}

/// `stages.<name>.cors`: what differs between environments is who may call, not how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCorsExt {
    /// The origins admitted in this stage, instead of each policy's.
    pub allow_origins: Vec<String>,
}

/// `stages.<name>.upstreams.<upstream>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageUpstreamExt {
    /// The upstream's URL in this stage (may use this stage's `{stage.NAME}`).
    pub url: Option<String>,
    /// Its URLs in this stage, for several servers.
    pub urls: Option<Vec<String>>,
    /// Its timeout in this stage.
    pub timeout: Option<DurationValue>,
    /// Its connect timeout in this stage.
    pub connect_timeout: Option<DurationValue>,
}

/// `stages.<name>.cache`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageCacheExt {
    /// Whether the response cache runs in this stage.
    pub enabled: bool,
}

/// `cors:` at the top level: which browser origins may call the API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsExt {
    /// Origins admitted: `https://app.example.com`, `https://*.example.com`, or `*`.
    pub allow_origins: Option<Vec<String>>,
    /// Request headers a cross-origin request may send. Default: none beyond the CORS-safelisted ones.
    pub allow_headers: Option<Vec<String>>,
    /// Response headers the browser may read. Default: none beyond the CORS-safelisted ones.
    pub expose_headers: Option<Vec<String>>,
    /// Whether cookies and `Authorization` may be sent. Default false.
    pub allow_credentials: Option<bool>,
    /// How long a browser may cache a preflight answer. Default: the browser's (5 s).
    pub max_age: Option<DurationValue>,
}

/// `cors:` on a path item or an operation: `false` turns CORS off there; a map overrides the top level's fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CorsSetting {
    /// `true` keeps the inherited policy; `false` turns it off.
    Enabled(bool),
    /// Fields overriding the inherited policy.
    Policy(CorsExt),
}

/// `compression:`: `true`/`false`, or settings (which turn it on).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CompressionSetting {
    /// On with the inherited (or default) settings, or off.
    Enabled(bool),
    /// On, with these settings over the inherited ones.
    Settings(CompressionExt),
}

/// `compression: { … }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionExt {
    /// Smallest response body compressed (bodies of unknown size are). Default 1KiB.
    pub min_size: Option<SizeValue>,
    /// Decompress request bodies sent with `Content-Encoding: gzip`, `deflate`, `br` or `zstd` (the decompressed
    /// body is held to `validate.max_body`). Default false.
    pub decompress_requests: Option<bool>,
}

/// `validate:`: what the gateway checks against the spec. Inherited field by field (operation over path item over
/// top level).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateExt {
    /// Check request bodies against the operation's `requestBody` (media type, presence, schema). Default false.
    pub body: Option<bool>,
    /// Largest request body accepted, validated or not. Default 10MiB.
    pub max_body: Option<SizeValue>,
    /// Check upstream responses against the spec's response schemas: `off`, `report` or `enforce`. Default off.
    pub responses: Option<ResponsesMode>,
    /// Share of responses checked, 0 to 1. Default 1.
    pub responses_sample: Option<f64>,
    /// Largest response body checked; larger ones are counted as skipped. Default 1MiB.
    pub responses_max_body: Option<SizeValue>,
}

/// `validate.responses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponsesMode {
    /// Not checked.
    Off,
    /// Mismatches logged and counted; the client gets the response unchanged.
    Report,
    /// Mismatches logged, counted and replaced by `UPSTREAM_ERROR` (502).
    Enforce,
}

/// `transform:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformExt {
    /// What changes in requests, before the target.
    pub request: Option<RequestTransformExt>,
    /// What changes in the target's responses.
    pub response: Option<ResponseTransformExt>,
}

/// `transform.request`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTransformExt {
    /// Header edits.
    pub headers: Option<EditsExt>,
    /// Query parameter edits.
    pub query: Option<EditsExt>,
    /// A jq filter over the JSON body.
    pub body: Option<String>,
}

/// `transform.response`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseTransformExt {
    /// Target status → status sent (`404: 410`).
    pub status: Option<IndexMap<String, u16>>,
    /// Header edits.
    pub headers: Option<EditsExt>,
    /// A jq filter over the JSON body of `2xx` responses.
    pub body: Option<String>,
}

/// Header or query edits: applied as remove, rename, set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditsExt {
    /// Name → template: replaces every value.
    #[serde(default)]
    pub set: IndexMap<String, String>,
    /// Names removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Old name → new name.
    #[serde(default)]
    pub rename: IndexMap<String, String>,
}

/// `responses.<KIND>`: how the gateway renders its own responses of that kind.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayResponseExt {
    /// The status. Default: the kind's.
    pub status: Option<u16>,
    /// Extra headers; values are templates.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The body: a JSON value whose strings are templates, or a text template. Default: problem+json.
    pub body: Option<serde_json::Value>,
    /// `Content-Type` of the body. Default: `application/json` for a JSON body, `text/plain; charset=utf-8` for
    /// a string.
    pub content_type: Option<String>,
}

/// `x-gateway` on a security scheme. Which keys apply depends on the scheme's type: API keys take
/// `forward_credentials` and `authorizer`; bearer, OpenID Connect and OAuth 2 schemes take the JWT keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeExt {
    /// Forward the credential to the upstream after checking it. Default: false (it is removed).
    pub forward_credentials: Option<bool>,
    /// The `iss` tokens must carry. Default: an OpenID Connect scheme's discovered issuer; otherwise unchecked.
    pub issuer: Option<String>,
    /// Accepted `aud` values: one or a list. Default: unchecked.
    pub audience: Option<OneOrMany>,
    /// Accepted signing algorithms. Default `[RS256]`, or `[HS256]` with `secret_env`.
    pub algorithms: Option<Vec<String>>,
    /// A JWKS file, relative to the spec, read at generate time and built into the gateway.
    pub jwks_file: Option<String>,
    /// A JWKS URL, fetched at start-up and refreshed.
    pub jwks_url: Option<String>,
    /// The environment variable holding the HMAC secret (HS256/384/512).
    pub secret_env: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`. Default 0s.
    pub leeway: Option<TtlValue>,
    /// Keep `Authorization` on the forwarded request. Default false (removed once verified).
    pub forward_authorization: Option<bool>,
    /// Header → claim: verified claims sent to the upstream as headers.
    pub claims_headers: Option<IndexMap<String, String>>,
    /// An external authorizer decides on the credential.
    pub authorizer: Option<AuthorizerExt>,
    /// For a scheme the gateway cannot verify: the upstream does, and the gateway only requires that the credential
    /// be presented (this says so explicitly, silencing the warning and satisfying `auth_required`).
    pub upstream_verifies: Option<bool>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// Every value.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        }
    }
}

/// `authorizer:` on a security scheme.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerExt {
    /// The named upstream the authorizer is.
    pub upstream: String,
    /// The path called on it. Default `/`.
    pub path: Option<String>,
    /// Reuse of answers per credential.
    pub cache: Option<AuthorizerCacheExt>,
    /// Headers of the authorizer's 2xx answer copied to the upstream request.
    pub forward_headers: Option<Vec<String>>,
}

/// `authorizer.cache`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizerCacheExt {
    /// How long an answer is reused for the same credential; `0s`: not cached.
    pub ttl: TtlValue,
}

/// `x-gateway` on a path item or an operation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyExt {
    /// Where requests go.
    pub target: Option<TargetExt>,
    /// Leave the operation (or every operation of the path item) out of the gateway.
    pub skip: Option<bool>,
    /// Response caching for the operation (or every operation of the path item).
    pub cache: Option<CacheExt>,
    /// The operation's own token bucket, across all callers (or per client address).
    pub throttle: Option<ThrottleExt>,
    /// Usage plans whose keys may call the operation. Default: every plan.
    pub plans: Option<Vec<String>>,
    /// Renderings of the gateway's own responses for this operation (or path item), overriding the top level's
    /// kind by kind.
    pub responses: Option<IndexMap<String, GatewayResponseExt>>,
    /// Request and response validation (overriding the top level's field by field).
    pub validate: Option<ValidateExt>,
    /// Transforms (overriding the top level's part by part).
    pub transform: Option<TransformExt>,
    /// CORS: `false` turns it off; a map overrides the inherited policy field by field.
    pub cors: Option<CorsSetting>,
    /// Client addresses let in or kept out, replacing the top level's.
    pub ip: Option<IpExt>,
    /// Compression: `false` turns it off; `true` or a map turns it on, overriding the inherited settings.
    pub compression: Option<CompressionSetting>,
    /// Pass WebSocket upgrades through to the upstream and splice both directions (GET operations proxied to an
    /// upstream).
    pub websocket: Option<bool>,
    /// `required`: only clients with a verified certificate (mutual TLS) may call, besides what `security` asks;
    /// `optional` (the default) undoes a path item's `required`.
    pub mtls: Option<MtlsSetting>,
}

/// `mtls:` on a path item or an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtlsSetting {
    /// A verified client certificate is required.
    Required,
    /// No certificate is required by this setting.
    Optional,
}

/// `ip:`: client address lists, as addresses or CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpExt {
    /// Only these may call (when given).
    pub allow: Option<Vec<String>>,
    /// These may not, even when allowed.
    pub deny: Option<Vec<String>>,
}

/// `throttle:`: a token bucket.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleExt {
    /// Requests a second, sustained.
    pub rate: u32,
    /// Requests admitted at once from a full bucket. Default: `rate`.
    pub burst: Option<u32>,
    /// `ip`: one bucket per client address. Default: one bucket for every caller.
    pub per: Option<ThrottlePer>,
}

/// `throttle.per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottlePer {
    /// Per client address.
    Ip,
}

/// `usage_plans.<name>`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsagePlanExt {
    /// Per-key token bucket.
    pub throttle: Option<ThrottleExt>,
    /// Per-key quota.
    pub quota: Option<QuotaExt>,
}

/// `quota:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaExt {
    /// Requests per period.
    pub limit: u64,
    /// `day`, `week` or `month`: calendar periods in UTC.
    pub period: QuotaPeriodExt,
}

/// `quota.period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriodExt {
    /// From 00:00 UTC.
    Day,
    /// From Monday 00:00 UTC.
    Week,
    /// From the 1st, 00:00 UTC.
    Month,
}

/// `cache:`. Every field is optional at every level and inherited field by field; `capacity` and `max_entry`
/// are API-wide and only valid at the top level.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheExt {
    /// Total size of cached responses (top level only). Default 64MiB.
    pub capacity: Option<SizeValue>,
    /// Larger responses are passed through, not cached (top level only). Default 1MiB.
    pub max_entry: Option<SizeValue>,
    /// How long a response is served from the cache; `0s` turns caching off. Default 0s.
    pub ttl: Option<TtlValue>,
    /// Request values in the key besides the operation and its path parameters: `query.X`, `header.X`,
    /// `context.api_key`, `jwt.claims.X`.
    pub key: Option<Vec<String>>,
    /// Statuses that are stored. Default `[200]`.
    pub statuses: Option<Vec<u16>>,
    /// Who may force a refresh with `Cache-Control: max-age=0`. Default `none`.
    pub invalidate: Option<Invalidate>,
    /// Methods that are cached. Default `[GET, HEAD]`.
    pub methods: Option<Vec<String>>,
    /// Every caller may see the same cached answer (needed to cache an operation that requires a caller identity
    /// without putting that identity in the key).
    #[serde(default, deserialize_with = "callers_share")]
    pub shared: Option<bool>,
}

/// `cache.shared`: a bool. `redis` there is someone asking for the replicas' shared cache, which lives under
/// `x-gateway.shared`: say so.
fn callers_share<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Bool(bool),
        Text(String),
    }
    match Option::<Written>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Written::Bool(shared)) => Ok(Some(shared)),
        Some(Written::Text(text)) if text == "redis" => Err(serde::de::Error::custom(
            "`cache.shared` says whether every caller may see the same cached answer (`true`/`false`); to share the \
             cache between replicas through Redis, write `x-gateway: { shared: { cache: redis } }`",
        )),
        Some(Written::Text(text)) => Err(serde::de::Error::custom(format!(
            "`cache.shared` is `true` or `false`, not `{text}`"
        ))),
    }
}

/// `cache.invalidate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invalidate {
    /// Nobody may force a refresh.
    None,
    /// Any caller may.
    Any,
    /// Callers with a valid API key may.
    ApiKey,
}

/// A TTL: a duration that may be zero (`0s` turns caching off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlValue(pub Duration);

impl<'de> Deserialize<'de> for TtlValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = written_text(deserializer)?;
        if text.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" && text.trim() != "0" {
            return Ok(TtlValue(Duration::ZERO));
        }
        parse_duration(&text).map(TtlValue).map_err(serde::de::Error::custom)
    }
}

/// A size written as `64KiB`, `1MiB`, `512B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeValue(pub u64);

impl<'de> Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = written_text(deserializer)?;
        parse_size(&text).map(SizeValue).map_err(serde::de::Error::custom)
    }
}

/// Parses a size such as `64KiB` or `1MiB`, refusing bare numbers (whose unit would be a guess) and zero.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("invalid size `{text}`: write a number and a unit, like `512B`, `64KiB` or `1MiB`");
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let size = trimmed.parse::<bytesize::ByteSize>().map_err(|_| bad())?.as_u64();
    if size == 0 {
        return Err(format!("invalid size `{text}`: must be greater than zero"));
    }
    Ok(size)
}

/// The text of a scalar written as a string or a bare number (so that `10` gets the message asking for a unit).
fn written_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Written::deserialize(deserializer)? {
        Written::Text(text) => text,
        Written::Number(n) => n.to_string(),
    })
}

/// An upstream under `x-gateway.upstreams`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamExt {
    /// Absolute `http` or `https` base URL; may carry a base path. One of `url` and `urls`.
    pub url: Option<String>,
    /// Several servers: one URL each, all with the same base path.
    pub urls: Option<Vec<String>>,
    /// Whole-request timeout until the response head arrives, per try. Default 30s.
    pub timeout: Option<DurationValue>,
    /// TCP (and TLS) connect timeout. Default 5s.
    pub connect_timeout: Option<DurationValue>,
    /// `round_robin` (default), `least_requests` or `hash(SOURCE)`.
    pub balance: Option<String>,
    /// Retries of failed tries.
    pub retries: Option<RetriesExt>,
    /// Active health checks.
    pub health: Option<HealthExt>,
    /// Passive outlier detection.
    pub eject: Option<EjectExt>,
    /// The most requests in flight to the upstream per gateway process.
    pub max_connections: Option<u32>,
    /// How long a request waits for one of `max_connections`. Default 100ms.
    pub queue_timeout: Option<DurationValue>,
    /// Re-resolve host names this often; every address is a server.
    pub resolve: Option<DurationValue>,
    /// TLS to the upstream's `https` servers: the CA that signs their certificates, and a client certificate.
    pub tls: Option<UpstreamTlsExt>,
    /// Speak HTTP/2 to the upstream: by ALPN on `https` (HTTP/1.1 if the server does not offer `h2`), with prior
    /// knowledge (h2c) on `http`. Default false.
    pub http2: Option<bool>,
}

/// `upstreams.<name>.tls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsExt {
    /// PEM CA certificates trusted for the upstream's servers, instead of the system's roots.
    pub ca_file: Option<String>,
    /// A PEM client certificate chain presented to the upstream (upstream mutual TLS); needs `client_key`.
    pub client_cert: Option<String>,
    /// The PEM private key of `client_cert`.
    pub client_key: Option<String>,
}

/// `upstreams.<name>.retries`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetriesExt {
    /// Retries after the first try. Default 2.
    pub attempts: Option<u32>,
    /// What is retried: `connect_error`, `reset`, `timeout` and statuses. Default `[connect_error, reset, 502, 503, 504]`.
    pub on: Option<Vec<RetryConditionExt>>,
    /// `idempotent` (default), `all`, or a list of methods.
    pub methods: Option<RetryMethodsExt>,
    /// Retries allowed over the window: `20%` (default) or `{ ratio: 20%, min: 10, window: 10s }`.
    pub budget: Option<BudgetExt>,
    /// The first retry's backoff ceiling (doubling, full jitter). Default 25ms.
    pub backoff: Option<DurationValue>,
    /// The largest backoff ceiling. Default 250ms.
    pub max_backoff: Option<DurationValue>,
    /// Required to retry `POST`, `PATCH` or every method: the upstream must tolerate a request twice.
    pub non_idempotent: Option<bool>,
}

/// One entry of `retries.on`: a failure name or a status.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RetryConditionExt {
    /// An upstream status.
    Status(u16),
    /// `connect_error`, `reset`, `timeout`.
    Name(String),
}

/// `retries.methods`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RetryMethodsExt {
    /// `idempotent` or `all`.
    Named(String),
    /// These methods.
    List(Vec<String>),
}

/// `retries.budget`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BudgetExt {
    /// `20%`.
    Ratio(String),
    /// With the minimum and the window.
    Full {
        /// `20%`.
        ratio: String,
        /// Retries always allowed per window. Default 10.
        min: Option<u32>,
        /// The sliding window. Default 10s.
        window: Option<DurationValue>,
    },
}

/// `upstreams.<name>.health`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthExt {
    /// The path checked with `GET`, under the upstream's base path.
    pub path: String,
    /// Default 5s.
    pub interval: Option<DurationValue>,
    /// Default 1s.
    pub timeout: Option<DurationValue>,
    /// Default 2.
    pub unhealthy_after: Option<u32>,
    /// Default 2.
    pub healthy_after: Option<u32>,
    /// Statuses that pass: `200-399` (default), `200`, `2XX`.
    pub expect: Option<StatusRangeExt>,
}

/// A status or a range of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusRangeExt {
    /// One status.
    Status(u16),
    /// `200-399` or `2XX`.
    Range(String),
}

/// `upstreams.<name>.eject`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EjectExt {
    /// Default 5.
    pub consecutive_failures: Option<u32>,
    /// Default 10s.
    pub base_time: Option<DurationValue>,
    /// Default 300s.
    pub max_time: Option<DurationValue>,
    /// Default 50.
    pub max_percent: Option<u32>,
}

/// One side of `target.split`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSideExt {
    /// A named upstream.
    pub upstream: String,
    /// Its share.
    pub weight: u32,
}

/// `target:`: exactly one kind of target (`upstream`, `mock`, `function`, `store`), with its settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetExt {
    /// Proxy to this named upstream.
    pub upstream: Option<String>,
    /// Proxy to one of these upstreams by weight (a canary, blue-green).
    pub split: Option<Vec<SplitSideExt>>,
    /// Split targets: the request value that keeps one caller on one side (`header.X-User-Id`).
    pub sticky: Option<String>,
    /// Rewrite of the upstream path; `{param}` placeholders. Default: the operation's own path.
    pub path: Option<String>,
    /// Answer with a fixed response instead.
    pub mock: Option<MockExt>,
    /// Read or write items of this named store (with `table`, `action`, `key`, `filter`, `id_field`).
    pub store: Option<String>,
    /// Store targets: the table.
    pub table: Option<String>,
    /// Store targets: `get`, `put`, `merge`, `delete`, `list` or `create`.
    pub action: Option<String>,
    /// Store targets: the item's key, a template of path parameters (`{path.petId}`); not for `list`, `create`.
    pub key: Option<String>,
    /// Store targets, `list`: query parameters that filter by equality on the top-level field of the same name.
    pub filter: Option<Vec<String>>,
    /// Store targets, `create`: the top-level field the new id is written to. Default `id`.
    pub id_field: Option<String>,
    /// Call this function of the `functions` crate (`pets::age`).
    pub function: Option<String>,
    /// How long a function may take to answer (`504` beyond). Default 30s.
    pub timeout: Option<DurationValue>,
}

/// `target.mock:`: a fixed response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockExt {
    /// Status code. Default 200.
    #[serde(default = "default_status")]
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// The body: a string is sent as is, any other value as JSON.
    pub body: Option<serde_json::Value>,
    /// `Content-Type`. Default: `application/json` for a JSON body, `text/plain; charset=utf-8` for a string.
    pub content_type: Option<String>,
}

fn default_status() -> u16 {
    200
}

/// A duration written as `250ms`, `10s`, `5m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationValue(pub Duration);

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = written_text(deserializer)?;
        parse_duration(&text)
            .map(DurationValue)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a duration such as `250ms`, `10s` or `5m`, refusing zero and bare numbers (whose unit would be a guess).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration `{text}`: write a number and a unit, like `250ms`, `10s` or `5m`");
    if text.trim().chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let d = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    if d.is_zero() {
        return Err(format!("invalid duration `{text}`: must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("0s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 * 1024 * 1024));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("512B"), Ok(512));
        assert!(parse_size("1024").is_err());
        assert!(parse_size("lots").is_err());
    }
}
