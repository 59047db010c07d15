//! [`Metrics`]: what `GET /metrics` shows, in the OpenMetrics text format
//! (Prometheus scrapes it).
//!
//! Two kinds of figures, kept apart on purpose:
//! - **Counted as it happens** — checks by outcome, lease takeovers, OpenCode request
//!   latency and errors. [`Metrics`] is the [`Meter`] the binary gives the harness
//!   and the OpenCode client, so each is counted once, where it happens.
//! - **Read when scraped** — tasks by status and webhook deliveries pending or dead.
//!   The store knows them (across every worker sharing it), so they are read from it
//!   on each scrape (two grouped counts) instead of mirrored in memory, where they
//!   would drift from the store and restart at zero.
//!
//! A scrape reads no spec and takes no harness lock.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use openloom_core::{AgentCall, CheckRun, Meter, Outbox, Store, TaskStatus};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::error::{Error, Result};

/// The content type of [`Metrics::render`]'s text: OpenMetrics 1.0, which
/// Prometheus (2.5 and later) asks for and prefers.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    worker: String,
}

/// An OpenCode request's labels; `opencode` (the server's name) only when the
/// client has one ([`Metrics::for_opencode`]), so a worker of one unnamed server
/// shows no empty label.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RequestLabels {
    method: String,
    endpoint: String,
    opencode: Option<Arc<str>>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct ErrorLabels {
    endpoint: String,
    kind: String,
    opencode: Option<Arc<str>>,
}

/// Encodes `pairs`, then `opencode` when there is one.
fn encode_labels(
    encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
    pairs: [(&str, &str); 2],
    opencode: Option<&str>,
) -> std::fmt::Result {
    use prometheus_client::encoding::EncodeLabel;
    for pair in pairs {
        pair.encode(encoder.encode_label())?;
    }
    match opencode {
        Some(name) => ("opencode", name).encode(encoder.encode_label()),
        None => Ok(()),
    }
}

impl EncodeLabelSet for RequestLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
    ) -> std::fmt::Result {
        let pairs = [("method", self.method.as_str()), ("endpoint", self.endpoint.as_str())];
        encode_labels(encoder, pairs, self.opencode.as_deref())
    }
}

impl EncodeLabelSet for ErrorLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder<'_>,
    ) -> std::fmt::Result {
        let pairs = [("endpoint", self.endpoint.as_str()), ("kind", self.kind.as_str())];
        encode_labels(encoder, pairs, self.opencode.as_deref())
    }
}

/// Seconds as an `f64` gauge.
type Seconds = Gauge<f64, AtomicU64>;

/// Latency buckets from 5 ms to about 41 s (doubling): status reads take
/// milliseconds, a synchronous prompt minutes (those land in `+Inf`).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The worker's metrics. Cheap to clone (one `Arc`); clones count into the same
/// series. Give the same value to the harness ([`openloom_core::Harness::with_meter`]),
/// the OpenCode client (`Settings::meter`) and the server ([`crate::ServerParts`]).
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    build: Family<BuildLabels, Gauge>,
    checks: Family<OutcomeLabel, Counter>,
    takeovers: Counter,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    request_errors: Family<ErrorLabels, Counter>,
    tasks: Family<StatusLabel, Gauge>,
    deliveries: Family<StatusLabel, Gauge>,
    store_read: Seconds,
}

impl Metrics {
    /// Metrics starting at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let build = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "openloom_build_info",
            "This worker's version and name; always 1",
            build.clone(),
        );
        let started = Seconds::default();
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs_f64())
            .unwrap_or_default();
        started.set(since_epoch);
        registry.register_with_unit(
            "process_start_time",
            "When this process started, in seconds since the Unix epoch",
            Unit::Seconds,
            started,
        );

        let checks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "openloom_checks",
            "Harness checks run by this worker, by outcome (done, error)",
            checks.clone(),
        );
        let takeovers = Counter::default();
        registry.register(
            "openloom_lease_takeovers",
            "Task claims this worker took over from another holder whose lease had ended",
            takeovers.clone(),
        );
        let requests: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "openloom_opencode_request_duration",
            "OpenCode request latency by method and endpoint, failures included",
            Unit::Seconds,
            requests.clone(),
        );
        let request_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "openloom_opencode_request_errors",
            "OpenCode requests that failed, by endpoint and error kind",
            request_errors.clone(),
        );
        let tasks = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "openloom_tasks",
            "Tasks in the store by status (all workers sharing it), read at scrape time",
            tasks.clone(),
        );
        let deliveries = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "openloom_webhook_deliveries",
            "Webhook deliveries in the outbox that are pending or dead, read at scrape time",
            deliveries.clone(),
        );
        let store_read = Seconds::default();
        registry.register_with_unit(
            "openloom_metrics_store_read",
            "How long this scrape's store reads took",
            Unit::Seconds,
            store_read.clone(),
        );
        // Every outcome and status shows from the first scrape, at 0: a series that
        // appears only later breaks `rate()` and alerts on absence.
        for outcome in CheckRun::ALL {
            let _ = checks.get_or_create(&OutcomeLabel { outcome: outcome.as_str() });
        }
        Metrics {
            inner: Arc::new(Inner {
                registry,
                build,
                checks,
                takeovers,
                requests,
                request_errors,
                tasks,
                deliveries,
                store_read,
            }),
        }
    }

    /// Reads the store's figures and renders every series as OpenMetrics text, for
    /// the worker named `worker` (its name among the workers sharing the store:
    /// [`openloom_core::Harness::worker_name`]). Concurrent scrapes each set the
    /// store gauges before encoding; they read the same store, so the last one wins
    /// with the same figures.
    pub async fn render(
        &self,
        store: &dyn Store,
        outbox: &dyn Outbox,
        worker: &str,
    ) -> Result<String> {
        // Set here rather than at construction: the binary builds the metrics before
        // the OpenCode client and the harness, and the worker's name after both.
        let build = BuildLabels { version: env!("CARGO_PKG_VERSION"), worker: worker.to_owned() };
        if self.inner.build.get(&build).is_none() {
            self.inner.build.clear();
            self.inner.build.get_or_create(&build).set(1);
        }
        let started = Instant::now();
        let by_status = store.count_by_status().await?;
        let depth = outbox.depth().await?;
        self.inner.store_read.set(started.elapsed().as_secs_f64());
        for status in TaskStatus::ALL {
            let count = by_status.get(&status).copied().unwrap_or(0);
            self.inner
                .tasks
                .get_or_create(&StatusLabel { status: status.as_str() })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for (status, count) in [("pending", depth.pending), ("dead", depth.dead)] {
            self.inner
                .deliveries
                .get_or_create(&StatusLabel { status })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)
            .map_err(|_| Error::Internal("could not encode the metrics".to_owned()))?;
        Ok(text)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Meter for Metrics {
    fn check_ran(&self, outcome: CheckRun) {
        self.inner.checks.get_or_create(&OutcomeLabel { outcome: outcome.as_str() }).inc();
    }

    fn lease_taken_over(&self) {
        self.inner.takeovers.inc();
    }

    fn agent_request(&self, call: &AgentCall<'_>) {
        self.observe_request(call, None);
    }
}

impl Metrics {
    /// A meter for the client of the OpenCode server named `name`: its requests are
    /// counted with an `opencode` label (a worker connected to several servers tells
    /// them apart); checks and takeovers are counted as by the metrics themselves.
    pub fn for_opencode(&self, name: &str) -> Arc<dyn Meter> {
        Arc::new(OpencodeMeter { metrics: self.clone(), opencode: Arc::from(name) })
    }

    fn observe_request(&self, call: &AgentCall<'_>, opencode: Option<&Arc<str>>) {
        let labels = RequestLabels {
            method: call.method.to_owned(),
            endpoint: call.endpoint.to_owned(),
            opencode: opencode.cloned(),
        };
        self.inner.requests.get_or_create(&labels).observe(call.elapsed.as_secs_f64());
        if let Some(kind) = call.error {
            let labels = ErrorLabels {
                endpoint: labels.endpoint,
                kind: kind.to_owned(),
                opencode: labels.opencode,
            };
            self.inner.request_errors.get_or_create(&labels).inc();
        }
    }
}

/// [`Metrics`] for one named OpenCode server's client ([`Metrics::for_opencode`]).
struct OpencodeMeter {
    metrics: Metrics,
    opencode: Arc<str>,
}

impl Meter for OpencodeMeter {
    fn check_ran(&self, outcome: CheckRun) {
        self.metrics.check_ran(outcome);
    }

    fn lease_taken_over(&self) {
        self.metrics.lease_taken_over();
    }

    fn agent_request(&self, call: &AgentCall<'_>) {
        self.metrics.observe_request(call, Some(&self.opencode));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openloom_core::store::MemoryStore;
    use openloom_core::{OutboxDepth, Task, TaskId, TaskSpec};

    use super::*;

    /// The value of the sample `name{labels}` (labels as rendered), if present.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn counts_and_store_figures_are_rendered() {
        let store = MemoryStore::new();
        let now = chrono::Utc::now();
        for id in ["a", "b"] {
            let task = Task::new(TaskId::from(id), TaskSpec::new(id, "/w", "g"), now);
            store.create_task(&task).await.expect("create");
        }
        assert_eq!(store.depth().await.expect("depth"), OutboxDepth::default());
        let metrics = Metrics::new();
        metrics.check_ran(CheckRun::Done);
        metrics.check_ran(CheckRun::Done);
        metrics.check_ran(CheckRun::Error);
        metrics.lease_taken_over();
        let call = AgentCall {
            method: "GET",
            endpoint: "/session/{id}/message",
            elapsed: Duration::from_millis(30),
            error: Some("upstream"),
        };
        metrics.agent_request(&call);
        metrics.agent_request(&AgentCall { error: None, ..call });

        let text = metrics.render(&store, &store, "w1").await.expect("render");
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(sample(&text, r#"openloom_checks_total{outcome="done"}"#), Some(2.0));
        assert_eq!(sample(&text, r#"openloom_checks_total{outcome="error"}"#), Some(1.0));
        assert_eq!(sample(&text, "openloom_lease_takeovers_total"), Some(1.0));
        assert_eq!(sample(&text, r#"openloom_tasks{status="pending"}"#), Some(2.0));
        assert_eq!(sample(&text, r#"openloom_tasks{status="completed"}"#), Some(0.0));
        assert_eq!(sample(&text, r#"openloom_webhook_deliveries{status="dead"}"#), Some(0.0));
        let endpoint = r#"endpoint="/session/{id}/message""#;
        assert_eq!(
            sample(
                &text,
                &format!(
                    r#"openloom_opencode_request_duration_seconds_count{{method="GET",{endpoint}}}"#
                )
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                &format!(r#"openloom_opencode_request_errors_total{{{endpoint},kind="upstream"}}"#)
            ),
            Some(1.0),
            "{text}"
        );
        let version = env!("CARGO_PKG_VERSION");
        let build = format!(r#"openloom_build_info{{version="{version}",worker="w1"}}"#);
        assert_eq!(sample(&text, &build), Some(1.0), "{text}");
        assert!(!text.contains("opencode=\""), "no server name, no label: {text}");
    }

    #[tokio::test]
    async fn requests_of_a_named_opencode_server_carry_its_name() {
        let store = MemoryStore::new();
        let metrics = Metrics::new();
        let call = AgentCall {
            method: "POST",
            endpoint: "/session/{id}/prompt_async",
            elapsed: Duration::from_millis(5),
            error: Some("timeout"),
        };
        metrics.for_opencode("build-2").agent_request(&call);
        metrics.for_opencode("build-1").agent_request(&AgentCall { error: None, ..call });
        metrics.for_opencode("build-1").check_ran(CheckRun::Done);
        let text = metrics.render(&store, &store, "w1").await.expect("render");
        let endpoint = r#"endpoint="/session/{id}/prompt_async""#;
        for server in ["build-1", "build-2"] {
            let count = format!(
                r#"openloom_opencode_request_duration_seconds_count{{method="POST",{endpoint},opencode="{server}"}}"#
            );
            assert_eq!(sample(&text, &count), Some(1.0), "{server}: {text}");
        }
        let errors = format!(
            r#"openloom_opencode_request_errors_total{{{endpoint},kind="timeout",opencode="build-2"}}"#
        );
        assert_eq!(sample(&text, &errors), Some(1.0), "{text}");
        assert_eq!(sample(&text, r#"openloom_checks_total{outcome="done"}"#), Some(1.0));
    }
}
