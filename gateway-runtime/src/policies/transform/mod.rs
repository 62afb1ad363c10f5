//! Request and response transforms: header and query edits, jq body filters, status mapping.
//!
//! Edits run in the order remove → rename → set. Every `set` value is a template filled from the request as the
//! client sent it (before any edit), and a filled value that a header may not hold (CR, LF, NUL, other control
//! bytes) is never sent: the request fails with `INTERNAL` and the log names the header, not its value. So no
//! client-supplied text can split or inject a header, upstream or downstream.

pub mod jq;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, TRANSFER_ENCODING};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, request};
use jaq_json::Val;

use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::policies::validate::Contracts;
use crate::policies::validate::body::ReadBody;
use crate::policies::validate::media::{self, BodyKind};
use crate::spec::{EditSpec, TransformSpec};
use crate::template::{Placeholder, RequestView, TemplatePart, Values};
use jq::{Inputs, JqFilter};

/// The request's query string and headers as the client sent them, kept for response transforms that read them.
#[derive(Debug, Default)]
pub struct RequestSnapshot {
    query: Option<String>,
    headers: HeaderMap,
}

impl RequestSnapshot {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            query: self.query.as_deref(),
            headers: &self.headers,
        }
    }
}

/// Header edits with their names parsed once, at start-up.
#[derive(Debug, Default)]
struct HeaderEdits {
    remove: Vec<HeaderName>,
    rename: Vec<(HeaderName, HeaderName)>,
    set: Vec<(HeaderName, &'static [TemplatePart])>,
}

impl HeaderEdits {
    /// Parses the names of `spec` (checked by the generator; an invalid one is refused here too).
    fn new(spec: &'static EditSpec) -> Result<Self, String> {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("invalid header name `{n}`"));
        Ok(Self {
            remove: spec.remove.iter().map(|n| name(n)).collect::<Result<_, _>>()?,
            rename: spec
                .rename
                .iter()
                .map(|(from, to)| Ok((name(from)?, name(to)?)))
                .collect::<Result<_, String>>()?,
            set: spec
                .set
                .iter()
                .map(|(n, template)| Ok((name(n)?, *template)))
                .collect::<Result<_, String>>()?,
        })
    }

    fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.rename.is_empty() && self.set.is_empty()
    }
}

/// An operation's transforms, prepared at start-up.
#[derive(Debug)]
pub struct Transforms {
    spec: &'static TransformSpec,
    request_headers: HeaderEdits,
    response_headers: HeaderEdits,
    /// Response templates or the response filter read the request's query or headers.
    needs_snapshot: bool,
    contracts: Contracts,
}

impl Transforms {
    /// The transforms of `spec`, with filters from `contracts`.
    pub fn new(spec: &'static TransformSpec, contracts: Contracts) -> Result<Self, String> {
        let reads_request = |parts: &[TemplatePart]| {
            parts.iter().any(|p| {
                matches!(
                    p,
                    TemplatePart::Value(Placeholder::Query(_) | Placeholder::Header(_))
                        | TemplatePart::JsonString(Placeholder::Query(_) | Placeholder::Header(_))
                )
            })
        };
        let filter_reads_request = spec
            .response
            .body
            .and_then(|i| contracts.filter(i))
            .is_some_and(JqFilter::reads_request);
        Ok(Self {
            spec,
            request_headers: HeaderEdits::new(&spec.request.headers)?,
            response_headers: HeaderEdits::new(&spec.response.headers)?,
            needs_snapshot: filter_reads_request || spec.response.headers.set.iter().any(|(_, t)| reads_request(t)),
            contracts,
        })
    }

    /// Whether the response body must be read for the response filter (for this status).
    pub fn filters_response_body(&self, status: StatusCode) -> bool {
        self.spec.response.body.is_some() && status.is_success()
    }

    /// Whether some response body may be filtered (so the upstream is asked for it unencoded).
    pub fn filters_any_response_body(&self) -> bool {
        self.spec.response.body.is_some()
    }

    /// What the response side needs of the request, taken before the request goes to the target.
    pub fn snapshot(&self, parts: &request::Parts) -> Option<RequestSnapshot> {
        self.needs_snapshot.then(|| RequestSnapshot {
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
        })
    }

    /// Transforms the request: the body, then headers and query. The filter and the `set` templates all read
    /// the request as the client sent it (as the response side does).
    pub fn request(
        &self,
        ctx: &RequestCtx,
        parts: &mut request::Parts,
        body: &mut Body,
        read: Option<ReadBody>,
    ) -> Result<(), GatewayError> {
        let spec = &self.spec.request;
        if let (Some(index), Some(read)) = (spec.body, read) {
            let input = match read.json {
                Some(value) => jq::from_json(&value),
                None => jq::parse(&read.bytes).map_err(|e| {
                    GatewayError::new(
                        crate::error::ErrorKind::BadRequestBody,
                        format!("the request body is not valid JSON: {e}"),
                    )
                })?,
            };
            let view = RequestView {
                query: parts.uri.query(),
                headers: &parts.headers,
            };
            let out = self.run_filter(index, input, ctx, Some(view)).map_err(|err| {
                tracing::warn!(
                    operation = ctx.operation.map_or("-", |op| op.id),
                    "the request body filter failed"
                );
                tracing::debug!(error = %err, "request body filter error");
                GatewayError::internal()
            })?;
            set_body(&mut parts.headers, body, out);
        }
        if !self.request_headers.is_empty() || !spec.query.is_empty() {
            let view = RequestView {
                query: parts.uri.query(),
                headers: &parts.headers,
            };
            let values = Values {
                ctx,
                error: None,
                request: Some(view),
            };
            let headers = fill_headers(&self.request_headers, &values, ctx)?;
            let query = (!spec.query.is_empty()).then(|| edit_query(parts.uri.query(), &spec.query, &values));
            edit_headers(&mut parts.headers, &self.request_headers, headers);
            if let Some(query) = query {
                parts.uri = with_query(&parts.uri, &query, ctx)?;
            }
        }
        Ok(())
    }

    /// Transforms a response: the body filter (`2xx` JSON responses, `body` read whole), then the status, then
    /// the headers.
    pub fn response(
        &self,
        ctx: &RequestCtx,
        snapshot: Option<&RequestSnapshot>,
        mut response: Response,
        body: Option<Bytes>,
    ) -> Result<Response, GatewayError> {
        let spec = &self.spec.response;
        let view = snapshot.map(RequestSnapshot::view);
        if let (Some(index), Some(bytes)) = (self.spec.response.body, body) {
            let json = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| media::kind(&media::essence(ct)) == BodyKind::Json);
            let failed = |what: &str| {
                tracing::warn!(operation = ctx.operation.map_or("-", |op| op.id), "{what}");
                GatewayError::upstream("the upstream response could not be transformed")
            };
            if !bytes.is_empty() {
                if !json {
                    return Err(failed("the response body filter needs a JSON response"));
                }
                let input = jq::parse(&bytes).map_err(|_| failed("the upstream response is not valid JSON"))?;
                let out = self.run_filter(index, input, ctx, view).map_err(|err| {
                    tracing::debug!(error = %err, "response body filter error");
                    failed("the response body filter failed")
                })?;
                let (parts, mut body) = response.into_parts();
                let mut parts = parts;
                set_body(&mut parts.headers, &mut body, out);
                // The representation changed: a validator of the old one would lie.
                parts.headers.remove(ETAG);
                response = Response::from_parts(parts, body);
            } else {
                *response.body_mut() = Body::from(bytes);
            }
        }
        if let Some((_, to)) = spec.status.iter().find(|(from, _)| *from == response.status().as_u16())
            && let Ok(status) = StatusCode::from_u16(*to)
        {
            *response.status_mut() = status;
        }
        if !self.response_headers.is_empty() {
            let values = Values {
                ctx,
                error: None,
                request: view,
            };
            let filled = fill_headers(&self.response_headers, &values, ctx)?;
            edit_headers(response.headers_mut(), &self.response_headers, filled);
        }
        Ok(response)
    }

    fn run_filter(
        &self,
        index: usize,
        input: Val,
        ctx: &RequestCtx,
        view: Option<RequestView<'_>>,
    ) -> Result<Val, jq::JqError> {
        let Some(filter) = self.contracts.filter(index) else {
            return Err(jq::JqError::Failed(format!("no filter #{index}")));
        };
        let path = || {
            let names = ctx.operation.map_or(&[][..], |op| op.path_params);
            jq::object(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| (*name, ctx.path_value(i).unwrap_or("").to_owned())),
            )
        };
        let query = || {
            let pairs = view
                .and_then(|v| v.query)
                .map(|q| form_urlencoded::parse(q.as_bytes()).collect::<Vec<_>>());
            let mut seen = std::collections::HashSet::new();
            jq::object(
                pairs
                    .iter()
                    .flatten()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .map(|(k, v)| (k.as_ref(), v.clone().into_owned())),
            )
        };
        let header = || {
            let headers = view.map(|v| v.headers);
            let mut seen = std::collections::HashSet::new();
            jq::object(
                headers
                    .into_iter()
                    .flatten()
                    .filter(|(name, _)| seen.insert(name.as_str()))
                    .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes()).into_owned())),
            )
        };
        let context = || jq::context(ctx);
        filter.run(
            input,
            &Inputs {
                path: &path,
                query: &query,
                header: &header,
                context: &context,
            },
        )
    }
}

/// The `set` values of `edits`, filled and checked, before any edit changes what they read.
fn fill_headers(
    edits: &HeaderEdits,
    values: &Values<'_>,
    ctx: &RequestCtx,
) -> Result<Vec<(HeaderName, HeaderValue)>, GatewayError> {
    edits
        .set
        .iter()
        .map(|(name, template)| match HeaderValue::try_from(values.fill(template)) {
            Ok(value) => Ok((name.clone(), value)),
            Err(_) => {
                tracing::warn!(
                    operation = ctx.operation.map_or("-", |op| op.id),
                    header = name.as_str(),
                    "a transform made a header value HTTP does not allow (CR, LF or another control byte); not sent"
                );
                Err(GatewayError::internal())
            }
        })
        .collect()
}

/// Applies remove, rename, then set.
fn edit_headers(headers: &mut HeaderMap, edits: &HeaderEdits, filled: Vec<(HeaderName, HeaderValue)>) {
    for name in &edits.remove {
        headers.remove(name);
    }
    for (from, to) in &edits.rename {
        if let http::header::Entry::Occupied(entry) = headers.entry(from) {
            let values: Vec<HeaderValue> = entry.remove_entry_mult().1.collect();
            for value in values {
                headers.append(to.clone(), value);
            }
        }
    }
    for (name, value) in filled {
        headers.insert(name, value);
    }
}

/// The query string after remove, rename and set (pairs not edited are kept byte for byte).
fn edit_query(query: Option<&str>, edits: &EditSpec, values: &Values<'_>) -> String {
    let mut out = String::with_capacity(query.map_or(0, str::len) + 32);
    let push = |out: &mut String, pair: &str| {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    };
    let set_names: Vec<&str> = edits.set.iter().map(|(name, _)| *name).collect();
    for raw in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (raw_name, raw_value) = raw.split_once('=').map_or((raw, None), |(n, v)| (n, Some(v)));
        let name: String = form_urlencoded::parse(raw_name.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        if edits.remove.contains(&name.as_str()) || set_names.contains(&name.as_str()) {
            continue;
        }
        match edits.rename.iter().find(|(from, _)| *from == name) {
            Some((_, to)) => {
                let renamed: String = form_urlencoded::byte_serialize(to.as_bytes()).collect();
                match raw_value {
                    Some(value) => push(&mut out, &format!("{renamed}={value}")),
                    None => push(&mut out, &renamed),
                }
            }
            None => push(&mut out, raw),
        }
    }
    for (name, template) in edits.set {
        let pair = form_urlencoded::Serializer::new(String::new())
            .append_pair(name, &values.fill(template))
            .finish();
        push(&mut out, &pair);
    }
    out
}

/// `uri` with its query replaced (none when empty).
fn with_query(uri: &Uri, query: &str, ctx: &RequestCtx) -> Result<Uri, GatewayError> {
    let path = uri.path();
    let pq = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).map_err(|err| {
        tracing::error!(operation = ctx.operation.map_or("-", |op| op.id), error = %err, "the transformed query is not a valid URI");
        GatewayError::internal()
    })?);
    Uri::from_parts(parts).map_err(|err| {
        tracing::error!(operation = ctx.operation.map_or("-", |op| op.id), error = %err, "the transformed URI is invalid");
        GatewayError::internal()
    })
}

/// Replaces a body with a filter's output, with its length.
fn set_body(headers: &mut HeaderMap, body: &mut Body, out: Val) {
    let bytes = jq::to_json(&out);
    headers.remove(TRANSFER_ENCODING);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    *body = Body::from(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    static EDITS: EditSpec = EditSpec {
        remove: &["debug"],
        rename: &[("q", "search term")],
        set: &[
            ("source", &[TemplatePart::Literal("gate way&co")]),
            ("page", &[TemplatePart::Value(Placeholder::Query("p"))]),
        ],
    };

    fn edited(query: Option<&str>) -> String {
        let parts = http::Request::builder()
            .uri(format!("/x?{}", query.unwrap_or("")))
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let ctx = RequestCtx::new(&parts, None);
        let values = Values {
            ctx: &ctx,
            error: None,
            request: Some(RequestView {
                query: parts.uri.query(),
                headers: &parts.headers,
            }),
        };
        edit_query(query, &EDITS, &values)
    }

    #[test]
    fn query_edits_remove_rename_and_set_and_keep_the_rest_as_sent() {
        assert_eq!(
            edited(Some("q=a%20b&debug=1&keep=x%2Fy&source=client&p=3")),
            "search+term=a%20b&keep=x%2Fy&p=3&source=gate+way%26co&page=3"
        );
        // Nothing to read from: set values are empty, not absent.
        assert_eq!(edited(None), "source=gate+way%26co&page=");
    }

    #[test]
    fn header_edits_run_remove_then_rename_then_set() {
        let spec: &'static EditSpec = &EditSpec {
            remove: &["cookie"],
            rename: &[("x-old", "x-new")],
            set: &[("x-new", &[TemplatePart::Literal("set")])],
        };
        let edits = HeaderEdits::new(spec).expect("valid names");
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("secret"));
        headers.append("x-old", HeaderValue::from_static("1"));
        headers.append("x-old", HeaderValue::from_static("2"));
        let filled = vec![(HeaderName::from_static("x-new"), HeaderValue::from_static("set"))];
        edit_headers(&mut headers, &edits, filled);
        assert!(headers.get("cookie").is_none());
        assert!(headers.get("x-old").is_none());
        // `set` replaces the renamed values.
        assert_eq!(headers.get_all("x-new").iter().collect::<Vec<_>>(), ["set"]);
        let mut renamed_only = HeaderMap::new();
        renamed_only.append("x-old", HeaderValue::from_static("1"));
        renamed_only.append("x-old", HeaderValue::from_static("2"));
        let rename: &'static EditSpec = &EditSpec {
            remove: &[],
            rename: &[("x-old", "x-new")],
            set: &[],
        };
        edit_headers(&mut renamed_only, &HeaderEdits::new(rename).expect("valid"), Vec::new());
        assert_eq!(renamed_only.get_all("x-new").iter().collect::<Vec<_>>(), ["1", "2"]);
    }
}
