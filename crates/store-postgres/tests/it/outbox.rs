//! The outbox of webhook deliveries on a real PostgreSQL database: core's outbox
//! scenario, and two workers claiming at once, each due row going to one of them.

use chrono::{Duration, Utc};
use openloom_core::conformance::outbox_scenario;
use openloom_core::{Hook, Outbox, Store};

use crate::common::{self, database};

#[tokio::test]
async fn the_postgres_outbox_behaves_like_every_store() {
    let db = database!();
    let store = common::open(&db).await;
    outbox_scenario(&store).await;
    store.close().await;
    db.drop_database().await;
}

#[tokio::test]
async fn two_workers_claiming_at_once_never_take_the_same_delivery() {
    let db = database!();
    let (a, b) = (common::open(&db).await, common::open(&db).await);
    let hook = Hook::new("http://127.0.0.1:9/h", vec![]);
    a.register_hooks(std::slice::from_ref(&hook)).await.expect("register");
    let now = Utc::now();
    for i in 0..20 {
        a.create_task(&common::task(&format!("task_{i:02}"), now)).await.expect("create");
    }
    let (soon, until) = (Utc::now() + Duration::seconds(1), Utc::now() + Duration::minutes(1));
    let ids = vec![hook.id.clone()];
    let mut taken = Vec::new();
    for _ in 0..5 {
        let (x, y) =
            tokio::join!(a.claim_due(&ids, soon, until, 3), b.claim_due(&ids, soon, until, 3));
        taken.extend(x.expect("claim a").into_iter().chain(y.expect("claim b")).map(|d| d.id));
    }
    let mut unique = taken.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), taken.len(), "a delivery was claimed twice");
    assert_eq!(taken.len(), 20, "every due delivery was claimed once");
    a.close().await;
    b.close().await;
    db.drop_database().await;
}
