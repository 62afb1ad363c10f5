//! Mock targets: operations answered by the gateway itself with a fixed response from the spec.
//!
//! Status and headers are parsed once when the router is built; a request only clones them and wraps the
//! `'static` body without copying it.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::spec::MockSpec;

/// Why a mock could not be prepared (generated code checks all of this; this guards hand-written specs).
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// Not a valid HTTP status code.
    #[error("invalid status code {0}")]
    Status(u16),
    /// A header name or value that HTTP does not allow.
    #[error("invalid header `{name}: {value}`")]
    Header {
        /// The header name.
        name: &'static str,
        /// The header value.
        value: &'static str,
    },
}

/// A prepared mock response.
#[derive(Debug, Clone)]
pub struct MockResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: &'static str,
}

impl MockResponse {
    /// Parses the status and headers of `spec`.
    pub fn new(spec: &'static MockSpec) -> Result<Self, MockError> {
        let status = StatusCode::from_u16(spec.status).map_err(|_| MockError::Status(spec.status))?;
        let mut headers = HeaderMap::with_capacity(spec.headers.len() + 1);
        let all = spec
            .headers
            .iter()
            .copied()
            .chain((!spec.content_type.is_empty()).then_some(("content-type", spec.content_type)));
        for (name, value) in all {
            let header = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok());
            let Some((header_name, header_value)) = header else {
                return Err(MockError::Header { name, value });
            };
            // `content_type` wins over a `Content-Type` among the extra headers.
            if header_name == CONTENT_TYPE {
                headers.insert(header_name, header_value);
            } else {
                headers.append(header_name, header_value);
            }
        }
        Ok(Self {
            status,
            headers,
            body: spec.body,
        })
    }

    /// The response.
    pub fn respond(&self) -> Response {
        let mut response = Response::new(Body::from(Bytes::from_static(self.body.as_bytes())));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MOCK: MockSpec = MockSpec {
        status: 201,
        headers: &[("X-Mock", "yes"), ("content-type", "text/plain")],
        content_type: "application/json",
        body: r#"{"ok":true}"#,
    };

    #[test]
    fn mock_response_has_status_headers_body() {
        let response = MockResponse::new(&MOCK).expect("valid mock").respond();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.headers()["x-mock"], "yes");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers().get_all(CONTENT_TYPE).iter().count(), 1);
    }

    #[test]
    fn invalid_mock_is_an_error() {
        static BAD: MockSpec = MockSpec {
            status: 200,
            headers: &[("bad name", "x")],
            content_type: "",
            body: "",
        };
        assert!(matches!(MockResponse::new(&BAD), Err(MockError::Header { .. })));
    }
}
