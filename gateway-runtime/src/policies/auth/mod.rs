//! The auth phase: who is calling, checked the way OpenAPI's `security` says.
//!
//! An operation's requirements are alternatives (any one admits) of sets of schemes (all must pass): API keys
//! from the key file ([`keys`]), JWT bearer tokens ([`jwt`]), and credentials an external authorizer decides on
//! ([`authorizer`]). Each alternative is tried in spec order and the first that passes admits the request. When
//! none does, the answer is the most specific refusal any alternative gave: a valid credential that may not make
//! the request (`FORBIDDEN`, e.g. a token lacking a scope) beats an authorizer that could not be asked
//! (`SERVICE_UNAVAILABLE`), which beats a credential that is not valid, which beats no credential at all (both
//! `UNAUTHORIZED`).
//!
//! Presented values are never logged; from here on the caller is known by its key's name and its verified claims.

pub mod authorizer;
mod jwks;
pub mod jwt;
pub mod keys;

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, request};

use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::RequestCtx;
use crate::policies::auth::authorizer::{Authorizer, AuthorizerClient, Decision};
use crate::policies::auth::jwt::{JwtSetupError, JwtVerifier, TokenError, VerifiedToken};
use crate::policies::auth::keys::{ApiKey, KeySet, KeyStore};
use crate::spec::{ApiKeyScheme, ApiSpec, KeyLocation, OperationSpec, Requirement, SchemeKind, SchemeSpec};

/// An authenticated caller: what the credentials that admitted the request established.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Their API key, when an API key admitted them.
    pub key: Option<Arc<ApiKey>>,
    /// Index of their key's usage plan in [`ApiSpec::usage_plans`].
    pub plan: Option<usize>,
    /// Their verified token, when a JWT admitted them.
    pub token: Option<Arc<VerifiedToken>>,
    /// Headers the gateway vouches for on the upstream request: verified claims (`claims_headers`) and an
    /// authorizer's `forward_headers`.
    pub upstream_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Caller {
    /// The name logs and usage reports know the caller by: their key's name.
    pub fn key_name(&self) -> Option<&Arc<str>> {
        self.key.as_deref().map(|k| &k.name)
    }
}

/// Why a JWT or authorizer scheme cannot be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// A JWT scheme.
    #[error(transparent)]
    Jwt(#[from] JwtSetupError),
    /// An override names no JWT scheme of the API.
    #[error("{flag} {scheme}=…: the API has no {kind} security scheme named `{scheme}`")]
    UnknownScheme {
        /// `--jwks-url` or `--oidc-url`.
        flag: &'static str,
        /// The name given.
        scheme: String,
        /// What kind of scheme the flag replaces the source of.
        kind: &'static str,
    },
}

/// Run-time settings of the auth phase: replacements for the URLs JWT keys come from (`--jwks-url NAME=URL`,
/// `--oidc-url NAME=URL`) and the verified-token cache (`--token-cache on|off`).
#[derive(Debug, Clone)]
pub struct AuthOverrides {
    /// `(scheme, url)` replacing a scheme's `jwks_url`.
    pub jwks_urls: Vec<(String, String)>,
    /// `(scheme, url)` replacing a scheme's `openIdConnectUrl`.
    pub oidc_urls: Vec<(String, String)>,
    /// Keep verified tokens briefly (by the whole token, never past `exp`), so that a token presented again is not
    /// verified again. On by default.
    pub token_cache: bool,
}

impl Default for AuthOverrides {
    fn default() -> Self {
        Self {
            jwks_urls: Vec::new(),
            oidc_urls: Vec::new(),
            token_cache: true,
        }
    }
}

/// One scheme's checker, shared by every worker.
#[derive(Debug)]
enum Check {
    ApiKey,
    Presented,
    MutualTls,
    /// The verifier, and the scheme's `claims_headers` with their names parsed once.
    Jwt(Arc<JwtVerifier>, Arc<[(HeaderName, &'static str)]>),
    Authorizer(Arc<Authorizer>),
}

/// The process-wide checkers of every scheme, in [`ApiSpec::schemes`] order.
#[derive(Debug, Clone)]
pub struct Authenticators {
    checks: Arc<[Check]>,
}

impl Authenticators {
    /// Prepares every scheme of `api`: built-in JWKS parsed, secrets read from the environment, key fetching set
    /// up. Fails on a missing secret or a bad override.
    pub fn new(api: &'static ApiSpec, overrides: &AuthOverrides) -> Result<Self, AuthSetupError> {
        use crate::spec::JwtKeys;
        let is_url = |keys: &JwtKeys| matches!(keys, JwtKeys::JwksUrl(_));
        let is_discovery = |keys: &JwtKeys| matches!(keys, JwtKeys::Discovery(_));
        for (flag, kind, list, fits_keys) in [
            (
                "--jwks-url",
                "jwks_url",
                &overrides.jwks_urls,
                &is_url as &dyn Fn(&JwtKeys) -> bool,
            ),
            ("--oidc-url", "openIdConnect", &overrides.oidc_urls, &is_discovery),
        ] {
            for (name, _) in list {
                let fits = api
                    .schemes
                    .iter()
                    .any(|s| s.name == name && matches!(&s.kind, SchemeKind::Jwt(j) if fits_keys(&j.keys)));
                if !fits {
                    return Err(AuthSetupError::UnknownScheme {
                        flag,
                        scheme: name.clone(),
                        kind,
                    });
                }
            }
        }
        let mut checks = Vec::with_capacity(api.schemes.len());
        for scheme in api.schemes {
            checks.push(match &scheme.kind {
                SchemeKind::ApiKey(_) => Check::ApiKey,
                SchemeKind::Presented(_) => Check::Presented,
                SchemeKind::MutualTls => Check::MutualTls,
                SchemeKind::Jwt(spec) => {
                    let source = overrides
                        .jwks_urls
                        .iter()
                        .chain(&overrides.oidc_urls)
                        .find(|(name, _)| name == scheme.name)
                        .map(|(_, url)| url.as_str());
                    // Header names were checked at generate time; one that does not parse is never sent.
                    let claims_headers = spec
                        .claims_headers
                        .iter()
                        .filter_map(|(header, claim)| Some((HeaderName::from_bytes(header.as_bytes()).ok()?, *claim)))
                        .collect();
                    Check::Jwt(
                        JwtVerifier::with_token_cache(scheme, spec, source, overrides.token_cache)?,
                        claims_headers,
                    )
                }
                SchemeKind::Authorizer(spec) => Check::Authorizer(Arc::new(Authorizer::new(api, scheme, spec))),
            });
        }
        Ok(Self { checks: checks.into() })
    }

    /// The JWT schemes without keys to verify with yet (a JWKS or discovery document still loading, or failing
    /// to): what keeps the gateway from being ready.
    pub fn schemes_without_keys(&self, api: &ApiSpec) -> Vec<&'static str> {
        api.schemes
            .iter()
            .zip(self.checks.iter())
            .filter(|(_, check)| matches!(check, Check::Jwt(verifier, _) if !verifier.keys_loaded()))
            .map(|(scheme, _)| scheme.name)
            .collect()
    }
}

/// The auth phase of one operation, as one worker runs it.
#[derive(Debug)]
pub struct Auth {
    keys: KeyStore,
    checks: Authenticators,
    /// The worker's client for authorizer calls.
    client: AuthorizerClient,
}

/// How one alternative was refused, ordered from least to most specific.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// A credential it needs is absent.
    Missing,
    /// A credential is present but not valid.
    Invalid,
    /// The authorizer could not be asked.
    Unavailable,
    /// A valid credential that may not make the request.
    Forbidden,
}

impl Rank {
    /// The reason metrics count the refusal under ([`crate::observe::metrics::AUTH_REASONS`]).
    fn name(self) -> &'static str {
        match self {
            Rank::Missing => "missing",
            Rank::Invalid => "invalid",
            Rank::Unavailable => "unavailable",
            Rank::Forbidden => "forbidden",
        }
    }
}

/// One alternative's refusal.
struct Refusal {
    rank: Rank,
    error: GatewayError,
}

impl Auth {
    /// The phase for a worker whose authorizer calls go through `client`.
    pub fn new(keys: KeyStore, checks: Authenticators, client: AuthorizerClient) -> Self {
        Self { keys, checks, client }
    }

    /// The scheme a requirement names, and its checker.
    fn scheme(&self, api: &'static ApiSpec, requirement: &Requirement) -> Option<(&'static SchemeSpec, &Check)> {
        Some((
            api.schemes.get(requirement.scheme)?,
            self.checks.checks.get(requirement.scheme)?,
        ))
    }

    /// Authenticates the request for `op`: the caller, or the most specific refusal. `Ok(None)` for an open
    /// operation.
    pub async fn authenticate(
        &self,
        api: &'static ApiSpec,
        op: &'static OperationSpec,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Result<Option<Caller>, GatewayError> {
        if op.security.is_empty() {
            return Ok(None);
        }
        let keys = self.keys.current();
        let mut best: Option<Refusal> = None;
        for alternative in op.security {
            match self.alternative(api, op, alternative, &keys, ctx, parts).await {
                Ok(caller) => return Ok(Some(caller)),
                Err(refusal) => {
                    if best.as_ref().is_none_or(|b| refusal.rank > b.rank) {
                        best = Some(refusal);
                    }
                }
            }
        }
        match best {
            Some(refusal) if refusal.rank > Rank::Missing => Err(refusal.error.with_reason(refusal.rank.name())),
            _ => Err(missing(api, op).with_reason(Rank::Missing.name())),
        }
    }

    /// One alternative: every requirement must pass; the caller gathers what each established.
    async fn alternative(
        &self,
        api: &'static ApiSpec,
        op: &'static OperationSpec,
        alternative: &'static [Requirement],
        keys: &KeySet,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Result<Caller, Refusal> {
        let mut caller = Caller::default();
        for requirement in alternative {
            let Some((scheme, check)) = self.scheme(api, requirement) else {
                tracing::error!(operation = op.id, "a security requirement names no scheme");
                return Err(refusal(Rank::Unavailable, GatewayError::internal()));
            };
            match (&scheme.kind, check) {
                (SchemeKind::ApiKey(spec), Check::ApiKey) => {
                    let value = presented(spec, parts).ok_or_else(missing_refusal)?;
                    let Some(key) = keys.find(&value) else {
                        if keys.pending_for(api.name) {
                            // It may be one of the keys kept in a Redis that has not been read yet.
                            return Err(refusal(
                                Rank::Invalid,
                                GatewayError::new(
                                    ErrorKind::ServiceUnavailable,
                                    "the API keys cannot be checked right now",
                                )
                                .with_reason("keys_unavailable"),
                            ));
                        }
                        return Err(refusal(
                            Rank::Invalid,
                            GatewayError::new(ErrorKind::Unauthorized, "the API key is not valid"),
                        ));
                    };
                    // Every key of the requirement must be admitted; the first is the caller's.
                    let plan = admit(api, op, key).map_err(|e| refusal(Rank::Forbidden, e))?;
                    if caller.key.is_none() {
                        caller.key = Some(Arc::clone(key));
                        caller.plan = plan;
                    }
                }
                (SchemeKind::Presented(spec), Check::Presented) => {
                    // The upstream verifies it; the gateway only requires it to be there, in its form.
                    if authorization(parts, spec.auth_scheme).is_none() {
                        return Err(missing_refusal());
                    }
                }
                (SchemeKind::MutualTls, Check::MutualTls) => {
                    // rustls verified it at the handshake; only its presence is left to check.
                    if ctx.client_cert.is_none() {
                        return Err(missing_refusal());
                    }
                }
                (SchemeKind::Jwt(_), Check::Jwt(verifier, claims_headers)) => {
                    let token = bearer(parts).ok_or_else(missing_refusal)?;
                    let verified = match verifier.verify(token) {
                        Err(TokenError::UnknownKey | TokenError::KeysUnavailable) => {
                            // The set may be loading or have rotated: wait (bounded) for a fresh one and try again.
                            Box::pin(verifier.refreshed()).await;
                            verifier.verify(token)
                        }
                        other => other,
                    };
                    let verified = verified.map_err(|err| {
                        if err == TokenError::KeysUnavailable {
                            refusal(
                                Rank::Unavailable,
                                GatewayError::new(
                                    ErrorKind::ServiceUnavailable,
                                    "the keys that verify tokens are not available",
                                ),
                            )
                        } else {
                            refusal(Rank::Invalid, invalid_token(api, err))
                        }
                    })?;
                    if requirement.scopes.iter().any(|s| !verified.has_scope(s)) {
                        return Err(refusal(Rank::Forbidden, insufficient_scope(api, requirement.scopes)));
                    }
                    for (name, claim) in claims_headers.iter() {
                        if let Some(value) = verified.claim(claim).and_then(claim_header_value) {
                            caller.upstream_headers.push((name.clone(), value));
                        }
                    }
                    if caller.token.is_none() {
                        caller.token = Some(verified);
                    }
                }
                (SchemeKind::Authorizer(spec), Check::Authorizer(authorizer)) => {
                    let value = presented(&spec.credential, parts).ok_or_else(missing_refusal)?;
                    let decision = Box::pin(authorizer.decide(&self.client, &value, ctx, parts)).await;
                    match decision {
                        Decision::Allow(headers) => caller.upstream_headers.extend(headers.iter().cloned()),
                        Decision::Deny(kind) => {
                            let (rank, detail) = match kind {
                                ErrorKind::Forbidden => (Rank::Forbidden, "the authorizer refused the request"),
                                _ => (Rank::Invalid, "the authorizer did not accept the credential"),
                            };
                            return Err(refusal(rank, GatewayError::new(kind, detail)));
                        }
                        Decision::Unavailable => {
                            return Err(refusal(
                                Rank::Unavailable,
                                GatewayError::new(ErrorKind::ServiceUnavailable, "the authorizer is not available"),
                            ));
                        }
                    }
                }
                _ => {
                    tracing::error!(
                        operation = op.id,
                        scheme = scheme.name,
                        "a scheme and its checker disagree"
                    );
                    return Err(refusal(Rank::Unavailable, GatewayError::internal()));
                }
            }
        }
        Ok(caller)
    }
}

fn refusal(rank: Rank, error: GatewayError) -> Refusal {
    Refusal { rank, error }
}

fn missing_refusal() -> Refusal {
    // The error is replaced by [`missing`], which names every credential the operation would take.
    refusal(Rank::Missing, GatewayError::new(ErrorKind::Unauthorized, ""))
}

/// `UNAUTHORIZED` for a request that presented none of the credentials `op` accepts: it names them all, and
/// challenges for a bearer token when one would do.
fn missing(api: &ApiSpec, op: &OperationSpec) -> GatewayError {
    let mut wanted: Vec<String> = Vec::new();
    let mut bearer_accepted = false;
    for requirement in op.security.iter().flat_map(|alt| alt.iter()) {
        let Some(scheme) = api.schemes.get(requirement.scheme) else {
            continue;
        };
        let text = match &scheme.kind {
            SchemeKind::ApiKey(key) => format!("an API key in {} `{}`", location_name(key.location), key.name),
            SchemeKind::Authorizer(a) => format!(
                "a credential in {} `{}`",
                location_name(a.credential.location),
                a.credential.name
            ),
            SchemeKind::Jwt(_) => {
                bearer_accepted = true;
                String::from("a bearer token")
            }
            SchemeKind::Presented(p) => format!("`Authorization: {} …`", p.auth_scheme),
            SchemeKind::MutualTls => String::from("a client certificate (mutual TLS)"),
        };
        if !wanted.contains(&text) {
            wanted.push(text);
        }
    }
    let mut error = GatewayError::new(
        ErrorKind::Unauthorized,
        format!("authentication is required: {}", wanted.join(" or ")),
    );
    if bearer_accepted {
        // RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
        error.www_authenticate = challenge(&format!("Bearer realm=\"{}\"", api.name));
    }
    error
}

/// `UNAUTHORIZED` with RFC 6750's `invalid_token` challenge.
fn invalid_token(api: &ApiSpec, err: TokenError) -> GatewayError {
    let description = err.description();
    let mut error = GatewayError::new(ErrorKind::Unauthorized, description);
    error.www_authenticate = challenge(&format!(
        "Bearer realm=\"{}\", error=\"invalid_token\", error_description=\"{description}\"",
        api.name
    ));
    error
}

/// `FORBIDDEN` with RFC 6750's `insufficient_scope` challenge, naming the scopes needed.
fn insufficient_scope(api: &ApiSpec, scopes: &[&str]) -> GatewayError {
    let needed = scopes.join(" ");
    let mut error = GatewayError::new(
        ErrorKind::Forbidden,
        format!("the token lacks a scope this operation requires (needs: {needed})"),
    );
    error.www_authenticate = challenge(&format!(
        "Bearer realm=\"{}\", error=\"insufficient_scope\", error_description=\"the token lacks a required scope\", scope=\"{needed}\"",
        api.name
    ));
    error
}

/// A challenge header value; the parts come from the spec (checked at generate time) and fixed text.
fn challenge(text: &str) -> Option<Box<HeaderValue>> {
    HeaderValue::from_str(text).ok().map(Box::new)
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON, arrays of strings joined by
/// commas, anything else as compact JSON. `None` for a value no header can carry.
fn claim_header_value(value: &serde_json::Value) -> Option<HeaderValue> {
    let text: Cow<'_, str> = match value {
        serde_json::Value::String(s) => Cow::Borrowed(s),
        serde_json::Value::Null => return None,
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => Cow::Owned(
            items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => Cow::Owned(other.to_string()),
    };
    HeaderValue::from_str(&text).ok()
}

/// The bearer token of `Authorization`, if any.
fn bearer(parts: &request::Parts) -> Option<&str> {
    authorization(parts, "bearer")
}

/// The credentials of `Authorization: <auth_scheme> <credentials>`, if that is what the request carries (the
/// scheme name is case-insensitive, RFC 7235 §2.1).
fn authorization<'p>(parts: &'p request::Parts, auth_scheme: &str) -> Option<&'p str> {
    let value = parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    let credentials = credentials.trim();
    (scheme.eq_ignore_ascii_case(auth_scheme) && !credentials.is_empty()).then_some(credentials)
}

/// A known key may still be refused: disabled, for another API of the gateway, or on a plan this API or operation
/// does not offer.
fn admit(api: &ApiSpec, op: &OperationSpec, key: &ApiKey) -> Result<Option<usize>, GatewayError> {
    if !key.enabled {
        return Err(GatewayError::new(ErrorKind::Forbidden, "the API key is disabled"));
    }
    if key.api.as_deref().is_some_and(|name| name != api.name) {
        return Err(GatewayError::new(
            ErrorKind::Forbidden,
            "the API key is not for this API",
        ));
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
    Ok(plan)
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
pub(crate) fn presented<'p>(scheme: &ApiKeyScheme, parts: &'p request::Parts) -> Option<Cow<'p, str>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let parts = |value: &str| {
            http::Request::get("/")
                .header("authorization", value)
                .body(())
                .unwrap_or_default()
                .into_parts()
                .0
        };
        assert_eq!(bearer(&parts("Bearer abc.def.ghi")), Some("abc.def.ghi"));
        assert_eq!(bearer(&parts("bearer  abc")), Some("abc"));
        assert_eq!(bearer(&parts("Basic dXNlcg==")), None);
        assert_eq!(bearer(&parts("Bearer ")), None);
    }

    #[test]
    fn claims_become_header_values() {
        use serde_json::json;
        assert_eq!(
            claim_header_value(&json!("alice")),
            Some(HeaderValue::from_static("alice"))
        );
        assert_eq!(claim_header_value(&json!(42)), Some(HeaderValue::from_static("42")));
        assert_eq!(
            claim_header_value(&json!(["a", "b"])),
            Some(HeaderValue::from_static("a,b"))
        );
        assert_eq!(
            claim_header_value(&json!({"a": 1})),
            Some(HeaderValue::from_static("{\"a\":1}"))
        );
        assert_eq!(claim_header_value(&json!(null)), None);
        assert_eq!(claim_header_value(&json!("line\nbreak")), None);
    }

    #[test]
    fn refusals_rank_from_missing_to_forbidden() {
        assert!(Rank::Missing < Rank::Invalid);
        assert!(Rank::Invalid < Rank::Unavailable);
        assert!(Rank::Unavailable < Rank::Forbidden);
    }
}
