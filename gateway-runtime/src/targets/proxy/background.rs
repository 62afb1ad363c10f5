//! The upstreams' background work, once per process on one thread of its own: active health checks and the
//! re-resolution of host names. Upstreams without either start nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::body::Body;
use http::header::HOST;
use http::{Request, Uri};
use tokio::sync::watch;

use super::cluster::{self, Cluster, Endpoint, Server};
use super::connect::UpstreamClient;
use crate::spec::HealthSpec;

/// The running background work; stopped (and its thread joined) when dropped.
pub struct Background {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Background")
    }
}

impl Background {
    /// Starts the health checks and re-resolution of `clusters`; `None` when none has any.
    pub(super) fn start(clusters: Vec<Arc<Cluster>>) -> std::io::Result<Option<Self>> {
        let clusters: Vec<Arc<Cluster>> = clusters.into_iter().filter(|c| c.has_background()).collect();
        if clusters.is_empty() {
            return Ok(None);
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("gateway-upstreams".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for cluster in clusters {
                        if let Some(health) = cluster.spec.health {
                            tasks.spawn(check_health(Arc::clone(&cluster), health));
                        }
                        if let Some(every) = cluster.spec.resolve {
                            tasks.spawn(re_resolve(Arc::clone(&cluster), every));
                        }
                    }
                    let mut stopped = stopped;
                    // Ends when told, or when the handle is gone.
                    let _ = stopped.wait_for(|stop| *stop).await;
                    tasks.abort_all();
                });
            })?;
        Ok(Some(Self {
            stop,
            thread: Some(thread),
        }))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Checks every server of `cluster` each `health.interval`, all servers at once.
async fn check_health(cluster: Arc<Cluster>, health: HealthSpec) {
    // The checker's own pools (one per server): checks must not queue behind requests, nor count against
    // `max_connections`.
    let mut clients: HashMap<&'static str, UpstreamClient> = HashMap::new();
    let mut interval = tokio::time::interval(health.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let set = cluster.servers.load_full();
        clients.retain(|label, _| set.servers.iter().any(|s| s.endpoint.label == *label));
        let mut checks = tokio::task::JoinSet::new();
        for server in set.servers.iter() {
            let client = clients
                .entry(server.endpoint.label)
                .or_insert_with(|| cluster.client_for(&server.endpoint, None))
                .clone();
            let uri = uri(&server.endpoint, &cluster.base_path, health.path);
            let server = Arc::clone(server);
            let name = cluster.name;
            checks.spawn(async move {
                let passed = match uri {
                    Some(uri) => check(&client, uri, &server.endpoint, &health).await,
                    None => Err("the health check path is not a valid URI".to_owned()),
                };
                judge(name, &server, &health, passed);
            });
        }
        while checks.join_next().await.is_some() {}
    }
}

fn uri(endpoint: &Endpoint, base_path: &str, path: &str) -> Option<Uri> {
    Uri::builder()
        .scheme(endpoint.scheme.clone())
        .authority(endpoint.authority.clone())
        .path_and_query(format!("{base_path}{path}"))
        .build()
        .ok()
}

/// One check: `Ok` when the server answered in time with an expected status, else what went wrong.
async fn check(client: &UpstreamClient, uri: Uri, endpoint: &Endpoint, health: &HealthSpec) -> Result<(), String> {
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = uri;
    request.headers_mut().insert(HOST, endpoint.host.clone());
    request.headers_mut().insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("gateway-health-check"),
    );
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        // Read the (small) body so that the connection is reused for the next check.
        let _ = crate::bodies::read_up_to(Body::new(response.into_body()), 64 * 1024).await;
        if (health.expect.0..=health.expect.1).contains(&status) {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(health.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {:?}", health.timeout)),
    }
}

/// Updates the server's streak with one check's result, and its health when the streak is long enough.
fn judge(upstream: &str, server: &Server, health: &HealthSpec, result: Result<(), String>) {
    let streak = server.streak.load(Relaxed);
    let healthy = server.healthy.load(Relaxed);
    match result {
        Ok(()) => {
            let streak = if streak > 0 { streak.saturating_add(1) } else { 1 };
            server.streak.store(streak, Relaxed);
            if !healthy && u32::try_from(streak).unwrap_or(0) >= health.healthy_after {
                server.healthy.store(true, Relaxed);
                tracing::info!(
                    upstream,
                    server = server.endpoint.label,
                    "server passes its health checks again"
                );
            }
        }
        Err(reason) => {
            let streak = if streak < 0 { streak.saturating_sub(1) } else { -1 };
            server.streak.store(streak, Relaxed);
            if healthy && streak.unsigned_abs() >= health.unhealthy_after {
                server.healthy.store(false, Relaxed);
                tracing::warn!(
                    upstream,
                    server = server.endpoint.label,
                    reason,
                    "server out of rotation: it failed {} health checks in a row",
                    health.unhealthy_after
                );
            } else {
                tracing::debug!(upstream, server = server.endpoint.label, reason, "health check failed");
            }
        }
    }
}

/// Re-resolves the cluster's host names each `every`; every address is a server. A name that cannot be resolved
/// keeps the servers it had.
async fn re_resolve(cluster: Arc<Cluster>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: start-up already resolved.
    interval.tick().await;
    loop {
        interval.tick().await;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for url in cluster.urls.iter() {
            if let Some(addrs) = cluster.hosts.as_ref().and_then(|h| h.lookup(&url.hostname)) {
                let mut addrs: Vec<_> = addrs.into_iter().map(|ip| SocketAddr::new(ip, url.port)).collect();
                addrs.sort();
                addrs.dedup();
                endpoints.extend(addrs.into_iter().map(|addr| cluster::endpoint(url, Some(addr))));
                continue;
            }
            match tokio::net::lookup_host((url.hostname.as_str(), url.port)).await {
                Ok(addrs) => {
                    let mut addrs: Vec<_> = addrs.collect();
                    addrs.sort();
                    addrs.dedup();
                    endpoints.extend(addrs.into_iter().map(|addr| cluster::endpoint(url, Some(addr))));
                }
                Err(err) => {
                    tracing::warn!(upstream = cluster.name, url = url.shown, error = %err, "cannot re-resolve; keeping its servers");
                    let prefix = format!("{} (", url.shown);
                    for server in cluster.servers.load().servers.iter() {
                        if server.endpoint.label.starts_with(&prefix) {
                            endpoints.push(server.endpoint.clone());
                        }
                    }
                }
            }
        }
        cluster.replace(endpoints);
    }
}
