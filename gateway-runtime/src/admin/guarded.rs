//! The admin endpoints a bearer token guards, on the admin listener.
//!
//! Without `--admin-token` (env `GATEWAY_ADMIN_TOKEN`) they do not exist (`404`). The token is compared in
//! constant time.
//!
//! - `POST /_gateway/cache/flush[?operation=ID]` — drop every cached response, or one operation's;
//! - `GET /_gateway/cache/stats` — entries, resident bytes and capacity of the response cache;
//! - `GET /_gateway/usage` — per API key (by name): plan, requests admitted and throttled, quota used and left;
//! - `GET /_gateway/drift` — per operation with a response check: responses checked, mismatched and skipped.
//!
//! A gateway of several APIs keeps each API's cache, limits and counters apart, and so do these endpoints:
//! `?api=NAME` addresses one API, and gets exactly what a gateway of that API alone would answer. Without it, a
//! flush empties every API's cache (an `operation` then names an operation of each API that has one), usage lists
//! every (key, API) pair with an `api` field, and stats and drift answer `{ "apis": { NAME: … } }`.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use http::header::AUTHORIZATION;
use http::request;
use subtle::ConstantTimeEq as _;

use super::{Admin, AdminApi};
use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::{RequestCtx, finish};
use crate::policies::cache::ResponseCache;

/// The admin bearer token.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// Wraps a token; an empty one is refused.
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(Arc::from(token)))
    }

    fn admits(&self, parts: &request::Parts) -> bool {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        presented.as_bytes().ct_eq(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never printed.
        f.write_str("AdminToken(..)")
    }
}

/// The APIs `?api=` picks (all without it), or the `404` of a name the gateway does not serve.
pub(super) fn select<'a>(admin: &'a Admin, name: Option<&str>) -> Result<Vec<&'a AdminApi>, Response> {
    let Some(name) = name else {
        return Ok(admin.apis.iter().collect());
    };
    match admin.apis.iter().find(|a| a.api.name == name) {
        Some(api) => Ok(vec![api]),
        None => {
            let served: Vec<&str> = admin.apis.iter().map(|a| a.api.name).collect();
            Err(GatewayError::new(
                ErrorKind::NotFound,
                format!("no API `{name}` (this gateway serves: {})", served.join(", ")),
            )
            .into_response())
        }
    }
}

/// Whether answers are those of one API: a gateway of one, or `?api=` given.
fn one(admin: &Admin, name: Option<&str>) -> bool {
    admin.apis.len() == 1 || name.is_some()
}

/// The endpoints that change state or show who calls (cache flush and stats, usage by key, contract drift), or
/// `None` when no admin token is configured (they then do not exist: `404`).
pub(super) fn routes(admin: &Admin) -> Option<Router> {
    let token = admin.apis.first()?.state.admin_token.clone()?;
    let router = Router::new()
        .route("/_gateway/cache/flush", post(flush))
        .route("/_gateway/cache/stats", get(stats))
        .route("/_gateway/usage", get(usage))
        .route("/_gateway/drift", get(drift))
        .with_state(admin.clone())
        .layer(axum::middleware::from_fn(
            move |request: Request, next: axum::middleware::Next| {
                // Admin requests get a request context and a request id like every other request.
                let (parts, body) = request.into_parts();
                let mut ctx = RequestCtx::new(&parts, None);
                let admitted = token.admits(&parts);
                let request = Request::from_parts(parts, body);
                async move {
                    let result = if admitted {
                        Ok(next.run(request).await)
                    } else {
                        Err(GatewayError::new(
                            ErrorKind::Unauthorized,
                            "this admin endpoint needs `Authorization: Bearer <admin token>`",
                        ))
                    };
                    finish(&mut ctx, result, None, None)
                }
            },
        ));
    Some(router)
}

/// `?api=NAME`: the API an endpoint addresses.
#[derive(serde::Deserialize)]
pub(super) struct ApiQuery {
    pub(super) api: Option<String>,
}

#[derive(serde::Deserialize)]
struct FlushQuery {
    api: Option<String>,
    operation: Option<String>,
}

fn no_cache() -> Response {
    GatewayError::new(ErrorKind::NotFound, "no operation of this gateway caches responses").into_response()
}

async fn flush(State(admin): State<Admin>, Query(query): Query<FlushQuery>) -> Response {
    let apis = match select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    // The caches to flush: with an operation, those of the APIs that have it.
    let caches: Vec<(&AdminApi, &ResponseCache)> = apis
        .iter()
        .filter_map(|a| Some((*a, a.state.cache.as_ref()?)))
        .filter(|(a, _)| {
            query
                .operation
                .as_deref()
                .is_none_or(|id| a.api.operations.iter().any(|op| op.id == id))
        })
        .collect();
    if caches.is_empty() {
        return match &query.operation {
            Some(id) if apis.iter().any(|a| a.state.cache.is_some()) => {
                GatewayError::new(ErrorKind::NotFound, format!("no operation `{id}`")).into_response()
            }
            _ => no_cache(),
        };
    }
    let flushed = query.operation.as_deref().unwrap_or("*");
    // Every API's cache is flushed (here at least) before a shared layer's failure is reported.
    let mut unshared = false;
    for (api, cache) in &caches {
        match cache.flush(query.operation.as_deref()).await {
            Ok(()) => tracing::info!(api = api.api.name, operation = flushed, "cache flushed"),
            Err(err) => {
                tracing::warn!(api = api.api.name, error = %err, "cache flushed here, not in Redis");
                unshared = true;
            }
        }
    }
    if unshared {
        return GatewayError::new(
            ErrorKind::ServiceUnavailable,
            "this replica's cache is flushed, but the shared cache could not be: the other replicas may still serve \
             the entries; try again",
        )
        .into_response();
    }
    let body = if one(&admin, query.api.as_deref()) {
        serde_json::json!({ "flushed": flushed })
    } else {
        let names: Vec<&str> = caches.iter().map(|(a, _)| a.api.name).collect();
        serde_json::json!({ "flushed": flushed, "apis": names })
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn stats(State(admin): State<Admin>, Query(query): Query<ApiQuery>) -> Response {
    let apis = match select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    if one(&admin, query.api.as_deref()) {
        let api = apis[0];
        return match &api.state.cache {
            Some(cache) => axum::Json(cache.stats(api.api.cache.capacity).await).into_response(),
            None => no_cache(),
        };
    }
    let mut report = serde_json::Map::new();
    for api in apis {
        let stats = match &api.state.cache {
            Some(cache) => serde_json::to_value(cache.stats(api.api.cache.capacity).await).unwrap_or_default(),
            None => serde_json::Value::Null,
        };
        report.insert(api.api.name.to_owned(), stats);
    }
    axum::Json(serde_json::json!({ "apis": report })).into_response()
}

/// Per operation with a response check: responses checked, mismatched and skipped, and the last mismatch.
async fn drift(State(admin): State<Admin>, Query(query): Query<ApiQuery>) -> Response {
    let apis = match select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    if one(&admin, query.api.as_deref()) {
        return axum::Json(apis[0].state.contracts.drift().report(apis[0].api)).into_response();
    }
    let report: serde_json::Map<String, serde_json::Value> = apis
        .iter()
        .map(|a| (a.api.name.to_owned(), a.state.contracts.drift().report(a.api)))
        .collect();
    axum::Json(serde_json::json!({ "apis": report })).into_response()
}

async fn usage(State(admin): State<Admin>, Query(query): Query<ApiQuery>) -> Response {
    let apis = match select(&admin, query.api.as_deref()) {
        Ok(apis) => apis,
        Err(response) => return response,
    };
    let tagged = admin.apis.len() > 1;
    let mut report: Vec<serde_json::Value> = Vec::new();
    for api in apis {
        match api_usage(api, tagged).await {
            Ok(usage) => report.extend(usage),
            Err(err) => return err.into_response(),
        }
    }
    report.sort_by(|a, b| (a["name"].as_str(), a["api"].as_str()).cmp(&(b["name"].as_str(), b["api"].as_str())));
    axum::Json(serde_json::json!({ "keys": report })).into_response()
}

/// The usage of every key that may call `api` (with its name under `api` when `tagged`): from Redis when the API
/// shares its limits with other replicas (the totals of all of them), else this process's.
async fn api_usage(admin: &AdminApi, tagged: bool) -> Result<Vec<serde_json::Value>, GatewayError> {
    let limits = &admin.state.limits;
    let counts: std::collections::HashMap<String, (u64, u64)> = match limits.shared() {
        Some(shared) => shared
            .usage()
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "cannot read the shared usage");
                GatewayError::new(
                    ErrorKind::ServiceUnavailable,
                    "the shared usage counts cannot be read right now",
                )
            })?
            .into_iter()
            .map(|(name, admitted, throttled)| (name, (admitted, throttled)))
            .collect(),
        None => limits
            .usage
            .snapshot()
            .into_iter()
            .map(|(name, admitted, throttled)| (name.to_string(), (admitted, throttled)))
            .collect(),
    };
    // Read out of the key set first: the set is not held across the quota reads.
    let keys: Vec<_> = admin
        .state
        .keys
        .current()
        .keys()
        .filter(|key| key.api.as_deref().is_none_or(|name| name == admin.api.name))
        .cloned()
        .collect();
    let plans: Vec<_> = keys
        .iter()
        .map(|key| {
            key.plan
                .as_deref()
                .and_then(|p| admin.api.usage_plans.iter().find(|u| u.name == p))
        })
        .collect();
    let with_quota: Vec<(&str, &crate::spec::QuotaSpec)> = keys
        .iter()
        .zip(&plans)
        .filter_map(|(key, plan)| Some((&*key.name, plan.and_then(|p| p.quota.as_ref())?)))
        .collect();
    let mut quotas = limits.quotas_now(&with_quota).await.into_iter();
    let mut report = Vec::with_capacity(keys.len());
    for (key, plan) in keys.iter().zip(plans) {
        let (admitted, throttled) = counts.get(&*key.name).copied().unwrap_or_default();
        let quota = match plan.and_then(|p| p.quota.as_ref()) {
            Some(q) => quotas.next().flatten().map(|state| {
                serde_json::json!({
                    "limit": q.limit,
                    "used": state.used,
                    "remaining": state.remaining,
                    "resets_at": state.resets_at.to_string(),
                })
            }),
            None => None,
        };
        let mut entry = serde_json::json!({
            "name": &*key.name,
            "plan": key.plan.as_deref(),
            "enabled": key.enabled,
            "admitted": admitted,
            "throttled": throttled,
            "quota": quota,
        });
        if tagged {
            entry["api"] = serde_json::Value::from(admin.api.name);
        }
        report.push(entry);
    }
    Ok(report)
}
