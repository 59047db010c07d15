//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use openloom_core::spec::TaskSpec;
use openloom_core::{Task, TaskId};
use openloom_store_sqlite::SqliteStore;

/// A pending task named after its id.
pub fn task(id: &str, now: DateTime<Utc>) -> Task {
    Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "goal"), now)
}

/// A database path inside `dir`, in a subdirectory that does not exist yet.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("state").join("openloom.sqlite3")
}

/// Opens (creating) the store at `path`.
pub async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path).await.expect("open the store")
}

/// A random number from the OS's randomness (via uuid v4), for random timings.
pub fn random_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}
