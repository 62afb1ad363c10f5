//! Validation and transforms (`x-gateway.validate`, `x-gateway.transform` in `specs/petstore.yaml`): bodies and
//! parameters checked against their schemas, size limits, header/query/body/status transforms both ways, and
//! upstream responses checked against the spec (contract drift). The upstream echoes what it received and keeps
//! the last request it read whole at `/__last`.

use std::time::Duration;

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use http::{Method, StatusCode};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;

use crate::support::{assert_problem, setup, setup_with, violations};

const ADMIN: &str = "admin-token-for-contract-tests";

async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send(method, url, headers, Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

async fn put_json(url: &str, body: &str) -> Reply {
    call(Method::PUT, url, &[("content-type", "application/json")], body).await
}

#[tokio::test]
async fn request_transforms_edit_headers_query_and_body() {
    let (upstream, gw) = setup().await;
    let reply = call(
        Method::PUT,
        &gw.url("/pets/42?q=cats&debug=true&keep=1"),
        &[("content-type", "application/json"), ("cookie", "session=secret")],
        r#"{"name": "Rex", "status": "sold"}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = upstream.last().await;
    assert_eq!(seen["path"], "/v1/pets/42");
    let query = seen["query"].as_str().unwrap_or_default();
    let pairs: Vec<&str> = query.split('&').collect();
    assert_eq!(pairs, ["search=cats", "keep=1", "source=gateway"], "query: {query}");
    assert_eq!(seen["headers"]["x-pet-id"][0], "42");
    assert_eq!(seen["headers"]["x-search"][0], "cats");
    assert!(seen["headers"].get("cookie").is_none(), "Cookie was removed");
    let forwarded: serde_json::Value =
        serde_json::from_str(seen["body"].as_str().unwrap_or_default()).expect("the upstream got JSON");
    assert_eq!(forwarded, serde_json::json!({"name": "Rex", "tag": "none", "pet": 42}));
    assert_eq!(
        seen["headers"]["content-length"][0],
        seen["body_bytes"].to_string(),
        "Content-Length is the new body's"
    );
}

#[tokio::test]
async fn response_transforms_filter_the_body_map_the_status_and_edit_headers() {
    let (_upstream, gw) = setup().await;
    let answer = r#"{"id":42,"name":"Rex","secret":"s3"}"#;
    let url = gw.url(&format!("/pets/42?body_json={}", encode(answer)));
    let reply = put_json(&url, r#"{"name":"Rex"}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), serde_json::json!({"id": 42, "name": "Rex"}));
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert_eq!(reply.header("cache-control"), Some("public, max-age=60"));
    assert!(reply.header("x-upstream").is_none(), "X-Upstream was removed");

    // 404 → 410; the filter applies to 2xx answers only, so the upstream's body passes.
    let reply = put_json(&gw.url("/pets/42?status=404"), r#"{"name":"Rex"}"#).await;
    assert_eq!(reply.status, StatusCode::GONE);
    assert_eq!(reply.json()["path"], "/v1/pets/42");
}

#[tokio::test]
async fn mock_answers_are_transformed_too() {
    let (_upstream, gw) = setup().await;
    let reply = get(&gw.url("/health")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), serde_json::json!({"ok": true, "checked": true}));
    assert_eq!(reply.header("x-served-by"), Some("gateway health"));
}

#[tokio::test]
async fn a_filled_header_value_with_cr_lf_is_never_sent() {
    let (upstream, gw) = setup().await;
    let before = upstream.calls();
    let reply = put_json(&gw.url("/pets/42?q=a%0D%0AX-Injected:%20yes"), r#"{"name":"Rex"}"#).await;
    let problem = assert_problem(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(problem["type"], "urn:gateway:error:internal");
    assert_eq!(upstream.calls(), before, "the request never reached the upstream");
}

#[tokio::test]
async fn a_valid_body_passes_byte_for_byte_without_a_body_filter() {
    let (upstream, gw) = setup().await;
    let body = "{ \"text\" :  \"fed at 9\",\n  \"stars\": 4 }";
    let reply = call(
        Method::POST,
        &gw.url("/pets/7/notes"),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.last().await["body"], body);
}

#[tokio::test]
async fn each_schema_violation_class_is_a_400_with_its_pointer() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets/1");
    let cases: &[(&str, &str, &str)] = &[
        (r#"{"name": 5}"#, "/name", "type"),
        (r#"{}"#, "", "required"),
        (r#"{"name": "Rex", "status": "lost"}"#, "/status", "enum"),
        (r#"{"name": "Rex", "age": 51}"#, "/age", "maximum"),
        (r#"{"name": "Rex", "age": -1}"#, "/age", "minimum"),
        (r#"{"name": "R2D2"}"#, "/name", "pattern"),
        (r#"{"name": "Rex", "color": "red"}"#, "", "additionalProperties"),
        (
            r#"{"name": "Rex", "contact": {"email": "a@b.example", "phone": "1"}}"#,
            "/contact",
            "oneOf",
        ),
        (
            r#"{"name": "Rex", "contact": {"email": "not an address"}}"#,
            "/contact",
            "oneOf",
        ),
        (r#"{"name": "Rex", "tag": 5}"#, "/tag", "type"),
        (r#"{"name": "Rex", "id": 3}"#, "/id", "not"),
    ];
    let before = upstream.calls();
    for (body, pointer, keyword) in cases {
        let reply = put_json(&url, body).await;
        let problem = assert_problem(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:bad-request-body", "{body}");
        let found = violations(&problem);
        assert!(
            found.contains(&((*pointer).to_owned(), (*keyword).to_owned())),
            "{body}: expected {keyword} at {pointer:?}, got {found:?}"
        );
    }
    assert_eq!(upstream.calls(), before, "no invalid body reached the upstream");

    // Every violation is listed, not only the first.
    let problem = assert_problem(
        &put_json(&url, r#"{"name": 5, "age": 99}"#).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(violations(&problem).len(), 2, "{problem}");
    // `nullable: true` admits null.
    let reply = put_json(&url, r#"{"name": "Rex", "tag": null}"#).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn bodies_must_be_present_json_and_of_a_declared_media_type() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets/1");
    let before = upstream.calls();
    let problem = assert_problem(&call(Method::PUT, &url, &[], "").await, StatusCode::BAD_REQUEST);
    assert_eq!(problem["type"], "urn:gateway:error:bad-request-body");
    let reply = call(Method::PUT, &url, &[("content-type", "text/plain")], "Rex").await;
    let problem = assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("application/json"),
        "{problem}"
    );
    let problem = assert_problem(&put_json(&url, r#"{"name": "#).await, StatusCode::BAD_REQUEST);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not valid JSON"),
        "{problem}"
    );
    assert_eq!(upstream.calls(), before);
}

#[tokio::test]
async fn form_bodies_are_validated_after_coercion() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets/7/notes");
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let reply = call(Method::POST, &url, &form, "text=fed&stars=3&urgent=true").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.last().await["body"], "text=fed&stars=3&urgent=true");
    for (body, pointer, keyword) in [
        ("text=fed&stars=9", "/stars", "maximum"),
        ("text=fed&stars=many", "/stars", "type"),
        ("stars=2", "", "required"),
    ] {
        let problem = assert_problem(&call(Method::POST, &url, &form, body).await, StatusCode::BAD_REQUEST);
        let found = violations(&problem);
        assert!(
            found.contains(&(pointer.to_owned(), keyword.to_owned())),
            "{body}: expected {keyword} at {pointer:?}, got {found:?}"
        );
    }
}

#[tokio::test]
async fn deep_object_and_json_parameters_are_checked_against_their_schemas() {
    let (_upstream, gw) = setup().await;
    let reply = get(&gw.url(&format!(
        "/pets/7/notes?filter[minStars]=3&where={}",
        encode(r#"{"kind":"vet"}"#)
    )))
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    for (query, pointer, keyword) in [
        ("filter[minStars]=9".to_owned(), "/minStars", "maximum"),
        ("filter[bogus]=1".to_owned(), "", "additionalProperties"),
        (format!("where={}", encode(r#"{"kind":"cat"}"#)), "/kind", "enum"),
    ] {
        let reply = get(&gw.url(&format!("/pets/7/notes?{query}"))).await;
        let problem = assert_problem(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:bad-request-parameters");
        let found = violations(&problem);
        assert!(
            found.contains(&(pointer.to_owned(), keyword.to_owned())),
            "{query}: expected {keyword} at {pointer:?}, got {found:?}"
        );
    }
    let problem = assert_problem(
        &get(&gw.url("/pets/7/notes?where=notjson")).await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(problem["parameter"]["name"], "where");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let (upstream, gw) = setup().await;
    let before = upstream.calls();
    let body = format!(r#"{{"text": "{}"}}"#, "x".repeat(70 * 1024));
    let reply = call(
        Method::POST,
        &gw.url("/pets/7/notes"),
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    let problem = assert_problem(&reply, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["type"], "urn:gateway:error:payload-too-large");
    assert_eq!(upstream.calls(), before);
}

/// Sends `total` bytes as a chunked body (no `Content-Length`), 16 KiB a frame. With `hold`, the body then stays
/// open (unfinished) until the connection goes: a server that refuses it mid-way can answer while the client is not
/// writing (a client still writing when the server closes sees a broken pipe instead of the answer).
async fn send_chunked_holding(
    method: Method,
    url: &str,
    content_type: &str,
    total: usize,
    hold: bool,
) -> Result<StatusCode, String> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'a'; 16 * 1024]);
        let mut sent = 0;
        while sent < total {
            if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                return;
            }
            sent += chunk.len();
        }
        if hold {
            tx.closed().await;
        }
    });
    let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", content_type)
        // hyper sends a GET body of unknown length only when told it is chunked.
        .header("transfer-encoding", "chunked")
        .body(body)
        .map_err(|e| e.to_string())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    Ok(response.status())
}

/// [`send_chunked_holding`], ending the body after `total` bytes.
async fn send_chunked(method: Method, url: &str, content_type: &str, total: usize) -> Result<StatusCode, String> {
    send_chunked_holding(method, url, content_type, total, false).await
}

#[tokio::test]
async fn an_oversized_chunked_body_is_cut_with_413() {
    let (upstream, gw) = setup().await;
    // Streamed (not validated): counted as it flows, cut at the API-wide 1 MiB; the upstream never gets it whole.
    let over = 1024 * 1024 + 256 * 1024;
    let status = send_chunked_holding(
        Method::GET,
        &gw.url("/inventory"),
        "application/octet-stream",
        over,
        true,
    )
    .await;
    assert_eq!(status, Ok(StatusCode::PAYLOAD_TOO_LARGE));
    assert_eq!(
        upstream.last().await,
        serde_json::Value::Null,
        "no request reached the upstream whole"
    );
    // Validated: read up to the operation's 64 KiB, never forwarded at all.
    let before = upstream.calls();
    let status = send_chunked_holding(
        Method::POST,
        &gw.url("/pets/7/notes"),
        "application/json",
        128 * 1024,
        true,
    )
    .await;
    assert_eq!(status, Ok(StatusCode::PAYLOAD_TOO_LARGE));
    assert_eq!(upstream.calls(), before);
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_reaches_the_upstream_whole_on_any_method() {
    let (upstream, gw) = setup().await;
    // hyper drops a GET body of unknown length unless the request says it is chunked: the gateway says so.
    for (method, path) in [(Method::GET, "/inventory"), (Method::POST, "/pets")] {
        let status = send_chunked(method.clone(), &gw.url(path), "text/plain", 256 * 1024).await;
        assert_eq!(status, Ok(StatusCode::OK), "{method} {path}");
        let seen = upstream.last().await;
        assert_eq!(seen["method"], method.as_str());
        assert_eq!(seen["body_bytes"], 256 * 1024, "{method} {path}");
    }
}

async fn drift(gw: &gateway_tests::gateway::Gateway, operation: &str) -> serde_json::Value {
    let reply = call(
        Method::GET,
        &gw.admin_url("/_gateway/drift"),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()["operations"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["operation"] == operation).cloned())
        .unwrap_or_else(|| panic!("no drift report for {operation}: {}", reply.text()))
}

#[tokio::test]
async fn response_drift_is_counted_in_report_mode_and_the_answer_is_unchanged() {
    let (_upstream, gw) = setup_with(&["--admin-token", ADMIN]).await;
    let good = get(&gw.url(&format!("/pets/1/owner?body_json={}", encode(r#"{"name":"Ann"}"#)))).await;
    assert_eq!(good.status, StatusCode::OK);
    let bad_body = r#"{"name":5}"#;
    let bad = get(&gw.url(&format!("/pets/1/owner?body_json={}", encode(bad_body)))).await;
    assert_eq!(bad.status, StatusCode::OK, "report mode never changes the answer");
    assert_eq!(bad.text(), bad_body);
    let report = drift(&gw, "getOwner").await;
    assert_eq!(report["checked"], 2, "{report}");
    assert_eq!(report["mismatched"], 1, "{report}");
    assert_eq!(
        report["last_mismatch"],
        serde_json::json!({"status": 200, "pointer": "/name", "keyword": "type"})
    );
    // A HEAD answer has no body to check: it is not counted (and never a false mismatch).
    let head = call(
        Method::HEAD,
        &gw.url(&format!("/pets/1/owner?body_json={}", encode(bad_body))),
        &[],
        "",
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(drift(&gw, "getOwner").await["checked"], 2);
    // A status the spec does not declare is drift too.
    assert_eq!(
        get(&gw.url("/pets/1/owner?status=500")).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let report = drift(&gw, "getOwner").await;
    assert_eq!(report["mismatched"], 2, "{report}");
    assert_eq!(report["last_mismatch"]["keyword"], "status");
}

#[tokio::test]
async fn response_drift_is_a_502_in_enforce_mode() {
    let (_upstream, gw) = setup().await;
    let ok = get(&gw.url(&format!(
        "/pets/1/microchip?body_json={}",
        encode(r#"{"code":"123456789012345"}"#)
    )))
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let bad = get(&gw.url(&format!("/pets/1/microchip?body_json={}", encode(r#"{"code":"12"}"#)))).await;
    let problem = assert_problem(&bad, StatusCode::BAD_GATEWAY);
    assert_eq!(problem["type"], "urn:gateway:error:upstream-error");
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
