//! One check run at a time per workspace; different workspaces in parallel.

use openloom_checks::CheckRunner;
use std::sync::Arc;

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

/// Marks this workspace ready, then waits (up to 2 s) for the other to be ready too:
/// it can only pass when both checks run at the same time.
fn rendezvous_check(other: &std::path::Path) -> openloom_core::CheckDefinition {
    run(&format!(
        "touch ready; i=0; while [ ! -f '{}/ready' ]; do \
         i=$((i+1)); [ $i -gt 40 ] && exit 1; sleep 0.05; done",
        other.display()
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_workspaces_run_in_parallel() {
    let first = Workspace::new();
    let second = Workspace::new();
    let runner = CheckRunner::new();
    let (check_first, check_second) =
        (rendezvous_check(second.path()), rendezvous_check(first.path()));
    let (a, b) = tokio::join!(
        runner.run(first.path(), &check_first),
        runner.run(second.path(), &check_second),
    );
    assert!(a.passed && b.passed, "the two workspaces were serialized: {a:?} {b:?}");
}
