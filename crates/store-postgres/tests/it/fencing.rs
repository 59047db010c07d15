//! Leases fence: a worker whose claim expired and passed to another cannot write,
//! whatever it believes; and of several workers claiming one task at once exactly
//! one wins.

use chrono::Utc;
use openloom_core::store::{Guard, Rejection, WriteOutcome};
use openloom_core::{CheckLogEntry, LogQuery, Store, TaskId, TaskStatus, TaskUpdate};

use crate::common::{self, after, database};

#[tokio::test]
async fn a_worker_past_its_lease_is_fenced_off() {
    let db = database!();
    let (a, b) = (common::open(&db).await, common::open(&db).await);
    let id = TaskId::from("task_fenced");
    a.create_task(&common::task("task_fenced", Utc::now())).await.expect("create");

    // A claims with a lease that is already over when B looks (a paused VM).
    let now = Utc::now();
    let lease_a = a
        .claim_task(&id, "worker-a", now, after(now, 30))
        .await
        .expect("claim")
        .expect("a free task is granted");
    let wall = Utc::now();
    assert_eq!(
        b.claim_task(&id, "worker-b", wall, after(wall, 60)).await.expect("claim"),
        None,
        "a valid lease is not taken over"
    );
    // B's clock has passed A's lease; B's own lease is valid by the wall clock.
    let later = after(now, 31);
    let lease_b = b
        .claim_task(&id, "worker-b", later, after(Utc::now(), 60))
        .await
        .expect("claim")
        .expect("an expired lease is taken over");
    assert_eq!(lease_b.epoch, lease_a.epoch + 1);

    let entry = CheckLogEntry::new(now, TaskStatus::Running, "checked", "");
    let update = TaskUpdate { current_step: Some(1), ..TaskUpdate::default() };
    let stale = a
        .write_task(&id, &update, Some(&entry), &Guard::at_revision(0).holding(lease_a.clone()))
        .await
        .expect("write");
    match stale {
        WriteOutcome::Rejected(Rejection::LeaseLost { lease, held }) => {
            assert_eq!(lease, lease_a);
            assert_eq!(held, Some(lease_b.clone()));
        }
        other => panic!("A's write with the old epoch was not fenced: {other:?}"),
    }
    let fresh = b
        .write_task(&id, &update, Some(&entry), &Guard::at_revision(0).holding(lease_b.clone()))
        .await
        .expect("write");
    assert!(matches!(fresh, WriteOutcome::Written { revision: 1, .. }), "{fresh:?}");
    let log = a.check_log(&id, &LogQuery::default()).await.expect("log");
    assert_eq!(log.len(), 1, "only B's write left a log entry");

    // Renewing extends only a claim still valid: A's expired one stays lost.
    a.renew_claims("worker-a", after(Utc::now(), 600)).await.expect("renew");
    let wall = Utc::now();
    assert_eq!(a.claim_task(&id, "worker-a", wall, after(wall, 60)).await.expect("claim"), None);
    // Released and retaken, the epoch still grows: an old lease never matches again.
    b.release_claims("worker-b").await.expect("release");
    let retaken = a
        .claim_task(&id, "worker-a", wall, after(wall, 60))
        .await
        .expect("claim")
        .expect("a released task is free");
    assert_eq!(retaken.epoch, lease_b.epoch + 1);
    a.close().await;
    b.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn of_workers_claiming_at_once_exactly_one_wins() {
    let db = database!();
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(std::sync::Arc::new(common::open(&db).await));
    }
    let now = Utc::now();
    for i in 0..10 {
        let task = common::task(&format!("task_{i}"), now);
        stores[0].create_task(&task).await.expect("create");
    }
    let mut claims = tokio::task::JoinSet::new();
    for (n, store) in stores.iter().enumerate() {
        let store = store.clone();
        claims.spawn(async move {
            let mut won = Vec::new();
            for i in 0..10 {
                let id = TaskId::from(format!("task_{i}"));
                let now = Utc::now();
                let lease = store.claim_task(&id, &format!("w{n}"), now, after(now, 60)).await;
                if let Some(lease) = lease.expect("claim") {
                    won.push((i, lease));
                }
            }
            won
        });
    }
    let mut winners = vec![0; 10];
    while let Some(won) = claims.join_next().await {
        for (i, lease) in won.expect("claimer") {
            winners[i] += 1;
            assert_eq!(lease.epoch, 1, "task_{i}: the first claim is epoch 1");
        }
    }
    assert_eq!(winners, vec![1; 10], "each task has exactly one holder");
    db.drop_database().await;
}

#[tokio::test]
async fn batch_claims_follow_the_conformance_scenario_across_workers() {
    let db = database!();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(common::open(&db).await);
    let other: std::sync::Arc<dyn Store> = std::sync::Arc::new(common::open(&db).await);
    openloom_core::conformance::batch_claims_scenario(store, other).await;
    db.drop_database().await;
}

#[tokio::test]
async fn tasks_bound_to_opencode_servers_follow_the_conformance_scenario() {
    let db = database!();
    let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(common::open(&db).await);
    openloom_core::conformance::opencode_binding_scenario(store).await;
    db.drop_database().await;
}

#[tokio::test]
async fn releasing_and_renewing_never_wait_on_a_claim_row_another_transaction_holds() {
    // A batch claim's `ON CONFLICT` locks the claim rows it meets; a release or
    // renewal waiting for one of them while holding others could deadlock with it.
    // Here a transaction holds one of worker-a's claim rows: release and renewal
    // carry on without it, and the held claim is released once it is free.
    let db = database!();
    let store = common::open(&db).await;
    let now = Utc::now();
    for id in ["task_r1", "task_r2", "task_r3"] {
        store.create_task(&common::task(id, now)).await.expect("create");
        let claimed = store.claim_task(&TaskId::from(id), "worker-a", now, after(now, 30)).await;
        assert!(claimed.expect("claim").is_some());
    }
    let mut holder = store.pool().begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM task_claims WHERE task_id = 'task_r2' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("hold a claim row");
    let quick = std::time::Duration::from_secs(5);
    tokio::time::timeout(quick, store.renew_claims("worker-a", after(now, 60)))
        .await
        .expect("renewal does not wait for the held row")
        .expect("renew");
    tokio::time::timeout(quick, store.release_claims("worker-a"))
        .await
        .expect("release does not wait for the held row")
        .expect("release");
    async fn owners(
        store: &openloom_store_postgres::PostgresStore,
    ) -> std::collections::HashMap<TaskId, String> {
        let ids: Vec<TaskId> = ["task_r1", "task_r2", "task_r3"].map(TaskId::from).to_vec();
        store.drivers(&ids, Utc::now()).await.expect("drivers")
    }
    let left = owners(&store).await;
    assert_eq!(left.keys().map(TaskId::as_str).collect::<Vec<_>>(), ["task_r2"], "{left:?}");
    holder.rollback().await.expect("let go");
    store.release_claims("worker-a").await.expect("release the rest");
    assert!(owners(&store).await.is_empty(), "every claim released");
}
