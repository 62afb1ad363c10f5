//! Schemes the gateway cannot verify (`http basic`, an `oauth2` or bearer scheme without a verification source):
//! the credential must be presented in its form, and reaches the upstream, which verifies it; in a requirement with
//! an API key, the key is still checked (and removed) by the gateway.

use gateway_runtime::http::{Method, Request};
use gateway_runtime::policies::auth::keys::KeyStore;
use gateway_runtime::spec::{ApiSpec, OperationSpec, PathPart, PresentedSpec, Requirement, SchemeKind, SchemeSpec};

use crate::support::*;

static BASIC: [&[Requirement]; 1] = [&[Requirement { scheme: 0, scopes: &[] }]];
static KEY_AND_BASIC: [&[Requirement]; 1] = [&[
    Requirement { scheme: 1, scopes: &[] },
    Requirement { scheme: 0, scopes: &[] },
]];

const fn op(id: &'static str, route: &'static str, security: &'static [&'static [Requirement]]) -> OperationSpec {
    let mut op = proxied_get(id, route, &[PathPart::Literal("/seen")]);
    op.security = security;
    op
}

static UPSTREAM_VERIFIED_API: ApiSpec = ApiSpec {
    name: "basicgw",
    spec_file: "tests/basic.yaml",
    operations: &[op("basic", "/basic", &BASIC), op("both", "/both", &KEY_AND_BASIC)],
    schemes: &[
        SchemeSpec {
            name: "basic",
            kind: SchemeKind::Presented(PresentedSpec { auth_scheme: "Basic" }),
        },
        X_API_KEY,
    ],
    ..ECHO_API
};

async fn start(keys: &std::path::Path) -> Gateway {
    let keys = KeyStore::open(Some(keys)).expect("key file");
    start_gateway_for(&UPSTREAM_VERIFIED_API, move |config, upstream| {
        config.upstream_overrides = vec![format!("echo=http://{upstream}/").parse().expect("override")];
        config.keys = keys;
    })
    .await
}

async fn call(
    gw: &Gateway,
    path: &str,
    headers: &[(&str, &str)],
) -> (gateway_runtime::http::response::Parts, bytes::Bytes) {
    let mut builder = Request::builder().method(Method::GET).uri(gw.url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(builder.body(empty()).expect("request")).await
}

fn key_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("runtime-basic-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("keys.yaml");
    std::fs::write(&path, "- { key: key-for-basic-test-1, name: app }\n").expect("key file");
    path
}

#[tokio::test]
async fn an_upstream_verified_credential_must_be_presented_and_is_forwarded_as_sent() {
    let path = key_file();
    let mut gw = start(&path).await;
    let (parts, body) = call(&gw, "/basic", &[]).await;
    let refused = problem(&parts, &body, 401);
    assert!(
        refused["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("Authorization: Basic"),
        "{refused}"
    );
    // Another authentication scheme is not this one.
    let (parts, body) = call(&gw, "/basic", &[("authorization", "Bearer abc")]).await;
    problem(&parts, &body, 401);
    let (parts, body) = call(&gw, "/basic", &[("authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["headers"]["authorization"][0], "Basic dXNlcjpwYXNz");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}

#[tokio::test]
async fn with_an_api_key_in_the_same_requirement_the_key_is_still_checked_and_removed() {
    let path = key_file();
    let mut gw = start(&path).await;
    let basic = ("authorization", "Basic dXNlcjpwYXNz");
    let (parts, body) = call(&gw, "/both", &[basic]).await;
    problem(&parts, &body, 401);
    let (parts, body) = call(&gw, "/both", &[basic, ("x-api-key", "not-a-known-key")]).await;
    problem(&parts, &body, 401);
    let (parts, body) = call(&gw, "/both", &[("x-api-key", "key-for-basic-test-1")]).await;
    problem(&parts, &body, 401);
    let (parts, body) = call(&gw, "/both", &[basic, ("x-api-key", "key-for-basic-test-1")]).await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    let seen = json(&body);
    assert_eq!(seen["headers"]["authorization"][0], "Basic dXNlcjpwYXNz");
    assert!(seen["headers"].get("x-api-key").is_none(), "{seen}");
    gw.stop().await;
    let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
}
