//! [`ReferenceDialogue`]: this crate's prompts and readers behind core's
//! [`Dialogue`] trait, which is how the harness gets them.

use openloom_core::{AgentMessage, CheckOutcome, CheckResult, Dialogue, TaskSpec};

use crate::{progress, prompts};

/// The reference's wording and markers, as a [`Dialogue`] for the harness.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReferenceDialogue;

impl Dialogue for ReferenceDialogue {
    fn bootstrap(&self, spec: &TaskSpec, current_step: usize) -> String {
        prompts::build_bootstrap_prompt(spec, current_step)
    }

    fn periodic_check(
        &self,
        spec: &TaskSpec,
        current_step: usize,
        progress: &CheckResult,
        completed_steps: &[u32],
    ) -> String {
        prompts::build_periodic_check_prompt(spec, current_step, progress, completed_steps)
    }

    fn next_step(&self, spec: &TaskSpec, next_step: usize) -> String {
        prompts::build_next_step_prompt(spec, next_step)
    }

    fn auto_continue(&self, spec: &TaskSpec, current_step: usize) -> String {
        prompts::build_continue_reply(spec, current_step)
    }

    fn verification_failed(
        &self,
        _spec: &TaskSpec,
        step: Option<u32>,
        failures: &[CheckOutcome],
    ) -> String {
        let failures: Vec<(String, String)> = failures
            .iter()
            .filter(|o| !o.passed)
            .map(|o| (o.label.clone(), o.evidence_text()))
            .collect();
        prompts::build_verification_failed_prompt(step, &failures)
    }

    fn needs_continue_reply(&self, messages: &[AgentMessage]) -> bool {
        progress::needs_continue_reply(messages)
    }

    fn is_busy(&self, messages: &[AgentMessage]) -> bool {
        progress::messages_indicate_busy(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_outcomes_carry_reason_status_and_output() {
        let failed = CheckOutcome {
            label: "run: cargo test".into(),
            passed: false,
            exit_status: Some(101),
            duration_ms: 5,
            output_tail: "test foo ... FAILED".into(),
            timed_out: false,
            error: None,
        };
        let passed = CheckOutcome {
            label: "file_exists: a".into(),
            passed: true,
            exit_status: None,
            duration_ms: 1,
            output_tail: String::new(),
            timed_out: false,
            error: None,
        };
        let missing = CheckOutcome {
            label: "file_exists: b".into(),
            passed: false,
            exit_status: None,
            duration_ms: 1,
            output_tail: String::new(),
            timed_out: false,
            error: Some("b does not exist".into()),
        };
        let spec = TaskSpec::new("t", "/w", "g");
        let text =
            ReferenceDialogue.verification_failed(&spec, Some(2), &[failed, passed, missing]);
        assert!(text.contains("STEP DONE: 2"), "{text}");
        assert!(text.contains("run: cargo test") && text.contains("exit status 101"), "{text}");
        assert!(text.contains("test foo ... FAILED"), "{text}");
        assert!(text.contains("b does not exist"), "{text}");
        assert!(!text.contains("file_exists: a"), "passed checks are not reported: {text}");
    }
}
