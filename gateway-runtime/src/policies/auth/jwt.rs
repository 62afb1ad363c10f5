//! JWT bearer tokens: verification against a scheme's keys.
//!
//! One [`JwtVerifier`] per JWT scheme is built at start-up and shared by every worker. Its keys come from one of
//! four places ([`JwtKeys`]): a JWKS built in at generate time and an HMAC secret read from the environment are
//! ready at once; a JWKS URL and an OpenID Connect discovery document are fetched, and kept fresh, by a refresher
//! thread of the verifier's own (see the `jwks` module: why a thread, the refresh schedule, the rate limit on
//! refetches). Nothing here touches the network on the request path.
//!
//! # Verifying
//!
//! [`JwtVerifier::verify`] is synchronous and cheap enough for the request path:
//!
//! 1. The token cache (below) is asked first.
//! 2. The header is decoded. Its `alg` must be one the scheme lists; `none` never is (a header that is not JSON,
//!    or has no `alg`, is [`TokenError::Malformed`]; an `alg` not accepted is [`TokenError::Algorithm`]). A
//!    header with `crit` is refused: no extension is understood.
//! 3. The key: by `kid` when the token names one (a secret has none and verifies whatever `kid` is named),
//!    otherwise every key that fits the algorithm is tried. A key fits when its type can make that algorithm's
//!    signatures (an RSA key never verifies HS256, the classic algorithm confusion, and a secret verifies HS*
//!    only) and, when the JWK names its own `alg`, when that is the token's.
//! 4. `jsonwebtoken` checks the signature, then `exp` (required), `nbf` (when present), `iss` (when the scheme
//!    has an issuer: its own, or its discovery document's) and `aud` (when the scheme lists audiences; a string
//!    or an array naming one of them), all with the scheme's leeway. Its errors map onto [`TokenError`].
//!
//! An unknown `kid` ([`TokenError::UnknownKey`]), or a fetched set not loaded yet
//! ([`TokenError::KeysUnavailable`]), is worth one bounded wait for a refetch: [`JwtVerifier::refreshed`].
//!
//! # The token cache
//!
//! A verified token is kept (keyed by the whole token, never by a hash of it, so that no collision can admit a
//! forged one) for [`TOKEN_CACHE_TTL`] at most, never past its `exp` plus the leeway (each entry expires on its
//! own, and `exp` is checked again on every hit), in a bounded cache of [`TOKEN_CACHE_CAPACITY`] entries. An
//! entry is only good for the key set that verified it, so a key removed from the set stops verifying as soon as
//! the refresh that removed it lands. [`JwtVerifier::with_token_cache`] turns the cache off, to measure it.
//!
//! Tokens, secrets and claims are never logged.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;

use crate::policies::auth::jwks::{Endpoint, Key, KeySet, Remote, parse_url};
use crate::spec::{JwtAlgorithm, JwtKeys, JwtSpec, SchemeSpec};

/// The shortest time between two refetches of a JWKS made because a token named an unknown `kid`.
pub const KID_REFETCH_INTERVAL: Duration = Duration::from_secs(2);

/// Whether [`JwtVerifier::new`] caches verified tokens.
pub const TOKEN_CACHE: bool = true;

/// The most verified tokens a verifier keeps.
pub const TOKEN_CACHE_CAPACITY: u64 = 10_000;

/// The longest a verified token is kept (it is never kept past its `exp`).
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(60);

/// Why a JWT scheme cannot be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// The scheme's keys cannot be used.
    #[error("security scheme `{scheme}`: {reason}")]
    Invalid {
        /// The scheme.
        scheme: &'static str,
        /// Why.
        reason: String,
    },
    /// The environment variable that should hold the scheme's HMAC secret is missing or empty.
    #[error("security scheme `{scheme}`: the environment variable `{variable}` (its HMAC secret) is not set or empty")]
    MissingSecret {
        /// The scheme.
        scheme: &'static str,
        /// The variable's name.
        variable: &'static str,
    },
    /// The URL the scheme's keys are fetched from is not usable.
    #[error("security scheme `{scheme}`: the key URL `{url}` is not usable: {reason}")]
    InvalidUrl {
        /// The scheme.
        scheme: &'static str,
        /// The URL (as given, or an override).
        url: String,
        /// Why.
        reason: String,
    },
}

/// A verified token: its claims and scopes.
///
/// Its `Debug` shows how many claims and scopes it has, never what they say.
pub struct VerifiedToken {
    /// The payload.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `scope` split on spaces, or `scp` (an array of strings, or a string split on spaces).
    pub scopes: Box<[Box<str>]>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("claims", &format_args!("{} (redacted)", self.claims.len()))
            .field("scopes", &format_args!("{} (redacted)", self.scopes.len()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl VerifiedToken {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| &**s == scope)
    }

    /// The claim at a dotted path (`sub`, `realm_access.roles`).
    pub fn claim(&self, path: &str) -> Option<&serde_json::Value> {
        let mut parts = path.split('.');
        let mut value = self.claims.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// The token of verified `claims`.
    fn from_claims(claims: serde_json::Map<String, serde_json::Value>) -> Self {
        let words = |s: &str| s.split_whitespace().map(Box::from).collect();
        let scopes = match (claims.get("scope"), claims.get("scp")) {
            (Some(serde_json::Value::String(scope)), _) => words(scope),
            (_, Some(serde_json::Value::String(scp))) => words(scp),
            (_, Some(serde_json::Value::Array(scp))) => scp
                .iter()
                .filter_map(serde_json::Value::as_str)
                .map(Box::from)
                .collect(),
            _ => Box::default(),
        };
        let expires_at = claims.get("exp").and_then(numeric_date);
        Self {
            claims,
            scopes,
            expires_at,
        }
    }
}

/// A JSON NumericDate as whole seconds, rounded as `jsonwebtoken` rounds it.
fn numeric_date(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        let f = value.as_f64()?;
        // In range, the cast is exact up to rounding, which is what is wanted.
        (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
    })
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a JWS compact serialization, or a header/payload that is not JSON.
    Malformed,
    /// `alg` is `none` or not one the scheme lists (or does not fit the key).
    Algorithm,
    /// No key of the set has the token's `kid` (after a refresh).
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the scheme's issuer.
    Issuer,
    /// `aud` names none of the scheme's audiences.
    Audience,
    /// The scheme's keys could not be loaded (yet).
    KeysUnavailable,
}

impl TokenError {
    /// The `error_description` of the `WWW-Authenticate` challenge: short and fixed.
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Malformed => "the token is malformed",
            TokenError::Algorithm => "the token's algorithm is not accepted",
            TokenError::UnknownKey => "the token's signing key is unknown",
            TokenError::Signature => "the token's signature is invalid",
            TokenError::Expired => "the token has expired",
            TokenError::NotYetValid => "the token is not valid yet",
            TokenError::Issuer => "the token's issuer is not accepted",
            TokenError::Audience => "the token's audience is not accepted",
            TokenError::KeysUnavailable => "the token's signing keys are not available",
        }
    }
}

/// Where a verifier's keys are.
#[derive(Debug)]
enum Keys {
    /// Built in, or the secret: loaded once.
    Fixed(Arc<KeySet>),
    /// Fetched and refreshed by a thread that lives as long as the verifier.
    Fetched(Remote),
}

/// A key set with the validation settings for each accepted algorithm (which depend on the set when the issuer
/// comes from its discovery document).
struct Prepared {
    set: Arc<KeySet>,
    validations: Box<[(Algorithm, Validation)]>,
}

impl Prepared {
    fn new(spec: &JwtSpec, set: Arc<KeySet>) -> Self {
        let issuer = spec.issuer.or(set.issuer());
        let validations = spec
            .algorithms
            .iter()
            .map(|&accepted| {
                let alg = algorithm(accepted);
                (alg, validation(spec, alg, issuer))
            })
            .collect();
        Self { set, validations }
    }

    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations.iter().find(|(a, _)| *a == alg).map(|(_, v)| v)
    }
}

/// What `jsonwebtoken` checks besides the signature, for tokens signed with `alg`.
fn validation(spec: &JwtSpec, alg: Algorithm, issuer: Option<&str>) -> Validation {
    // `exp` is required and checked by default.
    let mut validation = Validation::new(alg);
    validation.leeway = spec.leeway.as_secs();
    validation.validate_nbf = true;
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        validation.required_spec_claims.insert("iss".to_owned());
    }
    if spec.audiences.is_empty() {
        // Otherwise a token with any `aud` would be refused.
        validation.validate_aud = false;
    } else {
        validation.set_audience(spec.audiences);
        validation.required_spec_claims.insert("aud".to_owned());
    }
    validation
}

/// `jsonwebtoken`'s name for an algorithm.
fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::Hs256 => Algorithm::HS256,
        JwtAlgorithm::Hs384 => Algorithm::HS384,
        JwtAlgorithm::Hs512 => Algorithm::HS512,
        JwtAlgorithm::Rs256 => Algorithm::RS256,
        JwtAlgorithm::Rs384 => Algorithm::RS384,
        JwtAlgorithm::Rs512 => Algorithm::RS512,
        JwtAlgorithm::Ps256 => Algorithm::PS256,
        JwtAlgorithm::Ps384 => Algorithm::PS384,
        JwtAlgorithm::Ps512 => Algorithm::PS512,
        JwtAlgorithm::Es256 => Algorithm::ES256,
        JwtAlgorithm::Es384 => Algorithm::ES384,
        JwtAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// A cached verified token.
#[derive(Clone)]
struct Cached {
    token: Arc<VerifiedToken>,
    /// The key set that verified it.
    generation: u64,
    /// `exp` plus the leeway: past it, the token is expired.
    deadline: u64,
}

/// Each cached token expires after [`TOKEN_CACHE_TTL`] or at its deadline, whichever comes first.
struct UntilDeadline;

impl UntilDeadline {
    fn left(value: &Cached) -> Duration {
        TOKEN_CACHE_TTL.min(Duration::from_secs(value.deadline.saturating_sub(unix_now())))
    }
}

impl moka::Expiry<String, Cached> for UntilDeadline {
    fn expire_after_create(&self, _token: &String, value: &Cached, _at: std::time::Instant) -> Option<Duration> {
        Some(Self::left(value))
    }

    fn expire_after_update(
        &self,
        _token: &String,
        value: &Cached,
        _at: std::time::Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::left(value))
    }
}

type TokenCache = moka::sync::Cache<String, Cached>;

/// Seconds since the Unix epoch (0 for a clock before it).
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What the header says that matters before the signature is checked.
#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Decodes the header of a JWS compact serialization (three base64url parts).
fn header(token: &str) -> Result<TokenHeader, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    let header: TokenHeader = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: extensions the recipient does not understand make the token invalid; none is.
        return Err(TokenError::Malformed);
    }
    Ok(header)
}

/// The refusal for one of `jsonwebtoken`'s errors.
fn token_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature
        // A key of the set that cannot be used: the token is not verified by it.
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenError::Signature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenError::Issuer,
        ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => TokenError::Audience,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        // Not three parts, not base64url, not JSON, not UTF-8, a claim of the wrong type, no `exp`.
        _ => TokenError::Malformed,
    }
}

/// One JWT scheme's verifier: process-wide, shared by every worker.
pub struct JwtVerifier {
    scheme: &'static SchemeSpec,
    spec: &'static JwtSpec,
    keys: Keys,
    /// The current set with its validation settings, rebuilt when the set changes.
    prepared: ArcSwapOption<Prepared>,
    cache: Option<TokenCache>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("scheme", &self.scheme.name)
            .field("keys", &self.keys)
            .field("token_cache", &self.cache.is_some())
            .finish()
    }
}

impl JwtVerifier {
    /// Prepares `scheme` (whose kind is `spec`); `source` replaces its JWKS or discovery URL.
    ///
    /// A built-in JWKS is parsed and a secret read from the environment now; a URL's keys start being fetched
    /// now, on a thread of the verifier's own (no runtime is needed here). Fails on a missing secret, a JWKS
    /// without a usable key, or a URL that cannot be fetched from.
    pub fn new(
        scheme: &'static SchemeSpec,
        spec: &'static JwtSpec,
        source: Option<&str>,
    ) -> Result<Arc<Self>, JwtSetupError> {
        Self::with_token_cache(scheme, spec, source, TOKEN_CACHE)
    }

    /// [`JwtVerifier::new`], with the cache of verified tokens on or off.
    pub fn with_token_cache(
        scheme: &'static SchemeSpec,
        spec: &'static JwtSpec,
        source: Option<&str>,
        cache: bool,
    ) -> Result<Arc<Self>, JwtSetupError> {
        Self::build(scheme, spec, source, cache, &|variable| std::env::var_os(variable))
    }

    /// [`JwtVerifier::with_token_cache`], reading secrets from `env` (tests cannot set environment variables:
    /// that is `unsafe`, and unsafe code is forbidden here).
    fn build(
        scheme: &'static SchemeSpec,
        spec: &'static JwtSpec,
        source: Option<&str>,
        cache: bool,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Arc<Self>, JwtSetupError> {
        let name = scheme.name;
        let invalid = |reason: String| JwtSetupError::Invalid { scheme: name, reason };
        if spec.algorithms.is_empty() {
            return Err(invalid("it accepts no signing algorithm".to_owned()));
        }
        let keys = match spec.keys {
            JwtKeys::Jwks(json) => {
                let set = KeySet::parse(name, json.as_bytes(), None)
                    .map_err(|e| invalid(format!("its built-in JWKS is not valid: {e}")))?;
                if set.keys().is_empty() {
                    return Err(invalid("its built-in JWKS has no usable key".to_owned()));
                }
                Keys::Fixed(Arc::new(set))
            }
            JwtKeys::SecretEnv(variable) => {
                let missing = JwtSetupError::MissingSecret { scheme: name, variable };
                let secret = env(variable).filter(|v| !v.is_empty()).ok_or(missing)?;
                Keys::Fixed(Arc::new(KeySet::secret(secret.as_encoded_bytes())))
            }
            JwtKeys::JwksUrl(url) => Keys::Fetched(fetched(name, source.unwrap_or(url), Endpoint::Jwks)?),
            JwtKeys::Discovery(url) => Keys::Fetched(fetched(name, source.unwrap_or(url), Endpoint::Discovery)?),
        };
        let prepared = match &keys {
            Keys::Fixed(set) => Some(Arc::new(Prepared::new(spec, Arc::clone(set)))),
            Keys::Fetched(_) => None,
        };
        let cache = cache.then(|| {
            TokenCache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .expire_after(UntilDeadline)
                .build()
        });
        Ok(Arc::new(Self {
            scheme,
            spec,
            keys,
            prepared: ArcSwapOption::new(prepared),
            cache,
        }))
    }

    /// The scheme's name.
    pub fn scheme(&self) -> &'static str {
        self.scheme.name
    }

    /// Whether the scheme has keys to verify with (a fetched set may still be loading, or failing to).
    pub fn keys_loaded(&self) -> bool {
        match &self.keys {
            Keys::Fixed(_) => true,
            Keys::Fetched(remote) => remote.current().is_some(),
        }
    }

    /// Verifies `token` with the keys known now.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let prepared = self.prepared()?;
        let generation = prepared.set.generation();
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.get(token)
            && hit.generation == generation
            && unix_now() <= hit.deadline
        {
            return Ok(hit.token);
        }
        let verified = Arc::new(self.check(&prepared, token)?);
        if let Some(cache) = &self.cache {
            let deadline = verified
                .expires_at
                .unwrap_or(0)
                .saturating_add(self.spec.leeway.as_secs());
            cache.insert(
                token.to_owned(),
                Cached {
                    token: Arc::clone(&verified),
                    generation,
                    deadline,
                },
            );
        }
        Ok(verified)
    }

    /// Waits (bounded) for the key set to be loaded or refreshed after [`TokenError::UnknownKey`] or
    /// [`TokenError::KeysUnavailable`]; `true` when a new set arrived, so that verifying again may succeed.
    ///
    /// Only fetched sets refresh: for a built-in set or a secret this is `false` at once. Otherwise it asks for an
    /// immediate refetch (at most one per [`KID_REFETCH_INTERVAL`], shared by every waiter) and waits up to 3 s
    /// for the next fetch to finish. It works from any tokio runtime with a timer.
    pub async fn refreshed(&self) -> bool {
        match &self.keys {
            Keys::Fixed(_) => false,
            Keys::Fetched(remote) => remote.refreshed().await,
        }
    }

    /// The current set, prepared; rebuilt (and the token cache emptied) when the set has changed.
    fn prepared(&self) -> Result<Arc<Prepared>, TokenError> {
        let set = match &self.keys {
            Keys::Fixed(set) => Arc::clone(set),
            Keys::Fetched(remote) => remote.current().ok_or(TokenError::KeysUnavailable)?,
        };
        if let Some(prepared) = self.prepared.load().as_ref()
            && Arc::ptr_eq(&prepared.set, &set)
        {
            return Ok(Arc::clone(prepared));
        }
        let prepared = Arc::new(Prepared::new(self.spec, set));
        self.prepared.store(Some(Arc::clone(&prepared)));
        if let Some(cache) = &self.cache {
            // Entries of older sets are refused on a hit anyway; this frees them.
            cache.invalidate_all();
        }
        Ok(prepared)
    }

    /// Verifies `token` with `prepared`'s keys (no cache).
    fn check(&self, prepared: &Prepared, token: &str) -> Result<VerifiedToken, TokenError> {
        let header = header(token)?;
        let accepted = self
            .spec
            .algorithms
            .iter()
            .find(|a| a.name() == header.alg)
            .ok_or(TokenError::Algorithm)?;
        let alg = algorithm(*accepted);
        let validation = prepared.validation(alg).ok_or(TokenError::Algorithm)?;
        let set = &prepared.set;
        let kid = header.kid.as_deref().filter(|_| !set.any_kid());
        let named = |key: &&Key| kid.is_none_or(|kid| key.kid() == Some(kid));
        let mut refused = None;
        for key in set.keys().iter().filter(named).filter(|key| key.accepts(alg)) {
            match decode(token, key, validation) {
                // Without a `kid`, another key may be the one.
                Err(TokenError::Signature) => refused = Some(TokenError::Signature),
                // A signature that verified: its claims decide.
                outcome => return outcome,
            }
        }
        Err(refused.unwrap_or_else(|| {
            if !set.keys().iter().any(|key| named(&key)) {
                // No key has its `kid` (or the set is empty): the set may have rotated.
                TokenError::UnknownKey
            } else {
                // Keys exist, but none of a type (or an `alg`) that fits the token's.
                TokenError::Algorithm
            }
        }))
    }
}

/// Starts fetching a scheme's keys from `url`.
fn fetched(scheme: &'static str, url: &str, endpoint: fn(http::Uri) -> Endpoint) -> Result<Remote, JwtSetupError> {
    let uri = parse_url(url).map_err(|reason| JwtSetupError::InvalidUrl {
        scheme,
        url: without_credentials(url),
        reason,
    })?;
    Remote::start(scheme, endpoint(uri)).map_err(|reason| JwtSetupError::Invalid { scheme, reason })
}

/// `url` for an error message: credentials in it (which are refused) are not repeated.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Verifies `token`'s signature with `key`, then its claims.
fn decode(token: &str, key: &Key, validation: &Validation) -> Result<VerifiedToken, TokenError> {
    let data =
        jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key.decoding_key(), validation)
            .map_err(|e| token_error(e.kind()))?;
    Ok(VerifiedToken::from_claims(data.claims))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    use super::*;
    use crate::spec::SchemeKind;

    const JWKS: &str = include_str!("../../../../tests/fixtures/jwt/jwks.json");
    const JWKS_ROTATED: &str = include_str!("../../../../tests/fixtures/jwt/jwks-rotated.json");
    const RSA_1: &[u8] = include_bytes!("../../../../tests/fixtures/jwt/rsa-1.pem");
    const RSA_1_PUB: &[u8] = include_bytes!("../../../../tests/fixtures/jwt/rsa-1.pub.pem");
    const RSA_2: &[u8] = include_bytes!("../../../../tests/fixtures/jwt/rsa-2.pem");
    const EC_1: &[u8] = include_bytes!("../../../../tests/fixtures/jwt/ec-1.pem");
    const ISSUER: &str = "https://idp.test";

    /// A scheme that lasts for the test: RS256 and ES256, issuer [`ISSUER`], no audience, no leeway, `edit`ed.
    fn scheme(keys: JwtKeys, edit: impl FnOnce(&mut JwtSpec)) -> (&'static SchemeSpec, &'static JwtSpec) {
        let mut spec = JwtSpec {
            issuer: Some(ISSUER),
            audiences: &[],
            algorithms: &[JwtAlgorithm::Rs256, JwtAlgorithm::Es256],
            keys,
            leeway: Duration::ZERO,
            forward_authorization: false,
            claims_headers: &[],
        };
        edit(&mut spec);
        let scheme: &'static SchemeSpec = Box::leak(Box::new(SchemeSpec {
            name: "bearer",
            kind: SchemeKind::Jwt(spec),
        }));
        let SchemeKind::Jwt(spec) = &scheme.kind else {
            unreachable!("built as a JWT scheme")
        };
        (scheme, spec)
    }

    fn verifier(keys: JwtKeys, edit: impl FnOnce(&mut JwtSpec)) -> Arc<JwtVerifier> {
        let (scheme, spec) = scheme(keys, edit);
        JwtVerifier::new(scheme, spec, None).expect("a verifier")
    }

    /// The built-in JWKS of the fixtures: rsa-1 and ec-1.
    fn built_in(edit: impl FnOnce(&mut JwtSpec)) -> Arc<JwtVerifier> {
        verifier(JwtKeys::Jwks(JWKS), edit)
    }

    fn now() -> u64 {
        unix_now()
    }

    /// Valid claims from [`ISSUER`] for the next ten minutes, with `extra` added (a `null` removes a claim).
    fn claims(extra: Value) -> Value {
        let mut claims = json!({"iss": ISSUER, "sub": "alice", "iat": now(), "exp": now() + 600});
        if let (Some(map), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (name, value) in extra {
                if value.is_null() {
                    map.remove(&name);
                } else {
                    map.insert(name, value);
                }
            }
        }
        claims
    }

    fn mint(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, key).expect("a signed token")
    }

    fn rsa_1() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_1).expect("rsa-1.pem")
    }

    fn rsa_2() -> EncodingKey {
        EncodingKey::from_rsa_pem(RSA_2).expect("rsa-2.pem")
    }

    fn ec_1() -> EncodingKey {
        EncodingKey::from_ec_pem(EC_1).expect("ec-1.pem")
    }

    /// An RS256 token of rsa-1 with `extra` claims.
    fn rs256(extra: Value) -> String {
        mint(Algorithm::RS256, Some("rsa-1"), &rsa_1(), &claims(extra))
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_the_built_in_jwks() {
        let v = built_in(|_| {});
        let token = v.verify(&rs256(json!({}))).expect("RS256 verifies");
        assert_eq!(token.claim("sub"), Some(&json!("alice")));
        assert!(token.expires_at.is_some_and(|exp| exp > now()));
        let es = mint(Algorithm::ES256, Some("ec-1"), &ec_1(), &claims(json!({"sub": "bob"})));
        assert_eq!(v.verify(&es).expect("ES256 verifies").claim("sub"), Some(&json!("bob")));
        assert!(v.keys_loaded());
    }

    #[test]
    fn without_a_kid_the_keys_that_fit_the_algorithm_are_tried() {
        let v = built_in(|_| {});
        let rs = mint(Algorithm::RS256, None, &rsa_1(), &claims(json!({})));
        assert!(v.verify(&rs).is_ok());
        let es = mint(Algorithm::ES256, None, &ec_1(), &claims(json!({})));
        assert!(v.verify(&es).is_ok());
        let foreign = mint(Algorithm::RS256, None, &rsa_2(), &claims(json!({})));
        assert_eq!(v.verify(&foreign).err(), Some(TokenError::Signature));
    }

    /// A stand-in for the environment (setting a real variable is `unsafe`, which this crate forbids).
    fn hs256_verifier(variable: &'static str, value: &'static str) -> Result<Arc<JwtVerifier>, JwtSetupError> {
        let (scheme, spec) = scheme(JwtKeys::SecretEnv(variable), |s| {
            s.algorithms = &[JwtAlgorithm::Hs256, JwtAlgorithm::Rs256];
        });
        JwtVerifier::build(scheme, spec, None, true, &move |name| {
            (name == variable).then(|| OsString::from(value))
        })
    }

    #[test]
    fn hs256_tokens_verify_with_a_secret_from_the_environment() {
        let v = hs256_verifier("GATEWAY_TEST_JWT_SECRET_HS256", "a shared secret, long enough").expect("verifier");
        let key = EncodingKey::from_secret(b"a shared secret, long enough");
        let token = mint(Algorithm::HS256, None, &key, &claims(json!({})));
        assert!(v.verify(&token).is_ok());
        // A secret has no `kid`: whatever the token names, the secret verifies it.
        let named = mint(Algorithm::HS256, Some("any"), &key, &claims(json!({})));
        assert!(v.verify(&named).is_ok());
        let wrong = mint(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(b"another secret"),
            &claims(json!({})),
        );
        assert_eq!(v.verify(&wrong).err(), Some(TokenError::Signature));
        // With a secret, only HS* verifies, even when the scheme lists RS256.
        assert_eq!(v.verify(&rs256(json!({}))).err(), Some(TokenError::Algorithm));
        assert!(!format!("{v:?}").contains("shared secret"));
    }

    #[test]
    fn a_missing_or_empty_secret_is_a_setup_error_naming_the_variable() {
        let (scheme, spec) = scheme(JwtKeys::SecretEnv("GATEWAY_TEST_JWT_SECRET_NEVER_SET_7F3A"), |s| {
            s.algorithms = &[JwtAlgorithm::Hs256];
        });
        // The real environment.
        let err = JwtVerifier::new(scheme, spec, None).expect_err("no such variable");
        assert!(
            err.to_string().contains("GATEWAY_TEST_JWT_SECRET_NEVER_SET_7F3A"),
            "{err}"
        );
        let err = hs256_verifier("GATEWAY_TEST_JWT_SECRET_EMPTY", "").expect_err("empty");
        assert!(matches!(
            err,
            JwtSetupError::MissingSecret {
                variable: "GATEWAY_TEST_JWT_SECRET_EMPTY",
                ..
            }
        ));
    }

    #[test]
    fn expired_and_not_yet_valid_tokens_are_refused() {
        let v = built_in(|_| {});
        let expired = rs256(json!({"exp": now() - 10}));
        assert_eq!(v.verify(&expired).err(), Some(TokenError::Expired));
        let early = rs256(json!({"nbf": now() + 600}));
        assert_eq!(v.verify(&early).err(), Some(TokenError::NotYetValid));
        let no_exp = rs256(json!({"exp": null}));
        assert_eq!(v.verify(&no_exp).err(), Some(TokenError::Malformed));
        let started = rs256(json!({"nbf": now() - 10}));
        assert!(v.verify(&started).is_ok());
    }

    #[test]
    fn the_leeway_admits_a_token_expired_moments_ago() {
        let lenient = built_in(|s| s.leeway = Duration::from_secs(30));
        let token = rs256(json!({"exp": now() - 10}));
        assert!(lenient.verify(&token).is_ok());
        let early = rs256(json!({"nbf": now() + 10}));
        assert!(lenient.verify(&early).is_ok());
        assert_eq!(built_in(|_| {}).verify(&token).err(), Some(TokenError::Expired));
    }

    #[test]
    fn the_issuer_must_be_the_schemes() {
        let v = built_in(|_| {});
        assert_eq!(
            v.verify(&rs256(json!({"iss": "https://evil.test"}))).err(),
            Some(TokenError::Issuer)
        );
        assert_eq!(v.verify(&rs256(json!({"iss": null}))).err(), Some(TokenError::Issuer));
        // Without an issuer in the scheme, any (or none) is accepted.
        let open = built_in(|s| s.issuer = None);
        assert!(open.verify(&rs256(json!({"iss": "https://evil.test"}))).is_ok());
    }

    #[test]
    fn the_audience_must_name_one_of_the_schemes() {
        let v = built_in(|s| s.audiences = &["api-a", "api-b"]);
        assert!(v.verify(&rs256(json!({"aud": "api-b"}))).is_ok());
        assert!(v.verify(&rs256(json!({"aud": ["other", "api-a"]}))).is_ok());
        assert_eq!(
            v.verify(&rs256(json!({"aud": "other"}))).err(),
            Some(TokenError::Audience)
        );
        assert_eq!(
            v.verify(&rs256(json!({"aud": ["x", "y"]}))).err(),
            Some(TokenError::Audience)
        );
        assert_eq!(v.verify(&rs256(json!({}))).err(), Some(TokenError::Audience));
        // A scheme without audiences does not check `aud`.
        assert!(built_in(|_| {}).verify(&rs256(json!({"aud": "anything"}))).is_ok());
    }

    #[test]
    fn a_token_signed_by_another_key_under_a_known_kid_is_refused() {
        let v = built_in(|_| {});
        let forged = mint(Algorithm::RS256, Some("rsa-1"), &rsa_2(), &claims(json!({})));
        assert_eq!(v.verify(&forged).err(), Some(TokenError::Signature));
        // A valid token with its signature swapped for another's.
        let good = rs256(json!({}));
        let (signed, _) = good.rsplit_once('.').expect("three parts");
        let (_, other) = forged.rsplit_once('.').expect("three parts");
        assert_eq!(
            v.verify(&format!("{signed}.{other}")).err(),
            Some(TokenError::Signature)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let v = built_in(|_| {});
        let header = b64(&json!({"alg": "none", "typ": "JWT"}));
        let payload = b64(&claims(json!({})));
        assert_eq!(
            v.verify(&format!("{header}.{payload}.")).err(),
            Some(TokenError::Algorithm)
        );
        let header = b64(&json!({"alg": "None", "kid": "rsa-1"}));
        assert_eq!(
            v.verify(&format!("{header}.{payload}.")).err(),
            Some(TokenError::Algorithm)
        );
    }

    #[test]
    fn an_algorithm_the_scheme_does_not_list_is_refused() {
        let v = built_in(|s| s.algorithms = &[JwtAlgorithm::Rs256]);
        let es = mint(Algorithm::ES256, Some("ec-1"), &ec_1(), &claims(json!({})));
        assert_eq!(v.verify(&es).err(), Some(TokenError::Algorithm));
    }

    #[test]
    fn hs256_signed_with_the_rsa_public_key_is_algorithm_confusion() {
        let confused = mint(
            Algorithm::HS256,
            Some("rsa-1"),
            &EncodingKey::from_secret(RSA_1_PUB),
            &claims(json!({})),
        );
        let rs256_only = built_in(|s| s.algorithms = &[JwtAlgorithm::Rs256]);
        assert_eq!(rs256_only.verify(&confused).err(), Some(TokenError::Algorithm));
        // Even a scheme that lists HS256 never verifies it with an RSA key.
        let both = built_in(|s| s.algorithms = &[JwtAlgorithm::Rs256, JwtAlgorithm::Hs256]);
        assert_eq!(both.verify(&confused).err(), Some(TokenError::Algorithm));
        let kidless = mint(
            Algorithm::HS256,
            None,
            &EncodingKey::from_secret(RSA_1_PUB),
            &claims(json!({})),
        );
        assert_eq!(both.verify(&kidless).err(), Some(TokenError::Algorithm));
    }

    #[test]
    fn a_key_is_used_only_with_its_own_alg() {
        // ec-1 is an ES256 key; a token claiming kid ec-1 with RS256 does not reach it.
        let v = built_in(|_| {});
        let token = mint(Algorithm::RS256, Some("ec-1"), &rsa_1(), &claims(json!({})));
        assert_eq!(v.verify(&token).err(), Some(TokenError::Algorithm));
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused_and_a_built_in_set_never_refreshes() {
        let v = built_in(|_| {});
        let token = mint(Algorithm::RS256, Some("rsa-2"), &rsa_2(), &claims(json!({})));
        assert_eq!(v.verify(&token).err(), Some(TokenError::UnknownKey));
        assert!(!v.refreshed().await);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let v = built_in(|_| {});
        let payload = b64(&claims(json!({})));
        for token in [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("!!!.{payload}.sig"),
            format!("{}.{payload}.sig", URL_SAFE_NO_PAD.encode("not json")),
            format!("{}.{payload}.sig", b64(&json!({"typ": "JWT"}))),
            format!("{}.{payload}.sig", b64(&json!({"alg": 256}))),
            format!(
                "{}.{payload}.sig",
                b64(&json!({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"]}))
            ),
        ] {
            assert_eq!(v.verify(&token).err(), Some(TokenError::Malformed), "{token}");
        }
        // A payload that is not JSON, under a valid signature.
        let header = b64(&json!({"alg": "RS256", "kid": "rsa-1"}));
        let body = URL_SAFE_NO_PAD.encode("not json");
        let message = format!("{header}.{body}");
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &rsa_1(), Algorithm::RS256).expect("signed");
        assert_eq!(
            v.verify(&format!("{message}.{signature}")).err(),
            Some(TokenError::Malformed)
        );
    }

    #[test]
    fn scopes_come_from_scope_or_scp() {
        let v = built_in(|_| {});
        let token = v
            .verify(&rs256(json!({"scope": "read:pets  write:pets"})))
            .expect("valid");
        assert!(token.has_scope("read:pets") && token.has_scope("write:pets"));
        assert!(!token.has_scope("admin") && !token.has_scope(""));
        let token = v.verify(&rs256(json!({"scp": ["read:pets", "admin"]}))).expect("valid");
        assert!(token.has_scope("admin") && token.has_scope("read:pets"));
        let token = v.verify(&rs256(json!({"scp": "a b"}))).expect("valid");
        assert!(token.has_scope("a") && token.has_scope("b"));
        let token = v.verify(&rs256(json!({}))).expect("valid");
        assert!(token.scopes.is_empty());
    }

    #[test]
    fn claims_are_found_by_dotted_path() {
        let v = built_in(|_| {});
        let token = v
            .verify(&rs256(
                json!({"realm_access": {"roles": ["admin"]}, "tenant": {"id": 7}}),
            ))
            .expect("valid");
        assert_eq!(token.claim("realm_access.roles"), Some(&json!(["admin"])));
        assert_eq!(token.claim("tenant.id"), Some(&json!(7)));
        assert_eq!(token.claim("tenant.id.more"), None);
        assert_eq!(token.claim("missing"), None);
        assert!(!format!("{token:?}").contains("admin"), "Debug shows no claims");
    }

    #[test]
    fn verified_tokens_are_cached_until_their_exp() {
        let cached = built_in(|_| {});
        let token = rs256(json!({}));
        let first = cached.verify(&token).expect("valid");
        assert!(Arc::ptr_eq(&first, &cached.verify(&token).expect("valid")));
        let (scheme, spec) = scheme(JwtKeys::Jwks(JWKS), |_| {});
        let uncached = JwtVerifier::with_token_cache(scheme, spec, None, false).expect("verifier");
        let first = uncached.verify(&token).expect("valid");
        assert!(!Arc::ptr_eq(&first, &uncached.verify(&token).expect("valid")));

        // An entry past its deadline, or of another key set, is not used: the token is verified again.
        let expired = rs256(json!({"exp": now() - 100}));
        let cache = cached.cache.as_ref().expect("a cache");
        let generation = cached.prepared().expect("keys").set.generation();
        let stale = |generation, deadline| Cached {
            token: Arc::clone(&first),
            generation,
            deadline,
        };
        cache.insert(expired.clone(), stale(generation, now() - 1));
        assert_eq!(cached.verify(&expired).err(), Some(TokenError::Expired));
        cache.insert(expired.clone(), stale(generation + 1_000_000, now() + 60));
        assert_eq!(cached.verify(&expired).err(), Some(TokenError::Expired));
        assert_eq!(UntilDeadline::left(&stale(generation, now() + 10_000)), TOKEN_CACHE_TTL);
        assert!(UntilDeadline::left(&stale(generation, now() + 5)) <= Duration::from_secs(5));
    }

    #[test]
    fn bad_urls_and_bad_sets_are_setup_errors() {
        let (scheme_, spec) = scheme(JwtKeys::JwksUrl("not a url"), |_| {});
        assert!(matches!(
            JwtVerifier::new(scheme_, spec, None),
            Err(JwtSetupError::InvalidUrl { .. })
        ));
        let (scheme_, spec) = scheme(
            JwtKeys::Discovery("https://idp.test/.well-known/openid-configuration"),
            |_| {},
        );
        let err = JwtVerifier::new(scheme_, spec, Some("https://user:hunter2@idp.test/")).expect_err("credentials");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let (scheme_, spec) = scheme(JwtKeys::Jwks("{\"keys\": []}"), |_| {});
        assert!(JwtVerifier::new(scheme_, spec, None).is_err());
        let (scheme_, spec) = scheme(JwtKeys::Jwks("not json"), |_| {});
        assert!(JwtVerifier::new(scheme_, spec, None).is_err());
        let (scheme_, spec) = scheme(JwtKeys::Jwks(JWKS), |s| s.algorithms = &[]);
        assert!(JwtVerifier::new(scheme_, spec, None).is_err());
    }

    // ---- fetched key sets, against a real HTTP server on 127.0.0.1 ----

    /// What the test server answers on one path.
    #[derive(Clone)]
    struct Route {
        status: u16,
        body: String,
        cache_control: Option<&'static str>,
    }

    fn ok(body: impl Into<String>) -> Route {
        Route {
            status: 200,
            body: body.into(),
            cache_control: None,
        }
    }

    #[derive(Default)]
    struct Served {
        routes: HashMap<String, Route>,
        /// When each path was asked for.
        hits: HashMap<String, Vec<std::time::Instant>>,
    }

    /// A small HTTP/1 server on 127.0.0.1 whose answers the test swaps; stopped (with its connections) on drop.
    struct TestServer {
        addr: SocketAddr,
        served: Arc<Mutex<Served>>,
        /// While `false`, answers wait.
        open: tokio::sync::watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            // The accept loop owns the listener and the connection tasks (a `JoinSet`): aborting it ends all.
            self.task.abort();
        }
    }

    impl TestServer {
        async fn start() -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1");
            let addr = listener.local_addr().expect("local address");
            let served = Arc::new(Mutex::new(Served::default()));
            let (open, gate) = tokio::sync::watch::channel(true);
            let state = Arc::clone(&served);
            let task = tokio::spawn(async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    let state = Arc::clone(&state);
                    let gate = gate.clone();
                    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
                        let state = Arc::clone(&state);
                        let mut gate = gate.clone();
                        async move {
                            let path = request.uri().path().to_owned();
                            let route = {
                                let mut served = state.lock().expect("server state");
                                served
                                    .hits
                                    .entry(path.clone())
                                    .or_default()
                                    .push(std::time::Instant::now());
                                served.routes.get(&path).cloned()
                            };
                            let _ = gate.wait_for(|open| *open).await;
                            let route = route.unwrap_or(Route {
                                status: 404,
                                body: String::new(),
                                cache_control: None,
                            });
                            let mut response = http::Response::builder().status(route.status);
                            if let Some(value) = route.cache_control {
                                response = response.header(http::header::CACHE_CONTROL, value);
                            }
                            let response = response.body(Full::new(Bytes::from(route.body))).expect("a response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Self {
                addr,
                served,
                open,
                task,
            }
        }

        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        fn route(&self, path: &str, route: Route) {
            self.served
                .lock()
                .expect("server state")
                .routes
                .insert(path.to_owned(), route);
        }

        /// How many times `path` was asked for.
        fn hits(&self, path: &str) -> usize {
            self.served
                .lock()
                .expect("server state")
                .hits
                .get(path)
                .map_or(0, Vec::len)
        }

        /// The time between one request for `path` and the next.
        fn gaps(&self, path: &str) -> Vec<Duration> {
            let served = self.served.lock().expect("server state");
            let times = served.hits.get(path).map_or(&[][..], Vec::as_slice);
            times.windows(2).map(|pair| pair[1] - pair[0]).collect()
        }
    }

    /// Waits (up to 10 s) until `done`, polling; the server runs meanwhile.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting until {what}");
    }

    fn remote(v: &JwtVerifier) -> &Remote {
        match &v.keys {
            Keys::Fetched(remote) => remote,
            Keys::Fixed(_) => unreachable!("a fetched set"),
        }
    }

    /// A fresh token (never cached) of `kid`, signed with `key`.
    fn fresh(kid: &str, key: &EncodingKey) -> String {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let jti = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        mint(Algorithm::RS256, Some(kid), key, &claims(json!({ "jti": jti })))
    }

    #[tokio::test]
    async fn a_fetched_set_rotates_on_an_unknown_kid_and_survives_failures() {
        let server = TestServer::start().await;
        server.route("/jwks", ok(JWKS));
        // The override replaces the spec's URL.
        let (scheme_, spec) = scheme(JwtKeys::JwksUrl("http://127.0.0.1:1/unused"), |_| {});
        let v = JwtVerifier::new(scheme_, spec, Some(&server.url("/jwks"))).expect("verifier");
        until("the first fetch", || v.keys_loaded()).await;
        assert_eq!(server.hits("/jwks"), 1);
        assert!(v.verify(&fresh("rsa-1", &rsa_1())).is_ok());
        let rotated = fresh("rsa-2", &rsa_2());
        assert_eq!(v.verify(&rotated).err(), Some(TokenError::UnknownKey));

        // The identity provider rotates; many requests meet the new kid while one refetch is held at the server.
        server.route("/jwks", ok(JWKS_ROTATED));
        server.open.send_replace(false);
        let mut waiters = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let v = Arc::clone(&v);
            waiters.spawn(async move { v.refreshed().await });
        }
        until("the refetch reaches the server", || server.hits("/jwks") == 2).await;
        server.open.send_replace(true);
        while let Some(refreshed) = waiters.join_next().await {
            assert!(refreshed.expect("a waiter"), "every waiter sees the new set");
        }
        assert_eq!(server.hits("/jwks"), 2, "one fetch for all the waiters");
        assert!(v.verify(&rotated).is_ok(), "the new kid verifies");

        // A failed fetch keeps the last good set.
        server.route("/jwks", Route { status: 500, ..ok("") });
        let attempts = remote(&v).attempts();
        let _ = v.refreshed().await;
        until("the failed refetch", || remote(&v).attempts() > attempts).await;
        assert_eq!(server.hits("/jwks"), 3);
        assert!(v.keys_loaded());
        assert!(v.verify(&fresh("rsa-1", &rsa_1())).is_ok());
        assert!(v.verify(&fresh("rsa-2", &rsa_2())).is_ok());

        // A key removed from the set stops verifying once the refresh lands, cached or not.
        server.route("/jwks", ok(JWKS));
        for _ in 0..10 {
            if v.verify(&rotated).err() == Some(TokenError::UnknownKey) {
                break;
            }
            let _ = v.refreshed().await;
        }
        assert_eq!(v.verify(&rotated).err(), Some(TokenError::UnknownKey));
        assert!(v.verify(&fresh("rsa-1", &rsa_1())).is_ok());
    }

    #[tokio::test]
    async fn a_fetched_set_is_refreshed_at_its_max_age() {
        let server = TestServer::start().await;
        server.route(
            "/jwks",
            Route {
                cache_control: Some("public, max-age=1"),
                ..ok(JWKS)
            },
        );
        let v = verifier(
            JwtKeys::JwksUrl(Box::leak(server.url("/jwks").into_boxed_str())),
            |_| {},
        );
        until("the first fetch", || v.keys_loaded()).await;
        until("two refetches on schedule", || server.hits("/jwks") >= 3).await;
        assert!(v.verify(&fresh("rsa-1", &rsa_1())).is_ok());
    }

    #[tokio::test]
    async fn keys_found_through_openid_connect_discovery() {
        let server = TestServer::start().await;
        server.route(
            "/.well-known/openid-configuration",
            ok(json!({"issuer": "https://login.idp.test", "jwks_uri": server.url("/keys")}).to_string()),
        );
        server.route("/keys", ok(JWKS));
        let discovery: &'static str = Box::leak(server.url("/.well-known/openid-configuration").into_boxed_str());
        let v = verifier(JwtKeys::Discovery(discovery), |s| s.issuer = None);
        until("discovery and the first fetch", || v.keys_loaded()).await;
        assert_eq!(server.hits("/.well-known/openid-configuration"), 1);
        assert_eq!(server.hits("/keys"), 1);
        // The issuer checked is the discovery document's.
        let theirs = rs256(json!({"iss": "https://login.idp.test"}));
        assert!(v.verify(&theirs).is_ok());
        assert_eq!(v.verify(&rs256(json!({}))).err(), Some(TokenError::Issuer));
        // Unless the scheme names its own.
        let own = verifier(JwtKeys::Discovery(discovery), |_| {});
        until("the first fetch", || own.keys_loaded()).await;
        assert_eq!(own.verify(&theirs).err(), Some(TokenError::Issuer));
        assert!(own.verify(&rs256(json!({}))).is_ok());
        // A refetch reads the keys again, not the discovery document.
        assert!(v.refreshed().await);
        assert_eq!(server.hits("/keys"), 3);
        assert_eq!(server.hits("/.well-known/openid-configuration"), 2);
    }

    #[tokio::test]
    async fn keys_not_fetched_yet_are_unavailable() {
        let server = TestServer::start().await;
        server.route("/big", ok("x".repeat(MAX_JWKS_TEST_BODY)));
        server.route("/html", ok("<html></html>"));
        for path in ["/missing", "/big", "/html"] {
            let url: &'static str = Box::leak(server.url(path).into_boxed_str());
            let v = verifier(JwtKeys::JwksUrl(url), |_| {});
            until("the first attempt", || remote(&v).attempts() >= 1).await;
            assert!(!v.keys_loaded(), "{path}");
            assert_eq!(
                v.verify(&rs256(json!({}))).err(),
                Some(TokenError::KeysUnavailable),
                "{path}"
            );
            assert!(!v.refreshed().await, "{path}");
        }
    }

    /// Timers may wake a little early; these tests check lower bounds only (a slow machine only widens gaps).
    const SLACK: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn refetches_on_request_are_rate_limited() {
        let server = TestServer::start().await;
        server.route("/jwks", ok(JWKS));
        let url: &'static str = Box::leak(server.url("/jwks").into_boxed_str());
        let v = verifier(JwtKeys::JwksUrl(url), |_| {});
        until("the first fetch", || v.keys_loaded()).await;
        // The first request is served at once, the next one no sooner than KID_REFETCH_INTERVAL after it.
        assert!(v.refreshed().await);
        assert!(v.refreshed().await);
        let gaps = server.gaps("/jwks");
        assert_eq!(gaps.len(), 2);
        assert!(gaps[1] + SLACK >= KID_REFETCH_INTERVAL, "{gaps:?}");
    }

    #[tokio::test]
    async fn failed_fetches_are_retried_with_a_growing_backoff() {
        let server = TestServer::start().await;
        let url: &'static str = Box::leak(server.url("/missing").into_boxed_str());
        let v = verifier(JwtKeys::JwksUrl(url), |_| {});
        until("three attempts", || server.hits("/missing") >= 3).await;
        let gaps = server.gaps("/missing");
        assert!(gaps[0] + SLACK >= Duration::from_secs(1), "{gaps:?}");
        assert!(gaps[1] + SLACK >= Duration::from_secs(2), "{gaps:?}");
        assert!(!v.keys_loaded());
    }

    /// Larger than the fetch limit.
    const MAX_JWKS_TEST_BODY: usize = 1024 * 1024 + 1;

    #[tokio::test]
    async fn dropping_the_verifier_stops_its_refresher() {
        let server = TestServer::start().await;
        server.route("/jwks", ok(JWKS));
        let url: &'static str = Box::leak(server.url("/jwks").into_boxed_str());
        let v = verifier(JwtKeys::JwksUrl(url), |_| {});
        until("the first fetch", || v.keys_loaded()).await;
        let shared = remote(&v).shared_weak();
        drop(v);
        until("the refresher lets go", || shared.upgrade().is_none()).await;
    }
}
