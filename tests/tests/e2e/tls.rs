//! HTTPS with certificates made in the test: HTTP/1.1 and HTTP/2 chosen by ALPN, the upstream told the truth in
//! `X-Forwarded-Proto`, SNI picking a certificate (a wildcard one covering its names), and SIGHUP reloading them —
//! a good new file served from the next handshake while open connections go on, a bad one keeping the old.

use std::time::Duration;

use gateway_tests::gateway::Gateway;
use gateway_tests::tls::{Leaf, TestCa, https_get};
use gateway_tests::upstream::Upstream;
use http::{StatusCode, Version};

use crate::support::setup_with;

fn tls_args(leaves: &[&Leaf]) -> Vec<String> {
    let mut args = Vec::new();
    for leaf in leaves {
        args.push("--tls-cert".to_owned());
        args.push(leaf.cert.display().to_string());
        args.push("--tls-key".to_owned());
        args.push(leaf.key.display().to_string());
    }
    args
}

async fn https_gateway(leaves: &[&Leaf]) -> (Upstream, Gateway) {
    let args = tls_args(leaves);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    setup_with(&refs).await
}

#[tokio::test]
async fn https_serves_http1_and_http2_by_alpn_and_tells_the_upstream_it_was_https() {
    let ca = TestCa::new();
    let leaf = ca.leaf("api", &["api.example.test"]);
    let (upstream, gw) = https_gateway(&[&leaf]).await;

    let h1 = https_get(gw.addr, ca.client(&[b"http/1.1"]), "api.example.test", "/pets")
        .await
        .expect("HTTPS over HTTP/1.1");
    assert_eq!(h1.status, StatusCode::OK, "{:?}", h1.body);
    assert_eq!(h1.version, Version::HTTP_11);
    assert_eq!(h1.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.presented, leaf.der);
    let seen = upstream.last().await;
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https", "{seen}");

    let h2 = https_get(gw.addr, ca.client(&[b"h2", b"http/1.1"]), "api.example.test", "/pets")
        .await
        .expect("HTTPS over HTTP/2");
    assert_eq!(h2.status, StatusCode::OK, "{:?}", h2.body);
    assert_eq!(h2.version, Version::HTTP_2);
    assert_eq!(h2.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(upstream.calls(), 2);

    // Plain HTTP on the HTTPS port is not served.
    let plain = tokio::time::timeout(Duration::from_secs(5), gateway_tests::client::try_get(&gw.url("/pets")))
        .await
        .expect("the plain request ended");
    assert!(plain.is_err(), "plain HTTP was served on the HTTPS listener: {plain:?}");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn sni_picks_the_certificate_of_the_name_and_a_wildcard_covers_the_names_under_it() {
    let ca = TestCa::new();
    let first = ca.leaf("first", &["first.example.test"]);
    let wildcard = ca.leaf("wildcard", &["*.tenants.example.test"]);
    let other = ca.leaf("other", &["other.example.test"]);
    let (_upstream, gw) = https_gateway(&[&first, &wildcard, &other]).await;
    let client = ca.client(&[b"http/1.1"]);
    for (sni, expected, which) in [
        ("other.example.test", &other, "the exact name"),
        ("acme.tenants.example.test", &wildcard, "a name under the wildcard"),
        ("first.example.test", &first, "the first pair's name"),
    ] {
        let reply = https_get(gw.addr, client.clone(), sni, "/pets")
            .await
            .unwrap_or_else(|e| panic!("{which} ({sni}): {e}"));
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.presented == expected.der,
            "{which} ({sni}) got another certificate"
        );
    }
    // A name no certificate covers gets the default (the first), which the client then refuses.
    let refused = https_get(gw.addr, client.clone(), "unknown.example.test", "/pets").await;
    assert!(refused.as_ref().is_err_and(|e| e.contains("handshake")), "{refused:?}");
    // Two labels under a wildcard are not covered by it.
    let deep = https_get(gw.addr, client, "a.b.tenants.example.test", "/pets").await;
    assert!(deep.is_err(), "{deep:?}");
}

#[tokio::test]
async fn sighup_serves_a_new_certificate_and_a_bad_one_keeps_the_old() {
    let ca = TestCa::new();
    let leaf = ca.leaf("api", &["api.example.test"]);
    let (_upstream, gw) = https_gateway(&[&leaf]).await;
    let client = ca.client(&[b"http/1.1"]);
    let before = https_get(gw.addr, client.clone(), "api.example.test", "/pets")
        .await
        .expect("before the reload");
    assert_eq!(before.presented, leaf.der);

    // A new certificate in the same files.
    let renewed = ca.leaf("api", &["api.example.test"]);
    assert_ne!(renewed.der, leaf.der);
    hangup(&gw);
    let served = eventually_presented(&gw, &client, &renewed.der).await;
    assert!(served, "the renewed certificate was never served");

    // A broken key: the reload fails and the renewed certificate stays.
    std::fs::write(
        &renewed.key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .expect("break the key");
    hangup(&gw);
    let logged = eventually(|| gw.stderr_contains("TLS certificates not reloaded")).await;
    assert!(logged, "the failed reload was not logged");
    let after = https_get(gw.addr, client, "api.example.test", "/pets")
        .await
        .expect("after the bad reload");
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.presented, renewed.der);
}

#[tokio::test]
async fn the_plain_listener_of_redirect_http_sends_every_request_to_https() {
    let ca = TestCa::new();
    let leaf = ca.leaf("api", &["api.example.test"]);
    let mut args = tls_args(&[&leaf]);
    args.extend(["--redirect-http".to_owned(), "127.0.0.1:0".to_owned()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (upstream, gw) = setup_with(&refs).await;
    let redirect = gw.redirect.expect("the redirect listener's address");
    let https_port = gw.addr.port();
    let reply = gateway_tests::client::send(
        http::Method::POST,
        &format!("http://{redirect}/pets?limit=2"),
        &[("host", "api.example.test:80")],
        bytes::Bytes::from_static(b"{}"),
    )
    .await
    .expect("the redirect answers");
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        reply.header("location"),
        Some(format!("https://api.example.test:{https_port}/pets?limit=2").as_str())
    );
    // A Host that is not a plain host name is not reflected into a Location.
    let reply = gateway_tests::client::send(
        http::Method::GET,
        &format!("http://{redirect}/"),
        &[("host", "evil.example/@x")],
        bytes::Bytes::new(),
    )
    .await
    .expect("the redirect answers");
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.header("location").is_none());
    assert_eq!(upstream.calls(), 0);
}

fn hangup(gw: &Gateway) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
}

async fn eventually_presented(gw: &Gateway, client: &std::sync::Arc<rustls::ClientConfig>, der: &[u8]) -> bool {
    for _ in 0..100 {
        if let Ok(reply) = https_get(gw.addr, client.clone(), "api.example.test", "/pets").await
            && reply.presented == der
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}
