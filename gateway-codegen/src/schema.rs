//! OpenAPI 3.0 Schema Objects → self-contained JSON Schema (Draft 4), for the runtime's body validation; OpenAPI 3.1
//! ones (JSON Schema 2020-12 already) → self-contained JSON Schema 2020-12 ([`to_json_schema_2020_12`], in
//! `schema/draft2020.rs`). What the two conversions share (the walk, references, the keywords both read alike,
//! `readOnly`/`writeOnly`) is in `schema/common.rs`; each dialect says only what it does its own way.
//!
//! The runtime compiles each converted schema once at start-up and checks request bodies (and, separately,
//! upstream response bodies) against it; the generator emits it as a JSON string constant. A schema of an OpenAPI
//! 3.1 document says `$schema: https://json-schema.org/draft/2020-12/schema` at its root and is compiled as
//! 2020-12; every other one (no `$schema`) as Draft 4 (`jsonschema::draft4`), which is what this module makes.
//! A 3.0 Schema Object is close to Draft 4 but not the same, so every keyword is translated deliberately:
//!
//! - `$ref`: local references only. Every schema reached (transitively) goes into the output's `definitions` under a
//!   sanitised unique name and the reference becomes `#/definitions/<name>`, so recursive schemas stay finite. A
//!   chain of references (`A` is just `$ref: B`) is followed to the schema it ends at. Siblings of `$ref` are
//!   ignored, as OpenAPI 3.0 says, except `nullable: true`, which published specs put there to mean "or null".
//! - `nullable: true` adds `null` to `type` and to `enum`; next to `allOf`/`oneOf`/`anyOf`/`not`/`$ref` the whole
//!   schema is wrapped as `{"anyOf": [{"type": "null"}, <schema>]}` instead.
//! - `readOnly` properties may not be sent in a [`Direction::Request`] (their schema becomes `{"not": {}}` and they
//!   leave `required`); `writeOnly` ones are not required in a [`Direction::Response`].
//! - `format`: the ones `jsonschema` checks under Draft 4 are kept; `uuid` (which it only checks from Draft 2019-09
//!   on) becomes a `pattern`; `int32`/`int64` on integers become `minimum`/`maximum`; every other format is dropped
//!   (it would check nothing).
//! - Only the keywords the Schema Object shares with Draft 4 are kept, each checked for the shape Draft 4's
//!   meta-schema requires (a wrong one is a [`SchemaError`] at its pointer). Annotations (`description`, `title`,
//!   `default`, `example`, ...), OpenAPI-only keywords and `x-*` extensions are dropped.
//!
//! The output is deterministic: keywords keep their order in the document, definitions are in the order they
//! were first reached.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value, json};

mod common;
mod draft2020;

use common::{Converter, Dialect, MAX_DEPTH, MAX_REF_CHAIN, error, join, kind, property_names, resolve_local};
pub use draft2020::{is_dialect_2020_12, to_json_schema_2020_12, written_at};

/// The `$schema` of JSON Schema 2020-12, which the root of every converted 3.1 schema carries: the runtime compiles
/// a schema with it as 2020-12, and one without it as Draft 4.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// `format: uuid`, as `jsonschema`'s own `uuid` check reads it (hyphenated, either case).
const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// The formats `jsonschema` 0.61 checks under Draft 4 (with its default features off) and that mean the same in
/// OpenAPI. Others are ignored by `jsonschema` (or refused, if unknown formats are not ignored), so they are dropped.
const CHECKED_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "uri",
    "regex",
];

/// Which message the schema checks: `readOnly` properties are refused in requests, `writeOnly` ones are not
/// required in responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A request body (or parameter) sent by the client.
    Request,
    /// A response body sent back by the upstream.
    Response,
}

impl Direction {
    /// The keyword whose properties this direction treats specially.
    fn flag(self) -> &'static str {
        match self {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        }
    }
}

/// Why a schema could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemaError {
    /// JSON pointer into the document where the problem is written (e.g. `/components/schemas/Pet/properties/tag`).
    pub pointer: String,
    /// What is wrong, as a sentence for a diagnostic.
    pub message: String,
}

/// `schema` (a Schema Object or a `{"$ref": "#/components/schemas/X"}`, as JSON), written at the JSON pointer `at`
/// of `document` (the whole OpenAPI document as JSON, for `$ref` resolution), as a self-contained Draft 4 JSON
/// Schema. `at` only names places in errors; for a schema that is not written in the document, pass the pointer
/// of whatever the schema stands for.
///
/// # Errors
///
/// A [`SchemaError`] at the first problem met: a remote or dangling `$ref`, a cycle of bare references, a keyword
/// with a value Draft 4 refuses (`exclusiveMinimum: 5`, `required: "id"`, an invalid `pattern`, ...), something
/// other than a schema where one is expected.
pub fn to_json_schema(document: &Value, schema: &Value, at: &str, direction: Direction) -> Result<Value, SchemaError> {
    let (root, definitions) = Converter::<Draft4>::run(document, schema, at, direction)?;
    Ok(match root {
        Value::Object(mut map) if !definitions.is_empty() => {
            map.insert(String::from("definitions"), Value::Object(definitions));
            Value::Object(map)
        }
        other => other,
    })
}

/// Checks that a converted schema compiles as the runtime will compile it (formats checked; Draft 2020-12 when the
/// schema says `$schema: https://json-schema.org/draft/2020-12/schema`, as [`to_json_schema_2020_12`]'s do,
/// Draft 4 otherwise); the error text is for a diagnostic.
///
/// # Errors
///
/// `jsonschema`'s reason, with the place in the converted schema it concerns.
pub fn check_compiles(schema: &Value) -> Result<(), String> {
    let options = if is_2020_12(schema) {
        jsonschema::draft202012::options()
    } else {
        jsonschema::draft4::options()
    };
    match options.should_validate_formats(true).build(schema) {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut message = e.to_string();
            // The offending value is quoted in the message and may be a whole schema: keep the message readable.
            if message.chars().count() > 300 {
                message = message.chars().take(300).collect::<String>() + "…";
            }
            let path = e.instance_path().to_string();
            Err(if path.is_empty() {
                message
            } else {
                format!("{message} (at `{path}` in the converted schema)")
            })
        }
    }
}

/// One top-level property of a form body or a `deepObject` parameter, whose values arrive as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormField {
    /// The property's name (the form key).
    pub name: String,
    /// The type each value should be coerced to before validation.
    pub scalar: FormScalar,
    /// Whether the property is an array: the key may repeat, and its values are collected in order.
    pub list: bool,
}

/// The scalar a form value is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormScalar {
    /// Left as it is.
    String,
    /// Parsed as an integer.
    Integer,
    /// Parsed as a number.
    Number,
    /// `true` or `false`.
    Boolean,
}

/// For `application/x-www-form-urlencoded` bodies and `deepObject` query parameters (whose values arrive as
/// strings): the top-level properties of the converted object schema (from [`to_json_schema`] or
/// [`to_json_schema_2020_12`]; a top-level `$ref` is followed into `definitions` or `$defs`, and `allOf` members are
/// read too, and in a 2020-12 schema a `$ref` beside other keywords as well), in document order, with the scalar
/// type each value should be coerced to and whether it is an array (repeated keys). A property whose type is not
/// exactly one of `integer`, `number`, `boolean` or an array of them (a `null` alternative aside) is a string.
pub fn form_fields(converted: &Value) -> Vec<FormField> {
    let local = if is_2020_12(converted) {
        Local {
            definitions: converted.get("$defs"),
            prefix: "#/$defs/",
            draft_2020_12: true,
        }
    } else {
        Local {
            definitions: converted.get("definitions"),
            prefix: "#/definitions/",
            draft_2020_12: false,
        }
    };
    let mut fields = Vec::new();
    let mut visited = HashSet::new();
    collect_fields(converted, &local, &mut fields, &mut visited, 0);
    fields
}

/// Whether `schema` is one [`to_json_schema_2020_12`] made (it says so with `$schema`).
pub fn is_2020_12(schema: &Value) -> bool {
    schema.get("$schema").and_then(Value::as_str) == Some(DRAFT_2020_12)
}

/// How a converted schema refers to its definitions.
struct Local<'a> {
    /// `definitions` (Draft 4) or `$defs` (2020-12).
    definitions: Option<&'a Value>,
    /// The references' prefix: `#/definitions/` or `#/$defs/`.
    prefix: &'static str,
    /// A 2020-12 schema: `$ref` may have siblings, and `null` alternatives are written either way round.
    draft_2020_12: bool,
}

/// Keywords of a converted schema's root that say nothing about the value.
fn is_meta(key: &str) -> bool {
    key == "definitions" || key == "$defs" || key == "$schema"
}

fn collect_fields<'a>(
    schema: &'a Value,
    local: &Local<'a>,
    fields: &mut Vec<FormField>,
    visited: &mut HashSet<*const Value>,
    depth: usize,
) {
    let schema = local_target(schema, local);
    if depth > MAX_DEPTH || !visited.insert(std::ptr::from_ref(schema)) {
        return;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            if fields.iter().any(|f| &f.name == name) {
                continue;
            }
            let property = local_target(property, local);
            let (scalar, list) = if single_type(property) == Some("array") {
                let items = property.get("items").map(|i| local_target(i, local));
                (items.map_or(FormScalar::String, scalar_of), true)
            } else {
                (scalar_of(property), false)
            };
            fields.push(FormField {
                name: name.clone(),
                scalar,
                list,
            });
        }
    }
    if let Some(members) = schema.get("allOf").and_then(Value::as_array) {
        for member in members {
            collect_fields(member, local, fields, visited, depth + 1);
        }
    }
    // 2020-12: a `$ref` with siblings is one more member of the conjunction.
    if local.draft_2020_12
        && let Some(target) = referenced(schema, local)
    {
        collect_fields(target, local, fields, visited, depth + 1);
    }
}

/// The definition a schema's `$ref` names.
fn referenced<'a>(schema: &'a Value, local: &Local<'a>) -> Option<&'a Value> {
    let reference = schema.get("$ref").and_then(Value::as_str)?;
    local.definitions?.get(reference.strip_prefix(local.prefix)?)
}

/// Follows references to definitions (a `$ref` alone), the nullable wrapper and one-member `allOf`s to the schema
/// they stand for.
fn local_target<'a>(mut schema: &'a Value, local: &Local<'a>) -> &'a Value {
    let null = json!({"type": "null"});
    for _ in 0..MAX_REF_CHAIN {
        let Some(map) = schema.as_object() else {
            return schema;
        };
        let next = if map.contains_key("$ref") {
            if map.keys().all(|k| k == "$ref" || is_meta(k)) {
                referenced(schema, local)
            } else {
                None
            }
        } else if map.keys().filter(|k| !is_meta(k)).count() == 1 {
            let members = if local.draft_2020_12 {
                map.get("anyOf")
                    .or_else(|| map.get("oneOf"))
                    .or_else(|| map.get("allOf"))
            } else {
                map.get("anyOf").or_else(|| map.get("allOf"))
            };
            match members.and_then(Value::as_array).map(Vec::as_slice) {
                Some([one]) => Some(one),
                Some([first, second]) if *first == null => Some(second),
                Some([first, second]) if local.draft_2020_12 && *second == null => Some(first),
                _ => None,
            }
        } else {
            None
        };
        match next {
            Some(next) => schema = next,
            None => return schema,
        }
    }
    schema
}

/// The one non-null type a schema declares.
fn single_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t.as_str()),
        Value::Array(types) => {
            let mut non_null = types.iter().filter_map(Value::as_str).filter(|t| *t != "null");
            let first = non_null.next()?;
            non_null.next().is_none().then_some(first)
        }
        _ => None,
    }
}

fn scalar_of(schema: &Value) -> FormScalar {
    match single_type(schema) {
        Some("integer") => FormScalar::Integer,
        Some("number") => FormScalar::Number,
        Some("boolean") => FormScalar::Boolean,
        Some(_) => FormScalar::String,
        // No type: an enum (or a `const`) of numbers or booleans says what the values are.
        None => {
            let values: Vec<&Value> = match (schema.get("enum").and_then(Value::as_array), schema.get("const")) {
                (Some(values), _) => values.iter().filter(|v| !v.is_null()).collect(),
                (None, Some(constant)) => vec![constant],
                (None, None) => return FormScalar::String,
            };
            if values.is_empty() {
                FormScalar::String
            } else if values.iter().all(|v| v.is_i64() || v.is_u64()) {
                FormScalar::Integer
            } else if values.iter().all(|v| v.is_number()) {
                FormScalar::Number
            } else if values.iter().all(|v| v.is_boolean()) {
                FormScalar::Boolean
            } else {
                FormScalar::String
            }
        }
    }
}

/// OpenAPI 3.0 Schema Objects → Draft 4: the [`Dialect`] of [`to_json_schema`].
struct Draft4;

impl Dialect for Draft4 {
    const CHECKED_FORMATS: &'static [&'static str] = CHECKED_FORMATS;
    const EXCLUSIVE_FLAGS: bool = true;

    fn options() -> jsonschema::ValidationOptions<'static> {
        jsonschema::draft4::options()
    }

    fn resolve<'a>(document: &'a Value, reference: &str, location: &str) -> Result<(String, &'a Value), SchemaError> {
        resolve_local(document, reference, location)
    }

    /// `true` is `{}`, `false` is `{"not": {}}` (3.0 has no boolean schemas; `additionalProperties` keeps its
    /// booleans as they are).
    fn boolean(value: bool) -> Value {
        if value { json!({}) } else { json!({"not": {}}) }
    }

    /// `nullable`, and a `$ref` (whose siblings are ignored), here; the keywords by [`Converter::keywords`]; then
    /// `format: uuid` as a `pattern`, and Draft 4's dependence of the exclusive bounds on the bounds.
    fn object<'a>(
        this: &mut Converter<'a, Self>,
        map: &'a Map<String, Value>,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Value, SchemaError> {
        let nullable = match map.get("nullable") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(other) => {
                return Err(error(
                    &join(at, "nullable"),
                    format!("`nullable` must be `true` or `false`, not {}", kind(other)),
                ));
            }
        };
        if let Some(reference) = map.get("$ref") {
            // Every schema with a `$ref` is only a reference (its siblings are ignored), and it says whether the
            // chain is `nullable`.
            let mut chain_nullable = false;
            let name = this.reference(reference, &join(at, "$ref"), |target| {
                chain_nullable |= target.get("nullable") == Some(&Value::Bool(true));
                true
            })?;
            let out = json!({ "$ref": format!("#/definitions/{name}") });
            return Ok(if nullable || chain_nullable { or_null(out) } else { out });
        }

        let mut out = this.keywords(map, at, depth, inherited)?;

        if map.get("format").and_then(Value::as_str) == Some("uuid") {
            if out.contains_key("pattern") {
                let member = json!({ "pattern": UUID_PATTERN });
                match out.get_mut("allOf") {
                    Some(Value::Array(members)) => members.push(member),
                    _ => {
                        out.insert(String::from("allOf"), Value::Array(vec![member]));
                    }
                }
            } else {
                out.insert(String::from("pattern"), Value::String(UUID_PATTERN.to_owned()));
            }
        }

        // Draft 4 makes `exclusiveMinimum` depend on `minimum` (and the same for maximum); alone it means nothing.
        for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
            if !out.contains_key(bound) {
                out.remove(exclusive);
            }
        }

        if nullable {
            if ["allOf", "anyOf", "oneOf", "not"].iter().any(|k| out.contains_key(*k)) {
                return Ok(or_null(Value::Object(out)));
            }
            match out.get_mut("type") {
                Some(Value::String(t)) if t != "null" => {
                    let t = std::mem::take(t);
                    out.insert(String::from("type"), json!([t, "null"]));
                }
                Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                    types.push(Value::String(String::from("null")));
                }
                _ => {}
            }
            if let Some(Value::Array(values)) = out.get_mut("enum")
                && !values.contains(&Value::Null)
            {
                values.push(Value::Null);
            }
        }
        Ok(Value::Object(out))
    }

    /// 3.0's boolean exclusive bounds, `required` (Draft 4 refuses an empty one), `additionalProperties` (a
    /// boolean kept as it is) and `items` (one schema); the rest as both dialects read them (`nullable` is read by
    /// `object`).
    fn keyword<'a>(
        this: &mut Converter<'a, Self>,
        key: &str,
        value: &'a Value,
        here: &str,
        depth: usize,
        flagged: &BTreeSet<String>,
    ) -> Result<Option<Value>, SchemaError> {
        match key {
            "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" => {
                if !value.is_boolean() {
                    return Err(error(
                        here,
                        format!("`{key}` must be `true` or `false` in OpenAPI 3.0, not {}", kind(value)),
                    ));
                }
                Ok(Some(value.clone()))
            }
            "required" => {
                let Value::Array(names) = value else {
                    return Err(error(here, format!("`required` must be an array, not {}", kind(value))));
                };
                let kept = property_names(names, key, here, flagged)?;
                // Draft 4 refuses an empty `required`.
                Ok((!kept.is_empty()).then_some(Value::Array(kept)))
            }
            "additionalProperties" => Ok(Some(match value {
                Value::Bool(_) => value.clone(),
                _ => this.sub(value, here, depth)?,
            })),
            "items" => {
                if value.is_array() {
                    return Err(error(here, "`items` must be one schema in OpenAPI 3.0, not an array"));
                }
                this.sub(value, here, depth).map(Some)
            }
            // Annotations, OpenAPI-only keywords (`nullable` is applied by `object`, `readOnly`/`writeOnly` by the
            // parent), extensions, and anything else a 3.0 Schema Object does not define are dropped there.
            _ => this.shared_keyword(key, value, here, depth, flagged),
        }
    }

    /// Through bare references only: the siblings of a `$ref`, a flag among them, are ignored in 3.0.
    fn is_flagged<'a>(this: &Converter<'a, Self>, schema: &'a Value, flag: &str) -> bool {
        this.follow(schema)
            .is_some_and(|(_, s)| s.get(flag) == Some(&Value::Bool(true)))
    }

    /// The `allOf` members.
    fn conjuncts(map: &Map<String, Value>) -> Vec<&Value> {
        match map.get("allOf") {
            Some(Value::Array(members)) => members.iter().collect(),
            _ => Vec::new(),
        }
    }

    /// The member followed through bare references.
    fn enter<'a>(
        this: &Converter<'a, Self>,
        conjunct: &'a Value,
        visited: &mut HashSet<String>,
    ) -> Option<&'a Map<String, Value>> {
        let (pointer, Value::Object(member)) = this.follow(conjunct)? else {
            return None;
        };
        if let Some(pointer) = pointer
            && !visited.insert(pointer)
        {
            return None;
        }
        Some(member)
    }
}

impl<'a> Converter<'a, Draft4> {
    /// `schema` followed through bare references (quietly: a broken one is reported when it is converted), with the
    /// pointer of the schema reached when a reference was followed.
    fn follow(&self, mut schema: &'a Value) -> Option<(Option<String>, &'a Value)> {
        let mut pointer = None;
        for _ in 0..MAX_REF_CHAIN {
            match schema.get("$ref") {
                Some(Value::String(reference)) => {
                    let (p, target) = resolve_local(self.document, reference, "").ok()?;
                    pointer = Some(p);
                    schema = target;
                }
                Some(_) => return None,
                None => return Some((pointer, schema)),
            }
        }
        None
    }
}

/// `{"anyOf": [{"type": "null"}, schema]}`.
fn or_null(schema: Value) -> Value {
    json!({ "anyOf": [{"type": "null"}, schema] })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::common::testing::{assert_form_fields, assert_instances, validator};
    use super::*;

    /// A document whose `components.schemas` are `schemas`.
    fn doc(schemas: Value) -> Value {
        json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}, "components": {"schemas": schemas}})
    }

    fn convert(document: &Value, schema: Value, direction: Direction) -> Value {
        to_json_schema(document, &schema, "/test", direction).unwrap()
    }

    /// Converts `schema` and checks each instance is accepted or refused as said.
    fn check(document: &Value, schema: Value, direction: Direction, valid: &[Value], invalid: &[Value]) -> Value {
        let converted = convert(document, schema, direction);
        assert_instances(jsonschema::draft4::options(), &converted, valid, invalid);
        converted
    }

    #[test]
    fn nullable_with_type() {
        let out = check(
            &doc(json!({})),
            json!({"type": "string", "nullable": true, "maxLength": 3}),
            Direction::Request,
            &[json!("abc"), Value::Null],
            &[json!(1), json!("abcd")],
        );
        assert_eq!(out, json!({"type": ["string", "null"], "maxLength": 3}));
        // Not nullable: null is refused.
        check(
            &doc(json!({})),
            json!({"type": "string"}),
            Direction::Request,
            &[json!("a")],
            &[Value::Null],
        );
        check(
            &doc(json!({})),
            json!({"type": "string", "nullable": false}),
            Direction::Request,
            &[json!("a")],
            &[Value::Null],
        );
    }

    #[test]
    fn nullable_with_enum() {
        let out = check(
            &doc(json!({})),
            json!({"type": "string", "enum": ["a", "b"], "nullable": true}),
            Direction::Request,
            &[json!("a"), Value::Null],
            &[json!("c"), json!(1)],
        );
        assert_eq!(out, json!({"type": ["string", "null"], "enum": ["a", "b", null]}));
        // An enum without a type.
        check(
            &doc(json!({})),
            json!({"enum": [1, 2], "nullable": true}),
            Direction::Request,
            &[json!(1), Value::Null],
            &[json!(3)],
        );
        // No type, no enum: everything is allowed already.
        let out = convert(
            &doc(json!({})),
            json!({"nullable": true, "minLength": 1}),
            Direction::Request,
        );
        assert_eq!(out, json!({"minLength": 1}));
    }

    #[test]
    fn nullable_with_ref_and_combinators() {
        let document = doc(json!({
            "Pet": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
            "MaybePet": {"$ref": "#/components/schemas/Pet", "nullable": true},
        }));
        let pet_or_null = [json!({"name": "rex"}), Value::Null];
        let neither = [json!({}), json!("rex")];
        // `nullable` beside `$ref`.
        let out = check(
            &document,
            json!({"$ref": "#/components/schemas/Pet", "nullable": true}),
            Direction::Request,
            &pet_or_null,
            &neither,
        );
        assert_eq!(out["anyOf"][0], json!({"type": "null"}));
        assert_eq!(out["anyOf"][1], json!({"$ref": "#/definitions/Pet"}));
        // Through a bare reference that is nullable.
        check(
            &document,
            json!({"$ref": "#/components/schemas/MaybePet"}),
            Direction::Request,
            &pet_or_null,
            &neither,
        );
        // Without nullable, null is refused.
        check(
            &document,
            json!({"$ref": "#/components/schemas/Pet"}),
            Direction::Request,
            &[json!({"name": "rex"})],
            &[Value::Null],
        );
        // allOf / oneOf with a type: the type alone would not let null through the members.
        for combinator in ["allOf", "oneOf", "anyOf"] {
            check(
                &document,
                json!({"type": "object", "nullable": true, combinator: [{"$ref": "#/components/schemas/Pet"}]}),
                Direction::Request,
                &pet_or_null,
                &neither,
            );
        }
    }

    #[test]
    fn recursive_ref() {
        let document = doc(json!({
            "Tree": {
                "type": "object",
                "required": ["value"],
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}},
                },
                "additionalProperties": false,
            },
        }));
        let out = check(
            &document,
            json!({"$ref": "#/components/schemas/Tree"}),
            Direction::Request,
            &[
                json!({"value": 1}),
                json!({"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}]}),
            ],
            &[
                json!({"value": 1, "children": [{"value": 2, "children": [{"value": "3"}]}]}),
                json!({"value": 1, "children": [{"children": []}]}),
                json!({"value": 1, "extra": true}),
            ],
        );
        assert_eq!(out["$ref"], "#/definitions/Tree");
        assert_eq!(
            out["definitions"]["Tree"]["properties"]["children"]["items"]["$ref"],
            "#/definitions/Tree"
        );
        // Mutual recursion, reached from an inline schema.
        let document = doc(json!({
            "A": {"type": "object", "properties": {"b": {"$ref": "#/components/schemas/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/components/schemas/A"}, "n": {"type": "integer"}}},
        }));
        let out = check(
            &document,
            json!({"type": "array", "items": {"$ref": "#/components/schemas/A"}}),
            Direction::Request,
            &[json!([{"b": {"a": {"b": {"n": 1}}}}])],
            &[json!([{"b": {"a": {"b": {"n": "x"}}}}])],
        );
        let names: Vec<&String> = out["definitions"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["A", "B"]);
    }

    #[test]
    fn ref_into_request_bodies_and_escapes() {
        let document = json!({
            "openapi": "3.0.3",
            "paths": {},
            "components": {
                "requestBodies": {
                    "NewPet": {"content": {"application/json": {"schema": {
                        "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}},
                    }}}},
                },
                "schemas": {
                    "a/b~c": {"type": "integer"},
                    "with space": {"type": "boolean"},
                },
            },
        });
        let out = check(
            &document,
            json!({"$ref": "#/components/requestBodies/NewPet/content/application~1json/schema"}),
            Direction::Request,
            &[json!({"name": "rex"})],
            &[json!({})],
        );
        let names: Vec<&String> = out["definitions"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["requestBodies.NewPet.content.application_json.schema"]);
        // `~1`, `~0`, and percent-encoding.
        let out = check(
            &document,
            json!({"type": "array", "items": {"$ref": "#/components/schemas/a~1b~0c"}, "maxItems": 2}),
            Direction::Request,
            &[json!([1, 2])],
            &[json!(["1"])],
        );
        assert_eq!(out["items"]["$ref"], "#/definitions/a_b_c");
        let out = check(
            &document,
            json!({"properties": {
                "x": {"$ref": "#/components/schemas/with%20space"},
                "y": {"$ref": "#/components/schemas/with space"},
            }}),
            Direction::Request,
            &[json!({"x": true, "y": false})],
            &[json!({"x": 1})],
        );
        // Both spellings are one definition.
        assert_eq!(out["definitions"].as_object().unwrap().len(), 1);
        assert_eq!(out["properties"]["x"], out["properties"]["y"]);
    }

    #[test]
    fn sanitised_names_stay_unique() {
        let document = doc(json!({
            "a b": {"type": "integer"},
            "a_b": {"type": "string"},
        }));
        let out = check(
            &document,
            json!({"properties": {
                "x": {"$ref": "#/components/schemas/a b"},
                "y": {"$ref": "#/components/schemas/a_b"},
            }}),
            Direction::Request,
            &[json!({"x": 1, "y": "s"})],
            &[json!({"x": "s"}), json!({"y": 1})],
        );
        assert_eq!(out["properties"]["x"]["$ref"], "#/definitions/a_b");
        assert_eq!(out["properties"]["y"]["$ref"], "#/definitions/a_b_2");
    }

    fn pet_document() -> Value {
        doc(json!({
            "Id": {"type": "integer", "readOnly": true},
            "Pet": {
                "type": "object",
                "required": ["id", "name", "password"],
                "properties": {
                    "id": {"$ref": "#/components/schemas/Id"},
                    "created": {"type": "string", "format": "date-time", "readOnly": true},
                    "name": {"type": "string"},
                    "password": {"type": "string", "writeOnly": true},
                },
            },
        }))
    }

    #[test]
    fn read_only_refused_in_request_allowed_in_response() {
        let document = pet_document();
        let schema = json!({"$ref": "#/components/schemas/Pet"});
        let out = check(
            &document,
            schema.clone(),
            Direction::Request,
            &[json!({"name": "rex", "password": "pw"})],
            &[
                json!({"id": 1, "name": "rex", "password": "pw"}),
                json!({"name": "rex", "password": "pw", "created": "2024-01-01T00:00:00Z"}),
                json!({"name": "rex"}),
            ],
        );
        assert_eq!(out["definitions"]["Pet"]["required"], json!(["name", "password"]));
        assert_eq!(out["definitions"]["Pet"]["properties"]["id"], json!({"not": {}}));
        check(
            &document,
            schema,
            Direction::Response,
            &[json!({"id": 1, "name": "rex", "password": "pw", "created": "2024-01-01T00:00:00Z"})],
            &[
                json!({"name": "rex", "password": "pw"}),
                json!({"id": "1", "name": "rex"}),
            ],
        );
    }

    #[test]
    fn write_only_not_required_in_response() {
        let document = pet_document();
        let schema = json!({"$ref": "#/components/schemas/Pet"});
        let out = check(
            &document,
            schema.clone(),
            Direction::Response,
            &[
                json!({"id": 1, "name": "rex"}),
                json!({"id": 1, "name": "rex", "password": "pw"}),
            ],
            &[json!({"id": 1, "name": "rex", "password": 5})],
        );
        assert_eq!(out["definitions"]["Pet"]["required"], json!(["id", "name"]));
        // Still required in a request.
        check(&document, schema, Direction::Request, &[], &[json!({"name": "rex"})]);
    }

    #[test]
    fn read_only_through_all_of() {
        // A schema that extends Pet and repeats the requirement in an inline member.
        let document = pet_document();
        let schema = json!({"allOf": [
            {"$ref": "#/components/schemas/Pet"},
            {"required": ["id", "tag"], "properties": {"tag": {"type": "string"}}},
        ]});
        let out = check(
            &document,
            schema.clone(),
            Direction::Request,
            &[json!({"name": "rex", "password": "pw", "tag": "t"})],
            &[
                json!({"name": "rex", "password": "pw"}),
                json!({"id": 1, "name": "rex", "password": "pw", "tag": "t"}),
            ],
        );
        assert_eq!(out["allOf"][1]["required"], json!(["tag"]));
        check(
            &document,
            schema,
            Direction::Response,
            &[json!({"id": 1, "name": "rex", "tag": "t"})],
            &[json!({"name": "rex", "tag": "t"})],
        );
        // In a oneOf, a branch that requires a read-only property is a branch a request cannot take.
        let schema = json!({
            "properties": {"id": {"type": "integer", "readOnly": true}, "name": {"type": "string"}},
            "oneOf": [{"required": ["id"]}, {"required": ["name"]}],
        });
        check(
            &document,
            schema.clone(),
            Direction::Request,
            &[json!({"name": "x"})],
            &[json!({"id": 1}), json!({})],
        );
        check(
            &document,
            schema,
            Direction::Response,
            &[json!({"id": 1}), json!({"name": "x"})],
            &[json!({"id": 1, "name": "x"})],
        );
        // A `required` left empty is dropped (Draft 4 refuses `required: []`).
        let out = convert(
            &doc(json!({})),
            json!({"required": ["id"], "properties": {"id": {"type": "integer", "readOnly": true}}}),
            Direction::Request,
        );
        assert_eq!(out, json!({"properties": {"id": {"not": {}}}}));
    }

    #[test]
    fn integer_formats() {
        let int32 = [json!(-2_147_483_648_i64), json!(0), json!(2_147_483_647_i64)];
        let beyond = [json!(-2_147_483_649_i64), json!(2_147_483_648_i64)];
        let out = check(
            &doc(json!({})),
            json!({"type": "integer", "format": "int32"}),
            Direction::Request,
            &int32,
            &beyond,
        );
        assert_eq!(
            out,
            json!({"type": "integer", "minimum": -2_147_483_648_i64, "maximum": 2_147_483_647})
        );
        // A tighter bound stays; a looser one is narrowed.
        let out = check(
            &doc(json!({})),
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 1e12, "exclusiveMaximum": true}),
            Direction::Request,
            &[json!(1), json!(2_147_483_647_i64)],
            &[json!(0), json!(2_147_483_648_i64)],
        );
        assert_eq!(out, json!({"type": "integer", "minimum": 1, "maximum": 2_147_483_647}));
        let out = check(
            &doc(json!({})),
            json!({"type": "integer", "format": "int64"}),
            Direction::Request,
            &[json!(i64::MIN), json!(i64::MAX)],
            &[json!(u64::MAX), json!(1.5)],
        );
        assert_eq!(out["minimum"], json!(i64::MIN));
        assert_eq!(out["maximum"], json!(i64::MAX));
        // An exclusive bound without its bound means nothing (and Draft 4 refuses it).
        assert_eq!(
            convert(
                &doc(json!({})),
                json!({"type": "number", "exclusiveMinimum": true}),
                Direction::Request
            ),
            json!({"type": "number"})
        );
        // Nullable integers keep the bounds; numbers and strings only lose the format.
        check(
            &doc(json!({})),
            json!({"type": "integer", "format": "int32", "nullable": true}),
            Direction::Request,
            &[json!(5), Value::Null],
            &beyond,
        );
        assert_eq!(
            convert(
                &doc(json!({})),
                json!({"type": "number", "format": "int32"}),
                Direction::Request
            ),
            json!({"type": "number"})
        );
        assert_eq!(
            convert(
                &doc(json!({})),
                json!({"type": "string", "format": "int64"}),
                Direction::Request
            ),
            json!({"type": "string"})
        );
    }

    #[test]
    fn string_formats() {
        let d = doc(json!({}));
        check(
            &d,
            json!({"type": "string", "format": "email"}),
            Direction::Request,
            &[json!("a@example.com")],
            &[json!("not an email")],
        );
        check(
            &d,
            json!({"type": "string", "format": "date-time"}),
            Direction::Request,
            &[json!("2024-05-06T07:08:09Z"), json!("2024-05-06T07:08:09.5+02:00")],
            &[json!("2024-05-06"), json!("yesterday")],
        );
        check(
            &d,
            json!({"type": "string", "format": "date"}),
            Direction::Request,
            &[json!("2024-05-06")],
            &[json!("2024-13-06")],
        );
        let out = check(
            &d,
            json!({"type": "string", "format": "uuid"}),
            Direction::Request,
            &[
                json!("123e4567-e89b-12d3-a456-426614174000"),
                json!("123E4567-E89B-12D3-A456-426614174000"),
            ],
            &[
                json!("123e4567e89b12d3a456426614174000"),
                json!("not-a-uuid"),
                json!("123e4567-e89b-12d3-a456-4266141740000"),
            ],
        );
        assert_eq!(out["pattern"], UUID_PATTERN);
        // uuid with a pattern of its own: both apply.
        check(
            &d,
            json!({"type": "string", "format": "uuid", "pattern": "^0"}),
            Direction::Request,
            &[json!("023e4567-e89b-12d3-a456-426614174000")],
            &[json!("123e4567-e89b-12d3-a456-426614174000"), json!("0")],
        );
        for format in ["ipv4", "ipv6", "hostname", "uri"] {
            check(
                &d,
                json!({"type": "string", "format": format}),
                Direction::Request,
                &[],
                &[json!("::not valid::")],
            );
        }
        // Formats that check nothing are dropped.
        for format in [
            "byte",
            "binary",
            "password",
            "float",
            "double",
            "unix-time",
            "uri-reference",
            "made-up",
        ] {
            let out = convert(&d, json!({"type": "string", "format": format}), Direction::Request);
            assert_eq!(out, json!({"type": "string"}), "{format}");
        }
    }

    #[test]
    fn unknown_formats_are_ignored_by_jsonschema() {
        // Why dropping unknown formats is a choice, not a need: jsonschema 0.61 ignores them by default...
        let v = jsonschema::draft4::options()
            .should_validate_formats(true)
            .build(&json!({"format": "made-up"}))
            .unwrap();
        assert!(v.is_valid(&json!("anything")));
        // ...and does not know `uuid` under Draft 4 (hence the pattern).
        assert!(
            jsonschema::draft4::new(&json!({"format": "uuid"}))
                .unwrap()
                .is_valid(&json!("x"))
        );
        // ...but refuses them when told not to ignore them.
        assert!(
            jsonschema::draft4::options()
                .should_ignore_unknown_formats(false)
                .build(&json!({"format": "made-up"}))
                .is_err()
        );
    }

    #[test]
    fn combinators() {
        let document = doc(json!({
            "Cat": {"type": "object", "required": ["meows"], "properties": {"meows": {"type": "boolean"}}},
            "Dog": {"type": "object", "required": ["barks"], "properties": {"barks": {"type": "boolean"}}},
        }));
        check(
            &document,
            json!({
                "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
                "discriminator": {"propertyName": "kind"},
            }),
            Direction::Request,
            &[json!({"meows": true}), json!({"barks": false})],
            &[json!({"meows": true, "barks": true}), json!({}), json!({"meows": 1})],
        );
        check(
            &document,
            json!({"anyOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}]}),
            Direction::Request,
            &[json!({"meows": true}), json!({"meows": true, "barks": true})],
            &[json!({})],
        );
        check(
            &document,
            json!({"allOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}]}),
            Direction::Request,
            &[json!({"meows": true, "barks": true})],
            &[json!({"meows": true})],
        );
        check(
            &document,
            json!({"not": {"$ref": "#/components/schemas/Cat"}}),
            Direction::Request,
            &[json!({"barks": true})],
            &[json!({"meows": true})],
        );
        // An empty allOf holds for everything; an empty oneOf is an error.
        assert_eq!(convert(&document, json!({"allOf": []}), Direction::Request), json!({}));
        let e = to_json_schema(&document, &json!({"oneOf": []}), "/x", Direction::Request).unwrap_err();
        assert_eq!(e.pointer, "/x/oneOf");
    }

    #[test]
    fn additional_properties() {
        let d = doc(json!({}));
        let out = check(
            &d,
            json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false}),
            Direction::Request,
            &[json!({"a": 1}), json!({})],
            &[json!({"a": 1, "b": 2})],
        );
        assert_eq!(out["additionalProperties"], json!(false));
        check(
            &d,
            json!({"type": "object", "additionalProperties": {"type": "integer", "format": "int32"}}),
            Direction::Request,
            &[json!({"a": 1})],
            &[json!({"a": "1"}), json!({"a": 2_147_483_648_i64})],
        );
        check(
            &d,
            json!({"type": "object", "additionalProperties": true}),
            Direction::Request,
            &[json!({"a": 1})],
            &[],
        );
    }

    #[test]
    fn boolean_schemas() {
        let d = doc(json!({"Nothing": false, "Anything": true}));
        let out = check(
            &d,
            json!({"properties": {"yes": true, "no": false}}),
            Direction::Request,
            &[json!({"yes": 1}), json!({})],
            &[json!({"no": 1})],
        );
        assert_eq!(out, json!({"properties": {"yes": {}, "no": {"not": {}}}}));
        check(&d, json!(true), Direction::Request, &[json!(1), Value::Null], &[]);
        check(&d, json!(false), Direction::Request, &[], &[json!(1), Value::Null]);
        check(
            &d,
            json!({"type": "array", "items": {"$ref": "#/components/schemas/Nothing"}}),
            Direction::Request,
            &[json!([])],
            &[json!([1])],
        );
        check(
            &d,
            json!({"items": true, "not": false}),
            Direction::Request,
            &[json!([1])],
            &[],
        );
    }

    #[test]
    fn drops_annotations_and_extensions() {
        let out = convert(
            &doc(json!({})),
            json!({
                "type": "object",
                "title": "T", "description": "D", "default": {}, "example": {"a": 1},
                "externalDocs": {"url": "https://example.com"}, "deprecated": true,
                "xml": {"name": "t"}, "x-internal": true, "discriminator": {"propertyName": "a"},
                "readOnly": false, "writeOnly": false,
                "properties": {"a": {"type": "string", "x-order": 1, "description": "A"}},
            }),
            Direction::Request,
        );
        assert_eq!(out, json!({"type": "object", "properties": {"a": {"type": "string"}}}));
        // Siblings of `$ref` are ignored (`nullable` aside).
        let d = doc(json!({"S": {"type": "string"}}));
        let out = convert(
            &d,
            json!({"$ref": "#/components/schemas/S", "maxLength": 1}),
            Direction::Request,
        );
        assert_eq!(
            out,
            json!({"$ref": "#/definitions/S", "definitions": {"S": {"type": "string"}}})
        );
    }

    #[test]
    fn errors_have_pointers() {
        let d = doc(json!({
            "Pet": {"type": "object", "properties": {"tag": {"$ref": "#/components/schemas/Missing"}}},
            "Loop": {"$ref": "#/components/schemas/Loop2"},
            "Loop2": {"$ref": "#/components/schemas/Loop"},
            "Bad": {"type": "object", "properties": {"n": {"type": "integer", "exclusiveMinimum": 5}}},
        }));
        let err =
            |schema: Value| to_json_schema(&d, &schema, "/paths/~1pets/post/schema", Direction::Request).unwrap_err();
        let e = err(json!({"$ref": "#/components/schemas/Pet"}));
        assert_eq!(e.pointer, "/components/schemas/Pet/properties/tag/$ref");
        assert!(e.message.contains("points to nothing"), "{e}");
        let e = err(json!({"items": {"$ref": "#/components/schemas/Nope"}}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/items/$ref");
        let e = err(json!({"$ref": "other.yaml#/components/schemas/Pet"}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/$ref");
        assert!(e.message.contains("only local references"), "{e}");
        let e = err(json!({"$ref": "#/components/schemas/Loop"}));
        assert!(e.message.contains("cycle"), "{e}");
        let e = err(json!({"$ref": "#/components/schemas/Bad"}));
        assert_eq!(e.pointer, "/components/schemas/Bad/properties/n/exclusiveMinimum");
        let e = err(json!({"type": "String"}));
        assert!(e.message.contains("lower case (`string`)"), "{e}");
        let e = err(json!({"type": "strin"}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/type");
        let e = err(json!({"pattern": "(unclosed"}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/pattern");
        let e = err(json!({"properties": {"a/b": {"required": "x"}}}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/properties/a~1b/required");
        let e = err(json!({"enum": []}));
        assert_eq!(e.pointer, "/paths/~1pets/post/schema/enum");
        assert_eq!(e.to_string(), e.message);
    }

    #[test]
    fn deterministic() {
        let document = pet_document();
        let mut components = document["components"]["schemas"].clone();
        for i in 0..20 {
            components[format!("S{i}")] = json!({
                "type": "object",
                "properties": {
                    "next": {"$ref": format!("#/components/schemas/S{}", (i * 7 + 3) % 20)},
                    "pet": {"$ref": "#/components/schemas/Pet"},
                    "n": {"type": "integer", "format": "int32", "nullable": true},
                },
            });
        }
        let document = doc(components);
        let schema = json!({"oneOf": [{"$ref": "#/components/schemas/S0"}, {"$ref": "#/components/schemas/S5"}]});
        let first = serde_json::to_string(&convert(&document, schema.clone(), Direction::Request)).unwrap();
        for _ in 0..5 {
            let again = serde_json::to_string(&convert(&document, schema.clone(), Direction::Request)).unwrap();
            assert_eq!(first, again);
        }
        validator(jsonschema::draft4::options(), &serde_json::from_str(&first).unwrap());
    }

    #[test]
    fn no_panic_on_garbage() {
        let odd = [
            Value::Null,
            json!(1),
            json!("string"),
            json!([]),
            json!([{"type": "string"}]),
            json!({"$ref": 1}),
            json!({"$ref": ""}),
            json!({"$ref": "#"}),
            json!({"$ref": "#/"}),
            json!({"$ref": "#components"}),
            json!({"$ref": "#/components/schemas/~2"}),
            json!({"$ref": "#/components/schemas/%FF"}),
            json!({"$ref": "#/components/schemas/%"}),
            json!({"$ref": "#/paths/0"}),
            json!({"$ref": "#/info/title"}),
            json!({"$ref": "#/components/schemas/List/01"}),
            json!({"$ref": "#/components/schemas/List/1"}),
            json!({"$ref": "#/components/schemas/List/+0"}),
            json!({"$ref": "#/components/schemas/Str"}),
            json!({"$ref": "#/components/schemas/Self"}),
            json!({"type": 5}),
            json!({"type": []}),
            json!({"type": ["string", "bogus"]}),
            json!({"type": ["string", "string"], "nullable": true}),
            json!({"type": "null", "nullable": true}),
            json!({"nullable": "yes"}),
            json!({"enum": "a"}),
            json!({"enum": [1, 1, {"a": [1]}, {"a": [1]}]}),
            json!({"required": [1]}),
            json!({"required": ["a", "a"]}),
            json!({"properties": []}),
            json!({"properties": {"a": 1}}),
            json!({"properties": {"a": null}}),
            json!({"items": [true]}),
            json!({"items": "x"}),
            json!({"additionalProperties": 3}),
            json!({"allOf": {}}),
            json!({"allOf": [1]}),
            json!({"not": []}),
            json!({"minimum": "1"}),
            json!({"exclusiveMinimum": true, "exclusiveMaximum": false}),
            json!({"type": "String"}),
            json!({"type": ["integer", "Null"]}),
            json!({"maxLength": -1}),
            json!({"maxLength": 1.5}),
            json!({"maxLength": 2.0}),
            json!({"maxLength": 1e300}),
            json!({"multipleOf": 0}),
            json!({"format": 1}),
            json!({"format": "int32", "type": ["integer", "null"], "minimum": "x"}),
            json!({"format": "int32", "type": "integer", "minimum": 1.7976931348623157e308}),
            json!({"format": "uuid", "allOf": 3}),
            json!({"pattern": 3}),
            json!({"pattern": "[[["}),
            json!({"readOnly": "yes", "properties": {"a": {"readOnly": 1, "$ref": 3}}}),
            json!({"allOf": [{"$ref": "#/components/schemas/Self"}], "required": ["a"]}),
            json!({"allOf": [{"$ref": 7}, {"$ref": "#/nowhere"}, "x"], "required": ["a"]}),
        ];
        let documents = [
            doc(
                json!({"List": [1, {"type": "string"}], "Str": "s", "Self": {"allOf": [{"$ref": "#/components/schemas/Self"}]}}),
            ),
            json!(null),
            json!([]),
            json!({"components": 1}),
        ];
        for document in &documents {
            for schema in &odd {
                for direction in [Direction::Request, Direction::Response] {
                    if let Ok(out) = to_json_schema(document, schema, "", direction) {
                        // Whatever converts, compiles.
                        assert_eq!(check_compiles(&out), Ok(()), "{schema} → {out}");
                        let _ = form_fields(&out);
                    }
                    let _ = form_fields(schema);
                }
            }
        }
        // Deep nesting is refused, not overflowed.
        let mut deep = json!({"type": "string"});
        for _ in 0..1000 {
            deep = json!({"not": deep});
        }
        let e = to_json_schema(&documents[0], &deep, "", Direction::Request).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        let _ = form_fields(&deep);
        let mut deep_refs = Map::new();
        for i in 0..100 {
            deep_refs.insert(
                format!("R{i}"),
                json!({"$ref": format!("#/components/schemas/R{}", i + 1)}),
            );
        }
        deep_refs.insert(String::from("R100"), json!({"type": "string"}));
        let e = to_json_schema(
            &doc(Value::Object(deep_refs)),
            &json!({"$ref": "#/components/schemas/R0"}),
            "",
            Direction::Request,
        );
        assert!(e.is_err());
    }

    #[test]
    fn check_compiles_reports() {
        assert!(check_compiles(&json!({"type": "string"})).is_ok());
        let e = check_compiles(&json!({"properties": {"a": {"minLength": -1}}})).unwrap_err();
        assert!(e.contains("/properties/a/minLength"), "{e}");
        assert!(check_compiles(&json!({"$ref": "#/definitions/Missing"})).is_err());
    }

    #[test]
    fn form_fields_types() {
        let document = doc(json!({
            "Count": {"type": "integer", "format": "int32"},
            "Base": {"type": "object", "properties": {"base": {"type": "boolean"}}},
            "Form": {
                "allOf": [{"$ref": "#/components/schemas/Base"}],
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "age": {"$ref": "#/components/schemas/Count"},
                    "score": {"type": "number", "nullable": true},
                    "maybe": {"type": "integer", "nullable": true},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "ids": {"type": "array", "items": {"$ref": "#/components/schemas/Count"}},
                    "flags": {"type": ["array", "null"], "items": {"type": "boolean"}},
                    "level": {"enum": [1, 2, 3]},
                    "either": {"type": ["integer", "string"]},
                    "nested": {"type": "object", "properties": {"x": {"type": "integer"}}},
                    "wrapped": {"allOf": [{"$ref": "#/components/schemas/Count"}]},
                    "nullref": {"$ref": "#/components/schemas/Count", "nullable": true},
                    "any": {},
                },
            },
        }));
        let converted = convert(
            &document,
            json!({"$ref": "#/components/schemas/Form"}),
            Direction::Request,
        );
        use FormScalar::{Boolean, Integer, Number, String as Str};
        let expected = [
            ("name", Str, false),
            ("age", Integer, false),
            ("score", Number, false),
            ("maybe", Integer, false),
            ("tags", Str, true),
            ("ids", Integer, true),
            ("flags", Boolean, true),
            ("level", Integer, false),
            ("either", Str, false),
            ("nested", Str, false),
            ("wrapped", Integer, false),
            ("nullref", Integer, false),
            ("any", Str, false),
            ("base", Boolean, false),
        ];
        assert_form_fields(&converted, &expected);
        // An inline schema works the same.
        let inline = convert(
            &document,
            json!({"type": "object", "properties": {"n": {"type": "integer"}}}),
            Direction::Request,
        );
        assert_eq!(
            form_fields(&inline),
            vec![FormField {
                name: "n".to_owned(),
                scalar: Integer,
                list: false
            }]
        );
        assert!(form_fields(&json!({"type": "string"})).is_empty());
        // A nullable reference at the top.
        let nullable = convert(
            &document,
            json!({"$ref": "#/components/schemas/Base", "nullable": true}),
            Direction::Request,
        );
        assert_eq!(
            form_fields(&nullable),
            vec![FormField {
                name: "base".to_owned(),
                scalar: Boolean,
                list: false
            }]
        );
    }

    /// The small files of the real-world corpus (the big ones take minutes in debug: see `corpus`).
    #[test]
    fn corpus_small_files() {
        corpus_files(200_000);
    }

    /// Every JSON request and response body schema of the real-world specs beside the checkout, converted and
    /// compiled: OpenAPI 3.0 documents' as Draft 4, 3.1 documents' as JSON Schema 2020-12 (as the generator does).
    #[test]
    #[ignore = "about three minutes in debug (stripe alone is most of it); run with --ignored --nocapture"]
    fn corpus() {
        corpus_files(u64::MAX);
    }

    /// Converts and compiles every JSON (and form) body schema in the corpus files of at most `max_bytes`.
    fn corpus_files(max_bytes: u64) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs-corpus");
        let mut files: Vec<std::path::PathBuf> = Vec::new();
        for dir in [root.clone(), root.join("openapi-3.1")] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let small = entry.metadata().is_ok_and(|m| m.len() <= max_bytes);
                if small
                    && path
                        .extension()
                        .is_some_and(|e| e == "json" || e == "yaml" || e == "yml")
                {
                    files.push(path);
                }
            }
        }
        files.sort();
        // `SCHEMA_CORPUS=stripe` runs only the files whose name contains `stripe`.
        if let Ok(filter) = std::env::var("SCHEMA_CORPUS") {
            files.retain(|f| f.to_string_lossy().contains(&filter));
        }
        if files.is_empty() {
            eprintln!("no corpus at {}: skipped", root.display());
            return;
        }
        let mut totals = (0usize, 0usize, 0usize); // converted, refused, not compiling
        let mut reasons: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for file in &files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(file).unwrap();
            let document: Value = if text.trim_start().starts_with('{') {
                serde_json::from_str(&text).unwrap()
            } else {
                // serde_json's `Value` refuses YAML integers beyond 64 bits (openai writes one): read as the
                // parser reads them, as floats.
                let read = serde_yaml::from_str::<Lenient>(&text).map(|l| l.0);
                match read {
                    Ok(value) => value,
                    Err(e) => {
                        println!("{name}: unreadable as serde_json::Value through serde_yaml: {e}");
                        continue;
                    }
                }
            };
            let Some(version) = document.get("openapi").and_then(Value::as_str) else {
                continue;
            };
            let v31 = version.starts_with("3.1");
            let started = std::time::Instant::now();
            let bodies = body_schemas(&document);
            let (mut ok, mut refused, mut broken, mut definitions, mut bytes) = (0, 0, 0, 0, 0);
            let (mut converting, mut compiling) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
            for (pointer, direction, form) in &bodies {
                let schema = document.pointer(pointer).unwrap();
                let t = std::time::Instant::now();
                let result = if v31 {
                    to_json_schema_2020_12(&document, schema, pointer, *direction)
                } else {
                    to_json_schema(&document, schema, pointer, *direction)
                };
                converting += t.elapsed();
                match result {
                    Ok(out) => {
                        definitions += out
                            .get("definitions")
                            .or_else(|| out.get("$defs"))
                            .and_then(Value::as_object)
                            .map_or(0, Map::len);
                        let text = serde_json::to_string(&out).unwrap();
                        bytes += text.len();
                        // `SCHEMA_DUMP=~1pet/post` prints the converted schemas of the bodies whose pointer has it.
                        if std::env::var("SCHEMA_DUMP").is_ok_and(|d| pointer.contains(&d)) {
                            println!("{pointer} ({direction:?}):\n{text}");
                        }
                        let _ = form.then(|| form_fields(&out));
                        let t = std::time::Instant::now();
                        let compiled = check_compiles(&out);
                        compiling += t.elapsed();
                        match compiled {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                broken += 1;
                                println!("  {name} {pointer}: does not compile: {e}");
                                *reasons.entry(format!("compile: {e}")).or_default() += 1;
                            }
                        }
                    }
                    Err(e) => {
                        refused += 1;
                        println!("  {name} {pointer}: refused at {}: {}", e.pointer, e.message);
                        *reasons.entry(e.message.clone()).or_default() += 1;
                    }
                }
            }
            println!(
                "{name} ({version}): {} bodies: {ok} converted and compiled, {refused} refused, {broken} not compiling; {definitions} definitions, {bytes} bytes in all; {:?} ({converting:?} converting, {compiling:?} compiling)",
                bodies.len(),
                started.elapsed()
            );
            totals.0 += ok;
            totals.1 += refused;
            totals.2 += broken;
        }
        println!(
            "total: {} converted and compiled, {} refused, {} not compiling",
            totals.0, totals.1, totals.2
        );
        for (reason, n) in &reasons {
            println!("  {n} × {reason}");
        }
        assert_eq!(totals.2, 0, "every converted schema compiles");
    }

    /// A JSON value that also accepts 128-bit integers (as floats), as `parse::document` reads YAML.
    struct Lenient(Value);

    impl<'de> serde::Deserialize<'de> for Lenient {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(LenientVisitor).map(Lenient)
        }
    }

    struct LenientVisitor;

    #[allow(clippy::cast_precision_loss)]
    impl<'de> serde::de::Visitor<'de> for LenientVisitor {
        type Value = Value;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any YAML value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
            Ok(i64::try_from(v).map_or_else(|_| json!(v as f64), Value::from))
        }
        fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
            Ok(u64::try_from(v).map_or_else(|_| json!(v as f64), Value::from))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            Ok(json!(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            serde::Deserialize::deserialize(d).map(|l: Lenient| l.0)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::new();
            while let Some(Lenient(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Map::new();
            while let Some((key, Lenient(value))) = map.next_entry::<String, Lenient>()? {
                out.insert(key, value);
            }
            Ok(Value::Object(out))
        }
    }

    /// The pointer of every JSON (or form) request and response body schema of `document`, once each, with the
    /// direction it is checked in and whether it is a form.
    fn body_schemas(document: &Value) -> Vec<(String, Direction, bool)> {
        let mut out: Vec<(String, Direction, bool)> = Vec::new();
        let follow = |mut pointer: String| {
            for _ in 0..8 {
                match document
                    .pointer(&pointer)
                    .and_then(|v| v.get("$ref"))
                    .and_then(Value::as_str)
                {
                    Some(r) => pointer = r.trim_start_matches('#').to_owned(),
                    None => break,
                }
            }
            pointer
        };
        let content = |base: &str, direction: Direction, out: &mut Vec<(String, Direction, bool)>| {
            let Some(media) = document.pointer(&format!("{base}/content")).and_then(Value::as_object) else {
                return;
            };
            for (media_type, object) in media {
                let form = media_type.starts_with("application/x-www-form-urlencoded");
                if (media_type.contains("json") || form) && object.get("schema").is_some() {
                    let pointer = join(&join(&join(base, "content"), media_type), "schema");
                    if !out.iter().any(|(p, d, _)| *p == pointer && *d == direction) {
                        out.push((pointer, direction, form));
                    }
                }
            }
        };
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return out;
        };
        for (template, item) in paths {
            let Some(item) = item.as_object() else { continue };
            for (method, operation) in item {
                if !["get", "put", "post", "delete", "options", "head", "patch", "trace"].contains(&method.as_str())
                    || !operation.is_object()
                {
                    continue;
                }
                let op = join(&join("/paths", template), method);
                if operation.get("requestBody").is_some() {
                    content(&follow(join(&op, "requestBody")), Direction::Request, &mut out);
                }
                if let Some(responses) = operation.get("responses").and_then(Value::as_object) {
                    for code in responses.keys() {
                        content(
                            &follow(join(&join(&op, "responses"), code)),
                            Direction::Response,
                            &mut out,
                        );
                    }
                }
            }
        }
        out
    }
}
