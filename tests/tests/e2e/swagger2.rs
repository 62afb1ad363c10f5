//! A gateway generated from a Swagger 2.0 document (tests/specs/swagger2.yaml), which the generator converts to
//! OpenAPI 3.0 first: `swagger2-gateway` in front of a real upstream on 127.0.0.1.
//!
//! What is proven: the converted operations route and forward (method, path, query, body byte for byte); the
//! `in: body` parameter became a request body that is validated against its `definitions` schema (a bad body is a
//! 400 problem+json and never reaches the upstream); the `in: formData` parameters became a form body whose fields
//! are validated with their inline types and bounds; parameters typed inline (`type: integer`), path-level and
//! shared through `#/parameters`, are typed.

use bytes::Bytes;
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{assert_problem, violations};

const BIN: &str = "swagger2-gateway";
const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn setup() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await.expect("upstream starts");
    let gateway =
        Gateway::start(BIN, &["--upstream".into(), format!("pets={}", upstream.url())]).expect("gateway starts");
    (upstream, gateway)
}

async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send(method, url, headers, Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[tokio::test]
async fn converted_operations_route_and_forward_to_the_upstream() {
    let (upstream, gw) = setup().await;
    let reply = call(Method::GET, &gw.url("/pets?tags=a,b&limit=5"), &[], "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/pets");
    assert_eq!(seen["query"], "tags=a,b&limit=5");

    let reply = call(Method::GET, &gw.url("/pets/7"), &[], "").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["path"], "/pets/7");

    // An operation not in the document, and a method the path does not have.
    assert_problem(
        &call(Method::GET, &gw.url("/owners"), &[], "").await,
        StatusCode::NOT_FOUND,
    );
    let reply = call(Method::DELETE, &gw.url("/pets/7"), &[], "").await;
    assert_problem(&reply, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn parameters_typed_inline_are_checked() {
    let (upstream, gw) = setup().await;
    // `petId` is a shared path-level parameter (`$ref: "#/parameters/PetId"`), `type: integer, format: int64`.
    let problem = assert_problem(
        &call(Method::GET, &gw.url("/pets/abc"), &[], "").await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(problem["type"], "urn:gateway:error:bad-request-parameters");
    assert_eq!(problem["parameter"]["name"], "petId");
    let problem = assert_problem(
        &call(Method::GET, &gw.url("/pets?limit=many"), &[], "").await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(problem["parameter"]["name"], "limit");
    assert_eq!(problem["parameter"]["in"], "query");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn the_body_parameter_is_a_validated_request_body() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets?dryRun=true");
    let body = r#"{"name": "Rex", "tag": null}"#;
    let reply = call(Method::POST, &url, &[JSON], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = upstream.last().await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/pets");
    assert_eq!(seen["query"], "dryRun=true");
    assert_eq!(seen["body"], body);
    let forwarded = upstream.calls();

    for (body, pointer, keyword) in [
        // `name` is `required` and a string of at least one character; `id` is `readOnly`.
        (r#"{"tag": "x"}"#, "", "required"),
        (r#"{"name": 5}"#, "/name", "type"),
        (r#"{"name": ""}"#, "/name", "minLength"),
        (r#"{"name": "Rex", "id": 1}"#, "/id", "not"),
    ] {
        let problem = assert_problem(&call(Method::POST, &url, &[JSON], body).await, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:bad-request-body");
        let found = violations(&problem);
        assert!(
            found.contains(&(pointer.to_owned(), keyword.to_owned())),
            "{body}: expected {keyword} at {pointer:?}, got {found:?}"
        );
    }
    // `required: true`, and of the document's `consumes`.
    let problem = assert_problem(&call(Method::POST, &url, &[], "").await, StatusCode::BAD_REQUEST);
    assert_eq!(problem["type"], "urn:gateway:error:bad-request-body");
    let reply = call(Method::POST, &url, &[("content-type", "text/plain")], "Rex").await;
    assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(upstream.calls(), forwarded, "no refused body reached the upstream");
}

#[tokio::test]
async fn form_data_parameters_are_a_validated_form() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets/7/notes");
    let reply = call(Method::POST, &url, &[FORM], "text=fed&stars=3").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = upstream.last().await;
    assert_eq!(seen["path"], "/v1/pets/7/notes");
    assert_eq!(seen["body"], "text=fed&stars=3");
    let forwarded = upstream.calls();

    for (body, pointer, keyword) in [
        ("text=fed&stars=9", "/stars", "maximum"),
        ("text=fed&stars=many", "/stars", "type"),
        ("stars=2", "", "required"),
        ("text=", "/text", "minLength"),
    ] {
        let problem = assert_problem(&call(Method::POST, &url, &[FORM], body).await, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:bad-request-body");
        let found = violations(&problem);
        assert!(
            found.contains(&(pointer.to_owned(), keyword.to_owned())),
            "{body}: expected {keyword} at {pointer:?}, got {found:?}"
        );
    }
    // The operation's `consumes` is the form alone.
    let reply = call(Method::POST, &url, &[JSON], r#"{"text": "fed"}"#).await;
    assert_problem(&reply, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // The shared path parameter is typed here too (`minimum: 1`).
    let reply = call(Method::POST, &gw.url("/pets/x/notes"), &[FORM], "text=fed").await;
    assert_problem(&reply, StatusCode::BAD_REQUEST);
    assert_eq!(upstream.calls(), forwarded, "no refused form reached the upstream");
}
