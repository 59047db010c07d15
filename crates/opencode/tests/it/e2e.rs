//! End-to-end tests of the `openloom-opencode` client against the real OpenCode,
//! backed by the scripted model. Skipped without OpenCode, except under
//! `OPENLOOM_E2E=required` (CI), where that is a failure.

use std::time::{Duration, Instant};

use futures::StreamExt;
use openloom_core::{
    AgentEvent, AgentMessage, AgentServer, Health, MessagePart, SessionActivity, SessionRef,
    ToolState,
};
use openloom_opencode::{Error, EventScope, OpencodeClient, Secret, Settings, StreamItem};
use openloom_testkit::{
    E2e, OpencodeOptions, OpencodeServer, PINNED_OPENCODE_VERSION, Reply, Script, TITLE_MODEL_ID,
    TITLE_REPLY, Turn, Usage, require_opencode,
};

/// Generous bound for one scripted turn; a turn normally takes 1–2 s.
const TURN_TIMEOUT: Duration = Duration::from_secs(30);

fn client_for(opencode: &OpencodeServer) -> OpencodeClient {
    let mut settings = Settings::new(opencode.base_url());
    if let Some((username, password)) = opencode.credentials() {
        settings.username = username;
        settings.password = Some(Secret::new(password));
    }
    settings.request_timeout = Duration::from_secs(10);
    OpencodeClient::new(settings).expect("settings are valid")
}

async fn new_session(client: &OpencodeClient, env: &E2e, title: &str) -> SessionRef {
    let session =
        client.create_session(&env.workspace.directory(), title).await.expect("create session");
    assert_eq!(session.directory, env.workspace.directory());
    assert_eq!(session.title, title);
    session.as_ref()
}

/// Poll until OpenCode reports the session idle and its last message is a finished
/// assistant message; return all messages.
async fn wait_for_turn_end(
    client: &OpencodeClient,
    env: &E2e,
    session: &SessionRef,
) -> Vec<AgentMessage> {
    let deadline = Instant::now() + TURN_TIMEOUT;
    loop {
        let status =
            client.session_status(std::slice::from_ref(&session.directory)).await.expect("status");
        let idle =
            status.get(&session.id).is_none_or(|activity| *activity == SessionActivity::Idle);
        let messages = client.messages(session, 0).await.expect("messages");
        let finished =
            messages.last().is_some_and(|m| m.is_assistant() && m.completed_at.is_some());
        if idle && finished {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "turn did not end; messages: {messages:#?}\nOpenCode log:\n{}",
            env.opencode.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll the status map until the session shows up busy.
async fn wait_for_busy(client: &OpencodeClient, session: &SessionRef) {
    let deadline = Instant::now() + TURN_TIMEOUT;
    loop {
        let status =
            client.session_status(std::slice::from_ref(&session.directory)).await.expect("status");
        if status.get(&session.id) == Some(&SessionActivity::Busy) {
            return;
        }
        assert!(Instant::now() < deadline, "session never became busy; status: {status:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn prompt_writes_the_file_reports_tokens_and_goes_busy_then_idle() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let target = env.workspace.file("src/generated.txt");
    // The chunk delay keeps the first step running long enough to see it busy.
    let write = Reply::write_file(&target, "generated content\n")
        .with_chunk_delay(Duration::from_millis(100))
        .with_usage(Usage {
            prompt_tokens: 1200,
            completion_tokens: 30,
            cached_tokens: 200,
            reasoning_tokens: 0,
        });
    env.model.push_turn(Turn::reply(write).when_user_prompt());
    env.model.push_turn(
        Turn::reply(Reply::text("Wrote it. STEP DONE").with_usage(Usage::new(150, 12)))
            .when_tool_result(),
    );
    let client = client_for(&env.opencode);
    let session = new_session(&client, &env, "e2e: write a file").await;

    client.send_prompt(&session, "Create src/generated.txt", None).await.expect("prompt accepted");
    wait_for_busy(&client, &session).await;
    let messages = wait_for_turn_end(&client, &env, &session).await;

    assert_eq!(env.workspace.read("src/generated.txt").as_deref(), Some("generated content\n"));
    let assistants: Vec<&AgentMessage> = messages.iter().filter(|m| m.is_assistant()).collect();
    assert_eq!(assistants.len(), 2, "a tool step and a final step: {messages:#?}");
    assert!(assistants[0].parts.iter().any(|part| matches!(
        part,
        MessagePart::Tool { tool, state: ToolState::Completed } if tool == "write"
    )));
    assert_eq!(assistants[1].text(), "Wrote it. STEP DONE");
    // OpenCode reports input without the cached tokens, which it counts separately.
    let first = assistants[0].tokens.expect("tokens on the tool step");
    assert_eq!((first.input, first.output, first.cache_read), (1000, 30, 200));
    let last = assistants[1].tokens.expect("tokens on the final step");
    assert_eq!((last.input, last.output), (150, 12));
    assert_eq!(assistants[1].model.as_deref().map(|m| m.contains("scripted-model")), Some(true));

    let requests = env.model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].last_user_text().as_deref(), Some("Create src/generated.txt"));
    assert_eq!(requests[1].tool_results(), vec!["Wrote file successfully.".to_owned()]);
}

#[tokio::test]
async fn prompt_and_wait_returns_the_final_answer_and_untitled_sessions_get_a_title() {
    let launcher = require_opencode!();
    let env =
        E2e::start(&launcher, Script::new().text("synchronous answer")).await.expect("starts");
    let client = client_for(&env.opencode);
    // No title: OpenCode asks its small model for one, which the kit answers apart.
    let session =
        client.create_session(&env.workspace.directory(), "").await.expect("create").as_ref();

    let answer = client.prompt_and_wait(&session, "Answer now", None).await.expect("answer");

    assert!(answer.is_assistant());
    assert_eq!(answer.text(), "synchronous answer");
    assert!(answer.completed_at.is_some());
    assert_eq!(answer.error, None);
    let tokens = answer.tokens.expect("tokens");
    assert_eq!((tokens.input, tokens.output), (100, 20), "the scripted default usage");
    assert_eq!(env.model.requests().len(), 1, "the title request used no scripted turn");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let title = client.session(&session.id).await.expect("session").title;
        if title == TITLE_REPLY {
            break;
        }
        assert!(Instant::now() < deadline, "title never set, still {title:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(env.model.all_requests().iter().any(|r| r.model == TITLE_MODEL_ID));
}

#[tokio::test]
async fn a_provider_error_ends_the_turn_with_an_error_message() {
    let launcher = require_opencode!();
    let script = Script::new().then(Reply::http_error(400, "scripted refusal"));
    let env = E2e::start(&launcher, script).await.expect("starts");
    let client = client_for(&env.opencode);
    let session = new_session(&client, &env, "e2e: provider error").await;

    client.send_prompt(&session, "This will fail", None).await.expect("prompt accepted");
    let messages = wait_for_turn_end(&client, &env, &session).await;

    let error = messages.last().and_then(|m| m.error.clone()).expect("an error on the answer");
    assert!(!error.is_abort(), "{error:?}");
    assert!(error.message.contains("scripted refusal") || error.name == "APIError", "{error:?}");
    assert_eq!(env.model.requests().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn abort_stops_a_slow_reply() {
    let launcher = require_opencode!();
    // 400 words at 50 ms each: twenty seconds unless aborted.
    let script = Script::new().then(Reply::slow_text(400, Duration::from_millis(50)));
    let env = E2e::start(&launcher, script).await.expect("starts");
    let client = client_for(&env.opencode);
    let session = new_session(&client, &env, "e2e: abort").await;
    let started = Instant::now();

    client.send_prompt(&session, "Talk slowly", None).await.expect("prompt accepted");
    env.model.wait_for_requests(1, TURN_TIMEOUT).await.expect("the model is streaming");
    wait_for_busy(&client, &session).await;
    client.abort(&session).await.expect("abort");
    let messages = wait_for_turn_end(&client, &env, &session).await;

    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    let last = messages.last().expect("an assistant message");
    let error = last.error.clone().expect("the aborted message carries an error");
    assert!(error.is_abort(), "{error:?}");
    assert!(!last.text().contains("word400"), "the stream was cut short");
}

#[tokio::test]
async fn archive_then_delete_a_session() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("starts");
    let client = client_for(&env.opencode);
    let session = new_session(&client, &env, "e2e: archive").await;
    let keep = new_session(&client, &env, "e2e: keep").await;

    let archived = client.set_archived(&session, true).await.expect("archive");
    assert!(archived.archived_at.is_some());
    let listed = client.list_sessions().await.expect("list");
    let found = listed.iter().find(|s| s.id == session.id).expect("archived sessions are listed");
    assert!(found.archived_at.is_some());
    assert!(listed.iter().any(|s| s.id == keep.id && s.archived_at.is_none()));

    client.delete_session(&session).await.expect("delete");

    assert!(matches!(client.session(&session.id).await, Err(Error::NotFound { .. })));
    assert_eq!(AgentServer::find_session(&client, &session.id).await.expect("lookup"), None);
    assert!(AgentServer::find_session(&client, &keep.id).await.expect("lookup").is_some());
    assert!(client.delete_session(&session).await.is_err(), "a second delete finds nothing");
}

#[tokio::test]
async fn events_show_the_session_busy_then_idle() {
    let launcher = require_opencode!();
    // Slow enough that the global stream (no connect signal) is surely open first.
    let reply = Reply::text("event driven answer").with_chunk_delay(Duration::from_millis(150));
    let env = E2e::start(&launcher, Script::new().then(reply)).await.expect("starts");
    let client = client_for(&env.opencode);
    let session = new_session(&client, &env, "e2e: events").await;
    let mut directory_events = client.subscribe(EventScope::Directory(session.directory.clone()));
    let mut agent_events = AgentServer::events(&client).expect("OpenCode has an event stream");
    let first =
        tokio::time::timeout(TURN_TIMEOUT, directory_events.next()).await.expect("an event");
    assert!(
        matches!(&first, Some(StreamItem::Event(event)) if event.kind == "server.connected"),
        "{first:?}"
    );
    // Poll the global stream once so its connection opens before the prompt.
    let _ = tokio::time::timeout(Duration::from_millis(300), agent_events.next()).await;

    client.send_prompt(&session, "Answer with events", None).await.expect("prompt accepted");

    let mut kinds = Vec::new();
    let deadline = Instant::now() + TURN_TIMEOUT;
    while !kinds.iter().any(|k| k == "session.idle") {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, directory_events.next()).await;
        match item {
            Ok(Some(StreamItem::Event(event)))
                if event.session_id.as_deref() == Some(&session.id) =>
            {
                if event.kind == "session.status" {
                    kinds.push(format!("session.status:{}", event.properties["status"]["type"]));
                } else {
                    kinds.push(event.kind);
                }
            }
            Ok(Some(_)) => {}
            other => panic!("no session.idle before the deadline ({other:?}); saw {kinds:?}"),
        }
    }
    let busy = kinds.iter().position(|k| k == "session.status:\"busy\"").expect("busy event");
    let idle = kinds.iter().position(|k| k == "session.idle").expect("idle event");
    assert!(busy < idle, "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "message.part.delta"), "text streams as deltas: {kinds:?}");

    let mut seen_busy = false;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(5), agent_events.next()).await;
        match item.expect("the global stream reports our session") {
            Some(AgentEvent::SessionStatus { session_id, activity: SessionActivity::Busy })
                if session_id == session.id =>
            {
                seen_busy = true
            }
            Some(AgentEvent::SessionIdle { session_id }) if session_id == session.id => break,
            Some(_) => {}
            None => panic!("the event stream ended"),
        }
    }
    assert!(seen_busy, "the trait's stream saw busy before idle");
    let messages = client.messages(&session, 0).await.expect("messages");
    assert_eq!(messages.last().map(AgentMessage::text).as_deref(), Some("event driven answer"));
}

#[tokio::test]
async fn health_reports_auth_and_restarts() {
    let launcher = require_opencode!();
    let options = OpencodeOptions::default().with_password("e2e-secret");
    let mut env = E2e::start_with(&launcher, Script::new(), options).await.expect("starts");
    let client = client_for(&env.opencode);
    let anonymous = OpencodeClient::new(Settings::new(env.opencode.base_url())).expect("client");

    assert_eq!(
        client.health().await,
        Health::Reachable { version: Some(PINNED_OPENCODE_VERSION.to_owned()) }
    );
    assert!(matches!(anonymous.health().await, Health::Unauthorized { .. }));
    let session = new_session(&client, &env, "e2e: survives a restart").await;

    env.opencode.kill().await.expect("kill");
    assert!(matches!(client.health().await, Health::Unreachable { .. }));
    env.opencode.restart().await.expect("restart");

    assert!(client.health().await.is_ok(), "the same client reconnects");
    let found = AgentServer::find_session(&client, &session.id).await.expect("lookup");
    assert_eq!(found.map(|s| s.title).as_deref(), Some("e2e: survives a restart"));
}
