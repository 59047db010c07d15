//! Another process's changes reach this server's event streams: a write through a
//! second store on the same SQLite file (as `openloom watch` makes) or through a
//! second worker on the same PostgreSQL database arrives as a `snapshot` event, and
//! a deletion as a snapshot without the task. This process's own writes stay `task`
//! events, with no snapshot in between.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use openloom_core::{Store, TaskSpec};
use openloom_store_postgres::PostgresStore;
use serde_json::Value;

use crate::common::*;

/// Generous for a loaded machine: the watcher polls every second (PostgreSQL wakes
/// it at once), so a change normally shows in well under two.
const WITHIN: Duration = Duration::from_secs(15);

/// One SSE event: its name and its data as JSON.
#[derive(Debug)]
struct Sse {
    name: String,
    data: Value,
}

/// An open `/api/events` stream, parsed event by event.
struct Stream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Stream {
    async fn open(addr: std::net::SocketAddr) -> Stream {
        let response =
            reqwest::get(format!("http://{addr}/api/events")).await.expect("connect to SSE");
        assert_eq!(response.status(), 200);
        Stream { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event (heartbeats skipped), or `None` when `deadline` passes first.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push_str(value);
                    }
                }
                if name.is_empty() {
                    continue; // a heartbeat comment
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(Sse { name, data });
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()?;
            let chunk = chunk.expect("stream open").expect("chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until a snapshot satisfies `wanted`; fails after [`WITHIN`].
    async fn snapshot_where(&mut self, what: &str, wanted: impl Fn(&[Value]) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let Some(event) = self.next(deadline).await else {
                panic!("no snapshot with {what} within {WITHIN:?}");
            };
            if event.name == "snapshot" && wanted(tasks(&event.data)) {
                return event.data;
            }
        }
    }
}

fn tasks(snapshot: &Value) -> &[Value] {
    snapshot["tasks"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn has(tasks: &[Value], id: &str) -> bool {
    tasks.iter().any(|task| task["id"] == id)
}

/// Asserts the server `addr` (on store `mine`) shows writes made through `other`: a
/// task created, changed and deleted there; and that its own writes stay events.
async fn foreign_writes_reach_the_stream(fx: &Fixture, other: Arc<dyn Store>) {
    let running = fx.serve(test_config()).await;
    let mut stream = Stream::open(running.addr).await;
    let first = stream.next(tokio::time::Instant::now() + WITHIN).await.expect("first event");
    assert_eq!(first.name, "snapshot");

    // This process's write: a `task` event, and no resynchronisation for it.
    let local =
        fx.state.harness().add_task(TaskSpec::new("local", fx.ws(), "goal")).await.expect("add");
    let created = stream.next(tokio::time::Instant::now() + WITHIN).await.expect("an event");
    assert_eq!(
        (created.name.as_str(), &created.data["task_id"]),
        ("task", &Value::from(local.as_str()))
    );
    let quiet = tokio::time::Instant::now() + Duration::from_millis(2500);
    if let Some(extra) = stream.next(quiet).await {
        panic!("a local write needs no snapshot, got {extra:?}");
    }

    // Another process's write: a snapshot with the task, within a poll or so.
    let task = openloom_core::Task::new(
        "task_foreign".into(),
        TaskSpec::new("foreign", fx.ws(), "goal"),
        Utc::now(),
    );
    let started = std::time::Instant::now();
    let version = other.create_task(&task).await.expect("create through the other store");
    let shown = stream.snapshot_where("the foreign task", |tasks| has(tasks, "task_foreign")).await;
    eprintln!("a foreign create showed after {:?}", started.elapsed());
    assert!(shown["store_version"].as_u64().expect("version") >= version);
    assert!(has(tasks(&shown), local.as_str()), "the snapshot keeps the local task: {shown}");

    // A change there shows its new state; a deletion there removes the task.
    let update = openloom_core::TaskUpdate {
        status: Some(openloom_core::TaskStatus::Paused),
        ..Default::default()
    };
    other.update_task(&task.id, &update, None).await.expect("pause through the other store");
    stream
        .snapshot_where("the foreign task paused", |tasks| {
            tasks.iter().any(|t| t["id"] == "task_foreign" && t["status"] == "paused")
        })
        .await;
    let started = std::time::Instant::now();
    other.delete_task(&task.id).await.expect("delete through the other store");
    let gone =
        stream.snapshot_where("the foreign task gone", |tasks| !has(tasks, "task_foreign")).await;
    eprintln!("a foreign delete showed after {:?}", started.elapsed());
    assert!(has(tasks(&gone), local.as_str()), "{gone}");
}

#[tokio::test]
async fn a_write_by_another_process_on_the_sqlite_file_reaches_the_stream() {
    let fx = Fixture::new().await;
    let other = openloom_store_sqlite::SqliteStore::open(&fx.db_path).await.expect("second store");
    foreign_writes_reach_the_stream(&fx, Arc::new(other)).await;
}

#[tokio::test]
async fn a_write_by_another_worker_on_postgres_reaches_the_stream() {
    let Some(db) = openloom_store_postgres::testing::fresh_database().await else { return };
    let mine = Arc::new(PostgresStore::connect(&db.url).await.expect("first worker's store"));
    let other = Arc::new(PostgresStore::connect(&db.url).await.expect("second worker's store"));
    let dir = tempfile::TempDir::new().expect("temp dir");
    let fx = Fixture::with_store(test_config(), mine, dir, Default::default()).await;
    foreign_writes_reach_the_stream(&fx, other.clone()).await;
    other.close().await;
    db.drop_database().await;
}
