//! `transform:` — header and query edits, jq body filters and status mapping, checked against the operation.
//!
//! Each part (`request.headers`, `request.query`, `request.body`, `response.status`, `response.headers`,
//! `response.body`) is taken from the nearest level that sets it: the operation, its path item, the top level.
//! Every placeholder must name something the operation has: a path parameter of its template, a declared query
//! parameter, a declared or standard header, or a context value. Filters are parsed and compiled as the runtime
//! will, and an error in one is reported at its line and column inside the filter.

use openapiv3::Parameter;

use super::Tables;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{CacheKeyPart, Edits, Placeholder, TemplatePart, Transform};
use crate::parse::ext::{EditsExt, TransformExt};
use crate::parse::{ParsedOperation, ParsedSpec};
use crate::template::{self, Namespace, Piece};

/// The context values a transform template may hold: the `context.` ones gateway responses have too.
fn context_values() -> impl Iterator<Item = (&'static str, &'static Placeholder)> + Clone {
    super::responses::PLACEHOLDERS
        .iter()
        .filter_map(|(name, p)| Some((name.strip_prefix("context.")?, p)))
}

/// Headers the gateway frames or manages itself: a transform may not touch them.
pub(super) const MANAGED: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-request-id",
];

/// Request headers `{header.X}` may read without the spec declaring them as parameters.
pub(super) const STANDARD_HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "authorization",
    "cache-control",
    "content-type",
    "cookie",
    "forwarded",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "origin",
    "referer",
    "user-agent",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// What a template of this operation may name.
struct Names<'a> {
    root: &'a crate::parse::ext::RootExt,
    path: &'a [String],
    query: Vec<&'a str>,
    headers: Vec<String>,
}

/// What templates of `op` may name.
fn names<'a>(spec: &'a ParsedSpec, op: &'a ParsedOperation, path_params: &'a [String]) -> Names<'a> {
    Names {
        root: &spec.root,
        path: path_params,
        query: declared_query(op),
        headers: declared_headers(op),
    }
}

/// The query parameters `op` declares.
pub(super) fn declared_query(op: &ParsedOperation) -> Vec<&str> {
    op.params
        .iter()
        .filter(|(_, p)| matches!(p, Parameter::Query { .. }))
        .map(|(_, p)| p.parameter_data_ref().name.as_str())
        .collect()
}

/// The header parameters `op` declares (lower case), and the standard request headers.
pub(super) fn declared_headers(op: &ParsedOperation) -> Vec<String> {
    op.params
        .iter()
        .filter(|(_, p)| matches!(p, Parameter::Header { .. }))
        .map(|(_, p)| p.parameter_data_ref().name.to_ascii_lowercase())
        .collect()
}

/// The operation's transforms, `None` when it has none.
pub(super) fn check_transform(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    path_params: &[String],
    tables: &mut Tables,
    diags: &mut Diagnostics,
) -> Option<Transform> {
    let levels: Vec<(String, &TransformExt)> = [&op.op_ext, &op.path_ext]
        .into_iter()
        .flatten()
        .filter_map(|(at, ext)| ext.transform.as_ref().map(|t| (format!("{at}/transform"), t)))
        .chain(
            spec.root
                .transform
                .as_ref()
                .map(|t| ("/x-gateway/transform".to_owned(), t)),
        )
        .collect();
    if levels.is_empty() {
        return None;
    }
    // The nearest level's value of one part, with its pointer.
    fn nearest<'t, T>(
        levels: &[(String, &'t TransformExt)],
        part: &str,
        get: impl Fn(&'t TransformExt) -> Option<T>,
    ) -> Option<(String, T)> {
        levels
            .iter()
            .find_map(|(at, t)| get(t).map(|value| (format!("{at}/{part}"), value)))
    }
    let names = names(spec, op, path_params);
    let mut out = Transform::default();
    if let Some((at, edits)) = nearest(&levels, "request/headers", |t| t.request.as_ref()?.headers.as_ref()) {
        out.request_headers = check_edits(edits, &at, true, &names, diags);
    }
    if let Some((at, edits)) = nearest(&levels, "request/query", |t| t.request.as_ref()?.query.as_ref()) {
        out.request_query = check_edits(edits, &at, false, &names, diags);
    }
    if let Some((at, code)) = nearest(&levels, "request/body", |t| t.request.as_ref()?.body.as_ref()) {
        out.request_body = check_filter(code, &at, tables, diags);
    }
    if let Some((at, map)) = nearest(&levels, "response/status", |t| t.response.as_ref()?.status.as_ref()) {
        for (from, &to) in map {
            let from_code = from.trim().parse::<u16>().ok().filter(|c| (200..=599).contains(c));
            match from_code {
                Some(code) if (200..=599).contains(&to) => out.response_status.push((code, to)),
                _ => diags.push(
                    Diagnostic::error(
                        format!("{at}/{}", crate::locate::escape_segment(from)),
                        format!("`{from}: {to}` does not map a status to a status"),
                    )
                    .help("write target status: status sent, both from 200 to 599, e.g. `404: 410`"),
                ),
            }
        }
    }
    if let Some((at, edits)) = nearest(&levels, "response/headers", |t| t.response.as_ref()?.headers.as_ref()) {
        out.response_headers = check_edits(edits, &at, true, &names, diags);
    }
    if let Some((at, code)) = nearest(&levels, "response/body", |t| t.response.as_ref()?.body.as_ref()) {
        out.response_body = check_filter(code, &at, tables, diags);
    }
    let empty = out.request_headers.is_empty()
        && out.request_query.is_empty()
        && out.request_body.is_none()
        && out.response_status.is_empty()
        && out.response_headers.is_empty()
        && out.response_body.is_none();
    (!empty).then_some(out)
}

/// A cached operation's answers are stored after the response transform and served to later requests: a
/// response header filled from the request (its id, address, key or parameters) would be the first request's,
/// unless the value is part of the cache key.
pub(super) fn warn_per_request_values_cached(
    op: &ParsedOperation,
    transform: &Transform,
    key: &[CacheKeyPart],
    diags: &mut Diagnostics,
) {
    let keyed = |p: &Placeholder| match p {
        Placeholder::ApiKeyName => key.contains(&CacheKeyPart::ApiKey),
        Placeholder::Query(name) => key.contains(&CacheKeyPart::Query(name.clone())),
        Placeholder::Header(name) => key.contains(&CacheKeyPart::Header(name.clone())),
        Placeholder::Claim(name) => key.contains(&CacheKeyPart::JwtClaim(name.clone())),
        _ => false,
    };
    let per_request = |parts: &[TemplatePart]| {
        parts.iter().any(|p| match p {
            TemplatePart::Value(
                v @ (Placeholder::RequestId
                | Placeholder::ClientIp
                | Placeholder::ApiKeyName
                | Placeholder::ClientCertSubject
                | Placeholder::ClientCertSans
                | Placeholder::Query(_)
                | Placeholder::Header(_)
                | Placeholder::Claim(_)),
            ) => !keyed(v),
            _ => false,
        })
    };
    for (name, parts) in &transform.response_headers.set {
        if per_request(parts) {
            diags.push(
                Diagnostic::warning(
                    &op.pointer,
                    format!(
                        "response header `{name}` is filled from the request, but the operation is cached: cache hits \
                         repeat the value of the request that stored the answer"
                    ),
                )
                .help("fill it from path parameters only (they are in the cache key), or turn the cache off"),
            );
        }
    }
}

fn check_edits(edits: &EditsExt, at: &str, headers: bool, names: &Names<'_>, diags: &mut Diagnostics) -> Edits {
    let name = |raw: &str, at: &str, diags: &mut Diagnostics| -> Option<String> {
        if headers {
            if !super::check_header_name(raw, at, diags) {
                return None;
            }
            let lower = raw.to_ascii_lowercase();
            if MANAGED.contains(&lower.as_str()) {
                diags.push(
                    Diagnostic::error(
                        at,
                        format!("`{raw}` is managed by the gateway; a transform cannot change it"),
                    )
                    .help("framing and hop-by-hop headers, `Host` and `X-Request-Id` are set by the gateway itself"),
                );
                return None;
            }
            Some(lower)
        } else if raw.is_empty() {
            diags.push(Diagnostic::error(at, "a query parameter needs a name"));
            None
        } else {
            Some(raw.to_owned())
        }
    };
    let mut out = Edits::default();
    for (i, raw) in edits.remove.iter().enumerate() {
        if let Some(n) = name(raw, &format!("{at}/remove/{i}"), diags) {
            out.remove.push(n);
        }
    }
    for (from, to) in &edits.rename {
        let key_at = format!("{at}/rename/{}", crate::locate::escape_segment(from));
        if let (Some(from), Some(to)) = (name(from, &key_at, diags), name(to, &key_at, diags)) {
            out.rename.push((from, to));
        }
    }
    for (raw, value) in &edits.set {
        let key_at = format!("{at}/set/{}", crate::locate::escape_segment(raw));
        let Some(n) = name(raw, &key_at, diags) else { continue };
        if let Some(parts) = check_template(value, &key_at, headers, names, diags) {
            out.set.push((n, parts));
        }
    }
    out
}

/// A `set` value: literals and placeholders of the request's values.
fn check_template(
    text: &str,
    at: &str,
    header: bool,
    names: &Names<'_>,
    diags: &mut Diagnostics,
) -> Option<Vec<TemplatePart>> {
    let pieces = match template::scan(text) {
        Ok(pieces) => pieces,
        Err(e) => {
            diags.push(
                Diagnostic::error(at, format!("invalid template: {e}"))
                    .help("placeholders are `{path.X}`, `{query.X}`, `{header.X}` or `{context.X}`"),
            );
            return None;
        }
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for piece in pieces {
        match piece {
            Piece::Literal(literal) => {
                if header && http::HeaderValue::from_str(&literal).is_err() {
                    diags.push(Diagnostic::error(
                        at,
                        format!(
                            "`{literal}` cannot be part of a header value (control characters or bytes beyond ASCII)"
                        ),
                    ));
                    ok = false;
                }
                parts.push(TemplatePart::Literal(literal));
            }
            Piece::Placeholder(inner) => match placeholder(&inner, at, names, diags) {
                Some(p) => parts.push(TemplatePart::Value(p)),
                None => ok = false,
            },
        }
    }
    ok.then_some(parts)
}

fn placeholder(inner: &str, at: &str, names: &Names<'_>, diags: &mut Diagnostics) -> Option<Placeholder> {
    let (namespace, name) = match template::qualify(inner) {
        Ok(q) => q,
        Err(e) => {
            diags.push(Diagnostic::error(at, e));
            return None;
        }
    };
    let unknown = |what: &str, candidates: Vec<&str>, help: &str| {
        let mut d = Diagnostic::error(
            at,
            format!("`{{{inner}}}` names {what} `{name}`, which the operation does not declare"),
        );
        d = match did_you_mean(name, candidates.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{{{}.{best}}}`?", namespace.prefix())),
            None => d.help(help.to_owned()),
        };
        d
    };
    match namespace {
        Namespace::Path => match names.path.iter().position(|p| p == name) {
            Some(i) => Some(Placeholder::Path(i)),
            None => {
                let candidates = names.path.iter().map(String::as_str).collect();
                diags.push(unknown(
                    "path parameter",
                    candidates,
                    "path placeholders name parameters of the path template",
                ));
                None
            }
        },
        Namespace::Query => {
            if names.query.contains(&name) {
                Some(Placeholder::Query(name.to_owned()))
            } else {
                diags.push(unknown(
                    "query parameter",
                    names.query.clone(),
                    "declare it under the operation's `parameters` with `in: query`",
                ));
                None
            }
        }
        Namespace::Header => {
            let lower = name.to_ascii_lowercase();
            if names.headers.contains(&lower) || STANDARD_HEADERS.contains(&lower.as_str()) {
                Some(Placeholder::Header(lower))
            } else {
                let candidates = names
                    .headers
                    .iter()
                    .map(String::as_str)
                    .chain(STANDARD_HEADERS.iter().copied())
                    .collect();
                diags.push(unknown(
                    "header",
                    candidates,
                    "declare it under the operation's `parameters` with `in: header`",
                ));
                None
            }
        }
        Namespace::Context => match context_values().find(|(n, _)| *n == name) {
            Some((_, p)) => Some(p.clone()),
            None => {
                let mut d = Diagnostic::error(at, format!("`{{{inner}}}` is not a context value"));
                d = match did_you_mean(name, context_values().map(|(n, _)| n)) {
                    Some(best) => d.help(format!("did you mean `{{context.{best}}}`?")),
                    None => d.help("the context values are request_id, operation_id, client_ip, api_key.name, client_cert.subject and client_cert.sans"),
                };
                diags.push(d);
                None
            }
        },
        Namespace::Stage => {
            super::stages::check_variable(names.root, name, at, diags).then(|| Placeholder::Stage(name.to_owned()))
        }
        Namespace::JwtClaims => claim(name, inner, at, diags),
        Namespace::Error => {
            diags.push(Diagnostic::error(
                at,
                format!("`{{{inner}}}` is only available in gateway responses (`x-gateway.responses`)"),
            ));
            None
        }
    }
}

/// A request value an operation's split is made sticky by (`header.X`, `query.X`, `path.X`, `jwt.claims.X`,
/// `context.client_ip`, `context.api_key.name`): declared by the operation, or a known context value.
pub(super) fn request_source(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    path_params: &[String],
    inner: &str,
    at: &str,
    diags: &mut Diagnostics,
) -> Option<Placeholder> {
    let names = names(spec, op, path_params);
    match placeholder(inner, at, &names, diags)? {
        p @ (Placeholder::Path(_)
        | Placeholder::Query(_)
        | Placeholder::Header(_)
        | Placeholder::Claim(_)
        | Placeholder::ClientIp
        | Placeholder::ApiKeyName
        | Placeholder::ClientCertSubject) => Some(p),
        _ => {
            diags.push(
                Diagnostic::error(at, format!("`{inner}` does not tell callers apart"))
                    .help("stick by a request value: `header.NAME`, `query.NAME`, `path.NAME`, `jwt.claims.NAME`, `context.client_ip` or `context.api_key.name`"),
            );
            None
        }
    }
}

/// `{jwt.claims.X}`: a verified claim, empty for a caller without a token or a token without the claim.
pub(super) fn claim(name: &str, inner: &str, at: &str, diags: &mut Diagnostics) -> Option<Placeholder> {
    if name.is_empty() || name.split('.').any(str::is_empty) {
        diags.push(
            Diagnostic::error(at, format!("`{{{inner}}}` names no claim"))
                .help("name a claim, e.g. `{jwt.claims.sub}`, or a nested one with dots"),
        );
        return None;
    }
    Some(Placeholder::Claim(name.to_owned()))
}

/// A jq filter: parsed and compiled now, its errors at their line and column inside the filter.
fn check_filter(code: &str, at: &str, tables: &mut Tables, diags: &mut Diagnostics) -> Option<usize> {
    match crate::jq::check_filter(code) {
        Ok(()) => Some(tables.filter(code)),
        Err(errors) => {
            for error in errors {
                diags.push(
                    Diagnostic::error(at, format!("jq filter: {}", error.message))
                        .at_offset(error.offset)
                        .help("the filter sees the body as `.` and the request as `$path`, `$query`, `$header` and `$context`"),
                );
            }
            None
        }
    }
}
