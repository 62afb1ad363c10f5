//! Several replicas of one API sharing their state through one real Redis (tests/specs/replicas.yaml): three
//! `replicas-gateway` processes, a redis-server of the test's own on a free port, an upstream; every request over
//! real sockets.
//!
//! What is proven: a plan's limit and an operation's limit hold for the API, not per replica; a quota is counted
//! once and survives a restart; usage on any replica shows the totals; the shared cache answers one replica from what
//! another fetched, and a flush on one empties all; a key added or disabled in Redis reaches every replica within
//! the refresh; Redis killed mid-run makes each concern do what `on_failure` declares, without a hang, and Redis
//! back makes the limits shared again with no gateway restarted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::client::{Reply, client, exchange, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::redis::RedisServer;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use sha2::Digest as _;

use crate::support::{KeyFile, assert_problem};

const BIN: &str = "replicas-gateway";
const ADMIN_TOKEN: &str = "replicas-admin-token";
/// The public host the replicas serve behind their load balancer.
const HOST: &str = "api.replicas.example";
/// The key file every replica reads: a key on each plan.
const KEYS: &str =
    "- { key: metered-key-1, name: meg, plan: metered }\n- { key: trial-key-22, name: tia, plan: trial }\n";

/// An upstream, a Redis and `n` replicas of the API in front of them.
struct Fleet {
    upstream: Upstream,
    redis: RedisServer,
    replicas: Vec<Gateway>,
    _keys: KeyFile,
}

fn replica(redis: &str, upstream: &str, keys: &KeyFile) -> Gateway {
    Gateway::start(
        BIN,
        &[
            "--redis".into(),
            redis.into(),
            "--upstream".into(),
            format!("app={upstream}"),
            "--api-keys".into(),
            keys.0.display().to_string(),
            "--admin-token".into(),
            ADMIN_TOKEN.into(),
            "--access-log".into(),
            "off".into(),
        ],
    )
    .expect("replica starts")
}

impl Fleet {
    async fn start(n: usize) -> Self {
        let upstream = Upstream::start().await.expect("upstream starts");
        let redis = RedisServer::start();
        let keys = KeyFile::new(KEYS);
        let replicas = (0..n).map(|_| replica(&redis.url(), &upstream.url(), &keys)).collect();
        Self {
            upstream,
            redis,
            replicas,
            _keys: keys,
        }
    }

    /// `GET path` on one replica, for the host every replica serves (as behind a load balancer: the cache keys the
    /// host, and the replicas' own addresses differ).
    async fn get(&self, replica: usize, path: &str, key: Option<&str>) -> Reply {
        let mut headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        headers.push(("host", HOST));
        send(Method::GET, &self.replicas[replica].url(path), &headers, Bytes::new())
            .await
            .unwrap_or_else(|e| panic!("GET {path} on replica {replica}: {e}"))
    }

    async fn admin(&self, replica: usize, method: Method, path: &str) -> Reply {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        send(
            method,
            &self.replicas[replica].admin_url(path),
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await
        .expect("admin answers")
    }
}

/// Offers `path` to every replica from `clients` concurrent clients for `length`; returns (admitted, refused, how
/// long it took). Every answer must be a 200 or a 429.
async fn flood(fleet: &Fleet, path: &str, key: Option<&str>, clients: usize, length: Duration) -> (u64, u64, Duration) {
    let started = Instant::now();
    let deadline = started + length;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = fleet.replicas[c % fleet.replicas.len()].url(path);
        let key = key.map(str::to_owned);
        tasks.push(tokio::spawn(async move {
            let pooled = client();
            let (mut admitted, mut refused) = (0u64, 0u64);
            while Instant::now() < deadline {
                let headers: Vec<(&str, &str)> = key.as_deref().map(|k| ("x-api-key", k)).into_iter().collect();
                let reply = exchange(pooled.clone(), Method::GET, &url, &headers, Bytes::new())
                    .await
                    .expect("every request is answered");
                match reply.status {
                    StatusCode::OK => admitted += 1,
                    StatusCode::TOO_MANY_REQUESTS => refused += 1,
                    other => panic!("{other} from {url}: {}", reply.text()),
                }
            }
            (admitted, refused)
        }));
    }
    let (mut admitted, mut refused) = (0, 0);
    for task in tasks {
        let (a, r) = task.await.expect("client task");
        admitted += a;
        refused += r;
    }
    (admitted, refused, started.elapsed())
}

/// Asserts that `admitted` is what one bucket of `rate` a second and `burst` allows over `elapsed` — not what one
/// bucket per replica would — and, when the offer was well above it, close to it.
fn assert_one_bucket(what: &str, admitted: u64, refused: u64, elapsed: Duration, rate: u64, burst: u64) {
    let most = burst + (rate as f64 * elapsed.as_secs_f64()).ceil() as u64 + 1;
    assert!(
        admitted <= most,
        "{what}: {admitted} admitted, but one bucket allows at most {most} in {elapsed:?} (three would allow ~{})",
        3 * most
    );
    if admitted + refused >= 3 * most {
        assert!(
            admitted * 10 >= most * 7,
            "{what}: only {admitted} of the {most} the bucket allows were admitted (offered {})",
            admitted + refused
        );
    }
}

fn digest_hex(secret: &str) -> String {
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Polls `check` every 50 ms until it holds or `limit` passes; returns whether it held.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plans_limit_holds_across_three_replicas() {
    let fleet = Fleet::start(3).await;
    // The plan: 20 a second, burst 10. Twelve clients over three replicas offer far more.
    let (admitted, refused, elapsed) =
        flood(&fleet, "/metered", Some("metered-key-1"), 12, Duration::from_secs(2)).await;
    assert!(refused > 0, "the flood was refused in part");
    assert_one_bucket("plan", admitted, refused, elapsed, 20, 10);
    // Each replica reports its Redis calls and the refusals its own buckets made without one.
    let metrics = send(Method::GET, &fleet.replicas[0].admin_url("/metrics"), &[], Bytes::new())
        .await
        .expect("metrics")
        .text();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("gateway_shared_redis_calls_total{") && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
    assert!(metrics.contains("gateway_shared_local_refusals_total"), "{metrics}");
    // The refusals carry the plan's limit, as with one process: a burst past it right after the flood.
    let mut refused = None;
    for _ in 0..40 {
        let reply = fleet.get(1, "/metered", Some("metered-key-1")).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
    }
    let reply = refused.expect("40 requests at once exceed a burst of 10 at 20 a second");
    let problem = assert_problem(&reply, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        problem["detail"].as_str().is_some_and(|d| d.contains("plan")),
        "{problem}"
    );
    assert!(reply.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operations_limit_holds_across_three_replicas() {
    let fleet = Fleet::start(3).await;
    // 10 a second, burst 5, one bucket for every caller of the operation.
    let (admitted, refused, elapsed) = flood(&fleet, "/open/1", None, 9, Duration::from_secs(2)).await;
    assert!(refused > 0);
    assert_one_bucket("operation", admitted, refused, elapsed, 10, 5);
    let reply = fleet.get(2, "/open/1", None).await;
    assert!(
        reply.header("ratelimit-policy").is_some(),
        "the headers come with shared limits too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_quota_is_counted_once_across_replicas_survives_a_restart_and_usage_shows_the_totals() {
    let mut fleet = Fleet::start(3).await;
    // The trial plan: 6 a day. Four on each of two replicas: six admitted in all.
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(fleet.get(i % 2, "/trial", Some("trial-key-22")).await.status);
    }
    let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(admitted, 6, "{statuses:?}");
    let refused = fleet.get(2, "/trial", Some("trial-key-22")).await;
    let problem = assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:gateway:error:quota-exceeded", "{problem}");

    // Usage on the third replica, which served none of them: the totals.
    let usage = fleet.admin(2, Method::GET, "/_gateway/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text());
    let keys = usage.json()["keys"].clone();
    let tia = keys
        .as_array()
        .and_then(|k| k.iter().find(|k| k["name"] == "tia"))
        .cloned()
        .unwrap_or_else(|| panic!("tia in {keys}"));
    assert_eq!(tia["admitted"], 6, "{tia}");
    assert_eq!(tia["throttled"], 3, "{tia}");
    assert_eq!(tia["quota"]["used"], 6, "{tia}");
    assert_eq!(tia["quota"]["remaining"], 0, "{tia}");

    // A restarted replica knows the quota is used up: it is in Redis, not in the process.
    let mut first = fleet.replicas.remove(0);
    first.terminate(Duration::from_secs(10));
    fleet
        .replicas
        .insert(0, replica(&fleet.redis.url(), &fleet.upstream.url(), &fleet._keys));
    let after = fleet.get(0, "/trial", Some("trial-key-22")).await;
    assert_eq!(after.status, StatusCode::TOO_MANY_REQUESTS, "{}", after.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shared_cache_serves_every_replica_and_a_flush_on_one_empties_all() {
    let fleet = Fleet::start(3).await;
    let first = fleet.get(0, "/cached/7", None).await;
    assert_eq!((first.status, first.header("x-cache")), (StatusCode::OK, Some("MISS")));
    assert_eq!(fleet.upstream.calls(), 1);
    // The other replicas have never seen it: Redis has.
    for replica in [1, 2] {
        let reply = fleet.get(replica, "/cached/7", None).await;
        assert_eq!(reply.header("x-cache"), Some("HIT"), "replica {replica}");
        assert_eq!(reply.body, first.body);
    }
    assert_eq!(fleet.upstream.calls(), 1, "one upstream call for three replicas");

    // A flush on replica 1 empties Redis and every replica's own cache.
    let flushed = fleet.admin(1, Method::POST, "/_gateway/cache/flush").await;
    assert_eq!(flushed.status, StatusCode::OK, "{}", flushed.text());
    let emptied = eventually(Duration::from_secs(5), || async {
        let stats = fleet.admin(2, Method::GET, "/_gateway/cache/stats").await.json();
        stats["entries"] == 0
    })
    .await;
    assert!(emptied, "replica 2's own cache was flushed");
    let again = fleet.get(2, "/cached/7", None).await;
    assert_eq!(again.header("x-cache"), Some("MISS"));
    assert_eq!(fleet.upstream.calls(), 2);

    // A refresh a caller forces reaches the others too.
    let _ = fleet.get(0, "/cached/8", None).await;
    let hit = fleet.get(1, "/cached/8", None).await;
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    let calls = fleet.upstream.calls();
    let refreshed = send(
        Method::GET,
        &fleet.replicas[2].url("/cached/8"),
        &[("cache-control", "no-cache"), ("host", HOST)],
        Bytes::new(),
    )
    .await
    .expect("refresh");
    assert_eq!(refreshed.header("x-cache"), Some("MISS"));
    assert_eq!(fleet.upstream.calls(), calls + 1);
    // Replicas 0 and 1 drop their own copy: their next answer is the refreshed one (from Redis), not the old.
    let fresh = refreshed.header("x-upstream-call").map(str::to_owned);
    assert!(fresh.is_some());
    for replica in [0, 1] {
        let dropped = eventually(Duration::from_secs(3), || async {
            fleet
                .get(replica, "/cached/8", None)
                .await
                .header("x-upstream-call")
                .map(str::to_owned)
                == fresh
        })
        .await;
        assert!(dropped, "replica {replica} serves the refreshed answer");
    }
    assert_eq!(
        fleet.upstream.calls(),
        calls + 1,
        "from the shared layer, not the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_refused_after_the_throttle_phase_gets_its_quota_charge_back() {
    let fleet = Fleet::start(2).await;
    // Refused for its parameter after the throttle phase charged the quota (6 a day) in Redis.
    for replica in [0, 1, 0] {
        let reply = fleet.get(replica, "/trial?n=many", Some("trial-key-22")).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST);
    }
    // The charges come back in the background: the quota is whole again.
    let whole = eventually(Duration::from_secs(5), || async {
        let usage = fleet.admin(1, Method::GET, "/_gateway/usage").await.json();
        usage["keys"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["name"] == "tia"))
            .is_some_and(|tia| tia["quota"]["used"] == 0 && tia["admitted"] == 0)
    })
    .await;
    assert!(whole, "the three refused requests were given back");
    let statuses: Vec<StatusCode> = {
        let mut statuses = Vec::new();
        for i in 0..7 {
            statuses.push(fleet.get(i % 2, "/trial?n=1", Some("trial-key-22")).await.status);
        }
        statuses
    };
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        6,
        "all six of the quota for valid requests: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_redis_costs_requests_at_most_its_timeout_and_thawed_it_is_used_again() {
    let fleet = Fleet::start(2).await;
    assert_eq!(
        fleet.get(0, "/trial", Some("trial-key-22")).await.status,
        StatusCode::OK
    );
    // SIGSTOP: connections stay open and nothing answers, as a stalled host; every call must end at the spec's
    // timeout (100 ms), never wait on TCP. Each request is given 3 s here, thirty times that.
    fleet.redis.freeze();
    for i in 0..12 {
        let replica = i % 2;
        let reply = tokio::time::timeout(
            Duration::from_secs(3),
            fleet.get(replica, "/trial", Some("trial-key-22")),
        )
        .await
        .unwrap_or_else(|_| panic!("request {i} waited on the frozen Redis"));
        assert_problem(&reply, StatusCode::SERVICE_UNAVAILABLE);
        let open = tokio::time::timeout(Duration::from_secs(3), fleet.get(replica, "/open/9", None))
            .await
            .unwrap_or_else(|_| panic!("request {i} waited on the frozen Redis"));
        assert!(
            matches!(open.status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
            "limits open"
        );
    }
    fleet.redis.thaw();
    for replica in 0..2 {
        // The quota is decided by Redis again: admitted, or refused because the scripts that timed out ran once
        // Redis went on (they had been sent) — anything but the 503 of a quota that cannot be checked.
        let back = eventually(Duration::from_secs(15), || async {
            let status = fleet.get(replica, "/trial", Some("trial-key-22")).await.status;
            matches!(status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS)
        })
        .await;
        assert!(back, "replica {replica} uses Redis again after it thawed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_added_or_disabled_in_redis_reaches_every_replica_within_the_refresh() {
    let fleet = Fleet::start(3).await;
    let mut redis = fleet.redis.client().await;
    let field = digest_hex("dave-key-333");
    let unknown = fleet.get(0, "/metered", Some("dave-key-333")).await;
    assert_problem(&unknown, StatusCode::UNAUTHORIZED);

    let _: () = redis::cmd("HSET")
        .arg("gw:replicas:keys")
        .arg(&field)
        .arg(r#"{"name":"dave","plan":"metered"}"#)
        .query_async(&mut redis)
        .await
        .expect("HSET");
    // keys_refresh is 250ms: every replica within a few of them.
    let added = Instant::now();
    for replica in 0..3 {
        let works = eventually(Duration::from_secs(3), || async {
            fleet.get(replica, "/metered", Some("dave-key-333")).await.status == StatusCode::OK
        })
        .await;
        assert!(works, "replica {replica} admits the key added in Redis");
    }
    let took = added.elapsed();
    // The bound is keys_refresh (250 ms) plus a request; a second leaves room for a loaded machine.
    assert!(
        took < Duration::from_secs(2),
        "the added key took {took:?} to reach every replica"
    );

    let _: () = redis::cmd("HSET")
        .arg("gw:replicas:keys")
        .arg(&field)
        .arg(r#"{"name":"dave","plan":"metered","enabled":false}"#)
        .query_async(&mut redis)
        .await
        .expect("HSET");
    for replica in 0..3 {
        let refused = eventually(Duration::from_secs(3), || async {
            fleet.get(replica, "/metered", Some("dave-key-333")).await.status == StatusCode::FORBIDDEN
        })
        .await;
        assert!(
            refused,
            "replica {replica} refuses the key disabled in Redis (added in {took:?})"
        );
    }
    // Removed: unknown again, everywhere.
    let _: () = redis::cmd("HDEL")
        .arg("gw:replicas:keys")
        .arg(&field)
        .query_async(&mut redis)
        .await
        .expect("HDEL");
    for replica in 0..3 {
        let gone = eventually(Duration::from_secs(3), || async {
            fleet.get(replica, "/metered", Some("dave-key-333")).await.status == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(gone, "replica {replica} forgets the key removed from Redis");
    }
    // The key file's keys never stopped working.
    assert_eq!(
        fleet.get(1, "/metered", Some("metered-key-1")).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_run_each_concern_does_as_declared_and_redis_back_shares_the_limits_again() {
    let mut fleet = Fleet::start(3).await;
    assert_eq!(
        fleet.get(0, "/trial", Some("trial-key-22")).await.status,
        StatusCode::OK
    );
    let _ = fleet.get(0, "/cached/1", None).await;

    fleet.redis.kill();
    // Limits: open (the replica's own bucket still applies). Quotas: closed (503). Cache: bypass (the replica's own
    // cache, then the upstream). No request waits long: each is answered well within the client's limit.
    let started = Instant::now();
    let open = fleet.get(1, "/open/2", None).await;
    assert_eq!(open.status, StatusCode::OK, "limits open: {}", open.text());
    let quota = fleet.get(1, "/trial", Some("trial-key-22")).await;
    let problem = assert_problem(&quota, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:gateway:error:service-unavailable", "{problem}");
    let local = fleet.get(0, "/cached/1", None).await;
    assert_eq!(
        (local.status, local.header("x-cache")),
        (StatusCode::OK, Some("HIT")),
        "replica 0's own copy"
    );
    let bypassed = fleet.get(2, "/cached/2", None).await;
    assert_eq!(bypassed.status, StatusCode::OK, "cache bypassed to the upstream");
    // A flush cannot reach the others: said so, not pretended.
    let flush = fleet.admin(0, Method::POST, "/_gateway/cache/flush").await;
    assert_eq!(flush.status, StatusCode::SERVICE_UNAVAILABLE, "{}", flush.text());
    // The file's keys still work; requests go on being answered quickly while Redis is down.
    for _ in 0..20 {
        let reply = fleet.get(2, "/metered", Some("metered-key-1")).await;
        assert!(
            matches!(reply.status, StatusCode::OK | StatusCode::TOO_MANY_REQUESTS),
            "{}",
            reply.status
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no request hung on the dead Redis"
    );

    // Redis back (empty: nothing was saved), no gateway restarted: the quota works again once the replicas'
    // pause ends, and the operation's limit is one bucket for all three again.
    fleet.redis.restart();
    for replica in 0..3 {
        // Each asked until its pause ends: a 503 charges nothing, so the quota (6, from 0 again) is not used up.
        let back = eventually(Duration::from_secs(15), || async {
            fleet.get(replica, "/trial", Some("trial-key-22")).await.status == StatusCode::OK
        })
        .await;
        assert!(back, "replica {replica} uses Redis again");
    }
    let (admitted, refused, elapsed) = flood(&fleet, "/open/3", None, 9, Duration::from_secs(2)).await;
    assert!(refused > 0);
    assert_one_bucket("operation after Redis came back", admitted, refused, elapsed, 10, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_starts_and_serves_while_its_redis_is_down() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    // A port nobody listens on.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let gateway = replica(&format!("redis://{nowhere}/0"), &upstream.url(), &keys);
    let open = send(Method::GET, &gateway.url("/open/1"), &[], Bytes::new())
        .await
        .expect("answered");
    assert_eq!(open.status, StatusCode::OK);
    let quota = send(
        Method::GET,
        &gateway.url("/trial"),
        &[("x-api-key", "trial-key-22")],
        Bytes::new(),
    )
    .await
    .expect("answered");
    assert_problem(&quota, StatusCode::SERVICE_UNAVAILABLE);
    // A key that may be in the Redis not read yet is not called invalid.
    let unknown = send(
        Method::GET,
        &gateway.url("/metered"),
        &[("x-api-key", "who-knows-1")],
        Bytes::new(),
    )
    .await
    .expect("answered");
    assert_problem(&unknown, StatusCode::SERVICE_UNAVAILABLE);
}
