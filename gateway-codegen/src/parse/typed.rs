//! The document, typed as `openapiv3::OpenAPI`, with schemas the typed reader refuses read as "any value".
//!
//! A schema is what the gateway validates with; the router, the parameters' places and the targets do not depend
//! on one. A spec whose schema somewhere does not fit the OpenAPI 3.0 Schema Object (`maxLength: -1`, an integer
//! `enum` of strings, `required: true` on a property) is wrong, but a gateway can still serve it exactly without
//! checking that one schema: the schema is replaced by `{}` (any value) with a warning at it, and the rest is read.
//! An error anywhere else stays an error.

use openapiv3::OpenAPI;
use serde_json::Value;

use super::{relocate, try_deserialize};
use crate::diagnostics::{Diagnostic, Diagnostics};

/// Schemas replaced before giving up: a document broken in more places than this is reported as it is.
const MAX_REPLACED: usize = 200;

/// Types `document`, replacing the schemas that do not fit (a warning each); `None` with the error otherwise.
/// `validated_as_written`: the schemas are validated from the document as written (OpenAPI 3.1), so only the typed
/// view loses the schema.
pub(super) fn read(document: &mut Value, validated_as_written: bool, diags: &mut Diagnostics) -> Option<OpenAPI> {
    let consequence = if validated_as_written {
        "the typed view (parameter types) reads it as any value; bodies are still validated against it as written"
    } else {
        "the schema is read as any value, and nothing is checked against it"
    };
    for _ in 0..=MAX_REPLACED {
        let error = match try_deserialize::<OpenAPI>(document, "") {
            Ok(openapi) => return Some(openapi),
            Err(error) => relocate::refine(document, *error),
        };
        // A schema already replaced that still fails is not where the problem is: it is reported as it is.
        let replaceable = enclosing_schema(&error.pointer).filter(|s| {
            document
                .pointer(s)
                .and_then(Value::as_object)
                .is_some_and(|o| !o.is_empty())
        });
        let Some(node) = replaceable.as_deref().and_then(|s| document.pointer_mut(s)) else {
            diags.push(error);
            return None;
        };
        *node = Value::Object(serde_json::Map::new());
        diags.push(
            Diagnostic::warning(error.pointer.clone(), format!("{}; {consequence}", error.message)).help(
                error.help.clone().unwrap_or_else(|| {
                    String::from("fix the schema in the spec (or with an overlay) to have it checked")
                }),
            ),
        );
    }
    diags.push(
        Diagnostic::error(
            "",
            format!("more than {MAX_REPLACED} schemas do not fit the OpenAPI Schema Object"),
        )
        .help("the warnings above say where; is this an OpenAPI document?"),
    );
    None
}

/// The deepest schema that `pointer` is in: under `components/schemas/<name>`, a `schema` key, and the
/// sub-schema keywords inside those.
fn enclosing_schema(pointer: &str) -> Option<String> {
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    let mut deepest = None;
    let mut i = 0;
    while i < segments.len() {
        let has_next = i + 1 < segments.len();
        let end = match (deepest.is_some(), segments[i]) {
            (false, "components") if i == 0 && segments.get(1) == Some(&"schemas") && segments.len() > 2 => i + 3,
            // `schema` of a parameter (`parameters/N/schema`), a media type (`content/<type>/schema`) or a header
            // (`headers/<name>/schema`); a component or header *named* `schema` is not one.
            (false, "schema") if i >= 2 && matches!(segments[i - 2], "parameters" | "content" | "headers") => i + 1,
            (false, _) => {
                i += 1;
                continue;
            }
            (true, "properties" | "allOf" | "anyOf" | "oneOf") if has_next => i + 2,
            (true, "items" | "not" | "additionalProperties") => i + 1,
            // Any other key inside a schema (`discriminator`, `example`) is part of that schema.
            (true, _) => break,
        };
        deepest = Some(format!("/{}", segments[..end].join("/")));
        i = end;
    }
    deepest
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_deepest_schema_is_found() {
        assert_eq!(
            enclosing_schema("/components/schemas/Pet/properties/tags/items/maxLength").as_deref(),
            Some("/components/schemas/Pet/properties/tags/items")
        );
        assert_eq!(
            enclosing_schema("/paths/~1a/get/parameters/0/schema/enum/0").as_deref(),
            Some("/paths/~1a/get/parameters/0/schema")
        );
        assert_eq!(
            enclosing_schema("/components/schemas/A/allOf/1/discriminator").as_deref(),
            Some("/components/schemas/A/allOf/1")
        );
        assert_eq!(enclosing_schema("/paths/~1a/get/parameters/0/in"), None);
        assert_eq!(enclosing_schema("/components/securitySchemes/x/type"), None);
        assert_eq!(enclosing_schema("/components/parameters/schema/in"), None);
        assert_eq!(enclosing_schema("/components/headers/schema/style"), None);
        assert_eq!(
            enclosing_schema("/paths/~1a/get/responses/200/headers/X-Rate/schema/type").as_deref(),
            Some("/paths/~1a/get/responses/200/headers/X-Rate/schema")
        );
    }

    #[test]
    fn a_schema_that_does_not_fit_is_read_as_any_value_with_a_warning() {
        let mut document = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a": {"get": {"parameters": [
                {"name": "q", "in": "query", "schema": {"type": "array", "items": {"type": "string"}, "maxItems": "ten"}}
            ], "responses": {}}}},
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string", "maxLength": -1}}}}}
        });
        let mut diags = Diagnostics::default();
        let openapi = read(&mut document, false, &mut diags).expect("read");
        assert_eq!(openapi.paths.paths.len(), 1);
        assert_eq!(document.pointer("/paths/~1a/get/parameters/0/schema"), Some(&json!({})));
        // serde cannot always say where inside a component schema it failed (openapiv3 reads schemas through
        // untagged enums): then the component is what is replaced.
        let pet = document.pointer("/components/schemas/Pet").cloned().unwrap_or_default();
        assert!(
            pet == json!({}) || pet.pointer("/properties/name") == Some(&json!({})),
            "{pet}"
        );
        assert_eq!(diags.items().len(), 2, "{:?}", diags.items());
        assert!(diags.items().iter().all(|d| d.severity == crate::Severity::Warning));
        assert!(
            diags
                .items()
                .iter()
                .any(|d| d.pointer.starts_with("/components/schemas/Pet"))
        );
    }

    #[test]
    fn in_a_3_1_document_the_warning_says_bodies_are_still_validated() {
        let mut document = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {},
            "components": {"schemas": {"Pet": {"type": "object", "maxProperties": "many"}}}
        });
        let mut diags = Diagnostics::default();
        read(&mut document, true, &mut diags).expect("read");
        let [d] = diags.items() else {
            panic!("{:?}", diags.items())
        };
        assert!(d.message.contains("still validated"), "{}", d.message);
    }

    #[test]
    fn a_parameter_named_schema_that_does_not_fit_is_an_error_not_a_loop() {
        let mut document = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {},
            "components": {"parameters": {"schema": {"name": "schema", "in": "nowhere"}}}
        });
        let mut diags = Diagnostics::default();
        assert!(read(&mut document, false, &mut diags).is_none());
        assert!(diags.has_errors(), "{:?}", diags.items());
    }

    #[test]
    fn an_error_outside_schemas_stays_an_error() {
        let mut document = json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "body"}], "responses": {}}}}
        });
        let mut diags = Diagnostics::default();
        assert!(read(&mut document, false, &mut diags).is_none());
        assert!(diags.has_errors());
    }
}
