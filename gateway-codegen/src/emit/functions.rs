//! `src/functions.rs` of a gateway with function targets: one glue function per operation, which parses the typed
//! request, calls the user's function and renders its typed answer. A function whose signature does not match the
//! spec fails `cargo build` here, with rustc's error naming the function and the type it expected.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::types::functions;
use crate::model::Api;

/// `types` is the path of the API's types (`::petstore_types`), `crate_ident` the functions crate's (`petstore_functions`).
pub(super) fn functions_rs(api: &Api, types: &TokenStream, crate_ident: &str) -> TokenStream {
    let krate = format_ident!("{}", crate_ident);
    let glue = functions(api).map(|(op, f)| {
        let glue = format_ident!("{}", f.glue);
        let request = format_ident!("{}", f.request);
        let response = format_ident!("{}", f.response);
        let path: Vec<proc_macro2::Ident> = f.path.split("::").map(|s| format_ident!("{}", s)).collect();
        let doc = format!(
            " `{} {}` (`{}`) → `{}::{}`.",
            op.method,
            super::doc_text(&op.template),
            super::doc_text(&op.id),
            crate_ident,
            f.path
        );
        quote! {
            #[doc = #doc]
            pub fn #glue(call: FunctionCall<'_>) -> BoxFuture<'_, Result<Response, GatewayError>> {
                ::std::boxed::Box::pin(async move {
                    let request = #types::#request::from_call(&call)?;
                    let response: #types::#response = ::#krate::#(#path)::*(request, call.context()).await.into();
                    response.into_response()
                })
            }
        }
    });
    quote! {
        //! The glue between each function operation and its function: typed request in, typed response out.

        // A function may return its response enum itself, or anything that is `Into` it (a `Result` with a
        // `GatewayError`, a `GatewayError`): the conversion is there for the latter.
        #![allow(clippy::useless_conversion)]

        use ::gateway_runtime::error::GatewayError;
        use ::gateway_runtime::functions::{BoxFuture, FunctionCall, FunctionRequest as _, FunctionResponse as _, Response};

        #(#glue)*
    }
}
