//! Damaged task rows (a hand edit, a disk fault): the task is named in the error,
//! and the lists, the harness's due query and the counts go on without it.

use chrono::{Duration, Utc};
use openloom_core::{Store, TaskId, TaskQuery, TaskStatus, TaskUpdate};
use openloom_store_sqlite::{Error, SqliteStore};

use crate::common;

/// Twelve tasks, `task_00` (oldest) to `task_11`, three of them then damaged.
async fn store_with_damage(dir: &std::path::Path) -> SqliteStore {
    let store = common::open(&common::db_path(dir)).await;
    let now = Utc::now();
    for i in 0..12 {
        let mut task = common::task(&format!("task_{i:02}"), now);
        task.next_check_at = Some(now - Duration::seconds(60 - i));
        store.create_task(&task).await.expect("create");
    }
    for (id, damage) in [
        ("task_09", "spec_json = '{not json'"),
        ("task_08", "created_at = 'yesterday'"),
        ("task_04", "status = 'exploded'"),
    ] {
        sqlx::query(&format!("UPDATE tasks SET {damage} WHERE id = ?"))
            .bind(id)
            .execute(store.pool())
            .await
            .expect("damage a row");
    }
    store
}

fn ids(tasks: &[openloom_core::Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

#[tokio::test]
async fn reading_a_damaged_task_names_it_and_the_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_damage(dir.path()).await;
    for (id, column) in [("task_09", "spec_json"), ("task_08", "created_at"), ("task_04", "status")]
    {
        let err = store.get_task(&TaskId::from(id)).await.expect_err("damaged");
        let text = err.to_string();
        assert!(text.contains(id) && text.contains(column), "{text}");
        let openloom_core::Error::Store { source: Some(source), .. } = &err else {
            panic!("a store error: {err:?}")
        };
        let inner = source.downcast_ref::<Error>().expect("this crate's error");
        assert!(matches!(inner, Error::UndecodableTask { .. }), "{inner:?}");
        // An update reads the row first, so it fails the same way, and changes nothing.
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        let err = store.update_task(&TaskId::from(id), &update, None).await.expect_err("damaged");
        assert!(err.to_string().contains(id), "{err}");
    }
}

#[tokio::test]
async fn lists_skip_damaged_tasks_and_still_fill_their_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_damage(dir.path()).await;
    let readable: Vec<String> =
        (0..12).rev().filter(|i| ![9, 8, 4].contains(i)).map(|i| format!("task_{i:02}")).collect();

    let all = store.list_tasks(&TaskQuery::newest(100)).await.expect("list");
    assert_eq!(ids(&all), readable);

    // Pages of three: full pages across the damage, each readable task once.
    let mut seen = Vec::new();
    let mut query = TaskQuery::newest(3);
    loop {
        let page = store.list_tasks(&query).await.expect("page");
        seen.extend(page.iter().map(|t| t.id.to_string()));
        if page.len() < 3 {
            break;
        }
        query.before = page.last().map(|t| t.id.clone());
    }
    assert_eq!(seen, readable);

    let found = store.find_by_prefix("task_", 4).await.expect("prefix");
    assert_eq!(ids(&found), ["task_11", "task_10", "task_07", "task_06"]);

    // The harness's query: oldest due first, damaged ones left out.
    let due = store.list_due_tasks(Utc::now(), 5).await.expect("due");
    assert_eq!(ids(&due), ["task_00", "task_01", "task_02", "task_03", "task_05"]);

    let counts = store.count_by_status().await.expect("counts");
    assert_eq!(counts.get(&TaskStatus::Pending), Some(&11), "{counts:?}");
    assert_eq!(counts.values().sum::<u64>(), 11);
}

#[tokio::test]
async fn a_damaged_task_can_still_be_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store_with_damage(dir.path()).await;
    store.delete_task(&TaskId::from("task_09")).await.expect("delete");
    assert_eq!(store.get_task(&TaskId::from("task_09")).await.expect("get"), None);
}
