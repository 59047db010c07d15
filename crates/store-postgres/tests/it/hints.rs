//! Change hints across workers: a write through one pool wakes the listener of
//! another store on the same database, and a listener whose connection the server
//! kills comes back by itself.

use std::time::Duration;

use chrono::Utc;
use openloom_core::{Store, StoreVersion};
use tokio::sync::watch;

use crate::common::{self, database};

/// Generous: the hint normally takes milliseconds, but the machine may be loaded.
const WAKE_WITHIN: Duration = Duration::from_secs(10);

/// Waits until `hints` carries at least `version`.
async fn heard(hints: &mut watch::Receiver<StoreVersion>, version: StoreVersion) {
    tokio::time::timeout(WAKE_WITHIN, hints.wait_for(|heard| *heard >= version))
        .await
        .unwrap_or_else(|_| panic!("no hint of version {version} within {WAKE_WITHIN:?}"))
        .expect("the listener stopped");
}

/// Until the listener is connected and LISTENing, a write's notification is lost (by
/// design: readers poll). Tests wait for that before relying on a wake-up. Answers
/// the listener's backend pid; `not` excludes one (a killed listener still exiting).
async fn listening(store: &openloom_store_postgres::PostgresStore, not: Option<i32>) -> i32 {
    let deadline = tokio::time::Instant::now() + WAKE_WITHIN;
    loop {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(store.pool())
        .await
        .expect("list listeners");
        if let Some(pid) = pids.into_iter().find(|pid| Some(*pid) != not) {
            return pid;
        }
        assert!(tokio::time::Instant::now() < deadline, "the listener never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_write_in_one_pool_wakes_a_listener_of_another() {
    let db = database!();
    let reader = common::open(&db).await;
    let writer = common::open(&db).await;
    let mut hints = reader.version_hints().expect("PostgreSQL gives change hints");
    listening(&reader, None).await;

    let version = writer.create_task(&common::task("t1", Utc::now())).await.expect("create");
    heard(&mut hints, version).await;
    assert_eq!(*hints.borrow_and_update(), version, "the hint names the write's version");

    // A rolled-back transaction announces nothing: only commits wake readers.
    let before = *hints.borrow_and_update();
    let mut tx = writer.pool().begin().await.expect("begin");
    sqlx::query("UPDATE meta SET value = value + 1 WHERE key = 'store_version'")
        .execute(&mut *tx)
        .await
        .expect("bump");
    sqlx::query("SELECT pg_notify('openloom_changes', '999999')")
        .execute(&mut *tx)
        .await
        .expect("notify");
    tx.rollback().await.expect("rollback");
    let version = writer.delete_task(&"t1".into()).await.expect("delete");
    heard(&mut hints, version).await;
    let after = *hints.borrow();
    assert!(after > before && after < 999_999, "rolled-back hint leaked: {after}");

    reader.close().await;
    writer.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_listener_whose_connection_is_killed_recovers() {
    let db = database!();
    let reader = common::open(&db).await;
    let writer = common::open(&db).await;
    let mut hints = reader.version_hints().expect("PostgreSQL gives change hints");
    let first = listening(&reader, None).await;
    // Marked seen before the kill: the listener may notice the loss (and wake the
    // readers) before the terminating query even returns here.
    let woken = *hints.borrow_and_update();

    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(writer.pool())
        .await
        .expect("terminate the listener");
    assert!(killed, "the listener's backend was killed");
    // The loss itself wakes readers (writes may have gone unheard meanwhile).
    tokio::time::timeout(WAKE_WITHIN, hints.changed())
        .await
        .expect("the lost connection woke the readers")
        .expect("the listener stopped");
    assert_eq!(*hints.borrow_and_update(), woken, "a wake-up for a loss names no new version");

    let second = listening(&reader, Some(first)).await;
    assert_ne!(second, first, "a new connection listens");
    let version = writer.create_task(&common::task("t2", Utc::now())).await.expect("create");
    heard(&mut hints, version).await;

    reader.close().await;
    writer.close().await;
    db.drop_database().await;
}
