//! Reading the agent's progress from a session: markers, questions, busy state.
//!
//! Markers are read from the text parts of assistant messages only
//! ([`AgentMessage::text`]): reasoning is excluded on purpose, because a model that
//! *thinks* "I will write STEP DONE: 3 later" has not claimed anything.

use std::sync::LazyLock;

use async_trait::async_trait;
use openloom_core::{
    AgentMessage, CheckContext, CheckResult, Checker, MessagePart, Role, TaskSpec,
};
use regex_lite::Regex;

use crate::prompts::TASK_COMPLETE_MARKER;

static STEP_DONE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)STEP DONE:\s*([0-9]+)").ok());
static CHECKED_BOX: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\[[xX]\]").ok());

/// Reads markers from a transcript, as the reference's `detect_progress`:
/// `TASK COMPLETE` anywhere (any case), the highest `STEP DONE: n`, the number of
/// checked boxes `[x]`, and acceptance progress (checked boxes over the spec's
/// global criteria, capped at 1; without criteria 1 when complete, else 0).
///
/// Step numbers too large for `u32` count as `u32::MAX`.
pub fn detect_progress(text: &str, spec: &TaskSpec) -> CheckResult {
    let task_complete = text.to_uppercase().contains(TASK_COMPLETE_MARKER);
    let step_done = STEP_DONE
        .as_ref()
        .map(|re| {
            re.captures_iter(text)
                .map(|c| c[1].parse::<u32>().unwrap_or(u32::MAX))
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let checked = CHECKED_BOX.as_ref().map_or(0, |re| re.find_iter(text).count());
    let total = spec.acceptance.len();
    let acceptance_progress = if total > 0 {
        (checked as f64 / total as f64).min(1.0)
    } else if task_complete {
        1.0
    } else {
        0.0
    };
    CheckResult {
        task_complete,
        step_done,
        acceptance_checked: checked,
        acceptance_total: total,
        acceptance_progress,
        ..CheckResult::default()
    }
}

fn non_empty_assistant_texts(messages: &[AgentMessage]) -> impl Iterator<Item = String> + '_ {
    messages.iter().filter(|m| m.is_assistant()).map(AgentMessage::text)
}

/// The text of every assistant message with text, joined by blank lines.
pub fn assistant_transcript(messages: &[AgentMessage]) -> String {
    non_empty_assistant_texts(messages).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n")
}

/// The text of the last assistant message (empty when it has none), as the
/// reference's `assistant_transcript(messages, limit=1)` used for planner replies.
pub fn last_assistant_text(messages: &[AgentMessage]) -> String {
    messages.iter().rev().find(|m| m.is_assistant()).map(AgentMessage::text).unwrap_or_default()
}

/// Phrases with which an agent asks for permission to go on (lower case).
pub const CONTINUE_PHRASES: [&str; 8] = [
    "should i proceed",
    "should i continue",
    "want me to proceed",
    "want me to continue",
    "shall i proceed",
    "ready for step",
    "may i proceed",
    "do you want me to",
];

/// True when the text asks for permission to go on.
pub fn agent_awaiting_continue(text: &str) -> bool {
    let lower = text.to_lowercase();
    CONTINUE_PHRASES.iter().any(|phrase| lower.contains(phrase))
}

/// True when the latest assistant message that asks for permission
/// ([`agent_awaiting_continue`]) has had no user message after it — the agent is
/// waiting for a "yes" that nobody will type.
pub fn needs_continue_reply(messages: &[AgentMessage]) -> bool {
    let asking =
        messages.iter().rposition(|m| m.is_assistant() && agent_awaiting_continue(&m.text()));
    match asking {
        Some(index) => !messages[index + 1..].iter().any(|m| m.role == Role::User),
        None => false,
    }
}

fn is_agent_role(role: &Role) -> bool {
    match role {
        Role::Assistant => true,
        Role::Other(name) => name.eq_ignore_ascii_case("agent"),
        Role::User => false,
    }
}

/// True when the last assistant message shows work in progress: it is not
/// completed, or a tool call in it is pending or running. An aborted message is
/// never busy (OpenCode may leave it without a completion time).
pub fn messages_indicate_busy(messages: &[AgentMessage]) -> bool {
    let Some(last) = messages.iter().rev().find(|m| is_agent_role(&m.role)) else {
        return false;
    };
    if last.error.as_ref().is_some_and(|e| e.is_abort()) {
        return false;
    }
    if last.completed_at.is_none() {
        return true;
    }
    last.parts
        .iter()
        .any(|part| matches!(part, MessagePart::Tool { state, .. } if state.is_active()))
}

/// The reference's "string" checker: the agent's markers, read from the session's
/// assistant text. Claims only; verification is another checker's job.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarkerChecker;

impl MarkerChecker {
    /// The name the reference registered it under.
    pub const NAME: &'static str = "string";
}

#[async_trait]
impl Checker for MarkerChecker {
    async fn check(&self, context: CheckContext<'_>) -> openloom_core::Result<CheckResult> {
        Ok(detect_progress(&assistant_transcript(context.messages), context.spec))
    }
}
