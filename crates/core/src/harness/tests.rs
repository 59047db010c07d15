//! Unit tests of the harness state machine against the in-memory agent and store.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::*;
use crate::agent::{AgentEvent, AgentMessage, Role, SessionActivity, SessionRef};
use crate::check::{
    CheckContext, CheckOutcome, CheckResult, Checker, Verification, VerificationScope,
};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::memory_agent::MemoryAgent;
use crate::spec::Step;
use crate::store::{LogQuery, MemoryStore};
use crate::task::{TaskStatus, TaskUpdate};

/// Reads the reference's markers, without the prompts crate.
struct Markers;

#[async_trait]
impl Checker for Markers {
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult> {
        let text: String =
            context.messages.iter().filter(|m| m.is_assistant()).map(|m| m.text() + "\n").collect();
        let step_done = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("STEP DONE:"))
            .filter_map(|n| n.trim().parse::<u32>().ok())
            .max()
            .unwrap_or(0);
        Ok(CheckResult {
            task_complete: text.contains("TASK COMPLETE"),
            step_done,
            acceptance_total: context.spec.acceptance.len(),
            ..CheckResult::default()
        })
    }
}

/// Fails verification of any completion claim `fails` times, then passes.
struct Verifying {
    fails: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl Checker for Verifying {
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult> {
        let mut result = Markers.check(context).await?;
        if result.task_complete {
            let failing = self
                .fails
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok();
            let outcome = CheckOutcome {
                label: "file_exists: done.txt".into(),
                passed: !failing,
                exit_status: None,
                duration_ms: 1,
                output_tail: String::new(),
                timed_out: false,
                error: failing.then(|| "done.txt does not exist".to_owned()),
            };
            result.task_complete = !failing;
            result.verification =
                Some(Verification { scope: VerificationScope::Task, outcomes: vec![outcome] });
        }
        Ok(result)
    }
}

/// Plain prompts that name what they are, so tests can tell them apart.
pub(super) struct Words;

impl Dialogue for Words {
    fn bootstrap(&self, spec: &TaskSpec, step: usize) -> String {
        format!("BOOTSTRAP {} step {}", spec.name, step + 1)
    }
    fn periodic_check(&self, _: &TaskSpec, step: usize, _: &CheckResult, _: &[u32]) -> String {
        format!("PERIODIC step {}", step + 1)
    }
    fn next_step(&self, _: &TaskSpec, step: usize) -> String {
        format!("NEXT step {}", step + 1)
    }
    fn auto_continue(&self, _: &TaskSpec, step: usize) -> String {
        format!("CONTINUE step {}", step + 1)
    }
    fn verification_failed(
        &self,
        _: &TaskSpec,
        _: Option<u32>,
        failures: &[CheckOutcome],
    ) -> String {
        format!("FIX {}", failures.iter().map(|f| f.label.as_str()).collect::<Vec<_>>().join(", "))
    }
    fn needs_continue_reply(&self, messages: &[AgentMessage]) -> bool {
        messages.last().is_some_and(|m| m.is_assistant() && m.text().contains("Should I proceed?"))
    }
    fn is_busy(&self, messages: &[AgentMessage]) -> bool {
        messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .is_some_and(|m| m.completed_at.is_none())
    }
    fn failure(&self, task: &TaskId, failure: &Failure) -> String {
        match failure {
            Failure::CredentialsRefused { refusals, .. } => {
                format!("WORDED {task}: {refusals} refusals")
            }
            other => other.to_string(),
        }
    }
}

struct Fixture {
    harness: Arc<Harness>,
    agent: Arc<MemoryAgent>,
    store: Arc<MemoryStore>,
    events: tokio::sync::broadcast::Receiver<Event>,
    workspace: tempfile_dir::Dir,
}

mod tempfile_dir {
    /// A temporary directory removed on drop (core has no tempfile dependency).
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir()
                .join(format!("openloom-harness-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).expect("temp dir");
            Dir(path.canonicalize().expect("canonical"))
        }
        pub fn path(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A harness over `agent` and `store` with the test wording, any workspace allowed,
/// 1 s backoff, and `config` applied on top.
fn harness_over(
    agent: Arc<MemoryAgent>,
    store: Arc<MemoryStore>,
    checker: Arc<dyn Checker>,
    bus: EventBus,
    workspaces: WorkspacePolicy,
    config: HarnessConfig,
) -> Arc<Harness> {
    let parts = HarnessParts { agent, store, checker, dialogue: Arc::new(Words), bus, workspaces };
    Arc::new(Harness::with_config(parts, config))
}

fn test_config() -> HarnessConfig {
    HarnessConfig { backoff_base: Duration::from_secs(1), ..HarnessConfig::default() }
}

fn fixture_with(agent: MemoryAgent, checker: Arc<dyn Checker>) -> Fixture {
    let agent = Arc::new(agent);
    let store = Arc::new(MemoryStore::new());
    let bus = EventBus::new();
    let events = bus.receiver();
    let harness = harness_over(
        agent.clone(),
        store.clone(),
        checker,
        bus,
        WorkspacePolicy::any(),
        test_config(),
    );
    Fixture { harness, agent, store, events, workspace: tempfile_dir::Dir::new() }
}

fn fixture(agent: MemoryAgent) -> Fixture {
    fixture_with(agent, Arc::new(Markers))
}

fn three_steps(workspace: &str) -> TaskSpec {
    let mut spec = TaskSpec::new("three", workspace, "do three things");
    spec.steps = vec![Step::new("one"), Step::new("two"), Step::new("three")];
    spec
}

impl Fixture {
    async fn task(&self, id: &TaskId) -> Task {
        self.store.get_task(id).await.expect("store").expect("task exists")
    }

    /// Makes the task due now and checks it.
    /// A second harness over this fixture's agent and store (a restart, another
    /// process), with the marker checker.
    fn another_harness(&self, workspaces: WorkspacePolicy, config: HarnessConfig) -> Arc<Harness> {
        harness_over(
            self.agent.clone(),
            self.store.clone(),
            Arc::new(Markers),
            EventBus::new(),
            workspaces,
            config,
        )
    }

    async fn check_due(&self, id: &TaskId) {
        let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
        self.store.update_task(id, &update, None).await.expect("make due");
        self.harness.tick().await.expect("tick");
    }

    fn prompts(&self) -> Vec<String> {
        self.agent.prompts().into_iter().map(|(_, p)| p).collect()
    }

    fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            out.push(event);
        }
        out
    }
}

#[tokio::test]
async fn a_task_is_started_with_a_session_and_the_bootstrap_prompt() {
    let mut f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    assert_eq!(f.harness.tick().await.expect("tick"), 1);

    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.session_ids.len(), 1);
    assert_eq!(task.active_session_id.as_deref(), Some(task.session_ids[0].as_str()));
    assert_eq!(f.prompts(), vec!["BOOTSTRAP three step 1"]);
    assert!(task.next_check_at.expect("scheduled") > Utc::now());

    let events = f.drain_events();
    let kinds: Vec<_> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds, vec![EventKind::Created, EventKind::Started]);
    assert!(events[0].store_version < events[1].store_version, "events carry increasing versions");
    let log = f.store.check_log(&id, &LogQuery::default()).await.expect("log");
    assert_eq!(
        log.last().expect("entry").entry.summary,
        "Harness started and bootstrap prompt sent"
    );
}

use crate::event::EventKind;

#[tokio::test]
async fn steps_reported_one_by_one_are_nudged_and_then_complete() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1", "STEP DONE: 2", "STEP DONE: 3"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.completed_steps, vec![1]);
    assert_eq!(task.current_step, 1);
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
    assert!((task.progress - 1.0 / 3.0).abs() < 1e-9);

    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.progress, 1.0);
    assert_eq!(task.next_check_at, None);
    assert_eq!(task.last_summary.as_deref(), Some("All steps appear complete"));
}

#[tokio::test]
async fn a_later_step_reported_first_counts_the_earlier_ones_done() {
    let f = fixture(MemoryAgent::replying(&["Did the first two.\nSTEP DONE: 2"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.completed_steps, vec![1, 2]);
    assert!((task.progress - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");
}

#[tokio::test]
async fn an_agent_asking_to_proceed_gets_a_go_ahead() {
    let f = fixture(MemoryAgent::replying(&["Plan ready. Should I proceed?"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "CONTINUE step 1");
    assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Auto-continued to step 1"));
}

#[tokio::test]
async fn an_idle_agent_with_nothing_new_gets_the_periodic_prompt_only_when_scheduled() {
    let f = fixture(MemoryAgent::replying(&["thinking about it"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    // An idle event with nothing new must not prompt the agent in a loop.
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.prompts().len(), 1);

    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "PERIODIC step 1");
    assert_eq!(f.task(&id).await.idle_checks, 1);
}

#[tokio::test]
async fn an_idle_event_reacts_to_a_reported_step_at_once() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
    // The same idle period announced twice changes nothing.
    let before = f.task(&id).await;
    f.harness.check_now(&id, Trigger::Event).await.expect("duplicate");
    assert_eq!(f.task(&id).await, before);
    assert_eq!(f.prompts().len(), 2);
}

#[tokio::test]
async fn a_busy_session_is_left_alone() {
    let f = fixture(MemoryAgent::replying(&["on it"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.last_summary.as_deref(), Some("Agent is busy"));
    assert_eq!(task.idle_checks, 0);
    assert_eq!(f.prompts().len(), 1, "no nudge while busy");

    f.agent.set_activity(
        &session,
        SessionActivity::Retry { attempt: 2, message: "rate limited".into() },
    );
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(task.last_summary.expect("summary").contains("rate limited"));
}

#[tokio::test]
async fn a_prompt_not_yet_answered_is_not_judged_again() {
    // The agent has not answered the bootstrap yet (and OpenCode may not say busy).
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let before = f.task(&id).await;
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.task(&id).await, before, "an event check records nothing");

    f.check_due(&id).await;
    assert_eq!(
        f.task(&id).await.last_summary.as_deref(),
        Some("Prompt sent; waiting for the agent to answer")
    );
    assert_eq!(f.prompts().len(), 1, "no periodic prompt on top of an unanswered one");
}

#[tokio::test]
async fn transient_errors_wait_with_backoff_and_recover() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.check_due(&id).await;
    let first = f.task(&id).await;
    assert_eq!(first.status, TaskStatus::Waiting);
    assert_eq!(first.consecutive_errors, 1);
    assert!(first.error.as_deref().expect("error").contains("connection refused"));
    let first_wait = first.next_check_at.expect("retry") - first.last_check_at.expect("checked");

    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.check_due(&id).await;
    let second = f.task(&id).await;
    assert_eq!(second.consecutive_errors, 2);
    let second_wait = second.next_check_at.expect("retry") - second.last_check_at.expect("checked");
    assert!(second_wait > first_wait, "backoff grows: {first_wait} then {second_wait}");

    f.check_due(&id).await;
    let recovered = f.task(&id).await;
    assert_eq!(recovered.status, TaskStatus::Running);
    assert_eq!(recovered.consecutive_errors, 0);
    assert_eq!(recovered.error, None);
    assert_eq!(recovered.completed_steps, vec![1]);
}

#[tokio::test]
async fn a_failed_first_prompt_never_creates_a_second_session() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.agent.fail_next(Error::AgentUnavailable { message: "x".into() });
    f.harness.tick().await.expect("tick");
    assert_eq!(f.task(&id).await.status, TaskStatus::Pending, "create failed: still pending");
    assert!(f.agent.sessions().is_empty());

    // Now creation succeeds but the prompt does not get through: the session is kept.
    f.agent.fail_next_prompt(Error::AgentUnavailable { message: "reset".into() });
    f.check_due(&id).await;
    assert_eq!(f.agent.sessions().len(), 1);
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Pending);
    assert!(task.active_session_id.is_some());

    f.check_due(&id).await;
    assert_eq!(f.agent.sessions().len(), 1, "the retry attached to the same session");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    assert_eq!(f.prompts().len(), 1);
}

#[tokio::test]
async fn a_retry_after_a_lost_prompt_attaches_to_the_stored_session() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    // Simulate a crash between session creation and prompt: the store has the session.
    let session = f.agent.create_session(&f.workspace.path(), "three").await.expect("session");
    let update = TaskUpdate {
        active_session_id: Some(Some(session.id.clone())),
        session_ids: Some(vec![session.id.clone()]),
        ..TaskUpdate::default()
    };
    f.store.update_task(&id, &update, None).await.expect("store");
    f.harness.tick().await.expect("tick");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(f.agent.sessions().len(), 1, "no second session");
    assert_eq!(task.session_ids, vec![session.id]);
}

#[tokio::test]
async fn a_deleted_session_fails_the_task_with_advice() {
    let mut f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.delete_session(&session);
    f.drain_events();
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.as_deref().expect("error").contains("no longer exists"));
    assert_eq!(task.next_check_at, None);
    assert!(f.drain_events().iter().any(|e| e.kind() == EventKind::Failed));
}

#[tokio::test]
async fn refused_credentials_fail_only_after_the_limit() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    for attempt in 1..=5 {
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.check_due(&id).await;
        let status = f.task(&id).await.status;
        let expected = if attempt < 5 { TaskStatus::Waiting } else { TaskStatus::Failed };
        assert_eq!(status, expected, "attempt {attempt}");
    }
    // The application words the failure (here the test's `Words`), not the core.
    let error = f.task(&id).await.error.expect("error");
    assert_eq!(error, format!("WORDED {id}: 5 refusals"));
}

#[tokio::test]
async fn a_store_locked_by_another_process_makes_the_task_wait_not_fail() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let due = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    f.store.update_task(&id, &due, None).await.expect("make due");
    // The check's own write meets the lock; recording the error then gets through.
    f.store.fail_next_update(Error::StoreBusy { message: "locked elsewhere".into(), source: None });
    f.harness.tick().await.expect("tick");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(task.error.as_deref().expect("error").contains("store busy"), "{:?}", task.error);
    assert!(task.next_check_at.expect("a retry is scheduled") > Utc::now());

    // Once the lock is gone the task carries on.
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!((task.error, task.consecutive_errors), (None, 0));
}

#[tokio::test]
async fn refusals_after_other_errors_get_the_whole_allowance() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    for _ in 0..4 {
        f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
        f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
        f.check_due(&id).await;
    }
    assert_eq!(f.task(&id).await.consecutive_errors, 4);
    // OpenCode comes back with other credentials: five refusals in a row, not one.
    for attempt in 1..=5 {
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.check_due(&id).await;
        let expected = if attempt < 5 { TaskStatus::Waiting } else { TaskStatus::Failed };
        assert_eq!(f.task(&id).await.status, expected, "refusal {attempt}");
    }
}

#[tokio::test]
async fn a_workspace_outside_the_roots_fails_at_start() {
    let f = fixture(MemoryAgent::replying(&[]));
    let allowed = tempfile_dir::Dir::new();
    let harness = f.another_harness(WorkspacePolicy::within([allowed.0.clone()]), test_config());
    let err = harness.add_task(three_steps(&f.workspace.path())).await.expect_err("refused");
    assert!(err.to_string().contains("outside the allowed roots"), "{err}");
}

#[tokio::test]
async fn a_workspace_that_disappears_mid_task_fails_it() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let workspace = tempfile_dir::Dir::new();
    let id = f.harness.add_task(three_steps(&workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    drop(workspace);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.expect("error").contains("cannot be used"));
}

#[tokio::test]
async fn an_absurd_interval_schedules_far_away_instead_of_panicking() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.check_interval_seconds = u64::MAX;
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert!(
        task.next_check_at.expect("scheduled") > Utc::now() + chrono::Duration::days(365 * 1000)
    );
}

#[tokio::test]
async fn a_one_shot_task_is_prompted_once_and_never_checked() {
    let f = fixture(MemoryAgent::replying(&["ok"]));
    let mut spec = TaskSpec::new("quick", f.workspace.path(), "fix the typo");
    spec.check_interval_seconds = 0;
    spec.initial_prompt = Some("fix the typo in README".into());
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.next_check_at, None);
    assert_eq!(f.prompts(), vec!["fix the typo in README"]);
    assert_eq!(f.harness.tick().await.expect("tick"), 0, "never due again");
}

#[tokio::test]
async fn failed_verification_feeds_back_and_then_completes() {
    let checker = Arc::new(Verifying { fails: 1.into() });
    let f =
        fixture_with(MemoryAgent::replying(&["TASK COMPLETE", "fixed. TASK COMPLETE"]), checker);
    let mut spec = TaskSpec::new("verified", f.workspace.path(), "make done.txt");
    spec.checks = vec![crate::spec::CheckDefinition::FileExists { path: "done.txt".into() }];
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running, "claim not trusted");
    assert_eq!(task.verification_rounds, 1);
    assert_eq!(f.prompts().last().expect("prompt"), "FIX file_exists: done.txt");
    let log = f.store.check_log(&id, &LogQuery::default()).await.expect("log");
    assert!(log.last().expect("entry").entry.evidence.is_some(), "evidence recorded");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.last_summary.as_deref(), Some("Completion verified: every check passed"));
}

#[tokio::test]
async fn verification_rounds_are_bounded() {
    let checker = Arc::new(Verifying { fails: 100.into() });
    let f = fixture_with(MemoryAgent::new(|_, _| Some("TASK COMPLETE".into())), checker);
    let mut spec = TaskSpec::new("never", f.workspace.path(), "g");
    spec.checks = vec![crate::spec::CheckDefinition::FileExists { path: "done.txt".into() }];
    spec.max_verification_rounds = Some(2);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.expect("error").contains("failed 2 times"));
    assert!(task.last_verification.is_some());
}

#[tokio::test]
async fn user_operations_follow_the_lifecycle() {
    let mut f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.harness.pause(&id).await.expect("pause");
    assert_eq!(f.task(&id).await.status, TaskStatus::Paused);
    assert_eq!(f.harness.tick().await.expect("tick"), 0, "paused tasks are not checked");
    assert!(f.harness.pause(&id).await.is_err(), "cannot pause twice");

    f.harness.resume(&id).await.expect("resume");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);

    let err = f.harness.delete(&id).await.expect_err("must archive first");
    assert!(err.to_string().contains("archive it before deleting"));

    f.harness.complete(&id).await.expect("complete");
    assert_eq!(f.task(&id).await.status, TaskStatus::Completed);
    f.harness.archive(&id).await.expect("archive");
    f.drain_events();
    f.harness.delete(&id).await.expect("delete");
    assert!(f.store.get_task(&id).await.expect("store").is_none());
    assert_eq!(f.drain_events().last().map(Event::kind), Some(EventKind::Deleted));
}

#[tokio::test]
async fn restart_resumes_running_tasks_without_starting_them_again() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    // The process stops (Ctrl-C): its run loop ends and gives up its claims.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");

    // A new harness over the same store and agent, as after a process restart.
    let restarted = f.another_harness(WorkspacePolicy::any(), test_config());
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    f.store.update_task(&id, &update, None).await.expect("due");
    restarted.tick().await.expect("tick");
    assert_eq!(f.agent.sessions().len(), 1, "same session");
    assert!(f.prompts().iter().filter(|p| p.starts_with("BOOTSTRAP")).count() == 1);
    assert_eq!(f.task(&id).await.completed_steps, vec![1]);
}

#[tokio::test]
async fn a_restricted_harness_leaves_other_tasks_alone() {
    let f = fixture(MemoryAgent::replying(&[]));
    let mine = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let other = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.restrict_to([mine.clone()]);
    assert_eq!(f.harness.tick().await.expect("tick"), 1);
    assert_eq!(f.task(&mine).await.status, TaskStatus::Running);
    assert_eq!(f.task(&other).await.status, TaskStatus::Pending, "not started");
    assert_eq!(f.agent.sessions().len(), 1);
}

#[tokio::test]
async fn run_reacts_to_idle_events_and_stops_on_signal() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));

    // Wait for the start, then announce the idle session: the nudge follows at once,
    // long before the 300 s interval.
    let session = wait_for(|| async {
        f.store.get_task(&id).await.ok().flatten().and_then(|t| t.active_session_id)
    })
    .await;
    f.agent.announce(AgentEvent::SessionIdle { session_id: session });
    wait_for(|| async { f.prompts().iter().any(|p| p == "NEXT step 2").then_some(()) }).await;

    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
}

#[tokio::test]
async fn idle_hints_are_checked_by_the_run_loop_even_when_given_before_it_runs() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Idle);
    // The session monitor's callback cannot await: the hint waits for the loop.
    f.harness.hint_idle(&session);
    tokio::task::yield_now().await;
    assert_eq!(f.prompts().len(), 1, "nothing happens until the loop runs");

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    wait_for(|| async { f.prompts().iter().any(|p| p == "NEXT step 2").then_some(()) }).await;
    assert_eq!(f.task(&id).await.current_step, 1, "the check was recorded");
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
}

#[tokio::test]
async fn two_harnesses_sharing_a_store_never_drive_one_task_at_once() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1", "STEP DONE: 2"]));
    let other = f.another_harness(WorkspacePolicy::any(), test_config());
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("the first harness starts it and holds it");
    let due = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };

    // The second one finds it due, and is even asked to check it: it leaves it alone.
    f.store.update_task(&id, &due, None).await.expect("due");
    other.tick().await.expect("tick");
    other.check_now(&id, Trigger::Event).await.expect("check");
    assert_eq!(f.prompts(), vec!["BOOTSTRAP three step 1"], "only the holder speaks");

    // The holder goes on.
    f.harness.tick().await.expect("tick");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");

    // Once the holder stops, the other takes the task over without waiting out the claim.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
    f.store.update_task(&id, &due, None).await.expect("due");
    other.tick().await.expect("tick");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");
}

async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn run_stops_promptly_even_when_the_agent_server_hangs() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let config = HarnessConfig {
        poll_every: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(200),
        ..test_config()
    };
    let harness = f.another_harness(WorkspacePolicy::any(), config);
    let store = f.store.clone();
    let id = harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(harness.clone().run(stop_rx));
    // Started, then due again: the next dispatch hangs on the status request.
    wait_for(|| async {
        store
            .get_task(&id)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Running)
            .map(|_| ())
    })
    .await;
    // Statuses hang from now on, like OpenCode right after a restart.
    f.agent.hang_statuses();
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    store.update_task(&id, &update, None).await.expect("due");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .expect("stops within the grace")
        .expect("joins");
}

#[tokio::test]
async fn an_idle_notice_is_acted_on_without_asking_for_statuses() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start (a pending task needs no statuses)");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.hang_statuses();
    let harness = f.harness.clone();
    // Status requests would hang for ever; the notice says the session is idle.
    tokio::time::timeout(Duration::from_secs(2), harness.notify_idle(&session))
        .await
        .expect("no status request");
    assert_eq!(f.prompts().last().map(String::as_str), Some("NEXT step 2"));
    // A session no task drives is ignored.
    harness.notify_idle("ses_unknown").await;
}

#[tokio::test]
async fn a_busy_check_does_not_swallow_the_idle_event_that_follows() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    // A scheduled check while the reply is still being written: busy.
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Agent is busy"));
    // The session goes idle with the same newest message: it is judged now.
    f.agent.set_activity(&session, SessionActivity::Idle);
    f.harness.notify_idle(&session).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
}

/// Stops the task (as a user would) while the check runs, then claims a step.
struct PausesMidCheck {
    store: Arc<MemoryStore>,
}

#[async_trait]
impl Checker for PausesMidCheck {
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult> {
        let update = TaskUpdate { status: Some(TaskStatus::Paused), ..TaskUpdate::default() };
        self.store.update_task(&context.task.id, &update, None).await?;
        Ok(CheckResult { step_done: 1, ..CheckResult::default() })
    }
}

#[tokio::test]
async fn a_pause_during_a_check_wins_over_the_check() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let store = f.store.clone();
    let agent = f.agent.clone();
    let harness = harness_over(
        agent.clone(),
        store.clone(),
        Arc::new(PausesMidCheck { store: store.clone() }),
        EventBus::new(),
        WorkspacePolicy::any(),
        test_config(),
    );
    let id = harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    harness.tick().await.expect("start");
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    store.update_task(&id, &update, None).await.expect("due");
    harness.tick().await.expect("check");
    assert_eq!(store.get_task(&id).await.expect("store").expect("task").status, TaskStatus::Paused);
    assert_eq!(agent.prompts().len(), 1, "no nudge after the pause");
}

#[tokio::test]
async fn a_huge_step_number_in_a_spec_without_steps_is_harmless() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 4000000000"]));
    let id =
        f.harness.add_task(TaskSpec::new("goal only", f.workspace.path(), "g")).await.expect("add");
    f.harness.tick().await.expect("start");
    tokio::time::timeout(Duration::from_secs(5), f.check_due(&id)).await.expect("quick");
    assert!(f.task(&id).await.completed_steps.is_empty());
}

#[tokio::test]
async fn a_task_without_interval_comes_back_after_a_transient_error() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.check_interval_seconds = 0;
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.agent.fail_next(Error::AgentUnavailable { message: "down".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "down".into() });
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.task(&id).await.status, TaskStatus::Waiting);
    // After the backoff it is due again, although its interval is 0.
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
}

#[tokio::test]
async fn a_failed_task_resumes_in_a_new_session_keeping_its_steps() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let first = f.task(&id).await.active_session_id.expect("session");
    f.agent.delete_session(&first);
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Failed);

    f.harness.resume(&id).await.expect("resume");
    let resumed = f.task(&id).await;
    assert_eq!(resumed.status, TaskStatus::Pending);
    assert_eq!(resumed.active_session_id, None);
    f.harness.tick().await.expect("restart");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.session_ids.len(), 2, "a new session, the old one kept in the history");
    assert_eq!(task.completed_steps, vec![1]);
    assert_eq!(
        f.prompts().last().expect("prompt"),
        "BOOTSTRAP three step 2",
        "focused on the next step"
    );
}

#[tokio::test]
async fn a_possible_idle_notice_asks_for_the_status_before_judging() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.harness.notify_possibly_idle(&session).await;
    assert_eq!(f.prompts().len(), 1, "still busy: nothing judged, nothing sent");
    f.agent.set_activity(&session, SessionActivity::Idle);
    f.harness.notify_possibly_idle(&session).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
}

#[tokio::test]
async fn a_retried_start_does_not_send_a_prompt_that_got_through() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    // The first start created the session and OpenCode got the bootstrap, but the
    // answer was lost: the task is still pending with its session stored.
    let session = f.agent.create_session(&f.workspace.path(), "three").await.expect("session");
    let reference = SessionRef { id: session.id.clone(), directory: session.directory.clone() };
    f.agent
        .send_prompt(&reference, &Words.bootstrap(&f.task(&id).await.spec, 0), None)
        .await
        .expect("sent");
    let update = TaskUpdate {
        active_session_id: Some(Some(session.id.clone())),
        session_ids: Some(vec![session.id.clone()]),
        ..TaskUpdate::default()
    };
    f.store.update_task(&id, &update, None).await.expect("store");
    f.harness.tick().await.expect("retry");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    assert_eq!(f.prompts().len(), 1, "the bootstrap is not sent twice");
}
