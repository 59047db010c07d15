//! The harness's language with the agent, injected as a trait.
//!
//! The harness decides *when* to speak; a [`Dialogue`] decides *what* to say and how
//! to read the agent's messages. `openloom-prompts` implements it with the
//! reference's wording and markers (`STEP DONE: n`, `TASK COMPLETE`); the reference
//! injected its prompts module the same way. Keeping the words out of the core lets
//! the core stay free of parsing and lets an embedder change the wording.
//!
//! It also words a task's [`Failure`] for the people who run the harness: the core
//! knows what went wrong, the application knows which command or button helps (the
//! `openloom` binary names its own commands and variables).

use crate::agent::AgentMessage;
use crate::check::{CheckOutcome, CheckResult};
use crate::harness::Failure;
use crate::spec::TaskSpec;
use crate::task::TaskId;

/// What the harness says to the agent, and how it reads the agent's state.
pub trait Dialogue: Send + Sync {
    /// The first prompt of a task, focused on the zero-based `current_step`.
    fn bootstrap(&self, spec: &TaskSpec, current_step: usize) -> String;

    /// The prompt sent when the agent is idle and nothing changed since the last check.
    fn periodic_check(
        &self,
        spec: &TaskSpec,
        current_step: usize,
        progress: &CheckResult,
        completed_steps: &[u32],
    ) -> String;

    /// Moves the agent on to the zero-based step `next_step` after a reported step.
    fn next_step(&self, spec: &TaskSpec, next_step: usize) -> String;

    /// Answers an agent that asked for a go-ahead, for the zero-based `current_step`.
    fn auto_continue(&self, spec: &TaskSpec, current_step: usize) -> String;

    /// Tells the agent which checks failed for a claim (`Some(step)` or the whole
    /// task) and asks it to fix them and report again.
    fn verification_failed(
        &self,
        spec: &TaskSpec,
        step: Option<u32>,
        failures: &[CheckOutcome],
    ) -> String;

    /// True when the newest assistant message asks for a go-ahead not yet given.
    fn needs_continue_reply(&self, messages: &[AgentMessage]) -> bool;

    /// True when the messages show the agent still working (an unfinished reply or
    /// a running tool).
    fn is_busy(&self, messages: &[AgentMessage]) -> bool;

    /// The prompt after a stalled turn was aborted: where the task stands — the goal,
    /// the steps done (verified, when checks exist), the zero-based `current_step`,
    /// the checks that failed last — and a request to carry on. It is also the first
    /// thing a fresh session is told after its predecessor stalled too often.
    fn stalled(
        &self,
        spec: &TaskSpec,
        current_step: usize,
        completed_steps: &[u32],
        last_failures: &[CheckOutcome],
    ) -> String {
        let mut prompt = format!(
            "Your last turn produced no output for a long time and was stopped. Carry on              with the task from where it stands.\n\nGoal: {}\n",
            spec.goal
        );
        if !spec.steps.is_empty() {
            let done: Vec<String> = completed_steps.iter().map(u32::to_string).collect();
            let done = if done.is_empty() { "none".to_owned() } else { done.join(", ") };
            prompt.push_str(&format!("Steps done: {done}.\n"));
            if let Some(title) = spec.step_title(current_step) {
                prompt.push_str(&format!("Now: step {} — {title}\n", current_step + 1));
            }
        }
        if !last_failures.is_empty() {
            let failed: Vec<&str> = last_failures.iter().map(|o| o.label.as_str()).collect();
            prompt.push_str(&format!("Checks that failed last: {}.\n", failed.join(", ")));
        }
        prompt.push_str(
            "If a command you ran hangs, stop it and try another way. Report progress with \
             `STEP DONE: <n>` and finish with `TASK COMPLETE`.",
        );
        prompt
    }

    /// Words why task `task` failed for good, and what helps, for people (it becomes
    /// the task's error and check-log entry). The default is the failure's own
    /// neutral wording.
    fn failure(&self, task: &TaskId, failure: &Failure) -> String {
        let _ = task;
        failure.to_string()
    }
}
