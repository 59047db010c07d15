//! Sending prompts (async, with the synchronous fallback), waiting for replies,
//! and reading messages.

use std::time::{Duration, Instant};

use openloom_core::{AgentServer, MessagePart, Role, TokenUsage, ToolState};
use openloom_opencode::{Error, OpencodeClient};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{client, fixture, html_page, json_body, json_error, session_ref, settings};

const SESSION: &str = "ses_dec884f12ffe5xSUmHCqm7mFZP";

fn prompt_path() -> wiremock::matchers::PathExactMatcher {
    path(format!("/session/{SESSION}/prompt_async"))
}

fn message_path() -> wiremock::matchers::PathExactMatcher {
    path(format!("/session/{SESSION}/message"))
}

#[tokio::test]
async fn send_prompt_posts_text_parts_to_prompt_async() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(prompt_path())
        .and(query_param("directory", "/w"))
        .and(body_json(json!({"parts": [{"type": "text", "text": "Do step 1"}], "agent": "build"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(message_path()).respond_with(json_body("{}")).expect(0).mount(&server).await;
    let client = client(&server);
    AgentServer::send_prompt(&client, &session_ref(SESSION, "/w"), "Do step 1", Some("build"))
        .await
        .expect("sent");
    server.verify().await;
}

#[tokio::test]
async fn a_missing_prompt_async_route_falls_back_to_message() {
    // A plain 404 (no OpenCode error body) or the web UI page means "no such route".
    for missing in [ResponseTemplate::new(404), html_page()] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(prompt_path())
            .respond_with(missing)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(message_path())
            .and(query_param("directory", "/w"))
            .and(body_json(json!({"parts": [{"type": "text", "text": "hi"}]})))
            .respond_with(json_body(fixture("session_prompt_sync.json")))
            .expect(1)
            .mount(&server)
            .await;
        client(&server)
            .send_prompt(&session_ref(SESSION, "/w"), "hi", None)
            .await
            .expect("fallback worked");
        server.verify().await;
    }
}

#[tokio::test]
async fn an_unknown_session_is_not_found_and_does_not_fall_back() {
    let server = MockServer::start().await;
    Mock::given(prompt_path())
        .respond_with(json_error(404, fixture("error_prompt_async_404.json")))
        .mount(&server)
        .await;
    Mock::given(message_path()).respond_with(json_body("{}")).expect(0).mount(&server).await;
    let err = client(&server)
        .send_prompt(&session_ref(SESSION, "/w"), "hi", None)
        .await
        .expect_err("404");
    assert!(matches!(err, Error::NotFound { what: "session", .. }), "{err:?}");
    server.verify().await;
}

#[tokio::test]
async fn the_fallback_returns_once_the_turn_is_running() {
    let server = MockServer::start().await;
    Mock::given(prompt_path()).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    Mock::given(message_path())
        .respond_with(
            json_body(fixture("session_prompt_sync.json")).set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut settings = settings(&server);
    settings.request_timeout = Duration::from_millis(200);
    let client = OpencodeClient::new(settings).expect("valid");
    let started = Instant::now();
    client.send_prompt(&session_ref(SESSION, "/w"), "hi", None).await.expect("accepted");
    assert!(started.elapsed() < Duration::from_secs(2), "waited {:?}", started.elapsed());
}

#[tokio::test]
async fn the_fallback_reports_an_early_failure() {
    let server = MockServer::start().await;
    Mock::given(prompt_path()).respond_with(ResponseTemplate::new(405)).mount(&server).await;
    Mock::given(message_path())
        .respond_with(json_error(500, fixture("error_session_get_bad_id_500.json")))
        .mount(&server)
        .await;
    let err = client(&server)
        .send_prompt(&session_ref(SESSION, "/w"), "hi", None)
        .await
        .expect_err("500");
    assert!(matches!(err, Error::Upstream { status: 500, .. }), "{err:?}");
}

#[tokio::test]
async fn prompt_and_wait_returns_the_last_assistant_message_within_the_prompt_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(message_path())
        .and(query_param("directory", "/w"))
        .respond_with(
            json_body(fixture("session_prompt_sync.json")).set_delay(Duration::from_millis(400)),
        )
        .mount(&server)
        .await;
    let mut settings = settings(&server);
    // The ordinary timeout would cut this call; the planner's own one must apply.
    settings.request_timeout = Duration::from_millis(100);
    settings.prompt_timeout = Duration::from_secs(5);
    let client = OpencodeClient::new(settings).expect("valid");
    let reply = client
        .prompt_and_wait(&session_ref(SESSION, "/w"), "plan it", Some("plan"))
        .await
        .expect("reply");
    assert_eq!(reply.role, Role::Assistant);
    assert_eq!(reply.text(), "I worked on it. STEP DONE: 2");
    assert_eq!(reply.model.as_deref(), Some("fake/fake-model"));
    assert!(reply.completed_at.is_some());
    assert_eq!(reply.error, None);
}

#[tokio::test]
async fn prompt_and_wait_surfaces_provider_errors_on_the_message() {
    let server = MockServer::start().await;
    Mock::given(message_path())
        .respond_with(json_body(fixture("session_prompt_sync_error.json")))
        .mount(&server)
        .await;
    let reply =
        client(&server).prompt_and_wait(&session_ref(SESSION, "/w"), "x", None).await.expect("200");
    let error = reply.error.expect("provider error kept");
    assert_eq!((error.name.as_str(), error.message.as_str()), ("APIError", "fake error 400"));
    assert!(reply.parts.is_empty());
}

#[tokio::test]
async fn messages_pass_the_limit_and_convert_tools_tokens_and_cost() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(message_path())
        .and(query_param("limit", "20"))
        .and(query_param("directory", "/home/dev/ws2"))
        .respond_with(json_body(fixture("session_messages_after_permission.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let messages = AgentServer::messages(&client, &session_ref(SESSION, "/home/dev/ws2"), 20)
        .await
        .expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0].role, Role::User);
    assert_eq!(messages[0].text(), "Please RUN BASH now");
    assert_eq!(messages[0].model.as_deref(), Some("fake/fake-model"));

    let tool_step = &messages[1];
    assert!(tool_step.is_assistant());
    assert!(
        tool_step
            .parts
            .contains(&MessagePart::Tool { tool: "bash".into(), state: ToolState::Completed })
    );
    assert!(tool_step.parts.contains(&MessagePart::Other { kind: "patch".into() }));
    assert_eq!(
        tool_step.tokens,
        Some(TokenUsage { input: 900, output: 7, reasoning: 5, cache_read: 300, cache_write: 0 })
    );
    assert_eq!(tool_step.cost, Some(0.00297));
    assert_eq!(messages[2].text(), "Tool finished: README.md bash_out.txt ");
    assert!(messages.windows(2).all(|w| w[0].created_at <= w[1].created_at), "oldest first");
    server.verify().await;
}

#[tokio::test]
async fn an_errored_reply_keeps_its_error_name_and_message() {
    let server = MockServer::start().await;
    Mock::given(message_path())
        .respond_with(json_body(fixture("session_messages_error.json")))
        .mount(&server)
        .await;
    let messages =
        client(&server).messages(&session_ref(SESSION, "/w"), 0).await.expect("messages");
    let last = messages.last().expect("two messages");
    let error = last.error.as_ref().expect("error kept");
    assert_eq!(error.name, "APIError");
    assert_eq!(error.message, "fake error 400");
    assert!(!error.is_abort());
    let received = server.received_requests().await.expect("recorded");
    assert!(
        received[0].url.query().is_none_or(|q| !q.contains("limit")),
        "limit 0 means all: {:?}",
        received[0].url
    );
}
