//! A request the scripted model received, kept so tests can assert on what the
//! harness (through OpenCode) sent.

use serde_json::Value;

/// One chat-completions request as the scripted model saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The `model` field.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The `messages` array, unchanged.
    pub messages: Vec<Value>,
    /// The `tools` array, unchanged (empty when absent).
    pub tools: Vec<Value>,
    /// The whole request body.
    pub body: Value,
    /// Index of the script turn that answered it; `None` for the fallback or a
    /// title request.
    pub turn: Option<usize>,
}

impl RecordedRequest {
    pub(crate) fn from_body(body: Value) -> Self {
        let array =
            |key: &str| body.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        Self {
            model: body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned(),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            messages: array("messages"),
            tools: array("tools"),
            body,
            turn: None,
        }
    }

    /// Role of the last message (`user`, `assistant`, `tool`, `system`).
    pub fn last_role(&self) -> Option<&str> {
        self.messages.last().and_then(|message| message.get("role")).and_then(Value::as_str)
    }

    /// Text of the last message with role `user`.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find(|message| message.get("role").and_then(Value::as_str) == Some("user"))
            .map(|message| content_text(message.get("content")))
    }

    /// Texts of all user messages, oldest first.
    pub fn user_texts(&self) -> Vec<String> {
        self.messages_with_role("user")
            .map(|message| content_text(message.get("content")))
            .collect()
    }

    /// Text of the system message(s), joined by newlines.
    pub fn system_text(&self) -> String {
        self.messages_with_role("system")
            .map(|message| content_text(message.get("content")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The contents of the `tool` messages (tool results), oldest first.
    pub fn tool_results(&self) -> Vec<String> {
        self.messages_with_role("tool")
            .map(|message| content_text(message.get("content")))
            .collect()
    }

    /// Names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        self.tools
            .iter()
            .filter_map(|tool| tool.pointer("/function/name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect()
    }

    fn messages_with_role<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.messages
            .iter()
            .filter(move |message| message.get("role").and_then(Value::as_str) == Some(role))
    }
}

/// OpenAI message content is either a string or an array of typed parts; join the
/// text parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_string_and_part_contents() {
        let request = RecordedRequest::from_body(json!({
            "model": "m", "stream": true,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]},
                {"role": "assistant", "content": "", "tool_calls": []},
                {"role": "tool", "tool_call_id": "call_1", "content": "Wrote file successfully."}
            ],
            "tools": [{"type": "function", "function": {"name": "write"}}]
        }));
        assert!(request.stream);
        assert_eq!(request.last_role(), Some("tool"));
        assert_eq!(request.last_user_text().as_deref(), Some("hello there"));
        assert_eq!(request.system_text(), "be brief");
        assert_eq!(request.tool_results(), vec!["Wrote file successfully.".to_owned()]);
        assert_eq!(request.tool_names(), vec!["write".to_owned()]);
    }

    #[test]
    fn tolerates_a_body_without_messages() {
        let request = RecordedRequest::from_body(json!({"model": 3}));
        assert_eq!(request.model, "");
        assert!(!request.stream);
        assert_eq!(request.last_role(), None);
        assert_eq!(request.last_user_text(), None);
    }
}
