//! [`AgentServer`] for [`OpencodeClient`]: the trait methods delegate to the
//! inherent ones and convert errors into the core's.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use openloom_core::{
    AgentEvent, AgentMessage, AgentServer, Answer, Delivery, Health, PendingRequest,
    PermissionRule, Question, RequestKind, Session, SessionActivity, SessionRef,
};
use serde_json::Value;

use crate::client::OpencodeClient;
use crate::error::Error;
use crate::events::EventScope;
use crate::types::{PermissionReply, PermissionRequest, QuestionRequest};

#[async_trait]
impl AgentServer for OpencodeClient {
    async fn health(&self) -> Health {
        OpencodeClient::health(self).await
    }

    async fn create_session(&self, directory: &str, title: &str) -> openloom_core::Result<Session> {
        Ok(OpencodeClient::create_session(self, directory, title).await?)
    }

    async fn create_session_with(
        &self,
        directory: &str,
        title: &str,
        rules: &[PermissionRule],
    ) -> openloom_core::Result<Session> {
        Ok(OpencodeClient::create_session_with(self, directory, title, rules).await?)
    }

    async fn find_session(&self, session_id: &str) -> openloom_core::Result<Option<Session>> {
        match self.session(session_id).await {
            Ok(session) => Ok(Some(session)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> openloom_core::Result<()> {
        Ok(OpencodeClient::send_prompt(self, session, prompt, agent).await?)
    }

    async fn session_activity(
        &self,
        directories: &[String],
    ) -> openloom_core::Result<HashMap<String, SessionActivity>> {
        Ok(self.session_status(directories).await?)
    }

    async fn messages(
        &self,
        session: &SessionRef,
        limit: usize,
    ) -> openloom_core::Result<Vec<AgentMessage>> {
        Ok(OpencodeClient::messages(self, session, limit).await?)
    }

    async fn abort(&self, session: &SessionRef) -> openloom_core::Result<()> {
        Ok(OpencodeClient::abort(self, session).await?)
    }

    /// `GET /permission` and `GET /question` of the directory's instance.
    async fn pending_requests(
        &self,
        directory: &str,
    ) -> openloom_core::Result<Vec<PendingRequest>> {
        let mut pending: Vec<PendingRequest> =
            self.permissions(directory).await?.iter().map(permission_request).collect();
        pending.extend(self.questions(directory).await?.iter().map(question_request));
        Ok(pending)
    }

    /// Replies through `/permission/{id}/reply`, `/question/{id}/reply` or
    /// `/question/{id}/reject`; OpenCode's 404 (answered already, or gone) is
    /// [`Delivery::NotPending`].
    async fn answer_request(
        &self,
        directory: &str,
        request: &PendingRequest,
        answer: &Answer,
    ) -> openloom_core::Result<Delivery> {
        let id = request.id.as_str();
        let sent = match answer {
            Answer::Allow { always: false } => {
                self.reply_permission(directory, id, PermissionReply::Once, None).await
            }
            Answer::Allow { always: true } => {
                self.reply_permission(directory, id, PermissionReply::Always, None).await
            }
            Answer::Deny { message } => {
                self.reply_permission(directory, id, PermissionReply::Reject, message.as_deref())
                    .await
            }
            Answer::Choose { answers } => self.reply_question(directory, id, answers).await,
            Answer::Dismiss => self.reject_question(directory, id).await,
        };
        match sent {
            Ok(()) => Ok(Delivery::Delivered),
            Err(Error::NotFound { .. }) => Ok(Delivery::NotPending),
            Err(other) => Err(other.into()),
        }
    }

    async fn prompt_and_wait(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> openloom_core::Result<AgentMessage> {
        Ok(OpencodeClient::prompt_and_wait(self, session, prompt, agent).await?)
    }

    async fn delete_session(&self, session: &SessionRef) -> openloom_core::Result<()> {
        Ok(OpencodeClient::delete_session(self, session).await?)
    }

    /// Events of every directory instance (`/global/event`), so sessions in any
    /// workspace are covered by one connection.
    fn events(&self) -> Option<BoxStream<'static, AgentEvent>> {
        Some(self.agent_events(EventScope::Global))
    }
}

fn permission_request(request: &PermissionRequest) -> PendingRequest {
    PendingRequest {
        id: request.id.clone(),
        session_id: request.session_id.clone(),
        kind: RequestKind::Permission {
            permission: request.permission.clone(),
            patterns: request.patterns.clone(),
        },
        asked_at: None,
    }
}

/// A question request, reading `{question, options: [{label}]}` from each question
/// (`api-notes.md` §9); a question without text is kept with an empty one.
fn question_request(request: &QuestionRequest) -> PendingRequest {
    let questions = request
        .questions
        .iter()
        .map(|q| Question {
            question: q.get("question").and_then(Value::as_str).unwrap_or_default().to_owned(),
            options: q
                .get("options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .filter_map(|o| o.get("label").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    PendingRequest {
        id: request.id.clone(),
        session_id: request.session_id.clone(),
        kind: RequestKind::Question { questions },
        asked_at: None,
    }
}
