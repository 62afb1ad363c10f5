//! An OpenAPI 3.1 document read natively: `duo-c` (tests/specs/duo-c.yaml, under `/c` of the `duo` gateway) in front
//! of a real upstream on 127.0.0.1.
//!
//! What is proven: its request body is validated as JSON Schema 2020-12 — `const`, a type array with `null`,
//! `prefixItems` with `items: false`, a numeric `exclusiveMinimum`, `dependentRequired`, and keywords beside a
//! `$ref` with `unevaluatedProperties: false` — so a body violating any of them is a 400 problem+json that never
//! reaches the upstream, and a valid one is forwarded byte for byte; its path item comes from
//! `components/pathItems`; its query parameter typed `[integer, "null"]` is checked as an integer.

use bytes::Bytes;
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{assert_problem, violations};

const BIN: &str = "duo-gateway";
const JSON: (&str, &str) = ("content-type", "application/json");

async fn setup() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await.expect("upstream starts");
    let gateway = Gateway::start(BIN, &["--upstream".into(), format!("duo-c/orders={}", upstream.url())])
        .expect("gateway starts");
    (upstream, gateway)
}

async fn post(gw: &Gateway, path: &str, body: &str) -> Reply {
    let url = gw.url(path);
    send(Method::POST, &url, &[JSON], Bytes::from(body.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[tokio::test]
async fn a_3_1_body_is_checked_with_json_schema_2020_12_semantics() {
    let (upstream, gw) = setup().await;
    // Each body breaks one 2020-12 rule; `$ref` siblings (`required`, `unevaluatedProperties`) apply too.
    // (body, pointer, keyword, a word of the detail)
    let refused: &[(&str, &str, &str, &str)] = &[
        (r#"{"kind": "quote", "line": ["sku-1", 2]}"#, "/kind", "const", "order"),
        (
            r#"{"kind": "order", "line": ["sku-1", 2], "note": 5}"#,
            "/note",
            "type",
            "null",
        ),
        (r#"{"kind": "order", "line": [7, 2]}"#, "/line/0", "type", "string"),
        (
            r#"{"kind": "order", "line": ["sku-1", 0]}"#,
            "/line/1",
            "exclusiveMinimum",
            "0",
        ),
        (
            r#"{"kind": "order", "line": ["sku-1", 2, "more"]}"#,
            "/line/2",
            "falseSchema",
            "more",
        ),
        (
            r#"{"kind": "order", "line": ["sku-1", 2], "gift": true}"#,
            "",
            "required",
            "recipient",
        ),
        (r#"{"kind": "order"}"#, "", "required", "line"),
        (
            r#"{"kind": "order", "line": ["sku-1", 2], "coupon": "x"}"#,
            "",
            "unevaluatedProperties",
            "coupon",
        ),
    ];
    for (body, pointer, keyword, word) in refused {
        let reply = post(&gw, "/c/orders", body).await;
        let problem = assert_problem(&reply, StatusCode::BAD_REQUEST);
        assert_eq!(problem["type"], "urn:gateway:error:bad-request-body", "{body}");
        // (A failing member drops its annotations, so `unevaluatedProperties` may add its own violation.)
        let found = violations(&problem);
        let at = found
            .iter()
            .position(|(p, k)| p == pointer && k == keyword)
            .unwrap_or_else(|| panic!("{body}: expected `{keyword}` at `{pointer}`, got {found:?}"));
        assert!(
            problem["errors"][at]["detail"]
                .as_str()
                .is_some_and(|d| d.contains(word)),
            "{body}: {problem}"
        );
    }
    assert_eq!(upstream.calls(), 0, "no refused body reached the upstream");

    // Valid: a null note (the type array allows it), a gift with its recipient.
    let body = r#"{"kind": "order", "line": ["sku-1", 2], "note": null, "gift": true, "recipient": "Ada"}"#;
    let reply = post(&gw, "/c/orders?limit=3", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = upstream.last().await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["path"], "/v1/orders");
    assert_eq!(seen["body"], body, "forwarded byte for byte");
}

#[tokio::test]
async fn a_3_1_parameter_typed_with_a_type_array_is_still_typed() {
    let (upstream, gw) = setup().await;
    let body = r#"{"kind": "order", "line": ["sku-1", 1]}"#;
    let reply = post(&gw, "/c/orders?limit=many", body).await;
    let problem = assert_problem(&reply, StatusCode::BAD_REQUEST);
    assert_eq!(problem["parameter"]["name"], "limit", "{problem}");
    assert_eq!(upstream.calls(), 0);
    let reply = post(&gw, "/c/orders?limit=10", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.last().await["query"], "limit=10");
}
