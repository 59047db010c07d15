//! [`RecentWorkspaces`] in the same database.
//!
//! Order is kept by an explicit `rank` (higher is more recent), as in the SQLite
//! store. Two workers recording at once could compute the same next rank, so a
//! write takes the table's write lock first: these writes are rare (a user
//! creating a task), and an order that ties would be an order that flips.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::store::RECENT_WORKSPACES_KEPT;
use openloom_core::{RecentWorkspace, RecentWorkspaces, Result};

use crate::codec;
use crate::error::SqlxResultExt;
use crate::store::{PostgresStore, Tx, sql_int};

/// Deletes all but the newest [`RECENT_WORKSPACES_KEPT`].
const TRIM: &str = "DELETE FROM recent_workspaces WHERE path NOT IN \
     (SELECT path FROM recent_workspaces ORDER BY rank DESC LIMIT $1)";

impl PostgresStore {
    /// Starts a workspace write: a transaction holding the table's write lock.
    async fn begin_workspaces(&self) -> Result<Tx> {
        let mut tx = self.begin().await?;
        sqlx::query("LOCK TABLE recent_workspaces IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(tx)
    }

    /// Adds `path` behind every known workspace if it is not known (with `used_at`
    /// kept), for `openloom migrate`, which copies a list newest first. Returns
    /// whether it was added.
    pub async fn import_workspace(&self, workspace: &RecentWorkspace) -> Result<bool> {
        let used_at = codec::timestamp(&workspace.used_at)?;
        let mut tx = self.begin_workspaces().await?;
        let inserted = sqlx::query(
            "INSERT INTO recent_workspaces (path, used_at, rank) \
             VALUES ($1, $2, (SELECT COALESCE(MIN(rank), 1) - 1 FROM recent_workspaces)) \
             ON CONFLICT (path) DO NOTHING",
        )
        .bind(&workspace.path)
        .bind(used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        sqlx::query(TRIM).bind(kept()).execute(&mut *tx).await.map_err(|e| self.fail(e))?;
        self.commit(tx).await?;
        Ok(true)
    }
}

fn kept() -> i64 {
    sql_int(RECENT_WORKSPACES_KEPT)
}

#[async_trait]
impl RecentWorkspaces for PostgresStore {
    async fn record_workspace(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        let used_at = codec::timestamp(&at)?;
        let mut tx = self.begin_workspaces().await?;
        sqlx::query(
            "INSERT INTO recent_workspaces (path, used_at, rank) \
             VALUES ($1, $2, (SELECT COALESCE(MAX(rank), 0) + 1 FROM recent_workspaces)) \
             ON CONFLICT (path) DO UPDATE SET used_at = EXCLUDED.used_at, rank = EXCLUDED.rank",
        )
        .bind(path)
        .bind(used_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        sqlx::query(TRIM).bind(kept()).execute(&mut *tx).await.map_err(|e| self.fail(e))?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn recent_workspaces(&self) -> Result<Vec<RecentWorkspace>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT path, used_at FROM recent_workspaces ORDER BY rank DESC LIMIT $1",
        )
        .bind(kept())
        .fetch_all(self.pool())
        .await
        .at(self.target())?;
        rows.into_iter()
            .map(|(path, used_at)| {
                let used_at = codec::parse_time(self.target(), "used_at", &used_at)?;
                Ok(RecentWorkspace { path, used_at })
            })
            .collect()
    }

    async fn remove_workspace(&self, path: &str) -> Result<bool> {
        let mut tx = self.begin_workspaces().await?;
        let removed = sqlx::query("DELETE FROM recent_workspaces WHERE path = $1")
            .bind(path)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        if removed == 0 {
            // Nothing changed, so no version is spent; dropping rolls back.
            return Ok(false);
        }
        self.commit(tx).await?;
        Ok(true)
    }
}
