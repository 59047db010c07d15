//! Errors of a check: transient ones make the task wait and retry with backoff,
//! permanent ones fail it with a [`Failure`] the [`Dialogue`] words for people.

use std::fmt;
use std::time::Duration;

use chrono::Utc;

use crate::error::Error;
use crate::event::EventPayload;
use crate::harness::writer::{Decision, Writer};
use crate::harness::{Harness, after, lock};
use crate::task::{CheckLogEntry, Task, TaskId, TaskStatus, TaskUpdate};

#[cfg(doc)]
use crate::dialogue::Dialogue;

/// Why a task failed for good, as facts. Its `Display` words them neutrally; an
/// application words them for its users with [`Dialogue::failure`] (the CLI names
/// the command that helps, an embedder its own).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The task's session no longer exists on the agent server (deleted?).
    SessionGone {
        /// The session's id.
        session_id: String,
    },
    /// The agent server kept refusing the credentials.
    CredentialsRefused {
        /// The server's reason.
        message: String,
        /// Refusals in a row.
        refusals: u32,
    },
    /// Verification of a claim failed as many times as the spec allows.
    VerificationExhausted {
        /// What was claimed: "step 2", "task completion".
        claim: String,
        /// Failed rounds.
        rounds: u32,
        /// The spec's limit.
        limit: u32,
        /// The labels of the checks that failed in the last round.
        failed: Vec<String>,
    },
    /// The session stalled (busy without output for `stall_timeout`) again after
    /// every recovery and a fresh session.
    Stalled {
        /// Stalls in all.
        stalls: u32,
        /// How long the last one went without output, in seconds.
        after_seconds: u64,
    },
    /// The agent answered check after check without reporting a step, making a claim
    /// the checks could verify, or using a tool.
    NoProgress {
        /// Checks in a row without progress.
        checks: u32,
    },
    /// Any other permanent error: a workspace outside the allowed roots, an agent
    /// server this build does not support, a task with nothing to send, ...
    Error(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::SessionGone { session_id } => write!(
                f,
                "session {session_id} no longer exists on the agent server (deleted?); \
                 resuming the task continues it in a new session"
            ),
            Failure::CredentialsRefused { message, refusals } => write!(
                f,
                "the agent server refused the credentials {refusals} times in a row \
                 ({message}); fix them, then resume the task"
            ),
            Failure::VerificationExhausted { claim, rounds, limit, failed } => write!(
                f,
                "Verification of {claim} failed {rounds} times (limit {limit}): {}; the check \
                 log has the evidence, and resuming the task starts fresh rounds",
                failed.join(", ")
            ),
            Failure::Stalled { stalls, after_seconds } => write!(
                f,
                "the session stalled {stalls} times (the last after {after_seconds} s without \
                 output), through every recovery and a fresh session; check the model \
                 provider (reachable, key, quota), or raise stall_timeout if the task runs \
                 long tools that print nothing, then resume the task"
            ),
            Failure::NoProgress { checks } => write!(
                f,
                "no progress in {checks} checks: the agent answered without reporting a \
                 step, making a claim the checks could verify, or using a tool; make the \
                 spec's steps smaller or clearer (or raise max_checks_without_progress), \
                 then resume the task"
            ),
            Failure::Error(message) => f.write_str(message),
        }
    }
}

impl Failure {
    /// The failure a permanent error means.
    fn of(error: &Error, refusals: u32) -> Failure {
        match error {
            Error::NotFound { what: "session", id } => {
                Failure::SessionGone { session_id: id.clone() }
            }
            Error::AgentUnauthorized { message } => {
                Failure::CredentialsRefused { message: message.clone(), refusals }
            }
            Error::Invalid(message) => Failure::Error(message.clone()),
            other => Failure::Error(other.to_string()),
        }
    }
}

impl Harness {
    /// Records a failed check: transient errors make the task wait and retry with
    /// backoff; permanent ones fail it with what to do. Guarded like every write of
    /// the check: a task the user paused or archived meanwhile keeps the user's status.
    pub(super) async fn record_error(&self, task: &Task, writer: &mut Writer, error: Error) {
        let now = Utc::now();
        let errors = task.consecutive_errors + 1;
        let refusals = self.count_refusal(&task.id, &error);
        let permanent = match &error {
            Error::AgentUnauthorized { .. } => refusals >= self.config.unauthorized_limit,
            e => !e.is_transient(),
        };
        let decision = if permanent {
            let message = self.dialogue.failure(&task.id, &Failure::of(&error, refusals));
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
            }
        };
        if let Err(store_error) = self.commit(writer, decision).await {
            tracing::error!(task_id = %task.id, %store_error, %error, "could not record a check error");
        }
    }

    /// Counts `error` into the task's streak of refused credentials (any other error
    /// ends it) and returns the streak.
    fn count_refusal(&self, id: &TaskId, error: &Error) -> u32 {
        let mut refusals = lock(&self.refusals);
        if matches!(error, Error::AgentUnauthorized { .. }) {
            let streak = refusals.entry(id.clone()).or_insert(0);
            *streak += 1;
            *streak
        } else {
            refusals.remove(id);
            0
        }
    }

    /// Ends a task's streak of refusals (a check got through, or the task ended).
    pub(super) fn forget_refusals(&self, id: &TaskId) {
        lock(&self.refusals).remove(id);
    }

    fn backoff(&self, errors: u32) -> Duration {
        let factor = 2u32.saturating_pow(errors.saturating_sub(1).min(16));
        self.config.backoff_base.saturating_mul(factor).min(self.config.backoff_max)
    }
}
