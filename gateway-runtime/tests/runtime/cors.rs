//! CORS: preflights answered by the gateway (never the upstream, before auth), the CORS headers on every response
//! of an operation with a policy (upstream answers, cache hits, gateway errors) and on `404`/`405`.

use std::time::Duration;

use gateway_runtime::http::{Method, Request};
use gateway_runtime::spec::{
    ApiSpec, BodySpec, CacheSpec, CorsSpec, DEFAULT_MAX_BODY, Invalidate, MockSpec, OperationSpec, OriginSpec,
    PathPart, Requirement, TargetSpec, UpstreamTarget,
};

use crate::support::*;

/// Browser apps on one origin and on any subdomain of `example.org`.
static SITES: CorsSpec = CorsSpec {
    allow_origins: &[
        OriginSpec::Exact("https://app.example.com"),
        OriginSpec::Wildcard {
            prefix: "https://",
            suffix: ".example.org",
        },
    ],
    allow_headers: &["content-type", "x-trace"],
    expose_headers: &["x-request-id"],
    allow_credentials: false,
    max_age: Some(Duration::from_secs(600)),
};

/// One origin, with cookies and `Authorization`.
static CREDENTIALED: CorsSpec = CorsSpec {
    allow_origins: &[OriginSpec::Exact("https://app.example.com")],
    allow_headers: &["authorization", "x-api-key"],
    expose_headers: &[],
    allow_credentials: true,
    max_age: None,
};

/// Anyone, without credentials.
static PUBLIC: CorsSpec = CorsSpec {
    allow_origins: &[OriginSpec::Any],
    allow_headers: &["*"],
    expose_headers: &[],
    allow_credentials: false,
    max_age: None,
};

static API_KEY: [&[Requirement]; 1] = [&[Requirement { scheme: 0, scopes: &[] }]];

const fn op(
    id: &'static str,
    method: Method,
    route: &'static str,
    cors: Option<&'static CorsSpec>,
    target: TargetSpec,
) -> OperationSpec {
    OperationSpec {
        id,
        method,
        template: route,
        route,
        path_params: &[],
        path_suffixes: &[],
        validate: None,
        security: &[],
        cors,
        ip: None,
        compression: None,
        websocket: false,
        plans: &[],
        throttle: None,
        cache: None,
        responses: &[],
        body: BodySpec::limit(DEFAULT_MAX_BODY),
        schema_params: &[],
        transform: None,
        responses_check: None,
        target,
    }
}

const fn echo(path: &'static [PathPart]) -> TargetSpec {
    TargetSpec::Upstream(UpstreamTarget { upstream: 0, path })
}

const fn keyed(mut op: OperationSpec) -> OperationSpec {
    op.security = &API_KEY;
    op
}

const fn cached(mut op: OperationSpec, cache: &'static CacheSpec) -> OperationSpec {
    op.cache = Some(cache);
    op
}

const fn mock(status: u16, headers: &'static [(&'static str, &'static str)]) -> TargetSpec {
    TargetSpec::Mock(MockSpec {
        status,
        headers,
        content_type: "",
        body: "",
    })
}

static CORS_API: ApiSpec = ApiSpec {
    name: "corsgw",
    spec_file: "tests/cors.yaml",
    operations: &[
        op(
            "listItems",
            Method::GET,
            "/items",
            Some(&SITES),
            echo(&[PathPart::Literal("/items")]),
        ),
        op(
            "createItem",
            Method::POST,
            "/items",
            Some(&SITES),
            echo(&[PathPart::Literal("/items")]),
        ),
        // On the same path: no CORS for it (the upstream's business), and an `OPTIONS` of the API's own.
        op(
            "deleteItems",
            Method::DELETE,
            "/items",
            None,
            echo(&[PathPart::Literal("/items")]),
        ),
        op(
            "itemsOptions",
            Method::OPTIONS,
            "/items",
            None,
            mock(200, &[("x-mock", "options")]),
        ),
        keyed(op(
            "getAccount",
            Method::GET,
            "/account",
            Some(&CREDENTIALED),
            echo(&[PathPart::Literal("/account")]),
        )),
        cached(
            op(
                "getCached",
                Method::GET,
                "/cached",
                Some(&SITES),
                echo(&[PathPart::Literal("/cached")]),
            ),
            &CacheSpec {
                ttl: Duration::from_secs(60),
                key: &[],
                statuses: &[200],
                methods: &[Method::GET],
                invalidate: Invalidate::None,
            },
        ),
        op("getPublic", Method::GET, "/public", Some(&PUBLIC), mock(204, &[])),
        op(
            "getPlain",
            Method::GET,
            "/plain",
            None,
            echo(&[PathPart::Literal("/plain")]),
        ),
    ],
    schemes: &[X_API_KEY],
    cors: Some(&SITES),
    ..ECHO_API
};

async fn start() -> Gateway {
    start_gateway_for(&CORS_API, |config, upstream| {
        config.upstream_overrides = vec![format!("echo=http://{upstream}/").parse().expect("override")];
    })
    .await
}

const APP: &str = "https://app.example.com";
const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

async fn request(
    gw: &Gateway,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (gateway_runtime::http::response::Parts, bytes::Bytes) {
    let mut builder = Request::builder().method(method).uri(gw.url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(builder.body(empty()).expect("request")).await
}

async fn preflight(
    gw: &Gateway,
    path: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> gateway_runtime::http::response::Parts {
    let mut sent = vec![("origin", origin), ("access-control-request-method", method)];
    sent.extend(headers.map(|h| ("access-control-request-headers", h)));
    request(gw, Method::OPTIONS, path, &sent).await.0
}

/// The `access-control-*` headers of a response, sorted.
fn cors_headers(parts: &gateway_runtime::http::response::Parts) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(name, value)| (name.to_string(), value.to_str().expect("ascii").to_owned()))
        .collect();
    found.sort();
    found
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn vary(parts: &gateway_runtime::http::response::Parts) -> Vec<&str> {
    parts
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

/// Paths the upstream has been asked for since the last call.
fn upstream_calls(gw: &mut Gateway) -> Vec<String> {
    std::iter::from_fn(|| gw.upstream.arrivals.try_recv().ok()).collect()
}

#[tokio::test]
async fn preflights_are_answered_by_the_gateway_with_the_paths_methods() {
    let mut gw = start().await;
    for method in ["GET", "POST", "HEAD"] {
        let parts = preflight(&gw, "/items", APP, method, Some("content-type,X-Trace")).await;
        assert_eq!(parts.status, 204, "{method}");
        assert_eq!(
            cors_headers(&parts),
            pairs(&[
                ("access-control-allow-headers", "content-type, x-trace"),
                ("access-control-allow-methods", "GET, HEAD, POST"),
                ("access-control-allow-origin", APP),
                ("access-control-max-age", "600"),
            ]),
            "{method}"
        );
        assert_eq!(vary(&parts), [PREFLIGHT_VARY]);
        // Through the response filters like every response.
        assert!(parts.headers.contains_key("x-request-id"));
    }
    // A wildcard origin is echoed as sent.
    let parts = preflight(&gw, "/items", "https://shop.eu.example.org", "POST", None).await;
    assert_eq!(
        parts.headers["access-control-allow-origin"],
        "https://shop.eu.example.org"
    );
    // Before auth: no key needed, and the credentialed policy of that operation answers.
    let parts = preflight(&gw, "/account", APP, "GET", Some("x-api-key")).await;
    assert_eq!(parts.status, 204);
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-headers", "authorization, x-api-key"),
            ("access-control-allow-methods", "GET, HEAD"),
            ("access-control-allow-origin", APP),
        ])
    );
    // None of it reached the upstream; an actual request does.
    assert_eq!(upstream_calls(&mut gw), Vec::<String>::new());
    let (parts, _) = request(&gw, Method::GET, "/items", &[("origin", APP)]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(upstream_calls(&mut gw), ["/items"]);
}

#[tokio::test]
async fn a_plain_options_goes_to_the_paths_options_operation() {
    let mut gw = start().await;
    let (parts, _) = request(&gw, Method::OPTIONS, "/items", &[("origin", APP)]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-mock"], "options");
    // That operation has no CORS policy: its answer has none of the headers.
    assert!(cors_headers(&parts).is_empty());
    // A preflight on the same path is still the gateway's.
    let parts = preflight(&gw, "/items", APP, "GET", None).await;
    assert_eq!(parts.status, 204);
    assert!(!parts.headers.contains_key("x-mock"));
    assert_eq!(upstream_calls(&mut gw), Vec::<String>::new());
}

#[tokio::test]
async fn an_origin_not_allowed_gets_no_cors_headers() {
    let mut gw = start().await;
    for origin in [
        "https://evil.example",
        "https://example.org",
        "https://evil-example.org",
        "https://app.example.org.evil.com",
        "http://app.example.org",
        "null",
    ] {
        let (parts, _) = request(&gw, Method::GET, "/items", &[("origin", origin)]).await;
        assert_eq!(parts.status, 200, "{origin}");
        assert!(cors_headers(&parts).is_empty(), "{origin}");
        // The answer depends on the origin: a cache must not hand it to an allowed one.
        assert_eq!(vary(&parts), ["Origin"], "{origin}");

        let parts = preflight(&gw, "/items", origin, "GET", None).await;
        assert_eq!(parts.status, 204, "{origin}");
        assert!(cors_headers(&parts).is_empty(), "{origin}");
    }
    // A header the policy does not allow fails the preflight too.
    let parts = preflight(&gw, "/items", APP, "POST", Some("content-type, x-other")).await;
    assert!(cors_headers(&parts).is_empty());
    // Only the actual requests reached the upstream.
    assert_eq!(upstream_calls(&mut gw).len(), 6);
}

#[tokio::test]
async fn allowed_origins_read_upstream_answers_and_gateway_errors() {
    let gw = start().await;
    let (parts, _) = request(&gw, Method::GET, "/items", &[("origin", APP)]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-origin", APP),
            ("access-control-expose-headers", "x-request-id"),
        ])
    );
    assert_eq!(vary(&parts), ["Origin"]);

    // A request refused by the API key check, with the credentialed policy.
    let (parts, body) = request(&gw, Method::GET, "/account", &[("origin", APP)]).await;
    problem(&parts, &body, 401);
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-origin", APP),
        ])
    );
    assert_eq!(vary(&parts), ["Origin"]);

    // No operation: the API-wide policy.
    let (parts, body) = request(&gw, Method::GET, "/nope", &[("origin", APP)]).await;
    problem(&parts, &body, 404);
    assert_eq!(parts.headers["access-control-allow-origin"], APP);
    let (parts, body) = request(&gw, Method::PUT, "/items", &[("origin", "https://a.example.org")]).await;
    problem(&parts, &body, 405);
    assert_eq!(parts.headers["allow"], "GET, HEAD, POST, DELETE, OPTIONS");
    assert_eq!(parts.headers["access-control-allow-origin"], "https://a.example.org");
    assert_eq!(vary(&parts), ["Origin"]);
}

#[tokio::test]
async fn the_gateways_policy_replaces_the_upstreams_and_vary_is_appended() {
    let gw = start().await;
    let (parts, _) = request(&gw, Method::GET, "/items", &[("origin", APP), ("x-echo-cors", "1")]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(vary(&parts), ["Accept-Encoding", "Origin"]);
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-origin", APP),
            ("access-control-expose-headers", "x-request-id"),
        ])
    );
    // An origin the gateway does not allow does not get the upstream's `*` either.
    let (parts, _) = request(
        &gw,
        Method::GET,
        "/items",
        &[("origin", "https://evil.example"), ("x-echo-cors", "1")],
    )
    .await;
    assert!(cors_headers(&parts).is_empty());
    assert_eq!(vary(&parts), ["Accept-Encoding", "Origin"]);
}

#[tokio::test]
async fn an_operation_without_cors_on_a_path_with_cors_is_left_alone() {
    let mut gw = start().await;
    // Its preflight is refused…
    let parts = preflight(&gw, "/items", APP, "DELETE", None).await;
    assert_eq!(parts.status, 204);
    assert!(cors_headers(&parts).is_empty());
    assert_eq!(upstream_calls(&mut gw), Vec::<String>::new());
    // …its answers carry no CORS header of the gateway's and no `Vary: Origin`…
    let (parts, _) = request(&gw, Method::DELETE, "/items", &[("origin", APP)]).await;
    assert_eq!(parts.status, 200);
    assert!(cors_headers(&parts).is_empty());
    assert!(vary(&parts).is_empty());
    // …and whatever the upstream says about CORS passes unchanged.
    let (parts, _) = request(&gw, Method::DELETE, "/items", &[("origin", APP), ("x-echo-cors", "1")]).await;
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-methods", "GET, PUT"),
            ("access-control-allow-origin", "*"),
        ])
    );
    assert_eq!(vary(&parts), ["Accept-Encoding"]);
    assert_eq!(upstream_calls(&mut gw), ["/items", "/items"]);
}

#[tokio::test]
async fn a_path_without_cors_keeps_its_405_for_preflights_without_cors_headers() {
    let mut gw = start().await;
    let parts = preflight(&gw, "/plain", APP, "GET", None).await;
    // Not a preflight answer (the browser fails it), and no CORS headers: none of the path's operations has CORS.
    assert_eq!(parts.status, 405);
    assert_eq!(parts.headers["allow"], "GET, HEAD");
    assert!(cors_headers(&parts).is_empty());
    assert_eq!(upstream_calls(&mut gw), Vec::<String>::new());
    let (parts, _) = request(&gw, Method::GET, "/plain", &[("origin", APP)]).await;
    assert_eq!(parts.status, 200);
    assert!(cors_headers(&parts).is_empty());
}

#[tokio::test]
async fn cache_hits_get_the_headers_of_their_own_request() {
    let mut gw = start().await;
    let (parts, _) = request(&gw, Method::GET, "/cached", &[("origin", APP)]).await;
    assert_eq!(parts.headers["x-cache"], "MISS");
    assert_eq!(parts.headers["access-control-allow-origin"], APP);
    let (parts, _) = request(&gw, Method::GET, "/cached", &[("origin", "https://b.example.org")]).await;
    assert_eq!(parts.headers["x-cache"], "HIT");
    assert_eq!(parts.headers["access-control-allow-origin"], "https://b.example.org");
    assert_eq!(vary(&parts), ["Origin"]);
    let (parts, _) = request(&gw, Method::GET, "/cached", &[("origin", "https://evil.example")]).await;
    assert_eq!(parts.headers["x-cache"], "HIT");
    assert!(cors_headers(&parts).is_empty());
    assert_eq!(upstream_calls(&mut gw), ["/cached"]);
}

#[tokio::test]
async fn a_star_policy_answers_star_to_everyone_without_vary() {
    let gw = start().await;
    for headers in [&[("origin", "https://anyone.example")][..], &[("origin", "null")], &[]] {
        let (parts, _) = request(&gw, Method::GET, "/public", headers).await;
        assert_eq!(parts.status, 204);
        assert_eq!(cors_headers(&parts), pairs(&[("access-control-allow-origin", "*")]));
        assert!(vary(&parts).is_empty());
    }
    let parts = preflight(&gw, "/public", "https://anyone.example", "GET", Some("authorization")).await;
    assert_eq!(
        cors_headers(&parts),
        pairs(&[
            ("access-control-allow-headers", "authorization"),
            ("access-control-allow-methods", "GET, HEAD"),
            ("access-control-allow-origin", "*"),
        ])
    );
}
