//! Seeds a temporary SQLite store through the public API and checks what the
//! example prints: every task once, newest first across pages, with the tail of its
//! check log.

use std::process::{Command, Output};

use chrono::{Duration, Utc};
use openloom_core::{CheckLogEntry, Store, Task, TaskId, TaskSpec, TaskStatus, TaskUpdate};
use openloom_store_sqlite::SqliteStore;

fn list(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_example-list-tasks")).args(args).output().expect("runs")
}

async fn seed(path: &std::path::Path) {
    let store = SqliteStore::open(path).await.expect("store opens");
    let start = Utc::now() - Duration::minutes(10);
    for n in 1..=5 {
        let spec = TaskSpec::new(format!("Task number {n}"), "/tmp", "goal");
        let task = Task::new(TaskId::from(format!("task_{n:012}")), spec, start);
        store.create_task(&task).await.expect("create");
    }
    // Task 3 ran for a while: a long log (more than one page of LogQuery) and a status.
    let busy = TaskId::from(format!("task_{:012}", 3));
    let entries: Vec<CheckLogEntry> = (1..=105)
        .map(|i| {
            CheckLogEntry::new(
                start + Duration::seconds(i),
                TaskStatus::Running,
                format!("entry {i:03}."),
                "",
            )
        })
        .collect();
    store.append_check_log(&busy, &entries).await.expect("append");
    let update = TaskUpdate {
        status: Some(TaskStatus::Completed),
        progress: Some(1.0),
        ..TaskUpdate::default()
    };
    let last = CheckLogEntry::new(Utc::now(), TaskStatus::Completed, "entry 106.", "");
    store.update_task(&busy, &update, Some(&last)).await.expect("update");
    store.close().await;
}

#[tokio::test]
async fn lists_every_task_newest_first_with_the_last_three_log_entries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("tasks.sqlite3");
    seed(&database).await;

    // A page size of 2 makes three pages of tasks.
    let output = list(&[database.to_str().expect("utf-8 path"), "--page-size", "2"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));

    let task_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("task_")).collect();
    let ids: Vec<&str> = task_lines.iter().filter_map(|l| l.split_whitespace().next()).collect();
    let expected: Vec<String> = (1..=5).rev().map(|n| format!("task_{n:012}")).collect();
    assert_eq!(ids, expected, "{stdout}");
    assert!(task_lines[2].contains("completed") && task_lines[2].contains("100%"), "{stdout}");
    assert!(task_lines[0].contains("pending") && task_lines[0].contains("Task number 5"));

    for shown in ["entry 104.", "entry 105.", "entry 106."] {
        assert_eq!(stdout.matches(shown).count(), 1, "{shown} in:\n{stdout}");
    }
    assert!(!stdout.contains("entry 103."), "only the last three:\n{stdout}");
    assert!(stdout.contains("5 task(s)"), "{stdout}");
}

#[test]
fn a_missing_database_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.sqlite3");
    let output = list(&[missing.to_str().expect("utf-8 path")]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no OpenLoom database"));
    assert!(!missing.exists());
}
