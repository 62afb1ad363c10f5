//! JWT bearer tokens: verification against a scheme's keys (INTERFACE STUB — being implemented).

use std::sync::Arc;

use crate::spec::{JwtSpec, SchemeSpec};

/// Why a JWT scheme cannot be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// Anything.
    #[error("security scheme `{scheme}`: {reason}")]
    Invalid {
        /// The scheme.
        scheme: &'static str,
        /// Why.
        reason: String,
    },
}

/// A verified token: its claims and scopes.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The payload.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// `scope` split on spaces, or `scp`.
    pub scopes: Box<[Box<str>]>,
    /// `exp`, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
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

/// One JWT scheme's verifier: process-wide, shared by every worker.
#[derive(Debug)]
pub struct JwtVerifier {
    scheme: &'static SchemeSpec,
    spec: &'static JwtSpec,
}

impl JwtVerifier {
    /// Prepares `scheme` (whose kind is `spec`); `source` replaces its JWKS or discovery URL.
    pub fn new(
        scheme: &'static SchemeSpec,
        spec: &'static JwtSpec,
        source: Option<&str>,
    ) -> Result<Arc<Self>, JwtSetupError> {
        let _ = source;
        Ok(Arc::new(Self { scheme, spec }))
    }

    /// The scheme's name.
    pub fn scheme(&self) -> &'static str {
        self.scheme.name
    }

    /// Verifies `token` with the keys known now.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let _ = (token, self.spec);
        Err(TokenError::KeysUnavailable)
    }

    /// Waits (bounded) for the key set to be loaded or refreshed after [`TokenError::UnknownKey`] or
    /// [`TokenError::KeysUnavailable`]; `true` when a new set arrived, so that verifying again may succeed.
    pub async fn refreshed(&self) -> bool {
        false
    }
}
