//! What one client may take of the gateway, over raw sockets: request smuggling refused, header limits (`431`),
//! the header timeout against slowloris, connections per process, requests per connection, HTTP/2 by prior
//! knowledge and its defence against rapid reset.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::setup_with;

/// Sends `request` on a new connection and reads until the gateway closes it (or 5 s pass).
async fn exchange_raw(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    read_until_closed(&mut stream, Duration::from_secs(5)).await
}

/// Everything the peer sends until it closes (`true`) or `limit` passes (`false`).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buf = [0_u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

/// How many responses `text` holds (status lines).
fn responses(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i..text[i..].find("\r\n").map_or(text.len(), |end| i + end)])
        .collect()
}

#[tokio::test]
async fn smuggling_attempts_are_refused_with_400_and_the_connection_closed() {
    let (_upstream, gw) = setup_with(&[]).await;
    let cases: [(&str, &[u8]); 4] = [
        (
            "two different Content-Lengths",
            b"POST /pets HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        ),
        (
            "a Transfer-Encoding that does not end in chunked",
            b"POST /pets HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ),
        (
            "an obs-folded header",
            b"GET /pets HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        ),
        (
            "a bad chunk size",
            b"POST /pets HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\nGET /pets HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
    ];
    for (case, request) in cases {
        let (text, closed) = exchange_raw(gw.addr, request).await;
        assert!(closed, "{case}: the connection stayed open: {text}");
        let seen = responses(&text);
        assert_eq!(seen, ["HTTP/1.1 400 Bad Request"], "{case}: {text}");
    }
}

#[tokio::test]
async fn a_request_with_both_content_length_and_chunked_is_read_as_chunked_and_its_connection_closed() {
    let (upstream, gw) = setup_with(&[]).await;
    // Read by its length, the body would be `0\r\n\r\nGET /pets?smuggled=1 …`; read as chunked (RFC 9112 §6.3), it
    // is empty and what follows would be a second request — which the gateway never reads: it closes the
    // connection after the first response.
    let request = b"GET /pets HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pets?smuggled=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let (text, closed) = exchange_raw(gw.addr, request).await;
    assert!(closed, "the connection stayed open: {text}");
    assert_eq!(responses(&text), ["HTTP/1.1 200 OK"], "{text}");
    assert!(
        text.to_ascii_lowercase().contains("\r\nconnection: close\r\n"),
        "{text}"
    );
    let last = upstream.last().await;
    assert_eq!(upstream.calls(), 1, "the smuggled request reached the upstream: {last}");
    assert!(
        !last.to_string().contains("smuggled"),
        "the upstream saw the smuggled request: {last}"
    );
    assert!(
        last["headers"].get("content-length").is_none(),
        "the conflicting length went upstream: {last}"
    );
}

#[tokio::test]
async fn heads_over_the_byte_or_field_limit_get_431() {
    let (upstream, gw) = setup_with(&["--max-header-bytes", "16KiB", "--max-headers", "50"]).await;
    let big = format!(
        "GET /pets HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    let (text, closed) = exchange_raw(gw.addr, big.as_bytes()).await;
    assert!(closed, "{text}");
    assert_eq!(
        responses(&text),
        ["HTTP/1.1 431 Request Header Fields Too Large"],
        "{text}"
    );

    let mut many = String::from("GET /pets HTTP/1.1\r\nHost: a\r\n");
    for i in 0..60 {
        many.push_str(&format!("X-Field-{i}: {i}\r\n"));
    }
    many.push_str("\r\n");
    let (text, closed) = exchange_raw(gw.addr, many.as_bytes()).await;
    assert!(closed, "{text}");
    assert_eq!(
        responses(&text),
        ["HTTP/1.1 431 Request Header Fields Too Large"],
        "{text}"
    );

    // Under both limits, the same kind of request is served.
    let mut fine = String::from("GET /pets HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
    for i in 0..40 {
        fine.push_str(&format!("X-Field-{i}: {}\r\n", "b".repeat(100)));
    }
    fine.push_str("\r\n");
    let (text, _) = exchange_raw(gw.addr, fine.as_bytes()).await;
    assert_eq!(responses(&text), ["HTTP/1.1 200 OK"], "{text}");
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn a_client_that_sends_its_head_too_slowly_is_cut_off_by_the_header_timeout() {
    let (upstream, gw) = setup_with(&["--header-timeout", "1s"]).await;
    let mut slow = TcpStream::connect(gw.addr).await.expect("connect");
    slow.write_all(b"GET /pets HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    // One header line every 300 ms would keep a connection without a head timeout open forever.
    let trickle = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(format!("X-Slow-{i}: x\r\n").as_bytes()).await.is_err() {
                return true;
            }
        }
        false
    };
    let cut_off = tokio::time::timeout(Duration::from_secs(9), trickle)
        .await
        .unwrap_or(false);
    let (text, closed) = read_until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(cut_off || closed, "the slow client was never cut off: {text}");
    assert!(responses(&text).iter().all(|r| !r.contains("200")), "{text}");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_closed_at_the_header_timeout() {
    let (_upstream, gw) = setup_with(&["--header-timeout", "1s"]).await;
    let mut silent = TcpStream::connect(gw.addr).await.expect("connect");
    let (text, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a connection without a byte sent was still open after 5 s");
    assert!(text.is_empty(), "{text}");
    // The timeout is the head's: a client that does send one is served.
    let mut prompt = TcpStream::connect(gw.addr).await.expect("connect");
    prompt
        .write_all(b"GET /pets HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let (text, _) = read_until_closed(&mut prompt, Duration::from_secs(5)).await;
    assert_eq!(responses(&text), ["HTTP/1.1 200 OK"], "{text}");
}

#[tokio::test]
async fn a_request_whose_body_trickles_in_gets_408_at_the_request_timeout() {
    let (_upstream, gw) = setup_with(&["--request-timeout", "1s"]).await;
    let mut slow = TcpStream::connect(gw.addr).await.expect("connect");
    // 100 bytes announced, 2 sent: the gateway waits for the rest, but not for ever.
    slow.write_all(
        b"POST /pets HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"",
    )
    .await
    .expect("write");
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    while !String::from_utf8_lossy(&received).contains("request-timeout") {
        match tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&received);
    assert_eq!(responses(&text), ["HTTP/1.1 408 Request Timeout"], "{text}");
    assert!(text.contains("urn:gateway:error:request-timeout"), "{text}");
}

#[tokio::test]
async fn a_connection_is_closed_after_max_requests_per_connection() {
    let (_upstream, gw) = setup_with(&["--max-requests-per-connection", "3"]).await;
    let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
    let mut answered = Vec::new();
    for _ in 0..3 {
        stream
            .write_all(b"GET /pets HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let mut head = Vec::new();
        let mut byte = [0_u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
                .await
                .expect("a response in time")
                .expect("read");
            assert!(n > 0, "closed early after {} responses", answered.len());
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.trim().parse().ok())
            .expect("a content-length");
        let mut body = vec![0_u8; length];
        stream.read_exact(&mut body).await.expect("body");
        answered.push(head);
    }
    assert!(!answered[1].contains("connection: close"), "{answered:?}");
    assert!(answered[2].contains("connection: close"), "{answered:?}");
    let (rest, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed && rest.is_empty(), "{rest:?}");
}

#[tokio::test]
async fn connections_over_max_connections_wait_until_one_closes() {
    let (_upstream, gw) = setup_with(&["--max-connections", "2", "--workers", "1"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.addr).await.expect("connect");
        stream
            .write_all(b"GET /pets HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let mut buf = [0_u8; 4096];
        let n = stream.read(&mut buf).await.expect("read");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // The third connects (the kernel's backlog takes it) but is not served while two are held.
    let mut third = TcpStream::connect(gw.addr).await.expect("connect");
    third
        .write_all(b"GET /pets HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0_u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(800), third.read(&mut buf)).await;
    assert!(early.is_err(), "served over the limit: {early:?}");
    drop(held.pop());
    let (text, _) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert_eq!(responses(&text), ["HTTP/1.1 200 OK"], "{text}");
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_on_the_plain_listener() {
    let (upstream, gw) = setup_with(&[]).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut client, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get(gw.url("/pets")).body(()).expect("request");
    let (response, _) = client.send_request(request, true).expect("send");
    let response = response.await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk: Bytes = chunk.expect("chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    assert!(!received.is_empty());
    assert_eq!(upstream.calls(), 1);
    // The upstream is spoken to over HTTP/1.1 whatever the client spoke.
    assert_eq!(upstream.last().await["version"], "HTTP/1.1");
}

#[tokio::test]
async fn a_client_resetting_streams_in_a_loop_is_cut_off_while_others_are_served() {
    // No request limit per connection, so that only the reset defence can end the connection.
    let (_upstream, gw) = setup_with(&["--max-requests-per-connection", "off"]).await;
    let stream = TcpStream::connect(gw.addr).await.expect("connect");
    let (mut attacker, connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    let attacker_connection = tokio::spawn(connection);
    let mut cut_off = false;
    let mut sent = 0;
    for _ in 0..20_000 {
        let request = http::Request::get(gw.url("/pets")).body(()).expect("request");
        let ready = match attacker.ready().await {
            Ok(ready) => ready,
            Err(_) => {
                cut_off = true;
                break;
            }
        };
        attacker = ready;
        match attacker.send_request(request, false) {
            Ok((_, mut send)) => {
                send.send_reset(h2::Reason::CANCEL);
                sent += 1;
            }
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), attacker_connection).await;
    // Cut off: `GOAWAY` (`ENHANCE_YOUR_CALM`), or the socket closed under it (the client queues every stream before
    // it writes, so it may see only the close). A connection the server kept would still be running after the 5 s.
    let closed = matches!(&ended, Ok(Ok(Err(_))));
    assert!(
        cut_off || closed,
        "the rapid-reset client kept its connection after {sent} resets: {ended:?}"
    );

    // Another client, meanwhile, is served.
    let reply = gateway_tests::client::get(&gw.url("/pets")).await;
    assert_eq!(reply.status, StatusCode::OK);
}
