//! `--redirect-http ADDR`: a plain-HTTP listener that sends every request to the HTTPS listener, `308 Permanent
//! Redirect` to the same host, path and query (the method and body are kept by a client that follows it).

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse as _, Response};
use http::header::{HOST, LOCATION};
use http::{HeaderValue, StatusCode};

use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::RequestCtx;

/// The redirecting listener's routes: everything, to `https://HOST[:https_port]/…`.
pub(crate) fn router(https_port: u16) -> Router {
    Router::new().fallback(redirect).with_state(https_port)
}

async fn redirect(State(https_port): State<u16>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| parts.uri.host())
        .and_then(host_only);
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = host.and_then(|host| HeaderValue::try_from(format!("https://{host}{port}{path}")).ok());
    match location {
        Some(location) => (StatusCode::PERMANENT_REDIRECT, [(LOCATION, location)]).into_response(),
        None => {
            let error = GatewayError::new(
                ErrorKind::BadRequestParameters,
                "a request to the HTTP listener needs a valid Host header to be redirected to HTTPS",
            );
            crate::responses::render(&error, &RequestCtx::new(&parts, None), None)
        }
    }
}

/// The host of a `Host` value without its port ([`crate::policies::hosts::split`]), when it is a plain name or
/// address (never anything that could turn the `Location` into another URL).
fn host_only(value: &str) -> Option<&str> {
    let (host, _) = crate::policies::hosts::split(value);
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':');
    (!host.is_empty() && host.chars().all(plain)).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::host_only;

    #[test]
    fn host_only_drops_the_port_and_refuses_what_is_not_a_host() {
        assert_eq!(host_only("api.example.com:8080"), Some("api.example.com"));
        assert_eq!(host_only("api.example.com"), Some("api.example.com"));
        assert_eq!(host_only("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_only("evil.com/@x"), None);
        assert_eq!(host_only("a b"), None);
        assert_eq!(host_only(""), None);
    }
}
