//! An upstream's servers and what the process knows of each: healthy or not, ejected until when, requests in
//! flight, recent failures. One [`Cluster`] per upstream per process, shared by every worker; each worker keeps
//! its own connection pools to the servers ([`super::Upstream`]).
//!
//! An upstream of one server with no checks, ejection, retries, bound or re-resolution is *plain*: its requests
//! touch none of this state (nothing shared between cores is written per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use http::uri::{Authority, Scheme};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::connect::{self, SocketLimit, TlsConfig, UpstreamClient};
use super::hosts::Hosts;
use super::pool::Dial;
use super::retry::Budget;
use crate::spec::{EjectSpec, UpstreamSpec};

/// Where a server is: what its requests' URI and `Host` say, and the address connections go to when
/// re-resolution fixed one.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    /// The server as logs and the admin endpoint show it (the URL as written in the spec when stage variables
    /// filled it: they may be secret; with the address appended when re-resolution found it). Interned: the access
    /// log names the server of each request without copying.
    pub(super) label: &'static str,
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// `Host` for upstream requests: the authority, with the port only when it is not the scheme's default.
    pub(super) host: HeaderValue,
    /// The address connections go to; `None`: the authority's host, resolved when connecting.
    pub(super) addr: Option<SocketAddr>,
}

/// One server of an upstream and its state in this process.
#[derive(Debug)]
pub(crate) struct Server {
    pub(super) endpoint: Endpoint,
    /// The pool every worker shares, for an upstream whose sockets are bounded; `None`: each worker has its own.
    pub(super) shared_client: Option<UpstreamClient>,
    /// Passing active health checks (always, without them).
    pub(super) healthy: AtomicBool,
    /// Checks passed (positive) or failed (negative) in a row: the health checker's alone.
    pub(super) streak: std::sync::atomic::AtomicI32,
    /// Milliseconds since the cluster's epoch until which the server is ejected; `0`: it is not.
    pub(super) ejected_until: AtomicU64,
    /// Ejections in a row (each lasts one base time longer); reset by a success after it returns.
    pub(super) ejections: AtomicU32,
    /// Failed tries in a row (reset by a success).
    pub(super) consecutive_failures: AtomicU32,
    /// Tries sent and not yet finished (until the response body ends).
    pub(super) in_flight: AtomicU32,
    /// Tries sent.
    pub(super) requests: AtomicU64,
    /// Tries that failed.
    pub(super) failures: AtomicU64,
    /// When the last failure was, in milliseconds since the cluster's epoch (`0`: never).
    pub(super) last_failure: AtomicU64,
}

impl Server {
    fn new(endpoint: Endpoint, shared_client: Option<UpstreamClient>) -> Self {
        Self {
            endpoint,
            shared_client,
            healthy: AtomicBool::new(true),
            streak: std::sync::atomic::AtomicI32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_failure: AtomicU64::new(0),
        }
    }

    /// Whether requests may go to the server at `now` (milliseconds since the epoch).
    pub(super) fn available(&self, now: u64) -> bool {
        self.healthy.load(Relaxed) && self.ejected_until.load(Relaxed) <= now
    }

    /// `up`, `unhealthy` (failing active checks) or `ejected` (passive outlier detection) at `now`.
    pub(super) fn state(&self, now: u64) -> &'static str {
        if !self.healthy.load(Relaxed) {
            "unhealthy"
        } else if self.ejected_until.load(Relaxed) > now {
            "ejected"
        } else {
            "up"
        }
    }
}

/// The servers of a cluster at one time (re-resolution replaces the set; servers it keeps keep their state).
#[derive(Debug)]
pub(crate) struct ServerSet {
    /// Bumped by every replacement, so that workers know to update their pools.
    pub(super) generation: u64,
    pub(super) servers: Box<[Arc<Server>]>,
}

/// A URL of the upstream as the spec (or `--upstream`) gives it, parsed.
#[derive(Debug, Clone)]
pub(super) struct Url {
    /// As shown in logs.
    pub(super) shown: String,
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    pub(super) host: HeaderValue,
    /// The host name (without brackets for IPv6) and port, for re-resolution.
    pub(super) hostname: String,
    pub(super) port: u16,
}

/// One upstream in one process.
pub(crate) struct Cluster {
    pub(super) name: &'static str,
    pub(super) spec: &'static UpstreamSpec,
    /// The URLs' base path without its trailing `/` (empty for the root), prefixed to every upstream path.
    pub(super) base_path: String,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) urls: Box<[Url]>,
    pub(super) servers: ArcSwap<ServerSet>,
    /// Nothing to track per request (see the module's documentation).
    pub(super) plain: bool,
    pub(super) budget: Option<Budget>,
    /// Requests in flight, when bounded by `max_connections`.
    pub(super) admission: Option<Arc<Semaphore>>,
    /// Sockets open, when bounded by `max_connections`.
    pub(super) sockets: Option<SocketLimit>,
    pub(super) tls: TlsConfig,
    /// `--hosts`, consulted before the system's resolver.
    pub(super) hosts: Option<Hosts>,
    pub(super) epoch: Instant,
    /// Serializes ejection decisions, so that two workers cannot both take the last server `max_percent` allows.
    eject_lock: Mutex<()>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    pub(super) fn new(
        spec: &'static UpstreamSpec,
        urls: Vec<Url>,
        base_path: String,
        timeout: Duration,
        connect_timeout: Duration,
        tls: TlsConfig,
        hosts: Option<Hosts>,
    ) -> Self {
        let sockets = spec.max_connections.map(|max| SocketLimit {
            sockets: Arc::new(Semaphore::new(max as usize)),
            wait: connect_timeout,
        });
        let plain = urls.len() == 1
            && spec.health.is_none()
            && spec.eject.is_none()
            && spec.retries.is_none()
            && spec.max_connections.is_none()
            && spec.resolve.is_none();
        let mut cluster = Self {
            name: spec.name,
            spec,
            base_path,
            timeout,
            connect_timeout,
            urls: urls.into(),
            servers: ArcSwap::from_pointee(ServerSet {
                generation: 0,
                servers: Box::new([]),
            }),
            plain,
            budget: spec.retries.map(|r| Budget::new(&r)),
            admission: spec.max_connections.map(|max| Arc::new(Semaphore::new(max as usize))),
            sockets,
            tls,
            hosts,
            epoch: Instant::now(),
            eject_lock: Mutex::new(()),
        };
        // Without re-resolution each URL is one server; with it, the background task finds the addresses (and the
        // start-up resolution below gives the first set, so that the first requests need not wait for it).
        let endpoints: Vec<Endpoint> = if spec.resolve.is_some() {
            cluster
                .urls
                .iter()
                .flat_map(|url| resolve_now(url, cluster.hosts.as_ref()))
                .collect()
        } else {
            cluster.urls.iter().map(|url| endpoint(url, None)).collect()
        };
        let servers = endpoints.into_iter().map(|e| Arc::new(cluster.server(e))).collect();
        cluster.servers = ArcSwap::from_pointee(ServerSet { generation: 0, servers });
        cluster
    }

    fn server(&self, endpoint: Endpoint) -> Server {
        let shared = self
            .sockets
            .as_ref()
            .map(|limit| self.client_for(&endpoint, Some(limit.clone())));
        Server::new(endpoint, shared)
    }

    /// A new pool for `endpoint`.
    pub(super) fn client_for(&self, endpoint: &Endpoint, limit: Option<SocketLimit>) -> UpstreamClient {
        let https = endpoint.scheme == http::uri::Scheme::HTTPS;
        let dial = match endpoint.addr {
            Some(addr) => Dial::Fixed(addr),
            None => Dial::Named {
                host: endpoint
                    .authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
                port: endpoint.authority.port_u16().unwrap_or(if https { 443 } else { 80 }),
                hosts: self.hosts.clone(),
            },
        };
        let http2 = match (self.spec.http2, https) {
            (false, _) => connect::Http2::Off,
            (true, true) => connect::Http2::Alpn,
            (true, false) => connect::Http2::PriorKnowledge,
        };
        connect::client(&self.tls, dial, https, self.connect_timeout, limit, http2)
    }

    /// The pool a worker uses for `server`: the shared one when sockets are bounded, else a new one of its own.
    pub(super) fn worker_client(&self, server: &Server) -> UpstreamClient {
        match &server.shared_client {
            Some(client) => client.clone(),
            None => self.client_for(&server.endpoint, None),
        }
    }

    /// Milliseconds since the epoch (never `0`, which means "not ejected").
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Whether this cluster has background work (health checks, re-resolution).
    pub(super) fn has_background(&self) -> bool {
        self.spec.health.is_some() || self.spec.resolve.is_some()
    }

    /// Records a try's outcome on `server` for passive ejection.
    pub(super) fn record(&self, server: &Server, failed: bool) {
        if failed {
            server.failures.fetch_add(1, Relaxed);
            let now = self.now();
            server.last_failure.store(now, Relaxed);
            let in_a_row = server.consecutive_failures.fetch_add(1, Relaxed) + 1;
            if let Some(eject) = &self.spec.eject
                && in_a_row >= eject.consecutive_failures
            {
                self.eject(server, eject, now);
            }
        } else {
            // Written only when there is something to reset: most tries succeed, and a store is a shared write.
            if server.consecutive_failures.load(Relaxed) != 0 {
                server.consecutive_failures.store(0, Relaxed);
            }
            // Back from an ejection and answering: the next ejection starts from the base time again.
            if server.ejections.load(Relaxed) != 0 && server.ejected_until.load(Relaxed) <= self.now() {
                server.ejections.store(0, Relaxed);
                server.ejected_until.store(0, Relaxed);
            }
        }
    }

    fn eject(&self, server: &Server, eject: &EjectSpec, now: u64) {
        let Ok(_decision) = self.eject_lock.lock() else {
            return;
        };
        if server.ejected_until.load(Relaxed) > now {
            return;
        }
        let set = self.servers.load();
        let out = set
            .servers
            .iter()
            .filter(|s| !std::ptr::eq(Arc::as_ptr(s), server) && s.ejected_until.load(Relaxed) > now)
            .count();
        let allowed = set.servers.len() * usize::from(eject.max_percent) / 100;
        if out + 1 > allowed {
            tracing::warn!(
                upstream = self.name,
                server = server.endpoint.label,
                ejected = out,
                max_percent = eject.max_percent,
                "not ejecting a failing server: max_percent of the upstream's servers are out already"
            );
            return;
        }
        let ejections = server.ejections.fetch_add(1, Relaxed) + 1;
        let time = eject.base_time.saturating_mul(ejections).min(eject.max_time);
        let until = now.saturating_add(u64::try_from(time.as_millis()).unwrap_or(u64::MAX));
        server.ejected_until.store(until, Relaxed);
        server.consecutive_failures.store(0, Relaxed);
        tracing::warn!(
            upstream = self.name,
            server = server.endpoint.label,
            for_ms = until - now,
            "server ejected after failing {} times in a row",
            eject.consecutive_failures
        );
    }

    /// Replaces the servers by those at `addrs` (keeping the state of the addresses already known); returns whether
    /// the set changed.
    pub(super) fn replace(&self, endpoints: Vec<Endpoint>) -> bool {
        let current = self.servers.load();
        let same = endpoints.len() == current.servers.len()
            && endpoints
                .iter()
                .all(|e| current.servers.iter().any(|s| s.endpoint.label == e.label));
        if same {
            return false;
        }
        let servers: Box<[Arc<Server>]> = endpoints
            .into_iter()
            .map(|e| match current.servers.iter().find(|s| s.endpoint.label == e.label) {
                Some(kept) => Arc::clone(kept),
                None => Arc::new(self.server(e)),
            })
            .collect();
        tracing::info!(
            upstream = self.name,
            servers = ?servers.iter().map(|s| s.endpoint.label).collect::<Vec<_>>(),
            "upstream servers changed"
        );
        self.servers.store(Arc::new(ServerSet {
            generation: current.generation + 1,
            servers,
        }));
        true
    }

    /// How many servers are in rotation, and why the others are not; `None` without health checks or ejection.
    pub(crate) fn health(&self) -> Option<String> {
        if self.spec.health.is_none() && self.spec.eject.is_none() {
            return None;
        }
        let now = self.now();
        let set = self.servers.load();
        let (mut up, mut unhealthy, mut ejected) = (0, 0, 0);
        for server in &set.servers {
            match server.state(now) {
                "unhealthy" => unhealthy += 1,
                "ejected" => ejected += 1,
                _ => up += 1,
            }
        }
        let mut text = format!("{up} of {} up", set.servers.len());
        for (count, word) in [(unhealthy, "unhealthy"), (ejected, "ejected")] {
            if count > 0 {
                text.push_str(&format!(", {count} {word}"));
            }
        }
        Some(text)
    }

    /// The cluster as the admin endpoint shows it.
    pub(crate) fn view(&self) -> ClusterView {
        let now = self.now();
        let set = self.servers.load();
        ClusterView {
            name: self.name,
            balance: match self.spec.balance {
                crate::spec::Balance::RoundRobin => "round_robin",
                crate::spec::Balance::LeastRequests => "least_requests",
                crate::spec::Balance::Hash(_) => "hash",
            },
            tracked: !self.plain,
            in_flight_limit: self.spec.max_connections,
            retry_budget: self.budget.as_ref().map(|b| b.view()),
            servers: set
                .servers
                .iter()
                .map(|s| {
                    let until = s.ejected_until.load(Relaxed);
                    let last = s.last_failure.load(Relaxed);
                    ServerView {
                        server: s.endpoint.label,
                        state: s.state(now),
                        healthy: s.healthy.load(Relaxed),
                        ejected_for_ms: (until > now).then(|| until - now),
                        ejections: s.ejections.load(Relaxed),
                        in_flight: s.in_flight.load(Relaxed),
                        requests: s.requests.load(Relaxed),
                        failures: s.failures.load(Relaxed),
                        consecutive_failures: s.consecutive_failures.load(Relaxed),
                        last_failure_ms_ago: (last != 0).then(|| now.saturating_sub(last)),
                    }
                })
                .collect(),
        }
    }
}

/// `GET /_gateway/upstreams`: one upstream.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    name: &'static str,
    balance: &'static str,
    /// Whether per-server counts are kept (not for a plain upstream of one server without checks).
    tracked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_flight_limit: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_budget: Option<super::retry::BudgetView>,
    servers: Vec<ServerView>,
}

/// `GET /_gateway/upstreams`: one server.
#[derive(Debug, Serialize)]
struct ServerView {
    server: &'static str,
    /// `up`, `unhealthy` (failing active checks) or `ejected` (passive outlier detection).
    state: &'static str,
    healthy: bool,
    ejected_for_ms: Option<u64>,
    ejections: u32,
    in_flight: u32,
    requests: u64,
    failures: u64,
    consecutive_failures: u32,
    last_failure_ms_ago: Option<u64>,
}

/// Interns a server's label: each distinct one is leaked once per process (re-resolution can only add as many
/// as the addresses a name ever yields).
fn intern(label: String) -> &'static str {
    static LABELS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let Ok(mut labels) = LABELS.lock() else {
        return Box::leak(label.into_boxed_str());
    };
    if let Some(known) = labels.iter().find(|l| **l == label) {
        return known;
    }
    let leaked: &'static str = Box::leak(label.into_boxed_str());
    labels.push(leaked);
    leaked
}

/// The endpoint of `url`, at `addr` when re-resolution found one.
pub(super) fn endpoint(url: &Url, addr: Option<SocketAddr>) -> Endpoint {
    let label = match addr {
        Some(addr) => format!("{} ({addr})", url.shown),
        None => url.shown.clone(),
    };
    Endpoint {
        label: intern(label),
        scheme: url.scheme.clone(),
        authority: url.authority.clone(),
        host: url.host.clone(),
        addr,
    }
}

/// The endpoints of every address `url`'s host resolves to now (blocking: used at start-up only).
fn resolve_now(url: &Url, hosts: Option<&Hosts>) -> Vec<Endpoint> {
    use std::net::ToSocketAddrs as _;
    if let Some(addrs) = hosts.and_then(|h| h.lookup(&url.hostname)) {
        return addrs
            .into_iter()
            .map(|ip| endpoint(url, Some(SocketAddr::new(ip, url.port))))
            .collect();
    }
    match (url.hostname.as_str(), url.port).to_socket_addrs() {
        Ok(addrs) => {
            let mut addrs: Vec<SocketAddr> = addrs.collect();
            addrs.sort();
            addrs.dedup();
            addrs.into_iter().map(|addr| endpoint(url, Some(addr))).collect()
        }
        Err(err) => {
            tracing::warn!(url = url.shown, error = %err, "cannot resolve the upstream's host name; retrying in the background");
            Vec::new()
        }
    }
}
