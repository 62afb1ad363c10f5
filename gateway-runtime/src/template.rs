//! The gateway's one placeholder grammar, at run time.
//!
//! The generator parses every template of the spec (`"{error.title}"`, `"{context.request_id}"`, …), checks each
//! placeholder, and emits it as [`TemplatePart`]s: literal text and the values to fill in. Filling is a walk over
//! those parts; nothing is parsed per request. Inside a JSON body the generator marks values that sit within a JSON
//! string as [`TemplatePart::JsonString`], so that whatever they hold is escaped and can never break the document.

use std::borrow::Cow;
use std::fmt::Write as _;

use http::HeaderMap;

use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::policies::auth::Caller;

/// A value a template can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{error.title}`: the kind's short summary.
    ErrorTitle,
    /// `{error.detail}`: what went wrong with this request.
    ErrorDetail,
    /// `{error.status}`: the status code of the default rendering.
    ErrorStatus,
    /// `{error.kind}`: the kind's name (`THROTTLED`).
    ErrorKind,
    /// `{context.request_id}`.
    RequestId,
    /// `{context.operation_id}` (empty for a request that matched no operation).
    OperationId,
    /// `{context.client_ip}`: the connection's peer address.
    ClientIp,
    /// `{context.api_key.name}` (empty when the caller presented no accepted key).
    ApiKeyName,
    /// `{context.client_cert.subject}`: the verified client certificate's subject (empty without one).
    ClientCertSubject,
    /// `{context.client_cert.sans}`: its subject alternative names (`DNS:a.example, IP:10.0.0.1`), comma-separated.
    ClientCertSans,
    /// `{path.X}`: path parameter `i` (index into the operation's path parameters).
    Path(usize),
    /// `{query.X}`: the first value of query parameter X, percent-decoded (empty when absent).
    Query(&'static str),
    /// `{header.X}` (X lower case): the first value of the request header (empty when absent).
    Header(&'static str),
    /// `{stage.X}`: the value of stage variable X in the stage being served.
    Stage(&'static str),
    /// `{jwt.claims.X}`: a claim of the caller's verified token, a dotted path (empty without one; strings as they
    /// are, other values as JSON).
    Claim(&'static str),
}

/// A piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplatePart {
    /// Literal text, written as is.
    Literal(&'static str),
    /// A value, written as is.
    Value(Placeholder),
    /// A value inside a JSON string: written JSON-escaped (without the quotes, which are in the literals).
    JsonString(Placeholder),
}

/// Where placeholder values come from.
pub struct Values<'a> {
    /// The request.
    pub ctx: &'a RequestCtx,
    /// The error being rendered, if any.
    pub error: Option<&'a GatewayError>,
    /// The request's query string and headers as the client sent them, where templates may read them
    /// (transforms); `None` fills `{query.X}` and `{header.X}` with nothing.
    pub request: Option<RequestView<'a>>,
}

/// The parts of a request that `{query.X}` and `{header.X}` read.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The raw query string.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
}

impl RequestView<'_> {
    /// The first value of query parameter `name`, percent-decoded.
    pub fn query_value(&self, name: &str) -> Option<Cow<'_, str>> {
        form_urlencoded::parse(self.query?.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// The first value of header `name` as text (bytes that are not UTF-8 are replaced).
    pub fn header_value(&self, name: &str) -> Option<Cow<'_, str>> {
        self.headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
    }
}

impl Values<'_> {
    fn write(&self, placeholder: Placeholder, out: &mut String) {
        let error = self.error;
        match placeholder {
            Placeholder::ErrorTitle => out.push_str(error.map_or("", |e| e.kind.title())),
            Placeholder::ErrorDetail => out.push_str(error.map_or("", |e| &e.detail)),
            Placeholder::ErrorStatus => {
                if let Some(e) = error {
                    let _ = write!(out, "{}", e.status().as_u16());
                }
            }
            Placeholder::ErrorKind => out.push_str(error.map_or("", |e| e.kind.name())),
            Placeholder::RequestId => out.push_str(self.ctx.request_id.to_str().unwrap_or("")),
            Placeholder::OperationId => out.push_str(self.ctx.operation.map_or("", |op| op.id)),
            Placeholder::ClientIp => {
                if let Some(peer) = self.ctx.client {
                    let _ = write!(out, "{}", peer.ip().to_canonical());
                }
            }
            Placeholder::ApiKeyName => {
                if let Some(name) = self.ctx.caller.as_ref().and_then(Caller::key_name) {
                    out.push_str(name);
                }
            }
            Placeholder::ClientCertSubject => {
                if let Some(cert) = &self.ctx.client_cert {
                    out.push_str(&cert.subject);
                }
            }
            Placeholder::ClientCertSans => {
                if let Some(cert) = &self.ctx.client_cert {
                    for (i, san) in cert.sans.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        out.push_str(san);
                    }
                }
            }
            Placeholder::Path(i) => out.push_str(self.ctx.path_value(i).unwrap_or("")),
            Placeholder::Query(name) => {
                if let Some(value) = self.request.as_ref().and_then(|r| r.query_value(name)) {
                    out.push_str(&value);
                }
            }
            Placeholder::Header(name) => {
                if let Some(value) = self.request.as_ref().and_then(|r| r.header_value(name)) {
                    out.push_str(&value);
                }
            }
            // The generator checks that every stage defines the variables templates use; a table that does not
            // renders nothing rather than failing the request.
            Placeholder::Stage(name) => {
                if let Some(value) = self.ctx.stage.and_then(|stage| stage.variable(name)) {
                    out.push_str(value);
                }
            }
            Placeholder::Claim(path) => {
                let token = self.ctx.caller.as_ref().and_then(|c| c.token.as_deref());
                match token.and_then(|t| t.claim(path)) {
                    Some(serde_json::Value::String(text)) => out.push_str(text),
                    Some(serde_json::Value::Null) | None => {}
                    Some(other) => {
                        let _ = write!(out, "{other}");
                    }
                }
            }
        }
    }

    /// `parts` filled in.
    pub fn fill(&self, parts: &[TemplatePart]) -> String {
        let mut out = String::with_capacity(64);
        let mut value = String::new();
        for part in parts {
            match *part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Value(p) => self.write(p, &mut out),
                TemplatePart::JsonString(p) => {
                    value.clear();
                    self.write(p, &mut value);
                    escape_json(&value, &mut out);
                }
            }
        }
        out
    }
}

/// Appends `text` escaped for the inside of a JSON string (RFC 8259 §7).
fn escape_json(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        escape_json("a \"quoted\" \\ line\nend\u{1}", &mut out);
        assert_eq!(out, r#"a \"quoted\" \\ line\nend\u0001"#);
        let parsed: serde_json::Value = serde_json::from_str(&format!("\"{out}\"")).expect("valid JSON string");
        assert_eq!(parsed, "a \"quoted\" \\ line\nend\u{1}");
    }
}
