//! Integration tests of the test kit: the scripted model over real HTTP, and the
//! real OpenCode driven through raw HTTP (skipped when OpenCode is not installed,
//! failing under `OPENLOOM_E2E=required`).

use std::time::{Duration, Instant};

use openloom_testkit::{
    E2e, MODEL_ID, NO_TURN_MATCHED, OpencodeOptions, OpencodeServer, PINNED_OPENCODE_VERSION,
    PROVIDER_ID, Reply, Script, ScriptedModel, TITLE_MODEL_ID, TITLE_REPLY, ToolCall, Turn, Usage,
    require_opencode,
};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client builds")
}

fn chat_body(user: &str, stream: bool) -> Value {
    json!({
        "model": MODEL_ID, "stream": stream,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": user}],
        "tools": [{"type": "function", "function": {"name": "write", "parameters": {}}}],
    })
}

/// POST a streaming request and return the decoded `data:` payloads (without `[DONE]`)
/// plus whether `[DONE]` arrived.
async fn stream_chat(model: &ScriptedModel, body: Value) -> (Vec<Value>, bool) {
    let response = client()
        .post(format!("{}/chat/completions", model.base_url()))
        .json(&body)
        .send()
        .await
        .expect("model answers");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let text = response.text().await.expect("stream body");
    let mut done = false;
    let mut chunks = Vec::new();
    for data in text.lines().filter_map(|line| line.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
        } else {
            chunks.push(serde_json::from_str(data).expect("each chunk is JSON"));
        }
    }
    (chunks, done)
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|chunk| chunk.pointer("/choices/0/delta/content").and_then(Value::as_str))
        .collect()
}

mod scripted_model {
    use super::*;

    #[tokio::test]
    async fn streams_text_with_usage_in_the_last_chunk() {
        let script =
            Script::new().then(Reply::text("hello from the script").with_usage(Usage::new(42, 7)));
        let model = ScriptedModel::start(script).await.expect("model starts");

        let (chunks, done) = stream_chat(&model, chat_body("hi", true)).await;

        assert!(done, "stream ends with [DONE]");
        assert_eq!(streamed_text(&chunks), "hello from the script");
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
        let finish = chunks
            .iter()
            .find_map(|c| c.pointer("/choices/0/finish_reason").filter(|f| !f.is_null()));
        assert_eq!(finish, Some(&json!("stop")));
        let usage = &chunks.last().expect("chunks")["usage"];
        assert_eq!(usage["prompt_tokens"], 42);
        assert_eq!(usage["completion_tokens"], 7);
        assert_eq!(usage["total_tokens"], 49);
    }

    #[tokio::test]
    async fn records_requests_and_streams_tool_calls() {
        let script =
            Script::new().then(Reply::write_file("/tmp/x.txt", "content").with_text("writing"));
        let model = ScriptedModel::start(script).await.expect("model starts");

        let (chunks, _) = stream_chat(&model, chat_body("please write", true)).await;

        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                    .and_then(Value::as_str)
            })
            .collect();
        let arguments: Value = serde_json::from_str(&arguments).expect("arguments are JSON");
        assert_eq!(arguments, json!({"filePath": "/tmp/x.txt", "content": "content"}));
        let name =
            chunks.iter().find_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/name"));
        assert_eq!(name, Some(&json!("write")));
        assert_eq!(streamed_text(&chunks), "writing");

        let requests = model.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].last_user_text().as_deref(), Some("please write"));
        assert_eq!(requests[0].tool_names(), vec!["write".to_owned()]);
        assert_eq!(requests[0].turn, Some(0));
        assert!(model.unused_turns().is_empty());
    }

    #[tokio::test]
    async fn matches_turns_by_predicate_then_falls_back() {
        let script = Script::new()
            .turn(Turn::reply(Reply::text("second")).when_user_says("again"))
            .turn(Turn::reply(Reply::text("first")).when_user_says("hello"));
        let model = ScriptedModel::start(script).await.expect("model starts");

        let (first, _) = stream_chat(&model, chat_body("hello there", true)).await;
        let (second, _) = stream_chat(&model, chat_body("say it again", true)).await;
        let (third, _) = stream_chat(&model, chat_body("hello there", true)).await;

        assert_eq!(streamed_text(&first), "first");
        assert_eq!(streamed_text(&second), "second");
        assert_eq!(streamed_text(&third), NO_TURN_MATCHED, "used turns do not answer twice");
        let turns: Vec<_> = model.requests().iter().map(|r| r.turn).collect();
        assert_eq!(turns, vec![Some(1), Some(0), None]);
    }

    #[tokio::test]
    async fn answers_non_stream_requests_errors_and_title_requests() {
        let script = Script::new()
            .then(Reply::http_error(400, "bad on purpose"))
            .then(Reply::tool_call(ToolCall::bash("ls", "list")))
            .turn(Turn::reply(Reply::text("always")).when_tool_result().repeating());
        let model = ScriptedModel::start(script).await.expect("model starts");
        let url = format!("{}/chat/completions", model.base_url());

        let error = client().post(&url).json(&chat_body("a", false)).send().await.expect("answer");
        assert_eq!(error.status(), 400);
        let error: Value = error.json().await.expect("error body is JSON");
        assert_eq!(error.pointer("/error/message"), Some(&json!("bad on purpose")));

        let body: Value = client()
            .post(&url)
            .json(&chat_body("b", false))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("completion JSON");
        assert_eq!(body.pointer("/choices/0/finish_reason"), Some(&json!("tool_calls")));
        assert_eq!(
            body.pointer("/choices/0/message/tool_calls/0/function/name"),
            Some(&json!("bash"))
        );

        let mut title = chat_body("make a title", false);
        title["model"] = json!(TITLE_MODEL_ID);
        let body: Value = client()
            .post(&url)
            .json(&title)
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("JSON");
        assert_eq!(body.pointer("/choices/0/message/content"), Some(&json!(TITLE_REPLY)));

        let mut after_tool = chat_body("b", true);
        after_tool["messages"]
            .as_array_mut()
            .expect("messages array")
            .push(json!({"role": "tool", "tool_call_id": "call_1", "content": "ok"}));
        for _ in 0..2 {
            let (chunks, _) = stream_chat(&model, after_tool.clone()).await;
            assert_eq!(streamed_text(&chunks), "always", "a repeating turn answers every time");
        }
        assert_eq!(model.requests().len(), 4, "title requests are not in requests()");
        assert_eq!(model.all_requests().len(), 5);
        let models: Value = client()
            .get(format!("{}/models", model.base_url()))
            .send()
            .await
            .expect("models")
            .json()
            .await
            .expect("models JSON");
        assert_eq!(models.pointer("/data/0/id"), Some(&json!(MODEL_ID)));
    }

    #[tokio::test]
    async fn slow_replies_pace_their_chunks() {
        let script = Script::new().then(Reply::slow_text(4, Duration::from_millis(60)));
        let model = ScriptedModel::start(script).await.expect("model starts");
        let started = Instant::now();

        let (chunks, done) = stream_chat(&model, chat_body("slowly", true)).await;

        assert!(done);
        assert_eq!(streamed_text(&chunks), "word1 word2 word3 word4");
        // role + 4 words + finish + usage = 7 delayed chunks.
        assert!(started.elapsed() >= Duration::from_millis(7 * 60), "took {:?}", started.elapsed());
        let waited = model.wait_for_requests(1, Duration::from_secs(1)).await.expect("one request");
        assert_eq!(waited.len(), 1);
        assert!(model.wait_for_requests(2, Duration::from_millis(50)).await.is_err());
    }
}

/// Raw-HTTP helpers against a running OpenCode.
struct Raw<'a> {
    http: reqwest::Client,
    opencode: &'a OpencodeServer,
    directory: String,
}

impl<'a> Raw<'a> {
    fn new(env: &'a E2e) -> Self {
        Self { http: client(), opencode: &env.opencode, directory: env.workspace.directory() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.opencode.base_url())
    }

    async fn create_session(&self, title: &str) -> String {
        let session: Value = self
            .http
            .post(self.url("/session"))
            .query(&[("directory", &self.directory)])
            .json(&json!({ "title": title }))
            .send()
            .await
            .expect("create session")
            .json()
            .await
            .expect("session JSON");
        assert_eq!(session["directory"], json!(self.directory));
        session["id"].as_str().expect("session id").to_owned()
    }

    async fn prompt_async(&self, session: &str, text: &str) {
        let response = self
            .http
            .post(self.url(&format!("/session/{session}/prompt_async")))
            .query(&[("directory", &self.directory)])
            .json(&json!({
                "parts": [{"type": "text", "text": text}],
                "model": {"providerID": PROVIDER_ID, "modelID": MODEL_ID},
            }))
            .send()
            .await
            .expect("prompt_async");
        assert_eq!(response.status(), 204);
    }

    async fn messages(&self, session: &str) -> Vec<Value> {
        self.http
            .get(self.url(&format!("/session/{session}/message")))
            .query(&[("directory", &self.directory)])
            .send()
            .await
            .expect("messages")
            .json()
            .await
            .expect("messages JSON")
    }

    /// Poll until an assistant message finished with `finish == "stop"`.
    async fn wait_for_final_answer(&self, session: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let messages = self.messages(session).await;
            let done = messages.iter().any(|m| {
                m.pointer("/info/role") == Some(&json!("assistant"))
                    && m.pointer("/info/finish") == Some(&json!("stop"))
                    && m.pointer("/info/time/completed").is_some()
            });
            if done {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "no final answer; messages: {messages:#?}\nlog:\n{}",
                self.opencode.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assistant_texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.pointer("/info/role") == Some(&json!("assistant")))
        .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

mod opencode {
    use super::*;

    #[tokio::test]
    async fn starts_healthy_with_the_pinned_version() {
        let launcher = require_opencode!();
        let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");

        let health = env.opencode.health().await.expect("health answers");

        assert_eq!(health["healthy"], json!(true));
        assert_eq!(health["version"], json!(PINNED_OPENCODE_VERSION));
        assert_ne!(env.opencode.port(), 0);
        let config = std::fs::read_to_string(env.opencode.config_path()).expect("config written");
        assert!(config.contains(&env.model.base_url()));
        // Every OpenCode state dir is inside the temp root, never the user's.
        let paths: Value = client()
            .get(format!("{}/path", env.opencode.base_url()))
            .send()
            .await
            .expect("path")
            .json()
            .await
            .expect("path JSON");
        for key in ["home", "state", "config"] {
            let path = paths[key].as_str().expect("path string");
            assert!(
                path.starts_with(&env.opencode.root_dir().to_string_lossy().into_owned()),
                "{key}={path}"
            );
        }
    }

    #[tokio::test]
    async fn prompt_reaches_the_model_and_the_write_tool_writes_the_file() {
        let launcher = require_opencode!();
        let workspace_file = "notes/hello.txt";
        let env = {
            // The workspace path is only known once it exists, so script after creating it.
            let model_script = Script::new();
            let env = E2e::start(&launcher, model_script).await.expect("OpenCode starts");
            let target = env.workspace.file(workspace_file);
            env.model.push_turn(
                Turn::reply(Reply::write_file(&target, "written by the model\n"))
                    .when_user_prompt(),
            );
            env.model
                .push_turn(Turn::reply(Reply::text("All written. STEP DONE")).when_tool_result());
            env
        };
        let raw = Raw::new(&env);
        let session = raw.create_session("e2e write").await;

        raw.prompt_async(&session, "Please write the notes file").await;
        let messages = raw.wait_for_final_answer(&session).await;

        assert_eq!(env.workspace.read(workspace_file).as_deref(), Some("written by the model\n"));
        assert!(
            assistant_texts(&messages).iter().any(|t| t == "All written. STEP DONE"),
            "{messages:#?}"
        );
        let tool = messages
            .iter()
            .flat_map(|m| m["parts"].as_array().cloned().unwrap_or_default())
            .find(|p| p["type"] == "tool")
            .expect("a tool part");
        assert_eq!(tool["tool"], "write");
        assert_eq!(tool.pointer("/state/status"), Some(&json!("completed")));

        let requests = env.model.requests();
        assert_eq!(requests.len(), 2, "prompt, then the tool result");
        assert_eq!(requests[0].last_user_text().as_deref(), Some("Please write the notes file"));
        assert!(requests[0].tool_names().contains(&"write".to_owned()));
        assert_eq!(requests[1].last_role(), Some("tool"));
        assert!(env.model.unused_turns().is_empty());
    }

    #[tokio::test]
    async fn restart_keeps_the_port_and_the_sessions() {
        let launcher = require_opencode!();
        let mut env =
            E2e::start(&launcher, Script::new().text("before restart")).await.expect("starts");
        let port = env.opencode.port();
        let first_pid = env.opencode.pid().expect("running");
        let session = Raw::new(&env).create_session("survives").await;
        Raw::new(&env).prompt_async(&session, "hi").await;
        Raw::new(&env).wait_for_final_answer(&session).await;

        env.opencode.kill().await.expect("kill");
        assert!(!env.opencode.is_running());
        assert!(env.opencode.health().await.is_err(), "nothing answers while killed");
        env.opencode.restart().await.expect("restart");

        assert_eq!(env.opencode.port(), port);
        assert_ne!(env.opencode.pid(), Some(first_pid));
        let messages = Raw::new(&env).messages(&session).await;
        assert_eq!(assistant_texts(&messages), vec!["before restart".to_owned()]);
    }

    #[tokio::test]
    async fn password_turns_on_basic_auth() {
        let launcher = require_opencode!();
        let options = OpencodeOptions::default().with_password("s3cret");
        let env =
            E2e::start_with(&launcher, Script::new(), options).await.expect("starts with auth");
        let url = format!("{}/global/health", env.opencode.base_url());

        let anonymous = client().get(&url).send().await.expect("answer");
        let wrong =
            client().get(&url).basic_auth("opencode", Some("nope")).send().await.expect("answer");

        assert_eq!(anonymous.status(), 401);
        assert_eq!(wrong.status(), 401);
        assert_eq!(env.opencode.credentials(), Some(("opencode".to_owned(), "s3cret".to_owned())));
        assert_eq!(
            env.opencode.health().await.expect("health with credentials")["healthy"],
            json!(true)
        );
    }
}
