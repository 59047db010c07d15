//! Runs the example binary against the real OpenCode (from the test kit) with a
//! scripted model, and checks what it leaves behind: the file the agent wrote, the
//! events file and the task in the SQLite store.

use std::process::Output;
use std::time::Duration;

use openloom_core::{Store, TaskQuery, TaskStatus};
use openloom_store_sqlite::SqliteStore;
use openloom_testkit::{E2e, Reply, Script, Turn, require_opencode};
use tokio::process::Command;

const BOOTSTRAP: &str = "You are executing an OpenLoom harness task";
/// Each step takes about a second (idle events); the limit only guards a hang.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs the example to its end. `tokio::process` waits without blocking the
/// runtime, which also serves the scripted model OpenCode is talking to.
async fn run_example(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_example-embed-harness"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(LIMIT, child).await.expect("the example finishes in time").expect("runs")
}

#[tokio::test]
async fn drives_the_task_to_completion_and_logs_every_event() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let hello = env.workspace.file("hello.txt");
    env.model.push_turn(
        Turn::reply(Reply::write_file(&hello, "Hello, reader!\n")).when_user_says(BOOTSTRAP),
    );
    env.model
        .push_turn(Turn::reply(Reply::text("Wrote hello.txt.\nSTEP DONE: 1")).when_tool_result());
    env.model.push_turn(
        Turn::reply(Reply::text("Reviewed it.\nSTEP DONE: 2\nTASK COMPLETE"))
            .when_user_says("Focus on step 2"),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("tasks.sqlite3");
    let events = dir.path().join("events.jsonl");
    let output = run_example(&[
        "--opencode",
        &env.opencode.base_url(),
        "--workspace",
        &env.workspace.directory(),
        "--database",
        database.to_str().expect("utf-8 path"),
        "--events",
        events.to_str().expect("utf-8 path"),
        "--interval",
        "10",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("completed"), "{stdout}");
    assert_eq!(env.workspace.read("hello.txt").as_deref(), Some("Hello, reader!\n"));

    // The events file: one JSON object per line, all for the one task, in store order.
    let text = std::fs::read_to_string(&events).expect("events.jsonl written");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("each line is JSON")).collect();
    let version_of = |kind: &str| {
        lines
            .iter()
            .find(|e| e["type"] == kind)
            .and_then(|e| e["store_version"].as_u64())
            .unwrap_or_else(|| panic!("a {kind} event in {text}"))
    };
    let (created, started, completed) =
        (version_of("created"), version_of("started"), version_of("completed"));
    assert!(created < started && started < completed, "{text}");
    let versions: Vec<u64> = lines.iter().filter_map(|e| e["store_version"].as_u64()).collect();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "versions never go back: {versions:?}");
    assert_eq!(lines.last().map(|e| e["type"].clone()), Some("completed".into()), "{text}");
    assert!(lines.iter().all(|e| e["task_id"] == lines[0]["task_id"]), "one task: {text}");

    // The store agrees with the events.
    let store = SqliteStore::open(&database).await.expect("store opens");
    let tasks = store.list_tasks(&TaskQuery::newest(10)).await.expect("list");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].status, TaskStatus::Completed);
    assert_eq!(tasks[0].completed_steps, vec![1, 2]);
    assert_eq!(serde_json::Value::from(tasks[0].id.as_str()), lines[0]["task_id"]);
    assert!(store.store_version().await.expect("version") >= completed);
}

#[tokio::test]
async fn a_missing_workspace_is_a_setup_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    let output = run_example(&["--workspace", missing.to_str().expect("utf-8 path")]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot be used"));
}
