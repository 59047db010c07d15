//! A [`Sink`] of our own: one JSON line per event, appended to a file.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use openloom_core::{Error, Event, EventKind, Sink, StoreVersion};
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Mutex, watch};

/// Appends every event as a JSON line (`{"task_id":…,"store_version":…,"type":…}`).
pub struct EventsFile {
    file: Mutex<File>,
    /// The last event written: its store version and kind. The bus runs each sink on
    /// its own task and has no "flush", so the program waits on this before it exits.
    /// The kind matters because one write can be announced by several events
    /// (`updated` and `completed` share a version).
    written: watch::Sender<(StoreVersion, Option<EventKind>)>,
}

impl EventsFile {
    /// Opens `path` for appending, creating it if needed.
    pub async fn create(path: &Path) -> std::io::Result<EventsFile> {
        let file = OpenOptions::new().create(true).append(true).open(path).await?;
        Ok(EventsFile { file: Mutex::new(file), written: watch::Sender::new((0, None)) })
    }

    /// Waits until the event `(version, kind)` (or a later one) is on disk, or `limit`
    /// passes.
    pub async fn wait_until_written(
        &self,
        version: StoreVersion,
        kind: EventKind,
        limit: Duration,
    ) {
        let mut written = self.written.subscribe();
        let done = |last: &(StoreVersion, Option<EventKind>)| {
            last.0 > version || (last.0 == version && last.1 == Some(kind))
        };
        let _ = tokio::time::timeout(limit, written.wait_for(done)).await;
    }
}

#[async_trait]
impl Sink for EventsFile {
    async fn on_event(&self, event: &Event) -> openloom_core::Result<()> {
        let mut line =
            serde_json::to_vec(event).map_err(|e| Error::other("encoding an event", e))?;
        line.push(b'\n');
        let mut file = self.file.lock().await;
        // One write per line: a reader never sees half a line from us.
        file.write_all(&line).await.map_err(|e| Error::other("appending an event", e))?;
        file.flush().await.map_err(|e| Error::other("flushing the events file", e))?;
        self.written.send_replace((event.store_version, Some(event.kind())));
        Ok(())
    }
}
