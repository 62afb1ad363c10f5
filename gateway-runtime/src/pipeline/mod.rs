//! The request path: what happens to every request, in order, in one place.
//!
//! ```text
//! route match: a CORS preflight is answered there, by the gateway (policies::cors; then the response filters)
//! arrival ─► RequestCtx::new (request id, start time, client address; the CORS reply, for operations with CORS)
//!   request filters (each may stop the request with a GatewayError), assembled per operation at start-up:
//!     host ─► route ─► auth ─► throttle ─► params ─► body ─► quota
//!   cache lookup (cached operations) ─► request transform ─► upstream request filters (credentials stripped,
//!     X-Request-Id, X-Forwarded-*) ─► target (proxy or mock) ─► response check (contract drift) ─► response
//!     transform (what the cache stores)
//!   response filters (every response: target, cache hit, or gateway error; 404, 405 and admin too):
//!     render the error (spec's rendering or problem+json) ─► CORS ─► RateLimit-* ─► X-Cache ─► X-Request-Id
//!     ─► log (the debug line, and the access log line: observe::access_log) ─► trace spans (observe::otlp)
//! ```
//!
//! An operation's request filters are a list of [`RequestPhase`]s built once by [`request_phases`] from its
//! static spec: an operation without keys, limits or typed parameters has an empty list and pays for nothing it
//! does not use — no dynamic call, no allocation. Adding a policy is a module under `policies/`, a variant here and
//! one line in [`request_phases`]. Every phase is a plain enum variant dispatched by `match`: no boxed future or
//! virtual call per phase per request.
//!
//! Nothing here is generic over, or instantiated per, operation: [`OperationService`] is one concrete type whose
//! behaviour comes from its operation's data.

mod ctx;
mod path;
pub mod trace;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts as _, RawPathParams, Request};
use axum::response::Response;
use http::{HeaderName, request};

pub use ctx::{Arrival, CacheStatus, RequestCtx, UpstreamCall, X_REQUEST_ID};

use crate::bodies::{UpTo, read_up_to};
use crate::error::GatewayError;
use crate::observe::metrics::{Meter, WorkerMetrics};
use crate::params::{ParamError, ParamIn, RequestParams};
use crate::policies::auth::authorizer::AuthorizerClient;
use crate::policies::auth::{self, Auth};
use crate::policies::cache::{Lookup, ResponseCache};
use crate::policies::cors::Cors;
use crate::policies::hosts::Hosts;
use crate::policies::throttle::Limits;
use crate::policies::transform::Transforms;
use crate::policies::validate::body::{BodyCheck, ReadBody};
use crate::policies::validate::responses::{BodyNeed, ResponseCheck};
use crate::policies::validate::{self, Contracts};
use crate::responses::{self, Responses};
use crate::spec::{ApiSpec, CacheSpec, IpSpec, OperationSpec};
use crate::state::SharedState;
use crate::targets::Target;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// One request filter. The order of [`request_phases`] is the order they run.
#[derive(Debug)]
pub(crate) enum RequestPhase {
    /// The client's address is admitted by the operation's `ip` lists (`FORBIDDEN`).
    Ip(&'static IpSpec, Limits),
    /// The request names a host the API is served under (`MISDIRECTED_REQUEST`).
    Host(Arc<Hosts>),
    /// The path captures: segment suffixes and the literals between a segment's parameters (`NOT_FOUND` without
    /// them) and UTF-8 (`BAD_REQUEST_PARAMETERS`).
    Route,
    /// The credentials the operation's `security` asks for: API keys, tokens, an authorizer's decision
    /// (`UNAUTHORIZED`, `FORBIDDEN`, `SERVICE_UNAVAILABLE`).
    Auth(Auth),
    /// Token buckets: API-wide, the operation's, the caller's plan (`THROTTLED`).
    Throttle(Limits),
    /// Dot-segment path values, then the typed parameters and the schema-checked ones
    /// (`BAD_REQUEST_PARAMETERS`).
    Params(Contracts),
    /// The body's size limit (every operation: `PAYLOAD_TOO_LARGE`), and for validated operations its presence,
    /// media type and schema (`BAD_REQUEST_BODY`, `UNSUPPORTED_MEDIA_TYPE`).
    Body(BodyCheck),
    /// The caller's usage counted and quota charged, only once every other filter admitted the request
    /// (`QUOTA_EXCEEDED`).
    Quota(Limits),
}

impl RequestPhase {
    /// The phase's name, for tests and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            RequestPhase::Ip(..) => "ip",
            RequestPhase::Host(_) => "host",
            RequestPhase::Route => "route",
            RequestPhase::Auth(_) => "auth",
            RequestPhase::Throttle(_) => "throttle",
            RequestPhase::Params(_) => "params",
            RequestPhase::Body(_) => "body",
            RequestPhase::Quota(_) => "quota",
        }
    }
}

/// The request filters of operation `op`, in order: the one list that says what runs. Every
/// operation has at least the body's size limit.
pub(crate) fn request_phases(
    op: &'static OperationSpec,
    hosts: Option<&Arc<Hosts>>,
    state: &SharedState,
    authorizers: &AuthorizerClient,
) -> Vec<RequestPhase> {
    let keyed = !op.security.is_empty();
    let limited = state.limits.api_throttle().is_some() || op.throttle.is_some() || keyed;
    let mut phases = Vec::new();
    if let Some(ip) = op.ip {
        phases.push(RequestPhase::Ip(ip, state.limits.clone()));
    }
    if let Some(hosts) = hosts {
        phases.push(RequestPhase::Host(Arc::clone(hosts)));
    }
    if !op.path_params.is_empty() {
        phases.push(RequestPhase::Route);
    }
    if keyed {
        phases.push(RequestPhase::Auth(Auth::new(
            state.keys.clone(),
            state.auth.clone(),
            authorizers.clone(),
        )));
    }
    if limited {
        phases.push(RequestPhase::Throttle(state.limits.clone()));
    }
    if !op.path_params.is_empty() || op.validate.is_some() || !op.schema_params.is_empty() {
        phases.push(RequestPhase::Params(state.contracts.clone()));
    }
    let filtered = op.transform.is_some_and(|t| t.request.body.is_some());
    phases.push(RequestPhase::Body(BodyCheck::new(
        &op.body,
        state.contracts.clone(),
        filtered,
    )));
    if keyed {
        // Every keyed request is counted for the caller's usage; a plan with a quota also charges it.
        phases.push(RequestPhase::Quota(state.limits.clone()));
    }
    phases
}

/// Serves one operation: its request filters, the cache, the target, then the response filters.
///
/// One concrete type for every operation (the operation is data), so nothing is instantiated per operation.
/// axum clones it per request: one reference-count increment.
#[derive(Clone)]
pub struct OperationService {
    operation: Arc<Operation>,
}

impl std::fmt::Debug for OperationService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationService")
            .field("operation", &self.operation.op.id)
            .field("phases", &self.operation.phase_names())
            .finish()
    }
}

/// What serving one operation needs, prepared at start-up.
pub(crate) struct Operation {
    api: &'static ApiSpec,
    index: usize,
    op: &'static OperationSpec,
    /// How its path parameters sit in the route's captures.
    path: path::PathLayout,
    phases: Box<[RequestPhase]>,
    cache: Option<(ResponseCache, &'static CacheSpec)>,
    target: Target,
    /// Transforms and the response check: `None` for most operations, which then pay nothing for them.
    contract: Option<Box<ContractSide>>,
    responses: Option<Arc<Responses>>,
    /// The operation's CORS policy: `None` for most operations, which then pay nothing for it.
    cors: Option<Arc<Cors>>,
    /// This worker's counters, when the gateway counts.
    metrics: Option<Arc<WorkerMetrics>>,
    /// How long after its arrival a request may wait for its response head (`--request-timeout`).
    request_timeout: Option<std::time::Duration>,
}

/// What runs around the target of an operation with transforms or a response check.
pub(crate) struct ContractSide {
    /// The request and response transforms.
    pub transforms: Option<Transforms>,
    /// The upstream response check.
    pub check: Option<ResponseCheck>,
}

impl Operation {
    /// Prepares operation `index` of `api`.
    pub(crate) fn new(
        api: &'static ApiSpec,
        index: usize,
        phases: Vec<RequestPhase>,
        cache: Option<(ResponseCache, &'static CacheSpec)>,
        target: Target,
        contract: Option<ContractSide>,
        responses: Option<Arc<Responses>>,
    ) -> Self {
        Self {
            api,
            index,
            op: &api.operations[index],
            path: path::PathLayout::of(&api.operations[index]),
            phases: phases.into_boxed_slice(),
            cache,
            target,
            contract: contract.map(Box::new),
            responses,
            cors: None,
            metrics: None,
            request_timeout: None,
        }
    }

    /// The operation answering `REQUEST_TIMEOUT` to a request still unanswered `timeout` after it arrived.
    pub(crate) fn with_request_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The operation with its CORS policy.
    pub(crate) fn with_cors(mut self, cors: Option<Arc<Cors>>) -> Self {
        self.cors = cors;
        self
    }

    /// The operation counting its requests into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Option<Arc<WorkerMetrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The names of its request filters, in order.
    pub(crate) fn phase_names(&self) -> Vec<&'static str> {
        self.phases.iter().map(RequestPhase::name).collect()
    }

    async fn handle(&self, request: Request) -> Response {
        let _in_flight = self.metrics.as_deref().map(WorkerMetrics::in_flight);
        let (parts, body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, Some(self.op));
        ctx.api = Some(self.api.name);
        ctx.cors = self.cors.as_ref().map(|cors| cors.reply(&parts.headers));
        let result = match self.request_timeout {
            None => self.serve(&mut ctx, parts, body).await,
            // From arrival: time spent in the server's queue counts. Whatever was in progress (a body being read,
            // an upstream try) is dropped with the future.
            Some(limit) => {
                let deadline = tokio::time::Instant::from_std(ctx.started + limit);
                match tokio::time::timeout_at(deadline, self.serve(&mut ctx, parts, body)).await {
                    Ok(result) => result,
                    Err(_) => Err(GatewayError::request_timeout(limit)),
                }
            }
        };
        if let Some(charge) = ctx.charged.take() {
            // Charged by shared limits, then refused before the quota phase: the charge goes back.
            charge.refund();
        }
        let meter = self.metrics.as_deref().map(|worker| Meter {
            worker,
            operation: Some(self.index),
        });
        finish(&mut ctx, result, self.responses.as_deref(), meter)
    }

    async fn serve(
        &self,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        mut body: Body,
    ) -> Result<Response, GatewayError> {
        let mut read = None;
        for phase in &self.phases {
            match phase {
                // The phases that may wait: axum's capture extractor is async (though it never waits), and a
                // validated body is read.
                RequestPhase::Route => self.route(ctx, &mut parts).await?,
                RequestPhase::Throttle(limits) if limits.is_shared() => {
                    limits.check_shared(self.api, self.index, &parts, ctx).await?;
                }
                RequestPhase::Auth(auth) => ctx.caller = auth.authenticate(self.api, self.op, ctx, &parts).await?,
                RequestPhase::Body(check) if check.reads() => read = check.check(&parts, &mut body).await?,
                RequestPhase::Body(check) => check.limit(&mut body)?,
                sync => self.run(sync, ctx, &parts)?,
            }
        }
        match &self.cache {
            None => self.answer(ctx, parts, body, read).await,
            Some(cached @ (cache, policy)) => {
                let lookup = cache.lookup(self.op.id, policy, &parts, ctx);
                if let Some(hit) = cache.hit(&lookup).await {
                    ctx.cache = Some(CacheStatus::Hit);
                    return Ok(hit);
                }
                // Boxed: the future of a miss (coalescing, moka's entry API, the target's) is large (about
                // 11 KiB), and inline it would make every request's future, cached or not, that much larger to
                // build and move; a hit never builds it.
                Box::pin(self.serve_cached(cached, lookup, ctx, parts, body, read)).await
            }
        }
    }

    async fn serve_cached(
        &self,
        (cache, policy): &(ResponseCache, &'static CacheSpec),
        lookup: Lookup,
        ctx: &mut RequestCtx,
        parts: request::Parts,
        body: Body,
        read: Option<ReadBody>,
    ) -> Result<Response, GatewayError> {
        let (status, result) = cache
            .serve(policy, lookup, || self.answer(ctx, parts, body, read))
            .await;
        ctx.cache = Some(status);
        result
    }

    /// The target's answer, with the operation's transforms and response check around it.
    async fn answer(
        &self,
        ctx: &mut RequestCtx,
        parts: request::Parts,
        body: Body,
        read: Option<ReadBody>,
    ) -> Result<Response, GatewayError> {
        match &self.contract {
            None => self.target.respond(ctx, parts, body).await,
            // Boxed, like the cache: operations without a contract side do not carry its future.
            Some(contract) => Box::pin(self.answer_with(contract, ctx, parts, body, read)).await,
        }
    }

    async fn answer_with(
        &self,
        contract: &ContractSide,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        mut body: Body,
        read: Option<ReadBody>,
    ) -> Result<Response, GatewayError> {
        let transforms = contract.transforms.as_ref();
        let snapshot = transforms.and_then(|t| t.snapshot(&parts));
        if let Some(t) = transforms {
            t.request(ctx, &mut parts, &mut body, read)?;
            if t.filters_any_response_body() {
                // The filter reads the body as JSON: ask the upstream for it unencoded.
                parts.headers.remove(http::header::ACCEPT_ENCODING);
            }
        }
        let proxied = matches!(self.target, Target::Proxy { .. });
        // A HEAD answer has the GET's headers and no body: nothing to check it against.
        let check = contract
            .check
            .as_ref()
            .filter(|c| proxied && ctx.method != http::Method::HEAD && c.sampled());
        let response = self.target.respond(ctx, parts, body).await?;
        let status = response.status();
        // What of the body the check and the filter need: its limit, and the schema a checked body must match.
        let mut limit = None;
        let mut check_body = None;
        if let Some(check) = check {
            match check.head(status.as_u16(), response.headers()) {
                Err(mismatch) => {
                    check.record(Err(&mismatch));
                    if check.enforced() {
                        return Err(drifted());
                    }
                }
                Ok(BodyNeed::None) => check.record(Ok(())),
                Ok(BodyNeed::Read { limit: max, schema }) => {
                    limit = Some(max);
                    check_body = Some((check, schema));
                }
            }
        }
        let filter = transforms.is_some_and(|t| t.filters_response_body(status));
        if filter {
            limit = Some(limit.unwrap_or(0).max(self.op.body.max));
        }
        let (response, filtered_body) = match limit {
            None => (response, None),
            Some(limit) => {
                let (head, body) = response.into_parts();
                let bytes = match read_up_to(body, limit).await {
                    UpTo::Whole(bytes) => bytes,
                    UpTo::Larger(body) => {
                        if let Some((check, _)) = check_body {
                            check.skipped();
                        }
                        if filter {
                            tracing::warn!(operation = self.op.id, limit, "the response is too large to transform");
                            return Err(GatewayError::upstream(
                                "the upstream response is too large to transform",
                            ));
                        }
                        return Ok(Response::from_parts(head, body));
                    }
                    UpTo::Failed(err) => {
                        tracing::warn!(operation = self.op.id, error = %err, "the upstream response body failed");
                        return Err(GatewayError::upstream("the upstream response broke off"));
                    }
                };
                if let Some((check, schema)) = check_body {
                    let outcome = check.body(status.as_u16(), schema, &bytes);
                    check.record(outcome.as_ref().map(|_| ()));
                    if outcome.is_err() && check.enforced() {
                        return Err(drifted());
                    }
                }
                // The filter gets the bytes; otherwise they go back as the body.
                if filter {
                    (Response::from_parts(head, Body::empty()), Some(bytes))
                } else {
                    (Response::from_parts(head, Body::from(bytes)), None)
                }
            }
        };
        match transforms {
            Some(t) => t.response(ctx, snapshot.as_ref(), response, filtered_body),
            None => Ok(response),
        }
    }

    /// Runs one of the phases that never wait: a plain call, no future.
    fn run(&self, phase: &RequestPhase, ctx: &mut RequestCtx, parts: &request::Parts) -> Result<(), GatewayError> {
        match phase {
            RequestPhase::Ip(spec, limits) => crate::policies::ip::check(spec, limits.client_ip(parts, ctx)),
            RequestPhase::Host(hosts) => hosts.check(parts),
            RequestPhase::Route | RequestPhase::Body(_) => Err(self.awaited(phase)),
            RequestPhase::Auth(_) => Err(self.awaited(phase)),
            RequestPhase::Throttle(limits) => {
                let (report, admitted) = limits.check(self.api, self.index, parts, ctx);
                ctx.limits = Some(report);
                admitted
            }
            RequestPhase::Params(contracts) => self.check_params(contracts, ctx, parts),
            RequestPhase::Quota(limits) => limits.charge(self.api, ctx),
        }
    }

    /// A phase that must be awaited reached [`Operation::run`]: a bug.
    fn awaited(&self, phase: &RequestPhase) -> GatewayError {
        tracing::error!(
            operation = self.op.id,
            phase = phase.name(),
            "this phase must be awaited"
        );
        GatewayError::internal()
    }

    /// The route phase: captures read once into the context, suffixes checked, segments of several parameters cut.
    async fn route(&self, ctx: &mut RequestCtx, parts: &mut request::Parts) -> Result<(), GatewayError> {
        let captures = RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|rejection| self.bad_captures(&rejection))?;
        let expected = match &self.path {
            path::PathLayout::Whole => self.op.path_params.len(),
            path::PathLayout::Split(counts) => counts.len(),
            path::PathLayout::Broken => usize::MAX,
        };
        if captures.iter().count() != expected {
            // The route, the template and `path_params` disagree: a generator bug, not the client's fault.
            tracing::error!(
                operation = self.op.id,
                "route captures do not match the operation's path parameters"
            );
            return Err(GatewayError::internal());
        }
        // `/calls/{sid}.json` is routed as `/calls/{p0}`, `/files/{name}.{ext}` as `/files/{p0}`: the literals are
        // part of the template, so a segment without them (or with nothing between them) does not match the
        // operation at all.
        match &self.path {
            path::PathLayout::Split(counts) => {
                let values = captures.iter().map(|(_, value)| value);
                ctx.path_spans =
                    path::spans(counts, self.op.path_suffixes, values).ok_or_else(GatewayError::not_found)?;
            }
            path::PathLayout::Whole | path::PathLayout::Broken => {
                for ((_, value), suffix) in captures.iter().zip(self.op.path_suffixes) {
                    if !suffix.is_empty() && value.strip_suffix(suffix).is_none_or(str::is_empty) {
                        return Err(GatewayError::not_found());
                    }
                }
            }
        }
        ctx.captures = Some(captures);
        Ok(())
    }

    /// Dot-segment refusal, then the operation's typed validation.
    fn check_params(
        &self,
        contracts: &Contracts,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Result<(), GatewayError> {
        let values = ctx.path_values();
        // A value of `.` or `..` would be substituted as a path segment of its own, and a dot-segment is removed
        // (or climbs a level) wherever the upstream path is normalised (RFC 3986 §5.2.4), by the upstream or any
        // hop in between: `/files/{name}` with `..` would reach the directory above. Percent-encoding the dots
        // does not help, as `%2E` is equivalent to `.` and normalisers decode it first. No real identifier is a
        // dot-segment, so refuse it.
        for (i, value) in values.iter().enumerate() {
            if matches!(*value, "." | "..") {
                let name = self.op.path_params.get(i).copied().unwrap_or("?");
                let err = ParamError::invalid(ParamIn::Path(i), name, NOT_A_DOT_SEGMENT, value);
                return Err(GatewayError::bad_param(&err));
            }
        }
        if let Some(validate) = self.op.validate {
            validate(&RequestParams::new(&values, parts.uri.query(), &parts.headers))
                .map_err(|err| GatewayError::bad_param(&err))?;
        }
        if !self.op.schema_params.is_empty() {
            validate::check_params(contracts, self.op.schema_params, parts.uri.query(), &parts.headers)?;
        }
        Ok(())
    }

    /// `BAD_REQUEST_PARAMETERS` for captures that are not UTF-8 once percent-decoded.
    fn bad_captures(&self, rejection: &RawPathParamsRejection) -> GatewayError {
        let RawPathParamsRejection::InvalidUtf8InPathParam(invalid) = rejection else {
            tracing::error!(operation = self.op.id, error = %rejection, "route captures missing");
            return GatewayError::internal();
        };
        // axum names the capture (`p3`) only in its message; captures are named `p{i}` by the generator.
        let text = invalid.body_text();
        let index = text
            .strip_prefix("Invalid UTF-8 in `p")
            .and_then(|rest| rest.strip_suffix('`'))
            .and_then(|i| i.parse::<usize>().ok());
        // A capture of several parameters (`{name}.{ext}`) is named after its first.
        let index = index.map(|capture| self.path.first_param(capture));
        match index.and_then(|i| Some((i, *self.op.path_params.get(i)?))) {
            Some((i, name)) => GatewayError::bad_param_detail(
                ParamIn::Path(i),
                name,
                "percent-encoded UTF-8 text",
                format!("path parameter `{name}` is not valid UTF-8 once percent-decoded"),
            ),
            None => GatewayError::new(
                crate::error::ErrorKind::BadRequestParameters,
                "a path parameter is not valid UTF-8 once percent-decoded",
            ),
        }
    }
}

/// The `UPSTREAM_ERROR` of a response that does not match the spec, in `enforce` mode.
fn drifted() -> GatewayError {
    GatewayError::upstream("the upstream response does not match the API's description")
}

/// What a path parameter may not be: see [`Operation::check_params`].
const NOT_A_DOT_SEGMENT: &str = "a value other than `.` or `..`";

/// The response filters, run on every response the gateway sends: the error (if any) rendered through
/// `responses`, then the CORS headers decided on arrival ([`RequestCtx::cors`]) and the headers every response
/// carries, then the log line.
pub(crate) fn finish(
    ctx: &mut RequestCtx,
    result: Result<Response, GatewayError>,
    responses: Option<&Responses>,
    meter: Option<Meter<'_>>,
) -> Response {
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            ctx.error = Some(error.kind);
            ctx.reason = error.reason;
            responses::render(&error, ctx, responses)
        }
    };
    let headers = response.headers_mut();
    if let Some(cors) = &ctx.cors {
        cors.apply(headers);
    }
    if let Some(report) = &ctx.limits {
        report.apply(headers);
    }
    if let Some(status) = ctx.cache {
        headers.insert(X_CACHE.clone(), status.header());
    }
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    log(ctx, &response);
    if let Some(meter) = meter {
        meter.record(ctx, &response);
    }
    crate::observe::access_log::record(ctx, &response);
    crate::observe::otlp::record(ctx, &response);
    response
}

/// One debug line per request (the access log line is [`crate::observe::access_log`]'s). Never the query string,
/// a header value or a key: only what identifies the request and its outcome.
fn log(ctx: &RequestCtx, response: &Response) {
    tracing::debug!(
        request_id = ctx.request_id.to_str().unwrap_or(""),
        method = %ctx.method,
        operation = ctx.operation.map_or("-", |op| op.id),
        template = ctx.operation.map_or("-", |op| op.template),
        status = response.status().as_u16(),
        error = ctx.error.map_or("-", |kind| kind.name()),
        cache = ctx.cache.map_or("-", |c| match c {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }),
        caller = ctx.caller.as_ref().and_then(auth::Caller::key_name).map_or("-", |n| &**n),
        upstream = ctx.upstream.map_or("-", |u| u.name),
        upstream_us = ctx.upstream.map_or(0, |u| u64::try_from(u.elapsed.as_micros()).unwrap_or(u64::MAX)),
        elapsed_us = u64::try_from(ctx.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
}

impl OperationService {
    pub(crate) fn new(operation: Operation) -> Self {
        Self {
            operation: Arc::new(operation),
        }
    }

    /// The names of the operation's request filters, in order (for tests and start-up logs).
    pub fn phases(&self) -> Vec<&'static str> {
        self.operation.phase_names()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::auth::authorizer::AuthorizerClient;
    use crate::policies::auth::keys::KeyStore;
    use crate::policies::auth::{AuthOverrides, Authenticators};
    use crate::spec::{
        ApiKeyScheme, CacheSettings, KeyLocation, MockSpec, Requirement, SchemeKind, SchemeSpec, TargetSpec,
        ThrottleScope, ThrottleSpec, UsagePlanSpec,
    };

    const fn op(
        id: &'static str,
        route: &'static str,
        path_params: &'static [&'static str],
        security: &'static [&'static [Requirement]],
        throttle: Option<ThrottleSpec>,
    ) -> OperationSpec {
        OperationSpec {
            id,
            method: http::Method::GET,
            template: route,
            route,
            path_params,
            security,
            throttle,
            target: TargetSpec::Mock(MockSpec {
                status: 200,
                headers: &[],
                content_type: "",
                body: "",
            }),
            ..OperationSpec::DEFAULT
        }
    }

    static SECURITY: [&[Requirement]; 1] = [&[Requirement { scheme: 0, scopes: &[] }]];

    static API: ApiSpec = ApiSpec {
        name: "t",
        spec_file: "t.yaml",
        api_version: "1",
        upstreams: &[],
        operations: &[
            op("plain", "/plain", &[], &[], None),
            op("path", "/things/{p0}", &["id"], &[], None),
            op("keyed", "/keyed", &[], &SECURITY, None),
            op(
                "limited",
                "/limited",
                &[],
                &[],
                Some(ThrottleSpec {
                    rate: 1,
                    burst: 1,
                    per: ThrottleScope::All,
                }),
            ),
        ],
        cache: CacheSettings {
            capacity: 1024,
            max_entry: 1024,
        },
        usage_plans: &[UsagePlanSpec {
            name: "free",
            throttle: None,
            quota: None,
        }],
        schemes: &[SchemeSpec {
            name: "k",
            kind: SchemeKind::ApiKey(ApiKeyScheme {
                scheme: "k",
                location: KeyLocation::Header,
                name: "x-api-key",
                forward: false,
            }),
        }],
        ..ApiSpec::EMPTY
    };

    fn phases(index: usize, hosts: Option<&Arc<Hosts>>) -> Vec<&'static str> {
        let auth = Authenticators::new(&API, &AuthOverrides::default()).expect("API keys only");
        let state = SharedState::new(&API, None, None, KeyStore::empty(), auth, false).expect("nothing to compile");
        request_phases(&API.operations[index], hosts, &state, &AuthorizerClient::new(None))
            .iter()
            .map(RequestPhase::name)
            .collect()
    }

    #[test]
    fn an_operation_without_policies_gets_only_the_body_limit() {
        assert_eq!(phases(0, None), ["body"]);
    }

    #[test]
    fn each_policy_adds_its_phase_in_the_one_order() {
        assert_eq!(phases(1, None), ["route", "params", "body"]);
        assert_eq!(phases(2, None), ["auth", "throttle", "body", "quota"]);
        assert_eq!(phases(3, None), ["throttle", "body"]);
        let hosts = Hosts::new(&["api.example.com"]).map(Arc::new);
        assert_eq!(phases(0, hosts.as_ref()), ["host", "body"]);
        assert_eq!(phases(1, hosts.as_ref()), ["host", "route", "params", "body"]);
    }
}
