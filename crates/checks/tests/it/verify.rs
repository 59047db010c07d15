//! `verify_spec`: every step's checks, then the global ones.

use openloom_checks::{CheckRunner, summarize_failures, verify_spec};
use openloom_core::{Step, TaskSpec};

use crate::common::{Workspace, contains, exists, run};

#[tokio::test]
async fn verifies_steps_then_global_checks_and_renders_a_table() {
    let ws = Workspace::new();
    ws.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    let mut spec = TaskSpec::new("answer", ws.path().to_string_lossy(), "write the answer");
    let mut first = Step::new("write the library");
    first.checks = vec![exists("src/lib.rs"), contains("src/lib.rs", "42")];
    let untested = Step::new("think about it");
    let mut third = Step::new("add a binary");
    third.checks = vec![exists("src/main.rs")];
    spec.steps = vec![first, untested, third];
    spec.checks = vec![run("test -f src/lib.rs && echo global ok")];

    let verification = verify_spec(&CheckRunner::new(), ws.path(), &spec).await;
    let numbers: Vec<u32> = verification.steps.iter().map(|(number, _)| *number).collect();
    assert_eq!(numbers, [1, 3], "steps without checks are left out");
    assert_eq!(verification.steps[0].1.len(), 2);
    assert!(verification.steps[0].1.iter().all(|o| o.passed));
    assert!(!verification.steps[1].1[0].passed);
    assert_eq!(verification.global.len(), 1);
    assert!(verification.global[0].passed, "{:?}", verification.global);
    assert!(!verification.passed());
    assert_eq!(verification.verdict().failed_labels(), ["file_exists: src/main.rs"]);

    let table = verification.render_table();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 6, "{table}");
    assert!(lines[3].starts_with("step 3") && lines[3].contains("FAIL"), "{table}");
    assert!(lines[4].starts_with("global") && lines[4].contains("PASS"), "{table}");
    assert_eq!(lines[5], "3 passed, 1 failed");

    let all: Vec<_> = verification.outcomes().map(|(_, o)| o.clone()).collect();
    let failures = summarize_failures(&all);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].1.contains("src/main.rs does not exist"), "{failures:?}");
}
