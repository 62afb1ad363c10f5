//! Step 4 of the pipeline: model → the files of a gateway crate, formatted and deterministic.
//!
//! Each Rust file is built as a token stream (fully qualified paths, so nothing in the spec can shadow what the
//! code refers to), parsed back by syn and printed by prettyplease. Every file starts with a do-not-edit header
//! naming the spec. Emit reads only the model, never the spec.
//!
//! A gateway of several specs ([`emit_gateway`]) is the same files per spec, each spec's in a module of its own
//! (`src/<api>/api.rs`, `src/<api>/params.rs`, headed by their spec), with one `Cargo.toml`, `ACCESS.md` and
//! `src/main.rs` (headed by every spec) that serves them all.

mod access;
mod api;
mod functions;
mod manifest;
mod params;
mod scaffold;
mod types;

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::quote;

use crate::model::Api;

/// How the generated crate finds its runtime.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// `path` of the `gateway-runtime` dependency, relative to the crate's directory.
    pub runtime_path: String,
    /// Declare the crate its own workspace root (for crates generated outside the project's workspace).
    pub standalone: bool,
    /// The workspace root, relative to the crate's directory (`../..`): functions crates' paths are relative to it.
    pub root_path: String,
    /// The directory gateway crates are written to, relative to the workspace root (`gateways`).
    pub out_dir: String,
}

/// The types crate of a gateway with function targets: `<gateway>/types`, package `<gateway>-types`.
struct TypesCrate {
    package: String,
    ident: String,
}

impl TypesCrate {
    fn of(gateway: &str) -> Self {
        let package = format!("{gateway}-types");
        Self {
            ident: package.replace('-', "_"),
            package,
        }
    }
}

/// The functions crates' first versions, by path relative to the workspace root: one per API with function targets
/// (`apis` is the gateway's, in order; `gateway` its name; `modules`: whether the gateway was emitted by
/// [`emit_gateway`], one module per API). Written only where the crate does not exist yet.
pub fn scaffold(
    gateway: &str,
    apis: &[Api],
    modules_per_api: bool,
    options: &EmitOptions,
) -> Result<BTreeMap<String, String>, EmitError> {
    let types = TypesCrate::of(gateway);
    let modules = module_names(apis);
    let mut files = BTreeMap::new();
    for (api, module) in apis.iter().zip(&modules) {
        let Some(functions) = &api.functions else { continue };
        let path = if !modules_per_api {
            types.ident.clone()
        } else {
            format!("{}::{module}", types.ident)
        };
        let out = options.out_dir.trim_end_matches('/');
        let dir = format!("{out}/{gateway}/types");
        // A gateway generated outside a workspace is its own root, which its functions crate names.
        let root = options.standalone.then(|| format!("{out}/{gateway}"));
        files.extend(scaffold::scaffold(
            api,
            functions,
            &types.package,
            &dir,
            &path,
            root.as_deref(),
        )?);
    }
    Ok(files)
}

/// The dependency on the functions crate of `api`, from a gateway crate.
fn functions_dependency(api: &Api, options: &EmitOptions) -> Option<(String, String)> {
    let functions = api.functions.as_ref()?;
    Some((
        functions.package.clone(),
        format!("{}/{}", options.root_path.trim_end_matches('/'), functions.path),
    ))
}

/// The types crate's `Cargo.toml`.
fn types_manifest(types: &TypesCrate, gateway: &str, options: &EmitOptions, header: &str) -> Result<String, EmitError> {
    let runtime = if std::path::Path::new(&options.runtime_path).is_absolute() {
        options.runtime_path.clone()
    } else {
        format!("../{}", options.runtime_path)
    };
    Ok(format!(
        "{}{}",
        header.replace("//", "#"),
        manifest::library_manifest(
            &types.package,
            format!("The typed requests and responses of the `{gateway}` gateway's function targets"),
            &[(String::from("gateway-runtime"), runtime)],
            None,
        )?
    ))
}

/// A generated file could not be formatted: a bug in the generator, never a problem with the spec.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The tokens for a file did not parse as Rust.
    #[error("internal error: generated `{file}` is not valid Rust ({source}); please report this with the spec")]
    Tokens {
        /// The file.
        file: &'static str,
        /// What syn said.
        source: syn::Error,
    },
    /// The manifest could not be serialized.
    #[error("internal error: could not write Cargo.toml: {0}")]
    Manifest(#[from] toml::ser::Error),
}

/// The package name of gateway `name`.
pub fn package_name(name: &str) -> String {
    format!("{name}-gateway")
}

/// Renders every file of the crate, keyed by path relative to the crate's directory.
pub fn emit(api: &Api, options: &EmitOptions) -> Result<BTreeMap<String, String>, EmitError> {
    let header = header(std::slice::from_ref(&api.spec_file), "//");
    let mut files = BTreeMap::new();
    let description = format!(
        "API gateway for {} {}, generated from {}",
        api.title, api.version, api.spec_file
    );
    let types = api.functions.as_ref().map(|_| TypesCrate::of(&api.name));
    let mut crates = Vec::new();
    if let Some(types) = &types {
        crates.push((types.package.clone(), String::from("types")));
        crates.extend(functions_dependency(api, options));
    }
    files.insert(
        String::from("Cargo.toml"),
        format!(
            "{}{}",
            header.replace("//", "#"),
            manifest::manifest(&api.name, description, options, &crates)?
        ),
    );
    files.insert(
        String::from("src/main.rs"),
        rust_file("src/main.rs", &header, main_rs(api, types.as_ref()))?,
    );
    files.insert(
        String::from("src/api.rs"),
        rust_file("src/api.rs", &header, api::api_rs(api))?,
    );
    files.insert(String::from("ACCESS.md"), access::access_md(api));
    if let Some(published) = &api.published {
        // Data, not code: no header (it would not be JSON), read by `include_str!` from `src/api.rs`.
        files.insert(String::from("src/openapi.json"), format!("{published}\n"));
    }
    match (&types, &api.functions) {
        (Some(types), Some(functions)) => {
            let ident = quote::format_ident!("{}", types.ident);
            files.insert(
                String::from("types/Cargo.toml"),
                types_manifest(types, &api.name, options, &header)?,
            );
            let doc = format!(
                "The typed requests and responses of the `{}` gateway's function targets, and the types of the schemas they use.",
                api.name
            );
            let at = FunctionFiles {
                types_root: String::from("types/src/lib.rs"),
                types_dir: String::from("types/src"),
                glue: String::from("src/functions.rs"),
                types_path: quote!(::#ident),
            };
            function_files(api, functions, &at, &doc, &header, &mut files)?;
        }
        _ => {
            files.insert(
                String::from("src/params.rs"),
                rust_file("src/params.rs", &header, params::params_rs(api))?,
            );
        }
    }
    Ok(files)
}

/// Renders every file of the crate of gateway `gateway`, which serves `apis` (in this order, names distinct).
pub fn emit_gateway(gateway: &str, apis: &[Api], options: &EmitOptions) -> Result<BTreeMap<String, String>, EmitError> {
    let specs: Vec<String> = apis.iter().map(|api| api.spec_file.clone()).collect();
    let header = header(&specs, "//");
    let modules = module_names(apis);
    let mut files = BTreeMap::new();
    let described: Vec<String> = apis
        .iter()
        .map(|api| format!("{} {} ({})", api.title, api.version, api.spec_file))
        .collect();
    let description = format!("API gateway `{gateway}` for {}", described.join(", "));
    let typed = apis.iter().any(|api| api.functions.is_some());
    let types = typed.then(|| TypesCrate::of(gateway));
    let mut crates = Vec::new();
    if let Some(types) = &types {
        crates.push((types.package.clone(), String::from("types")));
        crates.extend(apis.iter().filter_map(|api| functions_dependency(api, options)));
    }
    files.insert(
        String::from("Cargo.toml"),
        format!(
            "{}{}",
            header.replace("//", "#"),
            manifest::manifest(gateway, description, options, &crates)?
        ),
    );
    files.insert(
        String::from("src/main.rs"),
        rust_file(
            "src/main.rs",
            &header,
            gateway_main_rs(gateway, apis, &modules, types.as_ref()),
        )?,
    );
    files.insert(String::from("ACCESS.md"), access::gateway_access_md(gateway, apis));
    let mut typed_modules = Vec::new();
    for (api, module) in apis.iter().zip(&modules) {
        let own = self::header(std::slice::from_ref(&api.spec_file), "//");
        files.insert(
            format!("src/{module}/api.rs"),
            rust_file("src/<api>/api.rs", &own, api::api_rs(api))?,
        );
        match (&types, &api.functions) {
            (Some(types), Some(functions)) => {
                let ident = quote::format_ident!("{}", types.ident);
                let module_ident = quote::format_ident!("{}", module);
                let doc = format!(
                    "The typed requests and responses of API `{}`'s function targets, and the types of the schemas they use.",
                    api.name
                );
                let at = FunctionFiles {
                    types_root: format!("types/src/{module}.rs"),
                    types_dir: format!("types/src/{module}"),
                    glue: format!("src/{module}/functions.rs"),
                    types_path: quote!(::#ident::#module_ident),
                };
                function_files(api, functions, &at, &doc, &own, &mut files)?;
                typed_modules.push((api, module));
            }
            _ => {
                files.insert(
                    format!("src/{module}/params.rs"),
                    rust_file("src/<api>/params.rs", &own, params::params_rs(api))?,
                );
            }
        }
        if let Some(published) = &api.published {
            // Beside the module's `api.rs`, which reads it with `include_str!`.
            files.insert(format!("src/{module}/openapi.json"), format!("{published}\n"));
        }
    }
    if let Some(types) = &types {
        files.insert(
            String::from("types/Cargo.toml"),
            types_manifest(types, gateway, options, &header)?,
        );
        let mods = typed_modules.iter().map(|(api, module)| {
            let module = quote::format_ident!("{}", module);
            let doc = format!(" API `{}` ({}).", api.name, doc_text(&api.spec_file));
            quote! {
                #[doc = #doc]
                #[rustfmt::skip]
                pub mod #module;
            }
        });
        let doc = format!(
            " The typed requests and responses of the `{gateway}` gateway's function targets, one module per API."
        );
        files.insert(
            String::from("types/src/lib.rs"),
            rust_file(
                "types/src/lib.rs",
                &header,
                quote! {
                    #![doc = #doc]

                    #(#mods)*
                },
            )?,
        );
    }
    Ok(files)
}

/// Where the files of one API with function targets go: its types' root module (with `operations.rs`, `params.rs` and
/// `schemas.rs` in `types_dir`), the gateway's glue, and the path the glue names the types by.
struct FunctionFiles {
    types_root: String,
    types_dir: String,
    glue: String,
    types_path: TokenStream,
}

/// The types of `api`'s function operations and the glue that calls `functions`, where `at` says, headed by `header`.
fn function_files(
    api: &Api,
    functions: &crate::model::FunctionsCrate,
    at: &FunctionFiles,
    doc: &str,
    header: &str,
    files: &mut BTreeMap<String, String>,
) -> Result<(), EmitError> {
    let dir = &at.types_dir;
    files.insert(
        at.types_root.clone(),
        rust_file("types/src/[<api>.rs|lib.rs]", header, types::api_types_rs(api, doc))?,
    );
    files.insert(
        format!("{dir}/operations.rs"),
        rust_file("types/src/[<api>/]operations.rs", header, types::operations_rs(api))?,
    );
    files.insert(
        format!("{dir}/params.rs"),
        rust_file("types/src/[<api>/]params.rs", header, params::params_rs(api))?,
    );
    if !api.types.is_empty() {
        files.insert(
            format!("{dir}/schemas.rs"),
            rust_file("types/src/[<api>/]schemas.rs", header, types::schemas_rs(api))?,
        );
    }
    let krate = functions.package.replace('-', "_");
    files.insert(
        at.glue.clone(),
        rust_file(
            "src/[<api>/]functions.rs",
            header,
            functions::functions_rs(api, &at.types_path, &krate),
        )?,
    );
    Ok(())
}

/// One module name per API, from its name (`pets-v1` → `pets_v1`), distinct.
fn module_names(apis: &[Api]) -> Vec<String> {
    let mut scope = crate::names::Scope::default();
    apis.iter()
        .map(|api| scope.claim(crate::names::field(&api.name), "_"))
        .collect()
}

/// The do-not-edit header naming the spec(s) a file comes from.
fn header(specs: &[String], comment: &str) -> String {
    let named: Vec<String> = specs.iter().map(|s| format!("`{}`", doc_text(s))).collect();
    let (the_spec, names) = match specs {
        [_] => ("the spec", named.join("")),
        _ => ("the specs", named.join(", ")),
    };
    format!(
        "{comment} @generated by gateway-codegen from {names}. Do not edit:\n{comment} change {the_spec} and run `cargo xtask generate`.\n\n"
    )
}

fn rust_file(file: &'static str, header: &str, tokens: TokenStream) -> Result<String, EmitError> {
    let parsed = syn::parse2::<syn::File>(tokens).map_err(|source| EmitError::Tokens { file, source })?;
    Ok(format!("{header}{}", space_items(&prettyplease::unparse(&parsed))))
}

/// prettyplease prints items back to back; a blank line after each top-level item (and the module docs and
/// imports) makes the files readable.
fn space_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + code.len() / 16);
    let mut lines = code.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(next) = lines.peek() else { break };
        let is_use = |l: &str| l.starts_with("use ") || l.starts_with("pub use ");
        let one_line_item = (line.starts_with("const ") || line.starts_with("static ")) && line.ends_with(';');
        let ends_item = line == "}"
            || line == "};"
            || line == "];"
            || one_line_item
            || (is_use(line) && line.ends_with(';') && !is_use(next));
        let ends_docs = line.starts_with("//!") && !next.starts_with("//!");
        let is_mod = |l: &str| l.starts_with("mod ") || l.starts_with("pub mod ");
        let ends_mods = is_mod(line) && line.ends_with(';') && !is_mod(next) && !next.starts_with("#[");
        let ends_attrs = line.starts_with("#![") && !next.starts_with("#![");
        if (ends_item || ends_docs || ends_attrs || ends_mods) && !next.is_empty() {
            out.push('\n');
        }
    }
    out
}

/// Text for a doc comment: prettyplease writes `#[doc]` strings as `///` comments verbatim, where a line break ends
/// the comment, a carriage return is a syntax error and a bidirectional-override character is refused by a
/// deny-by-default lint (`text_direction_codepoint_in_comment`); such characters from the spec are written as
/// escapes.
pub(crate) fn doc_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// The characters rustc's `text_direction_codepoint_in_comment` and `…_in_literal` lints refuse.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// One `#[doc]` attribute per line, so prettyplease prints `///` lines rather than a block comment.
pub(crate) fn doc_lines(text: &str) -> proc_macro2::TokenStream {
    let lines = text
        .lines()
        .map(|l| if l.is_empty() { String::new() } else { format!(" {l}") });
    quote! { #(#[doc = #lines])* }
}

fn main_rs(api: &Api, types: Option<&TypesCrate>) -> TokenStream {
    let doc = format!(
        " The `{}` gateway: {} {}, generated from `{}`.",
        api.name,
        doc_text(&api.title),
        doc_text(&api.version),
        doc_text(&api.spec_file)
    );
    // With function targets, the parameter structs are in the types crate, which the functions crate shares.
    let modules = match types {
        Some(types) => {
            let ident = quote::format_ident!("{}", types.ident);
            quote! {
                #[rustfmt::skip]
                mod functions;

                use ::#ident::params;
            }
        }
        None => quote! {
            #[rustfmt::skip]
            mod params;
        },
    };
    // A base path makes the API a gateway of one mounted API; without one, the API is the gateway.
    let serve = if api.base_path.is_empty() {
        quote! {
            fn main() -> ::std::process::ExitCode {
                ::gateway_runtime::cli::run(&api::API)
            }
        }
    } else {
        let name = &api.name;
        let base_path = &api.base_path;
        let doc = format!(" The API, served under `{}`.", doc_text(&api.base_path));
        quote! {
            #[doc = #doc]
            static GATEWAY: ::gateway_runtime::spec::GatewaySpec = ::gateway_runtime::spec::GatewaySpec {
                name: #name,
                apis: &[::gateway_runtime::spec::ApiMount { base_path: #base_path, api: &api::API }],
            };

            fn main() -> ::std::process::ExitCode {
                ::gateway_runtime::cli::run_gateway(&GATEWAY)
            }
        }
    };
    quote! {
        #![doc = #doc]

        // Generated modules are formatted by the generator (prettyplease); `cargo fmt` must not reformat them, or
        // they would no longer match what `cargo xtask generate --check` expects.
        ::gateway_runtime::global_allocator!();

        #[rustfmt::skip]
        mod api;
        #modules

        #serve
    }
}

fn gateway_main_rs(gateway: &str, apis: &[Api], modules: &[String], types: Option<&TypesCrate>) -> TokenStream {
    let served: Vec<String> = apis
        .iter()
        .map(|api| {
            let under = if api.base_path.is_empty() {
                String::from("at the root")
            } else {
                format!("under `{}`", doc_text(&api.base_path))
            };
            format!(
                " - `{}`: {} {}, {under}, generated from `{}`.",
                api.name,
                doc_text(&api.title),
                doc_text(&api.version),
                doc_text(&api.spec_file)
            )
        })
        .collect();
    let doc = format!(" The `{gateway}` gateway, serving {} APIs:", apis.len());
    let mods = apis.iter().zip(modules).map(|(api, module)| {
        let ident = quote::format_ident!("{}", module);
        let doc = format!(" The API of `{}`.", doc_text(&api.spec_file));
        let inner = match (types, &api.functions) {
            (Some(types), Some(_)) => {
                let types = quote::format_ident!("{}", types.ident);
                quote! {
                    #[rustfmt::skip]
                    mod functions;

                    use ::#types::#ident::params;
                }
            }
            _ => quote! {
                #[rustfmt::skip]
                mod params;
            },
        };
        quote! {
            #[doc = #doc]
            #[rustfmt::skip]
            mod #ident {
                #[rustfmt::skip]
                pub mod api;
                #inner
            }
        }
    });
    let mounts = apis.iter().zip(modules).map(|(api, module)| {
        let ident = quote::format_ident!("{}", module);
        let base_path = &api.base_path;
        quote! {
            ::gateway_runtime::spec::ApiMount { base_path: #base_path, api: &#ident::api::API }
        }
    });
    quote! {
        #![doc = #doc]
        #![doc = ""]
        #(#![doc = #served])*

        // Generated modules are formatted by the generator (prettyplease); `cargo fmt` must not reformat them, or
        // they would no longer match what `cargo xtask generate --check` expects.
        ::gateway_runtime::global_allocator!();

        #(#mods)*

        /// Every API of the gateway, each under its base path.
        static GATEWAY: ::gateway_runtime::spec::GatewaySpec = ::gateway_runtime::spec::GatewaySpec {
            name: #gateway,
            apis: &[#(#mounts),*],
        };

        fn main() -> ::std::process::ExitCode {
            ::gateway_runtime::cli::run_gateway(&GATEWAY)
        }
    }
}
