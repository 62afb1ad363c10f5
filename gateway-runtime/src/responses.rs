//! Rendering gateway responses: the spec's own rendering of a kind (`x-gateway.responses`), or the default
//! problem+json.
//!
//! Each operation's table is prepared at start-up from the top-level entries and the operation's (and its path
//! item's) overrides, kind by kind: an operation's `THROTTLED` beats the top-level `THROTTLED`; a kind with no entry
//! at any level takes `DEFAULT_4XX` or `DEFAULT_5XX` (resolved the same way); a kind with neither is rendered as
//! problem+json. An API without custom responses prepares nothing, and its errors go straight to the default
//! rendering.
//!
//! The headers HTTP requires of a refusal (`Allow`, `Retry-After`, `WWW-Authenticate`) are added whatever the
//! rendering. A filled header value that is not a valid header value (a detail holding a line break, say) is never
//! sent: the response falls back to the default rendering, and the reason is logged.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::error::{ErrorKind, GatewayError, PROBLEM_JSON};
use crate::pipeline::RequestCtx;
use crate::spec::{GatewayResponseSpec, ResponseSelector};
use crate::template::{TemplatePart, Values};

/// Why the spec's gateway responses cannot be served (the generator checks all of this).
#[derive(Debug, thiserror::Error)]
pub enum ResponsesError {
    /// Not a valid HTTP status code.
    #[error("gateway response {selector}: invalid status code {status}")]
    Status {
        /// Which entry.
        selector: String,
        /// The status.
        status: u16,
    },
    /// A header name or content type HTTP does not allow.
    #[error("gateway response {selector}: invalid header `{name}`")]
    Header {
        /// Which entry.
        selector: String,
        /// The header.
        name: &'static str,
    },
}

/// One kind's rendering, prepared.
#[derive(Debug)]
struct Prepared {
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, &'static [TemplatePart])>,
    content_type: HeaderValue,
    body: Option<&'static [TemplatePart]>,
}

/// The renderings in force for one operation (or for requests that matched none), by kind.
#[derive(Debug)]
pub struct Responses {
    by_kind: [Option<Arc<Prepared>>; ErrorKind::ALL.len()],
}

fn selector_name(selector: ResponseSelector) -> String {
    match selector {
        ResponseSelector::Kind(kind) => kind.name().to_owned(),
        ResponseSelector::Default4xx => "DEFAULT_4XX".to_owned(),
        ResponseSelector::Default5xx => "DEFAULT_5XX".to_owned(),
    }
}

fn prepare(spec: &'static GatewayResponseSpec) -> Result<Arc<Prepared>, ResponsesError> {
    let selector = || selector_name(spec.selector);
    let status = spec
        .status
        .map(|s| {
            StatusCode::from_u16(s).map_err(|_| ResponsesError::Status {
                selector: selector(),
                status: s,
            })
        })
        .transpose()?;
    let headers = spec
        .headers
        .iter()
        .map(|(name, value)| {
            HeaderName::from_bytes(name.as_bytes())
                .map(|n| (n, *value))
                .map_err(|_| ResponsesError::Header {
                    selector: selector(),
                    name,
                })
        })
        .collect::<Result<_, _>>()?;
    let content_type = HeaderValue::from_str(spec.content_type).map_err(|_| ResponsesError::Header {
        selector: selector(),
        name: "content-type",
    })?;
    Ok(Arc::new(Prepared {
        status,
        headers,
        content_type,
        body: spec.body,
    }))
}

impl Responses {
    /// The table for an operation with `own` overrides under the API-wide `api` entries; `None` when neither has
    /// any (every error then gets the default rendering, at no cost).
    pub fn new(
        api: &'static [GatewayResponseSpec],
        own: &'static [GatewayResponseSpec],
    ) -> Result<Option<Self>, ResponsesError> {
        if api.is_empty() && own.is_empty() {
            return Ok(None);
        }
        let find = |selector: ResponseSelector| -> Result<Option<Arc<Prepared>>, ResponsesError> {
            own.iter()
                .chain(api)
                .find(|r| r.selector == selector)
                .map(prepare)
                .transpose()
        };
        let default_4xx = find(ResponseSelector::Default4xx)?;
        let default_5xx = find(ResponseSelector::Default5xx)?;
        let mut by_kind: [Option<Arc<Prepared>>; ErrorKind::ALL.len()] = Default::default();
        for kind in ErrorKind::ALL {
            let fallback = if kind.status().is_server_error() {
                &default_5xx
            } else {
                &default_4xx
            };
            by_kind[kind.index()] = find(ResponseSelector::Kind(kind))?.or_else(|| fallback.clone());
        }
        Ok(Some(Self { by_kind }))
    }

    /// The spec's rendering of `error`, or `None` when the kind has none or it cannot be sent as written.
    fn render(&self, error: &GatewayError, ctx: &RequestCtx) -> Option<Response> {
        let prepared = self.by_kind[error.kind.index()].as_ref()?;
        let values = Values {
            ctx,
            error: Some(error),
            request: None,
        };
        let mut response = match prepared.body {
            Some(body) => {
                let mut response = Response::new(Body::from(values.fill(body)));
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, prepared.content_type.clone());
                response
            }
            None => default_response(error),
        };
        *response.status_mut() = prepared.status.unwrap_or_else(|| error.status());
        for (name, value) in &prepared.headers {
            let filled = values.fill(value);
            match HeaderValue::from_str(&filled) {
                Ok(v) => {
                    response.headers_mut().append(name.clone(), v);
                }
                Err(_) => {
                    tracing::error!(
                        kind = error.kind.name(),
                        header = %name,
                        "a gateway response header is not a valid header value once filled; sending the default response"
                    );
                    return None;
                }
            }
        }
        Some(response)
    }
}

/// The default rendering: problem+json with the kind's status.
fn default_response(error: &GatewayError) -> Response {
    let mut response = Response::new(Body::from(error.problem_json()));
    *response.status_mut() = error.status();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// Renders `error` for `ctx`: the spec's rendering from `responses` when there is one, else problem+json; then the
/// headers HTTP requires of the refusal. The one place a gateway-made response is made.
pub fn render(error: &GatewayError, ctx: &RequestCtx, responses: Option<&Responses>) -> Response {
    let response = responses
        .and_then(|r| r.render(error, ctx))
        .unwrap_or_else(|| default_response(error));
    with_required_headers(error, response)
}

/// The default rendering, for responses made where no spec rendering applies (the admin endpoints).
impl axum::response::IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        with_required_headers(&self, default_response(&self))
    }
}

/// Adds the headers HTTP requires of the refusal, whatever the rendering.
fn with_required_headers(error: &GatewayError, mut response: Response) -> Response {
    let headers = response.headers_mut();
    if let Some(allow) = &error.allow {
        headers.insert(ALLOW, HeaderValue::clone(allow));
    }
    if let Some(retry) = error.retry_after_value() {
        headers.insert(RETRY_AFTER, retry);
    }
    if let Some(challenge) = &error.www_authenticate {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::clone(challenge));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Placeholder;

    static SPECS: [GatewayResponseSpec; 2] = [
        GatewayResponseSpec {
            selector: ResponseSelector::Kind(ErrorKind::NotFound),
            status: Some(410),
            headers: &[("x-bad", &[TemplatePart::Literal("line\nbreak")])],
            content_type: "application/json",
            body: Some(&[TemplatePart::Literal("{}")]),
        },
        GatewayResponseSpec {
            selector: ResponseSelector::Default4xx,
            status: None,
            headers: &[("x-kind", &[TemplatePart::Value(Placeholder::ErrorKind)])],
            content_type: "text/plain",
            body: Some(&[TemplatePart::Value(Placeholder::ErrorDetail)]),
        },
    ];

    fn ctx() -> RequestCtx {
        let (parts, ()) = http::Request::get("/x").body(()).unwrap_or_default().into_parts();
        RequestCtx::new(&parts, None)
    }

    #[test]
    fn an_unsendable_header_falls_back_to_the_default_rendering() {
        let table = Responses::new(&SPECS, &[]).expect("valid").expect("some");
        let response = render(&GatewayError::not_found(), &ctx(), Some(&table));
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "not the spec's 410");
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert!(!response.headers().contains_key("x-bad"));
    }

    #[test]
    fn kinds_without_a_rendering_take_their_class_default_and_required_headers_stay() {
        let table = Responses::new(&SPECS, &[]).expect("valid").expect("some");
        let error = GatewayError::too_many(
            ErrorKind::Throttled,
            "slow down".to_owned(),
            std::time::Duration::from_secs(3),
        );
        let response = render(&error, &ctx(), Some(&table));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["x-kind"], "THROTTLED");
        assert_eq!(response.headers()[CONTENT_TYPE], "text/plain");
        assert_eq!(response.headers()[RETRY_AFTER], "3");
        // A server error has no DEFAULT_5XX here: problem+json.
        let response = render(&GatewayError::internal(), &ctx(), Some(&table));
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn an_operation_overrides_the_top_level_kind_by_kind() {
        static OWN: [GatewayResponseSpec; 1] = [GatewayResponseSpec {
            selector: ResponseSelector::Kind(ErrorKind::Throttled),
            status: Some(503),
            headers: &[],
            content_type: "text/plain",
            body: Some(&[TemplatePart::Literal("busy")]),
        }];
        let table = Responses::new(&SPECS, &OWN).expect("valid").expect("some");
        let error = GatewayError::too_many(ErrorKind::Throttled, String::new(), std::time::Duration::from_secs(1));
        assert_eq!(
            render(&error, &ctx(), Some(&table)).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let forbidden = GatewayError::new(ErrorKind::Forbidden, "no");
        let response = render(&forbidden, &ctx(), Some(&table));
        assert_eq!(
            response.headers()["x-kind"],
            "FORBIDDEN",
            "the top level's DEFAULT_4XX still applies"
        );
        assert!(Responses::new(&[], &[]).expect("valid").is_none(), "nothing to prepare");
    }
}
