//! Every response the gateway makes itself: one error type, one set of kinds, rendered in one place.
//!
//! A phase that refuses a request, or a target that fails, returns a [`GatewayError`]: a [`ErrorKind`] (the
//! user-facing name, e.g. `THROTTLED`), a detail safe to show the client, and the headers HTTP requires for that
//! refusal (`Allow`, `Retry-After`, `WWW-Authenticate`). The pipeline renders it once, at the end of the request
//! ([`crate::pipeline`]): through the spec's custom gateway response for the kind when there is one
//! ([`crate::responses`]), otherwise as RFC 9457 `application/problem+json` ([`GatewayError::problem_json`]).
//!
//! The detail is a short, fixed-vocabulary reason; internal error text (socket errors, upstream addresses) goes to
//! the log by the code that saw it, never into the body.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

use crate::params::{ParamError, ParamIn};

/// The media type of every default gateway response.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, as the spec's `x-gateway.responses` names it.
///
/// The `SCREAMING_SNAKE_CASE` names (see [`ErrorKind::name`]) are part of the user-facing contract: specs
/// override the rendering of each, and the access log reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A path, query, header or cookie parameter is missing or does not parse (`400`).
    BadRequestParameters,
    /// The request body does not match the operation's schema (`400`).
    BadRequestBody,
    /// The request's `Content-Type` is not one the operation accepts (`415`).
    UnsupportedMediaType,
    /// The request body is larger than allowed (`413`).
    PayloadTooLarge,
    /// The request did not get its answer within `--request-timeout` (`408`).
    RequestTimeout,
    /// No credential, or one that is not valid (`401`).
    Unauthorized,
    /// A valid credential that may not make this request (`403`).
    Forbidden,
    /// A token bucket is empty (`429`).
    Throttled,
    /// The caller's quota for the period is used up (`429`).
    QuotaExceeded,
    /// No operation matches the path (`404`).
    NotFound,
    /// The path exists, but not with this method (`405`).
    MethodNotAllowed,
    /// The request names a host this gateway does not serve (`421`).
    MisdirectedRequest,
    /// A conditional write's precondition (`If-Match`, `If-None-Match`) does not hold (`412`).
    PreconditionFailed,
    /// The upstream could not be reached or broke the exchange (`502`).
    UpstreamError,
    /// The upstream did not answer in time (`504`).
    UpstreamTimeout,
    /// The gateway cannot serve the request now (`503`).
    ServiceUnavailable,
    /// The operation's function is a generated stub that nobody has written yet (`501`).
    NotImplemented,
    /// A gateway bug or misconfiguration (`500`).
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of [`ErrorKind::index`].
    pub const ALL: [ErrorKind; 18] = [
        ErrorKind::BadRequestParameters,
        ErrorKind::BadRequestBody,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RequestTimeout,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::Throttled,
        ErrorKind::QuotaExceeded,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::MisdirectedRequest,
        ErrorKind::PreconditionFailed,
        ErrorKind::UpstreamError,
        ErrorKind::UpstreamTimeout,
        ErrorKind::ServiceUnavailable,
        ErrorKind::NotImplemented,
        ErrorKind::Internal,
    ];

    /// A dense index, for per-kind tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The name specs and logs use: `THROTTLED`, `NOT_FOUND`, …
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequestParameters => "BAD_REQUEST_PARAMETERS",
            ErrorKind::BadRequestBody => "BAD_REQUEST_BODY",
            ErrorKind::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorKind::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorKind::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorKind::Unauthorized => "UNAUTHORIZED",
            ErrorKind::Forbidden => "FORBIDDEN",
            ErrorKind::Throttled => "THROTTLED",
            ErrorKind::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorKind::MisdirectedRequest => "MISDIRECTED_REQUEST",
            ErrorKind::PreconditionFailed => "PRECONDITION_FAILED",
            ErrorKind::UpstreamError => "UPSTREAM_ERROR",
            ErrorKind::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            ErrorKind::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorKind::NotImplemented => "NOT_IMPLEMENTED",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The status a response of this kind has unless the spec says otherwise.
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequestParameters | ErrorKind::BadRequestBody => StatusCode::BAD_REQUEST,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Throttled | ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::UpstreamError => StatusCode::BAD_GATEWAY,
            ErrorKind::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem `title`: a short summary that is the same for every occurrence of the kind.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorKind::BadRequestParameters => "Invalid request parameters",
            ErrorKind::BadRequestBody => "Invalid request body",
            ErrorKind::UnsupportedMediaType => "Unsupported media type",
            ErrorKind::PayloadTooLarge => "Payload too large",
            ErrorKind::RequestTimeout => "Request timeout",
            ErrorKind::Unauthorized => "Unauthorized",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::Throttled => "Too many requests",
            ErrorKind::QuotaExceeded => "Quota exceeded",
            ErrorKind::NotFound => "Not found",
            ErrorKind::MethodNotAllowed => "Method not allowed",
            ErrorKind::MisdirectedRequest => "Misdirected request",
            ErrorKind::PreconditionFailed => "Precondition failed",
            ErrorKind::UpstreamError => "Upstream error",
            ErrorKind::UpstreamTimeout => "Upstream timeout",
            ErrorKind::ServiceUnavailable => "Service unavailable",
            ErrorKind::NotImplemented => "Not implemented",
            ErrorKind::Internal => "Internal error",
        }
    }

    /// The problem `type`: a URI naming the kind (documented in docs/x-gateway.md).
    pub const fn type_uri(self) -> &'static str {
        match self {
            ErrorKind::BadRequestParameters => "urn:gateway:error:bad-request-parameters",
            ErrorKind::BadRequestBody => "urn:gateway:error:bad-request-body",
            ErrorKind::UnsupportedMediaType => "urn:gateway:error:unsupported-media-type",
            ErrorKind::PayloadTooLarge => "urn:gateway:error:payload-too-large",
            ErrorKind::RequestTimeout => "urn:gateway:error:request-timeout",
            ErrorKind::Unauthorized => "urn:gateway:error:unauthorized",
            ErrorKind::Forbidden => "urn:gateway:error:forbidden",
            ErrorKind::Throttled => "urn:gateway:error:throttled",
            ErrorKind::QuotaExceeded => "urn:gateway:error:quota-exceeded",
            ErrorKind::NotFound => "urn:gateway:error:not-found",
            ErrorKind::MethodNotAllowed => "urn:gateway:error:method-not-allowed",
            ErrorKind::MisdirectedRequest => "urn:gateway:error:misdirected-request",
            ErrorKind::PreconditionFailed => "urn:gateway:error:precondition-failed",
            ErrorKind::UpstreamError => "urn:gateway:error:upstream-error",
            ErrorKind::UpstreamTimeout => "urn:gateway:error:upstream-timeout",
            ErrorKind::ServiceUnavailable => "urn:gateway:error:service-unavailable",
            ErrorKind::NotImplemented => "urn:gateway:error:not-implemented",
            ErrorKind::Internal => "urn:gateway:error:internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A response the gateway makes itself, before it is rendered.
///
/// Kept small (the rarely used parts are boxed): it travels in the `Result` every phase and target returns, so its
/// size is paid by every request's future, refused or not.
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The `detail` member: what went wrong with this request, safe to show to the client.
    pub detail: Cow<'static, str>,
    /// For a bad parameter: which, where and what was expected (an extension member).
    pub parameter: Option<Box<ProblemParameter>>,
    /// `Allow` (a `405`): always sent, whatever the spec's rendering.
    pub allow: Option<Box<HeaderValue>>,
    /// `Retry-After` (a `429`/`503`): always sent, in whole seconds rounded up.
    pub retry_after: Option<Duration>,
    /// `WWW-Authenticate` (a `401`): always sent.
    pub www_authenticate: Option<Box<HeaderValue>>,
    /// For a quota refusal: when the quota resets (RFC 3339, UTC), an extension member.
    pub resets_at: Option<Box<str>>,
    /// For a body or parameter that does not match its schema: every violation found (capped), an extension
    /// member.
    pub errors: Option<Box<[ProblemItem]>>,
    /// What refined the kind, for metrics only (never sent): the bucket that throttled (`api`, `operation`,
    /// `plan`), why authentication refused (`missing`, `invalid`, `unavailable`, `forbidden`).
    pub reason: Option<&'static str>,
}

/// One schema violation, in the `errors` extension member of a `400`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProblemItem {
    /// JSON pointer (RFC 6901) to the offending value in the body (or parameter value); empty for the whole.
    pub pointer: String,
    /// The schema keyword that failed (`type`, `required`, `enum`, `maxLength`, …).
    pub keyword: String,
    /// What is wrong, in words.
    pub detail: String,
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

/// The wire form of the default rendering; members in the order RFC 9457 lists them, extensions last.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a ProblemParameter>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resets_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [ProblemItem]>,
}

impl GatewayError {
    /// An error of `kind` with `detail`.
    pub fn new(kind: ErrorKind, detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            parameter: None,
            allow: None,
            retry_after: None,
            www_authenticate: None,
            resets_at: None,
            errors: None,
            reason: None,
        }
    }

    /// The error with a [`reason`](Self::reason).
    #[must_use]
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The error with a `Retry-After` of `wait` (a `503` that will likely pass again soon).
    #[must_use]
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// `BAD_REQUEST_PARAMETERS` for a parameter that is missing or does not parse.
    pub fn bad_param(err: &ParamError) -> Self {
        Self {
            parameter: Some(Box::new(ProblemParameter {
                name: err.name,
                location: err.location.as_str(),
                expected: err.expected.clone(),
            })),
            ..Self::new(ErrorKind::BadRequestParameters, err.to_string())
        }
    }

    /// `BAD_REQUEST_PARAMETERS` with a free-form explanation (e.g. a path value that is not UTF-8).
    pub fn bad_param_detail(
        location: ParamIn,
        name: &'static str,
        expected: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            parameter: Some(Box::new(ProblemParameter {
                name,
                location: location.as_str(),
                expected: Cow::Borrowed(expected),
            })),
            ..Self::new(ErrorKind::BadRequestParameters, detail)
        }
    }

    /// `NOT_FOUND`: no route matches the path.
    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "no operation matches the request path")
    }

    /// `METHOD_NOT_ALLOWED`, with the route's `Allow` header.
    pub fn method_not_allowed(method: &http::Method, allow: HeaderValue) -> Self {
        Self {
            allow: Some(Box::new(allow)),
            ..Self::new(
                ErrorKind::MethodNotAllowed,
                format!("method {method} is not allowed on this path"),
            )
        }
    }

    /// A schema check failed: `kind` (`BAD_REQUEST_BODY` or `BAD_REQUEST_PARAMETERS`) with every violation.
    pub fn schema_violations(kind: ErrorKind, detail: String, errors: Vec<ProblemItem>) -> Self {
        Self {
            errors: Some(errors.into_boxed_slice()),
            ..Self::new(kind, detail)
        }
    }

    /// `PAYLOAD_TOO_LARGE`: the request body is over the operation's limit.
    pub fn payload_too_large(max: u64) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            format!("the request body is larger than this operation accepts ({max} bytes)"),
        )
    }

    /// `REQUEST_TIMEOUT`: the request had no answer within `limit` of its arrival (`--request-timeout`).
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::RequestTimeout,
            format!(
                "the request was not answered within the gateway's request timeout ({})",
                humantime::format_duration(limit)
            ),
        )
    }

    /// `UPSTREAM_ERROR`: the upstream could not be reached or broke the exchange. `reason` is a short, fixed
    /// phrase; the underlying error belongs in the log.
    pub fn upstream(reason: &'static str) -> Self {
        Self::new(ErrorKind::UpstreamError, reason)
    }

    /// `UPSTREAM_TIMEOUT`: the upstream did not answer in time.
    pub fn upstream_timeout() -> Self {
        Self::new(ErrorKind::UpstreamTimeout, "the upstream did not respond in time")
    }

    /// `NOT_IMPLEMENTED`: a function target that is still the generated stub.
    pub fn not_implemented(function: &str) -> Self {
        Self::new(
            ErrorKind::NotImplemented,
            format!("function `{function}` is the generated stub: it has not been written yet"),
        )
    }

    /// `INTERNAL`: a gateway bug or misconfiguration; the cause belongs in the log.
    pub fn internal() -> Self {
        Self::new(ErrorKind::Internal, "the gateway failed to handle the request")
    }

    /// `THROTTLED` or `QUOTA_EXCEEDED` with the wait until a retry can succeed.
    pub fn too_many(kind: ErrorKind, detail: String, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(kind, detail)
        }
    }

    /// The status of the default rendering.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The default rendering's body: RFC 9457 problem+json.
    pub fn problem_json(&self) -> Bytes {
        let body = Problem {
            kind: self.kind.type_uri(),
            title: self.kind.title(),
            status: self.kind.status().as_u16(),
            detail: &self.detail,
            parameter: self.parameter.as_deref(),
            resets_at: self.resets_at.as_deref(),
            errors: self.errors.as_deref(),
        };
        // Serializing plain strings and integers into a Vec cannot fail; fall back to an empty object anyway
        // rather than panic on the error path.
        Bytes::from(serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()))
    }

    /// `Retry-After` in whole seconds, rounded up (a client that waits that long is admitted), at least 1.
    pub fn retry_after_value(&self) -> Option<HeaderValue> {
        self.retry_after.map(|wait| {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            HeaderValue::from(secs.max(1))
        })
    }
}

impl From<&ParamError> for GatewayError {
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
        let json: serde_json::Value =
            serde_json::from_slice(&GatewayError::bad_param(&err).problem_json()).expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "urn:gateway:error:bad-request-parameters",
                "title": "Invalid request parameters",
                "status": 400,
                "detail": "query parameter `limit` must be integer (int32), got \"abc\"",
                "parameter": {"name": "limit", "in": "query", "expected": "integer (int32)"}
            })
        );
    }

    #[test]
    fn members_are_in_rfc_order() {
        let body = String::from_utf8(GatewayError::not_found().problem_json().to_vec()).expect("utf-8");
        assert!(
            body.starts_with(r#"{"type":"urn:gateway:error:not-found","title":"Not found","status":404,"detail":"#),
            "{body}"
        );
    }

    #[test]
    fn every_kind_has_a_distinct_name_type_and_index() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}");
            assert!(
                kind.type_uri()
                    .ends_with(&kind.name().to_ascii_lowercase().replace('_', "-"))
            );
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let err = GatewayError::too_many(ErrorKind::Throttled, String::new(), Duration::from_millis(1200));
        assert_eq!(err.retry_after_value(), Some(HeaderValue::from(2_u64)));
        let err = GatewayError::too_many(ErrorKind::Throttled, String::new(), Duration::ZERO);
        assert_eq!(err.retry_after_value(), Some(HeaderValue::from(1_u64)));
    }
}

#[cfg(test)]
#[test]
fn a_gateway_error_costs_a_response_nothing_in_size() {
    // The `Result` of every phase and target is no larger than the response it usually holds.
    assert!(
        std::mem::size_of::<Result<axum::response::Response, GatewayError>>()
            <= std::mem::size_of::<axum::response::Response>(),
        "GatewayError is {} bytes",
        std::mem::size_of::<GatewayError>()
    );
}
