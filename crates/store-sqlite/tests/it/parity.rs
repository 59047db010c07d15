//! Behaviour parity with core's `MemoryStore`: core's one scenario
//! (`openloom_core::conformance::store_transcript`), run against both, must produce
//! the same transcript (results, versions and errors). The PostgreSQL store's tests
//! hold it to both.

use chrono::Utc;
use openloom_core::conformance::{assert_same_transcripts, store_transcript};
use openloom_core::{CheckLogEntry, MemoryStore, Store, TaskId, TaskStatus, TaskUpdate};

use crate::common;

#[tokio::test]
async fn the_sqlite_store_behaves_like_the_memory_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = common::open(&common::db_path(dir.path())).await;
    let expected = store_transcript(&MemoryStore::new()).await;
    let actual = store_transcript(&sqlite).await;
    assert_same_transcripts(&expected, "sqlite", &actual);
}

#[tokio::test]
async fn every_write_bumps_the_version() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let now = Utc::now();
    let v1 = store.create_task(&common::task("task_a", now)).await.expect("create");
    let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "");
    let id = TaskId::from("task_a");
    let v2 = store.update_task(&id, &TaskUpdate::default(), Some(&entry)).await.expect("update");
    let v3 = store.append_check_log(&id, &[entry]).await.expect("append");
    let v4 = store.delete_task(&id).await.expect("delete");
    assert!(v1 < v2 && v2 < v3 && v3 < v4, "{v1} {v2} {v3} {v4}");
    assert_eq!(store.store_version().await.expect("version"), v4);
}
