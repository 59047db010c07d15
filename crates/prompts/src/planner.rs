//! The planner: a prompt that asks the agent for a JSON plan, turning its reply into
//! a [`TaskSpec`], and [`draft_plan`], the one conversation that does both (the CLI's
//! `openloom plan` and the server's `POST /api/tasks/plan` share it).
//!
//! Models wrap JSON in fences or prose despite being told not to, so
//! [`extract_plan_json`] looks for the object in the whole reply, then in code
//! fences, then for the first balanced `{...}` that parses.

use openloom_core::spec::{DEFAULT_AGENT, DEFAULT_MODE, UNTITLED_TASK};
use openloom_core::{
    Action, AgentMessage, AgentServer, PermissionRule, SessionRef, Step, TaskSpec,
};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::pytext::{py_strip, title_from_prompt};
use crate::spec::PROMPT_TITLE_CHARS;

/// The planner's instructions: the JSON schema and the rules for a good plan.
pub const PLANNER_INSTRUCTIONS: &str = r#"You are an OpenLoom task planner. Turn the user's intent into an executable plan.

Reply with ONLY a JSON object (no markdown fences, no commentary) using this schema:
{
  "name": "short task title",
  "goal": "one paragraph summary of the outcome",
  "steps": [
    {
      "title": "ordered actionable step",
      "acceptance": ["verifiable outcome for this step"]
    }
  ],
  "global_acceptance": ["optional whole-task check such as tests pass"]
}

Rules:
- 3 to 8 steps, each one concrete action for a coding agent
- Each step needs 1 to 2 acceptance criteria for that step only
- global_acceptance is optional (0 to 3 items) for cross-cutting final checks
- Do not ask questions; make reasonable assumptions
"#;

/// The prompt that asks for a plan for `intent` in `workspace`.
pub fn build_planner_prompt(intent: &str, workspace: &str) -> String {
    let workspace = if workspace.is_empty() { "(unspecified)" } else { workspace };
    format!(
        "{PLANNER_INSTRUCTIONS}\n\nWorkspace: {workspace}\n\nUser intent:\n{}\n",
        py_strip(intent)
    )
}

/// Most `{` positions tried by the balanced-object scan, so a pathological reply
/// (thousands of unmatched braces) cannot make extraction quadratic without bound.
const MAX_CANDIDATES: usize = 256;

fn parse_object(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text.trim()).ok().filter(Value::is_object)
}

/// Finds the JSON object in a planner reply: the whole reply, else the first code
/// fence (```` ```json ```` or bare) holding an object, else the first balanced
/// `{...}` that parses as an object. `None` when there is none.
pub fn extract_plan_json(reply: &str) -> Option<Value> {
    if let Some(object) = parse_object(reply) {
        return Some(object);
    }
    let mut rest = reply;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("```") else { break };
        let body = &after[..end];
        let body = body.strip_prefix("json").or_else(|| body.strip_prefix("JSON")).unwrap_or(body);
        if let Some(object) = parse_object(body) {
            return Some(object);
        }
        rest = &after[end + 3..];
    }
    reply
        .match_indices('{')
        .take(MAX_CANDIDATES)
        .filter_map(|(start, _)| {
            balanced_end(&reply[start..]).map(|len| &reply[start..start + len])
        })
        .find_map(parse_object)
}

/// Length of the balanced `{...}` at the start of `text`, skipping braces inside
/// JSON strings; `None` when it never closes.
fn balanced_end(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// A plan: what the planner proposed, before it becomes a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Short task title.
    pub name: String,
    /// The outcome, one paragraph.
    pub goal: String,
    /// Ordered steps with their acceptance.
    pub steps: Vec<Step>,
    /// Whole-task acceptance criteria.
    pub global_acceptance: Vec<String>,
    /// What the user asked for, verbatim.
    pub intent: String,
}

/// Python's `str(x).strip()` for JSON scalars; `None` for null, arrays and objects.
fn json_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        _ => return None,
    };
    let stripped = py_strip(&text);
    (!stripped.is_empty()).then(|| stripped.to_owned())
}

fn field_text(object: &serde_json::Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(json_text)
}

/// A list of texts; a single string counts as one item (a model's shortcut).
fn json_texts(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(json_text).collect(),
        Some(other) => json_text(other).into_iter().collect(),
        None => Vec::new(),
    }
}

fn plan_steps(value: Option<&Value>) -> Vec<Step> {
    let Some(Value::Array(items)) = value else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Object(step) => {
                let title = field_text(step, "title").or_else(|| field_text(step, "name"));
                if title.is_none() {
                    // The model's output, not the user's: drop it as the reference does.
                    tracing::warn!(step = %item, "planner step without a title dropped");
                }
                title.map(|title| Step {
                    title,
                    acceptance: json_texts(step.get("acceptance")),
                    checks: Vec::new(),
                })
            }
            other => json_text(other).map(Step::new),
        })
        .collect()
}

impl Plan {
    /// Reads a plan object as the reference's `TaskPlan.from_dict`, then validates it.
    ///
    /// The name falls back to the goal's first line, then the first step, then the
    /// intent; the goal falls back to the intent. Errors with [`Error::InvalidPlan`]
    /// when there is no goal (neither in the plan nor an intent) or no step.
    pub fn from_json(value: &Value, intent: &str) -> Result<Plan> {
        let Value::Object(object) = value else {
            return Err(Error::InvalidPlan { reason: "the plan is not a JSON object".into() });
        };
        let intent = py_strip(intent);
        let steps = plan_steps(object.get("steps"));
        let goal = field_text(object, "goal").unwrap_or_else(|| intent.to_owned());
        let name = field_text(object, "name")
            .or_else(|| (!goal.is_empty()).then(|| title_from_prompt(&goal, PROMPT_TITLE_CHARS)))
            .or_else(|| steps.first().map(|s| s.title.chars().take(PROMPT_TITLE_CHARS).collect()))
            .unwrap_or_else(|| {
                title_from_prompt(
                    if intent.is_empty() { UNTITLED_TASK } else { intent },
                    PROMPT_TITLE_CHARS,
                )
            });
        let global = match object.get("global_acceptance").filter(|v| json_is_truthy(v)) {
            Some(value) => json_texts(Some(value)),
            None => json_texts(object.get("acceptance")),
        };
        if goal.is_empty() {
            return Err(Error::InvalidPlan {
                reason: "it has no \"goal\" (and no intent to fall back on)".into(),
            });
        }
        if steps.is_empty() {
            return Err(Error::InvalidPlan {
                reason: "it has no \"steps\" with a title; a plan needs at least one step".into(),
            });
        }
        Ok(Plan {
            name,
            goal,
            steps,
            global_acceptance: global,
            intent: field_text(object, "intent").unwrap_or_else(|| intent.to_owned()),
        })
    }
}

fn json_is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Extracts and validates the plan in a planner reply.
pub fn parse_plan_reply(reply: &str, intent: &str) -> Result<Plan> {
    let value = extract_plan_json(reply)
        .ok_or_else(|| Error::PlanWithoutJson { excerpt: reply.chars().take(200).collect() })?;
    Plan::from_json(&value, intent)
}

/// The spec for a plan, as the reference's `task_spec_from_plan`: interval
/// `check_interval_seconds` or 0, the intent (else the goal) as initial prompt.
pub fn plan_to_spec(plan: &Plan, workspace: &str, check_interval_seconds: Option<u64>) -> TaskSpec {
    let mut spec = TaskSpec::new(plan.name.clone(), py_strip(workspace), plan.goal.clone());
    spec.steps = plan.steps.clone();
    spec.acceptance = plan.global_acceptance.clone();
    spec.mode = DEFAULT_MODE.to_owned();
    spec.agent = DEFAULT_AGENT.to_owned();
    spec.check_interval_seconds = check_interval_seconds.unwrap_or(0);
    spec.initial_prompt =
        Some(if plan.intent.is_empty() { plan.goal.clone() } else { plan.intent.clone() })
            .filter(|p| !p.is_empty());
    spec
}

/// Title of the planner's throwaway session.
pub const PLAN_SESSION_TITLE: &str = "OpenLoom plan";

/// Messages read back when the reply's own text is empty: enough to reach the last
/// assistant text past the tool calls of one planning turn.
const FALLBACK_MESSAGES: usize = 20;

/// Asks the model for a plan for `intent` in `workspace` (already resolved against
/// the caller's workspace policy), with OpenCode's `agent` or the default one.
///
/// The prompt runs in a throwaway session that is deleted afterwards whatever
/// happened, so plans never clutter the user's session list; a failed delete is
/// logged, not returned, because the plan is still good. When the reply's text is
/// empty (a model that wrote its answer in an earlier message of the turn, before
/// a tool call) the newest assistant text among the session's messages is used.
///
/// Errors: [`Error::PlanningAgent`] when the agent server fails,
/// [`Error::PlanModelFailed`] when the model's turn ends in an error,
/// [`Error::UnusablePlanReply`] when the reply holds no plan.
pub async fn draft_plan(
    server: &dyn AgentServer,
    workspace: &str,
    intent: &str,
    agent: Option<&str>,
) -> Result<Plan> {
    // Nobody answers a planning session's questions: the question tool is taken away,
    // or the plan would wait for an answer until the request timed out.
    let rules = [PermissionRule::new("question", "*", Action::Deny)];
    let session = server.create_session_with(workspace, PLAN_SESSION_TITLE, &rules).await.map_err(
        |source| Error::PlanningAgent { doing: "could not create the planning session", source },
    )?;
    let session = session.as_ref();
    let result = ask(server, &session, workspace, intent, agent).await;
    if let Err(error) = server.delete_session(&session).await {
        tracing::warn!(session = %session.id, %error, "could not delete the planning session");
    }
    result
}

async fn ask(
    server: &dyn AgentServer,
    session: &SessionRef,
    workspace: &str,
    intent: &str,
    agent: Option<&str>,
) -> Result<Plan> {
    let prompt = build_planner_prompt(intent, workspace);
    let reply = server
        .prompt_and_wait(session, &prompt, agent)
        .await
        .map_err(|source| Error::PlanningAgent { doing: "the planning prompt failed", source })?;
    if let Some(error) = &reply.error {
        return Err(Error::PlanModelFailed {
            name: error.name.clone(),
            message: error.message.clone(),
        });
    }
    let mut text = reply.text();
    if text.trim().is_empty() {
        tracing::debug!(session = %session.id, "the planning reply has no text; reading the session's messages");
        let messages = server.messages(session, FALLBACK_MESSAGES).await.map_err(|source| {
            Error::PlanningAgent { doing: "could not read the planning session's messages", source }
        })?;
        // OpenCode's synchronous answer is the turn's *last* assistant message; a
        // model that wrote the plan and then called a tool left it in an earlier one.
        // The session is throwaway, so every message in it belongs to this turn.
        text = messages
            .iter()
            .rev()
            .filter(|m| m.is_assistant())
            .map(AgentMessage::text)
            .find(|t| !t.trim().is_empty())
            .unwrap_or_default();
    }
    parse_plan_reply(&text, intent).map_err(|e| Error::UnusablePlanReply { source: Box::new(e) })
}
