//! Stores: JSON items kept by the gateway itself, by table and key — the DynamoDB of an API gateway.
//!
//! [`Store`] is the handle everything uses: store targets ([`target`], which turn a request into one store call and
//! its result into a response) and, through their context, function targets. It is cheap to clone and sits in front
//! of a [`StoreBackend`], the trait a database implements: the embedded one is SQLite ([`sqlite`]: one writer thread
//! that group-commits every queued write in one transaction, a few reader threads), and a PostgreSQL backend would
//! be a second implementation of the same five calls.
//!
//! Every item has a version, a number that changes on every write and is never reused within its table (not even
//! after a delete), so that it can be an HTTP entity tag: conditional writes ([`Condition`]) compare it inside the
//! write's transaction, never before it.
//!
//! Errors are [`StoreError`]s, which become [`GatewayError`]s of the kind HTTP needs: a failed condition is
//! `PRECONDITION_FAILED`, a store that cannot be reached `SERVICE_UNAVAILABLE`, never a hang (every call is
//! bounded) or a panic.

pub mod sqlite;
pub(crate) mod target;

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};
use crate::params::ParamIn;
use crate::spec::{StoreSpec, StoreSync};

pub use sqlite::{SqliteOptions, SqliteStore};

/// Items a list returns when the request does not say (`limit`).
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items one list returns.
pub const MAX_LIMIT: u32 = 1000;

/// One stored item: its key, its JSON document and its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The key, unique within its table.
    pub key: String,
    /// The document, as stored.
    pub value: Value,
    /// Changes on every write; never reused within the table. Sent as the strong entity tag `"<version>"`.
    pub version: u64,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items, in key order.
    pub items: Vec<Item>,
    /// Where the next page starts (an opaque text to pass back as [`ListQuery::cursor`]); `None` on the last page.
    pub next_cursor: Option<String>,
}

/// What a list asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    /// Items at most, from 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// Where to start: the [`Page::next_cursor`] of the page before; `None` for the first page.
    pub cursor: Option<String>,
    /// Equality filters, all of which an item must pass: a top-level field and the JSON scalar it must equal.
    pub filters: Vec<(String, Value)>,
}

/// When a write happens, checked against the item's current version in the write's own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Always (no precondition).
    Always,
    /// Only if the item exists with this version (`If-Match: "<version>"`).
    IfMatch(u64),
    /// Only if the item exists, whatever its version (`If-Match: *`).
    IfExists,
    /// Only if the item does not exist (`If-None-Match: *`: create, never replace).
    IfNoneMatchAny,
}

impl Condition {
    /// Whether an item whose current version is `current` (`None`: no item) may be written.
    pub fn holds(self, current: Option<u64>) -> bool {
        match self {
            Condition::Always => true,
            Condition::IfMatch(version) => current == Some(version),
            Condition::IfExists => current.is_some(),
            Condition::IfNoneMatchAny => current.is_none(),
        }
    }
}

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The write's [`Condition`] does not hold.
    #[error("the item's current version does not satisfy the write's condition")]
    PreconditionFailed,
    /// A merge of an item that does not exist.
    #[error("no item with this key")]
    NotFound,
    /// A list's cursor that no page of this store returned.
    #[error("the cursor is not one this store returned")]
    BadCursor,
    /// A list's limit out of range.
    #[error("limit {0} is out of range: from 1 to {MAX_LIMIT}")]
    BadLimit(u32),
    /// A table the store was not opened with.
    #[error("store `{store}` has no table `{table}`")]
    UnknownTable {
        /// The store.
        store: String,
        /// The table asked for.
        table: String,
    },
    /// The store cannot serve the call now: its database failed, is busy beyond the wait, or its threads stopped.
    #[error("store `{store}` is unavailable: {reason}")]
    Unavailable {
        /// The store.
        store: String,
        /// What happened (for the log, never the client).
        reason: String,
    },
    /// A stored value that is not JSON: the database was changed behind the gateway's back.
    #[error("store `{store}` holds an item that is not JSON: {reason}")]
    Corrupt {
        /// The store.
        store: String,
        /// What is wrong.
        reason: String,
    },
    /// The store could not be opened at start-up.
    #[error("store `{store}` cannot be opened at {path}: {reason}")]
    Open {
        /// The store.
        store: String,
        /// The database file.
        path: String,
        /// Why.
        reason: String,
    },
    /// `--store NAME=PATH` names a store the gateway does not have.
    #[error("unknown store `{name}` (this gateway has: {known})")]
    UnknownStore {
        /// The name given.
        name: String,
        /// The stores there are, comma-separated.
        known: String,
    },
    /// `--store` without the `NAME=PATH` shape.
    #[error("expected NAME=PATH, got `{0}`")]
    OverrideSyntax(String),
}

impl From<StoreError> for GatewayError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::PreconditionFailed => GatewayError::new(
                ErrorKind::PreconditionFailed,
                "the item's current version does not match the request's precondition",
            ),
            StoreError::NotFound => GatewayError::new(ErrorKind::NotFound, "no item with this key"),
            StoreError::BadCursor => GatewayError::bad_param_detail(
                ParamIn::Query,
                "cursor",
                "a `next_cursor` of an earlier page",
                "query parameter `cursor` is not a cursor this list returned",
            ),
            StoreError::BadLimit(limit) => GatewayError::bad_param_detail(
                ParamIn::Query,
                "limit",
                "an integer from 1 to 1000",
                format!("query parameter `limit` must be an integer from 1 to {MAX_LIMIT}, got {limit}"),
            ),
            StoreError::Unavailable { .. } => {
                tracing::warn!(error = %err, "store call failed");
                GatewayError::new(ErrorKind::ServiceUnavailable, "the store is unavailable")
            }
            StoreError::UnknownTable { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Open { .. }
            | StoreError::UnknownStore { .. }
            | StoreError::OverrideSyntax(_) => {
                tracing::error!(error = %err, "store call failed");
                GatewayError::internal()
            }
        }
    }
}

/// A database of JSON items by table and key: what [`Store`] needs from one.
///
/// Implementations must make each write atomic, check its [`Condition`] inside the write's transaction, commit it
/// durably before returning, give every written item a version never used before in its table, and bound every call
/// in time (an unreachable database is [`StoreError::Unavailable`], not a wait).
#[async_trait::async_trait]
pub trait StoreBackend: Send + Sync + fmt::Debug {
    /// The item with `key`, if any.
    async fn get(&self, table: &str, key: &str) -> Result<Option<Item>, StoreError>;
    /// Stores `value` under `key` if `condition` holds; returns the item and whether it was created.
    async fn put(&self, table: &str, key: &str, value: Value, condition: Condition)
    -> Result<(Item, bool), StoreError>;
    /// Applies `patch` (RFC 7396) to the item with `key` if it exists and `condition` holds.
    async fn merge(&self, table: &str, key: &str, patch: Value, condition: Condition) -> Result<Item, StoreError>;
    /// Removes the item with `key` if `condition` holds; returns whether there was one.
    async fn delete(&self, table: &str, key: &str, condition: Condition) -> Result<bool, StoreError>;
    /// A page of the table's items in key order, passing every filter of `query`.
    async fn list(&self, table: &str, query: &ListQuery) -> Result<Page, StoreError>;
}

/// A store: cheap to clone, shared by every worker (and by function targets, through their context).
#[derive(Clone)]
pub struct Store {
    name: Arc<str>,
    backend: Arc<dyn StoreBackend>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish()
    }
}

impl Store {
    /// A store named `name` in front of `backend`.
    pub fn new(name: &str, backend: Arc<dyn StoreBackend>) -> Self {
        Self {
            name: Arc::from(name),
            backend,
        }
    }

    /// Opens the store `spec` describes, at `path` instead of its `sqlite` file when given: creates the file and its
    /// directory if missing, and every table and index the spec names.
    pub fn open(spec: &StoreSpec, path: Option<&std::path::Path>) -> Result<Self, StoreError> {
        Self::open_with(spec, path, SqliteOptions::default())
    }

    /// [`Store::open`] with `options` (their `synchronous` is the spec's).
    pub fn open_with(
        spec: &StoreSpec,
        path: Option<&std::path::Path>,
        options: SqliteOptions,
    ) -> Result<Self, StoreError> {
        let path = path.unwrap_or_else(|| std::path::Path::new(spec.sqlite));
        let tables: Vec<(&str, &[&str])> = spec.tables.iter().map(|t| (t.name, t.indexes)).collect();
        let options = SqliteOptions {
            synchronous: spec.synchronous,
            ..options
        };
        let backend = SqliteStore::open(spec.name, path, &tables, &options)?;
        tracing::info!(
            store = spec.name,
            path = %path.display(),
            synchronous = match spec.synchronous {
                StoreSync::Full => "full",
                StoreSync::Normal => "normal",
            },
            tables = spec.tables.len(),
            max_batch = options.max_batch,
            "store opened (SQLite, WAL)"
        );
        Ok(Self::new(spec.name, Arc::new(backend)))
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The item with `key` in `table`, if any.
    pub async fn get(&self, table: &str, key: &str) -> Result<Option<Item>, StoreError> {
        self.backend.get(table, key).await
    }

    /// Stores `value` under `key` if `condition` holds (an upsert with [`Condition::Always`]); returns the stored
    /// item and whether it was created.
    pub async fn put(
        &self,
        table: &str,
        key: &str,
        value: Value,
        condition: Condition,
    ) -> Result<(Item, bool), StoreError> {
        self.backend.put(table, key, value, condition).await
    }

    /// Applies `patch` as a JSON merge patch (RFC 7396) to the item with `key`, if it exists
    /// ([`StoreError::NotFound`] otherwise) and `condition` holds; returns the patched item.
    pub async fn merge(&self, table: &str, key: &str, patch: Value, condition: Condition) -> Result<Item, StoreError> {
        self.backend.merge(table, key, patch, condition).await
    }

    /// Removes the item with `key` if `condition` holds; returns whether there was one.
    pub async fn delete(&self, table: &str, key: &str, condition: Condition) -> Result<bool, StoreError> {
        self.backend.delete(table, key, condition).await
    }

    /// Stores `value` as a new item under a new key (a UUIDv7: keys made later sort later), stored as it is.
    pub async fn create(&self, table: &str, value: Value) -> Result<Item, StoreError> {
        self.create_with_id(table, value, None).await
    }

    /// [`Store::create`], writing the new key into the document under `id_field` first when the document is a JSON
    /// object, replacing any value it had there (what a store target's `create` does).
    pub async fn create_with_id(
        &self,
        table: &str,
        mut value: Value,
        id_field: Option<&str>,
    ) -> Result<Item, StoreError> {
        let key = uuid::Uuid::now_v7().to_string();
        if let (Some(field), Value::Object(document)) = (id_field, &mut value) {
            // First, where a reader looks for it (a field of that name the client sent is replaced in place).
            match document.get_mut(field) {
                Some(existing) => *existing = Value::String(key.clone()),
                None => {
                    document.shift_insert(0, field.to_owned(), Value::String(key.clone()));
                }
            }
        }
        let (item, _) = self.put(table, &key, value, Condition::IfNoneMatchAny).await?;
        Ok(item)
    }

    /// A page of `table`'s items in key order.
    pub async fn list(&self, table: &str, query: &ListQuery) -> Result<Page, StoreError> {
        if !(1..=MAX_LIMIT).contains(&query.limit) {
            return Err(StoreError::BadLimit(query.limit));
        }
        self.backend.list(table, query).await
    }
}

/// `--store NAME=PATH`: the database file of store `NAME`, instead of the spec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOverride {
    /// The store's name in the spec (`API/NAME` in a gateway of several APIs addresses one API's).
    pub name: String,
    /// The file to use instead.
    pub path: std::path::PathBuf,
}

impl std::str::FromStr for StoreOverride {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok(Self {
                name: name.to_owned(),
                path: path.into(),
            }),
            _ => Err(StoreError::OverrideSyntax(s.to_owned())),
        }
    }
}

/// Opens every store of `specs` (in their order), each at its `--store` path when `overrides` names it, committing
/// at most `max_batch` writes at once when given (`--store-max-batch`); an override naming no store is refused.
pub fn open_all(
    specs: &[StoreSpec],
    overrides: &[StoreOverride],
    max_batch: Option<usize>,
) -> Result<Vec<Store>, StoreError> {
    if let Some(unknown) = overrides.iter().find(|o| !specs.iter().any(|s| s.name == o.name)) {
        let known: Vec<&str> = specs.iter().map(|s| s.name).collect();
        return Err(StoreError::UnknownStore {
            name: unknown.name.clone(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    }
    specs
        .iter()
        .map(|spec| {
            // The last override of a name wins, like any repeated command-line option.
            let path = overrides
                .iter()
                .rev()
                .find(|o| o.name == spec.name)
                .map(|o| o.path.as_path());
            let defaults = SqliteOptions::default();
            let options = SqliteOptions {
                max_batch: max_batch.unwrap_or(defaults.max_batch),
                ..defaults
            };
            Store::open_with(spec, path, options)
        })
        .collect()
}

/// Applies the JSON merge patch `patch` to `target` (RFC 7396 §2): members of an object patch replace the target's,
/// `null` removes one, and any other patch replaces the target whole.
pub fn merge_patch(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(document) = target {
        for (name, value) in patch {
            if value.is_null() {
                document.remove(&name);
            } else {
                merge_patch(document.entry(name).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        // RFC 7396, Appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":"b","b":"c"}), json!({"a":null}), json!({"b":"c"})),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (json!({}), json!({"a":{"bb":{"ccc":null}}}), json!({"a":{"bb":{}}})),
        ];
        for (mut target, patch, expected) in cases {
            let shown = format!("{target} + {patch}");
            merge_patch(&mut target, patch);
            assert_eq!(target, expected, "{shown}");
        }
    }

    #[test]
    fn conditions_hold_as_http_preconditions_do() {
        assert!(Condition::Always.holds(None) && Condition::Always.holds(Some(3)));
        assert!(Condition::IfMatch(3).holds(Some(3)));
        assert!(!Condition::IfMatch(3).holds(Some(4)) && !Condition::IfMatch(3).holds(None));
        assert!(Condition::IfExists.holds(Some(1)) && !Condition::IfExists.holds(None));
        assert!(Condition::IfNoneMatchAny.holds(None) && !Condition::IfNoneMatchAny.holds(Some(1)));
    }

    #[test]
    fn overrides_parse_as_name_and_path() {
        let o: StoreOverride = "main=/tmp/x.db".parse().expect("valid");
        assert_eq!((o.name.as_str(), o.path.to_str()), ("main", Some("/tmp/x.db")));
        assert!("main".parse::<StoreOverride>().is_err());
        assert!("=x.db".parse::<StoreOverride>().is_err());
        assert!("main=".parse::<StoreOverride>().is_err());
    }
}
