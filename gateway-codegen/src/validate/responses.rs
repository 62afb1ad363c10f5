//! Gateway responses (`x-gateway.responses`): the kinds, and the templates their headers and bodies are written in;
//! and the API's public host names (`x-gateway.hosts`).

use indexmap::IndexMap;

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::escape_segment;
use crate::model::{GatewayResponse, Placeholder, TemplatePart};
use crate::parse::ext::{GatewayResponseExt, RootExt};
use crate::template::{self, Namespace, Piece};

/// Every kind a spec may render, as the runtime names them, then the two fallbacks.
pub const KINDS: &[&str] = &[
    "BAD_REQUEST_PARAMETERS",
    "BAD_REQUEST_BODY",
    "UNSUPPORTED_MEDIA_TYPE",
    "PAYLOAD_TOO_LARGE",
    "REQUEST_TIMEOUT",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "THROTTLED",
    "QUOTA_EXCEEDED",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "MISDIRECTED_REQUEST",
    "PRECONDITION_FAILED",
    "UPSTREAM_ERROR",
    "UPSTREAM_TIMEOUT",
    "SERVICE_UNAVAILABLE",
    "NOT_IMPLEMENTED",
    "INTERNAL",
    "DEFAULT_4XX",
    "DEFAULT_5XX",
];

/// The placeholders a gateway response may hold.
pub(super) const PLACEHOLDERS: &[(&str, Placeholder)] = &[
    ("error.title", Placeholder::ErrorTitle),
    ("error.detail", Placeholder::ErrorDetail),
    ("error.status", Placeholder::ErrorStatus),
    ("error.kind", Placeholder::ErrorKind),
    ("context.request_id", Placeholder::RequestId),
    ("context.operation_id", Placeholder::OperationId),
    ("context.client_ip", Placeholder::ClientIp),
    ("context.api_key.name", Placeholder::ApiKeyName),
    ("context.client_cert.subject", Placeholder::ClientCertSubject),
    ("context.client_cert.sans", Placeholder::ClientCertSans),
];

/// Checks a `responses:` map written at `at`; returns the valid entries in spec order.
pub(super) fn check_responses(
    root: &RootExt,
    map: &IndexMap<String, GatewayResponseExt>,
    at: &str,
    diags: &mut Diagnostics,
) -> Vec<GatewayResponse> {
    let mut out = Vec::new();
    for (kind, entry) in map {
        let eat = format!("{at}/{}", escape_segment(kind));
        if !KINDS.contains(&kind.as_str()) {
            let mut d = Diagnostic::error(&eat, format!("`{kind}` is not a gateway response kind"));
            d = match did_you_mean(&kind.to_ascii_uppercase(), KINDS.iter().copied()) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help(format!("the kinds are: {}", KINDS.join(", "))),
            };
            diags.push(d);
            continue;
        }
        if let Some(response) = check_entry(root, kind, entry, &eat, diags) {
            out.push(response);
        }
    }
    out
}

fn check_entry(
    root: &RootExt,
    kind: &str,
    entry: &GatewayResponseExt,
    at: &str,
    diags: &mut Diagnostics,
) -> Option<GatewayResponse> {
    let mut ok = true;
    if let Some(status) = entry.status
        && !(200..=599).contains(&status)
    {
        diags.push(
            Diagnostic::error(
                format!("{at}/status"),
                format!("{status} is not a status a gateway response can have"),
            )
            .help("use a code from 200 to 599"),
        );
        ok = false;
    }
    let mut headers = Vec::new();
    for (name, value) in &entry.headers {
        let hat = format!("{at}/headers/{}", escape_segment(name));
        if !super::check_header_name(name, &hat, diags) {
            ok = false;
            continue;
        }
        match text_template(root, value, &hat, diags) {
            Some(parts) => {
                let literal: String = parts
                    .iter()
                    .map(|p| match p {
                        TemplatePart::Literal(t) => t.as_str(),
                        _ => "",
                    })
                    .collect();
                if http::HeaderValue::from_str(&literal).is_err() {
                    diags.push(
                        Diagnostic::error(
                            &hat,
                            format!("the value of header `{name}` is not a valid header value"),
                        )
                        .help("use visible ASCII; no line breaks"),
                    );
                    ok = false;
                }
                headers.push((name.to_ascii_lowercase(), parts));
            }
            None => ok = false,
        }
    }
    let (body, default_type) = match &entry.body {
        None => (None, "application/json"),
        Some(serde_json::Value::String(text)) => {
            let parts = text_template(root, text, &format!("{at}/body"), diags);
            ok &= parts.is_some();
            (parts, "text/plain; charset=utf-8")
        }
        Some(value) => {
            let mut builder = JsonTemplate::new(root);
            let before = diags.items().len();
            builder.value(value, &format!("{at}/body"), diags);
            ok &= diags.items().len() == before;
            (Some(builder.finish()), "application/json")
        }
    };
    let content_type = entry.content_type.clone().unwrap_or_else(|| default_type.to_owned());
    if entry.content_type.is_some() && entry.body.is_none() {
        diags.push(
            Diagnostic::error(
                format!("{at}/content_type"),
                "`content_type` describes a `body`, and there is none",
            )
            .help("add a `body`, or remove `content_type` (the default body is problem+json)"),
        );
        ok = false;
    }
    if http::HeaderValue::from_str(&content_type).is_err() {
        diags.push(Diagnostic::error(
            format!("{at}/content_type"),
            "`content_type` is not a valid header value",
        ));
        ok = false;
    }
    ok.then(|| GatewayResponse {
        kind: kind.to_owned(),
        status: entry.status,
        headers,
        content_type,
        body,
    })
}

/// The placeholder `inner` (the text between the braces), or a diagnostic at `at`.
fn placeholder(root: &RootExt, inner: &str, at: &str, diags: &mut Diagnostics) -> Option<Placeholder> {
    if let Some((_, p)) = PLACEHOLDERS.iter().find(|(name, _)| *name == inner) {
        return Some(p.clone());
    }
    match template::qualify(inner) {
        Ok((Namespace::JwtClaims, name)) => return super::transforms::claim(name, inner, at, diags),
        Ok((Namespace::Stage, name)) => {
            return super::stages::check_variable(root, name, at, diags).then(|| Placeholder::Stage(name.to_owned()));
        }
        _ => {}
    }
    let known = PLACEHOLDERS.iter().map(|(name, _)| *name);
    let mut d = Diagnostic::error(at, format!("`{{{inner}}}` is not a value a gateway response can hold"));
    d = match (template::qualify(inner), did_you_mean(inner, known.clone())) {
        (_, Some(best)) => d.help(format!("did you mean `{{{best}}}`?")),
        (Ok((Namespace::Path | Namespace::Query | Namespace::Header, _)), None) => d.help(
            "request parameters are not available in gateway responses (a refused request's values are not trusted)",
        ),
        _ => d.help(format!(
            "the values are: {}",
            known.map(|k| format!("{{{k}}}")).collect::<Vec<_>>().join(", ")
        )),
    };
    diags.push(d);
    None
}

/// A header value or text body: literals and values written as they are.
fn text_template(root: &RootExt, text: &str, at: &str, diags: &mut Diagnostics) -> Option<Vec<TemplatePart>> {
    let pieces = match template::scan(text) {
        Ok(pieces) => pieces,
        Err(e) => {
            diags.push(Diagnostic::error(at, format!("invalid template: {e}")));
            return None;
        }
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for piece in pieces {
        match piece {
            Piece::Literal(t) => parts.push(TemplatePart::Literal(t)),
            Piece::Placeholder(inner) => match placeholder(root, &inner, at, diags) {
                Some(p) => parts.push(TemplatePart::Value(p)),
                None => ok = false,
            },
        }
    }
    ok.then_some(parts)
}

/// A JSON body written as a template: the document's text as literals, with the placeholders in its strings as
/// values escaped for a JSON string. A string that is exactly `{error.status}` becomes a JSON number.
struct JsonTemplate<'r> {
    root: &'r RootExt,
    parts: Vec<TemplatePart>,
    literal: String,
}

impl<'r> JsonTemplate<'r> {
    fn new(root: &'r RootExt) -> Self {
        Self {
            root,
            parts: Vec::new(),
            literal: String::new(),
        }
    }

    fn push(&mut self, text: &str) {
        self.literal.push_str(text);
    }

    fn placeholder(&mut self, part: TemplatePart) {
        if !self.literal.is_empty() {
            self.parts
                .push(TemplatePart::Literal(std::mem::take(&mut self.literal)));
        }
        self.parts.push(part);
    }

    fn finish(mut self) -> Vec<TemplatePart> {
        if !self.literal.is_empty() {
            self.parts.push(TemplatePart::Literal(self.literal));
        }
        self.parts
    }

    fn value(&mut self, value: &serde_json::Value, at: &str, diags: &mut Diagnostics) {
        match value {
            serde_json::Value::Object(map) => {
                self.push("{");
                for (i, (key, v)) in map.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    self.push(&serde_json::Value::String(key.clone()).to_string());
                    self.push(":");
                    self.value(v, &format!("{at}/{}", escape_segment(key)), diags);
                }
                self.push("}");
            }
            serde_json::Value::Array(items) => {
                self.push("[");
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(",");
                    }
                    self.value(v, &format!("{at}/{i}"), diags);
                }
                self.push("]");
            }
            serde_json::Value::String(text) => self.string(text, at, diags),
            other => self.push(&other.to_string()),
        }
    }

    fn string(&mut self, text: &str, at: &str, diags: &mut Diagnostics) {
        let pieces = match template::scan(text) {
            Ok(pieces) => pieces,
            Err(e) => {
                diags.push(Diagnostic::error(at, format!("invalid template: {e}")));
                return;
            }
        };
        if let [Piece::Placeholder(inner)] = pieces.as_slice()
            && inner == "error.status"
        {
            self.placeholder(TemplatePart::Value(Placeholder::ErrorStatus));
            return;
        }
        self.push("\"");
        for piece in pieces {
            match piece {
                Piece::Literal(t) => {
                    let quoted = serde_json::Value::String(t).to_string();
                    self.push(&quoted[1..quoted.len() - 1]);
                }
                Piece::Placeholder(inner) => {
                    if let Some(p) = placeholder(self.root, &inner, at, diags) {
                        self.placeholder(TemplatePart::JsonString(p));
                    }
                }
            }
        }
        self.push("\"");
    }
}

/// `x-gateway.hosts`: host names (optionally with a port), lower-cased.
pub(super) fn check_hosts(hosts: &[String], at: &str, diags: &mut Diagnostics) -> Vec<String> {
    let mut out = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let hat = format!("{at}/{i}");
        let valid = !host.is_empty()
            && !host.contains(['/', '?', '#', '@', ' '])
            && http::uri::Authority::try_from(host.as_str()).is_ok();
        if !valid {
            let mut d = Diagnostic::error(&hat, format!("`{host}` is not a host name"));
            d = if host.contains("://") {
                d.help("write the host alone, without a scheme or path: `api.example.com`")
            } else {
                d.help("write a host name, optionally with a port: `api.example.com`, `localhost:8080`")
            };
            diags.push(d);
            continue;
        }
        let lower = host.to_ascii_lowercase();
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    if hosts.is_empty() {
        diags.push(
            Diagnostic::error(at, "`hosts` is empty, so every request would be refused")
                .help("list the host names the API is served under, or remove `hosts` to serve any host"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: serde_json::Value) -> Vec<TemplatePart> {
        let mut diags = Diagnostics::default();
        let root = RootExt::default();
        let mut t = JsonTemplate::new(&root);
        t.value(&body, "", &mut diags);
        assert!(!diags.has_errors());
        t.finish()
    }

    #[test]
    fn json_bodies_become_templates_with_escaped_values() {
        let parts = json(serde_json::json!({ "error": "{error.title}!", "code": "{error.status}", "n": 1 }));
        assert_eq!(
            parts,
            vec![
                TemplatePart::Literal(r#"{"error":""#.into()),
                TemplatePart::JsonString(Placeholder::ErrorTitle),
                TemplatePart::Literal(r#"!","code":"#.into()),
                TemplatePart::Value(Placeholder::ErrorStatus),
                TemplatePart::Literal(r#","n":1}"#.into()),
            ]
        );
    }

    #[test]
    fn literal_quotes_in_json_strings_stay_escaped() {
        let parts = json(serde_json::json!({ "m": "say \"hi\"" }));
        assert_eq!(parts, vec![TemplatePart::Literal(r#"{"m":"say \"hi\""}"#.into())]);
    }
}
