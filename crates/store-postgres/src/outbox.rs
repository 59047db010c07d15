//! [`Outbox`] in the same database: webhook deliveries queued by task writes.
//!
//! [`queue`] runs inside a task write's transaction (see `store.rs`), so a delivery
//! commits or rolls back with the change that caused it. A delivery is kept as JSON
//! (core's [`Delivery`]) beside the columns the queries filter and sort on, and is
//! changed with core's own [`outbox::apply_attempt`] and [`outbox::requeue`], so it
//! means here what it means in the other stores. Senders on several workers claim
//! with `FOR UPDATE SKIP LOCKED`: each due row goes to one of them, and none waits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use openloom_core::outbox::{self, Attempt, Delivery, DeliveryQuery, Hook, Outbox, OutboxDepth};
use openloom_core::{Result, Task};
use sqlx::postgres::PgConnection;

use crate::codec;
use crate::error::{Error, SqlxResultExt, Target};
use crate::store::PostgresStore;

/// Queues the deliveries the change from `before` to `after` causes, on `conn` (the
/// write's transaction).
pub(crate) async fn queue(
    conn: &mut PgConnection,
    target: &Target,
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
            .at(target)?;
    let hooks = rows
        .iter()
        .map(|json| decode::<Hook>(target, "webhook_hooks.hook_json", json))
        .collect::<Result<Vec<_>>>()?;
    for delivery in outbox::route(&notices, &hooks) {
        sqlx::query(
            "INSERT INTO webhook_deliveries \
             (id, hook_id, status, next_attempt_at, queued_at, delivery_json) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&delivery.id)
        .bind(&delivery.hook_id)
        .bind(delivery.status.as_str())
        .bind(codec::timestamp(&delivery.next_attempt_at)?)
        .bind(codec::timestamp(&delivery.queued_at)?)
        .bind(codec::json(&delivery)?)
        .execute(&mut *conn)
        .await
        .at(target)?;
    }
    Ok(())
}

/// Writes `delivery`'s changed state back to its row.
async fn save(conn: &mut PgConnection, target: &Target, delivery: &Delivery) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, next_attempt_at = $2, queued_at = $3, \
         delivery_json = $4 WHERE id = $5",
    )
    .bind(delivery.status.as_str())
    .bind(codec::timestamp(&delivery.next_attempt_at)?)
    .bind(codec::timestamp(&delivery.queued_at)?)
    .bind(codec::json(delivery)?)
    .bind(&delivery.id)
    .execute(conn)
    .await
    .at(target)?;
    Ok(())
}

/// The delivery `id`, locked for the rest of the transaction.
async fn load(conn: &mut PgConnection, target: &Target, id: &str) -> Result<Option<Delivery>> {
    let json: Option<String> =
        sqlx::query_scalar("SELECT delivery_json FROM webhook_deliveries WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await
            .at(target)?;
    json.map(|json| decode(target, "webhook_deliveries.delivery_json", &json)).transpose()
}

fn decode<T: serde::de::DeserializeOwned>(
    target: &Target,
    what: &'static str,
    json: &str,
) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::decode(target, what, e).into())
}

fn not_found(id: &str) -> openloom_core::Error {
    openloom_core::Error::NotFound { what: "delivery", id: id.to_owned() }
}

fn sql_int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl Outbox for PostgresStore {
    async fn register_hooks(&self, hooks: &[Hook]) -> Result<()> {
        let now = codec::timestamp(&Utc::now())?;
        let mut tx = self.begin().await?;
        for hook in hooks {
            sqlx::query(
                "INSERT INTO webhook_hooks (id, hook_json, registered_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET hook_json = excluded.hook_json",
            )
            .bind(&hook.id)
            .bind(codec::json(hook)?)
            .bind(&now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.fail(e))?;
        }
        tx.commit().await.map_err(|e| self.fail(e))
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
        let mut tx = self.begin().await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_json FROM webhook_deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 AND hook_id = ANY($2) \
             ORDER BY next_attempt_at ASC, seq ASC LIMIT $3 FOR UPDATE SKIP LOCKED",
        )
        .bind(codec::timestamp(&now)?)
        .bind(hook_ids)
        .bind(sql_int(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        let mut claimed = Vec::with_capacity(rows.len());
        for json in rows {
            let mut delivery: Delivery =
                decode(self.target(), "webhook_deliveries.delivery_json", &json)?;
            delivery.next_attempt_at = until;
            save(&mut tx, self.target(), &delivery).await?;
            claimed.push(delivery);
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(claimed)
    }

    async fn record_attempt(&self, id: &str, attempt: &Attempt, now: DateTime<Utc>) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut delivery = load(&mut tx, self.target(), id).await?.ok_or_else(|| not_found(id))?;
        outbox::apply_attempt(&mut delivery, attempt, now);
        save(&mut tx, self.target(), &delivery).await?;
        tx.commit().await.map_err(|e| self.fail(e))
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
            "SELECT delivery_json FROM webhook_deliveries \
             WHERE ($1::TEXT IS NULL OR status = $1) ORDER BY seq DESC LIMIT $2",
        )
        .bind(query.status.map(|s| s.as_str()))
        .bind(sql_int(query.limit))
        .fetch_all(self.pool())
        .await
        .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|json| decode(self.target(), "webhook_deliveries.delivery_json", json))
            .collect()
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>> {
        let json: Option<String> =
            sqlx::query_scalar("SELECT delivery_json FROM webhook_deliveries WHERE id = $1")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(|e| self.fail(e))?;
        json.map(|json| decode(self.target(), "webhook_deliveries.delivery_json", &json))
            .transpose()
    }

    async fn expire(&self, queued_before: DateTime<Utc>, error: &str) -> Result<usize> {
        let mut tx = self.begin().await?;
        // SKIP LOCKED: a row a sender holds is being attempted; its attempt decides.
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT delivery_json FROM webhook_deliveries \
             WHERE status = 'pending' AND queued_at < $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(codec::timestamp(&queued_before)?)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?;
        for json in &rows {
            let mut delivery: Delivery =
                decode(self.target(), "webhook_deliveries.delivery_json", json)?;
            outbox::give_up(&mut delivery, error);
            save(&mut tx, self.target(), &delivery).await?;
        }
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(rows.len())
    }

    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> Result<Delivery> {
        let mut tx = self.begin().await?;
        let mut delivery = load(&mut tx, self.target(), id).await?.ok_or_else(|| not_found(id))?;
        outbox::requeue(&mut delivery, now);
        save(&mut tx, self.target(), &delivery).await?;
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(delivery)
    }
}
