//! Where tasks live: the [`Store`] trait and an in-memory implementation.
//!
//! Every write returns the new store version, bumped in the same transaction as the
//! write itself, so the event announcing it can carry it. A task update and its
//! check-log entry are written together ([`Store::update_task`] takes an optional
//! entry): a crash can never leave a task updated without the log saying why.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLogEntry {
    /// Increasing id of the entry (a pagination cursor).
    pub seq: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: CheckLogEntry,
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

    /// Applies a partial update and, in the same transaction, appends `log` if given.
    /// Fails with `NotFound` if the task does not exist.
    async fn update_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
    ) -> Result<StoreVersion>;

    /// One task, or `None`.
    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>>;

    /// Tasks newest first, filtered and paginated by `query`.
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>>;

    /// Tasks whose id starts with `prefix` (for the CLI), at most `limit`.
    async fn find_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Task>>;

    /// Tasks the harness should check now: pending and waiting ones whose next check
    /// is due, and running ones with a positive interval whose next check is due (a
    /// running task with interval 0 is checked only when its session goes idle; a
    /// waiting one must come back after its backoff whatever its interval). Oldest due
    /// first.
    async fn list_due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>>;

    /// Deletes a task and its check log. Fails with `NotFound` if it does not exist.
    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion>;

    /// Claims task `id` for the harness `owner` until `until`, unless another
    /// owner's claim is still valid at `now`; returns whether `owner` holds it. A
    /// harness checks only tasks it holds, so two harnesses sharing a store (say
    /// `openloom serve` and `openloom watch` on one database) never drive one task
    /// at once. Claims are bookkeeping, not task data: they bump no store version.
    ///
    /// The default grants every claim: right for a store only one harness uses.
    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let _ = (id, owner, now, until);
        Ok(true)
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

    /// Appends entries to a task's check log in one transaction.
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

/// A [`Store`] in memory, for tests and embedders who need no persistence.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    version: StoreVersion,
    /// Tasks in creation order.
    tasks: Vec<Task>,
    logs: HashMap<TaskId, Vec<StoredLogEntry>>,
    next_seq: i64,
    recent: Vec<RecentWorkspace>,
    /// Errors the next task updates fail with, in order (see `fail_next_update`).
    update_failures: std::collections::VecDeque<Error>,
    /// Task id → (owner, valid until), see [`Store::claim_task`].
    claims: HashMap<TaskId, (String, DateTime<Utc>)>,
}

impl MemoryInner {
    fn bump(&mut self) -> StoreVersion {
        self.version += 1;
        self.version
    }

    fn position(&self, id: &TaskId) -> Result<usize> {
        self.tasks
            .iter()
            .position(|t| &t.id == id)
            .ok_or_else(|| Error::NotFound { what: "task", id: id.to_string() })
    }

    fn append(&mut self, id: &TaskId, entries: &[CheckLogEntry]) {
        for entry in entries {
            self.next_seq += 1;
            let seq = self.next_seq;
            self.logs
                .entry(id.clone())
                .or_default()
                .push(StoredLogEntry { seq, entry: entry.clone() });
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `update_task` fail with `error` and change nothing, as a real
    /// store does when another process holds its lock ([`Error::StoreBusy`]) or its
    /// disk is full. Queued failures are used in order.
    pub fn fail_next_update(&self, error: Error) {
        self.lock().update_failures.push_back(error);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_task(&self, task: &Task) -> Result<StoreVersion> {
        let mut inner = self.lock();
        if inner.tasks.iter().any(|t| t.id == task.id) {
            return Err(Error::Conflict(format!("task {} already exists", task.id)));
        }
        inner.tasks.push(task.clone());
        Ok(inner.bump())
    }

    async fn update_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
    ) -> Result<StoreVersion> {
        let mut inner = self.lock();
        if let Some(error) = inner.update_failures.pop_front() {
            return Err(error);
        }
        let index = inner.position(id)?;
        inner.tasks[index].apply(update, Utc::now());
        if let Some(entry) = log {
            inner.tasks[index].last_summary = Some(entry.summary.clone());
            inner.append(id, std::slice::from_ref(entry));
        }
        Ok(inner.bump())
    }

    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>> {
        Ok(self.lock().tasks.iter().find(|t| &t.id == id).cloned())
    }

    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        let inner = self.lock();
        let end = match &query.before {
            Some(cursor) => inner.position(cursor)?,
            None => inner.tasks.len(),
        };
        Ok(inner.tasks[..end]
            .iter()
            .rev()
            .filter(|t| query.statuses.is_empty() || query.statuses.contains(&t.status))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn find_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Task>> {
        let inner = self.lock();
        Ok(inner
            .tasks
            .iter()
            .rev()
            .filter(|t| t.id.as_str().starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list_due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>> {
        let inner = self.lock();
        let mut due: Vec<Task> = inner
            .tasks
            .iter()
            .filter(|t| t.status.is_active())
            .filter(|t| t.next_check_at.is_none_or(|at| at <= now))
            .filter(|t| t.status != TaskStatus::Running || t.check_interval_seconds > 0)
            .cloned()
            .collect();
        due.sort_by_key(|t| t.next_check_at.unwrap_or(DateTime::<Utc>::MIN_UTC));
        due.truncate(limit);
        Ok(due)
    }

    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion> {
        let mut inner = self.lock();
        let index = inner.position(id)?;
        inner.tasks.remove(index);
        inner.logs.remove(id);
        inner.claims.remove(id);
        Ok(inner.bump())
    }

    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let mut inner = self.lock();
        inner.position(id)?;
        let held_elsewhere = inner
            .claims
            .get(id)
            .is_some_and(|(holder, valid_until)| holder != owner && *valid_until > now);
        if held_elsewhere {
            return Ok(false);
        }
        inner.claims.insert(id.clone(), (owner.to_owned(), until));
        Ok(true)
    }

    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        for (holder, valid_until) in self.lock().claims.values_mut() {
            if holder == owner {
                *valid_until = until;
            }
        }
        Ok(())
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        self.lock().claims.retain(|_, (holder, _)| holder != owner);
        Ok(())
    }

    async fn append_check_log(
        &self,
        id: &TaskId,
        entries: &[CheckLogEntry],
    ) -> Result<StoreVersion> {
        let mut inner = self.lock();
        let index = inner.position(id)?;
        if let Some(last) = entries.last() {
            inner.tasks[index].last_summary = Some(last.summary.clone());
        }
        inner.append(id, entries);
        Ok(inner.bump())
    }

    async fn check_log(&self, id: &TaskId, query: &LogQuery) -> Result<Vec<StoredLogEntry>> {
        let inner = self.lock();
        inner.position(id)?;
        Ok(inner
            .logs
            .get(id)
            .map(|log| {
                log.iter()
                    .filter(|e| query.after.is_none_or(|after| e.seq > after))
                    .take(query.limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn count_by_status(&self) -> Result<HashMap<TaskStatus, u64>> {
        let mut counts = HashMap::new();
        for task in &self.lock().tasks {
            *counts.entry(task.status).or_insert(0) += 1;
        }
        Ok(counts)
    }

    async fn store_version(&self) -> Result<StoreVersion> {
        Ok(self.lock().version)
    }
}

#[async_trait]
impl RecentWorkspaces for MemoryStore {
    async fn record_workspace(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        let mut inner = self.lock();
        inner.recent.retain(|w| w.path != path);
        inner.recent.insert(0, RecentWorkspace { path: path.to_owned(), used_at: at });
        inner.recent.truncate(RECENT_WORKSPACES_KEPT);
        Ok(())
    }

    async fn recent_workspaces(&self) -> Result<Vec<RecentWorkspace>> {
        Ok(self.lock().recent.clone())
    }

    async fn remove_workspace(&self, path: &str) -> Result<bool> {
        let mut inner = self.lock();
        let before = inner.recent.len();
        inner.recent.retain(|w| w.path != path);
        Ok(inner.recent.len() != before)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::spec::TaskSpec;

    fn task(id: &str, now: DateTime<Utc>) -> Task {
        Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "g"), now)
    }

    #[tokio::test]
    async fn every_write_bumps_the_version() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let v1 = store.create_task(&task("task_a", now)).await.expect("create");
        let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "");
        let v2 = store
            .update_task(&TaskId::from("task_a"), &TaskUpdate::default(), Some(&entry))
            .await
            .expect("update");
        let v3 = store.delete_task(&TaskId::from("task_a")).await.expect("delete");
        assert!(v1 < v2 && v2 < v3);
        assert_eq!(store.store_version().await.expect("version"), v3);
    }

    #[tokio::test]
    async fn due_tasks_follow_the_reference_rules() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let mut later = task("task_later", now);
        later.status = TaskStatus::Running;
        later.next_check_at = Some(now + Duration::seconds(60));
        let mut one_shot = task("task_oneshot", now);
        one_shot.status = TaskStatus::Running;
        one_shot.check_interval_seconds = 0;
        let mut paused = task("task_paused", now);
        paused.status = TaskStatus::Paused;
        let mut old = task("task_old", now);
        old.status = TaskStatus::Waiting;
        old.next_check_at = Some(now - Duration::seconds(30));
        for t in [task("task_new", now), later, one_shot, paused, old] {
            store.create_task(&t).await.expect("create");
        }
        let due: Vec<String> = store
            .list_due_tasks(now, 10)
            .await
            .expect("due")
            .into_iter()
            .map(|t| t.id.to_string())
            .collect();
        assert_eq!(due, vec!["task_old", "task_new"]);
    }

    #[tokio::test]
    async fn list_is_newest_first_with_a_cursor() {
        let store = MemoryStore::new();
        let now = Utc::now();
        for id in ["task_1", "task_2", "task_3"] {
            store.create_task(&task(id, now)).await.expect("create");
        }
        let first = store.list_tasks(&TaskQuery::newest(2)).await.expect("list");
        assert_eq!(first.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["task_3", "task_2"]);
        let query = TaskQuery { before: Some(first[1].id.clone()), ..TaskQuery::newest(2) };
        let next = store.list_tasks(&query).await.expect("list");
        assert_eq!(next.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["task_1"]);
    }

    #[tokio::test]
    async fn missing_tasks_are_not_found() {
        let store = MemoryStore::new();
        let err = store
            .update_task(&TaskId::from("task_x"), &TaskUpdate::default(), None)
            .await
            .expect_err("missing");
        assert!(matches!(err, Error::NotFound { what: "task", .. }));
    }

    #[tokio::test]
    async fn recent_workspaces_keep_the_newest_twenty() {
        let store = MemoryStore::new();
        let now = Utc::now();
        for i in 0..25 {
            store.record_workspace(&format!("/w{i}"), now).await.expect("record");
        }
        store.record_workspace("/w10", now).await.expect("record");
        let recent = store.recent_workspaces().await.expect("list");
        assert_eq!(recent.len(), RECENT_WORKSPACES_KEPT);
        assert_eq!(recent[0].path, "/w10");
        assert!(store.remove_workspace("/w10").await.expect("remove"));
        assert!(!store.remove_workspace("/w10").await.expect("remove"));
    }
}
