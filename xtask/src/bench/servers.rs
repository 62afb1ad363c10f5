//! The processes of one scenario: the benchmark origin and the proxies in front of it, each on an ephemeral port
//! of 127.0.0.1, all stopped by their PIDs when the [`Stack`] drops.
//!
//! Every proxy does the same work for a request: `GET /inventory` in, `GET /api/inventory` to the origin over a
//! kept-alive connection, `X-Forwarded-For`/`-Proto`/`-Host` added, the client's `X-Request-Id` kept (or one made)
//! and sent to the origin and back, the origin's 200-byte JSON answer streamed back. For the gateway that is its
//! `getInventory` operation (no parameters, proxied to the spec's server URL, whose base path is `/api`); nginx and
//! haproxy get the same prefix rewrite and request-id handling in their configuration.
//!
//! The `cache` scenario's targets are `GET /pets/N`: the petstore gateway's cached `getPet` (to the origin's
//! `/v1/pets/N` on a miss) and nginx with `proxy_cache` on the same location. The `policies` scenario's targets are
//! the bench-only gateways of [`variants`](super::variants), with and without API keys and limits. The
//! `observability` scenario runs the petstore gateway a second time with its metrics and access log on.
//!
//! The `replicas` scenario runs [`REPLICAS`] replicas of `bench-policies` (limits in memory) and as many of
//! `bench-shared` (the same API, its limits in Redis), and the scenario's own redis-server, which the [`Stack`]
//! starts (on a free port, without persistence, in the scenario's directory) when a shared replica is asked for.
//!
//! The `tls` scenario's proxies are the petstore gateway with `--tls-cert`/`--tls-key` and nginx with `listen … ssl`
//! (TLS 1.2 and 1.3, HTTP/2 on), both serving one certificate made for the run ([`TLS_DIR`] of the scenario's
//! directory, a CA of its own) and proxying to the origin over plain HTTP as before.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::cert;
use crate::process::{Endpoint, Ready, Server, http_get};

use super::Bench;
use super::memory::Memory;
use super::variants;

/// The size of the origin's JSON answer.
pub const BODY_BYTES: usize = 200;
/// The gateway's operation with no parameters and no target, and what nginx and haproxy are asked for.
pub const PASSTHROUGH_PATH: &str = "/inventory";
/// What every proxy asks the origin for (the spec's server URL has the base path `/api`).
pub const ORIGIN_PATH: &str = "/api/inventory";
/// The gateway's `getPetPhoto`: an int64 and a string path parameter, then a rewrite to `/v1/photos/42/7.jpg`.
/// (Not `getPet`, `/pets/42`: that operation is cached, and a cache hit never reaches the origin.)
pub const TYPED_PATH: &str = "/pets/42/photos/7.jpg";
/// The cached URL of the single-URL cache targets: the petstore gateway's `getPet` (`ttl: 60s`).
pub const CACHED_PATH: &str = "/pets/1";
/// How many URLs the rotating cache targets cycle through: `/pets/1` … `/pets/50`.
pub const CACHED_URLS: u32 = 50;
/// The bench-only gateway's operation with an API key, the API-wide, operation and plan buckets and a quota.
pub const KEYED_PATH: &str = "/inventory";
/// The same gateway's open operation: only the API-wide bucket.
pub const OPEN_PATH: &str = "/open";
/// The no-policy gateway's proxied `PUT` with a JSON body.
pub const PLAIN_BODY_PATH: &str = "/body/7";
/// The policy gateway's operation with every policy at once (the same body).
pub const FULL_STACK_PATH: &str = "/full/7";
/// The same body to the validated and transformed operation.
pub const CONTRACT_PATH: &str = "/contract/7";
/// The operation whose upstream responses are all checked.
pub const CHECKED_PATH: &str = "/checked";
/// The no-policy gateway's operation with one bucket (`rate` 1,000/s, `burst` 100), for the accuracy runs.
pub const LIMITED_PATH: &str = "/limited";

/// Replicas of each kind in the `replicas` scenario.
pub const REPLICAS: usize = 3;

/// The access log of the gateway with observability on, in the scenario's directory.
pub const ACCESS_LOG: &str = "access.log";

/// How long the gateway may drain on SIGTERM (there is nothing in flight by then).
const GATEWAY_DRAIN: &str = "5s";

/// Where the certificate of the TLS proxies is made, in the scenario's directory.
pub const TLS_DIR: &str = "tls";
/// The name the TLS proxies' certificate is for: what the clients connect to.
const TLS_NAME: &str = "127.0.0.1";

/// A proxy to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// The petstore gateway.
    Gateway,
    Nginx,
    Haproxy,
    /// nginx with `proxy_cache` on `/pets/`.
    NginxCache,
    /// The bench-only gateway with API keys, throttles and a quota (none of which ever refuses).
    PolicyGateway,
    /// The same gateway without any of them (and with the accuracy operation).
    PlainGateway,
    /// The policies gateway with its verified-token cache off (`--token-cache off`).
    PolicyGatewayNoCache,
    /// The petstore gateway as a user runs it by default: metrics on (`--admin-listen 127.0.0.1:0`) and the access
    /// log on, to [`ACCESS_LOG`] in the scenario's directory.
    ObservedGateway,
    /// The lab gateway (`tests/specs/lab.yaml`): function targets, and a mock answering the same.
    LabGateway,
    /// The petstore gateway with its `default` upstream two servers (the origin twice), taken in turn.
    BalancedGateway,
    /// The petstore gateway serving HTTPS (`--tls-cert`), HTTP/2 by ALPN.
    TlsGateway,
    /// nginx serving HTTPS with the same certificate, HTTP/2 on.
    TlsNginx,
    /// Replica N (from 0) of the policies gateway, its limits in memory, with the same key file as the others.
    MemoryReplica(u8),
    /// Replica N (from 0) of the same API with its limits in the stack's Redis (`bench-shared`, `--redis`).
    SharedReplica(u8),
}

/// The names of the replicas, in notes.
const REPLICA_NAMES: [[&str; REPLICAS]; 2] = [
    [
        "gateway (in-memory limits, replica 1)",
        "gateway (in-memory limits, replica 2)",
        "gateway (in-memory limits, replica 3)",
    ],
    [
        "gateway (Redis limits, replica 1)",
        "gateway (Redis limits, replica 2)",
        "gateway (Redis limits, replica 3)",
    ],
];

/// The log files of the replicas, in the scenario's directory.
const REPLICA_LOGS: [[&str; REPLICAS]; 2] = [
    ["memory-replica-1.log", "memory-replica-2.log", "memory-replica-3.log"],
    ["shared-replica-1.log", "shared-replica-2.log", "shared-replica-3.log"],
];

/// The entry of `table` for replica `index` (the last one for an index past them: there are no more).
fn replica_entry(table: &[[&'static str; REPLICAS]; 2], shared: bool, index: u8) -> &'static str {
    table[usize::from(shared)][usize::from(index).min(REPLICAS - 1)]
}

impl Proxy {
    /// The name in notes.
    fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::NginxCache => "nginx (cache)",
            Self::PolicyGateway => "gateway (policies)",
            Self::PlainGateway => "gateway (no policies)",
            Self::PolicyGatewayNoCache => "gateway (policies, no token cache)",
            Self::ObservedGateway => "gateway (observability on)",
            Self::LabGateway => "gateway (functions)",
            Self::BalancedGateway => "gateway (two servers)",
            Self::TlsGateway => "gateway (TLS)",
            Self::TlsNginx => "nginx (TLS)",
            Self::MemoryReplica(i) => replica_entry(&REPLICA_NAMES, false, i),
            Self::SharedReplica(i) => replica_entry(&REPLICA_NAMES, true, i),
        }
    }

    /// The name of its log file in the scenario's directory, and the markers of a warning or error line in it.
    fn log(self) -> (&'static str, &'static [&'static str]) {
        const GATEWAY: &[&str] = &["WARN", "ERROR"];
        const NGINX: &[&str] = &["[warn]", "[error]", "[crit]", "[alert]", "[emerg]"];
        match self {
            Self::Gateway => ("gateway.log", GATEWAY),
            Self::Nginx | Self::NginxCache | Self::TlsNginx => ("nginx-error.log", NGINX),
            Self::Haproxy => ("haproxy.log", &["[WARNING]", "[ALERT]"]),
            Self::PolicyGateway => ("policy-gateway.log", GATEWAY),
            Self::PlainGateway => ("plain-gateway.log", GATEWAY),
            Self::PolicyGatewayNoCache => ("policy-gateway-no-cache.log", GATEWAY),
            Self::ObservedGateway => ("observed-gateway.log", GATEWAY),
            Self::LabGateway => ("lab-gateway.log", GATEWAY),
            Self::BalancedGateway => ("balanced-gateway.log", GATEWAY),
            Self::TlsGateway => ("tls-gateway.log", GATEWAY),
            Self::MemoryReplica(i) => (replica_entry(&REPLICA_LOGS, false, i), GATEWAY),
            Self::SharedReplica(i) => (replica_entry(&REPLICA_LOGS, true, i), GATEWAY),
        }
    }

    /// Whether it serves HTTPS.
    fn tls(self) -> bool {
        matches!(self, Self::TlsGateway | Self::TlsNginx)
    }
}

/// What a load is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The gateway, `GET /inventory`.
    Gateway,
    /// The gateway, `GET /pets/42/photos/7.jpg`: typed path parameters and a rewrite.
    GatewayTyped,
    Nginx,
    Haproxy,
    /// The origin itself, no proxy.
    Direct,
    /// The gateway's cache, one URL: `GET /pets/1`.
    GatewayHit,
    /// nginx's cache, the same URL.
    NginxHit,
    /// The gateway's cache, `/pets/1` … `/pets/50` in turn.
    GatewayHits,
    /// nginx's cache, the same URLs.
    NginxHits,
    /// The gateway without keys or limits, `GET /inventory`.
    Plain,
    /// The gateway with them, an open operation: the API-wide bucket only.
    ApiThrottle,
    /// The gateway with them, `GET /inventory` with a key: the key, API-wide, operation and plan buckets, quota.
    Keyed,
    /// The gateway without keys or limits, `GET /limited`: one operation bucket that refuses.
    Limited,
    /// The same gateway, `PUT /body/7` with a ~2 KiB JSON body, proxied as it is.
    PlainBody,
    /// The same gateway, `PUT /contract/7` with the same body: validated, header transforms, a jq body transform.
    Contract,
    /// The same gateway, `GET /checked`: every upstream response checked against its schema (`report`, sample 1).
    Checked,
    /// The policies gateway, `GET /jwt/rs256` with an RS256 token (verified, then cached).
    JwtRs256,
    /// The policies gateway, `PUT /full/7` with the key, an RS256 token and [`PlainBody`](Self::PlainBody)'s body:
    /// the key, the token, the API-wide, operation and plan buckets, the quota and body validation.
    FullStack,
    /// The same, `GET /jwt/es256` with an ES256 token.
    JwtEs256,
    /// `GET /jwt/rs256` on the policies gateway without the token cache: every request verifies the signature.
    JwtRs256Uncached,
    /// `GET /jwt/es256` likewise.
    JwtEs256Uncached,
    /// The petstore gateway with metrics and the access log on, `GET /inventory`.
    Observed,
    /// The same gateway's cache, one URL: `GET /pets/1`.
    ObservedHit,
    /// The lab gateway, `GET /things/1`: a function target (typed parameters in, a typed answer out as JSON).
    Function,
    /// The same gateway, `GET /mocked`: a mock target with the same answer.
    Mocked,
    /// The petstore gateway, `GET /inventory` to an upstream of two servers in turn.
    GatewayBalanced,
    /// The gateway over HTTPS, `GET /inventory` on kept-alive connections.
    GatewayTls,
    /// nginx over HTTPS, the same.
    NginxTls,
    /// The gateway over HTTPS with `Connection: close`: a new connection and a full handshake per request.
    GatewayHandshake,
    /// nginx over HTTPS, the same.
    NginxHandshake,
    /// The first in-memory replica, `GET /inventory` with a key: the key, API-wide, operation and plan buckets and
    /// the quota, in memory (the policies gateway's `key + limits`).
    MemoryLimits,
    /// The first shared replica, the same request: the same checks, in one Redis round trip.
    SharedLimits,
    /// The first in-memory replica, `GET /limited` with a key: an operation bucket that refuses.
    MemoryLimited,
    /// The first shared replica, the same.
    SharedLimited,
}

impl Target {
    /// The name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::GatewayTyped => "gateway typed",
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
            Self::Direct => "direct",
            Self::GatewayHit => "gateway hit",
            Self::NginxHit => "nginx hit",
            Self::GatewayHits => "gateway hits",
            Self::NginxHits => "nginx hits",
            Self::Plain => "no policies",
            Self::ApiThrottle => "API bucket",
            Self::Keyed => "key + limits",
            Self::Limited => "limited",
            Self::PlainBody => "body, plain",
            Self::Contract => "body, contract",
            Self::Checked => "responses checked",
            Self::JwtRs256 => "JWT RS256",
            Self::FullStack => "full stack",
            Self::JwtEs256 => "JWT ES256",
            Self::JwtRs256Uncached => "JWT RS256, no cache",
            Self::JwtEs256Uncached => "JWT ES256, no cache",
            Self::Observed => "gateway, observed",
            Self::Function => "function",
            Self::Mocked => "mock",
            Self::ObservedHit => "gateway hit, observed",
            Self::GatewayBalanced => "gateway, 2 servers",
            Self::GatewayTls => "gateway https",
            Self::NginxTls => "nginx https",
            Self::GatewayHandshake => "gateway handshakes",
            Self::NginxHandshake => "nginx handshakes",
            Self::MemoryLimits => "in-memory limits",
            Self::SharedLimits => "Redis limits",
            Self::MemoryLimited => "in-memory, limited",
            Self::SharedLimited => "Redis, limited",
        }
    }

    /// The path requested (the first of [`rotation`](Self::rotation) when there is one).
    pub fn path(self) -> &'static str {
        match self {
            Self::Gateway
            | Self::Nginx
            | Self::Haproxy
            | Self::Plain
            | Self::Observed
            | Self::GatewayBalanced
            | Self::GatewayTls
            | Self::NginxTls
            | Self::GatewayHandshake
            | Self::NginxHandshake => PASSTHROUGH_PATH,
            Self::GatewayTyped => TYPED_PATH,
            Self::Direct => ORIGIN_PATH,
            Self::GatewayHit | Self::NginxHit | Self::GatewayHits | Self::NginxHits | Self::ObservedHit => CACHED_PATH,
            Self::ApiThrottle => OPEN_PATH,
            Self::Keyed | Self::MemoryLimits | Self::SharedLimits => KEYED_PATH,
            Self::Limited | Self::MemoryLimited | Self::SharedLimited => LIMITED_PATH,
            Self::PlainBody => PLAIN_BODY_PATH,
            Self::FullStack => FULL_STACK_PATH,
            Self::Contract => CONTRACT_PATH,
            Self::Checked => CHECKED_PATH,
            Self::JwtRs256 | Self::JwtRs256Uncached => "/jwt/rs256",
            Self::JwtEs256 | Self::JwtEs256Uncached => "/jwt/es256",
            Self::Function => "/things/1",
            Self::Mocked => "/mocked",
        }
    }

    /// The method and body of every request, for the targets that send one (`None`: `GET` without a body).
    pub fn body(self) -> Option<(&'static str, String)> {
        match self {
            Self::PlainBody | Self::Contract | Self::FullStack => Some(("PUT", variants::request_body())),
            _ => None,
        }
    }

    /// The paths a load cycles through; empty for one path.
    pub fn rotation(self) -> Vec<String> {
        match self {
            Self::GatewayHits | Self::NginxHits => (1..=CACHED_URLS).map(|n| format!("/pets/{n}")).collect(),
            _ => Vec::new(),
        }
    }

    /// Every path it serves: [`rotation`](Self::rotation), or [`path`](Self::path).
    pub fn paths(self) -> Vec<String> {
        let rotation = self.rotation();
        if rotation.is_empty() {
            vec![self.path().to_owned()]
        } else {
            rotation
        }
    }

    /// Headers sent with every request.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Keyed | Self::MemoryLimits | Self::SharedLimits | Self::MemoryLimited | Self::SharedLimited => {
                &[(variants::KEY_HEADER, variants::API_KEY)]
            }
            Self::PlainBody | Self::Contract => &[("Content-Type", "application/json")],
            Self::JwtRs256 | Self::JwtRs256Uncached => &RS256_HEADERS[..],
            Self::FullStack => &FULL_STACK_HEADERS[..],
            Self::JwtEs256 | Self::JwtEs256Uncached => &ES256_HEADERS[..],
            Self::GatewayHandshake | Self::NginxHandshake => &[("Connection", "close")],
            _ => &[],
        }
    }

    /// The proxy that serves it; `None` for the origin.
    fn proxy(self) -> Option<Proxy> {
        match self {
            Self::Gateway | Self::GatewayTyped | Self::GatewayHit | Self::GatewayHits => Some(Proxy::Gateway),
            Self::Nginx => Some(Proxy::Nginx),
            Self::Haproxy => Some(Proxy::Haproxy),
            Self::Direct => None,
            Self::NginxHit | Self::NginxHits => Some(Proxy::NginxCache),
            Self::ApiThrottle | Self::Keyed | Self::JwtRs256 | Self::JwtEs256 | Self::FullStack => {
                Some(Proxy::PolicyGateway)
            }
            Self::JwtRs256Uncached | Self::JwtEs256Uncached => Some(Proxy::PolicyGatewayNoCache),
            Self::Plain | Self::Limited | Self::PlainBody | Self::Contract | Self::Checked => Some(Proxy::PlainGateway),
            Self::Observed | Self::ObservedHit => Some(Proxy::ObservedGateway),
            Self::Function | Self::Mocked => Some(Proxy::LabGateway),
            Self::GatewayBalanced => Some(Proxy::BalancedGateway),
            Self::GatewayTls | Self::GatewayHandshake => Some(Proxy::TlsGateway),
            Self::NginxTls | Self::NginxHandshake => Some(Proxy::TlsNginx),
            Self::MemoryLimits | Self::MemoryLimited => Some(Proxy::MemoryReplica(0)),
            Self::SharedLimits | Self::SharedLimited => Some(Proxy::SharedReplica(0)),
        }
    }
}

/// The headers of the JWT targets (their tokens are signed at run time).
static RS256_HEADERS: std::sync::LazyLock<[(&str, &str); 1]> =
    std::sync::LazyLock::new(|| [("Authorization", variants::RS256_BEARER.as_str())]);
/// The full stack's: the key, the RS256 token and the body's type.
static FULL_STACK_HEADERS: std::sync::LazyLock<[(&str, &str); 3]> = std::sync::LazyLock::new(|| {
    [
        (variants::KEY_HEADER, variants::API_KEY),
        ("Authorization", variants::RS256_BEARER.as_str()),
        ("Content-Type", "application/json"),
    ]
});
static ES256_HEADERS: std::sync::LazyLock<[(&str, &str); 1]> =
    std::sync::LazyLock::new(|| [("Authorization", variants::ES256_BEARER.as_str())]);

/// The origin and the proxies of one scenario, and the Redis of the shared replicas. Proxies are declared first so
/// that they stop first.
pub struct Stack {
    proxies: Vec<(Proxy, Server)>,
    redis: Option<Server>,
    origin: Server,
    dir: PathBuf,
}

impl Stack {
    /// Starts the origin (answering after `delay`) and `proxies` in front of it; configuration and logs go to
    /// `target/bench/<name>/`.
    pub fn start(bench: &Bench, name: &str, delay: Option<Duration>, proxies: &[Proxy]) -> anyhow::Result<Self> {
        let dir = bench.scratch.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if proxies.iter().any(|p| p.tls()) {
            cert::make(&dir.join(TLS_DIR), &[TLS_NAME.to_owned()])?;
        }
        let origin = start_origin(bench, &dir, delay)?;
        let mut stack = Self {
            proxies: Vec::new(),
            redis: None,
            origin,
            dir,
        };
        if proxies.iter().any(|p| matches!(p, Proxy::SharedReplica(_))) {
            stack.redis = Some(start_redis(bench, &stack.dir)?);
        }
        let redis_url = stack.redis.as_ref().map(|r| format!("redis://{}/0", r.addr));
        // Each push moves a running server into the stack, so a later failure stops it too.
        for &proxy in proxies {
            let (dir, origin) = (&stack.dir, stack.origin.addr);
            let server = match proxy {
                Proxy::Gateway => start_petstore_gateway(bench, dir, origin, false)?,
                Proxy::ObservedGateway => start_petstore_gateway(bench, dir, origin, true)?,
                Proxy::Nginx => start_nginx(bench, dir, origin, false, None)?,
                Proxy::NginxCache => start_nginx(bench, dir, origin, true, None)?,
                Proxy::TlsNginx => start_nginx(bench, dir, origin, false, Some(&tls_files(dir)))?,
                Proxy::TlsGateway => start_tls_gateway(bench, dir, origin)?,
                Proxy::Haproxy => start_haproxy(bench, dir, origin)?,
                Proxy::PolicyGateway => start_variant(bench, dir, origin, variants::Variant::Policies, true)?,
                Proxy::PolicyGatewayNoCache => start_variant(bench, dir, origin, variants::Variant::Policies, false)?,
                Proxy::PlainGateway => start_variant(bench, dir, origin, variants::Variant::Plain, true)?,
                Proxy::LabGateway => start_lab_gateway(bench, dir, origin)?,
                Proxy::BalancedGateway => start_balanced_gateway(bench, dir, origin)?,
                Proxy::MemoryReplica(_) => start_replica(bench, dir, origin, proxy, None)?,
                Proxy::SharedReplica(_) => start_replica(bench, dir, origin, proxy, redis_url.as_deref())?,
            };
            stack.proxies.push((proxy, server));
        }
        Ok(stack)
    }

    /// The server behind `target` (the origin for `direct`).
    pub fn server(&mut self, target: Target) -> anyhow::Result<&mut Server> {
        let Some(proxy) = target.proxy() else {
            return Ok(&mut self.origin);
        };
        self.proxies
            .iter_mut()
            .find(|(p, _)| *p == proxy)
            .map(|(_, server)| server)
            .with_context(|| format!("{} was not started", target.name()))
    }

    /// The server started for `proxy`.
    pub fn proxy(&mut self, proxy: Proxy) -> anyhow::Result<&mut Server> {
        self.proxies
            .iter_mut()
            .find(|(p, _)| *p == proxy)
            .map(|(_, server)| server)
            .with_context(|| format!("{} was not started", proxy.name()))
    }

    /// The stack's redis-server, when a shared replica was asked for.
    pub fn redis(&mut self) -> Option<&mut Server> {
        self.redis.as_mut()
    }

    /// The scenario's directory: configuration, logs, the observed gateway's access log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The URL a load for `target` is sent to.
    pub fn url(&mut self, target: Target) -> anyhow::Result<String> {
        let scheme = if target.proxy().is_some_and(Proxy::tls) {
            "https"
        } else {
            "http"
        };
        Ok(format!("{scheme}://{}{}", self.server(target)?.addr, target.path()))
    }

    /// Where smoke requests for `target` go: plain HTTP, or HTTPS trusting only the scenario's CA.
    pub fn endpoint(&mut self, target: Target) -> anyhow::Result<Endpoint> {
        let tls = target.proxy().is_some_and(Proxy::tls);
        let ca = tls_files(&self.dir).ca;
        let addr = self.server(target)?.addr;
        if tls {
            Endpoint::https(addr, &ca, TLS_NAME)
        } else {
            Ok(Endpoint::plain(addr))
        }
    }

    /// How many requests the origin has answered so far.
    pub fn origin_calls(&self) -> anyhow::Result<i64> {
        origin_calls(self.origin.addr)
    }

    /// Fails if the server behind `target` (or the origin) has exited.
    pub fn check_alive(&mut self, target: Target) -> anyhow::Result<()> {
        let server = self.server(target)?;
        if let Some(status) = server.exit_status() {
            bail!("{} exited ({status})", server.name());
        }
        if let Some(status) = self.origin.exit_status() {
            bail!("the origin exited ({status})");
        }
        Ok(())
    }

    /// The memory of the server behind `target`, now.
    pub fn memory(&mut self, target: Target) -> Option<Memory> {
        Memory::of(self.server(target).ok()?)
    }

    /// Sends two requests to each target and checks that each answers 200 with the origin's body, and that each
    /// request reached the origin: a proxy that forwards elsewhere, or answers from a cache, would make its figures
    /// meaningless.
    pub fn smoke_check(&mut self, targets: &[Target]) -> anyhow::Result<()> {
        let origin = self.origin.addr;
        let (status, response) = http_get(origin, ORIGIN_PATH)?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        if status != 200 || body.len() != BODY_BYTES {
            bail!(
                "the origin answered {status} with {} bytes, not 200 with {BODY_BYTES}",
                body.len()
            );
        }
        for &target in targets {
            let endpoint = self.endpoint(target)?;
            let before = origin_calls(origin)?;
            for _ in 0..2 {
                let sent = target.body();
                let method = sent.as_ref().map_or("GET", |(m, _)| *m);
                let (status, response) = endpoint.request(
                    method,
                    target.path(),
                    target.headers(),
                    sent.as_ref().map(|(_, b)| b.as_str()),
                )?;
                if status != 200 || !response.contains(&body) {
                    bail!(
                        "{} answered {method} {} with {status}, not the origin's 200 and body: {}",
                        target.name(),
                        target.path(),
                        response.chars().take(300).collect::<String>()
                    );
                }
            }
            let reached = origin_calls(origin)? - before;
            if reached != 2 {
                bail!(
                    "{} answered 2 requests for GET {} but the origin saw {reached}: a cache, or another origin?",
                    target.name(),
                    target.path()
                );
            }
        }
        Ok(())
    }

    /// Warnings and errors the proxies and the origin logged, one line per log that has any (with the first of them).
    pub fn log_findings(&self) -> Vec<String> {
        let proxies = self.proxies.iter().map(|(p, _)| {
            let (file, markers) = p.log();
            (p.name(), file, markers)
        });
        let origin = ("origin", "origin.log", &["error", "panicked"][..]);
        // Redis logs its start and stop at its warning level too (`#`): only what says it is a warning or an error.
        let markers = &["WARNING", "Error", "error"][..];
        let redis = self.redis.as_ref().map(|_| ("redis-server", REDIS_LOG, markers));
        let mut findings = Vec::new();
        for (name, file, markers) in proxies.chain([origin]).chain(redis) {
            let Ok(text) = fs::read_to_string(self.dir.join(file)) else {
                continue;
            };
            let bad: Vec<&str> = text.lines().filter(|l| markers.iter().any(|m| l.contains(m))).collect();
            if let Some(first) = bad.first() {
                findings.push(format!(
                    "{name} logged {} warning/error line(s) ({}); first: {}",
                    bad.len(),
                    self.dir.join(file).display(),
                    first.chars().take(200).collect::<String>()
                ));
            }
        }
        findings
    }
}

/// How many requests the origin has answered (its `/__calls`).
fn origin_calls(origin: SocketAddr) -> anyhow::Result<i64> {
    let (status, response) = http_get(origin, "/__calls")?;
    let count = response.split_once("\r\n\r\n").map(|(_, b)| b.trim().parse::<i64>());
    match (status, count) {
        (200, Some(Ok(n))) => Ok(n),
        _ => bail!("the origin's /__calls answered {status}: {response:?}"),
    }
}

/// A free port of 127.0.0.1, for servers that cannot report the one they picked. The port is released before
/// the server binds it; nothing else on a benchmark machine should take it in between.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The certificate files of the TLS proxies in the scenario's directory `dir`.
pub fn tls_files(dir: &Path) -> cert::Files {
    cert::Files::in_dir(&dir.join(TLS_DIR))
}

/// A file for a server's stderr (and stdout).
pub(super) fn log_file(dir: &Path, name: &str) -> anyhow::Result<Stdio> {
    let path = dir.join(name);
    Ok(fs::File::create(&path)
        .with_context(|| format!("creating {}", path.display()))?
        .into())
}

/// The benchmark origin (`test-upstream --fixed-json`), answering after `delay`.
pub(super) fn start_origin(bench: &Bench, dir: &Path, delay: Option<Duration>) -> anyhow::Result<Server> {
    let mut command = bench.placement.backend(&bench.bin.join("test-upstream"));
    command.args([
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--fixed-json".to_owned(),
        BODY_BYTES.to_string(),
        "--threads".to_owned(),
        bench.placement.origin_threads.to_string(),
    ]);
    if let Some(delay) = delay {
        command.args(["--delay".to_owned(), format!("{}us", delay.as_micros())]);
    }
    command.stderr(log_file(dir, "origin.log")?);
    Server::spawn(command, "origin (test-upstream)", Ready::PrintsAddress)
}

/// The petstore gateway, its three upstreams pointed at the origin; `observed`: with metrics and the access log on
/// ([`Proxy::ObservedGateway`]), otherwise both off.
fn start_petstore_gateway(bench: &Bench, dir: &Path, origin: SocketAddr, observed: bool) -> anyhow::Result<Server> {
    let upstreams = [
        format!("default=http://{origin}/api"),
        format!("pets=http://{origin}"),
        format!("reports=http://{origin}/reporting"),
    ];
    let (observability, log) = if observed {
        let access_log = dir.join(ACCESS_LOG);
        (Observability::On { access_log }, Proxy::ObservedGateway.log().0)
    } else {
        (Observability::Off, Proxy::Gateway.log().0)
    };
    start_gateway(bench, dir, "petstore-gateway", &upstreams, &[], &observability, log)
}

/// The petstore gateway with `default` two servers, both the origin: against [`start_petstore_gateway`]'s one, what
/// differs is the balancing alone (the pick, the in-flight count), not the backends.
fn start_balanced_gateway(bench: &Bench, dir: &Path, origin: SocketAddr) -> anyhow::Result<Server> {
    let upstreams = [
        format!("default=http://{origin}/api,http://{origin}/api"),
        format!("pets=http://{origin}"),
        format!("reports=http://{origin}/reporting"),
    ];
    let log = Proxy::BalancedGateway.log().0;
    start_gateway(
        bench,
        dir,
        "petstore-gateway",
        &upstreams,
        &[],
        &Observability::Off,
        log,
    )
}

/// The petstore gateway as [`start_petstore_gateway`] starts it, serving HTTPS with the scenario's certificate.
fn start_tls_gateway(bench: &Bench, dir: &Path, origin: SocketAddr) -> anyhow::Result<Server> {
    let upstreams = [
        format!("default=http://{origin}/api"),
        format!("pets=http://{origin}"),
        format!("reports=http://{origin}/reporting"),
    ];
    let log = Proxy::TlsGateway.log().0;
    let extra = tls_files(dir).gateway_flags();
    start_gateway(
        bench,
        dir,
        "petstore-gateway",
        &upstreams,
        &extra,
        &Observability::Off,
        log,
    )
}

/// The lab gateway, its `echo` upstream the origin (which its measured routes never call), with a key file for its
/// keyed operation (which they do not use either) and its store in the scenario's directory.
fn start_lab_gateway(bench: &Bench, dir: &Path, origin: SocketAddr) -> anyhow::Result<Server> {
    let keys = dir.join("lab-keys.yaml");
    fs::write(&keys, "- { key: bench-lab-key-0123456789, name: bench }\n")
        .with_context(|| format!("writing {}", keys.display()))?;
    // Its store in the scenario's directory, not under the working directory (the workspace root).
    let extra = [
        "--api-keys".to_owned(),
        keys.display().to_string(),
        "--store".to_owned(),
        format!("lab={}", dir.join("lab.db").display()),
    ];
    let upstreams = [format!("echo=http://{origin}")];
    let log = Proxy::LabGateway.log().0;
    start_gateway(bench, dir, "lab-gateway", &upstreams, &extra, &Observability::Off, log)
}

/// A gateway's metrics and access log.
pub(super) enum Observability {
    /// Both off (`--access-log off --admin-listen off`), like nginx's `access_log off` in these runs: the comparison
    /// is of proxying; what logging and metrics cost is the `observability` scenario's measurement.
    Off,
    /// As a user runs it by default: the admin listener (and so the metrics) on an ephemeral port of 127.0.0.1,
    /// which the gateway prints; the access log to a file, as in production.
    On { access_log: PathBuf },
}

/// Redis's log, in the scenario's directory.
const REDIS_LOG: &str = "redis.log";

/// The scenario's own redis-server: on a free port of 127.0.0.1, nothing saved (`--save "" --appendonly no`), its
/// working directory the scenario's, its log [`REDIS_LOG`].
fn start_redis(bench: &Bench, dir: &Path) -> anyhow::Result<Server> {
    let listen = free_port()?;
    let mut command = bench.placement.backend(bench.tools.path("redis-server")?);
    command
        .args(["--bind", "127.0.0.1", "--port", &listen.port().to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(REDIS_LOG))
        .stdout(log_file(dir, "redis-stdout.log")?)
        .stderr(log_file(dir, "redis-stderr.log")?);
    Server::spawn(command, "redis-server", Ready::Accepts(listen))
}

/// A replica of the `replicas` scenario: `bench-policies` ([`Proxy::MemoryReplica`]) or `bench-shared` with
/// `--redis redis_url` ([`Proxy::SharedReplica`]), with the policies gateway's key file.
fn start_replica(
    bench: &Bench,
    dir: &Path,
    origin: SocketAddr,
    proxy: Proxy,
    redis_url: Option<&str>,
) -> anyhow::Result<Server> {
    let keys = dir.join("keys.yaml");
    fs::write(&keys, variants::key_file()).with_context(|| format!("writing {}", keys.display()))?;
    let mut extra = vec!["--api-keys".to_owned(), keys.display().to_string()];
    let variant = match proxy {
        Proxy::SharedReplica(_) => {
            let url = redis_url.context("a shared replica needs the stack's Redis")?;
            extra.extend(["--redis".to_owned(), url.to_owned()]);
            variants::Variant::Shared
        }
        _ => variants::Variant::Policies,
    };
    let upstreams = [format!("origin=http://{origin}/api")];
    start_gateway(
        bench,
        dir,
        &variant.binary(),
        &upstreams,
        &extra,
        &Observability::Off,
        proxy.log().0,
    )
}

/// A bench-only gateway; `bench-policies` with a key file (one key, on plan `pro`) written beside its log.
fn start_variant(
    bench: &Bench,
    dir: &Path,
    origin: SocketAddr,
    variant: variants::Variant,
    token_cache: bool,
) -> anyhow::Result<Server> {
    let upstreams = [format!("origin=http://{origin}/api")];
    let (proxy, extra) = match variant {
        variants::Variant::Policies => {
            let keys = dir.join("keys.yaml");
            fs::write(&keys, variants::key_file()).with_context(|| format!("writing {}", keys.display()))?;
            let mut extra = vec!["--api-keys".to_owned(), keys.display().to_string()];
            let proxy = if token_cache {
                Proxy::PolicyGateway
            } else {
                extra.extend(["--token-cache".to_owned(), "off".to_owned()]);
                Proxy::PolicyGatewayNoCache
            };
            (proxy, extra)
        }
        variants::Variant::Plain => (Proxy::PlainGateway, Vec::new()),
        variants::Variant::Shared => bail!("the shared gateway runs as a replica (`Proxy::SharedReplica`)"),
    };
    start_gateway(
        bench,
        dir,
        &variant.binary(),
        &upstreams,
        &extra,
        &Observability::Off,
        proxy.log().0,
    )
}

/// A generated gateway from `target/release`, with `--upstream` for each of `upstreams` and then `extra`.
pub(super) fn start_gateway(
    bench: &Bench,
    dir: &Path,
    binary: &str,
    upstreams: &[String],
    extra: &[String],
    observability: &Observability,
    log: &str,
) -> anyhow::Result<Server> {
    let mut command = bench.placement.server(&bench.bin.join(binary));
    command.args([
        "--listen".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--workers".to_owned(),
        bench.placement.server_threads.to_string(),
        "--shutdown-timeout".to_owned(),
        GATEWAY_DRAIN.to_owned(),
    ]);
    let (access_log, admin_listen) = match observability {
        Observability::Off => (String::from("off"), "off"),
        Observability::On { access_log } => (access_log.display().to_string(), "127.0.0.1:0"),
    };
    command.args(["--access-log".to_owned(), access_log]);
    command.args(["--admin-listen", admin_listen]);
    for upstream in upstreams {
        command.arg("--upstream").arg(upstream);
    }
    command.args(extra);
    command.stderr(log_file(dir, log)?);
    Server::spawn(command, binary, Ready::PrintsAddress)
}

/// nginx as a plain reverse proxy; with `cache`, also caching `/pets/` (see [`nginx_conf`]); with `tls`, serving
/// HTTPS with those files.
fn start_nginx(
    bench: &Bench,
    dir: &Path,
    origin: SocketAddr,
    cache: bool,
    tls: Option<&cert::Files>,
) -> anyhow::Result<Server> {
    let listen = free_port()?;
    let conf = dir.join("nginx.conf");
    let nginx = bench.tools.path("nginx")?;
    // Over HTTP/2 a client connection carries many requests at once, each needing a connection to the origin: keep
    // as many of those alive as there can be requests in flight (`h2load -c64 -m10`), as the gateway's pool does.
    let (listen_directives, keepalive) = match tls {
        None => (format!("listen {listen} backlog=4096;"), 64),
        Some(files) => (nginx_tls(listen, files, http2_on_directive(nginx)), 1024),
    };
    let workers = bench.placement.server_threads;
    fs::write(
        &conf,
        nginx_conf(dir, &listen_directives, keepalive, origin, workers, cache),
    )
    .with_context(|| format!("writing {}", conf.display()))?;
    let mut command = bench.placement.server(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        // The error log before the configuration is read (nginx would open its compiled-in path otherwise).
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .stdout(log_file(dir, "nginx-stdout.log")?)
        .stderr(log_file(dir, "nginx-stderr.log")?);
    Server::spawn(command, "nginx", Ready::Accepts(listen))
}

fn start_haproxy(bench: &Bench, dir: &Path, origin: SocketAddr) -> anyhow::Result<Server> {
    let listen = free_port()?;
    let conf = dir.join("haproxy.cfg");
    fs::write(&conf, haproxy_cfg(listen, origin, bench.placement.server_threads))
        .with_context(|| format!("writing {}", conf.display()))?;
    let mut command: Command = bench.placement.server(bench.tools.path("haproxy")?);
    command
        .arg("-db")
        .arg("-f")
        .arg(&conf)
        .stdout(log_file(dir, "haproxy-stdout.log")?)
        .stderr(log_file(dir, "haproxy.log")?);
    Server::spawn(command, "haproxy", Ready::Accepts(listen))
}

/// nginx as a plain reverse proxy: no access log, kept-alive HTTP/1.1 to the origin, the `/api` prefix added. With
/// `cache`, `/pets/N` is proxied to the origin's `/v1/pets/N` (as the gateway's `getPet`) and cached for 60 s, keyed
/// by the request URI; a request with `Cache-Control` refreshes its entry (the gateway's `invalidate: any`).
/// `listen_directives` are the server's `listen` line and whatever goes with it (see [`nginx_tls`]); `keepalive` the
/// idle connections to the origin each worker keeps.
fn nginx_conf(
    dir: &Path,
    listen_directives: &str,
    keepalive: u32,
    origin: SocketAddr,
    workers: usize,
    cache: bool,
) -> String {
    let (cache_zone, cache_location) = if cache {
        nginx_cache(dir)
    } else {
        (String::new(), String::new())
    };
    let dir = dir.display();
    let mut conf = String::new();
    let _ = write!(
        conf,
        r#"# Written by `cargo xtask bench`.
daemon off;
master_process on;
worker_processes {workers};
error_log {dir}/nginx-error.log warn;
pid {dir}/nginx.pid;

events {{
    worker_connections 8192;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{cache_zone}
    # The gateway keeps a client's X-Request-Id or makes one, and sends it upstream and back; so does nginx here.
    map $http_x_request_id $bench_request_id {{
        default $http_x_request_id;
        "" $request_id;
    }}

    upstream origin {{
        server {origin};
        keepalive {keepalive};
    }}

    server {{
        {listen_directives}
        location / {{
            proxy_pass http://origin/api/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Request-Id $bench_request_id;
            add_header X-Request-Id $bench_request_id always;
        }}
{cache_location}    }}
}}
"#
    );
    conf
}

/// The `listen` of an HTTPS server on `listen` with the certificate and key in `files`: TLS 1.2 and 1.3, HTTP/2 by
/// ALPN (`http2 on;` from nginx 1.25.1, before it `listen … ssl http2`, as `modern` says). `keepalive_requests` is
/// the gateway's `--max-requests-per-connection` default: with nginx's 1,000 a kept-alive run would measure nginx
/// re-handshaking every 1,000 requests, and h2load (which does not reconnect) would count the rest as failed.
fn nginx_tls(listen: SocketAddr, files: &cert::Files, modern: bool) -> String {
    let (listen_http2, http2_on) = if modern {
        ("", "\n        http2 on;")
    } else {
        (" http2", "")
    };
    format!(
        "listen {listen} ssl{listen_http2} backlog=4096;{http2_on}\n        \
         ssl_certificate {};\n        \
         ssl_certificate_key {};\n        \
         ssl_protocols TLSv1.2 TLSv1.3;\n        \
         keepalive_requests 10000;",
        files.cert.display(),
        files.key.display()
    )
}

/// Whether this nginx takes `http2 on;` (1.25.1 and later); `false` when its version cannot be read.
fn http2_on_directive(nginx: &Path) -> bool {
    super::machine::version_of(nginx, "-v").is_some_and(|v| {
        let numbers: Vec<u32> = v.split('.').map_while(|n| n.parse().ok()).collect();
        numbers >= vec![1, 25, 1]
    })
}

/// The cache zone (for `http`) and the cached location (for `server`) of [`nginx_conf`].
fn nginx_cache(dir: &Path) -> (String, String) {
    let dir = dir.display();
    let zone = format!(
        "    proxy_cache_path {dir}/cache levels=1:2 keys_zone=gw:10m max_size=64m inactive=60m use_temp_path=off;\n"
    );
    let location = String::from(
        r#"        location /pets/ {
            proxy_pass http://origin/v1/pets/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
            proxy_set_header X-Request-Id $bench_request_id;
            add_header X-Request-Id $bench_request_id always;
            proxy_cache gw;
            proxy_cache_key $request_uri;
            proxy_cache_valid 200 404 60s;
            proxy_cache_lock on;
            proxy_cache_bypass $http_cache_control;
            add_header X-Cache-Status $upstream_cache_status;
        }
"#,
    );
    (zone, location)
}

/// haproxy in HTTP mode: keep-alive on both sides, connections to the origin reused, the `/api` prefix added.
fn haproxy_cfg(listen: SocketAddr, origin: SocketAddr, threads: usize) -> String {
    format!(
        r#"# Written by `cargo xtask bench`.
global
    nbthread {threads}
    maxconn 8192

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend bench
    bind {listen}
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    # The gateway keeps a client's X-Request-Id or makes one, and sends it upstream and back; so does haproxy here.
    unique-id-format %[uuid()]
    http-request set-header X-Request-Id %[unique-id] unless {{ req.hdr(x-request-id) -m found }}
    http-request set-var(txn.request_id) req.hdr(x-request-id)
    http-response set-header X-Request-Id %[var(txn.request_id)]
    default_backend origin

backend origin
    http-request set-path /api%[path]
    server origin {origin}
"#
    )
}
