//! OpenCode-specific things the harness and dashboard use beyond the core trait:
//! projects, permission requests and questions.

use serde::Serialize;
use serde_json::Value;

/// A project OpenCode knows (one per git root; non-git directories share `global`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Project id: the root commit's hash, or `global`.
    pub id: String,
    /// The project's root directory. `/` for the `global` project of non-git dirs.
    pub worktree: String,
}

impl Project {
    pub(crate) fn from_json(value: &Value) -> Option<Project> {
        let worktree = value.get("worktree").and_then(Value::as_str)?.to_owned();
        let id = value.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        Some(Project { id, worktree })
    }

    /// The directory to scope requests to, or `None` for `/` (and empty), which
    /// would make OpenCode start an instance on the whole file system.
    pub fn directory(&self) -> Option<&str> {
        let w = self.worktree.trim();
        (!w.is_empty() && w != "/").then_some(w)
    }
}

/// A tool call waiting for the user's permission (`GET /permission`).
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRequest {
    /// Request id, `per_…`.
    pub id: String,
    /// The session that asks.
    pub session_id: String,
    /// Permission key: `bash`, `edit`, …
    pub permission: String,
    /// What is asked for (commands, file names).
    pub patterns: Vec<String>,
    /// Patterns an `always` reply would allow from now on.
    pub always: Vec<String>,
    /// Tool-specific details (command, diff, …), passed through untouched.
    pub metadata: Value,
}

impl PermissionRequest {
    pub(crate) fn from_json(value: &Value) -> Option<PermissionRequest> {
        Some(PermissionRequest {
            id: value.get("id").and_then(Value::as_str)?.to_owned(),
            session_id: session_id_of(value)?,
            permission: value
                .get("permission")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            patterns: strings(value.get("patterns")),
            always: strings(value.get("always")),
            metadata: value.get("metadata").cloned().unwrap_or(Value::Null),
        })
    }
}

/// How to answer a [`PermissionRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PermissionReply {
    /// Allow this one call.
    Once,
    /// Allow this and matching later calls — in every session of the project.
    Always,
    /// Refuse. Without a message the turn stops; with one the agent gets it as
    /// feedback and carries on.
    Reject,
}

/// A question the agent asked the user (`GET /question`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuestionRequest {
    /// Request id, `que_…`.
    pub id: String,
    /// The session that asks.
    pub session_id: String,
    /// The questions, each `{question, header, options[{label, description}], multiple?}`,
    /// passed through untouched.
    pub questions: Vec<Value>,
}

impl QuestionRequest {
    pub(crate) fn from_json(value: &Value) -> Option<QuestionRequest> {
        Some(QuestionRequest {
            id: value.get("id").and_then(Value::as_str)?.to_owned(),
            session_id: session_id_of(value)?,
            questions: value
                .get("questions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

fn session_id_of(value: &Value) -> Option<String> {
    ["sessionID", "sessionId", "session_id"]
        .iter()
        .find_map(|k| value.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}
