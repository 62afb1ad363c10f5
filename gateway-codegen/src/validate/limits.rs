//! API keys and limits: security schemes, usage plans, per-operation throttles and plan restrictions.

use super::{inherited, plain_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{ApiKeyScheme, KeyLocation, QuotaPeriod, Throttle, UsagePlan};
use crate::parse::ext::{self, ThrottleExt};
use crate::parse::{ParsedOperation, ParsedSpec};

/// A token bucket's figures; `per` is refused where it makes no sense (a plan's bucket is per key).
pub(super) fn check_throttle(
    t: &ThrottleExt,
    at: &str,
    per_allowed: bool,
    diags: &mut Diagnostics,
) -> Option<Throttle> {
    let mut ok = true;
    if t.rate == 0 {
        diags.push(
            Diagnostic::error(format!("{at}/rate"), "`rate` must be at least 1 request a second")
                .help("to refuse every request, leave the operation out with `skip: true`"),
        );
        ok = false;
    }
    let burst = t.burst.unwrap_or(t.rate);
    if t.burst == Some(0) {
        diags.push(Diagnostic::error(format!("{at}/burst"), "`burst` must be at least 1"));
        ok = false;
    }
    if t.per.is_some() && !per_allowed {
        diags.push(
            Diagnostic::error(format!("{at}/per"), "a usage plan's throttle is per API key already")
                .help("remove `per`"),
        );
        ok = false;
    }
    ok.then_some(Throttle {
        rate: t.rate,
        burst: burst.max(1),
        per_ip: t.per == Some(ext::ThrottlePer::Ip),
    })
}

pub(super) fn check_usage_plans(spec: &ParsedSpec, diags: &mut Diagnostics) -> Vec<UsagePlan> {
    let mut plans = Vec::new();
    for (name, plan) in &spec.root.usage_plans {
        let at = format!("/x-gateway/usage_plans/{}", crate::locate::escape_segment(name));
        if !plain_name(name) {
            diags.push(
                Diagnostic::error(&at, format!("plan name `{name}` is not a plain name"))
                    .help("use letters, digits, `-`, `_` and `.`: key files refer to it"),
            );
        }
        let throttle = plan
            .throttle
            .as_ref()
            .and_then(|t| check_throttle(t, &format!("{at}/throttle"), false, diags));
        let quota = plan.quota.as_ref().and_then(|q| {
            if q.limit == 0 {
                diags.push(Diagnostic::error(
                    format!("{at}/quota/limit"),
                    "a quota `limit` must be at least 1",
                ));
                return None;
            }
            let period = match q.period {
                ext::QuotaPeriodExt::Day => QuotaPeriod::Day,
                ext::QuotaPeriodExt::Week => QuotaPeriod::Week,
                ext::QuotaPeriodExt::Month => QuotaPeriod::Month,
            };
            Some((q.limit, period))
        });
        plans.push(UsagePlan {
            name: name.clone(),
            throttle,
            quota,
        });
    }
    plans
}

/// The operation's bucket: its own `throttle`, else its path item's (the top-level one is API-wide, not a default).
pub(super) fn op_throttle(op: &ParsedOperation, diags: &mut Diagnostics) -> Option<Throttle> {
    let (at, t) = inherited(op, "throttle", |e| e.throttle.as_ref())?;
    check_throttle(t, &at, true, diags)
}

/// `plans:` on the operation or its path item: names of defined usage plans.
pub(super) fn check_op_plans(op: &ParsedOperation, plans: &[UsagePlan], diags: &mut Diagnostics) -> Vec<usize> {
    let Some((at, names)) = inherited(op, "plans", |e| e.plans.as_ref()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match plans.iter().position(|p| &p.name == name) {
            Some(index) => out.push(index),
            None => {
                let mut d = Diagnostic::error(format!("{at}/{i}"), format!("usage plan `{name}` is not defined"));
                d = match did_you_mean(name, plans.iter().map(|p| p.name.as_str())) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.help("define it under the top-level `x-gateway: { usage_plans: { NAME: { ... } } }`"),
                };
                diags.push(d);
            }
        }
    }
    out
}

/// The operation's effective `security` as API key schemes. Schemes the gateway cannot check yet (http, oauth2,
/// openIdConnect) get one warning each, and requirements using them are left to the upstream; an empty
/// requirement (`{}`) makes the operation open.
pub(super) fn check_security(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    unenforced: &mut std::collections::HashSet<String>,
    diags: &mut Diagnostics,
) -> Vec<Vec<ApiKeyScheme>> {
    let (at, requirements) = match (&op.operation.security, &spec.openapi.security) {
        (Some(own), _) => (format!("{}/security", op.pointer), own),
        (None, Some(global)) => (String::from("/security"), global),
        (None, None) => return Vec::new(),
    };
    if requirements.iter().any(indexmap::IndexMap::is_empty) {
        return Vec::new();
    }
    let schemes = spec.openapi.components.as_ref().map(|c| &c.security_schemes);
    let mut alternatives = Vec::new();
    for (i, requirement) in requirements.iter().enumerate() {
        let mut all = Vec::new();
        let mut enforceable = true;
        for name in requirement.keys() {
            let scheme = schemes.and_then(|s| s.get(name));
            let scheme = match scheme {
                Some(openapiv3::ReferenceOr::Item(scheme)) => scheme,
                Some(openapiv3::ReferenceOr::Reference { .. }) => {
                    diags.push(
                        Diagnostic::error(
                            format!("{at}/{i}/{}", crate::locate::escape_segment(name)),
                            format!("security scheme `{name}` is a `$ref`, which is not supported here"),
                        )
                        .help("define the scheme inline under `components.securitySchemes`"),
                    );
                    enforceable = false;
                    continue;
                }
                None => {
                    let known: Vec<&str> = schemes
                        .map(|s| s.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    let mut d = Diagnostic::error(
                        format!("{at}/{i}/{}", crate::locate::escape_segment(name)),
                        format!("security scheme `{name}` is not defined"),
                    );
                    d = match did_you_mean(name, known.iter().copied()) {
                        Some(best) => d.help(format!("did you mean `{best}`?")),
                        None => d.help(format!("define it under `components.securitySchemes.{name}`")),
                    };
                    diags.push(d);
                    enforceable = false;
                    continue;
                }
            };
            match scheme {
                openapiv3::SecurityScheme::APIKey {
                    location,
                    name: key_name,
                    extensions,
                    ..
                } => all.push(ApiKeyScheme {
                    scheme: name.clone(),
                    location: match location {
                        openapiv3::APIKeyLocation::Header => KeyLocation::Header,
                        openapiv3::APIKeyLocation::Query => KeyLocation::Query,
                        openapiv3::APIKeyLocation::Cookie => KeyLocation::Cookie,
                    },
                    name: key_name.clone(),
                    forward: scheme_ext(name, extensions, diags).forward_credentials.unwrap_or(false),
                }),
                other => {
                    enforceable = false;
                    if unenforced.insert(name.clone()) {
                        let kind = match other {
                            openapiv3::SecurityScheme::HTTP { scheme, .. } => format!("http {scheme}"),
                            openapiv3::SecurityScheme::OAuth2 { .. } => String::from("oauth2"),
                            openapiv3::SecurityScheme::OpenIDConnect { .. } => String::from("openIdConnect"),
                            openapiv3::SecurityScheme::APIKey { .. } => String::from("apiKey"),
                        };
                        diags.push(
                            Diagnostic::warning(format!("/components/securitySchemes/{}", crate::locate::escape_segment(name)), format!("security scheme `{name}` ({kind}) is not checked by the gateway; requests carry their credentials to the upstream, which must check them"))
                                .help("the gateway checks `apiKey` schemes today; JWT bearer tokens arrive with JWT auth"),
                        );
                    }
                }
            }
        }
        if enforceable && !all.is_empty() {
            alternatives.push(all);
        }
    }
    alternatives
}

/// The `x-gateway` of an `apiKey` scheme; a bad one is reported (once per operation using it; the diagnostics
/// collapse repeats) and read as the default.
fn scheme_ext(
    name: &str,
    extensions: &indexmap::IndexMap<String, serde_json::Value>,
    diags: &mut Diagnostics,
) -> ext::SchemeExt {
    let Some(value) = extensions.get(ext::EXTENSION) else {
        return ext::SchemeExt::default();
    };
    let at = format!(
        "/components/securitySchemes/{}/{}",
        crate::locate::escape_segment(name),
        ext::EXTENSION
    );
    match serde_path_to_error::deserialize::<_, ext::SchemeExt>(value) {
        Ok(parsed) => parsed,
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let mut d = Diagnostic::error(
                &at,
                format!("invalid `x-gateway` on security scheme `{name}`: {message}"),
            );
            if path != "." {
                d = d.help(format!(
                    "at `{path}`; the key here is `forward_credentials: true|false`"
                ));
            } else {
                d = d.help("the key here is `forward_credentials: true|false`");
            }
            diags.push(d);
            ext::SchemeExt::default()
        }
    }
}
