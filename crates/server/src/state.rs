//! [`AppState`]: what every handler can reach.

use std::sync::Arc;

use openloom_core::{Harness, Outbox, RecentWorkspaces, Store};
use openloom_opencode::OpencodeClient;

use tokio::sync::watch;

use crate::config::ServerConfig;
use crate::metrics::Metrics;
use crate::monitor::SessionMonitor;
use crate::pages::PageCache;

/// The parts the server is built from; the binary creates them.
#[derive(Clone)]
pub struct ServerParts {
    /// The harness (its store, bus and workspace policy are used too).
    pub harness: Arc<Harness>,
    /// Recent workspaces (the SQLite store implements it).
    pub recent: Arc<dyn RecentWorkspaces>,
    /// Webhook deliveries (every store implements it).
    pub outbox: Arc<dyn Outbox>,
    /// The OpenCode client (cheap to clone; clones share one connection pool).
    pub client: OpencodeClient,
    /// What `GET /metrics` shows: the same value the harness
    /// ([`Harness::with_meter`]) and the client (`Settings::meter`) count into.
    pub metrics: Metrics,
    /// The further OpenCode servers this worker drives tasks on, each with its own
    /// harness over the same store and bus, under the same worker name, taking no
    /// unbound tasks ([`openloom_core::HarnessConfig::unbound_tasks`]). Usually
    /// empty: `harness` and `client` are the worker's first server.
    pub others: Vec<Connection>,
}

impl std::fmt::Debug for ServerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerParts")
            .field("client", &self.client)
            .field("others", &self.others)
            .finish_non_exhaustive()
    }
}

/// One OpenCode server a worker is connected to: the harness driving its tasks and
/// the client for the routes that read its sessions.
#[derive(Clone)]
pub struct Connection {
    /// Drives the tasks of this server ([`Harness::drives`]).
    pub harness: Arc<Harness>,
    /// The server's client.
    pub client: OpencodeClient,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("opencode", &self.harness.opencode())
            .field("client", &self.client)
            .finish()
    }
}

/// Shared state of the router. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    /// The worker's OpenCode servers, its first one (`ServerParts::harness`) first.
    connections: Vec<Connection>,
    store: Arc<dyn Store>,
    recent: Arc<dyn RecentWorkspaces>,
    outbox: Arc<dyn Outbox>,
    metrics: Metrics,
    /// One session monitor per connection, in the same order.
    monitors: Vec<Arc<SessionMonitor>>,
    config: ServerConfig,
    /// Turns true when the server shuts down, so endless streams (SSE) end and the
    /// graceful shutdown does not wait for them for ever.
    closing: Arc<watch::Sender<bool>>,
    /// Task pages by query, with the store version they were read at.
    pages: PageCache,
    /// One permit per open `/api/events` stream ([`ServerConfig::max_event_streams`]).
    event_streams: Arc<tokio::sync::Semaphore>,
    /// Recent token failures by peer, for the guard's penalty.
    failures: crate::security::Failures,
    /// Where the GitHub hook queues its tasks, when the hook is configured.
    github: Option<openloom_core::Feeder>,
    /// Resynchronisation snapshots for the event streams, from the change watcher
    /// ([`crate::changes`]), started with the first stream.
    changes:
        tokio::sync::OnceCell<tokio::sync::broadcast::Sender<Arc<crate::routes::events::Snapshot>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("monitors", &self.inner.monitors)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State for a router serving `parts` under `config`, reading sessions from
    /// `monitor` (which the caller runs, or [`crate::Server`] runs for it). The
    /// further connections (`parts.others`) get a monitor each, made here, telling
    /// their harness what went idle; [`AppState::monitors`] lists them all.
    pub fn new(config: ServerConfig, parts: ServerParts, monitor: Arc<SessionMonitor>) -> Self {
        let store = Arc::clone(parts.harness.store());
        let event_streams = Arc::new(tokio::sync::Semaphore::new(config.max_event_streams));
        let closing = Arc::new(watch::channel(false).0);
        let github = github_intake(&config, &parts.harness, &closing);
        let first = Connection { harness: parts.harness, client: parts.client };
        let monitors = std::iter::once(monitor)
            .chain(parts.others.iter().map(|other| {
                let monitor =
                    Arc::new(SessionMonitor::new(other.client.clone(), config.monitor.clone()));
                let harness = Arc::clone(&other.harness);
                monitor.on_idle(move |session_id| harness.hint_idle(session_id));
                monitor
            }))
            .collect();
        AppState {
            inner: Arc::new(Inner {
                connections: std::iter::once(first).chain(parts.others).collect(),
                store,
                recent: parts.recent,
                outbox: parts.outbox,
                metrics: parts.metrics,
                monitors,
                config,
                closing,
                pages: PageCache::default(),
                event_streams,
                failures: crate::security::Failures::default(),
                github,
                changes: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The harness of the worker's first OpenCode server: it creates the tasks that
    /// name no server and drives the unbound ones.
    pub fn harness(&self) -> &Arc<Harness> {
        &self.first().harness
    }

    /// The worker's first OpenCode server.
    pub(crate) fn first(&self) -> &Connection {
        // Never empty: `new` puts the parts' own harness first.
        &self.inner.connections[0]
    }

    /// Every OpenCode server this worker is connected to, its first one first.
    pub fn connections(&self) -> &[Connection] {
        &self.inner.connections
    }

    /// The connection whose harness drives `task`, if this worker drives it at all
    /// (a task of another server's worker: `None`).
    pub fn connection_for(&self, task: &openloom_core::Task) -> Option<&Connection> {
        self.inner.connections.iter().find(|c| c.harness.drives(task))
    }

    /// The connection to the OpenCode server named `name`, if this worker has one.
    pub fn connection_named(&self, name: &str) -> Option<&Connection> {
        self.inner.connections.iter().find(|c| c.harness.opencode() == Some(name))
    }

    /// The task store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Recent workspaces.
    pub fn recent(&self) -> &Arc<dyn RecentWorkspaces> {
        &self.inner.recent
    }

    /// Webhook deliveries.
    pub fn outbox(&self) -> &Arc<dyn Outbox> {
        &self.inner.outbox
    }

    /// The worker's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The client of the worker's first OpenCode server (the session monitor's).
    pub fn client(&self) -> &OpencodeClient {
        &self.first().client
    }

    /// The session monitor of the first OpenCode server.
    pub fn monitor(&self) -> &Arc<SessionMonitor> {
        &self.inner.monitors[0]
    }

    /// The session monitor of each connection, in [`AppState::connections`]' order.
    pub fn monitors(&self) -> &[Arc<SessionMonitor>] {
        &self.inner.monitors
    }

    /// What the monitors know, as one snapshot ([`crate::MonitorSnapshot::merged`]).
    pub fn snapshot(&self) -> Arc<crate::MonitorSnapshot> {
        let snapshots: Vec<_> = self.inner.monitors.iter().map(|m| m.snapshot()).collect();
        crate::MonitorSnapshot::merged(&snapshots)
    }

    /// Asks every monitor to refresh now (after a change to some session).
    pub fn poke_monitors(&self) {
        self.inner.monitors.iter().for_each(|monitor| monitor.poke());
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The cache of task pages.
    pub(crate) fn pages(&self) -> &PageCache {
        &self.inner.pages
    }

    /// A slot for one more event stream, or `None` at the cap.
    pub(crate) fn event_stream_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        Arc::clone(&self.inner.event_streams).try_acquire_owned().ok()
    }

    /// Recent token failures by peer.
    pub(crate) fn failures(&self) -> &crate::security::Failures {
        &self.inner.failures
    }

    /// Where the GitHub hook queues tasks (`None` when the hook is not configured).
    pub(crate) fn github_feeder(&self) -> Option<&openloom_core::Feeder> {
        self.inner.github.as_ref()
    }

    /// Snapshots to resynchronise from when the store changed beyond this process's
    /// events; the first call starts the one change watcher ([`crate::changes`]).
    pub(crate) async fn resyncs(
        &self,
    ) -> tokio::sync::broadcast::Receiver<Arc<crate::routes::events::Snapshot>> {
        let start = || async {
            // Read before any stream reads its first snapshot, so no write after
            // that snapshot can pass for one the watcher saw. Unreadable: from 0,
            // which costs one early resynchronisation.
            let seen = self.store().store_version().await.unwrap_or(0);
            crate::changes::spawn(WeakState(Arc::downgrade(&self.inner)), seen)
        };
        self.inner.changes.get_or_init(start).await.subscribe()
    }

    /// A receiver that turns true when the server shuts down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Ends the live streams (called on shutdown).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }
}

/// An [`AppState`] that does not keep it alive: what a background task holds.
#[derive(Clone)]
pub(crate) struct WeakState(std::sync::Weak<Inner>);

impl WeakState {
    /// The state, unless it was dropped.
    pub(crate) fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(|inner| AppState { inner })
    }
}

/// The GitHub hook's queue and its intake: core's `take_in` over a feed, creating the
/// queued tasks through the harness until the server closes (or the state is
/// dropped, which ends the feed). Only when the hook is configured and a runtime runs.
fn github_intake(
    config: &ServerConfig,
    harness: &Arc<Harness>,
    closing: &watch::Sender<bool>,
) -> Option<openloom_core::Feeder> {
    config.github.as_ref()?;
    config.github_secret.as_ref()?;
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!("no async runtime: the GitHub hook cannot take deliveries");
        return None;
    };
    let (feeder, feed) = openloom_core::feed("github", crate::routes::hooks::GITHUB_QUEUE);
    runtime.spawn(openloom_core::take_in(Arc::new(feed), Arc::clone(harness), closing.subscribe()));
    Some(feeder)
}
