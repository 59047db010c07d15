//! `openloom serve`: the REST API and live events, and the harness driving every task.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use openloom_core::{EventBus, Harness, Health, Source, Store, TaskStatus};
use openloom_opencode::OpencodeClient;
use openloom_server::{Connection, Metrics, Server, ServerConfig, ServerParts};
use openloom_sources::{Inbox, InboxConfig};

use super::parts;
use crate::config::Settings;
use crate::exit::{self, coded};

pub async fn run(settings: &Settings) -> Result<u8> {
    // One set of metrics, counted into by the client and the harness, shown at /metrics.
    let metrics = Metrics::new();
    // Requests to a named OpenCode server carry its name (`opencode` label).
    let meter_for = |name: Option<&str>| -> Arc<dyn openloom_core::Meter> {
        match name {
            Some(name) => metrics.for_opencode(name),
            None => Arc::new(metrics.clone()),
        }
    };
    let client = parts::metered_client(settings, meter_for(settings.opencode.as_deref()))?;
    let store = parts::store(settings).await?;
    let webhooks = parts::webhooks(settings, store.outbox.clone()).await?;
    let worker = parts::worker_name(settings, store.tasks.as_ref()).await?;
    let bus = EventBus::new();
    let meter = Arc::new(metrics.clone());
    let meter: Arc<dyn openloom_core::Meter> = meter;
    let others = parts::more_connections(settings, &store.tasks, &bus, &worker, &meter, |name| {
        meter_for(Some(name))
    })?;
    let harness =
        parts::harness(settings, store.tasks.clone(), client.clone(), bus.clone(), worker, meter);
    // Listed among the live workers before it answers anyone.
    harness.beat(chrono::Utc::now()).await.context("could not record this worker's heartbeat")?;
    let inbox = open_inbox(settings)?;
    let (server, access) =
        bind(settings, &harness, &store, &client, &metrics, true, others.clone()).await?;
    print_banner(&server, &access, settings, store.tasks.as_ref(), &client, &others).await?;

    let (stop, stop_signal) = tokio::sync::watch::channel(false);
    if let Some(sender) = webhooks {
        println!("  webhooks:  {} (docs/notifications.md)", settings.webhooks.len());
        tokio::spawn(sender.run(bus, stop_signal.clone()));
    }
    let intake = inbox.map(|inbox| {
        tokio::spawn(openloom_core::take_in(inbox, Arc::clone(&harness), stop_signal.clone()))
    });
    // One run loop per OpenCode server, all under this worker's name.
    let harnesses = std::iter::once(Arc::clone(&harness))
        .chain(others.iter().map(|other| Arc::clone(&other.harness)))
        .collect();
    let driver = tokio::spawn(Harness::run_together(harnesses, stop_signal));
    server.run(shutdown_signal()).await.context("the server failed")?;
    // Requests are done; let checks in flight write their results, then stop.
    let _ = stop.send(true);
    if let Some(intake) = intake {
        let _ = intake.await;
    }
    let _ = driver.await;
    println!("openloom: stopped; every task is in {}", settings.database);
    Ok(exit::OK)
}

/// The token the server requires, and where it came from (for the banner).
pub enum Access {
    /// `OPENLOOM_API_TOKEN`, `--token` or `api_token` in the config file.
    Configured,
    /// The token kept in the state directory; `created` on first start.
    Kept { token: String, path: PathBuf, created: bool },
    /// `--no-token`.
    Open,
}

impl Access {
    /// Resolves the token: configured, else `--no-token`, else the kept one
    /// (generated on first start).
    pub fn resolve(settings: &Settings) -> Result<Access> {
        if settings.api_token.is_some() {
            return Ok(Access::Configured);
        }
        if settings.no_token {
            return Ok(Access::Open);
        }
        let path = settings.token_file.clone().ok_or_else(|| {
            coded(
                exit::BAD_INPUT,
                "no API token configured and nowhere to keep a generated one (neither \
                 XDG_STATE_HOME nor HOME is set): set OPENLOOM_API_TOKEN to a long random value",
            )
        })?;
        let (token, created) = crate::token::load_or_create(&path)
            .map_err(|e| coded(exit::BAD_INPUT, format!("{e:#}")))?;
        Ok(Access::Kept { token, path, created })
    }
}

/// The inbox `--inbox` (or `inbox:`) names, opened; `None` without one.
fn open_inbox(settings: &Settings) -> Result<Option<Arc<dyn Source>>> {
    let Some(dir) = &settings.inbox else { return Ok(None) };
    let mut config = InboxConfig::new(dir);
    config.workspace = settings.inbox_workspace.as_ref().map(|w| w.to_string_lossy().into_owned());
    let inbox = Inbox::open(config).map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    Ok(Some(Arc::new(inbox)))
}

/// Validates the settings and binds the API server next to `harness` (and the
/// harnesses of the worker's `others` OpenCode servers); `hooks` enables the GitHub
/// hook (`serve` only: `watch --ui` drives its one task).
pub async fn bind(
    settings: &Settings,
    harness: &Arc<Harness>,
    stores: &parts::Stores,
    client: &Arc<OpencodeClient>,
    metrics: &Metrics,
    hooks: bool,
    others: Vec<Connection>,
) -> Result<(Server, Access)> {
    let address = resolve(&settings.ui_host, settings.ui_port)?;
    let access = Access::resolve(settings)?;
    let mut config = ServerConfig::new(address);
    match (&access, &settings.api_token) {
        (Access::Configured, Some(token)) => config = config.with_token(token.clone()),
        (Access::Kept { token, .. }, _) => config = config.with_token(token.clone()),
        _ => config.no_token = true,
    }
    config.public_hosts = settings.public_hosts.clone();
    config.opencode_servers = settings
        .opencode_servers
        .keys()
        .filter(|name| Some(name.as_str()) != settings.opencode.as_deref())
        .filter(|name| !settings.more_opencode.iter().any(|connected| connected.name == **name))
        .cloned()
        .collect();
    if hooks {
        config.github = settings.github.clone();
        config.github_secret = settings.github_secret.clone().map(Into::into);
    }
    // `--host localhost` or `--host myhost`: requests will name it, so answer to it.
    let host = settings.ui_host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_err() && !config.public_hosts.iter().any(|h| h == host) {
        config.public_hosts.push(host.to_owned());
    }
    let parts = ServerParts {
        harness: Arc::clone(harness),
        recent: stores.recent.clone(),
        outbox: stores.outbox.clone(),
        client: (**client).clone(),
        metrics: metrics.clone(),
        others,
    };
    let server =
        Server::bind(config, parts).await.map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    if matches!(access, Access::Open) {
        eprintln!(
            "openloom: WARNING: serving WITHOUT an API token (--no-token). Every user of this \
             machine can read every task and create tasks whose checks run commands as you. \
             Use it only on a machine nobody else logs in to."
        );
    }
    Ok((server, access))
}

/// The lines that tell the owner how to reach the server: the dashboard URL with the
/// token in its fragment (which browsers never send to the server) when the token was
/// generated, since the owner has no other way to learn it; a configured token is the
/// owner's own and is not repeated on the terminal (or a service's journal).
pub fn access_lines(server: &Server, access: &Access) -> Vec<String> {
    let base = format!("http://{}", server.local_addr());
    match access {
        Access::Kept { token, path, created } => vec![
            format!("  dashboard: {base}/#token={token}"),
            format!(
                "  api token: {} {} (mode 600; reused on every start, delete it for a new one)",
                if *created { "generated and kept in" } else { "kept in" },
                path.display()
            ),
        ],
        Access::Configured => vec![
            format!("  dashboard: {base}/#token=<your OPENLOOM_API_TOKEN>"),
            "  api token: configured (required on every request)".to_owned(),
        ],
        Access::Open => vec![
            format!("  dashboard: {base}/"),
            "  api token: NONE (--no-token): every local user can create tasks".to_owned(),
        ],
    }
}

/// What the banner says about the inbox and the GitHub hook.
fn intake_lines(settings: &Settings) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(inbox) = &settings.inbox {
        let workspace = match &settings.inbox_workspace {
            Some(workspace) => format!("default workspace {}", workspace.display()),
            None => "no default workspace (files must name one)".to_owned(),
        };
        lines.push(format!("  inbox:     {} — {workspace}", inbox.display()));
    }
    match (&settings.github, &settings.github_secret) {
        (Some(github), Some(_)) => lines.push(format!(
            "  github:    POST /api/hooks/github — label {:?}, {} {}",
            github.label,
            github.repos.len(),
            if github.repos.len() == 1 { "repository" } else { "repositories" }
        )),
        (Some(_), None) => lines.push(format!(
            "  github:    OFF — set {} to the webhook's secret",
            openloom_server::GITHUB_SECRET_ENV
        )),
        (None, Some(_)) => lines.push(
            "  github:    OFF — add a `github:` section (label, repos) to the config file"
                .to_owned(),
        ),
        (None, None) => {}
    }
    lines
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host, port).to_socket_addrs().ok().and_then(|mut addresses| addresses.next()).ok_or_else(
        || {
            coded(
                exit::BAD_INPUT,
                format!("cannot bind {host}:{port}: not an address of this machine"),
            )
        },
    )
}

async fn print_banner(
    server: &Server,
    access: &Access,
    settings: &Settings,
    store: &dyn Store,
    client: &OpencodeClient,
    others: &[Connection],
) -> Result<()> {
    let counts = store.count_by_status().await.context("could not count tasks")?;
    let summary: Vec<String> = TaskStatus::ALL
        .iter()
        .filter_map(|status| counts.get(status).map(|n| format!("{n} {status}")))
        .collect();
    println!("openloom: serving http://{}", server.local_addr());
    println!("  database:  {}", settings.database);
    println!(
        "  tasks:     {}",
        if summary.is_empty() { "none yet".to_owned() } else { summary.join(", ") }
    );
    let first = health_text(client).await;
    match &settings.opencode {
        Some(name) => println!(
            "  opencode:  {name} at {} — {first}; tasks created here run on it",
            settings.opencode_url
        ),
        None => println!("  opencode:  {} — {first}", settings.opencode_url),
    }
    for (other, server) in others.iter().zip(&settings.more_opencode) {
        let health = health_text(&other.client).await;
        let (name, url) = (&server.name, &server.url);
        println!("  opencode:  {name} at {url} — {health}; its tasks are driven here too");
    }
    for line in access_lines(server, access) {
        println!("{line}");
    }
    for line in intake_lines(settings) {
        println!("{line}");
    }
    println!("Stop with Ctrl-C.");
    Ok(())
}

/// What the banner says about an OpenCode server.
async fn health_text(client: &OpencodeClient) -> String {
    match client.health().await {
        Health::Reachable { version } => match version.as_deref() {
            Some(version) => match openloom_opencode::check_version(version) {
                Ok(()) => format!("reachable (version {version})"),
                Err(error) => format!("reachable, but {error}: tasks will fail to start"),
            },
            None => "reachable (version unknown)".to_owned(),
        },
        Health::Unreachable { reason } => {
            format!("NOT reachable: {reason} (tasks wait until it is)")
        }
        Health::Unauthorized { reason } => format!("refuses the credentials: {reason}"),
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
