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
mod manifest;
mod params;

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
    files.insert(
        String::from("Cargo.toml"),
        format!(
            "{}{}",
            header.replace("//", "#"),
            manifest::manifest(&api.name, description, options)?
        ),
    );
    files.insert(
        String::from("src/main.rs"),
        rust_file("src/main.rs", &header, main_rs(api))?,
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
    files.insert(
        String::from("src/params.rs"),
        rust_file("src/params.rs", &header, params::params_rs(api))?,
    );
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
    files.insert(
        String::from("Cargo.toml"),
        format!(
            "{}{}",
            header.replace("//", "#"),
            manifest::manifest(gateway, description, options)?
        ),
    );
    files.insert(
        String::from("src/main.rs"),
        rust_file("src/main.rs", &header, gateway_main_rs(gateway, apis, &modules))?,
    );
    files.insert(String::from("ACCESS.md"), access::gateway_access_md(gateway, apis));
    for (api, module) in apis.iter().zip(&modules) {
        let own = self::header(std::slice::from_ref(&api.spec_file), "//");
        files.insert(
            format!("src/{module}/api.rs"),
            rust_file("src/<api>/api.rs", &own, api::api_rs(api))?,
        );
        files.insert(
            format!("src/{module}/params.rs"),
            rust_file("src/<api>/params.rs", &own, params::params_rs(api))?,
        );
        if let Some(published) = &api.published {
            // Beside the module's `api.rs`, which reads it with `include_str!`.
            files.insert(format!("src/{module}/openapi.json"), format!("{published}\n"));
        }
    }
    Ok(files)
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
        let ends_item = line == "}"
            || line == "};"
            || (line.starts_with("use ") && line.ends_with(';') && !next.starts_with("use "));
        let ends_docs = line.starts_with("//!") && !next.starts_with("//!");
        let ends_mods =
            line.starts_with("mod ") && line.ends_with(';') && !next.starts_with("mod ") && !next.starts_with("#[");
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

fn main_rs(api: &Api) -> TokenStream {
    let doc = format!(
        " The `{}` gateway: {} {}, generated from `{}`.",
        api.name,
        doc_text(&api.title),
        doc_text(&api.version),
        doc_text(&api.spec_file)
    );
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
        #[rustfmt::skip]
        mod api;
        #[rustfmt::skip]
        mod params;

        #serve
    }
}

fn gateway_main_rs(gateway: &str, apis: &[Api], modules: &[String]) -> TokenStream {
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
        quote! {
            #[doc = #doc]
            #[rustfmt::skip]
            mod #ident {
                #[rustfmt::skip]
                pub mod api;
                #[rustfmt::skip]
                mod params;
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
