//! Matching a request to an operation: the operation table becomes an axum router.
//!
//! The router is an `axum::Router` with one route per distinct [`OperationSpec::route`] and, on each, one
//! [`OperationService`] per method, prepared here from the operation's static spec ([`crate::pipeline`] says what
//! it runs). `OperationService` is a single concrete type whose behaviour comes from the operation's data, so a spec
//! with 1,500 operations compiles no more code than one with a single operation.
//!
//! Requests that match no operation get the same request context and response filters: `NOT_FOUND` for an
//! unknown path, `METHOD_NOT_ALLOWED` with the route's `Allow` header for an undeclared method (after the host
//! check, when the API declares its hosts). axum answers `HEAD` with the `GET` operation (minus the body), so
//! `Allow` lists `HEAD` wherever `GET` is declared.
//!
//! On a route where some operation has a CORS policy, `OPTIONS` is served by `Preflights`: CORS preflights are
//! answered by the gateway ([`crate::policies::cors`]), any other `OPTIONS` goes to the route's `OPTIONS`
//! operation, or gets the `405`. Requests that match no operation get the API-wide CORS policy.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use http::{HeaderValue, Method};

use crate::error::GatewayError;
use crate::observe::metrics::{Meter, WorkerMetrics};
use crate::pipeline::{ContractSide, Operation, OperationService, RequestCtx, finish, request_phases};
use crate::policies::auth::authorizer::AuthorizerClient;
use crate::policies::cors::{self, Cors, CorsError, Policies, Preflight};
use crate::policies::credentials;
use crate::policies::hosts::Hosts;
use crate::policies::transform::Transforms;
use crate::policies::validate::responses::ResponseCheck;
use crate::responses::{Responses, ResponsesError};
use crate::spec::{ApiSpec, OperationSpec, TargetSpec};
use crate::state::SharedState;
use crate::targets::Target;
use crate::targets::mock::{MockError, MockResponse};
use crate::targets::proxy::Proxy;

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
    /// An invalid gateway response.
    #[error("{0}")]
    Responses(#[from] ResponsesError),
    /// A CORS policy the runtime cannot honour.
    #[error("{0}")]
    Cors(#[from] CorsError),
    /// A transform the runtime cannot prepare.
    #[error("operation `{operation}`: {reason}")]
    Transform {
        /// The operation.
        operation: &'static str,
        /// What is wrong.
        reason: String,
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
pub(crate) fn allow_header(methods: &[&Method]) -> HeaderValue {
    let listed: Vec<&str> = METHOD_ORDER
        .iter()
        .filter(|m| methods.contains(m) || (**m == Method::HEAD && methods.contains(&&Method::GET)))
        .map(Method::as_str)
        .collect();
    // Only standard method names, joined by ", ": always a valid header value.
    HeaderValue::from_str(&listed.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What every request that matches no operation needs: the host check, the API-wide gateway responses and CORS
/// policy.
#[derive(Clone)]
struct Unmatched {
    hosts: Option<Arc<Hosts>>,
    responses: Option<Arc<Responses>>,
    cors: Option<Arc<Cors>>,
    metrics: Option<Arc<WorkerMetrics>>,
}

impl Unmatched {
    /// The response filters for a request that matched no operation and ended in `error` (a host the API does not
    /// serve takes precedence: it is refused before anything else, as on the operations).
    fn respond(&self, request: Request, error: GatewayError) -> Response {
        let (parts, _body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, None);
        ctx.cors = self.cors.as_ref().map(|cors| cors.reply(&parts.headers));
        let error = self.misdirected(&parts).unwrap_or(error);
        finish(&mut ctx, Err(error), self.responses.as_deref(), self.meter())
    }

    /// The gateway's answer to a CORS preflight on a route (after the host check), through the response filters.
    fn preflight(&self, request: Request, preflight: &Preflight) -> Response {
        let (parts, _body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, None);
        let result = match self.misdirected(&parts) {
            Some(misdirected) => Err(misdirected),
            None => Ok(preflight.answer(&parts.headers, &ctx.request_id)),
        };
        finish(&mut ctx, result, self.responses.as_deref(), self.meter())
    }

    /// Where unmatched requests are counted.
    fn meter(&self) -> Option<Meter<'_>> {
        self.metrics.as_deref().map(|worker| Meter {
            worker,
            operation: None,
        })
    }

    /// The refusal of a host the API does not serve.
    fn misdirected(&self, parts: &http::request::Parts) -> Option<GatewayError> {
        self.hosts.as_ref()?.check(parts).err()
    }
}

/// Builds the router of worker `worker`, forwarding through that worker's `proxy`, with the process-wide `state`.
///
/// In a stage with a base path, every operation route is served under it, and a request outside it is a `404`; the
/// admin endpoints stay at `/_gateway/`.
pub fn build(api: &'static ApiSpec, proxy: &Proxy, state: &SharedState, worker: usize) -> Result<Router, RouterError> {
    let metrics = state.metrics.as_ref().map(|metrics| metrics.worker(worker));
    let hosts = Hosts::new(api.hosts).map(Arc::new);
    let api_responses = Responses::new(api.responses, &[])?.map(Arc::new);
    let mut policies = Policies::new(state.stage.and_then(|stage| stage.cors_origins()));
    let unmatched = Unmatched {
        hosts: hosts.clone(),
        responses: api_responses.clone(),
        cors: api.cors.map(|spec| policies.prepare(spec)).transpose()?,
        metrics: metrics.clone(),
    };
    let base_path = state.stage.map_or("", |stage| stage.base_path());
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
        // In a stage with a base path every operation route is under it (`/prod/pets/{p0}`; the root route is the
        // base path itself); captures are unaffected.
        let served = match (base_path, route) {
            ("", _) => route.to_owned(),
            (base, "/") => base.to_owned(),
            (base, _) => format!("{base}{route}"),
        };
        check
            .insert(served.as_str(), ())
            .map_err(|e| RouterError::InvalidRoute {
                route,
                reason: e.to_string(),
            })?;
        let mut methods: Vec<&Method> = Vec::with_capacity(ops.len());
        let mut method_router = MethodRouter::new();
        // With CORS on the route, its `OPTIONS` operation is reached through the preflight answers.
        let route_cors = ops.iter().any(|op| op.cors.is_some());
        let mut policy_of: Vec<(Method, Option<Arc<Cors>>)> = Vec::with_capacity(ops.len());
        let mut options = None;
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
            let responses = if op.responses.is_empty() {
                api_responses.clone()
            } else {
                Responses::new(api.responses, op.responses)?.map(Arc::new)
            };
            let cors = op.cors.map(|spec| policies.prepare(spec)).transpose()?;
            policy_of.push((op.method.clone(), cors.clone()));
            let worker = Worker {
                proxy,
                state,
                hosts: hosts.as_ref(),
                metrics: metrics.as_ref(),
            };
            let service = operation_service(api, index, &worker, responses, cors)?;
            if route_cors && op.method == Method::OPTIONS {
                options = Some(service);
            } else {
                method_router = method_router.on_service(filter, service);
            }
        }
        // A route whose operations all turned CORS off answers its 405s (and preflights) without CORS headers.
        let route_unmatched = if route_cors {
            unmatched.clone()
        } else {
            Unmatched {
                cors: None,
                ..unmatched.clone()
            }
        };
        let not_allowed = MethodNotAllowed {
            allow: allow_header(&methods),
            unmatched: route_unmatched,
        };
        if let Some(preflight) = Preflight::new(policy_of, allow_header) {
            let preflights = Preflights {
                preflight: Arc::new(preflight),
                options,
                not_allowed: not_allowed.clone(),
            };
            method_router = method_router.on_service(MethodFilter::OPTIONS, preflights);
        }
        router = router.route(&served, method_router.fallback_service(not_allowed));
    }
    // The routes come from OpenAPI paths, where a segment may legitimately start with `:` or `*`; matchit (and
    // the generator's check) treat those as literals, so axum's 0.7-migration lint must not reject them.
    if let Some(published) = &state.published {
        router = router.route_service(
            PUBLISHED_SPEC,
            axum::routing::get_service(Published {
                json: published.clone(),
                unmatched: unmatched.clone(),
            }),
        );
    }
    Ok(router.without_v07_checks().fallback_service(NotFound { unmatched }))
}

/// What every operation of one worker's router shares.
struct Worker<'a> {
    /// The worker's upstream client.
    proxy: &'a Proxy,
    /// The process-wide state.
    state: &'a SharedState,
    /// The API's hosts, when it declares them.
    hosts: Option<&'a Arc<Hosts>>,
    /// The worker's counters, when the gateway counts.
    metrics: Option<&'a Arc<WorkerMetrics>>,
}

/// Prepares operation `index` of `api` for `worker`: its request filters, cache, target, gateway responses and CORS
/// policy.
fn operation_service(
    api: &'static ApiSpec,
    index: usize,
    worker: &Worker<'_>,
    responses: Option<Arc<Responses>>,
    cors: Option<Arc<Cors>>,
) -> Result<OperationService, RouterError> {
    let Worker {
        proxy,
        state,
        hosts,
        metrics,
    } = *worker;
    let op = &api.operations[index];
    let target = match &op.target {
        TargetSpec::Upstream(target) => {
            let route = proxy.route(target, state.stage).ok_or(RouterError::UnknownUpstream {
                operation: op.id,
                index: target.upstream,
                count: api.upstreams.len(),
            })?;
            Target::Proxy {
                route,
                strip: credentials::to_strip(api, op.security),
            }
        }
        TargetSpec::Mock(mock) => Target::Mock(MockResponse::new(mock).map_err(|source| RouterError::Mock {
            operation: op.id,
            source,
        })?),
    };
    let cache = op.cache.zip(state.cache.clone()).map(|(policy, cache)| (cache, policy));
    let phases = request_phases(op, hosts, state, &AuthorizerClient::new(Some(proxy.clone())));
    let transforms = op
        .transform
        .map(|spec| Transforms::new(spec, state.contracts.clone()))
        .transpose()
        .map_err(|reason| RouterError::Transform {
            operation: op.id,
            reason,
        })?;
    let check = op
        .responses_check
        .map(|spec| ResponseCheck::new(spec, state.contracts.clone(), index, op.id));
    let contract = (transforms.is_some() || check.is_some()).then_some(ContractSide { transforms, check });
    Ok(OperationService::new(
        Operation::new(api, index, phases, cache, target, contract, responses)
            .with_cors(cors)
            .with_metrics(metrics.cloned()),
    ))
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

/// The `405` of one route.
#[derive(Clone)]
struct MethodNotAllowed {
    allow: HeaderValue,
    unmatched: Unmatched,
}

impl tower::Service<Request> for MethodNotAllowed {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let error = GatewayError::method_not_allowed(request.method(), self.allow.clone());
        std::future::ready(Ok(self.unmatched.respond(request, error)))
    }
}

/// The `OPTIONS` of a route with CORS: preflights answered by the gateway, other requests to the route's
/// `OPTIONS` operation (or its `405`).
#[derive(Clone)]
struct Preflights {
    preflight: Arc<Preflight>,
    options: Option<OperationService>,
    not_allowed: MethodNotAllowed,
}

impl tower::Service<Request> for Preflights {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if cors::is_preflight(request.method(), request.headers()) {
            let response = self.not_allowed.unmatched.preflight(request, &self.preflight);
            return Box::pin(std::future::ready(Ok(response)));
        }
        match &mut self.options {
            Some(operation) => operation.call(request),
            None => Box::pin(self.not_allowed.call(request)),
        }
    }
}

/// Where the main listener publishes the spec.
pub const PUBLISHED_SPEC: &str = "/_gateway/openapi.json";

/// `GET /_gateway/openapi.json`: the spec as published ([`crate::spec::ApiSpec::published`]), with the request
/// context and response filters of every response.
#[derive(Clone)]
struct Published {
    json: bytes::Bytes,
    unmatched: Unmatched,
}

impl tower::Service<Request> for Published {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let (parts, _body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, None);
        let response = Response::builder()
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(self.json.clone()))
            .map_err(|_| GatewayError::internal());
        let meter = self.unmatched.meter();
        std::future::ready(Ok(finish(&mut ctx, response, None, meter)))
    }
}

/// The router's `404`.
#[derive(Clone)]
struct NotFound {
    unmatched: Unmatched,
}

impl tower::Service<Request> for NotFound {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        std::future::ready(Ok(self.unmatched.respond(request, GatewayError::not_found())))
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
