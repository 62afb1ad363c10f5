//! `x-gateway.shared`: the Redis that replicas of the API share limits, quotas, usage, the cache and keys through,
//! and what each concern does while it cannot be reached.
//!
//! What is checked is what would otherwise fail at start-up or, worse, quietly behave differently across replicas:
//! a URL that is not a Redis URL, a prefix that could collide with another API's keys, an `on_failure` choice that
//! does not exist, a timeout that would let a slow Redis stall every request.

use std::time::Duration;

use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::Shared;
use crate::parse::ParsedSpec;

/// The longest a Redis call waits by default: a same-network Redis answers in well under a millisecond, so this
/// is a stalled server, not a slow one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// How often keys are re-read from Redis by default: the longest a disabled key keeps working on some replica.
pub const DEFAULT_KEYS_REFRESH: Duration = Duration::from_secs(2);
/// A timeout above this would let a slow Redis hold every request for seconds.
const MAX_TIMEOUT: Duration = Duration::from_secs(2);

/// Checks `x-gateway.shared` of an API named `name`.
pub(super) fn check_shared(spec: &ParsedSpec, name: &str, diags: &mut Diagnostics) -> Option<Shared> {
    let ext = spec.root.shared.as_ref()?;
    let at = "/x-gateway/shared";
    let example = "`shared: { redis: { url: \"redis://127.0.0.1:6379/0\" } }`";
    let Some(redis) = &ext.redis else {
        diags.push(
            Diagnostic::error(at, "`shared` needs `redis`: where the replicas' shared state is").help(format!(
                "e.g. {example}; the URL can also come from `--redis URL` or GATEWAY_REDIS_URL"
            )),
        );
        return None;
    };
    let url = match redis.url.as_deref() {
        None => {
            diags.push(
                Diagnostic::error(format!("{at}/redis"), "`redis` needs `url`").help(format!(
                    "e.g. {example}; write a placeholder there if `--redis URL` or GATEWAY_REDIS_URL gives it"
                )),
            );
            None
        }
        Some(url) => check_url(url, &format!("{at}/redis/url"), diags).then(|| url.to_owned()),
    };
    let prefix = match redis.prefix.as_deref() {
        None => format!("gw:{name}:"),
        Some(prefix) if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            diags.push(
                Diagnostic::error(
                    format!("{at}/redis/prefix"),
                    "`prefix` must be non-empty, without spaces",
                )
                .help(format!(
                    "e.g. `gw:{name}:` (the default); each API sharing a Redis needs its own"
                )),
            );
            String::new()
        }
        Some(prefix) => prefix.to_owned(),
    };
    let timeout = redis.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        diags.push(
            Diagnostic::error(
                format!("{at}/redis/timeout"),
                "`timeout` must be above 0 and at most 2s",
            )
            .help(
                "a few milliseconds is plenty for a Redis on the same network (default 50ms); past it each concern \
                 does what `on_failure` says",
            ),
        );
    }
    let on_failure = ext.on_failure.clone().unwrap_or_default();
    let limits_closed = fail_mode(on_failure.limits.as_deref(), &format!("{at}/on_failure/limits"), diags);
    let quotas_closed = fail_mode(on_failure.quotas.as_deref(), &format!("{at}/on_failure/quotas"), diags);
    if let Some(other) = on_failure.cache.as_deref().filter(|c| *c != "bypass") {
        diags.push(
            Diagnostic::error(
                format!("{at}/on_failure/cache"),
                format!("`cache: {other}` is not a choice"),
            )
            .help("`bypass` (the default): without Redis each replica answers from its own cache or the target"),
        );
    }
    let keys = redis_choice(ext.keys.as_deref(), &format!("{at}/keys"), "keys", diags);
    let keys_refresh = ext.keys_refresh.map_or(DEFAULT_KEYS_REFRESH, |d| d.0);
    if keys_refresh < Duration::from_millis(100) {
        diags.push(
            Diagnostic::error(format!("{at}/keys_refresh"), "`keys_refresh` must be at least 100ms")
                .help("it bounds how long a key disabled in Redis still works; 2s (the default) costs one read per replica every 2 seconds"),
        );
    }
    if ext.keys_refresh.is_some() && !keys {
        diags.push(
            Diagnostic::warning(
                format!("{at}/keys_refresh"),
                "`keys_refresh` without `keys: redis` does nothing",
            )
            .help("add `keys: redis` to read API keys from Redis too"),
        );
    }
    let cache = redis_choice(ext.cache.as_deref(), &format!("{at}/cache"), "cache", diags);
    let caches = spec.operations.iter().any(|op| {
        [op.op_ext.as_ref(), op.path_ext.as_ref()]
            .into_iter()
            .flatten()
            .any(|(_, e)| e.cache.is_some())
    }) || spec.root.cache.as_ref().is_some_and(|c| c.ttl.is_some());
    if cache && !caches {
        diags.push(
            Diagnostic::warning(format!("{at}/cache"), "`cache: redis` but no operation caches")
                .help("give operations a `cache: { ttl }` for the shared layer to hold anything"),
        );
    }
    Some(Shared {
        redis: url?,
        prefix,
        timeout,
        limits_closed,
        quotas_closed,
        keys,
        keys_refresh,
        cache,
    })
}

/// Whether `url` is a Redis URL the runtime can use; a located error otherwise.
fn check_url(url: &str, at: &str, diags: &mut Diagnostics) -> bool {
    let help = "write `redis://[user:password@]host[:port][/db]`, e.g. `redis://127.0.0.1:6379/0`";
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "redis" && parsed.host_str().is_some_and(|h| !h.is_empty()) => {
            let db = parsed.path().trim_start_matches('/');
            if !db.is_empty() && db.parse::<u16>().is_err() {
                diags.push(Diagnostic::error(at, format!("`/{db}` is not a database number")).help(help));
                return false;
            }
            if parsed.password().is_some() {
                diags.push(
                    Diagnostic::warning(at, "the Redis URL carries a password, compiled into the binary")
                        .help("leave it out of the spec and pass the whole URL with GATEWAY_REDIS_URL or `--redis`"),
                );
            }
            true
        }
        Ok(parsed) if parsed.scheme() == "rediss" => {
            diags.push(
                Diagnostic::error(at, "TLS to Redis (`rediss://`) is not supported yet")
                    .help("reach Redis over a private network or a local TLS tunnel, with `redis://`"),
            );
            false
        }
        // The parser's message names positions, not the URL (which may hold a password).
        Ok(_) | Err(_) => {
            diags.push(Diagnostic::error(at, "not a Redis URL").help(help));
            false
        }
    }
}

/// `open` (false, the default) or `closed` (true).
fn fail_mode(value: Option<&str>, at: &str, diags: &mut Diagnostics) -> bool {
    match value {
        None | Some("open") => false,
        Some("closed") => true,
        Some(other) => {
            let d = Diagnostic::error(at, format!("`{other}` is not `open` or `closed`"));
            diags.push(match did_you_mean(other, ["open", "closed"]) {
                Some(best) => d.help(format!("did you mean `{best}`?")),
                None => d.help("`open` admits requests while Redis is down (and logs); `closed` refuses them (503)"),
            });
            false
        }
    }
}

/// `redis` (true) or absent (false).
fn redis_choice(value: Option<&str>, at: &str, what: &str, diags: &mut Diagnostics) -> bool {
    match value {
        None => false,
        Some("redis") => true,
        Some(other) => {
            diags.push(
                Diagnostic::error(at, format!("`{what}: {other}` is not a choice")).help(format!(
                    "`{what}: redis` shares them through `shared.redis`; leave it out otherwise"
                )),
            );
            false
        }
    }
}
