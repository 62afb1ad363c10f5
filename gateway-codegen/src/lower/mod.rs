//! Step 3 of the pipeline: checked spec → [`crate::model::Api`].
//!
//! Assigns Rust names, turns parameter schemas into Rust types, and collects string enums. Everything that can be
//! wrong with the spec was found by [`crate::validate`]; what is left here is deciding how to read what is right,
//! with warnings where the spec says something the gateway cannot use (a default of the wrong type).

mod functions;
mod types;

use std::collections::BTreeMap;

use openapiv3::{
    IntegerFormat, NumberFormat, OpenAPI, Parameter, ParameterSchemaOrContent, PathStyle, QueryStyle, ReferenceOr,
    Schema, SchemaKind, Type, VariantOrUnknownOrEmpty,
};

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{
    Api, EnumType, FunctionsCrate, ListStyle, Literal, Location, Merged, Operation, Param, ParamStruct, ParamType,
    Scalar, Target,
};
use crate::names::{self, Scope};
use crate::parse::ParsedSpec;
use crate::parse::refs;
use crate::template::{self, Piece};
use crate::validate::{Checked, CheckedOperation};

/// Names the params module already uses, which generated types must not shadow.
const RESERVED_TYPES: &[&str] = &["Option", "Result", "String", "Vec", "Self", "ParamIn", "ListStyle"];

/// Builds the model.
pub fn lower(spec: &ParsedSpec, checked: Checked<'_>, spec_file: &str, diags: &mut Diagnostics) -> Api {
    let mut types = Types {
        scope: Scope::with_reserved(RESERVED_TYPES),
        enums: BTreeMap::new(),
        checks: Scope::default(),
    };
    // Function operations' request and response types, in the types crate: its own namespace.
    let mut space = types::TypeSpace::new(&spec.openapi);
    let mut function_names = Scope::with_reserved(FUNCTION_RESERVED);
    let operations: Vec<Operation> = checked
        .operations
        .iter()
        .filter_map(|op| {
            let mut lowered = lower_operation(&spec.openapi, op, &mut types, diags)?;
            if let Target::Function(function) = &mut lowered.target {
                **function =
                    functions::lower_function(&spec.openapi, op, (**function).clone(), &mut space, &mut function_names);
            }
            Some(lowered)
        })
        .collect();
    let mut operations = operations;
    share_enums(&mut operations, &mut types);
    let has_functions = operations.iter().any(|op| matches!(op.target, Target::Function(_)));
    let functions = spec
        .root
        .functions
        .as_ref()
        .filter(|_| has_functions)
        .map(|f| FunctionsCrate {
            package: f.krate.clone(),
            path: f.path.trim_end_matches('/').to_owned(),
        });
    Api {
        name: checked.name,
        gateway: checked.gateway,
        base_path: checked.base_path,
        spec_file: spec_file.to_owned(),
        title: spec.openapi.info.title.clone(),
        version: spec.openapi.info.version.clone(),
        upstreams: checked.upstreams,
        operations,
        enums: types.enums.into_values().collect(),
        cache: checked.cache,
        throttle: checked.throttle,
        usage_plans: checked.usage_plans.clone(),
        hosts: checked.hosts.clone(),
        responses: checked.responses.clone(),
        schemas: checked.tables.schemas,
        filters: checked.tables.filters,
        schemes: checked.schemes,
        cors: checked.cors,
        stages: checked.stages,
        default_stage: checked.default_stage,
        spec_sha256: String::new(),
        published: (spec.root.publish_spec != Some(false)).then(|| crate::published::published(&spec.document)),
        stores: checked.stores,
        shared: checked.shared,
        functions,
        types: space.finish(),
    }
}

/// Makes the inline enums that several operations declare alike — a parameter of the same name with the same
/// values (`direction: asc | desc` on every list of a large API) — one type, named after the parameter
/// (`Direction`, `…Item` for an array's items) where that name is free, else after the first of them. Enums of a
/// `$ref`'d schema are one type already, named after it.
fn share_enums(operations: &mut [Operation], types: &mut Types) {
    fn structs(op: &mut Operation) -> impl Iterator<Item = &mut ParamStruct> {
        op.params.iter_mut().chain(
            op.merged
                .iter_mut()
                .flat_map(|m| m.alternatives.iter_mut().map(|(_, s)| s)),
        )
    }
    /// The enum a field's type names, with the suffix its inline name has after the struct's (`Direction`).
    fn inline_enum(base: &str, field: &Param) -> Option<(String, String)> {
        let (name, item) = match &field.ty {
            ParamType::Scalar(Scalar::Enum(name)) => (name, ""),
            ParamType::List(Scalar::Enum(name)) => (name, "Item"),
            _ => return None,
        };
        let suffix = format!("{}{item}", names::type_name(&field.name, "Param"));
        (name.strip_prefix(base) == Some(suffix.as_str())).then(|| (name.clone(), suffix))
    }
    // The inline enums, by suffix and values, in order of first use.
    // The inline enums, keyed by (type-name suffix, variants), with the names they were given.
    type Group = ((String, Vec<(String, String)>), Vec<String>);
    let mut groups: Vec<Group> = Vec::new();
    for op in operations.iter_mut() {
        for params in structs(op) {
            let base = params.name.trim_end_matches("Params").to_owned();
            for field in &params.fields {
                let Some((name, suffix)) = inline_enum(&base, field) else {
                    continue;
                };
                let Some(variants) = types.enums.get(&name).map(|e| e.variants.clone()) else {
                    continue;
                };
                let key = (suffix, variants);
                match groups.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, names)) if !names.contains(&name) => names.push(name),
                    Some(_) => {}
                    None => groups.push((key, vec![name])),
                }
            }
        }
    }
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for ((suffix, _), names) in groups.into_iter().filter(|(_, names)| names.len() > 1) {
        let shared = if types.scope.is_free(&suffix) {
            types.scope.claim(suffix, "")
        } else {
            names[0].clone()
        };
        let Some(mut kept) = types.enums.remove(&names[0]) else {
            continue;
        };
        for name in &names[1..] {
            types.enums.remove(name);
        }
        kept.name = shared.clone();
        types.enums.insert(shared.clone(), kept);
        for name in names.into_iter().filter(|n| *n != shared) {
            renamed.insert(name, shared.clone());
        }
    }
    if renamed.is_empty() {
        return;
    }
    for op in operations.iter_mut() {
        for params in structs(op) {
            for field in &mut params.fields {
                let (ParamType::Scalar(Scalar::Enum(name)) | ParamType::List(Scalar::Enum(name))) = &mut field.ty
                else {
                    continue;
                };
                if let Some(shared) = renamed.get(name) {
                    name.clone_from(shared);
                }
            }
        }
    }
}

/// Names the types crate's root must not define: what it re-exports, and its modules.
const FUNCTION_RESERVED: &[&str] = &[
    "FunctionContext",
    "UpstreamCaller",
    "GatewayError",
    "ErrorKind",
    "Option",
    "Result",
    "String",
    "Vec",
    "Self",
];

/// The first non-blank line of a description, for a doc comment.
fn first_line(text: Option<&str>) -> Option<String> {
    text.and_then(|t| t.lines().map(str::trim).find(|l| !l.is_empty()))
        .map(str::to_owned)
}

fn lower_operation(
    openapi: &OpenAPI,
    op: &CheckedOperation<'_>,
    types: &mut Types,
    diags: &mut Diagnostics,
) -> Option<Operation> {
    // A checked spec has a target for every operation; one without is left out rather than trusted.
    let target = op.target.clone()?;
    let struct_name = types
        .scope
        .claim(format!("{}Params", names::type_name(&op.id, "Operation")), "");
    let params = param_struct(openapi, op.parsed, &op.path_params, op, struct_name, types, diags);
    let (params, merged) = merge_params(openapi, op, params, types, diags);
    let summary = first_line(op.parsed.operation.summary.as_deref())
        .or_else(|| first_line(op.parsed.operation.description.as_deref()));
    Some(Operation {
        id: op.id.clone(),
        method: op.parsed.method.to_owned(),
        template: op.parsed.template.clone(),
        route: op.route.clone(),
        path_params: op.path_params.clone(),
        path_suffixes: op.path_suffixes.clone(),
        summary,
        params,
        merged,
        cache: op.cache.clone(),
        security: op.security.clone(),
        access: op.access,
        cors: op.cors.clone(),
        ip: op.ip.clone(),
        compression: op.compression,
        websocket: op.websocket,
        plans: op.plans.clone(),
        throttle: op.throttle,
        responses: op.responses.clone(),
        body: op.body.clone(),
        schema_params: op.schema_params.clone(),
        transform: op.transform.clone(),
        responses_check: op.responses_check.clone(),
        target,
    })
}

/// The typed parameters of operation `parsed` (path parameters named `path_params`), in a struct called `struct_name`;
/// `None` when it has none to check. `op`'s schema-checked parameters are not listed as unchecked.
fn param_struct(
    openapi: &OpenAPI,
    parsed: &crate::parse::ParsedOperation,
    path_params: &[String],
    op: &CheckedOperation<'_>,
    struct_name: String,
    types: &mut Types,
    diags: &mut Diagnostics,
) -> Option<ParamStruct> {
    let mut fields = Scope::default();
    let mut params = Vec::new();
    let mut unchecked = Vec::new();
    let separators = separators(&parsed.template);
    for (at, parameter) in &parsed.params {
        let data = parameter.parameter_data_ref();
        let name = &data.name;
        let location = match parameter {
            Parameter::Path { .. } => match path_params.iter().position(|p| p == name) {
                Some(i) => Location::Path(i),
                None => continue,
            },
            Parameter::Query { .. } => Location::Query,
            Parameter::Header { .. } => {
                // OpenAPI: header parameters named Accept, Content-Type or Authorization are ignored.
                if ["accept", "content-type", "authorization"].contains(&name.to_ascii_lowercase().as_str()) {
                    continue;
                }
                Location::Header
            }
            Parameter::Cookie { .. } => Location::Cookie,
        };
        let list_style = match parameter {
            Parameter::Query {
                style: QueryStyle::Form,
                ..
            } if data.explode.unwrap_or(true) => Some(ListStyle::Repeated),
            Parameter::Query {
                style: QueryStyle::Form,
                ..
            } => Some(ListStyle::Comma),
            Parameter::Query {
                style: QueryStyle::SpaceDelimited,
                ..
            } => Some(ListStyle::Space),
            Parameter::Query {
                style: QueryStyle::PipeDelimited,
                ..
            } => Some(ListStyle::Pipe),
            Parameter::Query {
                style: QueryStyle::DeepObject,
                ..
            } => None,
            Parameter::Path {
                style: PathStyle::Label | PathStyle::Matrix,
                ..
            } => None,
            Parameter::Path { .. } | Parameter::Header { .. } | Parameter::Cookie { .. } => Some(ListStyle::Comma),
        };
        let schema = match &data.format {
            ParameterSchemaOrContent::Schema(schema) => Some(schema),
            ParameterSchemaOrContent::Content(_) => None,
        };
        let enum_hint = format!(
            "{}{}",
            struct_name.trim_end_matches("Params"),
            names::type_name(name, "Param")
        );
        let ty = match (schema, list_style) {
            (Some(schema), Some(style)) => param_type(openapi, schema, &enum_hint, types, 0).map(|ty| (ty, style)),
            _ => None,
        };
        let Some((ty, list_style)) = ty else {
            unchecked.push(format!("{} `{name}`", location.as_str()));
            continue;
        };
        if let (Location::Path(i), ParamType::Scalar(Scalar::Enum(enum_name))) = (location, &ty)
            && let Some(Some(separator)) = separators.get(i)
            && let Some(e) = types.enums.get(enum_name)
        {
            warn_uncuttable_values(parsed, at, name, separator, e, diags);
        }
        let required = matches!(location, Location::Path(_)) || data.required;
        let default = if required {
            None
        } else {
            schema
                .and_then(|s| resolve_schema(openapi, s).map(|resolved| (s, resolved)))
                .and_then(|(s, resolved)| resolved.schema_data.default.as_ref().map(|value| (s, value)))
                .and_then(|(s, value)| {
                    let at = default_pointer(at, s);
                    match default_literal(&ty, value, types) {
                        Ok(literal) => Some(literal),
                        Err(DefaultProblem::WrongKind) => {
                            diags.push(Diagnostic::warning(
                                at,
                                format!("default `{value}` of parameter `{name}` does not fit its type; ignored"),
                            ));
                            None
                        }
                        // The spec is wrong, but the gateway can still be exact without the default: an absent
                        // parameter is forwarded absent, and the upstream applies whatever default it has.
                        Err(DefaultProblem::Unrepresentable { reason, help }) => {
                            diags.push(
                                Diagnostic::warning(
                                    at,
                                    format!("default `{value}` of parameter `{name}` {reason}; ignored"),
                                )
                                .help(help),
                            );
                            None
                        }
                    }
                })
        };
        params.push(Param {
            name: name.clone(),
            field: fields.claim(names::field(name), "_"),
            location,
            ty,
            required,
            default,
            list_style,
            doc: first_line(data.description.as_deref()),
        });
    }
    // Parameters a schema checks are not unchecked any more.
    unchecked.retain(|u| {
        !op.schema_params
            .iter()
            .any(|p| u.eq_ignore_ascii_case(&format!("{} `{}`", p.location.as_str(), p.name)))
    });
    (!params.is_empty()).then_some(ParamStruct {
        name: struct_name,
        fields: params,
        unchecked,
    })
}

/// Per path parameter of `template`, the literal before it when it shares its segment with the parameter before it
/// (`.` for `ext` in `/files/{name}.{ext}`): the runtime cuts the segment at that literal's last occurrence.
fn separators(path_key: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    let mut after_param = false;
    let mut literal = String::new();
    for piece in template::scan(template::routed_part(path_key)).unwrap_or_default() {
        match piece {
            Piece::Literal(text) => match text.rsplit_once('/') {
                Some((_, rest)) => {
                    after_param = false;
                    literal = rest.to_owned();
                }
                None => literal.push_str(&text),
            },
            Piece::Placeholder(_) => {
                out.push(after_param.then(|| std::mem::take(&mut literal)));
                after_param = true;
                literal.clear();
            }
        }
    }
    out
}

/// Warns (at the parameter, `at`) about values of enum `e` that a path parameter cut after `separator` can never be:
/// the segment is cut at the separator's last occurrence, so such a value arrives as its last part.
fn warn_uncuttable_values(
    parsed: &crate::parse::ParsedOperation,
    at: &str,
    name: &str,
    separator: &str,
    e: &EnumType,
    diags: &mut Diagnostics,
) {
    let values: Vec<String> = e
        .variants
        .iter()
        .filter(|(_, wire)| wire.contains(separator))
        .map(|(_, wire)| format!("`{wire}`"))
        .collect();
    if values.is_empty() {
        return;
    }
    diags.push(
        Diagnostic::warning(
            at,
            format!(
                "path parameter `{name}` of {} {} can never be {}: its segment is cut at the last `{separator}` before it, so such a value arrives as the part after that `{separator}` (and is refused)",
                parsed.method,
                template::routed_part(&parsed.template),
                values.join(", ")
            ),
        )
        .help(format!(
            "drop those values, or make `{name}` the first parameter of its segment (only the first may contain `{separator}`)"
        )),
    );
}

/// The parameter checks of an operation whose route also serves others (`op.merged`): what any of them accepts is
/// accepted. When every one checks the same (the same parameters at the same places, of the same types, only path
/// parameters named differently), the operation's own checks are that union exactly and are used alone; when one
/// checks nothing, nothing is checked; otherwise the distinct ones become alternatives, tried in document order,
/// and a request none accepts gets the serving operation's own error.
fn merge_params(
    openapi: &OpenAPI,
    op: &CheckedOperation<'_>,
    own: Option<ParamStruct>,
    types: &mut Types,
    diags: &mut Diagnostics,
) -> (Option<ParamStruct>, Option<Merged>) {
    if op.merged.is_empty() {
        return (own, None);
    }
    let mut accepts_all = own.is_none();
    let mut alternatives: Vec<(String, ParamStruct)> = Vec::new();
    for member in &op.merged {
        let candidate = format!("{}Params", names::type_name(&member.id, "Operation"));
        // A struct that checks what another does is not emitted, nor are the enums made for it.
        let before = (types.scope.clone(), types.enums.clone());
        match param_struct(openapi, member.parsed, &member.path_params, op, candidate, types, diags) {
            None => accepts_all = true,
            Some(theirs) => {
                let known = own
                    .iter()
                    .chain(alternatives.iter().map(|(_, p)| p))
                    .any(|p| same_checks(p, &theirs, types));
                if known {
                    (types.scope, types.enums) = before;
                } else {
                    let name = types.scope.claim(theirs.name.clone(), "");
                    alternatives.push((member.id.clone(), ParamStruct { name, ..theirs }));
                }
            }
        }
    }
    let ids = op.merged.iter().map(|m| m.id.clone()).collect();
    if accepts_all {
        let merged = Merged {
            ids,
            alternatives: Vec::new(),
            check: String::new(),
        };
        return (None, Some(merged));
    }
    let check = if alternatives.is_empty() {
        String::new()
    } else {
        types.checks.claim(format!("accepts_{}", names::field(&op.id)), "_")
    };
    let merged = Merged {
        ids,
        alternatives,
        check,
    };
    (own, Some(merged))
}

/// Whether two parameter structs accept exactly the same requests: the same parameters at the same places (path
/// parameters by position, whatever they are called; header names in any case), of the same types (enums by their
/// values), equally required, with the same defaults and list styles.
fn same_checks(a: &ParamStruct, b: &ParamStruct, types: &Types) -> bool {
    fn place(p: &Param) -> (u8, usize, String) {
        match p.location {
            Location::Path(i) => (0, i, String::new()),
            Location::Query => (1, 0, p.name.clone()),
            Location::Header => (2, 0, p.name.to_ascii_lowercase()),
            Location::Cookie => (3, 0, p.name.clone()),
        }
    }
    fn sorted(s: &ParamStruct) -> Vec<((u8, usize, String), &Param)> {
        let mut fields: Vec<_> = s.fields.iter().map(|p| (place(p), p)).collect();
        fields.sort_by(|x, y| x.0.cmp(&y.0));
        fields
    }
    let same_scalar = |x: &Scalar, y: &Scalar| match (x, y) {
        (Scalar::Enum(x), Scalar::Enum(y)) => {
            x == y || types.enums.get(x).map(|e| &e.variants) == types.enums.get(y).map(|e| &e.variants)
        }
        (x, y) => x == y,
    };
    let same_type = |x: &ParamType, y: &ParamType| match (x, y) {
        (ParamType::Scalar(x), ParamType::Scalar(y)) | (ParamType::List(x), ParamType::List(y)) => same_scalar(x, y),
        _ => false,
    };
    let (a, b) = (sorted(a), sorted(b));
    a.len() == b.len()
        && a.iter().zip(&b).all(|((px, x), (py, y))| {
            px == py
                && same_type(&x.ty, &y.ty)
                && x.required == y.required
                && x.default == y.default
                && x.list_style == y.list_style
        })
}

fn resolve_schema<'a>(openapi: &'a OpenAPI, schema: &'a ReferenceOr<Schema>) -> Option<&'a Schema> {
    refs::resolve(openapi, schema).ok()
}

/// Schema nesting followed (through `allOf` of one) before a schema is taken as untyped.
const MAX_SCHEMA_DEPTH: usize = 16;

/// The Rust type of a parameter schema, or `None` for one the gateway forwards unchecked (objects, nested arrays).
fn param_type(
    openapi: &OpenAPI,
    schema: &ReferenceOr<Schema>,
    enum_hint: &str,
    types: &mut Types,
    depth: usize,
) -> Option<ParamType> {
    let resolved = resolve_schema(openapi, schema)?;
    let hint = match schema {
        ReferenceOr::Reference { reference } => {
            names::type_name(reference.rsplit('/').next().unwrap_or(enum_hint), "Enum")
        }
        ReferenceOr::Item(_) => enum_hint.to_owned(),
    };
    match &resolved.schema_kind {
        SchemaKind::Type(Type::Array(array)) => {
            let items = array.items.as_ref()?;
            let items = match items {
                ReferenceOr::Item(boxed) => ReferenceOr::Item((**boxed).clone()),
                ReferenceOr::Reference { reference } => ReferenceOr::Reference {
                    reference: reference.clone(),
                },
            };
            match param_type(openapi, &items, &format!("{hint}Item"), types, depth + 1)? {
                ParamType::Scalar(scalar) => Some(ParamType::List(scalar)),
                ParamType::List(_) => None,
            }
        }
        SchemaKind::AllOf { all_of } if all_of.len() == 1 && depth < MAX_SCHEMA_DEPTH => {
            param_type(openapi, &all_of[0], &hint, types, depth + 1)
        }
        kind => scalar_type(kind, &hint, types).map(ParamType::Scalar),
    }
}

fn scalar_type(kind: &SchemaKind, hint: &str, types: &mut Types) -> Option<Scalar> {
    Some(match kind {
        SchemaKind::Type(Type::Integer(int)) => match int.format {
            VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => Scalar::I32,
            _ => Scalar::I64,
        },
        SchemaKind::Type(Type::Number(number)) => match number.format {
            VariantOrUnknownOrEmpty::Item(NumberFormat::Float) => Scalar::F32,
            _ => Scalar::F64,
        },
        SchemaKind::Type(Type::Boolean(_)) => Scalar::Bool,
        SchemaKind::Type(Type::String(string)) => {
            let mut values: Vec<String> = Vec::new();
            for value in string.enumeration.iter().flatten() {
                if !values.contains(value) {
                    values.push(value.clone());
                }
            }
            if !values.is_empty() {
                Scalar::Enum(types.add_enum(hint, values))
            } else if matches!(&string.format, VariantOrUnknownOrEmpty::Unknown(f) if f == "uuid") {
                Scalar::Uuid
            } else {
                // Every other format (date, date-time, byte, …) is read as text; request validation checks formats.
                Scalar::String
            }
        }
        SchemaKind::Type(Type::Object(_)) => return None,
        SchemaKind::Type(Type::Array(_)) => return None,
        // oneOf/anyOf/not/untyped: any text may be valid, so accept any text.
        SchemaKind::OneOf { .. } | SchemaKind::AnyOf { .. } | SchemaKind::Not { .. } | SchemaKind::AllOf { .. } => {
            Scalar::String
        }
        SchemaKind::Any(any) => match any.typ.as_deref() {
            Some("object") => return None,
            _ => Scalar::String,
        },
    })
}

/// Where a parameter's default is written: in the schema beside the parameter, or in the component its `$ref`
/// names (a default in a shared schema is reported once per parameter that uses it, at the schema).
fn default_pointer(param_at: &str, schema: &ReferenceOr<Schema>) -> String {
    match schema {
        ReferenceOr::Reference { reference } if reference.starts_with("#/components/schemas/") => {
            format!("{}/default", &reference[1..])
        }
        _ => format!("{param_at}/schema/default"),
    }
}

/// Why a default cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DefaultProblem {
    /// A value of another kind (text for a number): ignored with a warning, as the parameter still works without it.
    WrongKind,
    /// A value of the right kind that the Rust type cannot hold: an error, since the spec promises a default that the
    /// gateway cannot apply.
    Unrepresentable {
        /// Why, naming the Rust type and the schema it comes from (`is out of range for `i32` (…)`).
        reason: String,
        /// What range the type holds, or what a valid value looks like.
        help: String,
    },
}

/// The integral `f64` values that are also `i64` values are those in `[-2^63, 2^63)`: `I64_MIN_F64..I64_END_F64`.
const I64_MIN_F64: f64 = -9_223_372_036_854_775_808.0;
/// See [`I64_MIN_F64`].
const I64_END_F64: f64 = 9_223_372_036_854_775_808.0;

fn out_of_range(ty: &str, help: &str) -> DefaultProblem {
    DefaultProblem::Unrepresentable {
        reason: format!("is out of range for {ty}"),
        help: help.to_owned(),
    }
}

/// An integer default, also when written as an integral float (`100.0`, or a 128-bit integer YAML read as a float).
fn integer_default(value: &serde_json::Value, ty: &str, help: &str) -> Result<i64, DefaultProblem> {
    let too_big = || out_of_range(ty, help);
    let serde_json::Value::Number(number) = value else {
        return Err(DefaultProblem::WrongKind);
    };
    if let Some(n) = number.as_i64() {
        return Ok(n);
    }
    if number.as_u64().is_some() {
        return Err(too_big());
    }
    match number.as_f64() {
        Some(f) if f.fract() != 0.0 || !f.is_finite() => Err(DefaultProblem::WrongKind),
        // The bounds are exact powers of two, so the range check is exact and the cast below loses nothing.
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if (I64_MIN_F64..I64_END_F64).contains(&f) => Ok(f as i64),
        Some(_) => Err(too_big()),
        None => Err(DefaultProblem::WrongKind),
    }
}

/// The literal the emitter writes for `value`, checked to be one the parameter's Rust type can hold.
fn default_literal(ty: &ParamType, value: &serde_json::Value, types: &Types) -> Result<Literal, DefaultProblem> {
    let ParamType::Scalar(scalar) = ty else {
        return Err(DefaultProblem::WrongKind);
    };
    let text = value.as_str();
    match scalar {
        Scalar::I32 => {
            const TY: &str = "`i32` (`type: integer, format: int32`)";
            let help =
                "an int32 holds -2147483648 to 2147483647; write a default in that range, or use `format: int64`";
            let n = integer_default(value, TY, help)?;
            if i32::try_from(n).is_err() {
                return Err(out_of_range(TY, help));
            }
            Ok(Literal::Int(n))
        }
        Scalar::I64 => integer_default(
            value,
            "`i64` (`type: integer`)",
            "an integer parameter holds -9223372036854775808 to 9223372036854775807; write a default in that range",
        )
        .map(Literal::Int),
        Scalar::F32 => {
            let f = value.as_f64().ok_or(DefaultProblem::WrongKind)?;
            // The emitter writes an `f32` literal: the value must stay finite when narrowed.
            #[allow(clippy::cast_possible_truncation)]
            let narrowed = f as f32;
            if !narrowed.is_finite() {
                return Err(out_of_range(
                    "`f32` (`type: number, format: float`)",
                    &format!(
                        "a float holds magnitudes up to {:e}; write a smaller default, or use `format: double`",
                        f32::MAX
                    ),
                ));
            }
            Ok(Literal::Float(f))
        }
        Scalar::F64 => {
            let f = value.as_f64().ok_or(DefaultProblem::WrongKind)?;
            if !f.is_finite() {
                return Err(out_of_range("`f64` (`type: number`)", "write a finite number"));
            }
            Ok(Literal::Float(f))
        }
        Scalar::Bool => value.as_bool().map(Literal::Bool).ok_or(DefaultProblem::WrongKind),
        Scalar::String => text
            .map(|s| Literal::Str(s.to_owned()))
            .ok_or(DefaultProblem::WrongKind),
        Scalar::Uuid => {
            let s = text.ok_or(DefaultProblem::WrongKind)?;
            if !uuid_like(s) {
                return Err(DefaultProblem::Unrepresentable {
                    reason: String::from("is not a UUID (`type: string, format: uuid`)"),
                    help: String::from(
                        "write 32 hex digits in groups of 8-4-4-4-12, e.g. `123e4567-e89b-12d3-a456-426614174000`",
                    ),
                });
            }
            Ok(Literal::Str(s.to_owned()))
        }
        Scalar::Enum(name) => {
            let s = text.ok_or(DefaultProblem::WrongKind)?;
            let variants = types.enums.get(name).map(|e| e.variants.as_slice()).unwrap_or_default();
            match variants.iter().find(|(_, wire)| wire == s) {
                Some((variant, _)) => Ok(Literal::Variant(variant.clone())),
                None => Err(DefaultProblem::Unrepresentable {
                    reason: String::from("is not one of the values of its `enum`"),
                    help: enum_values_help(variants),
                }),
            }
        }
    }
}

/// Enum values listed in a help line before the rest are summarised.
const MAX_LISTED_VALUES: usize = 10;

fn enum_values_help(variants: &[(String, String)]) -> String {
    let mut listed: Vec<String> = variants
        .iter()
        .take(MAX_LISTED_VALUES)
        .map(|(_, wire)| format!("`{wire}`"))
        .collect();
    if variants.len() > MAX_LISTED_VALUES {
        listed.push(format!("… ({} values)", variants.len()));
    }
    format!("the default must be one of the enum's values: {}", listed.join(", "))
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// The names of generated types (parameter structs and enums share one namespace), and the enums themselves.
#[derive(Debug)]
struct Types {
    scope: Scope,
    enums: BTreeMap<String, EnumType>,
    /// Names of the generated functions that accept what any of several operations' parameters accept.
    checks: Scope,
}

impl Types {
    /// The name of the enum of `values`, created if new; a `$ref`'d enum used by several parameters is one type.
    fn add_enum(&mut self, hint: &str, values: Vec<String>) -> String {
        let mut variant_names = Scope::default();
        let variants: Vec<(String, String)> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    variant_names.claim(names::type_name(v, &format!("V{i}")), ""),
                    v.clone(),
                )
            })
            .collect();
        let base = names::type_name(hint, "Enum");
        if self
            .enums
            .get(&base)
            .is_some_and(|existing| existing.variants == variants)
        {
            return base;
        }
        let name = self.scope.claim(base, "");
        self.enums.insert(
            name.clone(),
            EnumType {
                name: name.clone(),
                variants,
            },
        );
        name
    }
}
