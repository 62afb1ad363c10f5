//! The request path: what happens to every request, in order, in one place.
//!
//! ```text
//! arrival ─► RequestCtx::new (request id, start time, client address)
//!   request filters (each may stop the request with a GatewayError), assembled per operation at start-up:
//!     host ─► route ─► auth ─► throttle ─► params ─► quota
//!   cache lookup (cached operations) ─► upstream request filters (credentials stripped, X-Request-Id,
//!     X-Forwarded-*) ─► target (proxy or mock)
//!   response filters (every response: target, cache hit, or gateway error; 404, 405 and admin too):
//!     render the error (spec's rendering or problem+json) ─► RateLimit-* ─► X-Cache ─► X-Request-Id ─► log
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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts as _, RawPathParams, Request};
use axum::response::Response;
use http::{HeaderName, request};

pub use ctx::{Arrival, CacheStatus, RequestCtx, UpstreamCall, X_REQUEST_ID};

use crate::error::GatewayError;
use crate::params::{ParamError, ParamIn, RequestParams};
use crate::policies::auth;
use crate::policies::cache::ResponseCache;
use crate::policies::hosts::Hosts;
use crate::policies::keys::KeyStore;
use crate::policies::throttle::Limits;
use crate::responses::{self, Responses};
use crate::spec::{ApiSpec, CacheSpec, OperationSpec};
use crate::state::SharedState;
use crate::targets::Target;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// One request filter. The order of [`request_phases`] is the order they run.
#[derive(Debug)]
pub(crate) enum RequestPhase {
    /// The request names a host the API is served under (`MISDIRECTED_REQUEST`).
    Host(Arc<Hosts>),
    /// The path captures: segment suffixes (`NOT_FOUND` without one) and UTF-8 (`BAD_REQUEST_PARAMETERS`).
    Route,
    /// The API key the operation's `security` asks for (`UNAUTHORIZED`, `FORBIDDEN`).
    Auth(KeyStore),
    /// Token buckets: API-wide, the operation's, the caller's plan (`THROTTLED`).
    Throttle(Limits),
    /// Dot-segment path values, then the typed parameters (`BAD_REQUEST_PARAMETERS`).
    Params,
    /// The caller's usage counted and quota charged, only once every other filter admitted the request
    /// (`QUOTA_EXCEEDED`).
    Quota(Limits),
}

impl RequestPhase {
    /// The phase's name, for tests and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            RequestPhase::Host(_) => "host",
            RequestPhase::Route => "route",
            RequestPhase::Auth(_) => "auth",
            RequestPhase::Throttle(_) => "throttle",
            RequestPhase::Params => "params",
            RequestPhase::Quota(_) => "quota",
        }
    }
}

/// The request filters of operation `index` of `api`, in order: the one list that says what runs.
pub(crate) fn request_phases(
    api: &'static ApiSpec,
    op: &'static OperationSpec,
    hosts: Option<&Arc<Hosts>>,
    state: &SharedState,
) -> Vec<RequestPhase> {
    let keyed = !op.security.is_empty();
    let limited = api.throttle.is_some() || op.throttle.is_some() || keyed;
    let mut phases = Vec::new();
    if let Some(hosts) = hosts {
        phases.push(RequestPhase::Host(Arc::clone(hosts)));
    }
    if !op.path_params.is_empty() {
        phases.push(RequestPhase::Route);
    }
    if keyed {
        phases.push(RequestPhase::Auth(state.keys.clone()));
    }
    if limited {
        phases.push(RequestPhase::Throttle(state.limits.clone()));
    }
    if !op.path_params.is_empty() || op.validate.is_some() {
        phases.push(RequestPhase::Params);
    }
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
    phases: Box<[RequestPhase]>,
    cache: Option<(ResponseCache, &'static CacheSpec)>,
    target: Target,
    responses: Option<Arc<Responses>>,
}

impl Operation {
    /// Prepares operation `index` of `api`.
    pub(crate) fn new(
        api: &'static ApiSpec,
        index: usize,
        phases: Vec<RequestPhase>,
        cache: Option<(ResponseCache, &'static CacheSpec)>,
        target: Target,
        responses: Option<Arc<Responses>>,
    ) -> Self {
        Self {
            api,
            index,
            op: &api.operations[index],
            phases: phases.into_boxed_slice(),
            cache,
            target,
            responses,
        }
    }

    /// The names of its request filters, in order.
    pub(crate) fn phase_names(&self) -> Vec<&'static str> {
        self.phases.iter().map(RequestPhase::name).collect()
    }

    async fn handle(&self, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let mut ctx = RequestCtx::new(&parts, Some(self.op));
        let result = self.serve(&mut ctx, parts, body).await;
        finish(&mut ctx, result, self.responses.as_deref())
    }

    async fn serve(
        &self,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        body: axum::body::Body,
    ) -> Result<Response, GatewayError> {
        for phase in &self.phases {
            match phase {
                // The one phase that awaits (axum's capture extractor is async, though it never waits).
                RequestPhase::Route => self.route(ctx, &mut parts).await?,
                sync => self.run(sync, ctx, &parts)?,
            }
        }
        match &self.cache {
            None => self.target.respond(ctx, parts, body).await,
            // Boxed: the cache's future (coalescing, moka's entry API) is large, and inline it would make every
            // request's future, cached or not, that much larger to build and move.
            Some((cache, policy)) => Box::pin(self.serve_cached(cache, policy, ctx, parts, body)).await,
        }
    }

    async fn serve_cached(
        &self,
        cache: &ResponseCache,
        policy: &'static CacheSpec,
        ctx: &mut RequestCtx,
        parts: request::Parts,
        body: axum::body::Body,
    ) -> Result<Response, GatewayError> {
        let lookup = cache.lookup(self.op.id, policy, &parts, ctx);
        let target = &self.target;
        let (status, result) = cache.serve(policy, lookup, || target.respond(ctx, parts, body)).await;
        ctx.cache = Some(status);
        result
    }

    /// Runs one of the phases that never wait: a plain call, no future.
    fn run(&self, phase: &RequestPhase, ctx: &mut RequestCtx, parts: &request::Parts) -> Result<(), GatewayError> {
        match phase {
            RequestPhase::Host(hosts) => hosts.check(parts),
            RequestPhase::Route => {
                tracing::error!(operation = self.op.id, "the route phase must be awaited");
                Err(GatewayError::internal())
            }
            RequestPhase::Auth(keys) => {
                ctx.caller = auth::authenticate(self.api, self.op, parts, &keys.current())?;
                Ok(())
            }
            RequestPhase::Throttle(limits) => {
                let (report, admitted) = limits.check(self.api, self.index, parts, ctx);
                ctx.limits = Some(report);
                admitted
            }
            RequestPhase::Params => self.check_params(ctx, parts),
            RequestPhase::Quota(limits) => limits.charge(self.api, ctx),
        }
    }

    /// The route phase: captures read once into the context, suffixes checked.
    async fn route(&self, ctx: &mut RequestCtx, parts: &mut request::Parts) -> Result<(), GatewayError> {
        let captures = RawPathParams::from_request_parts(parts, &())
            .await
            .map_err(|rejection| self.bad_captures(&rejection))?;
        if captures.iter().count() != self.op.path_params.len() {
            // The route and `path_params` disagree: a generator bug, not the client's fault.
            tracing::error!(
                operation = self.op.id,
                "route captures do not match the operation's path parameters"
            );
            return Err(GatewayError::internal());
        }
        // `/calls/{sid}.json` is routed as `/calls/{p0}`: the suffix is part of the template, so a segment without
        // it (or with nothing before it) does not match the operation at all.
        for ((_, value), suffix) in captures.iter().zip(self.op.path_suffixes) {
            if !suffix.is_empty() && value.strip_suffix(suffix).is_none_or(str::is_empty) {
                return Err(GatewayError::not_found());
            }
        }
        ctx.captures = Some(captures);
        Ok(())
    }

    /// Dot-segment refusal, then the operation's typed validation.
    fn check_params(&self, ctx: &RequestCtx, parts: &request::Parts) -> Result<(), GatewayError> {
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
        match self.op.validate {
            Some(validate) => validate(&RequestParams::new(&values, parts.uri.query(), &parts.headers))
                .map_err(|err| GatewayError::bad_param(&err)),
            None => Ok(()),
        }
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

/// What a path parameter may not be: see [`Operation::check_params`].
const NOT_A_DOT_SEGMENT: &str = "a value other than `.` or `..`";

/// The response filters, run on every response the gateway sends: the error (if any) rendered through
/// `responses`, then the headers every response carries, then the log line.
pub fn finish(ctx: &mut RequestCtx, result: Result<Response, GatewayError>, responses: Option<&Responses>) -> Response {
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            ctx.error = Some(error.kind);
            responses::render(&error, ctx, responses)
        }
    };
    let headers = response.headers_mut();
    if let Some(report) = &ctx.limits {
        report.apply(headers);
    }
    if let Some(status) = ctx.cache {
        headers.insert(X_CACHE.clone(), status.header());
    }
    headers.insert(X_REQUEST_ID.clone(), ctx.request_id.clone());
    log(ctx, &response);
    response
}

/// One debug line per request (the access log proper is a later, opt-in phase). Never the query string, a header
/// value or a key: only what identifies the request and its outcome.
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
        caller = ctx.caller.as_ref().map_or("-", |c| &*c.key.name),
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
    use crate::policies::keys::KeyStore;
    use crate::spec::{
        ApiKeyScheme, CacheSettings, KeyLocation, MockSpec, TargetSpec, ThrottleScope, ThrottleSpec, UsagePlanSpec,
    };

    const fn op(
        id: &'static str,
        route: &'static str,
        path_params: &'static [&'static str],
        security: &'static [&'static [ApiKeyScheme]],
        throttle: Option<ThrottleSpec>,
    ) -> OperationSpec {
        OperationSpec {
            id,
            method: http::Method::GET,
            template: route,
            route,
            path_params,
            path_suffixes: &[],
            validate: None,
            security,
            plans: &[],
            throttle,
            cache: None,
            responses: &[],
            target: TargetSpec::Mock(MockSpec {
                status: 200,
                headers: &[],
                content_type: "",
                body: "",
            }),
        }
    }

    static KEY: [ApiKeyScheme; 1] = [ApiKeyScheme {
        scheme: "k",
        location: KeyLocation::Header,
        name: "x-api-key",
        forward: false,
    }];
    static SECURITY: [&[ApiKeyScheme]; 1] = [&KEY];

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
        throttle: None,
        usage_plans: &[UsagePlanSpec {
            name: "free",
            throttle: None,
            quota: None,
        }],
        hosts: &[],
        responses: &[],
    };

    fn phases(index: usize, hosts: Option<&Arc<Hosts>>) -> Vec<&'static str> {
        let state = SharedState::new(&API, None, KeyStore::empty(), false);
        request_phases(&API, &API.operations[index], hosts, &state)
            .iter()
            .map(RequestPhase::name)
            .collect()
    }

    #[test]
    fn an_operation_without_policies_gets_no_phases() {
        assert!(phases(0, None).is_empty());
    }

    #[test]
    fn each_policy_adds_its_phase_in_the_one_order() {
        assert_eq!(phases(1, None), ["route", "params"]);
        assert_eq!(phases(2, None), ["auth", "throttle", "quota"]);
        assert_eq!(phases(3, None), ["throttle"]);
        let hosts = Hosts::new(&["api.example.com"]).map(Arc::new);
        assert_eq!(phases(0, hosts.as_ref()), ["host"]);
        assert_eq!(phases(1, hosts.as_ref()), ["host", "route", "params"]);
    }
}
