//! What users do to a task: pause, resume, complete, archive, delete.
//!
//! Each action reads the task, decides whether it is allowed and what it changes,
//! and writes that guarded by the revision it read: a check that finished meanwhile
//! (a completion, say) is never overwritten by a decision made on the older state.
//! The action is then decided again on the new state.

use chrono::Utc;

use crate::error::{Error, Result};
use crate::event::{Event, EventPayload};
use crate::harness::Harness;
use crate::store::{Guard, WriteOutcome};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};

/// How often a user's action is decided again when the task keeps changing under it.
const USER_CHANGE_ATTEMPTS: usize = 5;

/// A user's change, decided on one state of the task.
struct Change {
    update: TaskUpdate,
    summary: &'static str,
    payload: EventPayload,
}

impl Harness {
    /// Applies a user's change, decided by `decide` on the task as stored, and
    /// announces it.
    async fn user_change(
        &self,
        id: &TaskId,
        decide: impl Fn(&Task) -> Result<Change>,
    ) -> Result<StoreVersion> {
        for _ in 0..USER_CHANGE_ATTEMPTS {
            let task = self.require(id).await?;
            let Change { update, summary, payload } = decide(&task)?;
            let status = update.status.unwrap_or(task.status);
            let log = CheckLogEntry::new(Utc::now(), status, summary, "by user");
            let guard = Guard::at_revision(task.revision);
            match self.store.write_task(id, &update, Some(&log), &guard).await? {
                WriteOutcome::Written { version, .. } => {
                    if status.is_terminal() {
                        self.forget_sessions_of(id);
                    }
                    self.bus.emit(Event::new(id.clone(), version, payload));
                    return Ok(version);
                }
                WriteOutcome::Rejected(rejection) => {
                    tracing::debug!(task_id = %id, %rejection, "user change decided again");
                }
            }
        }
        Err(Error::Conflict(format!(
            "task {id} kept changing while the change was made; try again"
        )))
    }

    /// Stops checking a task until it is resumed. The agent is not interrupted.
    pub async fn pause(&self, id: &TaskId) -> Result<StoreVersion> {
        self.user_change(id, |task| {
            if !task.status.is_active() {
                return Err(Error::Conflict(format!(
                    "task {id} is {} and cannot be paused",
                    task.status
                )));
            }
            Ok(Change {
                update: TaskUpdate {
                    status: Some(TaskStatus::Paused),
                    next_check_at: Some(None),
                    ..TaskUpdate::default()
                },
                summary: "Paused by user",
                payload: updated(task, TaskStatus::Paused, "Paused by user"),
            })
        })
        .await
    }

    /// Resumes a paused, waiting or failed task: it is checked again now, with errors
    /// and verification rounds reset. A failed task continues in a new session.
    pub async fn resume(&self, id: &TaskId) -> Result<StoreVersion> {
        self.user_change(id, |task| {
            if !matches!(task.status, TaskStatus::Paused | TaskStatus::Waiting | TaskStatus::Failed)
            {
                return Err(Error::Conflict(format!(
                    "task {id} is {} and cannot be resumed",
                    task.status
                )));
            }
            // A failed task starts over in a new session (its old one may be gone, and
            // its context led to the failure), keeping the steps already done; a paused
            // or waiting one goes on in its session.
            let fresh_session =
                task.status == TaskStatus::Failed && task.active_session_id.is_some();
            let status = if fresh_session || task.active_session_id.is_none() {
                TaskStatus::Pending
            } else {
                TaskStatus::Running
            };
            let summary =
                if fresh_session { "Resumed by user in a new session" } else { "Resumed by user" };
            Ok(Change {
                update: TaskUpdate {
                    status: Some(status),
                    active_session_id: fresh_session.then_some(None),
                    next_check_at: Some(Some(Utc::now())),
                    error: Some(None),
                    consecutive_errors: Some(0),
                    verification_rounds: Some(0),
                    ..TaskUpdate::default()
                },
                summary,
                payload: updated(task, status, summary),
            })
        })
        .await
    }

    /// Marks a task completed by hand.
    pub async fn complete(&self, id: &TaskId) -> Result<StoreVersion> {
        self.user_change(id, |task| {
            if matches!(task.status, TaskStatus::Completed | TaskStatus::Archived) {
                return Err(Error::Conflict(format!("task {id} is already {}", task.status)));
            }
            let summary = "Marked complete by user";
            Ok(Change {
                update: TaskUpdate {
                    status: Some(TaskStatus::Completed),
                    progress: Some(1.0),
                    next_check_at: Some(None),
                    ..TaskUpdate::default()
                },
                summary,
                payload: EventPayload::Completed { summary: summary.to_owned(), progress: 1.0 },
            })
        })
        .await
    }

    /// Archives a task: it is no longer checked and may be deleted.
    pub async fn archive(&self, id: &TaskId) -> Result<StoreVersion> {
        self.user_change(id, |task| {
            if task.status == TaskStatus::Archived {
                return Err(Error::Conflict(format!("task {id} is already archived")));
            }
            Ok(Change {
                update: TaskUpdate {
                    status: Some(TaskStatus::Archived),
                    next_check_at: Some(None),
                    ..TaskUpdate::default()
                },
                summary: "Archived by user",
                payload: updated(task, TaskStatus::Archived, "Archived by user"),
            })
        })
        .await
    }

    /// Deletes an archived task and its log. Other tasks must be archived first, so a
    /// running task is never deleted by a slip. (An archived task is never written by
    /// a check, so no guard is needed here.)
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
}

fn updated(task: &Task, status: TaskStatus, summary: &str) -> EventPayload {
    EventPayload::Updated {
        status,
        current_step: task.current_step,
        progress: task.progress,
        summary: summary.to_owned(),
    }
}
