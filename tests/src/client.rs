//! A small HTTP/1 client over hyper-util, with a bound on every request so a test can never hang.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// What came back.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not: a test failure, not a crash).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Longest any single test request may take.
pub const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// A pooled client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A client whose connections leave from `local` (any address of 127.0.0.0/8 is this machine's loopback on
/// Linux, so a test can be several clients at once).
pub fn client_from(local: IpAddr) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(local));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Sends one request and reads the whole response.
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    exchange(client(), method, url, headers, body.into()).await
}

/// [`send`], over a connection whose local (client) address is `local`.
pub async fn send_from(
    local: IpAddr,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, String> {
    exchange(client_from(local), method, url, headers, body.into()).await
}

/// [`send`], on `client` (a pooled one: a test sending many requests reuses its connections).
pub async fn exchange(
    client: Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Reply, String> {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| format!("{e:?}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(REQUEST_LIMIT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_LIMIT:?} from {url}"))?
}

/// `GET url`, or why it got no response.
pub async fn try_get(url: &str) -> Result<Reply, String> {
    send(Method::GET, url, &[], Bytes::new()).await
}

/// `GET url`.
pub async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}
