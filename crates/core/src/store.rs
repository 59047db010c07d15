//! Where tasks live: the [`Store`] trait and an in-memory implementation.
//!
//! Every write returns the new store version, bumped in the same transaction as the
//! write itself, so the event announcing it can carry it. A task update and its
//! check-log entry are written together ([`Store::write_task`] takes an optional
//! entry): a crash can never leave a task updated without the log saying why.
//!
//! # Guarded writes
//! A harness reads a task, talks to the agent for a while, then writes what it
//! decided. Meanwhile a user may have paused it, or (with several harnesses on one
//! database) another harness may have taken it over. So a write can carry a
//! [`Guard`]: the task revision the update was computed from and the claim
//! ([`Lease`]) its writer holds. The store checks the guard *inside* its write
//! transaction and, when it no longer holds, changes nothing and answers
//! [`WriteOutcome::Rejected`] — a normal answer the caller handles, not an error.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskSummary, TaskUpdate};
use crate::worker::Worker;

pub use crate::memory_store::MemoryStore;

/// Which tasks to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskQuery {
    /// At most this many tasks.
    pub limit: usize,
    /// Only tasks created strictly before this task (keyset pagination cursor).
    pub before: Option<TaskId>,
    /// Only tasks with one of these statuses; empty means all.
    pub statuses: Vec<TaskStatus>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery { limit: 50, before: None, statuses: Vec::new() }
    }
}

impl TaskQuery {
    /// The newest `limit` tasks of any status.
    pub fn newest(limit: usize) -> Self {
        TaskQuery { limit, ..TaskQuery::default() }
    }
}

/// A check-log entry as stored, with its position in the task's log.
///
/// An entry repeated exactly ([`CheckLogEntry::is_repeated_by`]) by the next one
/// written for its task is stored once, with a count and the time of the last repeat.
/// The entry keeps its `seq`: a reader paging with `after` sees the entry once, and
/// its count as of the read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLogEntry {
    /// Increasing id of the entry (a pagination cursor).
    pub seq: i64,
    /// The entry, as first written.
    #[serde(flatten)]
    pub entry: CheckLogEntry,
    /// How many times the entry was written in a row (1 when never repeated).
    #[serde(default = "one")]
    pub repeats: u32,
    /// When the last repeat was written; `None` when never repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_at: Option<DateTime<Utc>>,
}

fn one() -> u32 {
    1
}

/// A claim on a task, as [`Store::claim_task`] grants it: who holds it and its
/// epoch, which grows each time the claim is taken anew (after it expired or was
/// released). A write guarded by a lease ([`Guard::lease`]) is accepted only while
/// that very claim still holds: a harness that stalled past its claim (a stopped VM,
/// a long pause) cannot overwrite the work of the harness that took the task over.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The holder's name (unique per harness).
    pub owner: String,
    /// Grows each time the claim is taken anew, from 1. Epoch 0 is the default
    /// `Store::claim_task` of a store that keeps no claims; the harness does not
    /// guard its writes with such a lease.
    pub epoch: u64,
}

/// What a guarded write requires of the stored task; checked inside the write's
/// transaction. The default requires nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// The write applies only while the task's revision is still this one: the
    /// update was computed from that revision, and any change since (a user's pause,
    /// another harness's check) wins.
    pub revision: Option<u64>,
    /// The write applies only while this claim on the task is still held and valid.
    pub lease: Option<Lease>,
}

impl Guard {
    /// A guard that requires nothing: the write always applies (if the task exists).
    pub fn none() -> Self {
        Guard::default()
    }

    /// A guard that requires the task to be at `revision`.
    pub fn at_revision(revision: u64) -> Self {
        Guard { revision: Some(revision), lease: None }
    }

    /// The same guard, also requiring `lease`.
    pub fn holding(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Why `task` (with `held`, the claim on it now, if any valid at `now`) fails this
    /// guard, or `None` when it holds. Stores call it inside their write transaction,
    /// so every store means the same by a guard.
    pub fn check(&self, task: &Task, held: Option<&Lease>) -> Option<Rejection> {
        if let Some(expected) = self.revision
            && expected != task.revision
        {
            return Some(Rejection::Changed { expected, found: task.revision });
        }
        if let Some(lease) = &self.lease
            && held != Some(lease)
        {
            return Some(Rejection::LeaseLost { lease: lease.clone(), held: held.cloned() });
        }
        None
    }
}

/// Why a guarded write was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The task changed since the update was computed.
    Changed {
        /// The revision the update was computed from.
        expected: u64,
        /// The revision the task is at now.
        found: u64,
    },
    /// The writer's claim on the task expired or passed to another harness.
    LeaseLost {
        /// The claim the writer thought it held.
        lease: Lease,
        /// The claim that holds now, if any.
        held: Option<Lease>,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Changed { expected, found } => {
                write!(f, "the task changed meanwhile (revision {expected} → {found})")
            }
            Rejection::LeaseLost { lease, held: Some(held) } => write!(
                f,
                "the claim of {} (epoch {}) passed to {} (epoch {})",
                lease.owner, lease.epoch, held.owner, held.epoch
            ),
            Rejection::LeaseLost { lease, held: None } => {
                write!(f, "the claim of {} (epoch {}) expired", lease.owner, lease.epoch)
            }
        }
    }
}

/// What a store did with a guarded write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum WriteOutcome {
    /// Written: the new store version and the task's new revision.
    Written {
        /// The store version of this write.
        version: StoreVersion,
        /// The task's revision after it.
        revision: u64,
    },
    /// Not written: the guard did not hold. Nothing changed.
    Rejected(Rejection),
}

/// What [`Store::create_task_once`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[must_use]
pub enum Created {
    /// The task was created and its origin recorded: the store version of the write.
    New(StoreVersion),
    /// The origin was recorded before, for this task (which may have been deleted
    /// since): nothing was written.
    AlreadyHad(TaskId),
}

/// Which check-log entries to read, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// Only entries after this sequence number.
    pub after: Option<i64>,
    /// At most this many entries.
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery { after: None, limit: 100 }
    }
}

/// Persistent storage of tasks and their check logs.
#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a new task. Fails with `Conflict` if the id exists.
    async fn create_task(&self, task: &Task) -> Result<StoreVersion>;

    /// Inserts a new task and records `origin` (where it came from: an inbox file, a
    /// GitHub delivery, see [`crate::source::Origin`]) **in the same transaction**,
    /// unless `origin` is recorded already: then nothing is written and the answer
    /// names the task it was recorded for. A crash can so never leave a task created
    /// without its origin, and a source that retries after one (an inbox file that
    /// was not moved yet, a redelivered webhook) never creates a second task. An
    /// origin outlives its task: a deleted task's origin is still "had". Fails with
    /// `Conflict` if the task id exists (and then records nothing).
    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<Created>;

    /// Where task `id` came from: the origin [`Store::create_task_once`] recorded for
    /// it, or `None` for a task created without one (by the API, `watch`).
    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>>;

    /// Applies a partial update (with [`Task::apply`], which bumps the revision) and, in
    /// the same transaction, appends `log` if given, if `guard` holds
    /// ([`Guard::check`], inside the transaction). Fails with `NotFound` if the task
    /// does not exist; a guard that does not hold is [`WriteOutcome::Rejected`].
    async fn write_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
        guard: &Guard,
    ) -> Result<WriteOutcome>;

    /// [`Store::write_task`] without a guard: the update always applies.
    async fn update_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
    ) -> Result<StoreVersion> {
        match self.write_task(id, update, log, &Guard::none()).await? {
            WriteOutcome::Written { version, .. } => Ok(version),
            // Only a store that ignores the contract rejects an empty guard.
            WriteOutcome::Rejected(rejection) => Err(Error::Conflict(rejection.to_string())),
        }
    }

    /// One task, or `None`.
    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>>;

    /// Tasks newest first, filtered and paginated by `query`.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>>;

    /// [`Store::list_tasks`] as lists show it: the same tasks, each spec summarised
    /// ([`Task::summarised`]). A store that can should summarise without reading
    /// whole specs into memory: a page of large tasks is what lists, `/api/state` and
    /// every SSE snapshot read.
    async fn list_task_summaries(&self, query: &TaskQuery) -> Result<Vec<TaskSummary>> {
        Ok(self.list_tasks(query).await?.into_iter().map(Task::summarised).collect())
    }

    /// Tasks whose id starts with `prefix` (for the CLI), at most `limit`.
    async fn find_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Task>>;

    /// Tasks the harness should check now: pending and waiting ones whose next check
    /// is due, and running ones with a positive interval whose next check is due (a
    /// running task with interval 0 is checked only when its session goes idle; a
    /// waiting one must come back after its backoff whatever its interval). Oldest due
    /// first.
    async fn list_due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>>;

    /// Claims, for the harness `owner` until `until`, the tasks due by `query`
    /// ([`Store::list_due_tasks`]'s rules, oldest due first, at most `query.limit`)
    /// that no other owner holds a valid claim on at `query.now`, with the epoch
    /// rules of [`Store::claim_task`]: `owner`'s own valid claim is extended and
    /// keeps its epoch, one taken anew gets a greater epoch. A store that can does it
    /// in one transaction, skipping rows another worker is claiming right now
    /// (PostgreSQL's `FOR UPDATE SKIP LOCKED`), so two workers never get one task.
    ///
    /// Tasks bound to another OpenCode server than `query.opencode` are left alone.
    ///
    /// The default lists due tasks and claims them one by one: correct (each claim
    /// decides alone), only slower, so third-party stores keep working. It filters
    /// the OpenCode binding after listing, so a batch may come back short.
    async fn claim_due_tasks(
        &self,
        owner: &str,
        query: &DueQuery,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Task, Lease)>> {
        let mut claimed = Vec::new();
        let due = self.list_due_tasks(query.now, query.limit).await?;
        for task in due.into_iter().filter(|t| query.drives(t)) {
            match self.claim_task(&task.id, owner, query.now, until).await {
                Ok(Some(lease)) => claimed.push((task, lease)),
                Ok(None) => {}
                // Deleted between the list and the claim: nothing to drive.
                Err(Error::NotFound { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(claimed)
    }

    /// Deletes a task and its check log. Fails with `NotFound` if it does not exist.
    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion>;

    /// Claims task `id` for the harness `owner` until `until`, unless another
    /// owner's claim is still valid at `now`; returns the lease `owner` holds, or
    /// `None`. A claim still valid and held by `owner` is extended and keeps its
    /// epoch; one taken anew (unclaimed, expired, released) gets a greater epoch than
    /// any the task had. A harness checks only tasks it holds, so two harnesses
    /// sharing a store (say `openloom serve` and `openloom watch` on one database)
    /// never drive one task at once, and it guards its writes with the lease. Claims
    /// are bookkeeping, not task data: they bump no store version.
    ///
    /// The default grants every claim at epoch 0: right for a store only one harness
    /// uses (its `write_task` then has no claims to check a lease against).
    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let _ = (id, now, until);
        Ok(Some(Lease { owner: owner.to_owned(), epoch: 0 }))
    }

    /// Extends every claim `owner` holds to `until` (a harness's heartbeat).
    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        let _ = (owner, until);
        Ok(())
    }

    /// Gives up every claim `owner` holds (a harness stopping cleanly).
    async fn release_claims(&self, owner: &str) -> Result<()> {
        let _ = owner;
        Ok(())
    }

    /// Who drives each of `ids` at `now`: the owner of a claim still valid then (a
    /// worker's name). Tasks under no valid claim are left out. The default (a store
    /// that keeps no claims) knows of none.
    async fn drivers(&self, ids: &[TaskId], now: DateTime<Utc>) -> Result<HashMap<TaskId, String>> {
        let _ = (ids, now);
        Ok(HashMap::new())
    }

    /// Records worker `name`'s heartbeat at `now` (it started at `started_at`).
    async fn beat_worker(
        &self,
        name: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let _ = (name, started_at, now);
        Ok(())
    }

    /// Workers whose last heartbeat is at or after `since`, by name.
    async fn live_workers(&self, since: DateTime<Utc>) -> Result<Vec<Worker>> {
        let _ = since;
        Ok(Vec::new())
    }

    /// Forgets worker `name` (it stopped cleanly).
    async fn forget_worker(&self, name: &str) -> Result<()> {
        let _ = name;
        Ok(())
    }

    /// Appends entries to a task's check log in one transaction (an entry that repeats
    /// the one before it is counted on that one, see [`StoredLogEntry`]).
    async fn append_check_log(
        &self,
        id: &TaskId,
        entries: &[CheckLogEntry],
    ) -> Result<StoreVersion>;

    /// A page of a task's check log, oldest first.
    async fn check_log(&self, id: &TaskId, query: &LogQuery) -> Result<Vec<StoredLogEntry>>;

    /// Number of tasks per status.
    async fn count_by_status(&self) -> Result<HashMap<TaskStatus, u64>>;

    /// The current store version.
    async fn store_version(&self) -> Result<StoreVersion>;

    /// Wake-ups for readers that follow the store: a receiver whose value changes
    /// soon after any process commits a write to this store (the value is the
    /// version that write announced, as a *hint*: read the store for the data and
    /// the real version). Coalesced, so a burst of writes may wake a reader once.
    ///
    /// `None` (the default) means the store cannot tell: a reader then polls
    /// [`Store::store_version`]. A store that answers `Some` is polled too, as a
    /// fallback, so a missed wake-up only delays a reader, never loses a change.
    /// Must be called inside a tokio runtime (a store may spawn its listener here).
    fn version_hints(&self) -> Option<tokio::sync::watch::Receiver<StoreVersion>> {
        None
    }
}

/// Which due tasks [`Store::claim_due_tasks`] asks for. A struct rather than
/// arguments, so filters (say, only the tasks of this worker's agent servers) can
/// join without changing every store's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DueQuery {
    /// Due at or before this time; claims valid at this time are respected.
    pub now: DateTime<Utc>,
    /// At most this many tasks.
    pub limit: usize,
    /// Only tasks this worker can drive ([`Task::runs_on`]): bound to the OpenCode
    /// server of this name, or to none. `None`: unbound tasks only.
    pub opencode: Option<String>,
    /// Whether tasks bound to no OpenCode server are included (the default). A
    /// worker connected to several servers asks for them with one of its harnesses
    /// only ([`Task::driven_on`]).
    pub unbound: bool,
}

impl DueQuery {
    /// Tasks due at `now`, at most `limit`, bound to no OpenCode server.
    pub fn new(now: DateTime<Utc>, limit: usize) -> Self {
        Self { now, limit, opencode: None, unbound: true }
    }

    /// The same query, for a worker connected to the OpenCode server named
    /// `opencode` (when `Some`).
    pub fn on(mut self, opencode: Option<String>) -> Self {
        self.opencode = opencode;
        self
    }

    /// The same query, with or without the tasks bound to no OpenCode server.
    pub fn unbound(mut self, included: bool) -> Self {
        self.unbound = included;
        self
    }

    /// Whether `task` is one this query asks for, due or not ([`Task::driven_on`]).
    pub fn drives(&self, task: &Task) -> bool {
        task.driven_on(self.opencode.as_deref(), self.unbound)
    }
}

/// A workspace the user used recently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentWorkspace {
    /// Absolute directory path.
    pub path: String,
    /// When it was last used.
    pub used_at: DateTime<Utc>,
}

/// The list of recently used workspaces shown by the dashboard.
#[async_trait]
pub trait RecentWorkspaces: Send + Sync {
    /// Records a use of `path` (moving it to the front), keeping the newest
    /// [`RECENT_WORKSPACES_KEPT`].
    async fn record_workspace(&self, path: &str, at: DateTime<Utc>) -> Result<()>;
    /// Recent workspaces, newest first.
    async fn recent_workspaces(&self) -> Result<Vec<RecentWorkspace>>;
    /// Forgets a workspace. Returns whether it was known.
    async fn remove_workspace(&self, path: &str) -> Result<bool>;
}

/// How many recent workspaces are kept.
pub const RECENT_WORKSPACES_KEPT: usize = 20;
