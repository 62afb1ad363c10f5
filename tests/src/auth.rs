//! An in-process auth server for end-to-end tests: a key set, an OpenID discovery document and an external
//! authorizer, on one ephemeral port of 127.0.0.1, each instrumented and steerable by the test.
//!
//! - `GET /jwks.json`: the key set (at first the fixture `tests/fixtures/jwt/jwks.json`), which the test can swap
//!   ([`AuthServer::set_jwks`]), give a `Cache-Control` ([`AuthServer::set_jwks_cache_control`]) or make fail
//!   ([`AuthServer::set_jwks_status`]). Counted: [`AuthServer::jwks_calls`].
//! - `GET /.well-known/openid-configuration`: `{"issuer": ISSUER, "jwks_uri": "<url>/jwks.json"}`, the issuer
//!   being [`DEFAULT_ISSUER`] unless [`AuthServer::set_issuer`] changed it. Counted: [`AuthServer::discovery_calls`].
//! - `/check` (and anything below it, any method): an authorizer in the manner of Traefik's ForwardAuth and
//!   nginx's `auth_request`, which decides by the credential it receives. The credential is the value of
//!   `X-Gateway-Credential` when the request has one (a gateway sends query and cookie credentials so); otherwise
//!   that of the first header whose value, after an optional auth scheme (`Bearer `), begins with `allow-`,
//!   `deny-` or `slow-` (a gateway sends a header credential in the header it arrived in). Then:
//!   - `allow-ID` → 200 with `X-Partner-Id: ID` and `X-Not-Forwarded: 1`;
//!   - `deny-…` → 403;
//!   - `slow-ID` → 200 as for `allow-ID`, but after [`SLOW_CHECK`];
//!   - no credential or any other value → 401;
//!   - while [`AuthServer::set_check_down`] is on → 500, whatever the credential.
//!
//!   Counted ([`AuthServer::check_calls`]); the last request is kept ([`AuthServer::last_check`]), to see the
//!   `X-Forwarded-Method`, `-Uri`, `-For`, `-Host` and `-Proto` headers the gateway sent with it.
//!
//! Other paths answer 404. The server speaks HTTP/1.1 and stops, connections and all, when dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The issuer of the discovery document until [`AuthServer::set_issuer`] changes it.
pub const DEFAULT_ISSUER: &str = "https://auth.example.com/";

/// How long the authorizer takes over a `slow-…` credential.
pub const SLOW_CHECK: Duration = Duration::from_secs(10);

/// What a test can change, and what the server saw.
struct State {
    base_url: String,
    jwks: Mutex<Jwks>,
    issuer: Mutex<String>,
    discovery_status: Mutex<StatusCode>,
    check_down: AtomicBool,
    jwks_calls: AtomicU64,
    discovery_calls: AtomicU64,
    check_calls: AtomicU64,
    last_check: Mutex<Option<CheckRequest>>,
}

/// How `/jwks.json` answers.
struct Jwks {
    text: String,
    cache_control: Option<HeaderValue>,
    status: StatusCode,
}

/// A request the authorizer received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRequest {
    /// Its method.
    pub method: String,
    /// Its path and query, as sent.
    pub uri: String,
    /// Its headers, by lowercase name; the values of a repeated header joined with `, `.
    pub headers: HashMap<String, String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or_else(|e| panic!("{code} is not an HTTP status: {e}"))
}

/// A running auth server; stops when dropped.
pub struct AuthServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        // Dropping the accept loop drops its listener and its set of connection tasks, which aborts them.
        self.task.abort();
    }
}

impl AuthServer {
    /// Starts on an ephemeral port of 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`AuthServer::start`] on `addr` (the demo's identity provider: `test-upstream --auth`).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            base_url: format!("http://{addr}"),
            jwks: Mutex::new(Jwks {
                text: crate::tokens::jwks(),
                cache_control: None,
                status: StatusCode::OK,
            }),
            issuer: Mutex::new(DEFAULT_ISSUER.to_owned()),
            discovery_status: Mutex::new(StatusCode::OK),
            check_down: AtomicBool::new(false),
            jwks_calls: AtomicU64::new(0),
            discovery_calls: AtomicU64::new(0),
            check_calls: AtomicU64::new(0),
            last_check: Mutex::new(None),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let accepted = listener.accept().await;
                while connections.try_join_next().is_some() {}
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors, say: back off briefly rather than spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = serving.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    /// `<url>/jwks.json`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.state.base_url)
    }

    /// `<url>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.state.base_url)
    }

    /// `<url>/check`.
    pub fn check_url(&self) -> String {
        format!("{}/check", self.state.base_url)
    }

    /// Serves `text` as the key set from now on.
    pub fn set_jwks(&self, text: impl Into<String>) {
        lock(&self.state.jwks).text = text.into();
    }

    /// Sends `Cache-Control: value` with the key set (when it answers 200), or none.
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        lock(&self.state.jwks).cache_control =
            value.map(|v| HeaderValue::from_str(v).unwrap_or_else(|e| panic!("bad Cache-Control {v:?}: {e}")));
    }

    /// Answers `/jwks.json` with `status` (200, the default, serves the key set; anything else an error body).
    pub fn set_jwks_status(&self, code: u16) {
        lock(&self.state.jwks).status = status(code);
    }

    /// Requests for `/jwks.json` so far.
    pub fn jwks_calls(&self) -> u64 {
        self.state.jwks_calls.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests for `/jwks.json` have arrived, or `limit` passes; returns whether they did.
    pub async fn wait_for_jwks_calls(&self, n: u64, limit: Duration) -> bool {
        wait_until(limit, || self.jwks_calls() >= n).await
    }

    /// The `issuer` of the discovery document from now on.
    pub fn set_issuer(&self, issuer: &str) {
        issuer.clone_into(&mut lock(&self.state.issuer));
    }

    /// Answers the discovery document with `status` (200, the default, serves it; anything else an error body).
    pub fn set_discovery_status(&self, code: u16) {
        *lock(&self.state.discovery_status) = status(code);
    }

    /// Requests for the discovery document so far.
    pub fn discovery_calls(&self) -> u64 {
        self.state.discovery_calls.load(Ordering::SeqCst)
    }

    /// While `down`, the authorizer answers every check with 500.
    pub fn set_check_down(&self, down: bool) {
        self.state.check_down.store(down, Ordering::SeqCst);
    }

    /// Checks received so far (counted on arrival, slow ones and those answered 500 too).
    pub fn check_calls(&self) -> u64 {
        self.state.check_calls.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` checks have arrived, or `limit` passes; returns whether they did.
    pub async fn wait_for_check_calls(&self, n: u64, limit: Duration) -> bool {
        wait_until(limit, || self.check_calls() >= n).await
    }

    /// The headers of the last check received (lowercase names), `None` before any.
    pub fn last_check(&self) -> Option<HashMap<String, String>> {
        self.last_check_request().map(|check| check.headers)
    }

    /// The last check received, method and URI too, `None` before any.
    pub fn last_check_request(&self) -> Option<CheckRequest> {
        lock(&self.state.last_check).clone()
    }
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Nothing here reads a request body.
    let (req, _body) = req.into_parts();
    let path = req.uri.path();
    Ok(if path == "/jwks.json" {
        state.jwks_calls.fetch_add(1, Ordering::SeqCst);
        let jwks = lock(&state.jwks);
        if jwks.status == StatusCode::OK {
            let mut response = respond(StatusCode::OK, "application/json", jwks.text.clone());
            if let Some(value) = &jwks.cache_control {
                response
                    .headers_mut()
                    .insert(http::header::CACHE_CONTROL, value.clone());
            }
            response
        } else {
            error(jwks.status, "key set unavailable")
        }
    } else if path == "/.well-known/openid-configuration" {
        state.discovery_calls.fetch_add(1, Ordering::SeqCst);
        let status = *lock(&state.discovery_status);
        if status == StatusCode::OK {
            let document = serde_json::json!({
                "issuer": *lock(&state.issuer),
                "jwks_uri": format!("{}/jwks.json", state.base_url),
            });
            respond(StatusCode::OK, "application/json", document.to_string())
        } else {
            error(status, "discovery unavailable")
        }
    } else if path == "/check" || path.starts_with("/check/") {
        check(&state, &req).await
    } else {
        error(StatusCode::NOT_FOUND, "no such path")
    })
}

/// The authorizer's decision (see the module documentation).
async fn check(state: &State, req: &Parts) -> Response<Full<Bytes>> {
    state.check_calls.fetch_add(1, Ordering::SeqCst);
    let mut headers = HashMap::<String, String>::new();
    for (name, value) in &req.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    *lock(&state.last_check) = Some(CheckRequest {
        method: req.method.to_string(),
        uri: req.uri.to_string(),
        headers,
    });
    if state.check_down.load(Ordering::SeqCst) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "authorizer down");
    }
    let credential = credential(req);
    let credential = credential.as_deref().unwrap_or_default();
    let allowed = if let Some(id) = credential.strip_prefix("allow-") {
        id
    } else if let Some(id) = credential.strip_prefix("slow-") {
        tokio::time::sleep(SLOW_CHECK).await;
        id
    } else if credential.starts_with("deny-") {
        return error(StatusCode::FORBIDDEN, "denied");
    } else {
        return error(StatusCode::UNAUTHORIZED, "unknown credential");
    };
    let mut response = respond(StatusCode::OK, "text/plain", "allowed");
    let headers = response.headers_mut();
    match HeaderValue::from_str(allowed) {
        Ok(id) => headers.insert("x-partner-id", id),
        Err(_) => return error(StatusCode::UNAUTHORIZED, "credential is not a header value"),
    };
    headers.insert("x-not-forwarded", HeaderValue::from_static("1"));
    response
}

/// The credential a check carries: `X-Gateway-Credential`, or the first header value that looks like one.
fn credential(req: &Parts) -> Option<String> {
    if let Some(value) = req.headers.get("x-gateway-credential") {
        return value.to_str().ok().map(str::to_owned);
    }
    let decides = |value: &&str| ["allow-", "deny-", "slow-"].iter().any(|d| value.starts_with(d));
    req.headers
        .iter()
        .filter(|(name, _)| !name.as_str().starts_with("x-forwarded-"))
        .filter_map(|(_, value)| value.to_str().ok())
        .find_map(|value| {
            // `allow-x`, or `Bearer allow-x`.
            let after_scheme = value.split_once(' ').map(|(_scheme, rest)| rest.trim_start());
            [Some(value), after_scheme].into_iter().flatten().find(decides)
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use http::Method;

    use super::*;
    use crate::client::{Reply, get, send};

    async fn check_with(server: &AuthServer, headers: &[(&str, &str)]) -> Reply {
        send(Method::GET, &server.check_url(), headers, Bytes::new())
            .await
            .expect("the authorizer answers")
    }

    #[tokio::test]
    async fn serves_a_key_set_the_test_controls() {
        let server = AuthServer::start().await.expect("starts");
        assert!(server.url().starts_with("http://127.0.0.1:"));

        let reply = get(&server.jwks_url()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), None);
        assert_eq!(
            reply.json(),
            serde_json::from_str::<serde_json::Value>(&crate::tokens::jwks()).expect("JSON")
        );

        server.set_jwks(crate::tokens::jwks_rotated());
        server.set_jwks_cache_control(Some("max-age=60"));
        let reply = get(&server.jwks_url()).await;
        assert_eq!(reply.text(), crate::tokens::jwks_rotated());
        assert_eq!(reply.header("cache-control"), Some("max-age=60"));

        server.set_jwks_status(500);
        let reply = get(&server.jwks_url()).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("cache-control"), None);
        assert_eq!(server.jwks_calls(), 3);
        assert!(server.wait_for_jwks_calls(3, Duration::ZERO).await);
        assert!(!server.wait_for_jwks_calls(4, Duration::from_millis(20)).await);

        server.set_jwks_status(200);
        server.set_jwks_cache_control(None);
        let reply = get(&server.jwks_url()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("cache-control"), None);
        assert_eq!(server.discovery_calls() + server.check_calls(), 0);
    }

    #[tokio::test]
    async fn serves_a_discovery_document_naming_its_own_key_set() {
        let server = AuthServer::start().await.expect("starts");
        let reply = get(&server.discovery_url()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json(),
            serde_json::json!({ "issuer": DEFAULT_ISSUER, "jwks_uri": server.jwks_url() })
        );
        server.set_issuer("https://other.example.com");
        assert_eq!(
            get(&server.discovery_url()).await.json()["issuer"],
            "https://other.example.com"
        );
        server.set_discovery_status(503);
        assert_eq!(get(&server.discovery_url()).await.status, 503);
        assert_eq!(server.discovery_calls(), 3);
        assert_eq!(server.jwks_calls(), 0);
        assert_eq!(get(&format!("{}/nope", server.url())).await.status, 404);
    }

    #[tokio::test]
    async fn the_authorizer_decides_by_the_credential_and_keeps_the_request() {
        let server = AuthServer::start().await.expect("starts");
        assert_eq!(server.last_check(), None);

        let reply = check_with(
            &server,
            &[
                ("X-Partner-Token", "allow-acme"),
                ("X-Forwarded-Method", "POST"),
                ("X-Forwarded-Uri", "/pets?limit=5"),
                ("X-Forwarded-For", "127.0.0.1"),
                ("X-Forwarded-Host", "api.example.com"),
                ("X-Forwarded-Proto", "http"),
            ],
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-partner-id"), Some("acme"));
        assert_eq!(reply.header("x-not-forwarded"), Some("1"));
        let seen = server.last_check().expect("a check");
        assert_eq!(seen["x-partner-token"], "allow-acme");
        assert_eq!(seen["x-forwarded-method"], "POST");
        assert_eq!(seen["x-forwarded-uri"], "/pets?limit=5");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
        assert_eq!(seen["x-forwarded-host"], "api.example.com");
        assert_eq!(seen["x-forwarded-proto"], "http");
        let request = server.last_check_request().expect("a check");
        assert_eq!((request.method.as_str(), request.uri.as_str()), ("GET", "/check"));

        type Case<'a> = (&'a [(&'a str, &'a str)], u16, Option<&'a str>);
        let cases: &[Case] = &[
            (&[("X-Gateway-Credential", "allow-q")], 200, Some("q")),
            (&[("Authorization", "Bearer allow-b")], 200, Some("b")),
            // X-Gateway-Credential wins over any other header.
            (&[("X-Api-Key", "allow-x"), ("X-Gateway-Credential", "nope")], 401, None),
            (&[("X-Partner-Token", "deny-acme")], 403, None),
            (&[("X-Partner-Token", "whatever")], 401, None),
            (&[("X-Forwarded-Uri", "allow-not-a-credential")], 401, None),
            (&[], 401, None),
        ];
        for (headers, status, partner) in cases {
            let reply = check_with(&server, headers).await;
            assert_eq!(reply.status, *status, "{headers:?}");
            assert_eq!(reply.header("x-partner-id"), *partner, "{headers:?}");
        }
        let reply = send(
            Method::POST,
            &format!("{}/check/deeper", server.url()),
            &[("X-K", "allow-p")],
            "body",
        )
        .await
        .expect("answers");
        assert_eq!(reply.header("x-partner-id"), Some("p"));
        assert_eq!(server.check_calls(), 9);
        assert_eq!(server.last_check_request().expect("a check").uri, "/check/deeper");
    }

    #[tokio::test]
    async fn a_down_authorizer_answers_500_and_a_slow_one_waits() {
        let server = AuthServer::start().await.expect("starts");
        server.set_check_down(true);
        assert_eq!(
            check_with(&server, &[("X-Partner-Token", "allow-acme")]).await.status,
            500
        );
        server.set_check_down(false);
        assert_eq!(
            check_with(&server, &[("X-Partner-Token", "allow-acme")]).await.status,
            200
        );

        let slow = check_with(&server, &[("X-Partner-Token", "slow-acme")]);
        assert!(
            tokio::time::timeout(Duration::from_millis(300), slow).await.is_err(),
            "answered early"
        );
        assert!(server.wait_for_check_calls(3, Duration::from_secs(1)).await);
        assert_eq!(server.last_check().expect("a check")["x-partner-token"], "slow-acme");
    }

    #[tokio::test]
    async fn stops_when_dropped() {
        let server = AuthServer::start().await.expect("starts");
        let url = server.jwks_url();
        let client = crate::client::client();
        let request = || {
            Request::get(url.as_str())
                .body(Full::new(Bytes::new()))
                .expect("a request")
        };
        assert_eq!(client.request(request()).await.expect("answers").status(), 200);
        drop(server);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // The pooled keep-alive connection is closed too, and no new one is accepted.
            let attempt = tokio::time::timeout(Duration::from_secs(1), client.request(request())).await;
            if matches!(attempt, Ok(Err(_))) {
                break;
            }
            assert!(Instant::now() < deadline, "still answering after it was dropped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
