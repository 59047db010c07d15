//! A real headless Chromium for the dashboard's browser tests:
//! [`BrowserLauncher::start`] runs `chromedriver` on a free loopback port in its own
//! process group and opens one WebDriver session (through [`fantoccini`]); dropping
//! the [`Browser`] kills the driver and the Chromium it started.
//!
//! The skip policy is the OpenCode tests' one: [`browser_launcher`] (or
//! [`require_browser!`](crate::require_browser)) gives `None` with one line of advice
//! when Chromium or chromedriver is missing, and panics under `OPENLOOM_E2E=required`.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Once;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::e2e::{E2E_ENV, e2e_required};

/// Environment variable: the Chromium binary (default: `chromium`, `chromium-browser`
/// or `google-chrome` on `PATH`).
pub const CHROMIUM_BIN_ENV: &str = "OPENLOOM_CHROMIUM";
/// Environment variable: the chromedriver binary (default: `chromedriver` on `PATH`).
pub const CHROMEDRIVER_BIN_ENV: &str = "OPENLOOM_CHROMEDRIVER";
/// How to get both.
pub const BROWSER_INSTALL_HINT: &str =
    "install them with `apt-get install -y chromium chromium-driver` (Debian)";

/// How long chromedriver may take to answer on its port.
const DRIVER_STARTUP: Duration = Duration::from_secs(20);

/// What can go wrong while starting the browser.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// Chromium or chromedriver is not installed.
    #[error("{what} not found ({searched}); {BROWSER_INSTALL_HINT}")]
    NotFound {
        /// `chromium` or `chromedriver`.
        what: &'static str,
        /// Where we looked.
        searched: String,
    },
    /// Starting chromedriver or finding a port failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// chromedriver did not listen in time, or exited.
    #[error("chromedriver did not start: {0}")]
    Driver(String),
    /// chromedriver refused to open a session (Chromium failed to start).
    #[error("could not open a headless Chromium session: {0}")]
    Session(#[from] fantoccini::error::NewSessionError),
}

/// The Chromium and chromedriver binaries to use.
#[derive(Debug, Clone)]
pub struct BrowserLauncher {
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// The chromedriver binary.
    pub chromedriver: PathBuf,
}

impl BrowserLauncher {
    /// Finds both binaries ([`CHROMIUM_BIN_ENV`], [`CHROMEDRIVER_BIN_ENV`], then `PATH`).
    pub fn find() -> Result<Self, BrowserError> {
        let chromium = find_binary(
            "chromium",
            CHROMIUM_BIN_ENV,
            &["chromium", "chromium-browser", "google-chrome"],
        )?;
        let chromedriver = find_binary("chromedriver", CHROMEDRIVER_BIN_ENV, &["chromedriver"])?;
        Ok(Self { chromium, chromedriver })
    }

    /// Starts chromedriver and opens a headless session with a `width`×`height` window.
    pub async fn start(&self, width: u32, height: u32) -> Result<Browser, BrowserError> {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .map_err(|source| BrowserError::Io { context: "finding a free port", source })?;
        let mut command = Command::new(&self.chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|source| BrowserError::Io { context: "starting chromedriver", source })?;
        let group = child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
        // From here on, dropping `driver` kills the process group.
        let mut driver = Driver { child, group };
        driver.wait_until_listening(port).await?;
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": self.chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-extensions",
                    "--disable-background-networking",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await?;
        Ok(Browser { client: Some(client), _driver: driver })
    }
}

fn find_binary(what: &'static str, env: &str, names: &[&str]) -> Result<PathBuf, BrowserError> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        searched.push(format!("{env}={}", path.display()));
    }
    for name in names {
        if let Ok(path) = which::which(name) {
            return Ok(path);
        }
        searched.push(format!("`{name}` on PATH"));
    }
    Err(BrowserError::NotFound { what, searched: searched.join(", ") })
}

/// The running chromedriver; killed with its process group (and so Chromium) on drop.
#[derive(Debug)]
struct Driver {
    child: Child,
    group: Option<Pid>,
}

impl Driver {
    async fn wait_until_listening(&mut self, port: u16) -> Result<(), BrowserError> {
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrowserError::Driver(format!("it exited with {status}")));
            }
            if started.elapsed() > DRIVER_STARTUP {
                return Err(BrowserError::Driver(format!(
                    "nothing listened on port {port} within {DRIVER_STARTUP:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            if let Err(error) = killpg(group, Signal::SIGKILL) {
                tracing::trace!(%error, %group, "signalling chromedriver's process group failed");
            }
        }
        let _ = self.child.start_kill();
    }
}

/// A headless Chromium session. [`Browser::client`] drives it; [`Browser::close`]
/// ends the session politely, and dropping kills chromedriver and Chromium anyway.
#[derive(Debug)]
pub struct Browser {
    client: Option<Client>,
    _driver: Driver,
}

impl Browser {
    /// The WebDriver client.
    ///
    /// # Panics
    /// Never: the client is only taken by [`Browser::close`], which consumes `self`.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("the client lives until close")
    }

    /// Ends the WebDriver session (Chromium exits), then kills the driver.
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.close()).await;
        }
    }
}

/// The browser launcher for a test, or `None` when Chromium or chromedriver is missing
/// and the test should return early (one line on stderr says why and how to install
/// them).
///
/// # Panics
/// When they are missing and `OPENLOOM_E2E=required`: in CI a skipped browser test
/// must fail, not pass silently.
pub fn browser_launcher() -> Option<BrowserLauncher> {
    match BrowserLauncher::find() {
        Ok(launcher) => Some(launcher),
        Err(error) if e2e_required() => {
            panic!("{E2E_ENV}=required but the browser is unavailable: {error}")
        }
        Err(error) => {
            static SKIP_NOTICE: Once = Once::new();
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "openloom e2e: skipping the browser tests: {error}"
                );
            });
            None
        }
    }
}

/// `let launcher = require_browser!();` — the launcher, or return from the test when
/// Chromium or chromedriver is not installed (see [`browser_launcher`]).
#[macro_export]
macro_rules! require_browser {
    () => {
        match $crate::browser::browser_launcher() {
            Some(launcher) => launcher,
            None => return,
        }
    };
}
