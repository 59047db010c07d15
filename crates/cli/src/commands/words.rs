//! The binary's wording: the reference's prompts to the agent, and failures worded
//! for the people who run `openloom`, naming the commands and variables that help
//! (the core knows what failed, not which program its users run).

use openloom_core::{AgentMessage, CheckOutcome, CheckResult, Dialogue, Failure, TaskId, TaskSpec};
use openloom_prompts::ReferenceDialogue;

/// [`ReferenceDialogue`], with failures worded for `openloom watch` / `serve` users.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliDialogue;

impl Dialogue for CliDialogue {
    fn bootstrap(&self, spec: &TaskSpec, current_step: usize) -> String {
        ReferenceDialogue.bootstrap(spec, current_step)
    }
    fn periodic_check(
        &self,
        spec: &TaskSpec,
        current_step: usize,
        progress: &CheckResult,
        completed_steps: &[u32],
    ) -> String {
        ReferenceDialogue.periodic_check(spec, current_step, progress, completed_steps)
    }
    fn next_step(&self, spec: &TaskSpec, next_step: usize) -> String {
        ReferenceDialogue.next_step(spec, next_step)
    }
    fn auto_continue(&self, spec: &TaskSpec, current_step: usize) -> String {
        ReferenceDialogue.auto_continue(spec, current_step)
    }
    fn verification_failed(
        &self,
        spec: &TaskSpec,
        step: Option<u32>,
        failures: &[CheckOutcome],
    ) -> String {
        ReferenceDialogue.verification_failed(spec, step, failures)
    }
    fn needs_continue_reply(&self, messages: &[AgentMessage]) -> bool {
        ReferenceDialogue.needs_continue_reply(messages)
    }
    fn is_busy(&self, messages: &[AgentMessage]) -> bool {
        ReferenceDialogue.is_busy(messages)
    }
    fn failure(&self, task: &TaskId, failure: &Failure) -> String {
        failure_advice(task, failure)
    }
}

/// A failure in the binary's words: what happened, then the command that helps.
fn failure_advice(task: &TaskId, failure: &Failure) -> String {
    match failure {
        Failure::SessionGone { session_id } => format!(
            "session {session_id} no longer exists in OpenCode (deleted?); \
             `openloom watch` on the spec again (or Resume in the dashboard or the API) \
             resumes the task in a new session"
        ),
        Failure::CredentialsRefused { message, refusals } => format!(
            "OpenCode refused the credentials {refusals} times in a row ({message}); \
             set OPENLOOM_OPENCODE_USERNAME / OPENLOOM_OPENCODE_PASSWORD, then `openloom watch` \
             on the spec again (or the API's resume) resumes the task"
        ),
        Failure::VerificationExhausted { claim, rounds, limit, failed } => format!(
            "Verification of {claim} failed {rounds} times (limit {limit}): {}; see \
             `openloom log {task}` for the evidence; `openloom watch` on the spec again \
             resumes it with fresh rounds",
            failed.join(", ")
        ),
        Failure::Stalled { stalls, after_seconds } => format!(
            "the session stalled {stalls} times (the last after {after_seconds} s without \
             output), through every recovery and a fresh session; check the model provider \
             (reachable, API key, quota; `openloom doctor` checks OpenCode), or raise \
             `stall_timeout` in the spec if the task runs long tools that print nothing; \
             `openloom log {task}` has each stall; `openloom watch` on the spec again resumes it"
        ),
        Failure::NoProgress { checks } => format!(
            "no progress in {checks} checks: the agent answered without reporting a step, \
             making a claim the checks could verify, or using a tool; see `openloom log \
             {task}`, make the spec's steps smaller or clearer (or raise \
             `max_checks_without_progress`), then `openloom watch` on the spec again"
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_that_helps() {
        let task = TaskId::from("task_abc");
        let cases = [
            (Failure::SessionGone { session_id: "ses_1".into() }, "`openloom watch`"),
            (
                Failure::CredentialsRefused { message: "401".into(), refusals: 5 },
                "OPENLOOM_OPENCODE_PASSWORD",
            ),
            (
                Failure::VerificationExhausted {
                    claim: "step 1".into(),
                    rounds: 5,
                    limit: 5,
                    failed: vec!["run: make".into()],
                },
                "`openloom log task_abc`",
            ),
        ];
        for (failure, advice) in cases {
            let worded = CliDialogue.failure(&task, &failure);
            assert!(worded.contains(advice), "{worded}");
            assert!(!failure.to_string().contains("openloom"), "core's own words: {failure}");
        }
    }
}
