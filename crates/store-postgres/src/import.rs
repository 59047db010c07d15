//! Copying history in from another store (`openloom migrate`).

use openloom_core::{Result, StoredLogEntry, Task};

use crate::store::{PostgresStore, Run, insert_runs, insert_task};

impl PostgresStore {
    /// Inserts `task` exactly as given (revision, timestamps and all) with its check
    /// log `log` (oldest first, repeat counts kept; entries get this database's
    /// sequence numbers, in the same order), in one transaction. Returns `false`, and
    /// changes nothing, when a task with this id exists: importing twice copies
    /// nothing new.
    pub async fn import_task(&self, task: &Task, log: &[StoredLogEntry]) -> Result<bool> {
        let mut tx = self.begin().await?;
        if !insert_task(&mut tx, self.target(), task).await? {
            return Ok(false);
        }
        let runs: Vec<Run> = log
            .iter()
            .map(|stored| Run {
                entry: stored.entry.clone(),
                repeats: stored.repeats,
                last_at: stored.last_at,
            })
            .collect();
        insert_runs(&mut tx, self.target(), &task.id, &runs).await?;
        self.commit(tx).await?;
        Ok(true)
    }
}
