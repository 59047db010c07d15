//! Benchmark 5 (ours only: the reference has no webhooks): how fast a task event
//! reaches a webhook receiver, and what 1,000 deliveries queued for a dead receiver
//! cost the task writes.
//!
//! In process, with the real parts: a SQLite store in a temp dir (its default,
//! `synchronous=FULL`), the `openloom-notify` sender woken by the event bus, and the
//! test kit's receiver on loopback verifying every signature.
//! - **event → receiver**: from the task write (which queues the delivery in its
//!   transaction) and its event on the bus, to the receiver holding the request
//!   (polled every millisecond). Target: under 1 s (issue #13).
//! - **dead receiver**: the latency of 200 task writes (a create and an update
//!   each), three ways: with no hook; with a hook and 1,000 deliveries queued for it
//!   but no sender (what the outbox itself costs a write); and the same with the
//!   sender working against a receiver that accepts and never answers. The last two
//!   differ by what a dead receiver costs the harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use openloom_core::{
    Event, EventBus, EventPayload, Store, Task, TaskId, TaskSpec, TaskStatus, TaskUpdate,
};
use openloom_notify::{HookConfig, Sender, SenderOptions, Webhook};
use openloom_store_sqlite::SqliteStore;
use openloom_testkit::receiver::{Answer, Receiver};

use crate::stats::{median, ms, percentile};

const SECRET: &str = "bench-webhook-secret";
/// Target from issue #13.
pub const EVENT_TO_RECEIVER_TARGET: Duration = Duration::from_secs(1);
const QUEUED_FOR_THE_DEAD: usize = 1_000;
const MEASURED_WRITES: usize = 200;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct WebhookFigures {
    /// Event → receiver, one per event.
    pub to_receiver: Vec<Duration>,
    /// Task write latencies without any hook.
    pub writes_alone: Vec<Duration>,
    /// Task write latencies with 1,000 deliveries queued, no sender.
    pub writes_queued: Vec<Duration>,
    /// The same, with the sender trying a dead receiver.
    pub writes_beside_dead: Vec<Duration>,
}

fn hook(url: &str) -> Result<Webhook> {
    let config = HookConfig { timeout_seconds: Some(10), ..HookConfig::for_url(url) };
    Webhook::from_config(&config, |_| Some(SECRET.to_owned())).context("the bench's hook")
}

fn task(id: &str) -> Task {
    Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "goal"), chrono::Utc::now())
}

async fn store(dir: &tempfile::TempDir, name: &str) -> Result<Arc<SqliteStore>> {
    Ok(Arc::new(SqliteStore::open(dir.path().join(name)).await.context("opening a store")?))
}

fn start(sender: Sender, bus: &EventBus) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(sender.run(bus.clone(), stopped));
    stop
}

/// Runs both measurements; `events` deliveries for the first.
pub async fn measure(events: usize) -> Result<WebhookFigures> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let mut figures = WebhookFigures::default();

    // Event → receiver.
    let live = store(&dir, "live.sqlite3").await?;
    let receiver = Receiver::start(SECRET).await.context("receiver")?;
    let sender = Sender::new(live.clone(), vec![hook(&receiver.url())?], SenderOptions::default())?;
    sender.register().await?;
    let bus = EventBus::new();
    let _stop = start(sender, &bus);
    for i in 0..events {
        let id = format!("task_live{i:05}");
        let started = Instant::now();
        let version = live.create_task(&task(&id)).await?;
        let payload = EventPayload::Created { name: id.clone(), workspace: "/w".into() };
        bus.emit(Event::new(TaskId::from(id.as_str()), version, payload));
        loop {
            if receiver.received().len() > i {
                figures.to_receiver.push(started.elapsed());
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("event {i} did not reach the receiver within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    if receiver.received().iter().any(|r| !r.verified) {
        bail!("a request failed the receiver's signature check");
    }

    // Task writes alone, then beside a dead receiver's queue.
    let alone = store(&dir, "alone.sqlite3").await?;
    figures.writes_alone = timed_writes(&*alone, "alone").await?;
    let beside = store(&dir, "dead.sqlite3").await?;
    let dead = Receiver::start(SECRET).await.context("receiver")?;
    dead.answer_next(&[Answer::Hang; QUEUED_FOR_THE_DEAD * 2]);
    let sender = Sender::new(beside.clone(), vec![hook(&dead.url())?], SenderOptions::default())?;
    sender.register().await?;
    for i in 0..QUEUED_FOR_THE_DEAD {
        beside.create_task(&task(&format!("task_dead{i:05}"))).await?;
    }
    figures.writes_queued = timed_writes(&*beside, "queued").await?;
    let bus = EventBus::new();
    let _stop_dead = start(sender, &bus);
    tokio::time::sleep(Duration::from_millis(200)).await;
    figures.writes_beside_dead = timed_writes(&*beside, "beside").await?;
    Ok(figures)
}

/// [`MEASURED_WRITES`] task writes (a create, then an update), each timed.
async fn timed_writes(store: &dyn Store, prefix: &str) -> Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(MEASURED_WRITES);
    for i in 0..MEASURED_WRITES / 2 {
        let id = TaskId::from(format!("task_{prefix}{i:05}"));
        let started = Instant::now();
        store.create_task(&task(id.as_str())).await?;
        times.push(started.elapsed());
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        let started = Instant::now();
        store.update_task(&id, &update, None).await?;
        times.push(started.elapsed());
    }
    Ok(times)
}

/// The Markdown table of `figures`.
pub fn table(figures: &WebhookFigures) -> String {
    let mut sorted = figures.to_receiver.clone();
    sorted.sort();
    let show = |d: Option<Duration>| d.map(ms).unwrap_or_else(|| "—".into());
    let row = |label: String, values: &[Duration]| {
        format!(
            "| {label} | {} | {} | {} | {} |\n",
            show(median(values)),
            show(sorted_percentile(values, 0.95)),
            show(values.iter().max().copied()),
            "—",
        )
    };
    let mut out = format!(
        "| measure | median | p95 | max | target |\n| --- | ---: | ---: | ---: | --- |\n\
         | task event → receiver ({} events) | {} | {} | {} | < {} |\n",
        sorted.len(),
        show(median(&sorted)),
        show(percentile(&sorted, 0.95)),
        show(sorted.last().copied()),
        ms(EVENT_TO_RECEIVER_TARGET),
    );
    out.push_str(&row(
        format!("task write, no hook ({MEASURED_WRITES} writes)"),
        &figures.writes_alone,
    ));
    out.push_str(&row(
        format!("task write, {QUEUED_FOR_THE_DEAD} queued, no sender"),
        &figures.writes_queued,
    ));
    out.push_str(&row(
        format!("task write, {QUEUED_FOR_THE_DEAD} queued, sender vs a dead receiver"),
        &figures.writes_beside_dead,
    ));
    out
}

fn sorted_percentile(values: &[Duration], p: f64) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort();
    percentile(&sorted, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few events, in debug: the measurement runs end to end and its figures are
    /// plausible (this is not the benchmark; `openloom-bench webhooks` is).
    #[tokio::test]
    async fn the_measurement_runs_and_meets_its_target() {
        let figures = measure(5).await.expect("measured");
        assert_eq!(figures.to_receiver.len(), 5);
        assert!(figures.to_receiver.iter().all(|d| *d < EVENT_TO_RECEIVER_TARGET), "{figures:?}");
        assert_eq!(figures.writes_alone.len(), MEASURED_WRITES);
        assert_eq!(figures.writes_beside_dead.len(), MEASURED_WRITES);
        let text = table(&figures);
        assert!(text.contains("task event → receiver (5 events)"), "{text}");
    }
}
