//! `openloom migrate` on real databases: a SQLite file with tasks, check logs (with
//! repeats) and recent workspaces, copied into a fresh PostgreSQL database, twice.

use chrono::{Duration, TimeZone, Utc};
use openloom_core::spec::TaskSpec;
use openloom_core::{
    CheckLogEntry, LogQuery, RecentWorkspaces, Store, Task, TaskId, TaskQuery, TaskStatus,
    TaskUpdate,
};
use openloom_store_postgres::PostgresStore;
use openloom_store_postgres::testing::fresh_database;
use openloom_store_sqlite::SqliteStore;

use crate::common::Sandbox;

const TASKS: usize = 60;

/// Fills `store` with `TASKS` tasks, each with a log whose first entry repeats.
async fn fill(store: &SqliteStore) {
    let t0 = Utc.with_ymd_and_hms(2025, 5, 1, 8, 0, 0).single().expect("date")
        + Duration::nanoseconds(987_654_321);
    for i in 0..TASKS {
        let id = TaskId::from(format!("task_{i:03}"));
        let at = t0 + Duration::seconds(i64::try_from(i).expect("small"));
        let spec = TaskSpec::new(format!("task {i}"), "/w", "goal");
        store.create_task(&Task::new(id.clone(), spec, at)).await.expect("create");
        let busy = CheckLogEntry::new(at, TaskStatus::Running, "Agent is busy", "busy");
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        store.update_task(&id, &update, Some(&busy)).await.expect("update");
        let later = CheckLogEntry { at: at + Duration::minutes(1), ..busy.clone() };
        let done = CheckLogEntry::new(at, TaskStatus::Running, format!("step {i}"), "");
        store.append_check_log(&id, &[later, done]).await.expect("append");
    }
    for i in 0..5 {
        store.record_workspace(&format!("/ws/{i}"), t0).await.expect("record");
    }
}

#[tokio::test]
async fn migrate_copies_everything_once() {
    let Some(db) = fresh_database().await else { return };
    let sandbox = Sandbox::new();
    let sqlite_path = sandbox.path().join("old.sqlite3");
    let sqlite = SqliteStore::open(&sqlite_path).await.expect("sqlite");
    fill(&sqlite).await;

    let args = ["migrate", "--from", "old.sqlite3", "--to", db.url.as_str()];
    let first = sandbox.run_async(&args).await;
    assert_eq!(first.code, Some(0), "{first:?}");
    assert!(
        first.stdout.contains(&format!("copied {TASKS} tasks ({} check-log entries)", TASKS * 2)),
        "{first:?}"
    );
    assert!(first.stderr.contains(&format!("{TASKS}/{TASKS} tasks")), "progress: {first:?}");

    let postgres = PostgresStore::connect(&db.url).await.expect("postgres");
    let all = TaskQuery::newest(1_000);
    let (want, got) = (
        sqlite.list_tasks(&all).await.expect("list sqlite"),
        postgres.list_tasks(&all).await.expect("list postgres"),
    );
    assert_eq!(want, got, "every task, field for field, in the same order");
    for task in &want {
        let strip = |log: Vec<openloom_core::StoredLogEntry>| {
            log.into_iter().map(|e| (e.entry, e.repeats, e.last_at)).collect::<Vec<_>>()
        };
        let old = strip(sqlite.check_log(&task.id, &LogQuery::default()).await.expect("log"));
        let new = strip(postgres.check_log(&task.id, &LogQuery::default()).await.expect("log"));
        assert_eq!(old, new, "{}: the log with its repeat counts", task.id);
        assert_eq!(new[0].1, 2, "the repeat was kept as a count");
    }
    assert_eq!(
        sqlite.recent_workspaces().await.expect("recent"),
        postgres.recent_workspaces().await.expect("recent")
    );

    let again = sandbox.run_async(&args).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(again.stdout.contains("nothing new to copy"), "{again:?}");
    assert_eq!(postgres.list_tasks(&all).await.expect("list").len(), TASKS);
    let missing_args = ["migrate", "--from", "missing.sqlite3", "--to", db.url.as_str()];
    let missing = sandbox.run_async(&missing_args).await;
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(missing.stderr.contains("missing.sqlite3 is not a file"), "{missing:?}");
    assert!(!sandbox.path().join("missing.sqlite3").exists(), "no empty file was created");
    postgres.close().await;
    db.drop_database().await;
}
