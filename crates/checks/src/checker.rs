//! The verifying checker: the agent's claims, checked against the workspace.
//!
//! [`VerifyingChecker`] wraps another [`Checker`] (normally the marker checker that
//! reads `STEP DONE: n` / `TASK COMPLETE`) and runs the spec's executable checks for
//! every claim it has not verified yet. A claim whose checks fail is withdrawn from
//! the result — `task_complete` turns false, `step_done` drops to the last proven
//! step — and the outcomes travel in [`CheckResult::verification`] so the harness can
//! tell the agent what failed and record the evidence. A spec without checks passes
//! through untouched: the markers decide, as in the reference.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use openloom_core::{CheckContext, CheckResult, Checker, Result, Verification, VerificationScope};

use crate::runner::CheckRunner;

/// Runs the spec's checks for the claims of an inner checker.
pub struct VerifyingChecker {
    inner: Arc<dyn Checker>,
    runner: Arc<CheckRunner>,
}

impl std::fmt::Debug for VerifyingChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingChecker").field("runner", &self.runner).finish_non_exhaustive()
    }
}

impl VerifyingChecker {
    /// Verifies the claims of `inner` with `runner`.
    pub fn new(inner: Arc<dyn Checker>, runner: Arc<CheckRunner>) -> Self {
        VerifyingChecker { inner, runner }
    }
}

#[async_trait]
impl Checker for VerifyingChecker {
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult> {
        let mut result = self.inner.check(context).await?;
        let spec = context.spec;
        if !spec.has_checks() {
            return Ok(result);
        }
        let workspace = Path::new(&context.task.workspace);
        let verified = &context.task.completed_steps;
        let unverified_up_to = |last: usize| {
            spec.steps
                .iter()
                .enumerate()
                .take(last)
                .filter(|(index, step)| {
                    !step.checks.is_empty() && !verified.contains(&number(*index))
                })
                .map(|(index, _)| index)
                .collect::<Vec<_>>()
        };

        let (scope, steps_to_run, run_global) = if result.claims_completion(spec) {
            (VerificationScope::Task, unverified_up_to(spec.steps.len()), true)
        } else if result.step_done > 0 && !verified.contains(&result.step_done) {
            let claimed = (result.step_done as usize).min(spec.steps.len());
            let steps = unverified_up_to(claimed);
            if steps.is_empty() {
                return Ok(result);
            }
            (VerificationScope::Step(result.step_done), steps, false)
        } else {
            return Ok(result);
        };

        let mut outcomes = Vec::new();
        let mut failed_steps = Vec::new();
        for index in steps_to_run {
            let step_outcomes = self.runner.run_all(workspace, &spec.steps[index].checks).await;
            if step_outcomes.iter().any(|o| !o.passed) {
                failed_steps.push(index);
            }
            outcomes.extend(step_outcomes);
        }
        if run_global {
            outcomes.extend(self.runner.run_all(workspace, &spec.checks).await);
        }
        let verification = Verification { scope, outcomes };
        if !verification.passed() {
            // Steps are proven up to the one before the first failing step.
            let proven = failed_steps.first().map_or(result.step_done, |&index| number(index) - 1);
            result.withdraw_completion(spec, proven);
        }
        tracing::info!(
            task_id = %context.task.id,
            ?scope,
            passed = verification.passed(),
            checks = verification.outcomes.len(),
            "verified a claim"
        );
        result.verification = Some(verification);
        Ok(result)
    }
}

fn number(index: usize) -> u32 {
    u32::try_from(index + 1).unwrap_or(u32::MAX)
}
