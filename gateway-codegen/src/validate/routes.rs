//! Routes: path templates to router paths, path parameters against templates, and operations that match the
//! same requests.

use std::collections::{BTreeSet, HashMap};

use openapiv3::Parameter;

use super::{CheckedOperation, MergedOperation, location_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Requirement, Target};
use crate::parse::ParsedOperation;
use crate::template::{self, Piece};

/// An id for an operation that has none: `get_pets_petId` for `GET /pets/{petId}`.
pub(super) fn derived_id(op: &ParsedOperation) -> String {
    let mut id = op.method.to_ascii_lowercase();
    for part in op.template.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

/// The route, the path parameter names, and per parameter the literal text after it in its segment, of a template.
///
/// Each segment that holds parameters is one capture of the route, named `p{c}` for the `c`-th such segment, so that
/// templates of one shape have one route whatever their parameters are called. The router matches literal text
/// before a segment's first parameter (`thumbnail.{ext}`, `v{major}.{minor}`) but nothing after a parameter
/// (`{Sid}.json`, `{name}.{ext}`): that text stays out of the route, and the runtime checks it and cuts the capture
/// at it (`gateway-runtime/src/pipeline/path.rs`: from the right, so only a segment's first parameter may contain the
/// literals that follow it). Two parameters with nothing between them cannot be told apart, and are refused.
pub(super) fn route_parts(
    pieces: &[Piece],
    at: &str,
    diags: &mut Diagnostics,
) -> Option<(String, Vec<String>, Vec<String>)> {
    let mut route = String::new();
    let mut names = Vec::new();
    let mut suffixes = Vec::new();
    let text: String = pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(t) => t.clone(),
            Piece::Placeholder(n) => format!("{{{n}}}"),
        })
        .collect();
    let mut captures = 0;
    for (i, segment) in text.split('/').enumerate() {
        if i > 0 {
            route.push('/');
        }
        let seg_pieces = template::scan(segment).unwrap_or_default();
        let Some(first) = seg_pieces.iter().position(|p| matches!(p, Piece::Placeholder(_))) else {
            route.push_str(&template::route_of(&seg_pieces));
            continue;
        };
        if let Some(adjacent) = seg_pieces
            .windows(2)
            .find(|pair| matches!(pair, [Piece::Placeholder(_), Piece::Placeholder(_)]))
        {
            let names: Vec<String> = adjacent
                .iter()
                .map(|p| match p {
                    Piece::Placeholder(n) | Piece::Literal(n) => format!("`{{{n}}}`"),
                })
                .collect();
            diags.push(
                Diagnostic::error(
                    at,
                    format!(
                        "path segment `{segment}` has parameters {} with nothing between them: no request says where one ends",
                        names.join(" and ")
                    ),
                )
                .help("put literal text between them (`{a}-{b}`, `{a}.{b}`), or make them one parameter"),
            );
            return None;
        }
        // The literal before the first parameter is routed; the capture is the rest of the segment.
        route.push_str(&template::route_of(&seg_pieces[..first]));
        route.push_str(&format!("{{p{captures}}}"));
        captures += 1;
        let rest = &seg_pieces[first..];
        for (j, piece) in rest.iter().enumerate() {
            if let Piece::Placeholder(name) = piece {
                names.push(name.clone());
                suffixes.push(match rest.get(j + 1) {
                    Some(Piece::Literal(text)) => text.clone(),
                    _ => String::new(),
                });
            }
        }
    }
    Some((route, names, suffixes))
}

pub(super) fn check_path_params(op: &ParsedOperation, in_template: &[String], diags: &mut Diagnostics) {
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

/// Some specs document one endpoint several times under path keys that differ only by a query or fragment
/// (`PUT /files/{id}#lock`, `GET /pet/{id}?streaming`): alternative request shapes of the same endpoint. When such
/// a variant goes where its twin goes, the first plain one serves the route and the variant is dropped with a
/// warning; if their targets differ, the conflict stays an error for [`merge_same_requests`] to report.
pub(super) fn merge_variants<'a>(
    operations: Vec<CheckedOperation<'a>>,
    diags: &mut Diagnostics,
) -> Vec<CheckedOperation<'a>> {
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

/// Operations with one method on templates of one shape match the same requests: `/zones/{zone_id}/{phase}` and
/// `/zones/{zone_id}/{ruleset_phase}` differ only in what the spec calls the parameter. Published specs have such
/// twins (Cloudflare, Elasticsearch); a router can serve only one of them.
///
/// When they would do the same at the gateway, they are one route: the first in document order serves it (its
/// `operationId` in logs and metrics), the later ones are recorded in its [`CheckedOperation::merged`] and their
/// parameters accepted too (lower builds the union: a request any of them accepts is accepted), with one warning
/// naming them all. "The same" is compared on what the checks made of each operation's `x-gateway` and its path
/// item's — the effective settings, with path parameters by position, so `{phase}` and `{ruleset_phase}` in a
/// rewrite are the same capture — and on its security requirements as a set of alternatives: the target (upstream,
/// upstream path, mock, store call), security, cache, CORS, client addresses, compression, WebSocket, usage plans,
/// throttle, gateway responses, body policy, schema-checked parameters, transforms and response checks. A function
/// target is never shared, as each function takes its own operation's typed request.
///
/// When they differ, it is an error naming what differs and how to choose one. Templates the router reads as one
/// route whose literals after a parameter differ (`/files/{id}` and `/files/{name}.{ext}`, both `/files/{p0}`) are an
/// error too: they do not match the same requests, but the router cannot tell theirs apart.
pub(super) fn merge_same_requests<'a>(
    operations: Vec<CheckedOperation<'a>>,
    diags: &mut Diagnostics,
) -> Vec<CheckedOperation<'a>> {
    let mut kept: Vec<CheckedOperation<'a>> = Vec::with_capacity(operations.len());
    let mut by_route: HashMap<(String, &str), usize> = HashMap::new();
    for op in operations {
        let key = (op.route.clone(), op.parsed.method);
        let Some(&index) = by_route.get(&key) else {
            by_route.insert(key, kept.len());
            kept.push(op);
            continue;
        };
        let first = &mut kept[index];
        if shape(&first.parsed.template) != shape(&op.parsed.template) {
            diags.push(
                Diagnostic::error(
                    &op.parsed.pointer,
                    format!(
                        "{} {} and {} {} are one route to the router (`{}`), which cannot tell their requests apart by the text after a parameter",
                        op.parsed.method, op.parsed.template, first.parsed.method, first.parsed.template, op.route
                    ),
                )
                .related(first.parsed.pointer.clone(), "the other operation")
                .help(choose_help(&op)),
            );
            continue;
        }
        let differences = differences(first, &op);
        if differences.is_empty() {
            first.merged.push(MergedOperation {
                parsed: op.parsed,
                id: op.id,
                path_params: op.path_params,
            });
            continue;
        }
        diags.push(
            Diagnostic::error(
                &op.parsed.pointer,
                format!(
                    "{} {} matches the same requests as {} {}, but the gateway would not do the same with them (they differ in {}): it can serve only one",
                    op.parsed.method,
                    op.parsed.template,
                    first.parsed.method,
                    first.parsed.template,
                    list(&differences)
                ),
            )
            .related(first.parsed.pointer.clone(), "the other operation")
            .help(choose_help(&op)),
        );
    }
    for op in &kept {
        if op.merged.is_empty() {
            continue;
        }
        let mut named = vec![format!("{} {} (`{}`)", op.parsed.method, op.parsed.template, op.id)];
        named.extend(
            op.merged
                .iter()
                .map(|m| format!("{} {} (`{}`)", m.parsed.method, m.parsed.template, m.id)),
        );
        let mut d = Diagnostic::warning(
            &op.parsed.pointer,
            format!(
                "{} match the same requests and would do the same at the gateway: served as one route, by `{}`, accepting the parameters any of them accepts",
                list(&named),
                op.id
            ),
        );
        for m in &op.merged {
            d = d.related(m.parsed.pointer.clone(), format!("also served by `{}`", op.id));
        }
        diags.push(d.help(
            "to serve only one of them with its own parameter checks, leave the others out with `x-gateway: { skip: true }` (in the spec or an overlay)",
        ));
    }
    kept
}

/// A template with its parameters unnamed (`/files/{}.{}`): two templates match the same requests exactly when their
/// shapes are equal.
fn shape(template: &str) -> String {
    template::scan(template::routed_part(template))
        .unwrap_or_default()
        .iter()
        .map(|piece| match piece {
            Piece::Literal(text) => text.as_str(),
            Piece::Placeholder(_) => "{}",
        })
        .collect()
}

/// How to choose between operations the router cannot serve both of, `op` being one that could be left out: with
/// the overlay action that does it, its JSONPath (RFC 9535) written inside a YAML double-quoted string.
fn choose_help(op: &CheckedOperation<'_>) -> String {
    let path = format!(
        "$.paths['{}'].{}",
        op.parsed.template.replace('\\', "\\\\").replace('\'', "\\'"),
        op.parsed.method.to_ascii_lowercase()
    );
    let quoted = path.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "choose the one the gateway serves and leave the others out with `x-gateway: {{ skip: true }}` — in the spec, or in an overlay (`--overlay FILE`), for this one `actions: [{{ target: \"{quoted}\", update: {{ x-gateway: {{ skip: true }} }} }}]` — or give them distinct paths"
    )
}

/// `a`, `a and b`, `a, b and c`.
fn list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

/// What two operations matching the same requests would do differently at the gateway: empty when they can be
/// one route (see [`merge_same_requests`]).
fn differences(a: &CheckedOperation<'_>, b: &CheckedOperation<'_>) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut differ = |same: bool, what: &'static str| {
        if !same {
            out.push(what);
        }
    };
    match (&a.target, &b.target) {
        (Some(Target::Function(_)), _) | (_, Some(Target::Function(_))) => {
            differ(
                false,
                "their function targets, each of which takes its own operation's typed request",
            );
        }
        (Some(Target::Upstream { upstream: ua, path: pa }), Some(Target::Upstream { upstream: ub, path: pb })) => {
            differ(ua == ub, "upstream");
            differ(pa == pb, "upstream path");
        }
        (ta, tb) => differ(ta == tb, "target"),
    }
    differ(security_set(&a.security) == security_set(&b.security), "security");
    differ(a.cache == b.cache, "cache");
    differ(a.cors == b.cors, "CORS");
    differ(a.ip == b.ip, "client addresses (`ip`)");
    differ(a.compression == b.compression, "compression");
    differ(a.websocket == b.websocket, "WebSocket");
    differ(sorted(&a.plans) == sorted(&b.plans), "usage plans");
    differ(a.throttle == b.throttle, "throttle");
    differ(a.responses == b.responses, "gateway responses");
    differ(a.body == b.body, "request body checks");
    differ(a.schema_params == b.schema_params, "schema-checked parameters");
    differ(a.transform == b.transform, "transforms");
    differ(a.responses_check == b.responses_check, "response checks");
    out
}

/// Security alternatives as a set of sets: order and repetition say nothing about who is admitted.
fn security_set(alternatives: &[Vec<Requirement>]) -> BTreeSet<BTreeSet<(usize, BTreeSet<&str>)>> {
    alternatives
        .iter()
        .map(|all| {
            all.iter()
                .map(|r| (r.scheme, r.scopes.iter().map(String::as_str).collect()))
                .collect()
        })
        .collect()
}

fn sorted(items: &[usize]) -> Vec<usize> {
    let mut items = items.to_vec();
    items.sort_unstable();
    items.dedup();
    items
}

/// Routes the router refuses: templates that overlap in a way it cannot order.
pub(super) fn check_routes(operations: &[CheckedOperation<'_>], diags: &mut Diagnostics) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The route, parameters and suffixes of `template`, or the error's message.
    fn parts(template: &str) -> Result<(String, Vec<String>, Vec<String>), String> {
        let pieces = template::scan(template)?;
        let mut diags = Diagnostics::default();
        route_parts(&pieces, "/paths/x", &mut diags)
            .ok_or_else(|| diags.items().first().map_or_else(String::new, |d| d.message.clone()))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn one_parameter_segments_keep_their_routes() {
        assert_eq!(
            parts("/pets/{petId}/photos/{photoId}.jpg"),
            Ok((
                "/pets/{p0}/photos/{p1}".to_owned(),
                strings(&["petId", "photoId"]),
                strings(&["", ".jpg"])
            ))
        );
        assert_eq!(
            parts("/thumbnail.{ext}"),
            Ok(("/thumbnail.{p0}".to_owned(), strings(&["ext"]), strings(&[""])))
        );
        // A prefix and a suffix around one parameter: the prefix is routed, the suffix checked at run time.
        assert_eq!(
            parts("/v{version}.json"),
            Ok(("/v{p0}".to_owned(), strings(&["version"]), strings(&[".json"])))
        );
    }

    #[test]
    fn several_parameters_in_a_segment_are_one_capture_cut_by_their_literals() {
        assert_eq!(
            parts("/search/{versionNumber}/geocode/{query}.{ext}"),
            Ok((
                "/search/{p0}/geocode/{p1}".to_owned(),
                strings(&["versionNumber", "query", "ext"]),
                strings(&["", ".", ""])
            ))
        );
        assert_eq!(
            parts("/api/v{major}.{minor}/items/{id}"),
            Ok((
                "/api/v{p0}/items/{p1}".to_owned(),
                strings(&["major", "minor", "id"]),
                strings(&[".", "", ""])
            ))
        );
        assert_eq!(
            parts("/tiles/{z}-{x}-{y}.png"),
            Ok((
                "/tiles/{p0}".to_owned(),
                strings(&["z", "x", "y"]),
                strings(&["-", "-", ".png"])
            ))
        );
        // Templates of one shape have one route, whatever their parameters are called.
        assert_eq!(
            parts("/files/{a}.{b}").map(|p| p.0),
            parts("/files/{name}.{extension}").map(|p| p.0)
        );
    }

    #[test]
    fn parameters_with_nothing_between_them_are_refused() {
        let message = parts("/x/{a}{b}.json").expect_err("refused");
        assert!(
            message.contains("`{a}` and `{b}` with nothing between them"),
            "{message}"
        );
    }
}
