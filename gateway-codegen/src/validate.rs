//! Step 2 of the pipeline: every generate-time check, with cross references resolved on the way.
//!
//! Checks never stop at the first problem: each records a diagnostic and the walk goes on, so the user sees every
//! error of a spec in one run. What the checks establish (routes, targets, upstreams) is returned, so the model
//! is built from checked facts and nothing is worked out twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use indexmap::IndexMap;
use openapiv3::{Parameter, Server};

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{
    ApiKeyScheme, CacheKeyPart, CachePolicy, CacheSettings, Invalidate, KeyLocation, Mock, PathPart, QuotaPeriod,
    Target, Throttle, Upstream, UsagePlan,
};
use crate::parse::ext::{self, CacheExt, MockExt, PolicyExt, TargetExt, ThrottleExt};
use crate::parse::{ParsedOperation, ParsedSpec};
use crate::template::{self, Namespace, Piece};

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
}

/// The checked facts the model is built from.
#[derive(Debug)]
pub struct Checked<'a> {
    /// The gateway's name.
    pub name: String,
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
    /// API key requirements (alternatives of conjunctions); empty: open.
    pub security: Vec<Vec<ApiKeyScheme>>,
    /// Admitted usage plans (indexes); empty: all.
    pub plans: Vec<usize>,
    /// The operation's token bucket.
    pub throttle: Option<Throttle>,
    /// Position in the document, to keep output in document order.
    pub order: usize,
}

/// Runs every check. Returns `None` when any error was found.
pub fn validate<'a>(spec: &'a ParsedSpec, ctx: &Context, diags: &mut Diagnostics) -> Option<Checked<'a>> {
    let name = check_name(spec, ctx, diags);
    let mut upstreams = Upstreams::new(spec, diags);
    let throttle = spec
        .root
        .throttle
        .as_ref()
        .and_then(|t| check_throttle(t, "/x-gateway/throttle", true, diags));
    let usage_plans = check_usage_plans(spec, diags);
    let mut unenforced = std::collections::HashSet::new();
    let mut operations = Vec::new();
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
                .help("operationIds must be unique across the spec; rename one"),
            );
        }
        if inherited(op, "skip", |e| e.skip.as_ref()).is_some_and(|(_, skip)| *skip) {
            continue;
        }
        if let Some(mut checked) = check_operation(spec, op, ctx, &mut upstreams, diags) {
            checked.order = operations.len();
            checked.security = check_security(spec, op, &mut unenforced, diags);
            checked.plans = check_op_plans(op, &usage_plans, diags);
            checked.throttle = op_throttle(op, diags);
            operations.push(checked);
        }
    }
    let operations = merge_variants(operations, diags);
    check_routes(&operations, diags);
    let upstreams = upstreams.finish();
    let cache = cache_settings(spec);
    (!diags.has_errors()).then_some(Checked {
        name,
        upstreams,
        operations,
        cache,
        throttle,
        usage_plans,
    })
}

fn check_name(spec: &ParsedSpec, ctx: &Context, diags: &mut Diagnostics) -> String {
    if let Some(name) = &spec.root.name {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.starts_with(|c: char| c.is_ascii_lowercase());
        if !valid {
            diags.push(
                Diagnostic::error("/x-gateway/name", format!("gateway name `{name}` cannot name a crate"))
                    .help("use lower-case letters, digits, `-` and `_`, starting with a letter, e.g. `petstore`"),
            );
        }
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

/// Named and implicit upstreams, numbered in order of first use.
struct Upstreams {
    list: Vec<Upstream>,
    named: IndexMap<String, usize>,
    implicit: HashMap<String, usize>,
    document_server: Option<String>,
}

impl Upstreams {
    fn new(spec: &ParsedSpec, diags: &mut Diagnostics) -> Self {
        let mut list = Vec::new();
        let mut named = IndexMap::new();
        for (name, upstream) in &spec.root.upstreams {
            let at = format!("/x-gateway/upstreams/{}", crate::locate::escape_segment(name));
            if !valid_upstream_name(name) {
                diags.push(
                    Diagnostic::error(&at, format!("upstream name `{name}` is not a plain name"))
                        .help("use letters, digits, `-`, `_` and `.` (it is also the NAME in `--upstream NAME=URL`)"),
                );
            }
            check_url(&upstream.url, &format!("{at}/url"), diags);
            named.insert(name.clone(), list.len());
            list.push(Upstream {
                name: name.clone(),
                url: upstream.url.clone(),
                timeout: upstream.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
                connect_timeout: upstream.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            });
        }
        let document_server = spec.openapi.servers.first().map(server_url);
        Self {
            list,
            named,
            implicit: HashMap::new(),
            document_server,
        }
    }

    /// The upstream for an operation with no target: its servers' first URL.
    fn implicit(&mut self, url: String) -> usize {
        if let Some(&i) = self.implicit.get(&url) {
            return i;
        }
        let base = if self.document_server.as_deref().is_some_and(|d| same_server(d, &url)) {
            String::from("default")
        } else {
            url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| String::from("server"))
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.list.iter().any(|u| u.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let i = self.list.len();
        self.implicit.insert(url.clone(), i);
        self.list.push(Upstream {
            name,
            url,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        });
        i
    }

    fn finish(self) -> Vec<Upstream> {
        self.list
    }
}

fn same_server(document: &str, url: &str) -> bool {
    document == url || url.ends_with(document) && document.starts_with('/')
}

fn valid_upstream_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A server's URL with its variables at their defaults.
fn server_url(server: &Server) -> String {
    let mut url = server.url.clone();
    if let Some(vars) = &server.variables {
        for (name, var) in vars {
            url = url.replace(&format!("{{{name}}}"), &var.default);
        }
    }
    url
}

fn check_url(url: &str, at: &str, diags: &mut Diagnostics) {
    let problem = match url::Url::parse(url) {
        Err(e) => Some(format!("`{url}` is not a valid URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "upstream URL `{url}` must use http or https, not `{}`",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(format!("upstream URL `{url}` has no host")),
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            Some(format!("upstream URL `{url}` must not have a query or fragment"))
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some(format!("upstream URL `{url}` must not carry credentials"))
        }
        Ok(_) => None,
    };
    if let Some(message) = problem {
        diags
            .push(Diagnostic::error(at, message).help("write an absolute base URL such as `http://127.0.0.1:9001/v1`"));
    }
}

fn check_operation<'a>(
    spec: &ParsedSpec,
    op: &'a ParsedOperation,
    ctx: &Context,
    upstreams: &mut Upstreams,
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
    let target = check_target(spec, op, ctx, &path_params, upstreams, diags);
    let cache = check_cache(spec, op, diags);
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
        plans: Vec::new(),
        throttle: None,
        order: 0,
    })
}

/// An id for an operation that has none: `get_pets_petId` for `GET /pets/{petId}`.
fn derived_id(op: &ParsedOperation) -> String {
    let mut id = op.method.to_ascii_lowercase();
    for part in op.template.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

/// The route, the path parameter names, and the per-parameter segment suffixes of a template.
fn route_parts(pieces: &[Piece], at: &str, diags: &mut Diagnostics) -> Option<(String, Vec<String>, Vec<String>)> {
    let mut route = String::new();
    let mut names = Vec::new();
    let mut suffixes = Vec::new();
    // Work segment by segment: the router matches a literal prefix before a parameter (`thumbnail.{ext}`) but not a
    // literal suffix after one (`{Sid}.json`); such a segment is routed whole and the runtime checks the suffix.
    let text: String = pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(t) => t.clone(),
            Piece::Placeholder(n) => format!("{{{n}}}"),
        })
        .collect();
    for (i, segment) in text.split('/').enumerate() {
        if i > 0 {
            route.push('/');
        }
        let seg_pieces = template::scan(segment).unwrap_or_default();
        let param = format!("{{p{}}}", names.len());
        match seg_pieces.as_slice() {
            [Piece::Placeholder(name)] => {
                route.push_str(&param);
                names.push(name.clone());
                suffixes.push(String::new());
            }
            [Piece::Literal(prefix), Piece::Placeholder(name)] => {
                route.push_str(&template::route_of(&[Piece::Literal(prefix.clone())]));
                route.push_str(&param);
                names.push(name.clone());
                suffixes.push(String::new());
            }
            [Piece::Placeholder(name), Piece::Literal(suffix)] => {
                route.push_str(&param);
                names.push(name.clone());
                suffixes.push(suffix.clone());
            }
            literals if literals.iter().all(|p| matches!(p, Piece::Literal(_))) => {
                route.push_str(&template::route_of(literals));
            }
            _ => {
                diags.push(
                    Diagnostic::error(at, format!("path segment `{segment}` mixes parameters and text in a way no router can split unambiguously"))
                        .help("keep to one parameter per segment, with literal text only before it or only after it"),
                );
                return None;
            }
        }
    }
    Some((route, names, suffixes))
}

fn location_name(p: &Parameter) -> &'static str {
    match p {
        Parameter::Query { .. } => "query",
        Parameter::Header { .. } => "header",
        Parameter::Path { .. } => "path",
        Parameter::Cookie { .. } => "cookie",
    }
}

fn check_path_params(op: &ParsedOperation, in_template: &[String], diags: &mut Diagnostics) {
    let declared: Vec<(&String, &Parameter)> = op
        .params
        .iter()
        .filter(|(_, p)| matches!(p, Parameter::Path { .. }))
        .map(|(at, p)| (at, p))
        .collect();
    for name in in_template {
        if !declared.iter().any(|(_, p)| &p.parameter_data_ref().name == name) {
            diags.push(
                Diagnostic::error(
                    &op.path_pointer,
                    format!(
                        "path placeholder `{{{name}}}` has no declared path parameter in {} {}",
                        op.method, op.template
                    ),
                )
                .help(format!(
                    "declare it under `parameters:` with `name: {name}`, `in: path`, `required: true` and a schema"
                )),
            );
        }
    }
    for (at, p) in &declared {
        let name = &p.parameter_data_ref().name;
        if !in_template.contains(name) {
            let mut d = Diagnostic::error(
                *at,
                format!(
                    "path parameter `{name}` does not appear in the path template `{}`",
                    op.template
                ),
            );
            d = match did_you_mean(name, in_template.iter().map(String::as_str)) {
                Some(best) => d.help(format!("did you mean `{best}`? or add `{{{name}}}` to the path")),
                None => d.help(format!("add `{{{name}}}` to the path, or remove the parameter")),
            };
            diags.push(d);
        }
    }
    // Duplicates are legal only across path item and operation (where the operation's wins, merged in parse).
    let mut seen: HashMap<(String, &str), &String> = HashMap::new();
    for (at, p) in &op.params {
        let key = (p.parameter_data_ref().name.clone(), location_name(p));
        if let Some(first) = seen.insert(key, at) {
            diags.push(
                Diagnostic::warning(
                    at,
                    format!(
                        "parameter `{}` in {} is declared twice; the later one is used",
                        p.parameter_data_ref().name,
                        location_name(p)
                    ),
                )
                .related(first.clone(), "first declared here"),
            );
        }
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

/// The effective `target` (operation, else path item, else top level) with the pointer where it is written.
fn effective_target<'s>(spec: &'s ParsedSpec, op: &'s ParsedOperation) -> Option<(String, &'s TargetExt)> {
    inherited(op, "target", |e| e.target.as_ref()).or_else(|| {
        spec.root
            .target
            .as_ref()
            .map(|t| (String::from("/x-gateway/target"), t))
    })
}

fn check_target(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    ctx: &Context,
    path_params: &[String],
    upstreams: &mut Upstreams,
    diags: &mut Diagnostics,
) -> Option<Target> {
    if op.ext_failed || spec.root_failed {
        // Which target was meant is unknown; the unreadable extension is already reported.
        return None;
    }
    let Some((at, target)) = effective_target(spec, op) else {
        return implicit_target(op, ctx, path_params, upstreams, diags);
    };
    match (&target.upstream, &target.mock) {
        (Some(_), Some(_)) => {
            diags.push(
                Diagnostic::error(&at, "a target has both `upstream` and `mock`")
                    .help("keep one: `upstream:` proxies the request, `mock:` answers it with a fixed response"),
            );
            None
        }
        (None, None) => {
            diags.push(
                Diagnostic::error(&at, "a target needs `upstream` or `mock`").help(
                    "e.g. `target: { upstream: pets }` or `target: { mock: { status: 200, body: { ok: true } } }`",
                ),
            );
            None
        }
        (None, Some(mock)) => {
            if target.path.is_some() {
                diags.push(
                    Diagnostic::error(
                        format!("{at}/path"),
                        "`path` rewrites an upstream path; a mock target has none",
                    )
                    .help("remove `path`"),
                );
            }
            check_mock(mock, &format!("{at}/mock"), diags).map(Target::Mock)
        }
        (Some(name), None) => {
            let Some(&upstream) = upstreams.named.get(name) else {
                let mut d = Diagnostic::error(format!("{at}/upstream"), format!("upstream `{name}` is not defined"));
                let known: Vec<&str> = upstreams.named.keys().map(String::as_str).collect();
                d = match did_you_mean(name, known.iter().copied()) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None if known.is_empty() => d.help(format!("define it under `x-gateway: {{ upstreams: {{ {name}: {{ url: http://... }} }} }}` at the top level")),
                    None => d.help(format!("defined upstreams: {}", known.join(", "))),
                };
                diags.push(d);
                return None;
            };
            let path = match &target.path {
                Some(rewrite) => rewrite_path(rewrite, &format!("{at}/path"), path_params, diags)?,
                None => default_path(path_params, &op.template),
            };
            Some(Target::Upstream { upstream, path })
        }
    }
}

fn implicit_target(
    op: &ParsedOperation,
    ctx: &Context,
    path_params: &[String],
    upstreams: &mut Upstreams,
    diags: &mut Diagnostics,
) -> Option<Target> {
    let server = op.servers.as_ref().map(|(at, s)| (at, server_url(s)));
    let url = match (&server, &ctx.default_upstream) {
        (Some((_, url)), _) if url::Url::parse(url).is_ok() => url.clone(),
        (Some((_, url)), Some(base)) => format!("{}{}", base.trim_end_matches('/'), url),
        (None, Some(base)) => base.clone(),
        (Some((at, url)), None) => {
            diags.push(
                Diagnostic::error(&op.pointer, format!("{} {} has no target, and the server URL `{url}` is relative", op.method, op.template))
                    .related((*at).clone(), "the server URL in effect")
                    .help("add `x-gateway: { target: { upstream: NAME } }` (top level, path or operation), an absolute `servers` URL, or generate with `--default-upstream URL`"),
            );
            return None;
        }
        (None, None) => {
            diags.push(
                Diagnostic::error(&op.pointer, format!("{} {} has no target and the spec has no `servers` URL to proxy to", op.method, op.template))
                    .help("add `x-gateway: { target: { upstream: NAME } }` (top level, path or operation), a `servers:` entry, or generate with `--default-upstream URL`"),
            );
            return None;
        }
    };
    let at = server
        .as_ref()
        .map_or_else(|| op.pointer.clone(), |(at, _)| format!("{at}/url"));
    let before = diags.items().len();
    check_url(&url, &at, diags);
    if diags.items().len() > before {
        return None;
    }
    let upstream = upstreams.implicit(url);
    Some(Target::Upstream {
        upstream,
        path: default_path(path_params, &op.template),
    })
}

/// The upstream path when there is no rewrite: the operation's own path.
fn default_path(path_params: &[String], template: &str) -> Vec<PathPart> {
    let routed = template::routed_part(template);
    let mut parts = Vec::new();
    let mut index = 0;
    for piece in template::scan(routed).unwrap_or_default() {
        match piece {
            Piece::Literal(text) => parts.push(PathPart::Literal(text)),
            Piece::Placeholder(_) if index < path_params.len() => {
                parts.push(PathPart::Param(index));
                index += 1;
            }
            Piece::Placeholder(_) => {}
        }
    }
    parts
}

fn rewrite_path(rewrite: &str, at: &str, path_params: &[String], diags: &mut Diagnostics) -> Option<Vec<PathPart>> {
    if !rewrite.starts_with('/') {
        diags.push(
            Diagnostic::error(at, format!("rewrite path `{rewrite}` must start with `/`"))
                .help(format!("write `/{rewrite}`")),
        );
        return None;
    }
    let pieces = match template::scan(rewrite) {
        Ok(p) => p,
        Err(e) => {
            diags.push(Diagnostic::error(at, format!("invalid rewrite path: {e}")));
            return None;
        }
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for piece in pieces {
        match piece {
            Piece::Literal(text) => {
                if let Some(bad) = text
                    .chars()
                    .find(|c| c.is_whitespace() || matches!(c, '?' | '#' | '"' | '<' | '>' | '\\' | '^' | '`' | '|'))
                {
                    diags.push(
                        Diagnostic::error(
                            at,
                            format!("rewrite path `{rewrite}` contains `{bad}`, which is not allowed in a URL path"),
                        )
                        .help("percent-encode it"),
                    );
                    ok = false;
                }
                parts.push(PathPart::Literal(text));
            }
            Piece::Placeholder(placeholder) => match template::qualify(&placeholder) {
                Err(e) => {
                    diags.push(Diagnostic::error(at, e));
                    ok = false;
                }
                Ok((Namespace::Path, name)) => match path_params.iter().position(|p| p == name) {
                    Some(i) => parts.push(PathPart::Param(i)),
                    None => {
                        let mut d = Diagnostic::error(
                            at,
                            format!(
                                "rewrite placeholder `{{{placeholder}}}` names no path parameter of this operation"
                            ),
                        );
                        d = match did_you_mean(name, path_params.iter().map(String::as_str)) {
                            Some(best) => d.help(format!("did you mean `{{{best}}}`?")),
                            None if path_params.is_empty() => d.help("the operation has no path parameters"),
                            None => d.help(format!("its path parameters are: {}", path_params.join(", "))),
                        };
                        diags.push(d);
                        ok = false;
                    }
                },
                Ok((ns, _)) => {
                    diags.push(
                        Diagnostic::error(
                            at,
                            format!(
                                "`{{{placeholder}}}`: {} placeholders are not supported in a rewrite path",
                                ns.prefix()
                            ),
                        )
                        .help("a rewrite path can use the operation's path parameters: `{name}` or `{path.name}`"),
                    );
                    ok = false;
                }
            },
        }
    }
    ok.then_some(parts)
}

fn check_mock(mock: &MockExt, at: &str, diags: &mut Diagnostics) -> Option<Mock> {
    let mut ok = true;
    if !(100..=599).contains(&mock.status) {
        diags.push(
            Diagnostic::error(
                format!("{at}/status"),
                format!("status {} is not an HTTP status code", mock.status),
            )
            .help("use a code from 100 to 599"),
        );
        ok = false;
    }
    let mut headers = Vec::new();
    for (name, value) in &mock.headers {
        let hat = format!("{at}/headers/{}", crate::locate::escape_segment(name));
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            diags.push(
                Diagnostic::error(&hat, format!("`{name}` is not a valid header name"))
                    .help("header names are tokens: letters, digits and `-`"),
            );
            ok = false;
        }
        if http::HeaderValue::from_str(value).is_err() {
            diags.push(
                Diagnostic::error(
                    &hat,
                    format!("the value of header `{name}` is not a valid header value"),
                )
                .help("use visible ASCII; no line breaks"),
            );
            ok = false;
        }
        headers.push((name.clone(), value.clone()));
    }
    let (body, default_type) = match &mock.body {
        None => (String::new(), ""),
        Some(serde_json::Value::String(s)) => (s.clone(), "text/plain; charset=utf-8"),
        Some(value) => (value.to_string(), "application/json"),
    };
    let content_type = mock.content_type.clone().unwrap_or_else(|| default_type.to_owned());
    if http::HeaderValue::from_str(&content_type).is_err() {
        diags.push(Diagnostic::error(
            format!("{at}/content_type"),
            "`content_type` is not a valid header value",
        ));
        ok = false;
    }
    ok.then_some(Mock {
        status: mock.status,
        headers,
        content_type,
        body,
    })
}

/// Some specs document one endpoint several times under path keys that differ only by a query or fragment
/// (`PUT /files/{id}#lock`, `GET /pet/{id}?streaming`): alternative request shapes of the same endpoint. When such
/// a variant goes where its twin goes, the first plain one serves the route and the variant is dropped with a
/// warning; if their targets differ, the conflict stays an error for [`check_routes`] to report.
fn merge_variants<'a>(operations: Vec<CheckedOperation<'a>>, diags: &mut Diagnostics) -> Vec<CheckedOperation<'a>> {
    let is_variant =
        |op: &CheckedOperation<'_>| template::routed_part(&op.parsed.template).len() != op.parsed.template.len();
    let mut kept: Vec<CheckedOperation<'a>> = Vec::new();
    // Plain operations first, so a variant gives way to its plain twin wherever they sit in the document.
    let (plain, variants): (Vec<_>, Vec<_>) = operations.into_iter().partition(|op| !is_variant(op));
    for op in plain.into_iter().chain(variants) {
        let twin = kept
            .iter()
            .find(|k| k.route == op.route && k.parsed.method == op.parsed.method && k.target == op.target);
        match twin {
            Some(twin) if is_variant(&op) => diags.push(
                Diagnostic::warning(
                    &op.parsed.pointer,
                    format!(
                        "{} {} is the same endpoint as {} {}; the gateway routes it once, with the parameters of `{}`",
                        op.parsed.method, op.parsed.template, twin.parsed.method, twin.parsed.template, twin.id
                    ),
                )
                .related(twin.parsed.pointer.clone(), "served by this operation"),
            ),
            _ => kept.push(op),
        }
    }
    // Back to document order: the output follows the spec.
    kept.sort_by_key(|op| op.order);
    kept
}

/// Two operations with one method on templates that match the same requests, and routes the router refuses.
fn check_routes(operations: &[CheckedOperation<'_>], diags: &mut Diagnostics) {
    let mut by_route: BTreeMap<(&str, &str), &CheckedOperation<'_>> = BTreeMap::new();
    for op in operations {
        let key = (op.route.as_str(), op.parsed.method);
        if let Some(first) = by_route.get(&key) {
            diags.push(
                Diagnostic::error(
                    &op.parsed.pointer,
                    format!(
                        "{} {} matches the same requests as {} {}",
                        op.parsed.method, op.parsed.template, first.parsed.method, first.parsed.template
                    ),
                )
                .related(first.parsed.pointer.clone(), "the other operation")
                .help(
                    "leave one out of the gateway with `x-gateway: { skip: true }` on it, or give them distinct paths",
                ),
            );
            continue;
        }
        by_route.insert(key, op);
    }
    let mut router = matchit::Router::new();
    let mut pointers: HashMap<&str, &str> = HashMap::new();
    for op in operations {
        if pointers.contains_key(op.route.as_str()) {
            continue;
        }
        match router.insert(op.route.as_str(), ()) {
            Ok(()) => {
                pointers.insert(op.route.as_str(), op.parsed.path_pointer.as_str());
            }
            Err(matchit::InsertError::Conflict { with }) => {
                let other = pointers.get(with.as_str()).copied().unwrap_or("");
                let other_template = operations
                    .iter()
                    .find(|o| o.route == with)
                    .map_or(with.clone(), |o| o.parsed.template.clone());
                diags.push(
                    Diagnostic::error(
                        &op.parsed.path_pointer,
                        format!("path `{}` overlaps `{other_template}`: the router cannot tell their requests apart", op.parsed.template),
                    )
                    .related(other.to_owned(), "the overlapping path")
                    .help("leave the operations of one path out with `x-gateway: { skip: true }` on its path item, or give the paths distinct literal segments"),
                );
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    &op.parsed.path_pointer,
                    format!("path `{}` cannot be routed: {e}", op.parsed.template),
                ));
            }
        }
    }
}

/// API-wide cache sizes from the top level.
fn cache_settings(spec: &ParsedSpec) -> CacheSettings {
    let root = spec.root.cache.as_ref();
    CacheSettings {
        capacity: root.and_then(|c| c.capacity).map_or(DEFAULT_CACHE_CAPACITY, |s| s.0),
        max_entry: root.and_then(|c| c.max_entry).map_or(DEFAULT_CACHE_MAX_ENTRY, |s| s.0),
    }
}

/// The effective cache policy of an operation: each setting from the operation, else its path item, else the
/// top level. Checks the key against the declared parameters and the cache-safety rule for identified callers.
fn check_cache(spec: &ParsedSpec, op: &ParsedOperation, diags: &mut Diagnostics) -> Option<CachePolicy> {
    let levels: Vec<(String, &CacheExt)> = [
        op.op_ext
            .as_ref()
            .and_then(|(at, e)| e.cache.as_ref().map(|c| (format!("{at}/cache"), c))),
        op.path_ext
            .as_ref()
            .and_then(|(at, e)| e.cache.as_ref().map(|c| (format!("{at}/cache"), c))),
        spec.root.cache.as_ref().map(|c| (String::from("/x-gateway/cache"), c)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // API-wide sizes belong to the top level only.
    for (at, c) in levels.iter().filter(|(at, _)| !at.starts_with("/x-gateway")) {
        for (key, set) in [("capacity", c.capacity.is_some()), ("max_entry", c.max_entry.is_some())] {
            if set {
                diags.push(
                    Diagnostic::error(format!("{at}/{key}"), format!("`cache.{key}` is API-wide")).help(format!(
                        "set it under the top-level `x-gateway: {{ cache: {{ {key}: ... }} }}`"
                    )),
                );
            }
        }
    }
    // The first level that sets a field wins, with the pointer where it is written.
    fn pick<'c, T>(
        levels: &'c [(String, &'c CacheExt)],
        field: impl Fn(&'c CacheExt) -> Option<&'c T>,
    ) -> Option<(&'c str, &'c T)> {
        levels.iter().find_map(|(at, c)| field(c).map(|v| (at.as_str(), v)))
    }
    let ttl = pick(&levels, |c| c.ttl.as_ref()).map_or(Duration::ZERO, |(_, t)| t.0);
    if ttl.is_zero() {
        return None;
    }
    let mut ok = true;

    let mut key = Vec::new();
    if let Some((at, entries)) = pick(&levels, |c| c.key.as_ref()) {
        for (i, entry) in entries.iter().enumerate() {
            match cache_key_part(op, entry) {
                Ok(Some(part)) => key.push(part),
                Ok(None) => {}
                Err(d) => {
                    diags.push(d.relocate(format!("{at}/key/{i}")));
                    ok = false;
                }
            }
        }
    }

    let statuses = match pick(&levels, |c| c.statuses.as_ref()) {
        Some((at, statuses)) => {
            for (i, status) in statuses.iter().enumerate() {
                if !(100..=599).contains(status) {
                    diags.push(Diagnostic::error(
                        format!("{at}/statuses/{i}"),
                        format!("{status} is not an HTTP status code"),
                    ));
                    ok = false;
                }
            }
            statuses.clone()
        }
        None => vec![200],
    };

    let methods = match pick(&levels, |c| c.methods.as_ref()) {
        Some((at, methods)) => {
            let mut out = Vec::new();
            for (i, m) in methods.iter().enumerate() {
                let upper = m.to_ascii_uppercase();
                if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&upper.as_str()) {
                    diags.push(
                        Diagnostic::error(
                            format!("{at}/methods/{i}"),
                            format!("`{m}` is not a method that can be cached"),
                        )
                        .help("use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
                    );
                    ok = false;
                }
                out.push(upper);
            }
            out
        }
        None => vec![String::from("GET"), String::from("HEAD")],
    };
    if !methods.iter().any(|m| m == op.method) {
        diags.push(
            Diagnostic::warning(
                &op.pointer,
                format!(
                    "{} {} has a cache TTL, but {} is not among the cached methods ({}); it is not cached",
                    op.method,
                    op.template,
                    op.method,
                    methods.join(", ")
                ),
            )
            .help(format!(
                "add `methods: [{}]` to its cache settings to cache it",
                op.method
            )),
        );
        return None;
    }

    let invalidate = match pick(&levels, |c| c.invalidate.as_ref()).map(|(_, i)| *i) {
        None | Some(ext::Invalidate::None) => Invalidate::None,
        Some(ext::Invalidate::Any) => Invalidate::Any,
        Some(ext::Invalidate::ApiKey) => Invalidate::ApiKey,
    };

    // One tenant must never be served another tenant's cached data.
    let shared = pick(&levels, |c| c.shared.as_ref()).is_some_and(|(_, s)| *s);
    let identified = key
        .iter()
        .any(|k| matches!(k, CacheKeyPart::ApiKey | CacheKeyPart::JwtClaim(_)));
    if requires_identity(spec, op) && !identified && !shared {
        let at = levels.first().map_or_else(|| op.pointer.clone(), |(at, _)| at.clone());
        diags.push(
            Diagnostic::error(at, format!("{} {} requires a caller identity (`security`), but its cache key does not hold one: one caller could be served another's cached response", op.method, op.template))
                .help("add `context.api_key` (or a JWT claim such as `jwt.claims.sub`) to `cache.key`, or set `cache.shared: true` if every caller may see the same answer"),
        );
        ok = false;
    }
    ok.then_some(CachePolicy {
        ttl,
        key,
        statuses,
        methods,
        invalidate,
    })
}

/// Whether the operation's effective `security` asks for any credential.
fn requires_identity(spec: &ParsedSpec, op: &ParsedOperation) -> bool {
    let requirements = op.operation.security.as_ref().or(spec.openapi.security.as_ref());
    requirements.is_some_and(|reqs| reqs.iter().any(|r| !r.is_empty()))
}

/// One `cache.key` entry; `Ok(None)` for entries that add nothing (path parameters are always in the key).
fn cache_key_part(op: &ParsedOperation, entry: &str) -> Result<Option<CacheKeyPart>, Box<Diagnostic>> {
    let declared = |location: &str, name: &str, case_insensitive: bool| {
        op.params.iter().any(|(_, p)| {
            location_name(p) == location
                && if case_insensitive {
                    p.parameter_data_ref().name.eq_ignore_ascii_case(name)
                } else {
                    p.parameter_data_ref().name == name
                }
        })
    };
    let names_of = |location: &str| -> Vec<&str> {
        op.params
            .iter()
            .filter(|(_, p)| location_name(p) == location)
            .map(|(_, p)| p.parameter_data_ref().name.as_str())
            .collect()
    };
    let undeclared = |location: &str, name: &str| {
        let known = names_of(location);
        let d = Diagnostic::error(
            "",
            format!(
                "cache key `{entry}` names no declared {location} parameter of {} {}",
                op.method, op.template
            ),
        );
        match did_you_mean(name, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{location}.{best}`?")),
            None => d.help(format!(
                "declare `{name}` under the operation's `parameters:` with `in: {location}`, or remove it from the key"
            )),
        }
    };
    let qualified = template::qualify(entry).map_err(|e| Box::new(Diagnostic::error("", e)))?;
    let part = match qualified {
        (Namespace::Query, name) if declared("query", name, false) => Some(CacheKeyPart::Query(name.to_owned())),
        (Namespace::Query, name) => return Err(Box::new(undeclared("query", name))),
        (Namespace::Header, name) if declared("header", name, true) => {
            Some(CacheKeyPart::Header(name.to_ascii_lowercase()))
        }
        (Namespace::Header, name) => return Err(Box::new(undeclared("header", name))),
        (Namespace::Context, "api_key") => Some(CacheKeyPart::ApiKey),
        (Namespace::Context, other) => {
            return Err(Box::new(
                Diagnostic::error("", format!("`context.{other}` is not a request context value"))
                    .help("the context value for caching is `context.api_key`"),
            ));
        }
        (Namespace::JwtClaims, claim) => Some(CacheKeyPart::JwtClaim(claim.to_owned())),
        // Path parameters are always in the key; naming one adds nothing.
        (Namespace::Path, name) if entry.starts_with("path.") && declared("path", name, false) => None,
        (Namespace::Path, name) if entry.starts_with("path.") => return Err(Box::new(undeclared("path", name))),
        (Namespace::Path | Namespace::Stage, _) => {
            return Err(Box::new(
                Diagnostic::error("", format!("cache key `{entry}` is not a request value"))
                    .help("write `query.NAME`, `header.NAME`, `context.api_key` or `jwt.claims.NAME`"),
            ));
        }
    };
    Ok(part)
}

/// A token bucket's figures; `per` is refused where it makes no sense (a plan's bucket is per key).
fn check_throttle(t: &ThrottleExt, at: &str, per_allowed: bool, diags: &mut Diagnostics) -> Option<Throttle> {
    let mut ok = true;
    if t.rate == 0 {
        diags.push(
            Diagnostic::error(format!("{at}/rate"), "`rate` must be at least 1 request a second")
                .help("to refuse every request, leave the operation out with `skip: true`"),
        );
        ok = false;
    }
    let burst = t.burst.unwrap_or(t.rate);
    if t.burst == Some(0) {
        diags.push(Diagnostic::error(format!("{at}/burst"), "`burst` must be at least 1"));
        ok = false;
    }
    if t.per.is_some() && !per_allowed {
        diags.push(
            Diagnostic::error(format!("{at}/per"), "a usage plan's throttle is per API key already")
                .help("remove `per`"),
        );
        ok = false;
    }
    ok.then_some(Throttle {
        rate: t.rate,
        burst: burst.max(1),
        per_ip: t.per == Some(ext::ThrottlePer::Ip),
    })
}

fn check_usage_plans(spec: &ParsedSpec, diags: &mut Diagnostics) -> Vec<UsagePlan> {
    let mut plans = Vec::new();
    for (name, plan) in &spec.root.usage_plans {
        let at = format!("/x-gateway/usage_plans/{}", crate::locate::escape_segment(name));
        if !valid_upstream_name(name) {
            diags.push(
                Diagnostic::error(&at, format!("plan name `{name}` is not a plain name"))
                    .help("use letters, digits, `-`, `_` and `.`: key files refer to it"),
            );
        }
        let throttle = plan
            .throttle
            .as_ref()
            .and_then(|t| check_throttle(t, &format!("{at}/throttle"), false, diags));
        let quota = plan.quota.as_ref().and_then(|q| {
            if q.limit == 0 {
                diags.push(Diagnostic::error(
                    format!("{at}/quota/limit"),
                    "a quota `limit` must be at least 1",
                ));
                return None;
            }
            let period = match q.period {
                ext::QuotaPeriodExt::Day => QuotaPeriod::Day,
                ext::QuotaPeriodExt::Week => QuotaPeriod::Week,
                ext::QuotaPeriodExt::Month => QuotaPeriod::Month,
            };
            Some((q.limit, period))
        });
        plans.push(UsagePlan {
            name: name.clone(),
            throttle,
            quota,
        });
    }
    plans
}

/// The operation's bucket: its own `throttle`, else its path item's (the top-level one is API-wide, not a default).
fn op_throttle(op: &ParsedOperation, diags: &mut Diagnostics) -> Option<Throttle> {
    let (at, t) = inherited(op, "throttle", |e| e.throttle.as_ref())?;
    check_throttle(t, &at, true, diags)
}

/// `plans:` on the operation or its path item: names of defined usage plans.
fn check_op_plans(op: &ParsedOperation, plans: &[UsagePlan], diags: &mut Diagnostics) -> Vec<usize> {
    let Some((at, names)) = inherited(op, "plans", |e| e.plans.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match plans.iter().position(|p| &p.name == name) {
            Some(index) => out.push(index),
            None => {
                let mut d = Diagnostic::error(format!("{at}/{i}"), format!("usage plan `{name}` is not defined"));
                d = match did_you_mean(name, plans.iter().map(|p| p.name.as_str())) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.help("define it under the top-level `x-gateway: { usage_plans: { NAME: { ... } } }`"),
                };
                diags.push(d);
            }
        }
    }
    out
}

/// The operation's effective `security` as API key schemes. Schemes the gateway cannot check yet (http, oauth2,
/// openIdConnect) get one warning each, and requirements using them are left to the upstream; an empty
/// requirement (`{}`) makes the operation open.
fn check_security(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    unenforced: &mut std::collections::HashSet<String>,
    diags: &mut Diagnostics,
) -> Vec<Vec<ApiKeyScheme>> {
    let (at, requirements) = match (&op.operation.security, &spec.openapi.security) {
        (Some(own), _) => (format!("{}/security", op.pointer), own),
        (None, Some(global)) => (String::from("/security"), global),
        (None, None) => return Vec::new(),
    };
    if requirements.iter().any(indexmap::IndexMap::is_empty) {
        return Vec::new();
    }
    let schemes = spec.openapi.components.as_ref().map(|c| &c.security_schemes);
    let mut alternatives = Vec::new();
    for (i, requirement) in requirements.iter().enumerate() {
        let mut all = Vec::new();
        let mut enforceable = true;
        for name in requirement.keys() {
            let scheme = schemes.and_then(|s| s.get(name));
            let scheme = match scheme {
                Some(openapiv3::ReferenceOr::Item(scheme)) => scheme,
                Some(openapiv3::ReferenceOr::Reference { .. }) => {
                    diags.push(
                        Diagnostic::error(
                            format!("{at}/{i}/{}", crate::locate::escape_segment(name)),
                            format!("security scheme `{name}` is a `$ref`, which is not supported here"),
                        )
                        .help("define the scheme inline under `components.securitySchemes`"),
                    );
                    enforceable = false;
                    continue;
                }
                None => {
                    let known: Vec<&str> = schemes
                        .map(|s| s.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut d = Diagnostic::error(
                        format!("{at}/{i}/{}", crate::locate::escape_segment(name)),
                        format!("security scheme `{name}` is not defined"),
                    );
                    d = match did_you_mean(name, known.iter().copied()) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => d.help(format!("define it under `components.securitySchemes.{name}`")),
                    };
                    diags.push(d);
                    enforceable = false;
                    continue;
                }
            };
            match scheme {
                openapiv3::SecurityScheme::APIKey {
                    location,
                    name: key_name,
                    ..
                } => all.push(ApiKeyScheme {
                    scheme: name.clone(),
                    location: match location {
                        openapiv3::APIKeyLocation::Header => KeyLocation::Header,
                        openapiv3::APIKeyLocation::Query => KeyLocation::Query,
                        openapiv3::APIKeyLocation::Cookie => KeyLocation::Cookie,
                    },
                    name: key_name.clone(),
                }),
                other => {
                    enforceable = false;
                    if unenforced.insert(name.clone()) {
                        let kind = match other {
                            openapiv3::SecurityScheme::HTTP { scheme, .. } => format!("http {scheme}"),
                            openapiv3::SecurityScheme::OAuth2 { .. } => String::from("oauth2"),
                            openapiv3::SecurityScheme::OpenIDConnect { .. } => String::from("openIdConnect"),
                            openapiv3::SecurityScheme::APIKey { .. } => String::from("apiKey"),
                        };
                        diags.push(
                            Diagnostic::warning(format!("/components/securitySchemes/{}", crate::locate::escape_segment(name)), format!("security scheme `{name}` ({kind}) is not checked by the gateway; requests carry their credentials to the upstream, which must check them"))
                                .help("the gateway checks `apiKey` schemes today; JWT bearer tokens arrive with JWT auth"),
                        );
                    }
                }
            }
        }
        if enforceable && !all.is_empty() {
            alternatives.push(all);
        }
    }
    alternatives
}
