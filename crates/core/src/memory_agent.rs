//! An [`AgentServer`] in memory, for tests and examples.
//!
//! Sessions and messages live in a map; each prompt is recorded as a user message
//! and answered by a responder closure the test provides, as a finished assistant
//! message. With the `test-util` feature, failures can be queued to exercise the
//! harness's error handling.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::Utc;

use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::agent::{
    AgentEvent, AgentMessage, AgentServer, Health, MessagePart, Role, Session, SessionActivity,
    SessionRef,
};
use crate::answer::{Answer, Delivery};
use crate::error::{Error, Result};
use crate::policy::PermissionRule;
use crate::request::PendingRequest;

type Responder = Box<dyn Fn(&str, usize) -> Option<String> + Send + Sync>;

/// A scripted agent server in memory.
pub struct MemoryAgent {
    state: Mutex<State>,
    responder: Responder,
    announcer: mpsc::UnboundedSender<AgentEvent>,
    /// The receiving end of [`MemoryAgent::announce`], handed out once by `events()`.
    announced: Mutex<Option<mpsc::UnboundedReceiver<AgentEvent>>>,
}

#[derive(Default)]
struct State {
    sessions: Vec<Session>,
    messages: HashMap<String, Vec<AgentMessage>>,
    prompts: Vec<(String, String)>,
    activity: HashMap<String, SessionActivity>,
    failures: VecDeque<Error>,
    prompt_failures: VecDeque<Error>,
    /// When set, `session_activity` never answers (like OpenCode right after a restart).
    statuses_hang: bool,
    /// What `pending_requests` answers.
    pending: Vec<PendingRequest>,
    /// Every answer delivered, as (request id, answer), in order.
    answers: Vec<(String, Answer)>,
    /// Sessions aborted, in order.
    aborts: Vec<String>,
    /// The ruleset each session was created with.
    rules: HashMap<String, Vec<PermissionRule>>,
    next_id: u64,
}

impl std::fmt::Debug for MemoryAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAgent").finish_non_exhaustive()
    }
}

impl MemoryAgent {
    /// An agent that answers the `n`th prompt (zero-based) with `responder(prompt, n)`,
    /// or stays silent when it returns `None`.
    pub fn new(responder: impl Fn(&str, usize) -> Option<String> + Send + Sync + 'static) -> Self {
        let (announcer, announced) = mpsc::unbounded_channel();
        MemoryAgent {
            state: Mutex::new(State::default()),
            responder: Box::new(responder),
            announcer,
            announced: Mutex::new(Some(announced)),
        }
    }

    /// An agent that answers the prompts in turn with `replies`, then stays silent.
    pub fn replying(replies: &[&str]) -> Self {
        let replies: Vec<String> = replies.iter().map(|r| (*r).to_owned()).collect();
        Self::new(move |_, n| replies.get(n).cloned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the next call (of any kind except `health`) fail with `error`.
    #[cfg(any(test, feature = "test-util"))]
    pub fn fail_next(&self, error: Error) {
        self.lock().failures.push_back(error);
    }

    /// Makes the next `send_prompt` fail with `error` (after any `fail_next` ones).
    #[cfg(any(test, feature = "test-util"))]
    pub fn fail_next_prompt(&self, error: Error) {
        self.lock().prompt_failures.push_back(error);
    }

    /// Puts an event on the agent's event stream (see [`AgentServer::events`]).
    pub fn announce(&self, event: AgentEvent) {
        // The receiver lives as long as the agent; sending cannot fail before that.
        let _ = self.announcer.send(event);
    }

    /// Makes every later `session_activity` call hang, as OpenCode does right after a
    /// restart (it accepts the connection and answers nothing).
    #[cfg(any(test, feature = "test-util"))]
    pub fn hang_statuses(&self) {
        self.lock().statuses_hang = true;
    }

    /// Sets what `session_activity` reports for a session.
    pub fn set_activity(&self, session_id: &str, activity: SessionActivity) {
        self.lock().activity.insert(session_id.to_owned(), activity);
    }

    /// Sets the permissions and questions pending for a person (all sessions), as if
    /// the agent had asked them; an empty list answers them all.
    pub fn set_pending(&self, requests: Vec<PendingRequest>) {
        self.lock().pending = requests;
    }

    /// The sessions aborted, in order.
    pub fn aborts(&self) -> Vec<String> {
        self.lock().aborts.clone()
    }

    /// The permission ruleset `session_id` was created with (empty for none).
    pub fn session_rules(&self, session_id: &str) -> Vec<PermissionRule> {
        self.lock().rules.get(session_id).cloned().unwrap_or_default()
    }

    /// Every answer delivered to a pending request, as (request id, answer), in order.
    pub fn answers(&self) -> Vec<(String, Answer)> {
        self.lock().answers.clone()
    }

    /// Removes a session, as if a user deleted it.
    pub fn delete_session(&self, session_id: &str) {
        let mut state = self.lock();
        state.sessions.retain(|s| s.id != session_id);
        state.messages.remove(session_id);
    }

    /// Appends an assistant message to a session, as if the model wrote it.
    pub fn push_reply(&self, session_id: &str, text: &str) {
        let mut state = self.lock();
        let message = new_message(&mut state, Role::Assistant, text);
        state.messages.entry(session_id.to_owned()).or_default().push(message);
    }

    /// Every prompt sent, as (session id, text), in order.
    pub fn prompts(&self) -> Vec<(String, String)> {
        self.lock().prompts.clone()
    }

    /// Sessions created so far.
    pub fn sessions(&self) -> Vec<Session> {
        self.lock().sessions.clone()
    }

    fn take_failure(&self) -> Result<()> {
        match self.lock().failures.pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn new_message(state: &mut State, role: Role, text: &str) -> AgentMessage {
    state.next_id += 1;
    let now = Utc::now();
    AgentMessage {
        id: format!("msg_{:06}", state.next_id),
        role,
        created_at: Some(now),
        completed_at: Some(now),
        error: None,
        parts: vec![MessagePart::Text { text: text.to_owned() }],
        tokens: None,
        cost: None,
        model: None,
    }
}

#[async_trait]
impl AgentServer for MemoryAgent {
    async fn health(&self) -> Health {
        Health::Reachable { version: Some("memory".into()) }
    }

    async fn create_session(&self, directory: &str, title: &str) -> Result<Session> {
        self.take_failure()?;
        let mut state = self.lock();
        state.next_id += 1;
        let session = Session {
            id: format!("ses_{:06}", state.next_id),
            directory: directory.to_owned(),
            title: title.to_owned(),
            parent_id: None,
            created_at: Some(Utc::now()),
            updated_at: None,
            archived_at: None,
        };
        state.sessions.push(session.clone());
        Ok(session)
    }

    async fn create_session_with(
        &self,
        directory: &str,
        title: &str,
        rules: &[PermissionRule],
    ) -> Result<Session> {
        let session = self.create_session(directory, title).await?;
        self.lock().rules.insert(session.id.clone(), rules.to_vec());
        Ok(session)
    }

    async fn find_session(&self, session_id: &str) -> Result<Option<Session>> {
        self.take_failure()?;
        Ok(self.lock().sessions.iter().find(|s| s.id == session_id).cloned())
    }

    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        _agent: Option<&str>,
    ) -> Result<()> {
        self.take_failure()?;
        let index = {
            let mut state = self.lock();
            if let Some(error) = state.prompt_failures.pop_front() {
                return Err(error);
            }
            if !state.sessions.iter().any(|s| s.id == session.id) {
                return Err(Error::NotFound { what: "session", id: session.id.clone() });
            }
            state.prompts.push((session.id.clone(), prompt.to_owned()));
            let message = new_message(&mut state, Role::User, prompt);
            state.messages.entry(session.id.clone()).or_default().push(message);
            state.prompts.len() - 1
        };
        if let Some(reply) = (self.responder)(prompt, index) {
            self.push_reply(&session.id, &reply);
        }
        Ok(())
    }

    async fn session_activity(
        &self,
        _directories: &[String],
    ) -> Result<HashMap<String, SessionActivity>> {
        if self.lock().statuses_hang {
            std::future::pending::<()>().await;
        }
        self.take_failure()?;
        Ok(self.lock().activity.clone())
    }
    async fn messages(&self, session: &SessionRef, limit: usize) -> Result<Vec<AgentMessage>> {
        self.take_failure()?;
        let state = self.lock();
        if !state.sessions.iter().any(|s| s.id == session.id) {
            return Err(Error::NotFound { what: "session", id: session.id.clone() });
        }
        let all = state.messages.get(&session.id).cloned().unwrap_or_default();
        let skip = all.len().saturating_sub(limit);
        Ok(all.into_iter().skip(skip).collect())
    }

    /// Ends the session's turn, as OpenCode does: the session is idle after it, and
    /// the abort is counted ([`MemoryAgent::aborts`]).
    async fn abort(&self, session: &SessionRef) -> Result<()> {
        self.take_failure()?;
        let mut state = self.lock();
        state.activity.insert(session.id.clone(), SessionActivity::Idle);
        state.aborts.push(session.id.clone());
        Ok(())
    }

    async fn pending_requests(&self, _directory: &str) -> Result<Vec<PendingRequest>> {
        self.take_failure()?;
        Ok(self.lock().pending.clone())
    }

    /// Takes the request off the pending list, as OpenCode does once answered.
    async fn answer_request(
        &self,
        _directory: &str,
        request: &PendingRequest,
        answer: &Answer,
    ) -> Result<Delivery> {
        self.take_failure()?;
        let mut state = self.lock();
        let before = state.pending.len();
        state.pending.retain(|pending| pending.id != request.id);
        if state.pending.len() == before {
            return Ok(Delivery::NotPending);
        }
        state.answers.push((request.id.clone(), answer.clone()));
        Ok(Delivery::Delivered)
    }

    /// The events given to [`MemoryAgent::announce`]; handed out to the first caller.
    fn events(&self) -> Option<BoxStream<'static, AgentEvent>> {
        let mut receiver = self.announced.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some(Box::pin(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))))
    }
}
