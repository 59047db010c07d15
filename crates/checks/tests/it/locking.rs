//! One check run at a time per workspace; different workspaces in parallel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openloom_checks::CheckRunner;

use crate::common::{Workspace, run};

/// Appends `start NAME`, sleeps, appends `end NAME`: interleaving would show.
fn marker_check(name: &str) -> openloom_core::CheckDefinition {
    run(&format!("echo start {name} >> log.txt; sleep 0.3; echo end {name} >> log.txt"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_on_one_workspace_never_interleave() {
    let ws = Workspace::new();
    let runner = Arc::new(CheckRunner::new());
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let runner = Arc::clone(&runner);
        let path = ws.path().to_owned();
        handles.push(tokio::spawn(async move {
            runner.run_all(&path, &[marker_check(name), marker_check(name)]).await
        }));
    }
    for handle in handles {
        let outcomes = handle.await.expect("run task");
        assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");
    }
    let log = std::fs::read_to_string(ws.join("log.txt")).expect("log written");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 12, "{log}");
    // Each run_all's four lines are contiguous: start x, end x, start x, end x.
    for batch in lines.chunks(4) {
        let name = batch[0].trim_start_matches("start ");
        let (start, end) = (format!("start {name}"), format!("end {name}"));
        let expected = [start.clone(), end.clone(), start, end];
        assert_eq!(batch, expected, "interleaved:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_workspaces_run_in_parallel() {
    let first = Workspace::new();
    let second = Workspace::new();
    let runner = CheckRunner::new();
    let check = run("sleep 0.5");
    let started = Instant::now();
    let (a, b) = tokio::join!(runner.run(first.path(), &check), runner.run(second.path(), &check));
    assert!(a.passed && b.passed);
    assert!(
        started.elapsed() < Duration::from_millis(950),
        "two workspaces were serialized: {:?}",
        started.elapsed()
    );
}
