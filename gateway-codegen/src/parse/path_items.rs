//! Path items written as a `$ref` (`paths: { /pets: { $ref: '#/components/pathItems/Pets' } }`), read as the path
//! item they name.
//!
//! OpenAPI 3.1 keeps reusable path items in `components/pathItems`; 3.0 allows a path item `$ref` too (to another
//! path item of the document, or a file). `openapiv3` reads such an entry as a bare reference, so every local one
//! is replaced by a copy of the path item it ends at (through chains of references) before the document is typed;
//! keys written beside the `$ref` (`summary`, `description`, ...) override the referenced item's. A
//! [`PointerMap`] records the move, so a diagnostic about the copy is shown where the path item is written. A
//! reference that cannot be followed (another file, nothing there, a cycle) is an error at the `$ref`, and the
//! path is read as a path item without operations.

use serde_json::{Map, Value};

use super::sources::PointerMap;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::escape_segment;

/// References followed in one chain before it is declared a cycle.
const MAX_CHAIN: usize = 32;

/// What a path item `$ref` stands for: the pointer of the path item it ends at and the item to read in its place,
/// or why it cannot be followed.
type Resolved = Result<(String, Value), Diagnostic>;

/// Replaces every `paths` entry that is a local `$ref` by the path item it names; returns where the copies come
/// from.
pub fn inline(document: &mut Value, diags: &mut Diagnostics) -> PointerMap {
    let mut map = PointerMap::default();
    let Some(paths) = document.get("paths").and_then(Value::as_object) else {
        return map;
    };
    let mut resolved: Vec<(String, Resolved)> = Vec::new();
    for (template, item) in paths {
        let Some(item) = item.as_object() else { continue };
        let Some(reference) = item.get("$ref") else { continue };
        let at = format!("/paths/{}", escape_segment(template));
        let result = follow(document, reference, &format!("{at}/$ref")).map(|(pointer, target)| {
            let mut merged = target.clone();
            for (key, value) in item {
                if key != "$ref" {
                    merged.insert(key.clone(), value.clone());
                }
            }
            (pointer, Value::Object(merged))
        });
        resolved.push((template.clone(), result));
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return map;
    };
    for (template, result) in resolved {
        let at = format!("/paths/{}", escape_segment(&template));
        match result {
            Ok((source, item)) => {
                map.moved(at.clone(), source);
                // What was written beside the `$ref` stays where it is written.
                if let Some(written) = paths.get(&template).and_then(Value::as_object) {
                    for key in written.keys().filter(|k| *k != "$ref") {
                        let here = format!("{at}/{}", escape_segment(key));
                        map.moved(here.clone(), here);
                    }
                }
                paths.insert(template, item);
            }
            Err(diagnostic) => {
                // Served without operations (the error stops generation; the path is not "missing" on top of it).
                diags.push(diagnostic);
                paths.insert(template, Value::Object(Map::new()));
            }
        }
    }
    map
}

/// Follows the path item reference `reference` (written at `location`) to the path item it ends at: its pointer
/// and its keys.
fn follow<'d>(
    document: &'d Value,
    reference: &'d Value,
    location: &str,
) -> Result<(String, &'d Map<String, Value>), Diagnostic> {
    let mut reference = reference;
    let mut location = location.to_owned();
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..MAX_CHAIN {
        let Some(text) = reference.as_str() else {
            return Err(Diagnostic::error(&location, "`$ref` must be a string").help(HELP));
        };
        let Some(pointer) = text.strip_prefix('#').filter(|p| p.is_empty() || p.starts_with('/')) else {
            return Err(Diagnostic::error(
                &location,
                format!("path item `$ref: {text}` points outside this document; only local references (`#/components/pathItems/...`) are read"),
            )
            .help("write the path item in this document (under `components/pathItems` in OpenAPI 3.1), or bundle the files into one first"));
        };
        let pointer = percent_decoded(pointer);
        let Some(target) = document.pointer(&pointer) else {
            let mut d = Diagnostic::error(
                &location,
                format!("path item `$ref: {text}` names nothing in this document"),
            );
            let named = document
                .pointer("/components/pathItems")
                .and_then(Value::as_object)
                .into_iter()
                .flat_map(Map::keys)
                .map(String::as_str);
            let wanted = pointer.rsplit('/').next().unwrap_or("");
            d = match did_you_mean(wanted, named) {
                Some(best) => d.help(format!("did you mean `#/components/pathItems/{best}`?")),
                None => d.help(HELP),
            };
            return Err(d);
        };
        let Some(item) = target.as_object() else {
            return Err(Diagnostic::error(
                &location,
                format!("path item `$ref: {text}` names something that is not a path item"),
            )
            .help(HELP));
        };
        if pointer.is_empty() {
            return Err(Diagnostic::error(
                &location,
                format!("path item `$ref: {text}` names the whole document, not a path item"),
            )
            .help(HELP));
        }
        if seen.contains(&pointer) {
            return Err(Diagnostic::error(
                &location,
                format!("path item `$ref: {text}` is part of a cycle of references that never reaches a path item"),
            )
            .help(HELP));
        }
        seen.push(pointer.clone());
        match item.get("$ref") {
            Some(next) => {
                location = format!("{pointer}/$ref");
                reference = next;
            }
            None => return Ok((pointer, item)),
        }
    }
    Err(Diagnostic::error(
        &location,
        format!("a chain of more than {MAX_CHAIN} path item references never reaches a path item"),
    )
    .help(HELP))
}

const HELP: &str = "a path item `$ref` names a path item of this document: `$ref: '#/components/pathItems/Name'`";

/// A URI fragment percent-decoded (`%7B` → `{`), as a JSON pointer; kept as written when it does not decode.
fn percent_decoded(fragment: &str) -> String {
    if !fragment.contains('%') {
        return fragment.to_owned();
    }
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        if b == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            // Two hex digits make one byte.
            out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| fragment.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diagnostics::Severity;
    use crate::parse::sources::Sources;

    fn run(mut document: Value) -> (Value, Sources, Diagnostics) {
        let mut diags = Diagnostics::default();
        let map = inline(&mut document, &mut diags);
        let mut sources = Sources::default();
        sources.push(map);
        (document, sources, diags)
    }

    #[test]
    fn component_path_items_are_inlined_with_their_siblings() {
        let pets = json!({"get": {"operationId": "listPets", "responses": {}}, "summary": "pets"});
        let (document, sources, diags) = run(json!({
            "openapi": "3.1.0",
            "paths": {
                "/pets": {"$ref": "#/components/pathItems/Pets", "summary": "the pets"},
                "/animals": {"$ref": "#/components/pathItems/Alias"},
                "/inline": {"get": {"responses": {}}},
            },
            "components": {"pathItems": {"Pets": pets, "Alias": {"$ref": "#/components/pathItems/Pets"}}},
        }));
        assert!(diags.items().is_empty(), "{:?}", diags.items());
        assert_eq!(
            document["paths"]["/pets"],
            json!({"get": {"operationId": "listPets", "responses": {}}, "summary": "the pets"})
        );
        assert_eq!(document["paths"]["/animals"]["get"]["operationId"], "listPets");
        assert_eq!(document["paths"]["/inline"], json!({"get": {"responses": {}}}));
        // A diagnostic about the copy is shown where the path item is written; the siblings stay where they are.
        assert_eq!(
            sources.origin("/paths/~1pets/get/operationId").1,
            "/components/pathItems/Pets/get/operationId"
        );
        assert_eq!(sources.origin("/paths/~1pets/summary").1, "/paths/~1pets/summary");
        assert_eq!(
            sources.origin("/paths/~1animals/get").1,
            "/components/pathItems/Pets/get"
        );
        assert_eq!(sources.origin("/paths/~1inline/get").1, "/paths/~1inline/get");
    }

    #[test]
    fn references_that_cannot_be_followed_are_errors_and_leave_no_operations() {
        let (document, _, diags) = run(json!({
            "paths": {
                "/a": {"$ref": "other.yaml#/paths/~1a"},
                "/b": {"$ref": "#/components/pathItems/Petz"},
                "/c": {"$ref": "#/components/pathItems/Loop"},
                "/d": {"$ref": "#/components/pathItems/Pets"},
                "/e": {"$ref": "#/info"},
            },
            "info": "not an item",
            "components": {"pathItems": {
                "Pets": {"get": {"responses": {}}},
                "Loop": {"$ref": "#/components/pathItems/Loop"},
            }},
        }));
        let errors: Vec<(&str, &str)> = diags
            .items()
            .iter()
            .map(|d| {
                assert_eq!(d.severity, Severity::Error);
                (d.pointer.as_str(), d.message.as_str())
            })
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert_eq!(errors[0].0, "/paths/~1a/$ref");
        assert!(errors[0].1.contains("outside this document"));
        assert_eq!(errors[1].0, "/paths/~1b/$ref");
        assert_eq!(
            diags.items()[1].help.as_deref(),
            Some("did you mean `#/components/pathItems/Pets`?")
        );
        assert_eq!(errors[2].0, "/components/pathItems/Loop/$ref");
        assert!(errors[2].1.contains("cycle"));
        assert!(errors[3].1.contains("not a path item"));
        for path in ["/a", "/b", "/c", "/e"] {
            assert_eq!(document["paths"][path], json!({}), "{path}");
        }
        assert_eq!(document["paths"]["/d"], json!({"get": {"responses": {}}}));
    }

    #[test]
    fn percent_encoded_references() {
        let (document, _, diags) = run(json!({
            "paths": {"/a": {"$ref": "#/components/pathItems/a%20b"}},
            "components": {"pathItems": {"a b": {"get": {"responses": {}}}}},
        }));
        assert!(diags.items().is_empty());
        assert_eq!(document["paths"]["/a"], json!({"get": {"responses": {}}}));
    }
}
