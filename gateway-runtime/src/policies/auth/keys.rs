//! API keys: runtime data, never in the spec.
//!
//! The key file (`--api-keys FILE`) is a YAML list:
//!
//! ```yaml
//! - { key: "k-3f9a…", name: alice, plan: free, enabled: true }
//! - { key: "k-77c0…", name: bob, plan: pro }
//! - { key: "k-9e21…", name: carol, api: pets-v2, plan: gold }
//! ```
//!
//! In a gateway of several APIs one file serves them all. `api: NAME` confines a key to one API: it opens that
//! API's keyed operations and no other's (a `403` elsewhere). A key without `api` opens the keyed operations of
//! every API, so it may not have a `plan` there: plans belong to one spec, and a plan name two specs share would
//! otherwise carry one key's limits into the other API. Both rules are checked when the file is read
//! ([`KeyScope`]); a file that breaks them is refused as a whole, at start-up or on reload.
//!
//! It is read at start-up and again on SIGHUP. A reload is atomic: the new set replaces the old in one pointer swap,
//! and a file that does not parse or validate keeps the old set (the reason is logged). Keys are never logged or
//! printed; everything the gateway says about a key uses its `name`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use subtle::ConstantTimeEq as _;

/// One key of the key file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    key: String,
    name: String,
    api: Option<String>,
    plan: Option<String>,
    #[serde(default = "enabled_default")]
    enabled: bool,
}

fn enabled_default() -> bool {
    true
}

/// A known API key.
pub struct ApiKey {
    secret: Box<str>,
    /// The key's name: what logs, metrics and usage reports show.
    pub name: Arc<str>,
    /// The one API the key is for (`api:`); `None`: every API of the gateway.
    pub api: Option<Arc<str>>,
    /// The usage plan the key is on.
    pub plan: Option<Arc<str>>,
    /// Disabled keys are refused with `403`.
    pub enabled: bool,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is never printed.
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("api", &self.api)
            .field("plan", &self.plan)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a list of keys.
    #[error("{path} is not a valid key file: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the YAML reader said (it never quotes key values).
        message: String,
    },
    /// A key or name is empty or repeated.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the entry by its position or name, never by its key.
        problem: String,
    },
}

/// The APIs a key file serves: what `api:` may name, and whether a key without it may have a plan.
#[derive(Debug, Clone, Default)]
pub struct KeyScope {
    /// The APIs' names, in the gateway's order; empty: any (nothing is checked).
    apis: Vec<&'static str>,
}

impl KeyScope {
    /// Keys for the APIs `apis` of one gateway.
    pub fn of(apis: &[&crate::spec::ApiSpec]) -> Self {
        Self {
            apis: apis.iter().map(|api| api.name).collect(),
        }
    }

    /// Whether a key for `api` (`None`: every API) on `plan` may be in the file; the problem otherwise, naming the
    /// key as `who` does (never by its secret).
    fn check(&self, who: &str, api: Option<&str>, plan: Option<&str>) -> Result<(), String> {
        if self.apis.is_empty() {
            return Ok(());
        }
        let served = || self.apis.join(", ");
        match api {
            Some(api) if !self.apis.contains(&api) => Err(format!(
                "{who} is for API `{api}`, which this gateway does not serve (it serves: {})",
                served()
            )),
            None if plan.is_some() && self.apis.len() > 1 => Err(format!(
                "{who} has a plan but no `api`: this gateway serves several APIs ({}), each with plans of its own; \
                 add `api: NAME` to the entry",
                served()
            )),
            _ => Ok(()),
        }
    }
}

/// A validated set of keys: the key file's, and those read from Redis ([`crate::shared::keys`]), which are known
/// by the SHA-256 of their secret only.
#[derive(Debug, Default)]
pub struct KeySet {
    by_secret: Arc<HashMap<Box<str>, Arc<ApiKey>>>,
    by_digest: Arc<HashMap<[u8; 32], Arc<ApiKey>>>,
    /// The APIs whose keys live in a Redis not read yet: for them an unknown key may be one of those
    /// (`SERVICE_UNAVAILABLE`, not `UNAUTHORIZED`).
    pending: Arc<[&'static str]>,
}

impl KeySet {
    /// Reads and validates a key file (any `api:` is accepted: see [`KeySet::load_for`]).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        Self::load_for(path, &KeyScope::default())
    }

    /// Reads and validates a key file for the APIs of `scope`.
    pub fn load_for(path: &Path, scope: &KeyScope) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let entries: Vec<KeyEntry> = serde_yaml::from_str(&text).map_err(|e| KeyFileError::Parse {
            path: path.to_owned(),
            // serde_yaml's messages name fields and positions, not values.
            message: e.to_string(),
        })?;
        let invalid = |problem: String| KeyFileError::Invalid {
            path: path.to_owned(),
            problem,
        };
        let mut by_secret = HashMap::with_capacity(entries.len());
        let mut names = std::collections::HashSet::new();
        for (i, entry) in entries.into_iter().enumerate() {
            if entry.key.len() < 8 {
                return Err(invalid(format!(
                    "key #{} ({}) is shorter than 8 characters",
                    i + 1,
                    entry.name
                )));
            }
            if entry.name.is_empty() {
                return Err(invalid(format!("key #{} has an empty name", i + 1)));
            }
            if !names.insert(entry.name.clone()) {
                return Err(invalid(format!("the name `{}` is used twice", entry.name)));
            }
            scope
                .check(
                    &format!("key #{} ({})", i + 1, entry.name),
                    entry.api.as_deref(),
                    entry.plan.as_deref(),
                )
                .map_err(invalid)?;
            let key = ApiKey {
                secret: entry.key.clone().into_boxed_str(),
                name: Arc::from(entry.name.as_str()),
                api: entry.api.as_deref().map(Arc::from),
                plan: entry.plan.as_deref().map(Arc::from),
                enabled: entry.enabled,
            };
            if by_secret.insert(entry.key.into_boxed_str(), Arc::new(key)).is_some() {
                return Err(invalid(format!(
                    "key #{} ({}) repeats another entry's key",
                    i + 1,
                    entry.name
                )));
            }
        }
        Ok(Self {
            by_secret: Arc::new(by_secret),
            ..Self::default()
        })
    }

    /// The key whose secret is `presented`.
    ///
    /// The map lookup hashes the presented value with a per-process random SipHash key, so its timing says nothing
    /// useful about stored keys; the final comparison is constant-time over the whole secret.
    ///
    /// Keys from Redis are found by the SHA-256 of the presented value: only a value whose digest is stored finds
    /// one, and the map's lookup over digests says nothing about any secret.
    pub fn find(&self, presented: &str) -> Option<&Arc<ApiKey>> {
        if let Some(key) = self.by_secret.get(presented) {
            return bool::from(key.secret.as_bytes().ct_eq(presented.as_bytes())).then_some(key);
        }
        if self.by_digest.is_empty() {
            return None;
        }
        self.by_digest.get(&digest(presented))
    }

    /// Whether keys of `api` are still to come from a Redis that has not been read yet.
    pub fn pending_for(&self, api: &str) -> bool {
        self.pending.contains(&api)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.by_secret.len() + self.by_digest.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<ApiKey>> {
        self.by_secret.values().chain(self.by_digest.values())
    }

    /// Whether every key fits `scope` (for a set loaded without it); the first problem otherwise.
    pub fn check(&self, scope: &KeyScope) -> Result<(), String> {
        let mut keys: Vec<&Arc<ApiKey>> = self.keys().collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        keys.iter()
            .try_for_each(|key| scope.check(&format!("key `{}`", key.name), key.api.as_deref(), key.plan.as_deref()))
    }
}

/// The SHA-256 of a key's secret: how keys kept in Redis are stored and found.
pub fn digest(secret: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

impl ApiKey {
    /// A key known by its digest only (from Redis): its `secret` is empty and never compared.
    pub(crate) fn shared(name: &str, api: Option<&str>, plan: Option<&str>, enabled: bool) -> Self {
        Self {
            secret: Box::from(""),
            name: Arc::from(name),
            api: api.map(Arc::from),
            plan: plan.map(Arc::from),
            enabled,
        }
    }
}

/// Keys by the SHA-256 of their secret.
type ByDigest = HashMap<[u8; 32], Arc<ApiKey>>;

/// A Redis source of keys: the API it belongs to, and the keys it gave last (`None` before the first read).
type SharedSource = (&'static str, Option<Arc<ByDigest>>);

/// The current key set, replaceable at run time.
#[derive(Debug, Clone)]
pub struct KeyStore {
    current: Arc<ArcSwap<KeySet>>,
    path: Option<Arc<Path>>,
    scope: Arc<KeyScope>,
    /// The keys each Redis source (by API) gave last; `None` for a source not read yet.
    shared: Arc<std::sync::Mutex<Vec<SharedSource>>>,
}

impl KeyStore {
    /// A store with no keys and no file: every keyed operation answers `401`.
    pub fn empty() -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(KeySet::default())),
            path: None,
            scope: Arc::default(),
            shared: Arc::default(),
        }
    }

    /// Loads `path` (or starts empty without one), accepting any `api:`.
    pub fn open(path: Option<&Path>) -> Result<Self, KeyFileError> {
        Self::open_for(path, KeyScope::default())
    }

    /// Loads `path` (or starts empty without one) for the APIs of `scope`, which reloads are checked against too.
    pub fn open_for(path: Option<&Path>, scope: KeyScope) -> Result<Self, KeyFileError> {
        let set = match path {
            Some(path) => KeySet::load_for(path, &scope)?,
            None => KeySet::default(),
        };
        Ok(Self {
            current: Arc::new(ArcSwap::from_pointee(set)),
            path: path.map(Arc::from),
            scope: Arc::new(scope),
            shared: Arc::default(),
        })
    }

    /// The current set.
    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Re-reads the key file; on any error the current set stays. Returns how many keys are now loaded.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let Some(path) = &self.path else {
            return Ok(self.current().len());
        };
        let set = KeySet::load_for(path, &self.scope)?;
        // Under the lock the Redis refreshes take: neither replaces the set with one that lacks the other's change.
        let _shared = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.current();
        let set = KeySet {
            by_digest: Arc::clone(&current.by_digest),
            pending: Arc::clone(&current.pending),
            ..set
        };
        let count = set.len();
        self.current.store(Arc::new(set));
        Ok(count)
    }

    /// Declares that the keys of `api` also come from Redis: until [`KeyStore::set_shared`] gives them, an unknown
    /// key may be one of them.
    pub fn expect_shared(&self, api: &'static str) {
        let mut shared = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !shared.iter().any(|(name, _)| *name == api) {
            shared.push((api, None));
        }
        self.rebuild(&shared);
    }

    /// Replaces the keys that came from the Redis of `api` (a set equal to the current one changes nothing).
    pub fn set_shared(&self, api: &'static str, keys: ByDigest) {
        let mut shared = self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let keys = Arc::new(keys);
        match shared.iter_mut().find(|(name, _)| *name == api) {
            Some((_, slot)) => *slot = Some(keys),
            None => shared.push((api, Some(keys))),
        }
        self.rebuild(&shared);
    }

    /// The current set with the file's keys as they are and the shared ones from `shared`.
    fn rebuild(&self, shared: &[SharedSource]) {
        let current = self.current();
        let by_digest = match shared {
            [(_, Some(one))] => Arc::clone(one),
            _ => Arc::new(
                shared
                    .iter()
                    .filter_map(|(_, keys)| keys.as_deref())
                    .flat_map(|keys| keys.iter().map(|(d, k)| (*d, Arc::clone(k))))
                    .collect(),
            ),
        };
        self.current.store(Arc::new(KeySet {
            by_secret: Arc::clone(&current.by_secret),
            by_digest,
            pending: shared
                .iter()
                .filter(|(_, keys)| keys.is_none())
                .map(|(api, _)| *api)
                .collect(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    /// A file under the system temp dir, removed on drop (no dependency needed for one test helper).
    mod tempfile_path {
        use std::path::{Path, PathBuf};
        pub struct TempPath(PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "gateway-keys-{}-{}.yaml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::write(&path, text).expect("temp file");
                Self(path)
            }
            pub fn path(&self) -> &Path {
                &self.0
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn loads_finds_and_refuses() {
        let file = write(
            "- { key: alice-key-1, name: alice, plan: free }\n- { key: bob-key-22, name: bob, enabled: false }\n",
        );
        let set = KeySet::load(file.path()).expect("valid");
        assert_eq!(set.len(), 2);
        assert_eq!(set.find("alice-key-1").map(|k| &*k.name), Some("alice"));
        assert!(set.find("bob-key-22").is_some_and(|k| !k.enabled));
        assert!(set.find("alice-key-2").is_none());
        for bad in [
            "- { key: short, name: a }\n",
            "- { key: long-enough, name: a }\n- { key: long-enough, name: b }\n",
            "- { key: long-enough-1, name: a }\n- { key: long-enough-2, name: a }\n",
            "- { key: long-enough, nam: a }\n",
            "not a list",
        ] {
            let err = KeySet::load(write(bad).path()).expect_err(bad);
            assert!(!err.to_string().contains("long-enough"), "a key leaked into: {err}");
        }
    }

    #[test]
    fn reload_is_atomic_and_keeps_the_old_set_on_error() {
        let file = write("- { key: alice-key-1, name: alice }\n");
        let store = KeyStore::open(Some(file.path())).expect("valid");
        std::fs::write(
            file.path(),
            "- { key: alice-key-1, name: alice }\n- { key: carol-key-3, name: carol }\n",
        )
        .expect("write");
        assert_eq!(store.reload().expect("reloaded"), 2);
        std::fs::write(file.path(), "[oops").expect("write");
        assert!(store.reload().is_err());
        assert!(store.current().find("carol-key-3").is_some(), "the old set stays");
    }
}
