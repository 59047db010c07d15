//! Helpers shared by the integration tests.

use chrono::{DateTime, Utc};
pub use openloom_core::conformance::task;
use openloom_store_postgres::PostgresStore;
pub use openloom_store_postgres::testing::{TestDatabase, fresh_database};

/// `let db = database!();` — a fresh database, or return from the test when no
/// server is configured (see [`fresh_database`]).
macro_rules! database {
    () => {
        match $crate::common::fresh_database().await {
            Some(db) => db,
            None => return,
        }
    };
}
pub(crate) use database;

/// Connects a new store (its own pool) to `db`.
pub async fn open(db: &TestDatabase) -> PostgresStore {
    PostgresStore::connect(&db.url).await.expect("connect to the test database")
}

/// `now` plus `seconds`.
pub fn after(now: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    now + chrono::Duration::seconds(seconds)
}
