//! OpenLoom as a multi-task service: a REST API over the harness and OpenCode, live
//! task events over Server-Sent Events, a session monitor and token-usage telemetry.
//!
//! # Main items
//! - [`Server`]: `Server::bind(config, parts)` then `server.run(shutdown)`; or the
//!   one-call [`serve`]. Runs the [`SessionMonitor`] while it serves.
//! - [`router`]: the axum `Router` for an [`AppState`], usable without a socket
//!   (`tower::ServiceExt::oneshot`).
//! - [`ServerConfig`]: bind address, API token, public host names, limits.
//! - [`SessionMonitor`] / [`MonitorSnapshot`]: what the dashboard shows about
//!   OpenCode, refreshed in the background.
//! - [`Error`]: the crate's one error; each variant knows its HTTP status.
//! - [`ROUTES`]: every method and path served, kept equal to `docs/openapi.json` by a test.
//!
//! # Design: nothing in a request waits on OpenCode unless it must
//! The reference asked OpenCode for its health and sessions on every dashboard poll,
//! so a slow OpenCode made the dashboard slow and many tabs multiplied the load. Here
//! a background [`SessionMonitor`] owns all polling and publishes an immutable
//! snapshot; `/api/state` and `/api/sessions` read it and the local store only.
//! Routes that act on one session (messages, diff, archive) do call OpenCode, since
//! that is what they are for.
//!
//! # Security
//! The reference served everything with `Access-Control-Allow-Origin: *` on any
//! interface; tasks can run commands (executable checks), so that was remote code
//! execution for any web page — and, on a shared machine, for every local user. Here:
//! a token always (at least 16 characters; serving without one is an explicit,
//! loopback-only opt-out, [`ServerConfig::validate`]), with a per-peer penalty for
//! wrong guesses; no CORS headers at all; every request's `Host` must name this
//! server (DNS rebinding); state-changing requests with a foreign `Origin` or
//! `Referer` are refused; connections are capped and must send their headers in
//! time; bodies are limited; errors never leak internals or OpenCode's password.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

mod changes;
mod config;
mod error;
mod extract;
mod listen;
pub mod metrics;
pub mod monitor;
mod pages;
pub mod planner;
pub mod routes;
mod security;
mod state;
pub mod telemetry;

pub use config::{
    API_TOKEN_ENV, DEFAULT_BODY_LIMIT, DEFAULT_HEADER_TIMEOUT, GITHUB_SECRET_ENV, MIN_TOKEN_LEN,
    Secret, ServerConfig, default_max_connections,
};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use monitor::{MonitorConfig, MonitorSnapshot, SessionMonitor};
pub use routes::{OPENAPI_JSON, ROUTES};
pub use state::{AppState, Connection, ServerParts};

/// The API's router for `state`: every route of [`ROUTES`], JSON 404/405 fallbacks,
/// the security guard, the body limit and request tracing.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (_, path, handler) in routes::route_table() {
        router = router.route(path, handler);
    }
    router
        .method_not_allowed_fallback(routes::wrong_method)
        .fallback(routes::no_route)
        .layer(DefaultBodyLimit::max(state.config().body_limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::guard))
        // Spans name the path only: query strings can carry names and paths of the
        // user's files, and logs outlive requests.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}

/// A bound server, ready to run.
///
/// ```no_run
/// # async fn example(parts: openloom_server::ServerParts) -> openloom_server::Result<()> {
/// use openloom_server::{Server, ServerConfig};
/// let config = ServerConfig::new("127.0.0.1:8787".parse().expect("address"))
///     .with_token("a-long-random-token-from-the-environment");
/// let server = Server::bind(config, parts).await?;
/// tracing::info!("dashboard at http://{}", server.local_addr());
/// server.run(async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
}

impl Server {
    /// Validates `config` (a non-loopback address needs a token), binds its address
    /// and builds the state. Port 0 binds a free port; see [`Server::local_addr`].
    pub async fn bind(config: ServerConfig, parts: ServerParts) -> Result<Server> {
        config.validate()?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind { bind: config.bind, source })?;
        let local =
            listener.local_addr().map_err(|source| Error::Bind { bind: config.bind, source })?;
        let mut config = config;
        // The Host check must accept the port actually bound.
        config.bind = local;
        let monitor = Arc::new(SessionMonitor::new(parts.client.clone(), config.monitor.clone()));
        // What the monitor sees go idle, the harness's run loop checks at once (see
        // `on_idle`); the check belongs to that loop, so its shutdown waits for it.
        let harness = Arc::clone(&parts.harness);
        monitor.on_idle(move |session_id| harness.hint_idle(session_id));
        let state = AppState::new(config, parts, monitor);
        Ok(Server { listener, state })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.config().bind
    }

    /// The router's state (to reach the monitor, the harness, ...).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Runs the session monitors (one per OpenCode server) and serves until
    /// `shutdown` completes, then ends the live streams, lets requests in flight
    /// finish, and stops the monitors.
    /// The harness is not run here: the caller runs [`openloom_core::Harness::run`].
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let Server { listener, state } = self;
        let (stop, stopped) = watch::channel(false);
        let monitors: Vec<_> = state
            .monitors()
            .iter()
            .map(|monitor| tokio::spawn(Arc::clone(monitor).run(stopped.clone())))
            .collect();
        let closing = state.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("server shutting down");
            closing.close_streams();
        };
        let config = state.config();
        tracing::info!(
            address = %config.bind,
            max_connections = config.max_connections,
            max_event_streams = config.max_event_streams,
            header_timeout_ms = u64::try_from(config.header_timeout.as_millis()).unwrap_or(u64::MAX),
            "serving the OpenLoom API"
        );
        let limits = listen::Limits {
            max_connections: config.max_connections,
            header_timeout: config.header_timeout,
        };
        listen::serve(listener, router(state), limits, shutdown).await;
        stop.send_replace(true);
        for monitor in monitors {
            if let Err(error) = monitor.await {
                tracing::warn!(%error, "session monitor task failed");
            }
        }
        Ok(())
    }
}

/// Binds `config.bind` and serves `parts` until `shutdown` completes
/// ([`Server::bind`] then [`Server::run`]).
pub async fn serve(
    config: ServerConfig,
    parts: ServerParts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Server::bind(config, parts).await?.run(shutdown).await
}
