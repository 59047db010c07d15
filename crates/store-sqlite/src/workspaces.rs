//! [`RecentWorkspaces`] on the same file, plus seeding from session directories.
//!
//! Order is kept by an explicit `rank` (higher is more recent) rather than by
//! `used_at`, because several uses can share a timestamp and "move to front" must
//! still win. Paths are stored as given: normalising them (making them absolute,
//! resolving symlinks) is the caller's job, as it is for the memory store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::store::RECENT_WORKSPACES_KEPT;
use openloom_core::{RecentWorkspace, RecentWorkspaces, Result};

use crate::codec;
use crate::error::SqlxResultExt;
use crate::store::SqliteStore;

/// Deletes all but the newest [`RECENT_WORKSPACES_KEPT`].
const TRIM: &str = "DELETE FROM recent_workspaces WHERE path NOT IN \
     (SELECT path FROM recent_workspaces ORDER BY rank DESC LIMIT ?)";

fn kept() -> i64 {
    i64::try_from(RECENT_WORKSPACES_KEPT).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Adds workspaces found elsewhere (e.g. the directories of the agent server's
    /// sessions) that are not known yet, behind every known one, in the given order.
    /// Known workspaces keep their place. Returns how many were added and kept; each
    /// call that adds any bumps the store version once.
    pub async fn seed_workspaces(&self, paths: &[String], at: DateTime<Utc>) -> Result<usize> {
        let used_at = codec::timestamp(&at)?;
        let mut tx = self.begin_write().await?;
        let mut added = Vec::new();
        for path in paths.iter().filter(|p| !p.is_empty()) {
            let inserted = sqlx::query(
                "INSERT INTO recent_workspaces (path, used_at, rank) \
                 VALUES (?1, ?2, (SELECT COALESCE(MIN(rank), 1) - 1 FROM recent_workspaces)) \
                 ON CONFLICT (path) DO NOTHING",
            )
            .bind(path)
            .bind(&used_at)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
            if inserted > 0 {
                added.push(path);
            }
        }
        if added.is_empty() {
            return Ok(0);
        }
        sqlx::query(TRIM).bind(kept()).execute(tx.conn()).await.map_err(|e| self.fail(e))?;
        let mut kept_count = 0;
        for path in added {
            let still: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM recent_workspaces WHERE path = ?")
                    .bind(path)
                    .fetch_optional(tx.conn())
                    .await
                    .map_err(|e| self.fail(e))?;
            kept_count += usize::from(still.is_some());
        }
        tx.commit().await?;
        Ok(kept_count)
    }
}

#[async_trait]
impl RecentWorkspaces for SqliteStore {
    async fn record_workspace(&self, path: &str, at: DateTime<Utc>) -> Result<()> {
        let used_at = codec::timestamp(&at)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO recent_workspaces (path, used_at, rank) \
             VALUES (?1, ?2, (SELECT COALESCE(MAX(rank), 0) + 1 FROM recent_workspaces)) \
             ON CONFLICT (path) DO UPDATE SET used_at = excluded.used_at, rank = excluded.rank",
        )
        .bind(path)
        .bind(used_at)
        .execute(tx.conn())
        .await
        .map_err(|e| self.fail(e))?;
        sqlx::query(TRIM).bind(kept()).execute(tx.conn()).await.map_err(|e| self.fail(e))?;
        tx.commit().await?;
        Ok(())
    }

    async fn recent_workspaces(&self) -> Result<Vec<RecentWorkspace>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT path, used_at FROM recent_workspaces ORDER BY rank DESC LIMIT ?",
        )
        .bind(kept())
        .fetch_all(self.pool())
        .await
        .at(self.path())?;
        rows.into_iter()
            .map(|(path, used_at)| {
                let used_at = codec::parse_time(self.path(), "used_at", &used_at)?;
                Ok(RecentWorkspace { path, used_at })
            })
            .collect()
    }

    async fn remove_workspace(&self, path: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM recent_workspaces WHERE path = ?")
            .bind(path)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?
            .rows_affected();
        if removed == 0 {
            // Nothing changed, so no version is spent; dropping rolls back.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
