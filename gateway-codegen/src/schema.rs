//! OpenAPI 3.0 Schema Objects → self-contained JSON Schema (Draft 4), for the runtime's body validation; OpenAPI 3.1
//! ones (JSON Schema 2020-12 already) → self-contained JSON Schema 2020-12 ([`to_json_schema_2020_12`], in
//! `schema/draft2020.rs`).
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

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use serde_json::{Map, Number, Value, json};

use crate::locate::escape_segment;

mod draft2020;

pub use draft2020::{is_dialect_2020_12, to_json_schema_2020_12, written_at};

/// The `$schema` of JSON Schema 2020-12, which the root of every converted 3.1 schema carries: the runtime compiles
/// a schema with it as 2020-12, and one without it as Draft 4.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Inline schemas nested deeper than this are refused (no published spec comes close; it keeps recursion bounded).
const MAX_DEPTH: usize = 100;
/// References followed in one chain (`A` → `B` → ...) before it is declared a cycle.
const MAX_REF_CHAIN: usize = 64;
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

fn error(pointer: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
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
    let mut converter = Converter {
        document,
        direction,
        definitions: Definitions::default(),
    };
    let root = converter.convert(schema, at, 0, &BTreeSet::new())?;
    let mut definitions = Map::new();
    while let Some((pointer, value, name)) = converter.definitions.pending.pop_front() {
        let converted = converter.convert(value, &pointer, 0, &BTreeSet::new())?;
        definitions.insert(name, converted);
    }
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

/// One conversion: the references met so far and the definitions still to convert.
struct Converter<'a> {
    document: &'a Value,
    direction: Direction,
    definitions: Definitions<'a>,
}

/// The referenced schemas of one conversion: each named once, queued for conversion on first use.
#[derive(Default)]
struct Definitions<'a> {
    /// Canonical pointer of each referenced schema → its name under `definitions` (`$defs`).
    names: HashMap<String, String>,
    /// Names given out.
    taken: HashSet<String>,
    /// Referenced schemas not converted yet: pointer, value, name.
    pending: VecDeque<(String, &'a Value, String)>,
}

impl<'a> Definitions<'a> {
    /// The name of the schema at `pointer`, given (and the schema queued) on first use: the component's name for
    /// `#/components/schemas/<name>`, the pointer's segments joined by `.` otherwise, sanitised and made unique.
    fn name(&mut self, pointer: String, target: &'a Value) -> String {
        if let Some(name) = self.names.get(&pointer) {
            return name.clone();
        }
        let segments = split_pointer(&pointer);
        let wanted: Vec<&str> = match segments.as_slice() {
            [components, schemas, name] if components == "components" && schemas == "schemas" => vec![name.as_str()],
            [components, rest @ ..] if components == "components" && !rest.is_empty() => {
                rest.iter().map(String::as_str).collect()
            }
            all => all.iter().map(String::as_str).collect(),
        };
        let mut base: String = wanted
            .join(".")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() {
            base = String::from("schema");
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        self.names.insert(pointer.clone(), name.clone());
        self.pending.push_back((pointer, target, name.clone()));
        name
    }
}

impl<'a> Converter<'a> {
    /// Converts the schema `value` written at `at`. `inherited` are property names the enclosing schema flags for
    /// this direction (its `readOnly` or `writeOnly` properties), which the `required` of an `allOf` member must not
    /// demand either. (Not so for `oneOf`/`anyOf` members: there a `required` chooses between branches, and a
    /// branch that demands a property the message cannot carry is one the message cannot take.)
    fn convert(
        &mut self,
        value: &'a Value,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Value, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(error(at, format!("schemas are nested more than {MAX_DEPTH} deep here")));
        }
        match value {
            Value::Bool(true) => Ok(json!({})),
            Value::Bool(false) => Ok(json!({"not": {}})),
            Value::Object(map) => self.convert_object(map, at, depth, inherited),
            other => Err(error(
                at,
                format!("a schema must be an object (or `true`/`false`), not {}", kind(other)),
            )),
        }
    }

    fn convert_object(
        &mut self,
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
            let (name, chain_nullable) = self.reference(reference, at)?;
            let out = json!({ "$ref": format!("#/definitions/{name}") });
            return Ok(if nullable || chain_nullable { or_null(out) } else { out });
        }

        let flag = self.direction.flag();
        let mut flagged = inherited.clone();
        self.flagged_properties(map, flag, &mut flagged, &mut HashSet::new(), 0);

        let mut out = Map::new();
        for (key, value) in map {
            let here = join(at, key);
            match key.as_str() {
                "type" => {
                    out.insert(key.clone(), check_type(value, &here)?);
                }
                "enum" => {
                    let Value::Array(values) = value else {
                        return Err(error(&here, format!("`enum` must be an array, not {}", kind(value))));
                    };
                    if values.is_empty() {
                        return Err(error(&here, "`enum` is empty: no value could ever match"));
                    }
                    let mut unique: Vec<Value> = Vec::with_capacity(values.len());
                    for v in values {
                        if !unique.contains(v) {
                            unique.push(v.clone());
                        }
                    }
                    out.insert(key.clone(), Value::Array(unique));
                }
                "multipleOf" => match value.as_f64() {
                    Some(n) if n > 0.0 => {
                        out.insert(key.clone(), value.clone());
                    }
                    _ => return Err(error(&here, "`multipleOf` must be a number greater than 0")),
                },
                "maximum" | "minimum" => {
                    if !value.is_number() {
                        return Err(error(&here, format!("`{key}` must be a number, not {}", kind(value))));
                    }
                    out.insert(key.clone(), value.clone());
                }
                "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" => {
                    if !value.is_boolean() {
                        return Err(error(
                            &here,
                            format!("`{key}` must be `true` or `false` in OpenAPI 3.0, not {}", kind(value)),
                        ));
                    }
                    out.insert(key.clone(), value.clone());
                }
                "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
                    out.insert(key.clone(), Value::Number(count(value, key, &here)?));
                }
                "pattern" => {
                    let Some(pattern) = value.as_str() else {
                        return Err(error(&here, format!("`pattern` must be a string, not {}", kind(value))));
                    };
                    if let Err(reason) = pattern_compiles(pattern) {
                        return Err(error(
                            &here,
                            format!("`pattern` is not a valid regular expression: {reason}"),
                        ));
                    }
                    out.insert(key.clone(), value.clone());
                }
                "required" => {
                    let Value::Array(names) = value else {
                        return Err(error(
                            &here,
                            format!("`required` must be an array, not {}", kind(value)),
                        ));
                    };
                    let mut kept: Vec<Value> = Vec::with_capacity(names.len());
                    for (i, name) in names.iter().enumerate() {
                        let Some(text) = name.as_str() else {
                            return Err(error(
                                &join(&here, &i.to_string()),
                                format!("`required` lists property names, not {}", kind(name)),
                            ));
                        };
                        if !flagged.contains(text) && !kept.contains(name) {
                            kept.push(name.clone());
                        }
                    }
                    // Draft 4 refuses an empty `required`.
                    if !kept.is_empty() {
                        out.insert(key.clone(), Value::Array(kept));
                    }
                }
                "properties" => {
                    let Value::Object(properties) = value else {
                        return Err(error(
                            &here,
                            format!("`properties` must be an object, not {}", kind(value)),
                        ));
                    };
                    let mut converted = Map::new();
                    for (name, property) in properties {
                        let there = join(&here, name);
                        let schema = if self.direction == Direction::Request && self.is_flagged(property, "readOnly") {
                            json!({"not": {}})
                        } else {
                            self.convert(property, &there, depth + 1, &BTreeSet::new())?
                        };
                        converted.insert(name.clone(), schema);
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                "additionalProperties" => {
                    let schema = match value {
                        Value::Bool(_) => value.clone(),
                        _ => self.convert(value, &here, depth + 1, &BTreeSet::new())?,
                    };
                    out.insert(key.clone(), schema);
                }
                "items" => {
                    if value.is_array() {
                        return Err(error(&here, "`items` must be one schema in OpenAPI 3.0, not an array"));
                    }
                    out.insert(key.clone(), self.convert(value, &here, depth + 1, &BTreeSet::new())?);
                }
                "not" => {
                    out.insert(key.clone(), self.convert(value, &here, depth + 1, &BTreeSet::new())?);
                }
                "allOf" | "anyOf" | "oneOf" => {
                    let Value::Array(members) = value else {
                        return Err(error(&here, format!("`{key}` must be an array, not {}", kind(value))));
                    };
                    if members.is_empty() {
                        if key == "allOf" {
                            continue; // holds for every value
                        }
                        return Err(error(&here, format!("`{key}` is empty: no value could ever match")));
                    }
                    let none = BTreeSet::new();
                    let passed = if key == "allOf" { &flagged } else { &none };
                    let mut converted = Vec::with_capacity(members.len());
                    for (i, member) in members.iter().enumerate() {
                        converted.push(self.convert(member, &join(&here, &i.to_string()), depth + 1, passed)?);
                    }
                    out.insert(key.clone(), Value::Array(converted));
                }
                "format" => {
                    let Some(format) = value.as_str() else {
                        return Err(error(&here, format!("`format` must be a string, not {}", kind(value))));
                    };
                    if CHECKED_FORMATS.contains(&format) {
                        out.insert(key.clone(), value.clone());
                    }
                }
                // Annotations, OpenAPI-only keywords (`nullable` is applied below, `readOnly`/`writeOnly` by the
                // parent), extensions, and anything else a 3.0 Schema Object does not define.
                _ => {}
            }
        }

        match map.get("format").and_then(Value::as_str) {
            Some("uuid") => {
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
            Some("int32") if is_integer(&out) => integer_bounds(&mut out, i32::MIN.into(), i32::MAX.into()),
            Some("int64") if is_integer(&out) => integer_bounds(&mut out, i64::MIN, i64::MAX),
            _ => {}
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

    /// Follows the `$ref` written at `at` to the schema it ends at, gives that schema a name under `definitions`
    /// (queueing it for conversion the first time) and says whether a bare reference on the way was `nullable`.
    fn reference(&mut self, reference: &'a Value, at: &str) -> Result<(String, bool), SchemaError> {
        let mut location = join(at, "$ref");
        let mut reference = reference;
        let mut nullable = false;
        let mut seen = HashSet::new();
        for _ in 0..MAX_REF_CHAIN {
            let Some(text) = reference.as_str() else {
                return Err(error(
                    &location,
                    format!("`$ref` must be a string, not {}", kind(reference)),
                ));
            };
            let (pointer, target) = self.resolve(text, &location)?;
            if !seen.insert(pointer.clone()) {
                return Err(error(
                    &location,
                    format!("`$ref: {text}` is part of a cycle of references that never reaches a schema"),
                ));
            }
            if let Some(map) = target.as_object()
                && let Some(next) = map.get("$ref")
            {
                nullable |= map.get("nullable") == Some(&Value::Bool(true));
                location = join(&pointer, "$ref");
                reference = next;
                continue;
            }
            return Ok((self.name(pointer, target), nullable));
        }
        Err(error(
            &location,
            format!("a chain of more than {MAX_REF_CHAIN} references never reaches a schema"),
        ))
    }

    /// The name under `definitions` of the schema at `pointer`, given (and the schema queued) on first use.
    fn name(&mut self, pointer: String, target: &'a Value) -> String {
        self.definitions.name(pointer, target)
    }

    /// The value a local reference names, with its canonical JSON pointer.
    fn resolve(&self, reference: &str, location: &str) -> Result<(String, &'a Value), SchemaError> {
        resolve_local(self.document, reference, location)
    }

    /// Whether the property schema `schema` (followed through references) has `flag: true`.
    fn is_flagged(&self, schema: &'a Value, flag: &str) -> bool {
        self.follow(schema)
            .is_some_and(|(_, s)| s.get(flag) == Some(&Value::Bool(true)))
    }

    /// `schema` followed through bare references (quietly: a broken one is reported when it is converted), with the
    /// pointer of the schema reached when a reference was followed.
    fn follow(&self, mut schema: &'a Value) -> Option<(Option<String>, &'a Value)> {
        let mut pointer = None;
        for _ in 0..MAX_REF_CHAIN {
            match schema.get("$ref") {
                Some(Value::String(reference)) => {
                    let (p, target) = self.resolve(reference, "").ok()?;
                    pointer = Some(p);
                    schema = target;
                }
                Some(_) => return None,
                None => return Some((pointer, schema)),
            }
        }
        None
    }

    /// Adds to `out` the names of the properties of `map`, and of its `allOf` members (followed through
    /// references), whose schema has `flag: true`.
    fn flagged_properties(
        &self,
        map: &'a Map<String, Value>,
        flag: &str,
        out: &mut BTreeSet<String>,
        visited: &mut HashSet<String>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        if let Some(Value::Object(properties)) = map.get("properties") {
            for (name, property) in properties {
                if self.is_flagged(property, flag) {
                    out.insert(name.clone());
                }
            }
        }
        if let Some(Value::Array(members)) = map.get("allOf") {
            for member in members {
                let Some((pointer, Value::Object(member))) = self.follow(member) else {
                    continue;
                };
                if let Some(pointer) = pointer
                    && !visited.insert(pointer)
                {
                    continue;
                }
                self.flagged_properties(member, flag, out, visited, depth + 1);
            }
        }
    }
}

/// The value the local reference `reference` (written at `location`, for errors) names in `document`, with its
/// canonical JSON pointer.
fn resolve_local<'a>(document: &'a Value, reference: &str, location: &str) -> Result<(String, &'a Value), SchemaError> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(error(
            location,
            format!("`$ref: {reference}` points outside this document; only local references (`#/...`) are supported"),
        ));
    };
    let Some(fragment) = percent_decode(fragment) else {
        return Err(error(
            location,
            format!("`$ref: {reference}` is not valid UTF-8 once percent-decoded"),
        ));
    };
    if !fragment.is_empty() && !fragment.starts_with('/') {
        return Err(error(
            location,
            format!("`$ref: {reference}` is not a JSON pointer (`#/components/schemas/Name`)"),
        ));
    }
    let mut target = document;
    let mut canonical = String::new();
    for raw in fragment.split('/').skip(1) {
        let Some(segment) = unescape(raw) else {
            return Err(error(
                location,
                format!("`$ref: {reference}` has a `~` not followed by `0` or `1`"),
            ));
        };
        let next = match target {
            Value::Object(map) => map.get(&segment),
            Value::Array(items) => index(&segment).and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            return Err(error(
                location,
                format!("`$ref: {reference}` points to nothing in this document"),
            ));
        };
        canonical.push('/');
        canonical.push_str(&escape_segment(&segment));
        target = next;
    }
    Ok((canonical, target))
}

/// `{"anyOf": [{"type": "null"}, schema]}`.
fn or_null(schema: Value) -> Value {
    json!({ "anyOf": [{"type": "null"}, schema] })
}

/// Whether the converted keywords declare an integer (and not also any number).
fn is_integer(out: &Map<String, Value>) -> bool {
    match out.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(types)) => types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "number"),
        _ => false,
    }
}

/// Narrows `minimum`/`maximum` to `[min, max]` where they are absent or looser.
fn integer_bounds(out: &mut Map<String, Value>, min: i64, max: i64) {
    let looser_min = match out.get("minimum").and_then(Value::as_number) {
        None => true,
        Some(n) => compare(n, min) == std::cmp::Ordering::Less,
    };
    if looser_min {
        out.insert(String::from("minimum"), Value::Number(min.into()));
        out.remove("exclusiveMinimum");
    }
    let looser_max = match out.get("maximum").and_then(Value::as_number) {
        None => true,
        Some(n) => compare(n, max) == std::cmp::Ordering::Greater,
    };
    if looser_max {
        out.insert(String::from("maximum"), Value::Number(max.into()));
        out.remove("exclusiveMaximum");
    }
}

/// `n` compared with `bound`, exactly for integers.
fn compare(n: &Number, bound: i64) -> std::cmp::Ordering {
    if let Some(i) = n.as_i64() {
        i.cmp(&bound)
    } else if n.is_u64() {
        std::cmp::Ordering::Greater // beyond i64::MAX
    } else {
        // Floats: an i64 bound as f64 is within one unit, which is as exact as a float bound can be here.
        #[allow(clippy::cast_precision_loss)]
        let bound = bound as f64;
        n.as_f64()
            .and_then(|f| f.partial_cmp(&bound))
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

const TYPES: [&str; 7] = ["array", "boolean", "integer", "number", "null", "object", "string"];

/// `type` as Draft 4 accepts it: one of the seven names, or a non-empty array of distinct ones.
fn check_type(value: &Value, at: &str) -> Result<Value, SchemaError> {
    let known = |t: &str| TYPES.contains(&t);
    match value {
        Value::String(t) if known(t) => Ok(value.clone()),
        Value::Array(types) if !types.is_empty() => {
            let mut unique: Vec<Value> = Vec::with_capacity(types.len());
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    Some(name) if known(name) => {
                        if !unique.contains(t) {
                            unique.push(t.clone());
                        }
                    }
                    _ => return Err(error(&join(at, &i.to_string()), unknown_type(t))),
                }
            }
            Ok(Value::Array(unique))
        }
        _ => Err(error(at, unknown_type(value))),
    }
}

fn unknown_type(value: &Value) -> String {
    if let Some(t) = value.as_str().map(str::to_ascii_lowercase)
        && TYPES.contains(&t.as_str())
    {
        return format!("unknown type {}: types are written in lower case (`{t}`)", short(value));
    }
    format!(
        "unknown type {}: `type` is one of {}",
        short(value),
        TYPES.map(|t| format!("`{t}`")).join(", ")
    )
}

/// A length or count keyword's value: a non-negative integer (`2.0` is read as `2`).
fn count(value: &Value, key: &str, at: &str) -> Result<Number, SchemaError> {
    if let Some(n) = value.as_u64() {
        return Ok(n.into());
    }
    match value.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0 => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = f as u64;
            Ok(n.into())
        }
        _ => Err(error(
            at,
            format!("`{key}` must be a whole number, 0 or more, not {}", short(value)),
        )),
    }
}

/// Whether the runtime can compile `pattern` (the same engine and dialect as for the whole schema).
fn pattern_compiles(pattern: &str) -> Result<(), String> {
    match jsonschema::draft4::new(&json!({ "pattern": pattern })) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// A value's JSON kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as JSON, cut short for messages.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        text.chars().take(60).collect::<String>() + "…"
    } else {
        text
    }
}

/// `base` with one more (escaped) segment.
fn join(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape_segment(segment))
}

/// The unescaped segments of a canonical JSON pointer.
fn split_pointer(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).filter_map(unescape).collect()
}

/// One JSON pointer segment unescaped (`~1` → `/`, `~0` → `~`); `None` for a `~` followed by anything else.
fn unescape(segment: &str) -> Option<String> {
    if !segment.contains('~') {
        return Some(segment.to_owned());
    }
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An array index segment: digits, no leading zero (RFC 6901).
fn index(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if !digits || (segment.len() > 1 && segment.starts_with('0')) {
        return None;
    }
    segment.parse().ok()
}

/// A URI fragment percent-decoded (`%7B` → `{`); a `%` not followed by two hex digits is kept as written.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        if b == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            #[allow(clippy::cast_possible_truncation)]
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A document whose `components.schemas` are `schemas`.
    fn doc(schemas: Value) -> Value {
        json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}, "components": {"schemas": schemas}})
    }

    fn convert(document: &Value, schema: Value, direction: Direction) -> Value {
        to_json_schema(document, &schema, "/test", direction).unwrap()
    }

    fn validator(schema: &Value) -> jsonschema::Validator {
        check_compiles(schema).unwrap();
        jsonschema::draft4::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap()
    }

    /// Converts `schema` and checks each instance is accepted or refused as said.
    fn check(document: &Value, schema: Value, direction: Direction, valid: &[Value], invalid: &[Value]) -> Value {
        let converted = convert(document, schema, direction);
        let v = validator(&converted);
        for instance in valid {
            assert!(v.is_valid(instance), "{instance} should be valid against {converted}");
        }
        for instance in invalid {
            assert!(
                !v.is_valid(instance),
                "{instance} should be invalid against {converted}"
            );
        }
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
        validator(&serde_json::from_str(&first).unwrap());
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
        let fields: Vec<(String, FormScalar, bool)> = form_fields(&converted)
            .into_iter()
            .map(|f| (f.name, f.scalar, f.list))
            .collect();
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
        let expected: Vec<(String, FormScalar, bool)> =
            expected.iter().map(|(n, s, l)| ((*n).to_owned(), *s, *l)).collect();
        assert_eq!(fields, expected);
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
