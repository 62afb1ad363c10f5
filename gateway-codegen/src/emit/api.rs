//! `src/api.rs`: the static table the runtime serves — upstreams, and one entry per operation.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::model::{
    Api, ApiKeyScheme, CacheKeyPart, CachePolicy, Invalidate, KeyLocation, Operation, PathPart, QuotaPeriod, Target,
    Throttle, Upstream, UsagePlan,
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
    quote! {
        //! The gateway's static configuration: its upstreams, and one entry per operation.

        use ::gateway_runtime::http::Method;
        use ::gateway_runtime::params::check;
        #[allow(unused_imports)]
        use ::gateway_runtime::spec::{
            ApiKeyScheme, ApiSpec, CacheKeyPart, CacheSettings, CacheSpec, Invalidate, KeyLocation, MockSpec,
            OperationSpec, PathPart, QuotaPeriod, QuotaSpec, TargetSpec, ThrottleScope, ThrottleSpec, UpstreamSpec,
            UpstreamTarget, UsagePlanSpec,
        };
        use ::std::time::Duration;

        #[allow(unused_imports)]
        use super::params;

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
        };
    }
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
    quote!(ApiKeyScheme { scheme: #name, location: #location, name: #key })
}
