//! [`Launcher`] finds the OpenCode binary; [`OpencodeServer`] is one running
//! `opencode serve`, isolated in a temp dir and wired to a [`ScriptedModel`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::Error;
use crate::model::{MODEL_ID, ScriptedModel, TITLE_MODEL_ID};

/// The OpenCode version the project is tested against.
pub const PINNED_OPENCODE_VERSION: &str = "1.18.34";

/// Environment variable naming the OpenCode binary to use (first place searched).
pub const OPENCODE_BIN_ENV: &str = "OPENLOOM_OPENCODE_BIN";

/// How to get OpenCode when it is missing.
pub const INSTALL_HINT: &str = "install it with `cargo xtask e2e-setup` or \
`npm install --prefix target/opencode-npm opencode-linux-x64@1.18.34`, or point OPENLOOM_OPENCODE_BIN at a binary";

/// The provider id of the scripted model in the generated OpenCode config.
pub const PROVIDER_ID: &str = "scripted";

/// Where `cargo xtask e2e-setup` installs OpenCode, relative to the target dir.
const NPM_BINARY: &str = "opencode-npm/node_modules/opencode-linux-x64/bin/opencode";

/// How long [`OpencodeServer::stop`] waits after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Timeout of one health probe while waiting for OpenCode to come up.
const HEALTH_PROBE_TIMEOUT: Duration = Duration::from_millis(750);

/// Ports tried by a first start, in case another process takes the chosen one.
const PORT_ATTEMPTS: u32 = 3;

/// Default time allowed for OpenCode to answer `/global/health`.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Finds the OpenCode binary and starts servers with it.
#[derive(Debug, Clone)]
pub struct Launcher {
    binary: PathBuf,
}

impl Launcher {
    /// Find OpenCode: `$OPENLOOM_OPENCODE_BIN`, then `opencode` on `PATH`, then the
    /// npm install under the workspace target dir (`target/opencode-npm/…`).
    pub fn find() -> Result<Self, Error> {
        let mut searched = Vec::new();
        if let Some(binary) = std::env::var_os(OPENCODE_BIN_ENV) {
            let binary = PathBuf::from(binary);
            if binary.is_file() {
                return Ok(Self::from_binary(binary));
            }
            // A set but wrong variable is a mistake: say so rather than quietly
            // falling back to another binary.
            return Err(Error::OpencodeNotFound {
                searched: format!("{OPENCODE_BIN_ENV}={} is not a file", binary.display()),
            });
        }
        searched.push(format!("{OPENCODE_BIN_ENV} (unset)"));
        if let Ok(binary) = which::which("opencode") {
            return Ok(Self::from_binary(binary));
        }
        searched.push("`opencode` on PATH".to_owned());
        for candidate in npm_candidates() {
            if candidate.is_file() {
                return Ok(Self::from_binary(candidate));
            }
            searched.push(candidate.display().to_string());
        }
        Err(Error::OpencodeNotFound { searched: searched.join(", ") })
    }

    /// Use this binary.
    pub fn from_binary(binary: impl Into<PathBuf>) -> Self {
        Self { binary: binary.into() }
    }

    /// The binary this launcher runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Start `opencode serve` on a free loopback port, using `model` as its default
    /// model, and wait until `/global/health` answers.
    pub async fn start(
        &self,
        model: &ScriptedModel,
        options: OpencodeOptions,
    ) -> Result<OpencodeServer, Error> {
        OpencodeServer::start(self.binary.clone(), model, options).await
    }
}

/// Candidate npm install locations, most specific first.
fn npm_candidates() -> Vec<PathBuf> {
    let mut targets = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        targets.push(PathBuf::from(dir));
    }
    // A test binary lives in <target>/debug/deps: one of its ancestors is the target dir.
    if let Ok(exe) = std::env::current_exe() {
        targets.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    targets.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let mut candidates: Vec<PathBuf> =
        targets.iter().map(|target| target.join(NPM_BINARY)).collect();
    candidates.dedup();
    candidates
}

/// How to configure an OpenCode server.
#[derive(Debug, Clone, Default)]
pub struct OpencodeOptions {
    /// Turn on HTTP basic auth with this password (`OPENCODE_SERVER_PASSWORD`).
    pub password: Option<String>,
    /// Basic-auth user name (`OPENCODE_SERVER_USERNAME`; OpenCode's default is
    /// `opencode`).
    pub username: Option<String>,
    /// The config's `permission` block, e.g. `{"edit": "ask"}`. OpenCode's default
    /// lets `write` and `bash` run without asking.
    pub permission: Option<Value>,
    /// JSON merged (recursively) into the generated config, e.g. model prices.
    pub extra_config: Option<Value>,
    /// Extra environment variables for the OpenCode process.
    pub env: Vec<(String, String)>,
    /// How long to wait for health; default 60 s.
    pub startup_timeout: Option<Duration>,
}

impl OpencodeOptions {
    /// Require basic auth with `password` (user name `opencode`).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Set the config's `permission` block.
    pub fn with_permission(mut self, permission: Value) -> Self {
        self.permission = Some(permission);
        self
    }

    /// Merge `extra` into the generated config.
    pub fn with_extra_config(mut self, extra: Value) -> Self {
        self.extra_config = Some(extra);
        self
    }
}

/// A running `opencode serve`. The process and its whole process group are killed
/// when this is dropped.
#[derive(Debug)]
pub struct OpencodeServer {
    binary: PathBuf,
    options: OpencodeOptions,
    root: TempDir,
    config_path: PathBuf,
    log_path: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Process group of the running child (kept after it is reaped, to clean up).
    group: Option<Pid>,
    http: reqwest::Client,
    startup_time: Duration,
}

impl OpencodeServer {
    async fn start(
        binary: PathBuf,
        model: &ScriptedModel,
        options: OpencodeOptions,
    ) -> Result<Self, Error> {
        Self::start_on(binary, model, options, free_port()?).await
    }

    /// Start on `port`, or on another free port if something else takes it first.
    async fn start_on(
        binary: PathBuf,
        model: &ScriptedModel,
        options: OpencodeOptions,
        port: u16,
    ) -> Result<Self, Error> {
        let root = tempfile::Builder::new()
            .prefix("openloom-opencode-")
            .tempdir()
            .map_err(|source| Error::io("creating OpenCode's temp dir", source))?;
        for dir in ["home", "config", "data", "cache", "state", "cwd"] {
            std::fs::create_dir_all(root.path().join(dir))
                .map_err(|source| Error::io(format!("creating {dir} dir"), source))?;
        }
        let config_path = root.path().join("opencode.json");
        let config = opencode_config(&model.base_url(), &options);
        let config_text = serde_json::to_string_pretty(&config).unwrap_or_default();
        std::fs::write(&config_path, config_text)
            .map_err(|source| Error::io("writing OpenCode's config", source))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|source| Error::Http {
                context: "building the health client".into(),
                source,
            })?;
        let log_path = root.path().join("opencode.log");
        let mut server = Self {
            binary,
            options,
            root,
            config_path,
            log_path,
            port,
            child: None,
            group: None,
            http,
            startup_time: Duration::ZERO,
        };
        let mut attempts = 1;
        loop {
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                // OpenCode exits when its port is taken; a port held by someone
                // else now was lost in the race `free_port` accepts.
                Err(error) if attempts < PORT_ATTEMPTS && !port_is_free(server.port) => {
                    tracing::warn!(port = server.port, %error, "OpenCode's port was taken; trying another");
                    attempts += 1;
                    server.port = free_port()?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port OpenCode listens on; kept across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `(user name, password)` when basic auth is on.
    pub fn credentials(&self) -> Option<(String, String)> {
        let password = self.options.password.clone()?;
        let username = self.options.username.clone().unwrap_or_else(|| "opencode".to_owned());
        Some((username, password))
    }

    /// The provider and model id to put in a prompt's `model` field.
    pub fn model_ref(&self) -> (&'static str, &'static str) {
        (PROVIDER_ID, MODEL_ID)
    }

    /// The temp dir holding OpenCode's home, XDG dirs, config and log.
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// The generated config file (`OPENCODE_CONFIG`).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The log file with OpenCode's stdout and stderr (all starts appended).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path, lines)
    }

    /// How long the last start took, from spawn to a healthy answer.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The OpenCode process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// `GET /global/health` → the JSON body (`{"healthy":true,"version":…}`).
    pub async fn health(&self) -> Result<Value, Error> {
        self.probe_health(Duration::from_secs(5)).await
    }

    async fn probe_health(&self, timeout: Duration) -> Result<Value, Error> {
        let context = || "calling /global/health".to_owned();
        let mut request =
            self.http.get(format!("{}/global/health", self.base_url())).timeout(timeout);
        if let Some((user, password)) = self.credentials() {
            request = request.basic_auth(user, Some(password));
        }
        let response = request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| Error::Http { context: context(), source })?;
        response.json().await.map_err(|source| Error::Http { context: context(), source })
    }

    /// Kill OpenCode's process group at once (SIGKILL, as in a crash) and reap it.
    /// The data dir is kept, so [`restart`](Self::restart) finds the sessions again.
    pub async fn kill(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            signal_group(self.group, Signal::SIGKILL);
            // SIGKILL cannot be ignored; `kill` covers a child that left the group.
            let _ = child.start_kill();
            child
                .wait()
                .await
                .map_err(|source| Error::io("waiting for OpenCode to exit", source))?;
            tracing::debug!(port = self.port, "OpenCode killed");
        }
        Ok(())
    }

    /// Stop OpenCode gracefully: SIGTERM to its process group, SIGKILL after 5 s.
    /// A graceful stop releases OpenCode's locks, so the next start is faster than
    /// after [`kill`](Self::kill).
    pub async fn stop(&mut self) -> Result<(), Error> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        signal_group(self.group, Signal::SIGTERM);
        let exited = tokio::time::timeout(STOP_GRACE, child.wait()).await;
        if exited.is_err() {
            tracing::warn!(port = self.port, "OpenCode ignored SIGTERM; killing it");
            let _ = child.start_kill();
            child
                .wait()
                .await
                .map_err(|source| Error::io("waiting for OpenCode to exit", source))?;
        }
        // Whatever it spawned and left behind goes too.
        signal_group(self.group, Signal::SIGKILL);
        Ok(())
    }

    /// Kill OpenCode (if running) and start it again on the same port with the same
    /// config and data dirs.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.kill().await?;
        self.spawn_and_wait().await
    }

    fn command(&self) -> Command {
        let root = self.root.path();
        let mut command = Command::new(&self.binary);
        command
            .args(["serve", "--hostname", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--print-logs", "--log-level", "INFO", "--pure"])
            .current_dir(root.join("cwd"))
            // A clean environment: no user OPENCODE_* settings or provider API keys.
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .envs(std::env::var_os("TMPDIR").map(|dir| ("TMPDIR", dir)))
            .envs(self.isolated_env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so kill reaches whatever it spawned (bash tools).
            .process_group(0)
            .kill_on_drop(true);
        if let Some((user, password)) = self.credentials() {
            command.env("OPENCODE_SERVER_USERNAME", user).env("OPENCODE_SERVER_PASSWORD", password);
        }
        command.envs(self.options.env.iter().map(|(key, value)| (key.as_str(), value.as_str())));
        command
    }

    /// The environment that makes an OpenCode process use this server's temp home,
    /// XDG dirs and generated config (the scripted model), offline. Given to another
    /// process that starts OpenCode itself (`openloom` does), it gets the same setup.
    pub fn isolated_env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let root = self.root.path();
        let mut env: Vec<(&'static str, std::ffi::OsString)> = vec![
            ("LANG", "C.UTF-8".into()),
            ("HOME", root.join("home").into()),
            ("XDG_CONFIG_HOME", root.join("config").into()),
            ("XDG_DATA_HOME", root.join("data").into()),
            ("XDG_CACHE_HOME", root.join("cache").into()),
            ("XDG_STATE_HOME", root.join("state").into()),
            ("OPENCODE_CONFIG", self.config_path.clone().into()),
        ];
        env.extend(OFFLINE_ENV.iter().map(|(key, value)| (*key, (*value).into())));
        env
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        self.append_log(&format!("--- openloom-testkit: starting {} ---", self.binary.display()));
        let mut child = self
            .command()
            .spawn()
            .map_err(|source| Error::io(format!("spawning {}", self.binary.display()), source))?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(copy_to_log(stdout, self.log_path.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(copy_to_log(stderr, self.log_path.clone()));
        }
        self.group = group_of(&child);
        self.child = Some(child);
        let timeout = self.options.startup_timeout.unwrap_or(DEFAULT_STARTUP_TIMEOUT);
        let deadline = started + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(self.startup_error(format!("the process exited with {status}")));
            }
            // OpenCode accepts connections before it is ready and never answers a
            // request that arrives too early, so each probe gets a short timeout.
            if self.probe_health(HEALTH_PROBE_TIMEOUT).await.is_ok() {
                self.startup_time = started.elapsed();
                tracing::debug!(port = self.port, took = ?self.startup_time, "OpenCode is healthy");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = self.kill().await;
                return Err(self.startup_error(format!("no healthy answer within {timeout:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn startup_error(&self, reason: String) -> Error {
        Error::Startup { reason, log: self.log_path.clone(), log_tail: self.log_tail(40) }
    }

    fn append_log(&self, line: &str) {
        append_line(&self.log_path, line);
    }
}

impl Drop for OpencodeServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            signal_group(self.group, Signal::SIGKILL);
            // kill_on_drop covers the leader too; tokio reaps it in the background.
            let _ = child.start_kill();
        }
    }
}

/// Turns off everything that would reach past loopback: the models.dev catalogue,
/// auto-update, sharing, LSP downloads, and the background `npm install` of
/// `@opencode-ai/plugin` into the config dir (npm offline, registry on a closed
/// loopback port). The OpenAI-compatible provider package is bundled in the binary,
/// so nothing needs installing.
const OFFLINE_ENV: &[(&str, &str)] = &[
    ("OPENCODE_DISABLE_MODELS_FETCH", "1"),
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_SHARE", "1"),
    ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1"),
    ("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1"),
    ("OPENCODE_DISABLE_CLAUDE_CODE", "1"),
    ("OPENCODE_DISABLE_EXTERNAL_SKILLS", "1"),
    ("OPENCODE_PURE", "1"),
    ("npm_config_offline", "true"),
    ("npm_config_registry", "http://127.0.0.1:9/"),
    ("npm_config_update_notifier", "false"),
];

/// The process group of a child spawned with `process_group(0)`: its own pid.
fn group_of(child: &Child) -> Option<Pid> {
    child.id().and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw)
}

fn signal_group(group: Option<Pid>, signal: Signal) {
    let Some(group) = group else { return };
    // ESRCH (nobody left in the group) is the normal case after the leader exited.
    if let Err(error) = killpg(group, signal) {
        tracing::trace!(%error, %group, "signalling OpenCode's process group failed");
    }
}

/// The generated config: one OpenAI-compatible provider pointing at the scripted
/// model, used as default and small model, plus the caller's additions.
fn opencode_config(model_base_url: &str, options: &OpencodeOptions) -> Value {
    let mut config = json!({
        "$schema": "https://opencode.ai/config.json",
        "model": format!("{PROVIDER_ID}/{MODEL_ID}"),
        "small_model": format!("{PROVIDER_ID}/{TITLE_MODEL_ID}"),
        "autoupdate": false,
        "share": "disabled",
        "provider": {
            PROVIDER_ID: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "OpenLoom scripted model",
                "options": { "baseURL": model_base_url, "apiKey": "openloom-testkit" },
                "models": {
                    MODEL_ID: { "name": "Scripted model", "tool_call": true },
                    TITLE_MODEL_ID: { "name": "Scripted title model" },
                },
            },
        },
    });
    if let Some(permission) = &options.permission {
        config["permission"] = permission.clone();
    }
    if let Some(extra) = &options.extra_config {
        merge_json(&mut config, extra);
    }
    config
}

/// Merge `extra` into `base`: objects recursively, anything else replaced.
fn merge_json(base: &mut Value, extra: &Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (key, value) in extra {
                merge_json(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, extra) => *base = extra.clone(),
    }
}

/// Copy lines of `stream` (OpenCode's stdout or stderr) to the log file.
async fn copy_to_log(stream: impl AsyncRead + Unpin, log: PathBuf) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        append_line(&log, &line);
    }
}

/// A loopback port nobody listens on right now. OpenCode's own `--port 0` tries
/// 4096 first, which a developer's real OpenCode (or a parallel test) may hold, so
/// the port is chosen here. Someone may take it before OpenCode binds it: the first
/// start then moves to another port (at most [`PORT_ATTEMPTS`] tries).
fn free_port() -> Result<u16, Error> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|source| Error::io("finding a free port for OpenCode", source))
}

/// Whether nothing listens on `port` (binding it works).
fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn append_line(path: &Path, line: &str) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    if let Ok(mut file) = file {
        let _ = writeln!(file, "{line}");
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_at_the_model_and_merges_extras() {
        let options = OpencodeOptions::default()
            .with_permission(json!({"edit": "ask"}))
            .with_extra_config(json!({"provider": {"scripted": {"models": {"scripted-model": {"cost": {"input": 3}}}}}}));
        let config = opencode_config("http://127.0.0.1:1/v1", &options);
        assert_eq!(config["model"], "scripted/scripted-model");
        assert_eq!(
            config.pointer("/provider/scripted/options/baseURL"),
            Some(&json!("http://127.0.0.1:1/v1"))
        );
        assert_eq!(
            config.pointer("/provider/scripted/models/scripted-model/cost/input"),
            Some(&json!(3))
        );
        assert_eq!(
            config.pointer("/provider/scripted/models/scripted-model/name"),
            Some(&json!("Scripted model"))
        );
        assert_eq!(config["permission"], json!({"edit": "ask"}));
    }

    /// The port is chosen before OpenCode binds it; if something takes it in
    /// between, OpenCode exits ("ServeError") and the kit must move to another.
    #[tokio::test]
    async fn a_port_taken_before_opencode_binds_it_is_replaced() {
        let Some(launcher) = crate::e2e_launcher() else { return };
        let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a port");
        let port = taken.local_addr().expect("address").port();
        let model = ScriptedModel::start(crate::Script::new()).await.expect("model starts");
        let options = OpencodeOptions::default();
        let server = OpencodeServer::start_on(launcher.binary().to_owned(), &model, options, port)
            .await
            .expect("starts on another port");
        assert_ne!(server.port(), port);
        assert!(server.health().await.is_ok());
    }

    #[test]
    fn npm_candidates_end_with_the_install_path() {
        let candidates = npm_candidates();
        assert!(candidates.iter().all(|c| c.ends_with(NPM_BINARY)));
        assert!(!candidates.is_empty());
    }
}
