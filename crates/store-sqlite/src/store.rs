//! [`SqliteStore`]: the [`Store`] trait on a SQLite file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::task::truncate_tail;
use openloom_core::{
    CheckLogEntry, Created, DueQuery, Guard, Lease, LogQuery, Result, SpecSummary, Store,
    StoreVersion, StoredLogEntry, Task, TaskId, TaskQuery, TaskStatus, TaskSummary, TaskUpdate,
    Worker, WriteOutcome,
};
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Sqlite, Transaction};

use crate::codec::{self, LOG_COLUMNS, TASK_COLUMNS, TaskRow};
use crate::error::{Error, SqlxResultExt};
use crate::open::{StoreOptions, open_pool};

/// Tasks, check logs and recent workspaces in one SQLite file.
///
/// Cheap to share behind an `Arc`; every method takes `&self`. Several stores (in one
/// process or many) may use the same file: writes take SQLite's write lock up front
/// (`BEGIN IMMEDIATE`) and wait up to the busy timeout for it.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    /// Serialises this store's own writers in-process, so they queue fairly on a
    /// mutex instead of polling SQLite's lock with the busy handler's sleeps.
    write_lock: tokio::sync::Mutex<()>,
}

impl SqliteStore {
    /// Opens the database at `path` with default [`StoreOptions`], creating the file
    /// and its directory if needed and applying pending migrations.
    ///
    /// Refuses (without changing it) a database whose schema is newer than this build.
    pub async fn open(path: impl AsRef<Path>) -> crate::Result<SqliteStore> {
        Self::open_with(path, &StoreOptions::default()).await
    }

    /// Like [`SqliteStore::open`], with explicit options.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: &StoreOptions,
    ) -> crate::Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let pool = open_pool(&path, options).await?;
        tracing::debug!(path = %path.display(), "opened the SQLite store");
        Ok(SqliteStore { pool, path, write_lock: tokio::sync::Mutex::new(()) })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The newest schema migration applied (`migrations/0003_…` → 3), for diagnostics.
    pub async fn schema_version(&self) -> crate::Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .at(&self.path)?;
        Ok(version.unwrap_or(0))
    }

    /// The connection pool, for diagnostics and tests (e.g. `PRAGMA integrity_check`).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Runs SQLite's `PRAGMA integrity_check`; `Ok(())` when the file is sound.
    pub async fn integrity_check(&self) -> crate::Result<()> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await
            .at(&self.path)?;
        if rows.len() == 1 && rows[0] == "ok" {
            Ok(())
        } else {
            Err(Error::Corrupt { path: self.path.clone(), message: rows.join("; ") })
        }
    }

    /// Closes every connection, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write: takes the in-process lock, then SQLite's write lock.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await.at(&self.path)?;
        Ok(WriteTx { tx, _guard: guard, path: &self.path })
    }

    pub(crate) fn fail(&self, err: sqlx::Error) -> openloom_core::Error {
        Error::classify(&self.path, err).into()
    }

    /// Claims task `id` for `owner` inside the caller's write transaction (see
    /// [`Store::claim_task`]); `None` when another owner's claim is valid at `now`.
    async fn claim_in(
        &self,
        conn: &mut SqliteConnection,
        id: &TaskId,
        owner: &str,
        now: &str,
        until: &str,
    ) -> Result<Option<Lease>> {
        Ok(match self.valid_claim(conn, id, now).await? {
            Some(held) if held.owner != owner => None,
            Some(held) => {
                sqlx::query("UPDATE task_claims SET until = ? WHERE task_id = ?")
                    .bind(until)
                    .bind(id.as_str())
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| self.fail(e))?;
                Some(held)
            }
            None => {
                // Taken anew: one more than any epoch the task's claims ever had,
                // released ones included (`task_epochs`).
                let epoch: i64 = sqlx::query_scalar(
                    "SELECT MAX(COALESCE((SELECT epoch FROM task_claims WHERE task_id = ?1), 0), \
                            COALESCE((SELECT epoch FROM task_epochs WHERE task_id = ?1), 0)) + 1",
                )
                .bind(id.as_str())
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| self.fail(e))?;
                sqlx::query(
                    "INSERT INTO task_claims (task_id, owner, until, epoch) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner, \
                     until = excluded.until, epoch = excluded.epoch",
                )
                .bind(id.as_str())
                .bind(owner)
                .bind(until)
                .bind(epoch)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.fail(e))?;
                let epoch = u64::try_from(epoch)
                    .map_err(|_| Error::decode(&self.path, "task_claims.epoch", epoch))?;
                Some(Lease { owner: owner.to_owned(), epoch })
            }
        })
    }

    /// Inserts `task` inside the caller's write transaction; `Conflict` if its id exists.
    async fn insert_task(&self, conn: &mut SqliteConnection, task: &Task) -> Result<()> {
        let row = TaskRow::encode(task)?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tasks WHERE id = ?")
            .bind(task.id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| self.fail(e))?;
        if exists.is_some() {
            return Err(openloom_core::Error::Conflict(format!("task {} already exists", task.id)));
        }
        let sql = format!(
            "INSERT INTO tasks ({TASK_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        row.bind(sqlx::query(&sql)).execute(&mut *conn).await.map_err(|e| self.fail(e))?;
        // The task's `task.created` deliveries, in the same transaction as the task.
        crate::outbox::queue(conn, &self.path, None, task, Utc::now()).await?;
        Ok(())
    }

    async fn require_seq(&self, conn: &mut SqliteConnection, id: &TaskId) -> Result<i64> {
        sqlx::query_scalar("SELECT seq FROM tasks WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(conn)
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| not_found(id))
    }

    /// The claim on task `id` that is valid at `now` (an encoded timestamp), if any.
    async fn valid_claim(
        &self,
        conn: &mut SqliteConnection,
        id: &TaskId,
        now: &str,
    ) -> Result<Option<Lease>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT owner, epoch FROM task_claims WHERE task_id = ? AND until > ?")
                .bind(id.as_str())
                .bind(now)
                .fetch_optional(conn)
                .await
                .map_err(|e| self.fail(e))?;
        row.map(|(owner, epoch)| {
            u64::try_from(epoch)
                .map(|epoch| Lease { owner, epoch })
                .map_err(|_| Error::decode(&self.path, "task_claims.epoch", epoch).into())
        })
        .transpose()
    }

    /// Up to `limit` readable tasks from `sql`, a task `SELECT` whose last two
    /// parameters are `LIMIT ? OFFSET ?`, on `conn` (a read transaction, so every
    /// round sees one snapshot).
    ///
    /// A row that does not decode is logged with its task id and skipped, and the
    /// page is filled from the rows after it: one damaged task must not hide every
    /// other from the dashboard and the harness, and a reader who takes a short page
    /// for the last one must still see every readable task. `get_task` on the bad
    /// id reports the error.
    async fn readable_tasks<S: DeserializeOwned>(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
        params: &[Param<'_>],
        limit: usize,
    ) -> Result<Vec<Task<S>>> {
        let mut tasks = Vec::new();
        let mut offset: i64 = 0;
        while tasks.len() < limit {
            let want = limit - tasks.len();
            let mut query = sqlx::query(sql);
            for param in params {
                query = match param {
                    Param::Int(value) => query.bind(*value),
                    Param::Text(text) => query.bind(*text),
                    Param::Optional(text) => query.bind(*text),
                };
            }
            let rows = query
                .bind(sql_int(want))
                .bind(offset)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| self.fail(e))?;
            offset = offset.saturating_add(sql_int(rows.len()));
            for row in &rows {
                match codec::task_from_row(&self.path, row) {
                    Ok(task) => tasks.push(task),
                    Err(error) => tracing::error!(%error, "skipped a task that cannot be read"),
                }
            }
            if rows.len() < want {
                break;
            }
        }
        Ok(tasks)
    }

    /// [`Store::list_tasks`] selecting `columns` ([`TASK_COLUMNS`] or the summary's).
    async fn list<S: DeserializeOwned>(
        &self,
        query: &TaskQuery,
        columns: &str,
    ) -> Result<Vec<Task<S>>> {
        let mut tx = self.begin_read().await?;
        let before = match &query.before {
            Some(cursor) => self.require_seq(&mut tx, cursor).await?,
            None => i64::MAX,
        };
        let filter = if query.statuses.is_empty() {
            String::new()
        } else {
            format!("AND status IN ({})", status_list(&query.statuses))
        };
        let sql = list_sql(columns, &filter);
        let tasks = self.readable_tasks(&mut tx, &sql, &[Param::Int(before)], query.limit).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(tasks)
    }

    /// A read transaction: the rounds of [`Self::readable_tasks`] see one snapshot.
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(|e| self.fail(e))
    }
}

/// Newest-first tasks before a `seq` (`?`), with an optional `AND status IN (...)`
/// filter; then `LIMIT ? OFFSET ?`.
fn list_sql(columns: &str, filter: &str) -> String {
    format!(
        "SELECT {columns} FROM tasks WHERE seq < ? {filter} \
         ORDER BY seq DESC LIMIT ? OFFSET ?"
    )
}

/// Tasks whose id starts with `?1`, newest first. `substr` rather than LIKE: LIKE is
/// case-insensitive and treats `_` (which every id contains) as a wildcard. It scans
/// the table, which only the CLI's lookups do.
fn prefix_sql() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE substr(id, 1, length(?1)) = ?1 \
         ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
    )
}

/// The reference's rules for a task due at `?1`: an active status; never checked or
/// due; a one-shot task (interval 0) only while pending. One text for every due query.
const DUE_AT_1: &str = "status IN ('pending', 'running', 'waiting') \
     AND (next_check_at IS NULL OR next_check_at <= ?1) \
     AND (status <> 'running' OR check_interval_seconds > 0)";

/// The harness's due tasks at `?1` ([`DUE_AT_1`]). NULL sorts first, like "due since
/// forever"; `seq` keeps creation order among equal times. Read in that order from
/// `tasks_due_order` (schema 9), named because SQLite without table statistics (the
/// store never runs `ANALYZE`) would pick `tasks_due` and sort every due task.
fn due_sql() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks INDEXED BY tasks_due_order \
         WHERE {DUE_AT_1} \
         ORDER BY next_check_at ASC, seq ASC LIMIT ?2 OFFSET ?3"
    )
}

/// The due tasks at `?1` (`due_sql`'s rules) not under a claim of another owner than
/// `?2` valid then, oldest due first, bound to the OpenCode server `?3`, or to none
/// when `unbound` (`?3` NULL: to none; [`DueQuery::drives`]). Then `LIMIT ?4 OFFSET ?5`.
fn claimable_sql(unbound: bool) -> String {
    let bound = if unbound { "(opencode IS NULL OR opencode = ?3)" } else { "opencode = ?3" };
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks INDEXED BY tasks_due_order \
         WHERE {DUE_AT_1} \
           AND NOT EXISTS (SELECT 1 FROM task_claims c \
                           WHERE c.task_id = tasks.id AND c.until > ?1 AND c.owner <> ?2) \
           AND {bound} \
         ORDER BY next_check_at ASC, seq ASC LIMIT ?4 OFFSET ?5"
    )
}

/// A task's check log after a `seq`, oldest first.
fn log_sql() -> String {
    format!(
        "SELECT {LOG_COLUMNS} FROM check_log WHERE task_id = ? AND seq > ? \
         ORDER BY seq ASC LIMIT ?"
    )
}

/// A bound parameter of a task list query.
enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Optional(Option<&'a str>),
}

/// A write transaction holding both locks; dropping it uncommitted rolls back.
pub(crate) struct WriteTx<'a> {
    tx: Transaction<'static, Sqlite>,
    _guard: tokio::sync::MutexGuard<'a, ()>,
    path: &'a Path,
}

impl WriteTx<'_> {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }

    /// Commits without bumping the store version: for bookkeeping no reader shows
    /// (task claims).
    pub(crate) async fn commit_unversioned(self) -> Result<()> {
        self.tx.commit().await.at(self.path)?;
        Ok(())
    }

    /// Bumps the store version and commits; returns the new version.
    pub(crate) async fn commit(mut self) -> Result<StoreVersion> {
        let version: i64 = sqlx::query_scalar(
            "UPDATE meta SET value = value + 1 WHERE key = 'store_version' RETURNING value",
        )
        .fetch_one(&mut *self.tx)
        .await
        .at(self.path)?;
        self.tx.commit().await.at(self.path)?;
        StoreVersion::try_from(version)
            .map_err(|_| Error::decode(self.path, "store_version", version).into())
    }
}

fn not_found(id: &TaskId) -> openloom_core::Error {
    openloom_core::Error::NotFound { what: "task", id: id.to_string() }
}

fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The SQL list of statuses, e.g. `'pending','running'`. Safe to inline: the names
/// come from the enum, never from input.
fn status_list(statuses: &[TaskStatus]) -> String {
    let mut names: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(",")
}

/// Rows per multi-row `INSERT`: one statement per chunk instead of per entry (each
/// statement is a hop to sqlx's SQLite worker thread), well under SQLite's limit of
/// bound parameters.
const LOG_ROWS_PER_INSERT: usize = 100;

async fn insert_log(
    conn: &mut SqliteConnection,
    path: &Path,
    id: &TaskId,
    entries: &[CheckLogEntry],
) -> Result<()> {
    // Exact repeats in a row become one row with a count (see `StoredLogEntry`):
    // first within the batch, then the batch's first entry against the stored last.
    let mut runs: Vec<Run> = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = CheckLogEntry {
            detail: truncate_tail(entry.detail.clone(), CheckLogEntry::MAX_DETAIL_BYTES),
            ..entry.clone()
        };
        match runs.last_mut() {
            Some(run) if run.entry.is_repeated_by(&entry) => run.repeat(entry.at),
            _ => runs.push(Run { entry, repeats: 1, last_at: None }),
        }
    }
    let Some(first) = runs.first() else { return Ok(()) };
    let sql =
        format!("SELECT {LOG_COLUMNS} FROM check_log WHERE task_id = ? ORDER BY seq DESC LIMIT 1");
    let last = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&mut *conn).await.at(path)?;
    let last = last.map(|row| codec::log_entry_from_row(path, &row)).transpose()?;
    if let Some(last) = last.filter(|last| last.entry.is_repeated_by(&first.entry)) {
        let last_at = first.last_at.unwrap_or(first.entry.at);
        sqlx::query("UPDATE check_log SET repeats = repeats + ?, last_at = ? WHERE seq = ?")
            .bind(i64::from(first.repeats))
            .bind(codec::timestamp(&last_at)?)
            .bind(last.seq)
            .execute(&mut *conn)
            .await
            .at(path)?;
        runs.remove(0);
    }
    for chunk in runs.chunks(LOG_ROWS_PER_INSERT) {
        let mut encoded = Vec::with_capacity(chunk.len());
        for run in chunk {
            let evidence =
                run.entry.evidence.as_ref().map(serde_json::to_string).transpose().map_err(
                    |e| openloom_core::Error::Invalid(format!("evidence is not JSON: {e}")),
                )?;
            let last_at = run.last_at.as_ref().map(codec::timestamp).transpose()?;
            encoded.push((codec::timestamp(&run.entry.at)?, run, evidence, last_at));
        }
        let sql = format!(
            "INSERT INTO check_log \
             (task_id, at, status, summary, detail, evidence_json, repeats, last_at) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (at, run, evidence, last_at) in encoded {
            query = query
                .bind(id.as_str())
                .bind(at)
                .bind(run.entry.status.as_str())
                .bind(&run.entry.summary)
                .bind(&run.entry.detail)
                .bind(evidence)
                .bind(i64::from(run.repeats))
                .bind(last_at);
        }
        query.execute(&mut *conn).await.at(path)?;
    }
    Ok(())
}

/// A check-log entry and how many times it was written in a row.
struct Run {
    entry: CheckLogEntry,
    repeats: u32,
    last_at: Option<DateTime<Utc>>,
}

impl Run {
    fn repeat(&mut self, at: DateTime<Utc>) {
        self.repeats = self.repeats.saturating_add(1);
        self.last_at = Some(at);
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_task(&self, task: &Task) -> Result<StoreVersion> {
        let mut tx = self.begin_write().await?;
        self.insert_task(tx.conn(), task).await?;
        tx.commit().await
    }

    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<Created> {
        let mut tx = self.begin_write().await?;
        // Under the write lock (BEGIN IMMEDIATE): no other process can record the
        // origin between this read and the insert below.
        let had: Option<String> =
            sqlx::query_scalar("SELECT task_id FROM origins WHERE origin = ?")
                .bind(origin)
                .fetch_optional(tx.conn())
                .await
                .map_err(|e| self.fail(e))?;
        if let Some(id) = had {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(Created::AlreadyHad(TaskId::from(id)));
        }
        self.insert_task(tx.conn(), task).await?;
        sqlx::query("INSERT INTO origins (origin, task_id, created_at) VALUES (?, ?, ?)")
            .bind(origin)
            .bind(task.id.as_str())
            .bind(codec::timestamp(&task.created_at)?)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?;
        Ok(Created::New(tx.commit().await?))
    }

    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT origin FROM origins WHERE task_id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail(e))
    }

    async fn write_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
        guard: &Guard,
    ) -> Result<WriteOutcome> {
        let now = Utc::now();
        let mut tx = self.begin_write().await?;
        // Read-modify-write under the write lock, with core's own `Task::apply` and
        // `Guard::check`, so partial updates and guards mean exactly what they mean in
        // the memory store.
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(tx.conn())
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| not_found(id))?;
        let mut task = codec::task_from_row(&self.path, &row)?;
        let held = match &guard.lease {
            Some(_) => self.valid_claim(tx.conn(), id, &codec::timestamp(&now)?).await?,
            None => None,
        };
        if let Some(rejection) = guard.check(&task, held.as_ref()) {
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(WriteOutcome::Rejected(rejection));
        }
        let before = task.clone();
        task.apply(update, now);
        if let Some(entry) = log {
            task.last_summary = Some(entry.summary.clone());
        }
        let revision = task.revision;
        let encoded = TaskRow::encode(&task)?;
        let update_sql = "UPDATE tasks SET name = ?2, spec_json = ?3, workspace = ?4, status = ?5, \
             current_step = ?6, completed_steps_json = ?7, idle_checks = ?8, progress = ?9, \
             check_interval_seconds = ?10, session_ids_json = ?11, active_session_id = ?12, \
             last_check_at = ?13, next_check_at = ?14, last_summary = ?15, error = ?16, \
             consecutive_errors = ?17, verification_rounds = ?18, last_verification_json = ?19, \
             last_message_id = ?20, created_at = ?21, updated_at = ?22, revision = ?23, \
             pending_requests_json = ?24, liveness_json = ?25, opencode = ?26 WHERE id = ?1";
        encoded.bind(sqlx::query(update_sql)).execute(tx.conn()).await.map_err(|e| self.fail(e))?;
        if let Some(entry) = log {
            insert_log(tx.conn(), &self.path, id, std::slice::from_ref(entry)).await?;
        }
        crate::outbox::queue(tx.conn(), &self.path, Some(&before), &task, now).await?;
        let version = tx.commit().await?;
        Ok(WriteOutcome::Written { version, revision })
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        row.map(|r| codec::task_from_row(&self.path, &r).map_err(Into::into)).transpose()
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        self.list(query, TASK_COLUMNS).await
    }

    async fn list_task_summaries(&self, query: &TaskQuery) -> Result<Vec<TaskSummary>> {
        let tasks: Vec<TaskSummary> = self.list(query, &codec::summary_columns()).await?;
        Ok(tasks.into_iter().map(|task| task.map_spec(SpecSummary::clipped)).collect())
    }

    async fn find_by_prefix(&self, prefix: &str, limit_n: usize) -> Result<Vec<Task>> {
        let sql = prefix_sql();
        let mut tx = self.begin_read().await?;
        let tasks = self.readable_tasks(&mut tx, &sql, &[Param::Text(prefix)], limit_n).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(tasks)
    }

    async fn list_due_tasks(&self, now: DateTime<Utc>, limit_n: usize) -> Result<Vec<Task>> {
        let sql = due_sql();
        let now = codec::timestamp(&now)?;
        let mut tx = self.begin_read().await?;
        let tasks = self.readable_tasks(&mut tx, &sql, &[Param::Text(&now)], limit_n).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(tasks)
    }

    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion> {
        let mut tx = self.begin_write().await?;
        // The check log goes with it through ON DELETE CASCADE (foreign keys are on
        // for every connection).
        let deleted = sqlx::query("DELETE FROM tasks WHERE id = ?")
            .bind(id.as_str())
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(id));
        }
        tx.commit().await
    }

    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let now = codec::timestamp(&now)?;
        let until = codec::timestamp(&until)?;
        let mut tx = self.begin_write().await?;
        self.require_seq(tx.conn(), id).await?;
        let lease = self.claim_in(tx.conn(), id, owner, &now, &until).await?;
        tx.commit_unversioned().await?;
        Ok(lease)
    }

    async fn claim_due_tasks(
        &self,
        owner: &str,
        query: &DueQuery,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Task, Lease)>> {
        let now = codec::timestamp(&query.now)?;
        let until = codec::timestamp(&until)?;
        // One write transaction: SQLite has one writer at a time, so no other
        // harness can claim between the list and the claims.
        let mut tx = self.begin_write().await?;
        let params =
            [Param::Text(&now), Param::Text(owner), Param::Optional(query.opencode.as_deref())];
        let due: Vec<Task> = self
            .readable_tasks(tx.conn(), &claimable_sql(query.unbound), &params, query.limit)
            .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for task in due {
            if let Some(lease) = self.claim_in(tx.conn(), &task.id, owner, &now, &until).await? {
                claimed.push((task, lease));
            }
        }
        tx.commit_unversioned().await?;
        Ok(claimed)
    }

    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        let now = codec::timestamp(&Utc::now())?;
        let until = codec::timestamp(&until)?;
        let mut tx = self.begin_write().await?;
        // An expired claim stays expired: another harness may have checked its task
        // meanwhile, and a new claim gets a new epoch.
        sqlx::query("UPDATE task_claims SET until = ? WHERE owner = ? AND until > ?")
            .bind(&until)
            .bind(owner)
            .bind(&now)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit_unversioned().await
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // The epochs outlive the claims, so a claim taken later never repeats one.
        sqlx::query(
            "INSERT INTO task_epochs (task_id, epoch) \
             SELECT task_id, epoch FROM task_claims WHERE owner = ?1 \
             ON CONFLICT (task_id) DO UPDATE SET epoch = MAX(task_epochs.epoch, excluded.epoch)",
        )
        .bind(owner)
        .execute(tx.conn())
        .await
        .map_err(|e| self.fail(e))?;
        sqlx::query("DELETE FROM task_claims WHERE owner = ?")
            .bind(owner)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit_unversioned().await
    }

    async fn drivers(&self, ids: &[TaskId], now: DateTime<Utc>) -> Result<HashMap<TaskId, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let ids = serde_json::to_string(&ids).map_err(|e| Error::decode(&self.path, "ids", e))?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT task_id, owner FROM task_claims \
             WHERE until > ? AND task_id IN (SELECT value FROM json_each(?))",
        )
        .bind(codec::timestamp(&now)?)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(rows.into_iter().map(|(id, owner)| (TaskId::from(id), owner)).collect())
    }

    async fn beat_worker(
        &self,
        name: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO workers (name, started_at, last_seen) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, \
             last_seen = excluded.last_seen",
        )
        .bind(name)
        .bind(codec::timestamp(&started_at)?)
        .bind(codec::timestamp(&now)?)
        .execute(tx.conn())
        .await
        .map_err(|e| self.fail(e))?;
        tx.commit_unversioned().await
    }

    async fn live_workers(&self, since: DateTime<Utc>) -> Result<Vec<Worker>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT name, started_at, last_seen FROM workers WHERE last_seen >= ? ORDER BY name",
        )
        .bind(codec::timestamp(&since)?)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        rows.into_iter()
            .map(|(name, started_at, last_seen)| {
                Ok(Worker {
                    started_at: codec::parse_time(&self.path, "workers.started_at", &started_at)?,
                    last_seen: codec::parse_time(&self.path, "workers.last_seen", &last_seen)?,
                    name,
                })
            })
            .collect()
    }

    async fn forget_worker(&self, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM workers WHERE name = ?")
            .bind(name)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit_unversioned().await
    }

    async fn append_check_log(
        &self,
        id: &TaskId,
        entries: &[CheckLogEntry],
    ) -> Result<StoreVersion> {
        let mut tx = self.begin_write().await?;
        // One statement both proves the task exists and records the last summary.
        let last = entries.last().map(|e| e.summary.as_str());
        let found =
            sqlx::query("UPDATE tasks SET last_summary = COALESCE(?, last_summary) WHERE id = ?")
                .bind(last)
                .bind(id.as_str())
                .execute(tx.conn())
                .await
                .map_err(|e| self.fail(e))?
                .rows_affected();
        if found == 0 {
            return Err(not_found(id));
        }
        insert_log(tx.conn(), &self.path, id, entries).await?;
        tx.commit().await
    }

    async fn check_log(&self, id: &TaskId, query: &LogQuery) -> Result<Vec<StoredLogEntry>> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.fail(e))?;
        let rows = sqlx::query(&log_sql())
            .bind(id.as_str())
            .bind(query.after.unwrap_or(i64::MIN))
            .bind(sql_int(query.limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.fail(e))?;
        // A log row proves its task exists (the foreign key deletes the log with the
        // task), so only an empty page asks whether the task is there: one query per
        // page instead of two, and a task deleted meanwhile is still "not found".
        if rows.is_empty() {
            self.require_seq(&mut conn, id).await?;
        }
        rows.iter()
            .map(|row| codec::log_entry_from_row(&self.path, row).map_err(Into::into))
            .collect()
    }

    async fn count_by_status(&self) -> Result<HashMap<TaskStatus, u64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM tasks GROUP BY status")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.fail(e))?;
        let mut counts = HashMap::new();
        for (status, count) in rows {
            // An unknown status is a damaged row, which the lists skip too.
            let Ok(status) = status.parse::<TaskStatus>() else {
                tracing::error!(path = %self.path.display(), status, count, "tasks with an unknown status not counted");
                continue;
            };
            let count =
                u64::try_from(count).map_err(|_| Error::decode(&self.path, "count", count))?;
            counts.insert(status, count);
        }
        Ok(counts)
    }

    async fn store_version(&self) -> Result<StoreVersion> {
        let version: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'store_version'")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        StoreVersion::try_from(version)
            .map_err(|_| Error::decode(&self.path, "store_version", version).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for `sql`, one line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.pool())
                .await
                .expect("explain");
        rows.into_iter().map(|(.., detail)| detail).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn the_frequent_queries_use_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path().join("db.sqlite3")).await.expect("open");
        let running = format!("AND status IN ({})", status_list(&[TaskStatus::Running]));
        let cases = [
            (list_sql(TASK_COLUMNS, ""), "USING INTEGER PRIMARY KEY"),
            (list_sql(TASK_COLUMNS, &running), "USING INDEX tasks_by_status (status=? AND seq<?)"),
            (list_sql(&codec::summary_columns(), ""), "USING INTEGER PRIMARY KEY"),
            // In due order from the partial index: no sort of every due task.
            (due_sql(), "SCAN tasks USING INDEX tasks_due_order"),
            (claimable_sql(true), "SCAN tasks USING INDEX tasks_due_order"),
            (claimable_sql(false), "SCAN tasks USING INDEX tasks_due_order"),
            (log_sql(), "INDEX check_log_by_task (task_id=? AND seq>?)"),
            ("SELECT seq FROM tasks WHERE id = ?".to_owned(), "sqlite_autoindex_tasks_1 (id=?)"),
            ("SELECT status, COUNT(*) FROM tasks GROUP BY status".to_owned(), "tasks_by_status"),
            // ON DELETE CASCADE looks the log rows up by task.
            ("DELETE FROM check_log WHERE task_id = ?".to_owned(), "check_log_by_task (task_id=?)"),
        ];
        for (sql, expected) in cases {
            let plan = plan(&store, &sql).await;
            assert!(plan.contains(expected), "{sql}\n{plan}");
            assert!(!plan.contains("SCAN tasks\n") && !plan.ends_with("SCAN tasks"), "{plan}");
            assert!(!plan.contains("SCAN check_log"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "sorted in memory: {sql}\n{plan}");
        }
    }
}
