//! OpenAPI 3.1 Schema Objects → self-contained JSON Schema 2020-12, for the runtime's body validation.
//!
//! A Schema Object of OpenAPI 3.1 is a JSON Schema 2020-12 schema (the OpenAPI dialect only adds annotations), so
//! the conversion keeps what it means and only makes it self-contained and checkable:
//!
//! - The root says `$schema: https://json-schema.org/draft/2020-12/schema`, and the runtime compiles it as 2020-12.
//!   A `$schema` inside a schema may only name 2020-12 or the OpenAPI 3.1 dialect (see [`is_dialect_2020_12`]).
//! - `$ref`: local references only, JSON pointers into the document (in OpenAPI 3.1 the document is a schema's base
//!   URI). Every schema reached goes into the root's `$defs` under a unique name and the reference becomes
//!   `#/$defs/<name>`, so recursive schemas stay finite. Keywords beside a `$ref` apply with it, as 2020-12 says. A
//!   reference to a schema that is only a reference is followed to the schema it ends at (a chain that loops is an
//!   error). `$id` (which would move the base URI of the references under it), anchors and `$dynamicRef` are refused.
//! - Every 2020-12 assertion and applicator is kept, each checked for the shape the 2020-12 meta-schema requires:
//!   `type` (arrays too: `[string, "null"]`), `enum`, `const`, `multipleOf`, `minimum`/`maximum` and the numeric
//!   `exclusiveMinimum`/`exclusiveMaximum`, lengths and counts, `pattern`, `required`, `dependentRequired`,
//!   `properties`, `patternProperties`, `additionalProperties`, `propertyNames`, `dependentSchemas`,
//!   `unevaluatedProperties`, `items`, `prefixItems`, `contains` (with `minContains`/`maxContains`),
//!   `uniqueItems`, `unevaluatedItems`, `allOf`/`anyOf`/`oneOf`/`not`, `if`/`then`/`else`. OpenAPI 3.0's boolean
//!   `exclusiveMinimum: true` is an error with the 3.1 spelling as help.
//! - `readOnly` properties may not be sent in a request (their schema becomes `{"not": {}}`, and they leave
//!   `required` and `dependentRequired`); `writeOnly` ones are not required in a response: as for 3.0. In 3.1 the
//!   flag may also sit beside a `$ref` (`{ $ref: ..., readOnly: true }`).
//! - `format`: the ones `jsonschema` checks under 2020-12 (with its default features off) are kept, `uuid`
//!   included; `int32`/`int64` on integers become `minimum`/`maximum`; every other format is dropped.
//! - Dropped: annotations (`title`, `description`, `default`, `examples`, `deprecated`, `$comment`,
//!   `contentMediaType`, ...), OpenAPI's own keywords (`discriminator`, `xml`, `externalDocs`, `example`),
//!   `nullable` (not a 3.1 keyword: the parser warns where it is written), keywords of older drafts
//!   (`dependencies`, `additionalItems`), `$defs` and `definitions` (their schemas are reached through the
//!   references that use them), `x-*` extensions and anything else 2020-12 does not define.
//!
//! The output is deterministic: keywords keep their order in the document, `$defs` are in the order they were first
//! reached.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value, json};

use super::common::{
    Converter, Dialect, MAX_REF_CHAIN, count, error, join, kind, pattern_compiles, property_names, resolve_local,
    short, unescape,
};
use super::{DRAFT_2020_12, Direction, SchemaError};

/// The formats `jsonschema` 0.61 checks under 2020-12 with its default features off (`idn-*` need `idna`), all of
/// which mean in OpenAPI 3.1 what they mean in JSON Schema.
const CHECKED_FORMATS: &[&str] = &[
    "date",
    "date-time",
    "duration",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "iri",
    "iri-reference",
    "json-pointer",
    "regex",
    "relative-json-pointer",
    "time",
    "uri",
    "uri-reference",
    "uri-template",
    "uuid",
];

/// The keywords the conversion reads (everything else is dropped): a schema with a `$ref` and none of these
/// beside it is only a reference.
const KEYWORDS: &[&str] = &[
    "$ref",
    "$schema",
    "$id",
    "$dynamicRef",
    "$recursiveRef",
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "minContains",
    "maxContains",
    "uniqueItems",
    "pattern",
    "required",
    "dependentRequired",
    "properties",
    "patternProperties",
    "dependentSchemas",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "contains",
    "items",
    "prefixItems",
    "unevaluatedItems",
    "not",
    "if",
    "then",
    "else",
    "allOf",
    "anyOf",
    "oneOf",
    "format",
];

/// The dialect OpenAPI 3.1 documents default to (`jsonSchemaDialect`), before its date or `base`.
const OAS_DIALECT_PREFIX: &str = "https://spec.openapis.org/oas/3.1/dialect/";

/// Whether `uri` (a `jsonSchemaDialect` or a `$schema`) names a dialect whose schemas mean what JSON Schema 2020-12
/// says: 2020-12 itself, or the OpenAPI 3.1 dialect (`https://spec.openapis.org/oas/3.1/dialect/base`, or a dated
/// one), which adds only annotations to it.
pub fn is_dialect_2020_12(uri: &str) -> bool {
    let uri = uri.strip_suffix('#').unwrap_or(uri);
    uri == DRAFT_2020_12
        || uri
            .strip_prefix(OAS_DIALECT_PREFIX)
            .is_some_and(|rest| !rest.is_empty())
}

/// `schema` (a Schema Object of an OpenAPI 3.1 document, as written), written at the JSON pointer `at` of
/// `document` (the whole document, for `$ref` resolution), as a self-contained JSON Schema 2020-12 that says so in
/// its `$schema`. `at` only names places in errors.
///
/// # Errors
///
/// A [`SchemaError`] at the first problem met: a remote, dangling or anchor `$ref`, a cycle of bare references, a
/// keyword with a value 2020-12 refuses (`exclusiveMinimum: true`, `required: "id"`, an invalid `pattern`, ...),
/// `$id` or `$dynamicRef`, something other than a schema where one is expected.
pub fn to_json_schema_2020_12(
    document: &Value,
    schema: &Value,
    at: &str,
    direction: Direction,
) -> Result<Value, SchemaError> {
    let (root, definitions) = Converter::<Draft2020>::run(document, schema, at, direction)?;
    let mut out = Map::new();
    out.insert(String::from("$schema"), Value::String(DRAFT_2020_12.to_owned()));
    match root {
        Value::Object(map) => out.extend(map),
        Value::Bool(true) => {}
        Value::Bool(false) => {
            out.insert(String::from("not"), json!({}));
        }
        other => {
            out.insert(String::from("allOf"), Value::Array(vec![other]));
        }
    }
    if !definitions.is_empty() {
        out.insert(String::from("$defs"), Value::Object(definitions));
    }
    Ok(Value::Object(out))
}

/// The value at the JSON pointer `at` of `document`, following local `$ref`s met on the way (a parameter's
/// `schema` when the parameter is a `$ref` to `#/components/parameters/...`, a response's `content` when the
/// response is one, ...); `None` when nothing is there.
pub fn written_at<'a>(document: &'a Value, at: &str) -> Option<&'a Value> {
    let mut value = document;
    for raw in at.split('/').skip(1) {
        let segment = unescape(raw)?;
        let mut here = value;
        let mut hops = 0;
        value = loop {
            let next = match here {
                Value::Object(map) => map.get(&segment),
                Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            if let Some(next) = next {
                break next;
            }
            let reference = here.get("$ref").and_then(Value::as_str)?;
            hops += 1;
            if hops > MAX_REF_CHAIN {
                return None;
            }
            here = resolve_local(document, reference, "").ok()?.1;
        };
    }
    Some(value)
}

/// OpenAPI 3.1 schemas → JSON Schema 2020-12: the [`Dialect`] of [`to_json_schema_2020_12`].
struct Draft2020;

impl Dialect for Draft2020 {
    const CHECKED_FORMATS: &'static [&'static str] = CHECKED_FORMATS;
    const EXCLUSIVE_FLAGS: bool = false;

    fn options() -> jsonschema::ValidationOptions<'static> {
        jsonschema::draft202012::options()
    }

    /// Local JSON pointers; a reference to an anchor (`#name`) is refused.
    fn resolve<'a>(document: &'a Value, reference: &str, location: &str) -> Result<(String, &'a Value), SchemaError> {
        if let Some(anchor) = reference.strip_prefix('#')
            && !anchor.is_empty()
            && !anchor.starts_with('/')
        {
            return Err(error(
                location,
                format!(
                    "`$ref: {reference}` names an anchor, which the gateway does not resolve; refer to the schema by its place (`#/components/schemas/Name`)"
                ),
            ));
        }
        resolve_local(document, reference, location)
    }

    /// Kept as it is.
    fn boolean(value: bool) -> Value {
        Value::Bool(value)
    }

    /// Every keyword by [`Converter::keywords`] (a `$ref` is one of them: its siblings apply with it).
    fn object<'a>(
        this: &mut Converter<'a, Self>,
        map: &'a Map<String, Value>,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Value, SchemaError> {
        this.keywords(map, at, depth, inherited).map(Value::Object)
    }

    /// `$ref` (beside other keywords), the keywords refused (`$id`, `$dynamicRef`, a `$schema` of another
    /// dialect), the numeric exclusive bounds, `uniqueItems`, `required`, and the keywords 3.0 does not have; the
    /// rest as both dialects read them.
    fn keyword<'a>(
        this: &mut Converter<'a, Self>,
        key: &str,
        value: &'a Value,
        here: &str,
        depth: usize,
        flagged: &BTreeSet<String>,
    ) -> Result<Option<Value>, SchemaError> {
        match key {
            "$ref" => {
                // A schema whose `$ref` has none of the keywords read beside it is only a reference.
                let name = this.reference(value, here, |target| {
                    target.keys().all(|k| k == "$ref" || !KEYWORDS.contains(&k.as_str()))
                })?;
                Ok(Some(Value::String(format!("#/$defs/{name}"))))
            }
            "$schema" => match value.as_str() {
                Some(uri) if is_dialect_2020_12(uri) => Ok(None),
                _ => Err(error(
                    here,
                    format!(
                        "`$schema: {}` is a dialect the gateway cannot check with; it checks OpenAPI 3.1 schemas as JSON Schema 2020-12",
                        short(value)
                    ),
                )),
            },
            "$id" => Err(error(
                here,
                "`$id` is not supported in a schema the gateway checks: the references under it would resolve against another base URI; remove it and refer to schemas by their place in the document",
            )),
            "$dynamicRef" | "$recursiveRef" => Err(error(
                here,
                format!("`{key}` is not supported in a schema the gateway checks; use a `$ref` to the schema meant"),
            )),
            "const" => Ok(Some(value.clone())),
            "exclusiveMaximum" | "exclusiveMinimum" => {
                if value.is_number() {
                    Ok(Some(value.clone()))
                } else if value.is_boolean() {
                    let bound = if key == "exclusiveMinimum" {
                        "minimum"
                    } else {
                        "maximum"
                    };
                    Err(error(
                        here,
                        format!(
                            "`{key}` is the bound itself in OpenAPI 3.1 (JSON Schema 2020-12), not `true`/`false` as in 3.0: write `{key}: 5` instead of `{bound}: 5, {key}: true`"
                        ),
                    ))
                } else {
                    Err(error(here, format!("`{key}` must be a number, not {}", kind(value))))
                }
            }
            "minContains" | "maxContains" => Ok(Some(Value::Number(count(value, key, here)?))),
            "uniqueItems" => {
                if !value.is_boolean() {
                    return Err(error(
                        here,
                        format!("`uniqueItems` must be `true` or `false`, not {}", kind(value)),
                    ));
                }
                Ok(Some(value.clone()))
            }
            "required" => {
                let kept = names(value, key, here, flagged)?;
                Ok((!kept.is_empty()).then_some(Value::Array(kept)))
            }
            "dependentRequired" => {
                let Value::Object(dependencies) = value else {
                    return Err(error(
                        here,
                        format!("`dependentRequired` must be an object, not {}", kind(value)),
                    ));
                };
                let mut converted = Map::new();
                for (name, required) in dependencies {
                    let kept = names(required, "dependentRequired", &join(here, name), flagged)?;
                    if !kept.is_empty() {
                        converted.insert(name.clone(), Value::Array(kept));
                    }
                }
                Ok((!converted.is_empty()).then_some(Value::Object(converted)))
            }
            "patternProperties" => this
                .schema_map(value, key, here, depth, |_, name, _, there| {
                    pattern_compiles::<Self>(name).map_err(|reason| {
                        error(
                            there,
                            format!("this `patternProperties` key is not a valid regular expression: {reason}"),
                        )
                    })?;
                    Ok(None)
                })
                .map(Some),
            "dependentSchemas" => this
                .schema_map(value, key, here, depth, |_, _, _, _| Ok(None))
                .map(Some),
            "additionalProperties"
            | "unevaluatedProperties"
            | "propertyNames"
            | "contains"
            | "unevaluatedItems"
            | "if"
            | "then"
            | "else" => this.sub(value, here, depth).map(Some),
            "items" => {
                if value.is_array() {
                    return Err(error(
                        here,
                        "`items` is one schema in OpenAPI 3.1 (JSON Schema 2020-12); a tuple's schemas are `prefixItems`",
                    ));
                }
                this.sub(value, here, depth).map(Some)
            }
            "prefixItems" => this.members(key, value, here, depth, flagged),
            // Annotations, OpenAPI-only keywords, `readOnly`/`writeOnly` (applied by the parent), extensions, `$defs`
            // (reached through references), and anything else 2020-12 does not define are dropped there.
            _ => this.shared_keyword(key, value, here, depth, flagged),
        }
    }

    /// Itself or in a schema its references lead to: in 3.1 the flag may sit beside a `$ref`.
    fn is_flagged<'a>(this: &Converter<'a, Self>, mut schema: &'a Value, flag: &str) -> bool {
        for _ in 0..MAX_REF_CHAIN {
            if schema.get(flag) == Some(&Value::Bool(true)) {
                return true;
            }
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return false;
            };
            match resolve_local(this.document, reference, "") {
                Ok((_, target)) => schema = target,
                Err(_) => return false, // reported when the reference is converted
            }
        }
        false
    }

    /// The `allOf` members and, as 2020-12 says, the value of the `$ref` (the schema it names is one more member of
    /// the conjunction).
    fn conjuncts(map: &Map<String, Value>) -> Vec<&Value> {
        let mut conjuncts: Vec<&Value> = map
            .get("allOf")
            .and_then(Value::as_array)
            .map(|members| members.iter().collect())
            .unwrap_or_default();
        if let Some(reference) = map.get("$ref") {
            conjuncts.push(reference);
        }
        conjuncts
    }

    /// A member is a schema (its own `$ref` is followed when it is read), or the value of the schema's `$ref`.
    fn enter<'a>(
        this: &Converter<'a, Self>,
        conjunct: &'a Value,
        visited: &mut HashSet<String>,
    ) -> Option<&'a Map<String, Value>> {
        let target = match conjunct {
            Value::String(reference) => match resolve_local(this.document, reference, "") {
                Ok((pointer, target)) if visited.insert(pointer.clone()) => target,
                _ => return None,
            },
            other => other,
        };
        target.as_object()
    }
}

/// A `required` (or one `dependentRequired` entry) without the names in `flagged`, each once.
fn names(value: &Value, key: &str, at: &str, flagged: &BTreeSet<String>) -> Result<Vec<Value>, SchemaError> {
    let Value::Array(names) = value else {
        return Err(error(
            at,
            format!("`{key}` lists property names in an array, not {}", kind(value)),
        ));
    };
    property_names(names, key, at, flagged)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::schema::FormScalar;
    use crate::schema::common::testing::{assert_form_fields, assert_instances};

    /// A 3.1 document whose `components.schemas` are `schemas`.
    fn doc(schemas: Value) -> Value {
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": {}, "components": {"schemas": schemas}})
    }

    fn convert(document: &Value, schema: Value, direction: Direction) -> Value {
        to_json_schema_2020_12(document, &schema, "/test", direction).unwrap()
    }

    fn refused(document: &Value, schema: Value) -> SchemaError {
        to_json_schema_2020_12(document, &schema, "/test", Direction::Request).unwrap_err()
    }

    /// Converts `schema` and checks each instance is accepted or refused as said.
    fn check(document: &Value, schema: Value, direction: Direction, valid: &[Value], invalid: &[Value]) -> Value {
        let converted = convert(document, schema, direction);
        assert_eq!(converted["$schema"], DRAFT_2020_12);
        assert_instances(jsonschema::draft202012::options(), &converted, valid, invalid);
        converted
    }

    fn empty() -> Value {
        doc(json!({}))
    }

    #[test]
    fn type_arrays_with_null() {
        let out = check(
            &empty(),
            json!({"type": ["string", "null"], "maxLength": 3}),
            Direction::Request,
            &[json!("abc"), Value::Null],
            &[json!(1), json!("abcd")],
        );
        assert_eq!(
            out,
            json!({"$schema": DRAFT_2020_12, "type": ["string", "null"], "maxLength": 3})
        );
        check(
            &empty(),
            json!({"type": ["integer", "boolean"]}),
            Direction::Request,
            &[json!(1), json!(true)],
            &[json!("1"), Value::Null, json!(1.5)],
        );
        assert!(
            refused(&empty(), json!({"type": ["string", "nul"]}))
                .message
                .contains("unknown type")
        );
    }

    #[test]
    fn const_and_enum() {
        check(
            &empty(),
            json!({"const": "cat"}),
            Direction::Request,
            &[json!("cat")],
            &[json!("dog"), Value::Null],
        );
        check(
            &empty(),
            json!({"const": null}),
            Direction::Request,
            &[Value::Null],
            &[json!(0)],
        );
        check(
            &empty(),
            json!({"enum": ["a", null, "a"]}),
            Direction::Request,
            &[json!("a"), Value::Null],
            &[json!("b")],
        );
        assert!(refused(&empty(), json!({"enum": []})).message.contains("empty"));
    }

    #[test]
    fn numeric_exclusive_bounds() {
        check(
            &empty(),
            json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}),
            Direction::Request,
            &[json!(0.5), json!(9.99)],
            &[json!(0), json!(10)],
        );
        // OpenAPI 3.0's spelling is an error with the 3.1 one in the message.
        let e = refused(&empty(), json!({"minimum": 5, "exclusiveMinimum": true}));
        assert_eq!(e.pointer, "/test/exclusiveMinimum");
        assert!(e.message.contains("`exclusiveMinimum: 5`"), "{}", e.message);
        // Integer formats narrow the inclusive bounds and leave the exclusive ones be.
        let out = check(
            &empty(),
            json!({"type": "integer", "format": "int32", "exclusiveMinimum": 0}),
            Direction::Request,
            &[json!(1), json!(2_147_483_647)],
            &[json!(0), json!(2_147_483_648_i64)],
        );
        assert_eq!(out["minimum"], json!(i32::MIN));
        assert_eq!(out["exclusiveMinimum"], json!(0));
    }

    #[test]
    fn prefix_items_contains_and_unevaluated_items() {
        check(
            &empty(),
            json!({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": false}),
            Direction::Request,
            &[json!([1, "a"]), json!([1])],
            &[json!(["a", 1]), json!([1, "a", true])],
        );
        check(
            &empty(),
            json!({"contains": {"const": 7}, "minContains": 2}),
            Direction::Request,
            &[json!([7, 1, 7])],
            &[json!([7, 1])],
        );
        check(
            &empty(),
            json!({"prefixItems": [{"type": "integer"}], "unevaluatedItems": false}),
            Direction::Request,
            &[json!([1])],
            &[json!([1, 2])],
        );
        let e = refused(&empty(), json!({"items": [{"type": "integer"}]}));
        assert!(e.message.contains("prefixItems"), "{}", e.message);
    }

    #[test]
    fn dependent_required_and_dependent_schemas() {
        check(
            &empty(),
            json!({
                "type": "object",
                "dependentRequired": {"card": ["billing_address"]},
                "dependentSchemas": {"coupon": {"required": ["campaign"]}},
            }),
            Direction::Request,
            &[
                json!({}),
                json!({"card": 1, "billing_address": "x"}),
                json!({"coupon": "c", "campaign": "k"}),
            ],
            &[json!({"card": 1}), json!({"coupon": "c"})],
        );
        let e = refused(&empty(), json!({"dependentRequired": {"a": "b"}}));
        assert_eq!(e.pointer, "/test/dependentRequired/a");
    }

    #[test]
    fn unevaluated_properties_see_through_all_of_and_refs() {
        let document = doc(json!({
            "Base": {"type": "object", "properties": {"id": {"type": "integer"}}},
        }));
        check(
            &document,
            json!({
                "allOf": [{"$ref": "#/components/schemas/Base"}],
                "properties": {"name": {"type": "string"}},
                "unevaluatedProperties": false,
            }),
            Direction::Request,
            &[json!({"id": 1, "name": "a"})],
            &[json!({"id": 1, "name": "a", "extra": true})],
        );
        // The same with the reference beside the keywords (2020-12).
        check(
            &document,
            json!({
                "$ref": "#/components/schemas/Base",
                "properties": {"name": {"type": "string"}},
                "unevaluatedProperties": false,
            }),
            Direction::Request,
            &[json!({"id": 1, "name": "a"})],
            &[json!({"id": 1, "other": 2})],
        );
    }

    #[test]
    fn ref_siblings_apply() {
        let document = doc(json!({
            "Name": {"type": "string"},
            "Pet": {"type": "object", "properties": {"name": {"$ref": "#/components/schemas/Name"}}},
        }));
        let out = check(
            &document,
            json!({"$ref": "#/components/schemas/Pet", "required": ["name"], "description": "a pet"}),
            Direction::Request,
            &[json!({"name": "rex"})],
            &[json!({}), json!({"name": 1})],
        );
        assert_eq!(out["$ref"], "#/$defs/Pet");
        assert_eq!(
            out["$defs"]["Pet"]["properties"]["name"],
            json!({"$ref": "#/$defs/Name"})
        );
        assert!(out.get("description").is_none());
        // A sibling narrows what the target allows.
        check(
            &document,
            json!({"$ref": "#/components/schemas/Name", "maxLength": 2}),
            Direction::Request,
            &[json!("ab")],
            &[json!("abc"), json!(1)],
        );
    }

    #[test]
    fn references_recursive_chained_and_into_defs() {
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
            "Alias": {"$ref": "#/components/schemas/Tree", "description": "only a reference"},
            "Box": {"$defs": {"Inner": {"type": "boolean"}}, "properties": {"b": {"$ref": "#/components/schemas/Box/$defs/Inner"}}},
            "Loop": {"$ref": "#/components/schemas/Loop2"},
            "Loop2": {"$ref": "#/components/schemas/Loop"},
        }));
        let out = check(
            &document,
            json!({"$ref": "#/components/schemas/Alias"}),
            Direction::Request,
            &[json!({"value": 1, "children": [{"value": 2, "children": []}]})],
            &[
                json!({"value": 1, "children": [{"value": "x"}]}),
                json!({"value": 1, "x": 0}),
            ],
        );
        // The alias is followed to the schema it ends at.
        assert_eq!(out["$ref"], "#/$defs/Tree");
        assert_eq!(out["$defs"].as_object().map(Map::len), Some(1));
        let out = check(
            &document,
            json!({"$ref": "#/components/schemas/Box"}),
            Direction::Request,
            &[json!({"b": true})],
            &[json!({"b": 1})],
        );
        assert!(out["$defs"]["Box"].get("$defs").is_none(), "{out}");
        let e = refused(&document, json!({"$ref": "#/components/schemas/Loop"}));
        assert!(e.message.contains("cycle"), "{}", e.message);
        let e = refused(&document, json!({"$ref": "#/components/schemas/Missing"}));
        assert_eq!(e.pointer, "/test/$ref");
        let e = refused(&document, json!({"$ref": "other.yaml#/Pet"}));
        assert!(e.message.contains("outside this document"), "{}", e.message);
        let e = refused(&document, json!({"$ref": "#pet"}));
        assert!(e.message.contains("anchor"), "{}", e.message);
    }

    #[test]
    fn openapi_keywords_and_annotations_are_dropped() {
        let out = convert(
            &empty(),
            json!({
                "type": "object",
                "title": "T",
                "description": "d",
                "example": {"a": 1},
                "examples": [{"a": 1}],
                "default": {},
                "deprecated": true,
                "discriminator": {"propertyName": "kind"},
                "xml": {"name": "t"},
                "externalDocs": {"url": "https://example.com"},
                "nullable": true,
                "x-internal": true,
                "$comment": "c",
                "contentMediaType": "text/plain",
                "dependencies": {"a": ["b"]},
                "properties": {"a": {"type": "string", "format": "password"}},
            }),
            Direction::Request,
        );
        assert_eq!(
            out,
            json!({"$schema": DRAFT_2020_12, "type": "object", "properties": {"a": {"type": "string"}}})
        );
        // `nullable` is not a 3.1 keyword: null is refused where the type says so.
        check(
            &empty(),
            json!({"type": "string", "nullable": true}),
            Direction::Request,
            &[json!("a")],
            &[Value::Null],
        );
    }

    #[test]
    fn read_only_and_write_only() {
        let document = doc(json!({
            "Id": {"type": "integer", "readOnly": true},
            "Pet": {
                "type": "object",
                "required": ["id", "name", "password"],
                "dependentRequired": {"name": ["id"]},
                "properties": {
                    "id": {"$ref": "#/components/schemas/Id"},
                    "name": {"type": "string"},
                    "password": {"type": "string", "writeOnly": true},
                    "created": {"$ref": "#/components/schemas/Stamp", "readOnly": true},
                },
            },
            "Stamp": {"type": "string", "format": "date-time"},
        }));
        let request = check(
            &document,
            json!({"$ref": "#/components/schemas/Pet"}),
            Direction::Request,
            &[json!({"name": "rex", "password": "p"})],
            &[
                json!({"id": 1, "name": "rex", "password": "p"}),
                json!({"name": "rex", "password": "p", "created": "2024-01-01T00:00:00Z"}),
                json!({"name": "rex"}),
            ],
        );
        assert_eq!(request["$defs"]["Pet"]["properties"]["id"], json!({"not": {}}));
        assert_eq!(request["$defs"]["Pet"]["required"], json!(["name", "password"]));
        assert!(request["$defs"]["Pet"].get("dependentRequired").is_none());
        check(
            &document,
            json!({"$ref": "#/components/schemas/Pet"}),
            Direction::Response,
            &[json!({"id": 1, "name": "rex"})],
            &[
                json!({"name": "rex"}),
                json!({"id": 1, "name": "rex", "created": "yesterday"}),
            ],
        );
        // Through a `$ref` with siblings, the target's flagged properties leave the siblings' `required` too.
        check(
            &document,
            json!({"$ref": "#/components/schemas/Pet", "required": ["id"]}),
            Direction::Request,
            &[json!({"name": "rex", "password": "p"})],
            &[],
        );
    }

    #[test]
    fn formats() {
        let out = check(
            &empty(),
            json!({"type": "string", "format": "uuid"}),
            Direction::Request,
            &[json!("6f1c2c9e-2b1a-4c1e-9e59-3c0f5f3b7a10")],
            &[json!("not-a-uuid")],
        );
        assert_eq!(out["format"], "uuid");
        check(
            &empty(),
            json!({"type": "string", "format": "duration"}),
            Direction::Request,
            &[json!("P1D")],
            &[json!("one day")],
        );
        check(
            &empty(),
            json!({"type": ["integer", "null"], "format": "int64"}),
            Direction::Request,
            &[json!(i64::MAX), Value::Null],
            &[json!(u64::MAX)],
        );
    }

    #[test]
    fn conditionals_pattern_properties_and_booleans() {
        check(
            &empty(),
            json!({
                "if": {"properties": {"kind": {"const": "card"}}},
                "then": {"required": ["number"]},
                "else": {"required": ["iban"]},
            }),
            Direction::Request,
            &[
                json!({"kind": "card", "number": "4"}),
                json!({"kind": "bank", "iban": "x"}),
            ],
            &[json!({"kind": "card"}), json!({"kind": "bank"})],
        );
        check(
            &empty(),
            json!({"patternProperties": {"^x-": {"type": "string"}}, "additionalProperties": false}),
            Direction::Request,
            &[json!({"x-a": "b"})],
            &[json!({"x-a": 1}), json!({"y": "b"})],
        );
        let e = refused(&empty(), json!({"patternProperties": {"(": {}}}));
        assert_eq!(e.pointer, "/test/patternProperties/(");
        check(&empty(), json!(true), Direction::Request, &[json!(1)], &[]);
        check(&empty(), json!(false), Direction::Request, &[], &[json!(1)]);
        check(
            &empty(),
            json!({"properties": {"gone": false}}),
            Direction::Request,
            &[json!({})],
            &[json!({"gone": 1})],
        );
    }

    #[test]
    fn dialects_ids_and_dynamic_refs() {
        assert!(is_dialect_2020_12("https://json-schema.org/draft/2020-12/schema"));
        assert!(is_dialect_2020_12("https://json-schema.org/draft/2020-12/schema#"));
        assert!(is_dialect_2020_12("https://spec.openapis.org/oas/3.1/dialect/base"));
        assert!(is_dialect_2020_12(
            "https://spec.openapis.org/oas/3.1/dialect/2024-11-10"
        ));
        assert!(!is_dialect_2020_12("https://spec.openapis.org/oas/3.1/dialect/"));
        assert!(!is_dialect_2020_12("http://json-schema.org/draft-07/schema#"));
        convert(
            &empty(),
            json!({"$schema": "https://spec.openapis.org/oas/3.1/dialect/base", "type": "string"}),
            Direction::Request,
        );
        let e = refused(&empty(), json!({"$schema": "http://json-schema.org/draft-07/schema#"}));
        assert_eq!(e.pointer, "/test/$schema");
        let e = refused(&empty(), json!({"$id": "https://example.com/pet"}));
        assert_eq!(e.pointer, "/test/$id");
        let e = refused(&empty(), json!({"$dynamicRef": "#node"}));
        assert_eq!(e.pointer, "/test/$dynamicRef");
    }

    #[test]
    fn written_at_follows_references() {
        let document = json!({
            "paths": {"/a": {"get": {"parameters": [{"$ref": "#/components/parameters/Q"}]}}},
            "components": {"parameters": {"Q": {"name": "q", "in": "query", "schema": {"const": 1}}}},
        });
        assert_eq!(
            written_at(&document, "/paths/~1a/get/parameters/0/schema"),
            Some(&json!({"const": 1}))
        );
        assert_eq!(written_at(&document, "/paths/~1a/get/parameters/1/schema"), None);
        assert_eq!(written_at(&document, ""), Some(&document));
    }

    #[test]
    fn form_fields_of_2020_12_schemas() {
        let document = doc(json!({
            "Base": {"type": "object", "properties": {"base": {"type": ["boolean", "null"]}}},
        }));
        let converted = convert(
            &document,
            json!({
                "$ref": "#/components/schemas/Base",
                "properties": {
                    "n": {"type": ["integer", "null"]},
                    "level": {"const": 2},
                    "tags": {"type": "array", "items": {"type": "number"}},
                    "maybe": {"oneOf": [{"type": "integer"}, {"type": "null"}]},
                },
            }),
            Direction::Request,
        );
        let expected = [
            ("n", FormScalar::Integer, false),
            ("level", FormScalar::Integer, false),
            ("tags", FormScalar::Number, true),
            ("maybe", FormScalar::Integer, false),
            ("base", FormScalar::Boolean, false),
        ];
        assert_form_fields(&converted, &expected);
    }
}
