//! OpenAI chat-completions wire format: the chunks of a streamed reply, the body of a
//! non-streamed one, and the error body.

use serde_json::{Value, json};

use super::script::{ToolCall, Usage};

/// Identifiers shared by every chunk of one reply.
pub(crate) struct ReplyIds<'a> {
    /// `chatcmpl-…` id.
    pub id: &'a str,
    /// The model name echoed back.
    pub model: &'a str,
    /// Unix seconds.
    pub created: u64,
    /// First tool-call id number; calls get `call_<n>`, `call_<n+1>`, ….
    pub first_call: u64,
}

fn call_id(ids: &ReplyIds<'_>, index: usize) -> String {
    format!("call_{}", ids.first_call + index as u64)
}

fn chunk(ids: &ReplyIds<'_>, choices: Value) -> Value {
    json!({
        "id": ids.id, "object": "chat.completion.chunk", "created": ids.created,
        "model": ids.model, "choices": choices,
    })
}

fn delta(ids: &ReplyIds<'_>, delta: Value, finish_reason: Option<&str>) -> Value {
    chunk(ids, json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason }]))
}

fn finish_reason(tool_calls: &[ToolCall]) -> &'static str {
    if tool_calls.is_empty() { "stop" } else { "tool_calls" }
}

/// The chunks of a streamed completion, in order, without the final `[DONE]`.
///
/// Text goes word by word (so a chunk delay makes a visibly slow stream), each tool
/// call as a header chunk then an arguments chunk, then the finish chunk and a
/// usage-only chunk as OpenAI sends with `stream_options.include_usage`.
pub(crate) fn stream_chunks(
    ids: &ReplyIds<'_>,
    text: Option<&str>,
    tool_calls: &[ToolCall],
    usage: Usage,
) -> Vec<Value> {
    let mut chunks = vec![delta(ids, json!({ "role": "assistant", "content": "" }), None)];
    for word in text.unwrap_or_default().split_inclusive(' ') {
        chunks.push(delta(ids, json!({ "content": word }), None));
    }
    for (index, call) in tool_calls.iter().enumerate() {
        chunks.push(delta(
            ids,
            json!({ "tool_calls": [{
                "index": index, "id": call_id(ids, index), "type": "function",
                "function": { "name": call.name, "arguments": "" },
            }]}),
            None,
        ));
        chunks.push(delta(
            ids,
            json!({ "tool_calls": [{
                "index": index, "function": { "arguments": call.arguments.to_string() },
            }]}),
            None,
        ));
    }
    chunks.push(delta(ids, json!({}), Some(finish_reason(tool_calls))));
    let mut usage_chunk = chunk(ids, json!([]));
    usage_chunk["usage"] = usage.to_json();
    chunks.push(usage_chunk);
    chunks
}

/// The body of a non-streamed completion.
pub(crate) fn completion(
    ids: &ReplyIds<'_>,
    text: Option<&str>,
    tool_calls: &[ToolCall],
    usage: Usage,
) -> Value {
    let mut message = json!({ "role": "assistant", "content": text });
    if !tool_calls.is_empty() {
        message["tool_calls"] = tool_calls
            .iter()
            .enumerate()
            .map(|(index, call)| {
                json!({
                    "id": call_id(ids, index), "type": "function",
                    "function": { "name": call.name, "arguments": call.arguments.to_string() },
                })
            })
            .collect();
    }
    json!({
        "id": ids.id, "object": "chat.completion", "created": ids.created, "model": ids.model,
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason(tool_calls) }],
        "usage": usage.to_json(),
    })
}

/// An OpenAI-style error body.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    json!({ "error": { "message": message, "type": kind, "code": null } })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: ReplyIds<'static> =
        ReplyIds { id: "chatcmpl-1", model: "m", created: 1, first_call: 7 };

    #[test]
    fn stream_carries_text_tool_calls_finish_and_usage() {
        let calls = [ToolCall::new("write", json!({"filePath": "/a", "content": "x"}))];
        let chunks = stream_chunks(&IDS, Some("hi there"), &calls, Usage::new(3, 4));
        let text: String = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str))
            .collect();
        assert_eq!(text, "hi there");
        let header = chunks
            .iter()
            .find_map(|c| c.pointer("/choices/0/delta/tool_calls/0/id"))
            .expect("a tool call header chunk");
        assert_eq!(header, "call_7");
        let finish = &chunks[chunks.len() - 2];
        assert_eq!(finish.pointer("/choices/0/finish_reason"), Some(&json!("tool_calls")));
        let last = chunks.last().expect("usage chunk");
        assert_eq!(last.pointer("/usage/total_tokens"), Some(&json!(7)));
        assert_eq!(last["choices"], json!([]));
    }

    #[test]
    fn non_stream_completion_has_message_and_usage() {
        let body = completion(&IDS, Some("done"), &[], Usage::new(1, 2));
        assert_eq!(body.pointer("/choices/0/message/content"), Some(&json!("done")));
        assert_eq!(body.pointer("/choices/0/finish_reason"), Some(&json!("stop")));
        assert_eq!(body.pointer("/usage/completion_tokens"), Some(&json!(2)));
    }
}
