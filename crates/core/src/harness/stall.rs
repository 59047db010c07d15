//! Recovering a stalled session: abort the silent turn, then prompt the session to
//! carry on, start a fresh session, or fail the task — as `liveness::recovery`
//! decides. Each recovery is a check-log entry.

use std::time::Duration;

use chrono::Utc;

use crate::agent::{SessionActivity, SessionRef};
use crate::error::Result;
use crate::event::EventPayload;
use crate::harness::liveness::{self, Recovery};
use crate::harness::writer::{Decision, Writer};
use crate::harness::{Failure, Harness, after};
use crate::task::{CheckLogEntry, Task, TaskStatus, TaskUpdate};

/// How long to wait for an aborted turn to end before prompting: OpenCode drops a
/// prompt queued behind the turn it aborts.
const ABORT_SETTLE: Duration = Duration::from_secs(10);

impl Harness {
    /// Recovers `task`, whose session `session` was busy `after_seconds` without
    /// output.
    pub(super) async fn recover_stall(
        &self,
        task: &Task,
        writer: &mut Writer,
        session: &SessionRef,
        after_seconds: u64,
    ) -> Result<()> {
        let now = Utc::now();
        let (plan, alive) = liveness::recovery(task, now);
        tracing::warn!(task_id = %task.id, session_id = %session.id, after_seconds, ?plan,
            "session stalled");
        self.agent.abort(session).await?;
        let mut update = TaskUpdate {
            liveness: Some(alive.clone()),
            last_check_at: Some(Some(now)),
            consecutive_errors: Some(0),
            ..TaskUpdate::default()
        };
        let silent = format!("Stalled after {after_seconds} s without output: aborted");
        let (status, summary, mut events) = match plan {
            Recovery::Reprompt { n, of } => {
                self.settle_after_abort(session).await;
                let failures: Vec<_> = task
                    .last_verification
                    .as_ref()
                    .map(|v| v.failures().cloned().collect())
                    .unwrap_or_default();
                let prompt = self.dialogue.stalled(
                    &task.spec,
                    task.current_step,
                    &task.completed_steps,
                    &failures,
                );
                self.agent.send_prompt(session, &prompt, task.spec.agent_override()).await?;
                let interval = task.check_interval_seconds.max(super::judge::MIN_RECHECK_SECONDS);
                update.next_check_at = Some(Some(after(now, interval)));
                let summary =
                    format!("{silent}, and asked the agent to continue (recovery {n} of {of})");
                (TaskStatus::Running, summary, Vec::new())
            }
            Recovery::FreshSession => {
                // The next check finds no active session and starts one (with the
                // task's ruleset and a bootstrap focused on the current step).
                update.active_session_id = Some(None);
                update.next_check_at = Some(Some(now));
                let summary = format!(
                    "{silent}; the session stalled {} times, so a fresh session starts",
                    task.liveness.recoveries + 1
                );
                (TaskStatus::Running, summary, Vec::new())
            }
            Recovery::Fail => {
                let failure = Failure::Stalled { stalls: alive.stalls, after_seconds };
                let error = self.dialogue.failure(&task.id, &failure);
                update.error = Some(Some(error.clone()));
                update.next_check_at = Some(None);
                let events = vec![EventPayload::Failed { error: error.clone() }];
                (TaskStatus::Failed, error, events)
            }
        };
        update.status = Some(status);
        events.insert(
            0,
            EventPayload::Updated {
                status,
                current_step: task.current_step,
                progress: task.progress,
                summary: summary.clone(),
            },
        );
        let detail = format!("session {} busy without output; stall {}", session.id, alive.stalls);
        let log = CheckLogEntry::new(now, status, summary, detail);
        self.commit(writer, Decision { update, log, events }).await?;
        Ok(())
    }

    /// Waits (briefly) until the aborted session is no longer busy.
    async fn settle_after_abort(&self, session: &SessionRef) {
        let started = tokio::time::Instant::now();
        while started.elapsed() < ABORT_SETTLE {
            if self.single_activity(session).await != SessionActivity::Busy {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        tracing::debug!(session_id = %session.id, "session still busy after the abort");
    }
}
