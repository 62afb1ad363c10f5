//! The spec as the gateway publishes it (`GET /_gateway/openapi.json`): the document as written, without its
//! `x-gateway` extensions (upstream URLs, limits, stage variables are the operator's, not the client's) and
//! without the operations the gateway does not serve (`skip: true`). The runtime sets `servers` to where the
//! gateway serves it (its base path) when it starts.

use serde_json::Value;

use crate::parse::ext::EXTENSION;

/// `document` as published, as compact JSON.
pub fn published(document: &Value) -> String {
    let mut document = document.clone();
    drop_skipped(&mut document);
    strip_extension(&mut document);
    if let Some(root) = document.as_object_mut() {
        // Where the API is served is the gateway's, not the upstream's: set when the gateway starts.
        root.remove("servers");
    }
    document.to_string()
}

/// Removes every `x-gateway` key, at any depth.
fn strip_extension(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.shift_remove(EXTENSION);
            map.values_mut().for_each(strip_extension);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_extension),
        _ => {}
    }
}

/// Whether an `x-gateway` object says `skip: true`.
fn skipped(item: &Value) -> Option<bool> {
    item.get(EXTENSION)?.get("skip")?.as_bool()
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Removes operations with `skip: true` (their own, else their path item's), and path items left without any.
fn drop_skipped(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    paths.retain(|_, item| {
        let Some(item) = item.as_object_mut() else {
            return true;
        };
        let item_skip = skipped(&Value::Object(item.clone())).unwrap_or(false);
        item.retain(|key, op| !METHODS.contains(&key.as_str()) || !skipped(op).unwrap_or(item_skip));
        // A `$ref`'d path item is kept as written; one whose operations were all skipped goes.
        item.contains_key("$ref") || METHODS.iter().any(|m| item.contains_key(*m))
    });
}

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
