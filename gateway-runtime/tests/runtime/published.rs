//! The spec the main listener publishes on `GET /_gateway/openapi.json`: under the API's hosts, with the response
//! filters of every response, its `servers` where the gateway serves it.

use gateway_runtime::http::Request;
use gateway_runtime::spec::ApiSpec;

use crate::support::*;

static PUBLISHED: ApiSpec = ApiSpec {
    name: "published",
    hosts: &["api.example.com"],
    published: Some(r#"{"openapi":"3.0.3","info":{"title":"T","version":"1"},"paths":{}}"#),
    ..ECHO_API
};

async fn fetch(gw: &Gateway, host: &str) -> (http::response::Parts, bytes::Bytes) {
    let request = Request::get(gw.url("/_gateway/openapi.json"))
        .header("host", host)
        .body(empty())
        .expect("request");
    send(request).await
}

#[tokio::test]
async fn the_published_spec_is_served_under_the_apis_hosts_with_servers_pointing_at_the_gateway() {
    let gw = start_gateway_for(&PUBLISHED, |config, _| config.upstream_overrides = Vec::new()).await;
    let (parts, body) = fetch(&gw, "api.example.com").await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["content-type"], "application/json");
    assert!(parts.headers.contains_key("x-request-id"));
    let spec = json(&body);
    assert_eq!(spec["info"]["title"], "T");
    assert_eq!(spec["servers"], serde_json::json!([{ "url": "/" }]));

    // Another host is refused like any request of the API.
    let (parts, _) = fetch(&gw, "evil.example.com").await;
    assert_eq!(parts.status, 421);
}

#[tokio::test]
async fn an_api_that_does_not_publish_its_spec_answers_404() {
    let gw = start_gateway_for(&ECHO_API, |config, _| config.upstream_overrides = Vec::new()).await;
    let (parts, _) = fetch(&gw, "127.0.0.1").await;
    assert_eq!(parts.status, 404);
}
