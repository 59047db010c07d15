//! The scripted model over real HTTP, without OpenCode.

use std::time::{Duration, Instant};

use openloom_testkit::{
    MODEL_ID, NO_TURN_MATCHED, Reply, Script, ScriptedModel, TITLE_MODEL_ID, TITLE_REPLY, ToolCall,
    Turn, Usage,
};
use serde_json::{Value, json};

use crate::common::client;

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

#[tokio::test]
async fn streams_text_with_usage_in_the_last_chunk() {
    let script =
        Script::new().then(Reply::text("hello from the script").with_usage(Usage::new(42, 7)));
    let model = ScriptedModel::start(script).await.expect("model starts");

    let (chunks, done) = stream_chat(&model, chat_body("hi", true)).await;

    assert!(done, "stream ends with [DONE]");
    assert_eq!(streamed_text(&chunks), "hello from the script");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let finish =
        chunks.iter().find_map(|c| c.pointer("/choices/0/finish_reason").filter(|f| !f.is_null()));
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
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str)
        })
        .collect();
    let arguments: Value = serde_json::from_str(&arguments).expect("arguments are JSON");
    assert_eq!(arguments, json!({"filePath": "/tmp/x.txt", "content": "content"}));
    let name = chunks.iter().find_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/name"));
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
    assert_eq!(body.pointer("/choices/0/message/tool_calls/0/function/name"), Some(&json!("bash")));

    let mut title = chat_body("make a title", false);
    title["model"] = json!(TITLE_MODEL_ID);
    let body: Value =
        client().post(&url).json(&title).send().await.expect("answer").json().await.expect("JSON");
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
