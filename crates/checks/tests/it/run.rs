//! The `run` check: exit status, output capture, timeouts, environment.

use std::time::{Duration, Instant};

use openloom_checks::CheckRunner;

use crate::common::{Workspace, run, run_with};

#[tokio::test]
async fn passes_on_the_expected_status_and_fails_otherwise() {
    let ws = Workspace::new();
    let runner = CheckRunner::new();

    let ok = runner.run(ws.path(), &run("echo hello")).await;
    assert!(ok.passed, "{ok:?}");
    assert_eq!(ok.exit_status, Some(0));
    assert_eq!(ok.output_tail, "hello\n");
    assert_eq!(ok.label, "run: echo hello");

    let failing = runner.run(ws.path(), &run("echo broken >&2; exit 3")).await;
    assert!(!failing.passed);
    assert_eq!(failing.exit_status, Some(3));
    assert_eq!(failing.output_tail, "broken\n", "stderr is captured too");
    assert_eq!(failing.error, None);

    let expected_nonzero = runner.run(ws.path(), &run_with("exit 3", 3, 5)).await;
    assert!(expected_nonzero.passed, "exit 3 is what the author expects: {expected_nonzero:?}");
    let unexpected_zero = runner.run(ws.path(), &run_with("true", 3, 5)).await;
    assert!(!unexpected_zero.passed);
}

#[tokio::test]
async fn runs_in_the_workspace_with_no_stdin_and_merged_output() {
    let ws = Workspace::new();
    ws.write("marker.txt", "here");
    let runner = CheckRunner::new();
    let outcome = runner
        .run(ws.path(), &run("cat marker.txt; echo; echo out; echo err >&2; cat; echo end"))
        .await;
    assert!(outcome.passed, "{outcome:?}");
    for piece in ["here\n", "out\n", "err\n", "end\n"] {
        assert!(outcome.output_tail.contains(piece), "missing {piece:?} in {outcome:?}");
    }
}

#[tokio::test]
async fn output_keeps_only_the_tail() {
    let ws = Workspace::new();
    let runner = CheckRunner::new().with_output_cap(64);
    let outcome = runner.run(ws.path(), &run("seq 1 5000")).await;
    assert!(outcome.passed);
    assert!(outcome.output_tail.len() <= 64, "{} bytes", outcome.output_tail.len());
    assert!(outcome.output_tail.ends_with("4999\n5000\n"), "{:?}", outcome.output_tail);
    assert!(!outcome.output_tail.contains("\n1\n2\n"));
}

/// Whether a process with this pid still exists (and is not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; a zombie (Z) is dead but not yet reaped by its parent.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

async fn wait_until_dead(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn read_pid(ws: &Workspace, file: &str) -> i32 {
    std::fs::read_to_string(ws.join(file))
        .expect("the command wrote its child's pid")
        .trim()
        .parse()
        .expect("a pid")
}

#[tokio::test]
async fn timeout_kills_the_command_and_its_children() {
    let ws = Workspace::new();
    let runner = CheckRunner::new();
    let started = Instant::now();
    let outcome = runner
        .run(
            ws.path(),
            &run_with("sleep 30 & echo $! > child.pid; echo started; sleep 30; wait", 0, 1),
        )
        .await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(!outcome.passed);
    assert_eq!(outcome.exit_status, None, "killed by a signal");
    assert!(outcome.error.as_deref().is_some_and(|e| e.contains("timed out after 1s")));
    assert_eq!(outcome.output_tail, "started\n", "output before the kill is kept");
    let child = read_pid(&ws, "child.pid");
    assert!(wait_until_dead(child).await, "background child {child} survived the timeout");
}

#[tokio::test]
async fn background_children_do_not_outlive_a_finished_command() {
    let ws = Workspace::new();
    let runner = CheckRunner::new();
    let started = Instant::now();
    let outcome = runner.run(ws.path(), &run("sleep 30 & echo $! > child.pid; echo done")).await;
    assert!(outcome.passed, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "waited for the orphan's pipe");
    let child = read_pid(&ws, "child.pid");
    assert!(wait_until_dead(child).await, "background child {child} outlived the check");
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let ws = Workspace::new();
    let runner = CheckRunner::new();
    let check = run_with("sleep 30 & echo $! > child.pid; sleep 30", 0, 60);
    let pid_file = ws.join("child.pid");
    let cancelled =
        tokio::time::timeout(Duration::from_secs(1), async { runner.run(ws.path(), &check).await })
            .await;
    assert!(cancelled.is_err(), "the check should still be running when cancelled");
    assert!(pid_file.exists(), "the command started its child before the cancel");
    let child = read_pid(&ws, "child.pid");
    assert!(wait_until_dead(child).await, "background child {child} survived the dropped future");
}

#[tokio::test]
async fn openloom_secrets_are_scrubbed_from_the_environment() {
    let ws = Workspace::new();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let runner = CheckRunner::new().with_scrubbed_env("MY_SECRET").with_base_env([
        ("PATH", path.as_str()),
        ("OPENLOOM_API_TOKEN", "token-value"),
        ("OPENCODE_SERVER_PASSWORD", "password-value"),
        ("MY_SECRET", "secret-value"),
        ("VISIBLE", "visible-value"),
    ]);
    let outcome = runner.run(ws.path(), &run("env")).await;
    assert!(outcome.passed, "{outcome:?}");
    assert!(outcome.output_tail.contains("VISIBLE=visible-value"), "{}", outcome.output_tail);
    for hidden in ["OPENLOOM_API_TOKEN", "token-value", "password-value", "MY_SECRET"] {
        assert!(!outcome.output_tail.contains(hidden), "{hidden} leaked: {}", outcome.output_tail);
    }
}

#[tokio::test]
async fn a_missing_workspace_is_a_failed_check() {
    let ws = Workspace::new();
    let gone = ws.join("not-there");
    let outcome = CheckRunner::new().run(&gone, &run("true")).await;
    assert!(!outcome.passed);
    assert!(
        outcome.error.as_deref().is_some_and(|e| e.contains("not an existing directory")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_process_that_escapes_the_group_with_the_pipes_open_does_not_hold_the_check() {
    let ws = Workspace::new();
    let runner = CheckRunner::new();
    let started = Instant::now();
    // `setsid` leaves the process group, so the group kill cannot reach it, and it
    // keeps stdout open: the check waits a short grace for the pipes, then goes on.
    let outcome = runner
        .run(
            ws.path(),
            &run("echo before; setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & \
                  while [ ! -s escaped.pid ]; do sleep 0.05; done; echo after"),
        )
        .await;
    let took = started.elapsed();
    let escaped = read_pid(&ws, "escaped.pid");
    // This test started it; end it by its id.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(escaped), nix::sys::signal::SIGKILL);
    assert!(outcome.passed, "{outcome:?}");
    assert_eq!(outcome.output_tail, "before\nafter\n", "output up to the exit is kept");
    assert!(took < Duration::from_secs(10), "held by the escaped process for {took:?}");
}
