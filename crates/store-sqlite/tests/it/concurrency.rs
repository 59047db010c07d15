//! Many writers on one file: separate pools in one process, and separate processes.
//! Versions must be unique and strictly increasing per writer, with no lock errors.

use std::collections::HashSet;

use chrono::Utc;
use openloom_core::{CheckLogEntry, LogQuery, Store, TaskId, TaskQuery, TaskStatus, TaskUpdate};

use crate::child::{self, COUNT_ENV};
use crate::common;

fn assert_versions(per_writer: &[Vec<u64>], base: u64, total: usize) {
    for versions in per_writer {
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "not increasing: {versions:?}");
    }
    let all: HashSet<u64> = per_writer.iter().flatten().copied().collect();
    assert_eq!(all.len(), total, "versions were reused");
    let expected: HashSet<u64> = (base + 1..=base + u64::try_from(total).expect("small")).collect();
    assert_eq!(all, expected, "versions have gaps or strays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_on_separate_pools_never_see_a_locked_database() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let base = common::open(&path).await.store_version().await.expect("version");
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            // Each writer has its own store, hence its own pool and connections.
            let store = common::open(&path).await;
            let mut versions = Vec::new();
            for i in 0..ROUNDS {
                let id = TaskId::from(format!("task_{w}_{i}"));
                let now = Utc::now();
                versions.push(
                    store.create_task(&common::task(id.as_str(), now)).await.expect("create"),
                );
                let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "");
                let update =
                    TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
                versions.push(store.update_task(&id, &update, Some(&entry)).await.expect("update"));
            }
            versions
        }));
    }
    let mut per_writer = Vec::new();
    for handle in handles {
        per_writer.push(handle.await.expect("writer task"));
    }
    assert_versions(&per_writer, base, WRITERS * ROUNDS * 2);
    let store = common::open(&path).await;
    let tasks = store.list_tasks(&TaskQuery::newest(10_000)).await.expect("list");
    assert_eq!(tasks.len(), WRITERS * ROUNDS);
    assert!(tasks.iter().all(|t| t.status == TaskStatus::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_separate_processes_never_see_a_locked_database() {
    const PROCESSES: usize = 4;
    const COUNT: usize = 40;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    // Create the schema first, as the server does before anything else writes.
    let store = common::open(&path).await;
    let base = store.store_version().await.expect("version");
    let children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            child::command("writer", &path, &format!("p{p}"))
                .env(COUNT_ENV, COUNT.to_string())
                .spawn()
                .expect("spawn a writer process")
        })
        .collect();
    let mut per_writer = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("writer output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "writer failed: {stdout}\n{stderr}");
        assert!(!stdout.contains("ERR ") && !stdout.contains("locked"), "{stdout}");
        let acks = child::parse_acks(&stdout);
        assert_eq!(acks.len(), COUNT * 2, "{stdout}\n{stderr}");
        per_writer.push(acks.into_iter().map(|a| a.version).collect::<Vec<_>>());
    }
    assert_versions(&per_writer, base, PROCESSES * COUNT * 2);
    let tasks = store.list_tasks(&TaskQuery::newest(10_000)).await.expect("list");
    assert_eq!(tasks.len(), PROCESSES * COUNT);
    for task in tasks.iter().take(5) {
        let log = store.check_log(&task.id, &LogQuery::default()).await.expect("log");
        assert_eq!(log.len(), 1);
    }
}

#[tokio::test]
async fn every_connection_waits_five_seconds_by_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    // Several connections at once, so more than the first one is looked at.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = store.pool().acquire().await.expect("connection");
        let timeout: i64 =
            sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(&mut *conn).await.expect("pragma");
        assert_eq!(timeout, 5_000);
        held.push(conn);
    }
}

#[tokio::test]
async fn a_write_lock_held_past_the_busy_timeout_is_a_busy_error_naming_the_file() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    common::open(&path).await.close().await;
    let options = openloom_store_sqlite::StoreOptions {
        busy_timeout: std::time::Duration::from_millis(300),
        ..openloom_store_sqlite::StoreOptions::default()
    };
    let store = openloom_store_sqlite::SqliteStore::open_with(&path, &options).await.expect("open");
    // Another "process" takes the write lock and keeps it.
    let connect = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let mut other = sqlx::SqliteConnection::connect_with(&connect).await.expect("connect");
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.expect("take the write lock");

    let started = std::time::Instant::now();
    let err = store.create_task(&common::task("task_a", Utc::now())).await.expect_err("busy");
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_millis(250), "gave up after {waited:?}");
    assert!(err.is_transient(), "a lock held elsewhere is worth retrying: {err:?}");
    let openloom_core::Error::StoreBusy { source: Some(source), message } = &err else {
        panic!("a busy-store error: {err:?}")
    };
    assert!(
        matches!(
            source.downcast_ref::<openloom_store_sqlite::Error>(),
            Some(openloom_store_sqlite::Error::Busy { .. })
        ),
        "{err:?}"
    );
    assert!(message.contains(&path.display().to_string()), "{message}");

    // Once the lock is released, the same store writes again.
    sqlx::query("ROLLBACK").execute(&mut other).await.expect("release");
    store.create_task(&common::task("task_a", Utc::now())).await.expect("written after release");
}
