//! Form bodies and `deepObject` parameters as JSON objects, so that one schema check covers them.
//!
//! Their values arrive as text; each field the schema types as integer, number or boolean is coerced first
//! (text that does not parse stays a string, for the schema to refuse with its pointer), and fields the schema
//! types as arrays collect every occurrence.

use serde_json::{Map, Value};

use crate::spec::{FormField, FormScalar};

/// `pairs` (decoded names and values, in order) as a JSON object, coerced by `fields`.
pub fn to_object<'a>(
    pairs: impl IntoIterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    fields: &[FormField],
) -> Value {
    let mut object = Map::new();
    for (name, text) in pairs {
        let field = fields.iter().find(|f| f.name == name);
        let value = coerce(&text, field.map_or(FormScalar::String, |f| f.scalar));
        if field.is_some_and(|f| f.list) {
            match object
                .entry(name.into_owned())
                .or_insert_with(|| Value::Array(Vec::new()))
            {
                Value::Array(items) => items.push(value),
                other => *other = Value::Array(vec![value]),
            }
        } else {
            // A repeated scalar field: the first occurrence counts, as for query parameters.
            object.entry(name.into_owned()).or_insert(value);
        }
    }
    Value::Object(object)
}

/// The `deepObject` members of query parameter `name` (`name[member]=value`) as a JSON object, or `None` when the
/// query has none.
pub fn deep_object(query: &str, name: &str, fields: &[FormField]) -> Option<Value> {
    let pairs: Vec<_> = form_urlencoded::parse(query.as_bytes())
        .filter_map(|(key, value)| {
            let member = key.strip_prefix(name)?.strip_prefix('[')?.strip_suffix(']')?;
            Some((std::borrow::Cow::Owned(member.to_owned()), value))
        })
        .collect();
    (!pairs.is_empty()).then(|| to_object(pairs, fields))
}

fn coerce(text: &str, scalar: FormScalar) -> Value {
    let parsed = match scalar {
        FormScalar::String => None,
        FormScalar::Integer => text.parse::<i64>().ok().map(Value::from),
        FormScalar::Number => text
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        FormScalar::Boolean => match text {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
    };
    parsed.unwrap_or_else(|| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[FormField] = &[
        FormField {
            name: "age",
            scalar: FormScalar::Integer,
            list: false,
        },
        FormField {
            name: "tags",
            scalar: FormScalar::String,
            list: true,
        },
        FormField {
            name: "ok",
            scalar: FormScalar::Boolean,
            list: false,
        },
    ];

    #[test]
    fn form_fields_are_coerced_by_schema() {
        let body = "name=rex&age=3&tags=a&tags=b&ok=true&age=9";
        let value = to_object(form_urlencoded::parse(body.as_bytes()), FIELDS);
        assert_eq!(
            value,
            serde_json::json!({"name": "rex", "age": 3, "tags": ["a", "b"], "ok": true})
        );
        let value = to_object(form_urlencoded::parse(b"age=old"), FIELDS);
        assert_eq!(value, serde_json::json!({"age": "old"}));
    }

    #[test]
    fn deep_objects_collect_their_members() {
        let value = deep_object("filter%5Bage%5D=3&filter[name]=rex&other=1", "filter", FIELDS);
        assert_eq!(value, Some(serde_json::json!({"age": 3, "name": "rex"})));
        assert_eq!(deep_object("other=1", "filter", FIELDS), None);
    }
}
