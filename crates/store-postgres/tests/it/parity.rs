//! The PostgreSQL store is held to the memory and SQLite stores: core's one scenario
//! (`openloom_core::conformance::store_transcript`) must give one transcript on all
//! three (results, versions, errors, leases and repeat counts).

use chrono::Utc;
use openloom_core::conformance::{assert_same_transcripts, store_transcript};
use openloom_core::{
    CheckLogEntry, MemoryStore, RecentWorkspaces, Store, TaskId, TaskStatus, TaskUpdate,
};
use openloom_store_sqlite::SqliteStore;

use crate::common::{self, database};

#[tokio::test]
async fn memory_sqlite_and_postgres_give_one_transcript() {
    let db = database!();
    let postgres = common::open(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("parity.sqlite3")).await.expect("sqlite");
    let memory = store_transcript(&MemoryStore::new()).await;
    assert_same_transcripts(&memory, "sqlite", &store_transcript(&sqlite).await);
    assert_same_transcripts(&memory, "postgres", &store_transcript(&postgres).await);
    postgres.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn recent_workspaces_behave_like_sqlites() {
    let db = database!();
    let postgres = common::open(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = SqliteStore::open(dir.path().join("ws.sqlite3")).await.expect("sqlite");
    let now = Utc::now();
    let mut lists = Vec::new();
    for store in [&postgres as &dyn RecentWorkspaces, &sqlite as &dyn RecentWorkspaces] {
        for i in 0..25 {
            store.record_workspace(&format!("/w{i}"), now).await.expect("record");
        }
        store.record_workspace("/w10", now).await.expect("record again");
        assert!(store.remove_workspace("/w20").await.expect("remove"));
        assert!(!store.remove_workspace("/w20").await.expect("remove twice"));
        lists.push(store.recent_workspaces().await.expect("list"));
    }
    assert_eq!(lists[0], lists[1]);
    assert_eq!(lists[0].len(), 19, "20 kept, one removed");
    assert_eq!(lists[0][0].path, "/w10");
    db.drop_database().await;
}

#[tokio::test]
async fn versions_increase_across_workers_in_commit_order() {
    let db = database!();
    let (a, b) = (common::open(&db).await, common::open(&db).await);
    let now = Utc::now();
    a.create_task(&common::task("task_shared", now)).await.expect("create");
    let id = TaskId::from("task_shared");
    // Two workers writing at once: every version is handed out once, and the last
    // one written is the store's version.
    let write = |store: &'static openloom_store_postgres::PostgresStore, n: usize| {
        let id = id.clone();
        tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..20 {
                let entry = CheckLogEntry::new(now, TaskStatus::Running, format!("{n}-{i}"), "");
                let v = store.update_task(&id, &TaskUpdate::default(), Some(&entry)).await;
                versions.push(v.expect("update"));
            }
            versions
        })
    };
    let a: &'static _ = Box::leak(Box::new(a));
    let b: &'static _ = Box::leak(Box::new(b));
    let (va, vb) = (write(a, 1), write(b, 2));
    let (va, vb) = (va.await.expect("worker a"), vb.await.expect("worker b"));
    assert!(va.windows(2).all(|w| w[0] < w[1]) && vb.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = va.iter().chain(&vb).copied().collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 40, "no version was handed out twice");
    assert_eq!(a.store_version().await.expect("version"), *all.last().expect("some"));
    let task = b.get_task(&id).await.expect("get").expect("task");
    assert_eq!(task.revision, 40, "no write was lost");
    a.close().await;
    b.close().await;
    db.drop_database().await;
}
