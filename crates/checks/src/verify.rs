//! `openloom verify SPEC`: every check of a spec, step by step, then the global ones.

use std::fmt::Write as _;
use std::path::Path;

use openloom_core::TaskSpec;

use crate::outcome::{CheckOutcome, Verdict};
use crate::runner::CheckRunner;

/// The outcome of every check in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecVerification {
    /// `(one-based step number, outcomes)` for each step that has checks, in order.
    pub steps: Vec<(u32, Vec<CheckOutcome>)>,
    /// Outcomes of the spec's task-level checks.
    pub global: Vec<CheckOutcome>,
}

/// Runs every step's checks, then the global checks, in `workspace`, holding the
/// workspace for the whole run. Steps without checks are left out of the result.
pub async fn verify_spec(
    runner: &CheckRunner,
    workspace: &Path,
    spec: &TaskSpec,
) -> SpecVerification {
    let _held = runner.locks().lock(workspace).await;
    let mut steps = Vec::new();
    for (index, step) in spec.steps.iter().enumerate() {
        if step.checks.is_empty() {
            continue;
        }
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        steps.push((number, runner.run_all_locked(workspace, &step.checks).await));
    }
    let global = runner.run_all_locked(workspace, &spec.checks).await;
    SpecVerification { steps, global }
}

impl SpecVerification {
    /// Every outcome with its scope (`step N` or `global`), in run order.
    pub fn outcomes(&self) -> impl Iterator<Item = (String, &CheckOutcome)> {
        let steps = self.steps.iter().flat_map(|(number, outcomes)| {
            outcomes.iter().map(move |outcome| (format!("step {number}"), outcome))
        });
        steps.chain(self.global.iter().map(|outcome| ("global".to_owned(), outcome)))
    }

    /// All passed, or the labels of the failures.
    pub fn verdict(&self) -> Verdict {
        let all: Vec<CheckOutcome> = self.outcomes().map(|(_, outcome)| outcome.clone()).collect();
        Verdict::of(&all)
    }

    /// True when every check passed (and vacuously when there were none).
    pub fn passed(&self) -> bool {
        self.outcomes().all(|(_, outcome)| outcome.passed)
    }

    /// A plain-text table (columns scope, check, result, duration) and a summary line.
    /// No colours: the binary decides how to present it.
    pub fn render_table(&self) -> String {
        const HEADERS: [&str; 4] = ["SCOPE", "CHECK", "RESULT", "DURATION"];
        let rows: Vec<[String; 4]> = self
            .outcomes()
            .map(|(scope, outcome)| {
                [
                    scope,
                    shorten(&outcome.label, 60),
                    result_word(outcome).to_owned(),
                    duration(outcome),
                ]
            })
            .collect();
        let mut widths = HEADERS.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut table = String::new();
        let header = HEADERS.map(str::to_owned);
        for row in std::iter::once(&header).chain(&rows) {
            let line: Vec<String> =
                row.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            let _ = writeln!(table, "{}", line.join("  ").trim_end());
        }
        let failed = rows.iter().filter(|row| row[2] != "PASS").count();
        let _ = writeln!(table, "{} passed, {failed} failed", rows.len() - failed);
        table
    }
}

fn result_word(outcome: &CheckOutcome) -> &'static str {
    if outcome.passed {
        "PASS"
    } else if outcome.timed_out {
        "TIMEOUT"
    } else if outcome.error.is_some() {
        "ERROR"
    } else {
        "FAIL"
    }
}

fn duration(outcome: &CheckOutcome) -> String {
    if outcome.duration_ms < 1000 {
        format!("{} ms", outcome.duration_ms)
    } else {
        format!("{:.1} s", outcome.duration_ms as f64 / 1000.0)
    }
}

/// Cuts a label to `max` characters so one long command does not widen the table.
fn shorten(label: &str, max: usize) -> String {
    let single_line = label.replace('\n', " ");
    if single_line.chars().count() <= max {
        return single_line;
    }
    let kept: String = single_line.chars().take(max.saturating_sub(1)).collect();
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: &str, passed: bool, duration_ms: u64) -> CheckOutcome {
        CheckOutcome {
            label: label.into(),
            passed,
            exit_status: None,
            duration_ms,
            output_tail: String::new(),
            timed_out: false,
            error: None,
        }
    }

    #[test]
    fn table_has_a_row_per_check_and_a_summary() {
        let mut timed_out = outcome("run: sleep 30", false, 1003);
        timed_out.timed_out = true;
        let verification = SpecVerification {
            steps: vec![(2, vec![outcome("file_exists: a", true, 3)])],
            global: vec![timed_out, outcome(&"x".repeat(100), false, 7)],
        };
        let table = verification.render_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5, "{table}");
        assert!(lines[0].starts_with("SCOPE"));
        assert!(
            lines[1].starts_with("step 2")
                && lines[1].contains("PASS")
                && lines[1].ends_with("3 ms")
        );
        assert!(lines[2].contains("TIMEOUT") && lines[2].ends_with("1.0 s"), "{}", lines[2]);
        assert!(lines[3].contains('…') && lines[3].contains("FAIL"));
        assert_eq!(lines[4], "1 passed, 2 failed");
        // Columns line up: RESULT starts at the same offset on every row.
        let column = lines[0].find("RESULT").expect("header");
        let result_initials: Vec<Option<char>> =
            lines[1..4].iter().map(|line| line.chars().nth(column)).collect();
        assert_eq!(result_initials, [Some('P'), Some('T'), Some('F')], "{table}");
        assert!(!verification.passed());
        assert_eq!(verification.verdict().failed_labels().len(), 2);
    }
}
