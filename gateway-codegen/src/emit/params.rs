//! `src/params.rs`: one struct per operation holding its typed parameters, and the string enums they use.

use proc_macro2::{Literal as Lit, TokenStream};
use quote::{ToTokens, quote};

use crate::model::{Api, EnumType, ListStyle, Literal, Location, Operation, Param, ParamStruct, ParamType, Scalar};

/// Enum values listed in an error message before the rest are summarised.
const MAX_LISTED_VALUES: usize = 20;

pub(super) fn params_rs(api: &Api) -> TokenStream {
    let structs: Vec<TokenStream> = api.operations.iter().flat_map(param_structs).collect();
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
        Scalar::Enum(name) => ident(name),
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

/// The `.unwrap_or(…)` that applies a default. Lower only hands over literals the parameter's type can hold; one
/// that it cannot (a bug, or a model built by hand) is written as it is, so that the generated crate fails to compile
/// with rustc's own message (`literal out of range`, mismatched types) rather than the generator panicking or
/// quietly writing another value.
fn default_tokens(literal: &Literal, ty: &ParamType) -> TokenStream {
    let value = match (literal, ty) {
        (Literal::Int(n), ParamType::Scalar(Scalar::I32)) => match i32::try_from(*n) {
            Ok(n) => Lit::i32_suffixed(n).into_token_stream(),
            Err(_) => Lit::i64_unsuffixed(*n).into_token_stream(),
        },
        (Literal::Int(n), _) => Lit::i64_suffixed(*n).into_token_stream(),
        (Literal::Float(f), ParamType::Scalar(Scalar::F32)) => float_tokens(*f, true),
        (Literal::Float(f), _) => float_tokens(*f, false),
        (Literal::Bool(b), _) => quote!(#b),
        (Literal::Str(s), ParamType::Scalar(Scalar::Uuid)) => match uuid_value(s) {
            Some(value) => {
                let lit = Lit::u128_suffixed(value);
                quote!(::gateway_runtime::uuid::Uuid::from_u128(#lit))
            }
            None => quote!(::gateway_runtime::uuid::Uuid::from_u128(#s)),
        },
        (Literal::Str(s), _) => return quote!(.unwrap_or_else(|| ::std::string::String::from(#s))),
        (Literal::Variant(v), ParamType::Scalar(Scalar::Enum(name))) => {
            let ty = ident(name);
            let variant = ident(v);
            quote!(#ty::#variant)
        }
        (Literal::Variant(_), _) => return quote!(),
    };
    quote!(.unwrap_or(#value))
}

/// A float literal. proc-macro2 asserts that float literals are finite, so the values no literal can spell are
/// written as the type's constants, and an `f64` beyond `f32`'s range stays unsuffixed for rustc to refuse.
fn float_tokens(f: f64, narrow: bool) -> TokenStream {
    let ty = if narrow { quote!(f32) } else { quote!(f64) };
    if f.is_nan() {
        return quote!(::core::primitive::#ty::NAN);
    }
    if f.is_infinite() {
        return if f > 0.0 {
            quote!(::core::primitive::#ty::INFINITY)
        } else {
            quote!(::core::primitive::#ty::NEG_INFINITY)
        };
    }
    if !narrow {
        return Lit::f64_suffixed(f).into_token_stream();
    }
    #[allow(clippy::cast_possible_truncation)] // checked: the narrowed value must be finite to be written as f32
    let narrowed = f as f32;
    if narrowed.is_finite() {
        Lit::f32_suffixed(narrowed).into_token_stream()
    } else {
        Lit::f64_unsuffixed(f).into_token_stream()
    }
}

/// The value of a UUID written as 8-4-4-4-12 hex digits.
fn uuid_value(s: &str) -> Option<u128> {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] || !groups.iter().all(|g| g.chars().all(|c| c.is_ascii_hexdigit())) {
        return None;
    }
    u128::from_str_radix(&groups.concat(), 16).ok()
}

/// An identifier the model names. Lower only produces valid ones; a name that is not one (a bug) is written as a
/// string literal, which does not parse as Rust, so emit reports an internal error instead of panicking in
/// `format_ident!`.
pub(super) fn ident(name: &str) -> TokenStream {
    match syn::parse_str::<syn::Ident>(name) {
        Ok(ident) => ident.into_token_stream(),
        Err(_) => Lit::string(name).into_token_stream(),
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

/// The operation's parameter struct, and when its route also serves operations that check their parameters
/// differently, theirs and the function accepting what any of them accepts.
fn param_structs(op: &Operation) -> Vec<TokenStream> {
    let Some(params) = &op.params else {
        return Vec::new();
    };
    let mut doc = format!(
        "Parameters of `{}`: `{} {}`.",
        super::doc_text(&op.id),
        op.method,
        super::doc_text(&op.template)
    );
    if let Some(summary) = &op.summary {
        doc.push_str(&format!("\n\n{}", super::doc_text(summary)));
    }
    let mut out = vec![param_struct(params, doc)];
    let Some(merged) = op.merged.as_ref().filter(|m| !m.alternatives.is_empty()) else {
        return out;
    };
    for (id, alternative) in &merged.alternatives {
        let doc = format!(
            "Parameters of `{}`, which matches the same requests as `{}` and is served by its route.",
            super::doc_text(id),
            super::doc_text(&op.id)
        );
        out.push(param_struct(alternative, doc));
    }
    let function = ident(&merged.check);
    let own = ident(&params.name);
    let alternatives = merged.alternatives.iter().map(|(_, a)| ident(&a.name));
    let ids: Vec<String> = std::iter::once(&op.id)
        .chain(&merged.ids)
        .map(|id| format!("`{}`", super::doc_text(id)))
        .collect();
    let doc = super::doc_lines(&format!(
        "Accepts the parameters of a request to `{} {}` when any of the operations it serves accepts them ({}); \
         otherwise the error is `{}`'s.",
        op.method,
        super::doc_text(&op.template),
        ids.join(", "),
        super::doc_text(&op.id)
    ));
    out.push(quote! {
        #doc
        pub fn #function(p: &rt::RequestParams<'_>) -> ::core::result::Result<(), rt::ParamError> {
            rt::check_any(p, &[rt::check::<#own>, #(rt::check::<#alternatives>),*])
        }
    });
    out
}

/// One parameter struct and its `FromRequestParams`, documented with `doc`.
fn param_struct(params: &ParamStruct, mut doc: String) -> TokenStream {
    let struct_ident = ident(&params.name);
    if !params.unchecked.is_empty() {
        doc.push_str(&format!(
            "\n\nForwarded without a type check: {}.",
            super::doc_text(&params.unchecked.join(", "))
        ));
    }
    let doc = super::doc_lines(&doc);
    let fields = params.fields.iter().map(|p| {
        let field = ident(&p.field);
        let ty = field_type(p);
        let location = p.location.as_str();
        let doc = match &p.doc {
            Some(d) => format!(" `{}` ({location}): {}", super::doc_text(&p.name), super::doc_text(d)),
            None => format!(" `{}` ({location}).", super::doc_text(&p.name)),
        };
        quote! {
            #[doc = #doc]
            pub #field: #ty
        }
    });
    let reads = params.fields.iter().map(|p| {
        let field = ident(&p.field);
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
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq)]
        pub struct #struct_ident {
            #(#fields,)*
        }

        impl rt::FromRequestParams for #struct_ident {
            fn from_request_params(p: &rt::RequestParams<'_>) -> rt::ParamResult<Self> {
                ::core::result::Result::Ok(Self {
                    #(#reads,)*
                })
            }
        }
    }
}

fn enum_type(e: &EnumType) -> TokenStream {
    let enum_ident = ident(&e.name);
    let variants: Vec<TokenStream> = e.variants.iter().map(|(v, _)| ident(v)).collect();
    let wires: Vec<&String> = e.variants.iter().map(|(_, w)| w).collect();
    let mut expected = String::from("one of ");
    let listed: Vec<String> = wires.iter().take(MAX_LISTED_VALUES).map(|w| format!("`{w}`")).collect();
    expected.push_str(&listed.join(", "));
    if wires.len() > MAX_LISTED_VALUES {
        expected.push_str(&format!(", … ({} values)", wires.len()));
    }
    let doc = format!(" A string enum: {}.", super::doc_text(&expected));
    let variant_docs = wires.iter().map(|w| format!(" `{}`", super::doc_text(w)));
    quote! {
        #[doc = #doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum #enum_ident {
            #(#[doc = #variant_docs] #variants,)*
        }

        impl #enum_ident {
            /// The value as written on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    #(Self::#variants => #wires,)*
                }
            }
        }

        impl rt::ParamValue for #enum_ident {
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
