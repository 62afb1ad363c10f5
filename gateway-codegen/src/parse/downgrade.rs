//! Reading an OpenAPI 3.1 document: what differs from 3.0 at the document's level, and its 3.0 view.
//!
//! Natively, as 3.1 says:
//!
//! - the schemas the gateway validates with (request bodies, schema-typed parameters, upstream response checks)
//!   are converted from the document as written, as JSON Schema 2020-12 ([`crate::schema::to_json_schema_2020_12`]):
//!   [`read_3_1`] returns that document for them;
//! - `jsonSchemaDialect` must be the OpenAPI 3.1 dialect or JSON Schema 2020-12: any other is an error, since it
//!   would change what every schema means and the gateway would check requests against something else;
//! - `webhooks` are ignored with a warning saying how many (they are requests the API sends, which pass through no
//!   gateway), and a document with webhooks and no `paths` is an error that says so;
//! - `components/pathItems` and path items that `$ref` them are read by `path_items.rs` (3.0 too).
//!
//! The rest (paths, operations, parameters, servers, and the schemas of typed parameter checks and of function
//! targets' Rust types) is read by `openapiv3`, a 3.0 reader, from a 3.0 view of the document: its schemas (and
//! only its schemas: examples, mock bodies and extensions are left as written) translated in place.
//! `type: [string, "null"]` → `type: string, nullable: true`; several non-null types → no `type` (any value, as 3.0
//! reads the `oneOf` that would say it); `type: "null"` → `nullable: true`; `const: x` → `enum: [x]`; numeric
//! `exclusiveMinimum`/`exclusiveMaximum` → a bound plus the 3.0 boolean; `examples: [..]` → `example`; the
//! boolean schemas `true`/`false` → `{}`/`{ not: {} }`; a `$ref` with keywords beside it that shape a type →
//! `allOf: [{ $ref }, { those keywords }]` (3.0 would ignore them). Those lose nothing that view reads. What it
//! does lose gets a warning: keywords beside a parameter schema's `$ref` that would change the parameter's type
//! (there the reference is kept, since the typed parameter check reads the type it names), and `nullable`, which
//! 3.1 removed: validation ignores it, as 2020-12 does.

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::locate::escape_segment;
use crate::schema::is_dialect_2020_12;

/// Schemas nested deeper than this are left as they are (the validation's conversion refuses them).
const MAX_DEPTH: usize = 100;

/// Keywords that, beside a `$ref`, change the type the 3.0 view would read (which sees only the reference).
const SHAPING: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "enum",
    "const",
    "format",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
];

/// Keywords that, beside a parameter schema's `$ref`, would change the parameter's typed check.
const TYPING: &[&str] = &["type", "enum", "const", "format", "items"];

/// Keywords that stay beside a `$ref` when the others move into an `allOf` member: annotations.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "summary",
    "default",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "externalDocs",
    "nullable",
    "$comment",
];

/// Where a schema is, for the translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A parameter's `schema`, or its `items` (what the typed parameter check reads).
    Parameter,
    /// Anywhere else.
    Other,
}

/// The document-level checks of a 3.1 document, then its translation into the 3.0 view in place. Returns the
/// document as it was before the translation (the schemas as written), or `None` when there is nothing to serve
/// (an error, reported).
pub fn read_3_1(document: &mut Value, diags: &mut Diagnostics) -> Option<Value> {
    check_dialect(document, diags);
    let webhooks = document.get("webhooks").and_then(Value::as_object).map_or(0, Map::len);
    if webhooks > 0 {
        diags.push(
            Diagnostic::warning(
                "/webhooks",
                format!("{webhooks} webhook(s) ignored: the gateway serves the API's `paths` only"),
            )
            .help("webhooks are requests the API sends to its subscribers, which pass through no gateway"),
        );
    }
    let paths = document.get("paths");
    if paths.is_none_or(|p| p.as_object().is_none_or(Map::is_empty)) {
        let at = if paths.is_some() { "/paths" } else { "/openapi" };
        let d = if webhooks > 0 {
            Diagnostic::error(
                at,
                format!(
                    "the document has no paths, only {webhooks} webhook(s): there is nothing for a gateway to serve"
                ),
            )
            .help("webhooks describe requests the API sends, not ones it receives; a gateway serves `paths:`")
        } else {
            Diagnostic::error(at, "the document has no paths: there is nothing for a gateway to serve")
                .help("add `paths:` with the operations the gateway should serve")
        };
        diags.push(d);
        return None;
    }
    let as_written = document.clone();
    downgrade(document, diags);
    Some(as_written)
}

/// `jsonSchemaDialect`: one whose schemas mean what JSON Schema 2020-12 says, or an error.
fn check_dialect(document: &Value, diags: &mut Diagnostics) {
    let Some(dialect) = document.get("jsonSchemaDialect") else {
        return;
    };
    let help = "the gateway checks schemas as JSON Schema 2020-12, which is what OpenAPI 3.1's default dialect \
                (`https://spec.openapis.org/oas/3.1/dialect/base`) means: remove `jsonSchemaDialect`, or set it to \
                that or to `https://json-schema.org/draft/2020-12/schema`";
    match dialect.as_str() {
        Some(uri) if is_dialect_2020_12(uri) => {}
        Some(uri) => diags.push(
            Diagnostic::error(
                "/jsonSchemaDialect",
                format!("`jsonSchemaDialect: {uri}` is a dialect the gateway cannot check schemas with"),
            )
            .help(help),
        ),
        None => diags
            .push(Diagnostic::error("/jsonSchemaDialect", "`jsonSchemaDialect` must be a URI (a string)").help(help)),
    }
}

/// Translates the document's schemas into 3.0 in place, with a warning for what the 3.0 view loses.
pub fn downgrade(document: &mut Value, diags: &mut Diagnostics) {
    let mut notes = Notes::default();
    walk_document(document, &mut String::new(), &mut notes);
    if let Some(version) = document.get_mut("openapi") {
        *version = Value::String(String::from("3.0.3"));
    }
    let others = |n: usize| match n {
        0 | 1 => String::new(),
        n => format!(" (and in {} other schema(s))", n - 1),
    };
    if let Some(first) = notes.nullable.first() {
        diags.push(
            Diagnostic::warning(
                first.clone(),
                format!(
                    "`nullable` is not an OpenAPI 3.1 keyword: validation (JSON Schema 2020-12) ignores it here{}",
                    others(notes.nullable.len())
                ),
            )
            .help("to allow null, say so in the type: `type: [string, \"null\"]`, or add `{ type: \"null\" }` to a `oneOf`"),
        );
    }
    for (at, keys) in &notes.ref_siblings {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
        diags.push(
            Diagnostic::warning(
                at.clone(),
                format!(
                    "{} beside this parameter schema's `$ref`: validation would apply {} (JSON Schema 2020-12), but the typed parameter check reads only the type the reference names",
                    keys.join(", "),
                    if keys.len() == 1 { "it" } else { "them" },
                ),
            )
            .help("write the parameter's schema inline, or put those keywords in the referenced schema"),
        );
    }
}

/// What the translation found that the 3.0 view loses: pointers of schemas.
#[derive(Debug, Default)]
struct Notes {
    /// Schemas with `nullable`.
    nullable: Vec<String>,
    /// Parameter schemas with a `$ref` and keywords beside it that would change the typed check, with those keywords.
    ref_siblings: Vec<(String, Vec<String>)>,
}

/// Takes the `type: mutualTLS` security schemes (OpenAPI 3.1) out of `components.securitySchemes`, which
/// `openapiv3` cannot read; the security step finds them in the document as written.
pub fn strip_mutual_tls(document: &mut Value) {
    if let Some(Value::Object(schemes)) = document.pointer_mut("/components/securitySchemes") {
        schemes.retain(|_, scheme| scheme.get("type").is_none_or(|t| t != "mutualTLS"));
    }
}

/// Walks the OpenAPI objects under `value` (written at `at`), translating each schema met: the values of `schema`
/// (parameters, headers, media types) and of `components/schemas`. Extensions and examples are values, not
/// OpenAPI objects, and are left alone.
fn walk_document(value: &mut Value, at: &mut String, notes: &mut Notes) {
    match value {
        Value::Object(map) => {
            let in_components = at == "/components";
            let role = if map.contains_key("in") {
                Role::Parameter
            } else {
                Role::Other
            };
            for (key, child) in map.iter_mut() {
                if key.starts_with("x-") || key == "example" || key == "examples" {
                    continue;
                }
                let len = at.len();
                at.push('/');
                at.push_str(&escape_segment(key));
                if key == "schema" {
                    walk_schema(child, at, notes, 0, role);
                } else if key == "schemas" && in_components {
                    each_member(child, at, notes, 0);
                } else {
                    walk_document(child, at, notes);
                }
                at.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                walk_document(child, at, notes);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

/// Translates the schema `value` written at `at`, and the schemas under it.
fn walk_schema(value: &mut Value, at: &mut String, notes: &mut Notes, depth: usize, role: Role) {
    match value {
        Value::Bool(true) => *value = Value::Object(Map::new()),
        Value::Bool(false) => *value = serde_json::json!({"not": {}}),
        _ => {}
    }
    let Value::Object(map) = value else { return };
    if depth > MAX_DEPTH {
        return;
    }
    translate(map, at, notes, role);
    for (key, child) in map.iter_mut() {
        let len = at.len();
        at.push('/');
        at.push_str(&escape_segment(key));
        match key.as_str() {
            "properties" | "patternProperties" | "dependentSchemas" | "$defs" | "definitions" => {
                each_member(child, at, notes, depth + 1);
            }
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => each_element(child, at, notes, depth + 1),
            "items" if child.is_array() => each_element(child, at, notes, depth + 1),
            // 3.0 has boolean `additionalProperties` too.
            "additionalProperties" if child.is_boolean() => {}
            "items" => walk_schema(child, at, notes, depth + 1, role),
            "additionalProperties"
            | "unevaluatedProperties"
            | "propertyNames"
            | "contains"
            | "unevaluatedItems"
            | "additionalItems"
            | "not"
            | "if"
            | "then"
            | "else"
            | "contentSchema" => {
                walk_schema(child, at, notes, depth + 1, Role::Other);
            }
            _ => {}
        }
        at.truncate(len);
    }
}

/// [`walk_schema`] on each value of the map `value` (written at `at`).
fn each_member(value: &mut Value, at: &mut String, notes: &mut Notes, depth: usize) {
    let Value::Object(members) = value else { return };
    for (name, member) in members.iter_mut() {
        let len = at.len();
        at.push('/');
        at.push_str(&escape_segment(name));
        walk_schema(member, at, notes, depth, Role::Other);
        at.truncate(len);
    }
}

/// [`walk_schema`] on each element of the array `value` (written at `at`).
fn each_element(value: &mut Value, at: &mut String, notes: &mut Notes, depth: usize) {
    let Value::Array(items) = value else { return };
    for (i, item) in items.iter_mut().enumerate() {
        let len = at.len();
        at.push_str(&format!("/{i}"));
        walk_schema(item, at, notes, depth, Role::Other);
        at.truncate(len);
    }
}

/// Translates one schema's own keywords.
fn translate(map: &mut Map<String, Value>, at: &str, notes: &mut Notes, role: Role) {
    if map.contains_key("nullable") {
        notes.nullable.push(format!("{at}/nullable"));
    }
    if map.contains_key("$ref") {
        if role == Role::Parameter {
            let typing: Vec<String> = map.keys().filter(|k| TYPING.contains(&k.as_str())).cloned().collect();
            if !typing.is_empty() {
                notes.ref_siblings.push((at.to_owned(), typing));
            }
        } else if map.keys().any(|k| SHAPING.contains(&k.as_str())) {
            // 2020-12: the keywords beside `$ref` apply with it, which 3.0 says with `allOf` (the member is
            // translated when the walk reaches it).
            let mut member = Map::new();
            let mut kept = Map::new();
            for (key, value) in std::mem::take(map) {
                if key == "$ref" {
                    kept.insert(String::from("allOf"), Value::Null);
                    member.insert(key, value);
                } else if ANNOTATIONS.contains(&key.as_str()) || key.starts_with("x-") {
                    kept.insert(key, value);
                } else {
                    member.insert(key, value);
                }
            }
            let reference = member.remove("$ref").unwrap_or(Value::Null);
            let mut referring = Map::new();
            referring.insert(String::from("$ref"), reference);
            kept.insert(
                String::from("allOf"),
                Value::Array(vec![Value::Object(referring), Value::Object(member)]),
            );
            *map = kept;
            return;
        }
    }
    if let Some(Value::Array(types)) = map.get("type") {
        let nullable = types.iter().any(|t| t == "null");
        let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        match others.as_slice() {
            [one] => {
                if one == "integer" {
                    // 3.1 bounds are any numbers; openapiv3 reads an integer's as 64-bit integers (validation keeps
                    // them as written, and the 3.0 view does not check bounds).
                    for key in ["minimum", "maximum", "multipleOf"] {
                        if map.get(key).is_some_and(|v| v.is_number() && v.as_i64().is_none()) {
                            map.remove(key);
                        }
                    }
                }
                map.insert(String::from("type"), one.clone());
            }
            _ => {
                map.remove("type");
            }
        }
        if nullable {
            map.insert(String::from("nullable"), Value::Bool(true));
        }
    } else if map.get("type").is_some_and(|t| t == "null") {
        map.remove("type");
        map.insert(String::from("nullable"), Value::Bool(true));
    }
    if let Some(constant) = map.remove("const") {
        map.entry("enum").or_insert_with(|| Value::Array(vec![constant]));
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(limit) = map.get(exclusive).filter(|v| v.is_number()).cloned() {
            map.insert(String::from(bound), limit);
            map.insert(String::from(exclusive), Value::Bool(true));
        }
    }
    if let Some(Value::Array(examples)) = map.get("examples") {
        let first = examples.first().cloned();
        map.remove("examples");
        if let Some(first) = first {
            map.entry("example").or_insert(first);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diagnostics::Severity;

    fn read(mut document: Value) -> (Value, Option<Value>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let written = read_3_1(&mut document, &mut diags);
        (document, written, diags)
    }

    fn messages(diags: &Diagnostics) -> Vec<(Severity, &str, &str)> {
        diags
            .items()
            .iter()
            .map(|d| (d.severity, d.pointer.as_str(), d.message.as_str()))
            .collect()
    }

    #[test]
    fn translates_json_schema_2020_spellings_in_schemas_only() {
        let original = json!({
            "openapi": "3.1.0",
            "paths": {"/a": {"get": {
                "parameters": [{"name": "q", "in": "query", "schema": {"type": ["integer", "null"], "minimum": -9.3e18}}],
                "responses": {"200": {"description": "ok", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {"const": {"const": 1}, "kind": {"type": "null"}}},
                    "example": {"type": ["x", "null"], "const": 2},
                }}}},
                "x-gateway": {"target": {"mock": {"body": {"type": ["a", "null"], "const": 3}}}},
            }}},
            "components": {"schemas": {
                "A": {"type": ["string", "null"], "const": "x"},
                "B": {"type": ["string", "integer"], "exclusiveMinimum": 3, "examples": [1, 2]},
                "C": {"type": "array", "prefixItems": [{"const": true}], "items": {"type": ["boolean", "null"]}},
            }}
        });
        let (doc, written, diags) = read(original.clone());
        assert!(diags.items().is_empty(), "{:?}", messages(&diags));
        assert_eq!(written, Some(original.clone()));
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(
            doc["components"]["schemas"]["A"],
            json!({ "type": "string", "nullable": true, "enum": ["x"] })
        );
        assert_eq!(
            doc["components"]["schemas"]["B"],
            json!({ "minimum": 3, "exclusiveMinimum": true, "example": 1 })
        );
        assert_eq!(
            doc["components"]["schemas"]["C"]["prefixItems"][0],
            json!({"enum": [true]})
        );
        assert_eq!(
            doc["components"]["schemas"]["C"]["items"],
            json!({"type": "boolean", "nullable": true})
        );
        let op = &doc["paths"]["/a"]["get"];
        // An integer bound the 3.0 reader cannot hold is left out of its view.
        assert_eq!(
            op["parameters"][0]["schema"],
            json!({"type": "integer", "nullable": true})
        );
        let media = &op["responses"]["200"]["content"]["application/json"];
        // A property named `const` is a property, not the keyword.
        assert_eq!(media["schema"]["properties"]["const"], json!({"enum": [1]}));
        assert_eq!(media["schema"]["properties"]["kind"], json!({"nullable": true}));
        // Examples and extensions are values, left as written.
        assert_eq!(
            media["example"],
            original["paths"]["/a"]["get"]["responses"]["200"]["content"]["application/json"]["example"]
        );
        assert_eq!(op["x-gateway"], original["paths"]["/a"]["get"]["x-gateway"]);
    }

    #[test]
    fn what_the_3_0_view_loses_is_a_warning() {
        let (doc, _, diags) = read(json!({
            "openapi": "3.1.0",
            "paths": {"/a": {"get": {"parameters": [
                {"name": "q", "in": "query", "schema": {"$ref": "#/components/schemas/Base", "type": "string", "maxLength": 3}},
                {"name": "r", "in": "query", "schema": {"$ref": "#/components/schemas/Base", "description": "fine"}},
            ]}}},
            "components": {"schemas": {
                "Base": {"type": "object"},
                "A": {"$ref": "#/components/schemas/Base", "description": "only an annotation"},
                "B": {"$ref": "#/components/schemas/Base", "description": "b", "properties": {"x": {"type": ["string", "null"]}}, "required": ["x"]},
                "C": {"type": "string", "nullable": true},
                "D": {"properties": {"e": {"$ref": "#/components/schemas/Base", "maxLength": 3, "nullable": true}}},
            }}
        }));
        let found = messages(&diags);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, Severity::Warning);
        assert_eq!(found[0].1, "/components/schemas/C/nullable");
        assert!(
            found[0].2.contains("ignores it here (and in 1 other schema(s))"),
            "{}",
            found[0].2
        );
        assert_eq!(found[1].1, "/paths/~1a/get/parameters/0/schema");
        assert!(
            found[1].2.starts_with("`type` beside this parameter schema's `$ref`"),
            "{}",
            found[1].2
        );
        // Elsewhere, keywords that shape a type move into an `allOf` beside the reference; annotations stay.
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["B"],
            json!({"description": "b", "allOf": [
                {"$ref": "#/components/schemas/Base"},
                {"properties": {"x": {"type": "string", "nullable": true}}, "required": ["x"]},
            ]})
        );
        assert_eq!(
            schemas["A"],
            json!({"$ref": "#/components/schemas/Base", "description": "only an annotation"})
        );
        assert_eq!(
            doc["paths"]["/a"]["get"]["parameters"][0]["schema"]["$ref"],
            "#/components/schemas/Base"
        );
    }

    #[test]
    fn boolean_schemas_become_objects() {
        let (doc, _, _) = read(json!({
            "openapi": "3.1.0",
            "paths": {"/a": {}},
            "components": {"schemas": {
                "T": true,
                "F": {"type": "array", "items": false, "additionalProperties": false, "properties": {"gone": false}},
            }}
        }));
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["T"], json!({}));
        assert_eq!(
            schemas["F"],
            json!({"type": "array", "items": {"not": {}}, "additionalProperties": false, "properties": {"gone": {"not": {}}}})
        );
    }

    #[test]
    fn dialects() {
        for dialect in [
            "https://spec.openapis.org/oas/3.1/dialect/base",
            "https://json-schema.org/draft/2020-12/schema",
        ] {
            let (_, _, diags) = read(json!({"openapi": "3.1.0", "jsonSchemaDialect": dialect, "paths": {"/a": {}}}));
            assert!(diags.items().is_empty(), "{dialect}: {:?}", messages(&diags));
        }
        let (_, written, diags) = read(json!({
            "openapi": "3.1.0",
            "jsonSchemaDialect": "http://json-schema.org/draft-07/schema#",
            "paths": {"/a": {}},
        }));
        assert!(written.is_some());
        let found = messages(&diags);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Severity::Error);
        assert_eq!(found[0].1, "/jsonSchemaDialect");
        assert!(
            diags.items()[0]
                .help
                .as_deref()
                .is_some_and(|h| h.contains("dialect/base"))
        );
        let (_, _, diags) = read(json!({"openapi": "3.1.0", "jsonSchemaDialect": 7, "paths": {"/a": {}}}));
        assert_eq!(messages(&diags)[0].1, "/jsonSchemaDialect");
    }

    #[test]
    fn webhooks_are_ignored_with_a_warning_and_are_not_paths() {
        let hook = json!({"post": {"responses": {"200": {"description": "ok"}}}});
        let (_, written, diags) = read(json!({
            "openapi": "3.1.0",
            "paths": {"/a": {}},
            "webhooks": {"newPet": hook, "oldPet": hook},
        }));
        assert!(written.is_some());
        let found = messages(&diags);
        assert_eq!(
            found,
            [(
                Severity::Warning,
                "/webhooks",
                "2 webhook(s) ignored: the gateway serves the API's `paths` only"
            )]
        );
        let (_, written, diags) = read(json!({"openapi": "3.1.0", "webhooks": {"newPet": hook}}));
        assert!(written.is_none());
        let found = messages(&diags);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1],
            (
                Severity::Error,
                "/openapi",
                "the document has no paths, only 1 webhook(s): there is nothing for a gateway to serve"
            )
        );
        let (_, written, diags) = read(json!({"openapi": "3.1.0", "paths": {}}));
        assert!(written.is_none());
        assert_eq!(messages(&diags)[0].1, "/paths");
    }
}
