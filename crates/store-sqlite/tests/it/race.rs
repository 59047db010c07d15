//! A user's pause that lands while a check runs is never overwritten by the check:
//! two actors on one SQLite file, as two processes would be — a harness checking a
//! task, and a user pausing it through another connection between the check's last
//! read of the task and its write.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::check::{CheckContext, CheckOutcome, CheckResult, Checker};
use openloom_core::spec::{Step, TaskSpec};
use openloom_core::store::{Guard, Lease, WriteOutcome};
use openloom_core::{
    AgentMessage, CheckLogEntry, Dialogue, EventBus, Harness, HarnessParts, LogQuery, MemoryAgent,
    Result, Store, StoreVersion, StoredLogEntry, Task, TaskId, TaskQuery, TaskStatus, TaskUpdate,
    WorkspacePolicy,
};
use openloom_store_sqlite::SqliteStore;

use crate::common;

/// The harness's store. Armed, it lets the user's pause land (through the user's
/// own connection) right before the harness's next write of a status: the
/// narrowest window there is, after every read the check makes.
struct PauseBeforeWrite {
    inner: SqliteStore,
    user: Arc<Harness>,
    armed: AtomicBool,
}

#[async_trait]
impl Store for PauseBeforeWrite {
    async fn write_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
        guard: &Guard,
    ) -> Result<WriteOutcome> {
        if update.status.is_some() && self.armed.swap(false, Ordering::SeqCst) {
            self.user.pause(id).await?;
        }
        self.inner.write_task(id, update, log, guard).await
    }
    async fn create_task(&self, task: &Task) -> Result<StoreVersion> {
        self.inner.create_task(task).await
    }
    async fn get_task(&self, id: &TaskId) -> Result<Option<Task>> {
        self.inner.get_task(id).await
    }
    async fn list_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        self.inner.list_tasks(query).await
    }
    async fn find_by_prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Task>> {
        self.inner.find_by_prefix(prefix, limit).await
    }
    async fn list_due_tasks(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Task>> {
        self.inner.list_due_tasks(now, limit).await
    }
    async fn delete_task(&self, id: &TaskId) -> Result<StoreVersion> {
        self.inner.delete_task(id).await
    }
    async fn claim_task(
        &self,
        id: &TaskId,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Lease>> {
        self.inner.claim_task(id, owner, now, until).await
    }
    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        self.inner.renew_claims(owner, until).await
    }
    async fn release_claims(&self, owner: &str) -> Result<()> {
        self.inner.release_claims(owner).await
    }
    async fn append_check_log(&self, id: &TaskId, entries: &[CheckLogEntry]) -> Result<u64> {
        self.inner.append_check_log(id, entries).await
    }
    async fn check_log(&self, id: &TaskId, query: &LogQuery) -> Result<Vec<StoredLogEntry>> {
        self.inner.check_log(id, query).await
    }
    async fn count_by_status(&self) -> Result<HashMap<TaskStatus, u64>> {
        self.inner.count_by_status().await
    }
    async fn store_version(&self) -> Result<StoreVersion> {
        self.inner.store_version().await
    }
}

/// Every look finds step 1 reported.
struct StepOneDone;

#[async_trait]
impl Checker for StepOneDone {
    async fn check(&self, _: CheckContext<'_>) -> Result<CheckResult> {
        Ok(CheckResult { step_done: 1, ..CheckResult::default() })
    }
}

struct Plain;

impl Dialogue for Plain {
    fn bootstrap(&self, spec: &TaskSpec, _: usize) -> String {
        format!("start {}", spec.name)
    }
    fn periodic_check(&self, _: &TaskSpec, _: usize, _: &CheckResult, _: &[u32]) -> String {
        "status?".into()
    }
    fn next_step(&self, _: &TaskSpec, step: usize) -> String {
        format!("now step {}", step + 1)
    }
    fn auto_continue(&self, _: &TaskSpec, _: usize) -> String {
        "go on".into()
    }
    fn verification_failed(&self, _: &TaskSpec, _: Option<u32>, _: &[CheckOutcome]) -> String {
        "fix it".into()
    }
    fn needs_continue_reply(&self, _: &[AgentMessage]) -> bool {
        false
    }
    fn is_busy(&self, _: &[AgentMessage]) -> bool {
        false
    }
}

fn harness(store: Arc<dyn Store>, agent: Arc<MemoryAgent>) -> Arc<Harness> {
    Arc::new(Harness::new(HarnessParts {
        agent,
        store,
        checker: Arc::new(StepOneDone),
        dialogue: Arc::new(Plain),
        bus: EventBus::new(),
        workspaces: WorkspacePolicy::any(),
    }))
}

#[tokio::test]
async fn a_pause_landing_just_before_a_checks_write_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let agent = Arc::new(MemoryAgent::replying(&["STEP DONE: 1", "on it"]));
    // The user: another connection to the file, with its own harness (as `openloom
    // serve`'s API would pause it from another process).
    let user = harness(Arc::new(common::open(&path).await), agent.clone());
    let store = Arc::new(PauseBeforeWrite {
        inner: common::open(&path).await,
        user,
        armed: AtomicBool::new(false),
    });
    let driver = harness(store.clone(), agent.clone());

    let workspace = dir.path().to_string_lossy().into_owned();
    let mut spec = TaskSpec::new("two steps", workspace, "do two things");
    spec.steps = vec![Step::new("one"), Step::new("two")];
    let id = driver.add_task(spec).await.expect("add");
    driver.tick().await.expect("start");
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    store.inner.update_task(&id, &update, None).await.expect("due now");

    store.armed.store(true, Ordering::SeqCst);
    driver.tick().await.expect("check");
    assert!(!store.armed.load(Ordering::SeqCst), "the pause landed during the check");

    let task = store.inner.get_task(&id).await.expect("read").expect("task");
    assert_eq!(task.status, TaskStatus::Paused, "the check overwrote the user's pause");
    assert_eq!(task.next_check_at, None, "a paused task is not scheduled");
    let log = store.inner.check_log(&id, &LogQuery::default()).await.expect("log");
    let summaries: Vec<&str> = log.iter().map(|e| e.entry.summary.as_str()).collect();
    assert_eq!(summaries.last(), Some(&"Paused by user"), "{summaries:?}");
    assert!(!summaries.iter().any(|s| s.starts_with("Nudged")), "{summaries:?}");

    // Resumed, the task is checked from its new state, and its outcome counts.
    let user = harness(Arc::new(common::open(&path).await), agent);
    user.resume(&id).await.expect("resume");
    driver.tick().await.expect("check again");
    let task = store.inner.get_task(&id).await.expect("read").expect("task");
    assert_eq!((task.status, task.completed_steps.clone()), (TaskStatus::Running, vec![1]));
}
