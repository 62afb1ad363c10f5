//! Stores: JSON items kept by the gateway itself, by table and key — the DynamoDB of an API gateway.
//!
//! [`Store`] is the handle everything uses: store targets ([`target`], which turn a request into one store call and
//! its result into a response) and, through their context, function targets. It is cheap to clone and sits in front
//! of a [`StoreBackend`], the trait a database implements: the embedded one is SQLite ([`sqlite`]: one writer thread
//! that group-commits every queued write in one transaction, a few reader threads), and the shared one PostgreSQL
//! ([`postgres`]: a pool of connections on a runtime of its own, for replicas of a gateway on one database).
//!
//! Every item has a version, a number that changes on every write and is never reused within its table (not even
//! after a delete), so that it can be an HTTP entity tag: conditional writes ([`Condition`]) compare it inside the
//! write's transaction, never before it.
//!
//! Errors are [`StoreError`]s, which become [`GatewayError`]s of the kind HTTP needs: a failed condition is
//! `PRECONDITION_FAILED`, a store that cannot be reached `SERVICE_UNAVAILABLE`, never a hang (every call is
//! bounded) or a panic.

pub mod postgres;
pub mod sqlite;
pub(crate) mod target;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

use crate::error::{ErrorKind, GatewayError};
use crate::params::ParamIn;
use crate::spec::{StoreBackendSpec, StoreSpec, StoreSync};

pub use postgres::{PostgresOptions, PostgresStore, PostgresUrl};
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
    /// A key the backend cannot store (PostgreSQL's text holds no NUL); what is wrong, for the client.
    #[error("{0}")]
    KeyNotStorable(&'static str),
    /// A document the backend cannot store as it is; what is wrong, for the client.
    #[error("{0}")]
    ValueNotStorable(&'static str),
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
        /// The database file, or the database's hosts and name (never its whole URL, which may hold a password).
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
    /// `--store` without the `NAME=PATH` or `NAME=postgres://…` shape (the value is not repeated: it may be a URL
    /// with a password).
    #[error("expected NAME=PATH (a SQLite file) or NAME=postgres://HOST/DATABASE")]
    OverrideSyntax,
    /// `--store NAME=postgres://…` with a URL that does not parse.
    #[error("store `{name}`: not a PostgreSQL URL: {reason}")]
    BadUrl {
        /// The store's name.
        name: String,
        /// What is wrong (the URL itself is not repeated).
        reason: String,
    },
}

impl From<StoreError> for GatewayError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::PreconditionFailed => GatewayError::new(
                ErrorKind::PreconditionFailed,
                "the item's current version does not match the request's precondition",
            ),
            StoreError::NotFound => GatewayError::new(ErrorKind::NotFound, "no item with this key"),
            StoreError::KeyNotStorable(why) => GatewayError::new(ErrorKind::BadRequestParameters, why),
            StoreError::ValueNotStorable(why) => GatewayError::new(ErrorKind::BadRequestBody, why),
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
            | StoreError::OverrideSyntax
            | StoreError::BadUrl { .. } => {
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

    /// Opens the store `spec` describes, or at `at` instead when given (`--store`): for SQLite, creates the file and
    /// its directory if missing, and every table and index the spec names; for PostgreSQL, starts its pool and creates
    /// them once the database is reachable (see [`PostgresStore::open`]).
    pub fn open(spec: &StoreSpec, at: Option<&StoreLocation>) -> Result<Self, StoreError> {
        Self::open_with(spec, at, &StoreOptions::default())
    }

    /// [`Store::open`] with `options` (the SQLite ones' `synchronous` is the spec's).
    pub fn open_with(spec: &StoreSpec, at: Option<&StoreLocation>, options: &StoreOptions) -> Result<Self, StoreError> {
        let tables: Vec<(&str, &[&str])> = spec.tables.iter().map(|t| (t.name, t.indexes)).collect();
        let location = match at {
            Some(at) => at.clone(),
            None => StoreLocation::of(spec)?,
        };
        let backend: Arc<dyn StoreBackend> = match &location {
            StoreLocation::Sqlite(path) => {
                // A PostgreSQL store pointed at a file by `--store` gets SQLite's default.
                let synchronous = match spec.backend {
                    StoreBackendSpec::Sqlite { synchronous, .. } => synchronous,
                    StoreBackendSpec::Postgres { .. } => StoreSync::Full,
                };
                let options = SqliteOptions {
                    synchronous,
                    ..options.sqlite.clone()
                };
                let backend = SqliteStore::open(spec.name, path, &tables, &options)?;
                tracing::info!(
                    store = spec.name,
                    path = %path.display(),
                    synchronous = match synchronous {
                        StoreSync::Full => "full",
                        StoreSync::Normal => "normal",
                    },
                    tables = spec.tables.len(),
                    max_batch = options.max_batch,
                    "store opened (SQLite, WAL)"
                );
                Arc::new(backend)
            }
            StoreLocation::Postgres(url) => {
                let backend = PostgresStore::open(spec.name, url, &tables, &options.postgres)?;
                tracing::info!(
                    store = spec.name,
                    database = %url,
                    tables = spec.tables.len(),
                    pool_size = options.postgres.pool_size,
                    "store opened (PostgreSQL, no TLS)"
                );
                Arc::new(backend)
            }
        };
        Ok(Self::new(spec.name, backend))
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

/// Where a store keeps its items: a SQLite file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite database file (relative to the working directory).
    Sqlite(PathBuf),
    /// The PostgreSQL database.
    Postgres(PostgresUrl),
}

impl StoreLocation {
    /// The location `spec` gives its store.
    pub fn of(spec: &StoreSpec) -> Result<Self, StoreError> {
        match spec.backend {
            StoreBackendSpec::Sqlite { path, .. } => Ok(Self::Sqlite(PathBuf::from(path))),
            StoreBackendSpec::Postgres { url } => {
                PostgresUrl::parse(url)
                    .map(Self::Postgres)
                    .map_err(|reason| StoreError::Open {
                        store: spec.name.to_owned(),
                        path: "its `postgres` URL".to_owned(),
                        reason,
                    })
            }
        }
    }

    /// A `--store` value: a `postgres://` or `postgresql://` URL, or else a file path (as before PostgreSQL).
    fn parse(name: &str, value: &str) -> Result<Self, StoreError> {
        if PostgresUrl::is_url(value) {
            return PostgresUrl::parse(value)
                .map(Self::Postgres)
                .map_err(|reason| StoreError::BadUrl {
                    name: name.to_owned(),
                    reason,
                });
        }
        Ok(Self::Sqlite(Path::new(value).to_owned()))
    }
}

/// How the stores run, whichever their backend.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// For SQLite stores.
    pub sqlite: SqliteOptions,
    /// For PostgreSQL stores.
    pub postgres: PostgresOptions,
}

/// `--store NAME=PATH` or `--store NAME=postgres://…`: where store `NAME` keeps its items, instead of the spec's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOverride {
    /// The store's name in the spec (`API/NAME` in a gateway of several APIs addresses one API's).
    pub name: String,
    /// The file or database to use instead (a path is SQLite, whatever backend the spec chose).
    pub location: StoreLocation,
}

impl std::str::FromStr for StoreOverride {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, value)) if !name.is_empty() && !value.is_empty() && !name.contains("://") => Ok(Self {
                name: name.to_owned(),
                location: StoreLocation::parse(name, value)?,
            }),
            _ => Err(StoreError::OverrideSyntax),
        }
    }
}

/// Opens every store of `specs` (in their order), each at its `--store` location when `overrides` names it,
/// committing at most `max_batch` writes at once when given (`--store-max-batch`, SQLite's); an override naming no
/// store is refused.
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
    let mut options = StoreOptions::default();
    options.sqlite.max_batch = max_batch.unwrap_or(options.sqlite.max_batch);
    specs
        .iter()
        .map(|spec| {
            // The last override of a name wins, like any repeated command-line option.
            let at = overrides
                .iter()
                .rev()
                .find(|o| o.name == spec.name)
                .map(|o| &o.location);
            Store::open_with(spec, at, &options)
        })
        .collect()
}

/// A cursor: the last key of a page, base64url without padding (opaque to clients, not a secret). Every backend
/// makes the same, so a cursor means "after this key" whichever database answers.
fn encode_cursor(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key.as_bytes())
}

fn decode_cursor(cursor: &str) -> Result<String, StoreError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(StoreError::BadCursor)
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a table name.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Table names SQLite or the gateway keep for themselves (in every backend, so that a spec runs on either).
fn is_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("sqlite_") || lower.starts_with("_gateway")
}

/// A field a filter may name: letters, digits, `_`, `-` and `.` (it is quoted inside the JSON path).
fn is_field(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
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
    fn overrides_parse_as_name_and_path_or_url() {
        let o: StoreOverride = "main=/tmp/x.db".parse().expect("valid");
        assert_eq!(o.name, "main");
        assert_eq!(o.location, StoreLocation::Sqlite("/tmp/x.db".into()));
        let o: StoreOverride = "main=postgres://gw:pw@db:5433/pets".parse().expect("valid");
        let StoreLocation::Postgres(url) = &o.location else {
            panic!("a URL is PostgreSQL: {o:?}");
        };
        assert_eq!(url.to_string(), "postgres://db:5433/pets");
        assert!("main".parse::<StoreOverride>().is_err());
        assert!("=x.db".parse::<StoreOverride>().is_err());
        assert!("main=".parse::<StoreOverride>().is_err());
        // Neither a bad URL nor a missing name repeats what was given, which may hold a password.
        for bad in ["main=postgres://gw:pw@h:port/db", "postgres://gw:pw@h/db?x=1"] {
            let err = bad.parse::<StoreOverride>().expect_err("refused").to_string();
            assert!(!err.contains("pw"), "{err}");
        }
    }
}
