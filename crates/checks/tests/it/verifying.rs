//! The verifying checker withdraws claims the workspace does not back.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use openloom_checks::{CheckRunner, VerifyingChecker};
use openloom_core::{
    CheckContext, CheckResult, Checker, Step, Task, TaskId, TaskSpec, VerificationScope,
};

use crate::common::{Workspace, exists};

/// Claims whatever it is told to.
struct Claims(CheckResult);

#[async_trait]
impl Checker for Claims {
    async fn check(&self, _: CheckContext<'_>) -> openloom_core::Result<CheckResult> {
        Ok(self.0.clone())
    }
}

fn spec(workspace: &Workspace) -> TaskSpec {
    let mut spec = TaskSpec::new("t", workspace.path().to_string_lossy(), "g");
    let mut first = Step::new("write a.txt");
    first.checks = vec![exists("a.txt")];
    spec.steps = vec![first, Step::new("write b.txt")];
    spec.checks = vec![exists("b.txt")];
    spec
}

async fn verify(spec: &TaskSpec, claim: CheckResult, verified: &[u32]) -> CheckResult {
    let mut task = Task::new(TaskId::from("task_v"), spec.clone(), Utc::now());
    task.completed_steps = verified.to_vec();
    let checker = VerifyingChecker::new(Arc::new(Claims(claim)), Arc::new(CheckRunner::new()));
    checker.check(CheckContext { task: &task, spec, messages: &[] }).await.expect("check")
}

fn step_done(n: u32) -> CheckResult {
    CheckResult { step_done: n, ..CheckResult::default() }
}

#[tokio::test]
async fn a_step_claim_without_its_file_is_withdrawn_with_evidence() {
    let workspace = Workspace::new();
    let spec = spec(&workspace);
    let result = verify(&spec, step_done(1), &[]).await;
    assert_eq!(result.step_done, 0, "claim withdrawn");
    let verification = result.verification.expect("checks ran");
    assert_eq!(verification.scope, VerificationScope::Step(1));
    assert!(!verification.passed());
    assert_eq!(verification.outcomes[0].label, "file_exists: a.txt");

    workspace.write("a.txt", "done");
    let result = verify(&spec, step_done(1), &[]).await;
    assert_eq!(result.step_done, 1);
    assert!(result.verification.expect("checks ran").passed());
}

#[tokio::test]
async fn task_complete_needs_the_global_checks() {
    let workspace = Workspace::new();
    workspace.write("a.txt", "done");
    let spec = spec(&workspace);
    let claim = CheckResult { task_complete: true, step_done: 2, ..CheckResult::default() };
    let result = verify(&spec, claim.clone(), &[1]).await;
    assert!(!result.task_complete);
    assert!(result.step_done < 2, "every-step-reported must not complete the task either");
    let verification = result.verification.expect("ran");
    assert_eq!(verification.scope, VerificationScope::Task);
    assert_eq!(verification.outcomes.len(), 1, "verified steps are not run again");

    workspace.write("b.txt", "done");
    let result = verify(&spec, claim, &[1]).await;
    assert!(result.task_complete);
    assert!(result.verification.expect("ran").passed());
}

#[tokio::test]
async fn specs_without_checks_pass_through_untouched() {
    let workspace = Workspace::new();
    let spec = TaskSpec::new("t", workspace.path().to_string_lossy(), "g");
    let claim = CheckResult { task_complete: true, ..CheckResult::default() };
    let result = verify(&spec, claim.clone(), &[]).await;
    assert_eq!(result, claim);
}
