//! Checkers read a session and say how far the task is.
//!
//! The reference has one checker, reading the agent's markers (`STEP DONE: n`,
//! `TASK COMPLETE`). Markers are claims; a verifying checker can run the spec's
//! executable checks to decide what is true. Both implement [`Checker`], so an
//! embedder can add their own.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::agent::AgentMessage;
use crate::error::Result;
use crate::spec::TaskSpec;
use crate::task::Task;

/// What a checker concluded from one look at a session.
///
/// Build it with `..CheckResult::default()`: fields may be added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The agent says (or the checks show) the whole task is done.
    pub task_complete: bool,
    /// Highest one-based step number reported done; 0 for none.
    pub step_done: u32,
    /// Acceptance boxes checked (`[x]`) in the transcript.
    pub acceptance_checked: usize,
    /// Number of global acceptance criteria in the spec.
    pub acceptance_total: usize,
    /// Fraction of acceptance met, 0.0–1.0.
    pub acceptance_progress: f64,
    /// Executable checks run during this look, when a verifying checker ran any.
    /// A failed verification lowers `step_done` / `task_complete` to what is proven.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

impl CheckResult {
    /// True when the result claims the whole task is done, by any of the harness's
    /// rules: `TASK COMPLETE`, every step reported, or every acceptance box checked.
    pub fn claims_completion(&self, spec: &TaskSpec) -> bool {
        let steps = spec.steps.len();
        self.task_complete
            || (steps > 0 && self.step_done as usize >= steps)
            || (!spec.acceptance.is_empty() && self.acceptance_checked >= spec.acceptance.len())
    }

    /// Takes back a completion claim by every rule [`Self::claims_completion`] knows,
    /// keeping steps reported only up to `proven_steps` (and never the last step, so
    /// "every step reported" cannot complete the task either).
    pub fn withdraw_completion(&mut self, spec: &TaskSpec, proven_steps: u32) {
        self.task_complete = false;
        self.acceptance_checked = 0;
        self.acceptance_progress = 0.0;
        let last_open = u32::try_from(spec.steps.len().saturating_sub(1)).unwrap_or(u32::MAX);
        self.step_done = self.step_done.min(proven_steps).min(last_open);
    }
}

/// What was verified, and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Which claim the checks were run for.
    pub scope: VerificationScope,
    /// Every check run, in order.
    pub outcomes: Vec<CheckOutcome>,
}

impl Verification {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(|o| o.passed)
    }

    /// The checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.outcomes.iter().filter(|o| !o.passed)
    }
}

/// The claim a verification answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", content = "step", rename_all = "snake_case")]
pub enum VerificationScope {
    /// The agent reported `STEP DONE: n` (one-based).
    Step(u32),
    /// The agent reported `TASK COMPLETE` (or every step).
    Task,
}

/// The result of one executable check: the evidence kept in the check log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check's label, e.g. `run: cargo test`.
    pub label: String,
    /// Whether it passed.
    pub passed: bool,
    /// Exit status of a command check (`None` if killed or not a command).
    #[serde(default)]
    pub exit_status: Option<i32>,
    /// How long it took.
    pub duration_ms: u64,
    /// The tail of its output (bounded).
    #[serde(default)]
    pub output_tail: String,
    /// True when a command was killed for exceeding its timeout.
    #[serde(default)]
    pub timed_out: bool,
    /// Why the check could not run or failed, in words (e.g. "src/x.rs does not exist").
    #[serde(default)]
    pub error: Option<String>,
}

impl CheckOutcome {
    /// What a reader (the agent, a log) needs to see of a check: why it failed (its
    /// error, or the timeout), its exit status, then the tail of its output.
    pub fn evidence_text(&self) -> String {
        let mut parts = Vec::new();
        match self.error.as_deref().filter(|e| !e.is_empty()) {
            Some(error) => parts.push(error.to_owned()),
            None if self.timed_out => parts.push("(timed out)".to_owned()),
            None => {}
        }
        if let Some(status) = self.exit_status {
            parts.push(format!("(exit status {status})"));
        }
        let output = self.output_tail.trim_end();
        if !output.is_empty() {
            parts.push(output.to_owned());
        }
        if parts.is_empty() { "failed without output".to_owned() } else { parts.join("\n") }
    }
}

/// What a checker may look at.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// The task record as the store has it.
    pub task: &'a Task,
    /// The task's spec.
    pub spec: &'a TaskSpec,
    /// Recent messages of the active session, oldest first.
    pub messages: &'a [AgentMessage],
}

/// Decides how far a task is.
///
/// A checker runs only while the session is idle. Return `Err` only for what the
/// harness should treat as an error: a transient one (`Error::AgentUnavailable`, a
/// 5xx) is retried with backoff, anything else **fails the task**. A check that merely
/// did not pass (a probe that answered 503) is not an error: report it as a failed
/// [`CheckOutcome`] in [`CheckResult::verification`] and withdraw the claim, so the
/// agent is told and the task goes on.
#[async_trait]
pub trait Checker: Send + Sync {
    /// Looks at the session (and anything else the checker trusts) and reports.
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> CheckOutcome {
        CheckOutcome {
            label: "run: cargo test".into(),
            passed: false,
            exit_status: None,
            duration_ms: 1,
            output_tail: String::new(),
            timed_out: false,
            error: None,
        }
    }

    #[test]
    fn evidence_names_the_reason_the_status_and_the_output() {
        let mut exited = outcome();
        exited.exit_status = Some(101);
        exited.output_tail = "test foo ... FAILED\n".into();
        assert_eq!(exited.evidence_text(), "(exit status 101)\ntest foo ... FAILED");

        let mut missing = outcome();
        missing.error = Some("b does not exist".into());
        assert_eq!(missing.evidence_text(), "b does not exist");

        let mut slow = outcome();
        slow.timed_out = true;
        slow.output_tail = "still compiling".into();
        assert_eq!(slow.evidence_text(), "(timed out)\nstill compiling");

        assert_eq!(outcome().evidence_text(), "failed without output");
    }
}
