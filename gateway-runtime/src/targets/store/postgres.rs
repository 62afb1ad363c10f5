//! The shared store: PostgreSQL, for a gateway that runs as several replicas in front of one database.
//!
//! The semantics are the SQLite backend's ([`super::sqlite`]), kept by the database instead of one writer thread:
//!
//! - **Items.** Each table is `("key" text COLLATE "C" PRIMARY KEY, "value" json, "version" bigint)`. The key's
//!   collation is byte order, as SQLite's, so lists page in the same order whatever the database's locale. The value
//!   is `json`, which keeps the document as it was written (its members in their order), not `jsonb`, which would
//!   reorder them.
//! - **Versions** come from a sequence per table (`nextval` in the write's statement, owned by the table's `version`
//!   column), so a version is never used twice in a table, not even after a delete, and not by two replicas.
//! - **Conditional writes** lock the item first (`SELECT … FOR UPDATE`) and check the [`Condition`] in the same
//!   transaction; an item that does not exist yet is inserted with `ON CONFLICT DO NOTHING`, so two replicas
//!   creating one key at once cannot both succeed: the loser looks again (and for `If-None-Match: *`, fails).
//! - **Filters** compare `("value" -> 'field')::jsonb` with the filter's JSON value (so `3` matches `3.0`, not `"3"`),
//!   with an expression index per filtered field, on that and the key, so a filtered page is one index range.
//! - **Durability** is PostgreSQL's: a write is answered after its `COMMIT` returned, which with the server's
//!   default `synchronous_commit = on` means flushed to its WAL.
//!
//! No call runs on a worker's event loop: the store has a runtime of its own (one thread) that holds the connection
//! pool and runs every call, so a worker only waits for an answer. Every call is bounded: by a connect timeout, by
//! the `statement_timeout` each pooled connection is given, and by an overall limit, after which the caller gets
//! [`StoreError::Unavailable`] and the connection, in whatever state the call left it, is closed rather than pooled.
//!
//! The schema (tables, sequences, indexes) is created once reachable, under a transaction-level advisory lock, with
//! `IF NOT EXISTS`, so replicas starting together neither fail nor duplicate anything. A database that cannot be
//! reached at start-up does not stop the gateway: [`PostgresStore::open`] waits for it briefly, then lets the store
//! answer `503` and keeps trying in the background until the schema is created.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, NoTls};

use super::{
    Condition, Item, ListQuery, Page, StoreBackend, StoreError, decode_cursor, encode_cursor, is_field, is_identifier,
    is_reserved, merge_patch,
};

/// The longest name PostgreSQL keeps whole (`NAMEDATALEN - 1`); it truncates longer ones silently.
const MAX_NAME: usize = 63;
/// The advisory lock the schema is created under: one creator at a time per database ("gateway!" in ASCII).
const SCHEMA_LOCK: i64 = 0x6761_7465_7761_7921;
/// How long creating the schema may take (an index on a large table that existed before its filter did).
const SCHEMA_TIMEOUT: Duration = Duration::from_secs(300);
/// The first and the longest wait between two attempts to reach a database that could not be reached.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a write that lost an insert race looks again before giving up (a key deleted and recreated between
/// each look).
const WRITE_ATTEMPTS: usize = 3;

/// A PostgreSQL connection URL: `postgres://user:password@host:port/database?param=value`.
///
/// It may hold a password, so it is never shown whole: `Display` and `Debug` give its hosts, ports and database only.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    url: String,
    shown: String,
}

impl PostgresUrl {
    /// Whether `text` is meant as a PostgreSQL URL (by its scheme), rather than a file path.
    pub fn is_url(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }

    /// Checks `url` as tokio-postgres reads it. The error never repeats the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        if !Self::is_url(url) {
            return Err("a PostgreSQL URL starts with `postgres://` or `postgresql://`".to_owned());
        }
        let config = Config::from_str(url).map_err(|e| describe(&e))?;
        if config.get_hosts().is_empty() {
            return Err("the URL names no host (`postgres://HOST/DATABASE`)".to_owned());
        }
        if config.get_ssl_mode() == SslMode::Require {
            return Err("`sslmode=require`: TLS to PostgreSQL is not supported yet".to_owned());
        }
        Ok(Self {
            shown: shown(&config),
            url: url.to_owned(),
        })
    }

    /// The connection settings.
    fn config(&self) -> Result<Config, String> {
        Config::from_str(&self.url).map_err(|e| describe(&e))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.shown)
    }
}

/// `postgres://host:port[,host:port…]/database`: what logs and errors say of a URL (no user, password or parameters).
fn shown(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(dir) => dir.display().to_string(),
            };
            // One port for every host, or one each (tokio-postgres's rule); 5432 by default.
            let port = ports.get(i).or_else(|| ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let database = config.get_dbname().or_else(|| config.get_user()).unwrap_or("");
    format!("postgres://{}/{database}", hosts.join(","))
}

/// How the PostgreSQL store runs.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections in the pool, at most (each call holds one for its duration).
    pub pool_size: usize,
    /// The longest a new connection may take (the URL's `connect_timeout` wins when it has one).
    pub connect_timeout: Duration,
    /// The server-side limit of one statement, lock waits included (`statement_timeout` of every connection).
    pub statement_timeout: Duration,
    /// The longest a call may take, waiting for a connection included, before it fails as unavailable.
    pub timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(4),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The SQL of one table, written once at start-up.
#[derive(Debug)]
struct Table {
    /// The table's name.
    name: Arc<str>,
    /// `value, version` of one key.
    get: String,
    /// `version` of one key, locked for the transaction.
    lock: String,
    /// `value, version` of one key, locked for the transaction.
    lock_value: String,
    /// Insert one key with the next version, unless it exists; returns the version.
    insert: String,
    /// Replace one key's value, with the next version; returns the version.
    update: String,
    /// Remove one key.
    delete: String,
}

impl Table {
    fn new(name: &str) -> Self {
        let t = quoted(name);
        let next = format!("nextval({})", literal(&quoted(&sequence(name))));
        Self {
            name: Arc::from(name),
            get: format!(r#"SELECT "value"::text, "version" FROM {t} WHERE "key" = $1"#),
            lock: format!(r#"SELECT "version" FROM {t} WHERE "key" = $1 FOR UPDATE"#),
            lock_value: format!(r#"SELECT "value"::text, "version" FROM {t} WHERE "key" = $1 FOR UPDATE"#),
            insert: format!(
                r#"INSERT INTO {t} ("key", "value", "version") VALUES ($1, $2::text::json, {next})
                   ON CONFLICT ("key") DO NOTHING RETURNING "version""#
            ),
            update: format!(
                r#"UPDATE {t} SET "value" = $2::text::json, "version" = {next} WHERE "key" = $1 RETURNING "version""#
            ),
            delete: format!(r#"DELETE FROM {t} WHERE "key" = $1"#),
        }
    }
}

/// What the store's calls share, on the store's runtime.
struct Shared {
    name: Arc<str>,
    /// Where, for logs.
    shown: String,
    pool: Pool,
    tables: HashMap<String, Arc<Table>>,
    /// The statements that create every table, sequence and index (in one transaction, under the advisory lock).
    schema: String,
    /// Whether the schema exists (created, or found, once): calls are refused as unavailable until it does.
    ready: AtomicBool,
    /// Wakes the task that keeps trying to create the schema (a call came while it waits).
    retry: Notify,
    /// Why the last attempt to create the schema failed.
    last_error: Mutex<String>,
    /// The longest one call may take.
    timeout: Duration,
}

/// The PostgreSQL backend of a [`super::Store`].
pub struct PostgresStore {
    shared: Arc<Shared>,
    /// Runs every call and holds the connections; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("name", &self.shared.name)
            .field("database", &self.shared.shown)
            .field("tables", &self.shared.tables.len())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The store `name` in the database at `url`, with `tables` (each with the fields it indexes): checks the
    /// settings, starts the store's runtime and its pool, and tries to create the schema, waiting up to
    /// [`PostgresOptions::timeout`] for the database. One that cannot be reached by then is not an error: the store
    /// answers [`StoreError::Unavailable`] until it is, and creates the schema then.
    ///
    /// A URL without a password takes `PGPASSWORD` from the environment, as libpq does.
    pub fn open(
        name: &str,
        url: &PostgresUrl,
        tables: &[(&str, &[&str])],
        options: &PostgresOptions,
    ) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError::Open {
            store: name.to_owned(),
            path: url.to_string(),
            reason,
        };
        for (table, fields) in tables {
            if !is_identifier(table) || is_reserved(table) || table.len() > MAX_NAME {
                return Err(fail(format!(
                    "`{table}` cannot name a table (letters, digits and `_`, not starting with a digit, `sqlite_` or \
                     `_gateway`, at most {MAX_NAME} bytes)"
                )));
            }
            if let Some(field) = fields.iter().find(|f| !is_field(f)) {
                return Err(fail(format!(
                    "`{field}` cannot name a filtered field of table `{table}`"
                )));
            }
        }
        let mut config = url.config().map_err(fail)?;
        if config.get_password().is_none()
            && let Some(password) = std::env::var_os("PGPASSWORD")
        {
            config.password(password.as_encoded_bytes());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_tcp_user_timeout().is_none() {
            // Data the server does not acknowledge within this ends the connection (Linux), rather than waiting for
            // the kernel's retransmissions for many minutes.
            config.tcp_user_timeout(options.timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(format!("gateway-store-{name}"));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection is checked by its state only: a broken one fails its call, and is then dropped.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Every connection is bounded on the server too; and a transaction a vanished gateway left open is ended.
        let session: Arc<str> = Arc::from(format!(
            "SET statement_timeout = {}; SET idle_in_transaction_session_timeout = {}",
            options.statement_timeout.as_millis().max(1),
            (options.timeout * 2).as_millis().max(1),
        ));
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .post_create(Hook::async_fn(move |client, _| {
                let session = Arc::clone(&session);
                Box::pin(async move { client.batch_execute(&session).await.map_err(HookError::Backend) })
            }))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("store-pg-{name}"))
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the store's runtime: {e}")))?;
        let shared = Arc::new(Shared {
            name: Arc::from(name),
            shown: url.to_string(),
            pool,
            tables: tables
                .iter()
                .map(|(table, _)| ((*table).to_owned(), Arc::new(Table::new(table))))
                .collect(),
            schema: schema(tables),
            ready: AtomicBool::new(false),
            retry: Notify::new(),
            last_error: Mutex::new("not tried yet".to_owned()),
            timeout: options.timeout,
        });
        let (first, first_result) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(create_schema(Arc::clone(&shared), first));
        match first_result.recv_timeout(options.timeout) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => tracing::warn!(
                store = name,
                database = %url,
                error = %reason,
                "the store's database cannot be reached: its calls answer 503 until it can (trying again in the background)"
            ),
            Err(_) => tracing::warn!(
                store = name,
                database = %url,
                "the store's database did not answer within {:?}: its calls answer 503 until it does (still trying)",
                options.timeout
            ),
        }
        Ok(Self {
            shared,
            runtime: Some(runtime),
        })
    }

    fn table(&self, table: &str) -> Result<Arc<Table>, StoreError> {
        self.shared
            .tables
            .get(table)
            .cloned()
            .ok_or_else(|| StoreError::UnknownTable {
                store: self.shared.name.to_string(),
                table: table.to_owned(),
            })
    }

    /// Runs `call` on the store's runtime, bounded by the timeout; at once unavailable while the schema is not there.
    async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = &self.shared;
        if !shared.ready.load(Ordering::Acquire) {
            shared.retry.notify_one();
            let reason = shared.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone();
            return Err(unavailable(
                &shared.name,
                format!("its database cannot be reached: {reason}"),
            ));
        }
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| unavailable(&shared.name, "closing"))?;
        let (store, timeout) = (Arc::clone(&shared.name), shared.timeout);
        // A caller that goes away does not cancel the call: a write runs to its commit or its rollback.
        let task = runtime.spawn(async move {
            tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| Err(unavailable(&store, format!("no answer within {timeout:?}"))))
        });
        task.await
            .unwrap_or_else(|_| Err(unavailable(&shared.name, "the call was dropped unanswered")))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.shared.pool.close();
        // Without waiting (a store may be dropped on a runtime's thread): calls still running end with their
        // connections, and PostgreSQL rolls back whatever they had not committed.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A pooled connection for one call. One that the call did not [`Lease::release`] — the call was cut short by its
/// timeout, mid-statement or mid-transaction — is closed instead of going back to the pool.
struct Lease(Option<Object>);

impl Lease {
    async fn take(shared: &Shared) -> Result<Self, StoreError> {
        match shared.pool.get().await {
            Ok(client) => Ok(Self(Some(client))),
            Err(e) => Err(unavailable(&shared.name, describe(&e))),
        }
    }

    fn client(&mut self) -> Result<&mut Object, StoreError> {
        self.0
            .as_mut()
            .ok_or_else(|| unavailable("", "the connection was released"))
    }

    /// Back to the pool: the call ended (an open transaction it dropped is rolled back before the next one starts).
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

/// Runs `call` with a connection of the pool, which goes back to the pool when the call ends, whatever it returned.
macro_rules! with_connection {
    ($shared:expr, |$client:ident| $body:expr) => {{
        let mut lease = Lease::take(&$shared).await?;
        let result = async {
            let $client = lease.client()?;
            $body
        }
        .await;
        lease.release();
        result
    }};
}

#[async_trait::async_trait]
impl StoreBackend for PostgresStore {
    async fn get(&self, table: &str, key: &str) -> Result<Option<Item>, StoreError> {
        let table = self.table(table)?;
        check_key(key)?;
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        self.run(async move {
            let store = &shared.name;
            let row = with_connection!(shared, |client| {
                let statement = client.prepare_cached(&table.get).await.map_err(|e| db(store, &e))?;
                client.query_opt(&statement, &[&key]).await.map_err(|e| db(store, &e))
            })?;
            row.map(|row| {
                let (text, version): (String, i64) = (
                    row.try_get(0).map_err(|e| db(store, &e))?,
                    row.try_get(1).map_err(|e| db(store, &e))?,
                );
                Ok(Item {
                    value: parse(store, &text)?,
                    key,
                    version: as_version(version),
                })
            })
            .transpose()
        })
        .await
    }

    async fn put(
        &self,
        table: &str,
        key: &str,
        value: Value,
        condition: Condition,
    ) -> Result<(Item, bool), StoreError> {
        let table = self.table(table)?;
        check_key(key)?;
        // Serialized here, on the caller's worker, so the store's runtime only waits for the database.
        let text = value.to_string();
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        self.run(async move {
            let store = &shared.name;
            let (version, created) = with_connection!(shared, |client| {
                let fail = |e: tokio_postgres::Error| write_error(store, &e);
                let lock = client.prepare_cached(&table.lock).await.map_err(fail)?;
                let insert = client.prepare_cached(&table.insert).await.map_err(fail)?;
                let update = client.prepare_cached(&table.update).await.map_err(fail)?;
                let transaction = client.transaction().await.map_err(fail)?;
                for _ in 0..WRITE_ATTEMPTS {
                    let current = transaction.query_opt(&lock, &[&key]).await.map_err(fail)?;
                    let current = current
                        .map(|row| row.try_get::<_, i64>(0).map(as_version))
                        .transpose()
                        .map_err(fail)?;
                    if !condition.holds(current) {
                        return Err(StoreError::PreconditionFailed);
                    }
                    if current.is_some() {
                        let row = transaction.query_one(&update, &[&key, &text]).await.map_err(fail)?;
                        let version = row.try_get::<_, i64>(0).map_err(fail)?;
                        transaction.commit().await.map_err(fail)?;
                        return Ok((as_version(version), false));
                    }
                    if let Some(row) = transaction.query_opt(&insert, &[&key, &text]).await.map_err(fail)? {
                        let version = row.try_get::<_, i64>(0).map_err(fail)?;
                        transaction.commit().await.map_err(fail)?;
                        return Ok((as_version(version), true));
                    }
                    // Another transaction inserted the key since it was looked at: it exists now.
                    if condition == Condition::IfNoneMatchAny {
                        return Err(StoreError::PreconditionFailed);
                    }
                }
                Err(unavailable(
                    store,
                    "the item kept being created and removed under the write",
                ))
            })?;
            Ok((Item { key, value, version }, created))
        })
        .await
    }

    async fn merge(&self, table: &str, key: &str, patch: Value, condition: Condition) -> Result<Item, StoreError> {
        let table = self.table(table)?;
        check_key(key)?;
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        self.run(async move {
            let store = &shared.name;
            let (value, version) = with_connection!(shared, |client| {
                let fail = |e: tokio_postgres::Error| write_error(store, &e);
                let lock = client.prepare_cached(&table.lock_value).await.map_err(fail)?;
                let update = client.prepare_cached(&table.update).await.map_err(fail)?;
                let transaction = client.transaction().await.map_err(fail)?;
                let current = transaction.query_opt(&lock, &[&key]).await.map_err(fail)?;
                let current = current
                    .map(|row| {
                        Ok::<_, tokio_postgres::Error>((
                            row.try_get::<_, String>(0)?,
                            as_version(row.try_get::<_, i64>(1)?),
                        ))
                    })
                    .transpose()
                    .map_err(fail)?;
                if !condition.holds(current.as_ref().map(|(_, version)| *version)) {
                    return Err(StoreError::PreconditionFailed);
                }
                let Some((text, _)) = current else {
                    return Err(StoreError::NotFound);
                };
                let mut value = parse(store, &text)?;
                merge_patch(&mut value, patch);
                let row = transaction
                    .query_one(&update, &[&key, &value.to_string()])
                    .await
                    .map_err(fail)?;
                let version = row.try_get::<_, i64>(0).map_err(fail)?;
                transaction.commit().await.map_err(fail)?;
                Ok((value, as_version(version)))
            })?;
            Ok(Item { key, value, version })
        })
        .await
    }

    async fn delete(&self, table: &str, key: &str, condition: Condition) -> Result<bool, StoreError> {
        let table = self.table(table)?;
        check_key(key)?;
        let shared = Arc::clone(&self.shared);
        let key = key.to_owned();
        self.run(async move {
            let store = &shared.name;
            with_connection!(shared, |client| {
                let fail = |e: tokio_postgres::Error| db(store, &e);
                let lock = client.prepare_cached(&table.lock).await.map_err(fail)?;
                let delete = client.prepare_cached(&table.delete).await.map_err(fail)?;
                let transaction = client.transaction().await.map_err(fail)?;
                let current = transaction.query_opt(&lock, &[&key]).await.map_err(fail)?;
                let current = current
                    .map(|row| row.try_get::<_, i64>(0).map(as_version))
                    .transpose()
                    .map_err(fail)?;
                if !condition.holds(current) {
                    return Err(StoreError::PreconditionFailed);
                }
                if current.is_none() {
                    return Ok(false);
                }
                transaction.execute(&delete, &[&key]).await.map_err(fail)?;
                transaction.commit().await.map_err(fail)?;
                Ok(true)
            })
        })
        .await
    }

    async fn list(&self, table: &str, query: &ListQuery) -> Result<Page, StoreError> {
        let table = self.table(table)?;
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        if after.as_deref().is_some_and(|key| key.contains('\0')) {
            return Err(StoreError::BadCursor);
        }
        // The filters become SQL here (an error is the caller's, not the database's); every value is a text parameter.
        let mut sql = format!(
            r#"SELECT "key", "value"::text, "version" FROM {} WHERE true"#,
            quoted(&table.name)
        );
        let mut bound: Vec<String> = Vec::new();
        if let Some(after) = after {
            bound.push(after);
            sql.push_str(&format!(r#" AND "key" > ${}"#, bound.len()));
        }
        for (field, value) in &query.filters {
            if !is_field(field) {
                return Err(StoreError::Corrupt {
                    store: self.shared.name.to_string(),
                    reason: format!("`{field}` cannot name a filtered field"),
                });
            }
            let expression = extract(field);
            match value {
                // Missing or `null`, as SQLite's `json_extract` has it.
                Value::Null => sql.push_str(&format!(" AND ({expression} IS NULL OR {expression} = 'null')")),
                // `true` matches `true` and `1`, as in SQLite (where JSON's `true` reads as the integer 1).
                Value::Bool(b) => sql.push_str(&format!(" AND {expression} IN ('{b}', '{}')", u8::from(*b))),
                Value::Number(_) | Value::String(_) => {
                    bound.push(value.to_string());
                    sql.push_str(&format!(" AND {expression} = ${}::text::jsonb", bound.len()));
                }
                Value::Array(_) | Value::Object(_) => {
                    return Err(StoreError::Corrupt {
                        store: self.shared.name.to_string(),
                        reason: format!("the filter on `{field}` is not a JSON scalar"),
                    });
                }
            }
        }
        // One more than the page, to know whether there is a next one.
        sql.push_str(&format!(r#" ORDER BY "key" LIMIT {}"#, u64::from(query.limit) + 1));
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            let store = &shared.name;
            let rows = with_connection!(shared, |client| {
                let statement = client.prepare_cached(&sql).await.map_err(|e| db(store, &e))?;
                let params: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as &(dyn ToSql + Sync)).collect();
                client.query(&statement, &params).await.map_err(|e| db(store, &e))
            })?;
            let mut items = Vec::with_capacity(rows.len().min(limit));
            let mut more = false;
            for row in rows {
                if items.len() == limit {
                    more = true;
                    break;
                }
                let key: String = row.try_get(0).map_err(|e| db(store, &e))?;
                let text: String = row.try_get(1).map_err(|e| db(store, &e))?;
                let version: i64 = row.try_get(2).map_err(|e| db(store, &e))?;
                items.push(Item {
                    value: parse(store, &text)?,
                    key,
                    version: as_version(version),
                });
            }
            let next_cursor = if more {
                items.last().map(|item| encode_cursor(&item.key))
            } else {
                None
            };
            Ok(Page { items, next_cursor })
        })
        .await
    }
}

/// The task that creates the schema: it tries until it succeeds, then ends. Its first outcome goes to `first` (what
/// [`PostgresStore::open`] waits for); after a failure it tries again after a wait that doubles up to [`RETRY_MAX`],
/// or sooner when a call comes.
async fn create_schema(shared: Arc<Shared>, first: std::sync::mpsc::SyncSender<Result<(), String>>) {
    let mut first = Some(first);
    let mut wait = RETRY_FIRST;
    let mut failed: Option<String> = None;
    loop {
        let attempt = match tokio::time::timeout(SCHEMA_TIMEOUT, try_schema(&shared)).await {
            Ok(attempt) => attempt,
            Err(_) => Err(format!("creating the tables took more than {SCHEMA_TIMEOUT:?}")),
        };
        match attempt {
            Ok(()) => {
                shared.ready.store(true, Ordering::Release);
                match first.take() {
                    Some(first) => {
                        let _ = first.send(Ok(()));
                    }
                    None => {
                        tracing::info!(store = %shared.name, database = %shared.shown, "the store's database is reachable: serving")
                    }
                }
                tracing::info!(store = %shared.name, database = %shared.shown, tables = shared.tables.len(), "store tables ready (PostgreSQL)");
                return;
            }
            Err(reason) => {
                reason.clone_into(&mut shared.last_error.lock().unwrap_or_else(PoisonError::into_inner));
                match first.take() {
                    Some(first) => {
                        let _ = first.send(Err(reason.clone()));
                    }
                    // Logged when it changes, not at every attempt.
                    None if failed.as_deref() != Some(reason.as_str()) => {
                        tracing::warn!(store = %shared.name, database = %shared.shown, error = %reason, "the store's database still cannot be reached");
                    }
                    None => {
                        tracing::debug!(store = %shared.name, error = %reason, "the store's database still cannot be reached")
                    }
                }
                failed = Some(reason);
            }
        }
        // At least the first wait between attempts, however many calls come meanwhile.
        tokio::time::sleep(RETRY_FIRST).await;
        tokio::select! {
            () = tokio::time::sleep(wait.saturating_sub(RETRY_FIRST)) => {}
            () = shared.retry.notified() => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// One attempt at creating the schema.
async fn try_schema(shared: &Shared) -> Result<(), String> {
    let mut lease = Lease::take(shared).await.map_err(|e| match e {
        StoreError::Unavailable { reason, .. } => reason,
        other => other.to_string(),
    })?;
    let client = lease.client().map_err(|e| e.to_string())?;
    let result = client.batch_execute(&shared.schema).await.map_err(|e| describe(&e));
    lease.release();
    result
}

/// The statements that create `tables`, their sequences and their indexes if missing, in one transaction that
/// holds [`SCHEMA_LOCK`]: the replicas of a gateway that start together take turns, and the later ones find
/// everything there.
fn schema(tables: &[(&str, &[&str])]) -> String {
    let mut sql = format!(
        "BEGIN;
         SET LOCAL statement_timeout = {};
         SELECT pg_advisory_xact_lock({SCHEMA_LOCK});",
        SCHEMA_TIMEOUT.as_millis()
    );
    for (table, fields) in tables {
        let t = quoted(table);
        sql.push_str(&format!(
            r#"
            CREATE TABLE IF NOT EXISTS {t} ("key" text COLLATE "C" PRIMARY KEY NOT NULL, "value" json NOT NULL, "version" bigint NOT NULL);
            CREATE SEQUENCE IF NOT EXISTS {} OWNED BY {t}."version";"#,
            quoted(&sequence(table))
        ));
        for field in *fields {
            sql.push_str(&format!(
                r#"
            CREATE INDEX IF NOT EXISTS {} ON {t} (({}), "key");"#,
                quoted(&index(table, field)),
                extract(field)
            ));
        }
    }
    sql.push_str("\nCOMMIT;");
    sql
}

/// The name of `table`'s version sequence.
fn sequence(table: &str) -> String {
    object_name("v", table, None)
}

/// The name of `table`'s index on `field`.
fn index(table: &str, field: &str) -> String {
    object_name("i", table, Some(field))
}

/// `_gateway_<kind>_<table>[_<field>]_<hash>`, shortened to fit [`MAX_NAME`] (PostgreSQL would truncate it, and two
/// long names could then meet): the hash of the whole keeps names apart, and `_gateway` keeps them apart from tables.
fn object_name(kind: &str, table: &str, field: Option<&str>) -> String {
    let readable = match field {
        Some(field) => format!("{table}_{field}"),
        None => table.to_owned(),
    };
    let digest = Sha256::digest(format!("{table}\0{}", field.unwrap_or_default()).as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let prefix = format!("_gateway_{kind}_");
    let room = MAX_NAME - prefix.len() - 1 - hash.len();
    let mut end = readable.len().min(room);
    while !readable.is_char_boundary(end) {
        end -= 1;
    }
    format!("{prefix}{}_{hash}", &readable[..end])
}

/// The expression a filtered field is read and indexed with: the same in both, so the index is used.
fn extract(field: &str) -> String {
    format!(r#"("value" -> {})::jsonb"#, literal(field))
}

/// `"name"`: an identifier quoted for SQL.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`: a string literal for SQL.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// PostgreSQL's text cannot hold NUL, so neither can a key of its store.
fn check_key(key: &str) -> Result<(), StoreError> {
    if key.contains('\0') {
        return Err(StoreError::KeyNotStorable(
            "a key of this store cannot contain a NUL character",
        ));
    }
    Ok(())
}

fn as_version(version: i64) -> u64 {
    u64::try_from(version).unwrap_or_default()
}

fn unavailable(store: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        store: store.to_owned(),
        reason: reason.into(),
    }
}

/// A database error as unavailable, with what the server said.
fn db(store: &str, err: &tokio_postgres::Error) -> StoreError {
    unavailable(store, describe(err))
}

/// [`db`], except for a document the table's filter indexes cannot read: a string with `\u0000` (which `jsonb`,
/// and so the index, cannot hold) is the body's fault, not the database's.
fn write_error(store: &str, err: &tokio_postgres::Error) -> StoreError {
    if err.code() == Some(&SqlState::UNTRANSLATABLE_CHARACTER) {
        return StoreError::ValueNotStorable("a string of this item holds `\\u0000`, which this store cannot index");
    }
    db(store, err)
}

/// An error and its causes, on one line (tokio-postgres's own text is only the kind: "db error").
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // Wrappers (the pool's errors) often say their cause's text already.
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', "; ")
}

fn parse(store: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        store: store.to_owned(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_and_never_shown_with_their_password() {
        let url =
            PostgresUrl::parse("postgres://gw:s3cret@db.internal:6432/petstore?application_name=x").expect("valid");
        assert_eq!(url.to_string(), "postgres://db.internal:6432/petstore");
        assert!(!format!("{url:?}").contains("s3cret"));
        let several = PostgresUrl::parse("postgresql://a,b:5433/pets").expect("valid");
        assert_eq!(several.to_string(), "postgres://a:5432,b:5433/pets");
        assert_eq!(
            PostgresUrl::parse("postgres://gw@h")
                .map(|u| u.to_string())
                .ok()
                .as_deref(),
            Some("postgres://h:5432/gw"),
            "the database defaults to the user's name"
        );
        for bad in [
            "mysql://u:s3cret@h/db",
            "postgres://u:s3cret@",
            "postgres://u:s3cret@h/db?nope=1",
            "postgres://u:s3cret@h:x/db",
            "postgres://u:s3cret@h/db?sslmode=require",
        ] {
            let err = PostgresUrl::parse(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} is refused"));
            assert!(!err.contains("s3cret"), "the password is not repeated: {err}");
        }
        assert!(PostgresUrl::is_url("postgresql://h/db") && !PostgresUrl::is_url("data/postgres.db"));
    }

    #[test]
    fn names_fit_postgresql_and_stay_apart() {
        let long = "t".repeat(63);
        let a = index(&long, "status");
        let b = index(&long, "statuz");
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert_ne!(index("a_b", "c"), index("a", "b_c"), "the hash tells them apart");
        assert!(sequence("pets").starts_with("_gateway_v_pets_"));
        assert_eq!(extract("status"), r#"("value" -> 'status')::jsonb"#);
        assert_eq!(extract("it's"), r#"("value" -> 'it''s')::jsonb"#);
        let sql = schema(&[("pets", &["status"])]);
        assert!(
            sql.contains(r#"CREATE TABLE IF NOT EXISTS "pets""#) && sql.contains("pg_advisory_xact_lock"),
            "{sql}"
        );
    }
}
