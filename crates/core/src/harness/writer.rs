//! Guarded writes: every write a check makes applies only while the task is at the
//! revision the check last read or wrote, and while the check's claim holds
//! ([`Guard`]). A rejected write is dropped — someone else's change wins — and the
//! task stays due, so the next tick looks at it again from the new state.

use crate::error::Result;
use crate::event::{Event, EventPayload};
use crate::harness::Harness;
use crate::store::{Guard, Lease, WriteOutcome};
use crate::task::{CheckLogEntry, StoreVersion, Task, TaskId, TaskStatus, TaskUpdate};

/// A state change to write, with its check-log entry and its announcements.
pub(super) struct Decision {
    pub update: TaskUpdate,
    pub log: CheckLogEntry,
    pub events: Vec<EventPayload>,
}

/// One check's right to write its task: the revision it works from and its claim.
#[derive(Debug)]
pub(super) struct Writer {
    id: TaskId,
    revision: u64,
    lease: Option<Lease>,
}

impl Writer {
    /// A writer for `task` as just read, holding `lease`. A lease at epoch 0 comes
    /// from a store that keeps no claims (the default `Store::claim_task`): it
    /// guards nothing, so such a store's writes are guarded by the revision alone.
    pub(super) fn new(task: &Task, lease: Option<Lease>) -> Self {
        let lease = lease.filter(|lease| lease.epoch > 0);
        Writer { id: task.id.clone(), revision: task.revision, lease }
    }

    fn guard(&self) -> Guard {
        Guard { revision: Some(self.revision), lease: self.lease.clone() }
    }
}

impl Harness {
    /// Writes `update` (and `log`) if the writer's guard holds, moving the writer to
    /// the new revision; `None` when the guard failed and nothing was written.
    pub(super) async fn write_guarded(
        &self,
        writer: &mut Writer,
        update: &TaskUpdate,
        log: Option<&CheckLogEntry>,
    ) -> Result<Option<StoreVersion>> {
        match self.store.write_task(&writer.id, update, log, &writer.guard()).await? {
            WriteOutcome::Written { version, revision } => {
                writer.revision = revision;
                Ok(Some(version))
            }
            WriteOutcome::Rejected(rejection) => {
                tracing::info!(task_id = %writer.id, %rejection, "check outcome dropped");
                Ok(None)
            }
        }
    }

    /// Writes a decision (update and log in one guarded transaction), then announces
    /// it. Returns whether it was written.
    pub(super) async fn commit(&self, writer: &mut Writer, decision: Decision) -> Result<bool> {
        let Some(version) =
            self.write_guarded(writer, &decision.update, Some(&decision.log)).await?
        else {
            return Ok(false);
        };
        let id = &writer.id;
        let ended = decision.update.status.is_some_and(TaskStatus::is_terminal);
        if ended {
            self.forget_sessions_of(id);
        }
        if decision.update.consecutive_errors == Some(0) || ended {
            // A check that got through (or the task's end) ends a streak of refusals.
            self.forget_refusals(id);
        }
        for payload in decision.events {
            self.bus.emit(Event::new(id.clone(), version, payload));
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::spec::TaskSpec;

    #[test]
    fn a_claimless_stores_lease_guards_nothing_but_the_revision_still_does() {
        let mut task = Task::new(TaskId::from("task_w"), TaskSpec::new("w", "/w", "g"), Utc::now());
        task.revision = 7;
        let claimless = Lease { owner: "me".into(), epoch: 0 };
        let writer = Writer::new(&task, Some(claimless));
        assert_eq!(writer.guard(), Guard::at_revision(7));
        let held = Lease { owner: "me".into(), epoch: 2 };
        let writer = Writer::new(&task, Some(held.clone()));
        assert_eq!(writer.guard(), Guard::at_revision(7).holding(held));
    }
}
