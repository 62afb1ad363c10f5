//! Store targets: an operation that is one store call — the request becomes the call, its result the response.
//!
//! | action | call | answer |
//! |---|---|---|
//! | `get` | [`Store::get`] | `200` and the item, `304` when `If-None-Match` matches, `404` |
//! | `put` | [`Store::put`] | `201` and the item when it was created, `200` when replaced |
//! | `merge` | [`Store::merge`] (RFC 7396) | `200` and the item, `404` |
//! | `delete` | [`Store::delete`] | `204`, `404` |
//! | `list` | [`Store::list`] | `200` and `{"items": [...], "next_cursor": "..." or null}` |
//! | `create` | [`Store::create_with_id`] | `201`, `Location: <request path>/<id>`, and the item |
//!
//! Every answer with an item carries its version as a strong `ETag` (`"7"`). `If-Match: "7"` (or `*`) makes a put,
//! merge or delete conditional on the item's version (or existence), `If-None-Match: *` makes a put create-only;
//! a condition that does not hold is `412 PRECONDITION_FAILED`, decided in the write's transaction. The body of a
//! write was checked against the operation's schema by the body phase (the generator turns it on for store writes);
//! here it is only read and parsed.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, StatusCode, request};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::{Condition, DEFAULT_LIMIT, Item, ListQuery, MAX_LIMIT, Store};
use crate::error::{ErrorKind, GatewayError};
use crate::params::ParamIn;
use crate::pipeline::RequestCtx;
use crate::policies::validate::body::is_too_large;
use crate::policies::validate::media::{self, BodyKind};
use crate::spec::{StoreAction, StoreFilterKind, StoreKeyPart, StoreTargetSpec};

/// A store target, prepared at start-up.
#[derive(Debug, Clone)]
pub struct StoreTarget {
    store: Store,
    spec: &'static StoreTargetSpec,
    /// The operation's body limit, for the message of a body that exceeds it.
    max_body: u64,
}

/// What the request's preconditions ask of a write.
enum Precondition {
    /// A condition for the store to check.
    Check(Condition),
    /// An entity tag this store never makes (weak, or not a version): nothing can match it.
    Never,
}

impl StoreTarget {
    /// The target `spec` on `store`, for an operation whose bodies are at most `max_body` bytes.
    pub fn new(store: Store, spec: &'static StoreTargetSpec, max_body: u64) -> Self {
        Self { store, spec, max_body }
    }

    /// The answer to the request.
    pub async fn respond(
        &self,
        ctx: &mut RequestCtx,
        parts: request::Parts,
        body: Body,
    ) -> Result<Response, GatewayError> {
        let table = self.spec.table;
        match self.spec.action {
            StoreAction::Get => {
                let key = self.key(ctx)?;
                let Some(item) = self.store.get(table, &key).await? else {
                    return Err(not_found());
                };
                if not_modified(&parts.headers, item.version) {
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = StatusCode::NOT_MODIFIED;
                    response.headers_mut().insert(ETAG, etag(item.version));
                    return Ok(response);
                }
                Ok(item_response(StatusCode::OK, &item))
            }
            StoreAction::Put => {
                let key = self.key(ctx)?;
                let condition = self.condition(&parts.headers)?;
                let value = self.document(&parts, body).await?;
                let (item, created) = self.store.put(table, &key, value, condition).await?;
                let status = if created { StatusCode::CREATED } else { StatusCode::OK };
                Ok(item_response(status, &item))
            }
            StoreAction::Merge => {
                let key = self.key(ctx)?;
                let condition = self.condition(&parts.headers)?;
                let patch = self.document(&parts, body).await?;
                let item = self.store.merge(table, &key, patch, condition).await?;
                Ok(item_response(StatusCode::OK, &item))
            }
            StoreAction::Delete => {
                let key = self.key(ctx)?;
                let condition = self.condition(&parts.headers)?;
                if !self.store.delete(table, &key, condition).await? {
                    return Err(not_found());
                }
                let mut response = Response::new(Body::empty());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            }
            StoreAction::List => {
                let query = self.list_query(parts.uri.query())?;
                let page = self.store.list(table, &query).await?;
                let items: Vec<Value> = page.items.into_iter().map(|item| item.value).collect();
                let body = serde_json::json!({ "items": items, "next_cursor": page.next_cursor });
                Ok(json_response(StatusCode::OK, &body))
            }
            StoreAction::Create => {
                let value = self.document(&parts, body).await?;
                let id_field = (!self.spec.id_field.is_empty()).then_some(self.spec.id_field);
                let item = self.store.create_with_id(table, value, id_field).await?;
                let mut response = item_response(StatusCode::CREATED, &item);
                let location = format!("{}/{}", parts.uri.path().trim_end_matches('/'), item.key);
                // A path the server accepted, and a UUID: always a valid header value.
                if let Ok(location) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, location);
                }
                Ok(response)
            }
        }
    }

    /// The item's key, from the path values the route phase read.
    fn key(&self, ctx: &RequestCtx) -> Result<String, GatewayError> {
        let mut key = String::new();
        for part in self.spec.key {
            match part {
                StoreKeyPart::Literal(text) => key.push_str(text),
                StoreKeyPart::Param(i) => match ctx.path_value(*i) {
                    Some(value) => key.push_str(value),
                    None => {
                        // The generator only names path parameters the route captures.
                        tracing::error!(
                            parameter = i,
                            "a store key names a path value the route did not capture"
                        );
                        return Err(GatewayError::internal());
                    }
                },
            }
        }
        Ok(key)
    }

    /// The write's condition from `If-Match` / `If-None-Match`; a tag that cannot match is answered at once.
    fn condition(&self, headers: &HeaderMap) -> Result<Condition, GatewayError> {
        match preconditions(headers)? {
            Precondition::Check(condition) => Ok(condition),
            Precondition::Never => Err(super::StoreError::PreconditionFailed.into()),
        }
    }

    /// The request body as JSON: what is stored (or merged).
    async fn document(&self, parts: &request::Parts, body: Body) -> Result<Value, GatewayError> {
        if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
            let essence = content_type.to_str().map(media::essence).unwrap_or_default();
            if media::kind(&essence) != BodyKind::Json {
                let accepted = if self.spec.action == StoreAction::Merge {
                    "`application/merge-patch+json` or `application/json`"
                } else {
                    "`application/json`"
                };
                return Err(GatewayError::new(
                    ErrorKind::UnsupportedMediaType,
                    format!("this operation stores JSON: send {accepted}, not `{essence}`"),
                ));
            }
        }
        let bytes: Bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if is_too_large(&err) => return Err(GatewayError::payload_too_large(self.max_body)),
            Err(err) => {
                tracing::debug!(error = %err, "the request body could not be read");
                return Err(GatewayError::new(
                    ErrorKind::BadRequestBody,
                    "the request body could not be read in full",
                ));
            }
        };
        if bytes.is_empty() {
            return Err(GatewayError::new(
                ErrorKind::BadRequestBody,
                "this operation stores the request body, and there is none",
            ));
        }
        serde_json::from_slice(&bytes).map_err(|err| {
            GatewayError::new(
                ErrorKind::BadRequestBody,
                format!("the request body is not valid JSON: {err}"),
            )
        })
    }

    /// `limit`, `cursor` and the filters of a list, from the query string.
    fn list_query(&self, query: Option<&str>) -> Result<ListQuery, GatewayError> {
        let pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let first = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let limit = match first("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<u32>() {
                Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
                _ => {
                    return Err(GatewayError::bad_param_detail(
                        ParamIn::Query,
                        "limit",
                        "an integer from 1 to 1000",
                        format!("query parameter `limit` must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
                    ));
                }
            },
        };
        let mut filters = Vec::with_capacity(self.spec.filters.len());
        for filter in self.spec.filters {
            let Some(text) = first(filter.query) else { continue };
            let value = match filter.kind {
                StoreFilterKind::String => Some(Value::String(text.to_owned())),
                StoreFilterKind::Integer => text.parse::<i64>().ok().map(Value::from),
                StoreFilterKind::Number => text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number),
                StoreFilterKind::Boolean => match text {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
            };
            let Some(value) = value else {
                let expected = match filter.kind {
                    StoreFilterKind::String => "a string",
                    StoreFilterKind::Integer => "an integer",
                    StoreFilterKind::Number => "a number",
                    StoreFilterKind::Boolean => "`true` or `false`",
                };
                return Err(GatewayError::bad_param_detail(
                    ParamIn::Query,
                    filter.query,
                    expected,
                    format!("query parameter `{}` must be {expected}, got {text:?}", filter.query),
                ));
            };
            filters.push((filter.query.to_owned(), value));
        }
        Ok(ListQuery {
            limit,
            cursor: first("cursor").map(str::to_owned),
            filters,
        })
    }
}

/// `NOT_FOUND` for a key without an item.
fn not_found() -> GatewayError {
    GatewayError::new(ErrorKind::NotFound, "no item with this key")
}

/// `"<version>"`.
fn etag(version: u64) -> HeaderValue {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(version);
    // Digits between quotes: always a valid header value.
    HeaderValue::from_str(&format!("\"{digits}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// The item as a JSON response with its `ETag`.
fn item_response(status: StatusCode, item: &Item) -> Response {
    let mut response = json_response(status, &item.value);
    response.headers_mut().insert(ETAG, etag(item.version));
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One entity tag of a list: its opaque part and whether it is weak (`W/"7"`).
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// The entity tags of a header's values (`"1", W/"2"`), or `None` for `*`. A malformed member is left out: it matches
/// nothing.
fn tags<'a>(headers: &'a HeaderMap, name: &http::HeaderName) -> Option<Option<Vec<Tag<'a>>>> {
    let values: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap_or("")).collect();
    if values.is_empty() {
        return None;
    }
    if values.iter().any(|v| v.trim() == "*") {
        return Some(None);
    }
    let tags = values
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|member| {
            let member = member.trim();
            let (weak, quoted) = match member.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, member),
            };
            let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
            Some(Tag { weak, opaque })
        })
        .collect();
    Some(Some(tags))
}

/// The version an entity tag names, if it is one of this store's (`"7"`).
fn version_of(opaque: &str) -> Option<u64> {
    if opaque.is_empty() || !opaque.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    opaque.parse().ok()
}

/// Whether a read's `If-None-Match` matches `version` (weak comparison, RFC 9110 §13.1.2): `304` then.
fn not_modified(headers: &HeaderMap, version: u64) -> bool {
    match tags(headers, &IF_NONE_MATCH) {
        None => false,
        Some(None) => true,
        Some(Some(tags)) => tags.iter().any(|t| version_of(t.opaque) == Some(version)),
    }
}

/// A write's preconditions. `If-Match` compares strongly (a weak tag never matches) and takes one tag or `*`;
/// `If-None-Match` on a write takes `*` only; not both.
fn preconditions(headers: &HeaderMap) -> Result<Precondition, GatewayError> {
    let refuse = |detail: &'static str| GatewayError::new(ErrorKind::BadRequestParameters, detail);
    match (tags(headers, &IF_MATCH), tags(headers, &IF_NONE_MATCH)) {
        (None, None) => Ok(Precondition::Check(Condition::Always)),
        (Some(_), Some(_)) => Err(refuse("send `If-Match` or `If-None-Match`, not both, on a write")),
        (Some(None), None) => Ok(Precondition::Check(Condition::IfExists)),
        (Some(Some(tags)), None) => match tags.as_slice() {
            [] => Ok(Precondition::Never),
            [tag] => Ok(match version_of(tag.opaque).filter(|_| !tag.weak) {
                Some(version) => Precondition::Check(Condition::IfMatch(version)),
                None => Precondition::Never,
            }),
            _ => Err(refuse(
                "`If-Match` takes one entity tag (the item's `ETag`) or `*` here",
            )),
        },
        (None, Some(None)) => Ok(Precondition::Check(Condition::IfNoneMatchAny)),
        (None, Some(Some(_))) => Err(refuse(
            "on a write, `If-None-Match` takes only `*` (create, never replace)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn condition(pairs: &[(&'static str, &'static str)]) -> Option<Condition> {
        match preconditions(&headers(pairs)) {
            Ok(Precondition::Check(c)) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn write_preconditions_become_conditions() {
        assert_eq!(condition(&[]), Some(Condition::Always));
        assert_eq!(condition(&[("if-match", "\"7\"")]), Some(Condition::IfMatch(7)));
        assert_eq!(condition(&[("if-match", "*")]), Some(Condition::IfExists));
        assert_eq!(condition(&[("if-none-match", "*")]), Some(Condition::IfNoneMatchAny));
        for never in ["W/\"7\"", "\"abc\"", "7"] {
            let mut map = HeaderMap::new();
            map.insert(IF_MATCH, HeaderValue::from_static(never));
            assert!(matches!(preconditions(&map), Ok(Precondition::Never)), "{never}");
        }
        for refused in [
            &[("if-match", "\"1\", \"2\"")][..],
            &[("if-none-match", "\"1\"")],
            &[("if-match", "\"1\""), ("if-none-match", "*")],
        ] {
            assert!(preconditions(&headers(refused)).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn reads_match_if_none_match_weakly() {
        assert!(not_modified(&headers(&[("if-none-match", "W/\"3\"")]), 3));
        assert!(not_modified(&headers(&[("if-none-match", "\"1\", \"3\"")]), 3));
        assert!(not_modified(&headers(&[("if-none-match", "*")]), 3));
        assert!(!not_modified(&headers(&[("if-none-match", "\"4\"")]), 3));
        assert!(!not_modified(&headers(&[]), 3));
    }
}
