//! State shared by the replicas of an API through one Redis: token buckets and quotas ([`limits`]), per-key usage,
//! the response cache's second layer and its flushes ([`cache`]), and API keys ([`keys`]).
//!
//! One gateway process needs none of this (everything has an in-memory implementation, the default); an API whose
//! spec has `x-gateway.shared` gets a [`Redis`] handle, and each concern then keeps its state there as well.
//!
//! The handle is built so that Redis can never make a request hang or fail in a way the spec did not choose:
//!
//! - the connection is made lazily, in the background: a gateway starts (and serves, as `on_failure` says) while
//!   Redis is down, and picks it up when it comes;
//! - every call is bounded by the spec's `timeout` (a few milliseconds);
//! - after a failure the handle stops asking for a while (25 ms, doubling to 2 s): requests meanwhile get
//!   [`SharedError::Down`] at once instead of each waiting out the timeout, and the first call after the pause is
//!   the probe that finds Redis back (redis-rs's connection manager reconnects);
//! - the URL may carry a password, so it is only ever shown [`redacted`].

pub mod cache;
pub mod keys;
pub mod limits;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::spec::SharedSpec;

/// The first pause after a failure; it doubles with each failure in a row.
const FIRST_PAUSE: Duration = Duration::from_millis(25);
/// The longest pause between probes of a Redis that keeps failing.
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// At most one warning about a failing Redis in this long (the rest are counted).
const WARN_EVERY: Duration = Duration::from_secs(5);
/// Timeouts in a row after which the connection is dropped for a new one.
const TIMEOUTS_BEFORE_NEW_CONNECTION: u32 = 3;
/// How long a background call (key refresh, flush, usage report, refund) may take: off the request path, so not
/// held to the request's timeout, and never pausing the request path's calls.
const BACKGROUND_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a shared call failed. The concern that made it decides what the request gets (`on_failure`).
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The call failed or took longer than the timeout.
    #[error("Redis at {at}: {reason}")]
    Failed {
        /// Where (without credentials).
        at: String,
        /// What happened.
        reason: String,
    },
    /// A recent call failed: not asked again until the pause ends.
    #[error("Redis at {0} is down (pausing before the next try)")]
    Down(String),
    /// Redis answered something the gateway did not expect (another program writing its keys).
    #[error("Redis at {at} answered unexpectedly: {reason}")]
    Unexpected {
        /// Where (without credentials).
        at: String,
        /// What was wrong.
        reason: String,
    },
    /// The URL is not one redis-rs can use (the generator checks the spec's; this is `--redis`).
    #[error("not a usable Redis URL ({0}): write redis://[user:password@]host[:port][/db]")]
    Url(String),
}

/// A Redis shared by the replicas of one API: cheap to clone.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    /// The connection; replaced by a new one after [`TIMEOUTS_BEFORE_NEW_CONNECTION`] timeouts in a row (a Redis
    /// host gone without a reset leaves a connection that would otherwise wait for TCP to give up).
    manager: ArcSwap<ConnectionManager>,
    config: ConnectionManagerConfig,
    client: redis::Client,
    /// Timeouts in a row.
    timeouts: AtomicU32,
    /// A call is probing whether Redis is back (the others get [`SharedError::Down`] meanwhile).
    probing: AtomicBool,
    prefix: Box<str>,
    timeout: Duration,
    /// The URL without credentials, for logs.
    at: String,
    /// When the handle was made: the origin of `paused_until`.
    epoch: Instant,
    /// Milliseconds after `epoch` before which no call is made.
    paused_until: AtomicU64,
    /// Failures in a row.
    failures: AtomicU32,
    /// When the last warning was logged (milliseconds after `epoch`, plus one: 0 is never).
    warned: AtomicU64,
    /// Calls refused or failed.
    failed: AtomicU64,
    /// Calls answered.
    succeeded: AtomicU64,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("at", &self.inner.at)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// The runtime the Redis connections are driven on: one small thread for the whole process, so that connections
/// (and their reconnections, the key refresher, the flush listener) belong to no worker and outlive none.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("gateway-shared")
            .enable_all()
            .build()
            .unwrap_or_else(|err| {
                // Without it no shared state works: nothing the gateway can serve around. It is a thread and a
                // timer; failing to make one means the process is out of resources.
                tracing::error!(error = %err, "cannot start the runtime for shared state");
                std::process::abort()
            })
    })
}

/// A connection made lazily, on the shared runtime (the one its tasks are spawned on).
fn new_connection(client: &redis::Client, config: &ConnectionManagerConfig) -> redis::RedisResult<ConnectionManager> {
    let _in_runtime = runtime().enter();
    ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
}

/// What follows the prefix in the keys of a stage's limits, usage and cache entries (`prod:`), so that stages
/// sharing one Redis keep them apart; empty without a stage.
pub(crate) fn stage_scope(stage: Option<&str>) -> String {
    stage.map_or(String::new(), |s| format!("{s}:"))
}

/// `url` without its user name, password and query (which may carry either), for logs: `redis://host:port/db`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

impl Redis {
    /// A handle on the Redis `spec` names (at `url` instead when given: `--redis`); connects in the background.
    pub fn open(spec: &SharedSpec, url: Option<&str>) -> Result<Self, SharedError> {
        let url = url.unwrap_or(spec.redis);
        let at = redacted(url);
        // redis-rs's messages may quote the URL: only ours is shown.
        let client = redis::Client::open(url).map_err(|_| SharedError::Url(at.clone()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(spec.timeout))
            .set_connection_timeout(Some(spec.timeout.max(Duration::from_millis(250))))
            // The pauses between probes are this handle's (see the module): one reconnection try per probe.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager = new_connection(&client, &config).map_err(|err| SharedError::Failed {
            at: at.clone(),
            reason: err.to_string(),
        })?;
        tracing::info!(redis = %at, prefix = spec.prefix, timeout = ?spec.timeout, "sharing state through Redis");
        Ok(Self {
            inner: Arc::new(Inner {
                manager: ArcSwap::from_pointee(manager),
                config,
                client,
                timeouts: AtomicU32::new(0),
                probing: AtomicBool::new(false),
                prefix: spec.prefix.into(),
                timeout: spec.timeout,
                at,
                epoch: Instant::now(),
                paused_until: AtomicU64::new(0),
                failures: AtomicU32::new(0),
                warned: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                succeeded: AtomicU64::new(0),
            }),
        })
    }

    /// `prefix` + `name`.
    pub fn key(&self, name: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + name.len());
        key.push_str(&self.inner.prefix);
        key.push_str(name);
        key
    }

    /// Where Redis is, without credentials.
    pub fn at(&self) -> &str {
        &self.inner.at
    }

    /// Calls Redis answered.
    pub fn succeeded(&self) -> u64 {
        self.inner.succeeded.load(Ordering::Relaxed)
    }

    /// Calls that failed, or were not made because Redis was down.
    pub fn failures(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }

    /// Whether calls are being made (no failure, or the pause after one is over).
    pub fn available(&self) -> bool {
        self.millis() >= self.inner.paused_until.load(Ordering::Relaxed)
    }

    /// A client for connections of their own (the flush listener's subscription).
    pub(crate) fn client(&self) -> &redis::Client {
        &self.inner.client
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `script` with `keys` and `args` on the request path (one round trip: redis-rs sends EVALSHA, and the
    /// script's text once if Redis lacks it).
    pub async fn script<T: redis::FromRedisValue + Send + 'static>(
        &self,
        script: &Arc<redis::Script>,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<T, SharedError> {
        let script = Arc::clone(script);
        self.call(false, move |mut connection| async move {
            let mut invocation = script.prepare_invoke();
            for key in keys {
                invocation.key(key);
            }
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    /// Runs one command or pipeline on the request path (one round trip).
    pub async fn query<T: redis::FromRedisValue + Send + 'static>(
        &self,
        command: impl QueryLike + Send + 'static,
    ) -> Result<T, SharedError> {
        self.call(false, move |mut connection| async move {
            command.run(&mut connection).await
        })
        .await
    }

    /// Runs one command or pipeline off the request path: a longer timeout, and its failure pauses nothing.
    pub async fn background<T: redis::FromRedisValue + Send + 'static>(
        &self,
        command: impl QueryLike + Send + 'static,
    ) -> Result<T, SharedError> {
        self.call(
            true,
            move |mut connection| async move { command.run(&mut connection).await },
        )
        .await
    }

    /// Runs `call` on the shared runtime (where the connection's tasks live, so no worker drives another's Redis
    /// traffic, and a request that goes away does not cancel a call half-sent), bounded by the timeout.
    async fn call<T, F, Fut>(&self, background: bool, call: F) -> Result<T, SharedError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut + Send + 'static,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        if !background {
            self.admit()?;
        }
        let connection = (**self.inner.manager.load()).clone();
        let limit = if background {
            BACKGROUND_TIMEOUT
        } else {
            self.inner.timeout
        };
        let task = runtime().spawn(async move { tokio::time::timeout(limit, call(connection)).await });
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(err) => Ok(Err(redis::RedisError::from(std::io::Error::other(err.to_string())))),
        };
        if background {
            return outcome
                .map_err(|_| format!("no answer within {limit:?}"))
                .and_then(|answer| answer.map_err(|err| err.to_string()))
                .map_err(|reason| SharedError::Failed {
                    at: self.inner.at.clone(),
                    reason,
                });
        }
        self.settle(outcome)
    }

    /// Whether a request-path call may be made: not during the pause after a failure, and once it is over, only
    /// one call (the probe) until that one is answered.
    fn admit(&self) -> Result<(), SharedError> {
        let down = !self.available()
            || (self.inner.failures.load(Ordering::Relaxed) > 0 && self.inner.probing.swap(true, Ordering::AcqRel));
        if down {
            self.inner.failed.fetch_add(1, Ordering::Relaxed);
            return Err(SharedError::Down(self.inner.at.clone()));
        }
        Ok(())
    }

    /// Counts the call and, on failure, starts (or lengthens) the pause.
    fn settle<T>(&self, outcome: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>) -> Result<T, SharedError> {
        self.inner.probing.store(false, Ordering::Release);
        if outcome.is_err() {
            if self.inner.timeouts.fetch_add(1, Ordering::Relaxed) + 1 >= TIMEOUTS_BEFORE_NEW_CONNECTION {
                self.inner.timeouts.store(0, Ordering::Relaxed);
                match new_connection(&self.inner.client, &self.inner.config) {
                    Ok(fresh) => {
                        self.inner.manager.store(Arc::new(fresh));
                        tracing::debug!(redis = %self.inner.at, "Redis timed out repeatedly; connecting anew");
                    }
                    Err(err) => tracing::debug!(error = %err, "cannot make a new Redis connection"),
                }
            }
        } else {
            self.inner.timeouts.store(0, Ordering::Relaxed);
        }
        let reason = match outcome {
            Ok(Ok(value)) => {
                self.inner.succeeded.fetch_add(1, Ordering::Relaxed);
                let failures = self.inner.failures.swap(0, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(redis = %self.inner.at, failures, "Redis is reachable again");
                }
                return Ok(value);
            }
            // A script error is Redis running our script and refusing it: the connection is fine.
            Ok(Err(err)) if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                return Err(SharedError::Unexpected {
                    at: self.inner.at.clone(),
                    reason: err.to_string(),
                });
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {:?}", self.inner.timeout),
        };
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
        let failures = self.inner.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let pause = FIRST_PAUSE
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(MAX_PAUSE);
        let now = self.millis();
        let until = now.saturating_add(u64::try_from(pause.as_millis()).unwrap_or(u64::MAX));
        self.inner.paused_until.fetch_max(until, Ordering::Relaxed);
        let warned = self.inner.warned.load(Ordering::Relaxed);
        let every = u64::try_from(WARN_EVERY.as_millis()).unwrap_or(u64::MAX);
        if (warned == 0 || now.saturating_sub(warned - 1) >= every)
            && self
                .inner
                .warned
                .compare_exchange(warned, now + 1, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                redis = %self.inner.at,
                %reason,
                failures,
                ?pause,
                "Redis call failed; shared concerns do what `on_failure` says until it answers again"
            );
        }
        Err(SharedError::Failed {
            at: self.inner.at.clone(),
            reason,
        })
    }
}

/// A command or a pipeline: what [`Redis::query`] runs.
pub trait QueryLike: Sync {
    /// Sends it on `connection` and reads the answer.
    fn run<'a, T: redis::FromRedisValue + 'static>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a;
}

impl QueryLike for redis::Cmd {
    fn run<'a, T: redis::FromRedisValue + 'static>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a {
        self.query_async(connection)
    }
}

impl QueryLike for redis::Pipeline {
    fn run<'a, T: redis::FromRedisValue + 'static>(
        &'a self,
        connection: &'a mut ConnectionManager,
    ) -> impl Future<Output = redis::RedisResult<T>> + Send + 'a {
        self.query_async(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(redacted("redis://gw:s3cret@10.0.0.5:6380/2"), "redis://10.0.0.5:6380/2");
        assert_eq!(redacted("redis://:s3cret@cache/0"), "redis://cache/0");
        assert!(!redacted("redis://u:s3cret@[::1]:6379").contains("s3cret"));
        assert!(!redacted("not a url s3cret").contains("s3cret"));
        assert!(!redacted("redis+unix:///run/redis.sock?pass=s3cret").contains("s3cret"));
    }
}
