//! The types crate (`gateways/<gateway>/types/`): what the gateway and the user's functions crate share — the typed
//! request and response of every function operation, the types of the schemas they use, and the parameter structs.
//!
//! Only gateways with function targets have one. Its dependencies are the runtime alone (serde is the runtime's,
//! named through it).

use proc_macro2::{Literal as Lit, TokenStream};
use quote::{ToTokens, quote};

use super::params::ident;
use crate::model::{Api, Function, Operation, Payload, RustType, Target, TypeDef, TypeDefKind, VariantStatus};

/// `serde` derives, through the runtime's re-export so that the types crate needs no dependency of its own.
fn serde_derive(extra: TokenStream) -> TokenStream {
    quote! {
        #[derive(#extra ::gateway_runtime::serde::Serialize, ::gateway_runtime::serde::Deserialize)]
        #[serde(crate = "::gateway_runtime::serde")]
    }
}

/// The tokens of `ty`; named types are in `schemas` (`prefix` is how the code at hand reaches that module).
pub(super) fn rust_type(ty: &RustType, prefix: &TokenStream) -> TokenStream {
    match ty {
        RustType::Bool => quote!(bool),
        RustType::I32 => quote!(i32),
        RustType::I64 => quote!(i64),
        RustType::F32 => quote!(f32),
        RustType::F64 => quote!(f64),
        RustType::String => quote!(::std::string::String),
        RustType::Value => quote!(::gateway_runtime::serde_json::Value),
        RustType::Named(name) => {
            let name = ident(name);
            quote!(#prefix #name)
        }
        RustType::Vec(inner) => {
            let inner = rust_type(inner, prefix);
            quote!(::std::vec::Vec<#inner>)
        }
        RustType::Map(inner) => {
            let inner = rust_type(inner, prefix);
            quote!(::std::collections::BTreeMap<::std::string::String, #inner>)
        }
        RustType::Option(inner) => {
            let inner = rust_type(inner, prefix);
            quote!(::core::option::Option<#inner>)
        }
        RustType::Boxed(inner) => {
            let inner = rust_type(inner, prefix);
            quote!(::std::boxed::Box<#inner>)
        }
    }
}

/// `src/schemas.rs`: one type per schema the functions use.
pub(super) fn schemas_rs(api: &Api) -> TokenStream {
    let defs = api.types.iter().map(type_def);
    quote! {
        //! Types of the schemas that function operations take and return: each component schema once.

        #(#defs)*
    }
}

fn doc_of(def: &TypeDef) -> TokenStream {
    let mut doc = match &def.doc {
        Some(d) => format!("{}\n\n", super::doc_text(d)),
        None => String::new(),
    };
    doc.push_str(&format!("From `{}`.", super::doc_text(&def.origin)));
    super::doc_lines(&doc)
}

fn type_def(def: &TypeDef) -> TokenStream {
    let name = ident(&def.name);
    let doc = doc_of(def);
    let here = quote!();
    match &def.kind {
        TypeDefKind::Struct(fields) => {
            let fields = fields.iter().map(|f| {
                let field = ident(&f.name);
                let ty = rust_type(&f.ty, &here);
                let wire = &f.wire;
                let rename = (f.name != f.wire).then(|| quote!(#[serde(rename = #wire)]));
                let optional = (!f.required && matches!(f.ty, RustType::Option(_)))
                    .then(|| quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")]));
                let doc = match &f.doc {
                    Some(d) => format!(" `{}`: {}", super::doc_text(wire), super::doc_text(d)),
                    None => format!(" `{}`.", super::doc_text(wire)),
                };
                quote! {
                    #[doc = #doc]
                    #rename
                    #optional
                    pub #field: #ty
                }
            });
            let derive = serde_derive(quote!(Debug, Clone, PartialEq,));
            quote! {
                #doc
                #derive
                pub struct #name {
                    #(#fields,)*
                }
            }
        }
        TypeDefKind::Enum(variants) => {
            let idents: Vec<TokenStream> = variants.iter().map(|(v, _)| ident(v)).collect();
            let wires: Vec<&String> = variants.iter().map(|(_, w)| w).collect();
            let docs = wires.iter().map(|w| format!(" `{}`", super::doc_text(w)));
            let derive = serde_derive(quote!(Debug, Clone, Copy, PartialEq, Eq, Hash,));
            quote! {
                #doc
                #derive
                pub enum #name {
                    #(#[doc = #docs] #[serde(rename = #wires)] #idents,)*
                }

                impl #name {
                    /// The value as written on the wire.
                    pub const fn as_str(self) -> &'static str {
                        match self {
                            #(Self::#idents => #wires,)*
                        }
                    }
                }
            }
        }
        TypeDefKind::Untagged(variants) => {
            let variants = variants.iter().map(|(v, ty)| {
                let v = ident(v);
                let ty = rust_type(ty, &here);
                quote!(#v(#ty))
            });
            let derive = serde_derive(quote!(Debug, Clone, PartialEq,));
            quote! {
                #doc
                #derive
                #[serde(untagged)]
                pub enum #name {
                    #(#variants,)*
                }
            }
        }
        TypeDefKind::Alias(ty) => {
            let ty = rust_type(ty, &here);
            quote! {
                #doc
                pub type #name = #ty;
            }
        }
    }
}

/// The functions of `api`, with their operations.
pub(super) fn functions(api: &Api) -> impl Iterator<Item = (&Operation, &Function)> {
    api.operations.iter().filter_map(|op| match &op.target {
        Target::Function(f) => Some((op, &**f)),
        _ => None,
    })
}

/// The root of an API's types: the re-exports, the modules, and each function's request and response.
/// The root of an API's types (the types crate's `lib.rs`, or its module of the API): docs, re-exports and modules.
/// Kept to items rustfmt leaves as they are, since `cargo fmt` formats a crate root (the modules it declares are
/// `#[rustfmt::skip]`).
pub(super) fn api_types_rs(api: &Api, crate_doc: &str) -> TokenStream {
    let signatures: Vec<String> = functions(api)
        .map(|(op, f)| {
            format!(
                " - `{} {}` (`{}`): `pub async fn {}(req: {}, ctx: &FunctionContext<'_>) -> {}`",
                op.method,
                super::doc_text(&op.template),
                super::doc_text(&op.id),
                f.path,
                f.request,
                f.response
            )
        })
        .collect();
    let doc: Vec<String> = crate_doc
        .lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!(" {}", super::doc_text(l))
            }
        })
        .collect();
    let schemas_mod = (!api.types.is_empty()).then(|| {
        quote! {
            #[rustfmt::skip]
            pub mod schemas;
        }
    });
    quote! {
        #(#![doc = #doc])*
        //!
        //! The functions the gateway calls, and what each takes and returns (a function may also return
        //! `Result<Response, GatewayError>` or a `GatewayError`: anything that is `Into` its response):
        //!
        #(#![doc = #signatures])*

        pub use ::gateway_runtime::error::{ErrorKind, GatewayError};
        pub use ::gateway_runtime::functions::{FunctionContext, UpstreamCaller};
        pub use ::gateway_runtime::store::{Condition, Item, ListQuery, Page, Store, StoreError};

        #[rustfmt::skip]
        mod operations;
        #[rustfmt::skip]
        pub mod params;
        #schemas_mod

        pub use operations::*;
    }
}

/// `operations.rs`: each function operation's request and response.
pub(super) fn operations_rs(api: &Api) -> TokenStream {
    let schemas = quote!(schemas::);
    let items = functions(api).map(|(op, f)| function_types(op, f, &schemas));
    let uses = if api.types.is_empty() {
        quote!(
            use super::{GatewayError, params};
        )
    } else {
        quote!(
            use super::{GatewayError, params, schemas};
        )
    };
    quote! {
        //! Each function operation's typed request and response.

        #uses

        #(#items)*
    }
}

fn function_types(op: &Operation, f: &Function, schemas: &TokenStream) -> TokenStream {
    let request = ident(&f.request);
    let response = ident(&f.response);
    let summary = op
        .summary
        .as_ref()
        .map(|s| format!("\n\n{}", super::doc_text(s)))
        .unwrap_or_default();
    let request_doc = super::doc_lines(&format!(
        "The request of `{}`: `{} {}`, for function `{}`.{summary}",
        super::doc_text(&op.id),
        op.method,
        super::doc_text(&op.template),
        f.path
    ));
    let (params_field, params_read) = match &op.params {
        Some(params) => {
            let ty = ident(&params.name);
            (
                Some(quote! {
                    /// The path, query, header and cookie parameters.
                    pub params: params::#ty,
                }),
                Some(quote! {
                    params: <params::#ty as ::gateway_runtime::params::FromRequestParams>::from_request_params(&call.params())
                        .map_err(|err| GatewayError::bad_param(&err))?,
                }),
            )
        }
        None => (None, None),
    };
    let (body_field, body_read) = match &f.body {
        None => (None, None),
        Some(body) => {
            let (ty, read) = match &body.media {
                Payload::Json(ty) => (rust_type(ty, schemas), quote!(call.json()?)),
                Payload::Text => (quote!(::std::string::String), quote!(call.text()?)),
                Payload::Bytes | Payload::Empty => {
                    (quote!(::gateway_runtime::bytes::Bytes), quote!(call.body().clone()))
                }
            };
            if body.required {
                (
                    Some(quote! {
                        /// The request body.
                        pub body: #ty,
                    }),
                    Some(quote!(body: #read,)),
                )
            } else {
                (
                    Some(quote! {
                        /// The request body, when one was sent.
                        pub body: ::core::option::Option<#ty>,
                    }),
                    Some(quote! {
                        body: if call.body().is_empty() {
                            ::core::option::Option::None
                        } else {
                            ::core::option::Option::Some(#read)
                        },
                    }),
                )
            }
        }
    };
    let call_arg = if params_read.is_some() || body_read.is_some() {
        quote!(call)
    } else {
        quote!(_call)
    };
    let variants = f.variants.iter().map(|v| {
        let name = ident(&v.name);
        let status = match v.status {
            VariantStatus::Code(code) => format!("`{code}`"),
            VariantStatus::Range(digit) => format!("`{digit}XX` (the variant carries the status)"),
            VariantStatus::Default => {
                String::from("`default`: any status the others do not name (the variant carries it)")
            }
        };
        let doc = match &v.doc {
            Some(d) => format!(" {status}: {}", super::doc_text(d)),
            None => format!(" {status}."),
        };
        let payload = payload_type(&v.payload, schemas);
        let fields = match (v.status, payload) {
            (VariantStatus::Code(_), None) => quote!(),
            (VariantStatus::Code(_), Some(ty)) => quote!((#ty)),
            (_, None) => quote!({ status: u16 }),
            (_, Some(ty)) => quote!({ status: u16, body: #ty }),
        };
        quote!(#[doc = #doc] #name #fields)
    });
    let arms = f.variants.iter().map(|v| {
        let name = ident(&v.name);
        let content_type = &v.content_type;
        let render = |status: TokenStream, body: TokenStream| match &v.payload {
            Payload::Empty => quote!(::gateway_runtime::functions::respond(#status, ::core::option::Option::None, ::gateway_runtime::bytes::Bytes::new())),
            Payload::Json(_) => quote!(::gateway_runtime::functions::json_response(#status, #content_type, &#body)),
            Payload::Text => quote!(::gateway_runtime::functions::respond(#status, ::core::option::Option::Some(#content_type), ::gateway_runtime::bytes::Bytes::from(#body))),
            Payload::Bytes => quote!(::gateway_runtime::functions::respond(#status, ::core::option::Option::Some(#content_type), #body)),
        };
        match (v.status, &v.payload) {
            (VariantStatus::Code(code), Payload::Empty) => {
                let render = render(Lit::u16_unsuffixed(code).into_token_stream(), quote!());
                quote!(Self::#name => #render)
            }
            (VariantStatus::Code(code), _) => {
                let render = render(Lit::u16_unsuffixed(code).into_token_stream(), quote!(body));
                quote!(Self::#name(body) => #render)
            }
            (_, Payload::Empty) => {
                let render = render(quote!(status), quote!());
                quote!(Self::#name { status } => #render)
            }
            (_, _) => {
                let render = render(quote!(status), quote!(body));
                quote!(Self::#name { status, body } => #render)
            }
        }
    });
    let response_doc = super::doc_lines(&format!(
        "The response of `{}`: one variant per status the spec declares, and `Error` for a gateway error (rendered like \
         the gateway's own: problem+json, or the spec's rendering of its kind).",
        super::doc_text(&op.id)
    ));
    quote! {
        #request_doc
        #[derive(Debug, Clone, PartialEq)]
        pub struct #request {
            #params_field
            #body_field
        }

        impl ::gateway_runtime::functions::FunctionRequest for #request {
            fn from_call(#call_arg: &::gateway_runtime::functions::FunctionCall<'_>) -> ::core::result::Result<Self, GatewayError> {
                ::core::result::Result::Ok(Self {
                    #params_read
                    #body_read
                })
            }
        }

        #response_doc
        #[derive(Debug)]
        pub enum #response {
            #(#variants,)*
            /// A gateway error: its kind's status, rendered like the gateway's own errors.
            Error(GatewayError),
        }

        impl ::gateway_runtime::functions::FunctionResponse for #response {
            fn into_response(self) -> ::core::result::Result<::gateway_runtime::functions::Response, GatewayError> {
                match self {
                    #(#arms,)*
                    Self::Error(err) => ::core::result::Result::Err(err),
                }
            }
        }

        impl ::core::convert::From<GatewayError> for #response {
            fn from(err: GatewayError) -> Self {
                Self::Error(err)
            }
        }

        impl ::core::convert::From<::core::result::Result<#response, GatewayError>> for #response {
            fn from(result: ::core::result::Result<#response, GatewayError>) -> Self {
                result.unwrap_or_else(Self::Error)
            }
        }
    }
}

fn payload_type(payload: &Payload, schemas: &TokenStream) -> Option<TokenStream> {
    match payload {
        Payload::Empty => None,
        Payload::Json(ty) => Some(rust_type(ty, schemas)),
        Payload::Text => Some(quote!(::std::string::String)),
        Payload::Bytes => Some(quote!(::gateway_runtime::bytes::Bytes)),
    }
}
