//! Function targets: operations answered by a Rust function of the user's, compiled into the gateway.
//!
//! The generator emits, per function operation, a typed request and response (in the gateway's `types` crate) and a
//! glue function of type [`FunctionFn`] (in the gateway crate) that parses the request into the typed one, calls the
//! user's `async fn`, and turns its typed answer into a response. This module runs that glue as a target like any
//! other — behind the same phases (auth, limits, validation, the cache, transforms) — and makes it safe to call:
//!
//! - a panic in the function is caught: `500 INTERNAL`, logged with the operation, and the gateway keeps serving;
//! - a function slower than the target's `timeout` is dropped: `504 UPSTREAM_TIMEOUT`.
//!
//! What the function sees of the gateway is its [`FunctionContext`]: the request id, the authenticated caller, the
//! stage's variables, the API's stores and its upstreams (through the gateway's pooled client).

mod context;

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::request;

pub use context::{FunctionContext, UpstreamCaller};

use crate::bodies::{UpTo, read_up_to};
use crate::error::{ErrorKind, GatewayError};
use crate::params::RequestParams;
use crate::pipeline::RequestCtx;
use crate::spec::{ApiSpec, FunctionSpec, OperationSpec};
use crate::targets::proxy::Proxy;
use crate::targets::store::Store;

/// The response a function's answer becomes.
pub type Response = axum::response::Response;

/// A boxed, sendable future: what a [`FunctionFn`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The generated glue of one function operation: parse the typed request, call the function, render its answer.
pub type FunctionFn = for<'a> fn(FunctionCall<'a>) -> BoxFuture<'a, Result<Response, GatewayError>>;

/// One call of a function target, as the generated glue sees it: the request, read and admitted, and the context the
/// function gets.
pub struct FunctionCall<'a> {
    parts: &'a request::Parts,
    path: Vec<&'a str>,
    body: Bytes,
    context: FunctionContext<'a>,
}

impl<'a> FunctionCall<'a> {
    /// The request's parameters, for the generated request type's parser.
    pub fn params(&self) -> RequestParams<'_> {
        RequestParams::new(&self.path, self.parts.uri.query(), &self.parts.headers)
    }

    /// The request body, read whole (within the operation's `max_body`).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The request head.
    pub fn parts(&self) -> &request::Parts {
        self.parts
    }

    /// The body parsed as JSON into `T`: `400 BAD_REQUEST_BODY` when it does not parse (the body phase has already
    /// checked it against the operation's schema, so this only fails where the schema says less than the type).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, GatewayError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            GatewayError::new(
                ErrorKind::BadRequestBody,
                format!("the request body does not fit the operation's type: {err}"),
            )
        })
    }

    /// The body as UTF-8 text: `400 BAD_REQUEST_BODY` when it is not.
    pub fn text(&self) -> Result<String, GatewayError> {
        String::from_utf8(self.body.to_vec())
            .map_err(|_| GatewayError::new(ErrorKind::BadRequestBody, "the request body is not UTF-8 text"))
    }

    /// What the function gets besides its request.
    pub fn context(&self) -> &FunctionContext<'a> {
        &self.context
    }
}

/// What a generated request type implements: built from a call, or a `400` naming what is wrong.
pub trait FunctionRequest: Sized {
    /// Parses the call's parameters and body.
    fn from_call(call: &FunctionCall<'_>) -> Result<Self, GatewayError>;
}

/// What a generated response enum implements: one variant per declared status, rendered as that status with its
/// body; its `Error` variant is a gateway error, rendered like every other one.
pub trait FunctionResponse {
    /// The response to send.
    fn into_response(self) -> Result<Response, GatewayError>;
}

/// A JSON response with `status` and `content_type` (`application/json`, or the `+json` type the spec declares):
/// what the generated response enums render their variants with.
pub fn json_response<T: serde::Serialize + ?Sized>(
    status: u16,
    content_type: &'static str,
    body: &T,
) -> Result<Response, GatewayError> {
    let bytes = serde_json::to_vec(body).map_err(|err| {
        tracing::error!(error = %err, "a function's answer could not be written as JSON");
        GatewayError::internal()
    })?;
    respond(status, Some(content_type), Bytes::from(bytes))
}

/// A response with `status`, `content_type` (none for an empty body) and `body`.
pub fn respond(status: u16, content_type: Option<&'static str>, body: Bytes) -> Result<Response, GatewayError> {
    let status = http::StatusCode::from_u16(status).map_err(|_| {
        tracing::error!(status, "a function answered with an invalid status");
        GatewayError::internal()
    })?;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        let value = http::HeaderValue::from_str(content_type).map_err(|_| {
            tracing::error!(content_type, "a function's response has an invalid content type");
            GatewayError::internal()
        })?;
        response.headers_mut().insert(http::header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// The target: one function operation, with what its context needs.
pub(crate) struct FunctionTarget {
    api: &'static ApiSpec,
    op: &'static OperationSpec,
    spec: &'static FunctionSpec,
    proxy: Proxy,
    /// The API's stores, in the order of [`ApiSpec::stores`].
    stores: Arc<[Store]>,
}

impl FunctionTarget {
    pub(crate) fn new(
        api: &'static ApiSpec,
        op: &'static OperationSpec,
        spec: &'static FunctionSpec,
        proxy: Proxy,
        stores: Arc<[Store]>,
    ) -> Self {
        Self {
            api,
            op,
            spec,
            proxy,
            stores,
        }
    }

    /// Reads the body, calls the function (bounded by its timeout, panics caught) and returns its response.
    pub(crate) async fn respond(
        &self,
        ctx: &RequestCtx,
        parts: request::Parts,
        body: Body,
    ) -> Result<Response, GatewayError> {
        let body = match read_up_to(body, self.op.body.max).await {
            UpTo::Whole(bytes) => bytes,
            UpTo::Larger(_) => return Err(GatewayError::payload_too_large(self.op.body.max)),
            // The body phase's limit, reached while the body streamed in.
            UpTo::Failed(err) if crate::policies::validate::body::is_too_large(&err) => {
                return Err(GatewayError::payload_too_large(self.op.body.max));
            }
            UpTo::Failed(_) => {
                return Err(GatewayError::new(
                    ErrorKind::BadRequestBody,
                    "the request body broke off",
                ));
            }
        };
        let call = FunctionCall {
            parts: &parts,
            path: ctx.path_values(),
            body,
            context: FunctionContext::new(ctx, self.api, &self.proxy, &self.stores),
        };
        let answer = tokio::time::timeout(self.spec.timeout, CatchUnwind((self.spec.call)(call))).await;
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                tracing::error!(
                    operation = self.op.id,
                    function = self.spec.name,
                    panic = panic_message(panic.as_ref()),
                    "the function panicked"
                );
                Err(GatewayError::internal())
            }
            Err(_) => {
                tracing::warn!(
                    operation = self.op.id,
                    function = self.spec.name,
                    timeout = ?self.spec.timeout,
                    "the function did not answer in time"
                );
                Err(GatewayError::new(
                    ErrorKind::UpstreamTimeout,
                    "the operation's function did not answer in time",
                ))
            }
        }
    }
}

/// The message of a caught panic, when it has one.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)")
}

/// A boxed future whose panics become an `Err` (the boxed future is `Unpin`, so no projection is needed).
struct CatchUnwind<'a, T>(BoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}
