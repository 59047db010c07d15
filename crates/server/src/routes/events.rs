//! `GET /api/events`: live task events over Server-Sent Events.
//!
//! On connect the client gets a `snapshot` (the newest tasks and the store version);
//! then one `task` event per harness event, whose SSE `id` is the store version of
//! the write it announces. The stream reads the bus's broadcast channel, which never
//! blocks the harness; a client too slow to keep up falls behind the channel and is
//! disconnected, and resynchronises from the snapshot when it reconnects.
//!
//! # Why every connection starts with a snapshot, `Last-Event-ID` or not
//! One write can be announced by several events with the same store version
//! (`updated` then `completed`, `updated` then `failed`), and concurrent writers may
//! emit their events out of version order. So a reconnecting client whose
//! `Last-Event-ID` equals the current version may still have missed the second event
//! of that write, or the late event of an older one: no id proves it saw everything.
//! A snapshot (one page of tasks, read once per connection) always does, so it is
//! always sent.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use openloom_core::TaskQuery;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::error::{Error, Result};
use crate::state::AppState;

/// How long a browser waits before reconnecting, in milliseconds.
const RETRY_MS: u64 = 2000;

/// The SSE stream: a snapshot, then task events.
pub async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    // Subscribe before reading the store: an event for a write after the snapshot is
    // then always received, never lost in between. Tasks are listed after the version
    // is read, so the snapshot reflects every write up to that version (maybe more;
    // the events of those later writes repeat what it shows, harmlessly).
    // Each stream holds a slot until it ends, so clients that never read cannot pile
    // up past the cap; the rest of the API keeps its connections.
    let slot = state.event_stream_slot().ok_or_else(|| {
        Error::Overloaded(format!(
            "{} event streams are open, the most this server allows; close a dashboard tab \
             or retry in a moment",
            state.config().max_event_streams
        ))
    })?;
    let mut receiver = state.harness().bus().receiver();
    let version = state.store().store_version().await?;
    let limit = state.config().snapshot_tasks;
    let (tasks, next) = crate::routes::tasks::task_page(&state, TaskQuery::newest(limit)).await?;
    let snapshot = json!({ "type": "snapshot", "store_version": version, "tasks": tasks, "next_cursor": next });
    let mut closing = state.closing();
    let stream = async_stream::stream! {
        let _slot = slot;
        yield Ok(SseEvent::default()
            .retry(std::time::Duration::from_millis(RETRY_MS))
            .event("snapshot")
            .id(version.to_string())
            .data(snapshot.to_string()));
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
