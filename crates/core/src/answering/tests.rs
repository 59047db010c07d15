use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use super::*;
use crate::answer::Channel;
use crate::memory_agent::MemoryAgent;
use crate::request::{Question, RequestKind};
use crate::spec::TaskSpec;
use crate::store::{LogQuery, MemoryStore, StoredLogEntry, TaskQuery};

const CLI: AnsweredBy = AnsweredBy::Person { channel: Channel::Cli };

fn question(id: &str) -> PendingRequest {
    PendingRequest {
        id: id.into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Question {
            questions: vec![Question {
                question: "Which file name should I use?".into(),
                options: vec!["a.txt".into(), "b.txt".into()],
            }],
        },
        asked_at: None,
    }
}

fn permission(id: &str) -> PendingRequest {
    PendingRequest {
        id: id.into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Permission {
            permission: "bash".into(),
            patterns: vec!["echo hello > hello.txt".into()],
        },
        asked_at: None,
    }
}

fn choose(label: &str) -> Answer {
    Answer::Choose { answers: vec![vec![label.to_owned()]] }
}

/// A store holding one waiting task with `pending` stored, and an agent holding them.
async fn waiting_on(pending: Vec<PendingRequest>) -> (MemoryStore, MemoryAgent, TaskId) {
    let store = MemoryStore::new();
    let id = TaskId::from("task_answer1");
    let mut task = Task::new(id.clone(), TaskSpec::new("n", "/w", "g"), Utc::now());
    task.status = TaskStatus::Waiting;
    task.pending_requests = pending.clone();
    store.create_task(&task).await.expect("created");
    let agent = MemoryAgent::replying(&[]);
    agent.set_pending(pending);
    (store, agent, id)
}

async fn log(store: &dyn Store, id: &TaskId) -> Vec<StoredLogEntry> {
    store.check_log(id, &LogQuery::default()).await.expect("log")
}

#[tokio::test]
async fn the_only_pending_request_is_answered_audited_and_taken_off_the_task() {
    let (store, agent, id) = waiting_on(vec![question("que_1")]).await;
    let answered = answer_pending(&store, &agent, &id, None, &choose("a.txt"), &CLI, Utc::now())
        .await
        .expect("answered");
    let Answered::Delivered { task, request, .. } = answered else {
        panic!("delivered: {answered:?}")
    };
    assert_eq!(request.id, "que_1");
    assert_eq!(agent.answers(), vec![("que_1".to_owned(), choose("a.txt"))]);
    assert!(task.pending_requests.is_empty());
    assert_eq!(task.status, TaskStatus::Running, "nothing else holds the agent");
    let entries = log(&store, &id).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].entry.summary,
        r#"Answered question: "Which file name should I use?": answered "a.txt", by a person (CLI)"#
    );
    assert_eq!(entries[0].entry.status, TaskStatus::Running);
}

#[tokio::test]
async fn with_several_pending_the_request_must_be_named_by_id_or_prefix() {
    let (store, agent, id) = waiting_on(vec![question("que_1"), permission("per_2")]).await;
    let allow = Answer::Allow { always: false };
    let refused =
        answer_pending(&store, &agent, &id, None, &allow, &CLI, Utc::now()).await.expect("ran");
    let Answered::Refused(refusal @ Refusal::Ambiguous { .. }) = &refused else {
        panic!("ambiguous: {refused:?}")
    };
    let text = refusal.to_string();
    assert!(
        text.contains("2 pending") && text.contains("que_1") && text.contains("per_2"),
        "{text}"
    );
    assert!(text.contains(r#"permission: bash "echo hello > hello.txt""#), "{text}");
    assert!(agent.answers().is_empty(), "nothing sent");

    let unknown = answer_pending(&store, &agent, &id, Some("per_9"), &allow, &CLI, Utc::now())
        .await
        .expect("ran");
    assert!(
        matches!(&unknown, Answered::Refused(Refusal::UnknownRequest { request_id, .. }) if request_id == "per_9"),
        "{unknown:?}"
    );

    // A prefix names the permission; the question stays pending and the task waiting.
    let answered = answer_pending(&store, &agent, &id, Some("per"), &allow, &CLI, Utc::now())
        .await
        .expect("answered");
    let Answered::Delivered { task, .. } = answered else { panic!("delivered: {answered:?}") };
    assert_eq!(task.pending_requests, vec![question("que_1")]);
    assert_eq!(task.status, TaskStatus::Waiting, "the question still holds the agent");
    assert_eq!(agent.answers(), vec![("per_2".to_owned(), allow)]);
}

#[tokio::test]
async fn nothing_pending_an_unknown_task_and_a_misfit_are_refused_without_sending() {
    let (store, agent, id) = waiting_on(vec![]).await;
    let dismiss = Answer::Dismiss;
    let nothing =
        answer_pending(&store, &agent, &id, None, &dismiss, &CLI, Utc::now()).await.expect("ran");
    assert_eq!(nothing, Answered::Refused(Refusal::NothingPending { task_id: id.clone() }));
    let missing = TaskId::from("task_nope");
    let unknown = answer_pending(&store, &agent, &missing, None, &dismiss, &CLI, Utc::now())
        .await
        .expect("ran");
    assert_eq!(unknown, Answered::Refused(Refusal::UnknownTask { id: missing }));

    let (store, agent, id) = waiting_on(vec![question("que_1")]).await;
    let misfit = answer_pending(&store, &agent, &id, None, &choose("c.txt"), &CLI, Utc::now())
        .await
        .expect("ran");
    let Answered::Refused(Refusal::Misfit { reason, .. }) = &misfit else {
        panic!("misfit: {misfit:?}")
    };
    assert!(reason.contains(r#""a.txt", "b.txt""#), "lists the options: {reason}");
    let allow = Answer::Allow { always: true };
    let wrong_kind =
        answer_pending(&store, &agent, &id, None, &allow, &CLI, Utc::now()).await.expect("ran");
    assert!(matches!(wrong_kind, Answered::Refused(Refusal::Misfit { .. })), "{wrong_kind:?}");
    assert!(agent.answers().is_empty(), "nothing sent");
    assert!(log(&store, &id).await.is_empty(), "nothing logged");
    let task = store.get_task(&id).await.expect("read").expect("there");
    assert_eq!(task.pending_requests, vec![question("que_1")], "unchanged");
}

#[tokio::test]
async fn a_request_the_agent_no_longer_holds_is_reported_logged_and_cleared() {
    let (store, agent, id) = waiting_on(vec![question("que_1")]).await;
    agent.set_pending(Vec::new()); // answered in OpenCode's TUI meanwhile
    let answered = answer_pending(&store, &agent, &id, None, &choose("b.txt"), &CLI, Utc::now())
        .await
        .expect("ran");
    let Answered::NoLongerPending { task, request, .. } = answered else {
        panic!("no longer pending: {answered:?}")
    };
    assert_eq!(request.id, "que_1");
    assert!(task.pending_requests.is_empty(), "the stale request is off the task");
    assert!(agent.answers().is_empty());
    let entries = log(&store, &id).await;
    assert_eq!(entries.len(), 1);
    let summary = &entries[0].entry.summary;
    assert!(
        summary.starts_with("Not answered question") && summary.contains("no longer pending"),
        "{summary}"
    );
    assert!(summary.contains("by a person (CLI)"), "{summary}");
}

#[tokio::test]
async fn an_agent_server_failure_is_an_error_and_changes_nothing() {
    let (store, agent, id) = waiting_on(vec![permission("per_1")]).await;
    agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    let allow = Answer::Allow { always: false };
    let error = answer_pending(&store, &agent, &id, None, &allow, &CLI, Utc::now())
        .await
        .expect_err("unreachable");
    assert!(error.is_transient(), "{error}");
    assert!(log(&store, &id).await.is_empty());
    let task = store.get_task(&id).await.expect("read").expect("there");
    assert_eq!(task.pending_requests, vec![permission("per_1")]);
}

/// A store where a harness's check lands just before the answer's first write.
struct CheckLandsFirst {
    inner: MemoryStore,
    landed: AtomicBool,
}

#[async_trait]
impl Store for CheckLandsFirst {
    async fn create_task(&self, task: &Task) -> Result<StoreVersion> {
        self.inner.create_task(task).await
    }
    async fn create_task_once(&self, task: &Task, origin: &str) -> Result<crate::store::Created> {
        self.inner.create_task_once(task, origin).await
    }
    async fn task_origin(&self, id: &TaskId) -> Result<Option<String>> {
        self.inner.task_origin(id).await
    }
    async fn write_task(
        &self,
        id: &TaskId,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
        guard: &Guard,
    ) -> Result<WriteOutcome> {
        if !self.landed.swap(true, Ordering::SeqCst) {
            let busy = CheckLogEntry::new(Utc::now(), TaskStatus::Waiting, "a check", "");
            let check = TaskUpdate { idle_checks: Some(3), ..TaskUpdate::default() };
            self.inner.update_task(id, &check, Some(&busy)).await?;
        }
        self.inner.write_task(id, update, log, guard).await
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
    async fn count_by_status(&self) -> Result<std::collections::HashMap<TaskStatus, u64>> {
        self.inner.count_by_status().await
    }
    async fn store_version(&self) -> Result<StoreVersion> {
        self.inner.store_version().await
    }
}

#[tokio::test]
async fn a_check_landing_meanwhile_is_kept_and_the_answer_written_after_it() {
    let (inner, agent, id) = waiting_on(vec![permission("per_1")]).await;
    let store = Arc::new(CheckLandsFirst { inner, landed: AtomicBool::new(false) });
    let deny = Answer::Deny { message: Some("use cargo".into()) };
    let answered = answer_pending(store.as_ref(), &agent, &id, None, &deny, &CLI, Utc::now())
        .await
        .expect("ran");
    let Answered::Delivered { task, .. } = answered else { panic!("delivered: {answered:?}") };
    assert_eq!(task.idle_checks, 3, "the check's write is not overwritten");
    assert!(task.pending_requests.is_empty());
    let entries = log(store.as_ref(), &id).await;
    let summaries: Vec<&str> = entries.iter().map(|e| e.entry.summary.as_str()).collect();
    assert_eq!(summaries.len(), 2, "{summaries:?}");
    assert_eq!(summaries[0], "a check");
    assert!(summaries[1].contains(r#"denied: "use cargo", by a person (CLI)"#), "{summaries:?}");
}
