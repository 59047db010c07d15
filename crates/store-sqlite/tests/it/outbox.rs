//! The outbox of webhook deliveries on a real file: core's outbox scenario, and
//! deliveries that outlive the process that queued them.

use chrono::Utc;
use openloom_core::conformance::outbox_scenario;
use openloom_core::{DeliveryQuery, Hook, NoticeEvent, Outbox, Store};

use crate::common;

#[tokio::test]
async fn the_sqlite_outbox_behaves_like_every_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    outbox_scenario(&common::open(&common::db_path(dir.path())).await).await;
}

#[tokio::test]
async fn a_queued_delivery_is_still_there_after_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let store = common::open(&path).await;
    store.register_hooks(&[Hook::new("http://127.0.0.1:9/h", vec![])]).await.expect("register");
    store.create_task(&common::task("task_kept", Utc::now())).await.expect("create");
    store.close().await;
    drop(store);

    let reopened = common::open(&path).await;
    let query = DeliveryQuery { limit: 10, status: None };
    let kept = reopened.list_deliveries(&query).await.expect("list");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].notice.event, NoticeEvent::Created);
    assert_eq!(kept[0].notice.task.id.as_str(), "task_kept");
}
