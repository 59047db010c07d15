//! Fixture loading and conversions between the reference's dict shapes and core types.

use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use openloom_core::{AgentMessage, MessageError, MessagePart, Role, Step, TaskSpec, ToolState};
use serde_json::{Value, json};

/// The recorded reference answers.
pub static REFERENCE: LazyLock<Value> = LazyLock::new(|| {
    let text = include_str!("../fixtures/reference_cases.json");
    serde_json::from_str(text).expect("the fixture is valid JSON")
});

/// A spec in the reference's `TaskSpec.to_dict()` shape, for comparison.
pub fn reference_dict(spec: &TaskSpec) -> Value {
    json!({
        "name": spec.name,
        "workspace": spec.workspace,
        "goal": spec.goal,
        "steps": spec.steps.iter().map(|s| s.title.clone()).collect::<Vec<_>>(),
        "step_acceptance": spec.steps.iter().map(|s| s.acceptance.clone()).collect::<Vec<_>>(),
        "acceptance": spec.acceptance,
        "mode": spec.mode,
        "agent": spec.agent,
        "check_interval_seconds": spec.check_interval_seconds,
        "initial_prompt": spec.initial_prompt,
    })
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

/// A core spec from the reference's dict shape.
pub fn spec_from_reference_dict(dict: &Value) -> TaskSpec {
    let text = |key: &str| dict[key].as_str().expect("a string field").to_owned();
    let step_acceptance = dict["step_acceptance"].as_array().expect("rows");
    let mut spec = TaskSpec::new(text("name"), text("workspace"), text("goal"));
    spec.steps = strings(&dict["steps"])
        .into_iter()
        .enumerate()
        .map(|(index, title)| Step {
            title,
            acceptance: step_acceptance.get(index).map(strings).unwrap_or_default(),
            checks: Vec::new(),
        })
        .collect();
    spec.acceptance = strings(&dict["acceptance"]);
    spec.mode = text("mode");
    spec.agent = text("agent");
    spec.check_interval_seconds = dict["check_interval_seconds"].as_u64().expect("interval");
    spec.initial_prompt = dict["initial_prompt"].as_str().map(str::to_owned);
    spec
}

fn millis(value: &Value) -> Option<DateTime<Utc>> {
    value.as_i64().and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

/// An OpenCode message (`{info, parts}`, as the captures hold them) as core's type,
/// the way `openloom-opencode` normalises it.
pub fn agent_message(raw: &Value) -> AgentMessage {
    let info = &raw["info"];
    let role = match info["role"].as_str().unwrap_or_default() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => Role::Other(other.to_owned()),
    };
    let error = info.get("error").filter(|e| e.is_object()).map(|e| MessageError {
        name: e["name"].as_str().unwrap_or_default().to_owned(),
        message: e["message"]
            .as_str()
            .or_else(|| e["data"]["message"].as_str())
            .unwrap_or_default()
            .to_owned(),
    });
    let parts = raw["parts"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .map(|part| {
                    let text = || part["text"].as_str().unwrap_or_default().to_owned();
                    match part["type"].as_str().unwrap_or_default() {
                        "text" => MessagePart::Text { text: text() },
                        "reasoning" => MessagePart::Reasoning { text: text() },
                        "tool" => MessagePart::Tool {
                            tool: part["tool"].as_str().unwrap_or_default().to_owned(),
                            state: serde_json::from_value::<ToolState>(
                                part["state"]["status"].clone(),
                            )
                            .expect("tool status is a string"),
                        },
                        other => MessagePart::Other { kind: other.to_owned() },
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    AgentMessage {
        id: info["id"].as_str().unwrap_or_default().to_owned(),
        role,
        created_at: millis(&info["time"]["created"]),
        completed_at: millis(&info["time"]["completed"]),
        error,
        parts,
        tokens: None,
        cost: None,
        model: None,
    }
}

/// Shortcut for a text-only message.
pub fn text_message(role: Role, text: &str, completed: bool) -> AgentMessage {
    AgentMessage {
        id: "m".into(),
        role,
        created_at: None,
        completed_at: completed.then(Utc::now),
        error: None,
        parts: vec![MessagePart::Text { text: text.into() }],
        tokens: None,
        cost: None,
        model: None,
    }
}
