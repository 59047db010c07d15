//! A user's pause that lands while a check runs is never overwritten by the check:
//! core's race scenario (`openloom_core::conformance`) on two connections to one
//! SQLite file, as two processes would be.

use std::sync::Arc;

use openloom_core::Store;
use openloom_core::conformance;

use crate::common;

#[tokio::test]
async fn a_pause_landing_just_before_a_checks_write_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let workspace = dir.path().to_string_lossy().into_owned();
    let open = || async { Arc::new(common::open(&path).await) as Arc<dyn Store> };
    conformance::a_pause_landing_just_before_a_checks_write_wins(open, &workspace).await;
}
