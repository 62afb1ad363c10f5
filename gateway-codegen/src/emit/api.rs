//! `src/api.rs`: the static table the runtime serves — upstreams, and one entry per operation.

use std::collections::BTreeSet;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::model::{
    Api, ApiKeyScheme, Body, CacheKeyPart, CachePolicy, Cidr, Cors, Edits, FormField, GatewayResponse, Invalidate,
    IpPolicy, JwtKeys, KeyLocation, KeyPart, Location, Operation, Origin, PathPart, Placeholder, QuotaPeriod,
    Requirement, ResponsesCheck, SchemaParam, Scheme, SchemeKind, Stage, StatusMatch, Store, StoreAction,
    StoreDatabase, Target, TemplatePart, Throttle, Transform, Upstream, UsagePlan,
};

pub(super) fn api_rs(api: &Api) -> TokenStream {
    let name = &api.name;
    let spec_file = &api.spec_file;
    let version = &api.version;
    let upstreams = api.upstreams.iter().map(upstream);
    // Each distinct CORS policy once, in a table the operations point into.
    let mut policies: Vec<&Cors> = Vec::new();
    let api_cors_index = intern_cors(&mut policies, api.cors.as_ref());
    let op_cors: Vec<Option<usize>> = api
        .operations
        .iter()
        .map(|op| intern_cors(&mut policies, op.cors.as_ref()))
        .collect();
    // Each operation's fields, then the values several share, named, then the entries referring to them.
    let mut values = SharedValues::default();
    let fields: Vec<OperationFields> = api
        .operations
        .iter()
        .zip(&op_cors)
        .map(|(op, c)| operation(op, *c, &api.schemes, &mut values))
        .collect();
    values.name_repeated();
    let operations = fields.iter().map(|f| f.render(&values));
    let shared_items = values.items();
    let policy_count = Literal::usize_unsuffixed(policies.len());
    let policy_specs = policies.iter().map(|c| cors(c));
    let cors_table = (!policies.is_empty()).then(|| {
        quote! {
            /// The CORS policies of the API and its operations, each once.
            static CORS: [CorsSpec; #policy_count] = [#(#policy_specs),*];
        }
    });
    let throttle = option(api.throttle.as_ref().map(throttle));
    let plans = api.usage_plans.iter().map(usage_plan);
    let capacity = Literal::u64_unsuffixed(api.cache.capacity);
    let max_entry = Literal::u64_unsuffixed(api.cache.max_entry);
    let hosts = &api.hosts;
    let responses = api.responses.iter().map(gateway_response);
    let schemas = &api.schemas;
    let filters = &api.filters;
    let schemes = api.schemes.iter().map(scheme);
    let stages = api.stages.iter().map(stage);
    let default_stage = option(api.default_stage.map(|i| {
        let i = Literal::usize_unsuffixed(i);
        quote!(#i)
    }));
    let api_cors = option(api_cors_index.map(cors_ref));
    let spec_sha256 = &api.spec_sha256;
    let published = option(api.published.as_ref().map(|_| quote!(include_str!("openapi.json"))));
    let stores = api.stores.iter().map(store);
    let shared = option(api.shared.as_ref().map(shared));
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
            schemes: &[#(#schemes),*],
            cors: #api_cors,
            schemas: &[#(#schemas),*],
            filters: &[#(#filters),*],
            stages: &[#(#stages),*],
            default_stage: #default_stage,
            spec_sha256: #spec_sha256,
            published: #published,
            stores: &[#(#stores),*],
            shared: #shared,
        };

        #cors_table

        #shared_items
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
        "AuthorizerSpec",
        "Balance",
        "BodySpec",
        "CacheKeyPart",
        "CacheSettings",
        "CacheSpec",
        "Cidr",
        "CompressionSpec",
        "CorsSpec",
        "EditSpec",
        "EjectSpec",
        "FailMode",
        "FormField",
        "FormScalar",
        "FunctionSpec",
        "GatewayResponseSpec",
        "HealthSpec",
        "Invalidate",
        "IpSpec",
        "JwtAlgorithm",
        "JwtKeys",
        "JwtSpec",
        "KeyLocation",
        "MediaSpec",
        "MockSpec",
        "OnFailure",
        "OperationSpec",
        "OriginSpec",
        "PresentedSpec",
        "PathPart",
        "QuotaPeriod",
        "QuotaSpec",
        "RequestTransformSpec",
        "Requirement",
        "ResponseCheckMode",
        "ResponseCheckSpec",
        "ResponseSchemaSpec",
        "ResponseSelector",
        "ResponseTransformSpec",
        "RetryMethods",
        "RetryOn",
        "RetrySpec",
        "SchemaParamSpec",
        "SchemaParamStyle",
        "SchemeKind",
        "SchemeSpec",
        "SharedSpec",
        "SplitSide",
        "SplitTarget",
        "StageSpec",
        "StageUpstreamSpec",
        "StatusMatch",
        "StoreAction",
        "StoreBackendSpec",
        "StoreFilterKind",
        "StoreFilterSpec",
        "StoreKeyPart",
        "StoreSpec",
        "StoreSync",
        "StoreTableSpec",
        "StoreTargetSpec",
        "UpstreamTlsSpec",
        "TargetSpec",
        "ThrottleScope",
        "ThrottleSpec",
        "TransformSpec",
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
    let params = pick(&["ParamIn", "check"]);
    if !params.is_empty() {
        out.extend(quote!(
            use ::gateway_runtime::params::{#(#params),*};
        ));
    }
    out.extend(quote!(use ::gateway_runtime::spec::{#(#spec),*};));
    if !template.is_empty() {
        out.extend(quote!(use ::gateway_runtime::template::{#(#template),*};));
    }
    if uses_macro(table.clone(), "path") {
        out.extend(quote!(
            use ::gateway_runtime::path;
        ));
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
    if used.contains("functions") {
        out.extend(quote!(
            use super::functions;
        ));
    }
    out
}

/// Whether `tokens` call the macro `name` (`name!`), which a field of that name does not.
fn uses_macro(tokens: TokenStream, name: &str) -> bool {
    let mut previous_is_name = false;
    for tree in tokens {
        match tree {
            proc_macro2::TokenTree::Punct(p) if previous_is_name && p.as_char() == '!' => return true,
            proc_macro2::TokenTree::Group(group) if uses_macro(group.stream(), name) => return true,
            proc_macro2::TokenTree::Ident(ref ident) => {
                previous_is_name = ident == name;
                continue;
            }
            _ => {}
        }
        previous_is_name = false;
    }
    false
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
                let p = placeholder(p);
                quote!(TemplatePart::Value(#p))
            }
            TemplatePart::JsonString(p) => {
                let p = placeholder(p);
                quote!(TemplatePart::JsonString(#p))
            }
        })
        .collect()
}

fn placeholder(p: &Placeholder) -> TokenStream {
    match p {
        Placeholder::ErrorTitle => quote!(Placeholder::ErrorTitle),
        Placeholder::ErrorDetail => quote!(Placeholder::ErrorDetail),
        Placeholder::ErrorStatus => quote!(Placeholder::ErrorStatus),
        Placeholder::ErrorKind => quote!(Placeholder::ErrorKind),
        Placeholder::RequestId => quote!(Placeholder::RequestId),
        Placeholder::OperationId => quote!(Placeholder::OperationId),
        Placeholder::ClientIp => quote!(Placeholder::ClientIp),
        Placeholder::ApiKeyName => quote!(Placeholder::ApiKeyName),
        Placeholder::ClientCertSubject => quote!(Placeholder::ClientCertSubject),
        Placeholder::ClientCertSans => quote!(Placeholder::ClientCertSans),
        Placeholder::Path(i) => {
            let i = Literal::usize_unsuffixed(*i);
            quote!(Placeholder::Path(#i))
        }
        Placeholder::Query(name) => quote!(Placeholder::Query(#name)),
        Placeholder::Header(name) => quote!(Placeholder::Header(#name)),
        Placeholder::Claim(name) => quote!(Placeholder::Claim(#name)),
        Placeholder::Stage(name) => quote!(Placeholder::Stage(#name)),
    }
}

fn millis(d: std::time::Duration) -> Literal {
    Literal::u64_unsuffixed(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An upstream: its name and URLs, and the settings that differ from the runtime's defaults
/// (`..UpstreamSpec::DEFAULT`), so that a plain upstream stays short.
fn upstream(u: &Upstream) -> TokenStream {
    use crate::model::{Balance, RetryMethods};
    use crate::validate::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
    let name = &u.name;
    let urls = &u.urls;
    let mut fields = TokenStream::new();
    if u.timeout != DEFAULT_TIMEOUT {
        let timeout = duration(u.timeout);
        fields.extend(quote!(timeout: #timeout,));
    }
    if u.connect_timeout != DEFAULT_CONNECT_TIMEOUT {
        let connect_timeout = duration(u.connect_timeout);
        fields.extend(quote!(connect_timeout: #connect_timeout,));
    }
    match &u.balance {
        Balance::RoundRobin => {}
        Balance::LeastRequests => fields.extend(quote!(balance: Balance::LeastRequests,)),
        Balance::Hash(source) => {
            let source = placeholder(source);
            fields.extend(quote!(balance: Balance::Hash(#source),));
        }
    }
    if let Some(r) = &u.retries {
        let attempts = Literal::u32_unsuffixed(r.attempts);
        let (connect_error, reset, timeout) = (r.connect_error, r.reset, r.timeout);
        let statuses = r.statuses.iter().map(|s| Literal::u16_unsuffixed(*s));
        let methods = match &r.methods {
            RetryMethods::Idempotent => quote!(RetryMethods::Idempotent),
            RetryMethods::All => quote!(RetryMethods::All),
            RetryMethods::Only(methods) => {
                let methods = methods.iter().map(|m| format_ident!("{}", m));
                quote!(RetryMethods::Only(&[#(Method::#methods),*]))
            }
        };
        let ratio = Literal::f64_unsuffixed(r.budget_ratio);
        let min = Literal::u32_unsuffixed(r.budget_min);
        let window = duration(r.budget_window);
        let backoff = duration(r.backoff);
        let max_backoff = duration(r.max_backoff);
        fields.extend(quote! {
            retries: Some(RetrySpec {
                attempts: #attempts,
                on: RetryOn {
                    connect_error: #connect_error,
                    reset: #reset,
                    timeout: #timeout,
                    statuses: &[#(#statuses),*],
                },
                methods: #methods,
                budget_ratio: #ratio,
                budget_min: #min,
                budget_window: #window,
                backoff: #backoff,
                max_backoff: #max_backoff,
            }),
        });
    }
    if let Some(h) = &u.health {
        let path = &h.path;
        let interval = duration(h.interval);
        let timeout = duration(h.timeout);
        let unhealthy = Literal::u32_unsuffixed(h.unhealthy_after);
        let healthy = Literal::u32_unsuffixed(h.healthy_after);
        let (lo, hi) = (Literal::u16_unsuffixed(h.expect.0), Literal::u16_unsuffixed(h.expect.1));
        fields.extend(quote! {
            health: Some(HealthSpec {
                path: #path,
                interval: #interval,
                timeout: #timeout,
                unhealthy_after: #unhealthy,
                healthy_after: #healthy,
                expect: (#lo, #hi),
            }),
        });
    }
    if let Some(e) = &u.eject {
        let failures = Literal::u32_unsuffixed(e.consecutive_failures);
        let base_time = duration(e.base_time);
        let max_time = duration(e.max_time);
        let max_percent = Literal::u8_unsuffixed(e.max_percent);
        fields.extend(quote! {
            eject: Some(EjectSpec {
                consecutive_failures: #failures,
                base_time: #base_time,
                max_time: #max_time,
                max_percent: #max_percent,
            }),
        });
    }
    if let Some(max) = u.max_connections {
        let max = Literal::u32_unsuffixed(max);
        fields.extend(quote!(max_connections: Some(#max),));
    }
    if u.queue_timeout != crate::model::DEFAULT_QUEUE_TIMEOUT {
        let queue_timeout = duration(u.queue_timeout);
        fields.extend(quote!(queue_timeout: #queue_timeout,));
    }
    if let Some(resolve) = u.resolve {
        let resolve = duration(resolve);
        fields.extend(quote!(resolve: Some(#resolve),));
    }
    if let Some(tls) = &u.tls {
        let ca_file = option(tls.ca_file.as_ref().map(|f| quote!(#f)));
        let client = option(tls.client.as_ref().map(|(cert, key)| quote!((#cert, #key))));
        fields.extend(quote!(tls: Some(UpstreamTlsSpec { ca_file: #ca_file, client: #client }),));
    }
    if u.http2 {
        fields.extend(quote!(http2: true,));
    }
    quote! {
        UpstreamSpec {
            name: #name,
            urls: &[#(#urls),*],
            #fields
            ..UpstreamSpec::DEFAULT
        }
    }
}

/// The index of `cors` in `policies`, added if new.
fn intern_cors<'a>(policies: &mut Vec<&'a Cors>, cors: Option<&'a Cors>) -> Option<usize> {
    let cors = cors?;
    Some(match policies.iter().position(|p| **p == *cors) {
        Some(i) => i,
        None => {
            policies.push(cors);
            policies.len() - 1
        }
    })
}

/// `&CORS[i]`.
fn cors_ref(i: usize) -> TokenStream {
    let i = Literal::usize_unsuffixed(i);
    quote!(&CORS[#i])
}

/// A field of `OperationSpec` whose value several operations may share: such a value is written once, as a
/// `const` (or a `static` the operations point to), and referred to by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SharedKind {
    Security,
    SchemaParams,
    Responses,
    Body,
    Cache,
    Ip,
    Transform,
    ResponsesCheck,
}

impl SharedKind {
    /// The name of its items, before their number (`SECURITY_0`).
    fn prefix(self) -> &'static str {
        match self {
            SharedKind::Security => "SECURITY",
            SharedKind::SchemaParams => "SCHEMA_PARAMS",
            SharedKind::Responses => "RESPONSES",
            SharedKind::Body => "BODY",
            SharedKind::Cache => "CACHE",
            SharedKind::Ip => "IP",
            SharedKind::Transform => "TRANSFORM",
            SharedKind::ResponsesCheck => "RESPONSES_CHECK",
        }
    }

    /// The item's type.
    fn ty(self) -> TokenStream {
        match self {
            SharedKind::Security => quote!(&[&[Requirement]]),
            SharedKind::SchemaParams => quote!(&[SchemaParamSpec]),
            SharedKind::Responses => quote!(&[GatewayResponseSpec]),
            SharedKind::Body => quote!(BodySpec),
            SharedKind::Cache => quote!(CacheSpec),
            SharedKind::Ip => quote!(IpSpec),
            SharedKind::Transform => quote!(TransformSpec),
            SharedKind::ResponsesCheck => quote!(ResponseCheckSpec),
        }
    }

    /// Whether the field points to the value (`Some(&CACHE_0)`, a `static`) rather than holding it (a `const`).
    fn by_ref(self) -> bool {
        matches!(
            self,
            SharedKind::Cache | SharedKind::Ip | SharedKind::Transform | SharedKind::ResponsesCheck
        )
    }

    /// What the value is, for its doc comment.
    fn what(self) -> &'static str {
        match self {
            SharedKind::Security => "The security",
            SharedKind::SchemaParams => "The schema-checked parameters",
            SharedKind::Responses => "The gateway response renderings",
            SharedKind::Body => "The request body",
            SharedKind::Cache => "The response caching",
            SharedKind::Ip => "The client addresses admitted",
            SharedKind::Transform => "The transforms",
            SharedKind::ResponsesCheck => "The response checks",
        }
    }
}

/// One value of a shareable field, and the operations that have it.
struct SharedEntry {
    kind: SharedKind,
    value: TokenStream,
    /// What follows "… of N operations" in its doc comment (`: \`api_key\` or \`bearer\``).
    detail: String,
    uses: usize,
    /// Its item's name, once [`SharedValues::name_repeated`] found it used more than once.
    name: Option<proc_macro2::Ident>,
}

/// The shareable values of every operation's fields, each once.
#[derive(Default)]
struct SharedValues {
    entries: Vec<SharedEntry>,
    /// By kind and the value's tokens as text.
    index: std::collections::BTreeMap<(SharedKind, String), usize>,
}

impl SharedValues {
    /// Records one use of `value` as a `kind` field; the entry's index.
    fn add(&mut self, kind: SharedKind, value: TokenStream, detail: impl FnOnce() -> String) -> usize {
        let key = (kind, value.to_string());
        if let Some(&i) = self.index.get(&key) {
            self.entries[i].uses += 1;
            return i;
        }
        self.entries.push(SharedEntry {
            kind,
            value,
            detail: detail(),
            uses: 1,
            name: None,
        });
        self.index.insert(key, self.entries.len() - 1);
        self.entries.len() - 1
    }

    /// Names every entry used by more than one operation: per kind, numbered in order of first use.
    fn name_repeated(&mut self) {
        let mut counts: std::collections::BTreeMap<SharedKind, usize> = std::collections::BTreeMap::new();
        for entry in self.entries.iter_mut().filter(|e| e.uses > 1) {
            let n = counts.entry(entry.kind).or_default();
            entry.name = Some(format_ident!("{}_{}", entry.kind.prefix(), *n));
            *n += 1;
        }
    }

    /// The field's value: the item's name, or the value itself for a value only one operation has.
    fn field(&self, i: usize) -> TokenStream {
        let entry = &self.entries[i];
        match (&entry.name, entry.kind.by_ref()) {
            (Some(name), false) => quote!(#name),
            (Some(name), true) => quote!(Some(&#name)),
            (None, false) => entry.value.clone(),
            (None, true) => {
                let value = &entry.value;
                quote!(Some(&#value))
            }
        }
    }

    /// The items of the named entries, by kind, each kind in order of first use.
    fn items(&self) -> TokenStream {
        let mut named: Vec<&SharedEntry> = self.entries.iter().filter(|e| e.name.is_some()).collect();
        named.sort_by_key(|e| e.kind);
        let items = named.into_iter().map(|entry| {
            let name = &entry.name;
            let ty = entry.kind.ty();
            let value = &entry.value;
            let doc = format!(" {} of {} operations{}.", entry.kind.what(), entry.uses, entry.detail);
            if entry.kind.by_ref() {
                quote!(#[doc = #doc] static #name: #ty = #value;)
            } else {
                quote!(#[doc = #doc] const #name: #ty = #value;)
            }
        });
        quote!(#(#items)*)
    }
}

/// A field of an operation's entry: written as it is, or one of the [`SharedValues`].
enum FieldValue {
    Tokens(TokenStream),
    Shared(usize),
}

/// An operation's entry before the shared values are named: the fields that differ from
/// `OperationSpec::DEFAULT`, in declaration order.
struct OperationFields(Vec<(&'static str, FieldValue)>);

impl OperationFields {
    fn set(&mut self, name: &'static str, tokens: TokenStream) {
        self.0.push((name, FieldValue::Tokens(tokens)));
    }

    fn share(&mut self, name: &'static str, entry: usize) {
        self.0.push((name, FieldValue::Shared(entry)));
    }

    fn render(&self, shared: &SharedValues) -> TokenStream {
        let fields = self.0.iter().map(|(name, value)| {
            let name = format_ident!("{}", name);
            let value = match value {
                FieldValue::Tokens(tokens) => tokens.clone(),
                FieldValue::Shared(i) => shared.field(*i),
            };
            quote!(#name: #value,)
        });
        quote! {
            OperationSpec {
                #(#fields)*
                ..OperationSpec::DEFAULT
            }
        }
    }
}

/// `security` for a doc comment: `` `a` and `b`, or `c` `` (with the scopes each must grant).
fn security_detail(security: &[Vec<Requirement>], schemes: &[Scheme]) -> String {
    let alternatives: Vec<String> = security
        .iter()
        .map(|alternative| {
            let all: Vec<String> = alternative
                .iter()
                .map(|r| {
                    let name = schemes.get(r.scheme).map_or("?", |s| s.name.as_str());
                    if r.scopes.is_empty() {
                        format!("`{name}`")
                    } else {
                        format!("`{name}` ({})", r.scopes.join(", "))
                    }
                })
                .collect();
            if all.is_empty() {
                String::from("none")
            } else {
                all.join(" and ")
            }
        })
        .collect();
    format!(": {}", super::doc_text(&alternatives.join(", or ")))
}

/// The fields of `op` that differ from `OperationSpec::DEFAULT` (its id, method, template, route and target
/// always), with the shareable ones recorded in `shared`.
fn operation(op: &Operation, cors: Option<usize>, schemes: &[Scheme], shared: &mut SharedValues) -> OperationFields {
    let mut fields = OperationFields(Vec::new());
    let id = &op.id;
    let method = format_ident!("{}", op.method);
    let template = &op.template;
    let route = &op.route;
    fields.set("id", quote!(#id));
    fields.set("method", quote!(Method::#method));
    fields.set("template", quote!(#template));
    fields.set("route", quote!(#route));
    if !op.path_params.is_empty() {
        let path_params = &op.path_params;
        fields.set("path_params", quote!(&[#(#path_params),*]));
    }
    // All-empty suffixes are left out: the common case stays short.
    if !op.path_suffixes.iter().all(String::is_empty) {
        let suffixes = &op.path_suffixes;
        fields.set("path_suffixes", quote!(&[#(#suffixes),*]));
    }
    let validate = match (&op.params, &op.merged) {
        // A route serving several operations accepts what any of their parameter structs accepts.
        (Some(_), Some(merged)) if !merged.check.is_empty() => {
            let check = format_ident!("{}", merged.check);
            Some(quote!(Some(params::#check)))
        }
        (Some(params), _) => {
            let ty = format_ident!("{}", params.name);
            Some(quote!(Some(check::<params::#ty>)))
        }
        (None, _) => None,
    };
    if let Some(validate) = validate {
        fields.set("validate", validate);
    }
    if !op.security.is_empty() {
        let security = op
            .security
            .iter()
            .map(|alternative| alternative.iter().map(requirement).collect::<Vec<_>>());
        let value = quote!(&[#(&[#(#security),*]),*]);
        let entry = shared.add(SharedKind::Security, value, || security_detail(&op.security, schemes));
        fields.share("security", entry);
    }
    if let Some(cors) = cors {
        let cors = cors_ref(cors);
        fields.set("cors", quote!(Some(#cors)));
    }
    if let Some(ip) = &op.ip {
        fields.share("ip", shared.add(SharedKind::Ip, ip_spec(ip), String::new));
    }
    if let Some(c) = op.compression {
        let min_size = Literal::u64_unsuffixed(c.min_size);
        let decompress = c.decompress_requests;
        fields.set(
            "compression",
            quote!(Some(CompressionSpec { min_size: #min_size, decompress_requests: #decompress })),
        );
    }
    if op.websocket {
        fields.set("websocket", quote!(true));
    }
    if !op.plans.is_empty() {
        let plans = op.plans.iter().map(|p| Literal::usize_unsuffixed(*p));
        fields.set("plans", quote!(&[#(#plans),*]));
    }
    if let Some(t) = &op.throttle {
        let t = throttle(t);
        fields.set("throttle", quote!(Some(#t)));
    }
    if let Some(policy) = &op.cache {
        fields.share(
            "cache",
            shared.add(SharedKind::Cache, cache_policy(policy), String::new),
        );
    }
    if !op.responses.is_empty() {
        let responses = op.responses.iter().map(gateway_response);
        let value = quote!(&[#(#responses),*]);
        fields.share("responses", shared.add(SharedKind::Responses, value, String::new));
    }
    if !is_default_body(&op.body) {
        let value = body(&op.body);
        if op.body.media.is_empty() {
            // `BodySpec::limit(N)`: one line, not worth a name.
            fields.set("body", value);
        } else {
            fields.share("body", shared.add(SharedKind::Body, value, String::new));
        }
    }
    if !op.schema_params.is_empty() {
        let params = op.schema_params.iter().map(schema_param);
        let value = quote!(&[#(#params),*]);
        let detail = || {
            let names: Vec<String> = op
                .schema_params
                .iter()
                .map(|p| format!("`{}` ({})", p.name, p.location.as_str()))
                .collect();
            format!(": {}", super::doc_text(&names.join(", ")))
        };
        fields.share("schema_params", shared.add(SharedKind::SchemaParams, value, detail));
    }
    if let Some(t) = &op.transform {
        fields.share(
            "transform",
            shared.add(SharedKind::Transform, transform(t), String::new),
        );
    }
    if let Some(c) = &op.responses_check {
        fields.share(
            "responses_check",
            shared.add(SharedKind::ResponsesCheck, responses_check(c), String::new),
        );
    }
    fields.set("target", target(&op.target));
    fields
}

/// Whether `body` is `OperationSpec::DEFAULT`'s: not validated, no media types, the default limit.
fn is_default_body(body: &Body) -> bool {
    !body.validate && body.media.is_empty() && body.max == crate::validate::contract::DEFAULT_MAX_BODY
}

fn body(body: &Body) -> TokenStream {
    let max = Literal::u64_unsuffixed(body.max);
    if !body.validate && body.media.is_empty() {
        return quote!(BodySpec::limit(#max));
    }
    let validate = body.validate;
    let required = body.required;
    let media = body.media.iter().map(|m| {
        let range = &m.range;
        let schema = option(m.schema.map(|i| {
            let i = Literal::usize_unsuffixed(i);
            quote!(#i)
        }));
        let form = m.form.iter().map(form_field);
        quote!(MediaSpec { range: #range, schema: #schema, form: &[#(#form),*] })
    });
    quote!(BodySpec { max: #max, validate: #validate, required: #required, media: &[#(#media),*] })
}

fn form_field(field: &FormField) -> TokenStream {
    let name = &field.name;
    let scalar = format_ident!("{}", field.scalar);
    let list = field.list;
    quote!(FormField { name: #name, scalar: FormScalar::#scalar, list: #list })
}

fn schema_param(param: &SchemaParam) -> TokenStream {
    let name = &param.name;
    let location = match param.location {
        Location::Path(i) => {
            let i = Literal::usize_unsuffixed(i);
            quote!(ParamIn::Path(#i))
        }
        Location::Query => quote!(ParamIn::Query),
        Location::Header => quote!(ParamIn::Header),
        Location::Cookie => quote!(ParamIn::Cookie),
    };
    let style = match &param.deep_object {
        Some(fields) => {
            let fields = fields.iter().map(form_field);
            quote!(SchemaParamStyle::DeepObject(&[#(#fields),*]))
        }
        None => quote!(SchemaParamStyle::Json),
    };
    let required = param.required;
    let schema = Literal::usize_unsuffixed(param.schema);
    quote!(SchemaParamSpec { name: #name, location: #location, style: #style, required: #required, schema: #schema })
}

fn edits(edits: &Edits) -> TokenStream {
    if edits.is_empty() {
        return quote!(EditSpec::NONE);
    }
    let remove = &edits.remove;
    let rename = edits.rename.iter().map(|(from, to)| quote!((#from, #to)));
    let set = edits.set.iter().map(|(name, template)| {
        let parts = template_parts(template);
        quote!((#name, &[#(#parts),*]))
    });
    quote!(EditSpec { remove: &[#(#remove),*], rename: &[#(#rename),*], set: &[#(#set),*] })
}

fn index(i: Option<usize>) -> TokenStream {
    option(i.map(|i| {
        let i = Literal::usize_unsuffixed(i);
        quote!(#i)
    }))
}

fn transform(t: &Transform) -> TokenStream {
    let request_headers = edits(&t.request_headers);
    let request_query = edits(&t.request_query);
    let request_body = index(t.request_body);
    let status = t.response_status.iter().map(|(from, to)| {
        let from = Literal::u16_unsuffixed(*from);
        let to = Literal::u16_unsuffixed(*to);
        quote!((#from, #to))
    });
    let response_headers = edits(&t.response_headers);
    let response_body = index(t.response_body);
    quote! {
        TransformSpec {
            request: RequestTransformSpec { headers: #request_headers, query: #request_query, body: #request_body },
            response: ResponseTransformSpec { status: &[#(#status),*], headers: #response_headers, body: #response_body },
        }
    }
}

fn responses_check(check: &ResponsesCheck) -> TokenStream {
    let mode = if check.enforce {
        quote!(ResponseCheckMode::Enforce)
    } else {
        quote!(ResponseCheckMode::Report)
    };
    let sample = Literal::u32_unsuffixed(check.sample_ppm);
    let max_body = Literal::u64_unsuffixed(check.max_body);
    let responses = check.responses.iter().map(|(status, media)| {
        let status = match status {
            StatusMatch::Code(c) => {
                let c = Literal::u16_unsuffixed(*c);
                quote!(StatusMatch::Code(#c))
            }
            StatusMatch::Class(c) => {
                let c = Literal::u16_unsuffixed(*c);
                quote!(StatusMatch::Class(#c))
            }
            StatusMatch::Default => quote!(StatusMatch::Default),
        };
        let media = media.iter().map(|(range, schema)| {
            let schema = index(*schema);
            quote!((#range, #schema))
        });
        quote!(ResponseSchemaSpec { status: #status, media: &[#(#media),*] })
    });
    quote! {
        ResponseCheckSpec { mode: #mode, sample_ppm: #sample, max_body: #max_body, responses: &[#(#responses),*] }
    }
}

fn path_parts(path: &[PathPart]) -> Vec<TokenStream> {
    path.iter()
        .map(|part| match part {
            PathPart::Literal(text) => quote!(PathPart::Literal(#text)),
            PathPart::Param(i) => {
                let i = Literal::usize_unsuffixed(*i);
                quote!(PathPart::Param(#i))
            }
            PathPart::Stage(name) => quote!(PathPart::Stage(#name)),
        })
        .collect()
}

/// An upstream path as the runtime's `path!` spells it (`path!("/pets/{0}")`: one line where the parts take one
/// each), or part by part when literal text holds a brace, which `path!` would read as a placeholder (validation
/// refuses braces in paths today; this keeps the output right if that changes).
fn upstream_path(path: &[PathPart]) -> TokenStream {
    let mut template = String::new();
    for part in path {
        match part {
            PathPart::Literal(text) if !text.contains(['{', '}']) => template.push_str(text),
            PathPart::Param(i) => template.push_str(&format!("{{{i}}}")),
            PathPart::Stage(name) if !name.is_empty() && !name.contains(['{', '}']) => {
                template.push_str(&format!("{{stage.{name}}}"));
            }
            PathPart::Literal(_) | PathPart::Stage(_) => {
                let parts = path_parts(path);
                return quote!(&[#(#parts),*]);
            }
        }
    }
    quote!(path!(#template))
}

fn target(target: &Target) -> TokenStream {
    match target {
        Target::Upstream { upstream, path } => {
            let upstream = Literal::usize_unsuffixed(*upstream);
            let path = upstream_path(path);
            quote!(TargetSpec::proxy(#upstream, #path))
        }
        Target::Split { sides, sticky, path } => {
            let sides = sides.iter().map(|(upstream, weight)| {
                let upstream = Literal::usize_unsuffixed(*upstream);
                let weight = Literal::u32_unsuffixed(*weight);
                quote!(SplitSide { upstream: #upstream, weight: #weight })
            });
            let sticky = option(sticky.as_ref().map(placeholder));
            let path = upstream_path(path);
            quote! {
                TargetSpec::Split(SplitTarget { sides: &[#(#sides),*], sticky: #sticky, path: #path })
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
        Target::Function(function) => {
            let name = &function.path;
            let glue = format_ident!("{}", function.glue);
            let timeout = duration(function.timeout);
            quote! {
                TargetSpec::Function(FunctionSpec { name: #name, call: functions::#glue, timeout: #timeout })
            }
        }
        Target::Store(target) => store_target(target),
    }
}

fn store(store: &Store) -> TokenStream {
    let name = &store.name;
    let backend = match &store.database {
        StoreDatabase::Sqlite { path, normal_sync } => {
            let synchronous = if *normal_sync {
                quote!(StoreSync::Normal)
            } else {
                quote!(StoreSync::Full)
            };
            quote!(StoreBackendSpec::Sqlite { path: #path, synchronous: #synchronous })
        }
        StoreDatabase::Postgres { url } => quote!(StoreBackendSpec::Postgres { url: #url }),
    };
    let tables = store.tables.iter().map(|table| {
        let name = &table.name;
        let indexes = &table.indexes;
        quote!(StoreTableSpec { name: #name, indexes: &[#(#indexes),*] })
    });
    quote! {
        StoreSpec { name: #name, backend: #backend, tables: &[#(#tables),*] }
    }
}

fn shared(shared: &crate::model::Shared) -> TokenStream {
    let redis = &shared.redis;
    let prefix = &shared.prefix;
    let timeout = duration(shared.timeout);
    let mode = |closed: bool| {
        if closed {
            quote!(FailMode::Closed)
        } else {
            quote!(FailMode::Open)
        }
    };
    let limits = mode(shared.limits_closed);
    let quotas = mode(shared.quotas_closed);
    let keys = shared.keys;
    let keys_refresh = duration(shared.keys_refresh);
    let cache = shared.cache;
    quote! {
        &SharedSpec {
            redis: #redis,
            prefix: #prefix,
            timeout: #timeout,
            on_failure: OnFailure { limits: #limits, quotas: #quotas },
            limits: true,
            keys: #keys,
            keys_refresh: #keys_refresh,
            cache: #cache,
        }
    }
}

fn store_target(target: &crate::model::StoreTarget) -> TokenStream {
    let store = Literal::usize_unsuffixed(target.store);
    let table = &target.table;
    let action = match target.action {
        StoreAction::Get => quote!(StoreAction::Get),
        StoreAction::Put => quote!(StoreAction::Put),
        StoreAction::Merge => quote!(StoreAction::Merge),
        StoreAction::Delete => quote!(StoreAction::Delete),
        StoreAction::List => quote!(StoreAction::List),
        StoreAction::Create => quote!(StoreAction::Create),
    };
    let key = target.key.iter().map(|part| match part {
        KeyPart::Literal(text) => quote!(StoreKeyPart::Literal(#text)),
        KeyPart::Param(i) => {
            let i = Literal::usize_unsuffixed(*i);
            quote!(StoreKeyPart::Param(#i))
        }
    });
    let filters = target.filters.iter().map(|f| {
        let query = &f.query;
        let kind = format_ident!("{}", f.kind);
        quote!(StoreFilterSpec { query: #query, kind: StoreFilterKind::#kind })
    });
    let id_field = &target.id_field;
    quote! {
        TargetSpec::Store(StoreTargetSpec {
            store: #store,
            table: #table,
            action: #action,
            key: &[#(#key),*],
            filters: &[#(#filters),*],
            id_field: #id_field,
        })
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

fn ip_spec(ip: &IpPolicy) -> TokenStream {
    let block = |c: &Cidr| {
        let prefix = Literal::u8_unsuffixed(c.prefix);
        match c.addr {
            std::net::IpAddr::V4(v4) => {
                let octets = v4.octets().map(Literal::u8_unsuffixed);
                quote!(Cidr::v4([#(#octets),*], #prefix))
            }
            std::net::IpAddr::V6(v6) => {
                let segments = v6.segments().map(Literal::u16_unsuffixed);
                quote!(Cidr::v6([#(#segments),*], #prefix))
            }
        }
    };
    let allow = option(ip.allow.as_ref().map(|list| {
        let list = list.iter().map(block);
        quote!(&[#(#list),*])
    }));
    let deny = ip.deny.iter().map(block);
    quote!(IpSpec { allow: #allow, deny: &[#(#deny),*] })
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

fn stage(stage: &Stage) -> TokenStream {
    let name = &stage.name;
    let variables = stage.variables.iter().map(|(k, v)| quote!((#k, #v)));
    let base_path = &stage.base_path;
    let cache_enabled = stage.cache_enabled;
    let throttle = option(stage.throttle.as_ref().map(throttle));
    let cors_origins = option(stage.cors_origins.as_ref().map(|origins| {
        let origins = origins.iter().map(origin);
        quote!(&[#(#origins),*])
    }));
    let upstreams = stage.upstreams.iter().map(|u| {
        let upstream = Literal::usize_unsuffixed(u.upstream);
        let urls = &u.urls;
        let timeout = option(u.timeout.map(duration));
        let connect_timeout = option(u.connect_timeout.map(duration));
        quote!(StageUpstreamSpec {
            upstream: #upstream,
            urls: &[#(#urls),*],
            timeout: #timeout,
            connect_timeout: #connect_timeout,
        })
    });
    quote!(StageSpec {
        name: #name,
        variables: &[#(#variables),*],
        base_path: #base_path,
        cache_enabled: #cache_enabled,
        throttle: #throttle,
        cors_origins: #cors_origins,
        upstreams: &[#(#upstreams),*],
    })
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

fn duration(d: std::time::Duration) -> TokenStream {
    let ms = millis(d);
    quote!(Duration::from_millis(#ms))
}

fn requirement(requirement: &Requirement) -> TokenStream {
    let scheme = Literal::usize_unsuffixed(requirement.scheme);
    let scopes = &requirement.scopes;
    quote!(Requirement { scheme: #scheme, scopes: &[#(#scopes),*] })
}

fn scheme(scheme: &Scheme) -> TokenStream {
    let name = &scheme.name;
    let kind = match &scheme.kind {
        SchemeKind::ApiKey(key) => {
            let key = key_scheme(key);
            quote!(SchemeKind::ApiKey(#key))
        }
        SchemeKind::Jwt(jwt) => {
            let issuer = option(jwt.issuer.as_ref().map(|i| quote!(#i)));
            let audiences = &jwt.audiences;
            let algorithms = jwt.algorithms.iter().map(|a| {
                let a = format_ident!("{}", a);
                quote!(JwtAlgorithm::#a)
            });
            let keys = match &jwt.keys {
                JwtKeys::Jwks(json) => quote!(JwtKeys::Jwks(#json)),
                JwtKeys::JwksUrl(url) => quote!(JwtKeys::JwksUrl(#url)),
                JwtKeys::Discovery(url) => quote!(JwtKeys::Discovery(#url)),
                JwtKeys::SecretEnv(var) => quote!(JwtKeys::SecretEnv(#var)),
            };
            let leeway = duration(jwt.leeway);
            let forward = jwt.forward_authorization;
            let claims = jwt.claims_headers.iter().map(|(h, c)| quote!((#h, #c)));
            quote!(SchemeKind::Jwt(JwtSpec {
                issuer: #issuer,
                audiences: &[#(#audiences),*],
                algorithms: &[#(#algorithms),*],
                keys: #keys,
                leeway: #leeway,
                forward_authorization: #forward,
                claims_headers: &[#(#claims),*],
            }))
        }
        SchemeKind::Presented(p) => {
            let auth_scheme = &p.auth_scheme;
            quote!(SchemeKind::Presented(PresentedSpec { auth_scheme: #auth_scheme }))
        }
        SchemeKind::MutualTls => quote!(SchemeKind::MutualTls),
        SchemeKind::Authorizer(a) => {
            let credential = key_scheme(&a.credential);
            let upstream = Literal::usize_unsuffixed(a.upstream);
            let path = &a.path;
            let ttl = duration(a.cache_ttl);
            let headers = &a.forward_headers;
            quote!(SchemeKind::Authorizer(AuthorizerSpec {
                credential: #credential,
                upstream: #upstream,
                path: #path,
                cache_ttl: #ttl,
                forward_headers: &[#(#headers),*],
            }))
        }
    };
    quote!(SchemeSpec { name: #name, kind: #kind })
}

fn origin(origin: &Origin) -> TokenStream {
    match origin {
        Origin::Any => quote!(OriginSpec::Any),
        Origin::Exact(origin) => quote!(OriginSpec::Exact(#origin)),
        Origin::Wildcard(prefix, suffix) => quote!(OriginSpec::Wildcard { prefix: #prefix, suffix: #suffix }),
    }
}

fn cors(cors: &Cors) -> TokenStream {
    let origins = cors.allow_origins.iter().map(origin);
    let allow_headers = &cors.allow_headers;
    let expose_headers = &cors.expose_headers;
    let credentials = cors.allow_credentials;
    let max_age = option(cors.max_age.map(duration));
    quote!(CorsSpec {
        allow_origins: &[#(#origins),*],
        allow_headers: &[#(#allow_headers),*],
        expose_headers: &[#(#expose_headers),*],
        allow_credentials: #credentials,
        max_age: #max_age,
    })
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
