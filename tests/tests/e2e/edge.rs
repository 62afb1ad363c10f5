//! The connection beyond one request and one response: client certificates against the generated `mtls-gateway`
//! (`tests/specs/mtls.yaml`; required at the handshake, or optional with operations that require one), and against
//! `edge-gateway` (`tests/specs/edge.yaml`) response compression negotiated and skipped where it must be, request
//! bodies decompressed within the body limit, server-sent events streamed as they come, and a WebSocket spliced to
//! the upstream.

use std::io::{Read as _, Write as _};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::tls::{HttpsUpstream, Leaf, TestCa, https_get};
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio_tungstenite::tungstenite::Message;

const EDGE: &str = "edge-gateway";
const MTLS: &str = "mtls-gateway";

fn start(bin: &str, upstream: &Upstream, extra: &[String]) -> Result<Gateway, String> {
    let mut args = vec!["--upstream".to_owned(), format!("app={}", upstream.url())];
    args.extend(extra.iter().cloned());
    Gateway::start(bin, &args)
}

/// The edge gateway with every upstream pointed at one plain upstream (the `secure` one's TLS files made up: the
/// gateway reads them at start-up, whether a test uses it or not).
pub(crate) async fn edge() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await.expect("upstream starts");
    let ca = TestCa::new();
    let cert = ca.client_leaf("gateway", "edge-gateway", &[], "gw@example.test");
    let ca_file = ca.ca_file();
    let args = vec!["--upstream".to_owned(), format!("app={}", upstream.url())];
    let gw = Gateway::start_with_files(EDGE, &args, &[], &tls_files(&ca_file, &cert)).expect("gateway starts");
    (upstream, gw)
}

/// The files the `secure` upstream's `tls` names, from `ca_file` and the gateway's client certificate `cert`.
fn tls_files<'a>(ca_file: &'a std::path::Path, cert: &'a Leaf) -> [(&'static str, &'a std::path::Path); 3] {
    [
        ("tls/upstream-ca.pem", ca_file),
        ("tls/gateway.crt", &cert.cert),
        ("tls/gateway.key", &cert.key),
    ]
}

/// HTTPS with `server` and client certificates checked against `ca` in `mode`.
fn mtls_args(ca: &TestCa, server: &Leaf, mode: &str) -> Vec<String> {
    vec![
        "--tls-cert".into(),
        server.cert.display().to_string(),
        "--tls-key".into(),
        server.key.display().to_string(),
        "--tls-client-ca".into(),
        ca.ca_file().display().to_string(),
        "--tls-client-auth".into(),
        mode.into(),
    ]
}

#[tokio::test]
async fn required_client_certificates_refuse_handshakes_without_one_and_tell_the_upstream_who_called() {
    let ca = TestCa::new();
    let server = ca.leaf("edge", &["edge.example.test"]);
    let client = ca.client_leaf("client-a", "client-a", &["client-a.example.test"], "ops@example.test");
    let stranger_ca = TestCa::new();
    let stranger = stranger_ca.client_leaf("stranger", "stranger", &["stranger.example.test"], "x@example.test");
    let upstream = Upstream::start().await.expect("upstream starts");
    let gw = start(MTLS, &upstream, &mtls_args(&ca, &server, "required")).expect("gateway starts");
    let h1: &[&[u8]] = &[b"http/1.1"];

    let without = https_get(gw.addr, ca.client(h1), "edge.example.test", "/open").await;
    assert!(without.is_err(), "served without a client certificate: {without:?}");
    let foreign = https_get(
        gw.addr,
        ca.client_with_cert(h1, &stranger),
        "edge.example.test",
        "/open",
    )
    .await;
    assert!(foreign.is_err(), "served a certificate of another CA: {foreign:?}");
    assert_eq!(upstream.calls(), 0);

    let reply = https_get(
        gw.addr,
        ca.client_with_cert(h1, &client),
        "edge.example.test",
        "/whoami",
    )
    .await
    .expect("served with a client certificate");
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let seen = upstream.last().await;
    let subject = seen["headers"]["x-client-subject"][0].as_str().unwrap_or_default();
    assert!(
        subject.contains("CN=client-a") && subject.contains("O=Gateway Tests"),
        "{seen}"
    );
    let sans = seen["headers"]["x-client-sans"][0].as_str().unwrap_or_default();
    assert!(
        sans.contains("DNS:client-a.example.test") && sans.contains("email:ops@example.test"),
        "{seen}"
    );
    let over_h2 = https_get(
        gw.addr,
        ca.client_with_cert(&[b"h2"], &client),
        "edge.example.test",
        "/certified",
    )
    .await
    .expect("served over HTTP/2 with a client certificate");
    assert_eq!(over_h2.status, StatusCode::OK, "{:?}", over_h2.body);
}

#[tokio::test]
async fn optional_client_certificates_admit_anyone_and_operations_that_require_one_answer_401_without() {
    let ca = TestCa::new();
    let server = ca.leaf("edge", &["edge.example.test"]);
    let client = ca.client_leaf("client-b", "client-b", &[], "b@example.test");
    let upstream = Upstream::start().await.expect("upstream starts");
    let gw = start(MTLS, &upstream, &mtls_args(&ca, &server, "optional")).expect("gateway starts");
    let h1: &[&[u8]] = &[b"http/1.1"];

    let open = https_get(gw.addr, ca.client(h1), "edge.example.test", "/open")
        .await
        .expect("open");
    assert_eq!(open.status, StatusCode::OK);
    for path in ["/whoami", "/certified"] {
        let refused = https_get(gw.addr, ca.client(h1), "edge.example.test", path)
            .await
            .expect("answered");
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{path}: {:?}", refused.body);
        let problem: serde_json::Value = serde_json::from_slice(&refused.body).expect("problem+json");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("client certificate"),
            "{problem}"
        );
    }
    assert_eq!(upstream.calls(), 1);
    for path in ["/whoami", "/certified"] {
        let admitted = https_get(gw.addr, ca.client_with_cert(h1, &client), "edge.example.test", path)
            .await
            .expect("answered");
        assert_eq!(admitted.status, StatusCode::OK, "{path}: {:?}", admitted.body);
    }
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test]
async fn a_spec_that_requires_client_certificates_does_not_start_without_a_client_ca() {
    let upstream = Upstream::start().await.expect("upstream starts");
    let Err(refusal) = start(MTLS, &upstream, &[]) else {
        panic!("the mtls gateway started without --tls-client-ca");
    };
    assert!(refusal.contains("--tls-client-ca"), "{refusal}");
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("gzip");
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, &gw.url(path), headers, Bytes::new())
        .await
        .expect("answered")
}

#[tokio::test]
async fn responses_are_compressed_as_the_client_prefers_and_only_when_they_should_be() {
    let (_upstream, gw) = edge().await;
    let json = "/big?size=5000&content_type=application/json";

    let gzipped = get(&gw, json, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gzipped.status, StatusCode::OK);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert!(
        gzipped
            .header("vary")
            .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
    );
    assert!(gzipped.body.len() < 500, "{} bytes", gzipped.body.len());
    assert_eq!(gunzip(&gzipped.body), vec![b'x'; 5000]);
    for (accepted, chosen) in [
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=1.0", "br"),
        ("deflate", "deflate"),
    ] {
        let reply = get(&gw, json, &[("accept-encoding", accepted)]).await;
        assert_eq!(reply.header("content-encoding"), Some(chosen), "{accepted}");
    }

    let plain = get(&gw, json, &[]).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body.len(), 5000);
    let unwanted = get(&gw, json, &[("accept-encoding", "identity")]).await;
    assert_eq!(unwanted.header("content-encoding"), None);

    let skipped = [
        ("a body under min_size", "/big?body_json=%22small%22".to_owned()),
        ("an image", "/big?size=5000&content_type=image/png".to_owned()),
        ("no-transform", format!("{json}&cache_control=no-transform")),
    ];
    for (why, path) in &skipped {
        let reply = get(&gw, path, &[("accept-encoding", "gzip, br, zstd")]).await;
        assert_eq!(reply.status, StatusCode::OK, "{why}");
        assert_eq!(reply.header("content-encoding"), None, "{why}");
    }
    let big_raw = format!("/raw?body_json=%22{}%22", "y".repeat(4000));
    let raw = get(&gw, &big_raw, &[("accept-encoding", "gzip")]).await;
    assert_eq!(raw.header("content-encoding"), None, "compression: false");
    assert_eq!(raw.body.len(), 4002);
}

#[tokio::test]
async fn compressed_request_bodies_are_decompressed_where_asked_and_a_bomb_stops_at_the_body_limit() {
    let (_upstream, gw) = edge().await;
    let text = "a request body that compresses well. ".repeat(200);
    let octets = [
        ("content-type", "application/octet-stream"),
        ("content-encoding", "gzip"),
    ];

    let reply = send(
        Method::POST,
        &gw.url("/upload?echo=body"),
        &octets,
        gzip(text.as_bytes()),
    )
    .await
    .expect("answered");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), text, "the upstream got the body decompressed");

    // 1 MiB of zeros is about 1 KiB gzipped, and 16 times the operation's 64 KiB limit.
    let bomb = gzip(&vec![0u8; 1024 * 1024]);
    assert!(bomb.len() < 8 * 1024);
    let reply = send(Method::POST, &gw.url("/upload?echo=body"), &octets, bomb)
        .await
        .expect("answered");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.text());

    let corrupt = b"\x1f\x8b\x08\x00 this is not gzip at all".to_vec();
    let reply = send(Method::POST, &gw.url("/upload?echo=body"), &octets, corrupt)
        .await
        .expect("answered");
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "a corrupt gzip body: {}",
        reply.text()
    );
    assert_eq!(reply.json()["type"], "urn:gateway:error:bad-request-body");
}

#[tokio::test]
async fn server_sent_events_stream_through_before_the_upstream_finishes_and_are_never_compressed() {
    let (upstream, gw) = edge().await;
    let request = http::Request::get(gw.url("/events?gate=sse&content_type=text/event-stream"))
        .header("accept-encoding", "gzip, br")
        .header("accept", "text/event-stream")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        gateway_tests::client::client().request(request),
    )
    .await
    .expect("the head arrived before the upstream finished")
    .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers().get("content-encoding"), None);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first event arrived while the upstream still held the stream open")
        .expect("a frame")
        .expect("data");
    assert_eq!(first.into_data().expect("data"), Bytes::from_static(b"first\n"));
    upstream.release("sse");
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the stream ended")
        .expect("body")
        .to_bytes();
    assert_eq!(rest, Bytes::from_static(b"second\n"));
}

#[tokio::test]
async fn a_websocket_is_spliced_to_the_upstream_both_ways_on_operations_that_allow_it() {
    let (upstream, gw) = edge().await;
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    let (mut socket, response) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr), tcp)
        .await
        .expect("WebSocket handshake through the gateway");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for i in 0..3 {
        socket.send(Message::text(format!("hello {i}"))).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo in time")
            .expect("a message")
            .expect("no error");
        assert_eq!(reply, Message::text(format!("echo: hello {i}")));
    }
    socket.send(Message::binary(vec![0u8, 1, 2])).await.expect("send");
    let reply = socket.next().await.expect("a message").expect("no error");
    assert_eq!(reply, Message::binary(b"echo: \x00\x01\x02".to_vec()));
    socket.close(None).await.expect("close");
    assert_eq!(upstream.calls(), 1);

    // An operation not marked `websocket` does not upgrade: the upstream sees a plain GET.
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.expect("connect");
    let refused = tokio_tungstenite::client_async(format!("ws://{}/big?size=10", gw.addr), tcp).await;
    assert!(refused.is_err(), "upgraded on an operation without websocket: true");
    let seen = upstream.last().await;
    assert_eq!(seen["headers"].get("upgrade"), None, "{seen}");
}

/// The edge gateway with its `secure` upstream an HTTPS server whose certificate `signer` signed, trusting only
/// `trusted`'s CA for it, and presenting a client certificate `client_ca` signed (which the server verifies); its
/// `app` and `h2c` upstreams are one plain upstream. Returns the servers, the gateway and its client certificate.
async fn secure_edge(
    signer: &TestCa,
    trusted: &TestCa,
    client_ca: &TestCa,
) -> (HttpsUpstream, Upstream, Gateway, Leaf) {
    let upstream_leaf = signer.leaf("upstream", &["127.0.0.1"]);
    let gateway_cert = client_ca.client_leaf("gateway", "edge-gateway", &[], "gw@example.test");
    let secure = HttpsUpstream::start(&upstream_leaf, client_ca)
        .await
        .expect("HTTPS upstream starts");
    let plain = Upstream::start().await.expect("upstream starts");
    let ca_file = trusted.ca_file();
    let args = vec![
        "--upstream".to_owned(),
        format!("app={}", plain.url()),
        "--upstream".to_owned(),
        format!("secure=https://127.0.0.1:{}", secure.addr.port()),
        "--upstream".to_owned(),
        format!("h2c={}", plain.url()),
    ];
    let gw = Gateway::start_with_files(EDGE, &args, &[], &tls_files(&ca_file, &gateway_cert)).expect("gateway starts");
    (secure, plain, gw, gateway_cert)
}

#[tokio::test]
async fn upstreams_over_tls_trust_their_own_ca_present_a_client_certificate_and_speak_http2() {
    let upstream_ca = TestCa::new();
    let gateway_ca = TestCa::new();
    let (_secure, plain, gw, gateway_cert) = secure_edge(&upstream_ca, &upstream_ca, &gateway_ca).await;

    let reply = get(&gw, "/secure", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    use base64::Engine as _;
    let presented = base64::engine::general_purpose::STANDARD
        .decode(seen["client_cert"].as_str().unwrap_or_default())
        .expect("base64");
    assert_eq!(
        presented, gateway_cert.der,
        "the upstream saw another client certificate"
    );

    let reply = get(&gw, "/h2c", &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(plain.last().await["version"], "HTTP/2.0");
    let reply = get(&gw, "/big?body_json=1", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        plain.last().await["version"],
        "HTTP/1.1",
        "an upstream without http2 is spoken to in HTTP/1.1"
    );
}

#[tokio::test]
async fn an_upstream_whose_certificate_another_ca_signed_is_a_502() {
    let other_ca = TestCa::new();
    let trusted_ca = TestCa::new();
    let (_secure, _plain, gw, _) = secure_edge(&other_ca, &trusted_ca, &trusted_ca).await;
    let reply = get(&gw, "/secure", &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
}
