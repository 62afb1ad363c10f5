//! `ip` lists: the example's `DELETE /pets/{id}` admits the internal network and keeps one address of it out, by
//! the connection's peer (distinct loopback addresses as clients) or, with `--trust-proxy`, the address the proxy
//! reports in `X-Forwarded-For`.

use std::net::IpAddr;

use bytes::Bytes;
use gateway_tests::client::{send, send_from};
use http::{Method, StatusCode};

use crate::support::{assert_problem, setup_with};

#[tokio::test]
async fn an_allowed_address_is_served_a_denied_one_gets_403_and_the_upstream_never_sees_it() {
    let (upstream, gw) = setup_with(&[]).await;
    let allowed: IpAddr = "127.0.0.1".parse().expect("address");
    let reply = send_from(allowed, Method::DELETE, &gw.url("/pets/7"), &[], Bytes::new())
        .await
        .expect("DELETE from an allowed address");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(upstream.calls(), 1);

    let denied: IpAddr = "127.0.0.66".parse().expect("address");
    let reply = send_from(denied, Method::DELETE, &gw.url("/pets/7"), &[], Bytes::new())
        .await
        .expect("DELETE from a denied address");
    let problem = assert_problem(&reply, StatusCode::FORBIDDEN);
    assert_eq!(problem["type"], "urn:gateway:error:forbidden", "{problem}");
    assert!(
        !reply.text().contains("127.0.0.66"),
        "the address is echoed: {}",
        reply.text()
    );
    assert_eq!(upstream.calls(), 1, "the denied request reached the upstream");

    // The list is the operation's: another operation on the same path is open to that address.
    let reply = send_from(denied, Method::GET, &gw.url("/pets/7"), &[], Bytes::new())
        .await
        .expect("GET from the denied address");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_one_checked() {
    let (upstream, gw) = setup_with(&["--trust-proxy"]).await;
    let outside = send(
        Method::DELETE,
        &gw.url("/pets/7"),
        &[("x-forwarded-for", "10.1.2.3, 203.0.113.9")],
        Bytes::new(),
    )
    .await
    .expect("DELETE for an outside client");
    assert_problem(&outside, StatusCode::FORBIDDEN);
    let inside = send(
        Method::DELETE,
        &gw.url("/pets/7"),
        &[("x-forwarded-for", "203.0.113.9, 10.1.2.3")],
        Bytes::new(),
    )
    .await
    .expect("DELETE for an inside client");
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.text());
    assert_eq!(upstream.calls(), 1);
}
