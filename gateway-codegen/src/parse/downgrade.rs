//! Reading an OpenAPI 3.1 document as 3.0.
//!
//! The gateway reads paths, operations, parameters, servers and parameter schemas, which mean the same in 3.0 and
//! 3.1 except for JSON Schema spellings that `openapiv3` (a 3.0 reader) refuses. Those are translated in place:
//! `type: [string, "null"]` → `type: string, nullable: true`; several non-null types → no `type` (any value);
//! `const: x` → `enum: [x]`; numeric `exclusiveMinimum`/`exclusiveMaximum` → a bound plus the 3.0 boolean;
//! `examples: [..]` in a schema → `example`. A missing `paths` (3.1 allows webhooks-only documents) is an error
//! later: a gateway needs paths to serve.

use serde_json::{Map, Value};

/// Translates the document in place; returns how many constructs were translated.
pub fn downgrade(document: &mut Value) -> usize {
    let mut count = 0;
    walk(document, &mut count);
    if let Some(version) = document.get_mut("openapi") {
        *version = Value::String(String::from("3.0.3"));
    }
    count
}

/// Takes the `type: mutualTLS` security schemes (OpenAPI 3.1) out of `components.securitySchemes`, which
/// `openapiv3` cannot read; the security step finds them in the document as written.
pub fn strip_mutual_tls(document: &mut Value) {
    if let Some(Value::Object(schemes)) = document.pointer_mut("/components/securitySchemes") {
        schemes.retain(|_, scheme| scheme.get("type").is_none_or(|t| t != "mutualTLS"));
    }
}

fn walk(value: &mut Value, count: &mut usize) {
    match value {
        Value::Object(map) => {
            translate(map, count);
            for child in map.values_mut() {
                walk(child, count);
            }
        }
        Value::Array(items) => {
            for child in items {
                walk(child, count);
            }
        }
        _ => {}
    }
}

fn translate(map: &mut Map<String, Value>, count: &mut usize) {
    if let Some(Value::Array(types)) = map.get("type") {
        let nullable = types.iter().any(|t| t == "null");
        let others: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        match others.as_slice() {
            [one] => {
                map.insert(String::from("type"), one.clone());
            }
            _ => {
                map.remove("type");
            }
        }
        if nullable {
            map.insert(String::from("nullable"), Value::Bool(true));
        }
        *count += 1;
    } else if map.get("type").is_some_and(|t| t == "null") {
        map.remove("type");
        map.insert(String::from("nullable"), Value::Bool(true));
        *count += 1;
    }
    if let Some(constant) = map.remove("const") {
        map.entry("enum").or_insert_with(|| Value::Array(vec![constant]));
        *count += 1;
    }
    for (exclusive, bound) in [("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")] {
        if let Some(limit) = map.get(exclusive).filter(|v| v.is_number()).cloned() {
            map.insert(String::from(bound), limit);
            map.insert(String::from(exclusive), Value::Bool(true));
            *count += 1;
        }
    }
    if let Some(Value::Array(examples)) = map.get("examples") {
        let first = examples.first().cloned();
        map.remove("examples");
        if let Some(first) = first {
            map.entry("example").or_insert(first);
        }
        *count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_json_schema_2020_spellings() {
        let mut doc = serde_json::json!({
            "openapi": "3.1.0",
            "components": { "schemas": {
                "A": { "type": ["string", "null"], "const": "x" },
                "B": { "type": ["string", "integer"], "exclusiveMinimum": 3, "examples": [1, 2] }
            }}
        });
        assert_eq!(downgrade(&mut doc), 5);
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(
            doc["components"]["schemas"]["A"],
            serde_json::json!({ "type": "string", "nullable": true, "enum": ["x"] })
        );
        assert_eq!(
            doc["components"]["schemas"]["B"],
            serde_json::json!({ "minimum": 3, "exclusiveMinimum": true, "example": 1 })
        );
    }
}
