//! API keys, usage plans, quotas and throttling, against the generated `store-gateway`.
//!
//! Limits in `specs/store.yaml`: API-wide 20/s burst 40; `listOrders` 10/s burst 10; `browseCatalog` 5/s burst 5
//! per client address; plan `free` 2/s burst 5 and 8 a day; `pro` 50/s burst 100; `trial` 3 a month.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send, send_from};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{KeyFile, assert_problem};

const KEYS: &str = "\
- { key: free-key-alice-0001, name: alice, plan: free }
- { key: free-key-bob-00002, name: bob, plan: free }
- { key: pro-key-carol-0003, name: carol, plan: pro }
- { key: pro-key-dave-00004, name: dave, plan: pro }
- { key: trial-key-erin-005, name: erin, plan: trial }
- { key: disabled-key-frank6, name: frank, plan: pro, enabled: false }
- { key: gold-key-grace-007, name: grace, plan: gold }
";
const ADMIN: &str = "admin-token-for-tests";

async fn store() -> (Upstream, Gateway, KeyFile) {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gateway = Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={}/store", upstream.url()),
            "--api-keys".into(),
            keys.0.display().to_string(),
            "--admin-token".into(),
            ADMIN.into(),
        ],
        &[crate::support::STORE_ENV],
    )
    .expect("store gateway starts");
    (upstream, gateway, keys)
}

async fn with_key(gw: &Gateway, path: &str, key: &str) -> Reply {
    send(Method::GET, &gw.url(path), &[("x-api-key", key)], Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Sends `next()` until a request is refused; returns how many were admitted, how long it took, and the refusal.
async fn until_refused<F, Fut>(mut next: F) -> (u32, Duration, Reply)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        let reply = next().await;
        match reply.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => return (admitted, started.elapsed(), reply),
            other => panic!("unexpected {other}: {}", reply.text()),
        }
        assert!(admitted < 10_000, "never refused");
    }
}

/// A bucket of `burst` refilled at `rate` a second admits the burst, plus what refilled while the requests ran.
/// (Exact when the requests are quick; the allowance keeps the test honest on a loaded machine.)
fn assert_burst(admitted: u32, burst: u32, rate: u32, elapsed: Duration) {
    let refill = (f64::from(rate) * elapsed.as_secs_f64()).floor() as u32;
    assert!(
        admitted >= burst && admitted <= burst + refill,
        "admitted {admitted}: burst {burst}, {refill} refilled in {elapsed:?}"
    );
}

/// A `THROTTLED` refusal as `specs/store.yaml` renders it (its own JSON body and `X-Reason`), with the headers the
/// gateway always sends kept; returns the body.
fn assert_throttled(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-reason"), Some("slow-down"));
    assert!(reply.header("retry-after").is_some(), "Retry-After is always sent");
    assert!(
        reply.header("ratelimit").is_some(),
        "the RateLimit headers are always sent"
    );
    let body = reply.json();
    assert_eq!(body["message"], "Too many requests");
    assert_eq!(body["requestId"].as_str(), reply.header("x-request-id"));
    body
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds")
}

#[tokio::test]
async fn keys_are_required_checked_and_refused_with_the_right_status() {
    let (upstream, gw, _keys) = store().await;
    let missing = get(&gw.url("/orders")).await;
    let problem = assert_problem(&missing, StatusCode::UNAUTHORIZED);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("x-api-key")),
        "{problem}"
    );
    assert_problem(
        &with_key(&gw, "/orders", "no-such-key-at-all").await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &with_key(&gw, "/orders", "disabled-key-frank6").await,
        StatusCode::FORBIDDEN,
    );
    let gold = assert_problem(
        &with_key(&gw, "/orders", "gold-key-grace-007").await,
        StatusCode::FORBIDDEN,
    );
    assert!(gold["detail"].as_str().is_some_and(|d| d.contains("plan")), "{gold}");
    // `getOrder` admits the pro plan only.
    assert_problem(
        &with_key(&gw, "/orders/1", "free-key-alice-0001").await,
        StatusCode::FORBIDDEN,
    );
    assert_eq!(
        with_key(&gw, "/orders/1", "pro-key-carol-0003").await.status,
        StatusCode::OK
    );
    assert_eq!(upstream.calls(), 1, "refused requests never reach the upstream");
    // The key may be in the header or in the query; open operations need none.
    assert_eq!(
        get(&gw.url("/orders?api_key=pro-key-dave-00004")).await.status,
        StatusCode::OK
    );
    assert_eq!(get(&gw.url("/catalog")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_burst_is_admitted_then_429_then_the_bucket_refills() {
    let (_upstream, gw, _keys) = store().await;
    // alice (free): burst 5 at 2 a second.
    let (admitted, elapsed, refused) = until_refused(|| with_key(&gw, "/orders", "free-key-alice-0001")).await;
    assert_burst(admitted, 5, 2, elapsed);
    let problem = assert_throttled(&refused);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("plan")),
        "{problem}"
    );
    assert_eq!(retry_after(&refused), 1, "2 a second: the next token within a second");
    // Refill: at 2 a second a token is back within half a second; poll instead of sleeping a fixed time.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if with_key(&gw, "/orders", "free-key-alice-0001").await.status == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the bucket never refilled");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before a token could have been added"
    );
}

#[tokio::test]
async fn two_keys_do_not_share_a_bucket() {
    let (_upstream, gw, _keys) = store().await;
    let (admitted, elapsed, _) = until_refused(|| with_key(&gw, "/orders", "free-key-alice-0001")).await;
    assert_burst(admitted, 5, 2, elapsed);
    // bob has his own, untouched by alice's: admitted right after, with 4 of his burst of 5 left (a shared bucket
    // would have refused him, or left him what refilled meanwhile, a token every 500 ms).
    let bob = with_key(&gw, "/orders", "free-key-bob-00002").await;
    assert_eq!(bob.status, StatusCode::OK, "bob has his own: {}", bob.text());
    let current = bob.header("ratelimit").expect("RateLimit");
    assert!(current.contains("\"plan\";r=4;"), "bob's plan bucket: {current}");
}

#[tokio::test]
async fn operation_and_api_wide_buckets_are_independent_of_keys_and_each_other() {
    let (_upstream, gw, _keys) = store().await;
    // listOrders: burst 10 across callers. Two pro keys (burst 100 each) share it.
    let mut turn = 0;
    let (admitted, elapsed, refused) = until_refused(|| {
        turn += 1;
        let key = if turn % 2 == 0 {
            "pro-key-carol-0003"
        } else {
            "pro-key-dave-00004"
        };
        with_key(&gw, "/orders", key)
    })
    .await;
    assert_burst(admitted, 10, 10, elapsed);
    let problem = assert_throttled(&refused);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("operation")),
        "{problem}"
    );
    // Another operation is not affected by listOrders' bucket.
    assert_eq!(
        with_key(&gw, "/orders/1", "pro-key-carol-0003").await.status,
        StatusCode::OK
    );

    // API-wide: burst 40 over every operation, on a fresh gateway: the open mock takes it all.
    let (_upstream, gw, _keys) = store().await;
    let (admitted, elapsed, refused) = until_refused(|| {
        let url = gw.url("/status");
        async move { get(&url).await }
    })
    .await;
    assert_burst(admitted, 40, 20, elapsed);
    let problem = assert_throttled(&refused);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("api")),
        "{problem}"
    );
    // ... and it applies to every operation: with the bucket empty, another operation with a key on a roomy plan
    // gets only what the API-wide bucket refills meanwhile (20 a second), and is then refused by it.
    let (admitted, elapsed, refused) = until_refused(|| with_key(&gw, "/orders/1", "pro-key-carol-0003")).await;
    // At most one token refilled between the refusal above and the first of these, and 20 a second since.
    let refill = (20.0 * elapsed.as_secs_f64()).floor() as u32;
    assert!(
        admitted <= 1 + refill,
        "admitted {admitted} from an empty bucket in {elapsed:?}"
    );
    let problem = assert_throttled(&refused);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("api")),
        "{problem}"
    );
}

/// What the echo upstream says the gateway sent as `X-Forwarded-For` (every value, joined).
fn forwarded_for(reply: &Reply) -> String {
    let seen = reply.json();
    let values = seen["headers"]["x-forwarded-for"]
        .as_array()
        .unwrap_or_else(|| panic!("no X-Forwarded-For reached the upstream: {seen}"));
    values.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
}

#[tokio::test]
async fn per_ip_buckets_are_per_client_address() {
    // Two clients on two loopback addresses (all of 127.0.0.0/8 is this machine); the gateway is on 127.0.0.1.
    let first = IpAddr::from([127, 0, 0, 2]);
    let second = IpAddr::from([127, 0, 0, 3]);
    let (_upstream, gw, _keys) = store().await;
    let from = |ip: IpAddr, headers: &'static [(&'static str, &'static str)]| {
        let url = gw.url("/catalog");
        async move {
            send_from(ip, Method::GET, &url, headers, Bytes::new())
                .await
                .unwrap_or_else(|e| panic!("GET /catalog from {ip}: {e}"))
        }
    };

    // The first client uses up its bucket (5 a second, burst 5)...
    let started = Instant::now();
    let opening = from(first, &[]).await;
    assert_eq!(opening.status, StatusCode::OK, "{}", opening.text());
    assert_eq!(
        forwarded_for(&opening),
        "127.0.0.2",
        "the upstream is told who the client is"
    );
    let (admitted, _, refused) = until_refused(|| from(first, &[])).await;
    let emptied = Instant::now();
    assert_burst(admitted + 1, 5, 5, started.elapsed());
    let problem = assert_throttled(&refused);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("operation")),
        "{problem}"
    );

    // ... and the second is admitted right after, with a whole burst of its own: one bucket shared by every
    // address would admit it at most what refilled meanwhile.
    let started = Instant::now();
    let opening = from(second, &[]).await;
    assert_eq!(
        opening.status,
        StatusCode::OK,
        "another client address has its own bucket: {}",
        opening.text()
    );
    assert_eq!(forwarded_for(&opening), "127.0.0.3");
    let (admitted, _, _) = until_refused(|| from(second, &[])).await;
    assert_burst(admitted + 1, 5, 5, started.elapsed());

    // Without --trust-proxy a forged X-Forwarded-For changes nothing: the first client's requests still draw on
    // its own bucket, emptied above, so they get what refilled since (a token every 200 ms), not the burst of 5
    // that a fresh address would.
    let (admitted, _, _) = until_refused(|| from(first, &[("x-forwarded-for", "10.1.2.3")])).await;
    let refilled = (5.0 * emptied.elapsed().as_secs_f64()).floor() as u32 + 1;
    assert!(
        admitted <= refilled,
        "a forged X-Forwarded-For got {admitted} requests admitted, more than the {refilled} refilled"
    );
}

#[tokio::test]
async fn per_ip_buckets_follow_x_forwarded_for_behind_a_trusted_proxy() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={}/store", upstream.url()),
            "--api-keys".into(),
            keys.0.display().to_string(),
            "--trust-proxy".into(),
        ],
        &[crate::support::STORE_ENV],
    )
    .expect("starts");
    let from = |ip: &'static str| {
        let url = gw.url("/catalog");
        async move {
            send(Method::GET, &url, &[("x-forwarded-for", ip)], Bytes::new())
                .await
                .expect("ok")
                .status
        }
    };
    let (admitted, elapsed, _) = until_refused(|| {
        let url = gw.url("/catalog");
        async move {
            send(Method::GET, &url, &[("x-forwarded-for", "192.0.2.1")], Bytes::new())
                .await
                .expect("ok")
        }
    })
    .await;
    assert_burst(admitted, 5, 5, elapsed);
    assert_eq!(
        from("192.0.2.2").await,
        StatusCode::OK,
        "another client address has its own bucket"
    );
}

#[tokio::test]
async fn quota_exhaustion_says_when_it_resets_and_counts_admitted_requests_only() {
    let (_upstream, gw, _keys) = store().await;
    // erin (trial): 3 a month, no throttle.
    for i in 0..3 {
        let reply = with_key(&gw, "/orders", "trial-key-erin-005").await;
        assert_eq!(reply.status, StatusCode::OK);
        let current = reply.header("ratelimit").expect("RateLimit header");
        assert!(current.contains(&format!("\"quota\";r={}", 2 - i)), "{current}");
    }
    let over = with_key(&gw, "/orders", "trial-key-erin-005").await;
    let problem = assert_problem(&over, StatusCode::TOO_MANY_REQUESTS);
    let resets_at = problem["resets_at"].as_str().expect("resets_at");
    assert!(
        resets_at.ends_with("-01T00:00:00Z"),
        "monthly quotas reset on the 1st, 00:00 UTC: {resets_at}"
    );
    assert!(retry_after(&over) > 0);

    // alice (free: burst 5, 8 a day): 7 quick requests, about 5 admitted and 2 throttled; only admitted ones count.
    let mut admitted = 0;
    for _ in 0..7 {
        if with_key(&gw, "/orders", "free-key-alice-0001").await.status == StatusCode::OK {
            admitted += 1;
        }
    }
    assert!(admitted >= 5, "the burst of 5 is admitted");
    let usage = send(
        Method::GET,
        &gw.admin_url("/_gateway/usage"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        Bytes::new(),
    )
    .await
    .expect("usage");
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text());
    let usage = usage.json();
    let alice = usage["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["name"] == "alice"))
        .expect("alice")
        .clone();
    assert_eq!(alice["admitted"], admitted);
    assert_eq!(alice["throttled"], 7 - admitted);
    assert!(admitted < 7, "some requests were throttled");
    assert_eq!(alice["quota"]["used"], admitted, "throttled requests use no quota");
    assert_eq!(alice["quota"]["remaining"], 8 - admitted);
    assert!(
        !usage.to_string().contains("free-key-alice"),
        "usage reports names, never keys"
    );
}

#[tokio::test]
async fn limited_operations_carry_the_rate_limit_headers() {
    let (_upstream, gw, _keys) = store().await;
    let reply = with_key(&gw, "/orders", "free-key-alice-0001").await;
    let policy = reply.header("ratelimit-policy").expect("RateLimit-Policy");
    assert_eq!(
        policy,
        "\"api\";q=40;w=2, \"operation\";q=10;w=1, \"plan\";q=5;w=3, \"quota\";q=8;w=86400"
    );
    let current = reply.header("ratelimit").expect("RateLimit");
    assert!(current.starts_with("\"api\";r=39;"), "{current}");
    assert!(current.contains("\"plan\";r=4;"), "{current}");
    assert!(current.contains("\"quota\";r=7;"), "{current}");
    // The mock is limited API-wide only.
    let status = get(&gw.url("/status")).await;
    assert_eq!(status.header("ratelimit-policy"), Some("\"api\";q=40;w=2"));
}

#[tokio::test]
async fn sighup_reloads_keys_atomically_and_a_bad_file_keeps_the_old_set() {
    let (_upstream, mut gw, keys) = store().await;
    let hangup = |gw: &Gateway| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &gw.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    assert_eq!(
        with_key(&gw, "/orders", "new-key-heidi-0008").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Add heidi, disable alice.
    keys.write(&KEYS.replace(
        "- { key: free-key-alice-0001, name: alice, plan: free }",
        "- { key: free-key-alice-0001, name: alice, plan: free, enabled: false }\n- { key: new-key-heidi-0008, name: heidi, plan: pro }",
    ));
    hangup(&gw);
    let started = Instant::now();
    while with_key(&gw, "/orders", "new-key-heidi-0008").await.status != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key was never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        with_key(&gw, "/orders", "free-key-alice-0001").await.status,
        StatusCode::FORBIDDEN,
        "alice is disabled"
    );
    // A broken file: the keys in force stay.
    keys.write("- { key: oops\n");
    hangup(&gw);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        with_key(&gw, "/orders", "new-key-heidi-0008").await.status,
        StatusCode::OK
    );
    let _ = gw.terminate(Duration::from_secs(10));
    let log = gw.take_stderr();
    assert!(log.contains("API keys reloaded"), "{log}");
    assert!(log.contains("API keys not reloaded"), "{log}");
}

// Keys never appearing in the logs, with every request logged: `gateway_responses::keys_never_appear_in_the_logs_even_at_trace`.

#[tokio::test]
async fn cached_responses_are_per_caller_when_keyed_on_the_caller() {
    let (upstream, gw, _keys) = store().await;
    let carol = with_key(&gw, "/orders", "pro-key-carol-0003").await;
    let dave = with_key(&gw, "/orders", "pro-key-dave-00004").await;
    assert_eq!(carol.header("x-cache"), Some("MISS"));
    assert_eq!(
        dave.header("x-cache"),
        Some("MISS"),
        "dave is never served carol's cached orders"
    );
    assert_eq!(
        with_key(&gw, "/orders", "pro-key-carol-0003").await.header("x-cache"),
        Some("HIT")
    );
    assert_eq!(upstream.calls(), 2);
}
