//! Step 3 of the pipeline: the gateway's intermediate representation.
//!
//! Plain owned data, with no `openapiv3` types: everything emit needs and nothing it must look up elsewhere.
//! Built by [`crate::lower`] from a validated spec; read by [`crate::emit`].

use std::time::Duration;

/// One API: a whole gateway when its spec is compiled alone, one module of a gateway crate otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// `x-gateway.name` or the file stem: the crate is `<name>-gateway` when the spec is compiled alone.
    pub name: String,
    /// `x-gateway.gateway`: the gateway the API is compiled into, with every other spec naming it.
    pub gateway: Option<String>,
    /// `x-gateway.base_path`: the prefix of every route (`/v1`); empty: none.
    pub base_path: String,
    /// The spec file as given to the generator (shown in headers and `--version`).
    pub spec_file: String,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// Upstreams, named ones first in spec order, then implicit ones from `servers`.
    pub upstreams: Vec<Upstream>,
    /// Operations served, ordered by path then method (the spec's maps are read sorted), so output is deterministic.
    pub operations: Vec<Operation>,
    /// String enums used by parameters, sorted by name.
    pub enums: Vec<EnumType>,
    /// API-wide response cache sizes.
    pub cache: CacheSettings,
    /// The API-wide token bucket.
    pub throttle: Option<Throttle>,
    /// Usage plans, in spec order.
    pub usage_plans: Vec<UsagePlan>,
    /// Public host names (lower case, optionally with a port); empty: any host.
    pub hosts: Vec<String>,
    /// Top-level renderings of gateway responses, in spec order.
    pub responses: Vec<GatewayResponse>,
    /// Converted JSON Schemas (Draft 4 text), each distinct one once; referred to by index.
    pub schemas: Vec<String>,
    /// jq filters of body transforms, each distinct one once; referred to by index.
    pub filters: Vec<String>,
    /// The security schemes operations use, in order of first use; requirements refer to them by index.
    pub schemes: Vec<Scheme>,
    /// The API-wide CORS policy.
    pub cors: Option<Cors>,
    /// Deployment stages, in spec order.
    pub stages: Vec<Stage>,
    /// The stage served without `--stage` (index into `stages`).
    pub default_stage: Option<usize>,
    /// The SHA-256 of the spec file's text, hex.
    pub spec_sha256: String,
    /// The published spec (compact JSON), unless `publish_spec: false`.
    pub published: Option<String>,
    /// Stores, in spec order, each with the tables its targets name.
    pub stores: Vec<Store>,
    /// State shared with other replicas through Redis.
    pub shared: Option<Shared>,
    /// The user's crate that function targets call, when any operation has one.
    pub functions: Option<FunctionsCrate>,
    /// Rust types generated from the schemas function operations use (each component schema once), sorted by name.
    pub types: Vec<TypeDef>,
}

/// A store (`x-gateway.stores.<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    /// Its name.
    pub name: String,
    /// The database it keeps its items in.
    pub database: StoreDatabase,
    /// The tables its targets name, in order of first use.
    pub tables: Vec<StoreTable>,
}

/// The database of a store: `sqlite` or `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreDatabase {
    /// A SQLite file.
    Sqlite {
        /// The file, as written.
        path: String,
        /// `synchronous: normal` (else full).
        normal_sync: bool,
    },
    /// A PostgreSQL database.
    Postgres {
        /// Its URL, as written (checked to parse).
        url: String,
    },
}

/// A table of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTable {
    /// Its name.
    pub name: String,
    /// Fields list targets filter on, in order of first use.
    pub indexes: Vec<String>,
}

/// A store target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    /// Index into [`Api::stores`].
    pub store: usize,
    /// The table.
    pub table: String,
    /// What it does.
    pub action: StoreAction,
    /// The key template (empty for list and create).
    pub key: Vec<KeyPart>,
    /// List filters.
    pub filters: Vec<StoreFilter>,
    /// Create: the id field (empty otherwise).
    pub id_field: String,
}

/// What a store target does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    /// Read one item.
    Get,
    /// Create or replace one item.
    Put,
    /// Merge-patch one item.
    Merge,
    /// Remove one item.
    Delete,
    /// A page of items.
    List,
    /// A new item under a new id.
    Create,
}

impl StoreAction {
    /// Every action with its name in the spec.
    pub const ALL: [(&'static str, StoreAction); 6] = [
        ("get", StoreAction::Get),
        ("put", StoreAction::Put),
        ("merge", StoreAction::Merge),
        ("delete", StoreAction::Delete),
        ("list", StoreAction::List),
        ("create", StoreAction::Create),
    ];

    /// Whether it stores the request body (so the body is validated).
    pub fn writes_body(self) -> bool {
        matches!(self, StoreAction::Put | StoreAction::Merge | StoreAction::Create)
    }

    /// Whether it addresses one item by key.
    pub fn keyed(self) -> bool {
        !matches!(self, StoreAction::List | StoreAction::Create)
    }
}

/// A piece of a store key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// Literal text.
    Literal(String),
    /// Path parameter by template index.
    Param(usize),
}

/// A list filter: a query parameter and the JSON type its value is compared as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFilter {
    /// The query parameter (and field) name.
    pub query: String,
    /// `String`, `Integer`, `Number` or `Boolean` (the runtime's `StoreFilterKind` variant).
    pub kind: &'static str,
}

/// `x-gateway.functions`: the user's crate of functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionsCrate {
    /// Its package name (`petstore-functions`).
    pub package: String,
    /// Its directory, relative to the workspace root (`functions/petstore`).
    pub path: String,
}

/// A function target: the user's function, and the typed request and response the generator makes for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    /// The function's path in the functions crate (`pets::age`), each segment a Rust identifier.
    pub path: String,
    /// Time allowed to answer.
    pub timeout: std::time::Duration,
    /// The request type (`GetPetAgeRequest`).
    pub request: String,
    /// The response enum (`GetPetAgeResponse`).
    pub response: String,
    /// The glue function in the gateway crate (`get_pet_age`).
    pub glue: String,
    /// The request body, when the operation declares one.
    pub body: Option<FunctionBody>,
    /// The response variants, in the spec's order.
    pub variants: Vec<ResponseVariant>,
}

/// A function's request body.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionBody {
    /// Its Rust type.
    pub ty: RustType,
    /// `requestBody.required`: without it the field is an `Option`.
    pub required: bool,
    /// How it is read.
    pub media: Payload,
}

/// One variant of a function's response enum: a declared status.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseVariant {
    /// Variant name (`Ok`, `NotFound`, `Default`).
    pub name: String,
    /// The status it answers with.
    pub status: VariantStatus,
    /// Its body.
    pub payload: Payload,
    /// The body's `Content-Type` (the declared media type); empty without a body.
    pub content_type: String,
    /// The response's description, first line.
    pub doc: Option<String>,
}

/// The status of a response variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariantStatus {
    /// Exactly this status.
    Code(u16),
    /// A range (`4XX`): the first digit; the variant carries the status.
    Range(u8),
    /// `default`: the variant carries the status.
    Default,
}

/// A request or response body of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// No body.
    Empty,
    /// JSON of this type.
    Json(RustType),
    /// Text (`String`).
    Text,
    /// Bytes.
    Bytes,
}

/// A Rust type of a generated field, body or alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustType {
    /// `bool`.
    Bool,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `String`.
    String,
    /// Any JSON (`serde_json::Value`).
    Value,
    /// A generated type, by name.
    Named(String),
    /// `Vec<T>`.
    Vec(Box<RustType>),
    /// A JSON object with values of one type (`BTreeMap<String, T>`).
    Map(Box<RustType>),
    /// `Option<T>` (`nullable`).
    Option(Box<RustType>),
    /// `Box<T>` (a type that contains itself).
    Boxed(Box<RustType>),
}

/// A generated type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDef {
    /// Rust name.
    pub name: String,
    /// The schema's description or title, first line.
    pub doc: Option<String>,
    /// Where it comes from (`#/components/schemas/Pet`, or the operation's body), for its doc comment.
    pub origin: String,
    /// What it is.
    pub kind: TypeDefKind,
}

/// The shape of a generated type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeDefKind {
    /// An object with properties.
    Struct(Vec<FieldDef>),
    /// A string enum: (Rust variant, wire value).
    Enum(Vec<(String, String)>),
    /// `oneOf`/`anyOf`: the first variant that parses (serde's `untagged`).
    Untagged(Vec<(String, RustType)>),
    /// Another type under this name (`type Name = T`).
    Alias(RustType),
}

/// A field of a generated struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// Rust name.
    pub name: String,
    /// The property name on the wire.
    pub wire: String,
    /// Its type (`Option` when not required or nullable).
    pub ty: RustType,
    /// Whether the property is required (an absent optional one is skipped when serialized).
    pub required: bool,
    /// The property's description, first line.
    pub doc: Option<String>,
}

/// A deployment stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Its name.
    pub name: String,
    /// Variables, in spec order.
    pub variables: Vec<(String, String)>,
    /// Route prefix; empty: none.
    pub base_path: String,
    /// Whether the response cache runs.
    pub cache_enabled: bool,
    /// Replacement for the API-wide bucket.
    pub throttle: Option<Throttle>,
    /// Replacement for the origins of every CORS policy.
    pub cors_origins: Option<Vec<Origin>>,
    /// Upstream settings the stage changes.
    pub upstreams: Vec<StageUpstream>,
}

/// What a stage changes of one upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct StageUpstream {
    /// Index into `Api::upstreams`.
    pub upstream: usize,
    /// Its URLs in the stage (empty: unchanged).
    pub urls: Vec<String>,
    /// Its timeout in the stage.
    pub timeout: Option<std::time::Duration>,
    /// Its connect timeout in the stage.
    pub connect_timeout: Option<std::time::Duration>,
}

/// A security scheme the gateway checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheme {
    /// Its name under `components.securitySchemes`.
    pub name: String,
    /// How its credentials are checked.
    pub kind: SchemeKind,
}

/// How a scheme's credentials are checked.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemeKind {
    /// An API key from the key file.
    ApiKey(ApiKeyScheme),
    /// A JWT bearer token.
    Jwt(Jwt),
    /// An external authorizer.
    Authorizer(Authorizer),
    /// Not verified by the gateway: the credential must be presented, and is forwarded.
    Presented(Presented),
    /// A client certificate verified at the TLS handshake (`type: mutualTLS`, or `x-gateway: { mtls: required }`).
    MutualTls,
}

/// A scheme the upstream verifies: `Authorization: <auth_scheme> <credentials>` must be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The HTTP authentication scheme (`Bearer`, `Basic`, …).
    pub auth_scheme: String,
    /// The spec says `upstream_verifies: true`.
    pub acknowledged: bool,
}

/// A JWT scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwt {
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Accepted algorithms, by their runtime variant name (`Rs256`).
    pub algorithms: Vec<&'static str>,
    /// Where keys come from.
    pub keys: JwtKeys,
    /// Allowed clock skew.
    pub leeway: Duration,
    /// Keep `Authorization` upstream.
    pub forward_authorization: bool,
    /// `(header, claim)` pairs.
    pub claims_headers: Vec<(String, String)>,
}

/// Where a JWT scheme's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKeys {
    /// A built-in JWKS (compact JSON).
    Jwks(String),
    /// A JWKS URL.
    JwksUrl(String),
    /// An OpenID Connect discovery URL.
    Discovery(String),
    /// The environment variable of an HMAC secret.
    SecretEnv(String),
}

/// An external authorizer scheme.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorizer {
    /// Where the credential is presented.
    pub credential: ApiKeyScheme,
    /// Its upstream (index).
    pub upstream: usize,
    /// The path called.
    pub path: String,
    /// How long answers are reused per credential.
    pub cache_ttl: Duration,
    /// Headers copied from its 2xx answer (lower case).
    pub forward_headers: Vec<String>,
}

/// One scheme of a security requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The scheme (index into [`Api::schemes`]).
    pub scheme: usize,
    /// Scopes the credential must grant.
    pub scopes: Vec<String>,
}

/// How an operation's callers are checked, for the auth table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The gateway checks the requirements.
    Checked,
    /// `security: []` (or an empty requirement): public on purpose.
    Public,
    /// No `security` anywhere.
    Open,
}

/// `ip`: the client addresses an operation admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPolicy {
    /// Only callers in these blocks (`None`: everyone not denied).
    pub allow: Option<Vec<Cidr>>,
    /// Never callers in these blocks.
    pub deny: Vec<Cidr>,
}

/// An address block: `addr` with its first `prefix` bits significant (the rest zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The block's first address.
    pub addr: std::net::IpAddr,
    /// Significant bits: 0 to 32 (IPv4) or 128 (IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// `addr` with the bits after the prefix cleared.
    pub fn network(&self) -> std::net::IpAddr {
        match self.addr {
            std::net::IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                std::net::IpAddr::V4((u32::from(v4) & mask).into())
            }
            std::net::IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                std::net::IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

/// A CORS policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Admitted origins.
    pub allow_origins: Vec<Origin>,
    /// Allowed request headers (lower case).
    pub allow_headers: Vec<String>,
    /// Exposed response headers.
    pub expose_headers: Vec<String>,
    /// Credentials allowed.
    pub allow_credentials: bool,
    /// Preflight cache time.
    pub max_age: Option<Duration>,
}

/// An admitted origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `*`.
    Any,
    /// One origin.
    Exact(String),
    /// `prefix*suffix`.
    Wildcard(String, String),
}

/// An operation's request body policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Largest body, in bytes.
    pub max: u64,
    /// Whether bodies are checked.
    pub validate: bool,
    /// `requestBody.required`.
    pub required: bool,
    /// Declared media types.
    pub media: Vec<Media>,
}

impl Body {
    /// A body of at most `max` bytes, not validated.
    pub fn limit(max: u64) -> Self {
        Self {
            max,
            validate: false,
            required: false,
            media: Vec::new(),
        }
    }
}

/// A declared request media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Lower-case media range.
    pub range: String,
    /// Schema index, for JSON and form types with a schema.
    pub schema: Option<usize>,
    /// Form field coercions.
    pub form: Vec<FormField>,
}

/// A form field coerced before a schema check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// Its name.
    pub name: String,
    /// `String`, `Integer`, `Number` or `Boolean`.
    pub scalar: &'static str,
    /// Repeated: an array.
    pub list: bool,
}

/// A parameter checked against a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaParam {
    /// Its name (lower case for headers).
    pub name: String,
    /// Where it is.
    pub location: Location,
    /// `deepObject` with these coercions; `None`: a JSON document (`content`).
    pub deep_object: Option<Vec<FormField>>,
    /// Required.
    pub required: bool,
    /// Schema index.
    pub schema: usize,
}

/// An operation's transforms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Transform {
    /// Request header edits.
    pub request_headers: Edits,
    /// Request query edits.
    pub request_query: Edits,
    /// Request body filter index.
    pub request_body: Option<usize>,
    /// Response status map.
    pub response_status: Vec<(u16, u16)>,
    /// Response header edits.
    pub response_headers: Edits,
    /// Response body filter index.
    pub response_body: Option<usize>,
}

/// Header or query edits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Edits {
    /// Names removed.
    pub remove: Vec<String>,
    /// (from, to).
    pub rename: Vec<(String, String)>,
    /// (name, template).
    pub set: Vec<(String, Vec<TemplatePart>)>,
}

impl Edits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.set.is_empty()
    }
}

/// Checking upstream responses against the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponsesCheck {
    /// `enforce` (else `report`).
    pub enforce: bool,
    /// Sampled share in millionths.
    pub sample_ppm: u32,
    /// Largest body checked.
    pub max_body: u64,
    /// Declared responses, in spec order.
    pub responses: Vec<DeclaredResponse>,
}

/// One declared response: the statuses it covers and its (media range, schema index) pairs.
pub type DeclaredResponse = (StatusMatch, Vec<(String, Option<usize>)>);

/// Which statuses a declared response covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    /// One code.
    Code(u16),
    /// A class (`4XX` is 4).
    Class(u16),
    /// `default`.
    Default,
}

/// The spec's rendering of gateway responses of one kind (`x-gateway.responses.KIND`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayResponse {
    /// The kind (`THROTTLED`, …) or `DEFAULT_4XX`/`DEFAULT_5XX`, as written (validated).
    pub kind: String,
    /// The status; `None` keeps the kind's.
    pub status: Option<u16>,
    /// Extra headers (valid names), values as templates.
    pub headers: Vec<(String, Vec<TemplatePart>)>,
    /// `Content-Type` of the body.
    pub content_type: String,
    /// The body as a template; `None` keeps the default problem+json.
    pub body: Option<Vec<TemplatePart>>,
}

/// A piece of a template in the gateway's placeholder grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text.
    Literal(String),
    /// A value written as is.
    Value(Placeholder),
    /// A value inside a JSON string, written escaped.
    JsonString(Placeholder),
}

/// A value a template can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{error.title}`.
    ErrorTitle,
    /// `{error.detail}`.
    ErrorDetail,
    /// `{error.status}`.
    ErrorStatus,
    /// `{error.kind}`.
    ErrorKind,
    /// `{context.request_id}`.
    RequestId,
    /// `{context.operation_id}`.
    OperationId,
    /// `{context.client_ip}`.
    ClientIp,
    /// `{context.api_key.name}`.
    ApiKeyName,
    /// `{context.client_cert.subject}`: the verified client certificate's subject.
    ClientCertSubject,
    /// `{context.client_cert.sans}`: its subject alternative names, comma-separated.
    ClientCertSans,
    /// `{path.X}`: path parameter by template index.
    Path(usize),
    /// `{query.X}`.
    Query(String),
    /// `{header.X}` (lower case).
    Header(String),
    /// `{jwt.claims.X}`: a verified claim (a dotted path).
    Claim(String),
    /// `{stage.X}`: a stage variable.
    Stage(String),
}

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Requests a second.
    pub rate: u32,
    /// Bucket size.
    pub burst: u32,
    /// One bucket per client address.
    pub per_ip: bool,
}

/// A usage plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePlan {
    /// Its name.
    pub name: String,
    /// Per-key bucket.
    pub throttle: Option<Throttle>,
    /// Per-key quota: requests per period.
    pub quota: Option<(u64, QuotaPeriod)>,
}

/// A calendar period in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPeriod {
    /// Day.
    Day,
    /// Week, from Monday.
    Week,
    /// Month.
    Month,
}

/// An `apiKey` security scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyScheme {
    /// Its name under `components.securitySchemes`.
    pub scheme: String,
    /// `header`, `query` or `cookie`.
    pub location: KeyLocation,
    /// The header, parameter or cookie name.
    pub name: String,
    /// Forward the credential upstream (`forward_credentials: true`); by default it is removed.
    pub forward: bool,
}

/// Where an API key is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    /// Header.
    Header,
    /// Query parameter.
    Query,
    /// Cookie.
    Cookie,
}

/// `x-gateway.shared`: state the API's replicas share through Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The Redis URL.
    pub redis: String,
    /// Put before every key and channel.
    pub prefix: String,
    /// The longest a Redis call may take.
    pub timeout: std::time::Duration,
    /// `on_failure.limits: closed`.
    pub limits_closed: bool,
    /// `on_failure.quotas: closed`.
    pub quotas_closed: bool,
    /// `keys: redis`.
    pub keys: bool,
    /// How often keys are re-read.
    pub keys_refresh: std::time::Duration,
    /// `cache: redis`.
    pub cache: bool,
}

/// API-wide response cache sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Total bytes of cached responses.
    pub capacity: u64,
    /// Largest body stored.
    pub max_entry: u64,
}

/// How an operation's responses are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    /// Time to live (above zero).
    pub ttl: Duration,
    /// Key parts besides the operation and its path parameters, in the order written.
    pub key: Vec<CacheKeyPart>,
    /// Stored statuses.
    pub statuses: Vec<u16>,
    /// Cached methods (upper case).
    pub methods: Vec<String>,
    /// Who may force a refresh.
    pub invalidate: Invalidate,
}

/// A request value in a cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheKeyPart {
    /// Query parameter by name.
    Query(String),
    /// Header by lower-case name.
    Header(String),
    /// The caller's API key.
    ApiKey,
    /// A JWT claim.
    JwtClaim(String),
}

/// Who may force a cached response to be refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidate {
    /// Nobody.
    None,
    /// Any caller.
    Any,
    /// Callers with a valid API key.
    ApiKey,
}

/// An HTTP upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Its name (`default` for the spec's own first server).
    pub name: String,
    /// Absolute base URLs, one per server (at least one).
    pub urls: Vec<String>,
    /// Time until the response head, per try.
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// How a server is picked.
    pub balance: Balance,
    /// Retries of failed tries.
    pub retries: Option<Retries>,
    /// Active health checks.
    pub health: Option<Health>,
    /// Passive outlier detection.
    pub eject: Option<Eject>,
    /// The most requests in flight per process.
    pub max_connections: Option<u32>,
    /// The wait for one of `max_connections`.
    pub queue_timeout: Duration,
    /// Re-resolution period.
    pub resolve: Option<Duration>,
    /// TLS settings of its own.
    pub tls: Option<UpstreamTls>,
    /// HTTP/2 to its servers.
    pub http2: bool,
}

/// An upstream's own TLS settings (paths as written, read by the gateway at start-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The CA file trusted instead of the system's roots.
    pub ca_file: Option<String>,
    /// The client certificate and key files.
    pub client: Option<(String, String)>,
}

impl Upstream {
    /// One server at `url` with default settings.
    pub fn plain(name: String, url: String) -> Self {
        Self {
            name,
            urls: vec![url],
            timeout: crate::validate::DEFAULT_TIMEOUT,
            connect_timeout: crate::validate::DEFAULT_CONNECT_TIMEOUT,
            balance: Balance::RoundRobin,
            retries: None,
            health: None,
            eject: None,
            max_connections: None,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            resolve: None,
            tls: None,
            http2: false,
        }
    }
}

/// The runtime's default `queue_timeout` (generated code leaves defaults out).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_millis(100);

/// How a request picks a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// Power of two choices.
    LeastRequests,
    /// Rendezvous hashing of a request value.
    Hash(Placeholder),
}

/// `retries`.
#[derive(Debug, Clone, PartialEq)]
pub struct Retries {
    /// Retries after the first try.
    pub attempts: u32,
    /// Connect errors retried.
    pub connect_error: bool,
    /// Resets retried.
    pub reset: bool,
    /// Timeouts retried.
    pub timeout: bool,
    /// Statuses retried.
    pub statuses: Vec<u16>,
    /// Methods retried.
    pub methods: RetryMethods,
    /// Budget ratio (0..=1).
    pub budget_ratio: f64,
    /// Retries always allowed per window.
    pub budget_min: u32,
    /// The budget's window.
    pub budget_window: Duration,
    /// First backoff ceiling.
    pub backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
}

/// Which methods are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryMethods {
    /// RFC 9110's idempotent methods.
    Idempotent,
    /// Every method.
    All,
    /// These (upper case).
    Only(Vec<String>),
}

/// `health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Path checked.
    pub path: String,
    /// Period.
    pub interval: Duration,
    /// Per check.
    pub timeout: Duration,
    /// Failures in a row to go out.
    pub unhealthy_after: u32,
    /// Passes in a row to come back.
    pub healthy_after: u32,
    /// Passing statuses, inclusive.
    pub expect: (u16, u16),
}

/// `eject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eject {
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// First ejection's length.
    pub base_time: Duration,
    /// Longest ejection.
    pub max_time: Duration,
    /// Most servers out, in percent.
    pub max_percent: u8,
}

/// One operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// `operationId`, or one derived from method and path.
    pub id: String,
    /// Upper-case method.
    pub method: String,
    /// The path template as written.
    pub template: String,
    /// The router's path (`/pets/{p0}`).
    pub route: String,
    /// Path parameter names in template order.
    pub path_params: Vec<String>,
    /// Per path parameter, literal text after it in its segment (`.json` in `{Sid}.json`), checked at run time.
    pub path_suffixes: Vec<String>,
    /// First line of the summary or description, for docs.
    pub summary: Option<String>,
    /// The typed parameters; `None` when there is nothing to check.
    pub params: Option<ParamStruct>,
    /// Later operations this one's route also serves (same requests, same gateway behaviour), with the parameter
    /// checks of theirs that accept more; `None`: it serves only itself.
    pub merged: Option<Merged>,
    /// Response caching, when on.
    pub cache: Option<CachePolicy>,
    /// Security requirements: alternatives, each a set of schemes that must all be satisfied; empty: open.
    pub security: Vec<Vec<Requirement>>,
    /// How callers are checked (for the auth table).
    pub access: Access,
    /// The operation's CORS policy; `None`: off.
    pub cors: Option<Cors>,
    /// The client addresses it admits.
    pub ip: Option<IpPolicy>,
    /// Response compression and request decompression, when on.
    pub compression: Option<Compression>,
    /// Whether WebSocket upgrades pass through to the upstream.
    pub websocket: bool,
    /// Plans whose keys may call it (indexes into [`Api::usage_plans`]); empty: all.
    pub plans: Vec<usize>,
    /// The operation's own token bucket.
    pub throttle: Option<Throttle>,
    /// Renderings of gateway responses set on the operation or its path item (the operation's win, kind by kind).
    pub responses: Vec<GatewayResponse>,
    /// The request body policy.
    pub body: Body,
    /// Schema-checked parameters.
    pub schema_params: Vec<SchemaParam>,
    /// Transforms, when any.
    pub transform: Option<Transform>,
    /// Upstream response checks, when on.
    pub responses_check: Option<ResponsesCheck>,
    /// Where requests go.
    pub target: Target,
}

/// An operation's compression settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    /// Smallest response body compressed.
    pub min_size: u64,
    /// Whether compressed request bodies are decompressed.
    pub decompress_requests: bool,
}

/// The operations one route serves besides its own: templates of one shape (differing only in parameter names)
/// that would do the same at the gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// Their `operationId`s, in document order.
    pub ids: Vec<String>,
    /// Their parameter structs that check differently from the operation's own (`params`), each once, with the
    /// `operationId` it is declared by: a request passes when it passes the operation's own checks or any of these.
    /// Empty: their checks are the operation's.
    pub alternatives: Vec<(String, ParamStruct)>,
    /// The generated function accepting what any of those checks accepts, when there are alternatives.
    pub check: String,
}

/// The generated struct holding an operation's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamStruct {
    /// Rust type name (`GetPetParams`).
    pub name: String,
    /// Fields in declaration order.
    pub fields: Vec<Param>,
    /// Parameters forwarded without a check (object-valued, `content`-typed), by `in` and name, for docs.
    pub unchecked: Vec<String>,
}

/// One typed parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name as declared.
    pub name: String,
    /// Rust field name.
    pub field: String,
    /// Where it is read from.
    pub location: Location,
    /// Its type.
    pub ty: ParamType,
    /// Whether a request without it is refused.
    pub required: bool,
    /// Value used when absent (scalars only).
    pub default: Option<Literal>,
    /// How array items are separated.
    pub list_style: ListStyle,
    /// First line of the description.
    pub doc: Option<String>,
}

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Path parameter at this index of the template.
    Path(usize),
    /// Query string.
    Query,
    /// Header.
    Header,
    /// Cookie.
    Cookie,
}

impl Location {
    /// The OpenAPI name of the location (`path`, `query`, `header`, `cookie`).
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Path(_) => "path",
            Location::Query => "query",
            Location::Header => "header",
            Location::Cookie => "cookie",
        }
    }
}

/// A parameter's Rust type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    /// One value.
    Scalar(Scalar),
    /// An array of values.
    List(Scalar),
}

/// Scalar parameter types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    /// `integer`, `format: int32`.
    I32,
    /// `integer` (int64 or no format).
    I64,
    /// `number`, `format: float`.
    F32,
    /// `number`.
    F64,
    /// `boolean`.
    Bool,
    /// `string` (any format other than uuid), or a schema with no usable type.
    String,
    /// `string`, `format: uuid`.
    Uuid,
    /// A string enum: the name of a generated type in [`Api::enums`].
    Enum(String),
}

/// How array items are separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStyle {
    /// Repeated key (`form`, explode).
    Repeated,
    /// Comma-separated.
    Comma,
    /// Space-separated.
    Space,
    /// Pipe-separated.
    Pipe,
}

/// A default value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Integer.
    Int(i64),
    /// Number.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// String.
    Str(String),
    /// Enum variant (Rust name).
    Variant(String),
}

/// A generated string enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumType {
    /// Rust type name.
    pub name: String,
    /// (Rust variant name, wire value), in spec order.
    pub variants: Vec<(String, String)>,
}

/// Where an operation's requests go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Reverse proxy.
    Upstream {
        /// Index into [`Api::upstreams`].
        upstream: usize,
        /// The rewritten path after the upstream's base path.
        path: Vec<PathPart>,
    },
    /// Reverse proxy to one of several upstreams by weight.
    Split {
        /// `(upstream index, weight)`.
        sides: Vec<(usize, u32)>,
        /// The request value that keeps a caller on one side.
        sticky: Option<Placeholder>,
        /// The rewritten path after the upstream's base path.
        path: Vec<PathPart>,
    },
    /// Fixed response.
    Mock(Mock),
    /// One call to a store.
    Store(StoreTarget),
    /// A Rust function of the user's.
    Function(Box<Function>),
}

/// A piece of an upstream path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPart {
    /// Literal text (already percent-encoded where needed).
    Literal(String),
    /// Path parameter by template index.
    Param(usize),
    /// A stage variable, by name.
    Stage(String),
}

/// A fixed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mock {
    /// Status.
    pub status: u16,
    /// Headers, in spec order.
    pub headers: Vec<(String, String)>,
    /// `Content-Type`, empty for none.
    pub content_type: String,
    /// Body text.
    pub body: String,
}
