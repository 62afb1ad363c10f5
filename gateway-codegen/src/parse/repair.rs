//! Repairs for harmless deviations that published specs commonly contain and `openapiv3` refuses.
//!
//! Each repair is narrow, keeps the author's intent, and is reported as a warning at its pointer, so a user sees
//! what was read differently from what was written. Anything not listed here stays an error.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::sources::PointerMap;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::{escape_segment, unescape_segment};
use crate::template;

/// How forgiving the repairs are.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leniency {
    /// Duplicate `operationId`s get a numeric suffix (a warning each) instead of being an error.
    pub duplicate_ids: bool,
}

/// Applies every repair to the raw document; what a repair removes from a list is recorded in `map`. The
/// diagnostics are at pointers of the document as it was before the repairs.
pub fn repair(document: &mut Value, leniency: Leniency, map: &mut PointerMap, diags: &mut Diagnostics) {
    strip_callbacks(document);
    if leniency.duplicate_ids {
        rename_duplicate_ids(document, diags);
    }
    repair_servers(document.get_mut("servers"), "/servers", diags);
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (template, item) in paths.iter_mut() {
            let base = format!("/paths/{}", escape_segment(template));
            repair_param_list(item.get_mut("parameters"), &format!("{base}/parameters"), diags);
            repair_servers(item.get_mut("servers"), &format!("{base}/servers"), diags);
            if let Some(item) = item.as_object_mut() {
                for (method, op) in item.iter_mut() {
                    repair_param_list(op.get_mut("parameters"), &format!("{base}/{method}/parameters"), diags);
                    repair_servers(op.get_mut("servers"), &format!("{base}/{method}/servers"), diags);
                    if METHODS.contains(&method.as_str()) {
                        repair_responses(op, template, method, &format!("{base}/{method}"), diags);
                    }
                }
            }
        }
    }
    if let Some(params) = document
        .pointer_mut("/components/parameters")
        .and_then(Value::as_object_mut)
    {
        for (name, param) in params.iter_mut() {
            repair_param(
                param,
                &format!("/components/parameters/{}", escape_segment(name)),
                diags,
            );
        }
    }
    repair_integer_bounds(document, &mut String::new(), diags);
    // Last: it removes list elements, and the repairs above point into the lists as written.
    repair_path_params(document, map, diags);
}

/// The keys of a path item that are operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// OpenAPI 3.0 requires `responses` in every operation, but hand-written specs often leave it out (or empty), and a
/// gateway forwards whatever the upstream answers without reading it: an empty `responses` is read instead.
fn repair_responses(op: &mut Value, template: &str, method: &str, at: &str, diags: &mut Diagnostics) {
    let Some(op) = op.as_object_mut() else { return };
    let missing = match op.get("responses") {
        None => "has no `responses`",
        Some(Value::Null) => "has an empty `responses`",
        Some(_) => return,
    };
    diags.push(
        Diagnostic::warning(
            at,
            format!(
                "{} {template} {missing}, which OpenAPI requires; read as `responses: {{}}`",
                method.to_ascii_uppercase()
            ),
        )
        .help("the gateway does not need them, but other tools do: add e.g. `responses: { default: { description: OK } }`"),
    );
    op.insert(String::from("responses"), Value::Object(serde_json::Map::new()));
}

/// Server variables are strings; YAML reads `default: 80` and `enum: [80, 443]` as numbers.
fn repair_servers(servers: Option<&mut Value>, base: &str, diags: &mut Diagnostics) {
    let Some(servers) = servers.and_then(Value::as_array_mut) else {
        return;
    };
    for (i, server) in servers.iter_mut().enumerate() {
        let Some(vars) = server.get_mut("variables").and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, var) in vars.iter_mut() {
            let at = format!("{base}/{i}/variables/{}", escape_segment(name));
            let mut fixed = false;
            if let Some(default) = var.get_mut("default") {
                fixed |= stringify(default);
            }
            if let Some(values) = var.get_mut("enum").and_then(Value::as_array_mut) {
                for v in values {
                    fixed |= stringify(v);
                }
            }
            if fixed {
                diags.push(
                    Diagnostic::warning(
                        at,
                        format!("server variable `{name}` has values that are not strings; read as strings"),
                    )
                    .help("quote them"),
                );
            }
        }
    }
}

fn stringify(value: &mut Value) -> bool {
    if value.is_number() || value.is_boolean() {
        *value = Value::String(value.to_string());
        return true;
    }
    false
}

fn repair_param_list(list: Option<&mut Value>, base: &str, diags: &mut Diagnostics) {
    if let Some(list) = list.and_then(Value::as_array_mut) {
        for (i, param) in list.iter_mut().enumerate() {
            repair_param(param, &format!("{base}/{i}"), diags);
        }
    }
}

fn repair_param(param: &mut Value, at: &str, diags: &mut Diagnostics) {
    let Some(param) = param.as_object_mut() else { return };
    // YAML reads `name: 1` as a number; a parameter's name is always a string.
    if let Some(name) = param.get_mut("name")
        && (name.is_number() || name.is_boolean())
    {
        let text = name.to_string();
        diags.push(
            Diagnostic::warning(
                format!("{at}/name"),
                format!("parameter name {text} is not a string; read as \"{text}\""),
            )
            .help(format!("quote it: `name: \"{text}\"`")),
        );
        *name = Value::String(text);
    }
    // Header parameters only have `style: simple` (path: simple, label, matrix); other styles are spec errors.
    let allowed: &[&str] = match param.get("in").and_then(Value::as_str) {
        Some("header") => &["simple"],
        Some("path") => &["simple", "label", "matrix"],
        _ => return,
    };
    if let Some(style) = param.get("style").and_then(Value::as_str)
        && !allowed.contains(&style)
    {
        diags.push(
            Diagnostic::warning(
                format!("{at}/style"),
                format!(
                    "`style: {style}` is not valid for this parameter's location; read as `style: {}`",
                    allowed[0]
                ),
            )
            .help(format!("allowed styles here: {}", allowed.join(", "))),
        );
        param.remove("style");
    }
}

/// `minimum`/`maximum`/`multipleOf` of an integer schema must be integers that fit in 64 bits; a bound written as
/// `-9223372036854776000` (i64::MIN rounded by a float printer) is dropped rather than refused.
fn repair_integer_bounds(value: &mut Value, at: &mut String, diags: &mut Diagnostics) {
    match value {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("integer") {
                for key in ["minimum", "maximum", "multipleOf"] {
                    let bad = map.get(key).is_some_and(|v| v.is_number() && v.as_i64().is_none());
                    if bad {
                        let written = map.get(key).map(Value::to_string).unwrap_or_default();
                        diags.push(Diagnostic::warning(
                            format!("{at}/{key}"),
                            format!("integer bound `{key}: {written}` is not a 64-bit integer; ignored"),
                        ));
                        map.remove(key);
                    }
                }
            }
            for (key, child) in map.iter_mut() {
                let len = at.len();
                at.push('/');
                at.push_str(&escape_segment(key));
                repair_integer_bounds(child, at, diags);
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                repair_integer_bounds(child, at, diags);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// Callbacks describe requests the API makes, which a gateway neither serves nor checks; `openapiv3` refuses valid
/// forms of them (a `$ref` to `#/components/callbacks/...` under an operation's `callbacks`), so the typed view
/// goes without them. The published document keeps them as written.
fn strip_callbacks(document: &mut Value) {
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for method in METHODS {
                if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                    op.shift_remove("callbacks");
                }
            }
        }
    }
    if let Some(components) = document.get_mut("components").and_then(Value::as_object_mut) {
        components.shift_remove("callbacks");
    }
}

/// A parameter of a list, as far as path templates care: its name and location, through a `$ref` to
/// `#/components/parameters/...`.
fn param_key(param: &Value, components: &Map<String, Value>) -> Option<(String, String)> {
    let mut param = param;
    // A chain of references (`Id` → `ZoneId` → the parameter), cut where it loops.
    for _ in 0..32 {
        let Some(reference) = param.get("$ref").and_then(Value::as_str) else {
            let name = match param.get("name")? {
                Value::String(name) => name.clone(),
                other => other.to_string(),
            };
            return Some((name, param.get("in")?.as_str()?.to_owned()));
        };
        let name = reference.strip_prefix("#/components/parameters/")?;
        param = components.get(&unescape_segment(name))?;
    }
    None
}

/// Whether a parameter list has an entry this repair cannot read (a `$ref` that does not resolve): then what it
/// declares is unknown, and nothing is added for it (the reference is reported later).
fn has_unreadable(list: Option<&Value>, components: &Map<String, Value>) -> bool {
    list.and_then(Value::as_array)
        .is_some_and(|list| list.iter().any(|p| param_key(p, components).is_none()))
}

/// The placeholders of a path key (`/a/{id}/b.{ext}` → `id`, `ext`), in order.
fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template::routed_part(template);
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        names.push(rest[open + 1..open + close].to_owned());
        rest = &rest[open + close + 1..];
    }
    names
}

/// Path templates and declared path parameters that disagree, where the gateway can still be exact: a placeholder
/// with no declared parameter is read as a required string path parameter (the request can only carry a string
/// there), and a declared path parameter the template lacks is dropped (no request can carry it). Each is a
/// warning naming the operation and the fix.
fn repair_path_params(document: &mut Value, map: &mut PointerMap, diags: &mut Diagnostics) {
    let components = document
        .pointer("/components/parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        if item.contains_key("$ref") {
            continue;
        }
        let base = format!("/paths/{}", escape_segment(path));
        let wanted = placeholders(path);
        let shown = template::routed_part(path);
        drop_unused(
            item.get_mut("parameters"),
            &format!("{base}/parameters"),
            shown,
            &wanted,
            &components,
            map,
            diags,
        );
        let shared: Vec<String> = declared_path_names(item.get("parameters"), &components);
        let item_params = item.get("parameters").cloned();
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            let at = format!("{base}/{method}");
            drop_unused(
                op.get_mut("parameters"),
                &format!("{at}/parameters"),
                shown,
                &wanted,
                &components,
                map,
                diags,
            );
            let mut declared = shared.clone();
            declared.extend(declared_path_names(op.get("parameters"), &components));
            let mut missing: Vec<&String> = wanted.iter().filter(|name| !declared.contains(name)).collect();
            let mut seen = std::collections::HashSet::new();
            missing.retain(|name| seen.insert(*name));
            let unreadable =
                has_unreadable(item_params.as_ref(), &components) || has_unreadable(op.get("parameters"), &components);
            if missing.is_empty() || unreadable {
                continue;
            }
            let list = op.entry("parameters").or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                continue;
            }
            for name in missing {
                diags.push(
                    Diagnostic::warning(
                        at.clone(),
                        format!(
                            "path placeholder `{{{name}}}` of {} {shown} has no declared path parameter; read as a required string path parameter",
                            method.to_ascii_uppercase()
                        ),
                    )
                    .help(format!(
                        "declare it in the spec (or an overlay) under `parameters:` with `name: {name}`, `in: path`, `required: true` and a schema"
                    )),
                );
                if let Some(list) = list.as_array_mut() {
                    list.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
                }
            }
        }
    }
}

/// The names of the path parameters of a parameter list.
fn declared_path_names(list: Option<&Value>, components: &Map<String, Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| param_key(p, components))
                .filter(|(_, location)| location == "path")
                .map(|(name, _)| name)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the path parameters of `list` (at `at`) that the template (`shown`, with placeholders `wanted`) lacks.
fn drop_unused(
    list: Option<&mut Value>,
    at: &str,
    shown: &str,
    wanted: &[String],
    components: &Map<String, Value>,
    map: &mut PointerMap,
    diags: &mut Diagnostics,
) {
    let Some(list) = list.and_then(Value::as_array_mut) else {
        return;
    };
    let unused: Vec<(usize, String)> = list
        .iter()
        .enumerate()
        .filter_map(|(i, p)| param_key(p, components).map(|key| (i, key)))
        .filter(|(_, (name, location))| location == "path" && !wanted.contains(name))
        .map(|(i, (name, _))| (i, name))
        .collect();
    for (i, name) in unused.iter().rev() {
        let mut d = Diagnostic::warning(
            format!("{at}/{i}"),
            format!("path parameter `{name}` does not appear in the path template `{shown}`; dropped"),
        );
        d = match did_you_mean(name, wanted.iter().map(String::as_str)) {
            Some(best) => d.help(format!(
                "did you mean `{best}`? rename it in the spec (or an overlay), or add `{{{name}}}` to the path"
            )),
            None => d.help(format!(
                "remove it from the spec (or with an overlay), or add `{{{name}}}` to the path"
            )),
        };
        diags.push(d);
        map.removed_element(at, *i, list.len());
        list.remove(*i);
    }
}

/// A path key must start with `/`; `openapiv3` silently ignores one that does not (`pets/{id}`), which would
/// leave its operations out of the gateway without a word. Such a key is read with a `/` in front, with a warning;
/// if that path is also written with the `/`, the key stays as it is and the warning says it is not served.
pub fn slash_paths(document: &mut Value, map: &mut PointerMap, diags: &mut Diagnostics) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let bad: Vec<String> = paths
        .keys()
        .filter(|k| !k.starts_with('/') && !k.starts_with("x-"))
        .cloned()
        .collect();
    if bad.is_empty() {
        return;
    }
    let written: std::collections::HashSet<String> = paths.keys().cloned().collect();
    let old = std::mem::take(paths);
    for (key, item) in old {
        if !bad.contains(&key) {
            paths.insert(key, item);
            continue;
        }
        let at = format!("/paths/{}", escape_segment(&key));
        let fixed = format!("/{key}");
        if written.contains(&fixed) {
            diags.push(
                Diagnostic::warning(
                    at,
                    format!(
                        "path `{key}` does not start with `/`, and `{fixed}` is also in the spec: `{key}` is not served"
                    ),
                )
                .help("remove one of the two, or merge them, in the spec (or with an overlay)"),
            );
            paths.insert(key, item);
            continue;
        }
        diags.push(
            Diagnostic::warning(
                at.clone(),
                format!("path `{key}` does not start with `/`; read as `{fixed}`"),
            )
            .help(format!(
                "write it as `{fixed}` in the spec (or rename it with an overlay)"
            )),
        );
        map.moved(format!("/paths/{}", escape_segment(&fixed)), at);
        paths.insert(fixed, item);
    }
}

/// Gives every `operationId` used before a numeric suffix (`_2`, `_3`, ...), with a warning each.
fn rename_duplicate_ids(document: &mut Value, diags: &mut Diagnostics) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
    for item in paths.values() {
        for method in METHODS {
            if let Some(id) = item
                .get(method)
                .and_then(|op| op.get("operationId"))
                .and_then(Value::as_str)
            {
                taken.insert(id.to_owned());
            }
        }
    }
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            let Some(id) = item.get_mut(method).and_then(|op| op.get_mut("operationId")) else {
                continue;
            };
            let Some(text) = id.as_str().map(str::to_owned) else {
                continue;
            };
            let count = seen.entry(text.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                continue;
            }
            let mut n = *count;
            let renamed = loop {
                let candidate = format!("{text}_{n}");
                if !taken.contains(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            diags.push(
                Diagnostic::warning(
                    format!("/paths/{}/{method}/operationId", escape_segment(path)),
                    format!(
                        "operationId `{text}` of {} {} is used before; read as `{renamed}` (--lenient)",
                        method.to_ascii_uppercase(),
                        template::routed_part(path)
                    ),
                )
                .help("operationIds must be unique: rename one in the spec, or with an overlay"),
            );
            taken.insert(renamed.clone());
            *id = Value::String(renamed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::sources::Sources;

    fn run(mut document: Value, leniency: Leniency) -> (Value, Sources, Diagnostics) {
        let mut map = PointerMap::default();
        let mut diags = Diagnostics::default();
        repair(&mut document, leniency, &mut map, &mut diags);
        let mut sources = Sources::default();
        sources.push(map);
        (document, sources, diags)
    }

    #[test]
    fn a_placeholder_without_a_parameter_becomes_a_string_path_parameter() {
        let (doc, _, diags) = run(
            json!({"paths": {"/certificates/{certificate_id}": {"get": {"operationId": "get", "responses": {}}}}}),
            Leniency::default(),
        );
        assert_eq!(
            doc["paths"]["/certificates/{certificate_id}"]["get"]["parameters"],
            json!([{"name": "certificate_id", "in": "path", "required": true, "schema": {"type": "string"}}])
        );
        let [d] = diags.items() else {
            panic!("{:?}", diags.items())
        };
        assert!(
            d.message
                .contains("`{certificate_id}` of GET /certificates/{certificate_id}"),
            "{}",
            d.message
        );
        assert_eq!(d.pointer, "/paths/~1certificates~1{certificate_id}/get");
    }

    #[test]
    fn a_path_level_or_referenced_parameter_counts_as_declared() {
        let (doc, _, diags) = run(
            json!({
                "components": {"parameters": {"Id": {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}}},
                "paths": {"/a/{id}/{b}": {
                    "parameters": [{"$ref": "#/components/parameters/Id"}],
                    "get": {"parameters": [{"name": "b", "in": "path", "required": true, "schema": {"type": "integer"}}], "responses": {}}
                }}
            }),
            Leniency::default(),
        );
        assert!(diags.items().is_empty(), "{:?}", diags.items());
        assert_eq!(
            doc["paths"]["/a/{id}/{b}"]["get"]["parameters"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn a_declared_path_parameter_the_template_lacks_is_dropped_and_later_ones_keep_their_lines() {
        let (doc, sources, diags) = run(
            json!({"paths": {"/pets/{petId}": {"get": {"parameters": [
                {"name": "petid", "in": "path", "required": true, "schema": {"type": "string"}},
                {"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}},
                {"name": "q", "in": "query", "schema": {"type": "integer"}}
            ], "responses": {}}}}}),
            Leniency::default(),
        );
        let params = &doc["paths"]["/pets/{petId}"]["get"]["parameters"];
        assert_eq!(params.as_array().map(Vec::len), Some(2));
        assert_eq!(params[0]["name"], "petId");
        let [d] = diags.items() else {
            panic!("{:?}", diags.items())
        };
        assert_eq!(d.pointer, "/paths/~1pets~1{petId}/get/parameters/0");
        assert!(
            d.message.contains("`petid`") && d.message.contains("dropped"),
            "{}",
            d.message
        );
        assert!(d.help.as_deref().is_some_and(|h| h.contains("did you mean `petId`")));
        assert_eq!(
            sources.origin("/paths/~1pets~1{petId}/get/parameters/1/schema").1,
            "/paths/~1pets~1{petId}/get/parameters/2/schema"
        );
    }

    #[test]
    fn duplicate_operation_ids_get_a_suffix_only_when_lenient() {
        let spec = json!({"paths": {
            "/a": {"get": {"operationId": "list", "responses": {}}},
            "/b": {"get": {"operationId": "list", "responses": {}}, "post": {"operationId": "list_2", "responses": {}}},
            "/c": {"get": {"operationId": "list", "responses": {}}}
        }});
        let (doc, _, diags) = run(spec.clone(), Leniency::default());
        assert_eq!(doc, spec);
        assert!(diags.items().is_empty());
        let (doc, _, diags) = run(spec, Leniency { duplicate_ids: true });
        assert_eq!(doc["paths"]["/b"]["get"]["operationId"], "list_3");
        assert_eq!(doc["paths"]["/c"]["get"]["operationId"], "list_4");
        assert_eq!(diags.items().len(), 2);
        assert!(
            diags.items()[0].message.contains("read as `list_3`"),
            "{}",
            diags.items()[0].message
        );
    }

    #[test]
    fn a_path_key_without_a_leading_slash_is_read_with_one() {
        let mut document = json!({"paths": {"/a": {}, "pets/{id}": {"get": {"responses": {}}}, "x-note": 1}});
        let mut map = PointerMap::default();
        let mut diags = Diagnostics::default();
        slash_paths(&mut document, &mut map, &mut diags);
        let keys: Vec<&String> = document["paths"]
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["/a", "/pets/{id}", "x-note"]);
        let [d] = diags.items() else {
            panic!("{:?}", diags.items())
        };
        assert!(d.message.contains("read as `/pets/{id}`"), "{}", d.message);
        let mut sources = Sources::default();
        sources.push(map);
        assert_eq!(sources.origin("/paths/~1pets~1{id}/get").1, "/paths/pets~1{id}/get");
    }

    #[test]
    fn a_path_key_without_a_slash_beside_the_same_path_with_one_is_left_out_in_either_order() {
        for paths in [
            json!({"pets": {"get": {"responses": {}}}, "/pets": {"post": {"responses": {}}}}),
            json!({"/pets": {"post": {"responses": {}}}, "pets": {"get": {"responses": {}}}}),
        ] {
            let mut document = json!({ "paths": paths });
            let mut diags = Diagnostics::default();
            slash_paths(&mut document, &mut PointerMap::default(), &mut diags);
            assert!(document["paths"]["/pets"].get("post").is_some(), "{document}");
            assert!(document["paths"]["/pets"].get("get").is_none(), "{document}");
            let [d] = diags.items() else {
                panic!("{:?}", diags.items())
            };
            assert!(d.message.contains("is not served"), "{}", d.message);
        }
    }

    #[test]
    fn parameters_reached_through_a_chain_of_references_count_and_placeholders_are_added_once() {
        let (doc, _, diags) = run(
            json!({
                "components": {"parameters": {
                    "Id": {"$ref": "#/components/parameters/ZoneId"},
                    "ZoneId": {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}
                }},
                "paths": {
                    "/z/{id}": {"parameters": [{"$ref": "#/components/parameters/Id"}], "get": {"responses": {}}},
                    "/twice/{x}/{x}": {"get": {"responses": {}}},
                    "/unknown/{y}": {"get": {"parameters": [{"$ref": "#/components/parameters/Nope"}], "responses": {}}}
                }
            }),
            Leniency::default(),
        );
        assert!(doc["paths"]["/z/{id}"]["get"].get("parameters").is_none(), "{doc}");
        assert_eq!(
            doc["paths"]["/twice/{x}/{x}"]["get"]["parameters"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(
            doc["paths"]["/unknown/{y}"]["get"]["parameters"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert_eq!(diags.items().len(), 1, "{:?}", diags.items());
    }

    #[test]
    fn a_repair_after_a_dropped_parameter_points_at_its_own_parameter() {
        let mut document = json!({"paths": {"/a": {"get": {"parameters": [
            {"name": "gone", "in": "path", "required": true, "schema": {"type": "string"}},
            {"name": "X-Key", "in": "header", "style": "form", "schema": {"type": "string"}}
        ], "responses": {}}}}});
        let mut diags = Diagnostics::default();
        repair(
            &mut document,
            Leniency::default(),
            &mut PointerMap::default(),
            &mut diags,
        );
        assert!(
            diags
                .items()
                .iter()
                .any(|d| d.pointer == "/paths/~1a/get/parameters/1/style"),
            "{:?}",
            diags.items()
        );
    }

    #[test]
    fn callbacks_are_not_read_even_as_references() {
        let (doc, _, diags) = run(
            json!({
                "components": {"callbacks": {"Hook": {"{$request.body#/url}": {"post": {"responses": {}}}}}},
                "paths": {"/s": {"post": {"callbacks": {"hook": "#/components/callbacks/Hook"}, "responses": {}}}}
            }),
            Leniency::default(),
        );
        assert!(diags.items().is_empty());
        assert!(doc["paths"]["/s"]["post"].get("callbacks").is_none());
        assert!(doc.get("components").and_then(|c| c.get("callbacks")).is_none());
    }
}
