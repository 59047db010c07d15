//! The file checks and the workspace boundary.

use openloom_checks::CheckRunner;

use crate::common::{Workspace, contains, exists, missing};

#[tokio::test]
async fn file_exists_and_file_missing_judge_the_workspace() {
    let ws = Workspace::new();
    ws.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    let runner = CheckRunner::new();
    let outcomes = runner
        .run_all(
            ws.path(),
            &[exists("src/lib.rs"), exists("src/main.rs"), missing("src/main.rs"), missing("src")],
        )
        .await;
    let passed: Vec<bool> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [true, false, true, false], "{outcomes:#?}");
    assert!(outcomes.iter().all(|o| o.error.is_none() && o.exit_status.is_none()));
    assert!(outcomes[1].output_tail.contains("does not exist"));
    assert_eq!(outcomes[0].label, "file_exists: src/lib.rs");
}

#[tokio::test]
async fn file_contains_matches_a_regex_over_lossy_text() {
    let ws = Workspace::new();
    ws.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
    std::fs::write(ws.join("binary.bin"), b"\xff\xfe header \x00 VERSION=1.2.3 \xff")
        .expect("write binary");
    let runner = CheckRunner::new();
    let outcomes = runner
        .run_all(
            ws.path(),
            &[
                contains("src/lib.rs", r"fn answer\(\) -> u32"),
                contains("src/lib.rs", r"fn question"),
                contains("binary.bin", r"VERSION=\d+\.\d+\.\d+"),
                contains("nope.txt", "x"),
                contains("src/lib.rs", "(unclosed"),
            ],
        )
        .await;
    let passed: Vec<bool> = outcomes.iter().map(|o| o.passed).collect();
    assert_eq!(passed, [true, false, true, false, false], "{outcomes:#?}");
    assert!(outcomes[3].output_tail.contains("does not exist"));
    assert!(
        outcomes[4].error.as_deref().is_some_and(|e| e.contains("invalid pattern")),
        "{:?}",
        outcomes[4]
    );
}

#[tokio::test]
async fn file_contains_refuses_files_over_the_read_limit() {
    let ws = Workspace::new();
    ws.write("big.log", &"x".repeat(2048));
    let runner = CheckRunner::new().with_file_read_limit(1024);
    let outcome = runner.run(ws.path(), &contains("big.log", "x")).await;
    assert!(!outcome.passed);
    assert!(outcome.error.as_deref().is_some_and(|e| e.contains("1024-byte limit")), "{outcome:?}");
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused() {
    let ws = Workspace::new();
    let outside = Workspace::new();
    outside.write("secret.txt", "password=hunter2");
    std::os::unix::fs::symlink(outside.path(), ws.join("escape")).expect("symlink");
    let absolute = outside.join("secret.txt").to_string_lossy().into_owned();
    let runner = CheckRunner::new();
    let checks = [
        exists(&absolute),
        exists("../secret.txt"),
        exists("a/../../secret.txt"),
        contains("escape/secret.txt", "hunter2"),
        missing("escape/other.txt"),
    ];
    let outcomes = runner.run_all(ws.path(), &checks).await;
    for outcome in &outcomes {
        assert!(!outcome.passed, "{outcome:?}");
        let error = outcome.error.as_deref().expect("a refused path is an error");
        assert!(error.contains("absolute") || error.contains("escapes the workspace"), "{error}");
        assert!(!outcome.output_tail.contains("hunter2"));
    }
    // A `..` that stays inside is fine.
    ws.write("docs/readme.md", "hi");
    let inside = runner.run(ws.path(), &exists("src/../docs/readme.md")).await;
    assert!(inside.passed, "{inside:?}");
}

#[tokio::test]
async fn file_contains_on_a_named_pipe_fails_instead_of_hanging() {
    let ws = Workspace::new();
    let fifo = ws.join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let runner = CheckRunner::new();
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        runner.run(ws.path(), &contains("pipe", "x")),
    )
    .await;
    if outcome.is_err() {
        // Release the reader stuck in open(2), so the test binary can exit.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    }
    let outcome = outcome.expect("a pipe with no writer must not block the check");
    assert!(!outcome.passed);
    assert!(
        outcome.error.as_deref().is_some_and(|e| e.contains("not a regular file")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn pathological_patterns_run_in_linear_time_or_are_refused() {
    let ws = Workspace::new();
    ws.write("big.txt", &"x".repeat(1024 * 1024));
    let runner = CheckRunner::new();
    let started = std::time::Instant::now();
    // Catastrophic for a backtracking engine; the regex crate has none.
    let outcome = runner.run(ws.path(), &contains("big.txt", r"(x+x+)+y")).await;
    assert!(!outcome.passed && outcome.error.is_none(), "{outcome:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    // A pattern that would compile to a huge program hits the compiled-size limit.
    let outcome = runner.run(ws.path(), &contains("big.txt", r"(\w{1000}){1000}")).await;
    assert!(outcome.error.as_deref().is_some_and(|e| e.contains("invalid pattern")), "{outcome:?}");
}
