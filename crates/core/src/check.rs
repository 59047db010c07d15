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
#[async_trait]
pub trait Checker: Send + Sync {
    /// Looks at the session (and anything else the checker trusts) and reports.
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult>;
}
