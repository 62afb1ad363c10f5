//! `src/api.rs`: the static table the runtime serves — upstreams, and one entry per operation.

use std::collections::BTreeSet;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::model::{
    Api, ApiKeyScheme, CacheKeyPart, CachePolicy, GatewayResponse, Invalidate, KeyLocation, Operation, PathPart,
    Placeholder, QuotaPeriod, Target, TemplatePart, Throttle, Upstream, UsagePlan,
};

pub(super) fn api_rs(api: &Api) -> TokenStream {
    let name = &api.name;
    let spec_file = &api.spec_file;
    let version = &api.version;
    let upstreams = api.upstreams.iter().map(upstream);
    let operations = api.operations.iter().map(operation);
    let throttle = option(api.throttle.as_ref().map(throttle));
    let plans = api.usage_plans.iter().map(usage_plan);
    let capacity = Literal::u64_unsuffixed(api.cache.capacity);
    let max_entry = Literal::u64_unsuffixed(api.cache.max_entry);
    let hosts = &api.hosts;
    let responses = api.responses.iter().map(gateway_response);
    let table = quote! {
        /// Everything the runtime needs to serve this API.
        pub static API: ApiSpec = ApiSpec {
            name: #name,
            spec_file: #spec_file,
            api_version: #version,
            upstreams: &[#(#upstreams),*],
            operations: &[#(#operations),*],
            cache: CacheSettings { capacity: #capacity, max_entry: #max_entry },
            throttle: #throttle,
            usage_plans: &[#(#plans),*],
            hosts: &[#(#hosts),*],
            responses: &[#(#responses),*],
        };
    };
    let imports = imports(&table);
    quote! {
        //! The gateway's static configuration: its upstreams, and one entry per operation.

        #imports

        #table
    }
}

/// `use` items for exactly the names `table` refers to, so that no spec yields an unused import.
fn imports(table: &TokenStream) -> TokenStream {
    let mut used = BTreeSet::new();
    idents(table.clone(), &mut used);
    let pick = |names: &[&str]| -> Vec<proc_macro2::Ident> {
        names
            .iter()
            .filter(|n| used.contains(**n))
            .map(|n| format_ident!("{}", n))
            .collect()
    };
    let spec = pick(&[
        "ApiKeyScheme",
        "ApiSpec",
        "CacheKeyPart",
        "CacheSettings",
        "CacheSpec",
        "GatewayResponseSpec",
        "Invalidate",
        "KeyLocation",
        "MockSpec",
        "OperationSpec",
        "PathPart",
        "QuotaPeriod",
        "QuotaSpec",
        "ResponseSelector",
        "TargetSpec",
        "ThrottleScope",
        "ThrottleSpec",
        "UpstreamSpec",
        "UpstreamTarget",
        "UsagePlanSpec",
    ]);
    let template = pick(&["Placeholder", "TemplatePart"]);
    let mut out = TokenStream::new();
    if used.contains("Method") {
        out.extend(quote!(
            use ::gateway_runtime::http::Method;
        ));
    }
    if used.contains("ErrorKind") {
        out.extend(quote!(
            use ::gateway_runtime::error::ErrorKind;
        ));
    }
    if used.contains("check") {
        out.extend(quote!(
            use ::gateway_runtime::params::check;
        ));
    }
    out.extend(quote!(use ::gateway_runtime::spec::{#(#spec),*};));
    if !template.is_empty() {
        out.extend(quote!(use ::gateway_runtime::template::{#(#template),*};));
    }
    if used.contains("Duration") {
        out.extend(quote!(
            use ::std::time::Duration;
        ));
    }
    if used.contains("params") {
        out.extend(quote!(
            use super::params;
        ));
    }
    out
}

/// Every identifier in `tokens`.
fn idents(tokens: TokenStream, out: &mut BTreeSet<String>) {
    for tree in tokens {
        match tree {
            proc_macro2::TokenTree::Ident(ident) => {
                out.insert(ident.to_string());
            }
            proc_macro2::TokenTree::Group(group) => idents(group.stream(), out),
            _ => {}
        }
    }
}

fn gateway_response(response: &GatewayResponse) -> TokenStream {
    let selector = match response.kind.as_str() {
        "DEFAULT_4XX" => quote!(ResponseSelector::Default4xx),
        "DEFAULT_5XX" => quote!(ResponseSelector::Default5xx),
        kind => {
            let variant = format_ident!("{}", heck::ToUpperCamelCase::to_upper_camel_case(kind));
            quote!(ResponseSelector::Kind(ErrorKind::#variant))
        }
    };
    let status = option(response.status.map(|s| {
        let s = Literal::u16_unsuffixed(s);
        quote!(#s)
    }));
    let headers = response.headers.iter().map(|(name, value)| {
        let value = template_parts(value);
        quote!((#name, &[#(#value),*]))
    });
    let content_type = &response.content_type;
    let body = option(response.body.as_ref().map(|b| {
        let parts = template_parts(b);
        quote!(&[#(#parts),*])
    }));
    quote! {
        GatewayResponseSpec {
            selector: #selector,
            status: #status,
            headers: &[#(#headers),*],
            content_type: #content_type,
            body: #body,
        }
    }
}

fn template_parts(parts: &[TemplatePart]) -> Vec<TokenStream> {
    parts
        .iter()
        .map(|part| match part {
            TemplatePart::Literal(text) => quote!(TemplatePart::Literal(#text)),
            TemplatePart::Value(p) => {
                let p = placeholder(*p);
                quote!(TemplatePart::Value(Placeholder::#p))
            }
            TemplatePart::JsonString(p) => {
                let p = placeholder(*p);
                quote!(TemplatePart::JsonString(Placeholder::#p))
            }
        })
        .collect()
}

fn placeholder(p: Placeholder) -> proc_macro2::Ident {
    format_ident!(
        "{}",
        match p {
            Placeholder::ErrorTitle => "ErrorTitle",
            Placeholder::ErrorDetail => "ErrorDetail",
            Placeholder::ErrorStatus => "ErrorStatus",
            Placeholder::ErrorKind => "ErrorKind",
            Placeholder::RequestId => "RequestId",
            Placeholder::OperationId => "OperationId",
            Placeholder::ClientIp => "ClientIp",
            Placeholder::ApiKeyName => "ApiKeyName",
        }
    )
}

fn millis(d: std::time::Duration) -> Literal {
    Literal::u64_unsuffixed(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn upstream(u: &Upstream) -> TokenStream {
    let name = &u.name;
    let url = &u.url;
    let timeout = millis(u.timeout);
    let connect_timeout = millis(u.connect_timeout);
    quote! {
        UpstreamSpec {
            name: #name,
            url: #url,
            timeout: Duration::from_millis(#timeout),
            connect_timeout: Duration::from_millis(#connect_timeout),
        }
    }
}

fn operation(op: &Operation) -> TokenStream {
    let id = &op.id;
    let method = format_ident!("{}", op.method);
    let template = &op.template;
    let route = &op.route;
    let path_params = &op.path_params;
    // All-empty suffixes are written as `&[]`: the common case stays short.
    let suffixes: &[String] = if op.path_suffixes.iter().all(String::is_empty) {
        &[]
    } else {
        &op.path_suffixes
    };
    let validate = match &op.params {
        Some(params) => {
            let ty = format_ident!("{}", params.name);
            quote!(Some(check::<params::#ty>))
        }
        None => quote!(None),
    };
    let target = target(&op.target);
    let responses = op.responses.iter().map(gateway_response);
    let security = op
        .security
        .iter()
        .map(|alternative| alternative.iter().map(key_scheme).collect::<Vec<_>>());
    let op_plans = op.plans.iter().map(|p| Literal::usize_unsuffixed(*p));
    let op_throttle = option(op.throttle.as_ref().map(throttle));
    let cache = match &op.cache {
        Some(policy) => {
            let policy = cache_policy(policy);
            quote!(Some(&#policy))
        }
        None => quote!(None),
    };
    quote! {
        OperationSpec {
            id: #id,
            method: Method::#method,
            template: #template,
            route: #route,
            path_params: &[#(#path_params),*],
            path_suffixes: &[#(#suffixes),*],
            validate: #validate,
            security: &[#(&[#(#security),*]),*],
            plans: &[#(#op_plans),*],
            throttle: #op_throttle,
            cache: #cache,
            responses: &[#(#responses),*],
            target: #target,
        }
    }
}

fn target(target: &Target) -> TokenStream {
    match target {
        Target::Upstream { upstream, path } => {
            let upstream = Literal::usize_unsuffixed(*upstream);
            let parts = path.iter().map(|part| match part {
                PathPart::Literal(text) => quote!(PathPart::Literal(#text)),
                PathPart::Param(i) => {
                    let i = Literal::usize_unsuffixed(*i);
                    quote!(PathPart::Param(#i))
                }
            });
            quote! {
                TargetSpec::Upstream(UpstreamTarget { upstream: #upstream, path: &[#(#parts),*] })
            }
        }
        Target::Mock(mock) => {
            let status = Literal::u16_unsuffixed(mock.status);
            let headers = mock.headers.iter().map(|(k, v)| quote!((#k, #v)));
            let content_type = &mock.content_type;
            let body = &mock.body;
            quote! {
                TargetSpec::Mock(MockSpec {
                    status: #status,
                    headers: &[#(#headers),*],
                    content_type: #content_type,
                    body: #body,
                })
            }
        }
    }
}

fn cache_policy(policy: &CachePolicy) -> TokenStream {
    let ttl = millis(policy.ttl);
    let key = policy.key.iter().map(|part| match part {
        CacheKeyPart::Query(name) => quote!(CacheKeyPart::Query(#name)),
        CacheKeyPart::Header(name) => quote!(CacheKeyPart::Header(#name)),
        CacheKeyPart::ApiKey => quote!(CacheKeyPart::ApiKey),
        CacheKeyPart::JwtClaim(name) => quote!(CacheKeyPart::JwtClaim(#name)),
    });
    let statuses = policy.statuses.iter().map(|s| Literal::u16_unsuffixed(*s));
    let methods = policy.methods.iter().map(|m| format_ident!("{}", m));
    let invalidate = match policy.invalidate {
        Invalidate::None => quote!(Invalidate::None),
        Invalidate::Any => quote!(Invalidate::Any),
        Invalidate::ApiKey => quote!(Invalidate::ApiKey),
    };
    quote! {
        CacheSpec {
            ttl: Duration::from_millis(#ttl),
            key: &[#(#key),*],
            statuses: &[#(#statuses),*],
            methods: &[#(Method::#methods),*],
            invalidate: #invalidate,
        }
    }
}

fn option(tokens: Option<TokenStream>) -> TokenStream {
    match tokens {
        Some(t) => quote!(Some(#t)),
        None => quote!(None),
    }
}

fn throttle(t: &Throttle) -> TokenStream {
    let rate = Literal::u32_unsuffixed(t.rate);
    let burst = Literal::u32_unsuffixed(t.burst);
    let per = if t.per_ip {
        quote!(ThrottleScope::ClientIp)
    } else {
        quote!(ThrottleScope::All)
    };
    quote!(ThrottleSpec { rate: #rate, burst: #burst, per: #per })
}

fn usage_plan(plan: &UsagePlan) -> TokenStream {
    let name = &plan.name;
    let throttle = option(plan.throttle.as_ref().map(throttle));
    let quota = option(plan.quota.map(|(limit, period)| {
        let limit = Literal::u64_unsuffixed(limit);
        let period = match period {
            QuotaPeriod::Day => quote!(QuotaPeriod::Day),
            QuotaPeriod::Week => quote!(QuotaPeriod::Week),
            QuotaPeriod::Month => quote!(QuotaPeriod::Month),
        };
        quote!(QuotaSpec { limit: #limit, period: #period })
    }));
    quote!(UsagePlanSpec { name: #name, throttle: #throttle, quota: #quota })
}

fn key_scheme(scheme: &ApiKeyScheme) -> TokenStream {
    let name = &scheme.scheme;
    let key = &scheme.name;
    let location = match scheme.location {
        KeyLocation::Header => quote!(KeyLocation::Header),
        KeyLocation::Query => quote!(KeyLocation::Query),
        KeyLocation::Cookie => quote!(KeyLocation::Cookie),
    };
    let forward = scheme.forward;
    quote!(ApiKeyScheme { scheme: #name, location: #location, name: #key, forward: #forward })
}
