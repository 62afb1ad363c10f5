//! Routes: path templates to router paths, path parameters against templates, and operations that match the
//! same requests.

use std::collections::{BTreeMap, HashMap};

use openapiv3::Parameter;

use super::{CheckedOperation, location_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
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

/// The route, the path parameter names, and the per-parameter segment suffixes of a template.
pub(super) fn route_parts(
    pieces: &[Piece],
    at: &str,
    diags: &mut Diagnostics,
) -> Option<(String, Vec<String>, Vec<String>)> {
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
/// warning; if their targets differ, the conflict stays an error for [`check_routes`] to report.
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

/// Two operations with one method on templates that match the same requests, and routes the router refuses.
pub(super) fn check_routes(operations: &[CheckedOperation<'_>], diags: &mut Diagnostics) {
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
