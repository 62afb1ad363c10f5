//! Step 1 of the pipeline: spec text → typed OpenAPI document, `x-gateway` extensions and a flat list of
//! operations with their parameters resolved.
//!
//! The text is read once into a `serde_json::Value` (JSON, or YAML through serde_yaml), repaired where published
//! specs commonly deviate from the schema in harmless ways (each repair is a warning), then deserialized into
//! `openapiv3::OpenAPI`. Problems are diagnostics at JSON pointers; nothing here panics on any input.

mod document;
mod downgrade;
pub mod ext;
mod overlay;
mod path_items;
pub mod refs;
mod repair;
pub mod sources;
mod swagger2;
mod typed;

use openapiv3::{OpenAPI, Operation, Parameter, PathItem, ReferenceOr, Server};
use serde::de::DeserializeOwned;

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::{escape_segment, pointer};
use ext::{EXTENSION, PolicyExt, RootExt};
pub use repair::Leniency;
use sources::{PointerMap, Sources};

/// The spec, parsed.
#[derive(Debug)]
pub struct ParsedSpec {
    /// The OpenAPI document.
    pub openapi: OpenAPI,
    /// Top-level `x-gateway` (default when absent).
    pub root: RootExt,
    /// Whether the top-level `x-gateway` was unreadable (already reported): checks that depend on it stay quiet
    /// rather than pile consequential errors on the real one.
    pub root_failed: bool,
    /// Every operation, in document order.
    pub operations: Vec<ParsedOperation>,
    /// The document as written (before any translation or repair): what the gateway publishes.
    pub document: serde_json::Value,
    /// For an OpenAPI 3.1 document: the document `openapi` was read from (path items inlined, repaired) before its
    /// schemas were translated to 3.0, so with its schemas as written (JSON Schema 2020-12); the schemas the
    /// gateway validates with are converted from it. `None` for 3.0.
    pub schema_document: Option<serde_json::Value>,
}

/// An operation with what the later steps need, gathered from its path item and the document.
#[derive(Debug)]
pub struct ParsedOperation {
    /// JSON pointer to the operation (`/paths/~1pets/get`).
    pub pointer: String,
    /// JSON pointer to its path item (`/paths/~1pets`).
    pub path_pointer: String,
    /// The path template as written (`/pets/{petId}`).
    pub template: String,
    /// Upper-case HTTP method.
    pub method: &'static str,
    /// The operation itself.
    pub operation: Operation,
    /// Parameters of the path item and the operation merged (the operation's win), `$ref`s resolved, each with
    /// the pointer where it is written.
    pub params: Vec<(String, Parameter)>,
    /// The path item's `x-gateway`, with its pointer.
    pub path_ext: Option<(String, PolicyExt)>,
    /// The operation's `x-gateway`, with its pointer.
    pub op_ext: Option<(String, PolicyExt)>,
    /// The servers in effect (operation, else path item, else document), with the pointer to the first.
    pub servers: Option<(String, Server)>,
    /// Whether its own or its path item's `x-gateway` was unreadable (already reported).
    pub ext_failed: bool,
}

/// Parses `text` (JSON or YAML). Diagnostics (warnings, and errors if it fails) are added to `diags`.
pub fn parse(text: &str, diags: &mut Diagnostics) -> Option<ParsedSpec> {
    parse_with(text, &[], Leniency::default(), &mut Sources::default(), diags)
}

/// Parses `text` (JSON or YAML) with `overlays` (`(file name, text)`, applied in order) applied to it first.
/// `sources` learns where each node of the document read was written (see [`sources`]), for rendering the
/// diagnostics added to `diags`, which it must be given whether parsing succeeds or not.
pub fn parse_with(
    text: &str,
    overlays: &[(&str, &str)],
    leniency: Leniency,
    sources: &mut Sources,
    diags: &mut Diagnostics,
) -> Option<ParsedSpec> {
    let mut document = read_document(text, diags)?;
    apply_overlays(&mut document, overlays, sources, diags);
    if diags.has_errors() {
        return None;
    }
    let version = check_version(&document, diags)?;
    if version == Version::Swagger2 {
        // The converter's findings are about the 2.0 document: pinned to where that was written.
        document = pinned_step(sources, diags, |map, found| {
            let converted = swagger2::convert(&document, found)?;
            for (derived, source) in converted.origins {
                map.moved(derived, source);
            }
            Some(converted.document)
        })?;
    }
    let as_written = document.clone();
    sources.push(path_items::inline(&mut document, diags));
    // The repairs' findings are about the document before them (they remove list elements): pinned there.
    pinned_step(sources, diags, |map, found| {
        repair::repair(&mut document, leniency, map, found)
    });
    // Path keys renamed last, as a step of their own: the repairs above point at them as written.
    pinned_step(sources, diags, |map, found| {
        repair::slash_paths(&mut document, map, found)
    });
    let schema_document = match version {
        Version::V3_1 => Some(downgrade::read_3_1(&mut document, diags)?),
        _ => None,
    };
    downgrade::strip_mutual_tls(&mut document);
    let openapi = typed::read(&mut document, schema_document.is_some(), diags)?;
    let errors_before = diags.items().len();
    let root = extension::<RootExt>(&openapi.extensions, "", diags)
        .map(|(_, e)| e)
        .unwrap_or_default();
    let root_failed = diags.items().len() > errors_before;
    let operations = collect_operations(&openapi, diags);
    Some(ParsedSpec {
        openapi,
        root,
        root_failed,
        operations,
        document: as_written,
        schema_document,
    })
}

/// Applies each overlay to `document` in order; the overlays are files 1, 2, ... of `sources`.
fn apply_overlays(
    document: &mut serde_json::Value,
    overlays: &[(&str, &str)],
    sources: &mut Sources,
    diags: &mut Diagnostics,
) {
    let mut map = PointerMap::default();
    for (i, (name, text)) in overlays.iter().enumerate() {
        let file = i + 1;
        let overlay_document = match document::read(text) {
            Ok(value) => value,
            Err(d) => {
                let mut d = d.in_file(file);
                d.message = d.message.replacen("the spec is", "the overlay is", 1);
                diags.push(d);
                continue;
            }
        };
        overlay::apply(
            document,
            overlay::Overlay {
                file,
                name,
                document: &overlay_document,
            },
            &mut map,
            diags,
        );
    }
    sources.push(map);
}

/// Runs a step that moves nodes: what it finds is about the document it was given, so each finding is pinned to
/// where that was written before the step's map (which `step` fills) joins `sources`.
fn pinned_step<T>(
    sources: &mut Sources,
    diags: &mut Diagnostics,
    step: impl FnOnce(&mut PointerMap, &mut Diagnostics) -> T,
) -> T {
    let mut map = PointerMap::default();
    let mut found = Diagnostics::default();
    let out = step(&mut map, &mut found);
    for d in found.items() {
        diags.push(pin(d.clone(), sources));
    }
    sources.push(map);
    out
}

/// `d`, with its pointers followed back to the file they are written in (for diagnostics about a document that a
/// later step replaces).
fn pin(mut d: Diagnostic, sources: &Sources) -> Diagnostic {
    if d.file.is_some() {
        return d;
    }
    let (file, pointer) = sources.origin(&d.pointer);
    d.pointer = pointer;
    // Related places that another file holds are left where they are: they are rare (a conflict) and pinned
    // diagnostics come from one conversion of one file.
    for (related, _) in &mut d.related {
        let (_, p) = sources.origin(related);
        *related = p;
    }
    d.in_file(file)
}

fn read_document(text: &str, diags: &mut Diagnostics) -> Option<serde_json::Value> {
    match document::read(text) {
        Ok(value) if value.is_object() => Some(value),
        Ok(_) => {
            diags.push(
                Diagnostic::error("", "the spec is not an object at its top level")
                    .help("an OpenAPI document starts with `openapi: 3.0.3`, `info:` and `paths:`"),
            );
            None
        }
        Err(diagnostic) => {
            diags.push(*diagnostic);
            None
        }
    }
}

/// The OpenAPI versions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Swagger 2.0, converted to 3.0 in this step.
    Swagger2,
    V3_0,
    V3_1,
}

fn check_version(document: &serde_json::Value, diags: &mut Diagnostics) -> Option<Version> {
    let version = document.get("openapi").and_then(|v| v.as_str());
    match version {
        Some(v) if v.starts_with("3.0.") => Some(Version::V3_0),
        Some(v) if v.starts_with("3.1.") => Some(Version::V3_1),
        Some(v) => {
            diags.push(
                Diagnostic::error("/openapi", format!("unsupported OpenAPI version `{v}`"))
                    .help("this generator reads OpenAPI 3.0.x and 3.1.x documents (`openapi: 3.0.3`)"),
            );
            None
        }
        None => match document.get("swagger") {
            Some(serde_json::Value::String(v)) if v == "2.0" => Some(Version::Swagger2),
            // `swagger: 2.0` unquoted is a number in YAML; the converter says so.
            Some(serde_json::Value::Number(n)) if n.as_f64() == Some(2.0) => Some(Version::Swagger2),
            Some(v) => {
                diags.push(
                    Diagnostic::error("/swagger", format!("unsupported Swagger version `{v}`"))
                        .help("this generator reads Swagger 2.0 (`swagger: \"2.0\"`) and OpenAPI 3.0.x and 3.1.x"),
                );
                None
            }
            None => {
                diags.push(
                    Diagnostic::error("", "the document has no `openapi` version field")
                        .help("start the spec with `openapi: 3.0.3`"),
                );
                None
            }
        },
    }
}

/// Deserializes `value` (found at `base`) into `T`, turning a failure into a diagnostic at the exact pointer.
fn deserialize_at<T: DeserializeOwned>(value: &serde_json::Value, base: &str, diags: &mut Diagnostics) -> Option<T> {
    match try_deserialize(value, base) {
        Ok(v) => Some(v),
        Err(diagnostic) => {
            diags.push(*diagnostic);
            None
        }
    }
}

/// Deserializes `value` (found at `base`) into `T`; a failure is a diagnostic at the deepest pointer serde tracked.
fn try_deserialize<T: DeserializeOwned>(value: &serde_json::Value, base: &str) -> Result<T, Box<Diagnostic>> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut at = base.to_owned();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Seq { index } => at.push_str(&format!("/{index}")),
                serde_path_to_error::Segment::Map { key } => {
                    at.push('/');
                    at.push_str(&escape_segment(key));
                }
                serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
            }
        }
        Box::new(describe_serde_error(&at, &e.into_inner().to_string()))
    })
}

/// Turns serde's message into a diagnostic, with a "did you mean" for unknown fields.
fn describe_serde_error(at: &str, message: &str) -> Diagnostic {
    // serde words an unknown field as: unknown field `cahce`, expected one of `a`, `b` (or: expected `a`).
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        let at = format!("{at}/{}", escape_segment(field));
        let mut d = Diagnostic::error(&at, format!("unknown key `{field}`"));
        d = match did_you_mean(field, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None if known.is_empty() => d.help("this object takes no keys"),
            None => d.help(format!("the known keys here are: {}", known.join(", "))),
        };
        return d;
    }
    if message.contains("did not match any variant of untagged enum ReferenceOr") {
        return Diagnostic::error(at, "this is neither a valid `$ref` nor a valid inline object")
            .help("check the object's required fields and their types against the OpenAPI 3.0 specification");
    }
    // serde_json appends " at line L column C" for text input; from a Value it does not, so the message is clean.
    Diagnostic::error(at, message.to_owned())
}

/// Reads and type-checks the `x-gateway` extension among `extensions` of the object at `base`.
fn extension<T: DeserializeOwned>(
    extensions: &indexmap::IndexMap<String, serde_json::Value>,
    base: &str,
    diags: &mut Diagnostics,
) -> Option<(String, T)> {
    let value = extensions.get(EXTENSION)?;
    let at = format!("{base}/{EXTENSION}");
    if value.is_null() {
        return None;
    }
    deserialize_at(value, &at, diags).map(|ext| (at, ext))
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn collect_operations(openapi: &OpenAPI, diags: &mut Diagnostics) -> Vec<ParsedOperation> {
    let mut out = Vec::new();
    for (template, item) in &openapi.paths.paths {
        let path_pointer = pointer(&["paths", template.as_str()]);
        let item: &PathItem = match item {
            ReferenceOr::Item(item) => item,
            ReferenceOr::Reference { reference } => {
                diags.push(
                    Diagnostic::error(
                        format!("{path_pointer}/$ref"),
                        format!("path item `$ref: {reference}` is not supported"),
                    )
                    .help("write the path item inline"),
                );
                continue;
            }
        };
        let before = diags.items().len();
        let path_ext = extension::<PolicyExt>(&item.extensions, &path_pointer, diags);
        let path_ext_failed = diags.items().len() > before;
        let path_params = resolve_params(openapi, &item.parameters, &format!("{path_pointer}/parameters"), diags);
        let operations = [
            &item.get,
            &item.put,
            &item.post,
            &item.delete,
            &item.options,
            &item.head,
            &item.patch,
            &item.trace,
        ];
        for (method, operation) in METHODS.iter().zip(operations) {
            let Some(operation) = operation else { continue };
            let op_pointer = format!("{path_pointer}/{method}");
            let before = diags.items().len();
            let op_ext = extension::<PolicyExt>(&operation.extensions, &op_pointer, diags);
            let ext_failed = path_ext_failed || diags.items().len() > before;
            let op_params = resolve_params(
                openapi,
                &operation.parameters,
                &format!("{op_pointer}/parameters"),
                diags,
            );
            // An operation's parameter overrides the path item's of the same name and location.
            let mut params: Vec<(String, Parameter)> = path_params
                .iter()
                .filter(|(_, p)| {
                    !op_params
                        .iter()
                        .any(|(_, o)| o.parameter_data_ref().name == p.parameter_data_ref().name && same_location(o, p))
                })
                .cloned()
                .collect();
            params.extend(op_params);
            let servers = first_server(&operation.servers, &format!("{op_pointer}/servers"))
                .or_else(|| first_server(&item.servers, &format!("{path_pointer}/servers")))
                .or_else(|| first_server(&openapi.servers, "/servers"));
            out.push(ParsedOperation {
                pointer: op_pointer,
                path_pointer: path_pointer.clone(),
                template: template.clone(),
                method: method_name(method),
                operation: operation.clone(),
                params,
                path_ext: path_ext.clone(),
                op_ext,
                servers,
                ext_failed,
            });
        }
    }
    out
}

fn method_name(lower: &str) -> &'static str {
    match lower {
        "get" => "GET",
        "put" => "PUT",
        "post" => "POST",
        "delete" => "DELETE",
        "options" => "OPTIONS",
        "head" => "HEAD",
        "patch" => "PATCH",
        _ => "TRACE",
    }
}

fn first_server(servers: &[Server], at: &str) -> Option<(String, Server)> {
    servers.first().map(|s| (format!("{at}/0"), s.clone()))
}

/// Whether two parameters are read from the same place.
pub fn same_location(a: &Parameter, b: &Parameter) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn resolve_params(
    openapi: &OpenAPI,
    params: &[ReferenceOr<Parameter>],
    base: &str,
    diags: &mut Diagnostics,
) -> Vec<(String, Parameter)> {
    let mut out = Vec::new();
    for (i, param) in params.iter().enumerate() {
        let at = format!("{base}/{i}");
        match refs::resolve(openapi, param) {
            Ok(p) => out.push((at, p.clone())),
            Err(e) => diags.push(Diagnostic::error(format!("{at}/$ref"), e.to_string())),
        }
    }
    out
}

/// Finding where in `paths` (and `components`) a deserialization error really is.
///
/// openapiv3 reads `paths` through `#[serde(flatten)]` maps, and path items, parameters and schemas through
/// flattened or untagged types: serde buffers those, so `serde_path_to_error` loses its position and an error
/// anywhere under `paths` is reported at `/paths`, with a message that names nothing. When that happens, the path
/// items, operations, parameters and their fields are deserialized again one by one, and the deepest one that fails
/// gives the pointer and the message.
mod relocate {
    use openapiv3::{
        Callback, CookieStyle, Example, ExternalDocumentation, Header, HeaderStyle, Link, MediaType, Operation,
        Parameter, PathItem, PathStyle, QueryStyle, ReferenceOr, RequestBody, Response, Schema, SecurityRequirement,
        SecurityScheme, Server,
    };
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::try_deserialize;
    use crate::diagnostics::Diagnostic;
    use crate::locate::escape_segment;

    /// A check of one node: `Some` with the deepest error found under it, `None` when it deserializes.
    type Check = fn(&Value, &str) -> Option<Diagnostic>;

    /// The error `whole` of the document, moved to where it is when serde could not say.
    pub(super) fn refine(document: &Value, whole: Diagnostic) -> Diagnostic {
        let found = if whole.pointer == "/paths" || whole.pointer.starts_with("/paths/") {
            document.get("paths").and_then(|paths| check_paths(paths, "/paths"))
        } else if let Some(rest) = whole.pointer.strip_prefix("/components/") {
            component(document, rest)
        } else {
            None
        };
        found.unwrap_or(whole)
    }

    /// Whether `value` reads as `T`, and if not, the error at the deepest pointer serde tracked, with the field it
    /// is about named in the message.
    fn as_type<T: DeserializeOwned>(value: &Value, at: &str) -> Option<Diagnostic> {
        let d = *try_deserialize::<T>(value, at).err()?;
        let deeper = d.pointer.strip_prefix(at).and_then(|rest| rest.rsplit('/').next());
        match deeper {
            Some(key) if !key.is_empty() && !key.bytes().all(|b| b.is_ascii_digit()) => {
                let key = crate::locate::unescape_segment(key);
                let at = d.pointer.clone();
                named(Some(d), &key, &at)
            }
            _ => Some(d),
        }
    }

    /// `$ref`, or an inline `T` read without the untagged `ReferenceOr`, which would hide the inline error.
    fn ref_or(value: &Value, at: &str, inline: Check) -> Option<Diagnostic> {
        match value.get("$ref") {
            Some(Value::String(_)) => None,
            Some(reference) => named(as_type::<String>(reference, &format!("{at}/$ref")), "$ref", at),
            None => inline(value, at),
        }
    }

    /// The first failing field of an object among `known` fields, else the error of the object as a whole (a
    /// missing field, or a wrong type for the object itself).
    fn fields(value: &Value, at: &str, whole: Option<Diagnostic>, known: &[(&str, Check)]) -> Option<Diagnostic> {
        let whole = whole?;
        let Some(map) = value.as_object() else {
            return Some(whole);
        };
        for (key, child) in map {
            let Some((_, check)) = known.iter().find(|(name, _)| name == key) else {
                continue;
            };
            let child_at = format!("{at}/{}", escape_segment(key));
            if let Some(found) = named(check(child, &child_at), key, &child_at) {
                return Some(found);
            }
        }
        Some(whole)
    }

    /// Names the field in a message about the field's own value (`invalid type: sequence, expected a string`).
    fn named(found: Option<Diagnostic>, key: &str, at: &str) -> Option<Diagnostic> {
        found.map(|mut d| {
            if d.pointer == at && !d.message.contains(&format!("`{key}`")) {
                d.message = format!("invalid `{key}`: {}", d.message);
            }
            d
        })
    }

    /// Each item of a list by `item`, after the list as a whole by `T`.
    fn list<T: DeserializeOwned>(value: &Value, at: &str, item: Check) -> Option<Diagnostic> {
        let whole = as_type::<T>(value, at)?;
        let Some(items) = value.as_array() else {
            return Some(whole);
        };
        items
            .iter()
            .enumerate()
            .find_map(|(i, v)| item(v, &format!("{at}/{i}")))
            .or(Some(whole))
    }

    fn check_paths(value: &Value, at: &str) -> Option<Diagnostic> {
        let map = value.as_object()?;
        map.iter()
            // openapiv3 reads keys that start with `/` as paths and ignores every other key but extensions.
            .filter(|(template, _)| template.starts_with('/'))
            .find_map(|(template, item)| ref_or(item, &format!("{at}/{}", escape_segment(template)), path_item))
    }

    fn path_item(value: &Value, at: &str) -> Option<Diagnostic> {
        fields(
            value,
            at,
            as_type::<PathItem>(value, at),
            &[
                ("summary", as_type::<String>),
                ("description", as_type::<String>),
                ("get", operation),
                ("put", operation),
                ("post", operation),
                ("delete", operation),
                ("options", operation),
                ("head", operation),
                ("patch", operation),
                ("trace", operation),
                ("servers", as_type::<Vec<Server>>),
                ("parameters", parameters),
            ],
        )
    }

    fn operation(value: &Value, at: &str) -> Option<Diagnostic> {
        fields(
            value,
            at,
            as_type::<Operation>(value, at),
            &[
                ("tags", as_type::<Vec<String>>),
                ("summary", as_type::<String>),
                ("description", as_type::<String>),
                ("externalDocs", as_type::<ExternalDocumentation>),
                ("operationId", as_type::<String>),
                ("parameters", parameters),
                ("requestBody", |v, at| ref_or(v, at, as_type::<RequestBody>)),
                ("responses", responses),
                (
                    "callbacks",
                    as_type::<indexmap::IndexMap<String, ReferenceOr<Callback>>>,
                ),
                ("deprecated", as_type::<bool>),
                ("security", as_type::<Vec<SecurityRequirement>>),
                ("servers", as_type::<Vec<Server>>),
            ],
        )
    }

    fn responses(value: &Value, at: &str) -> Option<Diagnostic> {
        let whole = as_type::<openapiv3::Responses>(value, at)?;
        let Some(map) = value.as_object() else {
            return Some(whole);
        };
        map.iter()
            .filter(|(key, _)| !key.starts_with("x-"))
            .find_map(|(code, response)| {
                let at = format!("{at}/{}", escape_segment(code));
                ref_or(response, &at, as_type::<Response>)
            })
            .or(Some(whole))
    }

    fn parameters(value: &Value, at: &str) -> Option<Diagnostic> {
        list::<Vec<ReferenceOr<Parameter>>>(value, at, |v, at| ref_or(v, at, parameter))
    }

    /// Where a parameter is read from: the tag of openapiv3's internally tagged `Parameter`.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum In {
        Query,
        Header,
        Path,
        Cookie,
    }

    fn parameter(value: &Value, at: &str) -> Option<Diagnostic> {
        let style: Check = match value.get("in").and_then(Value::as_str) {
            Some("query") => as_type::<QueryStyle>,
            Some("header") => as_type::<HeaderStyle>,
            Some("path") => as_type::<PathStyle>,
            Some("cookie") => as_type::<CookieStyle>,
            _ => as_type::<Value>,
        };
        let checks: [(&str, Check); 12] = [
            ("in", as_type::<In>),
            ("name", as_type::<String>),
            ("description", as_type::<String>),
            ("required", as_type::<bool>),
            ("deprecated", as_type::<bool>),
            ("schema", |v, at| ref_or(v, at, as_type::<Schema>)),
            ("content", as_type::<indexmap::IndexMap<String, MediaType>>),
            ("examples", as_type::<indexmap::IndexMap<String, ReferenceOr<Example>>>),
            ("explode", as_type::<bool>),
            ("allowReserved", as_type::<bool>),
            ("allowEmptyValue", as_type::<bool>),
            ("style", style),
        ];
        fields(value, at, as_type::<Parameter>(value, at), &checks)
    }

    /// An error at `/components/<kind>/<name>…`, which serde reports at the component when it is read through the
    /// untagged `ReferenceOr`: the component read again as its own type.
    fn component(document: &Value, rest: &str) -> Option<Diagnostic> {
        let mut segments = rest.splitn(3, '/');
        let (kind, name) = (segments.next()?, segments.next()?);
        let at = format!("/components/{kind}/{name}");
        let value = document.pointer(&at)?;
        let check: Check = match kind {
            "schemas" => |v, at| ref_or(v, at, as_type::<Schema>),
            "responses" => |v, at| ref_or(v, at, as_type::<Response>),
            "parameters" => |v, at| ref_or(v, at, parameter),
            "examples" => |v, at| ref_or(v, at, as_type::<Example>),
            "requestBodies" => |v, at| ref_or(v, at, as_type::<RequestBody>),
            "headers" => |v, at| ref_or(v, at, as_type::<Header>),
            "securitySchemes" => |v, at| ref_or(v, at, as_type::<SecurityScheme>),
            "links" => |v, at| ref_or(v, at, as_type::<Link>),
            "callbacks" => |v, at| ref_or(v, at, as_type::<Callback>),
            _ => return None,
        };
        check(value, &at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_messages_become_suggestions() {
        let d = describe_serde_error(
            "/x-gateway",
            "unknown field `upstreem`, expected one of `name`, `upstreams`, `target`",
        );
        assert_eq!(d.pointer, "/x-gateway/upstreem");
        assert_eq!(d.message, "unknown key `upstreem`");
        assert_eq!(d.help.as_deref(), Some("did you mean `upstreams`?"));
    }
}
