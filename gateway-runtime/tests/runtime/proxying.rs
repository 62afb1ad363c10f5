//! Phase 3, upstream targets: rewrite, passthrough, hop-by-hop, forwarding headers, streaming, errors.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_runtime::http::Request;
use http_body_util::BodyExt as _;
use tokio::sync::mpsc;

use crate::support::*;

#[tokio::test]
async fn request_is_rewritten_and_passed_through() {
    let gw = start_gateway().await;
    let request = Request::post(gw.url("/pets/42/toys/ball?b=2&a=x%20y&a=z&empty="))
        .header("x-custom", "one")
        .header("x-custom", "two")
        .header("content-type", "text/plain")
        .header("x-echo-status", "201")
        .body(full("hello upstream"))
        .expect("request");
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, 201, "upstream status passes through");
    assert_eq!(parts.headers["x-echo"], "yes", "upstream headers pass through");
    let echo = json(&body);
    assert_eq!(echo["method"], "POST");
    // Base path `/` of the override is dropped; parameters are substituted in the upstream path's order.
    assert_eq!(echo["path"], "/v2/toys/ball/owner/42");
    assert_eq!(
        echo["query"], "b=2&a=x%20y&a=z&empty=",
        "query is passed through byte for byte"
    );
    assert_eq!(echo["headers"]["x-custom"], serde_json::json!(["one", "two"]));
    assert_eq!(echo["headers"]["content-type"], serde_json::json!(["text/plain"]));
    assert_eq!(echo["body"], "hello upstream");
}

#[tokio::test]
async fn upstream_base_path_is_prefixed() {
    let gw = start_gateway_with(|config, upstream| {
        // The last override of a name wins.
        config
            .upstream_overrides
            .push(format!("echo=http://{upstream}/api/v1/").parse().expect("override"));
    })
    .await;
    let (parts, body) = get(&gw.url("/pets/7")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["path"], "/api/v1/internal/pets/7");
}

#[tokio::test]
async fn forwarding_headers_are_set() {
    let gw = start_gateway().await;
    let request = Request::get(gw.url("/pets"))
        .header("host", "gateway.example:8443")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(empty())
        .expect("request");
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, 200);
    let headers = &json(&body)["headers"];
    assert_eq!(headers["host"], serde_json::json!([gw.upstream.addr.to_string()]));
    assert_eq!(headers["x-forwarded-host"], serde_json::json!(["gateway.example:8443"]));
    assert_eq!(
        headers["x-forwarded-for"],
        serde_json::json!(["203.0.113.9, 127.0.0.1"])
    );
    assert_eq!(headers["x-forwarded-proto"], serde_json::json!(["http"]));
}

#[tokio::test]
async fn the_callers_trace_is_continued_upstream_with_a_span_of_the_gateways_own() {
    let gw = start_gateway().await;
    let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = Request::get(gw.url("/pets"))
        .header("traceparent", incoming)
        .header("tracestate", "vendor=opaque")
        .body(empty())
        .expect("request");
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, 200);
    let headers = &json(&body)["headers"];
    let forwarded = headers["traceparent"][0].as_str().expect("a traceparent");
    let fields: Vec<&str> = forwarded.split('-').collect();
    assert_eq!(fields.len(), 4, "{forwarded}");
    assert_eq!(fields[0], "00");
    assert_eq!(fields[1], "4bf92f3577b34da6a3ce929d0e0e4736", "the trace id is kept");
    assert_ne!(fields[2], "00f067aa0ba902b7", "the gateway's hop has its own span id");
    assert_eq!(fields[2].len(), 16);
    assert_eq!(fields[3], "01", "the sampled flag is kept");
    assert_eq!(headers["tracestate"], serde_json::json!(["vendor=opaque"]));

    // Without one (or with an invalid one), a new trace starts, not sampled, and `tracestate` does not travel alone.
    let request = Request::get(gw.url("/pets"))
        .header("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
        .header("tracestate", "vendor=opaque")
        .body(empty())
        .expect("request");
    let (_, body) = send(request).await;
    let headers = &json(&body)["headers"];
    let fresh = headers["traceparent"][0].as_str().expect("a traceparent");
    assert!(
        fresh.starts_with("00-") && fresh.ends_with("-00") && fresh.len() == 55,
        "{fresh}"
    );
    assert!(!fresh.contains("00000000000000000000000000000000"));
    assert!(headers.get("tracestate").is_none());
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let gw = start_gateway().await;
    let request = Request::post(gw.url("/pets"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "private")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("proxy-connection", "keep-alive")
        .header("x-end-to-end", "kept")
        .header("x-echo-hop", "1")
        .body(full("body"))
        .expect("request");
    let (parts, body) = send(request).await;
    assert_eq!(parts.status, 200);
    let echo = json(&body);
    let seen = echo["headers"].as_object().expect("headers");
    for name in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(!seen.contains_key(name), "upstream saw `{name}`: {seen:?}");
    }
    assert_eq!(seen["x-end-to-end"], serde_json::json!(["kept"]));

    for name in ["connection", "x-up-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            !parts.headers.contains_key(name),
            "client saw `{name}`: {:?}",
            parts.headers
        );
    }
    assert_eq!(parts.headers["x-up-kept"], "1");
}

#[tokio::test]
async fn path_parameters_stay_inside_their_segment() {
    let gw = start_gateway().await;
    for (sent, upstream_path) in [
        ("..%2Fadmin", "/files/..%2Fadmin"),
        ("a%2Fb", "/files/a%2Fb"),
        ("..%2F..%2Fetc%2Fpasswd", "/files/..%2F..%2Fetc%2Fpasswd"),
        ("a%3Fb%23c", "/files/a%3Fb%23c"),
        ("100%25", "/files/100%25"),
        ("..%3B", "/files/..%3B"),
        ("...", "/files/..."),
        ("%C3%A9t%C3%A9", "/files/%C3%A9t%C3%A9"),
        ("a%20b", "/files/a%20b"),
        ("report.pdf", "/files/report.pdf"),
    ] {
        let (parts, body) = get(&gw.url(&format!("/files/{sent}"))).await;
        assert_eq!(parts.status, 200, "{sent}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["path"], upstream_path, "{sent}");
    }
}

#[tokio::test]
async fn dot_segment_and_non_utf8_parameters_are_refused() {
    let gw = start_gateway().await;
    for sent in ["..", ".", "%2E%2E", "%2e", ".%2E"] {
        let (parts, body) = get(&gw.url(&format!("/files/{sent}"))).await;
        let value = problem(&parts, &body, 400);
        assert_eq!(value["parameter"]["name"], "name", "{sent}");
        assert_eq!(value["parameter"]["in"], "path", "{sent}");
    }
    let (parts, body) = get(&gw.url("/files/%FF")).await;
    let value = problem(&parts, &body, 400);
    assert_eq!(value["parameter"]["name"], "name");
    assert_eq!(
        value["detail"],
        "path parameter `name` is not valid UTF-8 once percent-decoded"
    );
}

#[tokio::test]
async fn path_suffixes_are_matched_and_stripped() {
    let gw = start_gateway().await;
    for (sent, upstream_path) in [("abc.json", "/calls/abc.json"), ("a%2Fb.json", "/calls/a%2Fb.json")] {
        let (parts, body) = get(&gw.url(&format!("/calls/{sent}"))).await;
        assert_eq!(parts.status, 200, "{sent}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["path"], upstream_path, "{sent}");
    }
    for sent in ["abc", ".json", "abc.xml"] {
        let (parts, body) = get(&gw.url(&format!("/calls/{sent}"))).await;
        problem(&parts, &body, 404);
    }
    let (parts, body) = get(&gw.url("/calls/...json")).await;
    assert_eq!(problem(&parts, &body, 400)["parameter"]["name"], "sid");
}

/// Checks a streamed body against `PatternBody`, chunk by chunk, without holding it.
async fn assert_pattern(mut body: hyper::body::Incoming, len: usize) {
    let mut offset = 0;
    while let Some(frame) = bounded("body frame", body.frame()).await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            for (i, byte) in data.iter().enumerate() {
                assert_eq!(*byte, PatternBody::byte(offset + i), "byte {}", offset + i);
            }
            offset += data.len();
        }
    }
    assert_eq!(offset, len);
}

#[tokio::test]
async fn large_bodies_stream_through_intact() {
    const LEN: usize = 32 * 1024 * 1024;
    let gw = start_gateway().await;

    // Upload: 32 MiB, echoed back by the upstream as it arrives.
    let request = Request::post(gw.url("/upload"))
        .body(body_of(PatternBody::new(LEN)))
        .expect("request");
    let response = bounded("upload", client().request(request)).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_pattern(response.into_body(), LEN).await;

    // Download: 32 MiB generated by the upstream.
    let request = Request::get(gw.url("/download")).body(empty()).expect("request");
    let response = bounded("download", client().request(request)).await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-length"], DOWNLOAD_LEN.to_string());
    assert_pattern(response.into_body(), DOWNLOAD_LEN).await;
}

/// Proves streaming rather than buffering: each request chunk comes back through the gateway before the next
/// is sent. A buffering proxy would wait for the whole request body and this would time out.
#[tokio::test]
async fn bodies_are_streamed_not_buffered() {
    let gw = start_gateway().await;
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let request = Request::post(gw.url("/upload"))
        .body(body_of(ChannelBody(rx)))
        .expect("request");
    let response = client().request(request);
    tx.send(Bytes::from_static(b"first")).await.expect("send");
    let response = bounded("response head before the body ends", response)
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    for chunk in ["first", "second", "third"] {
        if chunk != "first" {
            tx.send(Bytes::from(chunk)).await.expect("send");
        }
        let mut got = Vec::new();
        while got.len() < chunk.len() {
            let frame = bounded(chunk, body.frame()).await.expect("more").expect("frame");
            got.extend_from_slice(frame.data_ref().expect("data"));
        }
        assert_eq!(got, chunk.as_bytes());
    }
    drop(tx);
    let rest = bounded("end", body.collect()).await.expect("end").to_bytes();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let gw = start_gateway().await;
    let started = Instant::now();
    let (parts, body) = get(&gw.url("/down")).await;
    let value = problem(&parts, &body, 502);
    assert_eq!(value["detail"], "the upstream could not be reached");
    // No internal detail (addresses, OS errors) leaks to the client.
    assert!(!String::from_utf8_lossy(&body).contains("127.0.0.1"));
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
}

#[tokio::test]
async fn upstream_connect_timeout_is_502() {
    // The `stall` upstream: connect timeout 300 ms, response timeout 5 s (see `API` in support.rs).
    const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
    const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
    let stalled = stalled_listener();
    let stall_addr = stalled.addr;
    let gw = start_gateway_with(move |config, _| {
        config
            .upstream_overrides
            .push(format!("stall=http://{stall_addr}").parse().expect("override"));
    })
    .await;
    let started = Instant::now();
    let (parts, body) = get(&gw.url("/stall")).await;
    let took = started.elapsed();
    let value = problem(&parts, &body, 502);
    assert_eq!(value["detail"], "the upstream could not be reached");
    // The gateway waited for the connection as long as the connect timeout (a refused connection, or no wait at
    // all, would answer at once)...
    assert!(
        took >= CONNECT_TIMEOUT,
        "answered after {took:?}, before the connect timeout"
    );
    // ... and no longer than that by much: the response timeout (a 504) is not what ended it.
    assert!(took < RESPONSE_TIMEOUT - Duration::from_secs(1), "took {took:?}");
    // The upstream was there all along, listening and dropping connections: the connection hung, not refused.
    assert!(
        tokio::task::spawn_blocking(move || stalled.still_hangs())
            .await
            .expect("probe"),
        "the stalled listener stopped stalling"
    );
}

/// Goes through the TLS connector (root certificates loaded, handshake attempted): a plain-HTTP server on the
/// other end fails the handshake, which is a 502 like any connection failure.
#[tokio::test]
async fn https_upstream_handshake_failure_is_502() {
    let gw = start_gateway_with(|config, upstream| {
        config
            .upstream_overrides
            .push(format!("echo=https://{upstream}").parse().expect("override"));
    })
    .await;
    let (parts, body) = get(&gw.url("/pets/1")).await;
    let value = problem(&parts, &body, 502);
    assert_eq!(value["detail"], "the upstream could not be reached");
    // The TCP connection was made: what failed came after it (an `https` URL refused outright would not connect).
    assert!(
        gw.upstream.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the gateway never connected to the upstream"
    );
}

#[tokio::test]
async fn slow_upstream_is_504_within_its_timeout() {
    let gw = start_gateway().await;
    let started = Instant::now();
    let (parts, body) = get(&gw.url("/slow")).await;
    let value = problem(&parts, &body, 504);
    assert_eq!(value["title"], "Upstream timeout");
    assert_eq!(value["type"], "urn:gateway:error:upstream-timeout");
    // The upstream would take 60 s; its timeout is 300 ms: not before it, and long before the upstream.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "504 after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stalled_response_body_is_aborted() {
    let gw = start_gateway().await;
    let started = Instant::now();
    let request = Request::get(gw.url("/stall-body")).body(empty()).expect("request");
    let response = bounded("head", client().request(request)).await.expect("response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = bounded("first chunk", body.frame())
        .await
        .expect("frame")
        .expect("data");
    assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"first chunk"[..]));
    // The upstream then goes quiet for 60 s; its 300 ms timeout also bounds each wait for body data.
    assert!(
        bounded("rest", body.collect()).await.is_err(),
        "truncated, not completed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let gw = start_gateway().await;
    let client = client();
    for _ in 0..20 {
        let request = Request::get(gw.url("/pets/1")).body(empty()).expect("request");
        let response = bounded("request", client.request(request)).await.expect("response");
        assert_eq!(response.status(), 200);
        bounded("body", response.into_body().collect()).await.expect("body");
    }
    // One client connection lands on one worker, whose pool keeps one upstream connection open.
    let opened = gw.upstream.connections.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 1, "upstream connections opened for 20 sequential requests");
}
