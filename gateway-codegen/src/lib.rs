//! gateway-codegen: an OpenAPI 3.0 spec with `x-gateway` extensions → the source of a typed axum gateway crate.
//!
//! The pipeline, one module per step:
//!
//! 1. [`parse`] — text → `openapiv3::OpenAPI`, typed `x-gateway` extensions, operations with `$ref`s resolved;
//! 2. [`validate`] — every generate-time check, all reported together, each at its `file:line:column`;
//! 3. [`lower`] — checked spec → [`model::Api`], a plain IR with no OpenAPI types;
//! 4. [`emit`] — IR → formatted, deterministic Rust files (syn, quote, prettyplease).
//!
//! [`generate`] runs them all and writes nothing: it returns the files, so a caller (the `xtask`, or a build
//! script) decides where they go, and a spec with any error produces no output at all.

pub mod diagnostics;
pub mod emit;
pub mod jq;
pub mod locate;
pub mod lower;
pub mod model;
pub mod names;
pub mod parse;
pub mod published;
pub mod schema;
pub mod template;
pub mod validate;

use std::collections::BTreeMap;

pub use diagnostics::{RenderedDiagnostic, Severity};

/// A spec to generate from.
#[derive(Debug, Clone, Copy)]
pub struct SpecInput<'a> {
    /// The file's path as it should appear in diagnostics and in generated headers (e.g. `specs/petstore.yaml`).
    pub file: &'a str,
    /// The file's text.
    pub text: &'a str,
}

/// Settings that do not come from the spec.
#[derive(Debug, Clone)]
pub struct Options {
    /// Path of `gateway-runtime` relative to the generated crate's directory.
    pub runtime_path: String,
    /// Make the generated crate its own workspace root (when it is generated outside this workspace).
    pub standalone: bool,
    /// Base URL for operations with no target when the spec has no absolute `servers` URL.
    pub default_upstream: Option<String>,
    /// Where files the spec names (`jwks_file`) are read from; `None`: the directory of [`SpecInput::file`].
    pub spec_dir: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime_path: String::from("../../gateway-runtime"),
            standalone: false,
            default_upstream: None,
            spec_dir: None,
        }
    }
}

/// A generated crate.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The gateway's name.
    pub name: String,
    /// The crate's package (and binary) name, `<name>-gateway`.
    pub package: String,
    /// File contents by path relative to the crate's directory.
    pub files: BTreeMap<String, String>,
    /// Warnings: things read differently from how they were written, or ignored.
    pub warnings: Vec<RenderedDiagnostic>,
    /// How many operations the gateway serves.
    pub operations: usize,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The spec has errors; every one found is listed, warnings after errors.
    #[error("{} has {} error(s)", file, count_errors(diagnostics))]
    Spec {
        /// The spec file.
        file: String,
        /// Errors and warnings, rendered with their locations.
        diagnostics: Vec<RenderedDiagnostic>,
    },
    /// A bug in the generator.
    #[error(transparent)]
    Emit(#[from] emit::EmitError),
}

fn count_errors(diagnostics: &[RenderedDiagnostic]) -> usize {
    diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
}

/// Runs the whole pipeline on one spec.
pub fn generate(input: SpecInput<'_>, options: &Options) -> Result<Generated, GenerateError> {
    let mut diags = diagnostics::Diagnostics::default();
    let fail = |diags: &diagnostics::Diagnostics| GenerateError::Spec {
        file: input.file.to_owned(),
        diagnostics: diags.render(input.file, input.text),
    };
    let Some(spec) = parse::parse(input.text, &mut diags) else {
        return Err(fail(&diags));
    };
    let ctx = validate::Context {
        file_stem: file_stem(input.file),
        default_upstream: options.default_upstream.clone(),
        spec_dir: options
            .spec_dir
            .clone()
            .or_else(|| std::path::Path::new(input.file).parent().map(std::path::Path::to_owned)),
    };
    let Some(checked) = validate::validate(&spec, &ctx, &mut diags) else {
        return Err(fail(&diags));
    };
    let mut api = lower::lower(&spec, checked, input.file, &mut diags);
    api.spec_sha256 = sha256_hex(input.text);
    if diags.has_errors() {
        return Err(fail(&diags));
    }
    let files = emit::emit(
        &api,
        &emit::EmitOptions {
            runtime_path: options.runtime_path.clone(),
            standalone: options.standalone,
        },
    )?;
    Ok(Generated {
        package: emit::package_name(&api),
        name: api.name.clone(),
        operations: api.operations.len(),
        files,
        warnings: diags.render(input.file, input.text),
    })
}

/// The SHA-256 of `text`, in lower-case hex.
fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn file_stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
