//! A user's pause that lands while a check runs is never overwritten by the check:
//! core's race scenario on two connection pools to one database, as two workers
//! would be.

use std::sync::Arc;

use openloom_core::{Store, conformance};

use crate::common::{self, database};

#[tokio::test]
async fn a_pause_landing_just_before_a_checks_write_wins() {
    let db = database!();
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = dir.path().to_string_lossy().into_owned();
    let open = || async { Arc::new(common::open(&db).await) as Arc<dyn Store> };
    conformance::a_pause_landing_just_before_a_checks_write_wins(open, &workspace).await;
    db.drop_database().await;
}
