//! The embedded store: SQLite in WAL mode, one writer thread that group-commits, a few reader threads.
//!
//! SQLite calls block, so none runs on a worker's async runtime. Writes go to one thread of their own, through a
//! bounded queue: it takes every write waiting there (up to [`SqliteOptions::max_batch`]), applies them one after
//! the other in one `BEGIN IMMEDIATE` transaction — each write's condition checked against what the writes before it
//! in the batch left — commits once, and only then answers each caller. With `synchronous=FULL` that commit is one
//! fsync of the WAL for the whole batch: under load, many acknowledged writes per disk flush, where a transaction per
//! write would pay a flush each (docs/benchmarks.md has the figures). A write is acknowledged only once it is
//! committed, so a killed gateway loses nothing it answered for.
//!
//! Reads go to [`SqliteOptions::readers`] threads, each with its own read-only connection; WAL lets them read while
//! the writer writes. Every call is bounded by [`SqliteOptions::timeout`], and a full queue or a stopped thread is
//! [`StoreError::Unavailable`] at once: a request never waits on a store that cannot answer.
//!
//! Each table is `(key TEXT PRIMARY KEY, value TEXT, version INTEGER) WITHOUT ROWID`, the value a JSON document as
//! text; a filtered field gets an expression index on `json_extract(value, '$."field"')` (and the key, so that a
//! filtered page is one index range in key order). Versions come from a counter per table in `_gateway_versions`,
//! advanced in the same transaction as the writes, so a version is never reused, even after a delete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, ToSql};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{
    Condition, Item, ListQuery, Page, StoreBackend, StoreError, decode_cursor, encode_cursor, is_field, is_identifier,
    is_reserved, merge_patch,
};
use crate::spec::StoreSync;

/// How long a connection waits for a lock another process holds before the call fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Calls waiting in each queue before new ones are refused as unavailable.
const QUEUE: usize = 8192;
/// The table of version counters.
const VERSIONS: &str = "_gateway_versions";

/// How the SQLite store runs.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// When a commit is on disk.
    pub synchronous: StoreSync,
    /// Reader threads (each with a connection).
    pub readers: usize,
    /// The most writes committed in one transaction; 1 commits each write on its own.
    pub max_batch: usize,
    /// The longest a call may take, queueing included, before it fails as unavailable.
    pub timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: StoreSync::Full,
            readers: 4,
            max_batch: 1024,
            timeout: Duration::from_secs(30),
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
    /// The `version` of one key.
    version: String,
    /// Insert or replace one key.
    upsert: String,
    /// Remove one key.
    delete: String,
}

impl Table {
    fn new(name: &str) -> Self {
        let t = quoted(name);
        Self {
            name: Arc::from(name),
            get: format!(r#"SELECT "value", "version" FROM {t} WHERE "key" = ?1"#),
            version: format!(r#"SELECT "version" FROM {t} WHERE "key" = ?1"#),
            upsert: format!(
                r#"INSERT INTO {t} ("key", "value", "version") VALUES (?1, ?2, ?3)
                   ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value", "version" = excluded."version""#
            ),
            delete: format!(r#"DELETE FROM {t} WHERE "key" = ?1"#),
        }
    }
}

/// What a reader thread runs.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// One write, as the writer thread applies it.
struct WriteJob {
    table: Arc<Table>,
    key: String,
    op: WriteOp,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

/// What a write does.
enum WriteOp {
    /// Store `value` (also serialized as `text`).
    Put {
        value: Value,
        text: String,
        condition: Condition,
    },
    /// Merge `patch` into the stored value.
    Merge { patch: Value, condition: Condition },
    /// Remove the item.
    Delete { condition: Condition },
}

/// What a write did.
enum Written {
    Put(Item, bool),
    Merge(Item),
    Delete(bool),
}

/// The SQLite backend of a [`super::Store`].
pub struct SqliteStore {
    name: Arc<str>,
    path: PathBuf,
    tables: HashMap<String, Arc<Table>>,
    /// `None` only while dropping (the queues close first, then the threads are joined).
    writer: Option<SyncSender<WriteJob>>,
    readers: Option<SyncSender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
    timeout: Duration,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("tables", &self.tables.len())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` for store `name`, with `tables` (each with the fields it
    /// indexes), and starts its threads.
    pub fn open(
        name: &str,
        path: &Path,
        tables: &[(&str, &[&str])],
        options: &SqliteOptions,
    ) -> Result<Self, StoreError> {
        let fail = |reason: String| StoreError::Open {
            store: name.to_owned(),
            path: path.display().to_string(),
            reason,
        };
        for (table, fields) in tables {
            if !is_identifier(table) || is_reserved(table) {
                return Err(fail(format!(
                    "`{table}` cannot name a table (letters, digits and `_`, not starting with a digit, `sqlite_` or `_gateway`)"
                )));
            }
            if let Some(field) = fields.iter().find(|f| !is_field(f)) {
                return Err(fail(format!(
                    "`{field}` cannot name a filtered field of table `{table}`"
                )));
            }
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let sql = |e: rusqlite::Error| fail(e.to_string());
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let writer = Connection::open_with_flags(path, flags).map_err(sql)?;
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!(
                "the database cannot be put in WAL mode (it is in `{mode}` mode)"
            )));
        }
        let synchronous = match options.synchronous {
            StoreSync::Full => "FULL",
            StoreSync::Normal => "NORMAL",
        };
        writer.pragma_update(None, "synchronous", synchronous).map_err(sql)?;
        // The WAL is truncated back to this size after a checkpoint, so a burst does not keep its disk space.
        writer
            .pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
            .map_err(sql)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
        writer.set_prepared_statement_cache_capacity(16 + 8 * tables.len());
        let mut schema = format!(
            r#"BEGIN IMMEDIATE;
               CREATE TABLE IF NOT EXISTS {VERSIONS} ("table" TEXT PRIMARY KEY NOT NULL, "version" INTEGER NOT NULL) WITHOUT ROWID;"#
        );
        for (table, fields) in tables {
            let t = quoted(table);
            schema.push_str(&format!(
                r#"CREATE TABLE IF NOT EXISTS {t} ("key" TEXT PRIMARY KEY NOT NULL, "value" TEXT NOT NULL, "version" INTEGER NOT NULL) WITHOUT ROWID;
                   INSERT OR IGNORE INTO {VERSIONS} ("table", "version") SELECT {}, coalesce(max("version"), 0) FROM {t};"#,
                literal(table)
            ));
            for field in *fields {
                schema.push_str(&format!(
                    r#"CREATE INDEX IF NOT EXISTS {} ON {t} ({}, "key");"#,
                    quoted(&format!("{table}__{field}")),
                    extract(field)
                ));
            }
        }
        schema.push_str("COMMIT;");
        writer.execute_batch(&schema).map_err(sql)?;

        let mut connections = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let reader = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sql)?;
            reader.pragma_update(None, "query_only", true).map_err(sql)?;
            reader.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
            reader.set_prepared_statement_cache_capacity(16 + 8 * tables.len());
            connections.push(reader);
        }

        let (write_tx, write_rx) = mpsc::sync_channel(QUEUE);
        let (read_tx, read_rx) = mpsc::sync_channel::<ReadJob>(QUEUE);
        let read_rx = Arc::new(Mutex::new(read_rx));
        let mut threads = Vec::with_capacity(connections.len() + 1);
        let max_batch = options.max_batch.max(1);
        let spawn = |thread: String, run: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(thread)
                .spawn(run)
                .map_err(|e| fail(format!("cannot start a thread: {e}")))
        };
        let store: Arc<str> = Arc::from(name);
        let writing = Arc::clone(&store);
        threads.push(spawn(
            format!("store-w-{name}"),
            Box::new(move || write_loop(&writing, &writer, &write_rx, max_batch)),
        )?);
        for (i, connection) in connections.into_iter().enumerate() {
            let queue = Arc::clone(&read_rx);
            threads.push(spawn(
                format!("store-r{i}-{name}"),
                Box::new(move || read_loop(&connection, &queue)),
            )?);
        }
        Ok(Self {
            name: store,
            path: path.to_owned(),
            tables: tables
                .iter()
                .map(|(table, _)| ((*table).to_owned(), Arc::new(Table::new(table))))
                .collect(),
            writer: Some(write_tx),
            readers: Some(read_tx),
            threads,
            timeout: options.timeout,
        })
    }

    fn table(&self, table: &str) -> Result<Arc<Table>, StoreError> {
        self.tables.get(table).cloned().ok_or_else(|| StoreError::UnknownTable {
            store: self.name.to_string(),
            table: table.to_owned(),
        })
    }

    fn unavailable(&self, reason: impl Into<String>) -> StoreError {
        unavailable(&self.name, reason)
    }

    /// Runs `read` on a reader thread, bounded by the timeout.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |connection| {
            let _ = reply.send(read(connection));
        });
        let queue = self.readers.as_ref().ok_or_else(|| self.unavailable("closing"))?;
        queue.try_send(job).map_err(|e| self.refused(&e))?;
        self.answer(answer).await
    }

    /// Queues a write for the writer thread and waits for it to be committed, bounded by the timeout.
    async fn write(&self, table: Arc<Table>, key: &str, op: WriteOp) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = WriteJob {
            table,
            key: key.to_owned(),
            op,
            reply,
        };
        let queue = self.writer.as_ref().ok_or_else(|| self.unavailable("closing"))?;
        queue.try_send(job).map_err(|e| self.refused(&e))?;
        self.answer(answer).await
    }

    fn refused<T>(&self, err: &TrySendError<T>) -> StoreError {
        match err {
            TrySendError::Full(_) => self.unavailable("too many calls are waiting"),
            TrySendError::Disconnected(_) => self.unavailable("its threads stopped"),
        }
    }

    async fn answer<T>(&self, answer: oneshot::Receiver<Result<T, StoreError>>) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.unavailable("the call was dropped unanswered")),
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queues ends the threads once they have done what is queued; the writer's last batch is
        // committed, and the last connection to close checkpoints the WAL into the database.
        self.writer = None;
        self.readers = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[async_trait::async_trait]
impl StoreBackend for SqliteStore {
    async fn get(&self, table: &str, key: &str) -> Result<Option<Item>, StoreError> {
        let table = self.table(table)?;
        let store = Arc::clone(&self.name);
        let key = key.to_owned();
        self.read(move |connection| {
            let fail = |e: rusqlite::Error| unavailable(&store, e.to_string());
            let mut statement = connection.prepare_cached(&table.get).map_err(fail)?;
            let row = statement
                .query_row([&key], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))
                .optional()
                .map_err(fail)?;
            row.map(|(text, version)| {
                Ok(Item {
                    value: parse(&store, &text)?,
                    key,
                    version: u64::try_from(version).unwrap_or_default(),
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
        // Serialized here, on the caller's worker, so the writer thread only writes.
        let text = value.to_string();
        match self.write(table, key, WriteOp::Put { value, text, condition }).await? {
            Written::Put(item, created) => Ok((item, created)),
            _ => Err(self.unavailable("the writer answered another call")),
        }
    }

    async fn merge(&self, table: &str, key: &str, patch: Value, condition: Condition) -> Result<Item, StoreError> {
        let table = self.table(table)?;
        match self.write(table, key, WriteOp::Merge { patch, condition }).await? {
            Written::Merge(item) => Ok(item),
            _ => Err(self.unavailable("the writer answered another call")),
        }
    }

    async fn delete(&self, table: &str, key: &str, condition: Condition) -> Result<bool, StoreError> {
        let table = self.table(table)?;
        match self.write(table, key, WriteOp::Delete { condition }).await? {
            Written::Delete(existed) => Ok(existed),
            _ => Err(self.unavailable("the writer answered another call")),
        }
    }

    async fn list(&self, table: &str, query: &ListQuery) -> Result<Page, StoreError> {
        let table = self.table(table)?;
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        // The filters become SQL here (an error is the caller's, not the database's), the rows are read there.
        let mut sql = format!(
            r#"SELECT "key", "value", "version" FROM {} WHERE 1"#,
            quoted(&table.name)
        );
        let mut bound: Vec<Box<dyn ToSql + Send>> = Vec::new();
        if let Some(after) = after {
            bound.push(Box::new(after));
            sql.push_str(&format!(r#" AND "key" > ?{}"#, bound.len()));
        }
        for (field, value) in &query.filters {
            if !is_field(field) {
                return Err(StoreError::Corrupt {
                    store: self.name.to_string(),
                    reason: format!("`{field}` cannot name a filtered field"),
                });
            }
            let expression = extract(field);
            match value {
                Value::Null => sql.push_str(&format!(" AND {expression} IS NULL")),
                Value::Bool(b) => bound.push(Box::new(i64::from(*b))),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => bound.push(Box::new(i)),
                    None => bound.push(Box::new(n.as_f64().unwrap_or(f64::NAN))),
                },
                Value::String(s) => bound.push(Box::new(s.clone())),
                Value::Array(_) | Value::Object(_) => {
                    return Err(StoreError::Corrupt {
                        store: self.name.to_string(),
                        reason: format!("the filter on `{field}` is not a JSON scalar"),
                    });
                }
            }
            if !value.is_null() {
                sql.push_str(&format!(" AND {expression} = ?{}", bound.len()));
            }
        }
        // One more than the page, to know whether there is a next one.
        sql.push_str(&format!(r#" ORDER BY "key" LIMIT {}"#, u64::from(query.limit) + 1));
        let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
        let store = Arc::clone(&self.name);
        self.read(move |connection| {
            let fail = |e: rusqlite::Error| unavailable(&store, e.to_string());
            let mut statement = connection.prepare_cached(&sql).map_err(fail)?;
            let params: Vec<&dyn ToSql> = bound.iter().map(|b| b.as_ref() as &dyn ToSql).collect();
            let rows = statement
                .query_map(params.as_slice(), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(fail)?;
            let mut items = Vec::with_capacity(limit.min(64));
            let mut more = false;
            for row in rows {
                let (key, text, version) = row.map_err(fail)?;
                if items.len() == limit {
                    more = true;
                    break;
                }
                items.push(Item {
                    value: parse(&store, &text)?,
                    key,
                    version: u64::try_from(version).unwrap_or_default(),
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

/// A reader thread: jobs from the shared queue until it closes.
fn read_loop(connection: &Connection, queue: &Mutex<Receiver<ReadJob>>) {
    loop {
        // The lock is held while waiting, so exactly one idle reader waits on the queue at a time.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(connection),
            Err(_) => return,
        }
    }
}

/// The writer thread: every queued write in one transaction, committed, then answered; until the queue closes.
fn write_loop(store: &str, connection: &Connection, queue: &Receiver<WriteJob>, max_batch: usize) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let outcomes = commit(store, connection, &mut batch);
        for (job, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that gave up (timed out, disconnected) no longer listens; the write stands.
            let _ = job.reply.send(outcome);
        }
    }
}

/// Applies `batch` in one transaction and commits it: each write's outcome, or every write unavailable when the
/// transaction could not be committed.
fn commit(store: &str, connection: &Connection, batch: &mut [WriteJob]) -> Vec<Result<Written, StoreError>> {
    let failed_all = |reason: String, n: usize| (0..n).map(|_| Err(unavailable(store, reason.clone()))).collect();
    if let Err(e) = connection.execute_batch("BEGIN IMMEDIATE") {
        return failed_all(format!("cannot begin a transaction: {e}"), batch.len());
    }
    let mut counters: HashMap<Arc<str>, (u64, bool)> = HashMap::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        let outcome = apply(store, connection, job, &mut counters);
        if outcome.is_err() && connection.is_autocommit() {
            // The error rolled the whole transaction back (an I/O error, a full disk): nothing of the batch stands.
            return failed_all("the transaction was rolled back by an error".to_owned(), batch.len());
        }
        outcomes.push(outcome);
    }
    let saved = counters
        .iter()
        .filter(|(_, (_, dirty))| *dirty)
        .try_for_each(|(table, (version, _))| {
            connection
                .prepare_cached(&format!(r#"UPDATE {VERSIONS} SET "version" = ?2 WHERE "table" = ?1"#))?
                .execute(rusqlite::params![
                    table.as_ref(),
                    i64::try_from(*version).unwrap_or(i64::MAX)
                ])
                .map(|_| ())
        })
        .and_then(|()| connection.execute_batch("COMMIT"));
    if let Err(e) = saved {
        let _ = connection.execute_batch("ROLLBACK");
        return failed_all(format!("cannot commit: {e}"), batch.len());
    }
    outcomes
}

/// One write, inside the batch's transaction. It changes nothing unless it succeeds: at most one statement writes,
/// and a failed statement is undone by SQLite.
fn apply(
    store: &str,
    connection: &Connection,
    job: &mut WriteJob,
    counters: &mut HashMap<Arc<str>, (u64, bool)>,
) -> Result<Written, StoreError> {
    let fail = |e: rusqlite::Error| unavailable(store, e.to_string());
    let table = &job.table;
    let key = job.key.as_str();
    let current = |with_value: bool| -> Result<Option<(i64, Option<String>)>, StoreError> {
        if with_value {
            connection
                .prepare_cached(&table.get)
                .and_then(|mut s| {
                    s.query_row([key], |r| Ok((r.get::<_, i64>(1)?, Some(r.get::<_, String>(0)?))))
                        .optional()
                })
                .map_err(fail)
        } else {
            connection
                .prepare_cached(&table.version)
                .and_then(|mut s| s.query_row([key], |r| Ok((r.get::<_, i64>(0)?, None))).optional())
                .map_err(fail)
        }
    };
    let version_of =
        |found: &Option<(i64, Option<String>)>| found.as_ref().map(|(v, _)| u64::try_from(*v).unwrap_or_default());
    match &mut job.op {
        WriteOp::Put { value, text, condition } => {
            let found = current(false)?;
            if !condition.holds(version_of(&found)) {
                return Err(StoreError::PreconditionFailed);
            }
            let version = next_version(connection, counters, table, store)?;
            connection
                .prepare_cached(&table.upsert)
                .and_then(|mut s| s.execute(rusqlite::params![key, text.as_str(), as_sql(version)]))
                .map_err(fail)?;
            commit_version(counters, table, version);
            let item = Item {
                key: key.to_owned(),
                value: std::mem::take(value),
                version,
            };
            Ok(Written::Put(item, found.is_none()))
        }
        WriteOp::Merge { patch, condition } => {
            let found = current(true)?;
            if !condition.holds(version_of(&found)) {
                return Err(StoreError::PreconditionFailed);
            }
            let Some((_, Some(text))) = found else {
                return Err(StoreError::NotFound);
            };
            let mut value = parse(store, &text)?;
            merge_patch(&mut value, std::mem::take(patch));
            let version = next_version(connection, counters, table, store)?;
            connection
                .prepare_cached(&table.upsert)
                .and_then(|mut s| s.execute(rusqlite::params![key, value.to_string(), as_sql(version)]))
                .map_err(fail)?;
            commit_version(counters, table, version);
            Ok(Written::Merge(Item {
                key: key.to_owned(),
                value,
                version,
            }))
        }
        WriteOp::Delete { condition } => {
            let found = current(false)?;
            if !condition.holds(version_of(&found)) {
                return Err(StoreError::PreconditionFailed);
            }
            if found.is_none() {
                return Ok(Written::Delete(false));
            }
            connection
                .prepare_cached(&table.delete)
                .and_then(|mut s| s.execute([key]))
                .map_err(fail)?;
            Ok(Written::Delete(true))
        }
    }
}

/// The version the next write of `table` gets (the counter is read once per batch, and saved once per batch).
fn next_version(
    connection: &Connection,
    counters: &mut HashMap<Arc<str>, (u64, bool)>,
    table: &Table,
    store: &str,
) -> Result<u64, StoreError> {
    if let Some((version, _)) = counters.get(&table.name) {
        return Ok(version + 1);
    }
    let last: i64 = connection
        .prepare_cached(&format!(r#"SELECT "version" FROM {VERSIONS} WHERE "table" = ?1"#))
        .and_then(|mut s| s.query_row([table.name.as_ref()], |r| r.get(0)))
        .map_err(|e| unavailable(store, e.to_string()))?;
    let last = u64::try_from(last).unwrap_or_default();
    counters.insert(Arc::clone(&table.name), (last, false));
    Ok(last + 1)
}

/// Records that `version` of `table` was used by a write that succeeded.
fn commit_version(counters: &mut HashMap<Arc<str>, (u64, bool)>, table: &Table, version: u64) {
    counters.insert(Arc::clone(&table.name), (version, true));
}

fn as_sql(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn unavailable(store: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Unavailable {
        store: store.to_owned(),
        reason: reason.into(),
    }
}

fn parse(store: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        store: store.to_owned(),
        reason: e.to_string(),
    })
}

/// `"name"`: an identifier quoted for SQL (only identifiers reach here; a `"` would be doubled).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'`: a string literal for SQL.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The expression a filtered field is read and indexed with: the same text in both, so the index is used.
fn extract(field: &str) -> String {
    format!(r#"json_extract("value", {})"#, literal(&format!("$.\"{field}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = "0190b2c4-7d3e-7000-8000-000000000000";
        assert_eq!(decode_cursor(&encode_cursor(key)).ok().as_deref(), Some(key));
        assert!(matches!(decode_cursor("not base64!"), Err(StoreError::BadCursor)));
    }

    #[test]
    fn names() {
        assert!(is_identifier("pets") && is_identifier("_x1") && !is_identifier("1x") && !is_identifier("a-b"));
        assert!(is_reserved("sqlite_master") && is_reserved("_gateway_versions") && !is_reserved("gateway"));
        assert_eq!(extract("status"), r#"json_extract("value", '$."status"')"#);
    }

    /// A store in a fresh directory under the system's temporary one (removed by the caller).
    fn scratch(test: &str, options: &SqliteOptions) -> (SqliteStore, PathBuf) {
        let dir = std::env::temp_dir().join(format!("gateway-store-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (open_in(&dir, options), dir)
    }

    /// The test store in `dir` (its file in a subdirectory, created if missing).
    fn open_in(dir: &Path, options: &SqliteOptions) -> SqliteStore {
        let tables: [(&str, &[&str]); 2] = [("pets", &["status", "n"]), ("toys", &[])];
        SqliteStore::open("t", &dir.join("nested/store.db"), &tables, options).expect("opens, creating its directory")
    }

    #[tokio::test]
    async fn writes_are_versioned_conditional_and_never_reuse_a_version() {
        let (store, dir) = scratch("versions", &SqliteOptions::default());
        let pet = serde_json::json!({"name": "Rex"});
        let (item, created) = store
            .put("pets", "1", pet.clone(), Condition::Always)
            .await
            .expect("put");
        assert!(created);
        assert_eq!((item.version, &item.value), (1, &pet));
        let again = store.put("pets", "1", pet.clone(), Condition::IfNoneMatchAny).await;
        assert!(matches!(again, Err(StoreError::PreconditionFailed)), "{again:?}");
        let stale = store.put("pets", "1", pet.clone(), Condition::IfMatch(7)).await;
        assert!(matches!(stale, Err(StoreError::PreconditionFailed)));
        let (item, created) = store
            .put("pets", "1", pet.clone(), Condition::IfMatch(1))
            .await
            .expect("put");
        assert!(!created);
        assert_eq!(item.version, 2);
        let merged = store
            .merge("pets", "1", serde_json::json!({"tag": "dog"}), Condition::IfExists)
            .await
            .expect("merge");
        assert_eq!(merged.value, serde_json::json!({"name": "Rex", "tag": "dog"}));
        assert_eq!(merged.version, 3);
        assert!(store.delete("pets", "1", Condition::IfMatch(3)).await.expect("delete"));
        assert!(!store.delete("pets", "1", Condition::Always).await.expect("delete"));
        assert!(store.get("pets", "1").await.expect("get").is_none());
        let missing = store.merge("pets", "1", serde_json::json!({}), Condition::Always).await;
        assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
        // After a delete the key starts again, but not its versions: an old ETag cannot match the new item.
        let (item, _) = store.put("pets", "1", pet, Condition::Always).await.expect("put");
        assert_eq!(item.version, 4);
        // Another table has its own counter.
        let (toy, _) = store
            .put("toys", "a", Value::Null, Condition::Always)
            .await
            .expect("put");
        assert_eq!(toy.version, 1);
        let unknown = store.get("cats", "1").await;
        assert!(matches!(unknown, Err(StoreError::UnknownTable { .. })), "{unknown:?}");
        drop(store);
        // Reopened, the counter goes on from where it was.
        let store = open_in(&dir, &SqliteOptions::default());
        let (item, _) = store
            .put("pets", "2", Value::Null, Condition::Always)
            .await
            .expect("put");
        assert_eq!(item.version, 5);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn lists_page_in_key_order_through_a_filter() {
        let (store, dir) = scratch(
            "list",
            &SqliteOptions {
                max_batch: 1,
                ..SqliteOptions::default()
            },
        );
        for i in 0..25 {
            let status = if i % 2 == 0 { "sold" } else { "available" };
            let value = serde_json::json!({"n": i, "status": status});
            store
                .put("pets", &format!("{i:03}"), value, Condition::Always)
                .await
                .expect("put");
        }
        let mut query = ListQuery {
            limit: 5,
            cursor: None,
            filters: vec![("status".to_owned(), Value::from("sold"))],
        };
        let mut seen = Vec::new();
        loop {
            let page = store.list("pets", &query).await.expect("list");
            assert!(page.items.len() <= 5);
            seen.extend(page.items.iter().map(|item| item.value["n"].as_i64().unwrap_or(-1)));
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, (0..25).step_by(2).collect::<Vec<i64>>());
        let numbers = ListQuery {
            limit: 100,
            cursor: None,
            filters: vec![("n".to_owned(), Value::from(3))],
        };
        let page = store.list("pets", &numbers).await.expect("list");
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].key, "003");
        let bad = ListQuery {
            cursor: Some("%%%".to_owned()),
            ..numbers
        };
        assert!(matches!(store.list("pets", &bad).await, Err(StoreError::BadCursor)));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn concurrent_writes_are_group_committed_and_each_acknowledged() {
        let (store, dir) = scratch("batch", &SqliteOptions::default());
        let store = Arc::new(store);
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
                        .put(
                            "toys",
                            &format!("k{i}"),
                            serde_json::json!({"i": i}),
                            Condition::IfNoneMatchAny,
                        )
                        .await
                })
            })
            .collect();
        let mut versions = Vec::new();
        for write in writes {
            let (item, created) = write.await.expect("task").expect("put");
            assert!(created);
            versions.push(item.version);
        }
        versions.sort_unstable();
        assert_eq!(
            versions,
            (1..=200).collect::<Vec<u64>>(),
            "one version each, none shared"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
