//! Gateway-made responses: the default problem+json of each kind, the spec's own renderings (`x-gateway.responses`
//! in `specs/store.yaml`), request ids, the public host names, and credentials never forwarded.
//!
//! `specs/petstore.yaml` declares no `responses`, so it shows the defaults; `specs/store.yaml` renders `THROTTLED`,
//! `NOT_FOUND`, `METHOD_NOT_ALLOWED` and `DEFAULT_5XX` at the top level and `BAD_REQUEST_PARAMETERS` on `getOrder`.

use std::time::Duration;

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{KeyFile, assert_problem, setup};

const KEYS: &str = "\
- { key: pro-key-carol-0003, name: carol, plan: pro }
- { key: pro-key-dave-00004, name: dave, plan: pro }
";

/// The store gateway in front of `upstream_url` (its `default` upstream), with `extra` flags and a log level.
fn store_at(upstream_url: &str, keys: &KeyFile, log: &str) -> Gateway {
    Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={upstream_url}/store"),
            "--api-keys".into(),
            keys.0.display().to_string(),
        ],
        &[("GATEWAY_LOG", log), crate::support::STORE_ENV],
    )
    .expect("store gateway starts")
}

async fn call(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    send(method, url, headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

const CAROL: (&str, &str) = ("x-api-key", "pro-key-carol-0003");

#[tokio::test]
async fn each_kind_has_a_default_problem_json_rendering_with_its_type() {
    let (_upstream, gw) = setup().await;
    let cases = [
        ("/nope", Method::GET, StatusCode::NOT_FOUND, "not-found"),
        (
            "/pets",
            Method::PATCH,
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
        ),
        (
            "/pets/abc",
            Method::GET,
            StatusCode::BAD_REQUEST,
            "bad-request-parameters",
        ),
    ];
    for (path, method, status, kind) in cases {
        let reply = call(method, &gw.url(path), &[]).await;
        let problem = assert_problem(&reply, status);
        assert_eq!(problem["type"], format!("urn:gateway:error:{kind}"), "{path}");
    }
    let reply = call(Method::PATCH, &gw.url("/pets"), &[]).await;
    assert!(reply.header("allow").is_some(), "405 keeps Allow");
    // THROTTLED: `/version` allows a burst of 2.
    let mut refused = None;
    for _ in 0..10 {
        let reply = get(&gw.url("/version")).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("the bucket runs out");
    let problem = assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:gateway:error:throttled");
    assert!(refused.header("retry-after").is_some());
    // UPSTREAM_ERROR: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let gw = Gateway::start(
        crate::support::BIN,
        &["--upstream".into(), format!("pets=http://127.0.0.1:{port}")],
    )
    .expect("starts");
    let problem = assert_problem(&get(&gw.url("/pets")).await, StatusCode::BAD_GATEWAY);
    assert_eq!(problem["type"], "urn:gateway:error:upstream-error");
}

#[tokio::test]
async fn the_spec_renders_its_own_gateway_responses_with_placeholders_filled() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = store_at(&upstream.url(), &keys, "info");

    // NOT_FOUND, with a client request id that needs escaping inside the JSON body.
    let tricky = r#"id-"quoted"-\back"#;
    let reply = call(Method::GET, &gw.url("/nowhere"), &[("x-request-id", tricky)]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-request-id"), Some(tricky));
    assert_eq!(
        reply.json(),
        serde_json::json!({ "error": "NOT_FOUND", "message": "No such resource", "requestId": tricky })
    );

    // METHOD_NOT_ALLOWED keeps Allow, and `{error.status}` is a number.
    let reply = call(Method::DELETE, &gw.url("/orders"), &[CAROL]).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("GET, HEAD"));
    let body = reply.json();
    assert_eq!(body["status"], 405);
    assert_eq!(body["message"], "method DELETE is not allowed on this path");

    // BAD_REQUEST_PARAMETERS, overridden on getOrder only: a text body.
    let reply = call(Method::GET, &gw.url("/orders/abc"), &[CAROL]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(reply.header("x-error-kind"), Some("BAD_REQUEST_PARAMETERS"));
    let id = reply.header("x-request-id").expect("request id").to_owned();
    assert_eq!(
        reply.text(),
        format!("bad order request: path parameter `orderId` must be integer (int64), got \"abc\" (request {id})\n")
    );
    assert_eq!(upstream.calls(), 0, "nothing refused reached the upstream");

    // UPSTREAM_ERROR through DEFAULT_5XX: status, headers and body from the spec.
    let keys_down = KeyFile::new(KEYS);
    let down = store_at("http://127.0.0.1:9", &keys_down, "info");
    let reply = call(Method::GET, &down.url("/orders"), &[CAROL]).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.header("retry-after"), Some("5"));
    let body = reply.json();
    assert_eq!(body["error"], "UPSTREAM_ERROR");
    assert_eq!(body["requestId"].as_str(), reply.header("x-request-id"));
}

#[tokio::test]
async fn request_ids_are_kept_made_and_forwarded() {
    let (_upstream, gw) = setup().await;
    // Kept: the client's, on the response and to the upstream.
    let reply = call(
        Method::GET,
        &gw.url("/inventory"),
        &[("x-request-id", "client-chosen-42")],
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("client-chosen-42"));
    assert_eq!(reply.json()["headers"]["x-request-id"][0], "client-chosen-42");
    // Made: a UUID when there is none, or when the client's is not well-formed (too long, or not visible ASCII).
    let long = "x".repeat(129);
    for headers in [
        vec![],
        vec![("x-request-id", long.as_str())],
        vec![("x-request-id", "has space")],
    ] {
        let reply = call(Method::GET, &gw.url("/inventory"), &headers).await;
        let id = reply.header("x-request-id").expect("made").to_owned();
        assert_eq!(id.len(), 36, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'), "{id}");
        assert_eq!(
            reply.json()["headers"]["x-request-id"][0],
            id.as_str(),
            "the upstream saw the same id"
        );
    }
    // Every gateway-made response has one too, and two requests never share one.
    let a = get(&gw.url("/nope")).await;
    let b = get(&gw.url("/nope")).await;
    assert!(a.header("x-request-id").is_some());
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn hosts_the_api_is_not_served_under_are_misdirected() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = store_at(&upstream.url(), &keys, "info");
    // `hosts: [127.0.0.1, localhost]`: any port.
    assert_eq!(get(&gw.url("/status")).await.status, StatusCode::OK);
    assert_eq!(
        call(Method::GET, &gw.url("/status"), &[("host", "LOCALHOST:1234")])
            .await
            .status,
        StatusCode::OK
    );
    for path in ["/status", "/orders", "/nowhere"] {
        let reply = call(Method::GET, &gw.url(path), &[("host", "evil.example"), CAROL]).await;
        let problem = assert_problem(&reply, StatusCode::MISDIRECTED_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:misdirected-request", "{path}");
    }
    assert_eq!(upstream.calls(), 0);
}

/// The attack from the review: a cached answer built from a forged `Host` must not reach other callers.
#[tokio::test]
async fn a_forged_host_cannot_poison_the_cache() {
    let (upstream, gw) = setup().await;
    let forged = call(Method::GET, &gw.url("/pets/7"), &[("host", "evil.example")]).await;
    assert_eq!(forged.header("x-cache"), Some("MISS"));
    assert_eq!(forged.json()["headers"]["x-forwarded-host"][0], "evil.example");
    let real = get(&gw.url("/pets/7")).await;
    assert_eq!(real.header("x-cache"), Some("MISS"), "another host is another entry");
    let real_host = format!("{}", gw.addr);
    assert_eq!(real.json()["headers"]["x-forwarded-host"][0], real_host.as_str());
    let again = get(&gw.url("/pets/7")).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.json()["headers"]["x-forwarded-host"][0], real_host.as_str());
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn consumed_api_keys_are_not_forwarded_and_the_rest_of_the_query_is_exact() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = store_at(&upstream.url(), &keys, "info");
    let by_header = call(Method::GET, &gw.url("/orders/1?b=%20x&a=1"), &[CAROL]).await;
    assert_eq!(by_header.status, StatusCode::OK, "{}", by_header.text());
    let seen = by_header.json();
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    assert_eq!(seen["query"], "b=%20x&a=1");
    let by_query = get(&gw.url("/orders/1?z=%2F&api_key=pro-key-dave-00004&a=b+c")).await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text());
    let seen = by_query.json();
    assert_eq!(seen["query"], "z=%2F&a=b+c", "the key is gone, every other byte kept");
}

/// Two callers of an operation cached per key get two answers; each later gets their own back.
#[tokio::test]
async fn cached_answers_are_never_shared_between_callers() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = store_at(&upstream.url(), &keys, "info");
    // listOrders: `cache: { ttl: 5s, key: [context.api_key] }`. The echo upstream's answer holds the request id.
    let carol = call(Method::GET, &gw.url("/orders"), &[CAROL]).await;
    let dave = call(Method::GET, &gw.url("/orders"), &[("x-api-key", "pro-key-dave-00004")]).await;
    assert_eq!(
        (carol.header("x-cache"), dave.header("x-cache")),
        (Some("MISS"), Some("MISS"))
    );
    assert_ne!(carol.body, dave.body, "two callers, two answers");
    let carol_again = call(Method::GET, &gw.url("/orders"), &[CAROL]).await;
    assert_eq!(carol_again.header("x-cache"), Some("HIT"));
    assert_eq!(carol_again.body, carol.body, "carol gets her own answer back");
    let dave_again = call(Method::GET, &gw.url("/orders"), &[("x-api-key", "pro-key-dave-00004")]).await;
    assert_eq!(dave_again.body, dave.body, "and dave his");
    assert_eq!(upstream.calls(), 2);
}

/// With request logging at its most verbose, no key appears in the log, while every request is logged.
#[tokio::test]
async fn keys_never_appear_in_the_logs_even_at_trace() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let mut gw = store_at(&upstream.url(), &keys, "trace");
    call(Method::GET, &gw.url("/orders"), &[CAROL]).await;
    call(Method::GET, &gw.url("/orders"), &[("x-api-key", "no-such-key-at-all")]).await;
    get(&gw.url("/orders?api_key=pro-key-dave-00004")).await;
    call(
        Method::GET,
        &gw.url("/orders"),
        &[("cookie", "session=pro-key-dave-00004")],
    )
    .await;
    let _ = gw.terminate(Duration::from_secs(10));
    let log = gw.take_stderr();
    let lines = log
        .lines()
        .filter(|l| l.contains("request") && l.contains("listOrders"))
        .count();
    assert!(lines >= 4, "every request is logged at debug:\n{log}");
    assert!(
        log.lines().any(|l| l.contains("listOrders") && l.contains("carol")),
        "callers are logged by key name:\n{log}"
    );
    for secret in ["pro-key-carol-0003", "no-such-key-at-all", "pro-key-dave-00004"] {
        assert!(!log.contains(secret), "a key leaked into the log");
    }
}
