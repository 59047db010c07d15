//! `openloom serve`: the REST API and live events, and the harness driving every task.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{Context, Result};
use openloom_core::{EventBus, Harness, Health, Store, TaskStatus};
use openloom_opencode::OpencodeClient;
use openloom_server::{Server, ServerConfig, ServerParts};
use openloom_store_sqlite::SqliteStore;

use super::parts;
use crate::config::Settings;
use crate::exit::{self, coded};

pub async fn run(settings: &Settings) -> Result<u8> {
    let client = parts::client(settings)?;
    let store = parts::store(settings).await?;
    let harness = parts::harness(settings, store.clone(), client.clone(), EventBus::new());
    let server = bind(settings, &harness, store.clone(), &client).await?;
    print_banner(&server, settings, store.as_ref(), &client).await?;

    let (stop, stop_signal) = tokio::sync::watch::channel(false);
    let driver = tokio::spawn(Arc::clone(&harness).run(stop_signal));
    server.run(shutdown_signal()).await.context("the server failed")?;
    // Requests are done; let checks in flight write their results, then stop.
    let _ = stop.send(true);
    let _ = driver.await;
    println!("openloom: stopped; every task is in {}", settings.database.display());
    Ok(exit::OK)
}

/// Validates the settings and binds the API server next to `harness`.
pub async fn bind(
    settings: &Settings,
    harness: &Arc<Harness>,
    store: Arc<SqliteStore>,
    client: &Arc<OpencodeClient>,
) -> Result<Server> {
    let address = resolve(&settings.ui_host, settings.ui_port)?;
    let mut config = ServerConfig::new(address);
    if let Some(token) = &settings.api_token {
        config = config.with_token(token.clone());
    }
    config.public_hosts = settings.public_hosts.clone();
    // `--host localhost` or `--host myhost`: requests will name it, so answer to it.
    let host = settings.ui_host.trim_start_matches('[').trim_end_matches(']');
    if host.parse::<std::net::IpAddr>().is_err() && !config.public_hosts.iter().any(|h| h == host) {
        config.public_hosts.push(host.to_owned());
    }
    let parts =
        ServerParts { harness: Arc::clone(harness), recent: store, client: (**client).clone() };
    Server::bind(config, parts).await.map_err(|e| coded(exit::BAD_INPUT, e.to_string()))
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
    settings: &Settings,
    store: &dyn Store,
    client: &OpencodeClient,
) -> Result<()> {
    let counts = store.count_by_status().await.context("could not count tasks")?;
    let summary: Vec<String> = TaskStatus::ALL
        .iter()
        .filter_map(|status| counts.get(status).map(|n| format!("{n} {status}")))
        .collect();
    let opencode = match client.health().await {
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
    };
    println!("openloom: serving http://{}", server.local_addr());
    println!("  database:  {}", settings.database.display());
    println!(
        "  tasks:     {}",
        if summary.is_empty() { "none yet".to_owned() } else { summary.join(", ") }
    );
    println!("  opencode:  {} — {opencode}", settings.opencode_url);
    println!(
        "  api token: {}",
        if settings.api_token.is_some() { "required" } else { "none (loopback only)" }
    );
    println!("Stop with Ctrl-C.");
    Ok(())
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
