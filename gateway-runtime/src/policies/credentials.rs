//! Credentials the gateway consumed are not the upstream's: an upstream request filter removes them.
//!
//! Once the gateway has checked an API key or a token, forwarding it would hand every backend (and whatever it
//! logs) a secret it never needed. Each credential an operation accepts is removed from the forwarded request —
//! the header, the query parameter (the rest of the query byte for byte), or the cookie (the other cookies kept) —
//! unless its scheme says to forward it (`forward_credentials: true`, `forward_authorization: true`).
//!
//! The headers the gateway itself sets from what it verified (`claims_headers`, an authorizer's
//! `forward_headers`) are removed too, whatever the scheme says: a client must not be able to send
//! `X-User-Id: admin` and have it reach the upstream as if the gateway had vouched for it.

use bytes::Bytes;
use http::header::COOKIE;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri, request};

use crate::spec::{ApiKeyScheme, ApiSpec, KeyLocation, Requirement, SchemeKind};

/// A credential to remove, prepared at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A header, by name (parsed once).
    Header(HeaderName),
    /// A query parameter.
    Query(&'static str),
    /// A cookie.
    Cookie(&'static str),
}

/// The credentials of `security` (schemes of `api`) that are removed before forwarding, and the headers the gateway
/// sets from verified credentials (any scheme's, on every operation), each once.
pub fn to_strip(api: &ApiSpec, security: &[&[Requirement]]) -> Box<[Credential]> {
    let accepted: Vec<&SchemeKind> = security
        .iter()
        .flat_map(|alternative| alternative.iter())
        .filter_map(|r| api.schemes.get(r.scheme).map(|s| &s.kind))
        .collect();
    // A scheme the upstream verifies needs `Authorization`, even where a JWT alternative would remove it.
    let upstream_verifies = accepted.iter().any(|kind| matches!(kind, SchemeKind::Presented(_)));
    let mut out: Vec<Credential> = Vec::new();
    for kind in accepted {
        match kind {
            SchemeKind::ApiKey(key) => push(&mut out, presented(key)),
            SchemeKind::Jwt(jwt) if !jwt.forward_authorization && !upstream_verifies => {
                push(&mut out, Some(Credential::Header(http::header::AUTHORIZATION)));
            }
            SchemeKind::Authorizer(authorizer) => push(&mut out, presented(&authorizer.credential)),
            // A forwarded token, or verified by the upstream: it needs the credential.
            SchemeKind::Jwt(_) | SchemeKind::Presented(_) | SchemeKind::MutualTls => {}
        }
    }
    // The headers the gateway vouches for are removed on every operation, whatever its security: an upstream that
    // trusts `X-User-Id` on one path must not receive a client's own `X-User-Id` on another.
    for scheme in api.schemes {
        match &scheme.kind {
            SchemeKind::Jwt(jwt) => {
                for (header, _) in jwt.claims_headers {
                    push(&mut out, header_named(header));
                }
            }
            SchemeKind::Authorizer(authorizer) => {
                for header in authorizer.forward_headers {
                    push(&mut out, header_named(header));
                }
            }
            SchemeKind::ApiKey(_) | SchemeKind::Presented(_) | SchemeKind::MutualTls => {}
        }
    }
    out.into_boxed_slice()
}

/// Adds `credential` to `out` unless it is there already.
fn push(out: &mut Vec<Credential>, credential: Option<Credential>) {
    if let Some(credential) = credential
        && !out.contains(&credential)
    {
        out.push(credential);
    }
}

/// Where `scheme`'s credential is, unless it is forwarded.
fn presented(scheme: &ApiKeyScheme) -> Option<Credential> {
    if scheme.forward {
        return None;
    }
    match scheme.location {
        // Not a header name, so never presented: nothing to remove.
        KeyLocation::Header => header_named(scheme.name),
        KeyLocation::Query => Some(Credential::Query(scheme.name)),
        KeyLocation::Cookie => Some(Credential::Cookie(scheme.name)),
    }
}

fn header_named(name: &str) -> Option<Credential> {
    HeaderName::from_bytes(name.as_bytes()).ok().map(Credential::Header)
}

/// Removes `credentials` from the request.
pub fn strip(parts: &mut request::Parts, credentials: &[Credential]) {
    for credential in credentials {
        match credential {
            Credential::Header(name) => {
                parts.headers.remove(name);
            }
            Credential::Query(name) => strip_query(parts, name),
            Credential::Cookie(name) => strip_cookie(parts, name),
        }
    }
}

/// The query without the parameters named `name` (compared percent-decoded, as they were read); every other byte
/// of the query as sent. `None` when nothing was removed.
pub(crate) fn without_param(query: &str, name: &str) -> Option<String> {
    let is_named = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        form_urlencoded::parse(key.as_bytes())
            .next()
            .is_some_and(|(k, _)| k == name)
    };
    if !query.split('&').any(is_named) {
        return None;
    }
    let kept: Vec<&str> = query.split('&').filter(|pair| !is_named(pair)).collect();
    Some(kept.join("&"))
}

fn strip_query(parts: &mut request::Parts, name: &str) {
    let Some(query) = parts.uri.query() else { return };
    let Some(kept) = without_param(query, name) else { return };
    let path = parts.uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{kept}")
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = PathAndQuery::from_maybe_shared(Bytes::from(rebuilt)).ok();
    if let Ok(new) = Uri::from_parts(uri) {
        parts.uri = new;
    }
}

fn strip_cookie(parts: &mut request::Parts, name: &str) {
    if !parts.headers.contains_key(COOKIE) {
        return;
    }
    let kept: Vec<String> = parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split_once('=').map_or(*pair, |(k, _)| k) != name)
        .map(str::to_owned)
        .collect();
    parts.headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        parts.headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{JwtAlgorithm, JwtKeys, JwtSpec, SchemeSpec};

    #[test]
    fn query_credentials_are_removed_and_the_rest_kept_byte_for_byte() {
        assert_eq!(
            without_param("api_key=s3cret&b=%20x&c", "api_key").as_deref(),
            Some("b=%20x&c")
        );
        assert_eq!(
            without_param("a=1&api%5Fkey=s&api_key=t&z=%2F", "api_key").as_deref(),
            Some("a=1&z=%2F")
        );
        assert_eq!(without_param("api_key=only", "api_key").as_deref(), Some(""));
        assert_eq!(without_param("a=1&b=2", "api_key"), None);
    }

    #[test]
    fn cookie_credentials_are_removed_and_other_cookies_kept() {
        let (mut parts, ()) = http::Request::get("/x?api_key=1&q=a%20b")
            .header(COOKIE, "session=abc; key=s3cret")
            .header("x-api-key", "s3cret")
            .body(())
            .unwrap_or_default()
            .into_parts();
        static SECURITY: [&[Requirement]; 1] = [&[
            Requirement { scheme: 0, scopes: &[] },
            Requirement { scheme: 1, scopes: &[] },
            Requirement { scheme: 2, scopes: &[] },
        ]];
        strip(&mut parts, &to_strip(&api(&SCHEMES), &SECURITY));
        assert_eq!(parts.headers[COOKIE], "session=abc");
        assert_eq!(parts.uri.query(), Some("q=a%20b"));
        assert!(!parts.headers.contains_key("x-api-key"));
    }

    const X_USER_ID: Credential = Credential::Header(HeaderName::from_static("x-user-id"));

    #[test]
    fn forwarded_schemes_are_not_stripped() {
        static SECURITY: [&[Requirement]; 1] = [&[Requirement { scheme: 3, scopes: &[] }]];
        // Only the header the gateway vouches for (on any operation) goes.
        assert_eq!(&*to_strip(&api(&SCHEMES), &SECURITY), [X_USER_ID]);
    }

    #[test]
    fn verified_headers_are_stripped_even_when_the_token_is_forwarded() {
        static SECURITY: [&[Requirement]; 1] = [&[Requirement { scheme: 4, scopes: &[] }]];
        assert_eq!(&*to_strip(&api(&SCHEMES), &SECURITY), [X_USER_ID]);
    }

    #[test]
    fn verified_headers_are_stripped_on_operations_that_do_not_use_the_scheme() {
        assert_eq!(&*to_strip(&api(&SCHEMES), &[]), [X_USER_ID]);
    }

    const fn key(scheme: &'static str, location: KeyLocation, name: &'static str, forward: bool) -> SchemeSpec {
        SchemeSpec {
            name: scheme,
            kind: SchemeKind::ApiKey(ApiKeyScheme {
                scheme,
                location,
                name,
                forward,
            }),
        }
    }

    static SCHEMES: [SchemeSpec; 5] = [
        key("c", KeyLocation::Cookie, "key", false),
        key("q", KeyLocation::Query, "api_key", false),
        key("h", KeyLocation::Header, "x-api-key", false),
        key("kept", KeyLocation::Header, "x-api-key", true),
        SchemeSpec {
            name: "bearer",
            kind: SchemeKind::Jwt(JwtSpec {
                issuer: None,
                audiences: &[],
                algorithms: &[JwtAlgorithm::Rs256],
                keys: JwtKeys::JwksUrl("http://127.0.0.1:1/jwks"),
                leeway: std::time::Duration::ZERO,
                forward_authorization: true,
                claims_headers: &[("X-User-Id", "sub")],
            }),
        },
    ];

    fn api(schemes: &'static [SchemeSpec]) -> ApiSpec {
        ApiSpec {
            schemes,
            ..crate::spec::ApiSpec::EMPTY
        }
    }
}
