//! `GET /api/events`: live task events over Server-Sent Events.
//!
//! On connect the client gets a `snapshot` (the newest tasks and the store version);
//! then one `task` event per harness event. Every event's SSE `id` is the store
//! version, so a browser that reconnects sends `Last-Event-ID`: when it equals the
//! current version nothing was missed and no snapshot is sent, otherwise a fresh one
//! is. The stream reads the bus's broadcast channel, which never blocks the harness;
//! a client too slow to keep up falls behind the channel and is disconnected, and
//! resynchronises from the snapshot when it reconnects.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use openloom_core::TaskQuery;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::error::Result;
use crate::state::AppState;

/// How long a browser waits before reconnecting, in milliseconds.
const RETRY_MS: u64 = 2000;

/// The SSE stream.
pub async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let last_seen: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    // Subscribe before reading the store: an event for a write after the snapshot is
    // then always received, never lost in between.
    let mut receiver = state.harness().bus().receiver();
    let version = state.store().store_version().await?;
    let snapshot = if last_seen == Some(version) {
        None
    } else {
        let limit = state.config().snapshot_tasks;
        let tasks = state.store().list_tasks(&TaskQuery::newest(limit)).await?;
        let next = (tasks.len() == limit).then(|| tasks.last().map(|t| t.id.clone())).flatten();
        Some(
            json!({ "type": "snapshot", "store_version": version, "tasks": tasks, "next_cursor": next }),
        )
    };
    let mut closing = state.closing();
    let stream = async_stream::stream! {
        let first = SseEvent::default().retry(std::time::Duration::from_millis(RETRY_MS));
        match snapshot {
            Some(data) => yield Ok(first.event("snapshot").id(version.to_string()).data(data.to_string())),
            None => yield Ok(first.comment("up to date")),
        }
        loop {
            let received = tokio::select! {
                received = receiver.recv() => received,
                _ = closing.wait_for(|closed| *closed) => break,
            };
            match received {
                // Already reflected in the snapshot (or the client's state).
                Ok(event) if event.store_version <= version => {}
                Ok(event) => match serde_json::to_string(&event) {
                    Ok(data) => {
                        yield Ok(SseEvent::default().event("task").id(event.store_version.to_string()).data(data));
                    }
                    Err(error) => tracing::error!(%error, "could not serialize an event"),
                },
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "SSE client fell behind; closing its stream so it resynchronises");
                    break;
                }
                Err(RecvError::Closed) => break,
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.config().heartbeat).text("heartbeat")))
}
