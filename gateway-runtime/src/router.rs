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

use crate::error::{ErrorKind, GatewayError};
use crate::observe::metrics::{Meter, WorkerMetrics};
use crate::pipeline::{Arrival, ContractSide, Operation, OperationService, RequestCtx, finish, request_phases};
use crate::policies::auth::authorizer::AuthorizerClient;
use crate::policies::cors::{self, Cors, CorsError, Policies, Preflight};
use crate::policies::hosts::Hosts;
use crate::policies::transform::Transforms;
use crate::policies::validate::responses::ResponseCheck;
use crate::policies::{compression, credentials};
use crate::responses::{Responses, ResponsesError};
use crate::spec::{ApiMount, ApiSpec, OperationSpec, TargetSpec};
use crate::stage::ResolvedStage;
use crate::state::SharedState;
use crate::targets::Target;
use crate::targets::function::FunctionTarget;
use crate::targets::mock::{MockError, MockResponse};
use crate::targets::proxy::Proxy;
use crate::targets::store::target::StoreTarget;

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
    /// A store index out of range, or a store that was not opened.
    #[error("operation `{operation}` refers to store #{index}, but {count} are open")]
    UnknownStore {
        /// The operation.
        operation: &'static str,
        /// The index.
        index: usize,
        /// How many stores are open.
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
    /// The API's name (none for the plain 404 outside every API of a gateway).
    api: Option<&'static str>,
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
        ctx.api = self.api;
        ctx.cors = self.cors.as_ref().map(|cors| cors.reply(&parts.headers));
        let error = self.misdirected(&parts).unwrap_or(error);
        finish(&mut ctx, Err(error), self.responses.as_deref(), self.meter())
    }

    /// The gateway's answer to a CORS preflight on a route (after the host check), through the response filters.
    fn preflight(&self, request: Request, preflight: &Preflight) -> Response {
        let (parts, _body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, None);
        ctx.api = self.api;
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
/// admin endpoints are on the admin listener, apart from these routes.
pub fn build(api: &'static ApiSpec, proxy: &Proxy, state: &SharedState, worker: usize) -> Result<Router, RouterError> {
    let routing = ApiRouting {
        mount: ApiMount::root(api),
        proxy,
        state,
    };
    build_gateway(&[routing], worker)
}

/// One API of a gateway as one worker serves it: where, forwarding through which proxy, with which state.
#[derive(Clone, Copy)]
pub struct ApiRouting<'a> {
    /// The API and its base path.
    pub mount: ApiMount,
    /// The worker's connection pools to the API's upstreams.
    pub proxy: &'a Proxy,
    /// The API's process-wide state (its cache, keys, limits, stage, metrics).
    pub state: &'a SharedState,
}

/// Builds worker `worker`'s router for a gateway of one or more APIs, each with its own state and upstreams.
///
/// An API's routes are served under its stage's base path, then its own: `/prod` + `/v1` + `/pets`. The routes of
/// all APIs share one table, so a route of one API that overlaps another's is refused here as within one API. A
/// request that matches no route gets the `404` of the API whose prefix (stage and base path) is the longest one
/// of its path, with that API's renderings, CORS policy and host check; outside every API's prefix, the plain
/// problem+json `404` (counted as the first API's unmatched requests). A gateway of one API answers every
/// unmatched request as that API. The published specs are at [`PUBLISHED_SPEC`] (`?api=NAME` with several APIs).
pub fn build_gateway(apis: &[ApiRouting<'_>], worker: usize) -> Result<Router, RouterError> {
    let several = apis.len() > 1;
    // axum panics on a bad or conflicting route; matchit (the router axum uses) reports the same as an error.
    let mut check = matchit::Router::new();
    // The routes come from OpenAPI paths, where a segment may legitimately start with `:` or `*`; matchit (and
    // the generator's check) treat those as literals, so axum's 0.7-migration lint must not reject them.
    let mut router = Router::new().without_v07_checks();
    let mut fallbacks = Vec::with_capacity(apis.len());
    let mut published = Vec::new();
    for routing in apis {
        let (routes, unmatched, prefix) = api_router(routing, worker, several, &mut check)?;
        // With one API the server puts its stage in every request's `Arrival`; with several, each API's routes put
        // in their own.
        let stage = routing.state.stage;
        router = router.merge(if several { with_stage(routes, stage) } else { routes });
        if let Some(json) = &routing.state.published {
            let spec = Published {
                json: json.clone(),
                unmatched: unmatched.clone(),
            };
            published.push((routing.mount.api.name, stage, spec));
        }
        fallbacks.push(ApiNotFound {
            prefix,
            stage,
            unmatched,
        });
    }
    let not_found = NotFound::new(fallbacks);
    if !published.is_empty() {
        let specs = PublishedSpecs {
            specs: published.into(),
            several,
            plain: not_found.plain.clone(),
        };
        router = router.route_service(PUBLISHED_SPEC, axum::routing::get_service(specs));
    }
    Ok(router.without_v07_checks().fallback_service(not_found))
}

/// The routes of one API as worker `worker` serves them (no fallback), what its unmatched requests get, and its
/// prefix (stage and base path).
fn api_router(
    routing: &ApiRouting<'_>,
    worker: usize,
    several: bool,
    check: &mut matchit::Router<()>,
) -> Result<(Router, Unmatched, String), RouterError> {
    let ApiRouting { mount, proxy, state } = *routing;
    let api = mount.api;
    let metrics = state.metrics.as_ref().map(|metrics| metrics.worker(worker));
    let hosts = Hosts::new(api.hosts).map(Arc::new);
    let api_responses = Responses::new(api.responses, &[])?.map(Arc::new);
    let mut policies = Policies::new(state.stage.and_then(|stage| stage.cors_origins()));
    let unmatched = Unmatched {
        api: Some(api.name),
        hosts: hosts.clone(),
        responses: api_responses.clone(),
        cors: api.cors.map(|spec| policies.prepare(spec)).transpose()?,
        metrics: metrics.clone(),
    };
    // The stage's base path first, then the API's: `/prod/v1`.
    let base_path = format!(
        "{}{}",
        state.stage.map_or("", |stage| stage.base_path()),
        mount.base_path.trim_end_matches('/')
    );
    let mut router = Router::new().without_v07_checks();
    for (route, ops) in routes(api) {
        if !route.starts_with('/') {
            return Err(RouterError::InvalidRoute {
                route,
                reason: "a route must start with `/`".to_owned(),
            });
        }
        // With a base path every operation route is under it (`/prod/v1/pets/{p0}`; the root route is the base
        // path itself); captures are unaffected.
        let served = match (base_path.as_str(), route) {
            ("", _) => route.to_owned(),
            (base, "/") => base.to_owned(),
            (base, _) => format!("{base}{route}"),
        };
        check
            .insert(served.as_str(), ())
            .map_err(|e| RouterError::InvalidRoute {
                route,
                reason: if several {
                    format!("API `{}`, served as `{served}`: {e}", api.name)
                } else {
                    e.to_string()
                },
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
                method_router = match op.compression {
                    None => method_router.on_service(filter, service),
                    Some(spec) if spec.decompress_requests => {
                        method_router.on_service(filter, compression::decompress(compression::compress(spec, service)))
                    }
                    Some(spec) => method_router.on_service(filter, compression::compress(spec, service)),
                };
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
    Ok((router, unmatched, base_path))
}

/// `routes` with `stage` in the `Arrival` of every request they serve (in a gateway of several APIs, the server
/// cannot know which API's stage a request is in before routing).
fn with_stage(routes: Router, stage: Option<&'static ResolvedStage>) -> Router {
    routes.layer(tower::util::MapRequestLayer::new(move |mut request: Request| {
        put_stage(&mut request, stage);
        request
    }))
}

/// Sets the stage of the request's `Arrival`, if it has one.
fn put_stage(request: &mut Request, stage: Option<&'static ResolvedStage>) {
    if let Some(arrival) = request.extensions_mut().get_mut::<Arrival>() {
        arrival.stage = stage;
    }
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
        TargetSpec::Split(target) => {
            let route = proxy
                .split(target, state.stage)
                .ok_or_else(|| RouterError::UnknownUpstream {
                    operation: op.id,
                    index: target.sides.iter().map(|s| s.upstream).max().unwrap_or(0),
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
        TargetSpec::Store(target) => {
            let store = state.stores.get(target.store).ok_or(RouterError::UnknownStore {
                operation: op.id,
                index: target.store,
                count: state.stores.len(),
            })?;
            Target::Store(StoreTarget::new(store.clone(), target, op.body.max))
        }
        TargetSpec::Function(function) => Target::Function(Box::new(FunctionTarget::new(
            api,
            op,
            function,
            proxy.clone(),
            state.stores.clone().into(),
        ))),
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
            .with_metrics(metrics.cloned())
            .with_request_timeout(state.request_timeout),
    ))
}

/// Logs every route at start-up, under `prefix` (the stage's and the API's base path): `GET /pets/{petId} ->
/// getPet (upstream pets)`.
pub fn log_routes(api: &ApiSpec, prefix: &str) {
    for op in api.operations {
        match &op.target {
            TargetSpec::Upstream(target) => {
                let upstream = api.upstreams.get(target.upstream).map_or("?", |u| u.name);
                tracing::info!(
                    "{} {prefix}{} -> {} (upstream {upstream})",
                    op.method,
                    op.template,
                    op.id
                );
            }
            TargetSpec::Split(target) => {
                let sides: Vec<String> = target
                    .sides
                    .iter()
                    .map(|side| {
                        let name = api.upstreams.get(side.upstream).map_or("?", |u| u.name);
                        format!("{name} {}", side.weight)
                    })
                    .collect();
                tracing::info!(
                    "{} {prefix}{} -> {} (split: {})",
                    op.method,
                    op.template,
                    op.id,
                    sides.join(", ")
                );
            }
            TargetSpec::Mock(mock) => {
                tracing::info!(
                    "{} {prefix}{} -> {} (mock {})",
                    op.method,
                    op.template,
                    op.id,
                    mock.status
                );
            }
            TargetSpec::Store(target) => {
                let store = api.stores.get(target.store).map_or("?", |s| s.name);
                tracing::info!(
                    "{} {prefix}{} -> {} (store {store}, table {}, {})",
                    op.method,
                    op.template,
                    op.id,
                    target.table,
                    target.action.name()
                );
            }
            TargetSpec::Function(function) => {
                tracing::info!(
                    "{} {prefix}{} -> {} (function {})",
                    op.method,
                    op.template,
                    op.id,
                    function.name
                );
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
        ctx.api = self.unmatched.api;
        // Served under the API's hosts, like its operations.
        let response = match self.unmatched.misdirected(&parts) {
            Some(misdirected) => Err(misdirected),
            None => Response::builder()
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(self.json.clone()))
                .map_err(|_| GatewayError::internal()),
        };
        let meter = self.unmatched.meter();
        std::future::ready(Ok(finish(
            &mut ctx,
            response,
            self.unmatched.responses.as_deref(),
            meter,
        )))
    }
}

/// [`PUBLISHED_SPEC`] of a gateway: its API's spec, or with several APIs the one `?api=NAME` picks, and without
/// `?api` a list of them.
#[derive(Clone)]
struct PublishedSpecs {
    /// `(API name, its stage, its published spec)`, in the gateway's order.
    specs: Arc<[(&'static str, Option<&'static ResolvedStage>, Published)]>,
    several: bool,
    plain: Unmatched,
}

impl tower::Service<Request> for PublishedSpecs {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if !self.several
            && let Some((_, _, spec)) = self.specs.first()
        {
            return spec.clone().call(request);
        }
        let wanted = request.uri().query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "api")
                .map(|(_, value)| value.into_owned())
        });
        match wanted {
            Some(name) => match self.specs.iter().find(|(api, _, _)| *api == name) {
                Some((_, stage, spec)) => {
                    put_stage(&mut request, *stage);
                    spec.clone().call(request)
                }
                None => {
                    let error = GatewayError::new(ErrorKind::NotFound, format!("no published spec of an API `{name}`"));
                    std::future::ready(Ok(self.plain.respond(request, error)))
                }
            },
            None => {
                let (parts, _body) = request.into_parts();
                let mut ctx = RequestCtx::new(&parts, None);
                let apis: Vec<serde_json::Value> = self
                    .specs
                    .iter()
                    .map(|(api, _, _)| {
                        let query: String = form_urlencoded::Serializer::new(String::new())
                            .append_pair("api", api)
                            .finish();
                        serde_json::json!({ "api": api, "url": format!("{PUBLISHED_SPEC}?{query}") })
                    })
                    .collect();
                let response = Ok(axum::response::IntoResponse::into_response(axum::Json(
                    serde_json::json!({ "apis": apis }),
                )));
                std::future::ready(Ok(finish(&mut ctx, response, None, self.plain.meter())))
            }
        }
    }
}

/// What an unmatched request under one API's prefix gets.
#[derive(Clone)]
struct ApiNotFound {
    /// The stage's and the API's base path (`/prod/v1`); empty: the root.
    prefix: String,
    /// The API's stage, for the request's context.
    stage: Option<&'static ResolvedStage>,
    unmatched: Unmatched,
}

impl ApiNotFound {
    /// Whether `path` is under the prefix: the prefix itself, or it followed by `/…`.
    fn covers(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || self.prefix.is_empty())
    }
}

/// The router's `404`: the API whose prefix is the longest one of the path answers it.
#[derive(Clone)]
struct NotFound {
    /// Longest prefix first (a stable sort: among equal prefixes, the first API given).
    apis: Arc<[ApiNotFound]>,
    /// A gateway of one API answers every unmatched request as that API.
    single: bool,
    /// What a request outside every API's prefix gets: no host check, problem+json, no CORS; counted with the
    /// first API's unmatched requests.
    plain: Unmatched,
}

impl NotFound {
    fn new(mut apis: Vec<ApiNotFound>) -> Self {
        let single = apis.len() == 1;
        let plain = Unmatched {
            api: None,
            hosts: None,
            responses: None,
            cors: None,
            metrics: apis.first().and_then(|api| api.unmatched.metrics.clone()),
        };
        apis.sort_by_key(|api| std::cmp::Reverse(api.prefix.len()));
        Self {
            apis: apis.into(),
            single,
            plain,
        }
    }

    /// The API answering for `path`, if any.
    fn api_for(&self, path: &str) -> Option<&ApiNotFound> {
        if self.single {
            return self.apis.first();
        }
        self.apis.iter().find(|api| api.covers(path))
    }
}

impl tower::Service<Request> for NotFound {
    type Response = Response;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let response = match self.api_for(request.uri().path()) {
            Some(api) => {
                if !self.single {
                    put_stage(&mut request, api.stage);
                }
                api.unmatched.respond(request, GatewayError::not_found())
            }
            None => self.plain.respond(request, GatewayError::not_found()),
        };
        std::future::ready(Ok(response))
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
