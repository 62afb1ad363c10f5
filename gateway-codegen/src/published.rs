//! The spec as the gateway publishes it (`GET /_gateway/openapi.json`): the document as written, without its
//! `x-gateway` extensions (upstream URLs, limits, stage variables are the operator's, not the client's) and
//! without the operations the gateway does not serve (`skip: true`). The runtime sets `servers` to where the
//! gateway serves it (its base path) when it starts.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::parse::ext::EXTENSION;

/// `document` as published, as compact JSON.
///
/// Written straight from the document as read, leaving out what is not published on the way: a spec of several
/// megabytes is neither copied nor edited to be published.
pub fn published(document: &Value) -> String {
    // A view of a `Value` serializes as the value does, which cannot fail (every key is a string).
    serde_json::to_string(&Root(document)).unwrap_or_default()
}

/// The document: without `servers` (where the API is served is the gateway's, set when it starts), `x-gateway`,
/// and skipped operations.
struct Root<'a>(&'a Value);

impl Serialize for Root<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Value::Object(root) = self.0 else {
            return Stripped(self.0).serialize(serializer);
        };
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in root {
            match (key.as_str(), value) {
                ("servers", _) | (EXTENSION, _) => {}
                ("paths", Value::Object(paths)) => map.serialize_entry(key, &Paths(paths))?,
                _ => map.serialize_entry(key, &Stripped(value))?,
            }
        }
        map.end()
    }
}

/// `paths`: the operations with `skip: true` (their own, else their path item's) left out, and the path items
/// left without any; a `$ref`'d path item is kept as written.
struct Paths<'a>(&'a Map<String, Value>);

impl Serialize for Paths<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (template, item) in self.0 {
            let Value::Object(item) = item else {
                map.serialize_entry(template, &Stripped(item))?;
                continue;
            };
            let item_skip = skipped(item).unwrap_or(false);
            let served = |key: &str, op: &Value| {
                !METHODS.contains(&key) || !op.as_object().and_then(skipped).unwrap_or(item_skip)
            };
            let kept = item.contains_key("$ref")
                || item
                    .iter()
                    .any(|(k, op)| METHODS.contains(&k.as_str()) && served(k, op));
            if kept {
                map.serialize_entry(template, &PathItem { item, served: &served })?;
            }
        }
        map.end()
    }
}

/// A path item without its skipped operations (`served` says which are kept) and its `x-gateway`.
struct PathItem<'a, F: Fn(&str, &Value) -> bool> {
    item: &'a Map<String, Value>,
    served: &'a F,
}

impl<F: Fn(&str, &Value) -> bool> Serialize for PathItem<'_, F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.item {
            if key != EXTENSION && (self.served)(key, value) {
                map.serialize_entry(key, &Stripped(value))?;
            }
        }
        map.end()
    }
}

/// A value without any `x-gateway` key, at any depth.
struct Stripped<'a>(&'a Value);

impl Serialize for Stripped<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(object) => {
                let mut map = serializer.serialize_map(None)?;
                for (key, value) in object {
                    if key != EXTENSION {
                        map.serialize_entry(key, &Stripped(value))?;
                    }
                }
                map.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(Stripped)),
            other => other.serialize(serializer),
        }
    }
}

/// Whether an object's `x-gateway` says `skip: true`.
fn skipped(item: &Map<String, Value>) -> Option<bool> {
    item.get(EXTENSION)?.get("skip")?.as_bool()
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_skipped_operations_are_left_out() {
        let document = serde_json::json!({
            "openapi": "3.0.3",
            "servers": [{ "url": "http://10.0.0.1:9001" }],
            "x-gateway": { "upstreams": { "pets": { "url": "http://10.0.0.1:9001" } } },
            "paths": {
                "/pets": {
                    "get": { "operationId": "listPets", "x-gateway": { "cache": { "ttl": "5s" } } },
                    "post": { "operationId": "addPet", "x-gateway": { "skip": true } }
                },
                "/internal": { "x-gateway": { "skip": true }, "get": { "operationId": "internal" } },
                "/kept": {
                    "x-gateway": { "skip": true },
                    "get": { "operationId": "kept", "x-gateway": { "skip": false } }
                }
            }
        });
        let published: Value = serde_json::from_str(&published(&document)).expect("JSON");
        assert_eq!(
            published,
            serde_json::json!({
                "openapi": "3.0.3",
                "paths": {
                    "/pets": { "get": { "operationId": "listPets" } },
                    "/kept": { "get": { "operationId": "kept" } }
                }
            })
        );
    }
}
