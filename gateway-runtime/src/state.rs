//! State shared by every worker: what must be one thing across the whole process, not one per core.
//!
//! Per-worker state (router, upstream connection pools) lives in each worker; only policies whose meaning is
//! global — one cache, one set of keys, one set of limits — are here, behind cheap clones.

use crate::admin::AdminToken;
use crate::observe::metrics::Metrics;
use crate::policies::auth::Authenticators;
use crate::policies::auth::keys::KeyStore;
use crate::policies::cache::ResponseCache;
use crate::policies::throttle::Limits;
use crate::policies::validate::{ContractError, Contracts};
use crate::shared::cache::SharedCache;
use crate::shared::limits::SharedLimits;
use crate::shared::{Redis, SharedError};
use crate::spec::ApiSpec;
use crate::stage::ResolvedStage;
use crate::store::{self, Store, StoreError, StoreOverride};

/// Process-wide state, built once at start-up and cloned into each worker's router.
#[derive(Debug, Clone)]
pub struct SharedState {
    /// The response cache, when some operation caches.
    pub cache: Option<ResponseCache>,
    /// The token guarding `/_gateway/…`; without one the admin endpoints are off.
    pub admin_token: Option<AdminToken>,
    /// The API keys (reloadable).
    pub keys: KeyStore,
    /// The checkers of every security scheme: JWT verifiers and their key sets, authorizers and their caches.
    pub auth: Authenticators,
    /// Token buckets, quotas and per-key usage.
    pub limits: Limits,
    /// The spec's schemas and filters, compiled; the response-check counters.
    pub contracts: Contracts,
    /// The stage being served (leaked once per server start: it lives as long as the process serves).
    pub stage: Option<&'static ResolvedStage>,
    /// Request counters and latency histograms, one shard per worker: only when something reads them (the admin
    /// listener), so that a gateway without one does not count.
    pub metrics: Option<Metrics>,
    /// The spec as published on `GET /_gateway/openapi.json`, its `servers` set to where the stage serves it.
    pub published: Option<bytes::Bytes>,
    /// The API's stores, opened, in the order of [`ApiSpec::stores`] (store targets refer to them by index); empty
    /// until [`SharedState::with_stores`].
    pub stores: Vec<Store>,
    /// The API's upstreams and their servers' state (for `GET /_gateway/upstreams`); set by the server.
    pub upstreams: Option<crate::targets::proxy::Upstreams>,
    /// How long a request may wait for its response head (`--request-timeout`); `None`: unbounded here.
    pub request_timeout: Option<std::time::Duration>,
    /// The Redis the API shares state through with its other replicas (`x-gateway.shared`).
    pub redis: Option<Redis>,
}

impl SharedState {
    /// The state `api` needs in `stage` (without metrics: see [`SharedState::with_metrics`]); fails only if a schema
    /// or filter of the (generated) table does not compile.
    ///
    /// A stage with `cache: { enabled: false }` has no response cache at all (its cached operations are served as
    /// if they had no cache policy); a stage's throttle replaces the API-wide bucket.
    pub fn new(
        api: &'static ApiSpec,
        stage: Option<&'static ResolvedStage>,
        admin_token: Option<AdminToken>,
        keys: KeyStore,
        auth: Authenticators,
        trust_proxy: bool,
    ) -> Result<Self, ContractError> {
        let caches = api.operations.iter().any(|op| op.cache.is_some()) && stage.is_none_or(|s| s.cache_enabled());
        let api_throttle = match stage {
            Some(stage) => stage.throttle_or(api).copied(),
            None => api.throttle,
        };
        Ok(Self {
            cache: caches.then(|| ResponseCache::new(api.cache)),
            admin_token,
            keys,
            auth,
            limits: Limits::in_memory(api, api_throttle, trust_proxy),
            contracts: Contracts::compile(api)?,
            stage,
            metrics: None,
            published: api
                .published
                .map(|json| published(json, stage.map_or("", |s| s.base_path()))),
            stores: Vec::new(),
            upstreams: None,
            request_timeout: None,
            redis: None,
        })
    }
}

impl SharedState {
    /// The state, counting requests for `workers` workers.
    #[must_use]
    pub fn with_metrics(mut self, api: &'static ApiSpec, workers: usize) -> Self {
        self.metrics = Some(Metrics::new(api, workers));
        self
    }

    /// The state with `api`'s stores opened (each at its `--store` path when `overrides` names it, with at most
    /// `max_batch` writes per transaction when given): their files, directories, tables and indexes created if
    /// missing.
    pub fn with_stores(
        mut self,
        api: &'static ApiSpec,
        overrides: &[StoreOverride],
        max_batch: Option<usize>,
    ) -> Result<Self, StoreError> {
        self.stores = store::open_all(api.stores, overrides, max_batch)?;
        Ok(self)
    }

    /// The state with what `api` shares with its other replicas (`x-gateway.shared`) kept in Redis — at `redis_url`
    /// instead of the spec's when given (`--redis`). Nothing is connected yet: the connection is made in the
    /// background, and until it is up each concern does what `on_failure` says.
    ///
    /// With `several` (a gateway of several APIs) the keys read from the API's Redis are for it alone.
    pub fn with_shared(
        mut self,
        api: &'static ApiSpec,
        redis_url: Option<&str>,
        several: bool,
    ) -> Result<Self, SharedError> {
        let Some(spec) = api.shared else {
            return Ok(self);
        };
        let redis = Redis::open(spec, redis_url)?;
        let limits = SharedLimits::new(redis.clone(), self.stage.map(ResolvedStage::name));
        self.limits = self
            .limits
            .with_shared(limits, spec.on_failure, self.stage.map(ResolvedStage::name));
        if spec.cache {
            let stage = self.stage.map(ResolvedStage::name);
            self.cache = self
                .cache
                .take()
                .map(|cache| cache.with_shared(SharedCache::new(redis.clone(), stage)));
        }
        if spec.keys {
            crate::shared::keys::start_refresh(redis.clone(), self.keys.clone(), api.name, several, spec.keys_refresh);
        }
        self.redis = Some(redis);
        Ok(self)
    }

    /// The opened store named `name`.
    pub fn store(&self, name: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.name() == name)
    }
}

/// The published spec with `servers` saying where the gateway serves it: the stage's base path, relative to the
/// host the document was fetched from (`/` without one).
pub(crate) fn published(json: &str, base_path: &str) -> bytes::Bytes {
    let Ok(serde_json::Value::Object(mut document)) = serde_json::from_str::<serde_json::Value>(json) else {
        // Written by the generator as a JSON object; anything else is published as it is.
        return bytes::Bytes::from(json.to_owned());
    };
    let url = if base_path.is_empty() { "/" } else { base_path };
    document.insert("servers".to_owned(), serde_json::json!([{ "url": url }]));
    bytes::Bytes::from(serde_json::Value::Object(document).to_string())
}
