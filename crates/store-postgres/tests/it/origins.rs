//! Origins (`Store::create_task_once`): core's scenario on two connection pools to
//! one database, as two workers would be.

use std::sync::Arc;

use openloom_core::{Store, conformance};

use crate::common::{self, database};

#[tokio::test]
async fn origins_are_recorded_once_across_workers() {
    let db = database!();
    let store: Arc<dyn Store> = Arc::new(common::open(&db).await);
    let other: Arc<dyn Store> = Arc::new(common::open(&db).await);
    conformance::origins_are_recorded_once(store, other).await;
    db.drop_database().await;
}
