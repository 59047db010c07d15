//! What a user asks for: the task specification.
//!
//! Parsing from YAML and Markdown lives in `openloom-prompts`; this module only holds
//! the typed result so every layer can share it without depending on a parser.

use serde::{Deserialize, Serialize};

use crate::policy::{PermissionRule, QuestionPolicy};

/// The default check interval, in seconds (the reference's five minutes).
pub const DEFAULT_CHECK_INTERVAL_SECONDS: u64 = 300;
/// The agent name that means "OpenCode's default agent".
pub const DEFAULT_AGENT: &str = "opencode";
/// The default mode.
pub const DEFAULT_MODE: &str = "normal";
/// The name of a task whose spec gives none.
pub const UNTITLED_TASK: &str = "Untitled task";

/// One step of a task, with its own acceptance criteria.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// What the agent should do in this step.
    pub title: String,
    /// Textual criteria the agent reads.
    #[serde(default)]
    pub acceptance: Vec<String>,
    /// Executable checks that must pass before the step counts as done.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDefinition>,
}

impl Step {
    /// A step with a title and no acceptance criteria.
    pub fn new(title: impl Into<String>) -> Self {
        Step { title: title.into(), acceptance: Vec::new(), checks: Vec::new() }
    }
}

/// A task as the user specified it: goal, steps, acceptance and how to drive it.
///
/// `check_interval_seconds == 0` with no steps and no acceptance makes a one-shot
/// task: the prompt is sent once and never checked again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Human name of the task.
    pub name: String,
    /// Directory the agent works in, as written by the user.
    pub workspace: String,
    /// What the agent should accomplish.
    pub goal: String,
    /// Ordered steps.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Acceptance criteria for the whole task.
    #[serde(default)]
    pub acceptance: Vec<String>,
    /// Free-form mode (the reference passes it through).
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Agent to prompt; [`DEFAULT_AGENT`] means OpenCode's default.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// Seconds between fallback checks; 0 means "never check again" (one-shot).
    #[serde(default = "default_interval")]
    pub check_interval_seconds: u64,
    /// A prompt sent verbatim instead of the bootstrap prompt (prompt-only tasks).
    #[serde(default)]
    pub initial_prompt: Option<String>,
    /// Executable checks that gate `TASK COMPLETE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDefinition>,
    /// Failed verification rounds after which the task fails; `None` for the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_verification_rounds: Option<u32>,
    /// What the agent may do while nobody watches, and when a silent session counts
    /// as stalled (the spec's `permissions`, `questions`, `stall_timeout`, ... keys).
    #[serde(default, skip_serializing_if = "Unattended::is_default")]
    pub unattended: Unattended,
}

/// Default `stall_timeout`: a busy session with no new output this long is stalled.
pub const DEFAULT_STALL_TIMEOUT_SECONDS: u64 = 15 * 60;
/// Default `human_timeout`: a request nobody answered this long gets the fallback.
pub const DEFAULT_HUMAN_TIMEOUT_SECONDS: u64 = 60 * 60;
/// Default `max_stall_recoveries`: stalls recovered in one session before a fresh one.
pub const DEFAULT_MAX_STALL_RECOVERIES: u32 = 2;
/// Default `max_checks_without_progress`: checks of an idle agent that neither
/// reports a step nor changes a verification before the task fails.
pub const DEFAULT_MAX_CHECKS_WITHOUT_PROGRESS: u32 = 12;

/// A spec's unattended-operation settings; every `None` means the documented default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unattended {
    /// Permission rules in OpenCode's order (last match wins); `None` keeps whatever
    /// OpenCode's own config says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<PermissionRule>>,
    /// Whether the agent may ask a person; `None` for the default (ask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub questions: Option<QuestionPolicy>,
    /// Seconds a busy session may go without output before it is stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout_seconds: Option<u64>,
    /// Seconds a request may wait for a person before the fallback answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub human_timeout_seconds: Option<u64>,
    /// Stalls recovered in one session before a fresh session is started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stall_recoveries: Option<u32>,
    /// Checks without progress after which the task fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_checks_without_progress: Option<u32>,
}

impl Unattended {
    /// True when every setting is the default (nothing to store).
    pub fn is_default(&self) -> bool {
        self == &Unattended::default()
    }

    /// The question policy in effect.
    pub fn questions(&self) -> QuestionPolicy {
        self.questions.unwrap_or_default()
    }

    /// These settings, with each one left unset taken from `defaults` (a config
    /// file's `task_defaults`): the spec wins, key by key.
    pub fn or(self, defaults: &Unattended) -> Unattended {
        Unattended {
            permissions: self.permissions.or_else(|| defaults.permissions.clone()),
            questions: self.questions.or(defaults.questions),
            stall_timeout_seconds: self.stall_timeout_seconds.or(defaults.stall_timeout_seconds),
            human_timeout_seconds: self.human_timeout_seconds.or(defaults.human_timeout_seconds),
            max_stall_recoveries: self.max_stall_recoveries.or(defaults.max_stall_recoveries),
            max_checks_without_progress: self
                .max_checks_without_progress
                .or(defaults.max_checks_without_progress),
        }
    }

    /// The stall timeout in effect.
    pub fn stall_timeout(&self) -> u64 {
        self.stall_timeout_seconds.unwrap_or(DEFAULT_STALL_TIMEOUT_SECONDS)
    }

    /// The human timeout in effect.
    pub fn human_timeout(&self) -> u64 {
        self.human_timeout_seconds.unwrap_or(DEFAULT_HUMAN_TIMEOUT_SECONDS)
    }

    /// The stall recoveries per session in effect.
    pub fn max_stall_recoveries(&self) -> u32 {
        self.max_stall_recoveries.unwrap_or(DEFAULT_MAX_STALL_RECOVERIES)
    }

    /// The checks without progress in effect.
    pub fn max_checks_without_progress(&self) -> u32 {
        self.max_checks_without_progress.unwrap_or(DEFAULT_MAX_CHECKS_WITHOUT_PROGRESS)
    }

    /// The rules to apply, empty when the spec has none.
    pub fn rules(&self) -> &[PermissionRule] {
        self.permissions.as_deref().unwrap_or_default()
    }
}

/// Default timeout of a `run` check, in seconds.
pub const DEFAULT_CHECK_TIMEOUT_SECONDS: u64 = 600;
/// Default number of failed verification rounds before a task fails.
pub const DEFAULT_MAX_VERIFICATION_ROUNDS: u32 = 5;

/// An executable check written by the spec's author (never by the agent).
///
/// Paths are relative to the task's workspace. Stored and exchanged as JSON with a
/// `kind` tag; the YAML and Markdown spec syntax is parsed by `openloom-prompts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckDefinition {
    /// Runs a shell command in the workspace; passes on the expected exit status.
    Run {
        /// The command line, run with `sh -c`.
        command: String,
        /// Exit status that means success.
        #[serde(default)]
        expect_status: i32,
        /// Seconds before the command (and its children) is killed.
        #[serde(default = "default_check_timeout")]
        timeout_seconds: u64,
    },
    /// Passes when the path exists.
    FileExists {
        /// Path relative to the workspace.
        path: String,
    },
    /// Passes when the path does not exist.
    FileMissing {
        /// Path relative to the workspace.
        path: String,
    },
    /// Passes when the file's content matches a regular expression.
    FileContains {
        /// Path relative to the workspace.
        path: String,
        /// A regular expression (`regex-lite` syntax: Rust `regex` syntax with ASCII-only
        /// character classes and no `\p{…}` Unicode classes).
        pattern: String,
    },
    /// Passes when every change in the workspace (per git) is under one of the paths.
    ChangesWithin {
        /// Allowed paths (files or directories), relative to the workspace.
        paths: Vec<String>,
    },
}

fn default_check_timeout() -> u64 {
    DEFAULT_CHECK_TIMEOUT_SECONDS
}

impl CheckDefinition {
    /// A short human label, e.g. `run: cargo test` or `file_exists: src/lib.rs`.
    pub fn label(&self) -> String {
        match self {
            CheckDefinition::Run { command, .. } => format!("run: {command}"),
            CheckDefinition::FileExists { path } => format!("file_exists: {path}"),
            CheckDefinition::FileMissing { path } => format!("file_missing: {path}"),
            CheckDefinition::FileContains { path, pattern } => {
                format!("file_contains: {path} ~ {pattern}")
            }
            CheckDefinition::ChangesWithin { paths } => {
                format!("changes_within: {}", paths.join(", "))
            }
        }
    }
}

pub(crate) fn default_mode() -> String {
    DEFAULT_MODE.to_owned()
}
pub(crate) fn default_agent() -> String {
    DEFAULT_AGENT.to_owned()
}
pub(crate) fn default_interval() -> u64 {
    DEFAULT_CHECK_INTERVAL_SECONDS
}

impl TaskSpec {
    /// A spec with a name, workspace and goal and the reference's defaults elsewhere.
    pub fn new(
        name: impl Into<String>,
        workspace: impl Into<String>,
        goal: impl Into<String>,
    ) -> Self {
        TaskSpec {
            name: name.into(),
            workspace: workspace.into(),
            goal: goal.into(),
            steps: Vec::new(),
            acceptance: Vec::new(),
            mode: default_mode(),
            agent: default_agent(),
            check_interval_seconds: DEFAULT_CHECK_INTERVAL_SECONDS,
            initial_prompt: None,
            checks: Vec::new(),
            max_verification_rounds: None,
            unattended: Unattended::default(),
        }
    }

    /// True when the spec has steps or acceptance criteria to track.
    pub fn is_structured(&self) -> bool {
        !self.steps.is_empty()
            || !self.acceptance.is_empty()
            || self.steps.iter().any(|s| !s.acceptance.is_empty())
    }

    /// True for a task that is prompted once and never checked (interval 0, no plan).
    pub fn is_one_shot(&self) -> bool {
        self.check_interval_seconds == 0 && !self.is_structured()
    }

    /// The agent to pass to the agent server: `None` for the default agent.
    pub fn agent_override(&self) -> Option<&str> {
        let agent = self.agent.trim();
        (!agent.is_empty() && agent != DEFAULT_AGENT).then_some(agent)
    }

    /// True when the spec has executable checks anywhere.
    pub fn has_checks(&self) -> bool {
        !self.checks.is_empty() || self.steps.iter().any(|s| !s.checks.is_empty())
    }

    /// Title of the step at a zero-based index, if it exists.
    pub fn step_title(&self, index: usize) -> Option<&str> {
        self.steps.get(index).map(|s| s.title.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_needs_zero_interval_and_no_plan() {
        let mut spec = TaskSpec::new("t", "/w", "do it");
        assert!(!spec.is_one_shot());
        spec.check_interval_seconds = 0;
        assert!(spec.is_one_shot());
        spec.steps.push(Step::new("first"));
        assert!(!spec.is_one_shot());
    }

    #[test]
    fn default_agent_is_not_passed_on() {
        let mut spec = TaskSpec::new("t", "/w", "g");
        assert_eq!(spec.agent_override(), None);
        spec.agent = "build".into();
        assert_eq!(spec.agent_override(), Some("build"));
    }

    #[test]
    fn deserializes_with_defaults() {
        let spec: TaskSpec = serde_json::from_str(r#"{"name":"n","workspace":"/w","goal":"g"}"#)
            .expect("valid json");
        assert_eq!(spec.check_interval_seconds, DEFAULT_CHECK_INTERVAL_SECONDS);
        assert_eq!(spec.agent, DEFAULT_AGENT);
        assert!(spec.steps.is_empty());
    }
}
