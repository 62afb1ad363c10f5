//! The request body phase: the size limit of every operation, and for validated operations the media type, the
//! presence and the schema of the body.
//!
//! A `Content-Length` over the limit is refused before a byte is read. A body of unknown length (chunked) that
//! the operation does not need to read is wrapped in a counting limit and keeps streaming to the target; if it
//! grows past the limit the upstream request is aborted and the client gets `PAYLOAD_TOO_LARGE`. A body that is
//! validated or transformed is read whole, never more than the limit, and forwarded byte for byte as it came.

use axum::body::Body;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request;
use http_body::Body as _;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::media::{self, BodyKind};
use super::{Contracts, form};
use crate::error::{ErrorKind, GatewayError};
use crate::spec::BodySpec;

/// A body read whole by the body phase.
#[derive(Debug)]
pub struct ReadBody {
    /// The bytes, exactly as sent.
    pub bytes: Bytes,
    /// The parsed JSON document, when the body is JSON and was parsed for its schema check.
    pub json: Option<serde_json::Value>,
    /// How the body is read.
    pub kind: BodyKind,
}

/// The body phase of one operation.
#[derive(Debug)]
pub struct BodyCheck {
    spec: &'static BodySpec,
    contracts: Contracts,
    /// A request transform filters the JSON body, so it must be read (and be JSON).
    filtered: bool,
}

impl BodyCheck {
    /// The phase for `spec`; `filtered` when a request body transform needs the body.
    pub fn new(spec: &'static BodySpec, contracts: Contracts, filtered: bool) -> Self {
        Self {
            spec,
            contracts,
            filtered,
        }
    }

    /// Whether the phase may read the body (and so has to wait): otherwise [`BodyCheck::limit`] is all it does.
    pub fn reads(&self) -> bool {
        self.filtered || (self.spec.validate && !self.spec.media.is_empty())
    }

    /// The size limit alone: a declared length over it is refused, a body of unknown length is counted as it
    /// streams.
    pub fn limit(&self, body: &mut Body) -> Result<(), GatewayError> {
        if body.is_end_stream() {
            // No body at all: most requests.
            return Ok(());
        }
        let max = self.spec.max;
        // The server gives a body with `Content-Length` an exact size hint, and delivers exactly that many bytes or
        // fails the body: nothing to count.
        match body.size_hint().exact() {
            Some(length) if length > max => Err(GatewayError::payload_too_large(max)),
            Some(_) => Ok(()),
            None => {
                let limited = Limited::new(std::mem::take(body), usize::try_from(max).unwrap_or(usize::MAX));
                *body = Body::new(limited);
                Ok(())
            }
        }
    }

    /// The whole phase: the limit, then (for operations that read bodies) presence, media type and schema.
    /// Returns the body read, if it was.
    pub async fn check(&self, parts: &request::Parts, body: &mut Body) -> Result<Option<ReadBody>, GatewayError> {
        self.limit(body)?;
        if body.is_end_stream() {
            if self.spec.validate && self.spec.required {
                return Err(GatewayError::new(
                    ErrorKind::BadRequestBody,
                    "this operation requires a request body",
                ));
            }
            return Ok(None);
        }
        let essence = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media::essence)
            .unwrap_or_default();
        let declared = if self.spec.validate && !self.spec.media.is_empty() {
            let found = media::best(self.spec.media, |m| m.range, &essence);
            if found.is_none() {
                return Err(self.unsupported(&essence));
            }
            found
        } else {
            None
        };
        let kind = media::kind(&essence);
        if self.filtered && kind != BodyKind::Json {
            return Err(GatewayError::new(
                ErrorKind::BadRequestBody,
                "this operation transforms its request body, which must be JSON (`Content-Type: application/json`)",
            ));
        }
        let schema = declared.and_then(|m| m.schema);
        if kind == BodyKind::Other || (schema.is_none() && !self.filtered) {
            // Nothing to check in it: it streams on untouched.
            return Ok(None);
        }
        let bytes = self.read(body).await?;
        let json = match kind {
            BodyKind::Json if schema.is_some() => Some(serde_json::from_slice(&bytes).map_err(not_json)?),
            BodyKind::Json | BodyKind::Other => None,
            BodyKind::Form => {
                let fields = declared.map_or(&[][..], |m| m.form);
                Some(form::to_object(form_urlencoded::parse(&bytes), fields))
            }
        };
        if let (Some(index), Some(value)) = (schema, &json)
            && let Err(violations) = self.contracts.violations(index, value)
        {
            return Err(violations.into_error(ErrorKind::BadRequestBody, "the request body"));
        }
        // The bytes the client sent go on, not a re-serialization of them.
        *body = Body::from(bytes.clone());
        Ok(Some(ReadBody { bytes, json, kind }))
    }

    /// Reads the body whole: [`BodyCheck::limit`] already bounds it (a declared length was compared, a body of
    /// unknown length wrapped in the limit).
    async fn read(&self, body: &mut Body) -> Result<Bytes, GatewayError> {
        match std::mem::take(body).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if is_too_large(&err) => Err(GatewayError::payload_too_large(self.spec.max)),
            Err(err) => {
                tracing::debug!(error = %err, "the request body could not be read");
                Err(GatewayError::new(
                    ErrorKind::BadRequestBody,
                    "the request body could not be read in full",
                ))
            }
        }
    }

    fn unsupported(&self, essence: &str) -> GatewayError {
        let accepted: Vec<&str> = self.spec.media.iter().map(|m| m.range).collect();
        let given = if essence.is_empty() {
            "a body without `Content-Type`".to_owned()
        } else {
            format!("`{essence}`")
        };
        GatewayError::new(
            ErrorKind::UnsupportedMediaType,
            format!("this operation accepts {}, not {given}", accepted.join(", ")),
        )
    }
}

/// Whether an error, or any error it came from, is the body limit's.
pub fn is_too_large(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

fn not_json(err: serde_json::Error) -> GatewayError {
    GatewayError::new(
        ErrorKind::BadRequestBody,
        format!("the request body is not valid JSON: {err}"),
    )
}
