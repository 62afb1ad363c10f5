//! Targets: where each operation goes (an upstream with an optional rewrite, a mock, a function, or a store),
//! inherited from the operation, its path item or the top level.

use super::stores::{STORE_KEYS, Stores, check_store_target};
use super::upstreams::{Upstreams, check_url, server_url};
use super::{Context, check_header_name, inherited};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Function, Mock, PathPart, Target};
use crate::parse::ext::{MockExt, TargetExt};
use crate::parse::{ParsedOperation, ParsedSpec};
use crate::template::{self, Namespace, Piece};

/// The effective `target` (operation, else path item, else top level) with the pointer where it is written.
pub(super) fn effective_target<'s>(spec: &'s ParsedSpec, op: &'s ParsedOperation) -> Option<(String, &'s TargetExt)> {
    inherited(op, "target", |e| e.target.as_ref()).or_else(|| {
        spec.root
            .target
            .as_ref()
            .map(|t| (String::from("/x-gateway/target"), t))
    })
}

/// The keys of `target` that choose its kind, those it has first: exactly one is needed.
fn kinds(target: &TargetExt) -> [(&'static str, bool); 5] {
    [
        ("upstream", target.upstream.is_some()),
        ("split", target.split.is_some()),
        ("mock", target.mock.is_some()),
        ("function", target.function.is_some()),
        ("store", target.store.is_some()),
    ]
}

/// `a`, `a or b`, `a, b or c`: each name in backquotes.
fn alternatives(names: &[&str], last: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((only, [])) => only.clone(),
        Some((end, rest)) => format!("{} {last} {end}", rest.join(", ")),
    }
}

pub(super) fn check_target(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    ctx: &Context,
    path_params: &[String],
    upstreams: &mut Upstreams,
    stores: &mut Stores,
    diags: &mut Diagnostics,
) -> Option<Target> {
    if op.ext_failed || spec.root_failed {
        // Which target was meant is unknown; the unreadable extension is already reported.
        return None;
    }
    let Some((at, target)) = effective_target(spec, op) else {
        return implicit_target(op, ctx, path_params, upstreams, diags);
    };
    let kinds = kinds(target);
    let present: Vec<&str> = kinds.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect();
    if target.timeout.is_some() && target.function.is_none() {
        diags.push(
            Diagnostic::error(
                format!("{at}/timeout"),
                "`timeout` bounds a function target; this target has no `function`",
            )
            .help(
                "an upstream's timeout is set on the upstream: `x-gateway: { upstreams: { NAME: { timeout: 10s } } }`",
            ),
        );
        return None;
    }
    if target.sticky.is_some() && target.split.is_none() {
        diags.push(
            Diagnostic::error(
                format!("{at}/sticky"),
                "`sticky` keeps a caller on one side of a `split`; this target has none",
            )
            .help("for one upstream, keep callers on one server with the upstream's `balance: hash(SOURCE)`"),
        );
        return None;
    }
    if target.store.is_none() {
        // A store's settings on another kind of target are a mistake either way: report them with the kind.
        let misplaced = [
            target.table.is_some(),
            target.action.is_some(),
            target.key.is_some(),
            target.filter.is_some(),
            target.id_field.is_some(),
        ];
        for (key, _) in STORE_KEYS.iter().zip(misplaced).filter(|(_, set)| *set) {
            diags.push(
                Diagnostic::error(format!("{at}/{key}"), format!("`{key}` is a setting of store targets")).help(
                    format!("add `store: NAME` to make this a store target, or remove `{key}`"),
                ),
            );
        }
    }
    match present.as_slice() {
        [] => {
            let all: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
            diags.push(
                Diagnostic::error(&at, format!("a target needs {}", alternatives(&all, "or"))).help(
                    "e.g. `target: { upstream: pets }`, `target: { mock: { status: 200, body: { ok: true } } }`, `target: { function: pets::age }` or `target: { store: main, table: pets, action: get, key: \"{path.petId}\" }`",
                ),
            );
            None
        }
        [_, _, ..] => {
            let message = match present.as_slice() {
                [a, b] => format!("a target has both `{a}` and `{b}`"),
                _ => format!("a target has {}", alternatives(&present, "and")),
            };
            diags.push(Diagnostic::error(&at, message).help(
                "keep one: `upstream:` proxies the request, `split:` proxies it to one of several upstreams, `mock:` answers it with a fixed response, `function:` calls a Rust function, `store:` reads or writes a stored item",
            ));
            None
        }
        ["mock"] => {
            let mock = target.mock.as_ref()?;
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
        ["store"] => {
            let name = target.store.as_deref()?;
            check_store_target(spec, op, &at, target, name, path_params, stores, diags)
        }
        ["function"] => {
            let function = target.function.as_deref()?;
            if target.path.is_some() {
                diags.push(
                    Diagnostic::error(
                        format!("{at}/path"),
                        "`path` rewrites an upstream path; a function target has none",
                    )
                    .help("remove `path`"),
                );
                return None;
            }
            check_function(spec, function, target, &at, diags).map(|f| Target::Function(Box::new(f)))
        }
        ["split"] => {
            let sides = target.split.as_deref()?;
            let mut ok = true;
            let mut checked = Vec::with_capacity(sides.len());
            for (i, side) in sides.iter().enumerate() {
                match named_upstream(&side.upstream, &format!("{at}/split/{i}/upstream"), upstreams, diags) {
                    Some(upstream) => checked.push((upstream, side.weight)),
                    None => ok = false,
                }
            }
            if sides.is_empty() || sides.iter().all(|s| s.weight == 0) {
                diags.push(
                    Diagnostic::error(format!("{at}/split"), "the weights of a split add up to zero")
                        .help("give each side a weight, e.g. `- { upstream: pets, weight: 90 }` and `- { upstream: pets-v2, weight: 10 }`"),
                );
                ok = false;
            }
            let sticky = match &target.sticky {
                Some(source) => {
                    let inner = source.trim().trim_start_matches('{').trim_end_matches('}');
                    let found =
                        super::transforms::request_source(spec, op, path_params, inner, &format!("{at}/sticky"), diags);
                    ok &= found.is_some();
                    found
                }
                None => None,
            };
            let path = match &target.path {
                Some(rewrite) => rewrite_path(&spec.root, rewrite, &format!("{at}/path"), path_params, diags)?,
                None => default_path(path_params, &op.template),
            };
            ok.then_some(Target::Split {
                sides: checked,
                sticky,
                path,
            })
        }
        _ => {
            let name = target.upstream.as_deref()?;
            let upstream = named_upstream(name, &format!("{at}/upstream"), upstreams, diags)?;
            let path = match &target.path {
                Some(rewrite) => rewrite_path(&spec.root, rewrite, &format!("{at}/path"), path_params, diags)?,
                None => default_path(path_params, &op.template),
            };
            Some(Target::Upstream { upstream, path })
        }
    }
}

/// The index of the named upstream `name`, or an error at `at`.
fn named_upstream(name: &str, at: &str, upstreams: &Upstreams, diags: &mut Diagnostics) -> Option<usize> {
    let found = upstreams.named(name);
    if found.is_none() {
        let mut d = Diagnostic::error(at, format!("upstream `{name}` is not defined"));
        let known: Vec<&str> = upstreams.names().collect();
        d = match did_you_mean(name, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None if known.is_empty() => d.help(format!(
                "define it under `x-gateway: {{ upstreams: {{ {name}: {{ url: http://... }} }} }}` at the top level"
            )),
            None => d.help(format!("defined upstreams: {}", known.join(", "))),
        };
        diags.push(d);
    }
    found
}

pub(super) fn implicit_target(
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
pub(super) fn default_path(path_params: &[String], template: &str) -> Vec<PathPart> {
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

pub(super) fn rewrite_path(
    root: &crate::parse::ext::RootExt,
    rewrite: &str,
    at: &str,
    path_params: &[String],
    diags: &mut Diagnostics,
) -> Option<Vec<PathPart>> {
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
                Ok((Namespace::Stage, name)) => {
                    if super::stages::check_variable(root, name, at, diags) {
                        parts.push(PathPart::Stage(name.to_owned()));
                    } else {
                        ok = false;
                    }
                }
                Ok((ns, _)) => {
                    diags.push(
                        Diagnostic::error(
                            at,
                            format!(
                                "`{{{placeholder}}}`: {} placeholders are not supported in a rewrite path",
                                ns.prefix()
                            ),
                        )
                        .help("a rewrite path can use the operation's path parameters (`{name}` or `{path.name}`) and stage variables (`{stage.NAME}`)"),
                    );
                    ok = false;
                }
            },
        }
    }
    ok.then_some(parts)
}

/// Function target paths: `module::function`, each segment a Rust identifier.
fn check_function(
    spec: &ParsedSpec,
    path: &str,
    target: &TargetExt,
    at: &str,
    diags: &mut Diagnostics,
) -> Option<Function> {
    let fat = format!("{at}/function");
    let mut ok = true;
    if spec.root.functions.is_none() {
        diags.push(
            Diagnostic::error(&fat, format!("function `{path}` names no crate: the spec has no `x-gateway.functions`"))
                .help("declare the crate at the top level: `x-gateway: { functions: { crate: NAME-functions, path: functions/NAME } }`; `cargo xtask generate` creates it with a stub per function"),
        );
        ok = false;
    }
    let segments: Vec<&str> = path.split("::").collect();
    if let Some(bad) = segments.iter().find(|s| !is_rust_identifier(s)) {
        diags.push(
            Diagnostic::error(
                &fat,
                if bad.is_empty() {
                    format!("`{path}` is not a Rust path: it has an empty segment")
                } else {
                    format!("`{path}` is not a Rust path: `{bad}` is not an identifier")
                },
            )
            .help("name a function of the functions crate by its path, e.g. `pets::age` (module `pets`, `pub async fn age`)"),
        );
        ok = false;
    }
    ok.then(|| Function {
        path: path.to_owned(),
        timeout: target.timeout.map_or(super::DEFAULT_TIMEOUT, |t| t.0),
        request: String::new(),
        response: String::new(),
        glue: String::new(),
        body: None,
        variants: Vec::new(),
    })
}

/// A plain (non-raw) Rust identifier that is not a keyword.
pub(super) fn is_rust_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text != "_"
        && syn::parse_str::<syn::Ident>(text).is_ok()
}

pub(super) fn check_mock(mock: &MockExt, at: &str, diags: &mut Diagnostics) -> Option<Mock> {
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
        if !check_header_name(name, &hat, diags) {
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
