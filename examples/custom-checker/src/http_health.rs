//! [`HttpHealthChecker`]: a claim of completion stands only when a URL answers 200.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use openloom_core::task::truncate_tail;
use openloom_core::{
    CheckContext, CheckOutcome, CheckResult, Checker, Verification, VerificationScope,
};

/// How much of the response body is kept as evidence.
const BODY_TAIL_BYTES: usize = 2048;

/// Wraps another checker (normally the marker checker) the way `VerifyingChecker`
/// does: the inner checker reports the agent's claims, and a claim that the task is
/// complete is tested with a `GET` of `url`.
///
/// The probe's [`CheckOutcome`] goes into [`CheckResult::verification`]. When it
/// fails, the claim is withdrawn and the harness sends the failure back to the agent
/// (`Dialogue::verification_failed`) and counts a verification round; after
/// `max_verification_rounds` the task fails with the evidence in its check log.
pub struct HttpHealthChecker {
    inner: Arc<dyn Checker>,
    url: String,
    /// Built once, with timeouts: a hanging service must not hang the check.
    http: reqwest::Client,
}

impl HttpHealthChecker {
    /// Gates the completion claims of `inner` on `url` answering 200.
    pub fn new(inner: Arc<dyn Checker>, url: impl Into<String>) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(HttpHealthChecker { inner, url: url.into(), http })
    }

    /// The label of the probe in the check log and in the agent's feedback.
    pub fn label(&self) -> String {
        format!("http_get: {} answers 200", self.url)
    }

    async fn probe(&self) -> CheckOutcome {
        let started = Instant::now();
        let mut outcome = CheckOutcome {
            label: self.label(),
            passed: false,
            exit_status: None, // not a command
            duration_ms: 0,
            output_tail: String::new(),
            timed_out: false,
            error: None,
        };
        match self.http.get(&self.url).send().await {
            Ok(response) => {
                let status = response.status();
                outcome.passed = status == reqwest::StatusCode::OK;
                if !outcome.passed {
                    outcome.error = Some(format!("GET {} answered {status}", self.url));
                }
                let body = response.text().await.unwrap_or_default();
                outcome.output_tail = truncate_tail(body, BODY_TAIL_BYTES);
            }
            Err(error) => {
                outcome.timed_out = error.is_timeout();
                outcome.error = Some(format!("GET {} failed: {error}", self.url));
            }
        }
        outcome.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        outcome
    }
}

#[async_trait]
impl Checker for HttpHealthChecker {
    async fn check(&self, context: CheckContext<'_>) -> openloom_core::Result<CheckResult> {
        let mut result = self.inner.check(context).await?;
        if !result.claims_completion(context.spec) {
            return Ok(result);
        }
        // An inner verifier that already refuted the claim has said what to fix.
        if result.verification.as_ref().is_some_and(|v| !v.passed()) {
            return Ok(result);
        }
        let outcome = self.probe().await;
        if !outcome.passed {
            result.withdraw_completion(context.spec, result.step_done);
        }
        let verification = result.verification.get_or_insert_with(|| Verification {
            scope: VerificationScope::Task,
            outcomes: vec![],
        });
        verification.scope = VerificationScope::Task;
        verification.outcomes.push(outcome);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU16, Ordering};

    use axum::http::StatusCode;
    use chrono::Utc;
    use openloom_core::{Task, TaskId, TaskSpec};

    use super::*;

    /// An inner checker that reports a fixed result.
    struct Claims(CheckResult);

    #[async_trait]
    impl Checker for Claims {
        async fn check(&self, _: CheckContext<'_>) -> openloom_core::Result<CheckResult> {
            Ok(self.0.clone())
        }
    }

    /// A loopback server answering `status` (changeable) to every GET.
    async fn service(status: Arc<AtomicU16>) -> String {
        let app = axum::Router::new().route(
            "/health",
            axum::routing::get(move || async move {
                let code = StatusCode::from_u16(status.load(Ordering::SeqCst))
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (code, "service says hi")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/health")
    }

    async fn check(checker: &HttpHealthChecker, spec: &TaskSpec) -> CheckResult {
        let task = Task::new(TaskId::from("task_test"), spec.clone(), Utc::now());
        let context = CheckContext { task: &task, spec, messages: &[] };
        checker.check(context).await.expect("check")
    }

    fn two_steps() -> TaskSpec {
        let mut spec = TaskSpec::new("t", "/tmp", "g");
        spec.steps = vec![openloom_core::Step::new("a"), openloom_core::Step::new("b")];
        spec
    }

    #[tokio::test]
    async fn a_claim_stands_only_while_the_service_answers_200() {
        let status = Arc::new(AtomicU16::new(503));
        let url = service(status.clone()).await;
        let claim = CheckResult { task_complete: true, step_done: 2, ..CheckResult::default() };
        let checker = HttpHealthChecker::new(Arc::new(Claims(claim)), url.clone()).expect("client");
        let spec = two_steps();

        let refused = check(&checker, &spec).await;
        assert!(!refused.task_complete);
        assert_eq!(refused.step_done, 1, "the last step stays open");
        let verification = refused.verification.expect("the probe is the evidence");
        assert_eq!(verification.scope, VerificationScope::Task);
        assert!(!verification.passed());
        let outcome = &verification.outcomes[0];
        assert!(outcome.error.as_deref().is_some_and(|e| e.contains("503")), "{outcome:?}");
        assert_eq!(outcome.output_tail, "service says hi");

        status.store(200, Ordering::SeqCst);
        let accepted = check(&checker, &spec).await;
        assert!(accepted.task_complete);
        assert_eq!(accepted.step_done, 2);
        assert!(accepted.verification.expect("evidence").passed());
    }

    #[tokio::test]
    async fn no_claim_no_probe() {
        // Nothing listens on port 9 of loopback: a probe would fail the result.
        let claim = CheckResult { step_done: 1, ..CheckResult::default() };
        let checker =
            HttpHealthChecker::new(Arc::new(Claims(claim)), "http://127.0.0.1:9/").expect("client");
        let result = check(&checker, &two_steps()).await;
        assert_eq!(result.step_done, 1);
        assert!(result.verification.is_none());
    }

    #[tokio::test]
    async fn an_unreachable_service_refutes_the_claim() {
        let claim = CheckResult { task_complete: true, ..CheckResult::default() };
        let checker =
            HttpHealthChecker::new(Arc::new(Claims(claim)), "http://127.0.0.1:9/").expect("client");
        let result = check(&checker, &TaskSpec::new("t", "/tmp", "g")).await;
        assert!(!result.task_complete);
        let outcome = &result.verification.expect("evidence").outcomes[0];
        assert!(outcome.error.as_deref().is_some_and(|e| e.contains("failed")), "{outcome:?}");
    }
}
