//! `GET /api/events`: live task events over Server-Sent Events.
//!
//! On connect the client gets a `snapshot` (the newest tasks and the store version);
//! then one `task` event per harness event, whose SSE `id` is the store version of
//! the write it announces. The stream reads the bus's broadcast channel, which never
//! blocks the harness; a client too slow to keep up falls behind the channel and is
//! disconnected, and resynchronises from the snapshot when it reconnects.
//!
//! # Other processes' changes: a `snapshot` again, mid-stream
//! The bus announces only this process's writes. Another worker on the same
//! PostgreSQL database, or `openloom watch` on the same SQLite file, writes the
//! store without a word to it. The server's one change watcher (`changes.rs`)
//! notices those writes (a store version no local event announced; on PostgreSQL
//! woken by LISTEN/NOTIFY, on any store by polling each second), reads one snapshot
//! for all streams, and every stream sends it as another `snapshot` event: the
//! client replaces its list with it, so changed tasks show their new state and
//! deleted ones disappear. A stream sends only snapshots newer than what it sent,
//! and drops task events a sent snapshot already reflects.
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
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use openloom_core::{StoreVersion, TaskQuery};
use tokio::sync::broadcast::error::RecvError;

use crate::error::{Error, Result};
use crate::state::AppState;

/// How long a browser waits before reconnecting, in milliseconds.
const RETRY_MS: u64 = 2000;

/// What a stream got next.
enum Next {
    Event(std::result::Result<openloom_core::Event, RecvError>),
    Resync(std::result::Result<Arc<Snapshot>, RecvError>),
}

/// A `snapshot` event's data, encoded once however many streams send it.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The store version read before the page: the page reflects every write up to
    /// it (maybe more; the events of those later writes repeat what it shows).
    pub version: StoreVersion,
    /// The event's JSON: `type`, `store_version`, `tasks`, `next_cursor`.
    pub data: String,
}

impl Snapshot {
    /// Reads the store version, then the first page of tasks.
    pub(crate) async fn read(state: &AppState) -> Result<Snapshot> {
        let version = state.store().store_version().await?;
        let limit = state.config().snapshot_tasks;
        let (tasks, next) =
            crate::routes::tasks::task_page(state, TaskQuery::newest(limit), version).await?;
        let answer = crate::routes::tasks::PageAnswer {
            kind: Some("snapshot"),
            tasks: &tasks,
            store_version: version,
            next_cursor: next.as_ref(),
        };
        let data = serde_json::to_string(&answer)
            .map_err(|error| Error::Internal(format!("could not encode a snapshot: {error}")))?;
        Ok(Snapshot { version, data })
    }

    fn event(&self) -> SseEvent {
        SseEvent::default().event("snapshot").id(self.version.to_string()).data(self.data.as_str())
    }
}

/// The SSE stream: a snapshot, then task events, and a snapshot again whenever
/// another process changed the store.
pub async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    // Subscribe before reading the store: an event for a write after the snapshot is
    // then always received, never lost in between (the same for resynchronisations).
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
    let mut resyncs = state.resyncs().await;
    let first = Snapshot::read(&state).await?;
    let mut closing = state.closing();
    let stream = async_stream::stream! {
        let _slot = slot;
        // What the client has: every write up to this version.
        let mut version = first.version;
        yield Ok(first.event().retry(std::time::Duration::from_millis(RETRY_MS)));
        drop(first);
        loop {
            let next = tokio::select! {
                received = receiver.recv() => Next::Event(received),
                resync = resyncs.recv() => Next::Resync(resync),
                _ = closing.wait_for(|closed| *closed) => break,
            };
            match next {
                Next::Resync(Ok(snapshot)) if snapshot.version > version => {
                    version = snapshot.version;
                    yield Ok(snapshot.event());
                }
                Next::Resync(Ok(_)) => {}
                // A newer snapshot follows the ones missed.
                Next::Resync(Err(RecvError::Lagged(_))) => {}
                // The watcher stopped: the server is closing.
                Next::Resync(Err(RecvError::Closed)) => break,
                // Already reflected in a snapshot sent (or the client's state).
                Next::Event(Ok(event)) if event.store_version <= version => {}
                Next::Event(Ok(event)) => match serde_json::to_string(&event) {
                    Ok(data) => {
                        yield Ok(SseEvent::default().event("task").id(event.store_version.to_string()).data(data));
                    }
                    Err(error) => tracing::error!(%error, "could not serialize an event"),
                },
                Next::Event(Err(RecvError::Lagged(missed))) => {
                    tracing::info!(missed, "SSE client fell behind; closing its stream so it resynchronises");
                    break;
                }
                Next::Event(Err(RecvError::Closed)) => break,
            }
        }
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.config().heartbeat).text("heartbeat")))
}
