//! [`PostgresStore`]: the [`Store`] trait on a PostgreSQL database.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::task::truncate_tail;
use openloom_core::{
    CheckLogEntry, Created, DueQuery, Guard, Lease, LogQuery, Result, Store, StoreVersion,
    StoredLogEntry, Task, TaskId, TaskQuery, TaskStatus, TaskSummary, TaskUpdate, Worker,
    WriteOutcome,
};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};

use crate::codec::{self, LOG_COLUMNS, SpecColumn, TASK_COLUMNS, TaskRow};
use crate::error::{Error, SqlxResultExt, Target, UNIQUE_VIOLATION};
use crate::open::{Location, Probe, StoreOptions, open_pool, probe};

/// Tasks, check logs, claims and recent workspaces in one PostgreSQL database,
/// shared by any number of workers.
///
/// Cheap to share behind an `Arc`; every method takes `&self`. Every write is one
/// transaction that locks the rows it reads before deciding (the task row for a
/// task write, its claim row for a guarded one) and bumps the store version last.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    location: Location,
    /// The change listener's hints, started by the first `version_hints` call.
    hints: std::sync::OnceLock<Option<tokio::sync::watch::Receiver<StoreVersion>>>,
}

/// A transaction on the pool.
pub(crate) type Tx = Transaction<'static, Postgres>;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://USER:PASSWORD@HOST:PORT/DB`)
    /// with default [`StoreOptions`] and applies pending migrations.
    ///
    /// Refuses (without changing it) a database whose schema is newer than this
    /// build, or one with tables OpenLoom did not create.
    pub async fn connect(url: &str) -> crate::Result<PostgresStore> {
        Self::connect_with(url, &StoreOptions::default()).await
    }

    /// Like [`PostgresStore::connect`], with explicit options.
    pub async fn connect_with(url: &str, options: &StoreOptions) -> crate::Result<PostgresStore> {
        let location = Location::parse(url)?;
        let pool = open_pool(&location, options).await?;
        tracing::debug!(database = %location.target, "opened the PostgreSQL store");
        Ok(PostgresStore { pool, location, hints: std::sync::OnceLock::new() })
    }

    /// Connects once to `url` without changing anything: whether the database is
    /// reachable, the server's version and OpenLoom's schema there, for `openloom
    /// doctor`.
    pub async fn probe(url: &str, timeout: Duration) -> crate::Result<Probe> {
        probe(&Location::parse(url)?, timeout).await
    }

    /// The database, as errors show it (everything in the URL but the password).
    pub fn target(&self) -> &Target {
        &self.location.target
    }

    /// The newest schema migration applied, for diagnostics.
    pub async fn schema_version(&self) -> crate::Result<i64> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&self.pool)
            .await
            .at(self.target())?;
        Ok(version.unwrap_or(0))
    }

    /// The connection pool, for diagnostics and tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) fn fail(&self, err: sqlx::Error) -> openloom_core::Error {
        Error::classify(self.target(), err).into()
    }

    pub(crate) async fn begin(&self) -> Result<Tx> {
        self.pool.begin().await.map_err(|e| self.fail(e))
    }

    /// Bumps the store version and commits; returns the new version. The version row
    /// is locked as the transaction's last step, so writers queue on it only for
    /// their commit, and versions increase in commit order across every worker.
    /// The same statement NOTIFYs the change channel ([`crate::listen`]); PostgreSQL
    /// delivers it only if the transaction commits.
    pub(crate) async fn commit(&self, mut tx: Tx) -> Result<StoreVersion> {
        let version: i64 = sqlx::query_scalar(crate::listen::BUMP_AND_NOTIFY)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        StoreVersion::try_from(version)
            .map_err(|_| Error::decode(self.target(), "store_version", version).into())
    }

    async fn require_task(&self, conn: &mut PgConnection, id: &TaskId) -> Result<()> {
        let found: Option<i64> = sqlx::query_scalar("SELECT seq FROM tasks WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(conn)
            .await
            .map_err(|e| self.fail(e))?;
        found.map(|_| ()).ok_or_else(|| not_found(id))
    }

    /// The claim on `id` valid at `now`, locked against a takeover (`FOR SHARE`)
    /// until the transaction ends: a guarded write checked against it commits before
    /// any other worker can take the task over.
    async fn locked_claim(
        &self,
        conn: &mut PgConnection,
        id: &TaskId,
    ) -> Result<Option<(Lease, String)>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(
            "SELECT owner, epoch, until FROM task_claims WHERE task_id = $1 FOR SHARE",
        )
        .bind(id.as_str())
        .fetch_optional(conn)
        .await
        .map_err(|e| self.fail(e))?;
        row.map(|(owner, epoch, until)| {
            u64::try_from(epoch)
                .map(|epoch| (Lease { owner, epoch }, until))
                .map_err(|_| Error::decode(self.target(), "task_claims.epoch", epoch).into())
        })
        .transpose()
    }

    /// [`Store::list_tasks`], the spec read as `S`.
    async fn list<S: SpecColumn>(&self, query: &TaskQuery) -> Result<Vec<Task<S>>> {
        let before = match &query.before {
            Some(cursor) => {
                let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM tasks WHERE id = $1")
                    .bind(cursor.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| self.fail(e))?;
                seq.ok_or_else(|| not_found(cursor))?
            }
            None => i64::MAX,
        };
        let filter = if query.statuses.is_empty() {
            String::new()
        } else {
            format!("AND status IN ({})", status_list(&query.statuses))
        };
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE seq < $1 {filter} \
             ORDER BY seq DESC LIMIT $2 OFFSET $3"
        );
        self.readable_tasks(&sql, &[Param::Int(before)], query.limit).await
    }

    /// Up to `limit` readable tasks from `sql`, a task `SELECT` whose last two
    /// parameters are `LIMIT $n OFFSET $n+1`, on one snapshot.
    ///
    /// A row that does not decode is logged with its task id and skipped, and the
    /// page is filled from the rows after it, as the SQLite store does: one damaged
    /// task must not hide every other.
    async fn readable_tasks<S: SpecColumn>(
        &self,
        sql: &str,
        params: &[Param<'_>],
        limit: usize,
    ) -> Result<Vec<Task<S>>> {
        // One snapshot for every round, so a page is consistent.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| self.fail(e))?;
        let mut tasks = Vec::new();
        let mut offset: i64 = 0;
        while tasks.len() < limit {
            let want = limit - tasks.len();
            let mut query = sqlx::query(sql);
            for param in params {
                query = match param {
                    Param::Int(value) => query.bind(*value),
                    Param::Text(text) => query.bind(*text),
                };
            }
            let rows = query
                .bind(sql_int(want))
                .bind(offset)
                .fetch_all(&mut *tx)
                .await
                .map_err(|e| self.fail(e))?;
            offset = offset.saturating_add(sql_int(rows.len()));
            for row in &rows {
                match codec::task_from_row(self.target(), row) {
                    Ok(task) => tasks.push(task),
                    Err(error) => tracing::error!(%error, "skipped a task that cannot be read"),
                }
            }
            if rows.len() < want {
                break;
            }
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(tasks)
    }
}

/// A bound parameter of a task list query.
enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

fn not_found(id: &TaskId) -> openloom_core::Error {
    openloom_core::Error::NotFound { what: "task", id: id.to_string() }
}

pub(crate) fn sql_int(n: usize) -> i64 {
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

/// The rules for a task due at `$1` (the SQLite store's): an active status; never
/// checked or due; a one-shot task (interval 0) only while pending. One text for
/// every due query.
const DUE_AT_1: &str = "status IN ('pending', 'running', 'waiting') \
     AND (next_check_at IS NULL OR next_check_at <= $1) \
     AND (status <> 'running' OR check_interval_seconds > 0)";

/// The harness's due tasks at `$1`, by the reference's rules (see the SQLite
/// store): NULL sorts first, like "due since forever" (PostgreSQL sorts NULL last by
/// default); `seq` keeps creation order among equal times.
fn due_sql() -> String {
    format!(
        "SELECT {TASK_COLUMNS} FROM tasks \
         WHERE {DUE_AT_1} \
         ORDER BY next_check_at ASC NULLS FIRST, seq ASC LIMIT $2 OFFSET $3"
    )
}

/// Releases owner `$1`'s claims that no other transaction has locked: the claims go,
/// their epochs stay (`task_epochs`), so a claim taken later never repeats one. A
/// claim another worker took over meanwhile has another owner by then and is not
/// touched. Locked rows are skipped, never waited for: a batch claim
/// ([`claim_batch_sql`]) may hold one of this owner's claim rows (its `ON CONFLICT`
/// locks the row it meets, even when it leaves it alone) while waiting for a row this
/// statement deletes, and waiting here would close the cycle (a deadlock PostgreSQL
/// breaks by failing one of the two).
const RELEASE_SQL: &str = "WITH mine AS (SELECT task_id FROM task_claims \
       WHERE owner = $1 FOR UPDATE SKIP LOCKED), \
     gone AS (DELETE FROM task_claims c USING mine \
       WHERE c.task_id = mine.task_id AND c.owner = $1 RETURNING c.task_id, c.epoch) \
     INSERT INTO task_epochs (task_id, epoch) SELECT task_id, epoch FROM gone \
     ON CONFLICT (task_id) DO UPDATE SET epoch = GREATEST(task_epochs.epoch, EXCLUDED.epoch)";

/// Rounds of [`RELEASE_SQL`] before the rest is left to run out (20 ms apart).
const RELEASE_ROUNDS: usize = 50;

/// Claims task `$1` for owner `$2` at `$3` until `$4`; returns the epoch, or no
/// row when another owner's claim is valid. One statement decides and writes, under
/// the claim row's lock: two workers claiming at once queue on it, and the second
/// sees the first's claim. A claim still valid is extended only for its owner and
/// keeps its epoch; one taken anew (none, expired, released) gets one more than any
/// epoch the task ever had (`task_epochs` remembers released ones).
const CLAIM_SQL: &str = "INSERT INTO task_claims AS c (task_id, owner, until, epoch) \
     VALUES ($1, $2, $4, \
             COALESCE((SELECT epoch FROM task_epochs WHERE task_id = $1), 0) + 1) \
     ON CONFLICT (task_id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until, \
       epoch = CASE WHEN c.until > $3 THEN c.epoch \
         ELSE GREATEST(c.epoch, \
                COALESCE((SELECT epoch FROM task_epochs WHERE task_id = $1), 0)) + 1 END \
     WHERE c.owner = EXCLUDED.owner OR c.until <= $3 \
     RETURNING epoch";

/// Claims, in one statement, the due tasks (`due_sql`'s rules) not under another
/// owner's claim valid at `$1` (owner `$2`), bound to the OpenCode server `$4`, or to
/// none when `unbound` (`$4` NULL: to none; [`DueQuery::drives`]), oldest due first, at most `$3`, until `$5`; returns
/// them with their epochs (`claimed_epoch`). The due rows are locked, and rows
/// another worker is claiming right now are skipped rather than waited for, so
/// concurrent workers take disjoint batches without queueing. The claim is
/// [`CLAIM_SQL`]'s, for the whole batch: one round trip instead of one per task.
fn claim_batch_sql(unbound: bool) -> String {
    let bound =
        if unbound { "(opencode IS NULL OR opencode = $4::text)" } else { "opencode = $4::text" };
    format!(
        "WITH due AS ( \
           SELECT id FROM tasks \
           WHERE {DUE_AT_1} \
             AND NOT EXISTS (SELECT 1 FROM task_claims c \
                             WHERE c.task_id = tasks.id AND c.until > $1 AND c.owner <> $2) \
             AND {bound} \
           ORDER BY next_check_at ASC NULLS FIRST, seq ASC LIMIT $3 \
           FOR UPDATE OF tasks SKIP LOCKED), \
         claimed AS ( \
           INSERT INTO task_claims AS c (task_id, owner, until, epoch) \
           SELECT due.id, $2, $5, \
                  COALESCE((SELECT e.epoch FROM task_epochs e WHERE e.task_id = due.id), 0) + 1 \
           FROM due \
           ON CONFLICT (task_id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until, \
             epoch = CASE WHEN c.until > $1 THEN c.epoch \
               ELSE GREATEST(c.epoch, COALESCE((SELECT e.epoch FROM task_epochs e \
                                                WHERE e.task_id = c.task_id), 0)) + 1 END \
           WHERE c.owner = EXCLUDED.owner OR c.until <= $1 \
           RETURNING c.task_id, c.epoch) \
         SELECT {TASK_COLUMNS}, claimed.epoch AS claimed_epoch \
         FROM tasks JOIN claimed ON claimed.task_id = tasks.id \
         ORDER BY tasks.next_check_at ASC NULLS FIRST, tasks.seq ASC"
    )
}

/// Rows per multi-row `INSERT` of check-log entries (8 parameters each, far under
/// PostgreSQL's 65,535).
const LOG_ROWS_PER_INSERT: usize = 100;

/// A check-log entry and how many times it was written in a row.
pub(crate) struct Run {
    pub entry: CheckLogEntry,
    pub repeats: u32,
    pub last_at: Option<DateTime<Utc>>,
}

/// Appends `entries` to `id`'s log on `conn` (the caller holds the task's row lock,
/// so the last entry cannot change under us): exact repeats in a row become one row
/// with a count, first within the batch, then the batch's first against the stored
/// last.
async fn insert_log(
    conn: &mut PgConnection,
    target: &Target,
    id: &TaskId,
    entries: &[CheckLogEntry],
) -> Result<()> {
    let mut runs: Vec<Run> = Vec::with_capacity(entries.len());
    for entry in entries {
        let entry = CheckLogEntry {
            detail: truncate_tail(entry.detail.clone(), CheckLogEntry::MAX_DETAIL_BYTES),
            ..entry.clone()
        };
        match runs.last_mut() {
            Some(run) if run.entry.is_repeated_by(&entry) => {
                run.repeats = run.repeats.saturating_add(1);
                run.last_at = Some(entry.at);
            }
            _ => runs.push(Run { entry, repeats: 1, last_at: None }),
        }
    }
    let Some(first) = runs.first() else { return Ok(()) };
    let sql =
        format!("SELECT {LOG_COLUMNS} FROM check_log WHERE task_id = $1 ORDER BY seq DESC LIMIT 1");
    let last = sqlx::query(&sql).bind(id.as_str()).fetch_optional(&mut *conn).await.at(target)?;
    let last = last.map(|row| codec::log_entry_from_row(target, &row)).transpose()?;
    if let Some(last) = last.filter(|last| last.entry.is_repeated_by(&first.entry)) {
        let last_at = first.last_at.unwrap_or(first.entry.at);
        sqlx::query("UPDATE check_log SET repeats = repeats + $1, last_at = $2 WHERE seq = $3")
            .bind(i64::from(first.repeats))
            .bind(codec::timestamp(&last_at)?)
            .bind(last.seq)
            .execute(&mut *conn)
            .await
            .at(target)?;
        runs.remove(0);
    }
    insert_runs(conn, target, id, &runs).await
}

/// Inserts `runs` as new rows of `id`'s log, in order.
pub(crate) async fn insert_runs(
    conn: &mut PgConnection,
    target: &Target,
    id: &TaskId,
    runs: &[Run],
) -> Result<()> {
    for chunk in runs.chunks(LOG_ROWS_PER_INSERT) {
        let mut encoded = Vec::with_capacity(chunk.len());
        for run in chunk {
            let evidence = run.entry.evidence.as_ref().map(codec::json).transpose()?;
            let last_at = run.last_at.as_ref().map(codec::timestamp).transpose()?;
            encoded.push((codec::timestamp(&run.entry.at)?, run, evidence, last_at));
        }
        let values: Vec<String> = (0..chunk.len())
            .map(|row| {
                let base = row * 8;
                let cells: Vec<String> = (1..=8).map(|col| format!("${}", base + col)).collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO check_log \
             (task_id, at, status, summary, detail, evidence_json, repeats, last_at) VALUES {}",
            values.join(", ")
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
        query.execute(&mut *conn).await.at(target)?;
    }
    Ok(())
}

/// Inserts `task` as a new row on `conn`; `false` when a task with its id exists.
pub(crate) async fn insert_task(
    conn: &mut PgConnection,
    target: &Target,
    task: &Task,
) -> Result<bool> {
    let row = TaskRow::encode(task)?;
    let sql = format!(
        "INSERT INTO tasks ({TASK_COLUMNS}) VALUES ({}) ON CONFLICT (id) DO NOTHING",
        codec::task_placeholders()
    );
    let inserted = row.bind(sqlx::query(&sql)).execute(conn).await.map_err(|e| {
        // ON CONFLICT covers the id; any other unique violation is a real conflict.
        match e.as_database_error().and_then(|db| db.code()).as_deref() {
            Some(UNIQUE_VIOLATION) => {
                openloom_core::Error::Conflict(format!("task {} already exists", task.id))
            }
            _ => Error::classify(target, e).into(),
        }
    })?;
    Ok(inserted.rows_affected() > 0)
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_task(&self, task: &Task) -> Result<StoreVersion> {
        let mut tx = self.begin().await?;
        if !insert_task(&mut tx, self.target(), task).await? {
            return Err(openloom_core::Error::Conflict(format!("task {} already exists", task.id)));
        }
        crate::outbox::queue(&mut tx, self.target(), None, task, Utc::now()).await?;
        self.commit(tx).await
    }

    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<Created> {
        let mut tx = self.begin().await?;
        // The origin first: a worker recording the same origin at the same moment
        // makes this insert wait for its commit, then do nothing — so exactly one of
        // them creates the task.
        let recorded = sqlx::query(
            "INSERT INTO origins (origin, task_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (origin) DO NOTHING",
        )
        .bind(origin)
        .bind(task.id.as_str())
        .bind(codec::timestamp(&task.created_at)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        if recorded.rows_affected() == 0 {
            // A new statement sees the other transaction's committed row.
            let id: String = sqlx::query_scalar("SELECT task_id FROM origins WHERE origin = $1")
                .bind(origin)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| self.fail(e))?;
            // Dropping the transaction rolls it back: nothing was written.
            return Ok(Created::AlreadyHad(TaskId::from(id)));
        }
        if !insert_task(&mut tx, self.target(), task).await? {
            return Err(openloom_core::Error::Conflict(format!("task {} already exists", task.id)));
        }
        crate::outbox::queue(&mut tx, self.target(), None, task, Utc::now()).await?;
        Ok(Created::New(self.commit(tx).await?))
    }

    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT origin FROM origins WHERE task_id = $1")
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
        let mut tx = self.begin().await?;
        // Read-modify-write under the task's row lock, with core's own `Task::apply`
        // and `Guard::check`, so partial updates and guards mean exactly what they
        // mean in the other stores. NO KEY UPDATE: the id does not change, so a
        // claim being inserted (whose foreign key takes KEY SHARE) need not wait.
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1 FOR NO KEY UPDATE");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| not_found(id))?;
        let mut task = codec::task_from_row(self.target(), &row)?;
        let claim = match &guard.lease {
            Some(_) => self.locked_claim(&mut tx, id).await?,
            None => None,
        };
        // The clock is read once the locks are held: waiting for them must not make
        // an expired claim look valid.
        let now = Utc::now();
        let now_text = codec::timestamp(&now)?;
        let held = claim.filter(|(_, until)| *until > now_text).map(|(lease, _)| lease);
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
        let update_sql = "UPDATE tasks SET name = $2, spec_json = $3, workspace = $4, \
             status = $5, current_step = $6, completed_steps_json = $7, idle_checks = $8, \
             progress = $9, check_interval_seconds = $10, session_ids_json = $11, \
             active_session_id = $12, last_check_at = $13, next_check_at = $14, \
             last_summary = $15, error = $16, consecutive_errors = $17, \
             verification_rounds = $18, last_verification_json = $19, last_message_id = $20, \
             created_at = $21, updated_at = $22, revision = $23, pending_requests_json = $24, \
             liveness_json = $25, opencode = $26 WHERE id = $1";
        encoded.bind(sqlx::query(update_sql)).execute(&mut *tx).await.map_err(|e| self.fail(e))?;
        if let Some(entry) = log {
            insert_log(&mut tx, self.target(), id, std::slice::from_ref(entry)).await?;
        }
        crate::outbox::queue(&mut tx, self.target(), Some(&before), &task, now).await?;
        let version = self.commit(tx).await?;
        Ok(WriteOutcome::Written { version, revision })
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        row.map(|r| codec::task_from_row(self.target(), &r).map_err(Into::into)).transpose()
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        self.list(query).await
    }

    async fn list_task_summaries(&self, query: &TaskQuery) -> Result<Vec<TaskSummary>> {
        self.list(query).await
    }

    async fn find_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Task>> {
        // `starts_with` rather than LIKE: `_`, which every id contains, is a LIKE
        // wildcard, and the match must be case-sensitive.
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE starts_with(id, $1) \
             ORDER BY seq DESC LIMIT $2 OFFSET $3"
        );
        self.readable_tasks(&sql, &[Param::Text(prefix)], limit).await
    }

    async fn list_due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>> {
        let now = codec::timestamp(&now)?;
        self.readable_tasks(&due_sql(), &[Param::Text(&now)], limit).await
    }

    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion> {
        let mut tx = self.begin().await?;
        // The log, claims and epochs go with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM tasks WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        if deleted == 0 {
            return Err(not_found(id));
        }
        self.commit(tx).await
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
        let mut conn = self.pool.acquire().await.map_err(|e| self.fail(e))?;
        // One statement decides and writes, under the claim row's lock: two workers
        // claiming at once queue on it, and the second sees the first's claim. A
        // claim still valid is extended only for its owner and keeps its epoch;
        // one taken anew (none, expired, released) gets one more than any epoch the
        // task ever had (`task_epochs` remembers released ones).
        let epoch: Option<i64> = sqlx::query_scalar(CLAIM_SQL)
            .bind(id.as_str())
            .bind(owner)
            .bind(&now)
            .bind(&until)
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| match e.as_database_error().and_then(|db| db.code()).as_deref() {
                // The task was deleted between the check and the claim.
                Some("23503") => not_found(id),
                _ => self.fail(e),
            })?;
        epoch
            .map(|epoch| {
                u64::try_from(epoch)
                    .map(|epoch| Lease { owner: owner.to_owned(), epoch })
                    .map_err(|_| Error::decode(self.target(), "task_claims.epoch", epoch).into())
            })
            .transpose()
    }

    async fn claim_due_tasks(
        &self,
        owner: &str,
        query: &DueQuery,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Task, Lease)>> {
        let now = codec::timestamp(&query.now)?;
        let until = codec::timestamp(&until)?;
        // One statement: the selected rows stay locked until the claims are written
        // (its own transaction), so a concurrent batch skips them. Claims bump no
        // store version.
        let mut conn = self.pool.acquire().await.map_err(|e| self.fail(e))?;
        let rows = sqlx::query(&claim_batch_sql(query.unbound))
            .bind(&now)
            .bind(owner)
            .bind(sql_int(query.limit))
            .bind(query.opencode.as_deref())
            .bind(&until)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| self.fail(e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let task: Task = match codec::task_from_row(self.target(), row) {
                Ok(task) => task,
                Err(error) => {
                    // Claimed and left alone: no worker could read it either.
                    tracing::error!(%error, "skipped a task that cannot be read");
                    continue;
                }
            };
            let epoch: i64 = sqlx::Row::try_get(row, "claimed_epoch").map_err(|e| self.fail(e))?;
            let epoch = u64::try_from(epoch)
                .map_err(|_| Error::decode(self.target(), "task_claims.epoch", epoch))?;
            claimed.push((task, Lease { owner: owner.to_owned(), epoch }));
        }
        Ok(claimed)
    }

    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        let now = codec::timestamp(&Utc::now())?;
        let until = codec::timestamp(&until)?;
        // An expired claim stays expired: another worker may have checked its task
        // meanwhile, and a new claim gets a new epoch. A claim row another worker's
        // batch claim has locked this instant is skipped, not waited for (see
        // `RELEASE_SQL`); the next beat renews it, well within the claim time.
        sqlx::query(
            "UPDATE task_claims SET until = $1 \
             WHERE owner = $2 AND task_id IN (SELECT task_id FROM task_claims \
               WHERE owner = $2 AND until > $3 FOR UPDATE SKIP LOCKED)",
        )
        .bind(&until)
        .bind(owner)
        .bind(&now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    async fn drivers(&self, ids: &[TaskId], now: DateTime<Utc>) -> Result<HashMap<TaskId, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<&str> = ids.iter().map(TaskId::as_str).collect();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT task_id, owner FROM task_claims WHERE until > $1 AND task_id = ANY($2)",
        )
        .bind(codec::timestamp(&now)?)
        .bind(&ids)
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
        sqlx::query(
            "INSERT INTO workers (name, started_at, last_seen) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, \
             last_seen = excluded.last_seen",
        )
        .bind(name)
        .bind(codec::timestamp(&started_at)?)
        .bind(codec::timestamp(&now)?)
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    async fn live_workers(&self, since: DateTime<Utc>) -> Result<Vec<Worker>> {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT name, started_at, last_seen FROM workers WHERE last_seen >= $1 ORDER BY name",
        )
        .bind(codec::timestamp(&since)?)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        let target = self.target();
        rows.into_iter()
            .map(|(name, started_at, last_seen)| {
                Ok(Worker {
                    started_at: codec::parse_time(target, "workers.started_at", &started_at)?,
                    last_seen: codec::parse_time(target, "workers.last_seen", &last_seen)?,
                    name,
                })
            })
            .collect()
    }

    async fn forget_worker(&self, name: &str) -> Result<()> {
        sqlx::query("DELETE FROM workers WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        // A few rounds at most: a row another worker's claim has locked this instant
        // is left for the next round. Whatever is left after them runs out with its
        // claim time, as a killed worker's claims do.
        for round in 0..RELEASE_ROUNDS {
            let mut conn = self.pool.acquire().await.map_err(|e| self.fail(e))?;
            sqlx::query(RELEASE_SQL)
                .bind(owner)
                .execute(&mut *conn)
                .await
                .map_err(|e| self.fail(e))?;
            let left: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM task_claims WHERE owner = $1)")
                    .bind(owner)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(|e| self.fail(e))?;
            if !left {
                return Ok(());
            }
            tracing::debug!(owner, round, "claims locked by another worker's claim; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        tracing::warn!(owner, "some claims could not be released; they run out with their time");
        Ok(())
    }

    async fn append_check_log(
        &self,
        id: &TaskId,
        entries: &[CheckLogEntry],
    ) -> Result<StoreVersion> {
        let mut tx = self.begin().await?;
        // One statement both proves the task exists, locks it (so its log's last
        // entry cannot change under us) and records the last summary.
        let last = entries.last().map(|e| e.summary.as_str());
        let found =
            sqlx::query("UPDATE tasks SET last_summary = COALESCE($1, last_summary) WHERE id = $2")
                .bind(last)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.fail(e))?
                .rows_affected();
        if found == 0 {
            return Err(not_found(id));
        }
        insert_log(&mut tx, self.target(), id, entries).await?;
        self.commit(tx).await
    }

    async fn check_log(&self, id: &TaskId, query: &LogQuery) -> Result<Vec<StoredLogEntry>> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.fail(e))?;
        let sql = format!(
            "SELECT {LOG_COLUMNS} FROM check_log WHERE task_id = $1 AND seq > $2 \
             ORDER BY seq ASC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
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
            self.require_task(&mut conn, id).await?;
        }
        rows.iter()
            .map(|row| codec::log_entry_from_row(self.target(), row).map_err(Into::into))
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
                tracing::error!(database = %self.target(), status, count, "tasks with an unknown status not counted");
                continue;
            };
            let count =
                u64::try_from(count).map_err(|_| Error::decode(self.target(), "count", count))?;
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
            .map_err(|_| Error::decode(self.target(), "store_version", version).into())
    }

    fn version_hints(&self) -> Option<tokio::sync::watch::Receiver<StoreVersion>> {
        self.hints.get_or_init(|| crate::listen::spawn(&self.pool, self.target())).clone()
    }
}
