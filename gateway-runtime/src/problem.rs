//! RFC 9457 `application/problem+json` responses: every response the gateway makes itself.
//!
//! One shape for every gateway-made error lets clients tell a gateway refusal (`400`, `404`, `405`) or failure
//! (`502`, `504`, `500`) from an upstream's own answer, which is passed through untouched. The `detail` sent to
//! the client is a short, fixed-vocabulary reason; internal error text (socket errors, upstream addresses) goes
//! to the log only, by the caller, never into the body.

use std::borrow::Cow;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::params::{ParamError, ParamIn};

/// The media type of every problem response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail (RFC 9457) about to become a response.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The HTTP status; also sent as the `status` member.
    pub status: StatusCode,
    /// The `title` member: a short summary that does not change between occurrences (the status' reason phrase).
    pub title: &'static str,
    /// The `detail` member: what went wrong with this request, safe to show to the client.
    pub detail: Cow<'static, str>,
    /// For `400`s about one parameter: which, where and what was expected (an extension member).
    pub parameter: Option<ProblemParameter>,
    /// The `Allow` header of a `405`.
    pub allow: Option<HeaderValue>,
    /// For a `429` over quota: when the quota resets (RFC 3339, UTC), an extension member.
    pub resets_at: Option<String>,
}

/// The `parameter` extension member of a `400`: lets clients point at the offending input without parsing
/// `detail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemParameter {
    /// The parameter's name as declared in the spec.
    pub name: &'static str,
    /// `path`, `query`, `header` or `cookie`.
    #[serde(rename = "in")]
    pub location: &'static str,
    /// What a valid value looks like.
    pub expected: Cow<'static, str>,
}

/// The wire form; members in the order RFC 9457 lists them, extensions last.
#[derive(Serialize)]
struct Body9457<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a ProblemParameter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<&'a str>,
}

impl Problem {
    /// A problem with `status`, its reason phrase as title, and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            title: status.canonical_reason().unwrap_or("Error"),
            detail: detail.into(),
            parameter: None,
            allow: None,
            resets_at: None,
        }
    }

    /// `400 Bad Request` for a parameter that is missing or does not parse.
    pub fn bad_param(err: &ParamError) -> Self {
        Self {
            parameter: Some(ProblemParameter {
                name: err.name,
                location: err.location.as_str(),
                expected: err.expected.clone(),
            }),
            ..Self::new(StatusCode::BAD_REQUEST, err.to_string())
        }
    }

    /// `400 Bad Request` for a parameter with a free-form explanation (e.g. a path value that is not UTF-8).
    pub fn bad_param_detail(
        location: ParamIn,
        name: &'static str,
        expected: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            parameter: Some(ProblemParameter {
                name,
                location: location.as_str(),
                expected: Cow::Borrowed(expected),
            }),
            ..Self::new(StatusCode::BAD_REQUEST, detail)
        }
    }

    /// `404 Not Found`: no route matches the path.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no operation matches the request path")
    }

    /// `405 Method Not Allowed`, with the route's `Allow` header.
    pub fn method_not_allowed(method: &Method, allow: HeaderValue) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} is not allowed on this path"),
            )
        }
    }

    /// `502 Bad Gateway`: the upstream could not be reached or broke the exchange. `reason` is a short, fixed
    /// phrase; the underlying error belongs in the log.
    pub fn bad_gateway(reason: &'static str) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, reason)
    }

    /// `504 Gateway Timeout`: the upstream did not answer in time.
    pub fn gateway_timeout() -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "the upstream did not respond in time")
    }

    /// `500 Internal Server Error`: a gateway bug or misconfiguration; the cause belongs in the log.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the gateway failed to handle the request",
        )
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        let body = Body9457 {
            kind: "about:blank",
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            parameter: self.parameter.as_ref(),
            resets_at: self.resets_at.as_deref(),
        };
        // Serializing plain strings and integers into a Vec cannot fail; fall back to an empty object anyway
        // rather than panic on the error path.
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The response: status, `Content-Type: application/problem+json`, `Allow` if set, the JSON body.
    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(Bytes::from(self.to_json())));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, allow);
        }
        response
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        Problem::into_response(self)
    }
}

impl From<&ParamError> for Problem {
    fn from(err: &ParamError) -> Self {
        Self::bad_param(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_param_body_names_the_parameter() {
        let err = ParamError::invalid(ParamIn::Query, "limit", "integer (int32)", "abc");
        let json: serde_json::Value = serde_json::from_slice(&Problem::bad_param(&err).to_json()).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "query parameter `limit` must be integer (int32), got \"abc\"",
                "parameter": {"name": "limit", "in": "query", "expected": "integer (int32)"}
            })
        );
    }

    #[test]
    fn members_are_in_rfc_order() {
        let body = String::from_utf8(Problem::not_found().to_json()).expect("utf-8");
        assert!(
            body.starts_with(r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"#),
            "{body}"
        );
    }

    #[test]
    fn method_not_allowed_sets_allow() {
        let response =
            Problem::method_not_allowed(&Method::DELETE, HeaderValue::from_static("GET, HEAD")).into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
    }
}
