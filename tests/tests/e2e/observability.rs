//! The admin listener, as an operator and a scraper see it: Prometheus metrics that move as requests go through,
//! health, readiness and info, and the spec the main listener publishes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::auth::AuthServer;
use gateway_tests::client::{Reply, get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{KeyFile, setup, setup_with};

/// One sample of the Prometheus text: its name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (the subset the gateway writes: no escapes in label values).
fn parse_metrics(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap_or_else(|| panic!("labels: {line}"))),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("a label: {pair} in {line}"));
                    (key.to_owned(), value.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap_or_else(|_| panic!("a value: {line}")),
            }
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels` (0 when there is none: counters that
/// never moved are not written).
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert!(matching.len() <= 1, "{name} {labels:?} is ambiguous: {matching:?}");
    matching.first().map_or(0.0, |s| s.value)
}

async fn scrape(gw: &Gateway) -> Vec<Sample> {
    let reply = get(&gw.admin_url("/metrics")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let content_type = reply.headers["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = reply.text();
    assert!(text.ends_with("# EOF\n"), "an OpenMetrics exposition ends with # EOF");
    parse_metrics(&text)
}

/// The SHA-256 of a spec file of the repository, as `sha256sum` would print it.
fn sha256_of(spec: &str) -> String {
    use sha2::Digest as _;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(spec);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sha2::Sha256::digest(text).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn metrics_count_requests_by_operation_method_and_status_class_and_histograms_add_up() {
    let (upstream, gw) = setup().await;
    for id in 1..=3 {
        assert_eq!(get(&gw.url(&format!("/pets/{id}"))).await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/no/such/path")).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(get(&gw.url("/pets/abc")).await.status, StatusCode::BAD_REQUEST);
    let samples = scrape(&gw).await;

    let requests = |operation: &str, method: &str, status: &str| {
        value(
            &samples,
            "gateway_requests_total",
            &[
                ("api", "petstore"),
                ("operation", operation),
                ("method", method),
                ("status", status),
            ],
        )
    };
    assert_eq!(requests("getPet", "GET", "2xx"), 3.0);
    assert_eq!(requests("getPet", "GET", "4xx"), 1.0);
    assert_eq!(requests("(none)", "GET", "4xx"), 2.0);
    assert_eq!(
        value(
            &samples,
            "gateway_errors_total",
            &[("operation", "getPet"), ("kind", "BAD_REQUEST_PARAMETERS")]
        ),
        1.0
    );
    // Label values are operation ids, never raw paths.
    assert!(
        samples
            .iter()
            .all(|s| !s.labels.values().any(|v| v.contains("/no/such")))
    );

    // The latency histogram: cumulative buckets, `+Inf` equal to the count, which equals the responses.
    let buckets: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "gateway_request_duration_seconds_bucket" && s.labels["operation"] == "getPet")
        .collect();
    assert_eq!(buckets.len(), 15, "14 bounds and +Inf: {buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].value <= w[1].value),
        "cumulative: {buckets:?}"
    );
    let inf = buckets.last().expect("buckets");
    assert_eq!(inf.labels["le"], "+Inf");
    let count = value(
        &samples,
        "gateway_request_duration_seconds_count",
        &[("operation", "getPet")],
    );
    assert_eq!(inf.value, count);
    assert_eq!(count, 4.0);
    assert!(
        value(
            &samples,
            "gateway_request_duration_seconds_sum",
            &[("operation", "getPet")]
        ) > 0.0
    );

    // The upstream histogram counted the three proxied requests.
    let upstream_count = value(
        &samples,
        "gateway_upstream_duration_seconds_count",
        &[("upstream", "pets")],
    );
    assert_eq!(upstream_count, 3.0);
    assert_eq!(upstream.calls(), 3);

    // Build info: the spec as compiled in, and the stage served.
    let info = samples
        .iter()
        .find(|s| s.name == "gateway_build_info")
        .expect("gateway_build_info");
    assert_eq!(info.labels["spec_sha256"], sha256_of("specs/petstore.yaml"));
    assert_eq!(info.labels["stage"], "dev");
    assert_eq!(info.value, 1.0);

    // The counters move with the next requests.
    assert_eq!(get(&gw.url("/pets/4")).await.status, StatusCode::OK);
    let again = scrape(&gw).await;
    assert_eq!(
        value(
            &again,
            "gateway_requests_total",
            &[("operation", "getPet"), ("status", "2xx")]
        ),
        4.0
    );
}

#[tokio::test]
async fn cache_hits_and_misses_are_counted_and_the_cache_size_is_a_gauge() {
    let (_upstream, gw) = setup().await;
    let first = get(&gw.url("/pets/7")).await;
    assert_eq!(first.headers["x-cache"], "MISS");
    let second = get(&gw.url("/pets/7")).await;
    assert_eq!(second.headers["x-cache"], "HIT");
    let samples = scrape(&gw).await;
    let lookups = |result: &str| {
        value(
            &samples,
            "gateway_cache_lookups_total",
            &[("operation", "getPet"), ("result", result)],
        )
    };
    assert_eq!(lookups("miss"), 1.0);
    assert_eq!(lookups("hit"), 1.0);
    assert!(value(&samples, "gateway_cache_capacity_bytes", &[]) > 0.0);
    // The bytes sent include the hit's body.
    assert!(
        value(
            &samples,
            "gateway_response_body_bytes_total",
            &[("operation", "getPet")]
        ) >= (first.body.len() + second.body.len()) as f64
    );
}

const STORE_KEYS: &str = "\
- { key: free-key-alice-0001, name: alice, plan: free }
";

#[tokio::test]
async fn throttled_requests_and_auth_failures_are_counted_by_scope_and_reason() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(STORE_KEYS);
    let gw = Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={}/store", upstream.url()),
            "--api-keys".into(),
            keys.0.display().to_string(),
        ],
        &[crate::support::STORE_ENV],
    )
    .expect("store gateway starts");
    let call = |key: Option<&'static str>| {
        let url = gw.url("/orders");
        async move {
            let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
            send(Method::GET, &url, &headers, Bytes::new()).await.expect("answered")
        }
    };
    assert_eq!(call(None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(call(Some("not-a-known-key-000")).await.status, StatusCode::UNAUTHORIZED);
    // The free plan: burst 5 at 2/s; a quick run of 8 is throttled by the plan's bucket after the burst.
    let mut throttled = 0;
    for _ in 0..8 {
        let reply: Reply = call(Some("free-key-alice-0001")).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(throttled >= 1, "the free plan's burst is 5");
    let samples = scrape(&gw).await;
    let auth = |reason: &str| {
        value(
            &samples,
            "gateway_auth_failures_total",
            &[("operation", "listOrders"), ("reason", reason)],
        )
    };
    assert_eq!(auth("missing"), 1.0);
    assert_eq!(auth("invalid"), 1.0);
    let by_plan = value(
        &samples,
        "gateway_throttled_total",
        &[("operation", "listOrders"), ("scope", "plan")],
    );
    let quota = value(
        &samples,
        "gateway_quota_rejections_total",
        &[("operation", "listOrders")],
    );
    // Every 429 is either the plan's bucket or the plan's daily quota (8 a day): nothing is counted twice.
    assert_eq!(by_plan + quota, f64::from(throttled));
    assert!(by_plan >= 1.0);
}

/// A free port of 127.0.0.1 (bound, then released).
fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

#[tokio::test]
async fn health_is_live_at_once_ready_waits_for_jwt_keys_and_info_shows_the_spec_hash() {
    let upstream = Upstream::start().await.expect("upstream");
    let idp = free_port();
    let gw = Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={}/store", upstream.url()),
            "--jwks-url".into(),
            format!("bearer=http://{idp}/jwks.json"),
            "--oidc-url".into(),
            format!("oidc=http://{idp}/.well-known/openid-configuration"),
        ],
        &[crate::support::STORE_ENV],
    )
    .expect("store gateway starts");
    assert_eq!(get(&gw.admin_url("/_gateway/health")).await.status, StatusCode::OK);

    // The identity provider is not up: live, but not ready, and the answer says why.
    let reply = get(&gw.admin_url("/_gateway/ready")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["ready"], false);
    let waiting: Vec<&str> = body["checks"]["jwt_schemes_without_keys"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert!(waiting.contains(&"bearer") && waiting.contains(&"oidc"), "{body}");

    // Once it is, the gateway becomes ready (the fetch is retried with a backoff).
    let _idp = AuthServer::start_on(idp).await.expect("the identity provider starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = get(&gw.admin_url("/_gateway/ready")).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.json()["ready"], true);
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {}", reply.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let info = get(&gw.admin_url("/_gateway/info")).await;
    assert_eq!(info.status, StatusCode::OK);
    let info = info.json();
    assert_eq!(info["gateway"], "store");
    assert_eq!(info["spec_sha256"], sha256_of("specs/store.yaml").as_str());
    assert_eq!(info["spec_file"], "specs/store.yaml");
    assert!(info["uptime_seconds"].is_u64());
}

#[tokio::test]
async fn the_admin_endpoints_are_not_on_the_api_listener() {
    let (_upstream, gw) = setup_with(&["--admin-token", "admin-secret"]).await;
    for path in [
        "/metrics",
        "/_gateway/health",
        "/_gateway/info",
        "/_gateway/cache/stats",
    ] {
        let reply = send(
            Method::GET,
            &gw.url(path),
            &[("authorization", "Bearer admin-secret")],
            Bytes::new(),
        )
        .await
        .expect("answered");
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path} on the API's listener");
    }
    // On the admin listener, the token still guards what shows callers or changes state.
    let reply = get(&gw.admin_url("/_gateway/cache/stats")).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(&gw.admin_url("/_gateway/info")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_published_spec_has_no_gateway_extensions_nor_skipped_operations_and_names_the_stage_base_path() {
    for (stage, server) in [("dev", "/"), ("prod", "/prod")] {
        let (_upstream, gw) = setup_with(&["--stage", stage]).await;
        let reply = get(&gw.url("/_gateway/openapi.json")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers["content-type"], "application/json");
        assert!(reply.headers.contains_key("x-request-id"));
        let text = reply.text();
        // `petsUrl` and the upstream URLs are the operator's: they are not published.
        assert!(!text.contains("pets.internal"), "stage variables are not published");
        let spec = reply.json();
        assert!(!has_key(&spec, "x-gateway"), "no extension survives");
        assert_eq!(spec["servers"], serde_json::json!([{ "url": server }]), "stage {stage}");
        assert_eq!(spec["info"]["title"], "Petstore");
        assert!(spec["paths"]["/pets/{petId}"]["get"].is_object());
        let ids: Vec<&str> = spec["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().into_iter().flat_map(|ops| ops.values()))
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        assert!(ids.contains(&"getPet"));
        assert!(
            !ids.contains(&"legacyExport"),
            "a skipped operation is not published: {ids:?}"
        );
    }
}

/// Whether `key` is a key of any object in `value`.
fn has_key(value: &serde_json::Value, key: &str) -> bool {
    match value {
        serde_json::Value::Object(map) => map.contains_key(key) || map.values().any(|v| has_key(v, key)),
        serde_json::Value::Array(items) => items.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn a_spec_that_says_publish_spec_false_is_not_published() {
    let upstream = Upstream::start().await.expect("upstream");
    let gw = Gateway::start_with_env(
        "store-gateway",
        &["--upstream".into(), format!("default={}/store", upstream.url())],
        &[crate::support::STORE_ENV],
    )
    .expect("store gateway starts");
    assert_eq!(
        get(&gw.url("/_gateway/openapi.json")).await.status,
        StatusCode::NOT_FOUND
    );
}
