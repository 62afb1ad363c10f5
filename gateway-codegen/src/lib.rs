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
//!
//! Specs that name the same `x-gateway.gateway` are compiled into one crate ([`generate_gateway`], or
//! [`generate_all`] to group a set of specs): each goes through parse, validate and lower on its own, so its
//! diagnostics point into its own file; then [`validate::group`] checks what they share (the route table, the API
//! names), and emit writes one module per spec and a `main` serving them all, each under its base path.

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
    /// Where files the spec names (`jwks_file`) are read from; `None`: [`Options::spec_dir`], else the directory
    /// of [`SpecInput::file`].
    pub dir: Option<&'a std::path::Path>,
    /// Overlays (OpenAPI Overlay 1.0) applied to the spec, in order, before it is read: `(file, text)` each.
    pub overlays: &'a [(&'a str, &'a str)],
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
    /// Where files the specs name (`jwks_file`) are read from, for inputs without [`SpecInput::dir`]; `None`: the
    /// directory of each [`SpecInput::file`].
    pub spec_dir: Option<std::path::PathBuf>,
    /// The workspace root relative to a generated crate's directory (functions crates' paths are relative to it).
    pub root_path: String,
    /// The directory generated crates are written to, relative to the workspace root.
    pub out_dir: String,
    /// Repair what is wrong but unambiguous instead of refusing it (duplicate `operationId`s get a suffix), with a
    /// warning each.
    pub lenient: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            runtime_path: String::from("../../gateway-runtime"),
            standalone: false,
            default_upstream: None,
            spec_dir: None,
            root_path: String::from("../.."),
            out_dir: String::from("gateways"),
            lenient: false,
        }
    }
}

/// A generated crate.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The gateway's name: `x-gateway.gateway`, or the API's name for a spec compiled alone.
    pub name: String,
    /// The crate's package (and binary) name, `<name>-gateway`.
    pub package: String,
    /// The specs it was generated from, in order.
    pub specs: Vec<String>,
    /// File contents by path relative to the crate's directory.
    pub files: BTreeMap<String, String>,
    /// The first version of each functions crate the gateway calls, by path relative to the workspace root: to be
    /// written only where that crate does not exist yet (it is the user's code from then on).
    pub scaffold: BTreeMap<String, String>,
    /// Warnings: things read differently from how they were written, or ignored (of every spec).
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
    /// Specs of one gateway have errors, their own or between them (a conflict is reported in one of the two
    /// specs, naming the other).
    #[error(
        "gateway `{gateway}`: {} error(s) in {}",
        specs.iter().map(|(_, d)| count_errors(d)).sum::<usize>(),
        specs.iter().filter(|(_, d)| count_errors(d) > 0).map(|(f, _)| f.as_str()).collect::<Vec<_>>().join(", ")
    )]
    Gateway {
        /// The gateway's name.
        gateway: String,
        /// Each spec's errors and warnings, in the gateway's order (specs with nothing to say left out).
        specs: Vec<(String, Vec<RenderedDiagnostic>)>,
    },
    /// [`generate_gateway`] was given no spec.
    #[error("no spec to generate a gateway from")]
    NoSpecs,
    /// A bug in the generator.
    #[error(transparent)]
    Emit(#[from] emit::EmitError),
}

impl GenerateError {
    /// Every diagnostic of the failure, spec by spec.
    pub fn diagnostics(&self) -> Vec<&RenderedDiagnostic> {
        match self {
            GenerateError::Spec { diagnostics, .. } => diagnostics.iter().collect(),
            GenerateError::Gateway { specs, .. } => specs.iter().flat_map(|(_, d)| d).collect(),
            GenerateError::NoSpecs | GenerateError::Emit(_) => Vec::new(),
        }
    }
}

fn count_errors(diagnostics: &[RenderedDiagnostic]) -> usize {
    diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
}

/// Runs the whole pipeline on one spec: its own gateway, or, if it names a `gateway`, that gateway with this spec
/// alone in it.
pub fn generate(input: SpecInput<'_>, options: &Options) -> Result<Generated, GenerateError> {
    generate_gateway(&[input], options)
}

/// Runs the whole pipeline on the specs of one gateway: every spec of `inputs` must name the same
/// `x-gateway.gateway` (a single spec may name none). Nothing is generated if any spec, or anything between
/// them, has an error.
pub fn generate_gateway(inputs: &[SpecInput<'_>], options: &Options) -> Result<Generated, GenerateError> {
    let parsed: Vec<Parsed<'_>> = inputs.iter().map(|input| Parsed::new(*input, options)).collect();
    build(parsed, options, true)
}

/// Generates every gateway `inputs` make: the specs naming the same `x-gateway.gateway` together (in input order),
/// every other spec alone. One result per gateway, in order of each gateway's first spec; a spec that does not
/// even parse is a failure of its own.
pub fn generate_all(inputs: &[SpecInput<'_>], options: &Options) -> Vec<Result<Generated, GenerateError>> {
    let mut groups: Vec<(Option<String>, Vec<Parsed<'_>>)> = Vec::new();
    for input in inputs {
        let parsed = Parsed::new(*input, options);
        let gateway = parsed.spec.as_ref().and_then(|s| s.root.gateway.clone());
        match groups.iter_mut().find(|(g, _)| g.is_some() && *g == gateway) {
            Some((_, members)) => members.push(parsed),
            None => groups.push((gateway, vec![parsed])),
        }
    }
    groups
        .into_iter()
        .map(|(_, members)| build(members, options, false))
        .collect()
}

/// One spec, parsed (or not), with its diagnostics so far.
struct Parsed<'i> {
    input: SpecInput<'i>,
    diags: diagnostics::Diagnostics,
    /// Where the nodes of the document read were written (the spec, or one of its overlays).
    sources: parse::sources::Sources,
    spec: Option<parse::ParsedSpec>,
}

impl<'i> Parsed<'i> {
    fn new(input: SpecInput<'i>, options: &Options) -> Self {
        let mut diags = diagnostics::Diagnostics::default();
        let mut sources = parse::sources::Sources::default();
        let leniency = parse::Leniency {
            duplicate_ids: options.lenient,
        };
        let spec = parse::parse_with(input.text, input.overlays, leniency, &mut sources, &mut diags);
        Self {
            input,
            diags,
            sources,
            spec,
        }
    }

    /// The spec's diagnostics, each where it is written; `others` are the texts of the gateway's specs.
    fn render(&self, others: &[(&str, &str)]) -> Vec<RenderedDiagnostic> {
        let mut files = Vec::with_capacity(1 + self.input.overlays.len());
        files.push((self.input.file, self.input.text));
        files.extend_from_slice(self.input.overlays);
        self.diags.render_sourced(&files, &self.sources, others)
    }

    /// The SHA-256 of what the spec was made from: its text, and its overlays'.
    fn sha256(&self) -> String {
        use sha2::Digest as _;
        let mut digest = sha2::Sha256::new();
        digest.update(self.input.text.as_bytes());
        for (_, text) in self.input.overlays {
            digest.update([0]);
            digest.update(text.as_bytes());
        }
        digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Validates, cross-checks, lowers and emits the specs of one gateway. With `check_names`, the specs are checked to
/// name the same gateway (the grouping of [`generate_all`] makes sure of it).
fn build(mut members: Vec<Parsed<'_>>, options: &Options, check_names: bool) -> Result<Generated, GenerateError> {
    if members.is_empty() {
        return Err(GenerateError::NoSpecs);
    }
    let gateway = members
        .iter()
        .find_map(|m| m.spec.as_ref().and_then(|s| s.root.gateway.clone()));
    let fail = |members: &[Parsed<'_>]| failure(gateway.as_deref(), members);
    if members.iter().any(|m| m.spec.is_none()) {
        return Err(fail(&members));
    }
    if check_names && members.len() > 1 {
        check_same_gateway(&mut members);
    }
    // Every spec's own checks, then the checks between them, then lowering: each only if all before passed.
    let mut diags: Vec<diagnostics::Diagnostics> = members.iter_mut().map(|m| std::mem::take(&mut m.diags)).collect();
    let mut checked = Vec::with_capacity(members.len());
    for (member, diags) in members.iter().zip(diags.iter_mut()) {
        let Some(spec) = &member.spec else { continue };
        let ctx = validate::Context {
            file_stem: file_stem(member.input.file),
            default_upstream: options.default_upstream.clone(),
            spec_dir: member
                .input
                .dir
                .map(std::path::Path::to_owned)
                .or_else(|| options.spec_dir.clone())
                .or_else(|| {
                    std::path::Path::new(member.input.file)
                        .parent()
                        .map(std::path::Path::to_owned)
                }),
        };
        checked.push(validate::validate(spec, &ctx, diags));
    }
    let restore = |members: &mut [Parsed<'_>], diags: Vec<diagnostics::Diagnostics>| {
        for (member, diags) in members.iter_mut().zip(diags) {
            member.diags = diags;
        }
    };
    if diags.iter().any(diagnostics::Diagnostics::has_errors) {
        drop(checked);
        restore(&mut members, diags);
        return Err(fail(&members));
    }
    let checked: Vec<validate::Checked<'_>> = checked.into_iter().flatten().collect();
    if let Some(gateway) = &gateway {
        let group: Vec<validate::group::Member<'_, '_>> = members
            .iter()
            .zip(&checked)
            .map(|(m, checked)| validate::group::Member {
                file: m.input.file,
                checked,
            })
            .collect();
        validate::group::check_group(gateway, &group, &mut diags);
    }
    let mut apis = Vec::with_capacity(members.len());
    if !diags.iter().any(diagnostics::Diagnostics::has_errors) {
        for ((member, checked), diags) in members.iter().zip(checked).zip(diags.iter_mut()) {
            if let Some(spec) = &member.spec {
                let mut api = lower::lower(spec, checked, member.input.file, diags);
                api.spec_sha256 = member.sha256();
                apis.push(api);
            }
        }
    }
    if diags.iter().any(diagnostics::Diagnostics::has_errors) {
        restore(&mut members, diags);
        return Err(fail(&members));
    }
    let emit_options = emit::EmitOptions {
        runtime_path: options.runtime_path.clone(),
        standalone: options.standalone,
        root_path: options.root_path.clone(),
        out_dir: options.out_dir.clone(),
    };
    let (name, package, files, scaffold) = match (&gateway, apis.as_slice()) {
        (None, [api]) => (
            api.name.clone(),
            emit::package_name(&api.name),
            emit::emit(api, &emit_options)?,
            emit::scaffold(&api.name, std::slice::from_ref(api), false, &emit_options)?,
        ),
        (Some(gateway), apis) => (
            gateway.clone(),
            emit::package_name(gateway),
            emit::emit_gateway(gateway, apis, &emit_options)?,
            emit::scaffold(gateway, apis, true, &emit_options)?,
        ),
        // A spec without `gateway` among others: refused by `check_same_gateway`.
        (None, _) => {
            restore(&mut members, diags);
            return Err(fail(&members));
        }
    };
    restore(&mut members, diags);
    let texts: Vec<(&str, &str)> = members.iter().map(|m| (m.input.file, m.input.text)).collect();
    Ok(Generated {
        name,
        package,
        specs: members.iter().map(|m| m.input.file.to_owned()).collect(),
        files,
        scaffold,
        warnings: members.iter().flat_map(|m| m.render(&texts)).collect(),
        operations: apis.iter().map(|api| api.operations.len()).sum(),
    })
}

/// Every spec of one gateway must name it: reported in each spec that names another, or none.
fn check_same_gateway(members: &mut [Parsed<'_>]) {
    let names: Vec<Option<String>> = members
        .iter()
        .map(|m| m.spec.as_ref().and_then(|s| s.root.gateway.clone()))
        .collect();
    let Some((first, name)) = names.iter().enumerate().find_map(|(i, n)| n.as_ref().map(|n| (i, n))) else {
        // No spec names a gateway: each would be a gateway of its own.
        for member in members.iter_mut() {
            member.diags.push(
                diagnostics::Diagnostic::error("/x-gateway", "specs compiled together must name their gateway")
                    .help("add `gateway: NAME` to the `x-gateway` of every spec of the gateway"),
            );
        }
        return;
    };
    let first_file = members[first].input.file.to_owned();
    for (member, own) in members.iter_mut().zip(&names) {
        if own.as_ref() == Some(name) {
            continue;
        }
        let message = match own {
            Some(own) => format!("this spec is for gateway `{own}`, the others given with it for `{name}`"),
            None => format!("this spec names no gateway, the others given with it are for `{name}`"),
        };
        member.diags.push(
            diagnostics::Diagnostic::error(
                if own.is_some() {
                    "/x-gateway/gateway"
                } else {
                    "/x-gateway"
                },
                message,
            )
            .related_in(first_file.clone(), "/x-gateway/gateway", format!("gateway `{name}`"))
            .help(format!(
                "set `gateway: {name}` in its `x-gateway`, or generate it on its own"
            )),
        );
    }
}

/// The failure of the specs of one gateway (the one spec's failure when it is alone).
fn failure(gateway: Option<&str>, members: &[Parsed<'_>]) -> GenerateError {
    let texts: Vec<(&str, &str)> = members.iter().map(|m| (m.input.file, m.input.text)).collect();
    let rendered = |m: &Parsed<'_>| m.render(&texts);
    match members {
        [member] => GenerateError::Spec {
            file: member.input.file.to_owned(),
            diagnostics: rendered(member),
        },
        _ => GenerateError::Gateway {
            gateway: gateway.unwrap_or_default().to_owned(),
            specs: members
                .iter()
                .map(|m| (m.input.file.to_owned(), rendered(m)))
                .filter(|(_, d)| !d.is_empty())
                .collect(),
        },
    }
}

fn file_stem(file: &str) -> String {
    std::path::Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
