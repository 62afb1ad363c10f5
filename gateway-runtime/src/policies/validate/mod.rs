//! Request validation against the spec: bodies (size, media type, schema), schema-typed parameters, and the
//! compiled schemas and filters every check and transform shares.
//!
//! Every schema of the spec was converted at generate time into a self-contained JSON Schema and is compiled here
//! once, at start-up, by the jsonschema crate, with the dialect it was made for: JSON Schema 2020-12 for the
//! schemas of an OpenAPI 3.1 document (their root says `$schema: https://json-schema.org/draft/2020-12/schema`),
//! Draft 4 for an OpenAPI 3.0 document's (no `$schema`; `nullable`, `readOnly`/`writeOnly` and integer formats
//! already translated). A request only runs a compiled validator.

pub mod body;
pub mod form;
pub mod media;
pub mod responses;

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{ErrorKind, GatewayError, ProblemItem};
use crate::params::ParamIn;
use crate::policies::transform::jq::JqFilter;
use crate::spec::{ApiSpec, SchemaParamSpec, SchemaParamStyle};
use crate::template::RequestView;

pub use responses::DriftCounters;

/// Most violations listed in one `400`: enough to fix a request, bounded so a huge invalid body cannot make a
/// huge answer.
pub const MAX_REPORTED: usize = 20;

/// Why the spec's schemas or filters could not be compiled (the generator compiled them all; this guards a
/// hand-edited gateway).
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// A schema that is not JSON, or that jsonschema refuses.
    #[error("schema #{index} does not compile: {reason}")]
    Schema {
        /// Its index in the table.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A jq filter that does not compile.
    #[error("filter #{index} does not compile: {reason}")]
    Filter {
        /// Its index in the table.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// The spec's schemas and filters, compiled once and shared by every worker; and the response-check counters.
#[derive(Clone)]
pub struct Contracts(Arc<Compiled>);

struct Compiled {
    schemas: Box<[jsonschema::Validator]>,
    filters: Box<[JqFilter]>,
    drift: DriftCounters,
}

impl std::fmt::Debug for Contracts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contracts")
            .field("schemas", &self.0.schemas.len())
            .field("filters", &self.0.filters.len())
            .finish()
    }
}

impl Contracts {
    /// Compiles every schema and filter of `api`.
    pub fn compile(api: &'static ApiSpec) -> Result<Self, ContractError> {
        let schemas = api
            .schemas
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let schema: serde_json::Value = serde_json::from_str(text).map_err(|e| ContractError::Schema {
                    index,
                    reason: e.to_string(),
                })?;
                compile_schema(&schema).map_err(|reason| ContractError::Schema { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let filters = api
            .filters
            .iter()
            .enumerate()
            .map(|(index, code)| JqFilter::compile(code).map_err(|reason| ContractError::Filter { index, reason }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(Arc::new(Compiled {
            schemas: schemas.into(),
            filters: filters.into(),
            drift: DriftCounters::new(api),
        })))
    }

    /// Schema `index`.
    pub(crate) fn schema(&self, index: usize) -> Option<&jsonschema::Validator> {
        self.0.schemas.get(index)
    }

    /// Filter `index`.
    pub(crate) fn filter(&self, index: usize) -> Option<&JqFilter> {
        self.0.filters.get(index)
    }

    /// The response-check counters.
    pub fn drift(&self) -> &DriftCounters {
        &self.0.drift
    }

    /// Checks `value` against schema `index`: every violation (at most [`MAX_REPORTED`]), or none.
    pub(crate) fn violations(&self, index: usize, value: &serde_json::Value) -> Result<(), Violations> {
        let Some(validator) = self.schema(index) else {
            // Indexes come from the same generated table: only a generator bug gets here.
            tracing::error!(schema = index, "no such schema");
            return Ok(());
        };
        if validator.is_valid(value) {
            return Ok(());
        }
        let mut total = 0;
        let mut items = Vec::new();
        for error in validator.iter_errors(value) {
            total += 1;
            if items.len() < MAX_REPORTED {
                items.push(ProblemItem {
                    pointer: error.instance_path().to_string(),
                    keyword: error.kind().keyword().to_owned(),
                    detail: error.to_string(),
                });
            }
        }
        Err(Violations { total, items })
    }
}

/// The `$schema` of the schemas converted from an OpenAPI 3.1 document.
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
/// Draft 4's `$schema`, which a converted 3.0 schema leaves out (it is the default here).
const DRAFT_4: &str = "http://json-schema.org/draft-04/schema";

/// Compiles one converted schema, formats checked (OpenAPI's `format`s are assertions for a gateway): as JSON Schema
/// 2020-12 when its `$schema` says so, as Draft 4 when it has none (or says Draft 4). The draft is chosen here, never detected by
/// jsonschema (which would read a schema without `$schema` as 2020-12).
pub fn compile_schema(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    let options = match schema.get("$schema") {
        None => jsonschema::draft4::options(),
        Some(serde_json::Value::String(uri)) if uri == DRAFT_2020_12 => jsonschema::draft202012::options(),
        Some(serde_json::Value::String(uri)) if uri.trim_end_matches('#') == DRAFT_4 => jsonschema::draft4::options(),
        Some(other) => {
            return Err(format!(
                "`$schema: {other}` is not a dialect the gateway compiles (Draft 4 without `$schema`, or {DRAFT_2020_12})"
            ));
        }
    };
    options
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// What a failed schema check found.
#[derive(Debug)]
pub(crate) struct Violations {
    /// How many violations there were.
    pub total: usize,
    /// The first [`MAX_REPORTED`].
    pub items: Vec<ProblemItem>,
}

impl Violations {
    /// The `400` of kind `kind` for `what` (`the request body`, `query parameter \`filter\``).
    pub fn into_error(self, kind: ErrorKind, what: &str) -> GatewayError {
        let listed = if self.total > self.items.len() {
            format!(" (the first {} are listed)", self.items.len())
        } else {
            String::new()
        };
        let detail = match self.total {
            1 => format!("{what} does not match its schema: 1 violation"),
            n => format!("{what} does not match its schema: {n} violations{listed}"),
        };
        GatewayError::schema_violations(kind, detail, self.items)
    }
}

/// Checks the operation's schema-typed parameters (`content` and `deepObject`).
pub(crate) fn check_params(
    contracts: &Contracts,
    params: &'static [SchemaParamSpec],
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<(), GatewayError> {
    for param in params {
        let Some(value) = param_value(param, query, headers)? else {
            if param.required {
                return Err(GatewayError::bad_param_detail(
                    param.location,
                    param.name,
                    "a value matching its schema",
                    format!("{} parameter `{}` is required", param.location.as_str(), param.name),
                ));
            }
            continue;
        };
        if let Err(violations) = contracts.violations(param.schema, &value) {
            let what = format!("{} parameter `{}`", param.location.as_str(), param.name);
            let mut error = violations.into_error(ErrorKind::BadRequestParameters, &what);
            error.parameter = Some(Box::new(crate::error::ProblemParameter {
                name: param.name,
                location: param.location.as_str(),
                expected: "a value matching its schema".into(),
            }));
            return Err(error);
        }
    }
    Ok(())
}

/// The parameter's value as JSON, `None` when the request has none.
fn param_value(
    param: &SchemaParamSpec,
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<Option<serde_json::Value>, GatewayError> {
    let request = RequestView { query, headers };
    let text = match (&param.style, param.location) {
        (SchemaParamStyle::DeepObject(fields), _) => {
            return Ok(query.and_then(|q| form::deep_object(q, param.name, fields)));
        }
        (SchemaParamStyle::Json, ParamIn::Query) => request.query_value(param.name),
        (SchemaParamStyle::Json, ParamIn::Header) => request.header_value(param.name),
        (SchemaParamStyle::Json, ParamIn::Cookie) => crate::params::cookie(headers, param.name).map(Cow::Borrowed),
        (SchemaParamStyle::Json, ParamIn::Path(_)) => None,
    };
    let Some(text) = text else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        GatewayError::bad_param_detail(
            param.location,
            param.name,
            "a JSON document",
            format!(
                "{} parameter `{}` is not JSON: {e}",
                param.location.as_str(),
                param.name
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_schema_is_compiled_with_the_dialect_it_was_made_for() {
        // 2020-12 (an OpenAPI 3.1 document's): `prefixItems`, `const` and `dependentRequired` are assertions.
        let modern = compile_schema(&json!({
            "$schema": DRAFT_2020_12,
            "type": "object",
            "properties": {"kind": {"const": "cat"}, "pair": {"prefixItems": [{"type": "integer"}]}},
            "dependentRequired": {"kind": ["name"]},
        }))
        .expect("compiles");
        assert!(modern.is_valid(&json!({"kind": "cat", "name": "Tom", "pair": [1]})));
        assert!(!modern.is_valid(&json!({"kind": "dog", "name": "Rex"})));
        assert!(!modern.is_valid(&json!({"kind": "cat"})));
        assert!(!modern.is_valid(&json!({"pair": ["one"]})));
        // Draft 4 (a 3.0 document's, no `$schema`): the same keywords mean nothing, and `exclusiveMinimum` is a
        // boolean beside `minimum`.
        let draft4 = compile_schema(&json!({
            "properties": {"kind": {"const": "cat"}, "n": {"minimum": 0, "exclusiveMinimum": true}},
        }))
        .expect("compiles");
        assert!(draft4.is_valid(&json!({"kind": "dog"})));
        assert!(!draft4.is_valid(&json!({"n": 0})));
        compile_schema(
            &json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0, "exclusiveMinimum": true}),
        )
        .expect("Draft 4 said explicitly");
        let e = compile_schema(&json!({"$schema": "http://json-schema.org/draft-07/schema#"})).expect_err("refused");
        assert!(e.contains("draft-07"), "{e}");
    }
}
