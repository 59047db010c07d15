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
use crate::event::{Event, EventKind};
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
    agent: Arc<dyn AgentServer>,
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

mod concurrency;
mod errors;
mod lifecycle;
mod unattended;
