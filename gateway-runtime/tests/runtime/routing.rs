//! Phases 1 and 2: route matching (404, 405, HEAD), typed parameters (400), mock targets.

use gateway_runtime::http::Request;

use crate::support::*;

#[tokio::test]
async fn typed_query_parameter_is_refused_with_a_problem_naming_it() {
    let gw = start_gateway().await;
    let (parts, body) = get(&gw.url("/pets?limit=abc")).await;
    assert_eq!(
        problem(&parts, &body, 400),
        serde_json::json!({
            "type": "urn:gateway:error:bad-request-parameters",
            "title": "Invalid request parameters",
            "status": 400,
            "detail": "query parameter `limit` must be integer (int32), got \"abc\"",
            "parameter": {"name": "limit", "in": "query", "expected": "integer (int32)"}
        })
    );
    // A bad value is named even next to a valid list.
    let (parts, body) = get(&gw.url("/pets?tags=a,b&limit=2147483648")).await;
    let value = problem(&parts, &body, 400);
    assert_eq!(value["parameter"]["name"], "limit");
    // Valid values reach the upstream.
    let (parts, body) = get(&gw.url("/pets?limit=10&tags=a,b")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["query"], "limit=10&tags=a,b");
}

#[tokio::test]
async fn typed_path_and_header_parameters_are_checked() {
    let gw = start_gateway().await;
    let (parts, body) = get(&gw.url("/pets/abc")).await;
    let value = problem(&parts, &body, 400);
    assert_eq!(
        value["parameter"],
        serde_json::json!({"name": "petId", "in": "path", "expected": "integer (int64)"})
    );
    assert_eq!(
        value["detail"],
        "path parameter `petId` must be integer (int64), got \"abc\""
    );

    let request = Request::get(gw.url("/pets/7"))
        .header("x-request-id", "nope")
        .body(empty())
        .expect("request");
    let (parts, body) = send(request).await;
    let value = problem(&parts, &body, 400);
    assert_eq!(value["parameter"]["name"], "X-Request-Id");
    assert_eq!(value["parameter"]["in"], "header");
    assert_eq!(value["parameter"]["expected"], "string (uuid)");

    let (parts, body) = get(&gw.url("/versioned")).await;
    let value = problem(&parts, &body, 400);
    assert_eq!(
        value["detail"],
        "required header parameter `X-Api-Version` is missing; expected integer (int32)"
    );

    let request = Request::get(gw.url("/versioned"))
        .header("x-api-version", "2")
        .body(empty())
        .expect("request");
    let (parts, _) = send(request).await;
    assert_eq!(parts.status, 204);
}

#[tokio::test]
async fn unknown_path_is_404_problem() {
    let gw = start_gateway().await;
    for path in ["/nope", "/pets/1/2/3", "/pets/", "/"] {
        let (parts, body) = get(&gw.url(path)).await;
        let value = problem(&parts, &body, 404);
        assert_eq!(value["title"], "Not found", "{path}");
        assert_eq!(value["type"], "urn:gateway:error:not-found", "{path}");
    }
}

#[tokio::test]
async fn undeclared_method_is_405_with_allow() {
    let gw = start_gateway().await;
    let request = Request::delete(gw.url("/pets")).body(empty()).expect("request");
    let (parts, body) = send(request).await;
    let value = problem(&parts, &body, 405);
    assert_eq!(parts.headers["allow"], "GET, HEAD, POST");
    assert_eq!(value["title"], "Method not allowed");
    assert_eq!(value["type"], "urn:gateway:error:method-not-allowed");
    assert_eq!(value["detail"], "method DELETE is not allowed on this path");

    let request = Request::get(gw.url("/pets/1/toys/2")).body(empty()).expect("request");
    let (parts, body) = send(request).await;
    problem(&parts, &body, 405);
    assert_eq!(parts.headers["allow"], "POST");
}

#[tokio::test]
async fn head_is_served_by_the_get_operation_without_a_body() {
    let gw = start_gateway().await;
    let request = Request::head(gw.url("/pets")).body(empty()).expect("request");
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-echo"], "yes");
    assert!(body.is_empty());
}

#[tokio::test]
async fn mock_target_answers_from_the_spec() {
    let gw = start_gateway().await;
    let (parts, body) = get(&gw.url("/health")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert_eq!(parts.headers["x-mock"], "yes");
    assert_eq!(&body[..], br#"{"status":"ok"}"#);
}
