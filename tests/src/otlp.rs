//! A small OpenTelemetry collector for end-to-end tests: OTLP/HTTP with protobuf bodies, on an ephemeral port of
//! 127.0.0.1, decoding what it receives so that a test can look at each span.
//!
//! - `POST /v1/traces` with `Content-Type: application/x-protobuf`: the body is decoded as an
//!   `ExportTraceServiceRequest` (opentelemetry-proto's prost types) and answered `200` with an empty
//!   `ExportTraceServiceResponse`. A body that does not decode is answered `400`, another content type `415`; both
//!   are counted ([`Collector::rejected`]), so that a test sees a gateway sending something else.
//! - Anything else: `404`.
//!
//! Every span received is kept, flattened with its resource ([`ReceivedSpan`]), and so is every body as it came
//! ([`Collector::bodies`]), for tests that look for what must never be exported. Waits are bounded
//! ([`Collector::wait_for`]). The server speaks HTTP/1.1 and stops, connections and all, when dropped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as AnyValueMessage, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// One span as received, with the attributes of the resource and scope it came under.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The trace id, as 32 lower-case hex digits.
    pub trace_id: String,
    /// The span id, as 16 lower-case hex digits.
    pub span_id: String,
    /// The parent's span id, as 16 lower-case hex digits; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The span's kind.
    pub kind: SpanKind,
    /// The span's name.
    pub name: String,
    /// The span's attributes (string, integer, boolean and double values as JSON; others as their debug text).
    pub attributes: BTreeMap<String, Value>,
    /// The span's status code.
    pub status: SpanStatus,
    /// The span's status message.
    pub status_message: String,
    /// The span's `tracestate`, as exported.
    pub trace_state: String,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// See `start_unix_nano`.
    pub end_unix_nano: u64,
    /// The attributes of the resource the span came under.
    pub resource: BTreeMap<String, Value>,
    /// The name of the instrumentation scope the span came under.
    pub scope: String,
}

impl ReceivedSpan {
    /// The string attribute `key`.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// The integer attribute `key`.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

/// What the server saw.
struct State {
    spans: Mutex<Vec<ReceivedSpan>>,
    bodies: Mutex<Vec<Bytes>>,
    /// The number of spans received, for waiting on.
    received: watch::Sender<usize>,
    rejected: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running collector; stops when dropped.
pub struct Collector {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        // Dropping the accept loop drops its listener and its set of connection tasks, which aborts them.
        self.task.abort();
    }
}

impl Collector {
    /// Starts on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            spans: Mutex::new(Vec::new()),
            bodies: Mutex::new(Vec::new()),
            received: watch::Sender::new(0),
            rejected: AtomicU64::new(0),
        });
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let accepted = listener.accept().await;
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let state = Arc::clone(&serving);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&state), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`: the base URL a gateway's `--otlp-endpoint` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in the order they came.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.state.spans).clone()
    }

    /// Every request body received so far, as it came (protobuf).
    pub fn bodies(&self) -> Vec<Bytes> {
        lock(&self.state.bodies).clone()
    }

    /// Requests refused so far: a body that did not decode, or another content type.
    pub fn rejected(&self) -> u64 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// Waits until the spans received satisfy `done`, or `limit` passes; returns the spans either way (the test
    /// asserts on them).
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let mut received = self.state.received.subscribe();
        let _ = tokio::time::timeout(limit, async {
            loop {
                if done(&lock(&self.state.spans)) {
                    return;
                }
                if received.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        self.spans()
    }

    /// Waits (at most `limit`) until at least `count` spans of the trace `trace_id` (hex) have arrived, and returns
    /// that trace's spans.
    pub async fn wait_for_trace(&self, trace_id: &str, count: usize, limit: Duration) -> Vec<ReceivedSpan> {
        let of_trace = |spans: &[ReceivedSpan]| spans.iter().filter(|s| s.trace_id == trace_id).count();
        self.wait_for(limit, |spans| of_trace(spans) >= count)
            .await
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::POST || req.uri().path() != "/v1/traces" {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new()));
    }
    let protobuf = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    if !protobuf {
        state.rejected.fetch_add(1, Ordering::SeqCst);
        return Ok(reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Bytes::new()));
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body.clone()) else {
        state.rejected.fetch_add(1, Ordering::SeqCst);
        return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    lock(&state.bodies).push(body);
    let received = flatten(request);
    let count = {
        let mut spans = lock(&state.spans);
        spans.extend(received);
        spans.len()
    };
    state.received.send_replace(count);
    let mut answer = reply(
        StatusCode::OK,
        Bytes::from(ExportTraceServiceResponse { partial_success: None }.encode_to_vec()),
    );
    answer.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(answer)
}

/// The spans of `request`, each with its resource's attributes and its scope's name.
fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = attributes(resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
        for scope_spans in resource_spans.scope_spans {
            let scope = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                out.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty()).then(|| hex(&span.parent_span_id)),
                    kind: SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified),
                    name: span.name,
                    attributes: attributes(span.attributes),
                    status: SpanStatus::try_from(status.code).unwrap_or(SpanStatus::Unset),
                    status_message: status.message,
                    trace_state: span.trace_state,
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                    resource: resource.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    out
}

fn attributes(list: Vec<KeyValue>) -> BTreeMap<String, Value> {
    list.into_iter().map(|kv| (kv.key, value(kv.value))).collect()
}

fn value(any: Option<AnyValueMessage>) -> Value {
    match any.and_then(|v| v.value) {
        None => Value::Null,
        Some(AnyValue::StringValue(s)) => Value::String(s),
        Some(AnyValue::IntValue(i)) => Value::from(i),
        Some(AnyValue::BoolValue(b)) => Value::Bool(b),
        Some(AnyValue::DoubleValue(d)) => Value::from(d),
        Some(other) => Value::String(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
