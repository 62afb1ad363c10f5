//! Proxying, routing, typed parameters, mocks, failures and the process lifecycle.

use std::time::Duration;

use bytes::Bytes;
use gateway_tests::client::{get, send};
use gateway_tests::gateway::Gateway;
use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::support::{BIN, assert_problem, setup};

#[tokio::test]
async fn proxies_method_rewritten_path_query_headers_and_body() {
    let (upstream, gw) = setup().await;
    // `DELETE /pets/{id}` has a rewrite and no transform (`PUT /pets/{petId}` is transformed: see contract.rs).
    let reply = send(
        Method::DELETE,
        &gw.url("/pets/42?verbose=true&x=a%20b"),
        &[("x-custom", "kept"), ("content-type", "application/json")],
        Bytes::from_static(b"{\"name\":\"Rex\"}"),
    )
    .await
    .expect("answered");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-upstream"), Some("echo"), "upstream headers pass back");
    let seen = reply.json();
    assert_eq!(seen["method"], "DELETE");
    assert_eq!(seen["path"], "/v1/pets/42", "rewrite path applied");
    assert_eq!(seen["query"], "verbose=true&x=a%20b", "query passed through unchanged");
    assert_eq!(seen["headers"]["x-custom"][0], "kept");
    assert_eq!(seen["body"], "{\"name\":\"Rex\"}");
    assert_eq!(seen["headers"]["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "http");
    assert_eq!(seen["headers"]["x-forwarded-host"][0], gw.addr.to_string());
    assert_eq!(
        seen["headers"]["host"][0],
        upstream.addr.to_string(),
        "Host is the upstream's"
    );
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn same_route_different_parameter_names_serves_both_operations() {
    let (_upstream, gw) = setup().await;
    let deleted = send(Method::DELETE, &gw.url("/pets/7"), &[], Bytes::new())
        .await
        .expect("answered");
    assert_eq!(deleted.json()["path"], "/v1/pets/7");
    assert_eq!(deleted.json()["method"], "DELETE");
    let got = get(&gw.url("/pets/7")).await;
    assert_eq!(got.json()["method"], "GET");
}

#[tokio::test]
async fn implicit_upstream_from_servers_and_path_item_target() {
    let (_upstream, gw) = setup().await;
    assert_eq!(get(&gw.url("/inventory")).await.json()["path"], "/api/inventory");
    let listed = get(&gw.url("/pets?limit=5&tags=a&tags=b&ids=1,2")).await;
    assert_eq!(listed.json()["path"], "/pets", "path-item target, path unchanged");
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let (_upstream, gw) = setup().await;
    let reply = send(
        Method::GET,
        &gw.url("/pets/1?hop=1"),
        &[
            ("connection", "x-private"),
            ("x-private", "secret"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
        ],
        Bytes::new(),
    )
    .await
    .expect("answered");
    let seen = reply.json();
    for name in ["x-private", "te", "proxy-authorization"] {
        assert!(
            seen["headers"].get(name).is_none(),
            "{name} reached the upstream: {seen}"
        );
    }
    for name in ["x-hop", "keep-alive"] {
        assert!(reply.header(name).is_none(), "{name} reached the client");
    }
}

#[tokio::test]
async fn large_bodies_stream_through_intact() {
    let (_upstream, gw) = setup().await;
    // 24 MiB up and back: the request body is echoed by the upstream as it arrives.
    let payload: Vec<u8> = (0..24 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let reply = send(Method::POST, &gw.url("/pets?echo=body"), &[], payload.clone())
        .await
        .expect("answered");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), payload.len());
    assert!(reply.body == payload, "body changed in transit");
    // A large response body.
    let big = get(&gw.url("/pets?size=16777216")).await;
    assert_eq!(big.body.len(), 16 * 1024 * 1024);
}

#[tokio::test]
async fn response_bodies_are_streamed_not_buffered() {
    let (upstream, gw) = setup().await;
    let request = http::Request::get(gw.url("/pets?gate=g1"))
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        gateway_tests::client::client().request(request),
    )
    .await
    .expect("response head arrives while the upstream is still sending")
    .expect("response");
    let mut body = response.into_body();
    // The first chunk must arrive while the upstream is blocked before its second: a buffering proxy would wait.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk arrives before the upstream finishes")
        .expect("a frame")
        .expect("no error");
    assert_eq!(first.into_data().expect("data"), Bytes::from_static(b"first\n"));
    upstream.release("g1");
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("rest")
        .expect("ok");
    assert_eq!(rest.to_bytes(), Bytes::from_static(b"second\n"));
}

#[tokio::test]
async fn typed_parameters_refuse_bad_values_with_problem_json() {
    let (upstream, gw) = setup().await;
    let cases = [
        ("/pets/abc", "petId", "integer (int64)"),
        ("/pets?limit=ten", "limit", "integer (int32)"),
        ("/pets?limit=99999999999", "limit", "integer (int32)"),
        ("/pets?status=lost", "status", "one of `available`, `pending`, `sold`"),
        ("/pets?ids=1,x", "ids", "array of integer (int64)"),
        ("/pets?minWeight=heavy", "minWeight", "number"),
        ("/pets/1?verbose=yes", "verbose", "boolean"),
        ("/reports/not-a-uuid", "reportId", "uuid"),
    ];
    for (path, param, expected) in cases {
        let reply = get(&gw.url(path)).await;
        let problem = assert_problem(&reply, StatusCode::BAD_REQUEST);
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(param), "{path}: {detail}");
        assert!(detail.contains(expected), "{path}: {detail}");
    }
    let bad_header = send(
        Method::GET,
        &gw.url("/pets/1"),
        &[("x-request-id", "nope")],
        Bytes::new(),
    )
    .await
    .expect("answered");
    let problem = assert_problem(&bad_header, StatusCode::BAD_REQUEST);
    assert!(problem["detail"].as_str().unwrap_or_default().contains("X-Request-Id"));
    assert_eq!(upstream.calls(), 0, "refused requests never reach the upstream");
    // Valid values pass.
    let ok = send(
        Method::GET,
        &gw.url("/pets?limit=3&status=sold&ids=1,2&minWeight=2.5"),
        &[],
        Bytes::new(),
    )
    .await
    .expect("answered");
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_paths_404_and_undeclared_methods_405_with_allow() {
    let (_upstream, gw) = setup().await;
    assert_problem(&get(&gw.url("/nope")).await, StatusCode::NOT_FOUND);
    assert_problem(&get(&gw.url("/legacy/export")).await, StatusCode::NOT_FOUND);
    let reply = send(Method::PATCH, &gw.url("/pets"), &[], Bytes::new())
        .await
        .expect("answered");
    assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED);
    let allow = reply.header("allow").expect("Allow header");
    let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    methods.sort_unstable();
    assert!(methods.contains(&"GET") && methods.contains(&"POST"), "Allow: {allow}");
    assert!(!methods.contains(&"PATCH"));
}

#[tokio::test]
async fn mock_targets_answer_without_an_upstream() {
    let (upstream, gw) = setup().await;
    let health = get(&gw.url("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("x-mock"), Some("yes"));
    assert_eq!(health.header("content-type"), Some("application/json"));
    // The mock's `{"ok": true}`, through the operation's response transform.
    assert_eq!(health.json(), serde_json::json!({ "ok": true, "checked": true }));
    let version = get(&gw.url("/version")).await;
    assert_eq!(version.text(), "petstore 1.0.0\n");
    assert_eq!(version.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn path_parameters_cannot_leave_their_segment() {
    let (_upstream, gw) = setup().await;
    let cases = [
        ("/pets/1/photos/..%2F..%2Fadmin.jpg", "/v1/photos/1/..%2F..%2Fadmin"),
        ("/pets/1/photos/a%2Fb.jpg", "/v1/photos/1/a%2Fb"),
        ("/pets/1/photos/a%3Fb%23c.jpg", "/v1/photos/1/a%3Fb%23c"),
        ("/pets/1/photos/%25zz.jpg", "/v1/photos/1/%25zz"),
    ];
    for (path, upstream_path) in cases {
        let reply = get(&gw.url(path)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.json()["path"], upstream_path, "{path}");
    }
    // A value that is a whole dot-segment would be normalised away by the upstream (`/v1/photos/1/..` is
    // `/v1/photos`): refused, however it is spelt.
    for path in [
        "/pets/1/photos/%2E%2E.jpg",
        "/pets/1/photos/...jpg",
        "/pets/1/photos/..jpg",
    ] {
        let reply = get(&gw.url(path)).await;
        assert_problem(&reply, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn segment_suffixes_are_matched() {
    let (_upstream, gw) = setup().await;
    assert_eq!(
        get(&gw.url("/pets/3/photos/cat.jpg")).await.json()["path"],
        "/v1/photos/3/cat"
    );
    assert_problem(&get(&gw.url("/pets/3/photos/cat.png")).await, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upstream_down_is_502() {
    // A port that was just free: bind, learn it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let gw = Gateway::start(BIN, &["--upstream".into(), format!("pets=http://127.0.0.1:{port}")]).expect("starts");
    let problem = assert_problem(&get(&gw.url("/pets/1")).await, StatusCode::BAD_GATEWAY);
    assert_eq!(problem["detail"], "the upstream could not be reached");
}

#[tokio::test]
async fn slow_upstream_is_504_after_its_timeout() {
    let (_upstream, gw) = setup().await;
    // The `reports` upstream has `timeout: 1s`; the upstream would take 20 s.
    let started = std::time::Instant::now();
    let reply = get(&gw.url("/reports/7f1c0d2e-8a4b-4c7e-9f3a-2b6d5e4c3a21?delay_ms=20000")).await;
    assert_problem(&reply, StatusCode::GATEWAY_TIMEOUT);
    // Not before the timeout: the gateway did wait for the upstream that long.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "504 after {:?}",
        started.elapsed()
    );
    // Not a timing assertion: proof that the gateway answered instead of waiting for the upstream.
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let (upstream, mut gw) = setup().await;
    let url = gw.url("/pets/1?delay_ms=1500");
    let in_flight = tokio::spawn(async move { get(&url).await });
    assert!(
        upstream.wait_for_calls(1, Duration::from_secs(10)).await,
        "request reached the upstream"
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = gw.terminate(Duration::from_secs(20));
        (status, gw)
    });
    let reply = in_flight.await.expect("task");
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the in-flight request completed: {}",
        reply.text()
    );
    let (status, mut gw) = status.await.expect("task");
    let status = status.expect("the gateway exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}; stderr: {}", gw.take_stderr());
    // And it no longer accepts connections.
    assert!(send(Method::GET, &gw.url("/health"), &[], Bytes::new()).await.is_err());
}

#[test]
fn cli_version_help_and_bad_flags() {
    let bin = gateway_tests::gateway::binary(BIN);
    let version = std::process::Command::new(&bin)
        .arg("--version")
        .output()
        .expect("runs");
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        text.contains("petstore") && text.contains("specs/petstore.yaml"),
        "{text}"
    );
    let help = std::process::Command::new(&bin).arg("--help").output().expect("runs");
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--listen", "--stage", "--upstream", "GATEWAY_LISTEN"] {
        assert!(text.contains(flag), "--help lacks {flag}: {text}");
    }
    let bad = std::process::Command::new(&bin)
        .args(["--upstream", "nope=http://127.0.0.1:1"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nope"));
    let bad = std::process::Command::new(&bin)
        .args(["--upstream", "pets=not a url"])
        .output()
        .expect("runs");
    assert!(!bad.status.success());
}

#[tokio::test]
async fn routes_are_logged_at_start_up() {
    let (_upstream, mut gw) = setup().await;
    let _ = gw.terminate(Duration::from_secs(10));
    let log = gw.take_stderr();
    assert!(log.contains("/pets/{petId}") && log.contains("getPet"), "{log}");
}
