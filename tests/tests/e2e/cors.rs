//! CORS as a browser sees it, against the generated `store-gateway` (`x-gateway.cors` in `specs/store.yaml`:
//! `https://shop.example.com` and `https://*.store.example.com`, with credentials; `/status` turns it off).

use bytes::Bytes;
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

async fn store() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await.expect("upstream");
    let gateway = Gateway::start_with_env(
        "store-gateway",
        &["--upstream".into(), format!("default={}/store", upstream.url())],
        &[crate::support::STORE_ENV],
    )
    .expect("store gateway starts");
    (upstream, gateway)
}

async fn call(gw: &Gateway, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(method.clone(), &gw.url(path), headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_with_the_paths_methods_without_credentials_or_upstream() {
    let (upstream, gw) = store().await;
    let reply = call(
        &gw,
        Method::OPTIONS,
        "/account",
        &[
            ("origin", "https://shop.example.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization, x-api-key"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(reply.header("access-control-allow-methods"), Some("GET, HEAD"));
    let allowed = reply
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("x-api-key"),
        "{allowed}"
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
    assert!(reply.header("vary").unwrap_or_default().contains("Origin"));
    // A wildcard origin, and a path with another method.
    let put = call(
        &gw,
        Method::OPTIONS,
        "/account/profile",
        &[
            ("origin", "https://eu.store.example.com"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(
        put.header("access-control-allow-origin"),
        Some("https://eu.store.example.com")
    );
    assert_eq!(put.header("access-control-allow-methods"), Some("PUT"));
    assert_eq!(upstream.calls(), 0, "no preflight reaches the upstream");
}

#[tokio::test]
async fn an_origin_not_allowed_gets_no_cors_headers() {
    let (_upstream, gw) = store().await;
    for origin in [
        "https://evil.example",
        "https://store.example.com",
        "https://shop.example.com.evil.io",
        "null",
    ] {
        let preflight = call(
            &gw,
            Method::OPTIONS,
            "/account",
            &[("origin", origin), ("access-control-request-method", "GET")],
        )
        .await;
        assert!(preflight.header("access-control-allow-origin").is_none(), "{origin}");
        let actual = call(&gw, Method::GET, "/catalog", &[("origin", origin)]).await;
        assert_eq!(actual.status, StatusCode::OK);
        assert!(actual.header("access-control-allow-origin").is_none(), "{origin}");
    }
}

#[tokio::test]
async fn actual_responses_and_gateway_errors_carry_cors_headers_for_an_allowed_origin() {
    let (_upstream, gw) = store().await;
    let ok = call(&gw, Method::GET, "/catalog", &[("origin", "https://shop.example.com")]).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        ok.header("access-control-expose-headers")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("x-request-id")
    );
    assert!(
        ok.headers
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap_or("").contains("Origin"))
    );
    // A browser can read the 401 (and its challenge) of a refused request.
    let refused = call(&gw, Method::GET, "/account", &[("origin", "https://shop.example.com")]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert!(refused.header("www-authenticate").is_some());
    // And the 404 of a path that does not exist.
    let missing = call(&gw, Method::GET, "/nowhere", &[("origin", "https://shop.example.com")]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
}

#[tokio::test]
async fn an_operation_with_cors_off_gets_no_cors_headers_and_no_preflight() {
    let (_upstream, gw) = store().await;
    let actual = call(&gw, Method::GET, "/status", &[("origin", "https://shop.example.com")]).await;
    assert_eq!(actual.status, StatusCode::OK);
    assert!(actual.header("access-control-allow-origin").is_none());
    let preflight = call(
        &gw,
        Method::OPTIONS,
        "/status",
        &[
            ("origin", "https://shop.example.com"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert!(preflight.header("access-control-allow-origin").is_none());
}
