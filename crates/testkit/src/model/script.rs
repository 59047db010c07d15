//! What the scripted model answers: a [`Script`] of [`Turn`]s, each a matcher and a
//! [`Reply`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::request::RecordedRequest;

/// Token usage the model reports in its final chunk (OpenAI field names).
///
/// OpenCode maps it to `input = prompt - cached`, `output = completion - reasoning`,
/// `cache.read = cached`, `reasoning = reasoning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// `prompt_tokens`.
    pub prompt_tokens: u64,
    /// `completion_tokens`.
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens`.
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Usage with the given prompt and completion tokens and nothing cached.
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, cached_tokens: 0, reasoning_tokens: 0 }
    }

    /// The OpenAI `usage` object.
    pub(crate) fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": self.cached_tokens },
            "completion_tokens_details": { "reasoning_tokens": self.reasoning_tokens },
        })
    }
}

impl Default for Usage {
    /// 100 prompt tokens, 20 completion tokens: round numbers tests can assert on.
    fn default() -> Self {
        Self::new(100, 20)
    }
}

/// One function call the model asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's name as OpenCode advertises it (`write`, `bash`, `read`, …).
    pub name: String,
    /// The arguments object; sent JSON-encoded as OpenAI does.
    pub arguments: Value,
}

impl ToolCall {
    /// A call of `name` with `arguments`.
    pub fn new(name: impl Into<String>, arguments: Value) -> Self {
        Self { name: name.into(), arguments }
    }

    /// OpenCode's `write` tool: creates or overwrites `path` (must be absolute) with
    /// `content`. OpenCode really writes the file.
    pub fn write_file(path: impl AsRef<std::path::Path>, content: impl Into<String>) -> Self {
        Self::new(
            "write",
            json!({ "filePath": path.as_ref().to_string_lossy(), "content": content.into() }),
        )
    }

    /// OpenCode's `bash` tool.
    pub fn bash(command: impl Into<String>, description: impl Into<String>) -> Self {
        Self::new("bash", json!({ "command": command.into(), "description": description.into() }))
    }
}

/// What the model sends back for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    /// A normal completion: optional text, then zero or more tool calls.
    Completion {
        /// Assistant text, streamed word by word.
        text: Option<String>,
        /// Tool calls, streamed after the text.
        tool_calls: Vec<ToolCall>,
    },
    /// Accept the request and never answer: a provider that hangs. The request ends
    /// only when the client hangs up (OpenCode aborting the turn).
    Hang,
    /// An HTTP error with an OpenAI-style error body.
    HttpError {
        /// HTTP status code. OpenCode retries 429 and 5xx for ever; use 400 for a
        /// permanent failure.
        status: u16,
        /// The `error.message` field.
        message: String,
    },
}

/// A reply: its body plus how it is delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// What is sent.
    pub body: ReplyBody,
    /// Pause before each streamed chunk: makes a slow reply for abort tests.
    pub chunk_delay: Duration,
    /// Usage reported at the end of the stream.
    pub usage: Usage,
}

impl Reply {
    fn completion(text: Option<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            body: ReplyBody::Completion { text, tool_calls },
            chunk_delay: Duration::ZERO,
            usage: Usage::default(),
        }
    }

    /// Answer with `text` and stop.
    pub fn text(text: impl Into<String>) -> Self {
        Self::completion(Some(text.into()), Vec::new())
    }

    /// Ask for one tool call.
    pub fn tool_call(call: ToolCall) -> Self {
        Self::completion(None, vec![call])
    }

    /// Ask for several tool calls in one step.
    pub fn tool_calls(calls: Vec<ToolCall>) -> Self {
        Self::completion(None, calls)
    }

    /// Ask OpenCode's `write` tool to write `content` to the absolute `path`.
    pub fn write_file(path: impl AsRef<std::path::Path>, content: impl Into<String>) -> Self {
        Self::tool_call(ToolCall::write_file(path, content))
    }

    /// Fail the request with an HTTP error.
    pub fn http_error(status: u16, message: impl Into<String>) -> Self {
        Self {
            body: ReplyBody::HttpError { status, message: message.into() },
            chunk_delay: Duration::ZERO,
            usage: Usage::default(),
        }
    }

    /// Never answer (see [`ReplyBody::Hang`]).
    pub fn hang() -> Self {
        Self { body: ReplyBody::Hang, chunk_delay: Duration::ZERO, usage: Usage::default() }
    }

    /// A text reply of `words` words sent one per `delay`: it takes `words * delay`
    /// to finish, long enough to abort it.
    pub fn slow_text(words: usize, delay: Duration) -> Self {
        let text = (1..=words).map(|n| format!("word{n}")).collect::<Vec<_>>().join(" ");
        Self::text(text).with_chunk_delay(delay)
    }

    /// Put `text` before the tool calls of this reply.
    pub fn with_text(mut self, new_text: impl Into<String>) -> Self {
        if let ReplyBody::Completion { text, .. } = &mut self.body {
            *text = Some(new_text.into());
        }
        self
    }

    /// Wait `delay` before each streamed chunk.
    pub fn with_chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = delay;
        self
    }

    /// Report `usage` instead of [`Usage::default`].
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }
}

/// A predicate deciding whether a [`Turn`] answers a request.
pub type Predicate = Arc<dyn Fn(&RecordedRequest) -> bool + Send + Sync>;

/// One scripted answer and the requests it may answer.
#[derive(Clone)]
pub struct Turn {
    pub(crate) predicate: Option<Predicate>,
    pub(crate) description: String,
    pub(crate) reply: Reply,
    pub(crate) repeating: bool,
}

impl fmt::Debug for Turn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Turn")
            .field("matches", &self.description)
            .field("reply", &self.reply)
            .field("repeating", &self.repeating)
            .finish()
    }
}

impl Turn {
    /// A turn that answers the next request, whatever it is.
    pub fn reply(reply: Reply) -> Self {
        Self { predicate: None, description: "any request".into(), reply, repeating: false }
    }

    /// Only answer when the last user message contains `needle`.
    pub fn when_user_says(self, needle: impl Into<String>) -> Self {
        let needle = needle.into();
        let description = format!("last user text contains {needle:?}");
        self.when_described(description, move |request| {
            request.last_user_text().is_some_and(|text| text.contains(&needle))
        })
    }

    /// Only answer a request whose last message is a tool result (OpenCode calling
    /// back after running a tool).
    pub fn when_tool_result(self) -> Self {
        self.when_described("last message is a tool result", |request| {
            request.last_role() == Some("tool")
        })
    }

    /// Only answer a request whose last message is from the user (a new prompt,
    /// not a tool callback).
    pub fn when_user_prompt(self) -> Self {
        self.when_described("last message is a user prompt", |request| {
            request.last_role() == Some("user")
        })
    }

    /// Only answer when `predicate` holds.
    pub fn when(
        self,
        predicate: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.when_described("custom predicate", predicate)
    }

    fn when_described(
        mut self,
        description: impl Into<String>,
        predicate: impl Fn(&RecordedRequest) -> bool + Send + Sync + 'static,
    ) -> Self {
        // Combine with an earlier predicate so `when_*` calls can be chained.
        let combined: Predicate = match self.predicate.take() {
            None => Arc::new(predicate),
            Some(previous) => Arc::new(move |request| previous(request) && predicate(request)),
        };
        self.predicate = Some(combined);
        self.description = description.into();
        self
    }

    /// Keep this turn after it answers, so it answers every matching request.
    pub fn repeating(mut self) -> Self {
        self.repeating = true;
        self
    }

    pub(crate) fn matches(&self, request: &RecordedRequest) -> bool {
        self.predicate.as_ref().is_none_or(|predicate| predicate(request))
    }
}

/// The whole script: turns tried in order, the first unused matching one answers.
///
/// A request no turn matches gets the fallback reply (by default a text saying
/// so), which ends OpenCode's loop cleanly instead of making it retry.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) turns: Vec<Turn>,
    pub(crate) fallback: Reply,
}

impl Default for Script {
    fn default() -> Self {
        Self::new()
    }
}

impl Script {
    /// An empty script: every request gets the fallback.
    pub fn new() -> Self {
        Self { turns: Vec::new(), fallback: Reply::text(NO_TURN_MATCHED) }
    }

    /// Append a turn.
    pub fn turn(mut self, turn: Turn) -> Self {
        self.turns.push(turn);
        self
    }

    /// Append a turn that answers the next request with `reply`.
    pub fn then(self, reply: Reply) -> Self {
        self.turn(Turn::reply(reply))
    }

    /// Append a turn that answers the next request with `text`.
    pub fn text(self, text: impl Into<String>) -> Self {
        self.then(Reply::text(text))
    }

    /// Append the usual tool round trip: the next prompt gets a `write` call, and the
    /// tool result that follows gets `then_text`.
    pub fn write_file(
        self,
        path: impl AsRef<std::path::Path>,
        content: impl Into<String>,
        then_text: impl Into<String>,
    ) -> Self {
        self.then(Reply::write_file(path, content))
            .turn(Turn::reply(Reply::text(then_text)).when_tool_result())
    }

    /// Answer unmatched requests with `reply` instead of the default text.
    pub fn fallback(mut self, reply: Reply) -> Self {
        self.fallback = reply;
        self
    }
}

/// The text of the default fallback reply.
pub const NO_TURN_MATCHED: &str = "scripted model: no scripted turn matched this request";
