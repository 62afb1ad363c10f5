//! Step 2 of the pipeline: every generate-time check, with cross references resolved on the way.
//!
//! Checks never stop at the first problem: each records a diagnostic and the walk goes on, so the user sees every
//! error of a spec in one run. What the checks establish (routes, targets, upstreams) is returned, so the model
//! is built from checked facts and nothing is worked out twice.

mod cache;
pub mod contract;
mod cors;
mod functions;
pub mod group;
mod ip;
mod limits;
mod responses;
mod routes;
mod security;
mod shared;
mod stages;
mod stores;
mod targets;
mod transforms;
pub mod transport;
mod upstreams;

use std::collections::HashMap;
use std::time::Duration;

use openapiv3::Parameter;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{
    Access, Body, CachePolicy, CacheSettings, Cors, GatewayResponse, Requirement, ResponsesCheck, SchemaParam, Scheme,
    Target, Throttle, Transform, Upstream, UsagePlan,
};
use crate::parse::ext::PolicyExt;
use crate::parse::{ParsedOperation, ParsedSpec};
use crate::template;

use cache::{cache_settings, check_cache};
use limits::{check_op_plans, check_throttle, check_usage_plans, op_throttle};
use responses::{check_hosts, check_responses};
use routes::{check_path_params, check_routes, derived_id, merge_same_requests, merge_variants, route_parts};
use security::Security;
use stores::Stores;
use targets::check_target;
use upstreams::Upstreams;

/// Upstream timeout when `timeout` is not set (AWS API Gateway's integration limit is 29 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Connect timeout when `connect_timeout` is not set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Cache capacity when `cache.capacity` is not set.
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;
/// Largest cached body when `cache.max_entry` is not set.
pub const DEFAULT_CACHE_MAX_ENTRY: u64 = 1024 * 1024;
/// Paths under this prefix belong to the gateway's admin endpoints.
pub const ADMIN_PREFIX: &str = "/_gateway";

/// What validation needs besides the spec.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The spec file's stem: the gateway's name when `x-gateway.name` is absent.
    pub file_stem: String,
    /// Base URL for operations with no target when the spec has no absolute server URL.
    pub default_upstream: Option<String>,
    /// The spec file's directory: files the spec names (`jwks_file`) are relative to it.
    pub spec_dir: Option<std::path::PathBuf>,
}

/// The checked facts the model is built from.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The API's name (the gateway's too when the spec is compiled alone).
    pub name: String,
    /// `x-gateway.gateway`: the gateway the API is compiled into with the other specs naming it.
    pub gateway: Option<String>,
    /// `x-gateway.base_path`: the prefix of every route (`/v1`); empty: none.
    pub base_path: String,
    /// Named upstreams in spec order, then implicit ones from `servers` in order of first use.
    pub upstreams: Vec<Upstream>,
    /// Operations to serve (skipped ones left out), in document order.
    pub operations: Vec<CheckedOperation<'a>>,
    /// API-wide cache sizes.
    pub cache: CacheSettings,
    /// The API-wide token bucket.
    pub throttle: Option<Throttle>,
    /// Usage plans.
    pub usage_plans: Vec<UsagePlan>,
    /// Public host names.
    pub hosts: Vec<String>,
    /// Top-level gateway responses.
    pub responses: Vec<GatewayResponse>,
    /// Stores, with the tables their targets use.
    pub stores: Vec<crate::model::Store>,
    /// State shared with other replicas through Redis.
    pub shared: Option<crate::model::Shared>,
    /// Converted schemas and filters, shared by the operations.
    pub tables: Tables,
    /// The security schemes operations use.
    pub schemes: Vec<Scheme>,
    /// The API-wide CORS policy.
    pub cors: Option<Cors>,
    /// Deployment stages.
    pub stages: Vec<crate::model::Stage>,
    /// The default stage's index.
    pub default_stage: Option<usize>,
}

/// Converted schemas and jq filters, each distinct text once, referred to by index.
#[derive(Debug, Default)]
pub struct Tables {
    /// Schema texts.
    pub schemas: Vec<String>,
    /// Filter texts.
    pub filters: Vec<String>,
}

impl Tables {
    /// The index of schema `text`, added if new.
    pub fn schema(&mut self, text: String) -> usize {
        intern(&mut self.schemas, text)
    }

    /// The index of filter `code`, added if new.
    pub fn filter(&mut self, code: &str) -> usize {
        intern(&mut self.filters, code.to_owned())
    }
}

fn intern(table: &mut Vec<String>, text: String) -> usize {
    match table.iter().position(|t| *t == text) {
        Some(i) => i,
        None => {
            table.push(text);
            table.len() - 1
        }
    }
}

/// An operation that passed every check.
#[derive(Debug)]
pub struct CheckedOperation<'a> {
    /// The parsed operation.
    pub parsed: &'a ParsedOperation,
    /// `operationId`, or one derived from method and path.
    pub id: String,
    /// The router's path.
    pub route: String,
    /// Path parameter names in template order.
    pub path_params: Vec<String>,
    /// Per path parameter, literal text that follows it inside its segment (`.json` in `{Sid}.json`), which the
    /// router of axum 0.8 cannot match; the runtime strips and checks it instead.
    pub path_suffixes: Vec<String>,
    /// Where requests go (`None` only while errors are being collected: a checked spec has them all).
    pub target: Option<Target>,
    /// Response caching, when the effective TTL is above zero.
    pub cache: Option<CachePolicy>,
    /// Security requirements (alternatives of conjunctions); empty: not checked by the gateway.
    pub security: Vec<Vec<Requirement>>,
    /// Why the gateway checks callers or not.
    pub access: Access,
    /// The effective CORS policy.
    pub cors: Option<Cors>,
    /// The client addresses it admits.
    pub ip: Option<crate::model::IpPolicy>,
    /// Compression, when on.
    pub compression: Option<crate::model::Compression>,
    /// Whether WebSocket upgrades pass through.
    pub websocket: bool,
    /// Admitted usage plans (indexes); empty: all.
    pub plans: Vec<usize>,
    /// The operation's token bucket.
    pub throttle: Option<Throttle>,
    /// Gateway responses of the operation and its path item (the operation's first; kinds unique).
    pub responses: Vec<GatewayResponse>,
    /// The request body policy.
    pub body: Body,
    /// Schema-checked parameters.
    pub schema_params: Vec<SchemaParam>,
    /// Transforms.
    pub transform: Option<Transform>,
    /// Upstream response checks.
    pub responses_check: Option<ResponsesCheck>,
    /// Position in the document, to keep output in document order.
    pub order: usize,
    /// Later operations that match the same requests and do the same at the gateway, served by this one's route
    /// (their parameters accepted too): see `routes::merge_same_requests`.
    pub merged: Vec<MergedOperation<'a>>,
}

/// An operation served by another's route, as the same requests with the same gateway behaviour.
#[derive(Debug)]
pub struct MergedOperation<'a> {
    /// The parsed operation.
    pub parsed: &'a ParsedOperation,
    /// Its `operationId`, or one derived from method and path.
    pub id: String,
    /// Its path parameter names in template order (position `i` is the serving operation's parameter `i`).
    pub path_params: Vec<String>,
}

/// Runs every check. Returns `None` when any error was found.
pub fn validate<'a>(spec: &'a ParsedSpec, ctx: &Context, diags: &mut Diagnostics) -> Option<Checked<'a>> {
    let name = check_name(spec, ctx, diags);
    let gateway = spec.root.gateway.clone();
    if let Some(gateway) = &gateway {
        check_crate_name(gateway, "/x-gateway/gateway", "gateway", diags);
    }
    let base_path = spec.root.base_path.clone().unwrap_or_default();
    check_base_path(&base_path, "/x-gateway/base_path", diags);
    let mut upstreams = Upstreams::new(spec, diags);
    let mut stores = Stores::new(spec, diags);
    let shared = shared::check_shared(spec, &name, diags);
    let (stages, default_stage) = stages::check_stages(&spec.root, &upstreams, diags);
    let throttle = spec
        .root
        .throttle
        .as_ref()
        .and_then(|t| check_throttle(t, "/x-gateway/throttle", true, diags));
    let usage_plans = check_usage_plans(spec, diags);
    let hosts = spec
        .root
        .hosts
        .as_ref()
        .map(|h| check_hosts(h, "/x-gateway/hosts", diags))
        .unwrap_or_default();
    let responses = spec
        .root
        .responses
        .as_ref()
        .map(|r| check_responses(&spec.root, r, "/x-gateway/responses", diags))
        .unwrap_or_default();
    // Path items' responses are checked once each, then shared by their operations.
    let mut path_responses: HashMap<String, Vec<GatewayResponse>> = HashMap::new();
    let mut security = Security::new(spec, ctx.spec_dir.as_deref());
    let root_cors = cors::check_root(spec.root.cors.as_ref(), diags);
    let root_ip_ok = ip::check_root(spec.root.ip.as_ref(), diags);
    let mut operations = Vec::new();
    let mut tables = Tables::default();
    let mut document = contract::Document::new(spec);
    let mut ids: HashMap<String, &str> = HashMap::new();
    for op in &spec.operations {
        if let Some(id) = &op.operation.operation_id
            && let Some(first) = ids.insert(id.clone(), &op.pointer)
        {
            diags.push(
                Diagnostic::error(
                    format!("{}/operationId", op.pointer),
                    format!("duplicate operationId `{id}`"),
                )
                .related(format!("{first}/operationId"), "first used here")
                .help("operationIds must be unique across the spec: rename one (in the spec or an overlay), or generate with `--lenient` to read later ones with a suffix"),
            );
        }
        if inherited(op, "skip", |e| e.skip.as_ref()).is_some_and(|(_, skip)| *skip) {
            continue;
        }
        let op_security = security.operation(spec, op, &upstreams, diags);
        if let Some(mut checked) = check_operation(
            spec,
            op,
            ctx,
            &op_security.alternatives,
            security.schemes(),
            &mut upstreams,
            &mut stores,
            diags,
        ) {
            checked.order = operations.len();
            checked.security = op_security.alternatives;
            checked.access = op_security.access;
            checked.cors = cors::check_operation(op, spec.root.cors.as_ref(), root_cors.as_ref(), diags);
            // The top level's list was checked (and its errors reported) once; an operation inheriting a bad one
            // adds nothing.
            checked.ip = if root_ip_ok || inherited(op, "ip", |e| e.ip.as_ref()).is_some() {
                ip::check_operation(op, spec.root.ip.as_ref(), diags)
            } else {
                None
            };
            checked.compression = transport::compression(&spec.root, op);
            checked.websocket = transport::websocket(op, checked.target.as_ref(), diags);
            checked.responses = op_responses(&spec.root, op, &mut path_responses, diags);
            checked.plans = check_op_plans(op, &usage_plans, diags);
            checked.throttle = op_throttle(op, diags);
            // A target that keeps or hands on the body as data needs it checked, whatever `validate.body` says.
            let stored_body = matches!(&checked.target, Some(Target::Store(s)) if s.action.writes_body());
            if stored_body {
                stores::check_stored_body(spec, op, diags);
            }
            let typed_body = stored_body || matches!(checked.target, Some(Target::Function(_)));
            checked.body = contract::check_body(spec, op, typed_body, &mut document, &mut tables, diags);
            checked.schema_params = contract::check_schema_params(op, &mut document, &mut tables, diags);
            checked.responses_check = contract::check_responses(spec, op, &mut document, &mut tables, diags);
            checked.transform = transforms::check_transform(spec, op, &checked.path_params, &mut tables, diags);
            if let (Some(cache), Some(transform)) = (&checked.cache, &checked.transform) {
                transforms::warn_per_request_values_cached(op, transform, &cache.key, diags);
            }
            operations.push(checked);
        }
    }
    let operations = merge_variants(operations, diags);
    let operations = merge_same_requests(operations, diags);
    check_routes(&operations, diags);
    functions::check_functions(spec, &operations, diags);
    // A stage's `*` replaces every policy's origins: none of them may allow credentials.
    let with_credentials = root_cors
        .iter()
        .chain(operations.iter().filter_map(|op| op.cors.as_ref()));
    if with_credentials.into_iter().any(|cors| cors.allow_credentials) {
        for at in stages::any_origin_stages(&spec.root) {
            diags.push(
                Diagnostic::error(at, "`*` cannot be combined with a CORS policy that has `allow_credentials: true`: browsers refuse such answers")
                    .help("list the origins this stage admits, e.g. `https://app.example.com`"),
            );
        }
    }
    let uses = operations.iter().map(|op| {
        let targets = match &op.target {
            Some(Target::Upstream { upstream, .. }) => vec![*upstream],
            Some(Target::Split { sides, .. }) => sides.iter().map(|(upstream, _)| *upstream).collect(),
            _ => Vec::new(),
        };
        let mut headers = transforms::declared_headers(op.parsed);
        headers.extend(transforms::STANDARD_HEADERS.iter().map(|h| (*h).to_owned()));
        (targets, headers, transforms::declared_query(op.parsed))
    });
    upstreams.check_hash_sources(uses, diags);
    let upstreams = upstreams.finish();
    let cache = cache_settings(spec);
    (!diags.has_errors()).then_some(Checked {
        name,
        gateway,
        base_path,
        upstreams,
        operations,
        cache,
        throttle,
        usage_plans,
        hosts,
        responses,
        stores: stores.finish(),
        shared,
        tables,
        schemes: security.finish(),
        cors: root_cors,
        stages,
        default_stage,
    })
}

/// The operation's own gateway responses, then its path item's for kinds it does not set.
fn op_responses(
    root: &crate::parse::ext::RootExt,
    op: &ParsedOperation,
    path_responses: &mut HashMap<String, Vec<GatewayResponse>>,
    diags: &mut Diagnostics,
) -> Vec<GatewayResponse> {
    let mut out = match &op.op_ext {
        Some((at, ext)) => ext
            .responses
            .as_ref()
            .map(|r| check_responses(root, r, &format!("{at}/responses"), diags))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    if let Some((at, ext)) = &op.path_ext
        && let Some(map) = &ext.responses
    {
        let inherited = path_responses
            .entry(at.clone())
            .or_insert_with(|| check_responses(root, map, &format!("{at}/responses"), diags));
        for response in inherited.iter() {
            if !out.iter().any(|r| r.kind == response.kind) {
                out.push(response.clone());
            }
        }
    }
    out
}

fn check_name(spec: &ParsedSpec, ctx: &Context, diags: &mut Diagnostics) -> String {
    if let Some(name) = &spec.root.name {
        check_crate_name(name, "/x-gateway/name", "gateway", diags);
        return name.clone();
    }
    // A file stem is the user's file name, not a setting: make it a crate name rather than refuse it.
    let mut name: String = ctx
        .file_stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "api-");
    }
    name
}

/// Reports `name` (of a `what`, written at `at`) when it cannot name a crate.
pub(super) fn check_crate_name(name: &str, at: &str, what: &str, diags: &mut Diagnostics) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid {
        diags.push(
            Diagnostic::error(at, format!("{what} name `{name}` cannot name a crate"))
                .help("use lower-case letters, digits, `-` and `_`, starting with a letter, e.g. `petstore`"),
        );
    }
}

/// Reports `base_path` (written at `at`) when it is not a route prefix: `/` and segments, no trailing `/`, no
/// placeholders, nothing a request path cannot hold, not under the admin endpoints. Empty is none.
fn check_base_path(base_path: &str, at: &str, diags: &mut Diagnostics) {
    if base_path.is_empty() {
        return;
    }
    let problem = if !base_path.starts_with('/') {
        Some("it must start with `/`")
    } else if base_path.ends_with('/') {
        Some("it must not end with `/`")
    } else if base_path.contains(['{', '}']) {
        Some("a base path has no placeholders")
    } else if base_path.contains("//") {
        Some("it has an empty segment")
    } else if base_path
        .chars()
        .any(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
    {
        Some("a path holds no `?`, `#`, whitespace or control characters")
    } else if base_path == ADMIN_PREFIX || base_path.starts_with(&format!("{ADMIN_PREFIX}/")) {
        Some("paths under `/_gateway/` are reserved for the gateway's admin endpoints")
    } else {
        None
    };
    if let Some(problem) = problem {
        diags.push(
            Diagnostic::error(at, format!("`{base_path}` is not a base path: {problem}"))
                .help("write a path prefix such as `/v1`: a leading `/`, no trailing `/`, no placeholders, not under `/_gateway`"),
        );
    }
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[allow(clippy::too_many_arguments)]
fn check_operation<'a>(
    spec: &ParsedSpec,
    op: &'a ParsedOperation,
    ctx: &Context,
    security: &[Vec<Requirement>],
    schemes: &[Scheme],
    upstreams: &mut Upstreams,
    stores: &mut Stores,
    diags: &mut Diagnostics,
) -> Option<CheckedOperation<'a>> {
    let id = op.operation.operation_id.clone().unwrap_or_else(|| derived_id(op));
    let routed = template::routed_part(&op.template);
    if routed.len() != op.template.len() {
        diags.push(
            Diagnostic::warning(
                &op.path_pointer,
                format!("path key `{}` carries a query or fragment, which no request path has; routed as `{routed}`", op.template),
            )
            .help("give the operation its own path, or mark one of the operations sharing it with `x-gateway: { skip: true }`"),
        );
    }
    let pieces = match template::scan(routed) {
        Ok(pieces) => pieces,
        Err(e) => {
            diags.push(Diagnostic::error(
                &op.path_pointer,
                format!("invalid path template: {e}"),
            ));
            return None;
        }
    };
    if !routed.starts_with('/') {
        diags.push(
            Diagnostic::error(&op.path_pointer, format!("path `{routed}` must start with `/`"))
                .help(format!("write `/{routed}`")),
        );
    }
    let (route, path_params, path_suffixes) = route_parts(&pieces, &op.path_pointer, diags)?;
    check_path_params(op, &path_params, diags);
    if routed == ADMIN_PREFIX || routed.starts_with(&format!("{ADMIN_PREFIX}/")) {
        diags.push(
            Diagnostic::error(
                &op.path_pointer,
                format!("paths under `{ADMIN_PREFIX}/` are reserved for the gateway's admin endpoints"),
            )
            .help("rename the path, or leave it out with `x-gateway: { skip: true }`"),
        );
    }
    let target = check_target(spec, op, ctx, &path_params, upstreams, stores, diags);
    let cache = check_cache(spec, op, security, schemes, diags);
    // Returned even when its target is in error, so that route conflicts are still checked and reported in the
    // same run; `validate` fails as a whole if anything was wrong.
    Some(CheckedOperation {
        parsed: op,
        id,
        route,
        path_params,
        path_suffixes,
        target,
        cache,
        security: Vec::new(),
        access: Access::Open,
        cors: None,
        ip: None,
        compression: None,
        websocket: false,
        plans: Vec::new(),
        throttle: None,
        responses: Vec::new(),
        body: Body::limit(contract::DEFAULT_MAX_BODY),
        schema_params: Vec::new(),
        transform: None,
        responses_check: None,
        order: 0,
        merged: Vec::new(),
    })
}

/// Whether `name` is a header name; reports it at `at` when not (mock and gateway-response headers).
fn check_header_name(name: &str, at: &str, diags: &mut Diagnostics) -> bool {
    let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok();
    if !valid {
        diags.push(
            Diagnostic::error(at, format!("`{name}` is not a valid header name"))
                .help("header names are tokens: letters, digits and `-`"),
        );
    }
    valid
}

fn location_name(p: &Parameter) -> &'static str {
    match p {
        Parameter::Query { .. } => "query",
        Parameter::Header { .. } => "header",
        Parameter::Path { .. } => "path",
        Parameter::Cookie { .. } => "cookie",
    }
}

/// The first of the operation's and its path item's `x-gateway` that sets a setting, with the setting's pointer:
/// operation settings override path-item settings.
fn inherited<'s, T>(
    op: &'s ParsedOperation,
    key: &str,
    field: impl Fn(&'s PolicyExt) -> Option<&'s T>,
) -> Option<(String, &'s T)> {
    [&op.op_ext, &op.path_ext]
        .into_iter()
        .flatten()
        .find_map(|(at, ext)| field(ext).map(|value| (format!("{at}/{key}"), value)))
}
