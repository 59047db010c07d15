//! One check of a task: read what its session shows, let the judgement decide
//! (`judge.rs`), and carry the verdict out — send its nudge, write it, announce it.

use chrono::Utc;

use crate::agent::{SessionActivity, SessionRef};
use crate::check::CheckContext;
use crate::error::Result;
use crate::harness::dispatch::Activity;
use crate::harness::judge::{self, Observation, Triage, Verdict};
use crate::harness::writer::{Decision, Writer};
use crate::harness::{Harness, Trigger};
use crate::meter::CheckRun;
use crate::request::PendingRequest;
use crate::store::Lease;
use crate::task::{Task, TaskId, TaskStatus};

impl Harness {
    /// Checks a task once, as the holder of `lease`; errors are recorded on the task.
    pub(super) async fn check_once(
        &self,
        id: &TaskId,
        lease: &Lease,
        activity: Activity,
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
        let mut writer = Writer::new(&task, Some(lease.clone()));
        let span =
            tracing::info_span!("check", task_id = %task.id, status = %task.status, ?trigger);
        let check = async {
            match self.check_task(&task, &mut writer, activity, trigger).await {
                Ok(()) => self.meter.check_ran(CheckRun::Done),
                Err(error) => {
                    self.meter.check_ran(CheckRun::Error);
                    self.record_error(&task, &mut writer, error).await;
                }
            }
        };
        tracing::Instrument::instrument(check, span).await;
    }

    async fn check_task(
        &self,
        task: &Task,
        writer: &mut Writer,
        activity: Activity,
        trigger: Trigger,
    ) -> Result<()> {
        match task.status {
            TaskStatus::Pending => return self.start_task(task, writer).await,
            TaskStatus::Running | TaskStatus::Waiting => {}
            _ => return Ok(()),
        }
        let Some(session_id) = task.active_session_id.clone() else {
            return self.start_task(task, writer).await;
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
        let now = Utc::now();
        let mut pending = self.pending_for(&session, &activity, &messages).await;
        if !pending.is_empty() {
            pending = self.settle_requests(task, &session, pending, now).await;
        }
        let seen = Observation {
            messages: &messages,
            activity: &activity,
            pending: &pending,
            trigger,
            now,
        };
        let verdict = match judge::triage(task, &seen, self.dialogue.as_ref()) {
            Triage::Skip => return Ok(()),
            Triage::Stalled { after_seconds } => {
                return self.recover_stall(task, writer, &session, after_seconds).await;
            }
            Triage::Note(verdict) => *verdict,
            Triage::Judge => {
                let context = CheckContext { task, spec: &task.spec, messages: &messages };
                let result = self.checker.check(context).await?;
                // The checker may have taken minutes: judge at the time it answered.
                let seen = Observation { now: Utc::now(), ..seen };
                match judge::judge(task, &seen, &result, self.dialogue.as_ref()) {
                    Some(verdict) => verdict,
                    None => return Ok(()),
                }
            }
        };
        self.carry_out(task, writer, &session, verdict, newest).await
    }

    /// Sends the verdict's nudge, then writes and announces it.
    async fn carry_out(
        &self,
        task: &Task,
        writer: &mut Writer,
        session: &SessionRef,
        verdict: Verdict,
        newest: Option<String>,
    ) -> Result<()> {
        let Verdict { mut update, log, events, nudge, judged } = verdict;
        if let Some(prompt) = nudge {
            // A cheap look first: a task paused during a long verification is not
            // prompted. (The guarded write below is what keeps the pause, whatever
            // happens between this read and it.)
            if !self.store.get_task(&task.id).await?.is_some_and(|t| t.status.is_active()) {
                return Ok(());
            }
            self.agent.send_prompt(session, &prompt, task.spec.agent_override()).await?;
        }
        if judged {
            // Only a transcript that was judged is "seen": a busy session's newest
            // message is still being written, and its idle event must be acted on.
            update.last_message_id = Some(newest);
        }
        update.consecutive_errors = Some(0);
        update.error.get_or_insert(None);
        self.commit(writer, Decision { update, log, events }).await?;
        Ok(())
    }

    /// What the session waits on a person for. Asked only of a session that looks
    /// busy (one waiting on a person is busy); a failed read is taken as nothing
    /// pending this time, and the next check asks again.
    async fn pending_for(
        &self,
        session: &SessionRef,
        activity: &SessionActivity,
        messages: &[crate::agent::AgentMessage],
    ) -> Vec<PendingRequest> {
        if *activity != SessionActivity::Busy && !self.dialogue.is_busy(messages) {
            return Vec::new();
        }
        match self.agent.pending_requests(&session.directory).await {
            Ok(requests) => requests.into_iter().filter(|r| r.session_id == session.id).collect(),
            Err(error) => {
                tracing::debug!(%error, session_id = %session.id, "pending requests unavailable");
                Vec::new()
            }
        }
    }

    pub(super) async fn single_activity(&self, session: &SessionRef) -> SessionActivity {
        match self.agent.session_activity(std::slice::from_ref(&session.directory)).await {
            Ok(map) => map.get(&session.id).cloned().unwrap_or(SessionActivity::Idle),
            Err(_) => SessionActivity::Idle,
        }
    }
}
