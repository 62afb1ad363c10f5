//! Shared fixtures: a hand-written `ApiSpec` of the shape generated code has, in-process upstreams, and helpers
//! to start a gateway and talk to it over real sockets on 127.0.0.1.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use gateway_runtime::http::{HeaderMap, Method, Request, Response, StatusCode};
use gateway_runtime::params::{self, FromRequestParams, ListStyle, ParamError, ParamIn, RequestParams};
use gateway_runtime::serving::server::{self, ServerConfig, ServerHandle};
use gateway_runtime::spec::{
    ApiKeyScheme, ApiSpec, CacheSettings, KeyLocation, MockSpec, OperationSpec, PathPart, SchemeKind, SchemeSpec,
    TargetSpec, UpstreamSpec, UpstreamTarget,
};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type TestBody = BoxBody<Bytes, BoxError>;

/// Upper bound for any single test step: generous, only there to turn a hang into a failure.
pub const STEP: Duration = Duration::from_secs(30);

/// Fails the test instead of hanging.
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no result within {STEP:?}"),
    }
}

// ---- the API, as generated code would write it ----

/// `GET /pets?limit=&tags=`.
#[allow(dead_code)]
pub struct ListPetsParams {
    pub limit: Option<i32>,
    pub tags: Option<Vec<String>>,
}

impl FromRequestParams for ListPetsParams {
    fn from_request_params(p: &RequestParams<'_>) -> Result<Self, ParamError> {
        Ok(Self {
            limit: p.get(ParamIn::Query, "limit")?,
            tags: p.get_list(ParamIn::Query, "tags", ListStyle::Comma)?,
        })
    }
}

/// `GET /pets/{petId}` with an optional `X-Request-Id: uuid`.
#[allow(dead_code)]
pub struct GetPetParams {
    pub pet_id: i64,
    pub request_id: Option<gateway_runtime::uuid::Uuid>,
}

impl FromRequestParams for GetPetParams {
    fn from_request_params(p: &RequestParams<'_>) -> Result<Self, ParamError> {
        Ok(Self {
            pet_id: p.require(ParamIn::Path(0), "petId")?,
            request_id: p.get(ParamIn::Header, "X-Request-Id")?,
        })
    }
}

/// `GET /versioned` requires `X-Api-Version: int32`.
#[allow(dead_code)]
pub struct VersionedParams {
    pub version: i32,
}

impl FromRequestParams for VersionedParams {
    fn from_request_params(p: &RequestParams<'_>) -> Result<Self, ParamError> {
        Ok(Self {
            version: p.require(ParamIn::Header, "X-Api-Version")?,
        })
    }
}

pub const ECHO: usize = 0;
pub const SLOW: usize = 1;
pub const DOWN: usize = 2;
pub const STALL: usize = 3;

const fn upstream(target: usize, path: &'static [PathPart]) -> TargetSpec {
    TargetSpec::Upstream(UpstreamTarget { upstream: target, path })
}

const fn op(
    id: &'static str,
    method: Method,
    template: &'static str,
    route: &'static str,
    path_params: &'static [&'static str],
    validate: Option<gateway_runtime::spec::Validator>,
    target: TargetSpec,
) -> OperationSpec {
    OperationSpec {
        id,
        method,
        template,
        route,
        path_params,
        validate,
        target,
        ..OperationSpec::DEFAULT
    }
}

/// The API-wide part most test APIs share: one upstream `echo` (its URL a placeholder: tests point it at their own
/// server with an override), a small cache, and nothing else. Modules fill in what they test with struct update
/// syntax (`ApiSpec { name, operations, ..ECHO_API }`).
pub const ECHO_API: ApiSpec = ApiSpec {
    name: "testgw",
    spec_file: "tests/echo.yaml",
    api_version: "1",
    upstreams: &[UpstreamSpec {
        name: "echo",
        urls: &["http://127.0.0.1:9"],
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..UpstreamSpec::DEFAULT
    }],
    operations: &[],
    cache: CacheSettings {
        capacity: 1 << 20,
        max_entry: 1 << 16,
    },
    ..ApiSpec::EMPTY
};

/// An API key in `x-api-key`, the scheme of the test APIs that need one.
pub const X_API_KEY: SchemeSpec = SchemeSpec {
    name: "key",
    kind: SchemeKind::ApiKey(ApiKeyScheme {
        scheme: "key",
        location: KeyLocation::Header,
        name: "x-api-key",
        forward: false,
    }),
};

/// A `GET` of `route` (template and route alike) proxied to upstream 0 at `path`, with no parameters and no
/// policy: the modules' own operations start from it and set what they test with struct update syntax.
pub const fn proxied_get(id: &'static str, route: &'static str, path: &'static [PathPart]) -> OperationSpec {
    OperationSpec {
        id,
        method: Method::GET,
        template: route,
        route,
        target: TargetSpec::Upstream(UpstreamTarget { upstream: 0, path }),
        ..OperationSpec::DEFAULT
    }
}

/// URLs here are placeholders: every test points the upstreams at its own servers with overrides, which is
/// also how `--upstream` is exercised.
pub static API: ApiSpec = ApiSpec {
    name: "testgw",
    spec_file: "tests/runtime.yaml",
    api_version: "1.2.3",
    upstreams: &[
        UpstreamSpec {
            name: "echo",
            urls: &["http://127.0.0.1:9/placeholder"],
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            ..UpstreamSpec::DEFAULT
        },
        UpstreamSpec {
            name: "slow",
            urls: &["http://127.0.0.1:9"],
            timeout: Duration::from_millis(300),
            connect_timeout: Duration::from_secs(2),
            ..UpstreamSpec::DEFAULT
        },
        UpstreamSpec {
            name: "down",
            urls: &["http://127.0.0.1:9"],
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            ..UpstreamSpec::DEFAULT
        },
        UpstreamSpec {
            name: "stall",
            urls: &["http://127.0.0.1:9"],
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_millis(300),
            ..UpstreamSpec::DEFAULT
        },
    ],
    operations: &[
        op(
            "download",
            Method::GET,
            "/download",
            "/download",
            &[],
            None,
            upstream(ECHO, &[PathPart::Literal("/download")]),
        ),
        op(
            "drain",
            Method::GET,
            "/drain",
            "/drain",
            &[],
            None,
            upstream(ECHO, &[PathPart::Literal("/delay")]),
        ),
        op(
            "down",
            Method::GET,
            "/down",
            "/down",
            &[],
            None,
            upstream(DOWN, &[PathPart::Literal("/x")]),
        ),
        op(
            "getFile",
            Method::GET,
            "/files/{name}",
            "/files/{p0}",
            &["name"],
            None,
            upstream(ECHO, &[PathPart::Literal("/files/"), PathPart::Param(0)]),
        ),
        OperationSpec {
            id: "getCall",
            method: Method::GET,
            template: "/calls/{sid}.json",
            route: "/calls/{p0}",
            path_params: &["sid"],
            path_suffixes: &[".json"],
            validate: None,
            security: &[],
            cors: None,
            ip: None,
            compression: None,
            websocket: false,
            plans: &[],
            throttle: None,
            cache: None,
            responses: &[],
            body: gateway_runtime::spec::BodySpec::limit(gateway_runtime::spec::DEFAULT_MAX_BODY),
            schema_params: &[],
            transform: None,
            responses_check: None,
            target: upstream(
                ECHO,
                &[
                    PathPart::Literal("/calls/"),
                    PathPart::Param(0),
                    PathPart::Literal(".json"),
                ],
            ),
        },
        op(
            "stall",
            Method::GET,
            "/stall",
            "/stall",
            &[],
            None,
            upstream(STALL, &[PathPart::Literal("/x")]),
        ),
        op(
            "stallBody",
            Method::GET,
            "/stall-body",
            "/stall-body",
            &[],
            None,
            upstream(SLOW, &[PathPart::Literal("/stall-body")]),
        ),
        op(
            "hang",
            Method::GET,
            "/hang",
            "/hang",
            &[],
            None,
            upstream(ECHO, &[PathPart::Literal("/hang")]),
        ),
        op(
            "health",
            Method::GET,
            "/health",
            "/health",
            &[],
            None,
            TargetSpec::Mock(MockSpec {
                status: 200,
                headers: &[("X-Mock", "yes")],
                content_type: "application/json",
                body: r#"{"status":"ok"}"#,
            }),
        ),
        op(
            "listPets",
            Method::GET,
            "/pets",
            "/pets",
            &[],
            Some(params::check::<ListPetsParams>),
            upstream(ECHO, &[PathPart::Literal("/internal/pets")]),
        ),
        op(
            "createPet",
            Method::POST,
            "/pets",
            "/pets",
            &[],
            None,
            upstream(ECHO, &[PathPart::Literal("/internal/pets")]),
        ),
        op(
            "getPet",
            Method::GET,
            "/pets/{petId}",
            "/pets/{p0}",
            &["petId"],
            Some(params::check::<GetPetParams>),
            upstream(ECHO, &[PathPart::Literal("/internal/pets/"), PathPart::Param(0)]),
        ),
        op(
            "addToy",
            Method::POST,
            "/pets/{petId}/toys/{toyId}",
            "/pets/{p0}/toys/{p1}",
            &["petId", "toyId"],
            None,
            upstream(
                ECHO,
                &[
                    PathPart::Literal("/v2/toys/"),
                    PathPart::Param(1),
                    PathPart::Literal("/owner/"),
                    PathPart::Param(0),
                ],
            ),
        ),
        op(
            "slow",
            Method::GET,
            "/slow",
            "/slow",
            &[],
            None,
            upstream(SLOW, &[PathPart::Literal("/slow")]),
        ),
        // Uploads of 32 MiB stream through: the limit is raised from the 10 MiB default.
        OperationSpec {
            id: "upload",
            method: Method::POST,
            template: "/upload",
            route: "/upload",
            body: gateway_runtime::spec::BodySpec::limit(64 * 1024 * 1024),
            target: upstream(ECHO, &[PathPart::Literal("/stream")]),
            ..OperationSpec::DEFAULT
        },
        op(
            "versioned",
            Method::GET,
            "/versioned",
            "/versioned",
            &[],
            Some(params::check::<VersionedParams>),
            TargetSpec::Mock(MockSpec {
                status: 204,
                headers: &[],
                content_type: "",
                body: "",
            }),
        ),
    ],
    cache: gateway_runtime::spec::CacheSettings {
        capacity: 1 << 20,
        max_entry: 1 << 16,
    },
    ..ApiSpec::EMPTY
};

// ---- upstreams ----

/// A deterministic body of `len` bytes, produced (and checkable) in chunks without holding it in memory.
pub struct PatternBody {
    offset: usize,
    len: usize,
}

impl PatternBody {
    pub fn new(len: usize) -> Self {
        Self { offset: 0, len }
    }

    pub fn byte(i: usize) -> u8 {
        (i.wrapping_mul(31).wrapping_add(7) % 251) as u8
    }
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.offset >= self.len {
            return Poll::Ready(None);
        }
        let end = (self.offset + 64 * 1024).min(self.len);
        let chunk: Vec<u8> = (self.offset..end).map(Self::byte).collect();
        self.offset = end;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact((self.len - self.offset) as u64)
    }
}

/// A request body fed chunk by chunk from the test.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| Ok(Frame::data(c))))
    }
}

/// What the echo upstream saw, sent back as JSON.
fn echo_json(method: &Method, uri: &http::Uri, headers: &HeaderMap, body: &[u8]) -> serde_json::Value {
    let mut header_map = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<serde_json::Value> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        header_map.insert(name.as_str().to_owned(), values.into());
    }
    serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": header_map,
        "body": String::from_utf8_lossy(body),
    })
}

type UpstreamResponse = Response<BoxBody<Bytes, BoxError>>;

fn boxed<B>(body: B) -> BoxBody<Bytes, BoxError>
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    BoxBody::new(body.map_err(Into::into))
}

async fn upstream_service(
    request: Request<Incoming>,
    arrivals: mpsc::UnboundedSender<String>,
) -> Result<UpstreamResponse, Infallible> {
    let _ = arrivals.send(request.uri().path().to_owned());
    let response = match request.uri().path() {
        // Streams the request body straight back, chunk by chunk.
        "/stream" => Response::new(boxed(request.into_body())),
        "/download" => Response::new(boxed(PatternBody::new(DOWNLOAD_LEN))),
        "/delay" => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Response::new(boxed(Full::new(Bytes::from_static(b"finished after a delay"))))
        }
        // The head and a first chunk at once, then silence.
        "/stall-body" => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first chunk")).await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(tx);
            });
            Response::new(boxed(ChannelBody(rx)))
        }
        "/hang" | "/slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Response::new(boxed(Full::new(Bytes::new())))
        }
        _ => {
            let (parts, body) = request.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let json = echo_json(&parts.method, &parts.uri, &parts.headers, &body);
            let mut response = Response::new(boxed(Full::new(Bytes::from(json.to_string()))));
            let status = parts
                .headers
                .get("x-echo-status")
                .and_then(|s| s.to_str().ok()?.parse::<u16>().ok());
            if let Some(status) = status {
                *response.status_mut() = StatusCode::from_u16(status).expect("test status");
            }
            let headers = response.headers_mut();
            headers.insert("content-type", "application/json".parse().expect("static"));
            headers.insert("x-echo", "yes".parse().expect("static"));
            if parts.headers.contains_key("x-echo-cors") {
                // An upstream that sends a `Vary` and CORS headers of its own.
                for (name, value) in [
                    ("vary", "Accept-Encoding"),
                    ("access-control-allow-origin", "*"),
                    ("access-control-allow-methods", "GET, PUT"),
                ] {
                    headers.append(name, value.parse().expect("static"));
                }
            }
            if parts.headers.contains_key("x-echo-hop") {
                for (name, value) in [
                    ("connection", "x-up-hop"),
                    ("x-up-hop", "secret"),
                    ("keep-alive", "timeout=5"),
                    ("proxy-authenticate", "Basic"),
                    ("x-up-kept", "1"),
                ] {
                    headers.append(name, value.parse().expect("static"));
                }
            }
            response
        }
    };
    Ok(response)
}

pub const DOWNLOAD_LEN: usize = 32 * 1024 * 1024;

/// An in-process upstream on 127.0.0.1:0 answering by path (see `upstream_service`). Reports each request's
/// path on `arrivals` as it arrives.
pub struct Upstream {
    pub addr: SocketAddr,
    pub arrivals: mpsc::UnboundedReceiver<String>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

pub async fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::clone(&connections);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            accepted.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| upstream_service(request, tx.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        addr,
        arrivals: rx,
        connections,
    }
}

/// A listener that never accepts, with its accept queue full, so that the kernel drops further SYNs and a
/// connection attempt hangs in the handshake: how a black-holed upstream looks, without leaving 127.0.0.1.
pub struct Stalled {
    pub addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
}

/// How long a probe waits before calling a connection attempt hung.
const PROBE: Duration = Duration::from_millis(200);

pub fn stalled_listener() -> Stalled {
    let listener = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    listener.bind(&any.into()).expect("bind");
    // The smallest backlog: Linux queues one connection more than it (so one here), then drops SYNs.
    listener.listen(0).expect("listen");
    let addr = listener.local_addr().expect("addr").as_socket().expect("inet");
    // Connect until an attempt hangs: then the queue is full, whatever this kernel's exact rule.
    let mut fillers = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, PROBE) {
            Ok(stream) => fillers.push(stream),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
            Err(e) => panic!("filling the accept queue of {addr}: {e}"),
        }
        assert!(fillers.len() < 16, "the accept queue of {addr} never filled");
    }
    Stalled {
        addr,
        _listener: listener,
        _fillers: fillers,
    }
}

impl Stalled {
    /// Whether a connection attempt to it hangs right now (rather than being accepted or refused): it is still
    /// listening, and still drops new connections.
    pub fn still_hangs(&self) -> bool {
        match std::net::TcpStream::connect_timeout(&self.addr, PROBE) {
            Err(e) => e.kind() == std::io::ErrorKind::TimedOut,
            Ok(_) => false,
        }
    }
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

// ---- the gateway ----

pub fn quiet_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Installed before any gateway starts, so the runtime's own `observe::init` leaves it alone; warnings
        // (502/504 causes) stay visible in failing tests' output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
    });
}

/// Overrides pointing `echo` and `slow` at `upstream` and `down` at a closed port.
pub fn overrides(upstream: SocketAddr) -> Vec<gateway_runtime::targets::proxy::UpstreamOverride> {
    [
        format!("echo=http://{upstream}/"),
        format!("slow=http://{upstream}"),
        format!("down=http://{}", closed_port()),
        format!("stall=http://{}", closed_port()),
    ]
    .iter()
    .map(|o| o.parse().expect("override"))
    .collect()
}

pub struct Gateway {
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub upstream: Upstream,
}

impl Gateway {
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path_and_query: &str) -> String {
        let admin = self.admin.expect("the admin listener is on");
        format!("http://{admin}{path_and_query}")
    }

    /// Starts the graceful shutdown and waits (bounded) for the workers to stop.
    pub async fn stop(&mut self) {
        let handle = self.handle.take().expect("running");
        bounded("stop", tokio::task::spawn_blocking(move || handle.stop()))
            .await
            .expect("join")
            .expect("clean stop");
    }
}

/// Starts an upstream and a gateway in front of it; `tweak` may adjust the configuration (it gets the upstream's
/// address).
pub async fn start_gateway_with(tweak: impl FnOnce(&mut ServerConfig, SocketAddr)) -> Gateway {
    start_gateway_for(&API, tweak).await
}

/// [`start_gateway_with`] for another API; `tweak` replaces the upstream overrides unless it has those of [`API`].
pub async fn start_gateway_for(api: &'static ApiSpec, tweak: impl FnOnce(&mut ServerConfig, SocketAddr)) -> Gateway {
    quiet_logs();
    let upstream = start_upstream().await;
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    // Two workers: every test also exercises several SO_REUSEPORT listeners on one port.
    config.workers = Some(2.try_into().expect("non-zero"));
    config.upstream_overrides = overrides(upstream.addr);
    config.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    tweak(&mut config, upstream.addr);
    let handle = bounded("start", tokio::task::spawn_blocking(move || server::start(api, config)))
        .await
        .expect("join")
        .expect("gateway starts");
    Gateway {
        addr: handle.local_addr(),
        admin: handle.admin_addr(),
        handle: Some(handle),
        upstream,
    }
}

pub async fn start_gateway() -> Gateway {
    start_gateway_with(|_, _| {}).await
}

// ---- the client ----

pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn empty() -> TestBody {
    boxed(Full::new(Bytes::new()))
}

pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    boxed(Full::new(bytes.into()))
}

pub fn body_of<B>(body: B) -> TestBody
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    boxed(body)
}

/// Sends `request` and collects the response (bounded).
pub async fn send(request: Request<TestBody>) -> (http::response::Parts, Bytes) {
    let what = format!("{} {}", request.method(), request.uri());
    let response = bounded(&what, client().request(request)).await.expect("response");
    let (parts, body) = response.into_parts();
    let body = bounded(&what, body.collect()).await.expect("body").to_bytes();
    (parts, body)
}

pub async fn get(url: &str) -> (http::response::Parts, Bytes) {
    send(Request::get(url).body(empty()).expect("request")).await
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// Asserts a problem+json response and returns its body.
pub fn problem(parts: &http::response::Parts, body: &[u8], status: u16) -> serde_json::Value {
    assert_eq!(parts.status.as_u16(), status, "{}", String::from_utf8_lossy(body));
    assert_eq!(parts.headers["content-type"], "application/problem+json");
    let value = json(body);
    assert_eq!(value["status"], status);
    assert!(
        value["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:gateway:error:")),
        "{value}"
    );
    // Every gateway response carries a request id.
    assert!(parts.headers.contains_key("x-request-id"));
    value
}
