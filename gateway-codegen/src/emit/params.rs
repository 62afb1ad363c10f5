//! `src/params.rs`: one struct per operation holding its typed parameters, and the string enums they use.

use proc_macro2::{Literal as Lit, TokenStream};
use quote::{format_ident, quote};

use crate::model::{Api, EnumType, ListStyle, Literal, Location, Operation, Param, ParamType, Scalar};

/// Enum values listed in an error message before the rest are summarised.
const MAX_LISTED_VALUES: usize = 20;

pub(super) fn params_rs(api: &Api) -> TokenStream {
    let structs: Vec<TokenStream> = api.operations.iter().filter_map(param_struct).collect();
    let enums: Vec<TokenStream> = api.enums.iter().map(enum_type).collect();
    // A spec with no typed parameters gets an empty module, without an import nothing would use.
    let import = (!structs.is_empty() || !enums.is_empty()).then(|| {
        quote!(
            use ::gateway_runtime::params as rt;
        )
    });
    quote! {
        //! Typed parameters: one struct per operation that declares parameters, parsed before the request is
        //! forwarded, so a value of the wrong type is a `400` naming the parameter rather than an upstream's problem.

        // Proxy and mock targets only need to know that parsing succeeds; the values are read by targets that
        // take typed requests.
        #![allow(dead_code)]

        #import

        #(#structs)*
        #(#enums)*
    }
}

fn scalar_tokens(scalar: &Scalar) -> TokenStream {
    match scalar {
        Scalar::I32 => quote!(i32),
        Scalar::I64 => quote!(i64),
        Scalar::F32 => quote!(f32),
        Scalar::F64 => quote!(f64),
        Scalar::Bool => quote!(bool),
        Scalar::String => quote!(::std::string::String),
        Scalar::Uuid => quote!(::gateway_runtime::uuid::Uuid),
        Scalar::Enum(name) => {
            let ident = format_ident!("{}", name);
            quote!(#ident)
        }
    }
}

fn field_type(param: &Param) -> TokenStream {
    let base = match &param.ty {
        ParamType::Scalar(s) => scalar_tokens(s),
        ParamType::List(s) => {
            let item = scalar_tokens(s);
            quote!(::std::vec::Vec<#item>)
        }
    };
    if param.required || param.default.is_some() {
        base
    } else {
        quote!(::core::option::Option<#base>)
    }
}

fn location_tokens(location: Location) -> TokenStream {
    match location {
        Location::Path(i) => {
            let i = Lit::usize_unsuffixed(i);
            quote!(rt::ParamIn::Path(#i))
        }
        Location::Query => quote!(rt::ParamIn::Query),
        Location::Header => quote!(rt::ParamIn::Header),
        Location::Cookie => quote!(rt::ParamIn::Cookie),
    }
}

fn default_tokens(literal: &Literal, ty: &ParamType) -> TokenStream {
    match (literal, ty) {
        (Literal::Int(n), ParamType::Scalar(Scalar::I32)) => {
            let lit = Lit::i32_suffixed(i32::try_from(*n).unwrap_or_default());
            quote!(.unwrap_or(#lit))
        }
        (Literal::Int(n), _) => {
            let lit = Lit::i64_suffixed(*n);
            quote!(.unwrap_or(#lit))
        }
        (Literal::Float(f), ParamType::Scalar(Scalar::F32)) => {
            #[allow(clippy::cast_possible_truncation)] // a default written for a `float` parameter
            let lit = Lit::f32_suffixed(*f as f32);
            quote!(.unwrap_or(#lit))
        }
        (Literal::Float(f), _) => {
            let lit = Lit::f64_suffixed(*f);
            quote!(.unwrap_or(#lit))
        }
        (Literal::Bool(b), _) => quote!(.unwrap_or(#b)),
        (Literal::Str(s), ParamType::Scalar(Scalar::Uuid)) => {
            let value = u128::from_str_radix(&s.replace('-', ""), 16).unwrap_or_default();
            let lit = Lit::u128_suffixed(value);
            quote!(.unwrap_or(::gateway_runtime::uuid::Uuid::from_u128(#lit)))
        }
        (Literal::Str(s), _) => quote!(.unwrap_or_else(|| ::std::string::String::from(#s))),
        (Literal::Variant(v), ParamType::Scalar(Scalar::Enum(name))) => {
            let ty = format_ident!("{}", name);
            let variant = format_ident!("{}", v);
            quote!(.unwrap_or(#ty::#variant))
        }
        (Literal::Variant(_), _) => quote!(),
    }
}

fn list_style_tokens(style: ListStyle) -> TokenStream {
    match style {
        ListStyle::Repeated => quote!(rt::ListStyle::Repeated),
        ListStyle::Comma => quote!(rt::ListStyle::Comma),
        ListStyle::Space => quote!(rt::ListStyle::Space),
        ListStyle::Pipe => quote!(rt::ListStyle::Pipe),
    }
}

fn param_struct(op: &Operation) -> Option<TokenStream> {
    let params = op.params.as_ref()?;
    let ident = format_ident!("{}", params.name);
    let mut doc = format!("Parameters of `{}`: `{} {}`.", op.id, op.method, op.template);
    if let Some(summary) = &op.summary {
        doc.push_str(&format!("\n\n{summary}"));
    }
    if !params.unchecked.is_empty() {
        doc.push_str(&format!(
            "\n\nForwarded without a type check: {}.",
            params.unchecked.join(", ")
        ));
    }
    let doc = super::doc_lines(&doc);
    let fields = params.fields.iter().map(|p| {
        let field = format_ident!("{}", p.field);
        let ty = field_type(p);
        let location = p.location.as_str();
        let doc = match &p.doc {
            Some(d) => format!(" `{}` ({location}): {d}", p.name),
            None => format!(" `{}` ({location}).", p.name),
        };
        quote! {
            #[doc = #doc]
            pub #field: #ty
        }
    });
    let reads = params.fields.iter().map(|p| {
        let field = format_ident!("{}", p.field);
        let location = location_tokens(p.location);
        let name = &p.name;
        let needed = p.required;
        let read = match (&p.ty, needed) {
            (ParamType::Scalar(_), true) => quote!(p.require(#location, #name)?),
            (ParamType::Scalar(_), false) => quote!(p.get(#location, #name)?),
            (ParamType::List(_), true) => {
                let style = list_style_tokens(p.list_style);
                quote!(p.require_list(#location, #name, #style)?)
            }
            (ParamType::List(_), false) => {
                let style = list_style_tokens(p.list_style);
                quote!(p.get_list(#location, #name, #style)?)
            }
        };
        let default = match (&p.default, needed) {
            (Some(d), false) => default_tokens(d, &p.ty),
            _ => quote!(),
        };
        quote!(#field: #read #default)
    });
    Some(quote! {
        #doc
        #[derive(Debug, Clone, PartialEq)]
        pub struct #ident {
            #(#fields,)*
        }

        impl rt::FromRequestParams for #ident {
            fn from_request_params(
                p: &rt::RequestParams<'_>,
            ) -> ::core::result::Result<Self, rt::ParamError> {
                ::core::result::Result::Ok(Self {
                    #(#reads,)*
                })
            }
        }
    })
}

fn enum_type(e: &EnumType) -> TokenStream {
    let ident = format_ident!("{}", e.name);
    let variants: Vec<_> = e.variants.iter().map(|(v, _)| format_ident!("{}", v)).collect();
    let wires: Vec<&String> = e.variants.iter().map(|(_, w)| w).collect();
    let mut expected = String::from("one of ");
    let listed: Vec<String> = wires.iter().take(MAX_LISTED_VALUES).map(|w| format!("`{w}`")).collect();
    expected.push_str(&listed.join(", "));
    if wires.len() > MAX_LISTED_VALUES {
        expected.push_str(&format!(", … ({} values)", wires.len()));
    }
    let doc = format!(" A string enum: {expected}.");
    let variant_docs = wires.iter().map(|w| format!(" `{w}`"));
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum #ident {
            #(#[doc = #variant_docs] #variants,)*
        }

        impl #ident {
            /// The value as written on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    #(Self::#variants => #wires,)*
                }
            }
        }

        impl rt::ParamValue for #ident {
            const EXPECTED: &'static str = #expected;
            fn parse_param(raw: &str) -> ::core::option::Option<Self> {
                match raw {
                    #(#wires => ::core::option::Option::Some(Self::#variants),)*
                    _ => ::core::option::Option::None,
                }
            }
        }
    }
}
