//! What a check run produced: the evidence that goes to the check log, and the
//! helpers that turn a batch of outcomes into a verdict or into agent feedback.

/// The evidence of one check run; core's type, so the harness, the store and the API
/// share one stored format.
pub use openloom_core::CheckOutcome;

/// What one check kind found, before the runner adds the label and duration.
#[derive(Debug, Default)]
pub(crate) struct Evidence {
    pub passed: bool,
    pub exit_status: Option<i32>,
    pub output: String,
    pub timed_out: bool,
    pub error: Option<String>,
}

impl Evidence {
    /// A pass or fail with an explanation and nothing else.
    pub(crate) fn judged(passed: bool, output: impl Into<String>) -> Self {
        Evidence { passed, output: output.into(), ..Evidence::default() }
    }
}

/// All passed, or which failed.
///
/// An empty batch of outcomes passes: a spec without checks has nothing to refute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passed.
    Passed,
    /// At least one check failed; the labels of the failures, in run order.
    Failed(Vec<String>),
}

impl Verdict {
    /// The verdict on a batch of outcomes.
    pub fn of(outcomes: &[CheckOutcome]) -> Self {
        let failed: Vec<String> =
            outcomes.iter().filter(|o| !o.passed).map(|o| o.label.clone()).collect();
        if failed.is_empty() { Verdict::Passed } else { Verdict::Failed(failed) }
    }

    /// True when every check passed.
    pub fn is_passed(&self) -> bool {
        matches!(self, Verdict::Passed)
    }

    /// Labels of the failed checks (empty when all passed).
    pub fn failed_labels(&self) -> &[String] {
        match self {
            Verdict::Passed => &[],
            Verdict::Failed(labels) => labels,
        }
    }
}

/// `(label, evidence)` for every failed check, in run order: what the agent is told is
/// still wrong ([`CheckOutcome::evidence_text`]).
pub fn summarize_failures(outcomes: &[CheckOutcome]) -> Vec<(String, String)> {
    outcomes.iter().filter(|o| !o.passed).map(|o| (o.label.clone(), o.evidence_text())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: &str, passed: bool) -> CheckOutcome {
        CheckOutcome {
            label: label.into(),
            passed,
            exit_status: None,
            duration_ms: 1,
            output_tail: String::new(),
            timed_out: false,
            error: None,
        }
    }

    #[test]
    fn verdict_lists_failures_in_order() {
        assert_eq!(Verdict::of(&[]), Verdict::Passed);
        let batch = [outcome("a", true), outcome("b", false), outcome("c", false)];
        let verdict = Verdict::of(&batch);
        assert!(!verdict.is_passed());
        assert_eq!(verdict.failed_labels(), ["b", "c"]);
        assert!(Verdict::of(&batch[..1]).is_passed());
    }

    #[test]
    fn failure_summary_prefers_error_then_status_then_output() {
        let mut errored = outcome("path", false);
        errored.error = Some("path \"../x\" escapes the workspace".into());
        let mut exited = outcome("run: false", false);
        exited.exit_status = Some(1);
        exited.output_tail = "boom\n".into();
        let silent = outcome("silent", false);
        let summary = summarize_failures(&[outcome("ok", true), errored, exited, silent]);
        assert_eq!(summary.len(), 3);
        assert_eq!(summary[0].1, "path \"../x\" escapes the workspace");
        assert_eq!(summary[1], ("run: false".to_owned(), "(exit status 1)\nboom".to_owned()));
        assert_eq!(summary[2].1, "failed without output");
    }

    #[test]
    fn outcome_round_trips_as_json() {
        let mut original = outcome("run: true", true);
        original.exit_status = Some(0);
        let json = serde_json::to_value(&original).expect("serializable");
        assert_eq!(json["label"], "run: true");
        assert_eq!(json["timed_out"], false);
        let back: CheckOutcome = serde_json::from_value(json).expect("deserializable");
        assert_eq!(back, original);
    }
}
