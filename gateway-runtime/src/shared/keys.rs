//! API keys kept in Redis, so that an operator adds or disables a key once for every replica, without a SIGHUP.
//!
//! The keys of an API with `shared: { keys: redis }` are the fields of the hash `<prefix>keys`: each field is the
//! SHA-256 of a key's secret in hex (the secret itself is never stored), each value the key's entry as JSON, as in
//! the key file without `key`:
//!
//! ```text
//! HSET gw:petstore:keys 5e884898da28…42d8 '{"name":"dave","plan":"free"}'
//! HSET gw:petstore:keys 5e884898da28…42d8 '{"name":"dave","plan":"free","enabled":false}'   # disabled
//! HDEL gw:petstore:keys 5e884898da28…42d8                                                   # gone
//! ```
//!
//! Every replica reads the whole hash every `keys_refresh` (2 s by default) and swaps its key set when it changed:
//! a key added, disabled or removed in Redis takes effect everywhere within that bound. While Redis cannot be read
//! the last set read stays; before the first read, an unknown key is answered `SERVICE_UNAVAILABLE` (it may be one
//! of the keys not read yet), never `UNAUTHORIZED`. The key file's keys work throughout.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::Redis;
use crate::policies::auth::keys::{ApiKey, KeyStore};

/// One value of the hash.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    plan: Option<String>,
    #[serde(default = "enabled_default")]
    enabled: bool,
}

fn enabled_default() -> bool {
    true
}

/// Keeps `keys` up to date with the keys of `api` in `redis`, every `refresh`, in the background.
pub fn start_refresh(redis: Redis, keys: KeyStore, api: &'static str, scoped: bool, refresh: Duration) {
    keys.expect_shared(api);
    super::runtime().spawn(async move {
        let mut tick = tokio::time::interval(refresh);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last: Option<HashMap<String, String>> = None;
        loop {
            tick.tick().await;
            let mut all = redis::cmd("HGETALL");
            all.arg(redis.key("keys"));
            let read: Result<HashMap<String, String>, _> = redis.background(all).await;
            match read {
                Ok(fields) if last.as_ref() == Some(&fields) => {}
                Ok(fields) => {
                    let set = parse(&fields, api, scoped);
                    tracing::info!(api, keys = set.len(), "API keys read from Redis");
                    keys.set_shared(api, set);
                    last = Some(fields);
                }
                Err(err) => tracing::debug!(api, error = %err, "cannot read the API keys from Redis; keeping the last"),
            }
        }
    });
}

/// The keys of the hash's `fields`; entries that are not valid are left out, with a warning naming them by their
/// position in the digest order (never by their digest, which identifies the secret).
fn parse(fields: &HashMap<String, String>, api: &'static str, scoped: bool) -> HashMap<[u8; 32], Arc<ApiKey>> {
    let mut digests: Vec<&String> = fields.keys().collect();
    digests.sort();
    let mut keys = HashMap::with_capacity(fields.len());
    for (position, field) in digests.into_iter().enumerate() {
        let Some(digest) = hex_digest(field) else {
            tracing::warn!(
                api,
                entry = position + 1,
                "a field of the keys hash is not a hex SHA-256; left out"
            );
            continue;
        };
        let entry: Entry = match serde_json::from_str(&fields[field]) {
            Ok(entry) => entry,
            Err(err) => {
                // serde_json's message names fields and positions; the value holds no secret.
                tracing::warn!(api, entry = position + 1, error = %err, "a key entry in Redis is not valid; left out");
                continue;
            }
        };
        if entry.name.is_empty() {
            tracing::warn!(
                api,
                entry = position + 1,
                "a key entry in Redis has an empty name; left out"
            );
            continue;
        }
        // The hash is the API's: its keys are for it alone (in a gateway of several APIs, they say so).
        let for_api = scoped.then_some(api);
        let key = ApiKey::shared(&entry.name, for_api, entry.plan.as_deref(), entry.enabled);
        keys.insert(digest, Arc::new(key));
    }
    keys
}

/// `field` as 32 bytes, if it is 64 hex digits.
fn hex_digest(field: &str) -> Option<[u8; 32]> {
    let bytes = field.trim().as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        digest[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policies::auth::keys::digest;

    #[test]
    fn entries_are_read_by_digest_and_bad_ones_left_out() {
        let hex = |secret: &str| digest(secret).iter().map(|b| format!("{b:02x}")).collect::<String>();
        let fields = HashMap::from([
            (hex("dave-key-1"), r#"{"name":"dave","plan":"free"}"#.to_owned()),
            (hex("erin-key-2"), r#"{"name":"erin","enabled":false}"#.to_owned()),
            ("not-hex".to_owned(), r#"{"name":"x"}"#.to_owned()),
            (hex("bad-entry"), r#"{"nam":"x"}"#.to_owned()),
        ]);
        let keys = parse(&fields, "pets", false);
        assert_eq!(keys.len(), 2);
        let dave = &keys[&digest("dave-key-1")];
        assert_eq!(
            (&*dave.name, dave.plan.as_deref(), dave.enabled),
            ("dave", Some("free"), true)
        );
        assert!(!keys[&digest("erin-key-2")].enabled);
        assert_eq!(hex_digest(&hex("a")), Some(digest("a")));
    }
}
