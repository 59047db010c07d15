//! Events announce store writes; the bus fans them out to sinks.
//!
//! The store is the truth, events only notify: every event carries the store
//! version of the write it follows, so a client that missed some can resynchronise
//! from the store. Emitting never blocks on a subscriber: synchronous handlers run
//! inline and are isolated from each other, async sinks each get their own queue and
//! task, and a failing or panicking subscriber is logged and skipped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::error::Result;
use crate::task::{StoreVersion, TaskId, TaskStatus};

/// What happened to a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    /// The task was added.
    Created {
        /// Task name.
        name: String,
        /// Workspace directory.
        workspace: String,
    },
    /// A session was created (or attached) and the first prompt sent.
    Started {
        /// The session driven.
        session_id: String,
        /// One line on what happened.
        summary: String,
    },
    /// A check ran or the user changed the task.
    Updated {
        /// Status after the change.
        status: TaskStatus,
        /// Zero-based step in focus.
        current_step: usize,
        /// Progress 0.0–1.0.
        progress: f64,
        /// One line on what happened.
        summary: String,
    },
    /// The task is completed.
    Completed {
        /// Why it counts as complete.
        summary: String,
        /// Final progress.
        progress: f64,
    },
    /// The task failed for good.
    Failed {
        /// What went wrong and what to do.
        error: String,
    },
    /// A free-form log line.
    LogLine {
        /// The line.
        summary: String,
    },
    /// The task was deleted from the store.
    Deleted,
}

/// The kind of an event, without its payload (for filtering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EventKind {
    Created,
    Started,
    Updated,
    Completed,
    Failed,
    LogLine,
    Deleted,
}

/// A task event, stamped with the store version of the write it announces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The task concerned.
    pub task_id: TaskId,
    /// When the event was emitted.
    pub at: DateTime<Utc>,
    /// Store version of the write this event follows.
    pub store_version: StoreVersion,
    /// What happened.
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    /// An event stamped now.
    pub fn new(task_id: TaskId, store_version: StoreVersion, payload: EventPayload) -> Self {
        Event { task_id, at: Utc::now(), store_version, payload }
    }

    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self.payload {
            EventPayload::Created { .. } => EventKind::Created,
            EventPayload::Started { .. } => EventKind::Started,
            EventPayload::Updated { .. } => EventKind::Updated,
            EventPayload::Completed { .. } => EventKind::Completed,
            EventPayload::Failed { .. } => EventKind::Failed,
            EventPayload::LogLine { .. } => EventKind::LogLine,
            EventPayload::Deleted => EventKind::Deleted,
        }
    }
}

/// Where events go: the console, a web client, a file of the embedder's.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Handles one event. An error is logged by the bus; other sinks still run.
    async fn on_event(&self, event: &Event) -> Result<()>;
}

type Handler = Arc<dyn Fn(&Event) + Send + Sync>;

/// How many events an async sink may fall behind before new ones are dropped for it.
const SINK_QUEUE: usize = 1024;
/// How many events a broadcast receiver may fall behind before it lags (a lagging
/// SSE client is dropped and catches up from the store when it reconnects; the
/// ring is allocated up front, so it is sized for a burst, not for a backlog).
const BROADCAST_CAPACITY: usize = 256;

/// Fans events out to synchronous handlers, async sinks and broadcast receivers.
///
/// Cloning the bus is cheap and every clone shares the same subscribers.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

struct BusInner {
    handlers: RwLock<Vec<(Option<EventKind>, Handler)>>,
    sinks: RwLock<Vec<mpsc::Sender<Event>>>,
    broadcast: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus with no subscribers.
    pub fn new() -> Self {
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        EventBus {
            inner: Arc::new(BusInner {
                handlers: RwLock::new(Vec::new()),
                sinks: RwLock::new(Vec::new()),
                broadcast,
            }),
        }
    }

    /// Calls `handler` inline for every event of `kind`. Keep it quick.
    pub fn subscribe(&self, kind: EventKind, handler: impl Fn(&Event) + Send + Sync + 'static) {
        self.push_handler(Some(kind), Arc::new(handler));
    }

    /// Calls `handler` inline for every event. Keep it quick.
    pub fn subscribe_all(&self, handler: impl Fn(&Event) + Send + Sync + 'static) {
        self.push_handler(None, Arc::new(handler));
    }

    fn push_handler(&self, kind: Option<EventKind>, handler: Handler) {
        let mut handlers = self.inner.handlers.write().unwrap_or_else(|e| e.into_inner());
        handlers.push((kind, handler));
    }

    /// Runs `sink` on its own task, fed by a bounded queue, so a slow sink never
    /// delays the harness. Must be called inside a tokio runtime.
    pub fn add_sink(&self, sink: Arc<dyn Sink>) {
        let (sender, mut receiver) = mpsc::channel::<Event>(SINK_QUEUE);
        tokio::spawn(async move {
            while let Some(event) = receiver.recv().await {
                if let Err(error) = sink.on_event(&event).await {
                    tracing::warn!(%error, task_id = %event.task_id, "event sink failed");
                }
            }
        });
        let mut sinks = self.inner.sinks.write().unwrap_or_else(|e| e.into_inner());
        sinks.push(sender);
    }

    /// A receiver of every event emitted from now on (for SSE clients and tests).
    /// A receiver that falls more than 256 events behind gets `Lagged` and should
    /// resynchronise from the store.
    pub fn receiver(&self) -> broadcast::Receiver<Event> {
        self.inner.broadcast.subscribe()
    }

    /// Delivers an event to every subscriber. Never blocks and never fails.
    pub fn emit(&self, event: Event) {
        let handlers = self.inner.handlers.read().unwrap_or_else(|e| e.into_inner()).clone();
        for (kind, handler) in handlers {
            if kind.is_some_and(|kind| kind != event.kind()) {
                continue;
            }
            if catch_unwind(AssertUnwindSafe(|| handler(&event))).is_err() {
                tracing::error!(task_id = %event.task_id, kind = ?event.kind(), "event handler panicked");
            }
        }
        {
            let mut sinks = self.inner.sinks.write().unwrap_or_else(|e| e.into_inner());
            sinks.retain(|sender| match sender.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(task_id = %event.task_id, "event sink is behind; event dropped for it");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
        // No receivers is fine: nobody is listening.
        let _ = self.inner.broadcast.send(event);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    fn log_event(version: StoreVersion) -> Event {
        Event::new(TaskId::from("task_1"), version, EventPayload::LogLine { summary: "hi".into() })
    }

    #[test]
    fn a_panicking_handler_does_not_stop_the_others() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        bus.subscribe_all(|_| panic!("boom"));
        let sink = seen.clone();
        bus.subscribe_all(move |e| sink.lock().expect("lock").push(e.store_version));
        bus.emit(log_event(7));
        assert_eq!(*seen.lock().expect("lock"), vec![7]);
    }

    #[test]
    fn kind_filter_only_delivers_matching_events() {
        let bus = EventBus::new();
        let seen = Arc::new(Mutex::new(0));
        let counter = seen.clone();
        bus.subscribe(EventKind::Completed, move |_| *counter.lock().expect("lock") += 1);
        bus.emit(log_event(1));
        bus.emit(Event::new(
            TaskId::from("task_1"),
            2,
            EventPayload::Completed { summary: "done".into(), progress: 1.0 },
        ));
        assert_eq!(*seen.lock().expect("lock"), 1);
    }

    struct FailingSink;
    #[async_trait]
    impl Sink for FailingSink {
        async fn on_event(&self, _: &Event) -> Result<()> {
            Err(Error::Invalid("nope".into()))
        }
    }

    struct RecordingSink(mpsc::UnboundedSender<StoreVersion>);
    #[async_trait]
    impl Sink for RecordingSink {
        async fn on_event(&self, event: &Event) -> Result<()> {
            let _ = self.0.send(event.store_version);
            Ok(())
        }
    }

    struct StuckSink;
    #[async_trait]
    impl Sink for StuckSink {
        async fn on_event(&self, _: &Event) -> Result<()> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn async_sinks_are_isolated_from_failing_and_stuck_ones() {
        let bus = EventBus::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        bus.add_sink(Arc::new(FailingSink));
        bus.add_sink(Arc::new(StuckSink));
        bus.add_sink(Arc::new(RecordingSink(tx)));
        for version in 1..=3 {
            bus.emit(log_event(version));
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            let v = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("in time");
            got.push(v.expect("open"));
        }
        assert_eq!(got, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn broadcast_receivers_see_events_in_order() {
        let bus = EventBus::new();
        let mut rx = bus.receiver();
        bus.emit(log_event(4));
        bus.emit(log_event(5));
        assert_eq!(rx.recv().await.expect("event").store_version, 4);
        assert_eq!(rx.recv().await.expect("event").store_version, 5);
    }

    #[test]
    fn events_serialize_flat_with_a_type_tag() {
        let json = serde_json::to_value(log_event(3)).expect("serializable");
        assert_eq!(json["type"], "log_line");
        assert_eq!(json["store_version"], 3);
        assert_eq!(json["summary"], "hi");
    }
}
