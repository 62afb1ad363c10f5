//! What a function sees of the gateway: [`FunctionContext`].

use std::net::IpAddr;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};

use crate::error::GatewayError;
use crate::pipeline::{RequestCtx, X_REQUEST_ID};
use crate::spec::ApiSpec;
use crate::targets::proxy::Proxy;
use crate::targets::store::Store;

/// Largest upstream response body a function reads through [`UpstreamCaller`].
pub const MAX_UPSTREAM_BODY: u64 = 16 * 1024 * 1024;

/// The gateway as a function sees it: who is calling, the stage, the API's stores and its upstreams.
///
/// Borrowed for the length of one call: `async fn age(req: GetPetAgeRequest, ctx: &FunctionContext<'_>)`.
pub struct FunctionContext<'a> {
    ctx: &'a RequestCtx,
    api: &'static ApiSpec,
    proxy: &'a Proxy,
    stores: &'a [Store],
}

impl<'a> FunctionContext<'a> {
    pub(crate) fn new(ctx: &'a RequestCtx, api: &'static ApiSpec, proxy: &'a Proxy, stores: &'a [Store]) -> Self {
        Self {
            ctx,
            api,
            proxy,
            stores,
        }
    }

    /// A store of the API (`x-gateway.stores`), the one its store targets use (at the `--store` path when one was
    /// given); `None` for a name the API does not define. Its errors convert into a `GatewayError` with `?`.
    pub fn store(&self, name: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.name() == name)
    }

    /// The request id (`X-Request-Id`: the client's when well-formed, else the gateway's).
    pub fn request_id(&self) -> &str {
        self.ctx.request_id.to_str().unwrap_or("")
    }

    /// The operation's `operationId`.
    pub fn operation_id(&self) -> &'static str {
        self.ctx.operation.map_or("", |op| op.id)
    }

    /// The API's name.
    pub fn api(&self) -> &'static str {
        self.api.name
    }

    /// The client's address (the connection's peer).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.ctx.client.map(|addr| addr.ip())
    }

    /// The name of the API key that admitted the caller, when a key did.
    pub fn key_name(&self) -> Option<&str> {
        self.ctx.caller.as_ref()?.key_name().map(|name| &**name)
    }

    /// The caller's key's usage plan, when a key with a plan admitted them.
    pub fn plan(&self) -> Option<&'static str> {
        let plan = self.ctx.caller.as_ref()?.plan?;
        self.api.usage_plans.get(plan).map(|p| p.name)
    }

    /// The verified claims of the caller's token, when a JWT admitted them.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.ctx.caller.as_ref()?.token.as_deref().map(|t| &t.claims)
    }

    /// The verified claim at a dotted path (`sub`, `realm_access.roles`).
    pub fn claim(&self, path: &str) -> Option<&serde_json::Value> {
        self.ctx.caller.as_ref()?.token.as_deref()?.claim(path)
    }

    /// The stage being served.
    pub fn stage(&self) -> Option<&'static str> {
        self.ctx.stage.map(|s| s.name())
    }

    /// A variable of the stage being served.
    pub fn stage_var(&self, name: &str) -> Option<&str> {
        self.ctx.stage?.variable(name)
    }

    /// An upstream of the API (`x-gateway.upstreams`), called through the gateway's pooled client with the
    /// upstream's timeouts (and the stage's URL for it); `None` for a name the API does not define.
    pub fn upstream(&self, name: &str) -> Option<UpstreamCaller<'_>> {
        let index = self.proxy.index_of(name)?;
        Some(UpstreamCaller {
            proxy: self.proxy,
            index,
            request_id: &self.ctx.request_id,
        })
    }
}

impl std::fmt::Debug for FunctionContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionContext")
            .field("request_id", &self.request_id())
            .field("operation", &self.operation_id())
            .field("stage", &self.stage())
            .finish_non_exhaustive()
    }
}

/// Calls one upstream on a function's behalf. Requests carry the caller's `X-Request-Id`.
#[derive(Clone, Copy)]
pub struct UpstreamCaller<'a> {
    proxy: &'a Proxy,
    index: usize,
    request_id: &'a HeaderValue,
}

impl UpstreamCaller<'_> {
    /// The upstream's name.
    pub fn name(&self) -> &'static str {
        self.proxy.name_of(self.index).unwrap_or("")
    }

    /// `GET path_and_query` (under the upstream's base path).
    pub async fn get(&self, path_and_query: &str) -> Result<http::Response<Bytes>, GatewayError> {
        self.send(Method::GET, path_and_query, HeaderMap::new(), Bytes::new())
            .await
    }

    /// A request with `method`, `path_and_query` (under the upstream's base path), `headers` and `body`; the
    /// response is read whole (up to [`MAX_UPSTREAM_BODY`]). An upstream that cannot be reached or answers too late
    /// is `UPSTREAM_ERROR` / `UPSTREAM_TIMEOUT`, which a function may return as it is.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Bytes>, GatewayError> {
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = path_and_query.parse().map_err(|_| {
            GatewayError::new(
                crate::error::ErrorKind::Internal,
                "a function asked for an invalid upstream path",
            )
        })?;
        *request.headers_mut() = headers;
        request
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), self.request_id.clone());
        self.proxy.exchange(self.index, request, MAX_UPSTREAM_BODY).await
    }
}
