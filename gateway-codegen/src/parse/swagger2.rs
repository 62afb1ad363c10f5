//! Reading a Swagger 2.0 document as OpenAPI 3.0.3.
//!
//! The conversion is the one the OpenAPI 3.0 specification's changes and `swagger2openapi` describe, done on the
//! `serde_json::Value` before anything else reads it:
//!
//! - `host`, `basePath` and `schemes` become `servers`, one per scheme (`//host/base` when `schemes` is absent, as
//!   `swagger2openapi` writes it; the relative URL `basePath` without a `host`); an operation's own `schemes` give it
//!   its own `servers`.
//! - Non-body parameters get a `schema` from the keywords 2.0 writes inline (`type`, `format`, `items`, `enum`,
//!   bounds, ...); `collectionFormat` becomes `style` and `explode` (an array without one is `csv`, 2.0's default);
//!   `tsv`, and formats 3.0 has only for query parameters, are read as `csv` with a warning.
//! - The `in: body` parameter becomes `requestBody`, one media type per `consumes` (the operation's, else the
//!   document's, else `application/json`); `in: formData` parameters become one object schema, form-encoded or
//!   multipart (multipart when a `type: file` field exists), each field a property; `type: file` is a binary string.
//!   Body and form parameters of a path item move into each of its operations.
//! - Response `schema`s get `content` per `produces` (else `application/json`), `examples` become media type
//!   examples, headers get a `schema`.
//! - `definitions`, `parameters` (body ones as `requestBodies`; form ones are inlined where they are used),
//!   `responses` and `securityDefinitions` (`basic` → `http`, oauth2 `flow` → `flows`) move under `components`,
//!   and every `$ref` is rewritten to match. In schemas, `x-nullable` → `nullable`, a string `discriminator` → an
//!   object, `type: file` → a binary string.
//! - `info`, `tags`, `security`, `externalDocs` and every `x-` extension (`x-gateway` among them) stay as written.
//!
//! Every node that moves is recorded in [`Converted::origins`], so a problem found later in the converted document is
//! shown where its text is in the 2.0 file. What has no 3.0 meaning (two bodies, a body and a form, a `$ref` into
//! another file) is an error at the 2.0 pointer. A node of the wrong type is left where it is, unconverted, for the
//! 3.0 reader to report at the same place; nothing here panics on any input.

use serde_json::{Map, Value};

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::{escape_segment, unescape_segment};

/// A Swagger 2.0 document as OpenAPI 3.0.3.
#[derive(Debug)]
pub struct Converted {
    /// The converted document.
    pub document: Value,
    /// (pointer prefix in the converted document, pointer prefix in the 2.0 document) for every node that moved,
    /// so a diagnostic found in the converted document is shown where its text is written in the 2.0 file.
    /// Pointers that did not move (paths, operations, x-gateway extensions, info) need no entry: unmapped = same.
    /// Ordered so that no entry comes after a more specific one below it.
    pub origins: Vec<(String, String)>,
}

/// Converts the Swagger 2.0 document `doc` to OpenAPI 3.0.3. Problems are added to `diags` at pointers into `doc`;
/// `None` when one of them is an error.
pub fn convert(doc: &Value, diags: &mut Diagnostics) -> Option<Converted> {
    let Some(root) = doc.as_object() else {
        diags.push(
            Diagnostic::error("", "the spec is not an object at its top level")
                .help("a Swagger 2.0 document starts with `swagger: \"2.0\"`, `info:` and `paths:`"),
        );
        return None;
    };
    match root.get("swagger") {
        Some(Value::String(v)) if v == "2.0" => {}
        // YAML reads an unquoted `swagger: 2.0` as a number.
        Some(Value::Number(v)) if v.as_f64() == Some(2.0) => diags.push(
            Diagnostic::warning("/swagger", "`swagger: 2.0` is a number; read as the version \"2.0\"")
                .help("quote it: `swagger: \"2.0\"`"),
        ),
        Some(v) => {
            diags.push(
                Diagnostic::error("/swagger", format!("unsupported Swagger version `{v}`"))
                    .help("only Swagger 2.0 is read: `swagger: \"2.0\"` (a string)"),
            );
            return None;
        }
        None => {
            diags.push(
                Diagnostic::error("", "the document has no `swagger` version field")
                    .help("start it with `swagger: \"2.0\"`"),
            );
            return None;
        }
    }
    let mut converter = Converter::new(root, diags);
    let document = converter.document();
    if converter.failed {
        return None;
    }
    let mut origins = converter.origins;
    // A rule replaces the more specific ones under it that came before: the general ones go first.
    origins.sort_by_key(|(derived, _)| derived.len());
    Some(Converted {
        document: Value::Object(document),
        origins,
    })
}

/// The media type of a body or response whose operation and document say none.
const JSON: &str = "application/json";
/// The media type of a form without files.
const FORM: &str = "application/x-www-form-urlencoded";
/// The media type of a form with a file.
const MULTIPART: &str = "multipart/form-data";

/// The keys of a path item that are operations.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The keywords a 2.0 non-body parameter, header or `items` writes inline, which 3.0 writes in a `schema`.
const SCHEMA_KEYWORDS: [&str; 16] = [
    "type",
    "format",
    "items",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

/// The root fields of a Swagger 2.0 document.
const ROOT_FIELDS: [&str; 15] = [
    "swagger",
    "info",
    "host",
    "basePath",
    "schemes",
    "consumes",
    "produces",
    "paths",
    "definitions",
    "parameters",
    "responses",
    "securityDefinitions",
    "security",
    "tags",
    "externalDocs",
];

/// The values of `collectionFormat`.
const COLLECTION_FORMATS: [&str; 5] = ["csv", "ssv", "tsv", "pipes", "multi"];

/// `pointer/segment`, the segment escaped.
fn join(pointer: &str, segment: &str) -> String {
    format!("{pointer}/{}", escape_segment(segment))
}

/// Whether `key` is a specification extension.
fn is_extension(key: &str) -> bool {
    key.starts_with("x-")
}

/// A media type's essence, lower case (`Multipart/Form-Data; boundary=x` → `multipart/form-data`).
fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or(media_type)
        .trim()
        .to_ascii_lowercase()
}

/// Where a 2.0 parameter is read from, as far as the conversion cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `in: body`: the request body.
    Body,
    /// `in: formData`: a field of a form body.
    Form,
    /// Anything else (query, header, path; or unreadable, left for the 3.0 reader).
    Other,
}

/// Where the parameter `param` is read from.
fn kind_of(param: &Value) -> Kind {
    param.as_object().map_or(Kind::Other, kind_of_map)
}

/// [`kind_of`], for a parameter object.
fn kind_of_map(param: &Map<String, Value>) -> Kind {
    match param.get("in").and_then(Value::as_str) {
        Some("body") => Kind::Body,
        Some("formData") => Kind::Form,
        _ => Kind::Other,
    }
}

/// A body or form parameter, which leaves the parameter list for the operation's `requestBody`.
#[derive(Debug, Clone)]
struct Special<'d> {
    /// Where the entry of the parameter list is (in the 2.0 document).
    at: String,
    /// Body or form.
    kind: Kind,
    /// The parameter, its `$ref` followed.
    param: &'d Map<String, Value>,
    /// Where the parameter itself is written: `at`, or `/parameters/<name>` when `at` is a `$ref` to it.
    param_at: String,
    /// The `$ref` after `#/parameters/`, as written, when the entry is one.
    reference: Option<String>,
}

impl Special<'_> {
    /// The parameter's `name`, when it is a string.
    fn name(&self) -> Option<&str> {
        self.param.get("name").and_then(Value::as_str)
    }

    /// Whether it is a file upload (`type: file`).
    fn is_file(&self) -> bool {
        self.param.get("type").and_then(Value::as_str) == Some("file")
    }
}

/// A parameter list, sorted out.
#[derive(Debug, Default)]
struct Split<'d> {
    /// The parameters that stay parameters, converted.
    regular: Vec<Value>,
    /// The body and form parameters.
    special: Vec<Special<'d>>,
}

/// The conversion of one document.
struct Converter<'d, 'g> {
    /// The 2.0 document.
    root: &'d Map<String, Value>,
    /// Where problems go.
    diags: &'g mut Diagnostics,
    /// What moved where (see [`Converted::origins`]).
    origins: Vec<(String, String)>,
    /// Whether an error was reported.
    failed: bool,
    /// The document's `consumes` (empty when absent).
    consumes: Vec<String>,
    /// The document's `produces` (empty when absent).
    produces: Vec<String>,
    /// `host`, when given (and a string).
    host: Option<String>,
    /// `basePath`, when given (and a string).
    base_path: Option<String>,
    /// The document's `schemes`.
    schemes: Vec<String>,
}

impl<'d, 'g> Converter<'d, 'g> {
    /// A conversion of the document `root`, reporting to `diags`.
    fn new(root: &'d Map<String, Value>, diags: &'g mut Diagnostics) -> Self {
        let mut converter = Self {
            root,
            diags,
            origins: Vec::new(),
            failed: false,
            consumes: Vec::new(),
            produces: Vec::new(),
            host: None,
            base_path: None,
            schemes: Vec::new(),
        };
        converter.consumes = converter
            .media_types(root.get("consumes"), "/consumes")
            .unwrap_or_default();
        converter.produces = converter
            .media_types(root.get("produces"), "/produces")
            .unwrap_or_default();
        converter
    }

    /// Reports an error: the conversion fails.
    fn error(&mut self, diagnostic: Diagnostic) {
        self.failed = true;
        self.diags.push(diagnostic);
    }

    /// Reports a warning.
    fn warn(&mut self, diagnostic: Diagnostic) {
        self.diags.push(diagnostic);
    }

    /// Records that the converted node at `derived` is written at `source` in the 2.0 document.
    fn moved(&mut self, derived: impl Into<String>, source: impl Into<String>) {
        let (derived, source) = (derived.into(), source.into());
        if derived != source {
            self.origins.push((derived, source));
        }
    }

    /// The whole document.
    fn document(&mut self) -> Map<String, Value> {
        let root = self.root;
        let mut out = Map::new();
        out.insert(String::from("openapi"), Value::from("3.0.3"));
        self.moved("/openapi", "/swagger");
        let mut servers = self.servers();
        let mut components_done = false;
        for (key, value) in root {
            match key.as_str() {
                "swagger" | "consumes" | "produces" => {}
                "host" | "basePath" | "schemes" => {
                    if let Some(servers) = servers.take() {
                        out.insert(String::from("servers"), servers);
                    }
                }
                "paths" => {
                    let paths = self.paths(value);
                    out.insert(key.clone(), paths);
                }
                "definitions" | "parameters" | "responses" | "securityDefinitions" => {
                    if !components_done {
                        components_done = true;
                        let components = self.components();
                        if !components.is_empty() {
                            out.insert(String::from("components"), Value::Object(components));
                        }
                    }
                }
                "info" | "tags" | "security" | "externalDocs" => {
                    out.insert(key.clone(), value.clone());
                }
                _ if is_extension(key) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {
                    let mut d = Diagnostic::warning(
                        join("", key),
                        format!("`{key}` is not a field of a Swagger 2.0 document; it is left out"),
                    );
                    d = match did_you_mean(key, ROOT_FIELDS) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => {
                            d.help("extensions are named `x-...`; an OpenAPI 3 document starts with `openapi: 3.0.3`")
                        }
                    };
                    self.warn(d);
                }
            }
        }
        out
    }

    /// A list of media types (`consumes`, `produces`) at `at`: `None` when absent or unreadable (reported).
    fn media_types(&mut self, value: Option<&Value>, at: &str) -> Option<Vec<String>> {
        let items = match value? {
            Value::Array(items) => items,
            _ => {
                self.error(
                    Diagnostic::error(at, "a list of media types was expected here")
                        .help("write e.g. `[application/json]`"),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => {
                    if !out.contains(s) {
                        out.push(s.clone());
                    }
                }
                _ => self.error(
                    Diagnostic::error(format!("{at}/{i}"), "a media type is a string")
                        .help("write e.g. `application/json`"),
                ),
            }
        }
        Some(out)
    }

    /// The media types in effect: the operation's (`own`), else the document's (`global`), else JSON. An
    /// operation's empty list clears the document's.
    fn effective(own: Option<Vec<String>>, global: &[String]) -> Vec<String> {
        match own {
            Some(own) if !own.is_empty() => own,
            Some(_) => vec![String::from(JSON)],
            None if !global.is_empty() => global.to_vec(),
            None => vec![String::from(JSON)],
        }
    }

    /// An optional string at the root, `what` describing it for the error when it is not one.
    fn root_string(&mut self, key: &str, what: &str, example: &str) -> Option<String> {
        match self.root.get(key)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.error(
                    Diagnostic::error(join("", key), format!("`{key}` must be a string: {what}"))
                        .help(format!("write e.g. `{key}: {example}`")),
                );
                None
            }
        }
    }

    /// `servers` from `host`, `basePath` and `schemes`.
    fn servers(&mut self) -> Option<Value> {
        let host = self.root_string("host", "a host name and optional port", "api.example.com:8443");
        if let Some(h) = &host
            && (h.contains("://") || h.contains('/'))
        {
            self.error(
                Diagnostic::error(
                    "/host",
                    format!("`host: {h}` has a scheme or a path; it is a host name and optional port only"),
                )
                .help("write the scheme under `schemes: [https]` and the path under `basePath: /v1`"),
            );
        }
        let base_path = self.root_string("basePath", "the path all operations are under", "/v1");
        if let Some(b) = &base_path
            && !b.starts_with('/')
        {
            self.error(
                Diagnostic::error("/basePath", format!("`basePath: {b}` must start with `/`"))
                    .help(format!("write `basePath: /{b}`")),
            );
        }
        self.schemes = match self.root.get("schemes") {
            None => Vec::new(),
            Some(value) => self.schemes_list(value, "/schemes").unwrap_or_default(),
        };
        self.host = host.filter(|h| !h.is_empty());
        self.base_path = base_path;
        let servers = self.server_list(&self.schemes)?;
        let source = if self.host.is_some() { "/host" } else { "/basePath" };
        self.moved("/servers", source);
        // Each URL is mostly the host; its scheme is an item of `schemes`.
        for i in 0..servers.as_array().map_or(0, Vec::len) {
            self.moved(format!("/servers/{i}/url"), source);
        }
        Some(servers)
    }

    /// A `schemes` list at `at`: `None` (reported) when it is not a list of strings.
    fn schemes_list(&mut self, value: &Value, at: &str) -> Option<Vec<String>> {
        let list = value.as_array().and_then(|items| {
            items
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        if list.is_none() {
            self.error(
                Diagnostic::error(at, "`schemes` must be a list of schemes").help("write e.g. `schemes: [https]`"),
            );
        }
        list
    }

    /// One server per scheme (`schemes` empty: one protocol-relative URL), from the document's host and base path;
    /// `None` when there is neither.
    fn server_list(&self, schemes: &[String]) -> Option<Value> {
        let base = self.base_path.as_deref().unwrap_or("");
        let urls: Vec<String> = match &self.host {
            Some(host) if schemes.is_empty() => vec![format!("//{host}{base}")],
            Some(host) => schemes.iter().map(|s| format!("{s}://{host}{base}")).collect(),
            None if self.base_path.is_some() => vec![base.to_owned()],
            None => return None,
        };
        let servers = urls
            .into_iter()
            .map(|url| {
                let mut server = Map::new();
                server.insert(String::from("url"), Value::String(url));
                Value::Object(server)
            })
            .collect();
        Some(Value::Array(servers))
    }

    /// `paths`.
    fn paths(&mut self, paths: &'d Value) -> Value {
        let Some(paths) = paths.as_object() else {
            return paths.clone();
        };
        let mut out = Map::new();
        for (template, item) in paths {
            let converted = if is_extension(template) {
                item.clone()
            } else {
                self.path_item(item, &join("/paths", template))
            };
            out.insert(template.clone(), converted);
        }
        Value::Object(out)
    }

    /// The path item at `at`: its body and form parameters moved into its operations.
    fn path_item(&mut self, item: &'d Value, at: &str) -> Value {
        let Some(item) = item.as_object() else {
            return item.clone();
        };
        if let Some(Value::String(reference)) = item.get("$ref") {
            self.check_local(reference, &format!("{at}/$ref"));
        }
        let params_at = format!("{at}/parameters");
        let split = match item.get("parameters") {
            Some(list @ Value::Array(_)) => self.split_params(list, &params_at),
            _ => Split::default(),
        };
        let Split { regular, special } = split;
        let mut regular = Some(regular);
        let mut out = Map::new();
        for (key, value) in item {
            if key == "parameters" && value.is_array() {
                if let Some(regular) = regular.take() {
                    out.insert(key.clone(), Value::Array(regular));
                }
            } else if METHODS.contains(&key.as_str()) {
                let op = self.operation(value, &join(at, key), &special);
                out.insert(key.clone(), op);
            } else {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// Sorts the parameter list `list` (at `at`, in both documents) into the parameters that stay, converted, and
    /// the body and form ones; records the indexes that shift.
    fn split_params(&mut self, list: &'d Value, at: &str) -> Split<'d> {
        let mut split = Split::default();
        let Some(items) = list.as_array() else {
            return split;
        };
        for (i, param) in items.iter().enumerate() {
            let entry_at = format!("{at}/{i}");
            let converted_at = format!("{at}/{}", split.regular.len());
            let Some(map) = param.as_object() else {
                self.moved(&converted_at, &entry_at);
                split.regular.push(param.clone());
                continue;
            };
            if let Some(reference) = map.get("$ref") {
                let Value::String(reference) = reference else {
                    self.moved(&converted_at, &entry_at);
                    split.regular.push(param.clone());
                    continue;
                };
                let ref_at = format!("{entry_at}/$ref");
                if let Some(rest) = reference.strip_prefix("#/parameters/") {
                    let name = unescape_segment(rest);
                    if let Some(target) = self.root_parameter(&name) {
                        let kind = kind_of_map(target);
                        if kind != Kind::Other {
                            split.special.push(Special {
                                at: entry_at,
                                kind,
                                param: target,
                                param_at: join("/parameters", &name),
                                reference: Some(rest.to_owned()),
                            });
                            continue;
                        }
                    }
                }
                let mut out = map.clone();
                out.insert(String::from("$ref"), Value::String(self.reference(reference, &ref_at)));
                self.moved(&converted_at, &entry_at);
                split.regular.push(Value::Object(out));
                continue;
            }
            let kind = kind_of(param);
            if kind == Kind::Other {
                self.moved(&converted_at, &entry_at);
                let converted = self.parameter(map, &converted_at, &entry_at);
                split.regular.push(converted);
            } else {
                split.special.push(Special {
                    at: entry_at.clone(),
                    kind,
                    param: map,
                    param_at: entry_at,
                    reference: None,
                });
            }
        }
        split
    }

    /// The parameter `name` of the document's `parameters`, if it is an object.
    fn root_parameter(&self, name: &str) -> Option<&'d Map<String, Value>> {
        self.root.get("parameters")?.as_object()?.get(name)?.as_object()
    }

    /// An operation; `inherited` are its path item's body and form parameters.
    fn operation(&mut self, op: &'d Value, at: &str, inherited: &[Special<'d>]) -> Value {
        let Some(op) = op.as_object() else {
            return op.clone();
        };
        let own_consumes = self.media_types(op.get("consumes"), &format!("{at}/consumes"));
        let consumes = Self::effective(own_consumes, &self.consumes);
        let own_produces = self.media_types(op.get("produces"), &format!("{at}/produces"));
        let produces = Self::effective(own_produces, &self.produces);
        let params_at = format!("{at}/parameters");
        let Split { regular, mut special } = match op.get("parameters") {
            Some(list @ Value::Array(_)) => self.split_params(list, &params_at),
            _ => Split::default(),
        };
        // The path item's body and form parameters, unless the operation has its own of the same name.
        let overridden = |s: &Special<'_>| special.iter().any(|o| o.kind == s.kind && o.name() == s.name());
        let inherited: Vec<Special<'d>> = inherited.iter().filter(|s| !overridden(s)).cloned().collect();
        special.extend(inherited);
        let body = self.request_body_of(&special, &format!("{at}/requestBody"), &consumes);

        let mut regular = Some(regular);
        let mut body = body;
        let mut out = Map::new();
        for (key, value) in op {
            match key.as_str() {
                "parameters" if value.is_array() => {
                    if let Some(regular) = regular.take() {
                        out.insert(key.clone(), Value::Array(regular));
                    }
                    if let Some(body) = body.take() {
                        out.insert(String::from("requestBody"), body);
                    }
                }
                "consumes" | "produces" => {}
                "schemes" => {
                    if let Some(servers) = self.operation_servers(value, &format!("{at}/schemes")) {
                        self.moved(format!("{at}/servers"), format!("{at}/schemes"));
                        for i in 0..servers.as_array().map_or(0, Vec::len) {
                            self.moved(format!("{at}/servers/{i}/url"), format!("{at}/schemes/{i}"));
                        }
                        out.insert(String::from("servers"), servers);
                    }
                }
                "responses" => {
                    let responses = self.responses(value, &format!("{at}/responses"), &produces);
                    out.insert(key.clone(), responses);
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        if let Some(body) = body {
            out.insert(String::from("requestBody"), body);
        }
        Value::Object(out)
    }

    /// The `requestBody` (at `at`) that an operation's body and form parameters make, if any.
    fn request_body_of(&mut self, special: &[Special<'d>], at: &str, consumes: &[String]) -> Option<Value> {
        let bodies: Vec<&Special<'d>> = special.iter().filter(|s| s.kind == Kind::Body).collect();
        let forms: Vec<Special<'d>> = special.iter().filter(|s| s.kind == Kind::Form).cloned().collect();
        if let [first, second, ..] = bodies.as_slice() {
            self.error(
                Diagnostic::error(&second.at, "a second `in: body` parameter: a request has one body")
                    .related(&first.at, "the first body parameter")
                    .help("describe the body with one parameter: an object schema with both as its properties"),
            );
            return None;
        }
        if let (Some(body), Some(form)) = (bodies.first(), forms.first()) {
            self.error(
                Diagnostic::error(&form.at, "`in: formData` and `in: body` parameters in one operation: the body is either a form or a payload")
                    .related(&body.at, "the body parameter")
                    .help("keep one: describe the form fields as properties of the body's schema, or the payload as form fields"),
            );
            return None;
        }
        if let Some(body) = bodies.first() {
            return Some(self.body_parameter(body, at, consumes));
        }
        if forms.is_empty() {
            return None;
        }
        Some(self.form(&forms, at, consumes))
    }

    /// The `requestBody` of the body parameter `body`.
    fn body_parameter(&mut self, body: &Special<'d>, at: &str, consumes: &[String]) -> Value {
        self.moved(at, &body.at);
        // A shared body parameter is a shared request body, made with the document's media types: referred to
        // where the operation has the same ones, else written out with the operation's.
        if let Some(name) = &body.reference
            && consumes == Self::effective(None, &self.consumes).as_slice()
        {
            let mut out = Map::new();
            out.insert(
                String::from("$ref"),
                Value::String(format!("#/components/requestBodies/{name}")),
            );
            return Value::Object(out);
        }
        self.request_body(body.param, &body.param_at, at, consumes)
    }

    /// The body parameter `param` (written at `param_at`) as a request body at `at`.
    fn request_body(&mut self, param: &'d Map<String, Value>, param_at: &str, at: &str, consumes: &[String]) -> Value {
        let mut out = Map::new();
        if let Some(description) = param.get("description") {
            out.insert(String::from("description"), description.clone());
        }
        let empty = Value::Object(Map::new());
        let schema = match param.get("schema") {
            Some(schema) => schema,
            None => {
                let name = param.get("name").and_then(Value::as_str).unwrap_or("body");
                self.error(
                    Diagnostic::error(param_at, format!("body parameter `{name}` has no `schema`"))
                        .help("add the body's schema, e.g. `schema: { $ref: '#/definitions/Pet' }`"),
                );
                &empty
            }
        };
        let schema_at = format!("{param_at}/schema");
        let mut content = Map::new();
        for media_type in consumes {
            let converted_at = format!("{}/schema", join(&format!("{at}/content"), media_type));
            self.moved(&converted_at, &schema_at);
            let mut media = Map::new();
            media.insert(String::from("schema"), self.schema(schema, &converted_at, &schema_at));
            content.insert(media_type.clone(), Value::Object(media));
        }
        out.insert(String::from("content"), Value::Object(content));
        if let Some(required) = param.get("required") {
            out.insert(String::from("required"), required.clone());
        }
        for (key, value) in param {
            if is_extension(key) {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// The `requestBody` (at `at`) of an operation's form parameters.
    fn form(&mut self, fields: &[Special<'d>], at: &str, consumes: &[String]) -> Value {
        let declared: Vec<&String> = consumes
            .iter()
            .filter(|m| matches!(essence(m).as_str(), FORM | MULTIPART))
            .collect();
        let file = fields.iter().find(|f| f.is_file());
        let media_types: Vec<String> = match file {
            Some(file) => {
                if !declared.is_empty() && !declared.iter().any(|m| essence(m) == MULTIPART) {
                    self.warn(
                        Diagnostic::warning(
                            format!("{}/type", file.param_at),
                            "a `type: file` field is sent as `multipart/form-data`, which the operation's `consumes` does not list; read as multipart",
                        )
                        .help("add `multipart/form-data` to `consumes`"),
                    );
                }
                vec![String::from(MULTIPART)]
            }
            None if declared.is_empty() => vec![String::from(FORM)],
            None => declared.into_iter().cloned().collect(),
        };
        if let Some(first) = fields.first() {
            self.moved(at, &first.at);
        }
        let mut content = Map::new();
        let mut any_required = false;
        for media_type in &media_types {
            let media_at = join(&format!("{at}/content"), media_type);
            let schema_at = format!("{media_at}/schema");
            let mut properties = Map::new();
            let mut required = Vec::new();
            let mut encoding = Map::new();
            for field in fields {
                let Some(name) = field.name() else {
                    self.error(
                        Diagnostic::error(&field.param_at, "a formData parameter without a `name`")
                            .help("name the form field: `name: ...`"),
                    );
                    continue;
                };
                let property_at = join(&format!("{schema_at}/properties"), name);
                self.moved(&property_at, &field.param_at);
                let property = self.field(field.param, &property_at, &field.param_at);
                properties.insert(name.to_owned(), property);
                if field.param.get("required") == Some(&Value::Bool(true)) {
                    self.moved(
                        format!("{schema_at}/required/{}", required.len()),
                        format!("{}/required", field.param_at),
                    );
                    required.push(Value::String(name.to_owned()));
                }
                let is_array = field.param.get("type").and_then(Value::as_str) == Some("array");
                if is_array && essence(media_type) == FORM {
                    let encoding_at = join(&format!("{media_at}/encoding"), name);
                    self.moved(&encoding_at, &field.param_at);
                    if let Some(style) = self.style(field.param, "formData", &encoding_at, &field.param_at) {
                        encoding.insert(name.to_owned(), Value::Object(style));
                    }
                }
            }
            any_required |= !required.is_empty();
            let mut schema = Map::new();
            schema.insert(String::from("type"), Value::from("object"));
            schema.insert(String::from("properties"), Value::Object(properties));
            if !required.is_empty() {
                schema.insert(String::from("required"), Value::Array(required));
            }
            let mut media = Map::new();
            media.insert(String::from("schema"), Value::Object(schema));
            if !encoding.is_empty() {
                media.insert(String::from("encoding"), Value::Object(encoding));
            }
            content.insert(media_type.clone(), Value::Object(media));
        }
        let mut out = Map::new();
        out.insert(String::from("content"), Value::Object(content));
        if any_required {
            out.insert(String::from("required"), Value::Bool(true));
        }
        Value::Object(out)
    }

    /// The schema of the form field `param` (written at `orig`), at `at`.
    fn field(&mut self, param: &'d Map<String, Value>, at: &str, orig: &str) -> Value {
        let mut out = Map::new();
        if let Some(description) = param.get("description") {
            out.insert(String::from("description"), description.clone());
        }
        self.inline_schema(param, &mut out, at, orig);
        for (key, value) in param {
            if is_extension(key) {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// Copies the inline schema keywords of a parameter, header or `items` (`from`, at `orig`) into `schema` (at
    /// `at`). A `type: file` is a binary string.
    fn inline_schema(&mut self, from: &'d Map<String, Value>, schema: &mut Map<String, Value>, at: &str, orig: &str) {
        let file = from.get("type").and_then(Value::as_str) == Some("file");
        for (key, value) in from {
            if !SCHEMA_KEYWORDS.contains(&key.as_str()) {
                continue;
            }
            match key.as_str() {
                "type" if file => {
                    schema.insert(String::from("type"), Value::from("string"));
                    schema.insert(String::from("format"), Value::from("binary"));
                    self.moved(format!("{at}/format"), format!("{orig}/type"));
                }
                "format" if file => {}
                "items" => {
                    let items = self.items(value, &format!("{at}/items"), &format!("{orig}/items"));
                    schema.insert(key.clone(), items);
                }
                _ => {
                    schema.insert(key.clone(), value.clone());
                }
            }
        }
    }

    /// The `items` of a 2.0 parameter or header (at `orig`) as a schema at `at`: inline keywords, nested `items`,
    /// and no `collectionFormat` (3.0 has none for the inner arrays of an array).
    fn items(&mut self, items: &'d Value, at: &str, orig: &str) -> Value {
        let Some(map) = items.as_object() else {
            return items.clone();
        };
        if map.contains_key("collectionFormat") {
            self.warn(
                Diagnostic::warning(
                    format!("{orig}/collectionFormat"),
                    "OpenAPI 3.0 has no `collectionFormat` for the arrays inside an array; left out",
                )
                .help("a parameter's inner arrays cannot be split by the gateway; consider a `content` parameter in OpenAPI 3"),
            );
        }
        if map.contains_key("$ref") {
            return self.schema(items, at, orig);
        }
        let mut out = Map::new();
        self.inline_schema(map, &mut out, at, orig);
        for (key, value) in map {
            if !SCHEMA_KEYWORDS.contains(&key.as_str()) && key != "collectionFormat" {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// A non-body parameter `param` (written at `orig`), converted at `at`.
    fn parameter(&mut self, param: &'d Map<String, Value>, at: &str, orig: &str) -> Value {
        let location = param.get("in").and_then(Value::as_str).unwrap_or("");
        let name = param.get("name").and_then(Value::as_str).unwrap_or("");
        let mut out = Map::new();
        let mut schema = Map::new();
        self.inline_schema(param, &mut schema, &format!("{at}/schema"), orig);
        for (key, value) in param {
            match key.as_str() {
                k if SCHEMA_KEYWORDS.contains(&k) => {}
                "collectionFormat" => {}
                "schema" => {}
                "x-example" => {
                    out.insert(String::from("example"), value.clone());
                    self.moved(format!("{at}/example"), format!("{orig}/x-example"));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        if param.get("type").and_then(Value::as_str) == Some("file") {
            self.error(
                Diagnostic::error(
                    format!("{orig}/type"),
                    format!("`type: file` parameter `{name}` is not `in: formData`"),
                )
                .help("a file is uploaded in a form: `in: formData`, with `consumes: [multipart/form-data]`"),
            );
        }
        if !schema.is_empty() {
            self.moved(format!("{at}/schema"), orig);
            out.insert(String::from("schema"), Value::Object(schema));
        } else if let Some(written) = param.get("schema") {
            // Not Swagger 2.0, but unambiguous: the OpenAPI 3 spelling.
            let schema_at = format!("{orig}/schema");
            self.warn(
                Diagnostic::warning(&schema_at, format!("parameter `{name}` has a `schema`, which Swagger 2.0 has only for `in: body`; read as OpenAPI 3 reads it"))
                    .help("in Swagger 2.0 a parameter writes its type inline: `type: integer`"),
            );
            self.moved(format!("{at}/schema"), &schema_at);
            let converted = self.schema(written, &format!("{at}/schema"), &schema_at);
            out.insert(String::from("schema"), converted);
        } else {
            self.error(
                Diagnostic::error(orig, format!("parameter `{name}` has no `type`"))
                    .help("give it a type: `type: string` (or integer, number, boolean, array with `items`)"),
            );
        }
        if param.get("type").and_then(Value::as_str) == Some("array")
            && let Some(style) = self.style(param, location, at, orig)
        {
            out.extend(style);
        }
        Value::Object(out)
    }

    /// The `style` and `explode` of an array parameter `param` (written at `orig`, converted at `at`) read from
    /// `location`, from its `collectionFormat` (2.0's default is `csv`). `None` for an unknown location (left for
    /// the 3.0 reader).
    fn style(
        &mut self,
        param: &Map<String, Value>,
        location: &str,
        at: &str,
        orig: &str,
    ) -> Option<Map<String, Value>> {
        let format_at = format!("{orig}/collectionFormat");
        let written = param.get("collectionFormat");
        let format = match written {
            None => "csv",
            Some(Value::String(s)) if COLLECTION_FORMATS.contains(&s.as_str()) => s.as_str(),
            Some(Value::String(s)) => {
                let mut d = Diagnostic::warning(&format_at, format!("unknown `collectionFormat: {s}`; read as `csv`"));
                d = match did_you_mean(s, COLLECTION_FORMATS) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.help("the formats are csv, ssv, tsv, pipes and multi"),
                };
                self.warn(d);
                "csv"
            }
            Some(_) => {
                self.error(
                    Diagnostic::error(&format_at, "`collectionFormat` must be a string")
                        .help("one of csv, ssv, tsv, pipes, multi"),
                );
                "csv"
            }
        };
        let format = if format == "tsv" {
            self.warn(
                Diagnostic::warning(&format_at, "`collectionFormat: tsv` has no OpenAPI 3.0 equivalent; read as `csv`")
                    .help("if the API also accepts commas, write `collectionFormat: csv`; tab-separated values are read as one item"),
            );
            "csv"
        } else {
            format
        };
        let (style, explode) = match location {
            "query" | "formData" => match format {
                "ssv" => ("spaceDelimited", false),
                "pipes" => ("pipeDelimited", false),
                "multi" => ("form", true),
                _ => ("form", false),
            },
            "path" | "header" => {
                if format != "csv" {
                    self.warn(
                        Diagnostic::warning(
                            &format_at,
                            format!("`collectionFormat: {format}` is not available for {location} values in OpenAPI 3.0; read as `csv`"),
                        )
                        .help("OpenAPI 3.0 splits path and header arrays at commas only: write `collectionFormat: csv`"),
                    );
                }
                ("simple", false)
            }
            _ => return None,
        };
        if written.is_some() {
            self.moved(format!("{at}/style"), &format_at);
            self.moved(format!("{at}/explode"), &format_at);
        }
        let mut out = Map::new();
        out.insert(String::from("style"), Value::from(style));
        out.insert(String::from("explode"), Value::Bool(explode));
        Some(out)
    }

    /// An operation's `servers` from its `schemes` (at `at`), when they differ from the document's and there is a
    /// host to serve them from.
    fn operation_servers(&mut self, value: &Value, at: &str) -> Option<Value> {
        let schemes = self.schemes_list(value, at)?;
        if self.host.is_none() || schemes.is_empty() || schemes == self.schemes {
            return None;
        }
        self.server_list(&schemes)
    }

    /// An operation's or the document's `responses`.
    fn responses(&mut self, responses: &'d Value, at: &str, produces: &[String]) -> Value {
        let Some(map) = responses.as_object() else {
            return responses.clone();
        };
        let mut out = Map::new();
        for (code, response) in map {
            let converted = if is_extension(code) {
                response.clone()
            } else {
                let response_at = join(at, code);
                self.response(response, &response_at, &response_at, produces)
            };
            out.insert(code.clone(), converted);
        }
        Value::Object(out)
    }

    /// A response (written at `orig`), converted at `at`.
    fn response(&mut self, response: &'d Value, at: &str, orig: &str, produces: &[String]) -> Value {
        let Some(map) = response.as_object() else {
            return response.clone();
        };
        if let Some(Value::String(reference)) = map.get("$ref") {
            let mut out = map.clone();
            let reference = self.reference(reference, &format!("{orig}/$ref"));
            out.insert(String::from("$ref"), Value::String(reference));
            return Value::Object(out);
        }
        let mut content = Map::new();
        if let Some(schema) = map.get("schema") {
            let schema_at = format!("{orig}/schema");
            for media_type in produces {
                let converted_at = format!("{}/schema", join(&format!("{at}/content"), media_type));
                self.moved(&converted_at, &schema_at);
                let mut media = Map::new();
                media.insert(String::from("schema"), self.schema(schema, &converted_at, &schema_at));
                content.insert(media_type.clone(), Value::Object(media));
            }
        }
        match map.get("examples") {
            Some(Value::Object(examples)) => {
                for (media_type, example) in examples {
                    self.moved(
                        format!("{}/example", join(&format!("{at}/content"), media_type)),
                        join(&format!("{orig}/examples"), media_type),
                    );
                    let media = content
                        .entry(media_type.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(media) = media {
                        media.insert(String::from("example"), example.clone());
                    }
                }
            }
            Some(_) => self.warn(
                Diagnostic::warning(
                    format!("{orig}/examples"),
                    "`examples` should map media types to examples; left out",
                )
                .help("write e.g. `examples: { application/json: { id: 1 } }`"),
            ),
            None => {}
        }
        let mut content = (!content.is_empty()).then_some(content);
        let mut out = Map::new();
        for (key, value) in map {
            match key.as_str() {
                "schema" | "examples" => {
                    if let Some(content) = content.take() {
                        out.insert(String::from("content"), Value::Object(content));
                    }
                }
                "headers" => {
                    let headers = self.headers(value, &format!("{at}/headers"), &format!("{orig}/headers"));
                    out.insert(key.clone(), headers);
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        Value::Object(out)
    }

    /// A response's `headers` (written at `orig`), converted at `at`.
    fn headers(&mut self, headers: &'d Value, at: &str, orig: &str) -> Value {
        let Some(map) = headers.as_object() else {
            return headers.clone();
        };
        let mut out = Map::new();
        for (name, header) in map {
            let converted = self.header(header, &join(at, name), &join(orig, name));
            out.insert(name.clone(), converted);
        }
        Value::Object(out)
    }

    /// A response header (written at `orig`), converted at `at`.
    fn header(&mut self, header: &'d Value, at: &str, orig: &str) -> Value {
        let Some(map) = header.as_object() else {
            return header.clone();
        };
        let mut out = Map::new();
        let mut schema = Map::new();
        self.inline_schema(map, &mut schema, &format!("{at}/schema"), orig);
        for (key, value) in map {
            if !SCHEMA_KEYWORDS.contains(&key.as_str()) && key != "collectionFormat" {
                out.insert(key.clone(), value.clone());
            }
        }
        if schema.is_empty() {
            self.error(
                Diagnostic::error(orig, "a response header without a `type`")
                    .help("give it a type: `type: string` (or integer, number, boolean, array with `items`)"),
            );
        } else {
            self.moved(format!("{at}/schema"), orig);
            out.insert(String::from("schema"), Value::Object(schema));
        }
        if map.get("type").and_then(Value::as_str) == Some("array") {
            // Headers have one style in 3.0, `simple` (csv); the call warns about any other format.
            let _ = self.style(map, "header", at, orig);
        }
        Value::Object(out)
    }

    /// A schema (written at `orig`), converted at `at`: its `$ref`s rewritten and the 2.0-only spellings translated,
    /// in it and in every schema under it.
    fn schema(&mut self, schema: &Value, at: &str, orig: &str) -> Value {
        let Some(map) = schema.as_object() else {
            return schema.clone();
        };
        let file = map.get("type").and_then(Value::as_str) == Some("file");
        let mut out = Map::new();
        for (key, value) in map {
            let key_at = join(at, key);
            let key_orig = join(orig, key);
            match (key.as_str(), value) {
                ("$ref", Value::String(reference)) => {
                    let reference = self.reference(reference, &key_orig);
                    out.insert(key.clone(), Value::String(reference));
                }
                ("x-nullable", Value::Bool(_)) => {
                    out.insert(String::from("nullable"), value.clone());
                    self.moved(join(at, "nullable"), key_orig);
                }
                ("discriminator", Value::String(property)) => {
                    let mut discriminator = Map::new();
                    discriminator.insert(String::from("propertyName"), Value::String(property.clone()));
                    out.insert(key.clone(), Value::Object(discriminator));
                    self.moved(format!("{key_at}/propertyName"), key_orig);
                }
                ("type", _) if file => {
                    out.insert(String::from("type"), Value::from("string"));
                    out.insert(String::from("format"), Value::from("binary"));
                    self.moved(join(at, "format"), key_orig);
                }
                ("format", _) if file => {}
                ("properties", Value::Object(properties)) => {
                    let mut converted = Map::new();
                    for (name, property) in properties {
                        let property = self.schema(property, &join(&key_at, name), &join(&key_orig, name));
                        converted.insert(name.clone(), property);
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                ("items" | "additionalProperties" | "not", Value::Object(_)) => {
                    let converted = self.schema(value, &key_at, &key_orig);
                    out.insert(key.clone(), converted);
                }
                ("allOf" | "anyOf" | "oneOf", Value::Array(schemas)) => {
                    let converted = schemas
                        .iter()
                        .enumerate()
                        .map(|(i, s)| self.schema(s, &format!("{key_at}/{i}"), &format!("{key_orig}/{i}")))
                        .collect();
                    out.insert(key.clone(), Value::Array(converted));
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        Value::Object(out)
    }

    /// A `$ref` (written at `at`) pointing where the thing it names is in the converted document.
    fn reference(&mut self, reference: &str, at: &str) -> String {
        if let Some(rest) = reference.strip_prefix("#/definitions/") {
            return format!("#/components/schemas/{rest}");
        }
        if let Some(rest) = reference.strip_prefix("#/parameters/") {
            let name = unescape_segment(rest.split('/').next().unwrap_or(rest));
            let kind = self.root_parameter(&name).map_or(Kind::Other, kind_of_map);
            let table = if kind == Kind::Body {
                "requestBodies"
            } else {
                "parameters"
            };
            return format!("#/components/{table}/{rest}");
        }
        if let Some(rest) = reference.strip_prefix("#/responses/") {
            return format!("#/components/responses/{rest}");
        }
        self.check_local(reference, at);
        reference.to_owned()
    }

    /// Reports a `$ref` (at `at`) into another file.
    fn check_local(&mut self, reference: &str, at: &str) {
        if !reference.starts_with('#') {
            self.error(
                Diagnostic::error(at, format!("`$ref: {reference}` points into another file, which the conversion from Swagger 2.0 cannot follow"))
                    .help("bundle the spec into one file first (e.g. `swagger-cli bundle`), or copy what it refers to under `definitions:`, `parameters:` or `responses:`"),
            );
        }
    }

    /// `components`, from `definitions`, `responses`, `parameters` and `securityDefinitions`.
    fn components(&mut self) -> Map<String, Value> {
        let root = self.root;
        let mut schemas = Map::new();
        let mut responses = Map::new();
        let mut parameters = Map::new();
        let mut bodies = Map::new();
        let mut schemes = Map::new();
        if let Some(definitions) = self.table("definitions", "schemas") {
            self.moved("/components/schemas", "/definitions");
            for (name, schema) in definitions {
                let converted = self.schema(schema, &join("/components/schemas", name), &join("/definitions", name));
                schemas.insert(name.clone(), converted);
            }
        }
        if let Some(table) = self.table("responses", "responses") {
            self.moved("/components/responses", "/responses");
            let produces = Self::effective(None, &self.produces);
            for (name, response) in table {
                let converted = self.response(
                    response,
                    &join("/components/responses", name),
                    &join("/responses", name),
                    &produces,
                );
                responses.insert(name.clone(), converted);
            }
        }
        if let Some(table) = self.table("parameters", "parameters") {
            self.moved("/components/parameters", "/parameters");
            let consumes = Self::effective(None, &self.consumes);
            for (name, param) in table {
                let orig = join("/parameters", name);
                match (param.as_object(), kind_of(param)) {
                    (Some(map), Kind::Body) => {
                        let at = join("/components/requestBodies", name);
                        self.moved(&at, &orig);
                        let body = self.request_body(map, &orig, &at, &consumes);
                        bodies.insert(name.clone(), body);
                    }
                    // Form fields are written into the form of each operation that refers to them.
                    (Some(_), Kind::Form) => {}
                    (Some(map), Kind::Other) if !map.contains_key("$ref") => {
                        let converted = self.parameter(map, &join("/components/parameters", name), &orig);
                        parameters.insert(name.clone(), converted);
                    }
                    (Some(map), Kind::Other) => {
                        let mut out = map.clone();
                        if let Some(Value::String(reference)) = map.get("$ref") {
                            let reference = self.reference(reference, &format!("{orig}/$ref"));
                            out.insert(String::from("$ref"), Value::String(reference));
                        }
                        parameters.insert(name.clone(), Value::Object(out));
                    }
                    (None, _) => {
                        parameters.insert(name.clone(), param.clone());
                    }
                }
            }
        }
        if let Some(table) = self.table("securityDefinitions", "securitySchemes") {
            self.moved("/components/securitySchemes", "/securityDefinitions");
            for (name, scheme) in table {
                let converted = self.security_scheme(
                    scheme,
                    &join("/components/securitySchemes", name),
                    &join("/securityDefinitions", name),
                );
                schemes.insert(name.clone(), converted);
            }
        }
        let mut out = Map::new();
        for (key, table) in [
            ("schemas", schemas),
            ("responses", responses),
            ("parameters", parameters),
            ("requestBodies", bodies),
            ("securitySchemes", schemes),
        ] {
            if !table.is_empty() {
                out.insert(String::from(key), Value::Object(table));
            }
        }
        // Unmoved, `/components` itself would name nothing in the 2.0 file.
        if let Some(first) = ["definitions", "parameters", "responses", "securityDefinitions"]
            .into_iter()
            .find(|k| root.contains_key(*k))
        {
            self.moved("/components", join("", first));
        }
        out
    }

    /// The root map `key` (an error if it is not a map), which becomes `components/<kind>`.
    fn table(&mut self, key: &str, kind: &str) -> Option<&'d Map<String, Value>> {
        match self.root.get(key)? {
            Value::Object(map) => Some(map),
            Value::Null => None,
            _ => {
                self.error(
                    Diagnostic::error(join("", key), format!("`{key}` must map names to {kind}"))
                        .help(format!("write `{key}: {{ Name: {{ ... }} }}`")),
                );
                None
            }
        }
    }

    /// A security definition (written at `orig`), converted at `at`.
    fn security_scheme(&mut self, scheme: &'d Value, at: &str, orig: &str) -> Value {
        let Some(map) = scheme.as_object() else {
            return scheme.clone();
        };
        let keep = |out: &mut Map<String, Value>| {
            for (key, value) in map {
                if key == "description" || is_extension(key) {
                    out.insert(key.clone(), value.clone());
                }
            }
        };
        match map.get("type").and_then(Value::as_str) {
            Some("basic") => {
                let mut out = Map::new();
                out.insert(String::from("type"), Value::from("http"));
                out.insert(String::from("scheme"), Value::from("basic"));
                self.moved(format!("{at}/scheme"), format!("{orig}/type"));
                keep(&mut out);
                Value::Object(out)
            }
            Some("oauth2") => {
                let flow = match map.get("flow") {
                    Some(Value::String(flow)) => match flow.as_str() {
                        "implicit" => Some("implicit"),
                        "password" => Some("password"),
                        "application" => Some("clientCredentials"),
                        "accessCode" => Some("authorizationCode"),
                        other => {
                            let flows = ["implicit", "password", "application", "accessCode"];
                            let mut d =
                                Diagnostic::error(format!("{orig}/flow"), format!("unknown OAuth2 flow `{other}`"));
                            d = match did_you_mean(other, flows) {
                                Some(best) => d.help(format!("did you mean `{best}`?")),
                                None => d.help("the flows are implicit, password, application and accessCode"),
                            };
                            self.error(d);
                            None
                        }
                    },
                    _ => {
                        self.error(
                            Diagnostic::error(orig, "an `oauth2` security definition needs a `flow`")
                                .help("add `flow:` implicit, password, application or accessCode"),
                        );
                        None
                    }
                };
                let Some(flow) = flow else {
                    return scheme.clone();
                };
                let flow_at = format!("{at}/flows/{flow}");
                self.moved(format!("{at}/flows"), format!("{orig}/flow"));
                self.moved(&flow_at, format!("{orig}/flow"));
                let mut converted = Map::new();
                for key in ["authorizationUrl", "tokenUrl", "scopes"] {
                    if let Some(value) = map.get(key) {
                        converted.insert(String::from(key), value.clone());
                        self.moved(format!("{flow_at}/{key}"), format!("{orig}/{key}"));
                    }
                }
                if !converted.contains_key("scopes") {
                    converted.insert(String::from("scopes"), Value::Object(Map::new()));
                }
                let mut flows = Map::new();
                flows.insert(String::from(flow), Value::Object(converted));
                let mut out = Map::new();
                out.insert(String::from("type"), Value::from("oauth2"));
                out.insert(String::from("flows"), Value::Object(flows));
                keep(&mut out);
                Value::Object(out)
            }
            _ => scheme.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diagnostics::Severity;
    use crate::parse::sources::{PointerMap, Sources};

    /// A minimal 2.0 document with `paths` and the other root fields given.
    fn doc(paths: Value, rest: Value) -> Value {
        let mut doc = json!({ "swagger": "2.0", "info": { "title": "T", "version": "1" }, "paths": paths });
        if let (Some(map), Value::Object(rest)) = (doc.as_object_mut(), rest) {
            map.extend(rest);
        }
        doc
    }

    /// An operation's 2.0 `get` with `parameters`.
    fn get_with(params: Value) -> Value {
        json!({ "/p": { "get": { "parameters": params, "responses": { "200": { "description": "ok" } } } } })
    }

    /// The conversion, which must succeed, and what it reported.
    fn converted(doc: &Value) -> (Converted, Vec<Diagnostic>) {
        let mut diags = Diagnostics::default();
        let out = convert(doc, &mut diags);
        let items = diags.items().to_vec();
        match out {
            Some(out) => (out, items),
            None => panic!("conversion failed: {items:#?}"),
        }
    }

    /// The converted document, which must come with no diagnostic at all.
    fn clean(doc: &Value) -> Converted {
        let (out, diags) = converted(doc);
        assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
        out
    }

    /// The errors of a conversion that must fail.
    fn refused(doc: &Value) -> Vec<Diagnostic> {
        let mut diags = Diagnostics::default();
        assert!(convert(doc, &mut diags).is_none(), "the conversion should fail");
        let errors: Vec<Diagnostic> = diags
            .items()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .cloned()
            .collect();
        assert!(!errors.is_empty());
        errors
    }

    /// Where the converted pointer `pointer` is in the 2.0 document, looked up as the parse step does.
    fn origin(out: &Converted, pointer: &str) -> String {
        let mut map = PointerMap::default();
        for (derived, source) in &out.origins {
            map.moved(derived.clone(), source.clone());
        }
        let mut sources = Sources::default();
        sources.push(map);
        sources.origin(pointer).1
    }

    fn at<'a>(out: &'a Converted, pointer: &str) -> &'a Value {
        out.document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("nothing at {pointer} in {:#}", out.document))
    }

    fn openapi(out: &Converted) -> openapiv3::OpenAPI {
        match serde_json::from_value(out.document.clone()) {
            Ok(openapi) => openapi,
            Err(e) => panic!("not OpenAPI 3.0: {e}\n{:#}", out.document),
        }
    }

    #[test]
    fn the_version_info_tags_security_and_extensions_stay() {
        let out = clean(&doc(
            json!({ "/p": {
                "x-gateway": { "target": { "upstream": "a" } },
                "get": { "x-gateway": { "cache": { "ttl": "1m" } }, "responses": {} },
            } }),
            json!({
                "x-gateway": { "upstreams": { "a": { "url": "http://127.0.0.1:9" } } },
                "tags": [{ "name": "t" }],
                "security": [{ "key": [] }],
                "externalDocs": { "url": "https://example.com" },
                "x-other": 1,
            }),
        ));
        assert_eq!(at(&out, "/openapi"), "3.0.3");
        assert!(out.document.get("swagger").is_none());
        assert_eq!(at(&out, "/info/title"), "T");
        assert_eq!(at(&out, "/tags/0/name"), "t");
        assert_eq!(at(&out, "/security/0/key"), &json!([]));
        assert_eq!(at(&out, "/externalDocs/url"), "https://example.com");
        assert_eq!(at(&out, "/x-other"), 1);
        assert_eq!(at(&out, "/x-gateway/upstreams/a/url"), "http://127.0.0.1:9");
        assert_eq!(at(&out, "/paths/~1p/x-gateway/target/upstream"), "a");
        assert_eq!(at(&out, "/paths/~1p/get/x-gateway/cache/ttl"), "1m");
        assert_eq!(
            origin(&out, "/paths/~1p/get/x-gateway/cache"),
            "/paths/~1p/get/x-gateway/cache"
        );
        assert_eq!(origin(&out, "/openapi"), "/swagger");
        openapi(&out);
    }

    #[test]
    fn host_base_path_and_schemes_become_servers() {
        let out = clean(&doc(
            json!({}),
            json!({ "host": "api.example.com:8443", "basePath": "/v2", "schemes": ["https", "http"] }),
        ));
        assert_eq!(
            at(&out, "/servers"),
            &json!([{ "url": "https://api.example.com:8443/v2" }, { "url": "http://api.example.com:8443/v2" }])
        );
        assert_eq!(origin(&out, "/servers/1/url"), "/host");
        assert_eq!(origin(&out, "/servers"), "/host");

        // No schemes: the scheme of wherever the document was read from, as swagger2openapi writes it.
        let out = clean(&doc(json!({}), json!({ "host": "api.example.com", "basePath": "/v2" })));
        assert_eq!(at(&out, "/servers"), &json!([{ "url": "//api.example.com/v2" }]));
        let out = clean(&doc(
            json!({}),
            json!({ "host": "api.example.com", "schemes": ["https"] }),
        ));
        assert_eq!(at(&out, "/servers"), &json!([{ "url": "https://api.example.com" }]));
        // No host: relative to wherever the document was read from.
        let out = clean(&doc(json!({}), json!({ "basePath": "/v2", "schemes": ["https"] })));
        assert_eq!(at(&out, "/servers"), &json!([{ "url": "/v2" }]));
        assert_eq!(origin(&out, "/servers/0/url"), "/basePath");
        let out = clean(&doc(json!({}), json!({ "schemes": ["https"] })));
        assert!(out.document.get("servers").is_none());
    }

    #[test]
    fn an_operation_with_other_schemes_gets_its_own_servers() {
        let out = clean(&doc(
            json!({ "/p": {
                "get": { "schemes": ["wss"], "responses": {} },
                "put": { "schemes": ["https"], "responses": {} },
            } }),
            json!({ "host": "h", "schemes": ["https"] }),
        ));
        assert_eq!(at(&out, "/paths/~1p/get/servers"), &json!([{ "url": "wss://h" }]));
        assert_eq!(origin(&out, "/paths/~1p/get/servers/0/url"), "/paths/~1p/get/schemes/0");
        assert!(out.document.pointer("/paths/~1p/put/servers").is_none());
        assert!(out.document.pointer("/paths/~1p/put/schemes").is_none());
    }

    #[test]
    fn inline_parameter_keywords_become_its_schema() {
        let out = clean(&doc(
            get_with(json!([{
                "name": "limit", "in": "query", "description": "d", "required": false, "allowEmptyValue": true,
                "type": "integer", "format": "int32", "minimum": 1, "maximum": 100, "exclusiveMaximum": true,
                "default": 10, "multipleOf": 1, "enum": [1, 10, 100], "x-example": 10, "x-other": true,
            }, {
                "name": "q", "in": "query", "type": "string", "pattern": "^a", "minLength": 1, "maxLength": 9,
            }])),
            json!({}),
        ));
        assert_eq!(
            at(&out, "/paths/~1p/get/parameters/0"),
            &json!({
                "name": "limit", "in": "query", "description": "d", "required": false, "allowEmptyValue": true,
                "example": 10, "x-other": true,
                "schema": {
                    "type": "integer", "format": "int32", "minimum": 1, "maximum": 100, "exclusiveMaximum": true,
                    "default": 10, "multipleOf": 1, "enum": [1, 10, 100],
                },
            })
        );
        assert_eq!(
            at(&out, "/paths/~1p/get/parameters/1/schema"),
            &json!({ "type": "string", "pattern": "^a", "minLength": 1, "maxLength": 9 })
        );
        // 2.0 writes the schema's keywords on the parameter itself.
        assert_eq!(
            origin(&out, "/paths/~1p/get/parameters/0/schema/maximum"),
            "/paths/~1p/get/parameters/0/maximum"
        );
        assert_eq!(
            origin(&out, "/paths/~1p/get/parameters/0/example"),
            "/paths/~1p/get/parameters/0/x-example"
        );
        openapi(&out);
    }

    /// The `style` and `explode` of a query array written with `collectionFormat` (`None`: not written), and the
    /// diagnostics.
    fn query_style(format: Option<&str>, location: &str) -> (Value, Vec<Diagnostic>) {
        let mut param =
            json!({ "name": "a", "in": location, "required": true, "type": "array", "items": { "type": "string" } });
        if let (Some(format), Some(map)) = (format, param.as_object_mut()) {
            map.insert(String::from("collectionFormat"), Value::from(format));
        }
        let (out, diags) = converted(&doc(get_with(json!([param])), json!({})));
        let param = at(&out, "/paths/~1p/get/parameters/0");
        assert!(param.get("collectionFormat").is_none());
        assert_eq!(param.pointer("/schema/items/type"), Some(&json!("string")));
        openapi(&out);
        (json!([param.get("style"), param.get("explode")]), diags)
    }

    #[test]
    fn collection_formats_become_styles() {
        let clean_style = |format: Option<&str>, location: &str| {
            let (style, diags) = query_style(format, location);
            assert!(diags.is_empty(), "{diags:#?}");
            style
        };
        assert_eq!(clean_style(Some("csv"), "query"), json!(["form", false]));
        // csv is 2.0's default, unlike 3.0's (form, exploded).
        assert_eq!(clean_style(None, "query"), json!(["form", false]));
        assert_eq!(clean_style(Some("ssv"), "query"), json!(["spaceDelimited", false]));
        assert_eq!(clean_style(Some("pipes"), "query"), json!(["pipeDelimited", false]));
        assert_eq!(clean_style(Some("multi"), "query"), json!(["form", true]));
        assert_eq!(clean_style(Some("csv"), "path"), json!(["simple", false]));
        assert_eq!(clean_style(None, "header"), json!(["simple", false]));

        let (style, diags) = query_style(Some("tsv"), "query");
        assert_eq!(style, json!(["form", false]));
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].severity, Severity::Warning);
        assert!(diags[0].message.contains("tsv"), "{diags:#?}");
        assert_eq!(diags[0].pointer, "/paths/~1p/get/parameters/0/collectionFormat");

        let (style, diags) = query_style(Some("pipes"), "header");
        assert_eq!(style, json!(["simple", false]));
        assert_eq!(diags.len(), 1);
        assert!(diags[0].message.contains("header"), "{diags:#?}");

        let (style, diags) = query_style(Some("pipe"), "query");
        assert_eq!(style, json!(["form", false]));
        assert_eq!(diags[0].severity, Severity::Warning);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `pipes`?"));

        // The style is where collectionFormat was written.
        let out = clean(&doc(
            get_with(
                json!([{ "name": "a", "in": "query", "type": "array", "items": { "type": "integer" }, "collectionFormat": "multi" }]),
            ),
            json!({}),
        ));
        assert_eq!(
            origin(&out, "/paths/~1p/get/parameters/0/explode"),
            "/paths/~1p/get/parameters/0/collectionFormat"
        );
    }

    #[test]
    fn a_body_parameter_becomes_the_request_body() {
        let op = json!({ "/pet": { "post": {
            "consumes": ["application/json", "application/xml"],
            "parameters": [
                { "name": "trace", "in": "header", "type": "string" },
                { "name": "body", "in": "body", "required": true, "description": "The pet", "x-name": "pet",
                  "schema": { "$ref": "#/definitions/Pet" } },
                { "name": "dry", "in": "query", "type": "boolean" },
            ],
            "responses": { "200": { "description": "ok" } },
        } } });
        let out = clean(&doc(op, json!({ "definitions": { "Pet": { "type": "object" } } })));
        let post = at(&out, "/paths/~1pet/post");
        assert_eq!(
            post.get("requestBody"),
            Some(&json!({
                "description": "The pet",
                "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } },
                    "application/xml": { "schema": { "$ref": "#/components/schemas/Pet" } },
                },
                "required": true,
                "x-name": "pet",
            }))
        );
        assert!(post.get("consumes").is_none());
        assert_eq!(post.pointer("/parameters/1/name"), Some(&json!("dry")));
        assert_eq!(
            post.pointer("/parameters").and_then(Value::as_array).map(Vec::len),
            Some(2)
        );
        assert_eq!(
            origin(&out, "/paths/~1pet/post/requestBody"),
            "/paths/~1pet/post/parameters/1"
        );
        assert_eq!(
            origin(&out, "/paths/~1pet/post/requestBody/required"),
            "/paths/~1pet/post/parameters/1/required"
        );
        assert_eq!(
            origin(
                &out,
                "/paths/~1pet/post/requestBody/content/application~1xml/schema/$ref"
            ),
            "/paths/~1pet/post/parameters/1/schema/$ref"
        );
        // Later parameters moved up one.
        assert_eq!(
            origin(&out, "/paths/~1pet/post/parameters/1"),
            "/paths/~1pet/post/parameters/2"
        );
        assert_eq!(
            origin(&out, "/paths/~1pet/post/parameters/1/name"),
            "/paths/~1pet/post/parameters/2/name"
        );
        assert_eq!(
            origin(&out, "/paths/~1pet/post/parameters/1/schema"),
            "/paths/~1pet/post/parameters/2"
        );
        assert_eq!(
            origin(&out, "/paths/~1pet/post/parameters/0/schema/type"),
            "/paths/~1pet/post/parameters/0/type"
        );
        openapi(&out);
    }

    #[test]
    fn a_body_is_of_the_operations_media_types_else_the_documents_else_json() {
        let body = json!([{ "name": "b", "in": "body", "schema": { "type": "string" } }]);
        let types = |out: &Converted| -> Vec<String> {
            at(out, "/paths/~1p/get/requestBody/content")
                .as_object()
                .map(|c| c.keys().cloned().collect())
                .unwrap_or_default()
        };
        let out = clean(&doc(get_with(body.clone()), json!({ "consumes": ["text/plain"] })));
        assert_eq!(types(&out), ["text/plain"]);
        let out = clean(&doc(get_with(body.clone()), json!({})));
        assert_eq!(types(&out), ["application/json"]);
        let mut paths = get_with(body);
        if let Some(get) = paths.pointer_mut("/~1p/get").and_then(Value::as_object_mut) {
            get.insert(String::from("consumes"), json!(["application/yaml"]));
        }
        let out = clean(&doc(paths.clone(), json!({ "consumes": ["text/plain"] })));
        assert_eq!(types(&out), ["application/yaml"]);
        // An empty list clears the document's.
        if let Some(get) = paths.pointer_mut("/~1p/get").and_then(Value::as_object_mut) {
            get.insert(String::from("consumes"), json!([]));
        }
        let out = clean(&doc(paths, json!({ "consumes": ["text/plain"] })));
        assert_eq!(types(&out), ["application/json"]);
    }

    #[test]
    fn form_parameters_become_one_form_body() {
        let out = clean(&doc(
            json!({ "/pet/{id}": { "post": {
                "consumes": ["application/x-www-form-urlencoded"],
                "parameters": [
                    { "name": "id", "in": "path", "required": true, "type": "integer" },
                    { "name": "name", "in": "formData", "required": true, "type": "string", "maxLength": 9, "description": "d" },
                    { "name": "tags", "in": "formData", "type": "array", "items": { "type": "string" }, "collectionFormat": "pipes" },
                    { "name": "age", "in": "formData", "type": "integer", "minimum": 0, "default": 1, "x-unit": "y" },
                ],
                "responses": {},
            } } }),
            json!({}),
        ));
        let at_body = "/paths/~1pet~1{id}/post/requestBody";
        assert_eq!(
            at(&out, at_body),
            &json!({
                "content": { "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "name": { "description": "d", "type": "string", "maxLength": 9 },
                            "tags": { "type": "array", "items": { "type": "string" } },
                            "age": { "type": "integer", "minimum": 0, "default": 1, "x-unit": "y" },
                        },
                        "required": ["name"],
                    },
                    "encoding": { "tags": { "style": "pipeDelimited", "explode": false } },
                } },
                "required": true,
            })
        );
        assert_eq!(
            at(&out, "/paths/~1pet~1{id}/post/parameters").as_array().map(Vec::len),
            Some(1)
        );
        let form = format!("{at_body}/content/application~1x-www-form-urlencoded");
        assert_eq!(origin(&out, at_body), "/paths/~1pet~1{id}/post/parameters/1");
        assert_eq!(
            origin(&out, &format!("{form}/schema/properties/age/minimum")),
            "/paths/~1pet~1{id}/post/parameters/3/minimum"
        );
        assert_eq!(
            origin(&out, &format!("{form}/schema/required/0")),
            "/paths/~1pet~1{id}/post/parameters/1/required"
        );
        assert_eq!(
            origin(&out, &format!("{form}/encoding/tags/style")),
            "/paths/~1pet~1{id}/post/parameters/2/collectionFormat"
        );
        openapi(&out);
    }

    #[test]
    fn a_file_field_makes_the_form_multipart() {
        let out = clean(&doc(
            get_with(json!([
                { "name": "note", "in": "formData", "type": "string" },
                { "name": "file", "in": "formData", "type": "file", "required": true },
            ])),
            json!({ "consumes": ["multipart/form-data", "application/x-www-form-urlencoded"] }),
        ));
        assert_eq!(
            at(&out, "/paths/~1p/get/requestBody/content"),
            &json!({ "multipart/form-data": { "schema": {
                "type": "object",
                "properties": { "note": { "type": "string" }, "file": { "type": "string", "format": "binary" } },
                "required": ["file"],
            } } })
        );
        assert_eq!(
            origin(
                &out,
                "/paths/~1p/get/requestBody/content/multipart~1form-data/schema/properties/file/format"
            ),
            "/paths/~1p/get/parameters/1/type"
        );
        // Without a file, each form media type the operation consumes.
        let out = clean(&doc(
            get_with(json!([{ "name": "note", "in": "formData", "type": "string" }])),
            json!({ "consumes": ["multipart/form-data", "application/x-www-form-urlencoded"] }),
        ));
        let content = at(&out, "/paths/~1p/get/requestBody/content");
        assert!(content.get("multipart/form-data").is_some() && content.get(FORM).is_some());
        // A file where consumes lists only the url-encoded form: multipart, with a warning.
        let (out, diags) = converted(&doc(
            get_with(json!([{ "name": "file", "in": "formData", "type": "file" }])),
            json!({ "consumes": [FORM] }),
        ));
        assert!(at(&out, "/paths/~1p/get/requestBody/content").get(MULTIPART).is_some());
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].pointer, "/paths/~1p/get/parameters/0/type");
    }

    #[test]
    fn a_path_items_body_and_form_parameters_move_into_its_operations() {
        let out = clean(&doc(
            json!({ "/p": {
                "parameters": [
                    { "name": "v", "in": "header", "type": "string" },
                    { "name": "body", "in": "body", "schema": { "type": "string" } },
                ],
                "post": { "responses": {} },
                "put": { "parameters": [{ "name": "body", "in": "body", "schema": { "type": "integer" } }], "responses": {} },
            } }),
            json!({}),
        ));
        assert_eq!(
            at(&out, "/paths/~1p/parameters"),
            &json!([{ "name": "v", "in": "header", "schema": { "type": "string" } }])
        );
        assert_eq!(
            at(
                &out,
                "/paths/~1p/post/requestBody/content/application~1json/schema/type"
            ),
            "string"
        );
        assert_eq!(origin(&out, "/paths/~1p/post/requestBody"), "/paths/~1p/parameters/1");
        // The operation's own body parameter of the same name wins.
        assert_eq!(
            at(&out, "/paths/~1p/put/requestBody/content/application~1json/schema/type"),
            "integer"
        );
        assert_eq!(
            origin(&out, "/paths/~1p/put/requestBody"),
            "/paths/~1p/put/parameters/0"
        );
        openapi(&out);
    }

    #[test]
    fn responses_get_content_headers_and_examples() {
        let out = clean(&doc(
            json!({ "/p": { "get": {
                "produces": ["application/json", "application/xml"],
                "responses": {
                    "200": {
                        "description": "ok",
                        "schema": { "type": "array", "items": { "$ref": "#/definitions/Pet" } },
                        "headers": { "X-Rate-Limit": { "type": "integer", "format": "int32", "description": "calls" } },
                        "examples": { "application/json": [{ "id": 1 }], "text/plain": "one" },
                        "x-r": 1,
                    },
                    "404": { "$ref": "#/responses/NotFound" },
                    "default": { "description": "no schema" },
                    "x-ext": { "kept": true },
                },
            } } }),
            json!({ "responses": { "NotFound": { "description": "gone", "schema": { "type": "string" } } } }),
        ));
        let ok = "/paths/~1p/get/responses/200";
        assert_eq!(
            at(&out, ok),
            &json!({
                "description": "ok",
                "content": {
                    "application/json": {
                        "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Pet" } },
                        "example": [{ "id": 1 }],
                    },
                    "application/xml": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Pet" } } },
                    "text/plain": { "example": "one" },
                },
                "headers": { "X-Rate-Limit": { "description": "calls", "schema": { "type": "integer", "format": "int32" } } },
                "x-r": 1,
            })
        );
        assert_eq!(
            at(&out, "/paths/~1p/get/responses/404"),
            &json!({ "$ref": "#/components/responses/NotFound" })
        );
        assert_eq!(
            at(&out, "/paths/~1p/get/responses/default"),
            &json!({ "description": "no schema" })
        );
        assert_eq!(at(&out, "/paths/~1p/get/responses/x-ext"), &json!({ "kept": true }));
        // A document without `produces`: JSON.
        assert!(
            out.document
                .pointer("/components/responses/NotFound/content/application~1json/schema")
                .is_some()
        );
        assert_eq!(
            origin(&out, &format!("{ok}/content/application~1xml/schema/items/$ref")),
            format!("{ok}/schema/items/$ref")
        );
        assert_eq!(
            origin(&out, &format!("{ok}/content/text~1plain/example")),
            format!("{ok}/examples/text~1plain")
        );
        assert_eq!(
            origin(&out, &format!("{ok}/headers/X-Rate-Limit/schema/format")),
            format!("{ok}/headers/X-Rate-Limit/format")
        );
        assert_eq!(
            origin(
                &out,
                "/components/responses/NotFound/content/application~1json/schema/type"
            ),
            "/responses/NotFound/schema/type"
        );
        assert_eq!(
            origin(&out, "/components/responses/NotFound/description"),
            "/responses/NotFound/description"
        );
    }

    #[test]
    fn definitions_parameters_and_responses_become_components() {
        let out = clean(&doc(
            json!({ "/p": {
                "post": {
                    "parameters": [{ "$ref": "#/parameters/Pet" }, { "$ref": "#/parameters/Limit" }],
                    "responses": {},
                },
                "put": { "consumes": ["application/xml"], "parameters": [{ "$ref": "#/parameters/Pet" }], "responses": {} },
            } }),
            json!({
                "definitions": { "Pet": { "type": "object", "properties": { "id": { "type": "integer" } } } },
                "parameters": {
                    "Pet": { "name": "pet", "in": "body", "required": true, "schema": { "$ref": "#/definitions/Pet" } },
                    "Limit": { "name": "limit", "in": "query", "type": "integer", "maximum": 9 },
                    "Note": { "name": "note", "in": "formData", "type": "string" },
                },
            }),
        ));
        assert_eq!(at(&out, "/components/schemas/Pet/properties/id/type"), "integer");
        assert_eq!(
            at(&out, "/components/requestBodies/Pet"),
            &json!({ "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Pet" } } }, "required": true })
        );
        assert_eq!(
            at(&out, "/components/parameters"),
            &json!({ "Limit": { "name": "limit", "in": "query", "schema": { "type": "integer", "maximum": 9 } } })
        );
        // The form field is written into the form of the operation using it; a shared body is referred to.
        let post = at(&out, "/paths/~1p/post");
        assert_eq!(
            post.get("parameters"),
            Some(&json!([{ "$ref": "#/components/parameters/Limit" }]))
        );
        let put = at(&out, "/paths/~1p/put");
        assert_eq!(
            put.pointer("/requestBody/content/application~1xml/schema/$ref"),
            Some(&json!("#/components/schemas/Pet"))
        );
        assert_eq!(
            origin(&out, "/paths/~1p/put/requestBody"),
            "/paths/~1p/put/parameters/0"
        );
        assert_eq!(
            origin(&out, "/paths/~1p/put/requestBody/content/application~1xml/schema"),
            "/parameters/Pet/schema"
        );
        // A shared form field.
        let out = clean(&doc(
            json!({ "/p": { "post": { "parameters": [{ "$ref": "#/parameters/Note" }], "responses": {} } } }),
            json!({ "parameters": { "Note": { "name": "note", "in": "formData", "type": "string" } } }),
        ));
        assert_eq!(
            at(
                &out,
                "/paths/~1p/post/requestBody/content/application~1x-www-form-urlencoded/schema/properties/note"
            ),
            &json!({ "type": "string" })
        );
        assert_eq!(
            origin(
                &out,
                "/paths/~1p/post/requestBody/content/application~1x-www-form-urlencoded/schema/properties/note/type"
            ),
            "/parameters/Note/type"
        );
        assert!(out.document.pointer("/components/parameters/Note").is_none());
    }

    #[test]
    fn shared_body_parameters_are_request_bodies_and_refused_with_a_form() {
        let errors = refused(&doc(
            json!({ "/p": { "post": {
                "parameters": [{ "$ref": "#/parameters/Pet" }, { "name": "n", "in": "formData", "type": "string" }],
                "responses": {},
            } } }),
            json!({ "parameters": { "Pet": { "name": "pet", "in": "body", "schema": { "type": "object" } } } }),
        ));
        assert_eq!(errors[0].pointer, "/paths/~1p/post/parameters/1");
        assert_eq!(errors[0].related[0].0, "/paths/~1p/post/parameters/0");
        let out = clean(&doc(
            json!({ "/p": { "post": { "parameters": [{ "$ref": "#/parameters/Pet" }], "responses": {} } } }),
            json!({ "parameters": { "Pet": { "name": "pet", "in": "body", "schema": { "type": "object" } } } }),
        ));
        assert_eq!(
            at(&out, "/paths/~1p/post/requestBody"),
            &json!({ "$ref": "#/components/requestBodies/Pet" })
        );
        assert_eq!(
            origin(&out, "/paths/~1p/post/requestBody/$ref"),
            "/paths/~1p/post/parameters/0/$ref"
        );
        assert_eq!(
            origin(
                &out,
                "/components/requestBodies/Pet/content/application~1json/schema/type"
            ),
            "/parameters/Pet/schema/type"
        );
        assert_eq!(
            origin(&out, "/components/requestBodies/Pet/required"),
            "/parameters/Pet/required"
        );
        openapi(&out);
    }

    #[test]
    fn security_definitions_become_security_schemes() {
        let out = clean(&doc(
            json!({}),
            json!({ "securityDefinitions": {
                "basic": { "type": "basic", "description": "b", "x-e": 1 },
                "key": { "type": "apiKey", "name": "api_key", "in": "header" },
                "implicit": { "type": "oauth2", "flow": "implicit", "authorizationUrl": "https://a/auth", "scopes": { "r": "read" } },
                "password": { "type": "oauth2", "flow": "password", "tokenUrl": "https://a/token", "scopes": {} },
                "application": { "type": "oauth2", "flow": "application", "tokenUrl": "https://a/token" },
                "code": { "type": "oauth2", "flow": "accessCode", "authorizationUrl": "https://a/auth", "tokenUrl": "https://a/token", "scopes": { "w": "write" } },
            } }),
        ));
        let schemes = at(&out, "/components/securitySchemes");
        assert_eq!(
            schemes.get("basic"),
            Some(&json!({ "type": "http", "scheme": "basic", "description": "b", "x-e": 1 }))
        );
        assert_eq!(
            schemes.get("key"),
            Some(&json!({ "type": "apiKey", "name": "api_key", "in": "header" }))
        );
        assert_eq!(
            schemes.get("implicit"),
            Some(
                &json!({ "type": "oauth2", "flows": { "implicit": { "authorizationUrl": "https://a/auth", "scopes": { "r": "read" } } } })
            )
        );
        assert_eq!(
            schemes.get("password"),
            Some(
                &json!({ "type": "oauth2", "flows": { "password": { "tokenUrl": "https://a/token", "scopes": {} } } })
            )
        );
        assert_eq!(
            schemes.get("application"),
            Some(
                &json!({ "type": "oauth2", "flows": { "clientCredentials": { "tokenUrl": "https://a/token", "scopes": {} } } })
            )
        );
        assert_eq!(
            schemes.pointer("/code/flows/authorizationCode"),
            Some(
                &json!({ "authorizationUrl": "https://a/auth", "tokenUrl": "https://a/token", "scopes": { "w": "write" } })
            )
        );
        assert_eq!(
            origin(&out, "/components/securitySchemes/key/name"),
            "/securityDefinitions/key/name"
        );
        assert_eq!(
            origin(&out, "/components/securitySchemes/basic/scheme"),
            "/securityDefinitions/basic/type"
        );
        assert_eq!(
            origin(
                &out,
                "/components/securitySchemes/code/flows/authorizationCode/tokenUrl"
            ),
            "/securityDefinitions/code/tokenUrl"
        );
        assert_eq!(
            origin(&out, "/components/securitySchemes/code/flows/authorizationCode"),
            "/securityDefinitions/code/flow"
        );
        openapi(&out);

        let errors = refused(&doc(
            json!({}),
            json!({ "securityDefinitions": { "o": { "type": "oauth2", "flow": "acessCode" } } }),
        ));
        assert_eq!(errors[0].pointer, "/securityDefinitions/o/flow");
        assert_eq!(errors[0].help.as_deref(), Some("did you mean `accessCode`?"));
    }

    #[test]
    fn schemas_lose_their_2_0_spellings() {
        let out = clean(&doc(
            json!({}),
            json!({ "definitions": {
                "Animal": {
                    "type": "object",
                    "discriminator": "kind",
                    "required": ["kind"],
                    "properties": {
                        "kind": { "type": "string" },
                        "owner": { "$ref": "#/definitions/Owner", "x-nullable": true },
                        "photo": { "type": "file" },
                        "tags": { "type": "array", "items": { "type": "string", "x-nullable": true } },
                        "extra": { "type": "object", "additionalProperties": { "$ref": "#/definitions/Owner" } },
                    },
                },
                "Dog": { "allOf": [{ "$ref": "#/definitions/Animal" }, { "type": "object", "x-nullable": false }] },
                "Owner": { "type": "string", "x-nullable": "not a bool" },
            } }),
        ));
        let animal = at(&out, "/components/schemas/Animal");
        assert_eq!(animal.get("discriminator"), Some(&json!({ "propertyName": "kind" })));
        assert_eq!(animal.pointer("/properties/owner/nullable"), Some(&json!(true)));
        assert_eq!(
            animal.pointer("/properties/owner/$ref"),
            Some(&json!("#/components/schemas/Owner"))
        );
        assert_eq!(
            animal.pointer("/properties/photo"),
            Some(&json!({ "type": "string", "format": "binary" }))
        );
        assert_eq!(animal.pointer("/properties/tags/items/nullable"), Some(&json!(true)));
        assert_eq!(
            animal.pointer("/properties/extra/additionalProperties/$ref"),
            Some(&json!("#/components/schemas/Owner"))
        );
        assert_eq!(
            at(&out, "/components/schemas/Dog/allOf/0/$ref"),
            "#/components/schemas/Animal"
        );
        assert_eq!(at(&out, "/components/schemas/Dog/allOf/1/nullable"), false);
        // Not a boolean: not the 2.0 extension; left as written.
        assert_eq!(at(&out, "/components/schemas/Owner/x-nullable"), "not a bool");
        assert_eq!(
            origin(&out, "/components/schemas/Animal/discriminator/propertyName"),
            "/definitions/Animal/discriminator"
        );
        assert_eq!(
            origin(&out, "/components/schemas/Animal/properties/owner/nullable"),
            "/definitions/Animal/properties/owner/x-nullable"
        );
        assert_eq!(
            origin(&out, "/components/schemas/Animal/properties/photo/format"),
            "/definitions/Animal/properties/photo/type"
        );
        assert_eq!(
            origin(&out, "/components/schemas/Animal/required/0"),
            "/definitions/Animal/required/0"
        );
        assert_eq!(origin(&out, "/components"), "/definitions");
        openapi(&out);
    }

    #[test]
    fn what_cannot_be_converted_is_an_error_at_the_2_0_pointer() {
        let two_bodies = refused(&doc(
            get_with(json!([
                { "name": "a", "in": "body", "schema": {} },
                { "name": "b", "in": "body", "schema": {} },
            ])),
            json!({}),
        ));
        assert_eq!(two_bodies.len(), 1);
        assert_eq!(two_bodies[0].pointer, "/paths/~1p/get/parameters/1");
        assert!(two_bodies[0].help.is_some());

        let body_and_form = refused(&doc(
            get_with(json!([
                { "name": "f", "in": "formData", "type": "string" },
                { "name": "a", "in": "body", "schema": {} },
            ])),
            json!({}),
        ));
        assert_eq!(body_and_form[0].pointer, "/paths/~1p/get/parameters/0");
        assert_eq!(body_and_form[0].related[0].0, "/paths/~1p/get/parameters/1");

        let external = refused(&doc(
            json!({ "/p": { "get": {
                "parameters": [{ "$ref": "common.yaml#/parameters/Limit" }],
                "responses": { "200": { "description": "ok", "schema": { "$ref": "models.yaml#/Pet" } }, "404": { "$ref": "r.yaml" } },
            } }, "/q": { "$ref": "paths.yaml#/q" } }),
            json!({ "definitions": { "A": { "properties": { "b": { "$ref": "b.json" } } } } }),
        ));
        let pointers: Vec<&str> = external.iter().map(|d| d.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/paths/~1p/get/parameters/0/$ref",
                "/paths/~1p/get/responses/200/schema/$ref",
                "/paths/~1p/get/responses/404/$ref",
                "/paths/~1q/$ref",
                "/definitions/A/properties/b/$ref",
            ]
        );
        assert!(external.iter().all(|d| d.help.is_some()));

        let file_in_query = refused(&doc(
            get_with(json!([{ "name": "f", "in": "query", "type": "file" }])),
            json!({}),
        ));
        assert_eq!(file_in_query[0].pointer, "/paths/~1p/get/parameters/0/type");
        let untyped = refused(&doc(get_with(json!([{ "name": "f", "in": "query" }])), json!({})));
        assert_eq!(untyped[0].pointer, "/paths/~1p/get/parameters/0");
        let no_schema = refused(&doc(get_with(json!([{ "name": "b", "in": "body" }])), json!({})));
        assert_eq!(no_schema[0].pointer, "/paths/~1p/get/parameters/0");
    }

    #[test]
    fn wrong_types_of_what_the_conversion_reads_are_errors() {
        for (rest, pointer) in [
            (json!({ "host": 80 }), "/host"),
            (json!({ "host": "https://api.example.com" }), "/host"),
            (json!({ "basePath": "v1" }), "/basePath"),
            (json!({ "schemes": "https" }), "/schemes"),
            (json!({ "consumes": "application/json" }), "/consumes"),
            (json!({ "produces": [1] }), "/produces/0"),
            (json!({ "definitions": [] }), "/definitions"),
            (
                json!({ "securityDefinitions": { "o": { "type": "oauth2" } } }),
                "/securityDefinitions/o",
            ),
        ] {
            let errors = refused(&doc(json!({}), rest));
            assert_eq!(errors[0].pointer, pointer, "{errors:#?}");
            assert!(errors[0].help.is_some());
        }
        let errors = refused(&json!({ "swagger": 3.0, "paths": {} }));
        assert_eq!(errors[0].pointer, "/swagger");
        let errors = refused(&json!(["swagger"]));
        assert_eq!(errors[0].pointer, "");
    }

    #[test]
    fn an_unquoted_version_is_read_with_a_warning() {
        let mut document = doc(json!({}), json!({}));
        if let Some(map) = document.as_object_mut() {
            map.insert(String::from("swagger"), json!(2.0));
        }
        let (out, diags) = converted(&document);
        assert_eq!(at(&out, "/openapi"), "3.0.3");
        assert_eq!(diags.len(), 1);
        assert_eq!(
            (diags[0].severity, diags[0].pointer.as_str()),
            (Severity::Warning, "/swagger")
        );
    }

    #[test]
    fn unknown_root_fields_are_left_out_with_a_warning() {
        let (out, diags) = converted(&doc(json!({}), json!({ "definitons": {}, "servers": [] })));
        assert!(out.document.get("definitons").is_none());
        assert!(out.document.get("servers").is_none());
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `definitions`?"));
    }

    /// A document using every conversion, for the fuzzing below.
    fn everything() -> Value {
        doc(
            json!({
                "/a/{id}": {
                    "parameters": [
                        { "name": "id", "in": "path", "required": true, "type": "array", "items": { "type": "integer", "items": {}, "collectionFormat": "ssv" }, "collectionFormat": "tsv" },
                        { "$ref": "#/parameters/Q" },
                    ],
                    "post": {
                        "consumes": ["multipart/form-data"],
                        "produces": ["application/json"],
                        "schemes": ["https"],
                        "parameters": [
                            { "name": "f", "in": "formData", "type": "file", "required": true },
                            { "name": "g", "in": "formData", "type": "array", "items": { "type": "string" }, "collectionFormat": "multi" },
                            { "$ref": "#/parameters/F" },
                            { "name": "h", "in": "header", "type": "string", "x-example": "e" },
                        ],
                        "responses": {
                            "200": { "description": "ok", "schema": { "$ref": "#/definitions/A" }, "headers": { "H": { "type": "array", "items": { "type": "string" }, "collectionFormat": "pipes" } }, "examples": { "application/json": {} } },
                            "default": { "$ref": "#/responses/E" },
                        },
                    },
                    "put": { "parameters": [{ "$ref": "#/parameters/B" }], "responses": {} },
                    "x-gateway": { "skip": true },
                },
                "/b": {
                    "parameters": [{ "name": "b", "in": "body", "schema": { "$ref": "#/definitions/A" } }],
                    "get": { "responses": {} },
                },
            }),
            json!({
                "host": "h", "basePath": "/b", "schemes": ["http"], "consumes": ["application/json"], "produces": ["application/json"],
                "definitions": { "A": { "type": "object", "discriminator": "k", "properties": { "k": { "type": "string", "x-nullable": true }, "f": { "type": "file" } }, "allOf": [{ "$ref": "#/definitions/A" }] } },
                "parameters": {
                    "Q": { "name": "q", "in": "query", "type": "string" },
                    "F": { "name": "ff", "in": "formData", "type": "string" },
                    "B": { "name": "bb", "in": "body", "schema": { "type": "object" } },
                },
                "responses": { "E": { "description": "e", "schema": { "type": "string" } } },
                "securityDefinitions": { "o": { "type": "oauth2", "flow": "implicit", "authorizationUrl": "https://a", "scopes": {} }, "b": { "type": "basic" } },
                "x-gateway": { "name": "n" },
            }),
        )
    }

    fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
        out.push(at.to_owned());
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    pointers(child, &join(at, key), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    pointers(child, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_node_of_every_type_converts_or_is_reported_without_a_panic() {
        let base = everything();
        let out = clean_or_warned(&base);
        openapi(&out);
        let mut all = Vec::new();
        pointers(&base, "", &mut all);
        let replacements = [
            json!(null),
            json!(true),
            json!(7),
            json!("x"),
            json!([]),
            json!({}),
            json!([{}]),
            json!({ "$ref": 1 }),
        ];
        for pointer in all.iter().filter(|p| !p.is_empty()) {
            for replacement in &replacements {
                let mut broken = base.clone();
                if let Some(node) = broken.pointer_mut(pointer) {
                    *node = replacement.clone();
                }
                let mut diags = Diagnostics::default();
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| convert(&broken, &mut diags)));
                assert!(result.is_ok(), "panicked with {replacement} at {pointer}");
                for d in diags.items() {
                    assert!(d.help.is_some(), "no help in {d:?} ({replacement} at {pointer})");
                }
            }
        }
    }

    /// The conversion, warnings allowed.
    fn clean_or_warned(doc: &Value) -> Converted {
        let (out, diags) = converted(doc);
        assert!(diags.iter().all(|d| d.severity == Severity::Warning), "{diags:#?}");
        out
    }

    #[test]
    fn the_real_world_specs_convert_to_openapi_3() {
        // From OpenAPI Generator's samples (Apache-2.0), as the ogen project's test data has them.
        for (name, text) in [
            (
                "petstore",
                include_str!("../../tests/fixtures/swagger2/ogen-2.0-petstore.yaml"),
            ),
            (
                "fake endpoints",
                include_str!(
                    "../../tests/fixtures/swagger2/ogen-2.0-petstore-with-fake-endpoints-models-for-testing.yaml"
                ),
            ),
            (
                "global consumes",
                include_str!("../../tests/fixtures/swagger2/ogen-2.0-globalConsumesAndProduces.json"),
            ),
        ] {
            let document = match super::super::document::read(text) {
                Ok(document) => document,
                Err(e) => panic!("{name}: {e:?}"),
            };
            let out = clean_or_warned(&document);
            let spec = openapi(&out);
            assert!(!spec.paths.paths.is_empty(), "{name}");
            // And the whole parse step reads it.
            let mut diags = Diagnostics::default();
            let parsed = crate::parse::parse(text, &mut diags);
            assert!(parsed.is_some(), "{name}: {:#?}", diags.items());
        }
    }

    #[test]
    fn the_fake_endpoints_spec_converts_as_expected() {
        let text =
            include_str!("../../tests/fixtures/swagger2/ogen-2.0-petstore-with-fake-endpoints-models-for-testing.yaml");
        let Ok(document) = super::super::document::read(text) else {
            panic!("unreadable fixture");
        };
        let (out, diags) = converted(&document);
        // `collectionFormat: pipe` (sic) and `tsv`.
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(messages.len(), 2, "{messages:#?}");
        assert!(messages[0].contains("`collectionFormat: pipe`"));
        assert!(messages[1].contains("tsv"));
        assert_eq!(at(&out, "/servers/0/url"), "http://petstore.swagger.io:80/v2");
        let upload =
            "/paths/~1pet~1{petId}~1uploadImage/post/requestBody/content/multipart~1form-data/schema/properties/file";
        assert_eq!(
            at(&out, upload),
            &json!({ "description": "file to upload", "type": "string", "format": "binary" })
        );
        assert_eq!(at(&out, "/components/securitySchemes/http_basic_test/scheme"), "basic");
        assert_eq!(
            at(&out, "/components/schemas/Animal/discriminator/propertyName"),
            "className"
        );
        let context = at(&out, "/paths/~1fake~1test-query-parameters/put/parameters/4");
        assert_eq!(
            (context.get("style"), context.get("explode")),
            (Some(&json!("form")), Some(&json!(true)))
        );
    }
}
