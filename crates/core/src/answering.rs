//! A person answering what a task's agent waits on: the one procedure behind
//! `openloom answer`, `POST /api/tasks/{id}/requests/{requestId}` and the dashboard's
//! buttons.
//!
//! [`answer_pending`] picks the request among the task's stored
//! [`Task::pending_requests`], checks that the answer fits it ([`Answer::misfit`]),
//! delivers it through the [`AgentServer`], then records the outcome in the store: the
//! audit entry ([`audit_entry`]) in the check log, and the request taken off the task,
//! in one guarded write. It talks to the agent server and the store directly, never to
//! a running harness, so it works from another process while `watch` or `serve`
//! drives the task; the harness's next check sees the session move on.
//!
//! # Why a typed outcome instead of errors
//! "Several requests are pending, say which", "nothing is pending", "the answer does
//! not fit" and "the request is no longer pending" are normal answers a person acts
//! on; each caller words them differently (a CLI flag, an HTTP status). Only what
//! failed underneath (the store, an unreachable agent server) is an [`Error`].

use std::fmt;

use chrono::{DateTime, Utc};

use crate::agent::AgentServer;
use crate::answer::{Answer, AnsweredBy, Delivery, audit_entry};
use crate::error::{Error, Result};
use crate::request::PendingRequest;
use crate::store::{Guard, Store, WriteOutcome};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};

/// How many times the store write is tried again when the task changed meanwhile
/// (a harness's check landed between our read and our write).
const WRITE_ATTEMPTS: usize = 5;

/// What answering came to.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum Answered {
    /// The agent server took the answer; the audit entry is in the check log and the
    /// request is off the task.
    Delivered {
        /// The task after the write.
        task: Box<Task>,
        /// The request answered.
        request: PendingRequest,
        /// The store version of the write.
        version: StoreVersion,
    },
    /// The agent server no longer holds the request (answered elsewhere, or its
    /// session ended): nothing was answered. The check log says so and the stale
    /// request is off the task.
    NoLongerPending {
        /// The task after the write.
        task: Box<Task>,
        /// The request that was gone.
        request: PendingRequest,
        /// The store version of the write.
        version: StoreVersion,
    },
    /// Refused before anything was sent: nothing changed.
    Refused(Refusal),
}

/// Why an answer was refused before it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No task has this id.
    UnknownTask {
        /// The id asked for.
        id: TaskId,
    },
    /// The task waits on nothing.
    NothingPending {
        /// The task.
        task_id: TaskId,
    },
    /// No pending request of the task has this id (or an id starting with it).
    UnknownRequest {
        /// The task.
        task_id: TaskId,
        /// The id asked for.
        request_id: String,
        /// What is pending instead: (id, one-line description).
        pending: Vec<(String, String)>,
    },
    /// No request was named and several are pending (or the id prefix matches
    /// several).
    Ambiguous {
        /// The task.
        task_id: TaskId,
        /// The candidates: (id, one-line description).
        pending: Vec<(String, String)>,
    },
    /// The answer does not fit the request (allow for a question, an option that is
    /// not offered, …).
    Misfit {
        /// The request.
        request_id: String,
        /// Why, from [`Answer::misfit`].
        reason: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::UnknownTask { id } => write!(f, "task {id} not found"),
            Refusal::NothingPending { task_id } => {
                write!(f, "task {task_id} waits on nothing: no permission or question is pending")
            }
            Refusal::UnknownRequest { task_id, request_id, pending } => write!(
                f,
                "task {task_id} has no pending request {request_id:?}; pending: {}",
                listed(pending)
            ),
            Refusal::Ambiguous { task_id, pending } => write!(
                f,
                "task {task_id} has {} pending requests; name the one to answer: {}",
                pending.len(),
                listed(pending)
            ),
            Refusal::Misfit { reason, .. } => f.write_str(reason),
        }
    }
}

fn listed(pending: &[(String, String)]) -> String {
    if pending.is_empty() {
        return "none".to_owned();
    }
    pending.iter().map(|(id, what)| format!("{id} ({what})")).collect::<Vec<_>>().join("; ")
}

/// Which of `pending` `wanted` names: the only one when none is named, else the one
/// with that id, else the only one whose id starts with it.
fn pick<'a>(
    task_id: &TaskId,
    pending: &'a [PendingRequest],
    wanted: Option<&str>,
) -> Result<&'a PendingRequest, Refusal> {
    let lines = |requests: &[&PendingRequest]| {
        requests.iter().map(|r| (r.id.clone(), r.describe())).collect::<Vec<_>>()
    };
    let all: Vec<&PendingRequest> = pending.iter().collect();
    if pending.is_empty() {
        return Err(Refusal::NothingPending { task_id: task_id.clone() });
    }
    let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) else {
        return match pending {
            [only] => Ok(only),
            _ => Err(Refusal::Ambiguous { task_id: task_id.clone(), pending: lines(&all) }),
        };
    };
    if let Some(exact) = pending.iter().find(|r| r.id == wanted) {
        return Ok(exact);
    }
    let matching: Vec<&PendingRequest> =
        pending.iter().filter(|r| r.id.starts_with(wanted)).collect();
    match matching.as_slice() {
        [only] => Ok(only),
        [] => Err(Refusal::UnknownRequest {
            task_id: task_id.clone(),
            request_id: wanted.to_owned(),
            pending: lines(&all),
        }),
        several => Err(Refusal::Ambiguous { task_id: task_id.clone(), pending: lines(several) }),
    }
}

/// Answers a request the task `task_id` waits on, as `by` decided, at `now`.
///
/// `request_id` names the request (its id, or a prefix of it); without one the
/// task's only pending request is answered. See the module docs for what is written.
pub async fn answer_pending(
    store: &dyn Store,
    agent: &dyn AgentServer,
    task_id: &TaskId,
    request_id: Option<&str>,
    answer: &Answer,
    by: &AnsweredBy,
    now: DateTime<Utc>,
) -> Result<Answered> {
    let Some(task) = store.get_task(task_id).await? else {
        return Ok(Answered::Refused(Refusal::UnknownTask { id: task_id.clone() }));
    };
    let request = match pick(task_id, &task.pending_requests, request_id) {
        Ok(request) => request.clone(),
        Err(refusal) => return Ok(Answered::Refused(refusal)),
    };
    if let Some(reason) = answer.misfit(&request) {
        return Ok(Answered::Refused(Refusal::Misfit { request_id: request.id, reason }));
    }
    let delivery = agent.answer_request(&task.workspace, &request, answer).await?;
    tracing::info!(
        task_id = %task_id, request_id = %request.id, %answer, %by, ?delivery,
        "answer to a pending request"
    );
    let (task, version) = record(store, task, &request, delivery, answer, by, now).await?;
    let task = Box::new(task);
    Ok(match delivery {
        Delivery::Delivered => Answered::Delivered { task, request, version },
        Delivery::NotPending => Answered::NoLongerPending { task, request, version },
    })
}

/// What the store is told after a delivery: the update of `task` (the request off
/// its list; back to running when nothing else is pending) and the log entry.
/// Pure, so it is computed again from each fresh read.
fn outcome_of(
    task: &Task,
    request: &PendingRequest,
    delivery: Delivery,
    answer: &Answer,
    by: &AnsweredBy,
    now: DateTime<Utc>,
) -> (TaskUpdate, CheckLogEntry) {
    let mut update = TaskUpdate::default();
    let left: Vec<PendingRequest> =
        task.pending_requests.iter().filter(|r| r.id != request.id).cloned().collect();
    if left.len() != task.pending_requests.len() {
        // A task waits because of its requests; with none left the agent goes on (or,
        // after a request that was gone, the next check says what the session does).
        if left.is_empty() && task.status == TaskStatus::Waiting {
            update.status = Some(TaskStatus::Running);
        }
        update.pending_requests = Some(left);
    }
    let status = update.status.unwrap_or(task.status);
    let entry = match delivery {
        Delivery::Delivered => audit_entry(request, answer, by, status, now),
        Delivery::NotPending => {
            let mut entry = CheckLogEntry::new(
                now,
                status,
                format!(
                    "Not answered {}: no longer pending (answered elsewhere, or its session \
                     ended); {answer} {by} was not delivered",
                    request.describe()
                ),
                format!("request {} of session {}", request.id, request.session_id),
            );
            entry.evidence = Some(serde_json::json!({
                "request": request.bounded(),
                "answer": answer,
                "answered_by": by,
                "delivered": false,
            }));
            entry
        }
    };
    (update, entry)
}

/// Writes the outcome under a guard at the revision it was computed from, reading the
/// task again when a check landed in between. The answer was delivered whatever the
/// store does next, so its entry is never dropped: after [`WRITE_ATTEMPTS`] the entry
/// is appended alone and the harness's next check clears the request.
async fn record(
    store: &dyn Store,
    mut task: Task,
    request: &PendingRequest,
    delivery: Delivery,
    answer: &Answer,
    by: &AnsweredBy,
    now: DateTime<Utc>,
) -> Result<(Task, StoreVersion)> {
    let id = task.id.clone();
    let not_found = || Error::NotFound { what: "task", id: id.to_string() };
    for _ in 0..WRITE_ATTEMPTS {
        let (update, entry) = outcome_of(&task, request, delivery, answer, by, now);
        if update.is_empty() {
            // The request is off the task already (a check saw it answered): only the
            // audit entry is new.
            let version = store.append_check_log(&id, &[entry]).await?;
            let task = store.get_task(&id).await?.ok_or_else(not_found)?;
            return Ok((task, version));
        }
        let guard = Guard::at_revision(task.revision);
        match store.write_task(&id, &update, Some(&entry), &guard).await? {
            WriteOutcome::Written { version, .. } => {
                let task = store.get_task(&id).await?.ok_or_else(not_found)?;
                return Ok((task, version));
            }
            WriteOutcome::Rejected(rejection) => {
                tracing::debug!(task_id = %id, %rejection, "answer's write retried");
                task = store.get_task(&id).await?.ok_or_else(not_found)?;
            }
        }
    }
    tracing::warn!(task_id = %id, "the task kept changing; the answer's entry is logged alone");
    let (_, entry) = outcome_of(&task, request, delivery, answer, by, now);
    let version = store.append_check_log(&id, &[entry]).await?;
    let task = store.get_task(&id).await?.ok_or_else(not_found)?;
    Ok((task, version))
}

#[cfg(test)]
mod tests;
