//! Trace export of the generated gateways as processes (`--otlp-endpoint`), against an in-process OTLP/HTTP
//! collector that decodes what it receives: the exported spans' ids line up with the `traceparent` the upstream
//! got, they carry no credential, sampling is parent-based, what is queued at shutdown is still sent, and a
//! collector that is down costs the requests nothing.

use std::time::Duration;

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use gateway_tests::gateway::{Gateway, binary};
use gateway_tests::otlp::{Collector, ReceivedSpan};
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;

use crate::support::{BIN, setup_with_env};

/// Upper bound for waiting on spans or an exit.
const WAIT: Duration = Duration::from_secs(15);

/// The SDK's batch interval, in milliseconds: 100 instead of 5 s, so that spans arrive while the test waits.
const QUICK: (&str, &str) = ("OTEL_BSP_SCHEDULE_DELAY", "100");

/// A caller's trace and span.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace: &str, flags: &str) -> String {
    format!("00-{trace}-{CALLER_SPAN}-{flags}")
}

/// An upstream and the petstore exporting to `collector`, with `extra` flags and `env`.
async fn traced(collector: &Collector, extra: &[&str], env: &[(&str, &str)]) -> (Upstream, Gateway) {
    let url = collector.url();
    let mut args = vec!["--otlp-endpoint", url.as_str()];
    args.extend_from_slice(extra);
    setup_with_env(&args, env).await
}

/// The `traceparent` the upstream received (the test upstream describes the request it got), as
/// (trace id, parent span id, flags).
fn upstream_traceparent(reply: &Reply) -> (String, String, String) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let description = reply.json();
    let header = description["headers"]["traceparent"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent reached the upstream: {description}"));
    let fields: Vec<&str> = header.split('-').collect();
    assert_eq!(fields.len(), 4, "{header}");
    (fields[1].to_owned(), fields[2].to_owned(), fields[3].to_owned())
}

/// The one span of `kind` in `spans`.
fn only(spans: &[ReceivedSpan], kind: SpanKind) -> &ReceivedSpan {
    let of_kind: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind:?} span expected: {spans:#?}");
    of_kind[0]
}

#[tokio::test]
async fn a_callers_trace_is_exported_as_a_server_span_under_the_caller_over_a_client_span_the_upstream_saw() {
    const SECRETS: [&str; 5] = [
        "bearer-secret-0042",
        "key-secret-0042",
        "query-secret-0042",
        "cookie-secret-0042",
        "state-secret-0042",
    ];
    let collector = Collector::start().await.expect("collector");
    let (_upstream, gw) = traced(&collector, &[], &[QUICK]).await;
    let reply = send(
        Method::GET,
        &gw.url("/pets?limit=5&api_key=query-secret-0042"),
        &[
            ("traceparent", &traceparent(CALLER_TRACE, "01")),
            ("tracestate", "vendor=state-secret-0042"),
            ("authorization", "Bearer bearer-secret-0042"),
            ("x-api-key", "key-secret-0042"),
            ("cookie", "session=cookie-secret-0042"),
        ],
        Bytes::new(),
    )
    .await
    .expect("reply");
    let (trace, parent, flags) = upstream_traceparent(&reply);
    assert_eq!((trace.as_str(), flags.as_str()), (CALLER_TRACE, "01"));
    assert_ne!(parent, CALLER_SPAN, "the gateway is a hop of its own");

    let spans = collector.wait_for_trace(CALLER_TRACE, 2, WAIT).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = only(&spans, SpanKind::Server);
    let client = only(&spans, SpanKind::Client);

    // The tree: caller ─► server span ─► client span ─► the upstream (whose parent is the client span).
    assert_eq!(server.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(client.parent_span_id.as_deref(), Some(server.span_id.as_str()));
    assert_eq!(client.span_id, parent);
    assert!(server.start_unix_nano <= client.start_unix_nano && client.end_unix_nano <= server.end_unix_nano);

    assert_eq!(server.name, "GET /pets");
    assert_eq!(server.str("http.request.method"), Some("GET"));
    assert_eq!(server.str("http.route"), Some("/pets"));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert_eq!(server.str("client.address"), Some("127.0.0.1"));
    assert_eq!(server.str("url.scheme"), Some("http"));
    assert_eq!(server.str("gateway.operation"), Some("listPets"));
    assert_eq!(server.str("gateway.upstream"), Some("pets"));
    assert_eq!(server.str("gateway.request_id"), reply.header("x-request-id"));
    assert_eq!(server.str("error.type"), None);
    assert_eq!(server.status, SpanStatus::Unset);
    assert_eq!(client.str("http.request.method"), Some("GET"));
    assert_eq!(client.int("http.response.status_code"), Some(200));
    assert_eq!(client.str("gateway.upstream"), Some("pets"));

    for span in [server, client] {
        assert_eq!(span.resource["service.name"], "petstore");
        assert_eq!(span.resource["service.version"], "1.0.0");
        assert_eq!(span.resource["deployment.environment.name"], "dev");
        assert_eq!(span.scope, "gateway-runtime");
        assert_eq!(span.trace_state, "", "the caller's tracestate is not exported");
    }

    // Nothing of a credential, the query or a header value, in what was decoded or in the bytes as they came.
    let decoded = format!("{spans:?}");
    let bodies = collector.bodies();
    for needle in SECRETS.iter().copied().chain(["limit=5", "api_key", "Bearer"]) {
        assert!(!decoded.contains(needle), "{needle} was exported: {decoded}");
        for body in &bodies {
            assert!(
                !body.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is in an export body"
            );
        }
    }
    assert_eq!(collector.rejected(), 0);
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_sampled_trace_exported_under_the_id_the_upstream_saw() {
    let collector = Collector::start().await.expect("collector");
    let (_upstream, gw) = traced(&collector, &[], &[QUICK]).await;
    let (trace, parent, flags) = upstream_traceparent(&get(&gw.url("/pets")).await);
    assert_eq!(flags, "01", "with export on and ratio 1, a new trace is sampled");

    let spans = collector.wait_for_trace(&trace, 2, WAIT).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let server = only(&spans, SpanKind::Server);
    let client = only(&spans, SpanKind::Client);
    assert_eq!(server.parent_span_id, None, "a new trace's server span is its root");
    assert_eq!(client.parent_span_id.as_deref(), Some(server.span_id.as_str()));
    assert_eq!(client.span_id, parent);
}

#[tokio::test]
async fn a_request_no_operation_matches_is_exported_as_a_server_span_alone() {
    let collector = Collector::start().await.expect("collector");
    let (upstream, gw) = traced(&collector, &[], &[QUICK]).await;
    let reply = send(
        Method::GET,
        &gw.url("/no/such/path?token=query-secret-0042"),
        &[("traceparent", &traceparent(CALLER_TRACE, "01"))],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let spans = collector.wait_for_trace(CALLER_TRACE, 1, WAIT).await;
    let server = only(&spans, SpanKind::Server);
    assert!(spans.iter().all(|s| s.kind == SpanKind::Server), "{spans:#?}");
    assert_eq!(server.name, "GET");
    assert_eq!(server.parent_span_id.as_deref(), Some(CALLER_SPAN));
    assert_eq!(server.str("http.route"), None, "never the raw path");
    assert_eq!(server.int("http.response.status_code"), Some(404));
    assert_eq!(server.str("error.type"), Some("NOT_FOUND"));
    // A 4xx is the client's: the server span is not an error.
    assert_eq!(server.status, SpanStatus::Unset);
    assert!(!format!("{spans:?}").contains("/no/such/path") && !format!("{spans:?}").contains("query-secret"));
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn unsampled_traces_export_nothing_and_a_sampled_caller_is_exported_whatever_the_ratio() {
    let collector = Collector::start().await.expect("collector");
    let (_upstream, gw) = traced(&collector, &["--otlp-sample-ratio", "0"], &[QUICK]).await;
    const UNSAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";
    const SAMPLED: &str = "5b8efff798038103d269b633813fc60c";

    // The caller decided not to sample: the decision goes upstream, and nothing is exported.
    let unsampled = send(
        Method::GET,
        &gw.url("/pets"),
        &[("traceparent", &traceparent(UNSAMPLED, "00"))],
        Bytes::new(),
    )
    .await
    .expect("reply");
    let (trace, _, flags) = upstream_traceparent(&unsampled);
    assert_eq!((trace.as_str(), flags.as_str()), (UNSAMPLED, "00"));
    // A new trace with ratio 0: not sampled either.
    let (new_trace, _, new_flags) = upstream_traceparent(&get(&gw.url("/pets")).await);
    assert_eq!(new_flags, "00");

    // A sampled caller is exported, ratio or not. Spans leave in the order requests end, so once this request's
    // spans have arrived, any of the earlier requests' would have too.
    let sampled = send(
        Method::GET,
        &gw.url("/pets"),
        &[("traceparent", &traceparent(SAMPLED, "01"))],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(upstream_traceparent(&sampled).2, "01");
    let exported = collector.wait_for_trace(SAMPLED, 2, WAIT).await;
    assert_eq!(exported.len(), 2, "{exported:#?}");
    let all = collector.spans();
    assert!(
        all.iter().all(|s| s.trace_id == SAMPLED),
        "only the sampled trace ({SAMPLED}) is exported, not {UNSAMPLED} nor {new_trace}: {all:#?}"
    );
}

#[tokio::test]
async fn an_unreachable_collector_never_fails_requests_and_is_warned_about_once() {
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let (_upstream, mut gw) = setup_with_env(&["--otlp-endpoint", &endpoint], &[QUICK]).await;
    for i in 0..30 {
        let reply = send(
            Method::GET,
            &gw.url("/pets"),
            &[("traceparent", &traceparent(CALLER_TRACE, "01"))],
            Bytes::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(reply.status, StatusCode::OK, "request {i}: {}", reply.text());
    }
    // The graceful shutdown tries to send what is queued, fails, and still ends well.
    let status = gw.terminate(WAIT).expect("exits");
    let stderr = gw.take_stderr();
    assert!(status.success(), "{stderr}");
    let warnings = stderr.matches("cannot export trace spans").count();
    assert_eq!(warnings, 1, "one warning per minute at most: {stderr}");
}

#[tokio::test]
async fn spans_still_queued_at_shutdown_are_sent_before_the_gateway_exits() {
    let collector = Collector::start().await.expect("collector");
    // A batch interval of ten minutes: only the shutdown's flush sends these.
    let (_upstream, mut gw) = traced(&collector, &[], &[("OTEL_BSP_SCHEDULE_DELAY", "600000")]).await;
    let reply = send(
        Method::GET,
        &gw.url("/pets"),
        &[("traceparent", &traceparent(CALLER_TRACE, "01"))],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(reply.status, StatusCode::OK);
    let status = gw.terminate(WAIT).expect("exits");
    assert!(status.success(), "{}", gw.take_stderr());
    let spans = collector.wait_for_trace(CALLER_TRACE, 2, WAIT).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
}

#[test]
fn a_bad_otlp_flag_is_a_usage_error_at_start_up() {
    for (flag, value, says) in [
        ("--otlp-endpoint", "ftp://collector:4318", "scheme"),
        ("--otlp-endpoint", "not a url", "bad OTLP endpoint"),
        ("--otlp-sample-ratio", "1.5", "from 0 to 1"),
    ] {
        let output = std::process::Command::new(binary(BIN))
            .args(["--listen", "127.0.0.1:0", flag, value])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the gateway runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(output.stdout.is_empty(), "never listened");
    }
}
