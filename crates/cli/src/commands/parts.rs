//! Building the parts every command shares: the store, the OpenCode client, the harness.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use openloom_checks::{CheckRunner, VerifyingChecker};
use openloom_core::{
    Checker, EventBus, Harness, HarnessConfig, HarnessParts, Health, Meter, Outbox,
    RecentWorkspaces, Store, TaskSpec,
};
use openloom_opencode::{OpencodeClient, Secret};
use openloom_prompts::MarkerChecker;
use openloom_store_postgres::PostgresStore;
use openloom_store_sqlite::SqliteStore;

use crate::commands::words::CliDialogue;
use crate::config::{Database, Settings};
use crate::exit::{self, coded};

/// The opened store, as the traits the other parts take: one object behind both.
#[derive(Clone)]
pub struct Stores {
    /// Tasks, check logs and claims.
    pub tasks: Arc<dyn Store>,
    /// The dashboard's recent workspaces.
    pub recent: Arc<dyn RecentWorkspaces>,
    /// Webhook deliveries, queued by task writes.
    pub outbox: Arc<dyn Outbox>,
}

/// Opens the task database the settings name: a SQLite file (created if needed) or
/// a PostgreSQL database (migrated if needed). Only here does the binary know which.
pub async fn store(settings: &Settings) -> Result<Stores> {
    match &settings.database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open(path).await.map_err(|e| {
                coded(
                    exit::FAILURE,
                    format!("{e}\n  (set OPENLOOM_DATABASE or --database to use another file)"),
                )
            })?;
            let store = Arc::new(store);
            Ok(Stores { tasks: store.clone(), recent: store.clone(), outbox: store })
        }
        Database::Postgres(url) => {
            // The error names host, port and database and says what to fix; never
            // the password.
            let store = PostgresStore::connect(url).await.map_err(|e| {
                coded(exit::FAILURE, format!("{e}\n  (`openloom doctor` checks the database)"))
            })?;
            let store = Arc::new(store);
            Ok(Stores { tasks: store.clone(), recent: store.clone(), outbox: store })
        }
    }
}

/// The webhook sender for the settings' hooks, registered with the store (so task
/// writes queue deliveries for them from now on), or `None` when there are none.
/// A hook that cannot be used (bad URL, no secret) stops the command before any
/// work, saying what to set.
pub async fn webhooks(
    settings: &Settings,
    outbox: Arc<dyn Outbox>,
) -> Result<Option<openloom_notify::Sender>> {
    if settings.webhooks.is_empty() {
        return Ok(None);
    }
    let env = |name: &str| std::env::var(name).ok();
    let hooks = settings
        .webhooks
        .iter()
        .map(|config| openloom_notify::Webhook::from_config(config, env))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    let sender =
        openloom_notify::Sender::new(outbox, hooks, openloom_notify::SenderOptions::default())
            .map_err(|e| coded(exit::FAILURE, e.to_string()))?;
    sender.register().await.map_err(|e| {
        coded(exit::FAILURE, format!("could not register the webhooks with the store: {e}"))
    })?;
    Ok(Some(sender))
}

/// The OpenCode client for these settings.
pub fn client(settings: &Settings) -> Result<Arc<OpencodeClient>> {
    metered_client(settings, Arc::new(openloom_core::NoMeter))
}

/// [`client`], reporting each request's latency and failure to `meter` (`/metrics`).
pub fn metered_client(settings: &Settings, meter: Arc<dyn Meter>) -> Result<Arc<OpencodeClient>> {
    let mut options = openloom_opencode::Settings::new(settings.opencode_url.clone());
    options.meter = meter;
    options.username = settings.opencode_username.clone();
    options.password = settings.opencode_password.clone().map(Secret::new);
    let client = OpencodeClient::new(options).map_err(|e| {
        coded(exit::BAD_INPUT, format!("cannot use OpenCode URL {}: {e}", settings.opencode_url))
    })?;
    Ok(Arc::new(client))
}

/// Fails with exit code 3 and advice unless OpenCode answers and accepts us.
pub async fn require_opencode(client: &OpencodeClient, settings: &Settings) -> Result<()> {
    match client.health().await {
        // A server we cannot drive is refused here, before any work, with what to run.
        Health::Reachable { version: Some(version) } => openloom_opencode::check_version(&version)
            .map_err(|e| {
                coded(exit::UNREACHABLE, format!("OpenCode at {}: {e}", settings.opencode_url))
            }),
        Health::Reachable { version: None } => Ok(()),
        Health::Unreachable { reason } => Err(coded(
            exit::UNREACHABLE,
            format!(
                "OpenCode is not reachable at {}: {reason}\n  \
                 start it with `opencode serve --port 14096`, or point OPENLOOM_OPENCODE_URL at it \
                 (with `opencode` on PATH and the default URL, openloom starts it itself)",
                settings.opencode_url
            ),
        )),
        Health::Unauthorized { reason } => Err(coded(
            exit::UNREACHABLE,
            format!(
                "OpenCode at {} refused the credentials: {reason}\n  \
                 set OPENLOOM_OPENCODE_USERNAME and OPENLOOM_OPENCODE_PASSWORD",
                settings.opencode_url
            ),
        )),
    }
}

/// This process's worker name: the configured one, else `HOST:PID`. A name a live
/// worker of the same database already has is refused: the two would take each
/// other's task claims for their own.
pub async fn worker_name(settings: &Settings, store: &dyn Store) -> Result<String> {
    let name = settings.worker_name.clone().unwrap_or_else(|| {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|host| host.into_string().ok())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", std::process::id())
    });
    let since = chrono::Utc::now() - openloom_core::worker::LIVE_WITHIN;
    let live = store.live_workers(since).await.context("could not list the live workers")?;
    if let Some(twin) = live.iter().find(|worker| worker.name == name) {
        return Err(coded(
            exit::BAD_INPUT,
            format!(
                "a worker named {name:?} is already driving tasks of this database (last seen {}); \
                 give this one another --worker-name, or wait {} s if that worker was killed",
                twin.last_seen.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                openloom_core::worker::LIVE_WITHIN.num_seconds()
            ),
        ));
    }
    Ok(name)
}

/// The harness with the built-in parts: markers verified by the spec's checks, the
/// reference's wording with failures in the binary's words, and the settings' workspace policy.
pub fn harness(
    settings: &Settings,
    store: Arc<dyn Store>,
    client: Arc<OpencodeClient>,
    bus: EventBus,
    worker_name: String,
    meter: Arc<dyn Meter>,
) -> Arc<Harness> {
    harness_taking(settings, store, client, bus, worker_name, meter, true)
}

/// One connection per further OpenCode server of the worker
/// ([`Settings::more_opencode`]): its client (counting into `client_meter(name)`) and
/// a harness over the same store and bus, under the same worker name, counting into
/// `meter`, driving only the tasks bound to that server (the first server's harness
/// takes the unbound ones).
pub fn more_connections(
    settings: &Settings,
    store: &Arc<dyn Store>,
    bus: &EventBus,
    worker_name: &str,
    meter: &Arc<dyn Meter>,
    client_meter: impl Fn(&str) -> Arc<dyn Meter>,
) -> Result<Vec<openloom_server::Connection>> {
    settings
        .more_opencode
        .iter()
        .map(|server| {
            let on = settings.on_opencode(&server.name, &server.url);
            let client = metered_client(&on, client_meter(&server.name))?;
            let harness = harness_taking(
                &on,
                Arc::clone(store),
                Arc::clone(&client),
                bus.clone(),
                worker_name.to_owned(),
                Arc::clone(meter),
                false,
            );
            Ok(openloom_server::Connection { harness, client: (*client).clone() })
        })
        .collect()
}

/// [`harness`], taking the tasks bound to no OpenCode server only if `unbound_tasks`.
fn harness_taking(
    settings: &Settings,
    store: Arc<dyn Store>,
    client: Arc<OpencodeClient>,
    bus: EventBus,
    worker_name: String,
    meter: Arc<dyn Meter>,
    unbound_tasks: bool,
) -> Arc<Harness> {
    let checker: Arc<dyn Checker> =
        Arc::new(VerifyingChecker::new(Arc::new(MarkerChecker), Arc::new(CheckRunner::new())));
    let parts = HarnessParts {
        agent: client,
        store,
        checker,
        dialogue: Arc::new(CliDialogue),
        bus,
        workspaces: settings.workspace_policy(),
    };
    let config = HarnessConfig {
        task_defaults: settings.task_defaults.clone(),
        worker_name: Some(worker_name),
        opencode: settings.opencode.clone(),
        unbound_tasks,
        ..HarnessConfig::default()
    };
    Arc::new(Harness::with_config(parts, config).with_meter(meter))
}

/// Loads a spec file (the [`openloom_sources::SpecFile`] source); a relative or empty
/// workspace is taken relative to the spec's directory, so a spec works wherever it
/// is run from.
pub fn load_spec(path: &Path) -> Result<TaskSpec> {
    openloom_sources::SpecFile::new(path).load().map_err(|e| coded(exit::BAD_INPUT, e.to_string()))
}
