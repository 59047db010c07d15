//! Runs the example against the real OpenCode (from the test kit) with a scripted
//! model and a loopback health endpoint whose answer the test controls.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use openloom_core::{LogQuery, Store, TaskQuery, TaskStatus};
use openloom_store_sqlite::SqliteStore;
use openloom_testkit::{E2e, Reply, Script, Turn, require_opencode};
use tokio::process::Command;

const BOOTSTRAP: &str = "You are executing an OpenLoom harness task";
const FEEDBACK: &str = "OpenLoom verification failed";
const LIMIT: Duration = Duration::from_secs(120);

/// A health endpoint that answers 503 to its first `failures` calls and 200 after.
/// Returns its URL and the call counter.
async fn health_endpoint(failures: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || async move {
            if counter.fetch_add(1, Ordering::SeqCst) < failures {
                (StatusCode::SERVICE_UNAVAILABLE, "warming up")
            } else {
                (StatusCode::OK, "ok")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/health"), calls)
}

/// Runs the example to its end without blocking the runtime that serves the
/// scripted model and the health endpoint.
async fn run_example(
    env: &E2e,
    health_url: &str,
    database: &std::path::Path,
    extra: &[&str],
) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_example-custom-checker"))
        .args(["--opencode", &env.opencode.base_url()])
        .args(["--workspace", &env.workspace.directory()])
        .args(["--health-url", health_url])
        .args(["--database", database.to_str().expect("utf-8 path")])
        .args(["--interval", "10"])
        .args(extra)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(LIMIT, child).await.expect("the example finishes in time").expect("runs")
}

/// The check-log summaries of the only task in the store, oldest first.
async fn log_of_only_task(database: &std::path::Path) -> (TaskStatus, Vec<String>) {
    let store = SqliteStore::open(database).await.expect("store opens");
    let tasks = store.list_tasks(&TaskQuery::newest(10)).await.expect("list");
    assert_eq!(tasks.len(), 1, "one task");
    let log = store.check_log(&tasks[0].id, &LogQuery::default()).await.expect("log");
    (tasks[0].status, log.into_iter().map(|e| e.entry.summary).collect())
}

#[tokio::test]
async fn completion_waits_until_the_service_answers_200() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::text("The service is up.\nTASK COMPLETE")).when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Restarted it properly.\nTASK COMPLETE"))
            .when_user_says(FEEDBACK)
            .repeating(),
    );
    let (url, calls) = health_endpoint(1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("tasks.sqlite3");

    let output = run_example(&env, &url, &database, &[]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("COMPLETED"), "{stdout}");
    // One refused claim, one accepted (a slow machine may add a scheduled look).
    assert!(calls.load(Ordering::SeqCst) >= 2, "the endpoint was asked again after refusing");

    // The first claim was not taken: the log shows the failed probe before completion.
    let (status, log) = log_of_only_task(&database).await;
    assert_eq!(status, TaskStatus::Completed);
    let refused = log
        .iter()
        .position(|s| s.contains("Checks for task completion failed (http_get: "))
        .unwrap_or_else(|| panic!("a refused claim in {log:#?}"));
    assert!(refused < log.len() - 1, "completion came after the refusal: {log:#?}");

    // And the agent was told what failed, with the endpoint's answer.
    let feedback = env
        .model
        .requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .find(|t| t.contains(FEEDBACK))
        .expect("the agent got the failure back");
    assert!(feedback.contains(&format!("Check: http_get: {url} answers 200")), "{feedback}");
    assert!(feedback.contains("503"), "{feedback}");
}

#[tokio::test]
async fn a_service_that_never_comes_up_fails_the_task() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model
        .push_turn(Turn::reply(Reply::text("Done!\nTASK COMPLETE")).when_user_prompt().repeating());
    let (url, calls) = health_endpoint(usize::MAX).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("tasks.sqlite3");

    let output = run_example(&env, &url, &database, &["--max-rounds", "2"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}");
    assert!(stdout.contains("FAILED"), "{stdout}");
    assert!(calls.load(Ordering::SeqCst) >= 2, "a probe per round");
    let (status, log) = log_of_only_task(&database).await;
    assert_eq!(status, TaskStatus::Failed);
    assert!(log.iter().any(|s| s.contains("failed 2 times")), "{log:#?}");
}
