//! Executable checks from spec to prompt, and the marker checker.

use chrono::Utc;
use openloom_core::spec::DEFAULT_CHECK_TIMEOUT_SECONDS;
use openloom_core::{CheckContext, CheckDefinition, Checker, Role, Task, TaskId, TaskSpec};
use openloom_prompts::{
    MarkerChecker, build_bootstrap_prompt, build_continue_reply, build_next_step_prompt,
    build_verification_failed_prompt, parse_markdown, parse_yaml,
};

use crate::common::text_message;

const SPEC: &str = r#"
name: Login
goal: Users log in
steps:
  - title: Add the form
    checks:
      - file_exists: src/login.rs
  - title: Test it
    acceptance: [tests pass]
    checks:
      - run: cargo test login
        timeout: 5m
        expect_status: 0
checks:
  - changes_within: [src/, tests/]
  - file_contains: {path: README.md, pattern: "(?i)login"}
max_verification_rounds: 3
"#;

#[test]
fn checks_parse_per_step_and_for_the_task() {
    let spec = parse_yaml(SPEC, "<input>").expect("valid spec");
    assert_eq!(spec.steps[0].checks, [CheckDefinition::FileExists { path: "src/login.rs".into() }]);
    assert_eq!(
        spec.steps[1].checks,
        [CheckDefinition::Run {
            command: "cargo test login".into(),
            expect_status: 0,
            timeout_seconds: 300
        }]
    );
    assert_eq!(spec.checks.len(), 2);
    assert_eq!(spec.max_verification_rounds, Some(3));
    assert!(spec.has_checks());
}

#[test]
fn markdown_checks_are_whole_task_checks() {
    let text = "# T\n## Goal\ng\n## Checks\n- run: `cargo test`\n* file_missing: TODO.md\n\n## Notes\n- run: not a check\n";
    let spec = parse_markdown(text, "t.md").expect("valid");
    assert_eq!(
        spec.checks,
        [
            CheckDefinition::Run {
                command: "cargo test".into(),
                expect_status: 0,
                timeout_seconds: DEFAULT_CHECK_TIMEOUT_SECONDS
            },
            CheckDefinition::FileMissing { path: "TODO.md".into() },
        ]
    );
}

#[test]
fn the_bootstrap_lists_checks_and_says_claims_are_verified() {
    let spec = parse_yaml(SPEC, "<input>").expect("valid spec");
    let prompt = build_bootstrap_prompt(&spec, 0);
    for check in spec.checks.iter().chain(spec.steps.iter().flat_map(|s| &s.checks)) {
        assert!(prompt.contains(&check.label()), "{} missing:\n{prompt}", check.label());
    }
    assert!(prompt.contains("OpenLoom runs these checks"), "{prompt}");
    assert!(prompt.contains("a claim counts only when its checks pass"), "{prompt}");
    assert!(prompt.contains("STEP DONE: <number>") && prompt.contains("TASK COMPLETE"), "{prompt}");

    let mut plain = spec.clone();
    plain.checks.clear();
    plain.steps.iter_mut().for_each(|s| s.checks.clear());
    assert!(!build_bootstrap_prompt(&plain, 0).contains("OpenLoom runs these checks"));
}

#[test]
fn a_prompt_only_spec_with_checks_keeps_its_prompt_and_adds_them() {
    let mut spec = TaskSpec::new("t", "/w", "Fix the build");
    spec.initial_prompt = Some("Fix the build".into());
    assert_eq!(build_bootstrap_prompt(&spec, 0), "Fix the build");
    spec.checks.push(CheckDefinition::Run {
        command: "make".into(),
        expect_status: 0,
        timeout_seconds: 60,
    });
    let prompt = build_bootstrap_prompt(&spec, 0);
    assert!(prompt.starts_with("Fix the build\n\n") && prompt.contains("run: make"), "{prompt}");
}

#[test]
fn verification_failures_show_label_and_output() {
    let failures = vec![
        ("run: cargo test".to_owned(), "test login ... FAILED\n\n".to_owned()),
        ("file_exists: src/login.rs".to_owned(), String::new()),
    ];
    let prompt = build_verification_failed_prompt(Some(2), &failures);
    assert!(prompt.contains("you reported STEP DONE: 2"), "{prompt}");
    assert!(prompt.contains("2 checks did not pass"), "{prompt}");
    assert!(
        prompt.contains(
            "Check: run: cargo test\nOutput (last lines):\n```\ntest login ... FAILED\n```"
        ),
        "{prompt}"
    );
    assert!(prompt.contains("Check: file_exists: src/login.rs\n(no output)"), "{prompt}");
    assert!(prompt.contains("reply again with STEP DONE: 2"), "{prompt}");

    let prompt = build_verification_failed_prompt(None, &failures[..1]);
    assert!(prompt.contains("you reported TASK COMPLETE, but this check did not pass"), "{prompt}");
    assert!(prompt.contains("reply again with TASK COMPLETE"), "{prompt}");
}

#[test]
fn nudges_follow_the_harness_wording() {
    let spec = parse_yaml("name: N\nsteps: [a, b]\n", "<input>").expect("spec");
    assert_eq!(
        build_next_step_prompt(&spec, 1),
        "Continue harness task 'N'. Focus on step 2: b. Proceed without asking for permission. \
         Reply with STEP DONE: <number> or TASK COMPLETE when appropriate."
    );
    assert!(build_next_step_prompt(&spec, 9).contains("step 2: b"), "clamped to the last step");
    assert_eq!(
        build_continue_reply(&spec, 0),
        "Yes — proceed autonomously with step 1: a. Do not ask for confirmation between harness \
         steps; implement directly. Reply with STEP DONE: 1 when this step is finished."
    );
    let past_end = build_continue_reply(&spec, 4);
    assert!(past_end.contains("step 5: b") && past_end.contains("STEP DONE: 5"), "{past_end}");
    let no_steps = TaskSpec::new("t", "/w", "g");
    assert!(build_continue_reply(&no_steps, 0).contains("step 1: Finish remaining work"));
}

#[tokio::test]
async fn the_marker_checker_reads_assistant_text_only() {
    let mut spec = TaskSpec::new("t", "/w", "g");
    spec.acceptance = vec!["a".into(), "b".into()];
    let task = Task::new(TaskId::generate(), spec.clone(), Utc::now());
    let messages = vec![
        text_message(Role::User, "Reply TASK COMPLETE when done. STEP DONE: 9", true),
        text_message(Role::Assistant, "STEP DONE: 1\n[x] a", true),
        text_message(Role::Assistant, "step done: 2", true),
    ];
    let result = MarkerChecker
        .check(CheckContext { task: &task, spec: &spec, messages: &messages })
        .await
        .expect("the marker checker does not fail");
    assert!(!result.task_complete, "the user's TASK COMPLETE is not a claim");
    assert_eq!(result.step_done, 2);
    assert_eq!(result.acceptance_checked, 1);
    assert_eq!(result.acceptance_total, 2);
    assert!((result.acceptance_progress - 0.5).abs() < 1e-9);
    assert_eq!(result.verification, None);
}

#[test]
fn long_outputs_are_cut_to_their_end() {
    let output = format!("{}THE END", "x".repeat(10_000));
    let prompt = build_verification_failed_prompt(None, &[("run: make".into(), output)]);
    assert!(prompt.contains("THE END"), "the end is kept");
    assert!(prompt.len() < 5_000, "bounded: {} bytes", prompt.len());
}
