//! The task record the store keeps, its status, and its check log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::check::Verification;
use crate::error::Error;
use crate::request::PendingRequest;
use crate::spec::TaskSpec;
use crate::summary::SpecSummary;

/// Monotonic counter bumped by every store write; events carry the version of the
/// write they announce so clients can order what they see and detect gaps.
pub type StoreVersion = u64;

/// Identifier of a task, e.g. `task_3f2a9c81d0e4`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A fresh random id in the reference's format (`task_` and 12 hex digits).
    pub fn generate() -> Self {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        TaskId(format!("task_{}", &hex[..12]))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TaskId {
    fn from(value: String) -> Self {
        TaskId(value)
    }
}

impl From<&str> for TaskId {
    fn from(value: &str) -> Self {
        TaskId(value.to_owned())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Created, not yet started.
    Pending,
    /// A session exists and the harness checks it.
    Running,
    /// Waiting on something outside the agent: a permission, a retry, an unreachable
    /// server. Still checked.
    Waiting,
    /// Paused by the user; not checked.
    Paused,
    /// Done (verified, when the spec has checks).
    Completed,
    /// Stopped for good with an error.
    Failed,
    /// Hidden from the active list; may be deleted.
    Archived,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Waiting,
        TaskStatus::Paused,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Archived,
    ];

    /// The lowercase name used in the store, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Waiting => "waiting",
            TaskStatus::Paused => "paused",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Archived => "archived",
        }
    }

    /// True for statuses the harness never leaves on its own.
    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Archived)
    }

    /// True for statuses the harness checks on schedule.
    pub fn is_active(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Running | TaskStatus::Waiting)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment (`{:<9}`) in tables.
        f.pad(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown task status {s:?}; expected one of: {}",
                TaskStatus::ALL.map(TaskStatus::as_str).join(", ")
            ))
        })
    }
}

/// The record the store keeps for each task.
///
/// `S` is how much of the spec is at hand: the whole [`TaskSpec`] (the default, what
/// the store keeps and the harness drives), or a [`SpecSummary`] in a
/// [`TaskSummary`], what lists show. One record type for both, so a list cannot
/// forget a field, and a summary cannot be written back as if it were the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task<S = TaskSpec> {
    /// Unique id.
    pub id: TaskId,
    /// Copy of the spec's name, for listing without decoding the spec.
    pub name: String,
    /// The spec the task was created from (workspace resolved at start).
    pub spec: S,
    /// The workspace directory the agent works in.
    pub workspace: String,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// Zero-based index of the step the agent is focused on.
    pub current_step: usize,
    /// One-based numbers of the steps reported done (verified, when checks exist).
    pub completed_steps: Vec<u32>,
    /// Consecutive checks that found the session idle.
    pub idle_checks: u32,
    /// Progress between 0.0 and 1.0.
    pub progress: f64,
    /// Seconds between fallback checks; 0 for a one-shot task.
    pub check_interval_seconds: u64,
    /// Every session the task has used, oldest first.
    pub session_ids: Vec<String>,
    /// The session the harness drives now.
    pub active_session_id: Option<String>,
    /// When the harness last checked the task.
    pub last_check_at: Option<DateTime<Utc>>,
    /// When the harness should check next; `None` means never.
    pub next_check_at: Option<DateTime<Utc>>,
    /// One line on the last check.
    pub last_summary: Option<String>,
    /// Why the task failed, or the last transient error while it is waiting.
    pub error: Option<String>,
    /// Transient errors in a row; drives the backoff and is reset by a good check.
    pub consecutive_errors: u32,
    /// Failed verification rounds so far (executable checks that did not pass).
    #[serde(default)]
    pub verification_rounds: u32,
    /// The last verification run for this task: per-check state and evidence.
    #[serde(default)]
    pub last_verification: Option<Verification>,
    /// Id of the newest message seen at the last check, to skip duplicate wake-ups.
    #[serde(default)]
    pub last_message_id: Option<String>,
    /// Bumped by every write of this record (see [`Task::apply`]): a writer that
    /// computed an update from revision `r` makes its write conditional on `r`
    /// ([`crate::store::Guard`]), so a change that landed meanwhile is never
    /// overwritten.
    #[serde(default)]
    pub revision: u64,
    /// The name of the OpenCode server the task's sessions live in (see
    /// [`crate::store::DueQuery::opencode`]): only a worker connected to it drives
    /// the task. `None`: any worker may (tasks of a store with one OpenCode, and
    /// tasks created before tasks were bound).
    #[serde(default)]
    pub opencode: Option<String>,
    /// What the agent waits on a person for (permissions, questions), as last seen;
    /// empty when nothing. The task is `waiting` while any is pending.
    #[serde(default)]
    pub pending_requests: Vec<PendingRequest>,
    /// Whether the session still makes progress: its output as last seen, stalls
    /// recovered, checks without progress.
    #[serde(default)]
    pub liveness: Liveness,
    /// When the task was created.
    pub created_at: DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: DateTime<Utc>,
}

/// A task as lists show it: every field, the spec summarised.
pub type TaskSummary = Task<SpecSummary>;

impl<S> Task<S> {
    /// The same record with its spec replaced by `f` of it.
    pub fn map_spec<T>(self, f: impl FnOnce(S) -> T) -> Task<T> {
        let Task {
            id,
            name,
            spec,
            workspace,
            status,
            current_step,
            completed_steps,
            idle_checks,
            progress,
            check_interval_seconds,
            session_ids,
            active_session_id,
            last_check_at,
            next_check_at,
            last_summary,
            error,
            consecutive_errors,
            verification_rounds,
            last_verification,
            last_message_id,
            revision,
            opencode,
            pending_requests,
            liveness,
            created_at,
            updated_at,
        } = self;
        Task {
            id,
            name,
            spec: f(spec),
            workspace,
            status,
            current_step,
            completed_steps,
            idle_checks,
            progress,
            check_interval_seconds,
            session_ids,
            active_session_id,
            last_check_at,
            next_check_at,
            last_summary,
            error,
            consecutive_errors,
            verification_rounds,
            last_verification,
            last_message_id,
            revision,
            opencode,
            pending_requests,
            liveness,
            created_at,
            updated_at,
        }
    }

    /// Whether the harness should check this task at `now`, by
    /// [`crate::Store::list_due_tasks`]'s rules: an active status; never checked or
    /// due; a running task with interval 0 only when its session goes idle.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.status.is_active()
            && self.next_check_at.is_none_or(|at| at <= now)
            && (self.status != TaskStatus::Running || self.check_interval_seconds > 0)
    }

    /// Whether a worker connected to the OpenCode server named `opencode` may drive
    /// this task: one bound to no server, or to that one. A worker that names no
    /// server (`None`) drives unbound tasks only: a bound task's session is in its
    /// own server, which that worker cannot tell apart from its own.
    pub fn runs_on(&self, opencode: Option<&str>) -> bool {
        self.driven_on(opencode, true)
    }

    /// Whether a harness on the OpenCode server named `opencode` drives this task,
    /// when it takes unbound tasks only if `unbound`: [`Task::runs_on`] for a worker
    /// connected to several servers, which gives its unbound tasks to one of its
    /// harnesses (they share one claim owner, so two must never take one task).
    pub fn driven_on(&self, opencode: Option<&str>, unbound: bool) -> bool {
        match self.opencode.as_deref() {
            None => unbound,
            Some(bound) => opencode == Some(bound),
        }
    }
}

impl Task {
    /// The task as lists show it.
    pub fn summarised(self) -> TaskSummary {
        self.map_spec(|spec| SpecSummary::of(&spec))
    }

    /// A new pending task for a spec, due now.
    pub fn new(id: TaskId, spec: TaskSpec, now: DateTime<Utc>) -> Self {
        Task {
            id,
            name: spec.name.clone(),
            workspace: spec.workspace.clone(),
            check_interval_seconds: spec.check_interval_seconds,
            spec,
            status: TaskStatus::Pending,
            current_step: 0,
            completed_steps: Vec::new(),
            idle_checks: 0,
            progress: 0.0,
            session_ids: Vec::new(),
            active_session_id: None,
            last_check_at: None,
            next_check_at: Some(now),
            last_summary: None,
            error: None,
            consecutive_errors: 0,
            verification_rounds: 0,
            last_verification: None,
            last_message_id: None,
            revision: 0,
            opencode: None,
            pending_requests: Vec::new(),
            liveness: Liveness::default(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies an update in memory, as a store does on write, and bumps the revision.
    pub fn apply(&mut self, update: &TaskUpdate, now: DateTime<Utc>) {
        let TaskUpdate {
            spec,
            workspace,
            status,
            current_step,
            completed_steps,
            idle_checks,
            progress,
            check_interval_seconds,
            session_ids,
            active_session_id,
            last_check_at,
            next_check_at,
            last_summary,
            error,
            consecutive_errors,
            verification_rounds,
            last_verification,
            last_message_id,
            pending_requests,
            liveness,
        } = update;
        if let Some(spec) = spec {
            self.spec = spec.clone();
            self.name = spec.name.clone();
        }
        set(&mut self.workspace, workspace);
        set(&mut self.status, status);
        set(&mut self.current_step, current_step);
        set(&mut self.completed_steps, completed_steps);
        set(&mut self.idle_checks, idle_checks);
        set(&mut self.progress, progress);
        set(&mut self.check_interval_seconds, check_interval_seconds);
        set(&mut self.session_ids, session_ids);
        set(&mut self.active_session_id, active_session_id);
        set(&mut self.last_check_at, last_check_at);
        set(&mut self.next_check_at, next_check_at);
        set(&mut self.last_summary, last_summary);
        set(&mut self.error, error);
        set(&mut self.consecutive_errors, consecutive_errors);
        set(&mut self.verification_rounds, verification_rounds);
        set(&mut self.last_verification, last_verification);
        set(&mut self.last_message_id, last_message_id);
        set(&mut self.pending_requests, pending_requests);
        set(&mut self.liveness, liveness);
        self.revision = self.revision.saturating_add(1);
        self.updated_at = now;
    }
}

fn set<T: Clone>(field: &mut T, value: &Option<T>) {
    if let Some(value) = value {
        *field = value.clone();
    }
}

/// What the harness knows of a session's progress, to tell a working agent from a
/// stalled one (busy with no new output) or one that only says it is working.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// A fingerprint of the session's newest output as last seen: a change is progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// When the output last changed (or the session was last prompted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_at: Option<DateTime<Utc>>,
    /// Stalls recovered in the active session (abort and re-prompt).
    #[serde(default)]
    pub recoveries: u32,
    /// Sessions given up on because they stalled too often.
    #[serde(default)]
    pub stalled_sessions: u32,
    /// Stalls in all.
    #[serde(default)]
    pub stalls: u32,
    /// Judged checks in a row at which the agent neither reported a step, nor made a
    /// claim the checks verified, nor used a tool.
    #[serde(default)]
    pub checks_without_progress: u32,
}

/// A partial update of a task: `None` leaves a field alone. Nullable fields are
/// `Option<Option<T>>` so that "clear it" (`Some(None)`) differs from "leave it".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // Each field mirrors the field of `Task` with the same name.
pub struct TaskUpdate {
    pub spec: Option<TaskSpec>,
    pub workspace: Option<String>,
    pub status: Option<TaskStatus>,
    pub current_step: Option<usize>,
    pub completed_steps: Option<Vec<u32>>,
    pub idle_checks: Option<u32>,
    pub progress: Option<f64>,
    pub check_interval_seconds: Option<u64>,
    pub session_ids: Option<Vec<String>>,
    pub active_session_id: Option<Option<String>>,
    pub last_check_at: Option<Option<DateTime<Utc>>>,
    pub next_check_at: Option<Option<DateTime<Utc>>>,
    pub last_summary: Option<Option<String>>,
    pub error: Option<Option<String>>,
    pub consecutive_errors: Option<u32>,
    pub verification_rounds: Option<u32>,
    pub last_verification: Option<Option<Verification>>,
    pub last_message_id: Option<Option<String>>,
    pub pending_requests: Option<Vec<PendingRequest>>,
    pub liveness: Option<Liveness>,
}

impl TaskUpdate {
    /// True when the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &TaskUpdate::default()
    }
}

/// One entry of a task's check log: what a check saw and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckLogEntry {
    /// When the check happened.
    pub at: DateTime<Utc>,
    /// The task's status after the check.
    pub status: TaskStatus,
    /// One line on what happened.
    pub summary: String,
    /// More detail (session status, error text, check output tail); bounded in size.
    #[serde(default)]
    pub detail: String,
    /// Structured evidence (e.g. verification results), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<serde_json::Value>,
}

impl CheckLogEntry {
    /// Most bytes of `detail` a store keeps; longer details keep their tail.
    pub const MAX_DETAIL_BYTES: usize = 8 * 1024;

    /// A log entry stamped `at`, with the detail bounded to [`Self::MAX_DETAIL_BYTES`].
    pub fn new(
        at: DateTime<Utc>,
        status: TaskStatus,
        summary: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        CheckLogEntry {
            at,
            status,
            summary: summary.into(),
            detail: truncate_tail(detail.into(), Self::MAX_DETAIL_BYTES),
            evidence: None,
        }
    }

    /// True when `next` says exactly what this entry says (status, summary, detail and
    /// evidence): a store records it as one more repeat of this entry instead of a new
    /// row, so a session busy for ten hours leaves one line "×600", not 600 lines.
    pub fn is_repeated_by(&self, next: &CheckLogEntry) -> bool {
        self.status == next.status
            && self.summary == next.summary
            && self.detail == next.detail
            && self.evidence == next.evidence
    }
}

/// Keeps at most `max` bytes of `text`, dropping from the front on a char boundary.
pub fn truncate_tail(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_task_runs_only_on_its_own_opencode_and_an_unbound_one_anywhere() {
        let mut task = Task::new(TaskId::from("task_o"), TaskSpec::new("o", "/w", "g"), Utc::now());
        assert!(task.runs_on(None) && task.runs_on(Some("a")), "unbound: any worker");
        task.opencode = Some("a".into());
        assert!(task.runs_on(Some("a")));
        assert!(!task.runs_on(Some("b")), "another server's worker");
        assert!(!task.runs_on(None), "a worker naming no server");
    }

    #[test]
    fn a_harness_that_takes_no_unbound_tasks_drives_only_its_own_servers() {
        let mut task = Task::new(TaskId::from("task_u"), TaskSpec::new("u", "/w", "g"), Utc::now());
        assert!(!task.driven_on(Some("a"), false), "unbound: left to the harness that takes them");
        assert!(task.driven_on(Some("a"), true));
        task.opencode = Some("a".into());
        assert!(task.driven_on(Some("a"), false));
        assert!(!task.driven_on(Some("b"), false) && !task.driven_on(Some("b"), true));
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>().expect("known"), status);
            let json = serde_json::to_string(&status).expect("serializable");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(format!("[{:<9}]", TaskStatus::Failed), "[failed   ]");
        let err = "done".parse::<TaskStatus>().expect_err("unknown");
        assert!(err.to_string().contains("pending, running"), "{err}");
    }

    #[test]
    fn generated_ids_look_like_the_reference() {
        let id = TaskId::generate();
        assert!(id.as_str().starts_with("task_"));
        assert_eq!(id.as_str().len(), 17);
        assert_ne!(id, TaskId::generate());
    }

    #[test]
    fn apply_changes_only_given_fields_and_can_clear() {
        let now = Utc::now();
        let mut task = Task::new(TaskId::from("task_1"), TaskSpec::new("n", "/w", "g"), now);
        task.error = Some("old".into());
        let update = TaskUpdate {
            status: Some(TaskStatus::Running),
            error: Some(None),
            ..TaskUpdate::default()
        };
        task.apply(&update, now);
        assert_eq!(task.revision, 1);
        assert_eq!(task.status, TaskStatus::Running);
        assert_eq!(task.error, None);
        assert_eq!(task.name, "n");
        assert!(TaskUpdate::default().is_empty());
        assert!(!update.is_empty());
    }

    #[test]
    fn only_an_identical_entry_is_a_repeat() {
        let now = Utc::now();
        let busy = CheckLogEntry::new(now, TaskStatus::Running, "Agent is busy", "busy");
        let later = CheckLogEntry { at: now + chrono::Duration::seconds(60), ..busy.clone() };
        assert!(busy.is_repeated_by(&later), "the time of a repeat does not matter");
        let other_detail = CheckLogEntry { detail: "retry".into(), ..busy.clone() };
        let other_status = CheckLogEntry { status: TaskStatus::Waiting, ..busy.clone() };
        let with_evidence = CheckLogEntry { evidence: Some(serde_json::json!({})), ..busy.clone() };
        for different in [other_detail, other_status, with_evidence] {
            assert!(!busy.is_repeated_by(&different), "{different:?}");
        }
    }

    #[test]
    fn truncate_tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(truncate_tail("abcdef".into(), 3), "def");
        assert_eq!(truncate_tail("short".into(), 10), "short");
        // 'é' is two bytes; cutting inside it moves forward.
        assert_eq!(truncate_tail("aéb".into(), 2), "b");
    }
}
