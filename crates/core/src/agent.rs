//! The agent server the harness drives, seen through a trait.
//!
//! `openloom-opencode` implements [`AgentServer`] over OpenCode's HTTP API; tests and
//! embedders can implement it in memory. The types here are the harness's view of a
//! session and its messages: only what progress detection and the dashboard need,
//! already normalised (roles, times, parts), so the harness never sees HTTP or JSON.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::answer::{Answer, Delivery};
use crate::error::{Error, Result};
use crate::policy::PermissionRule;
use crate::request::PendingRequest;

/// A session plus the directory it lives in. OpenCode scopes statuses and events
/// per directory instance, so every call about a session carries both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionRef {
    /// Session id, e.g. `ses_...`.
    pub id: String,
    /// The session's working directory.
    pub directory: String,
}

/// What the agent server tells about a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Session id.
    pub id: String,
    /// Working directory (OpenCode's `directory`).
    pub directory: String,
    /// Title shown to users.
    #[serde(default)]
    pub title: String,
    /// Parent session for sub-agent sessions.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// Last update time.
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was archived, if it is.
    #[serde(default)]
    pub archived_at: Option<DateTime<Utc>>,
}

impl Session {
    /// The reference used to address this session.
    pub fn as_ref(&self) -> SessionRef {
        SessionRef { id: self.id.clone(), directory: self.directory.clone() }
    }
}

/// What a session is doing right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SessionActivity {
    /// Nothing running. OpenCode reports idle sessions by leaving them out.
    Idle,
    /// The model or a tool is working.
    Busy,
    /// The provider failed and OpenCode retries.
    Retry {
        /// Attempt number.
        attempt: u32,
        /// Why it retries.
        message: String,
    },
}

impl SessionActivity {
    /// Rank for merging statuses from several sources: busy > retry > idle.
    pub fn rank(&self) -> u8 {
        match self {
            SessionActivity::Idle => 0,
            SessionActivity::Retry { .. } => 1,
            SessionActivity::Busy => 2,
        }
    }
}

/// Whether the agent server can be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum Health {
    /// Up and accepting our credentials.
    Reachable {
        /// The server's version, if it says.
        version: Option<String>,
    },
    /// Not reachable (connection refused, timeout, not an agent server).
    Unreachable {
        /// Why, in words a user can act on.
        reason: String,
    },
    /// Reachable, but our credentials were refused.
    Unauthorized {
        /// Why, in words a user can act on.
        reason: String,
    },
}

impl Health {
    /// True when the server is reachable and accepts us.
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Reachable { .. })
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user (or the harness speaking for them).
    User,
    /// The model.
    Assistant,
    /// Anything else the server may add.
    #[serde(untagged)]
    Other(String),
}

/// State of a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolState {
    /// Queued.
    Pending,
    /// Executing.
    Running,
    /// Finished.
    Completed,
    /// Failed.
    Error,
    /// A state this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl ToolState {
    /// True while the tool has not finished.
    pub fn is_active(&self) -> bool {
        match self {
            ToolState::Pending | ToolState::Running => true,
            ToolState::Other(s) => s.eq_ignore_ascii_case("active"),
            _ => false,
        }
    }
}

/// One part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum MessagePart {
    /// Text the model (or user) wrote.
    Text {
        /// The text.
        text: String,
    },
    /// The model's reasoning. Not part of the transcript markers are read from.
    Reasoning {
        /// The reasoning text.
        text: String,
    },
    /// A tool call.
    Tool {
        /// Tool name, e.g. `write`.
        tool: String,
        /// Where the call is.
        state: ToolState,
    },
    /// Any other part (step boundaries, patches, files, ...).
    Other {
        /// The part's type as the server named it.
        kind: String,
    },
}

/// The error an assistant message ended with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageError {
    /// Error name, e.g. `MessageAbortedError`.
    pub name: String,
    /// Error message, if any.
    #[serde(default)]
    pub message: String,
}

impl MessageError {
    /// True when the error means the user (or harness) stopped the reply.
    pub fn is_abort(&self) -> bool {
        let name = self.name.to_lowercase();
        let message = self.message.to_lowercase();
        ["abort", "cancel", "stop"].iter().any(|w| name.contains(w))
            || ["abort", "cancel", "stopped"].iter().any(|w| message.contains(w))
    }
}

/// Tokens one assistant message used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Tokens read from the provider's cache.
    pub cache_read: u64,
    /// Tokens written to the provider's cache.
    pub cache_write: u64,
}

/// A message of a session, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessage {
    /// Message id.
    pub id: String,
    /// Author.
    pub role: Role,
    /// When it was created.
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the assistant finished it; `None` while it is being written.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// The error the message ended with.
    #[serde(default)]
    pub error: Option<MessageError>,
    /// Its parts, in order.
    #[serde(default)]
    pub parts: Vec<MessagePart>,
    /// Token usage (assistant messages).
    #[serde(default)]
    pub tokens: Option<TokenUsage>,
    /// Cost in dollars (assistant messages).
    #[serde(default)]
    pub cost: Option<f64>,
    /// `provider/model` that wrote it (assistant messages).
    #[serde(default)]
    pub model: Option<String>,
}

impl AgentMessage {
    /// The concatenated text parts (reasoning and tool output excluded).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for part in &self.parts {
            if let MessagePart::Text { text } = part {
                out.push_str(text);
            }
        }
        out
    }

    /// True for assistant messages.
    pub fn is_assistant(&self) -> bool {
        self.role == Role::Assistant
    }
}

/// Something the agent server announced on its event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentEvent {
    /// A session stopped working. May arrive more than once for one idle period.
    SessionIdle {
        /// The session.
        session_id: String,
    },
    /// A session's activity changed.
    SessionStatus {
        /// The session.
        session_id: String,
        /// Its new activity.
        activity: SessionActivity,
    },
    /// The session asked a person something (a permission, a question), or a
    /// request of it was answered: its task should be looked at now.
    RequestChanged {
        /// The session.
        session_id: String,
    },
    /// The stream was re-established; events in between are lost (the server
    /// replays nothing), so a consumer should re-check what it cares about.
    Reconnected,
}

/// The agent server the harness drives (OpenCode, or an in-memory double).
///
/// Errors follow [`crate::Error`]'s transient/permanent split: implementations map
/// connection failures and timeouts to `AgentUnavailable`, refused credentials to
/// `AgentUnauthorized`, a missing session to `NotFound`.
#[async_trait]
pub trait AgentServer: Send + Sync {
    /// Whether the server is reachable and accepts our credentials. Never fails.
    async fn health(&self) -> Health;

    /// Creates a session working in `directory`.
    async fn create_session(&self, directory: &str, title: &str) -> Result<Session>;

    /// Creates a session whose permission ruleset is `rules` (OpenCode's per-session
    /// `permission`: the server then never asks for what they allow or deny). The
    /// default creates a plain session: the harness still applies the rules to every
    /// request that arrives, so a server without rulesets is only asked more often.
    async fn create_session_with(
        &self,
        directory: &str,
        title: &str,
        rules: &[PermissionRule],
    ) -> Result<Session> {
        if !rules.is_empty() {
            tracing::debug!(rules = rules.len(), "this agent server takes no session rulesets");
        }
        self.create_session(directory, title).await
    }

    /// Looks up a session by id across all directories; `None` if it does not exist.
    async fn find_session(&self, session_id: &str) -> Result<Option<Session>>;

    /// Sends a prompt without waiting for the reply.
    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> Result<()>;

    /// Activity of the sessions in the given directories (and the server's default
    /// one). Sessions left out are idle.
    async fn session_activity(
        &self,
        directories: &[String],
    ) -> Result<HashMap<String, SessionActivity>>;

    /// The newest `limit` messages of a session, oldest first.
    async fn messages(&self, session: &SessionRef, limit: usize) -> Result<Vec<AgentMessage>>;

    /// Stops whatever the session is doing.
    async fn abort(&self, session: &SessionRef) -> Result<()>;

    /// The permissions and questions pending for a person in the instance of
    /// `directory` (all its sessions). The default has none: a server without such
    /// requests never waits on a person.
    async fn pending_requests(&self, directory: &str) -> Result<Vec<PendingRequest>> {
        let _ = directory;
        Ok(Vec::new())
    }

    /// Delivers `answer` to `request`, pending in the instance of `directory`. The
    /// caller has checked that the answer fits ([`Answer::misfit`]). A request the
    /// server no longer holds is [`Delivery::NotPending`], not an error. The default
    /// refuses: a server without requests has nothing to answer.
    async fn answer_request(
        &self,
        directory: &str,
        request: &PendingRequest,
        answer: &Answer,
    ) -> Result<Delivery> {
        let _ = (directory, answer);
        Err(Error::Invalid(format!("this agent server takes no answers (request {})", request.id)))
    }

    /// Sends a prompt and waits for the agent's whole turn; returns the turn's last
    /// assistant message. A provider error comes back in [`AgentMessage::error`], not
    /// as an `Err`. The planner uses it; the harness never waits for a turn.
    ///
    /// The default sends with [`AgentServer::send_prompt`] and returns the newest
    /// assistant message: right for a server that answers within `send_prompt`, as the
    /// in-memory agent does. A server that answers later (OpenCode) overrides it.
    async fn prompt_and_wait(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> Result<AgentMessage> {
        self.send_prompt(session, prompt, agent).await?;
        let newest = self.messages(session, 20).await?;
        // The reply is an assistant message after our prompt; one before it answered
        // an earlier prompt.
        newest
            .into_iter()
            .rev()
            .take_while(|m| m.role != Role::User)
            .find(AgentMessage::is_assistant)
            .ok_or_else(|| Error::AgentProtocol {
                message: format!("session {} did not answer the prompt", session.id),
            })
    }

    /// Deletes a session (OpenCode deletes its child sessions too). The default keeps
    /// it: a server that cannot delete sessions is still usable, it only accumulates
    /// the planner's throwaway sessions.
    async fn delete_session(&self, session: &SessionRef) -> Result<()> {
        tracing::debug!(session = %session.id, "this agent server does not delete sessions");
        Ok(())
    }

    /// A live stream of events, reconnecting on its own, if the server has one.
    /// The default has none; the harness then relies on its check interval alone.
    fn events(&self) -> Option<BoxStream<'static, AgentEvent>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_ignores_reasoning_and_tools() {
        let message = AgentMessage {
            id: "m".into(),
            role: Role::Assistant,
            created_at: None,
            completed_at: None,
            error: None,
            parts: vec![
                MessagePart::Reasoning { text: "STEP DONE: 9".into() },
                MessagePart::Text { text: "Hello ".into() },
                MessagePart::Tool { tool: "write".into(), state: ToolState::Completed },
                MessagePart::Text { text: "world".into() },
            ],
            tokens: None,
            cost: None,
            model: None,
        };
        assert_eq!(message.text(), "Hello world");
    }

    #[test]
    fn abort_errors_are_recognised_by_name_or_message() {
        let named = MessageError { name: "MessageAbortedError".into(), message: String::new() };
        assert!(named.is_abort());
        let by_message = MessageError { name: "X".into(), message: "Request was cancelled".into() };
        assert!(by_message.is_abort());
        let other = MessageError { name: "APIError".into(), message: "rate limited".into() };
        assert!(!other.is_abort());
    }

    #[test]
    fn activity_rank_orders_busy_over_retry_over_idle() {
        let retry = SessionActivity::Retry { attempt: 1, message: String::new() };
        assert!(SessionActivity::Busy.rank() > retry.rank());
        assert!(retry.rank() > SessionActivity::Idle.rank());
    }

    #[tokio::test]
    async fn the_default_prompt_and_wait_returns_the_reply_or_says_there_is_none() {
        let agent = crate::MemoryAgent::replying(&["a plan"]);
        let session = agent.create_session("/ws", "t").await.expect("session").as_ref();
        let reply = agent.prompt_and_wait(&session, "plan please", None).await.expect("reply");
        assert!(reply.is_assistant());
        assert_eq!(reply.text(), "a plan");
        // The script is exhausted: the agent stays silent, which is not a reply.
        let err = agent.prompt_and_wait(&session, "again", None).await.expect_err("silent");
        assert!(matches!(err, Error::AgentProtocol { .. }), "{err:?}");
        assert!(err.to_string().contains("did not answer"), "{err}");
    }

    #[test]
    fn unknown_roles_and_tool_states_survive() {
        let role: Role = serde_json::from_str("\"system\"").expect("any string");
        assert_eq!(role, Role::Other("system".into()));
        let state: ToolState = serde_json::from_str("\"active\"").expect("any string");
        assert!(state.is_active());
    }
}
