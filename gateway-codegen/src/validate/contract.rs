//! `validate:` — request bodies, schema-typed parameters and upstream responses checked against the spec.
//!
//! Settings are inherited field by field (operation over path item over top level). Every schema the gateway
//! checks is converted here into a self-contained JSON Schema (see [`crate::schema`]) and compiled once to prove
//! it will compile at start-up; identical schemas share one table entry. A 3.0 document's schemas become Draft 4
//! ones; a 3.1 document's are read as written (not from the 3.0 view `openapiv3` typed) and become 2020-12 ones.

use openapiv3::{Parameter, ParameterSchemaOrContent, QueryStyle, ReferenceOr, StatusCode};

use super::Tables;
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::locate::escape_segment;
use crate::model::{Body, FormField, Location, Media, ResponsesCheck, SchemaParam, StatusMatch};
use crate::parse::ext::{ResponsesMode, ValidateExt};
use crate::parse::{ParsedOperation, ParsedSpec, refs};
use crate::schema::{self, Direction};

/// `validate.max_body` when unset: 10 MiB, AWS API Gateway's payload limit.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;
/// `validate.responses_max_body` when unset.
pub const DEFAULT_RESPONSES_MAX_BODY: u64 = 1024 * 1024;

/// Largest converted schema a check nobody asked for (a `deepObject` or `content` parameter) may add to the
/// gateway: specs like Stripe's reach hundreds of their components from one parameter.
const MAX_IMPLICIT_SCHEMA: usize = 64 * 1024;

/// The effective `validate` settings of an operation, with where each was set.
struct Settings<'s> {
    levels: Vec<(String, &'s ValidateExt)>,
}

impl<'s> Settings<'s> {
    fn of(spec: &'s ParsedSpec, op: &'s ParsedOperation) -> Self {
        let levels = [&op.op_ext, &op.path_ext]
            .into_iter()
            .flatten()
            .filter_map(|(at, ext)| ext.validate.as_ref().map(|v| (format!("{at}/validate"), v)))
            .chain(
                spec.root
                    .validate
                    .as_ref()
                    .map(|v| ("/x-gateway/validate".to_owned(), v)),
            )
            .collect();
        Self { levels }
    }

    fn get<T: Copy>(&self, key: &str, field: impl Fn(&ValidateExt) -> Option<T>) -> Option<(String, T)> {
        self.levels
            .iter()
            .find_map(|(at, v)| field(v).map(|value| (format!("{at}/{key}"), value)))
    }
}

/// The document as JSON, converted once per run and only when some schema is checked (for 3.0; a 3.1 document's
/// schemas are read from [`ParsedSpec::schema_document`]).
pub(super) struct Document<'s> {
    spec: &'s ParsedSpec,
    json: Option<serde_json::Value>,
}

impl<'s> Document<'s> {
    pub(super) fn new(spec: &'s ParsedSpec) -> Self {
        Self { spec, json: None }
    }

    fn json(&mut self) -> &serde_json::Value {
        self.json
            .get_or_insert_with(|| serde_json::to_value(&self.spec.openapi).unwrap_or(serde_json::Value::Null))
    }

    /// Converts the schema written at `at` and adds it to `tables`; reports problems as errors, or as warnings
    /// when `optional` (the check is then left out).
    fn convert<T: serde::Serialize>(
        &mut self,
        schema: &T,
        at: &str,
        direction: Direction,
        optional: bool,
        tables: &mut Tables,
        diags: &mut Diagnostics,
    ) -> Option<(usize, serde_json::Value)> {
        let written = serde_json::to_value(schema).ok()?;
        let report = |diags: &mut Diagnostics, at: &str, message: String| {
            if optional {
                diags.push(Diagnostic::warning(
                    at,
                    format!("{message}; the value is forwarded unchecked"),
                ));
            } else {
                diags.push(
                    Diagnostic::error(at, message)
                        .help("fix the schema, or turn the check off with `validate: { body: false }`"),
                );
            }
        };
        // A 3.1 schema as written, at the same pointer (the 3.0 view only translated keywords in place); should the
        // pointer find nothing, the 3.0 view's schema is converted as before.
        let native = self
            .spec
            .schema_document
            .as_ref()
            .and_then(|document| Some((document, schema::written_at(document, at)?)));
        let converted = match native {
            Some((document, written)) => schema::to_json_schema_2020_12(document, written, at, direction),
            None => schema::to_json_schema(self.json(), &written, at, direction),
        };
        let converted = match converted {
            Ok(converted) => converted,
            Err(err) => {
                report(
                    diags,
                    &err.pointer,
                    format!("schema cannot be checked: {}", err.message),
                );
                return None;
            }
        };
        if let Err(reason) = schema::check_compiles(&converted) {
            report(diags, at, format!("schema does not compile as JSON Schema: {reason}"));
            return None;
        }
        let text = serde_json::to_string(&converted).ok()?;
        if optional && text.len() > MAX_IMPLICIT_SCHEMA {
            // Checked without being asked for: not at the price of a schema this large in the binary.
            diags.push(Diagnostic::warning(
                at,
                format!(
                    "this parameter's schema is {} KiB once self-contained; the value is forwarded unchecked",
                    text.len() / 1024
                ),
            ));
            return None;
        }
        Some((tables.schema(text), converted))
    }
}

/// The request body policy of an operation.
///
/// `force`: validate whatever `validate.body` says, for targets that take the body as data (a store's documents, a
/// function's request type): a body that fails its schema never reaches them.
pub(super) fn check_body(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    force: bool,
    document: &mut Document<'_>,
    tables: &mut Tables,
    diags: &mut Diagnostics,
) -> Body {
    let settings = Settings::of(spec, op);
    let max = settings
        .get("max_body", |v| v.max_body.map(|s| s.0))
        .map_or(DEFAULT_MAX_BODY, |(_, m)| m);
    let validate = force || settings.get("body", |v| v.body).is_some_and(|(_, on)| on);
    let mut body = Body {
        validate,
        ..Body::limit(max)
    };
    let Some(request_body) = op.operation.request_body.as_ref().filter(|_| validate) else {
        return body;
    };
    let base = match request_body {
        ReferenceOr::Reference { reference } => reference.strip_prefix('#').unwrap_or("").to_owned(),
        ReferenceOr::Item(_) => format!("{}/requestBody", op.pointer),
    };
    let Ok(resolved) = refs::resolve(&spec.openapi, request_body) else {
        // An unresolvable `requestBody` was reported by the parser.
        return body;
    };
    body.required = resolved.required;
    for (media_type, content) in &resolved.content {
        let range = essence(media_type);
        let at = format!("{base}/content/{}/schema", escape_segment(media_type));
        let checked = kind(&range) != Kind::Other;
        let converted = match (&content.schema, checked) {
            (Some(schema), true) => document.convert(schema, &at, Direction::Request, false, tables, diags),
            _ => None,
        };
        let form = match (&converted, kind(&range)) {
            (Some((_, converted)), Kind::Form) => form_fields(converted),
            _ => Vec::new(),
        };
        body.media.push(Media {
            range,
            schema: converted.map(|(index, _)| index),
            form,
        });
    }
    body
}

/// The operation's parameters that only a schema can check: `content` ones (JSON) and `deepObject` queries.
pub(super) fn check_schema_params(
    op: &ParsedOperation,
    document: &mut Document<'_>,
    tables: &mut Tables,
    diags: &mut Diagnostics,
) -> Vec<SchemaParam> {
    let mut out = Vec::new();
    for (at, parameter) in &op.params {
        let data = parameter.parameter_data_ref();
        let location = match parameter {
            Parameter::Query { .. } => Location::Query,
            Parameter::Header { .. } => Location::Header,
            Parameter::Cookie { .. } => Location::Cookie,
            Parameter::Path { .. } => continue,
        };
        let deep = matches!(
            parameter,
            Parameter::Query {
                style: QueryStyle::DeepObject,
                ..
            }
        );
        let (schema, schema_at) = match &data.format {
            ParameterSchemaOrContent::Content(content) => {
                let Some((media_type, media)) = content.first() else {
                    continue;
                };
                if kind(&essence(media_type)) != Kind::Json {
                    continue;
                }
                let Some(schema) = &media.schema else { continue };
                (schema, format!("{at}/content/{}/schema", escape_segment(media_type)))
            }
            ParameterSchemaOrContent::Schema(schema) if deep => (schema, format!("{at}/schema")),
            ParameterSchemaOrContent::Schema(_) => continue,
        };
        let Some((index, converted)) = document.convert(schema, &schema_at, Direction::Request, true, tables, diags)
        else {
            continue;
        };
        let name = match location {
            Location::Header => data.name.to_ascii_lowercase(),
            _ => data.name.clone(),
        };
        out.push(SchemaParam {
            name,
            location,
            deep_object: deep.then(|| form_fields(&converted)),
            required: data.required,
            schema: index,
        });
    }
    out
}

/// Whether `validate.body: false` is set for the operation, with where: a target that forces the check ignores it.
pub(super) fn body_turned_off(spec: &ParsedSpec, op: &ParsedOperation) -> Option<String> {
    Settings::of(spec, op)
        .get("body", |v| v.body)
        .and_then(|(at, on)| (!on).then_some(at))
}

/// Whether `media_type` is one the gateway reads as JSON (`application/json`, `+json`).
pub(super) fn is_json(media_type: &str) -> bool {
    kind(&essence(media_type)) == Kind::Json
}

/// The upstream response check of an operation, when `validate.responses` is `report` or `enforce`.
pub(super) fn check_responses(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    document: &mut Document<'_>,
    tables: &mut Tables,
    diags: &mut Diagnostics,
) -> Option<ResponsesCheck> {
    let settings = Settings::of(spec, op);
    let mode = settings
        .get("responses", |v| v.responses)
        .map_or(ResponsesMode::Off, |(_, m)| m);
    let sample = match settings.get("responses_sample", |v| v.responses_sample) {
        Some((at, s)) if !(0.0..=1.0).contains(&s) || s.is_nan() => {
            diags.push(
                Diagnostic::error(at, format!("`responses_sample: {s}` is not a share of responses"))
                    .help("write a number from 0 to 1: `0.1` checks one response in ten"),
            );
            return None;
        }
        Some((_, s)) => s,
        None => 1.0,
    };
    if mode == ResponsesMode::Off {
        return None;
    }
    let max_body = settings
        .get("responses_max_body", |v| v.responses_max_body.map(|s| s.0))
        .map_or(DEFAULT_RESPONSES_MAX_BODY, |(_, m)| m);
    let mut responses = Vec::new();
    let declared = op
        .operation
        .responses
        .responses
        .iter()
        .map(|(code, r)| {
            let status = match code {
                StatusCode::Code(c) => StatusMatch::Code(*c),
                StatusCode::Range(r) => StatusMatch::Class(*r),
            };
            (status, code.to_string(), r)
        })
        .chain(
            op.operation
                .responses
                .default
                .iter()
                .map(|r| (StatusMatch::Default, "default".to_owned(), r)),
        );
    for (status, key, response) in declared {
        let base = match response {
            ReferenceOr::Reference { reference } => reference.strip_prefix('#').unwrap_or("").to_owned(),
            ReferenceOr::Item(_) => format!("{}/responses/{}", op.pointer, escape_segment(&key)),
        };
        let Ok(resolved) = refs::resolve(&spec.openapi, response) else {
            continue;
        };
        let mut media = Vec::new();
        for (media_type, content) in &resolved.content {
            let range = essence(media_type);
            let at = format!("{base}/content/{}/schema", escape_segment(media_type));
            let schema = match (&content.schema, kind(&range)) {
                (Some(schema), Kind::Json) => document
                    .convert(schema, &at, Direction::Response, false, tables, diags)
                    .map(|(index, _)| index),
                _ => None,
            };
            media.push((range, schema));
        }
        responses.push((status, media));
    }
    // Millionths: `0.1` is 100 000; the float is a user's share, so rounding is the intent.
    let sample_ppm = (sample * 1_000_000.0).round().clamp(0.0, 1_000_000.0) as u32;
    Some(ResponsesCheck {
        enforce: mode == ResponsesMode::Enforce,
        sample_ppm,
        max_body,
        responses,
    })
}

/// How a media type is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Json,
    Form,
    Other,
}

/// The same reading of media types as the runtime's: JSON (`application/json` and `+json`), forms, the rest.
fn kind(essence: &str) -> Kind {
    if essence == "application/json" || essence.ends_with("+json") {
        Kind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Kind::Form
    } else {
        Kind::Other
    }
}

/// A media type or range, lower case, without parameters.
pub(super) fn essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn form_fields(converted: &serde_json::Value) -> Vec<FormField> {
    schema::form_fields(converted)
        .into_iter()
        .map(|f| FormField {
            name: f.name,
            scalar: match f.scalar {
                schema::FormScalar::String => "String",
                schema::FormScalar::Integer => "Integer",
                schema::FormScalar::Number => "Number",
                schema::FormScalar::Boolean => "Boolean",
            },
            list: f.list,
        })
        .collect()
}
