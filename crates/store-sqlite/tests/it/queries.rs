//! What only a persistent store can show: reopening, cascades, bounds, rollbacks.

use chrono::{TimeZone, Utc};
use openloom_core::{CheckLogEntry, LogQuery, Store, TaskId, TaskQuery, TaskStatus, TaskUpdate};
use serde_json::json;

use crate::common;

#[tokio::test]
async fn tasks_and_versions_survive_a_reopen_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store = common::open(&path).await;
    let mut task = common::task("task_keep", Utc::now());
    task.session_ids = vec!["ses_1".into(), "ses_2".into()];
    task.last_message_id = Some("msg_9".into());
    task.verification_rounds = 2;
    store.create_task(&task).await.expect("create");
    let mut entry = CheckLogEntry::new(Utc::now(), TaskStatus::Waiting, "retrying", "503");
    entry.evidence = Some(json!({ "checks": [{ "name": "cargo test", "passed": false }] }));
    let version =
        store.append_check_log(&task.id, std::slice::from_ref(&entry)).await.expect("append");
    store.close().await;

    let reopened = common::open(&path).await;
    let mut expected = task.clone();
    expected.last_summary = Some("retrying".into());
    assert_eq!(reopened.get_task(&task.id).await.expect("get"), Some(expected));
    let log = reopened.check_log(&task.id, &LogQuery::default()).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].entry, entry);
    assert_eq!(reopened.store_version().await.expect("version"), version);
    reopened.integrity_check().await.expect("integrity");
}

#[tokio::test]
async fn deleting_a_task_deletes_its_log_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let now = Utc::now();
    for id in ["task_a", "task_b"] {
        store.create_task(&common::task(id, now)).await.expect("create");
        let entries: Vec<_> = (0..3)
            .map(|n| CheckLogEntry::new(now, TaskStatus::Running, format!("x{n}"), ""))
            .collect();
        store.append_check_log(&TaskId::from(id), &entries).await.expect("append");
    }
    store.delete_task(&TaskId::from("task_a")).await.expect("delete");
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT task_id, COUNT(*) FROM check_log GROUP BY task_id")
            .fetch_all(store.pool())
            .await
            .expect("count rows");
    assert_eq!(rows, vec![("task_b".to_owned(), 3)]);
}

#[tokio::test]
async fn long_details_keep_their_tail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let id = TaskId::from("task_long");
    store.create_task(&common::task(id.as_str(), Utc::now())).await.expect("create");
    let mut entry = CheckLogEntry::new(Utc::now(), TaskStatus::Failed, "failed", "");
    entry.detail = format!("{}END", "a".repeat(CheckLogEntry::MAX_DETAIL_BYTES * 2));
    store.append_check_log(&id, &[entry]).await.expect("append");
    let log = store.check_log(&id, &LogQuery::default()).await.expect("log");
    assert_eq!(log[0].entry.detail.len(), CheckLogEntry::MAX_DETAIL_BYTES);
    assert!(log[0].entry.detail.ends_with("END"));
}

#[tokio::test]
async fn a_failed_update_writes_neither_the_task_nor_its_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let id = TaskId::from("task_a");
    store.create_task(&common::task(id.as_str(), Utc::now())).await.expect("create");
    let before = store.store_version().await.expect("version");
    // Year 10000 cannot be stored; the update is refused after the transaction began.
    let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).single().expect("valid date");
    let update = TaskUpdate {
        status: Some(TaskStatus::Running),
        next_check_at: Some(Some(far)),
        ..TaskUpdate::default()
    };
    let entry = CheckLogEntry::new(Utc::now(), TaskStatus::Running, "started", "");
    let err = store.update_task(&id, &update, Some(&entry)).await.expect_err("refused");
    assert!(matches!(err, openloom_core::Error::Invalid(_)), "{err}");
    assert_eq!(store.store_version().await.expect("version"), before);
    let task = store.get_task(&id).await.expect("get").expect("exists");
    assert_eq!(task.status, TaskStatus::Pending);
    assert!(store.check_log(&id, &LogQuery::default()).await.expect("log").is_empty());
    // The write lock was released: the next write goes through.
    store.update_task(&id, &TaskUpdate::default(), None).await.expect("next write");
}

#[tokio::test]
async fn the_cursor_pages_through_every_task_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    // Same creation time for all: the order must still be stable (creation order).
    let now = Utc::now();
    for i in 0..23 {
        store.create_task(&common::task(&format!("task_{i:02}"), now)).await.expect("create");
    }
    let mut seen = Vec::new();
    let mut query = TaskQuery::newest(5);
    loop {
        let page = store.list_tasks(&query).await.expect("page");
        let Some(last) = page.last() else { break };
        query.before = Some(last.id.clone());
        seen.extend(page.into_iter().map(|t| t.id.to_string()));
    }
    let expected: Vec<String> = (0..23).rev().map(|i| format!("task_{i:02}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn large_batches_keep_their_order_and_page_with_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::open(&common::db_path(dir.path())).await;
    let id = TaskId::from("task_batch");
    store.create_task(&common::task(id.as_str(), Utc::now())).await.expect("create");
    // More than one multi-row INSERT's worth, and not a multiple of it.
    let entries: Vec<CheckLogEntry> = (0..250)
        .map(|n| CheckLogEntry::new(Utc::now(), TaskStatus::Running, format!("check {n}"), ""))
        .collect();
    store.append_check_log(&id, &entries).await.expect("append");
    let mut summaries = Vec::new();
    let mut query = LogQuery { after: None, limit: 64 };
    loop {
        let page = store.check_log(&id, &query).await.expect("page");
        let Some(last) = page.last() else { break };
        assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
        query.after = Some(last.seq);
        summaries.extend(page.into_iter().map(|e| e.entry.summary));
    }
    let expected: Vec<String> = (0..250).map(|n| format!("check {n}")).collect();
    assert_eq!(summaries, expected);
    let task = store.get_task(&id).await.expect("get").expect("exists");
    assert_eq!(task.last_summary.as_deref(), Some("check 249"));
}
