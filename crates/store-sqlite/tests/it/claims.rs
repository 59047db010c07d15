//! Task claims between two stores on one file, as two processes would hold them.

use chrono::{Duration, Utc};
use openloom_core::{Store, TaskId};

use crate::common;

#[tokio::test]
async fn a_claim_is_exclusive_until_it_expires_or_is_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::db_path(dir.path());
    let serve = common::open(&path).await;
    let watch = common::open(&path).await;
    let now = Utc::now();
    serve.create_task(&common::task("task_a", now)).await.expect("create");
    let id = TaskId::from("task_a");
    let version = serve.store_version().await.expect("version");

    let minute = now + Duration::seconds(60);
    let first = serve.claim_task(&id, "serve", now, minute).await.expect("claim").expect("granted");
    assert_eq!(first.epoch, 1);
    assert_eq!(watch.claim_task(&id, "watch", now, minute).await.expect("held elsewhere"), None);
    let renewed = serve.claim_task(&id, "serve", now, minute).await.expect("renewed by its owner");
    assert_eq!(renewed, Some(first.clone()), "a renewal keeps the epoch");

    // Renewed past the other's clock, the claim still holds; expired, it is taken over.
    let later = now + Duration::seconds(90);
    serve.renew_claims("serve", later + Duration::seconds(60)).await.expect("renew");
    assert_eq!(watch.claim_task(&id, "watch", later, later).await.expect("renewed claim"), None);
    let much_later = later + Duration::seconds(61);
    let watch_until = much_later + Duration::seconds(60);
    let taken = watch.claim_task(&id, "watch", much_later, watch_until).await.expect("expired");
    assert_eq!(taken.map(|l| l.epoch), Some(2), "taken over: a new epoch");
    assert_eq!(serve.claim_task(&id, "serve", much_later, much_later).await.expect("lost"), None);

    // Released, it is free at once.
    watch.release_claims("watch").await.expect("release");
    let again = serve.claim_task(&id, "serve", now, minute).await.expect("free again");
    assert_eq!(again.map(|l| l.epoch), Some(3), "a released epoch is never given again");

    assert_eq!(serve.store_version().await.expect("version"), version, "claims are no data");
}

#[tokio::test]
async fn claims_need_the_task_and_go_with_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = common::open(&common::db_path(dir.path())).await;
    let now = Utc::now();
    let later = now + Duration::seconds(60);
    let missing = store.claim_task(&TaskId::from("task_x"), "a", now, later).await;
    assert!(matches!(missing, Err(openloom_core::Error::NotFound { .. })), "{missing:?}");

    store.create_task(&common::task("task_a", now)).await.expect("create");
    let id = TaskId::from("task_a");
    assert!(store.claim_task(&id, "a", now, later).await.expect("claim").is_some());
    store.delete_task(&id).await.expect("delete");
    store.create_task(&common::task("task_a", now)).await.expect("create again");
    let fresh = store.claim_task(&id, "b", now, later).await.expect("the old claim went with it");
    assert_eq!(fresh.map(|l| l.epoch), Some(1), "epochs go with the task");
}

#[tokio::test]
async fn batch_claims_follow_the_conformance_scenario_across_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = common::db_path(dir.path());
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(common::open(&path).await);
    let other: std::sync::Arc<dyn Store> = std::sync::Arc::new(common::open(&path).await);
    openloom_core::conformance::batch_claims_scenario(store, other).await;
}

#[tokio::test]
async fn tasks_bound_to_opencode_servers_follow_the_conformance_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(common::open(&common::db_path(dir.path())).await);
    openloom_core::conformance::opencode_binding_scenario(store).await;
}
