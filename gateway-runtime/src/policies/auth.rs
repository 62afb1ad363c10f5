//! The auth phase: who is calling. API keys presented as the operation's `security` asks (header, query or cookie).
//!
//! Missing or unknown key: `401`. Disabled key, a key whose plan is not in this API, or a plan the operation does
//! not admit: `403`. The presented value is never logged; the caller is known by the key's name from here on.

use std::borrow::Cow;
use std::sync::Arc;

use http::request;

use crate::error::{ErrorKind, GatewayError};
use crate::policies::keys::{ApiKey, KeySet};
use crate::spec::{ApiKeyScheme, ApiSpec, KeyLocation, OperationSpec};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Their key.
    pub key: Arc<ApiKey>,
    /// Index of their usage plan in [`ApiSpec::usage_plans`].
    pub plan: Option<usize>,
}

/// Checks the key(s) `op` asks for. `Ok(None)` for an operation that asks for none.
pub fn authenticate(
    api: &ApiSpec,
    op: &OperationSpec,
    parts: &request::Parts,
    keys: &KeySet,
) -> Result<Option<Caller>, GatewayError> {
    if op.security.is_empty() {
        return Ok(None);
    }
    // Alternatives: the first whose every scheme has a presented key decides.
    let mut presented_any = false;
    for alternative in op.security {
        let values: Option<Vec<Cow<'_, str>>> = alternative.iter().map(|scheme| presented(scheme, parts)).collect();
        let Some(values) = values else { continue };
        presented_any = true;
        let mut caller = None;
        for value in &values {
            let Some(key) = keys.find(value) else {
                return Err(GatewayError::new(ErrorKind::Unauthorized, "the API key is not valid"));
            };
            caller.get_or_insert_with(|| key.clone());
        }
        let Some(key) = caller else { continue };
        return admit(api, op, key).map(Some);
    }
    debug_assert!(!presented_any);
    let wanted: Vec<String> = op
        .security
        .iter()
        .flat_map(|alt| alt.iter())
        .map(|s| format!("{} `{}`", location_name(s.location), s.name))
        .collect();
    Err(GatewayError::new(
        ErrorKind::Unauthorized,
        format!("an API key is required (in {})", wanted.join(" or ")),
    ))
}

/// A known key may still be refused: disabled, or on a plan this API or operation does not offer.
fn admit(api: &ApiSpec, op: &OperationSpec, key: Arc<ApiKey>) -> Result<Caller, GatewayError> {
    if !key.enabled {
        return Err(GatewayError::new(ErrorKind::Forbidden, "the API key is disabled"));
    }
    let plan = match &key.plan {
        Some(name) => match api.usage_plans.iter().position(|p| p.name == &**name) {
            Some(index) => Some(index),
            None => {
                return Err(GatewayError::new(
                    ErrorKind::Forbidden,
                    "the API key's usage plan does not include this API",
                ));
            }
        },
        None if api.usage_plans.is_empty() => None,
        None => {
            return Err(GatewayError::new(
                ErrorKind::Forbidden,
                "the API key has no usage plan for this API",
            ));
        }
    };
    if !op.plans.is_empty() && !plan.is_some_and(|p| op.plans.contains(&p)) {
        return Err(GatewayError::new(
            ErrorKind::Forbidden,
            "the API key's usage plan does not include this operation",
        ));
    }
    Ok(Caller { key, plan })
}

fn location_name(location: KeyLocation) -> &'static str {
    match location {
        KeyLocation::Header => "header",
        KeyLocation::Query => "query parameter",
        KeyLocation::Cookie => "cookie",
    }
}

/// The value presented for `scheme`, if any (empty values count as absent); borrowed from the request unless the
/// query string had to be decoded.
fn presented<'p>(scheme: &ApiKeyScheme, parts: &'p request::Parts) -> Option<Cow<'p, str>> {
    let value = match scheme.location {
        KeyLocation::Header => parts
            .headers
            .get(scheme.name)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed),
        KeyLocation::Query => parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == scheme.name)
                .map(|(_, v)| v)
        }),
        KeyLocation::Cookie => crate::params::cookie(&parts.headers, scheme.name).map(Cow::Borrowed),
    };
    value.filter(|v| !v.is_empty())
}
