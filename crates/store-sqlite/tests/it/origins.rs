//! Origins (`Store::create_task_once`): core's scenario on two connections to one
//! SQLite file, and an origin that survives closing and reopening the file.

use std::sync::Arc;

use chrono::Utc;
use openloom_core::conformance;
use openloom_core::{Created, Store, TaskId};

use crate::common;

#[tokio::test]
async fn origins_are_recorded_once_across_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store: Arc<dyn Store> = Arc::new(common::open(&path).await);
    let other: Arc<dyn Store> = Arc::new(common::open(&path).await);
    conformance::origins_are_recorded_once(store, other).await;
}

#[tokio::test]
async fn an_origin_is_remembered_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store = common::open(&path).await;
    let first = store.create_task_once(&common::task("task_a", Utc::now()), "inbox:a@1").await;
    assert!(matches!(first, Ok(Created::New(_))), "{first:?}");
    store.close().await;

    let store = common::open(&path).await;
    let again = store.create_task_once(&common::task("task_b", Utc::now()), "inbox:a@1").await;
    assert_eq!(again.expect("again"), Created::AlreadyHad(TaskId::from("task_a")));
    assert_eq!(store.get_task(&TaskId::from("task_b")).await.expect("read"), None);
}
