//! `draft_plan`: the planner's conversation with an agent server, over core's
//! in-memory agent wrapped to record deletions and to shape the reply.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use openloom_core::{
    AgentMessage, AgentServer, Health, MemoryAgent, MessageError, MessagePart, Role, Session,
    SessionActivity, SessionRef,
};
use openloom_prompts::{Error, PLAN_SESSION_TITLE, draft_plan};

const PLAN: &str = r#"Here you go:
```json
{"name": "Add login", "goal": "Users can log in",
 "steps": [{"title": "Add the form", "acceptance": ["form renders"]}, {"title": "Wire it"}]}
```"#;

/// How the planning turn ends, as `prompt_and_wait` reports it.
#[derive(Clone, Copy, PartialEq)]
enum Turn {
    /// The reply is the assistant message holding the answer.
    Normal,
    /// The reply (the turn's last message) has no text; the answer is earlier.
    EmptyReply,
    /// The model's turn ended in a provider error.
    ModelError,
    /// The prompt request itself failed.
    PromptFails,
}

/// A `MemoryAgent` that answers every prompt with `reply`, records deletions, and
/// ends the turn as `turn` says.
struct Agent {
    inner: MemoryAgent,
    turn: Turn,
    fail_create: bool,
    deleted: Mutex<Vec<String>>,
}

impl Agent {
    fn new(reply: &str, turn: Turn) -> Self {
        let reply = reply.to_owned();
        Agent {
            inner: MemoryAgent::new(move |_, _| Some(reply.clone())),
            turn,
            fail_create: false,
            deleted: Mutex::new(Vec::new()),
        }
    }

    fn deleted(&self) -> Vec<String> {
        self.deleted.lock().expect("not poisoned").clone()
    }
}

fn assistant(text: &str, error: Option<MessageError>) -> AgentMessage {
    AgentMessage {
        id: "msg_last".into(),
        role: Role::Assistant,
        created_at: None,
        completed_at: None,
        error,
        parts: vec![MessagePart::Text { text: text.into() }],
        tokens: None,
        cost: None,
        model: None,
    }
}

#[async_trait]
impl AgentServer for Agent {
    async fn health(&self) -> Health {
        self.inner.health().await
    }
    async fn create_session(&self, directory: &str, title: &str) -> openloom_core::Result<Session> {
        if self.fail_create {
            return Err(openloom_core::Error::AgentUnavailable { message: "refused".into() });
        }
        self.inner.create_session(directory, title).await
    }
    async fn find_session(&self, id: &str) -> openloom_core::Result<Option<Session>> {
        self.inner.find_session(id).await
    }
    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> openloom_core::Result<()> {
        self.inner.send_prompt(session, prompt, agent).await
    }
    async fn session_activity(
        &self,
        directories: &[String],
    ) -> openloom_core::Result<HashMap<String, SessionActivity>> {
        self.inner.session_activity(directories).await
    }
    async fn messages(
        &self,
        session: &SessionRef,
        limit: usize,
    ) -> openloom_core::Result<Vec<AgentMessage>> {
        self.inner.messages(session, limit).await
    }
    async fn abort(&self, session: &SessionRef) -> openloom_core::Result<()> {
        self.inner.abort(session).await
    }
    async fn prompt_and_wait(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> openloom_core::Result<AgentMessage> {
        match self.turn {
            Turn::Normal => self.inner.prompt_and_wait(session, prompt, agent).await,
            Turn::EmptyReply => {
                // The answer lands in the session; the reply is the empty last message.
                self.inner.send_prompt(session, prompt, agent).await?;
                Ok(assistant("  \n", None))
            }
            Turn::ModelError => Ok(assistant(
                "",
                Some(MessageError { name: "ProviderAuthError".into(), message: "bad key".into() }),
            )),
            Turn::PromptFails => {
                Err(openloom_core::Error::AgentUpstream { status: 500, message: "boom".into() })
            }
        }
    }
    async fn delete_session(&self, session: &SessionRef) -> openloom_core::Result<()> {
        self.deleted.lock().expect("not poisoned").push(session.id.clone());
        Ok(())
    }
}

#[tokio::test]
async fn a_plan_is_drafted_in_a_throwaway_session_that_is_deleted() {
    let agent = Agent::new(PLAN, Turn::Normal);
    let plan = draft_plan(&agent, "/ws", "add a login page", None).await.expect("a plan");
    assert_eq!(plan.name, "Add login");
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(plan.steps[0].acceptance, vec!["form renders".to_owned()]);
    assert_eq!(plan.intent, "add a login page");

    let sessions = agent.inner.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].title, PLAN_SESSION_TITLE);
    assert_eq!(sessions[0].directory, "/ws");
    let prompts = agent.inner.prompts();
    assert_eq!(prompts.len(), 1);
    assert!(prompts[0].1.contains("Workspace: /ws"), "{}", prompts[0].1);
    assert!(prompts[0].1.contains("add a login page"), "{}", prompts[0].1);
    assert_eq!(agent.deleted(), vec![sessions[0].id.clone()]);
}

#[tokio::test]
async fn an_empty_reply_falls_back_to_the_sessions_messages() {
    let agent = Agent::new(PLAN, Turn::EmptyReply);
    let plan = draft_plan(&agent, "/ws", "add a login page", None).await.expect("a plan");
    assert_eq!(plan.name, "Add login");
    assert_eq!(agent.deleted().len(), 1);
}

#[tokio::test]
async fn a_reply_without_a_plan_is_unusable_and_the_session_is_still_deleted() {
    let agent = Agent::new("I would rather chat about the weather.", Turn::Normal);
    let err = draft_plan(&agent, "/ws", "do things", None).await.expect_err("no plan");
    assert!(
        matches!(&err, Error::UnusablePlanReply { source } if matches!(**source, Error::PlanWithoutJson { .. })),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("the model's reply holds no usable plan:"), "{err}");
    assert!(!err.is_invalid_input(), "the model's fault, not the caller's");
    assert_eq!(agent.deleted().len(), 1);
}

#[tokio::test]
async fn a_model_error_is_reported_with_its_name_and_the_session_is_deleted() {
    let agent = Agent::new(PLAN, Turn::ModelError);
    let err = draft_plan(&agent, "/ws", "x", None).await.expect_err("model error");
    assert_eq!(err.to_string(), "the model failed to plan: ProviderAuthError bad key");
    assert_eq!(agent.deleted().len(), 1);
}

#[tokio::test]
async fn agent_server_failures_keep_their_kind_and_say_what_was_being_done() {
    let agent = Agent::new(PLAN, Turn::PromptFails);
    let err = draft_plan(&agent, "/ws", "x", None).await.expect_err("prompt fails");
    let Error::PlanningAgent { doing, source } = &err else { panic!("{err:?}") };
    assert_eq!(*doing, "the planning prompt failed");
    assert!(source.is_transient(), "a 500 stays retryable: {source:?}");
    assert_eq!(agent.deleted().len(), 1, "deleted even though the prompt failed");

    let mut agent = Agent::new(PLAN, Turn::Normal);
    agent.fail_create = true;
    let err = draft_plan(&agent, "/ws", "x", None).await.expect_err("no session");
    assert!(
        matches!(
            &err,
            Error::PlanningAgent {
                doing: "could not create the planning session",
                source: openloom_core::Error::AgentUnavailable { .. }
            }
        ),
        "{err:?}"
    );
    assert!(agent.deleted().is_empty(), "nothing to delete");
}
