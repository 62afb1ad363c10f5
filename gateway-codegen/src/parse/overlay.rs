//! OpenAPI Overlays (Overlay Specification 1.0): changes to a spec the user does not own, kept in a file of their
//! own.
//!
//! An overlay is a list of actions applied in order to the document as read, before anything else looks at it.
//! Each action's `target` is a JSONPath (RFC 9535, by `serde_json_path`) that selects nodes; `update` merges a
//! value into each (objects key by key, recursively; other values replace; into an array, the value is appended,
//! or each element of an array value), `remove: true` deletes them. What an action writes is recorded in a
//! [`PointerMap`], so an error in it later is shown in the overlay file, at the line of the action.
//!
//! Problems with the overlay itself (not an overlay, a bad JSONPath, an update that cannot merge) are errors in the
//! overlay file; an action whose target matches nothing is a warning there (the spec it was written for changed).

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::sources::PointerMap;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::locate::{escape_segment, unescape_segment};

/// One overlay file, read.
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a> {
    /// Its index among the spec's files ([`SPEC`] is the spec; overlays are 1, 2, ...).
    pub file: usize,
    /// Its file name, for messages.
    pub name: &'a str,
    /// The overlay document.
    pub document: &'a Value,
}

/// Applies `overlay` to `document`, recording in `map` the nodes it writes and removes. Diagnostics about the
/// overlay are pinned to its file. Returns false when the overlay is not one (nothing was applied).
pub fn apply(document: &mut Value, overlay: Overlay<'_>, map: &mut PointerMap, diags: &mut Diagnostics) -> bool {
    let Some(actions) = check_overlay(overlay, diags) else {
        return false;
    };
    for (i, action) in actions.iter().enumerate() {
        apply_action(document, overlay, i, action, map, diags);
    }
    true
}

/// The overlay's actions, if it is an overlay document of a version this reads.
fn check_overlay<'a>(overlay: Overlay<'a>, diags: &mut Diagnostics) -> Option<&'a [Value]> {
    let error = |at: &str, message: String| Diagnostic::error(at, message).in_file(overlay.file);
    let Some(root) = overlay.document.as_object() else {
        diags.push(
            error(
                "",
                format!("{} is not an overlay: its top level is not an object", overlay.name),
            )
            .help("an overlay starts with `overlay: 1.0.0`, `info:` and `actions:`"),
        );
        return None;
    };
    match root.get("overlay").and_then(Value::as_str) {
        Some(v) if v.starts_with("1.0") || v.starts_with("1.1") => {}
        Some(v) => {
            diags.push(
                error("/overlay", format!("unsupported Overlay Specification version `{v}`"))
                    .help("this generator reads Overlay 1.0 documents (`overlay: 1.0.0`)"),
            );
            return None;
        }
        None => {
            diags.push(
                error("", format!("{} has no `overlay` version field", overlay.name))
                    .help("start the overlay with `overlay: 1.0.0`"),
            );
            return None;
        }
    }
    let info = root.get("info");
    if !info
        .is_some_and(|i| i.get("title").is_some_and(Value::is_string) && i.get("version").is_some_and(Value::is_string))
    {
        diags.push(
            Diagnostic::warning(
                if info.is_some() { "/info" } else { "" },
                "the overlay's `info` should have a `title` and a `version` (the Overlay Specification requires them)",
            )
            .in_file(overlay.file)
            .help("add `info: { title: ..., version: 1.0.0 }`"),
        );
    }
    match root.get("actions") {
        Some(Value::Array(actions)) if !actions.is_empty() => Some(actions),
        Some(Value::Array(_)) => {
            diags.push(
                Diagnostic::warning("/actions", "the overlay has no actions: it changes nothing").in_file(overlay.file),
            );
            None
        }
        Some(_) => {
            diags.push(
                error("/actions", String::from("`actions` must be a list of actions")).help(
                    "write `actions:` followed by `- target: $.paths['/pets'].get` and `update:` or `remove: true`",
                ),
            );
            None
        }
        None => {
            diags.push(
                error("", format!("{} has no `actions`", overlay.name))
                    .help("add `actions:` with a `target` and an `update` or `remove: true` each"),
            );
            None
        }
    }
}

fn apply_action(
    document: &mut Value,
    overlay: Overlay<'_>,
    i: usize,
    action: &Value,
    map: &mut PointerMap,
    diags: &mut Diagnostics,
) {
    let at = format!("/actions/{i}");
    let error = |pointer: String, message: String| Diagnostic::error(pointer, message).in_file(overlay.file);
    let Some(action) = action.as_object() else {
        diags.push(
            error(at, String::from("an action must be an object"))
                .help("write `- target: ...` with `update:` or `remove: true`"),
        );
        return;
    };
    for key in action.keys() {
        if !matches!(key.as_str(), "target" | "description" | "update" | "remove") && !key.starts_with("x-") {
            let at = format!("{at}/{}", escape_segment(key));
            diags.push(if key == "copy" {
                // Ignoring it would make a gateway other than the one the overlay describes.
                Diagnostic::error(at, "`copy` (Overlay 1.1) is not supported")
                    .in_file(overlay.file)
                    .help("write the value to copy with `update`")
            } else {
                Diagnostic::warning(at, format!("unknown action key `{key}`; ignored"))
                    .in_file(overlay.file)
                    .help("an action has `target`, `description`, `update` and `remove`")
            });
        }
    }
    let Some(target) = action.get("target").and_then(Value::as_str) else {
        diags.push(
            error(
                format!("{at}/target"),
                String::from("the action has no `target` (a JSONPath string)"),
            )
            .help("for example `target: \"$.paths['/pets'].get\"`"),
        );
        return;
    };
    let path = match JsonPath::parse(target) {
        Ok(path) => path,
        Err(e) => {
            diags.push(
                error(format!("{at}/target"), format!("`{target}` is not a JSONPath: {e}"))
                    .at_offset(target.get(..e.position()).map_or(0, |s| s.chars().count()))
                    .help("JSONPath (RFC 9535) starts with `$`; a name with anything but letters, digits and `_` goes in brackets: `$['x-gateway']`, `$.paths['/pets/{id}'].get`"),
            );
            return;
        }
    };
    let remove = match action.get("remove") {
        None | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => {
            diags.push(error(
                format!("{at}/remove"),
                String::from("`remove` must be `true` or `false`"),
            ));
            return;
        }
    };
    let update = action.get("update");
    if remove && update.is_some() {
        diags.push(
            Diagnostic::warning(
                format!("{at}/update"),
                "this action removes its targets; its `update` is not applied",
            )
            .in_file(overlay.file)
            .help("split it into two actions, or drop one of `update` and `remove`"),
        );
    }
    if !remove && update.is_none() {
        diags.push(
            Diagnostic::warning(
                at.clone(),
                "this action has neither `update` nor `remove: true`: it does nothing",
            )
            .in_file(overlay.file),
        );
        return;
    }
    let targets: Vec<String> = path
        .query_located(document)
        .locations()
        .map(|location| location.to_json_pointer())
        .collect();
    if targets.is_empty() {
        diags.push(
            Diagnostic::warning(
                format!("{at}/target"),
                format!("`{target}` matches nothing in the spec; the action does nothing"),
            )
            .in_file(overlay.file)
            .help("the spec may have changed since the overlay was written: check the path against it"),
        );
        return;
    }
    if remove {
        // Deepest and last first, so that removing a node does not move (or take along) one still to be removed:
        // selectors may return nodes in any order, reversed or twice (`$.tags[2,0]`, `$.tags[::-1]`, `$.tags[0,0]`).
        let mut targets = targets;
        targets.sort_by(|a, b| pointer_order(b, a));
        targets.dedup();
        for pointer in &targets {
            if pointer.is_empty() {
                diags.push(
                    error(
                        format!("{at}/target"),
                        String::from("the whole document cannot be removed"),
                    )
                    .help("target the nodes to remove, e.g. `$.paths['/internal']`"),
                );
                continue;
            }
            remove_node(document, pointer, map);
        }
        return;
    }
    let Some(update) = update else { return };
    for pointer in &targets {
        let Some(node) = document.pointer_mut(pointer) else {
            continue;
        };
        if let Err(kind) = merge(node, update, pointer, &format!("{at}/update"), overlay.file, map) {
            diags.push(if kind == OBJECT {
                error(
                    format!("{at}/update"),
                    format!(
                        "`{target}` selects an object (at `{pointer}`): the update must be an object to merge into it"
                    ),
                )
                .help("write the keys to set: `update: { summary: ... }`")
            } else {
                error(
                    format!("{at}/target"),
                    format!("`{target}` selects {kind} at `{pointer}`, which an update cannot merge into"),
                )
                .help("target the object that holds it and update that key instead")
            });
        }
    }
}

/// Document order of two pointers, array indexes compared as numbers; an ancestor before its descendants.
fn pointer_order(a: &str, b: &str) -> std::cmp::Ordering {
    let mut a = a.split('/');
    let mut b = b.split('/');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<usize>(), y.parse::<usize>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if order.is_ne() {
                    return order;
                }
            }
        }
    }
}

/// What [`merge`] says when the target is an object and the update is not.
const OBJECT: &str = "an object";

/// Removes the node at `pointer` (which exists, or was removed with a parent already) from its parent.
fn remove_node(document: &mut Value, pointer: &str, map: &mut PointerMap) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let key = unescape_segment(last);
    match document.pointer_mut(parent) {
        Some(Value::Object(object)) => {
            let removed = object.shift_remove(&key);
            if removed.is_some() {
                map.removed(pointer);
            }
        }
        Some(Value::Array(items)) => {
            if let Ok(index) = key.parse::<usize>()
                && index < items.len()
            {
                map.removed_element(parent, index, items.len());
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// Merges `update` (written at `source` in the overlay `file`) into `target` (at `pointer`); the error names what
/// `target` is when it is neither an object nor an array.
fn merge(
    target: &mut Value,
    update: &Value,
    pointer: &str,
    source: &str,
    file: usize,
    map: &mut PointerMap,
) -> Result<(), &'static str> {
    match target {
        Value::Object(object) => match update {
            Value::Object(fields) => {
                merge_object(object, fields, pointer, source, file, map);
                Ok(())
            }
            _ => Err(OBJECT),
        },
        Value::Array(items) => {
            let appended: Vec<(&Value, String)> = match update {
                Value::Array(values) => values
                    .iter()
                    .enumerate()
                    .map(|(j, v)| (v, format!("{source}/{j}")))
                    .collect(),
                value => vec![(value, source.to_owned())],
            };
            for (value, from) in appended {
                map.written_in(format!("{pointer}/{}", items.len()), file, from);
                items.push(value.clone());
            }
            Ok(())
        }
        Value::String(_) => Err("a string"),
        Value::Number(_) => Err("a number"),
        Value::Bool(_) => Err("a boolean"),
        Value::Null => Err("null"),
    }
}

fn merge_object(
    object: &mut Map<String, Value>,
    fields: &Map<String, Value>,
    pointer: &str,
    source: &str,
    file: usize,
    map: &mut PointerMap,
) {
    for (key, value) in fields {
        let here = format!("{pointer}/{}", escape_segment(key));
        let from = format!("{source}/{}", escape_segment(key));
        match (object.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(more)) => merge_object(inner, more, &here, &from, file, map),
            _ => {
                object.insert(key.clone(), value.clone());
                map.written_in(here, file, from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parse::sources::{SPEC, Sources};

    fn run(document: &mut Value, overlay: &Value) -> (Sources, Diagnostics) {
        let mut map = PointerMap::default();
        let mut diags = Diagnostics::default();
        apply(
            document,
            Overlay {
                file: 1,
                name: "o.yaml",
                document: overlay,
            },
            &mut map,
            &mut diags,
        );
        let mut sources = Sources::default();
        sources.push(map);
        (sources, diags)
    }

    fn spec() -> Value {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "paths": {
                "/pets": {"get": {"responses": {}}, "post": {"responses": {}}},
                "/internal": {"get": {"responses": {}}}
            }
        })
    }

    fn overlay(actions: Value) -> Value {
        json!({"overlay": "1.0.0", "info": {"title": "o", "version": "1"}, "actions": actions})
    }

    #[test]
    fn update_merges_objects_deeply_and_records_where_it_wrote() {
        let mut doc = spec();
        let (sources, diags) = run(
            &mut doc,
            &overlay(
                json!([{"target": "$.paths['/pets'].get", "update": {"x-gateway": {"cache": {"ttl": "5s"}}, "responses": {"200": {"description": "ok"}}}}]),
            ),
        );
        assert!(diags.items().is_empty(), "{:?}", diags.items());
        assert_eq!(doc["paths"]["/pets"]["get"]["x-gateway"]["cache"]["ttl"], "5s");
        assert_eq!(doc["paths"]["/pets"]["get"]["responses"]["200"]["description"], "ok");
        assert_eq!(
            sources.origin("/paths/~1pets/get/x-gateway/cache/ttl"),
            (1, String::from("/actions/0/update/x-gateway/cache/ttl"))
        );
        assert_eq!(
            sources.origin("/paths/~1pets/get/responses/200"),
            (1, String::from("/actions/0/update/responses/200"))
        );
        assert_eq!(
            sources.origin("/paths/~1pets/post"),
            (SPEC, String::from("/paths/~1pets/post"))
        );
    }

    #[test]
    fn wildcard_targets_update_every_match() {
        let mut doc = spec();
        let (_, diags) = run(
            &mut doc,
            &overlay(json!([{"target": "$.paths.*.get", "update": {"x-gateway": {"skip": true}}}])),
        );
        assert!(!diags.has_errors());
        assert_eq!(doc["paths"]["/pets"]["get"]["x-gateway"]["skip"], true);
        assert_eq!(doc["paths"]["/internal"]["get"]["x-gateway"]["skip"], true);
        assert!(doc["paths"]["/pets"]["post"].get("x-gateway").is_none());
    }

    #[test]
    fn filters_select_operations_by_their_fields() {
        let mut doc = spec();
        doc["paths"]["/pets"]["post"]["deprecated"] = json!(true);
        let (_, diags) = run(
            &mut doc,
            &overlay(json!([{"target": "$.paths.*[?@.deprecated == true]", "update": {"x-gateway": {"skip": true}}}])),
        );
        assert!(diags.items().is_empty(), "{:?}", diags.items());
        assert_eq!(doc["paths"]["/pets"]["post"]["x-gateway"]["skip"], true);
        assert!(doc["paths"]["/pets"]["get"].get("x-gateway").is_none());
    }

    #[test]
    fn remove_deletes_targets_and_later_array_elements_keep_their_lines() {
        let mut doc = spec();
        let (sources, diags) = run(
            &mut doc,
            &overlay(json!([
                {"target": "$.paths['/internal']", "remove": true},
                {"target": "$.tags[?@.name == 'a' || @.name == 'b']", "remove": true}
            ])),
        );
        assert!(diags.items().is_empty(), "{:?}", diags.items());
        assert!(doc["paths"].get("/internal").is_none());
        assert_eq!(doc["tags"], json!([{"name": "c"}]));
        assert_eq!(sources.origin("/tags/0/name"), (SPEC, String::from("/tags/2/name")));
    }

    #[test]
    fn removes_are_exact_whatever_order_the_selector_returns() {
        for (path, left) in [
            ("$.tags[2,0]", json!([{"name": "b"}])),
            ("$.tags[::-1]", json!([])),
            ("$.tags[0,0]", json!([{"name": "b"}, {"name": "c"}])),
        ] {
            let mut doc = spec();
            let (_, diags) = run(&mut doc, &overlay(json!([{"target": path, "remove": true}])));
            assert!(!diags.has_errors(), "{path}: {:?}", diags.items());
            assert_eq!(doc["tags"], left, "{path}");
        }
    }

    #[test]
    fn copy_is_refused_rather_than_ignored() {
        let mut doc = spec();
        let (_, diags) = run(&mut doc, &overlay(json!([{"target": "$.info", "copy": "$.paths"}])));
        assert!(
            diags
                .items()
                .iter()
                .any(|d| d.severity == crate::Severity::Error && d.message.contains("`copy`"))
        );
    }

    #[test]
    fn actions_apply_in_order() {
        let mut doc = spec();
        let (sources, _) = run(
            &mut doc,
            &overlay(json!([
                {"target": "$.info", "update": {"x-gateway": {"name": "first"}}},
                {"target": "$.info.x-gateway", "remove": true},
                {"target": "$.info", "update": {"x-gateway": {"name": "second"}}}
            ])),
        );
        assert_eq!(doc["info"]["x-gateway"], json!({"name": "second"}));
        assert_eq!(
            sources.origin("/info/x-gateway/name"),
            (1, String::from("/actions/2/update/x-gateway/name"))
        );
    }

    #[test]
    fn update_of_an_array_appends() {
        let mut doc = spec();
        let (sources, _) = run(
            &mut doc,
            &overlay(json!([{"target": "$.tags", "update": [{"name": "d"}, {"name": "e"}]}])),
        );
        assert_eq!(doc["tags"][4]["name"], "e");
        assert_eq!(
            sources.origin("/tags/3/name"),
            (1, String::from("/actions/0/update/0/name"))
        );
    }

    #[test]
    fn a_target_that_matches_nothing_is_a_warning_at_the_action() {
        let mut doc = spec();
        let before = doc.clone();
        let (_, diags) = run(
            &mut doc,
            &overlay(json!([{"target": "$.paths['/gone'].get", "update": {"summary": "x"}}])),
        );
        assert_eq!(doc, before);
        let [d] = diags.items() else {
            panic!("{:?}", diags.items())
        };
        assert_eq!(d.severity, crate::Severity::Warning);
        assert_eq!(d.pointer, "/actions/0/target");
        assert_eq!(d.file, Some(1));
        assert!(d.message.contains("matches nothing"), "{}", d.message);
    }

    #[test]
    fn bad_overlays_are_errors_in_the_overlay_file() {
        let mut doc = spec();
        let (_, diags) = run(&mut doc, &overlay(json!([{"target": "paths", "update": {}}])));
        assert!(
            diags
                .items()
                .iter()
                .any(|d| d.pointer == "/actions/0/target" && d.file == Some(1) && d.message.contains("not a JSONPath"))
        );
        let (_, diags) = run(
            &mut doc,
            &overlay(json!([{"target": "$.info.title", "update": {"a": 1}}])),
        );
        assert!(
            diags.items().iter().any(|d| d.message.contains("selects a string")),
            "{:?}",
            diags.items()
        );
        let (_, diags) = run(&mut doc, &json!({"openapi": "3.0.3"}));
        assert!(diags.items().iter().any(|d| d.message.contains("no `overlay` version")));
        let (_, diags) = run(&mut doc, &overlay(json!([{"target": "$", "remove": true}])));
        assert!(diags.has_errors());
    }
}
