//! [`Outbox`] on the same file: webhook deliveries queued by task writes.
//!
//! [`queue`] runs inside a task write's transaction (see `store.rs`), so a delivery
//! commits or rolls back with the change that caused it. A delivery is kept as JSON
//! (core's [`Delivery`]) beside the columns the queries filter and sort on, and is
//! changed with core's own [`outbox::apply_attempt`] and [`outbox::requeue`], so it
//! means here what it means in the memory store.

use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::outbox::{self, Attempt, Delivery, DeliveryQuery, Hook, Outbox, OutboxDepth};
use openloom_core::{Result, Task};
use sqlx::sqlite::SqliteConnection;

use crate::codec;
use crate::error::{Error, SqlxResultExt};
use crate::store::SqliteStore;

/// Queues the deliveries the change from `before` to `after` causes, on `conn` (the
/// write's transaction).
pub(crate) async fn queue(
    conn: &mut SqliteConnection,
    path: &Path,
    before: Option<&Task>,
    after: &Task,
    at: DateTime<Utc>,
) -> Result<()> {
    let notices = outbox::notices(before, after, at);
    if notices.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT hook_json FROM webhook_hooks ORDER BY registered_at, id")
            .fetch_all(&mut *conn)
            .await
            .at(path)?;
    let hooks = rows
        .iter()
        .map(|json| decode::<Hook>(path, "webhook_hooks.hook_json", json))
        .collect::<Result<Vec<_>>>()?;
    for delivery in outbox::route(&notices, &hooks) {
        insert(conn, path, &delivery).await?;
    }
    Ok(())
}

async fn insert(conn: &mut SqliteConnection, path: &Path, delivery: &Delivery) -> Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries \
         (id, hook_id, status, next_attempt_at, queued_at, delivery_json) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&delivery.id)
    .bind(&delivery.hook_id)
    .bind(delivery.status.as_str())
    .bind(codec::timestamp(&delivery.next_attempt_at)?)
    .bind(codec::timestamp(&delivery.queued_at)?)
    .bind(encode(delivery)?)
    .execute(conn)
    .await
    .at(path)?;
    Ok(())
}

/// Writes `delivery`'s changed state back to its row.
async fn save(conn: &mut SqliteConnection, path: &Path, delivery: &Delivery) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = ?, next_attempt_at = ?, queued_at = ?, \
         delivery_json = ? WHERE id = ?",
    )
    .bind(delivery.status.as_str())
    .bind(codec::timestamp(&delivery.next_attempt_at)?)
    .bind(codec::timestamp(&delivery.queued_at)?)
    .bind(encode(delivery)?)
    .bind(&delivery.id)
    .execute(conn)
    .await
    .at(path)?;
    Ok(())
}

async fn load(conn: &mut SqliteConnection, path: &Path, id: &str) -> Result<Option<Delivery>> {
    let json: Option<String> =
        sqlx::query_scalar("SELECT delivery_json FROM webhook_deliveries WHERE id = ?")
            .bind(id)
            .fetch_optional(conn)
            .await
            .at(path)?;
    json.map(|json| decode(path, "webhook_deliveries.delivery_json", &json)).transpose()
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| openloom_core::Error::Invalid(format!("cannot encode as JSON: {e}")))
}

fn decode<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
    json: &str,
) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::decode(path, what, e).into())
}

fn not_found(id: &str) -> openloom_core::Error {
    openloom_core::Error::NotFound { what: "delivery", id: id.to_owned() }
}

fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn register_hooks(&self, hooks: &[Hook]) -> Result<()> {
        let now = codec::timestamp(&Utc::now())?;
        let mut tx = self.begin_write().await?;
        for hook in hooks {
            sqlx::query(
                "INSERT INTO webhook_hooks (id, hook_json, registered_at) VALUES (?, ?, ?) \
                 ON CONFLICT (id) DO UPDATE SET hook_json = excluded.hook_json",
            )
            .bind(&hook.id)
            .bind(encode(hook)?)
            .bind(&now)
            .execute(tx.conn())
            .await
            .map_err(|e| self.fail(e))?;
        }
        tx.commit_unversioned().await
    }

    async fn claim_due(
        &self,
        hook_ids: &[String],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>> {
        if hook_ids.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let now = codec::timestamp(&now)?;
        // Looking before locking: a sender polls while nothing is due almost always,
        // and must not take the write lock from the harness for nothing.
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ? \
             AND hook_id IN (SELECT value FROM json_each(?)) LIMIT 1",
        )
        .bind(&now)
        .bind(encode(&hook_ids)?)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.fail(e))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_json FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= ? \
               AND hook_id IN (SELECT value FROM json_each(?)) \
             ORDER BY next_attempt_at ASC, seq ASC LIMIT ?",
        )
        .bind(&now)
        .bind(encode(&hook_ids)?)
        .bind(sql_int(limit))
        .fetch_all(tx.conn())
        .await
        .map_err(|e| self.fail(e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for json in rows {
            let mut delivery: Delivery =
                decode(self.path(), "webhook_deliveries.delivery_json", &json)?;
            delivery.next_attempt_at = until;
            save(tx.conn(), self.path(), &delivery).await?;
            claimed.push(delivery);
        }
        tx.commit_unversioned().await?;
        Ok(claimed)
    }

    async fn record_attempt(&self, id: &str, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let mut delivery = load(tx.conn(), self.path(), id).await?.ok_or_else(|| not_found(id))?;
        outbox::apply_attempt(&mut delivery, attempt, now);
        save(tx.conn(), self.path(), &delivery).await?;
        tx.commit_unversioned().await
    }

    async fn depth(&self) -> Result<OutboxDepth> {
        // Covered by the (status, ...) index: no delivery body is read.
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM webhook_deliveries \
             WHERE status IN ('pending', 'dead') GROUP BY status",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.fail(e))?;
        Ok(OutboxDepth::from_counts(rows))
    }

    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_json FROM webhook_deliveries WHERE (?1 IS NULL OR status = ?1) \
             ORDER BY seq DESC LIMIT ?2",
        )
        .bind(query.status.map(|s| s.as_str()))
        .bind(sql_int(query.limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|json| decode(self.path(), "webhook_deliveries.delivery_json", json))
            .collect()
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>> {
        let mut conn = self.pool().acquire().await.map_err(|e| self.fail(e))?;
        load(&mut conn, self.path(), id).await
    }

    async fn expire(&self, queued_before: DateTime<Utc>, error: &str) -> Result<usize> {
        let before = codec::timestamp(&queued_before)?;
        // Looking before locking, as for claims: almost always there is nothing.
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM webhook_deliveries WHERE status = 'pending' AND queued_at < ? LIMIT 1",
        )
        .bind(&before)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| self.fail(e))?;
        if any.is_none() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_json FROM webhook_deliveries WHERE status = 'pending' AND queued_at < ?",
        )
        .bind(&before)
        .fetch_all(tx.conn())
        .await
        .map_err(|e| self.fail(e))?;
        for json in &rows {
            let mut delivery: Delivery =
                decode(self.path(), "webhook_deliveries.delivery_json", json)?;
            outbox::give_up(&mut delivery, error);
            save(tx.conn(), self.path(), &delivery).await?;
        }
        tx.commit_unversioned().await?;
        Ok(rows.len())
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> Result<Delivery> {
        let mut tx = self.begin_write().await?;
        let mut delivery = load(tx.conn(), self.path(), id).await?.ok_or_else(|| not_found(id))?;
        outbox::requeue(&mut delivery, now);
        save(tx.conn(), self.path(), &delivery).await?;
        tx.commit_unversioned().await?;
        Ok(delivery)
    }
}
