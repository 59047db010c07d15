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
//! - **Nothing overwritten.** Every write a check makes is guarded by the task
//!   revision it read and the claim it holds ([`crate::store::Guard`]): a pause, an
//!   archive or another harness's work that landed meanwhile wins, and the check's
//!   outcome is dropped.
//!
//! Every state change is written to the store first (with its check-log entry, in one
//! transaction) and then announced on the bus with the store version of that write.
//!
//! # Where things are
//! - `dispatch.rs`: which tasks are checked when — the tick, due
//!   tasks, claims, the in-flight set, idle notices.
//! - `observe.rs`: one check — read the session, let the judgement decide, carry it out.
//! - `judge.rs`: the decision itself, a pure function of the task, what the session
//!   shows, the checker's result, the trigger and the time.
//! - `start.rs`: creating or attaching to a session and sending the first prompt.
//! - `failure.rs`: errors of a check — transient (wait, back off) or permanent (fail).
//! - `requests.rs`: what the agent waits on — the policy's answers, the fallback
//!   after `human_timeout`, the rest left to a person.
//! - `liveness.rs`, `stall.rs`: is the session still getting somewhere — stalls
//!   (busy without output), their recovery, checks without progress.
//! - `actions.rs`: what users do — pause, resume, complete, archive, delete.
//! - `run_loop.rs`: [`Harness::run`] — the schedule, the event stream, the session map.
//! - `writer.rs`: guarded writes and their announcements.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use crate::agent::AgentServer;
use crate::check::Checker;
use crate::dialogue::Dialogue;
use crate::error::Result;
use crate::event::{Event, EventBus, EventPayload};
use crate::meter::{Meter, NoMeter};
use crate::spec::TaskSpec;
use crate::store::Store;
use crate::task::{Task, TaskId};
use crate::workspace::WorkspacePolicy;

mod actions;
mod dispatch;
mod failure;
pub(crate) mod judge;
mod liveness;
mod observe;
mod requests;
mod run_loop;
mod stall;
mod start;
mod writer;

pub use failure::Failure;

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
    /// The home directory `~` and `$HOME` in permission patterns stand for (OpenCode
    /// expands them the same way); `None` leaves them as written. Default: `$HOME`.
    pub home: Option<String>,
    /// Unattended settings for every task, each used where the task's spec leaves it
    /// unset (a config file's `task_defaults`; the spec wins key by key).
    pub task_defaults: crate::spec::Unattended,
    /// This harness's name among the workers sharing the store: the owner of its task
    /// claims ("driven by") and its heartbeat row. It must be unique among live
    /// workers. `None`: a name unique to this process (`pid N harness <uuid>`).
    pub worker_name: Option<String>,
    /// The name of the OpenCode server this harness's agent is, when the store is
    /// shared by workers on several of them: tasks created here are bound to it
    /// (unless created for another), and only tasks bound to it or to none are
    /// driven ([`Task::runs_on`]). `None`: tasks are not bound, and only unbound
    /// ones are driven (one OpenCode for every worker).
    pub opencode: Option<String>,
    /// Whether this harness drives tasks bound to no OpenCode server (default
    /// `true`). A worker connected to several servers runs one harness per server
    /// under one worker name; exactly one of them takes the unbound tasks, since
    /// two harnesses with one claim owner would both hold such a task.
    pub unbound_tasks: bool,
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
            claim_ttl: crate::worker::DEFAULT_CLAIM_TTL,
            home: std::env::var("HOME").ok().filter(|home| !home.is_empty()),
            task_defaults: crate::spec::Unattended::default(),
            worker_name: None,
            opencode: None,
            unbound_tasks: true,
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
    /// What to say to the agent, and how to word a failure for people.
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
    scope: Mutex<Option<HashSet<TaskId>>>,
    /// Credentials refused in a row, per task. Other errors in between do not count
    /// towards the limit; any other outcome ends the streak. Kept in memory only: a
    /// restart grants the whole allowance again.
    refusals: Mutex<HashMap<TaskId, u32>>,
    /// Sessions that seem to have gone idle ([`Harness::hint_idle`]), for the run
    /// loop to check, so its shutdown waits for those checks too.
    idle_hints: tokio::sync::mpsc::Sender<String>,
    idle_hint_receiver: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    /// Who this harness is in task claims ([`Store::claim_task`]) and among the
    /// workers: unique per harness.
    owner: String,
    /// When this harness was made, for its heartbeat row.
    started_at: chrono::DateTime<chrono::Utc>,
    /// Told what the harness does, for an embedder's metrics ([`Harness::with_meter`]).
    meter: Arc<dyn Meter>,
    /// The epoch of the claim this harness last held per task, to tell a takeover
    /// from its own renewal ([`crate::meter::is_takeover`]); dropped when a task ends.
    epochs: Mutex<HashMap<TaskId, u64>>,
}

/// How many idle hints may wait for the run loop; more are dropped (the schedule
/// checks the task anyway).
const IDLE_HINTS_QUEUED: usize = 1024;

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering the data of a panicked holder: every map here stays
/// consistent between statements, so a panic elsewhere must not stop the harness.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
            in_flight: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            scope: Mutex::new(None),
            refusals: Mutex::new(HashMap::new()),
            idle_hints,
            idle_hint_receiver: Mutex::new(Some(idle_hint_receiver)),
            owner: config.worker_name.clone().unwrap_or_else(|| {
                format!("pid {} harness {}", std::process::id(), uuid::Uuid::new_v4().simple())
            }),
            started_at: chrono::Utc::now(),
            meter: Arc::new(NoMeter),
            epochs: Mutex::new(HashMap::new()),
            config,
        }
    }

    /// The same harness, telling `meter` about its checks and lease takeovers (the
    /// default meter counts nothing). A builder step rather than a part: a meter is
    /// optional, and embedders that build [`HarnessParts`] need not name it.
    pub fn with_meter(mut self, meter: Arc<dyn Meter>) -> Self {
        self.meter = meter;
        self
    }

    /// Counts a claim granted on `id` as a takeover if another holder had it since
    /// this harness last did, and remembers its epoch.
    fn note_lease(&self, id: &TaskId, lease: &crate::store::Lease) {
        let last = lock(&self.epochs).insert(id.clone(), lease.epoch);
        if crate::meter::is_takeover(last, lease) {
            tracing::info!(task_id = %id, epoch = lease.epoch, "took the task over from another holder");
            self.meter.lease_taken_over();
        }
    }

    /// Records this harness's heartbeat row as of `now` (so it is listed among the
    /// live workers). [`Harness::run`] does it every third of the claim time; a binary
    /// that serves an API calls it once before, so the worker is listed as soon as
    /// it answers.
    pub async fn beat(&self, now: chrono::DateTime<chrono::Utc>) -> Result<()> {
        self.store.beat_worker(&self.owner, self.started_at, now).await
    }

    /// This harness's name among the workers sharing its store (the owner of its
    /// claims), e.g. for the `worker` label of `openloom_build_info`.
    pub fn worker_name(&self) -> &str {
        &self.owner
    }

    /// Drives only these tasks from now on (adding to any earlier restriction).
    /// `openloom watch` uses it so that watching one spec never starts or nudges the
    /// other tasks that share its database; by default every task in the store is
    /// driven, as `openloom serve` does.
    pub fn restrict_to(&self, ids: impl IntoIterator<Item = TaskId>) {
        lock(&self.scope).get_or_insert_with(Default::default).extend(ids);
    }

    fn in_scope(&self, id: &TaskId) -> bool {
        lock(&self.scope).as_ref().is_none_or(|ids| ids.contains(id))
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

    /// Adds a pending task for `spec`, due now, bound to this harness's OpenCode
    /// server. The workspace must be allowed.
    pub async fn add_task(&self, spec: TaskSpec) -> Result<TaskId> {
        self.add_task_on(spec, None).await
    }

    /// [`Harness::add_task`] bound to the OpenCode server named `opencode` (when
    /// `Some`), for a worker connected to it to drive; `None` binds it to this
    /// harness's own.
    ///
    /// The workspace is resolved against the allowed roots here for a task this
    /// harness will drive; one for another server's worker (which may run on
    /// another machine) must be an absolute path, resolved by that worker when it
    /// starts the task.
    pub async fn add_task_on(&self, spec: TaskSpec, opencode: Option<String>) -> Result<TaskId> {
        let mut task = Task::new(TaskId::generate(), spec, Utc::now());
        task.opencode = opencode;
        if task.runs_on(self.opencode()) {
            self.workspaces.resolve(&task.spec.workspace)?;
        } else if !std::path::Path::new(&task.spec.workspace).is_absolute() {
            return Err(crate::error::Error::Invalid(format!(
                "the workspace {:?} of a task for the OpenCode server {:?} must be an absolute \
                 path: the worker connected to that server resolves it on its machine",
                task.spec.workspace,
                task.opencode.as_deref().unwrap_or_default()
            )));
        }
        self.insert(task).await
    }

    /// The name of the OpenCode server this harness drives tasks on, if it has one
    /// ([`HarnessConfig::opencode`]).
    pub fn opencode(&self) -> Option<&str> {
        self.config.opencode.as_deref()
    }

    /// Whether this harness drives `task`: it is bound to this harness's OpenCode
    /// server, or to none and this harness takes unbound tasks
    /// ([`HarnessConfig::unbound_tasks`]). Of the harnesses of one worker, at most one
    /// drives a given task; route a task's actions and answers to that one.
    pub fn drives(&self, task: &Task) -> bool {
        task.driven_on(self.opencode(), self.config.unbound_tasks)
    }

    /// Adds a pending task that drives an existing session instead of creating one.
    pub async fn add_task_for_session(&self, spec: TaskSpec, session_id: &str) -> Result<TaskId> {
        let mut task = Task::new(TaskId::generate(), spec, Utc::now());
        task.active_session_id = Some(session_id.to_owned());
        task.session_ids = vec![session_id.to_owned()];
        self.insert(task).await
    }

    /// [`Harness::add_task`] for work from a [`crate::Source`]: the task is created
    /// only if `origin` was never recorded, in the same store transaction that
    /// records it ([`Store::create_task_once`]), so offering one thing twice (a
    /// restart, a redelivery) makes one task. The `created` event is emitted for a
    /// new task only.
    pub async fn add_task_once(
        &self,
        spec: TaskSpec,
        origin: &crate::source::Origin,
    ) -> Result<crate::source::Admitted> {
        use crate::source::Admitted;
        use crate::store::Created;
        self.workspaces.resolve(&spec.workspace)?;
        let task = self.with_defaults(Task::new(TaskId::generate(), spec, Utc::now()));
        match self.store.create_task_once(&task, origin.as_str()).await? {
            Created::New(version) => {
                self.announce_created(&task, version);
                Ok(Admitted::New(task.id))
            }
            Created::AlreadyHad(id) => Ok(Admitted::AlreadyHad(id)),
        }
    }

    async fn insert(&self, task: Task) -> Result<TaskId> {
        let task = self.with_defaults(task);
        let version = self.store.create_task(&task).await?;
        self.announce_created(&task, version);
        Ok(task.id)
    }

    /// The task with the harness's unattended defaults under its spec's own, bound
    /// to this harness's OpenCode server unless bound already.
    fn with_defaults(&self, mut task: Task) -> Task {
        let unattended = std::mem::take(&mut task.spec.unattended);
        task.spec.unattended = unattended.or(&self.config.task_defaults);
        if task.opencode.is_none() {
            task.opencode.clone_from(&self.config.opencode);
        }
        task
    }

    fn announce_created(&self, task: &Task, version: crate::task::StoreVersion) {
        let payload =
            EventPayload::Created { name: task.name.clone(), workspace: task.workspace.clone() };
        self.bus.emit(Event::new(task.id.clone(), version, payload));
    }

    async fn require(&self, id: &TaskId) -> Result<Task> {
        self.store
            .get_task(id)
            .await?
            .ok_or_else(|| crate::error::Error::NotFound { what: "task", id: id.to_string() })
    }

    fn remember_session(&self, session_id: &str, task: &TaskId) {
        lock(&self.sessions).insert(session_id.to_owned(), task.clone());
    }

    /// Stops routing idle events to a task that is over: its sessions leave the map,
    /// so a reconnect does not re-check every task ever driven.
    fn forget_sessions_of(&self, task: &TaskId) {
        lock(&self.sessions).retain(|_, id| id != task);
        lock(&self.epochs).remove(task);
    }

    fn task_for_session(&self, session_id: &str) -> Option<TaskId> {
        lock(&self.sessions).get(session_id).cloned()
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

#[cfg(test)]
mod tests;
