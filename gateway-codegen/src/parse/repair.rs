//! Repairs for harmless deviations that published specs commonly contain and `openapiv3` refuses.
//!
//! Each repair is narrow, keeps the author's intent, and is reported as a warning at its pointer, so a user sees
//! what was read differently from what was written. Anything not listed here stays an error.

use serde_json::Value;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::locate::escape_segment;

/// Applies every repair to the raw document.
pub fn repair(document: &mut Value, diags: &mut Diagnostics) {
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
