//! The real OpenCode driven through raw HTTP: proves the loop harness → OpenCode →
//! scripted model → tool → disk without any of our client code.

use std::time::{Duration, Instant};

use openloom_testkit::{
    E2e, MODEL_ID, OpencodeOptions, OpencodeServer, PINNED_OPENCODE_VERSION, PROVIDER_ID, Reply,
    Script, Turn, require_opencode,
};
use serde_json::{Value, json};

use crate::common::client;

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
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    // The workspace path is only known once it exists, so script after starting.
    let target = env.workspace.file(workspace_file);
    env.model.push_turn(
        Turn::reply(Reply::write_file(&target, "written by the model\n")).when_user_prompt(),
    );
    env.model.push_turn(Turn::reply(Reply::text("All written. STEP DONE")).when_tool_result());
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

    env.opencode.stop().await.expect("graceful stop");
    assert!(!env.opencode.is_running());
    env.opencode.restart().await.expect("restart after a graceful stop");
    assert_eq!(env.opencode.health().await.expect("healthy again")["healthy"], json!(true));
}

#[tokio::test]
async fn password_turns_on_basic_auth() {
    let launcher = require_opencode!();
    let options = OpencodeOptions::default().with_password("s3cret");
    let env = E2e::start_with(&launcher, Script::new(), options).await.expect("starts with auth");
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
