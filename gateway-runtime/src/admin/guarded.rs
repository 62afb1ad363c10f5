//! The admin endpoints a bearer token guards, on the admin listener.
//!
//! Without `--admin-token` (env `GATEWAY_ADMIN_TOKEN`) they do not exist (`404`). The token is compared in
//! constant time.
//!
//! - `POST /_gateway/cache/flush[?operation=ID]` — drop every cached response, or one operation's;
//! - `GET /_gateway/cache/stats` — entries, resident bytes and capacity of the response cache;
//! - `GET /_gateway/usage` — per API key (by name): plan, requests admitted and throttled, quota used and left;
//! - `GET /_gateway/drift` — per operation with a response check: responses checked, mismatched and skipped.

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

use super::Admin;
use crate::error::{ErrorKind, GatewayError};
use crate::pipeline::{RequestCtx, finish};

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

/// The endpoints that change state or show who calls (cache flush and stats, usage by key, contract drift), or
/// `None` when no admin token is configured (they then do not exist: `404`).
pub(super) fn routes(admin: &Admin) -> Option<Router> {
    let token = admin.state.admin_token.clone()?;
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

#[derive(serde::Deserialize)]
struct FlushQuery {
    operation: Option<String>,
}

async fn flush(State(admin): State<Admin>, Query(query): Query<FlushQuery>) -> Response {
    let Some(cache) = &admin.state.cache else {
        return GatewayError::new(ErrorKind::NotFound, "no operation of this gateway caches responses").into_response();
    };
    if let Some(id) = &query.operation
        && !admin.api.operations.iter().any(|op| op.id == id)
    {
        return GatewayError::new(ErrorKind::NotFound, format!("no operation `{id}`")).into_response();
    }
    cache.flush(query.operation.as_deref()).await;
    tracing::info!(operation = query.operation.as_deref().unwrap_or("*"), "cache flushed");
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({ "flushed": query.operation.as_deref().unwrap_or("*") })),
    )
        .into_response()
}

async fn stats(State(admin): State<Admin>) -> Response {
    match &admin.state.cache {
        Some(cache) => axum::Json(cache.stats(admin.api.cache.capacity).await).into_response(),
        None => GatewayError::new(ErrorKind::NotFound, "no operation of this gateway caches responses").into_response(),
    }
}

/// Per operation with a response check: responses checked, mismatched and skipped, and the last mismatch.
async fn drift(State(admin): State<Admin>) -> Response {
    axum::Json(admin.state.contracts.drift().report(admin.api)).into_response()
}

async fn usage(State(admin): State<Admin>) -> Response {
    let keys = admin.state.keys.current();
    let counts: std::collections::HashMap<_, _> = admin
        .state
        .limits
        .usage
        .snapshot()
        .into_iter()
        .map(|(name, admitted, throttled)| (name, (admitted, throttled)))
        .collect();
    let mut report: Vec<serde_json::Value> = keys
        .keys()
        .map(|key| {
            let (admitted, throttled) = counts.get(&key.name).copied().unwrap_or_default();
            let plan = key
                .plan
                .as_deref()
                .and_then(|p| admin.api.usage_plans.iter().find(|u| u.name == p));
            let quota = plan.and_then(|p| p.quota.as_ref()).map(|q| {
                let state = admin.state.limits.quotas().peek(&key.name, q);
                serde_json::json!({
                    "limit": q.limit,
                    "used": state.used,
                    "remaining": state.remaining,
                    "resets_at": state.resets_at.to_string(),
                })
            });
            serde_json::json!({
                "name": &*key.name,
                "plan": key.plan.as_deref(),
                "enabled": key.enabled,
                "admitted": admitted,
                "throttled": throttled,
                "quota": quota,
            })
        })
        .collect();
    report.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    axum::Json(serde_json::json!({ "keys": report })).into_response()
}
