//! An upstream that tells what it received, and can be slow, large, streaming or failing on request.
//!
//! Behaviour is chosen by query parameters, which a gateway passes through untouched:
//! - `delay_ms=N` — wait N ms before the response head;
//! - `status=N` — answer with status N;
//! - `size=N` — answer with N bytes (`x` repeated), streamed in 64 KiB chunks;
//! - `echo=body` — stream the request body back as the response body;
//! - `gate=NAME` — send `first\n`, then wait until `/__release/NAME` is requested, then send `second\n`;
//! - `hop=1` — add hop-by-hop headers to the response (`Connection: x-hop`, `X-Hop`, `Keep-Alive`);
//! - `cache_control=V` — add `Cache-Control: V`; `set_cookie=1` — add `Set-Cookie: session=s1`;
//! - `body_json=JSON` — answer with that JSON document (`Content-Type: application/json`);
//! - `content_type=V` — answer with `Content-Type: V` (with `size` or `gate`).
//!
//! A request with `Upgrade: websocket` is a WebSocket handshake: the server switches protocols and echoes every
//! message back, prefixed with `echo: `, until the client closes.
//!
//! Otherwise the answer is a JSON description of the request (`Content-Type: application/json`): method, raw
//! path, query, headers, body. `/__calls` answers how many other requests arrived; `/__last` the description of
//! the last request whose body arrived whole (`null` before any). `/healthz` answers `200 ok` (or the status
//! [`Upstream::set_health`] set) and is counted apart, in [`Upstream::health_checks`]. Every response carries
//! `X-Upstream: echo` and `X-Upstream-Port: PORT`, the port the server listens on.
//!
//! A test can also change one server's behaviour for every request ([`Upstream::fail_with`],
//! [`Upstream::delay_all`]), see how many connections it had open at most ([`Upstream::peak_connections`]), and
//! kill it — listener and open connections at once — to restart it later on the same port
//! ([`Upstream::kill`], [`Upstream::start_on`]).
//!
//! [`FixedJson`] is the benchmark origin instead: every request, whatever its path (but `/__calls`), gets the same
//! JSON body, built once, after an optional fixed delay. Its per-request work is as small as hyper allows (the body
//! is a clone of one `Bytes`, the headers are static), so that what a benchmark measures is the proxy in front of it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

type Body = BoxBody<Bytes, hyper::Error>;

/// Shared state of one upstream.
#[derive(Default)]
struct State {
    calls: AtomicU64,
    arrived: Mutex<Option<watch::Sender<u64>>>,
    last: Mutex<Option<String>>,
    gates: Mutex<HashMap<String, Arc<Notify>>>,
    /// The port it listens on, for `X-Upstream-Port`.
    port: u16,
    /// When non-zero, the status of every answer but the health check's.
    fail_status: AtomicU16,
    /// When non-zero, the health check's status.
    health_status: AtomicU16,
    /// Milliseconds every answer waits before its head.
    delay_ms: AtomicU64,
    health_checks: AtomicU64,
    open: AtomicU64,
    peak_open: AtomicU64,
}

impl State {
    fn remember(&self, description: String) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(description);
    }

    fn gate(&self, name: &str) -> Arc<Notify> {
        let mut gates = self.gates.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        gates.entry(name.to_owned()).or_default().clone()
    }
}

/// A running upstream; stops when dropped.
pub struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    arrived: watch::Receiver<u64>,
    /// Dropping it stops the listener and every open connection.
    stop: Option<watch::Sender<bool>>,
}

/// Counts a connection open while it lives.
struct Open(Arc<State>);

impl Open {
    fn new(state: Arc<State>) -> Self {
        let now = state.open.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak_open.fetch_max(now, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Upstream {
    /// Starts on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    /// Starts on `addr` (a server [`kill`](Self::kill)ed before can start again on its address).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, arrived) = watch::channel(0);
        let state = Arc::new(State {
            arrived: Mutex::new(Some(tx)),
            port: addr.port(),
            ..State::default()
        });
        let (stop, mut stopped) = watch::channel(false);
        let serving = state.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = serving.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    let _open = Open::new(state.clone());
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    // A kill drops the connection, in the middle of whatever it was doing.
                    tokio::select! {
                        _ = connection => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            state,
            arrived,
            stop: Some(stop),
        })
    }

    /// Stops listening and drops every open connection at once, as a crashed process would.
    pub fn kill(&mut self) {
        self.stop.take();
    }

    /// From now on, answers every request (but the health check) with `status`; `None`: as asked again.
    pub fn fail_with(&self, status: Option<u16>) {
        self.state.fail_status.store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// From now on, answers the health check with `status`; `None`: `200`.
    pub fn set_health(&self, status: Option<u16>) {
        self.state.health_status.store(status.unwrap_or(0), Ordering::SeqCst);
    }

    /// From now on, waits `delay` before every answer's head.
    pub fn delay_all(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Health checks (`/healthz`) received so far.
    pub fn health_checks(&self) -> u64 {
        self.state.health_checks.load(Ordering::SeqCst)
    }

    /// The most connections it had open at once.
    pub fn peak_connections(&self) -> u64 {
        self.state.peak_open.load(Ordering::SeqCst)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The description of the last request whose body arrived whole (`null` before any).
    pub async fn last(&self) -> serde_json::Value {
        crate::client::get(&format!("{}/__last", self.url())).await.json()
    }

    /// Requests received so far (not counting `/__` control requests).
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived, or `limit` passes; returns whether they did.
    pub async fn wait_for_calls(&self, n: u64, limit: Duration) -> bool {
        let mut rx = self.arrived.clone();
        tokio::time::timeout(limit, rx.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Lets a `gate=NAME` response send its second chunk.
    pub fn release(&self, name: &str) {
        self.state.gate(name).notify_one();
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/__calls" {
        return Ok(Response::new(full(state.calls.load(Ordering::SeqCst).to_string())));
    }
    if path == "/__last" {
        let last = state
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        return Ok(Response::new(full(last.unwrap_or_else(|| "null".to_owned()))));
    }
    if let Some(name) = path.strip_prefix("/__release/") {
        state.gate(name).notify_one();
        return Ok(Response::new(full("released")));
    }
    if path == "/healthz" {
        state.health_checks.fetch_add(1, Ordering::SeqCst);
        let mut response = Response::new(full("ok"));
        if let Some(status) = status_code(state.health_status.load(Ordering::SeqCst)) {
            *response.status_mut() = status;
        }
        return Ok(response);
    }
    if req
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
    {
        state.calls.fetch_add(1, Ordering::SeqCst);
        return Ok(websocket_echo(req));
    }
    let count = state.calls.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(tx) = state
        .arrived
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
    {
        tx.send_replace(count);
    }
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u64>().ok());
    let delay = number("delay_ms").unwrap_or(0) + state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = status_code(state.fail_status.load(Ordering::SeqCst))
        .or_else(|| number("status").and_then(|s| status_code(u16::try_from(s).ok()?)))
        .unwrap_or(StatusCode::OK);

    let mut json = false;
    let body = if query.get("echo").map(String::as_str) == Some("body") {
        req.into_body().boxed()
    } else if let Some(document) = query.get("body_json") {
        json = true;
        if let Some(description) = describe(req).await {
            state.remember(description);
        }
        full(document.clone())
    } else if let Some(size) = number("size") {
        sized_body(size)
    } else if let Some(gate) = query.get("gate") {
        gated_body(state.gate(gate))
    } else {
        json = true;
        match describe(req).await {
            Some(description) => {
                state.remember(description.clone());
                full(description)
            }
            None => full("{}"),
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if json {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    headers.insert("x-upstream", HeaderValue::from_static("echo"));
    headers.insert("x-upstream-port", HeaderValue::from(state.port));
    if query.contains_key("hop") {
        headers.insert("connection", HeaderValue::from_static("x-hop"));
        headers.insert("x-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    }
    if let Some(value) = query.get("cache_control").and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert("cache-control", value);
    }
    if let Some(value) = query.get("content_type").and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert("content-type", value);
    }
    if query.contains_key("set_cookie") {
        headers.insert("set-cookie", HeaderValue::from_static("session=s1"));
    }
    // Which call this answer came from: a cached copy repeats the number of the call that produced it.
    headers.insert("x-upstream-call", HeaderValue::from(count));
    Ok(response)
}

/// Switches `req`'s connection to WebSocket and echoes every text or binary message, prefixed with `echo: `.
fn websocket_echo(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut response = Response::new(full("no Sec-WebSocket-Key"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket =
            tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = socket.next().await {
            let reply = match message {
                Message::Text(text) => Message::text(format!("echo: {text}")),
                Message::Binary(bytes) => {
                    let mut out = b"echo: ".to_vec();
                    out.extend_from_slice(&bytes);
                    Message::binary(out)
                }
                Message::Close(_) => break,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert("connection", HeaderValue::from_static("upgrade"));
    headers.insert("upgrade", HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert("sec-websocket-accept", accept);
    }
    response
}

/// `status` as a status code; `None` for 0 and what is not one.
fn status_code(status: u16) -> Option<StatusCode> {
    (status != 0).then(|| StatusCode::from_u16(status).ok()).flatten()
}

/// The JSON description of a request, or `None` when its body did not arrive whole.
async fn describe(req: Request<Incoming>) -> Option<String> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).ok()?;
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<serde_json::Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), serde_json::Value::Array(values));
    }
    serde_json::json!({
        "method": parts.method.as_str(),
        "version": format!("{:?}", parts.version),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
        "body": std::str::from_utf8(&body).ok().filter(|b| b.len() <= 64 * 1024),
    })
    .to_string()
    .into()
}

const CHUNK: usize = 64 * 1024;

fn sized_body(size: u64) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(4);
    tokio::spawn(async move {
        let chunk = Bytes::from(vec![b'x'; CHUNK]);
        let mut left = usize::try_from(size).unwrap_or(usize::MAX);
        while left > 0 {
            let n = left.min(CHUNK);
            if tx.send(Ok(Frame::data(chunk.slice(..n)))).await.is_err() {
                return;
            }
            left -= n;
        }
    });
    StreamBody::new(ReceiverStream::new(rx)).boxed()
}

fn gated_body(gate: Arc<Notify>) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(Bytes::from_static(b"first\n")))).await.is_err() {
            return;
        }
        gate.notified().await;
        let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"second\n")))).await;
    });
    StreamBody::new(ReceiverStream::new(rx)).boxed()
}

/// The benchmark origin: the same JSON body for every request, after an optional fixed delay.
///
/// `/__calls` answers how many other requests arrived (one relaxed atomic add per request), so that a benchmark
/// can check that a proxy really forwards every request to it, and caches none; `/healthz` (a gateway's health
/// check) answers `ok` and is not counted.
#[derive(Debug, Clone)]
pub struct FixedJson {
    body: Bytes,
    delay: Option<Duration>,
    calls: Arc<AtomicU64>,
}

impl FixedJson {
    /// A body of `size` bytes (or the smallest body this makes, if `size` is smaller) answered after `delay`.
    pub fn new(size: usize, delay: Option<Duration>) -> Self {
        Self {
            body: Bytes::from(fixed_json_body(size)),
            delay: delay.filter(|d| !d.is_zero()),
            calls: Arc::default(),
        }
    }

    /// The body every request gets.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Serves HTTP/1.1 with keep-alive on `listener` until the task is dropped.
    ///
    /// HTTP/1 only: every client a benchmark puts in front of it (wrk, nginx, haproxy, the gateway) speaks
    /// HTTP/1.1 to its origin, and hyper's `http1` connection skips the protocol sniffing of the auto builder.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: back off briefly rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let fixed = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| fixed.clone().respond(req));
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn respond(self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        if req.uri().path() == "/__calls" {
            return Ok(Response::new(Full::new(Bytes::from(
                self.calls.load(Ordering::Relaxed).to_string(),
            ))));
        }
        // A gateway's health checks are not requests it forwards: not counted, not delayed.
        if req.uri().path() == "/healthz" {
            return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(delay) = self.delay {
            tokio::time::sleep(delay).await;
        }
        let mut response = Response::new(Full::new(self.body));
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(response)
    }
}

/// A pet as JSON, padded to `size` bytes with a `note` field.
fn fixed_json_body(size: usize) -> Vec<u8> {
    const HEAD: &str = r#"{"id":42,"name":"Rex","status":"available","tags":["dog","good"],"note":""#;
    const TAIL: &str = r#""}"#;
    let pad = size.saturating_sub(HEAD.len() + TAIL.len());
    let mut body = Vec::with_capacity(HEAD.len() + pad + TAIL.len());
    body.extend_from_slice(HEAD.as_bytes());
    body.resize(HEAD.len() + pad, b'.');
    body.extend_from_slice(TAIL.as_bytes());
    body
}

/// A service with fixed answers: each listed path gets its status and JSON body, every other path a `404`. Stops
/// when dropped.
pub struct Routes {
    /// Where it listens.
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Routes {
    /// Starts on an ephemeral port of 127.0.0.1 with `routes` (path, status, JSON body).
    pub async fn start(routes: &[(&str, u16, &str)]) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let routes: Arc<HashMap<String, (u16, Bytes)>> = Arc::new(
            routes
                .iter()
                .map(|(path, status, body)| ((*path).to_owned(), (*status, Bytes::from((*body).to_owned()))))
                .collect(),
        );
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = &mut stopped => break,
                };
                let Ok((stream, _)) = accepted else { continue };
                let routes = routes.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let (status, body) = routes
                            .get(req.uri().path())
                            .cloned()
                            .unwrap_or((404, Bytes::from_static(br#"{"error":"not found"}"#)));
                        async move {
                            let mut response = Response::new(full(body));
                            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                            response
                                .headers_mut()
                                .insert("content-type", HeaderValue::from_static("application/json"));
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, _stop: stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_json_body_has_the_asked_size_and_is_json() {
        let smallest = fixed_json_body(0).len();
        for size in [0, smallest, 200, 4096] {
            let body = fixed_json_body(size);
            assert_eq!(body.len(), size.max(smallest));
            let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(value["id"], 42);
        }
    }
}
