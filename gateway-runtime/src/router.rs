//! Phase 1 and 2: matching a request to an operation, then checking its parameters.
//!
//! The router is an `axum::Router` with one route per distinct [`OperationSpec::route`] and, on each, one
//! [`OperationService`] per method. `OperationService` is a single concrete type whose behaviour comes from the
//! operation's static data, so a spec with 1,500 operations compiles no more code than one with a single
//! operation: nothing is generic or a closure per operation.
//!
//! Everything the gateway answers itself here is problem+json: `404` for an unknown path, `405` with the
//! route's `Allow` header for an undeclared method, `400` for a bad parameter. axum answers `HEAD` with the `GET`
//! operation (minus the body), so `Allow` lists `HEAD` wherever `GET` is declared.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts as _, RawPathParams, Request};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use http::{HeaderValue, Method, request};

use crate::auth;
use crate::cache::{CallerIdentity, ResponseCache};
use crate::keys::KeyStore;
use crate::mock::{MockError, MockResponse};
use crate::params::{ParamError, ParamIn, RequestParams};
use crate::problem::Problem;
use crate::proxy::{Proxy, UpstreamRoute};
use crate::spec::{ApiSpec, CacheSpec, OperationSpec, TargetSpec};
use crate::state::SharedState;
use crate::throttle::Limits;

/// Why the operation table cannot be served (generated code is checked for all of these at generate time).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A route the router rejects (bad syntax, or it conflicts with another route).
    #[error("invalid route `{route}`: {reason}")]
    InvalidRoute {
        /// The route.
        route: &'static str,
        /// Why the router rejected it.
        reason: String,
    },
    /// Two operations on the same route and method.
    #[error("operations `{first}` and `{second}` both handle {method} {route}")]
    DuplicateOperation {
        /// The method.
        method: Method,
        /// The route.
        route: &'static str,
        /// The first operation.
        first: &'static str,
        /// The second operation.
        second: &'static str,
    },
    /// A method the router cannot dispatch on.
    #[error("operation `{operation}`: unsupported method {method}")]
    UnsupportedMethod {
        /// The operation.
        operation: &'static str,
        /// The method.
        method: Method,
    },
    /// An upstream index out of range.
    #[error("operation `{operation}` refers to upstream #{index}, but there are only {count}")]
    UnknownUpstream {
        /// The operation.
        operation: &'static str,
        /// The index.
        index: usize,
        /// How many upstreams there are.
        count: usize,
    },
    /// An invalid mock.
    #[error("operation `{operation}`: {source}")]
    Mock {
        /// The operation.
        operation: &'static str,
        /// What is wrong.
        source: MockError,
    },
}

/// Methods in the order they are listed in `Allow`.
const METHOD_ORDER: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// The operations of `api` grouped by route, in order of first appearance.
pub fn routes(api: &'static ApiSpec) -> Vec<(&'static str, Vec<&'static OperationSpec>)> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<(&'static str, Vec<&'static OperationSpec>)> = Vec::new();
    for op in api.operations {
        let i = *index.entry(op.route).or_insert_with(|| {
            groups.push((op.route, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(op);
    }
    groups
}

/// The `Allow` header value for a route serving `methods`.
fn allow_header(methods: &[&Method]) -> HeaderValue {
    let listed: Vec<&str> = METHOD_ORDER
        .iter()
        .filter(|m| methods.contains(m) || (**m == Method::HEAD && methods.contains(&&Method::GET)))
        .map(Method::as_str)
        .collect();
    // Only standard method names, joined by ", ": always a valid header value.
    HeaderValue::from_str(&listed.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Builds the router for one worker, forwarding through that worker's `proxy`, with the process-wide `state`.
pub fn build(api: &'static ApiSpec, proxy: &Proxy, state: &SharedState) -> Result<Router, RouterError> {
    // axum panics on a bad or conflicting route; matchit (the router axum uses) reports the same as an error.
    let mut check = matchit::Router::new();
    let mut router = Router::new();
    for (route, ops) in routes(api) {
        if !route.starts_with('/') {
            return Err(RouterError::InvalidRoute {
                route,
                reason: "a route must start with `/`".to_owned(),
            });
        }
        check.insert(route, ()).map_err(|e| RouterError::InvalidRoute {
            route,
            reason: e.to_string(),
        })?;
        let mut methods: Vec<&Method> = Vec::with_capacity(ops.len());
        let mut method_router = MethodRouter::new();
        for (i, op) in ops.iter().enumerate() {
            if let Some(first) = ops[..i].iter().find(|o| o.method == op.method) {
                return Err(RouterError::DuplicateOperation {
                    method: op.method.clone(),
                    route,
                    first: first.id,
                    second: op.id,
                });
            }
            let filter = MethodFilter::try_from(op.method.clone()).map_err(|_| RouterError::UnsupportedMethod {
                operation: op.id,
                method: op.method.clone(),
            })?;
            methods.push(&op.method);
            let index = api
                .operations
                .iter()
                .position(|o| std::ptr::eq(o, *op))
                .unwrap_or_default();
            method_router = method_router.on_service(filter, OperationService::new(api, index, proxy, state)?);
        }
        let allow = allow_header(&methods);
        router = router.route(route, method_router.fallback_service(MethodNotAllowed { allow }));
    }
    // The routes come from OpenAPI paths, where a segment may legitimately start with `:` or `*`; matchit (and
    // the generator's check) treat those as literals, so axum's 0.7-migration lint must not reject them.
    if let Some(admin) = crate::admin::routes(api, state) {
        router = router.merge(admin);
    }
    Ok(router.without_v07_checks().fallback_service(NotFound))
}

/// Logs every route at start-up: `GET /pets/{petId} -> getPet (upstream pets)`.
pub fn log_routes(api: &ApiSpec) {
    for op in api.operations {
        match &op.target {
            TargetSpec::Upstream(target) => {
                let upstream = api.upstreams.get(target.upstream).map_or("?", |u| u.name);
                tracing::info!("{} {} -> {} (upstream {upstream})", op.method, op.template, op.id);
            }
            TargetSpec::Mock(mock) => {
                tracing::info!("{} {} -> {} (mock {})", op.method, op.template, op.id, mock.status);
            }
        }
    }
}

/// What an operation does once its parameters are accepted.
#[derive(Clone)]
enum Target {
    Proxy(Arc<UpstreamRoute>),
    Mock(Arc<MockResponse>),
}

impl Target {
    async fn respond(&self, parts: request::Parts, body: axum::body::Body, values: &[&str]) -> Response {
        match self {
            Target::Mock(mock) => mock.respond(),
            Target::Proxy(route) => route.forward(parts, body, values).await,
        }
    }
}

/// Serves one operation: the request phases, then the target.
///
/// One concrete type for every operation (the operation is data), so nothing is instantiated per operation.
/// axum clones it per request: one reference-count increment.
#[derive(Clone)]
pub struct OperationService {
    operation: Arc<Operation>,
}

/// What serving one operation needs, prepared at start-up.
struct Operation {
    api: &'static ApiSpec,
    index: usize,
    op: &'static OperationSpec,
    target: Target,
    cache: Option<(ResponseCache, &'static CacheSpec)>,
    /// Present when the operation needs keys or has limits: the request path of other operations skips it.
    policies: Option<Policies>,
}

/// The process-wide state an operation with keys or limits needs.
#[derive(Clone)]
struct Policies {
    keys: KeyStore,
    limits: Limits,
}

impl std::fmt::Debug for OperationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationService")
            .field("operation", &self.operation.op.id)
            .finish()
    }
}

/// What a path parameter may not be: see [`OperationService`]'s dot-segment check.
const NOT_A_DOT_SEGMENT: &str = "a value other than `.` or `..`";

impl OperationService {
    /// Prepares operation `index` of `api` for serving through `proxy`.
    pub fn new(api: &'static ApiSpec, index: usize, proxy: &Proxy, state: &SharedState) -> Result<Self, RouterError> {
        Operation::new(api, index, proxy, state).map(|operation| Self {
            operation: Arc::new(operation),
        })
    }
}

impl Operation {
    fn new(api: &'static ApiSpec, index: usize, proxy: &Proxy, state: &SharedState) -> Result<Self, RouterError> {
        let op = &api.operations[index];
        let target = match &op.target {
            TargetSpec::Upstream(target) => {
                let route = proxy.route(target).ok_or(RouterError::UnknownUpstream {
                    operation: op.id,
                    index: target.upstream,
                    count: api.upstreams.len(),
                })?;
                Target::Proxy(Arc::new(route))
            }
            TargetSpec::Mock(mock) => Target::Mock(Arc::new(MockResponse::new(mock).map_err(|source| {
                RouterError::Mock {
                    operation: op.id,
                    source,
                }
            })?)),
        };
        let cache = op.cache.zip(state.cache.clone()).map(|(policy, cache)| (cache, policy));
        let limited = api.throttle.is_some() || op.throttle.is_some() || !op.security.is_empty();
        let policies = limited.then(|| Policies {
            keys: state.keys.clone(),
            limits: state.limits.clone(),
        });
        Ok(Self {
            api,
            index,
            op,
            target,
            cache,
            policies,
        })
    }

    async fn handle(&self, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        // Phases 2 and 3: who is calling, and whether the buckets admit them.
        let (caller, mut report) = match &self.policies {
            None => (None, None),
            Some(policies) => {
                let caller = match auth::authenticate(self.api, self.op, &parts, &policies.keys.current()) {
                    Ok(caller) => caller,
                    Err(problem) => return problem.into_response(),
                };
                match policies.limits.check(self.api, self.index, &parts, caller.as_ref()) {
                    Ok(report) => (caller, Some(report)),
                    Err(refused) => return refused,
                }
            }
        };
        let captures = if self.op.path_params.is_empty() {
            None
        } else {
            match RawPathParams::from_request_parts(&mut parts, &()).await {
                Ok(captures) => Some(captures),
                Err(rejection) => return self.bad_captures(&rejection),
            }
        };
        let mut values: Vec<&str> = captures.iter().flat_map(|c| c.iter().map(|(_, value)| value)).collect();
        if values.len() != self.op.path_params.len() {
            // The route and `path_params` disagree: a generator bug, not the client's fault.
            tracing::error!(
                operation = self.op.id,
                "route captures do not match the operation's path parameters"
            );
            return Problem::internal().into_response();
        }
        // `/calls/{sid}.json` is routed as `/calls/{p0}`: the suffix is part of the template, so a segment without
        // it (or with nothing before it) does not match the operation at all.
        for (value, suffix) in values.iter_mut().zip(self.op.path_suffixes) {
            if suffix.is_empty() {
                continue;
            }
            match value.strip_suffix(suffix) {
                Some(stripped) if !stripped.is_empty() => *value = stripped,
                _ => return Problem::not_found().into_response(),
            }
        }
        if let Err(err) = self.check(&values, &parts) {
            return Problem::bad_param(&err).into_response();
        }
        // Phase 5: the quota counts only requests that every other check admitted.
        if let (Some(policies), Some(report)) = (&self.policies, report.as_mut())
            && let Err(refused) = policies.limits.charge(self.api, caller.as_ref(), report)
        {
            return refused;
        }
        let mut response = match &self.cache {
            None => self.target.respond(parts, body, &values).await,
            Some((cache, policy)) => {
                let identity = CallerIdentity {
                    api_key: caller.as_ref().map(|c| c.key.name.clone()),
                };
                let lookup = cache.lookup(self.op.id, policy, &parts, &values, &identity);
                let target = &self.target;
                cache
                    .serve(policy, lookup, || target.respond(parts, body, &values))
                    .await
            }
        };
        if let Some(report) = &report {
            report.apply(response.headers_mut());
        }
        response
    }

    /// Dot-segment refusal, then the operation's typed validation.
    fn check(&self, values: &[&str], parts: &request::Parts) -> Result<(), ParamError> {
        // A value of `.` or `..` would be substituted as a path segment of its own, and a dot-segment is removed
        // (or climbs a level) wherever the upstream path is normalised (RFC 3986 §5.2.4), by the upstream or any
        // hop in between: `/files/{name}` with `..` would reach the directory above. Percent-encoding the dots
        // does not help, as `%2E` is equivalent to `.` and normalisers decode it first. No real identifier is a
        // dot-segment, so refuse it.
        for (i, value) in values.iter().enumerate() {
            if matches!(*value, "." | "..") {
                let name = self.op.path_params.get(i).copied().unwrap_or("?");
                return Err(ParamError::invalid(ParamIn::Path(i), name, NOT_A_DOT_SEGMENT, value));
            }
        }
        match self.op.validate {
            Some(validate) => validate(&RequestParams::new(values, parts.uri.query(), &parts.headers)),
            None => Ok(()),
        }
    }

    /// `400` for captures that are not UTF-8 once percent-decoded.
    fn bad_captures(&self, rejection: &RawPathParamsRejection) -> Response {
        let RawPathParamsRejection::InvalidUtf8InPathParam(invalid) = rejection else {
            tracing::error!(operation = self.op.id, error = %rejection, "route captures missing");
            return Problem::internal().into_response();
        };
        // axum names the capture (`p3`) only in its message; captures are named `p{i}` by the generator.
        let text = invalid.body_text();
        let index = text
            .strip_prefix("Invalid UTF-8 in `p")
            .and_then(|rest| rest.strip_suffix('`'))
            .and_then(|i| i.parse::<usize>().ok());
        match index.and_then(|i| Some((i, *self.op.path_params.get(i)?))) {
            Some((i, name)) => Problem::bad_param_detail(
                ParamIn::Path(i),
                name,
                "percent-encoded UTF-8 text",
                format!("path parameter `{name}` is not valid UTF-8 once percent-decoded"),
            ),
            None => Problem::new(
                http::StatusCode::BAD_REQUEST,
                "a path parameter is not valid UTF-8 once percent-decoded",
            ),
        }
        .into_response()
    }
}

impl tower::Service<Request> for OperationService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let operation = Arc::clone(&self.operation);
        Box::pin(async move { Ok(operation.handle(request).await) })
    }
}

/// The `405` of one route.
#[derive(Clone)]
struct MethodNotAllowed {
    allow: HeaderValue,
}

impl tower::Service<Request> for MethodNotAllowed {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        std::future::ready(Ok(
            Problem::method_not_allowed(request.method(), self.allow.clone()).into_response()
        ))
    }
}

/// The router's `404`.
#[derive(Clone)]
struct NotFound;

impl tower::Service<Request> for NotFound {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request) -> Self::Future {
        std::future::ready(Ok(Problem::not_found().into_response()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_head_with_get() {
        assert_eq!(allow_header(&[&Method::POST, &Method::GET]), "GET, HEAD, POST");
        assert_eq!(allow_header(&[&Method::DELETE]), "DELETE");
        assert_eq!(allow_header(&[&Method::HEAD, &Method::GET]), "GET, HEAD");
    }
}
