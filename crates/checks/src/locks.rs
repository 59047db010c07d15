//! One check run at a time per workspace.
//!
//! Checks that build, test or inspect git state interfere when two run in the same
//! tree at once (two `cargo test`s fight over `target/`, a `changes_within` sees a
//! half-written file). The runner therefore serializes runs per canonical workspace
//! path, while different workspaces proceed in parallel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// A map from canonical workspace path to the lock that serializes its check runs.
#[derive(Debug, Default)]
pub struct WorkspaceLocks {
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl WorkspaceLocks {
    /// An empty set of locks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no other run holds `workspace`, then holds it until the guard drops.
    ///
    /// The key is the canonical path, so `ws`, `./ws` and a symlink to it share one
    /// lock; a path that cannot be canonicalized is used as given.
    pub async fn lock(&self, workspace: &Path) -> OwnedMutexGuard<()> {
        let key = workspace.canonicalize().unwrap_or_else(|_| workspace.to_owned());
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
            // Forget locks nobody holds or waits for, so the map stays small.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(key).or_default())
        };
        lock.lock_owned().await
    }

    /// Number of workspaces with a run in progress or waiting (for tests and metrics).
    pub fn active(&self) -> usize {
        let locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.values().filter(|lock| Arc::strong_count(lock) > 1).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_workspace_waits_and_others_do_not() {
        let locks = WorkspaceLocks::new();
        let first = tempfile::tempdir().expect("temp dir");
        let second = tempfile::tempdir().expect("temp dir");
        let held = locks.lock(first.path()).await;
        // Another spelling of the same directory must wait.
        let dotted = first.path().join(".");
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(&dotted)).await;
        assert!(waiting.is_err(), "the same workspace must be serialized");
        let other =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock(second.path()))
                .await;
        assert!(other.is_ok(), "a different workspace must not wait");
        drop(other);
        assert_eq!(locks.active(), 1);
        drop(held);
        assert_eq!(locks.active(), 0);
    }
}
