//! [`MemoryStore`]: the [`Store`] trait in memory, for tests and embedders who need no
//! persistence. It means by every method what the SQLite store means (the parity
//! transcript test in `openloom-store-sqlite` holds the two to it).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::outbox::{self, Attempt, Delivery, DeliveryQuery, DeliveryStatus, Hook, Outbox};
use crate::store::{
    Created, DueQuery, Guard, Lease, LogQuery, RECENT_WORKSPACES_KEPT, RecentWorkspace,
    RecentWorkspaces, Store, StoredLogEntry, TaskQuery, WriteOutcome,
};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};
use crate::worker::Worker;

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
    /// Task id → (lease, valid until), see [`Store::claim_task`].
    claims: HashMap<TaskId, (Lease, DateTime<Utc>)>,
    /// Task id → the greatest epoch any claim on it had (released claims included).
    epochs: HashMap<TaskId, u64>,
    /// Worker name → its heartbeat.
    workers: std::collections::BTreeMap<String, Worker>,
    /// Origin key → the task created from it (see [`Store::create_task_once`]).
    origins: HashMap<String, TaskId>,
    /// Registered webhooks ([`Outbox::register_hooks`]).
    hooks: Vec<Hook>,
    /// Webhook deliveries, oldest first.
    deliveries: Vec<Delivery>,
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
            let log = self.logs.entry(id.clone()).or_default();
            if let Some(last) = log.last_mut().filter(|last| last.entry.is_repeated_by(entry)) {
                last.repeats = last.repeats.saturating_add(1);
                last.last_at = Some(entry.at);
                continue;
            }
            self.next_seq += 1;
            let seq = self.next_seq;
            log.push(StoredLogEntry { seq, entry: entry.clone(), repeats: 1, last_at: None });
        }
    }

    /// Queues the deliveries the change from `before` to `after` causes, in the
    /// same critical section as the change (the memory store's transaction).
    fn queue_notices(&mut self, before: Option<&Task>, after: &Task, at: DateTime<Utc>) {
        let notices = outbox::notices(before, after, at);
        let routed = outbox::route(&notices, &self.hooks);
        self.deliveries.extend(routed);
    }

    fn delivery(&mut self, id: &str) -> Result<&mut Delivery> {
        self.deliveries
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(|| Error::NotFound { what: "delivery", id: id.to_owned() })
    }

    /// The claim on `id` valid at `now`, if any.
    fn valid_claim(&self, id: &TaskId, now: DateTime<Utc>) -> Option<&Lease> {
        self.claims.get(id).filter(|(_, until)| *until > now).map(|(lease, _)| lease)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next task write fail with `error` and change nothing, as a real
    /// store does when another process holds its lock ([`Error::StoreBusy`]) or its
    /// disk is full. Queued failures are used in order.
    #[cfg(any(test, feature = "test-util"))]
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
        inner.queue_notices(None, task, Utc::now());
        Ok(inner.bump())
    }

    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<Created> {
        let mut inner = self.lock();
        if let Some(id) = inner.origins.get(origin) {
            return Ok(Created::AlreadyHad(id.clone()));
        }
        if inner.tasks.iter().any(|t| t.id == task.id) {
            return Err(Error::Conflict(format!("task {} already exists", task.id)));
        }
        inner.origins.insert(origin.to_owned(), task.id.clone());
        inner.tasks.push(task.clone());
        inner.queue_notices(None, task, Utc::now());
        Ok(Created::New(inner.bump()))
    }

    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>> {
        let inner = self.lock();
        Ok(inner.origins.iter().find(|(_, task)| *task == id).map(|(origin, _)| origin.clone()))
    }

    async fn write_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
        guard: &Guard,
    ) -> Result<WriteOutcome> {
        let mut inner = self.lock();
        if let Some(error) = inner.update_failures.pop_front() {
            return Err(error);
        }
        let index = inner.position(id)?;
        let now = Utc::now();
        if let Some(rejection) = guard.check(&inner.tasks[index], inner.valid_claim(id, now)) {
            return Ok(WriteOutcome::Rejected(rejection));
        }
        let before = inner.tasks[index].clone();
        let task = &mut inner.tasks[index];
        task.apply(update, now);
        if let Some(entry) = log {
            task.last_summary = Some(entry.summary.clone());
        }
        let revision = task.revision;
        let after = task.clone();
        if let Some(entry) = log {
            inner.append(id, std::slice::from_ref(entry));
        }
        inner.queue_notices(Some(&before), &after, now);
        Ok(WriteOutcome::Written { version: inner.bump(), revision })
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
        let mut due: Vec<Task> = inner.tasks.iter().filter(|t| t.is_due(now)).cloned().collect();
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
        inner.epochs.remove(id);
        Ok(inner.bump())
    }

    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        let mut inner = self.lock();
        inner.position(id)?;
        let lease = match inner.valid_claim(id, now) {
            Some(held) if held.owner != owner => return Ok(None),
            Some(held) => held.clone(),
            None => {
                let epoch = inner.epochs.get(id).copied().unwrap_or(0) + 1;
                inner.epochs.insert(id.clone(), epoch);
                Lease { owner: owner.to_owned(), epoch }
            }
        };
        inner.claims.insert(id.clone(), (lease.clone(), until));
        Ok(Some(lease))
    }

    async fn claim_due_tasks(
        &self,
        owner: &str,
        query: &DueQuery,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Task, Lease)>> {
        // One lock held throughout: the list and the claims are one step, as a
        // database's transaction makes them.
        let mut inner = self.lock();
        let now = query.now;
        let mut due: Vec<Task> = inner
            .tasks
            .iter()
            .filter(|t| t.is_due(now))
            .filter(|t| inner.valid_claim(&t.id, now).is_none_or(|held| held.owner == owner))
            .filter(|t| query.drives(t))
            .cloned()
            .collect();
        due.sort_by_key(|t| t.next_check_at.unwrap_or(DateTime::<Utc>::MIN_UTC));
        due.truncate(query.limit);
        let mut claimed = Vec::with_capacity(due.len());
        for task in due {
            let lease = match inner.valid_claim(&task.id, now) {
                Some(held) => held.clone(),
                None => {
                    let epoch = inner.epochs.get(&task.id).copied().unwrap_or(0) + 1;
                    inner.epochs.insert(task.id.clone(), epoch);
                    Lease { owner: owner.to_owned(), epoch }
                }
            };
            inner.claims.insert(task.id.clone(), (lease.clone(), until));
            claimed.push((task, lease));
        }
        Ok(claimed)
    }

    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        let now = Utc::now();
        for (lease, valid_until) in self.lock().claims.values_mut() {
            // An expired claim stays expired: its tasks may have been checked by
            // another harness meanwhile, and a new claim gets a new epoch.
            if lease.owner == owner && *valid_until > now {
                *valid_until = until;
            }
        }
        Ok(())
    }

    async fn release_claims(&self, owner: &str) -> Result<()> {
        self.lock().claims.retain(|_, (lease, _)| lease.owner != owner);
        Ok(())
    }

    async fn drivers(&self, ids: &[TaskId], now: DateTime<Utc>) -> Result<HashMap<TaskId, String>> {
        let inner = self.lock();
        Ok(ids
            .iter()
            .filter_map(|id| {
                inner.valid_claim(id, now).map(|lease| (id.clone(), lease.owner.clone()))
            })
            .collect())
    }

    async fn beat_worker(
        &self,
        name: &str,
        started_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let worker = Worker { name: name.to_owned(), started_at, last_seen: now };
        self.lock().workers.insert(name.to_owned(), worker);
        Ok(())
    }

    async fn live_workers(&self, since: DateTime<Utc>) -> Result<Vec<Worker>> {
        Ok(self.lock().workers.values().filter(|w| w.last_seen >= since).cloned().collect())
    }

    async fn forget_worker(&self, name: &str) -> Result<()> {
        self.lock().workers.remove(name);
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

#[async_trait]
impl Outbox for MemoryStore {
    async fn register_hooks(&self, hooks: &[Hook]) -> Result<()> {
        let mut inner = self.lock();
        for hook in hooks {
            inner.hooks.retain(|known| known.id != hook.id);
            inner.hooks.push(hook.clone());
        }
        Ok(())
    }

    async fn claim_due(
        &self,
        hook_ids: &[String],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        let mut inner = self.lock();
        let mut due: Vec<&mut Delivery> = inner
            .deliveries
            .iter_mut()
            .filter(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at <= now)
            .filter(|d| hook_ids.contains(&d.hook_id))
            .collect();
        // Oldest due first; creation order among equal times (the sort is stable).
        due.sort_by_key(|d| d.next_attempt_at);
        Ok(due
            .into_iter()
            .take(limit)
            .map(|d| {
                d.next_attempt_at = until;
                d.clone()
            })
            .collect())
    }

    async fn record_attempt(&self, id: &str, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let mut inner = self.lock();
        outbox::apply_attempt(inner.delivery(id)?, attempt, now);
        Ok(())
    }

    async fn depth(&self) -> Result<outbox::OutboxDepth> {
        let inner = self.lock();
        let count = |status| inner.deliveries.iter().filter(|d| d.status == status).count() as u64;
        Ok(outbox::OutboxDepth {
            pending: count(DeliveryStatus::Pending),
            dead: count(DeliveryStatus::Dead),
        })
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let inner = self.lock();
        Ok(inner
            .deliveries
            .iter()
            .rev()
            .filter(|d| query.status.is_none_or(|status| d.status == status))
            .take(query.limit)
            .cloned()
            .collect())
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>> {
        Ok(self.lock().deliveries.iter().find(|d| d.id == id).cloned())
    }

    async fn expire(&self, queued_before: DateTime<Utc>, error: &str) -> Result<usize> {
        let mut inner = self.lock();
        let mut expired = 0;
        for delivery in inner
            .deliveries
            .iter_mut()
            .filter(|d| d.status == DeliveryStatus::Pending && d.queued_at < queued_before)
        {
            outbox::give_up(delivery, error);
            expired += 1;
        }
        Ok(expired)
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> Result<Delivery> {
        let mut inner = self.lock();
        let delivery = inner.delivery(id)?;
        outbox::requeue(delivery, now);
        Ok(delivery.clone())
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::spec::TaskSpec;
    use crate::store::Rejection;

    fn task(id: &str, now: DateTime<Utc>) -> Task {
        Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "g"), now)
    }

    #[tokio::test]
    async fn batch_claims_follow_the_conformance_scenario() {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        crate::conformance::batch_claims_scenario(store.clone(), store).await;
    }

    #[tokio::test]
    async fn tasks_bound_to_opencode_servers_follow_the_conformance_scenario() {
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(MemoryStore::new());
        crate::conformance::opencode_binding_scenario(store).await;
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
    async fn a_guarded_write_applies_only_while_its_guard_holds() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let id = TaskId::from("task_g");
        store.create_task(&task("task_g", now)).await.expect("create");
        let lease = store
            .claim_task(&id, "a", now, now + Duration::seconds(30))
            .await
            .expect("claim")
            .expect("granted");
        let guard = Guard::at_revision(0).holding(lease.clone());
        let written =
            store.write_task(&id, &TaskUpdate::default(), None, &guard).await.expect("write");
        assert!(matches!(written, WriteOutcome::Written { revision: 1, .. }), "{written:?}");
        // The same guard again: the task is at revision 1 now.
        let stale =
            store.write_task(&id, &TaskUpdate::default(), None, &guard).await.expect("write");
        assert_eq!(stale, WriteOutcome::Rejected(Rejection::Changed { expected: 0, found: 1 }));
        // Another owner takes the expired claim: the old lease no longer writes.
        let later = now + Duration::seconds(31);
        let taken = store
            .claim_task(&id, "b", later, later + Duration::seconds(30))
            .await
            .expect("claim")
            .expect("granted after expiry");
        assert!(taken.epoch > lease.epoch);
        let fenced = store
            .write_task(&id, &TaskUpdate::default(), None, &Guard::at_revision(1).holding(lease))
            .await
            .expect("write");
        assert!(matches!(fenced, WriteOutcome::Rejected(Rejection::LeaseLost { .. })));
        assert_eq!(store.get_task(&id).await.expect("get").expect("task").revision, 1);
    }

    #[tokio::test]
    async fn repeated_log_entries_are_counted_on_one_row() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let id = TaskId::from("task_r");
        store.create_task(&task("task_r", now)).await.expect("create");
        let busy = CheckLogEntry::new(now, TaskStatus::Running, "Agent is busy", "busy");
        for minute in 0..3 {
            let entry = CheckLogEntry { at: now + Duration::minutes(minute), ..busy.clone() };
            store.update_task(&id, &TaskUpdate::default(), Some(&entry)).await.expect("write");
        }
        let done = CheckLogEntry::new(now, TaskStatus::Completed, "done", "");
        store.append_check_log(&id, &[busy.clone(), done, busy]).await.expect("append");
        let log = store.check_log(&id, &LogQuery::default()).await.expect("log");
        let counted: Vec<(&str, u32)> =
            log.iter().map(|e| (e.entry.summary.as_str(), e.repeats)).collect();
        assert_eq!(counted, [("Agent is busy", 4), ("done", 1), ("Agent is busy", 1)]);
        assert_eq!(log[0].last_at, Some(now));
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

    #[tokio::test]
    async fn the_outbox_behaves_like_every_store() {
        crate::conformance::outbox_scenario(&MemoryStore::new()).await;
    }
}
