//! Holding every [`Store`] to one behaviour (feature `test-util`): the parity
//! transcript that the memory, SQLite and PostgreSQL stores must all produce, and
//! the race of a user's pause with a check's write, run against any store.
//!
//! One implementation, so the stores are held to the same thing: a scenario copied
//! into each store crate would drift apart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use crate::check::{CheckContext, CheckOutcome, CheckResult, Checker};
use crate::spec::{CheckDefinition, Step, TaskSpec};
use crate::store::{
    Created, Guard, Lease, LogQuery, Store, StoredLogEntry, TaskQuery, WriteOutcome,
};
use crate::{
    AgentMessage, CheckLogEntry, Dialogue, EventBus, Harness, HarnessParts, MemoryAgent, Result,
    StoreVersion, Task, TaskId, TaskStatus, TaskUpdate, WorkspacePolicy,
};

/// A pending task named after its id.
pub fn task(id: &str, now: DateTime<Utc>) -> Task {
    Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "goal"), now)
}

/// A task whose spec a summary must count and cut: steps with and without checks,
/// acceptance criteria, a long goal of multi-byte characters with a NUL in it, and a
/// name longer than a list shows.
fn rich_task(now: DateTime<Utc>) -> Task {
    let mut spec = TaskSpec::new("ñ".repeat(400), "/w", format!("a\u{0}{}", "é".repeat(600)));
    let check = |path: &str| CheckDefinition::FileExists { path: path.to_owned() };
    spec.steps = vec![
        Step { title: "one".into(), acceptance: vec!["x".into()], checks: vec![check("a")] },
        Step { title: "two".into(), acceptance: Vec::new(), checks: Vec::new() },
        Step {
            title: "three".into(),
            acceptance: Vec::new(),
            checks: vec![check("b"), check("c")],
        },
    ];
    spec.acceptance = vec!["done".into(), "tested".into()];
    spec.checks = vec![check("d")];
    Task::new(TaskId::from("task_rich"), spec, now + Duration::seconds(1))
}

/// What a call returned, as JSON; `updated_at` is dropped because an update stamps
/// it with the wall clock, which differs between the two runs.
fn record<T: serde::Serialize>(out: &mut Vec<Value>, label: &str, result: crate::Result<T>) {
    let value = match result {
        Ok(value) => {
            let mut value = serde_json::to_value(value).expect("results serialize");
            strip_updated_at(&mut value);
            value
        }
        Err(err) => json!({ "error": error_kind(&err) }),
    };
    out.push(json!({ "call": label, "result": value }));
}

fn strip_updated_at(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("updated_at");
            map.values_mut().for_each(strip_updated_at);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_updated_at),
        _ => {}
    }
}

fn error_kind(err: &crate::Error) -> String {
    match err {
        crate::Error::NotFound { what, id } => format!("not found: {what} {id}"),
        crate::Error::Conflict(_) => "conflict".into(),
        crate::Error::Invalid(_) => "invalid".into(),
        other => format!("unexpected: {other}"),
    }
}

/// A guarded write of a small update, its outcome as text.
async fn guarded_write(
    store: &dyn Store,
    id: &TaskId,
    guard: Guard,
    entry: &CheckLogEntry,
) -> crate::Result<String> {
    let update = TaskUpdate { current_step: Some(1), ..TaskUpdate::default() };
    store.write_task(id, &update, Some(entry), &guard).await.map(|outcome| format!("{outcome:?}"))
}

/// An error's kind, for recording a borrowed result.
fn clone_kind(err: &crate::Error) -> crate::Error {
    crate::Error::Invalid(error_kind(err))
}

fn ids(tasks: crate::Result<Vec<crate::Task>>) -> crate::Result<Vec<String>> {
    tasks.map(|ts| ts.into_iter().map(|t| t.id.to_string()).collect())
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().expect("valid date")
        + Duration::nanoseconds(123_456_789)
}

/// Every operation of the [`Store`] trait, with every query option, in one
/// scenario; what each call returned, as JSON. Two stores that mean the same by
/// every method return equal transcripts ([`assert_same_transcripts`]).
pub async fn store_transcript(store: &dyn Store) -> Vec<Value> {
    let mut out = Vec::new();
    let now = t0();
    let statuses = TaskStatus::ALL;
    for i in 0..30_i64 {
        let mut task = task(&format!("task_{i:03}"), now - Duration::seconds(i));
        task.status = statuses[usize::try_from(i).expect("small") % statuses.len()];
        task.next_check_at = match i % 4 {
            0 => None,
            1 => Some(now - Duration::seconds(100 - i)),
            2 => Some(now + Duration::seconds(i)),
            _ => Some(now - Duration::seconds(5)),
        };
        task.check_interval_seconds = if i % 5 == 0 { 0 } else { 300 };
        task.completed_steps = vec![1, 2];
        task.session_ids = vec![format!("ses_{i}")];
        task.error = (i % 3 == 0).then(|| "boom".to_owned());
        record(&mut out, "create", store.create_task(&task).await);
    }
    for id in ["other_1", "Task_upper"] {
        record(&mut out, "create", store.create_task(&task(id, now)).await);
    }
    record(&mut out, "create duplicate", store.create_task(&task("task_005", now)).await);

    let queries = [
        TaskQuery::newest(5),
        TaskQuery::newest(0),
        TaskQuery::newest(100),
        TaskQuery { before: Some(TaskId::from("task_010")), ..TaskQuery::newest(4) },
        TaskQuery { before: Some(TaskId::from("task_000")), ..TaskQuery::newest(4) },
        TaskQuery { statuses: vec![TaskStatus::Running], ..TaskQuery::newest(50) },
        TaskQuery {
            statuses: vec![TaskStatus::Waiting, TaskStatus::Pending, TaskStatus::Waiting],
            ..TaskQuery::newest(6)
        },
        TaskQuery {
            before: Some(TaskId::from("task_020")),
            statuses: vec![TaskStatus::Completed],
            ..TaskQuery::newest(2)
        },
        TaskQuery { before: Some(TaskId::from("task_missing")), ..TaskQuery::newest(4) },
    ];
    for query in &queries {
        record(&mut out, &format!("list {query:?}"), ids(store.list_tasks(query).await));
    }
    record(&mut out, "list full", store.list_tasks(&TaskQuery::newest(3)).await);
    record(&mut out, "create rich", store.create_task(&rich_task(now)).await);
    for query in [&queries[2], &queries[5], &queries[8]] {
        let summaries = store.list_task_summaries(query).await;
        if let (Ok(summaries), Ok(tasks)) = (&summaries, store.list_tasks(query).await) {
            let expected: Vec<_> = tasks.into_iter().map(Task::summarised).collect();
            assert_eq!(summaries, &expected, "summaries of {query:?} are the tasks summarised");
        }
        record(&mut out, &format!("summaries {query:?}"), summaries);
    }

    for (prefix, limit) in
        [("task_01", 50), ("", 4), ("nope", 5), ("TASK", 5), ("task_", 3), ("Task", 5)]
    {
        record(
            &mut out,
            &format!("prefix {prefix:?}"),
            ids(store.find_by_prefix(prefix, limit).await),
        );
    }

    for (at, limit) in
        [(now, 100), (now, 3), (now - Duration::hours(1), 100), (now + Duration::hours(1), 100)]
    {
        record(&mut out, &format!("due {at} {limit}"), ids(store.list_due_tasks(at, limit).await));
    }

    let a = TaskId::from("task_001");
    let entry = |summary: &str| {
        let mut e = CheckLogEntry::new(now, TaskStatus::Running, summary, "detail");
        e.evidence = Some(json!({ "passed": summary.len() % 2 == 0 }));
        e
    };
    let update = TaskUpdate {
        status: Some(TaskStatus::Running),
        error: Some(None),
        next_check_at: Some(Some(now + Duration::seconds(300))),
        current_step: Some(2),
        completed_steps: Some(vec![1, 2, 3]),
        progress: Some(0.5),
        active_session_id: Some(Some("ses_x".into())),
        consecutive_errors: Some(3),
        liveness: Some(crate::task::Liveness {
            mark: Some("msg_1/2/40".into()),
            progress_at: Some(now),
            recoveries: 1,
            stalled_sessions: 0,
            stalls: 1,
            checks_without_progress: 2,
        }),
        ..TaskUpdate::default()
    };
    record(
        &mut out,
        "update with log",
        store.update_task(&a, &update, Some(&entry("first"))).await,
    );
    record(
        &mut out,
        "update without log",
        store.update_task(&a, &TaskUpdate::default(), None).await,
    );
    record(
        &mut out,
        "update missing",
        store.update_task(&TaskId::from("task_x"), &update, None).await,
    );
    record(&mut out, "get updated", store.get_task(&a).await);
    record(&mut out, "get missing", store.get_task(&TaskId::from("task_x")).await);

    // Guarded writes: the revision and the lease are checked inside the write. A
    // lease is valid by the wall clock when written, so these claims last an hour
    // from now, whatever the scenario's fixed time.
    let c = TaskId::from("task_003");
    let wall = Utc::now();
    let hour = wall + Duration::hours(1);
    let first = store.claim_task(&c, "h1", wall, hour).await;
    record(&mut out, "claim c", first.as_ref().map(Clone::clone).map_err(clone_kind));
    let lease = first.ok().flatten().expect("a free task is claimed");
    record(&mut out, "claim c elsewhere", store.claim_task(&c, "h2", wall, hour).await);
    record(&mut out, "renew claim c", store.claim_task(&c, "h1", wall, hour).await);
    let guarded = Guard::at_revision(0).holding(lease.clone());
    let guarded_entry = entry("guarded");
    let write = |guard: Guard| guarded_write(store, &c, guard, &guarded_entry);
    record(&mut out, "guarded write", write(guarded.clone()).await);
    record(&mut out, "stale revision", write(guarded).await);
    let forged = Lease { owner: "h1".into(), epoch: 7 };
    record(&mut out, "forged lease", write(Guard::at_revision(1).holding(forged)).await);
    let expired = hour + Duration::seconds(1);
    record(
        &mut out,
        "take expired",
        store.claim_task(&c, "h2", expired, expired + Duration::hours(1)).await,
    );
    record(&mut out, "lost lease", write(Guard::at_revision(1).holding(lease)).await);
    record(&mut out, "release h2", store.release_claims("h2").await);
    record(&mut out, "claim after release", store.claim_task(&c, "h1", wall, hour).await);
    let asked = [c.clone(), TaskId::from("task_004"), TaskId::from("task_missing")];
    let asked = &asked;
    let drivers = |at| async move {
        store.drivers(asked, at).await.map(|d| d.into_iter().collect::<BTreeMap<_, _>>())
    };
    record(&mut out, "drivers now", drivers(wall).await);
    record(&mut out, "drivers after the lease", drivers(expired).await);
    record(&mut out, "drivers of none", store.drivers(&[], wall).await);

    // Workers' heartbeats, listed by name; a later beat moves `last_seen` only.
    let later = now + Duration::seconds(20);
    record(&mut out, "beat w2", store.beat_worker("w2", now, now).await);
    record(&mut out, "beat w1", store.beat_worker("w1", now, now).await);
    record(&mut out, "beat w1 later", store.beat_worker("w1", now, later).await);
    record(&mut out, "live workers", store.live_workers(now).await);
    record(&mut out, "live lately", store.live_workers(later).await);
    record(&mut out, "forget w2", store.forget_worker("w2").await);
    record(&mut out, "forget unknown", store.forget_worker("w9").await);
    record(&mut out, "live after forget", store.live_workers(now).await);
    record(&mut out, "unguarded", write(Guard::none()).await);
    record(&mut out, "get guarded", store.get_task(&c).await);

    // Exact repeats in a row are one log entry with a count.
    let d = TaskId::from("task_004");
    let busy = CheckLogEntry::new(now, TaskStatus::Running, "Agent is busy", "busy");
    let busy_later = CheckLogEntry { at: now + Duration::seconds(60), ..busy.clone() };
    record(
        &mut out,
        "append repeats",
        store.append_check_log(&d, &[busy.clone(), busy.clone()]).await,
    );
    record(
        &mut out,
        "update repeat",
        store.update_task(&d, &TaskUpdate::default(), Some(&busy_later)).await,
    );
    record(&mut out, "append different", store.append_check_log(&d, &[entry("other"), busy]).await);
    record(&mut out, "log d", store.check_log(&d, &LogQuery::default()).await);

    let b = TaskId::from("task_002");
    let batch: Vec<CheckLogEntry> = (0..5).map(|n| entry(&format!("check {n}"))).collect();
    record(&mut out, "append to b", store.append_check_log(&b, &batch).await);
    record(&mut out, "append to a", store.append_check_log(&a, &batch[..2]).await);
    record(&mut out, "append empty", store.append_check_log(&a, &[]).await);
    record(
        &mut out,
        "append missing",
        store.append_check_log(&TaskId::from("task_x"), &batch).await,
    );
    record(&mut out, "get b", store.get_task(&b).await);

    let log_queries = [
        LogQuery::default(),
        LogQuery { after: None, limit: 2 },
        LogQuery { after: Some(3), limit: 2 },
        LogQuery { after: Some(1_000), limit: 10 },
        LogQuery { after: Some(0), limit: 0 },
    ];
    for query in &log_queries {
        record(&mut out, &format!("log a {query:?}"), store.check_log(&a, query).await);
        record(&mut out, &format!("log b {query:?}"), store.check_log(&b, query).await);
    }
    record(
        &mut out,
        "log missing",
        store.check_log(&TaskId::from("task_x"), &LogQuery::default()).await,
    );

    let mut counts: Vec<(String, u64)> = store
        .count_by_status()
        .await
        .expect("counts")
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    counts.sort();
    out.push(json!({ "call": "counts", "result": counts }));

    record(&mut out, "delete a", store.delete_task(&a).await);
    record(&mut out, "delete a again", store.delete_task(&a).await);
    record(&mut out, "get deleted", store.get_task(&a).await);
    record(&mut out, "log of deleted", store.check_log(&a, &LogQuery::default()).await);
    record(&mut out, "list after delete", ids(store.list_tasks(&TaskQuery::newest(100)).await));
    // A new entry after a delete gets a fresh sequence number in both stores.
    record(&mut out, "append after delete", store.append_check_log(&b, &batch[..1]).await);
    record(
        &mut out,
        "log b after delete",
        store.check_log(&b, &LogQuery { after: Some(5), limit: 10 }).await,
    );
    record(&mut out, "version", store.store_version().await);
    out
}

/// Asserts that `actual` (the transcript of the store `name`) equals `expected`
/// (the memory store's), entry by entry, and that the scenario exercised errors,
/// refused guards and counted repeats rather than only successes.
pub fn assert_same_transcripts(expected: &[Value], name: &str, actual: &[Value]) {
    assert_eq!(expected.len(), actual.len(), "{name}: transcripts differ in length");
    for (want, got) in expected.iter().zip(actual) {
        assert_eq!(want, got, "\nmemory: {want:#}\n{name}: {got:#}");
    }
    let text = serde_json::to_string(actual).expect("serializes");
    assert!(text.contains("not found: task task_x") && text.contains("conflict"));
    for shown in ["Rejected(Changed", "Rejected(LeaseLost", "\"repeats\":3", "\"epoch\":3"] {
        assert!(text.contains(shown), "{shown} missing from the transcript");
    }
}

/// The harness's store. Armed, it lets the user's pause land (through the user's
/// own connection) right before the harness's next write of a status: the
/// narrowest window there is, after every read the check makes.
struct PauseBeforeWrite {
    inner: Arc<dyn Store>,
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
    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<Created> {
        self.inner.create_task_once(task, origin).await
    }
    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>> {
        self.inner.task_origin(id).await
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
    async fn claim_due_tasks(
        &self,
        owner: &str,
        query: &crate::store::DueQuery,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Task, Lease)>> {
        self.inner.claim_due_tasks(owner, query, until).await
    }
    async fn renew_claims(&self, owner: &str, until: DateTime<Utc>) -> Result<()> {
        self.inner.renew_claims(owner, until).await
    }
    async fn release_claims(&self, owner: &str) -> Result<()> {
        self.inner.release_claims(owner).await
    }
    async fn append_check_log(
        &self,
        id: &TaskId,
        entries: &[CheckLogEntry],
    ) -> Result<StoreVersion> {
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

pub(crate) fn harness(store: Arc<dyn Store>, agent: Arc<MemoryAgent>) -> Arc<Harness> {
    Arc::new(Harness::new(HarnessParts {
        agent,
        store,
        checker: Arc::new(StepOneDone),
        dialogue: Arc::new(Plain),
        bus: EventBus::new(),
        workspaces: WorkspacePolicy::any(),
    }))
}

/// A user's pause that lands while a check runs is never overwritten by the check:
/// two actors on one database, as two processes would be — a harness checking a task
/// through one connection, and a user pausing it through another (each `open()` is a
/// new store on the same database) between the check's last read and its write.
/// `workspace` is an existing directory for the task.
pub async fn a_pause_landing_just_before_a_checks_write_wins<F, Fut>(open: F, workspace: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Arc<dyn Store>>,
{
    let agent = Arc::new(MemoryAgent::replying(&["STEP DONE: 1", "on it"]));
    // The user: another connection to the file, with its own harness (as `openloom
    // serve`'s API would pause it from another process).
    let user = harness(open().await, agent.clone());
    let store =
        Arc::new(PauseBeforeWrite { inner: open().await, user, armed: AtomicBool::new(false) });
    let driver = harness(store.clone(), agent.clone());

    let mut spec = TaskSpec::new("two steps", workspace.to_owned(), "do two things");
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
    let user = harness(open().await, agent);
    user.resume(&id).await.expect("resume");
    driver.tick().await.expect("check again");
    let task = store.inner.get_task(&id).await.expect("read").expect("task");
    assert_eq!((task.status, task.completed_steps.clone()), (TaskStatus::Running, vec![1]));
}

/// [`Store::create_task_once`] on any store: an origin creates one task, ever; a
/// refused create records no origin; two racing creates of one origin (through
/// `other`, a second connection to the same database, when the store has one) make
/// one task.
pub async fn origins_are_recorded_once(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    let now = t0();
    let first = store.create_task_once(&task("origin_a", now), "inbox:a.yaml@1").await;
    let Ok(Created::New(v1)) = first else { panic!("first import: {first:?}") };
    assert_eq!(store.store_version().await.expect("version"), v1);

    // The same origin again, as a new task: nothing is written.
    let again = store.create_task_once(&task("origin_b", now), "inbox:a.yaml@1").await;
    assert_eq!(again.expect("again"), Created::AlreadyHad(TaskId::from("origin_a")));
    assert_eq!(store.get_task(&TaskId::from("origin_b")).await.expect("read"), None);
    assert_eq!(store.store_version().await.expect("version"), v1, "a repeat writes nothing");

    // An existing id with a new origin is a conflict, and the origin stays unrecorded.
    let clash = store.create_task_once(&task("origin_a", now), "github:d-1").await;
    assert!(matches!(clash, Err(crate::Error::Conflict(_))), "{clash:?}");
    let later = store.create_task_once(&task("origin_c", now), "github:d-1").await;
    assert!(
        matches!(later, Ok(Created::New(_))),
        "the refused create recorded its origin: {later:?}"
    );

    // A task knows its origin; one created without has none.
    let origin_of = |id: &'static str| {
        let store = store.clone();
        async move { store.task_origin(&TaskId::from(id)).await.expect("origin") }
    };
    assert_eq!(origin_of("origin_a").await.as_deref(), Some("inbox:a.yaml@1"));
    assert_eq!(origin_of("origin_c").await.as_deref(), Some("github:d-1"));
    store.create_task(&task("plain", now)).await.expect("plain create");
    assert_eq!(origin_of("plain").await, None);
    store.delete_task(&TaskId::from("plain")).await.expect("delete plain");

    // An origin outlives its task.
    store.delete_task(&TaskId::from("origin_a")).await.expect("delete");
    let after_delete = store.create_task_once(&task("origin_d", now), "inbox:a.yaml@1").await;
    assert_eq!(after_delete.expect("after delete"), Created::AlreadyHad(TaskId::from("origin_a")));

    // Two creates of one origin at once: one task.
    let (race_1, race_2) = (task("race_1", now), task("race_2", now));
    let (a, b) = tokio::join!(
        store.create_task_once(&race_1, "github:race"),
        other.create_task_once(&race_2, "github:race"),
    );
    let outcomes = [a.expect("race 1"), b.expect("race 2")];
    let new = outcomes.iter().filter(|o| matches!(o, Created::New(_))).count();
    assert_eq!(new, 1, "{outcomes:?}");
    let winner = if matches!(outcomes[0], Created::New(_)) { "race_1" } else { "race_2" };
    let loser = if winner == "race_1" { "race_2" } else { "race_1" };
    assert!(outcomes.contains(&Created::AlreadyHad(TaskId::from(winner))), "{outcomes:?}");
    assert_eq!(store.get_task(&TaskId::from(loser)).await.expect("read"), None);
    let tasks = store.list_tasks(&TaskQuery::newest(100)).await.expect("list");
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec![winner, "origin_c"]);
}

/// The outbox of webhook deliveries, held to one behaviour in every store: task
/// writes queue deliveries for the registered hooks in their own transaction (and a
/// rejected write queues none), senders claim due ones, attempts move them along,
/// and a dead one can be queued again under the same id.
pub async fn outbox_scenario<S: Store + crate::Outbox + ?Sized>(store: &S) {
    use crate::outbox::{Attempt, DeliveryQuery, DeliveryStatus, Hook, NoticeEvent};
    use crate::request::{PendingRequest, RequestKind};

    let all = |limit| DeliveryQuery { limit, status: None };
    let now = Utc::now();
    store.create_task(&task("task_quiet", now)).await.expect("create");
    assert!(store.list_deliveries(&all(10)).await.expect("list").is_empty(), "no hook yet");
    assert_eq!(store.depth().await.expect("depth"), crate::outbox::OutboxDepth::default());

    let every = Hook::new("http://127.0.0.1:9/every?token=x", vec![]);
    let mut done_only = Hook::new("http://127.0.0.1:9/done", vec![NoticeEvent::Failed]);
    store.register_hooks(&[every.clone(), done_only.clone()]).await.expect("register");
    // Registering again updates a hook rather than adding a second one.
    done_only.events = vec![NoticeEvent::Completed];
    store.register_hooks(std::slice::from_ref(&done_only)).await.expect("re-register");

    let id = TaskId::from("task_told");
    store.create_task(&task("task_told", now)).await.expect("create");
    let started = TaskUpdate {
        status: Some(TaskStatus::Running),
        session_ids: Some(vec!["ses_1".into()]),
        ..TaskUpdate::default()
    };
    store.update_task(&id, &started, None).await.expect("start");
    let asked = PendingRequest {
        id: "per_1".into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Permission { permission: "bash".into(), patterns: vec!["ls".into()] },
        asked_at: Some(now),
    };
    let waiting = TaskUpdate {
        status: Some(TaskStatus::Waiting),
        pending_requests: Some(vec![asked.clone()]),
        ..TaskUpdate::default()
    };
    store.update_task(&id, &waiting, None).await.expect("wait");
    // A refused guarded write changes nothing, so it tells nothing.
    let done = TaskUpdate {
        status: Some(TaskStatus::Completed),
        pending_requests: Some(Vec::new()),
        progress: Some(1.0),
        ..TaskUpdate::default()
    };
    let refused = store.write_task(&id, &done, None, &Guard::at_revision(0)).await.expect("write");
    assert!(matches!(refused, WriteOutcome::Rejected(_)), "{refused:?}");
    let entry = CheckLogEntry::new(now, TaskStatus::Completed, "All steps done", "");
    store.update_task(&id, &done, Some(&entry)).await.expect("complete");

    let listed = store.list_deliveries(&all(10)).await.expect("list");
    let told: Vec<(NoticeEvent, &str)> =
        listed.iter().map(|d| (d.notice.event, d.hook_id.as_str())).collect();
    assert_eq!(
        told,
        [
            (NoticeEvent::Completed, done_only.id.as_str()),
            (NoticeEvent::Completed, every.id.as_str()),
            (NoticeEvent::Waiting, every.id.as_str()),
            (NoticeEvent::Started, every.id.as_str()),
            (NoticeEvent::Created, every.id.as_str()),
        ],
        "newest first, each hook its events"
    );
    assert_eq!(listed[0].url, "http://127.0.0.1:9/…", "no token in what is shown");
    assert_eq!(listed[0].notice.task.summary.as_deref(), Some("All steps done"));
    assert_eq!(listed[2].notice.task.pending_requests, vec![asked]);
    assert_eq!(store.list_deliveries(&all(2)).await.expect("list").len(), 2);
    let round_trip = store.get_delivery(&listed[2].id).await.expect("get").expect("known");
    assert_eq!(round_trip, listed[2], "a delivery reads back as written");

    // Claims: oldest due first, only the asked hooks, and not twice while claimed.
    let soon = Utc::now() + Duration::seconds(1);
    let until = soon + Duration::seconds(60);
    let hook = |h: &Hook| vec![h.id.clone()];
    let first = store.claim_due(&hook(&every), soon, until, 2).await.expect("claim");
    let first_events: Vec<_> = first.iter().map(|d| d.notice.event).collect();
    assert_eq!(first_events, [NoticeEvent::Created, NoticeEvent::Started]);
    assert!(first.iter().all(|d| d.next_attempt_at == until));
    let rest = store.claim_due(&hook(&every), soon, until, 10).await.expect("claim");
    assert_eq!(rest.len(), 2, "the claimed ones are not due again");
    assert!(store.claim_due(&hook(&every), soon, until, 10).await.expect("claim").is_empty());
    let other = store.claim_due(&hook(&done_only), soon, until, 10).await.expect("claim");
    assert_eq!(other.len(), 1);
    assert!(store.claim_due(&[], soon, until, 10).await.expect("claim").is_empty());

    // Attempts.
    let retry_at = soon + Duration::seconds(5);
    let error = "HTTP 503 ".repeat(100);
    let retried = Attempt::Retry { at: retry_at, error: error.clone() };
    store.record_attempt(&first[0].id, &retried, soon).await.expect("retry");
    store.record_attempt(&first[1].id, &Attempt::Delivered, soon).await.expect("delivered");
    let dead = Attempt::Dead { error: "too old".into() };
    store.record_attempt(&other[0].id, &dead, soon).await.expect("dead");
    let again = store.get_delivery(&first[0].id).await.expect("get").expect("known");
    assert_eq!(
        (again.status, again.attempts, again.next_attempt_at),
        (DeliveryStatus::Pending, 1, retry_at)
    );
    assert_eq!(again.last_error.as_deref().map(str::len), Some(crate::outbox::MAX_ERROR_CHARS));
    let delivered = store.get_delivery(&first[1].id).await.expect("get").expect("known");
    assert_eq!((delivered.status, delivered.delivered_at), (DeliveryStatus::Delivered, Some(soon)));
    let due_later = store.claim_due(&hook(&every), retry_at, until, 10).await.expect("claim");
    assert_eq!(due_later.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [first[0].id.as_str()]);

    let dead_only = DeliveryQuery { limit: 10, status: Some(DeliveryStatus::Dead) };
    let dead_ones = store.list_deliveries(&dead_only).await.expect("list");
    assert_eq!(dead_ones.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [other[0].id.as_str()]);
    // Depth counts the undelivered: one retried and two never tried, one dead.
    let depth = store.depth().await.expect("depth");
    assert_eq!(depth, crate::outbox::OutboxDepth { pending: 3, dead: 1 });
    let later = soon + Duration::seconds(30);
    let requeued = store.redeliver(&other[0].id, later).await.expect("redeliver");
    assert_eq!(requeued.id, other[0].id, "a redelivery keeps its id");
    assert_eq!(
        (requeued.status, requeued.queued_at, requeued.attempts),
        (DeliveryStatus::Pending, later, 1)
    );
    let due = store.claim_due(&hook(&done_only), later, until, 10).await.expect("claim");
    assert_eq!(due.len(), 1);

    // Expiry: pending deliveries queued before the cut die, whatever their hook; the
    // others (delivered, dead, newer) are left alone.
    let pending = DeliveryQuery { limit: 10, status: Some(DeliveryStatus::Pending) };
    let before_cut = store.list_deliveries(&pending).await.expect("list");
    assert_eq!(before_cut.len(), 4, "{before_cut:?}");
    let cut = requeued.queued_at; // the redelivered one is not older than that
    let expired = store.expire(cut, "not delivered within 24 h").await.expect("expire");
    assert_eq!(expired, 3);
    assert_eq!(store.expire(cut, "again").await.expect("expire"), 0);
    let left = store.list_deliveries(&pending).await.expect("list");
    assert_eq!(left.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), [requeued.id.as_str()]);
    let gone = store.get_delivery(&first[0].id).await.expect("get").expect("known");
    assert_eq!((gone.status, gone.attempts), (DeliveryStatus::Dead, 1), "no attempt counted");
    assert_eq!(gone.last_error.as_deref(), Some("not delivered within 24 h"));

    for missing in [
        store.record_attempt("dlv_missing", &Attempt::Delivered, now).await.err(),
        store.redeliver("dlv_missing", now).await.err(),
    ] {
        assert!(
            matches!(missing, Some(crate::Error::NotFound { what: "delivery", .. })),
            "{missing:?}"
        );
    }
    assert_eq!(store.get_delivery("dlv_missing").await.expect("get"), None);
    // Deleting a task keeps its deliveries: they are history, and may still be due.
    store.delete_task(&id).await.expect("delete");
    assert_eq!(store.list_deliveries(&all(10)).await.expect("list").len(), 5);
    // A task that arrives from a source notifies as one created directly does.
    let imported = store.create_task_once(&task("task_imported", now), "inbox:a.yaml@1").await;
    assert!(matches!(imported, Ok(Created::New(_))), "{imported:?}");
    let deliveries = store.list_deliveries(&all(10)).await.expect("list");
    assert_eq!(deliveries.len(), 6, "the imported task's task.created");
    assert!(
        deliveries.iter().any(|d| d.notice.task.id.as_str() == "task_imported"),
        "{deliveries:?}"
    );
}

/// Batch claims ([`Store::claim_due_tasks`]) on two handles to one store, as two
/// workers would hold: claiming at once they never get one task; a task not due is
/// not claimed; an owner's own valid claim is kept with its epoch; an expired one
/// is taken by another owner with a greater epoch.
pub async fn batch_claims_scenario(store: Arc<dyn Store>, other: Arc<dyn Store>) {
    use crate::store::DueQuery;
    use std::collections::HashSet;
    let now = Utc::now();
    let until = now + Duration::seconds(30);
    for i in 0..10 {
        store.create_task(&task(&format!("task_b{i:02}"), now)).await.expect("create");
    }
    let mut later = task("task_later", now);
    later.next_check_at = Some(now + Duration::hours(1));
    store.create_task(&later).await.expect("create");

    let query = DueQuery::new(now, 20);
    let (a, b) = tokio::join!(
        store.claim_due_tasks("w1", &query, until),
        other.claim_due_tasks("w2", &query, until),
    );
    let (a, b) = (a.expect("w1 claims"), b.expect("w2 claims"));
    let ids = |claims: &[(Task, Lease)]| -> HashSet<TaskId> {
        claims.iter().map(|(t, _)| t.id.clone()).collect()
    };
    let (ids_a, ids_b) = (ids(&a), ids(&b));
    assert!(ids_a.is_disjoint(&ids_b), "one task claimed by two workers: {ids_a:?} {ids_b:?}");
    assert!(!ids_a.is_empty() || !ids_b.is_empty(), "nothing claimed");
    // Every due task is taken by one of them: a row one skips is one the other
    // holds.
    assert_eq!(ids_a.len() + ids_b.len(), 10, "due tasks left unclaimed: {ids_a:?} {ids_b:?}");
    let later_id = TaskId::from("task_later");
    assert!(!ids_a.contains(&later_id) && !ids_b.contains(&later_id), "a task not due was claimed");
    for (task, lease) in a.iter().chain(&b) {
        assert!(lease.epoch >= 1, "{}: a claim taken anew has epoch {}", task.id, lease.epoch);
    }

    // My valid claims are kept, with their epochs; the other worker's stay theirs.
    let again = store.claim_due_tasks("w1", &query, until).await.expect("w1 again");
    let held: HashMap<TaskId, Lease> = a.iter().map(|(t, l)| (t.id.clone(), l.clone())).collect();
    for (task, lease) in &again {
        assert!(!ids_b.contains(&task.id), "{} is held by w2", task.id);
        if let Some(before) = held.get(&task.id) {
            assert_eq!(lease, before, "{}: a kept claim changed", task.id);
        }
    }
    assert!(ids(&again).is_superset(&ids_a), "w1 lost a claim it still held");

    // Past every claim's end, w2 takes all ten, each with a greater epoch.
    let expired = DueQuery::new(until + Duration::seconds(1), 20);
    let taken = other
        .claim_due_tasks("w2", &expired, until + Duration::seconds(60))
        .await
        .expect("w2 takes over");
    assert_eq!(ids(&taken).len(), 10, "expired claims are taken: {:?}", ids(&taken));
    for (task, lease) in &taken {
        assert_eq!(lease.owner, "w2");
        if let Some(before) = held.get(&task.id) {
            assert!(
                lease.epoch > before.epoch,
                "{}: epoch {} after {}",
                task.id,
                lease.epoch,
                before.epoch
            );
        }
    }
    let none = store.claim_due_tasks("w1", &expired, until).await.expect("w1 after takeover");
    assert!(none.is_empty(), "w1 claimed tasks w2 holds: {:?}", ids(&none));
}

/// Tasks bound to OpenCode servers ([`Task::opencode`]): the binding reads back as
/// written, and a worker connected to one server claims its tasks and unbound ones,
/// never another server's ([`crate::store::DueQuery::opencode`]).
pub async fn opencode_binding_scenario(store: Arc<dyn Store>) {
    use crate::store::DueQuery;
    use std::collections::HashSet;
    let now = Utc::now();
    let until = now + Duration::seconds(30);
    for (id, opencode) in
        [("task_on_a", Some("a")), ("task_on_b", Some("b")), ("task_anywhere", None)]
    {
        let mut t = task(id, now);
        t.opencode = opencode.map(str::to_owned);
        store.create_task(&t).await.expect("create");
    }
    let read = store.get_task(&TaskId::from("task_on_a")).await.expect("get").expect("exists");
    assert_eq!(read.opencode.as_deref(), Some("a"), "the binding reads back");
    let ids = |claims: &[(Task, Lease)]| -> HashSet<String> {
        claims.iter().map(|(t, _)| t.id.to_string()).collect()
    };

    let on_a = DueQuery::new(now, 10).on(Some("a".into()));
    let claimed = store.claim_due_tasks("worker-a", &on_a, until).await.expect("claim on a");
    assert_eq!(
        ids(&claimed),
        HashSet::from(["task_on_a".to_owned(), "task_anywhere".to_owned()]),
        "a worker on OpenCode a takes a's tasks and unbound ones"
    );
    let on_b = DueQuery::new(now, 10).on(Some("b".into()));
    let claimed = store.claim_due_tasks("worker-b", &on_b, until).await.expect("claim on b");
    assert_eq!(ids(&claimed), HashSet::from(["task_on_b".to_owned()]), "b's task only");
    let on_c = DueQuery::new(now + Duration::seconds(60), 10).on(Some("c".into()));
    let claimed = store
        .claim_due_tasks("worker-c", &on_c, until + Duration::seconds(60))
        .await
        .expect("claim on c");
    assert_eq!(
        ids(&claimed),
        HashSet::from(["task_anywhere".to_owned()]),
        "a worker on another server takes only unbound tasks, even once claims expire"
    );
    let unnamed = DueQuery::new(now + Duration::seconds(120), 10);
    let claimed = store
        .claim_due_tasks("worker-unnamed", &unnamed, until + Duration::seconds(120))
        .await
        .expect("claim on no named server");
    assert_eq!(
        ids(&claimed),
        HashSet::from(["task_anywhere".to_owned()]),
        "a worker naming no server takes only unbound tasks"
    );
    let a_only =
        DueQuery::new(now + Duration::seconds(180), 10).on(Some("a".into())).unbound(false);
    let claimed = store
        .claim_due_tasks("worker-a2", &a_only, until + Duration::seconds(180))
        .await
        .expect("claim a's bound tasks only");
    assert_eq!(
        ids(&claimed),
        HashSet::from(["task_on_a".to_owned()]),
        "a harness that takes no unbound tasks takes only its server's"
    );
}
