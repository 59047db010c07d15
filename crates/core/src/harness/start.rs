//! Starting a task: create (or attach to) its session and send the first prompt.

use chrono::Utc;

use crate::agent::Role;
use crate::error::{Error, Result};
use crate::event::EventPayload;
use crate::harness::writer::{Decision, Writer};
use crate::harness::{Harness, after};
use crate::policy::session_ruleset;
use crate::task::{CheckLogEntry, Task, TaskStatus, TaskUpdate};

impl Harness {
    /// Creates (or attaches to) the session and sends the first prompt.
    pub(super) async fn start_task(&self, task: &Task, writer: &mut Writer) -> Result<()> {
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
                let unattended = &spec.unattended;
                let rules = session_ruleset(
                    unattended.permissions.as_deref(),
                    unattended.questions(),
                    self.config.home.as_deref(),
                );
                let created =
                    self.agent.create_session_with(&workspace, &spec.name, &rules).await?;
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
                if self.write_guarded(writer, &update, None).await?.is_none() {
                    // Paused, archived or taken over while the session was created:
                    // that change wins, and this session is left unused.
                    tracing::warn!(task_id = %task.id, session_id = %created.id,
                        "task changed while its session was created; the session is unused");
                    return Ok(());
                }
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
        let already_sent = attached
            && self
                .agent
                .messages(&session, self.config.message_limit)
                .await?
                .iter()
                .any(|m| m.role == Role::User && m.text().contains(prompt.trim()));
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
        let events = vec![EventPayload::Started { session_id: session.id.clone(), summary }];
        self.commit(writer, Decision { update, log, events }).await?;
        Ok(())
    }
}
