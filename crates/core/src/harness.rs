//! The harness: drives each task's agent session from spec to completion.
//!
//! A port of the reference's `HarnessRunner`, generic over the traits, with its
//! weaknesses fixed:
//! - **Transient is not fatal.** An unreachable agent server, a timeout or a 5xx is
//!   recorded in the check log, the task waits with the reason, and the next check
//!   backs off. Only permanent conditions (session deleted, workspace not allowed,
//!   credentials refused for long) fail a task, with a message saying what to do.
//! - **One status fetch per tick.** Session activity is fetched once for all due tasks,
//!   and tasks are checked concurrently with a bound; a slow session never delays
//!   the others.
//! - **React, don't just poll.** [`Harness::run`] follows the agent server's event
//!   stream and checks a task as soon as its session goes idle. The check interval is
//!   the fallback, and the pace of the "are you done?" prompt when nothing changed.
//! - **Nothing started twice.** A created session is stored before the first prompt is
//!   sent, so a retry (or a restarted process) attaches to it instead of creating
//!   another.
//!
//! Every state change is written to the store first (with its check-log entry, in one
//! transaction) and then announced on the bus with the store version of that write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::agent::{AgentEvent, AgentMessage, AgentServer, SessionActivity, SessionRef};
use crate::check::{CheckContext, Checker, VerificationScope};
use crate::dialogue::Dialogue;
use crate::error::{Error, Result};
use crate::event::{Event, EventBus, EventPayload};
use crate::spec::{DEFAULT_MAX_VERIFICATION_ROUNDS, TaskSpec};
use crate::store::{Store, TaskQuery};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};
use crate::workspace::WorkspacePolicy;

/// Tunables of the harness. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    /// Most tasks checked at the same time.
    pub max_concurrent_checks: usize,
    /// Messages read per check.
    pub message_limit: usize,
    /// Most due tasks taken per tick.
    pub due_batch: usize,
    /// Wait after the first transient error; doubles per error in a row.
    pub backoff_base: Duration,
    /// Longest wait between retries after transient errors.
    pub backoff_max: Duration,
    /// Refused credentials in a row after which a task fails.
    pub unauthorized_limit: u32,
    /// How often [`Harness::run`] looks for due tasks.
    pub poll_every: Duration,
    /// How long [`Harness::run`] lets checks in flight finish once told to stop.
    pub shutdown_grace: Duration,
    /// How long this harness's claim on a task lasts without renewal (see
    /// [`Store::claim_task`]): a harness that dies leaves its tasks to another one
    /// sharing the store after this long. [`Harness::run`] renews claims every
    /// third of it.
    pub claim_ttl: Duration,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        HarnessConfig {
            max_concurrent_checks: 8,
            message_limit: 50,
            due_batch: 100,
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            unauthorized_limit: 5,
            poll_every: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
            claim_ttl: Duration::from_secs(30),
        }
    }
}

/// Why a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The task's next check was due.
    Scheduled,
    /// The agent server said the session went idle (or the event stream reconnected).
    Event,
}

/// The pieces a harness is built from.
pub struct HarnessParts {
    /// The agent server to drive.
    pub agent: Arc<dyn AgentServer>,
    /// Where tasks live.
    pub store: Arc<dyn Store>,
    /// Decides how far a task is (markers, verification, or an embedder's own).
    pub checker: Arc<dyn Checker>,
    /// What to say to the agent.
    pub dialogue: Arc<dyn Dialogue>,
    /// Where events go.
    pub bus: EventBus,
    /// Which workspaces are allowed.
    pub workspaces: WorkspacePolicy,
}

/// Drives tasks. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Harness {
    agent: Arc<dyn AgentServer>,
    store: Arc<dyn Store>,
    checker: Arc<dyn Checker>,
    dialogue: Arc<dyn Dialogue>,
    bus: EventBus,
    workspaces: WorkspacePolicy,
    config: HarnessConfig,
    limit: Arc<Semaphore>,
    /// Tasks being checked now (never check one task twice at once), each with a
    /// flag asking for one more check when the current one ends: an idle event that
    /// arrives mid-check must not be lost.
    in_flight: Mutex<HashMap<TaskId, bool>>,
    /// Active session id → task, to route idle events.
    sessions: Mutex<HashMap<String, TaskId>>,
    /// When set, only these tasks are driven (see [`Harness::restrict_to`]).
    scope: Mutex<Option<std::collections::HashSet<TaskId>>>,
    /// Credentials refused in a row, per task. Other errors in between do not count
    /// towards the limit; any other outcome ends the streak. Kept in memory only: a
    /// restart grants the whole allowance again.
    refusals: Mutex<HashMap<TaskId, u32>>,
    /// Sessions that seem to have gone idle ([`Harness::hint_idle`]), for the run
    /// loop to check, so its shutdown waits for those checks too.
    idle_hints: tokio::sync::mpsc::Sender<String>,
    idle_hint_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    /// Who this harness is in task claims ([`Store::claim_task`]): unique per harness.
    owner: String,
}

/// How many idle hints may wait for the run loop; more are dropped (the schedule
/// checks the task anyway).
const IDLE_HINTS_QUEUED: usize = 1024;

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What one outcome of a check decided, before it is written.
struct Decision {
    update: TaskUpdate,
    log: CheckLogEntry,
    events: Vec<EventPayload>,
    /// True when the checker read the transcript (not a busy or waiting note).
    judged: bool,
}

/// Releases a task's in-flight mark when a check ends, however it ends.
struct InFlight<'a> {
    harness: &'a Harness,
    id: TaskId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.harness.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

impl Harness {
    /// A harness with the default configuration.
    pub fn new(parts: HarnessParts) -> Self {
        Self::with_config(parts, HarnessConfig::default())
    }

    /// A harness with an explicit configuration.
    pub fn with_config(parts: HarnessParts, config: HarnessConfig) -> Self {
        let (idle_hints, idle_hint_receiver) = tokio::sync::mpsc::channel(IDLE_HINTS_QUEUED);
        Harness {
            agent: parts.agent,
            store: parts.store,
            checker: parts.checker,
            dialogue: parts.dialogue,
            bus: parts.bus,
            workspaces: parts.workspaces,
            limit: Arc::new(Semaphore::new(config.max_concurrent_checks.max(1))),
            config,
            in_flight: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            scope: Mutex::new(None),
            refusals: Mutex::new(HashMap::new()),
            idle_hints,
            idle_hint_receiver: Mutex::new(Some(idle_hint_receiver)),
            owner: format!("pid {} harness {}", std::process::id(), uuid::Uuid::new_v4().simple()),
        }
    }

    /// Drives only these tasks from now on (adding to any earlier restriction).
    /// `openloom watch` uses it so that watching one spec never starts or nudges the
    /// other tasks that share its database; by default every task in the store is
    /// driven, as `openloom serve` does.
    pub fn restrict_to(&self, ids: impl IntoIterator<Item = TaskId>) {
        let mut scope = self.scope.lock().unwrap_or_else(|e| e.into_inner());
        scope.get_or_insert_with(Default::default).extend(ids);
    }

    fn in_scope(&self, id: &TaskId) -> bool {
        let scope = self.scope.lock().unwrap_or_else(|e| e.into_inner());
        scope.as_ref().is_none_or(|ids| ids.contains(id))
    }

    /// The event bus events are emitted on.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The store tasks live in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The agent server driven.
    pub fn agent(&self) -> &Arc<dyn AgentServer> {
        &self.agent
    }

    /// The workspace policy.
    pub fn workspaces(&self) -> &WorkspacePolicy {
        &self.workspaces
    }

    /// Adds a pending task for `spec`, due now. The workspace must be allowed.
    pub async fn add_task(&self, spec: TaskSpec) -> Result<TaskId> {
        self.workspaces.resolve(&spec.workspace)?;
        self.insert(Task::new(TaskId::generate(), spec, Utc::now())).await
    }

    /// Adds a pending task that drives an existing session instead of creating one.
    pub async fn add_task_for_session(&self, spec: TaskSpec, session_id: &str) -> Result<TaskId> {
        let mut task = Task::new(TaskId::generate(), spec, Utc::now());
        task.active_session_id = Some(session_id.to_owned());
        task.session_ids = vec![session_id.to_owned()];
        self.insert(task).await
    }

    async fn insert(&self, task: Task) -> Result<TaskId> {
        let version = self.store.create_task(&task).await?;
        let payload =
            EventPayload::Created { name: task.name.clone(), workspace: task.workspace.clone() };
        self.bus.emit(Event::new(task.id.clone(), version, payload));
        Ok(task.id)
    }

    /// Checks every due task once and waits for those checks to finish.
    /// Returns how many tasks were checked.
    pub async fn tick(self: &Arc<Self>) -> Result<usize> {
        let mut checks = self.dispatch_due().await?;
        let mut count = 0;
        while checks.join_next().await.is_some() {
            count += 1;
        }
        Ok(count)
    }

    /// Starts checks of the due tasks that are not being checked already, without
    /// waiting for them. Session activity is fetched once for all of them.
    async fn dispatch_due(self: &Arc<Self>) -> Result<JoinSet<()>> {
        let due = self.store.list_due_tasks(Utc::now(), self.config.due_batch).await?;
        let due: Vec<Task> =
            due.into_iter().filter(|t| self.in_scope(&t.id) && !self.is_in_flight(&t.id)).collect();
        let activity = self.activity_for(&due).await;
        let mut set = JoinSet::new();
        for task in due {
            let harness = Arc::clone(self);
            let activity = activity.clone();
            set.spawn(
                async move { harness.check_guarded(task, activity, Trigger::Scheduled).await },
            );
        }
        Ok(set)
    }

    /// Session activity for the tasks that have a session. A failure here is not an
    /// error of any task: each check then reads its own messages to decide.
    async fn activity_for(&self, tasks: &[Task]) -> Option<Arc<HashMap<String, SessionActivity>>> {
        let mut directories: Vec<String> = tasks
            .iter()
            .filter(|t| t.active_session_id.is_some() && t.status != TaskStatus::Pending)
            .map(|t| t.workspace.clone())
            .collect();
        if directories.is_empty() {
            return None;
        }
        directories.sort();
        directories.dedup();
        match self.agent.session_activity(&directories).await {
            Ok(map) => Some(Arc::new(map)),
            Err(error) => {
                tracing::debug!(%error, "session activity unavailable this tick");
                None
            }
        }
    }

    /// Claims a task for this harness before checking it; false when another harness
    /// sharing the store drives it (or the store could not say: the task stays due
    /// and the next tick asks again).
    async fn claim(&self, id: &TaskId) -> bool {
        let now = Utc::now();
        let until = after(now, self.config.claim_ttl.as_secs());
        match self.store.claim_task(id, &self.owner, now, until).await {
            Ok(true) => true,
            Ok(false) => {
                tracing::debug!(task_id = %id, "driven by another harness; not checked here");
                false
            }
            Err(error) => {
                tracing::warn!(task_id = %id, %error, "could not claim the task; retrying later");
                false
            }
        }
    }

    fn is_in_flight(&self, id: &TaskId) -> bool {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains_key(id)
    }

    /// Checks one task now, whatever its schedule (an idle event, a user's request).
    pub async fn check_now(self: &Arc<Self>, id: &TaskId, trigger: Trigger) -> Result<()> {
        let task = self.require(id).await?;
        self.check_guarded(task, None, trigger).await;
        Ok(())
    }

    /// Tells the harness a session went idle, as OpenCode's event stream does; the
    /// task driving it (if any, and in scope) is checked at once, without asking the
    /// agent server for statuses again. Only for a source that *knows* the session is
    /// idle; see [`Harness::notify_possibly_idle`] otherwise.
    pub async fn notify_idle(self: &Arc<Self>, session_id: &str) {
        let known = HashMap::from([(session_id.to_owned(), SessionActivity::Idle)]);
        self.check_session(session_id, Some(Arc::new(known))).await;
    }

    /// Tells the harness a session *seems* to have stopped (it left a polled status
    /// map, which also happens when a status read missed its directory): the task is
    /// checked at once, and the check asks the agent server for the session's status
    /// before it judges anything. The server's session monitor uses this.
    pub async fn notify_possibly_idle(self: &Arc<Self>, session_id: &str) {
        self.check_session(session_id, None).await;
    }

    /// [`Harness::notify_possibly_idle`] without waiting: the running loop
    /// ([`Harness::run`]) starts the check, so its shutdown waits for it like for any
    /// other. For callbacks that cannot await (the server's session monitor). Hints
    /// queue while the loop is not running; past 1,024 they are dropped, and the
    /// task's schedule checks it anyway.
    pub fn hint_idle(&self, session_id: &str) {
        if let Err(error) = self.idle_hints.try_send(session_id.to_owned()) {
            tracing::debug!(%error, session_id, "idle hint dropped");
        }
    }

    async fn check_session(
        self: &Arc<Self>,
        session_id: &str,
        activity: Option<Arc<HashMap<String, SessionActivity>>>,
    ) {
        let Some(id) = self.task_for_session(session_id).filter(|id| self.in_scope(id)) else {
            return;
        };
        match self.require(&id).await {
            Ok(task) => self.check_guarded(task, activity, Trigger::Event).await,
            Err(error) => tracing::debug!(%error, task_id = %id, "idle session's task is gone"),
        }
    }

    async fn check_guarded(
        &self,
        task: Task,
        activity: Option<Arc<HashMap<String, SessionActivity>>>,
        trigger: Trigger,
    ) {
        {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(rerun) = in_flight.get_mut(&task.id) {
                // Checked right now: an event asks for one more look afterwards.
                *rerun |= trigger == Trigger::Event;
                return;
            }
            in_flight.insert(task.id.clone(), false);
        }
        let _guard = InFlight { harness: self, id: task.id.clone() };
        if !self.claim(&task.id).await {
            return;
        }
        let mut activity = activity;
        let mut trigger = trigger;
        loop {
            self.check_once(&task.id, activity.take(), trigger).await;
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get_mut(&task.id) {
                Some(rerun) if *rerun => {
                    *rerun = false;
                    trigger = Trigger::Event;
                }
                _ => break,
            }
        }
    }

    async fn check_once(
        &self,
        id: &TaskId,
        activity: Option<Arc<HashMap<String, SessionActivity>>>,
        trigger: Trigger,
    ) {
        let Ok(_permit) = self.limit.acquire().await else { return };
        // The record may have changed since it was listed (paused, completed, ...).
        let task = match self.store.get_task(id).await {
            Ok(Some(task)) => task,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not re-read task before checking");
                return;
            }
        };
        let span =
            tracing::info_span!("check", task_id = %task.id, status = %task.status, ?trigger);
        let check = async {
            if let Err(error) = self.check_task(&task, activity.as_deref(), trigger).await {
                self.record_error(&task, error).await;
            }
        };
        tracing::Instrument::instrument(check, span).await;
    }

    async fn check_task(
        &self,
        task: &Task,
        activity: Option<&HashMap<String, SessionActivity>>,
        trigger: Trigger,
    ) -> Result<()> {
        match task.status {
            TaskStatus::Pending => return self.start_task(task).await,
            TaskStatus::Running | TaskStatus::Waiting => {}
            _ => return Ok(()),
        }
        let Some(session_id) = task.active_session_id.clone() else {
            return self.start_task(task).await;
        };
        // A workspace can leave the allowed roots mid-task (deleted, or replaced by a
        // symlink elsewhere): never verify or prompt in it again.
        self.workspaces.resolve(&task.workspace)?;
        self.remember_session(&session_id, &task.id);
        let session = SessionRef { id: session_id, directory: task.workspace.clone() };
        let messages = self.agent.messages(&session, self.config.message_limit).await?;
        let newest = messages.last().map(|m| m.id.clone());
        if trigger == Trigger::Event && newest.is_some() && newest == task.last_message_id {
            // A duplicate wake-up (OpenCode can announce one idle period twice).
            return Ok(());
        }
        let activity = match activity {
            Some(map) => map.get(&session.id).cloned().unwrap_or(SessionActivity::Idle),
            None => self.single_activity(&session).await,
        };
        let decision = self.decide(task, &session, &messages, activity, trigger).await?;
        let Some(mut decision) = decision else { return Ok(()) };
        if decision.judged {
            // Only a transcript that was judged is "seen": a busy session's newest
            // message is still being written, and its idle event must be acted on.
            decision.update.last_message_id = Some(newest);
        }
        // The user may have paused, archived or completed the task while this check
        // ran (verification can take minutes): their change wins.
        if !self.still_active(&task.id).await? {
            return Ok(());
        }
        decision.update.consecutive_errors = Some(0);
        decision.update.error.get_or_insert(None);
        self.commit(&task.id, decision).await
    }

    async fn single_activity(&self, session: &SessionRef) -> SessionActivity {
        match self.agent.session_activity(std::slice::from_ref(&session.directory)).await {
            Ok(map) => map.get(&session.id).cloned().unwrap_or(SessionActivity::Idle),
            Err(_) => SessionActivity::Idle,
        }
    }

    /// The heart of a check: what the session shows and what to do about it.
    /// `None` means "nothing to record" (an event-triggered check that found nothing new).
    async fn decide(
        &self,
        task: &Task,
        session: &SessionRef,
        messages: &[AgentMessage],
        activity: SessionActivity,
        trigger: Trigger,
    ) -> Result<Option<Decision>> {
        let now = Utc::now();
        let spec = &task.spec;
        if awaiting_reply(messages, now) {
            // Our last prompt has no answer yet; OpenCode may not even report the
            // session busy so soon. Judging the old transcript now would verify (or
            // nudge) the same claim twice, so wait for the answer.
            if trigger == Trigger::Event {
                return Ok(None);
            }
            let summary = "Prompt sent; waiting for the agent to answer";
            return Ok(Some(self.progress_decision(
                task,
                TaskStatus::Running,
                summary,
                "awaiting reply",
                0,
                now,
            )));
        }
        let busy = activity == SessionActivity::Busy || self.dialogue.is_busy(messages);
        if busy {
            let summary = "Agent is busy";
            return Ok(Some(self.progress_decision(
                task,
                TaskStatus::Running,
                summary,
                "busy",
                0,
                now,
            )));
        }
        if let SessionActivity::Retry { attempt, message } = &activity {
            let summary = format!("Provider is retrying (attempt {attempt}): {message}");
            let idle = task.idle_checks;
            return Ok(Some(self.progress_decision(
                task,
                TaskStatus::Waiting,
                &summary,
                "retry",
                idle,
                now,
            )));
        }

        let result = self.checker.check(CheckContext { task, spec, messages }).await?;
        let mut completed = task.completed_steps.clone();
        let mut current_step = task.current_step;
        let step_count = spec.steps.len();
        let newly_reported = result.step_done > 0 && !completed.contains(&result.step_done);
        if result.step_done > 0 {
            current_step =
                current_step.max((result.step_done as usize).min(step_count.saturating_sub(1)));
        }
        let finished = result.claims_completion(spec);
        let failed_verification = result.verification.as_ref().filter(|v| !v.passed());

        let mut update = TaskUpdate::default();
        let mut events = Vec::new();
        let mut evidence = None;
        let status;
        let summary;
        let mut nudge = None;

        if let Some(verification) = failed_verification {
            let rounds = task.verification_rounds + 1;
            let max_rounds =
                spec.max_verification_rounds.unwrap_or(DEFAULT_MAX_VERIFICATION_ROUNDS);
            let failed: Vec<String> = verification.failures().map(|o| o.label.clone()).collect();
            let claim = match verification.scope {
                VerificationScope::Step(n) => format!("step {n}"),
                VerificationScope::Task => "task completion".to_owned(),
            };
            update.verification_rounds = Some(rounds);
            update.last_verification = Some(Some(verification.clone()));
            evidence = serde_json::to_value(verification).ok();
            if rounds >= max_rounds {
                status = TaskStatus::Failed;
                summary = format!(
                    "Verification of {claim} failed {rounds} times (limit {max_rounds}): {}; \
                     see `openloom log {}` for the evidence; `openloom watch` on the spec again \
                     resumes it with fresh rounds",
                    failed.join(", "),
                    task.id
                );
                update.error = Some(Some(summary.clone()));
                events.push(EventPayload::Failed { error: summary.clone() });
            } else {
                status = TaskStatus::Running;
                summary = format!(
                    "Checks for {claim} failed ({}); asked the agent to fix them (round {rounds} of {max_rounds})",
                    failed.join(", ")
                );
                let step = match verification.scope {
                    VerificationScope::Step(n) => Some(n),
                    VerificationScope::Task => None,
                };
                let failures: Vec<_> = verification.failures().cloned().collect();
                nudge = Some(self.dialogue.verification_failed(spec, step, &failures));
            }
        } else if finished {
            status = TaskStatus::Completed;
            summary = match &result.verification {
                Some(v) if v.passed() => "Completion verified: every check passed".to_owned(),
                _ if result.task_complete => "Agent reported TASK COMPLETE".to_owned(),
                _ => "All steps appear complete".to_owned(),
            };
            if let Some(verification) = &result.verification {
                update.last_verification = Some(Some(verification.clone()));
                evidence = serde_json::to_value(verification).ok();
            }
        } else {
            status = TaskStatus::Running;
            if let Some(verification) = &result.verification {
                update.last_verification = Some(Some(verification.clone()));
                evidence = serde_json::to_value(verification).ok();
            }
            if self.dialogue.needs_continue_reply(messages) {
                nudge = Some(self.dialogue.auto_continue(spec, current_step));
                summary = format!("Auto-continued to step {}", current_step + 1);
            } else if newly_reported && (result.step_done as usize) < step_count {
                // `step_done` is one-based, so it is also the index of the next step.
                let next = result.step_done as usize;
                nudge = Some(self.dialogue.next_step(spec, next));
                current_step = next;
                summary = format!("Nudged agent toward step {}", next + 1);
            } else if newly_reported {
                summary = format!("Step {} reported", result.step_done);
            } else if trigger == Trigger::Scheduled {
                nudge = Some(self.dialogue.periodic_check(spec, current_step, &result, &completed));
                summary = "Periodic check — requested status confirmation".to_owned();
            } else {
                // Woken by an idle event with nothing new to say: the schedule decides
                // when to ask "are you done?", so the agent is not prompted in a loop.
                return Ok(None);
            }
        }

        if let Some(prompt) = nudge {
            if !self.still_active(&task.id).await? {
                return Ok(None);
            }
            self.agent.send_prompt(session, &prompt, spec.agent_override()).await?;
        }
        if result.step_done > 0 && failed_verification.is_none() {
            // "STEP DONE: n" (verified, when there are checks) means steps 1..=n are done.
            // Clamped to the spec's steps: the number comes from the agent's text, and a
            // spec without steps has none to mark.
            let last = result.step_done.min(u32::try_from(step_count).unwrap_or(u32::MAX));
            for number in 1..=last {
                if !completed.contains(&number) {
                    completed.push(number);
                }
            }
            completed.sort_unstable();
        }
        let progress = match (status, step_count) {
            (TaskStatus::Completed, _) => 1.0,
            (_, 0) => 0.0,
            (_, n) => (completed.len() as f64 / n as f64).min(1.0),
        };
        let idle_checks = task.idle_checks + 1;
        let next_check = (!status.is_terminal()).then(|| after(now, task.check_interval_seconds));
        update.status = Some(status);
        update.current_step = Some(current_step);
        update.completed_steps = Some(completed);
        update.idle_checks = Some(idle_checks);
        update.progress = Some(progress);
        update.last_check_at = Some(Some(now));
        update.next_check_at = Some(next_check);
        events.insert(
            0,
            EventPayload::Updated { status, current_step, progress, summary: summary.clone() },
        );
        if status == TaskStatus::Completed {
            events.push(EventPayload::Completed { summary: summary.clone(), progress });
        }
        let mut log =
            CheckLogEntry::new(now, status, summary, format!("session idle; trigger {trigger:?}"));
        log.evidence = evidence;
        Ok(Some(Decision { update, log, events, judged: true }))
    }

    /// A check that only records status (busy or waiting), without asking the checker.
    fn progress_decision(
        &self,
        task: &Task,
        status: TaskStatus,
        summary: &str,
        detail: &str,
        idle_checks: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        let update = TaskUpdate {
            status: Some(status),
            idle_checks: Some(idle_checks),
            last_check_at: Some(Some(now)),
            // At least a short pause: a waiting task is due whatever its interval, and
            // one with interval 0 must not be re-checked every tick while it waits.
            next_check_at: Some(Some(after(
                now,
                task.check_interval_seconds.max(MIN_RECHECK_SECONDS),
            ))),
            ..TaskUpdate::default()
        };
        Decision {
            judged: false,
            update,
            log: CheckLogEntry::new(now, status, summary, detail),
            events: vec![EventPayload::Updated {
                status,
                current_step: task.current_step,
                progress: task.progress,
                summary: summary.to_owned(),
            }],
        }
    }

    /// Creates (or attaches to) the session and sends the first prompt.
    async fn start_task(&self, task: &Task) -> Result<()> {
        let workspace = self.workspaces.resolve(&task.workspace)?;
        let workspace = workspace.to_string_lossy().into_owned();
        let mut spec = task.spec.clone();
        let (session, attached) = match &task.active_session_id {
            Some(id) => {
                let found = self.agent.find_session(id).await?;
                let session =
                    found.ok_or_else(|| Error::NotFound { what: "session", id: id.clone() })?;
                (session.as_ref(), true)
            }
            None => {
                let created = self.agent.create_session(&workspace, &spec.name).await?;
                // Store the session before prompting it: a retry after a failed prompt
                // attaches to this session instead of creating a second one.
                let mut session_ids = task.session_ids.clone();
                session_ids.push(created.id.clone());
                let update = TaskUpdate {
                    active_session_id: Some(Some(created.id.clone())),
                    session_ids: Some(session_ids),
                    workspace: Some(created.directory.clone()),
                    ..TaskUpdate::default()
                };
                self.store.update_task(&task.id, &update, None).await?;
                (created.as_ref(), false)
            }
        };
        // An attached session may live elsewhere; adopt its directory if allowed.
        let directory = match self.workspaces.resolve(&session.directory) {
            Ok(dir) => dir.to_string_lossy().into_owned(),
            Err(_) => workspace,
        };
        spec.workspace = directory.clone();
        let one_shot = task.check_interval_seconds == 0 && !spec.is_structured();
        let prompt = if one_shot {
            spec.initial_prompt.clone().unwrap_or_else(|| spec.goal.clone())
        } else {
            self.dialogue.bootstrap(&spec, task.current_step)
        };
        if prompt.trim().is_empty() {
            return Err(Error::Invalid("the task has neither a prompt nor a goal to send".into()));
        }
        // A retry after a prompt whose answer timed out although OpenCode got it
        // must not send it twice: on a session we attach to, look first.
        let already_sent =
            attached
                && self.agent.messages(&session, self.config.message_limit).await?.iter().any(
                    |m| m.role == crate::agent::Role::User && m.text().contains(prompt.trim()),
                );
        if !already_sent {
            self.agent.send_prompt(&session, &prompt, spec.agent_override()).await?;
        }
        self.remember_session(&session.id, &task.id);

        let mut session_ids = task.session_ids.clone();
        if !session_ids.contains(&session.id) {
            session_ids.push(session.id.clone());
        }
        let now = Utc::now();
        let summary = match (one_shot, attached) {
            (true, true) => format!("Prompt sent to session {}", session.id),
            (true, false) => "Prompt sent".to_owned(),
            (false, true) => format!("Harness attached to session {}", session.id),
            (false, false) => "Harness started and bootstrap prompt sent".to_owned(),
        };
        let update = TaskUpdate {
            status: Some(TaskStatus::Running),
            active_session_id: Some(Some(session.id.clone())),
            session_ids: Some(session_ids),
            workspace: Some(directory),
            spec: Some(spec),
            last_check_at: Some(Some(now)),
            next_check_at: Some((!one_shot).then(|| after(now, task.check_interval_seconds))),
            error: Some(None),
            consecutive_errors: Some(0),
            ..TaskUpdate::default()
        };
        let log = CheckLogEntry::new(
            now,
            TaskStatus::Running,
            summary.clone(),
            format!("session={}", session.id),
        );
        let started = EventPayload::Started { session_id: session.id.clone(), summary };
        self.commit(&task.id, Decision { update, log, events: vec![started], judged: false }).await
    }

    /// Writes a decision (update and log in one transaction), then announces it.
    async fn commit(&self, id: &TaskId, decision: Decision) -> Result<()> {
        let version = self.store.update_task(id, &decision.update, Some(&decision.log)).await?;
        if decision.update.status.is_some_and(TaskStatus::is_terminal) {
            self.forget_sessions_of(id);
        }
        if decision.update.consecutive_errors == Some(0)
            || decision.update.status.is_some_and(TaskStatus::is_terminal)
        {
            // A check that got through (or the task's end) ends a streak of refusals.
            self.refusals.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
        for payload in decision.events {
            self.bus.emit(Event::new(id.clone(), version, payload));
        }
        Ok(())
    }

    /// Records a failed check: transient errors make the task wait and retry with
    /// backoff; permanent ones fail it with what to do.
    async fn record_error(&self, task: &Task, error: Error) {
        // A task the user paused or archived meanwhile keeps the user's status.
        if matches!(self.still_active(&task.id).await, Ok(false)) {
            tracing::info!(task_id = %task.id, %error, "check failed after the task was stopped");
            return;
        }
        let now = Utc::now();
        let errors = task.consecutive_errors + 1;
        let refusals = self.count_refusal(&task.id, &error);
        let permanent = match &error {
            Error::AgentUnauthorized { .. } => refusals >= self.config.unauthorized_limit,
            e => !e.is_transient(),
        };
        let decision = if permanent {
            let message = advice(&error);
            tracing::warn!(task_id = %task.id, %error, "task failed");
            Decision {
                update: TaskUpdate {
                    status: Some(TaskStatus::Failed),
                    error: Some(Some(message.clone())),
                    consecutive_errors: Some(errors),
                    last_check_at: Some(Some(now)),
                    next_check_at: Some(None),
                    ..TaskUpdate::default()
                },
                log: CheckLogEntry::new(
                    now,
                    TaskStatus::Failed,
                    "Harness check failed",
                    message.clone(),
                ),
                events: vec![EventPayload::Failed { error: message }],
                judged: false,
            }
        } else {
            let wait = self.backoff(errors);
            // A pending task stays pending, so the retry starts it (attaching to any
            // session already created) rather than checking a session it lacks.
            let status = if task.status == TaskStatus::Pending {
                TaskStatus::Pending
            } else {
                TaskStatus::Waiting
            };
            let summary = format!("{error}; retrying in {}s (attempt {errors})", wait.as_secs());
            tracing::info!(task_id = %task.id, %error, retry_in = wait.as_secs(), "transient error");
            Decision {
                update: TaskUpdate {
                    status: Some(status),
                    error: Some(Some(error.to_string())),
                    consecutive_errors: Some(errors),
                    last_check_at: Some(Some(now)),
                    next_check_at: Some(Some(after(now, wait.as_secs()))),
                    ..TaskUpdate::default()
                },
                log: CheckLogEntry::new(now, status, summary.clone(), error.to_string()),
                events: vec![EventPayload::Updated {
                    status,
                    current_step: task.current_step,
                    progress: task.progress,
                    summary,
                }],
                judged: false,
            }
        };
        if let Err(store_error) = self.commit(&task.id, decision).await {
            tracing::error!(task_id = %task.id, %store_error, %error, "could not record a check error");
        }
    }

    /// Counts `error` into the task's streak of refused credentials (any other error
    /// ends it) and returns the streak.
    fn count_refusal(&self, id: &TaskId, error: &Error) -> u32 {
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(error, Error::AgentUnauthorized { .. }) {
            let streak = refusals.entry(id.clone()).or_insert(0);
            *streak += 1;
            *streak
        } else {
            refusals.remove(id);
            0
        }
    }

    fn backoff(&self, errors: u32) -> Duration {
        let factor = 2u32.saturating_pow(errors.saturating_sub(1).min(16));
        self.config.backoff_base.saturating_mul(factor).min(self.config.backoff_max)
    }

    fn remember_session(&self, session_id: &str, task: &TaskId) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(session_id.to_owned(), task.clone());
    }

    /// Stops routing idle events to a task that is over: its sessions leave the map,
    /// so a reconnect does not re-check every task ever driven.
    fn forget_sessions_of(&self, task: &TaskId) {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, id| id != task);
    }

    fn task_for_session(&self, session_id: &str) -> Option<TaskId> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).get(session_id).cloned()
    }

    /// True while the task is still one the harness drives (not paused, completed,
    /// archived or deleted by someone else since the check began).
    async fn still_active(&self, id: &TaskId) -> Result<bool> {
        Ok(self.store.get_task(id).await?.is_some_and(|t| t.status.is_active()))
    }

    async fn require(&self, id: &TaskId) -> Result<Task> {
        self.store
            .get_task(id)
            .await?
            .ok_or_else(|| Error::NotFound { what: "task", id: id.to_string() })
    }

    /// Applies a user's change to a task and announces it.
    async fn user_change(
        &self,
        task: &Task,
        update: TaskUpdate,
        summary: &str,
        payload: EventPayload,
    ) -> Result<StoreVersion> {
        let status = update.status.unwrap_or(task.status);
        let log = CheckLogEntry::new(Utc::now(), status, summary, "by user");
        let version = self.store.update_task(&task.id, &update, Some(&log)).await?;
        if status.is_terminal() {
            self.forget_sessions_of(&task.id);
        }
        self.bus.emit(Event::new(task.id.clone(), version, payload));
        Ok(version)
    }

    /// Stops checking a task until it is resumed. The agent is not interrupted.
    pub async fn pause(&self, id: &TaskId) -> Result<StoreVersion> {
        let task = self.require(id).await?;
        if !task.status.is_active() {
            return Err(Error::Conflict(format!(
                "task {id} is {} and cannot be paused",
                task.status
            )));
        }
        let update = TaskUpdate {
            status: Some(TaskStatus::Paused),
            next_check_at: Some(None),
            ..TaskUpdate::default()
        };
        let payload = updated(&task, TaskStatus::Paused, "Paused by user");
        self.user_change(&task, update, "Paused by user", payload).await
    }

    /// Resumes a paused, waiting or failed task: it is checked again now, with errors
    /// and verification rounds reset. A failed task continues in a new session.
    pub async fn resume(&self, id: &TaskId) -> Result<StoreVersion> {
        let task = self.require(id).await?;
        if !matches!(task.status, TaskStatus::Paused | TaskStatus::Waiting | TaskStatus::Failed) {
            return Err(Error::Conflict(format!(
                "task {id} is {} and cannot be resumed",
                task.status
            )));
        }
        // A failed task starts over in a new session (its old one may be gone, and its
        // context led to the failure), keeping the steps already done; a paused or
        // waiting one goes on in its session.
        let fresh_session = task.status == TaskStatus::Failed && task.active_session_id.is_some();
        let status = if fresh_session || task.active_session_id.is_none() {
            TaskStatus::Pending
        } else {
            TaskStatus::Running
        };
        let update = TaskUpdate {
            status: Some(status),
            active_session_id: fresh_session.then_some(None),
            next_check_at: Some(Some(Utc::now())),
            error: Some(None),
            consecutive_errors: Some(0),
            verification_rounds: Some(0),
            ..TaskUpdate::default()
        };
        let summary =
            if fresh_session { "Resumed by user in a new session" } else { "Resumed by user" };
        let payload = updated(&task, status, summary);
        self.user_change(&task, update, summary, payload).await
    }

    /// Marks a task completed by hand.
    pub async fn complete(&self, id: &TaskId) -> Result<StoreVersion> {
        let task = self.require(id).await?;
        if matches!(task.status, TaskStatus::Completed | TaskStatus::Archived) {
            return Err(Error::Conflict(format!("task {id} is already {}", task.status)));
        }
        let update = TaskUpdate {
            status: Some(TaskStatus::Completed),
            progress: Some(1.0),
            next_check_at: Some(None),
            ..TaskUpdate::default()
        };
        let summary = "Marked complete by user";
        let payload = EventPayload::Completed { summary: summary.to_owned(), progress: 1.0 };
        self.user_change(&task, update, summary, payload).await
    }

    /// Archives a task: it is no longer checked and may be deleted.
    pub async fn archive(&self, id: &TaskId) -> Result<StoreVersion> {
        let task = self.require(id).await?;
        if task.status == TaskStatus::Archived {
            return Err(Error::Conflict(format!("task {id} is already archived")));
        }
        let update = TaskUpdate {
            status: Some(TaskStatus::Archived),
            next_check_at: Some(None),
            ..TaskUpdate::default()
        };
        let payload = updated(&task, TaskStatus::Archived, "Archived by user");
        self.user_change(&task, update, "Archived by user", payload).await
    }

    /// Deletes an archived task and its log. Other tasks must be archived first, so a
    /// running task is never deleted by a slip.
    pub async fn delete(&self, id: &TaskId) -> Result<StoreVersion> {
        let task = self.require(id).await?;
        if task.status != TaskStatus::Archived {
            return Err(Error::Conflict(format!(
                "task {id} is {}; archive it before deleting it",
                task.status
            )));
        }
        let version = self.store.delete_task(id).await?;
        self.bus.emit(Event::new(id.clone(), version, EventPayload::Deleted));
        Ok(version)
    }

    /// Runs until `stop` turns true: checks due tasks every `poll_every`, and checks a
    /// task as soon as the agent server says its session went idle.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        self.load_sessions().await;
        let mut events = self.agent.events();
        let mut ticker = tokio::time::interval(self.config.poll_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat =
            tokio::time::interval((self.config.claim_ttl / 3).max(Duration::from_millis(100)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running = JoinSet::new();
        let mut hints = self.idle_hint_receiver.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Dispatching reads the store and asks OpenCode for statuses, which can stall
        // (OpenCode right after a restart answers nothing until the request times
        // out). It runs beside the loop, one at a time, so events and the stop signal
        // are never kept waiting by it.
        let dispatching = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() { break; }
                }
                _ = ticker.tick() => {
                    if !dispatching.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        let harness = Arc::clone(&self);
                        let dispatching = Arc::clone(&dispatching);
                        running.spawn(async move {
                            let dispatched = harness.dispatch_due().await;
                            dispatching.store(false, std::sync::atomic::Ordering::Release);
                            match dispatched {
                                Ok(mut checks) => while checks.join_next().await.is_some() {},
                                Err(error) => tracing::warn!(%error, "could not list due tasks"),
                            }
                        });
                    }
                }
                event = next_event(&mut events) => match event {
                    Some(event) => self.on_agent_event(event, &mut running),
                    None => events = None,
                },
                _ = heartbeat.tick() => {
                    // Beside the loop: a store locked by another process for a while
                    // must not hold up events or the stop signal.
                    let harness = Arc::clone(&self);
                    running.spawn(async move {
                        let until = after(Utc::now(), harness.config.claim_ttl.as_secs());
                        if let Err(error) = harness.store.renew_claims(&harness.owner, until).await {
                            tracing::warn!(%error, "could not renew this harness's task claims");
                        }
                    });
                }
                Some(session_id) = next_hint(&mut hints) => {
                    let harness = Arc::clone(&self);
                    running.spawn(async move { harness.notify_possibly_idle(&session_id).await });
                }
            }
            while running.try_join_next().is_some() {}
        }
        // Let checks in flight finish their store writes, for a while. A check's
        // writes are one transaction each, so cutting one short loses nothing.
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("checks still running at shutdown were stopped");
            running.shutdown().await;
        }
        // A later `run` takes the hints up again.
        *self.idle_hint_receiver.lock().unwrap_or_else(|e| e.into_inner()) = hints;
        // Another harness sharing the store may take these tasks over at once.
        if let Err(error) = self.store.release_claims(&self.owner).await {
            tracing::warn!(%error, "could not release this harness's task claims");
        }
    }

    fn on_agent_event(self: &Arc<Self>, event: AgentEvent, running: &mut JoinSet<()>) {
        let ids: Vec<TaskId> = match event {
            AgentEvent::SessionIdle { session_id } => {
                // The event says what the status is: no need to ask for it again.
                let harness = Arc::clone(self);
                running.spawn(async move { harness.notify_idle(&session_id).await });
                return;
            }
            AgentEvent::Reconnected => {
                self.sessions.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
            }
            _ => Vec::new(),
        };
        for id in ids.into_iter().filter(|id| self.in_scope(id)) {
            let harness = Arc::clone(self);
            running.spawn(async move {
                if let Err(error) = harness.check_now(&id, Trigger::Event).await {
                    tracing::debug!(%error, task_id = %id, "event-triggered check skipped");
                }
            });
        }
    }

    /// Learns the sessions of active tasks, so idle events can be routed after a restart.
    async fn load_sessions(&self) {
        let query = TaskQuery {
            limit: 10_000,
            statuses: vec![TaskStatus::Running, TaskStatus::Waiting],
            ..TaskQuery::default()
        };
        match self.store.list_tasks(&query).await {
            Ok(tasks) => {
                for task in tasks {
                    if let Some(session) = &task.active_session_id {
                        self.remember_session(session, &task.id);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not load active sessions"),
        }
    }
}

/// Shortest wait before a busy or waiting task is looked at again on schedule.
const MIN_RECHECK_SECONDS: u64 = 10;

/// How long a prompt without an answer counts as "the agent is about to answer".
/// Longer than that, the answer is taken as lost and the task is judged as it is.
const REPLY_GRACE: chrono::Duration = chrono::Duration::seconds(120);

/// True when the newest message is a recent user prompt with no answer after it.
fn awaiting_reply(messages: &[AgentMessage], now: DateTime<Utc>) -> bool {
    messages.last().is_some_and(|last| {
        last.role == crate::agent::Role::User
            && last.created_at.is_some_and(|at| now - at < REPLY_GRACE)
    })
}

async fn next_event(
    events: &mut Option<futures::stream::BoxStream<'static, AgentEvent>>,
) -> Option<AgentEvent> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// The next idle hint; never, when this loop has no hint receiver.
async fn next_hint(hints: &mut Option<tokio::sync::mpsc::Receiver<String>>) -> Option<String> {
    match hints {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

fn updated(task: &Task, status: TaskStatus, summary: &str) -> EventPayload {
    EventPayload::Updated {
        status,
        current_step: task.current_step,
        progress: task.progress,
        summary: summary.to_owned(),
    }
}

/// `seconds` after `now`, saturating at the end of year 9999: an absurd interval from
/// a spec (10^18 s) means "practically never", not an arithmetic panic in the harness
/// or a timestamp a store cannot write.
fn after(now: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    let far_future = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(23, 59, 59))
        .map_or(DateTime::<Utc>::MAX_UTC, |moment| moment.and_utc());
    i64::try_from(seconds)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .and_then(|delta| now.checked_add_signed(delta))
        .map_or(far_future, |at| at.min(far_future))
}

/// The failure message for a permanent error: what happened and what to do.
fn advice(error: &Error) -> String {
    match error {
        Error::NotFound { what: "session", id } => format!(
            "session {id} no longer exists on the agent server (deleted?); \
             `openloom watch` on the spec again resumes the task in a new session"
        ),
        Error::AgentUnauthorized { message } => format!(
            "the agent server keeps refusing the credentials ({message}); \
             set OPENLOOM_OPENCODE_USERNAME / OPENLOOM_OPENCODE_PASSWORD, then `openloom watch` \
             on the spec again (or the API's resume) resumes the task"
        ),
        Error::Invalid(message) => message.clone(),
        other => format!("{other}"),
    }
}

#[cfg(test)]
mod tests;
