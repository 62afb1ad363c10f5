//! Upstreams of several servers, against the generated `fleet-gateway` (`tests/specs/fleet.yaml`): balancing,
//! health checks and ejection, retries and their budget, the connection bound, canary splits and host names. Every
//! test starts its own servers on ephemeral ports of 127.0.0.1 and points the spec's upstreams at them with
//! `--upstream NAME=URL,URL`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::client::{Reply, client, exchange, get};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::assert_problem;

const BIN: &str = "fleet-gateway";

/// How long a test waits for a state the gateway reaches on its own (health checks run every 100ms).
const SETTLE: Duration = Duration::from_secs(10);

async fn servers(n: usize) -> Vec<Upstream> {
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(Upstream::start().await.expect("upstream starts"));
    }
    servers
}

/// The fleet gateway with each `(upstream, servers)` pointed at those servers.
fn gateway(upstreams: &[(&str, &[&Upstream])]) -> Gateway {
    let mut args = Vec::new();
    for (name, servers) in upstreams {
        let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
        args.push("--upstream".to_owned());
        args.push(format!("{name}={}", urls.join(",")));
    }
    Gateway::start(BIN, &args).expect("gateway starts")
}

/// `GET url` with `headers` on a pooled client.
async fn fetch(pool: &Pool, url: &str, headers: &[(&str, &str)]) -> Reply {
    exchange(pool.clone(), Method::GET, url, headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

type Pool =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Full<Bytes>>;

/// The port of the server that answered.
fn port(reply: &Reply) -> u16 {
    reply
        .header("x-upstream-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no X-Upstream-Port: {reply:?}"))
}

/// The admin side's view of upstream `name`.
async fn upstream_view(gw: &Gateway, name: &str) -> Value {
    let reply = get(&gw.admin_url("/_gateway/upstreams")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let all = reply.json();
    all["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {name} in {all}"))
}

/// The admin side's view of the server of upstream `name` that is `server`.
async fn server_view(gw: &Gateway, name: &str, server: &Upstream) -> Value {
    let view = upstream_view(gw, name).await;
    let label = server.url();
    view["servers"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["server"] == label.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no server {label} in {view}"))
}

/// Polls `check` until it holds or [`SETTLE`] passes; returns whether it held.
async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// The access log's lines so far, as JSON.
fn access_log(gw: &Gateway) -> Vec<Value> {
    gw.stdout_lines()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn round_robin_spreads_a_thousand_requests_evenly_over_two_servers() {
    let s = servers(2).await;
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    let pool = client();
    for i in 0..1000 {
        let reply = fetch(&pool, &gw.url(&format!("/pair/{i}")), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let (a, b) = (s[0].calls(), s[1].calls());
    assert_eq!(a + b, 1000, "every request reached one server once");
    assert!((450..=550).contains(&a), "uneven: {a} and {b}");
}

#[tokio::test]
async fn least_requests_prefers_the_idle_server_when_one_is_slow() {
    let s = servers(2).await;
    s[0].delay_all(Duration::from_millis(150));
    let gw = gateway(&[("least", &[&s[0], &s[1]])]);
    let url = gw.url("/least/1");
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            let pool = client();
            tokio::spawn(async move {
                for _ in 0..25 {
                    assert_eq!(fetch(&pool, &url, &[]).await.status, StatusCode::OK);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    let (slow, idle) = (s[0].calls(), s[1].calls());
    assert_eq!(slow + idle, 200);
    assert!(idle > 3 * slow, "the idle server got {idle}, the slow one {slow}");
}

#[tokio::test]
async fn hash_by_header_sends_each_user_to_one_server() {
    let s = servers(3).await;
    let gw = gateway(&[("sticky", &[&s[0], &s[1], &s[2]])]);
    let pool = client();
    let mut seen: HashMap<String, HashSet<u16>> = HashMap::new();
    for round in 0..5 {
        for user in 0..30 {
            let user = format!("user-{user}");
            let reply = fetch(&pool, &gw.url(&format!("/sticky/{round}")), &[("x-user-id", &user)]).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            seen.entry(user).or_default().insert(port(&reply));
        }
    }
    for (user, ports) in &seen {
        assert_eq!(ports.len(), 1, "{user} went to {ports:?}");
    }
    let used: HashSet<u16> = seen.values().flatten().copied().collect();
    assert_eq!(used.len(), 3, "30 users hash onto every server: {used:?}");
}

#[tokio::test]
async fn a_killed_server_costs_no_failed_get_and_gets_traffic_again_after_passing_health_checks() {
    let mut s = servers(2).await;
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    let url = gw.url("/pair/1");
    let running = Arc::new(AtomicBool::new(true));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (url, running, pool) = (url.clone(), running.clone(), client());
            tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut sent = 0u32;
                while running.load(Ordering::SeqCst) {
                    let reply = fetch(&pool, &url, &[]).await;
                    sent += 1;
                    if reply.status != StatusCode::OK {
                        failed.push(format!("{} {}", reply.status, reply.text()));
                    }
                }
                (sent, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = s[1].calls();
    assert!(before > 0, "both servers serve before the kill");
    let addr = s[1].addr;
    s[1].kill();
    // Health checks see it gone.
    assert!(
        eventually(|| async { server_view(&gw, "pair", &s[1]).await["healthy"] == false }).await,
        "{}",
        upstream_view(&gw, "pair").await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::SeqCst);
    let mut sent = 0;
    for caller in callers {
        let (n, failed) = caller.await.expect("caller");
        assert!(failed.is_empty(), "failed GETs around the kill: {failed:?}");
        sent += n;
    }
    assert!(sent > 100, "the callers kept calling through the kill ({sent})");
    let view = server_view(&gw, "pair", &s[1]).await;
    assert_eq!(view["state"], "unhealthy", "{view}");

    // Back on the same port: two passing checks, and it serves again.
    let back = Upstream::start_on(addr).await.expect("restarts on its port");
    assert!(
        eventually(|| async { server_view(&gw, "pair", &back).await["state"] == "up" }).await,
        "{}",
        upstream_view(&gw, "pair").await
    );
    assert!(back.health_checks() >= 2, "it passed checks before coming back");
    let pool = client();
    for _ in 0..100 {
        assert_eq!(fetch(&pool, &url, &[]).await.status, StatusCode::OK);
    }
    assert!(back.calls() >= 40, "the restarted server got {} of 100", back.calls());
}

#[tokio::test]
async fn with_every_server_down_the_gateway_answers_503_without_waiting() {
    let mut s = servers(2).await;
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    assert_eq!(get(&gw.url("/pair/1")).await.status, StatusCode::OK);
    s[0].kill();
    s[1].kill();
    assert!(
        eventually(|| async {
            let view = upstream_view(&gw, "pair").await;
            view["servers"]
                .as_array()
                .is_some_and(|list| list.iter().all(|s| s["state"] == "unhealthy"))
        })
        .await,
        "{}",
        upstream_view(&gw, "pair").await
    );
    let started = Instant::now();
    let reply = get(&gw.url("/pair/1")).await;
    let problem = assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:gateway:error:service-unavailable", "{problem}");
    assert_eq!(reply.header("retry-after"), Some("1"), "{:?}", reply.headers);
    // Not a timing goal: the answer must not wait for the upstream's timeout (5s) or a connect timeout.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_failing_server_is_ejected_its_failures_are_retried_on_the_other_and_the_log_counts_the_tries() {
    let s = servers(2).await;
    s[0].fail_with(Some(503));
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    let pool = client();
    for i in 0..60 {
        let reply = fetch(&pool, &gw.url(&format!("/pair/{i}")), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.text());
        assert_eq!(port(&reply), s[1].port());
        assert!(reply.header("x-upstream-attempts").is_none(), "a debug header leaked");
    }
    // Three failures in a row eject it (its health checks still pass: only passive detection sees it).
    let failing = server_view(&gw, "pair", &s[0]).await;
    assert_eq!(failing["state"], "ejected", "{failing}");
    assert!(failing["ejected_for_ms"].as_u64().is_some_and(|ms| ms > 0), "{failing}");
    assert_eq!(failing["ejections"], 1, "{failing}");
    assert!(failing["failures"].as_u64() >= Some(3), "{failing}");
    assert!(s[0].calls() <= 5, "an ejected server gets no traffic: {}", s[0].calls());
    assert_eq!(s[1].calls(), 60);

    assert!(eventually(|| async { access_log(&gw).len() >= 60 }).await);
    let attempts: Vec<u64> = access_log(&gw)
        .iter()
        .filter_map(|line| line["upstream_attempts"].as_u64())
        .collect();
    assert_eq!(attempts.len(), 60, "every proxied request logs its tries");
    let retried = attempts.iter().filter(|a| **a == 2).count() as u64;
    assert_eq!(
        retried,
        s[0].calls(),
        "each try on the failing server was retried once: {attempts:?}"
    );
    assert!(attempts.iter().all(|a| *a == 1 || *a == 2), "{attempts:?}");
}

#[tokio::test]
async fn passive_ejection_never_takes_out_more_than_max_percent_of_the_servers() {
    let s = servers(2).await;
    s[0].fail_with(Some(503));
    s[1].fail_with(Some(503));
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    let pool = client();
    for i in 0..30 {
        let reply = fetch(&pool, &gw.url(&format!("/pair/{i}")), &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    }
    // `max_percent: 50` of two servers: one may be ejected, never both; the other keeps taking (and failing) tries.
    let view = upstream_view(&gw, "pair").await;
    let states: Vec<&str> = view["servers"]
        .as_array()
        .map(|list| list.iter().filter_map(|s| s["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states.iter().filter(|s| **s == "ejected").count(), 1, "{view}");
    assert_eq!(states.iter().filter(|s| **s == "up").count(), 1, "{view}");
    let up = view["servers"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["state"] == "up"))
        .cloned()
        .unwrap_or_default();
    assert!(
        up["consecutive_failures"].as_u64() >= Some(3),
        "failing, yet kept: {up}"
    );
}

#[tokio::test]
async fn retries_of_a_flapping_upstream_stay_within_the_budget() {
    let s = servers(2).await;
    s[0].fail_with(Some(503));
    s[1].fail_with(Some(503));
    let gw = gateway(&[("flaky", &[&s[0], &s[1]])]);
    let pool = client();
    const N: u64 = 200;
    for i in 0..N {
        let reply = fetch(&pool, &gw.url(&format!("/flaky/{i}")), &[]).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    }
    let tries = s[0].calls() + s[1].calls();
    // fleet.yaml: `budget: { ratio: 20%, min: 5, window: 30s }`; without it, 3 retries each: 4 × N tries.
    let bound = N + 5 + N / 5;
    assert!(tries <= bound, "{tries} tries for {N} requests (bound {bound})");
    assert!(tries >= N + 5, "the budget's minimum was spent: {tries}");
    let budget = &upstream_view(&gw, "flaky").await["retry_budget"];
    assert!(budget["refused_total"].as_u64().is_some_and(|r| r > 0), "{budget}");
}

/// Sends `PUT path` with a chunked body over a raw socket and returns the status code.
async fn put_chunked(gw: &Gateway, path: &str) -> u16 {
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    let request = format!(
        "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        gw.addr
    );
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut response))
        .await
        .expect("answered in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a response: {text}"))
}

#[tokio::test]
async fn a_post_and_a_streamed_body_are_tried_once_a_small_put_is_retried() {
    let s = servers(2).await;
    s[0].fail_with(Some(502));
    s[1].fail_with(Some(502));
    let gw = gateway(&[("pair", &[&s[0], &s[1]])]);
    let calls = || s[0].calls() + s[1].calls();

    let post = gateway_tests::client::send(Method::POST, &gw.url("/pair/1"), &[], "{}")
        .await
        .expect("POST");
    assert_eq!(post.status, StatusCode::BAD_GATEWAY, "{}", post.text());
    assert_eq!(calls(), 1, "a POST is not retried");

    assert_eq!(put_chunked(&gw, "/pair/2").await, 502);
    assert_eq!(calls(), 2, "a streamed body is not sent twice");

    let put = gateway_tests::client::send(Method::PUT, &gw.url("/pair/3"), &[], "small")
        .await
        .expect("PUT");
    assert_eq!(put.status, StatusCode::BAD_GATEWAY, "{}", put.text());
    assert_eq!(calls(), 5, "a small PUT of known length is buffered and retried twice");
    let last = s[0].last().await;
    assert_eq!(last["body"], "small", "the retry resent the body: {last}");
}

#[tokio::test]
async fn max_connections_bounds_the_sockets_and_answers_503_after_the_queue_timeout() {
    let s = servers(1).await;
    s[0].delay_all(Duration::from_millis(700));
    let gw = gateway(&[("narrow", &[&s[0]])]);
    let url = gw.url("/narrow");
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let reply = get(&url).await;
                (reply, started.elapsed())
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    for caller in callers {
        let (reply, took) = caller.await.expect("caller");
        if reply.status == StatusCode::OK {
            served += 1;
        } else {
            let problem = assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(problem["type"], "urn:gateway:error:service-unavailable", "{problem}");
            assert_eq!(reply.header("retry-after"), Some("1"), "{:?}", reply.headers);
            assert!(
                took < Duration::from_millis(700),
                "refused after the queue timeout, not after a try: {took:?}"
            );
            refused += 1;
        }
    }
    assert_eq!(served, 2, "max_connections: 2 ({refused} refused)");
    assert_eq!(refused, 6);
    assert!(
        s[0].peak_connections() <= 2,
        "{} sockets at once",
        s[0].peak_connections()
    );
    assert_eq!(s[0].calls(), 2);
}

#[tokio::test]
async fn a_canary_split_sends_its_weight_within_tolerance_and_sticks_by_header() {
    let s = servers(2).await;
    let (stable, canary) = (&s[0], &s[1]);
    let gw = gateway(&[("stable", &[stable]), ("canary", &[canary])]);
    let url = gw.url("/release/1");
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (url, pool) = (url.clone(), client());
            tokio::spawn(async move {
                for _ in 0..500 {
                    assert_eq!(fetch(&pool, &url, &[]).await.status, StatusCode::OK);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("caller");
    }
    assert_eq!(stable.calls() + canary.calls(), 2000);
    // 10% of 2,000: 200, with a standard deviation of 13.4; ±70 is five of them.
    assert!((130..=270).contains(&canary.calls()), "canary got {}", canary.calls());

    let pool = client();
    let mut sides: HashMap<String, HashSet<u16>> = HashMap::new();
    for round in 0..3 {
        for user in 0..100 {
            let user = format!("caller-{user}");
            let reply = fetch(&pool, &gw.url(&format!("/release/{round}")), &[("x-user-id", &user)]).await;
            sides.entry(user).or_default().insert(port(&reply));
        }
    }
    assert!(
        sides.values().all(|p| p.len() == 1),
        "a caller changed sides: {sides:?}"
    );
    let on_canary = sides.values().filter(|p| p.contains(&canary.port())).count();
    assert!(
        (1..=30).contains(&on_canary),
        "{on_canary} of 100 callers on the canary"
    );
}

#[tokio::test]
async fn a_host_name_is_one_server_per_address_it_resolves_to() {
    let s = servers(1).await;
    let port = s[0].port();
    let gw = Gateway::start(BIN, &["--upstream".into(), format!("named=http://localhost:{port}")]).expect("starts");
    let expected: HashSet<String> = tokio::net::lookup_host(("localhost", port))
        .await
        .expect("localhost resolves")
        .map(|addr| format!("http://localhost:{port} ({addr})"))
        .collect();
    let view = upstream_view(&gw, "named").await;
    let labels: HashSet<String> = view["servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s["server"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(labels, expected, "{view}");
    for _ in 0..10 {
        let reply = get(&gw.url("/named")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.json()["headers"]["host"][0],
            format!("localhost:{port}"),
            "Host is the name"
        );
    }
}

/// A hosts file in a fresh temporary directory, removed on drop; rewritten whole (rename) so no read sees half.
struct HostsFile(std::path::PathBuf);

impl HostsFile {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("e2e-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = Self(dir.join("hosts"));
        file.write(text);
        file
    }

    fn write(&self, text: &str) {
        let next = self.0.with_extension("next");
        std::fs::write(&next, text).expect("hosts file");
        std::fs::rename(&next, &self.0).expect("hosts file in place");
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The labels of upstream `name`'s servers.
async fn server_labels(gw: &Gateway, name: &str) -> HashSet<String> {
    upstream_view(gw, name).await["servers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|s| s["server"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_host_name_is_re_resolved_and_traffic_follows_the_addresses_it_yields() {
    // Two servers on one port of two loopback addresses; `pets.test` resolves (through `--hosts`) to one, then
    // both, then the other.
    let first = Upstream::start().await.expect("upstream starts");
    let port = first.port();
    let second = Upstream::start_on(([127, 0, 0, 2], port).into())
        .await
        .expect("127.0.0.2 on the same port");
    let hosts = HostsFile::new("127.0.0.1 pets.test\n");
    let gw = Gateway::start(
        BIN,
        &[
            "--upstream".into(),
            format!("named=http://pets.test:{port}"),
            "--hosts".into(),
            hosts.0.display().to_string(),
        ],
    )
    .expect("starts");
    let label = |ip: &str| format!("http://pets.test:{port} ({ip}:{port})");
    assert_eq!(server_labels(&gw, "named").await, HashSet::from([label("127.0.0.1")]));
    let pool = client();
    for _ in 0..10 {
        let reply = fetch(&pool, &gw.url("/named"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(
            reply.json()["headers"]["host"][0],
            format!("pets.test:{port}"),
            "Host is the name"
        );
    }
    assert_eq!((first.calls(), second.calls()), (10, 0));

    hosts.write("127.0.0.1 pets.test\n127.0.0.2 pets.test\n");
    let both = HashSet::from([label("127.0.0.1"), label("127.0.0.2")]);
    assert!(eventually(|| async { server_labels(&gw, "named").await == both }).await);
    for _ in 0..100 {
        assert_eq!(fetch(&pool, &gw.url("/named"), &[]).await.status, StatusCode::OK);
    }
    assert!(
        second.calls() >= 30,
        "the new address gets its share: {}",
        second.calls()
    );

    hosts.write("127.0.0.2 pets.test\n");
    let only_second = HashSet::from([label("127.0.0.2")]);
    assert!(eventually(|| async { server_labels(&gw, "named").await == only_second }).await);
    let before = first.calls();
    for _ in 0..20 {
        assert_eq!(fetch(&pool, &gw.url("/named"), &[]).await.status, StatusCode::OK);
    }
    assert_eq!(
        first.calls(),
        before,
        "an address the name no longer yields gets nothing"
    );
}
