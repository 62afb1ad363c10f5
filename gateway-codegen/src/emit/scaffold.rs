//! The functions crate's first version: one stub per function, answering `501 Not Implemented` until it is
//! written. `cargo xtask generate` writes it only when the crate's directory does not exist, and never again: from
//! then on it is the user's code.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::types::functions;
use super::{EmitError, manifest, rust_file};
use crate::model::{Api, FunctionsCrate, Operation};

/// The functions crate of `api`, by path relative to the workspace root; `types` is the types crate's (package,
/// path relative to the workspace root, and the path of the API's types in it: `petstore_types` or
/// `public_types::pets_v1`).
pub(super) fn scaffold(
    api: &Api,
    functions_crate: &FunctionsCrate,
    types_package: &str,
    types_dir: &str,
    types_path: &str,
    workspace_root: Option<&str>,
) -> Result<BTreeMap<String, String>, EmitError> {
    let dir = &functions_crate.path;
    let depth = dir.split('/').filter(|s| !s.is_empty() && *s != ".").count();
    let up = "../".repeat(depth);
    let mut files = BTreeMap::new();
    let description = format!(
        "The functions of API `{}` ({}), called by its gateway",
        api.name, api.spec_file
    );
    files.insert(
        format!("{dir}/Cargo.toml"),
        manifest::library_manifest(
            &functions_crate.package,
            description,
            &[(types_package.to_owned(), format!("{up}{types_dir}"))],
            workspace_root.map(|root| format!("{up}{root}")).as_deref(),
        )?,
    );
    // Modules (by path) and the functions each holds.
    let mut modules: BTreeMap<Vec<String>, Vec<(&Operation, &str)>> = BTreeMap::new();
    modules.insert(Vec::new(), Vec::new());
    for (op, f) in functions(api) {
        let mut segments: Vec<String> = f.path.split("::").map(str::to_owned).collect();
        segments.pop();
        for i in 0..segments.len() {
            modules.entry(segments[..i].to_vec()).or_default();
        }
        let leaf = f.path.rsplit("::").next().unwrap_or_default();
        modules.entry(segments).or_default().push((op, leaf));
    }
    let types: Vec<proc_macro2::Ident> = types_path.split("::").map(|s| format_ident!("{}", s)).collect();
    for (module, stubs) in &modules {
        let children: Vec<proc_macro2::Ident> = modules
            .keys()
            .filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
            .filter_map(|k| k.last())
            .map(|name| format_ident!("{}", name))
            .collect();
        let file = if module.is_empty() {
            String::from("src/lib.rs")
        } else {
            format!("src/{}.rs", module.join("/"))
        };
        let tokens = module_file(api, module, &children, stubs, &types);
        let header = if module.is_empty() {
            format!(
                "// Made once by `cargo xtask generate` from `{}`; yours to edit: it is never overwritten.\n\
                 // What each function takes and returns is in `{types_path}` (the types crate, regenerated with the spec).\n\n",
                api.spec_file
            )
        } else {
            String::new()
        };
        files.insert(format!("{dir}/{file}"), rust_file("functions crate", &header, tokens)?);
    }
    Ok(files)
}

fn module_file(
    api: &Api,
    module: &[String],
    children: &[proc_macro2::Ident],
    stubs: &[(&Operation, &str)],
    types: &[proc_macro2::Ident],
) -> TokenStream {
    let doc = if module.is_empty() {
        format!(" The functions of the `{}` API's function targets.", api.name)
    } else {
        format!(" Functions `{}::…`.", module.join("::"))
    };
    let mut names: Vec<proc_macro2::Ident> = vec![format_ident!("FunctionContext")];
    if !stubs.is_empty() {
        names.push(format_ident!("GatewayError"));
    }
    let functions: Vec<TokenStream> = stubs
        .iter()
        .filter_map(|(op, leaf)| {
            let crate::model::Target::Function(f) = &op.target else {
                return None;
            };
            let request = format_ident!("{}", f.request);
            let response = format_ident!("{}", f.response);
            names.push(request.clone());
            names.push(response.clone());
            let name = format_ident!("{}", leaf);
            let path = &f.path;
            let mut doc = format!(
                "`{} {}` (`{}`).",
                op.method,
                super::doc_text(&op.template),
                super::doc_text(&op.id)
            );
            if let Some(summary) = &op.summary {
                doc.push_str(&format!(" {}", super::doc_text(summary)));
            }
            doc.push_str(
                "\n\nSTUB made by `cargo xtask generate`: it answers `501 Not Implemented` until you write it.",
            );
            let doc = super::doc_lines(&doc);
            Some(quote! {
                #doc
                pub async fn #name(req: #request, ctx: &FunctionContext<'_>) -> #response {
                    let _ = (req, ctx);
                    GatewayError::not_implemented(#path).into()
                }
            })
        })
        .collect();
    let mods = children.iter().map(|child| quote!(pub mod #child;));
    let uses = (!functions.is_empty()).then(|| quote!(use ::#(#types)::*::{#(#names),*};));
    quote! {
        #![doc = #doc]

        #(#mods)*

        #uses

        #(#functions)*
    }
}
