//! Credentials the gateway consumed are not the upstream's: an upstream request filter removes them.
//!
//! Once the gateway has checked an API key, forwarding it would hand every backend (and whatever it logs) a
//! secret it never needed. Each `apiKey` scheme an operation accepts is removed from the forwarded request —
//! the header, the query parameter (the rest of the query byte for byte), or the cookie (the other cookies kept) —
//! unless the scheme says `x-gateway: { forward_credentials: true }`.

use bytes::Bytes;
use http::header::COOKIE;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri, request};

use crate::spec::{ApiKeyScheme, KeyLocation};

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

/// The credentials of `security` that are removed before forwarding, each once.
pub fn to_strip(security: &[&[ApiKeyScheme]]) -> Box<[Credential]> {
    let mut out: Vec<Credential> = Vec::new();
    for scheme in security.iter().flat_map(|alternative| alternative.iter()) {
        if scheme.forward {
            continue;
        }
        let credential = match scheme.location {
            KeyLocation::Header => match HeaderName::from_bytes(scheme.name.as_bytes()) {
                Ok(name) => Credential::Header(name),
                // Not a header name, so never presented: nothing to remove.
                Err(_) => continue,
            },
            KeyLocation::Query => Credential::Query(scheme.name),
            KeyLocation::Cookie => Credential::Cookie(scheme.name),
        };
        if !out.contains(&credential) {
            out.push(credential);
        }
    }
    out.into_boxed_slice()
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
fn without_param(query: &str, name: &str) -> Option<String> {
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
        static SCHEMES: [ApiKeyScheme; 3] = [
            ApiKeyScheme {
                scheme: "c",
                location: KeyLocation::Cookie,
                name: "key",
                forward: false,
            },
            ApiKeyScheme {
                scheme: "q",
                location: KeyLocation::Query,
                name: "api_key",
                forward: false,
            },
            ApiKeyScheme {
                scheme: "h",
                location: KeyLocation::Header,
                name: "x-api-key",
                forward: false,
            },
        ];
        static SECURITY: [&[ApiKeyScheme]; 1] = [&SCHEMES];
        strip(&mut parts, &to_strip(&SECURITY));
        assert_eq!(parts.headers[COOKIE], "session=abc");
        assert_eq!(parts.uri.query(), Some("q=a%20b"));
        assert!(!parts.headers.contains_key("x-api-key"));
    }

    #[test]
    fn forwarded_schemes_are_not_stripped() {
        static KEEP: [ApiKeyScheme; 1] = [ApiKeyScheme {
            scheme: "h",
            location: KeyLocation::Header,
            name: "x-api-key",
            forward: true,
        }];
        static SECURITY: [&[ApiKeyScheme]; 1] = [&KEEP];
        assert!(to_strip(&SECURITY).is_empty());
    }
}
