//! Webhook deliveries: what was sent where, what failed, and queuing one again.
//!
//! A delivery shows its hook's URL without what may be secret (credentials, path,
//! query: see `openloom_core::Hook::shown_url`), and never a secret or a body the
//! receiver answered.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use openloom_core::{DeliveryQuery, DeliveryStatus, WebhookDelivery};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// Most deliveries one page lists.
pub const MAX_LIMIT: usize = 500;

/// `GET /api/webhooks/deliveries` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    status: Option<String>,
}

/// A delivery as the API shows it.
fn view(delivery: &WebhookDelivery) -> Value {
    let task = &delivery.notice.task;
    json!({
        "id": delivery.id,
        "hookId": delivery.hook_id,
        "url": delivery.url,
        "event": delivery.notice.event,
        "at": delivery.notice.at,
        "task": { "id": task.id, "name": task.name, "status": task.status },
        "status": delivery.status,
        "attempts": delivery.attempts,
        "nextAttemptAt": (delivery.status == DeliveryStatus::Pending).then_some(delivery.next_attempt_at),
        "lastError": delivery.last_error,
        "queuedAt": delivery.queued_at,
        "deliveredAt": delivery.delivered_at,
    })
}

/// Deliveries newest first, optionally of one status.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Value>> {
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<DeliveryStatus>())
        .transpose()?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let deliveries = state.outbox().list_deliveries(&DeliveryQuery { limit, status }).await?;
    Ok(Json(json!({ "deliveries": deliveries.iter().map(view).collect::<Vec<_>>() })))
}

/// Queues a delivery again (whatever its status), under the same id.
pub async fn redeliver(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let delivery = state.outbox().redeliver(&id, Utc::now()).await?;
    tracing::info!(delivery = %delivery.id, hook = %delivery.hook_id, "webhook delivery queued again");
    Ok(Json(json!({ "delivery": view(&delivery) })))
}
