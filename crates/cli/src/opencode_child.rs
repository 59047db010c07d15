//! OpenLoom starting OpenCode itself, so a first run needs one command.
//!
//! When the OpenCode URL is the default (no flag, variable or file named one),
//! nothing answers there, starting is not turned off and an `opencode` binary is
//! found, `watch`, `serve` and `plan` start `opencode serve` on a free loopback port
//! with a random password (passed only in its environment), in the task's workspace,
//! with the user's own environment — so OpenCode's own configuration, credentials and
//! data directory: a later run finds the same sessions. Its output is appended to
//! `opencode.log` next to the database (`.openloom/` by default). Its address and
//! credentials are published in the user's state directory while it runs, so that
//! `openloom answer` from another shell reaches it ([`crate::opencode_file`]).
//!
//! # It cannot outlive us
//! - On a normal end, Ctrl-C or SIGTERM the command returns and [`OpencodeChild::shutdown`]
//!   sends SIGTERM to OpenCode's process group (it runs in its own group, so it and
//!   the tools it spawned go together), then SIGKILL after [`STOP_GRACE`].
//! - On an error path the handle is dropped: SIGKILL to the group.
//! - On SIGKILL of `openloom` no code of ours runs. On Linux the child is started
//!   through `openloom` itself ([`GUARD_ARG`]): that tiny step asks the kernel for
//!   SIGKILL when its parent dies (`PR_SET_PDEATHSIG`, which survives `exec`) and then
//!   `exec`s OpenCode — the same as a `pre_exec` hook, without `unsafe`. The kernel
//!   then kills OpenCode itself; a tool process OpenCode had running at that moment
//!   is not in the kernel's reach and may finish on its own. On other systems
//!   OpenCode survives a SIGKILL of `openloom`.
//!
//! If OpenCode dies while we run, it is started again on the same port with the same
//! password, after a backoff that doubles from 1 s to 30 s; meanwhile the harness sees
//! an unreachable agent, which is an outage that tasks wait out, not a failure.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use openloom_core::Health;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::commands::parts;
use crate::config::Settings;
use crate::exit::{self, coded};
use crate::opencode_file::{Publication, Published};

/// First argument that makes `openloom` the launch step of an OpenCode child.
pub const GUARD_ARG: &str = "__openloom-opencode-child";

/// How long OpenCode has after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a start may take until `/global/health` answers.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Restart backoff: first wait, and the most it doubles to.
const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before dying starts the backoff over.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// The settings to use, and the OpenCode we started for them, if we did.
pub struct Opencode {
    settings: Settings,
    child: Option<OpencodeChild>,
}

impl Opencode {
    /// Settings pointing at the OpenCode to use (ours, when we started one).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Stops OpenCode if we started it.
    pub async fn shutdown(self) {
        if let Some(child) = self.child {
            child.shutdown().await;
        }
    }
}

/// What [`ensure`] decides before anything is started: a pure function of the
/// settings and what answered, so it has a table of tests.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Use the configured URL as it is.
    UseConfigured,
    /// Start this binary.
    Start(PathBuf),
}

fn decide(settings: &Settings, answered: bool, on_path: Option<PathBuf>) -> Result<Decision> {
    if !settings.start_opencode || !settings.opencode_url_is_default || answered {
        return Ok(Decision::UseConfigured);
    }
    match &settings.opencode_bin {
        Some(bin) if bin.is_file() => Ok(Decision::Start(bin.clone())),
        Some(bin) => Err(coded(
            exit::BAD_INPUT,
            format!(
                "the OpenCode binary {} (OPENLOOM_OPENCODE_BIN / --opencode-bin / opencode_bin) \
                 is not a file; point it at `opencode`, or unset it to use the one on PATH",
                bin.display()
            ),
        )),
        // Without a binary the command goes on and says how to start OpenCode.
        None => Ok(on_path.map_or(Decision::UseConfigured, Decision::Start)),
    }
}

/// The configured settings, starting nothing (for a command that will fail anyway).
pub fn ensure_none(settings: &Settings) -> Opencode {
    Opencode { settings: settings.clone(), child: None }
}

/// Returns the settings to use, starting OpenCode in `directory` first when the
/// conditions in the module docs hold.
pub async fn ensure(settings: &Settings, directory: &Path) -> Result<Opencode> {
    let configured = || ensure_none(settings);
    if !settings.start_opencode || !settings.opencode_url_is_default {
        return Ok(configured());
    }
    let answered = !matches!(parts::client(settings)?.health().await, Health::Unreachable { .. });
    let binary = match decide(settings, answered, which::which("opencode").ok())? {
        Decision::UseConfigured => return Ok(configured()),
        Decision::Start(binary) => binary,
    };
    // OpenCode's log goes beside the SQLite file, or in .openloom with PostgreSQL.
    let log = settings
        .database
        .sqlite_path()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from(".openloom"), Path::to_path_buf)
        .join("opencode.log");
    let mut child = OpencodeChild::start(settings, binary, directory, log).await?;
    let mut ours = settings.clone();
    ours.opencode_url = format!("http://127.0.0.1:{}", child.port);
    ours.opencode_password = Some(child.password.clone());
    // `openloom answer` in another shell finds it there; removed when it stops.
    child.published = Publication::publish(
        settings.opencode_file.as_deref(),
        Published::ours(
            ours.opencode_url.clone(),
            ours.opencode_username.clone(),
            child.password.clone(),
        ),
    );
    println!(
        "openloom: started OpenCode {} on 127.0.0.1:{} (stops with openloom); log: {}",
        child.version,
        child.port,
        child.log.display()
    );
    Ok(Opencode { settings: ours, child: Some(child) })
}

/// How to (re)start one OpenCode.
#[derive(Clone)]
struct Launch {
    binary: PathBuf,
    directory: PathBuf,
    port: u16,
    username: String,
    password: String,
    log: PathBuf,
}

/// A running OpenCode that we started, and the task that restarts it.
pub struct OpencodeChild {
    port: u16,
    password: String,
    version: String,
    log: PathBuf,
    /// OpenCode's process group (its pid), 0 when none is running.
    group: Arc<AtomicI32>,
    stop: watch::Sender<bool>,
    supervisor: Option<JoinHandle<()>>,
    /// Its address in the state directory, removed when this handle goes (after
    /// OpenCode stopped: fields drop after `Drop::drop` ran).
    published: Option<Publication>,
}

impl OpencodeChild {
    async fn start(
        settings: &Settings,
        binary: PathBuf,
        directory: &Path,
        log: PathBuf,
    ) -> Result<OpencodeChild> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("could not create {} for OpenCode's log", dir.display())
            })?;
        }
        let mut launch = Launch {
            binary,
            directory: directory.to_path_buf(),
            port: 0,
            username: settings.opencode_username.clone(),
            // 122 random bits; only OpenCode's environment and our client know it.
            password: uuid::Uuid::new_v4().simple().to_string(),
            log,
        };
        let group = Arc::new(AtomicI32::new(0));
        // The port is free when we look and taken by OpenCode a moment later; another
        // process could take it in between, so a failed start tries another port.
        let mut attempt = 1;
        let (child, version) = loop {
            launch.port = free_port()?;
            match start_once(&launch, &group).await {
                Ok(started) => break started,
                Err(error) if attempt < 3 => {
                    tracing::warn!(
                        port = launch.port,
                        "OpenCode did not start ({error:#}); trying another port"
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        };
        let (stop, stopped) = watch::channel(false);
        let supervisor =
            tokio::spawn(supervise(child, launch.clone(), Arc::clone(&group), stopped));
        Ok(OpencodeChild {
            port: launch.port,
            password: launch.password,
            version,
            log: launch.log,
            group,
            stop,
            supervisor: Some(supervisor),
            published: None,
        })
    }

    /// Stops OpenCode: SIGTERM to its group, SIGKILL after the grace period.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.await;
        }
    }
}

impl Drop for OpencodeChild {
    fn drop(&mut self) {
        // Reached without `shutdown` on an error path: nothing may stay behind.
        signal_group(self.group.load(Ordering::SeqCst), Signal::SIGKILL);
    }
}

/// Spawns OpenCode and waits until it answers; returns it and its version.
async fn start_once(launch: &Launch, group: &AtomicI32) -> Result<(Child, String)> {
    let mut child = spawn(launch)?;
    group.store(child.id().and_then(|pid| i32::try_from(pid).ok()).unwrap_or(0), Ordering::SeqCst);
    let mut options = openloom_opencode::Settings::new(format!("http://127.0.0.1:{}", launch.port));
    options.username = launch.username.clone();
    options.password = Some(openloom_opencode::Secret::new(launch.password.clone()));
    // A starting OpenCode accepts connections before it answers: probe often, briefly.
    options.health_timeout = Duration::from_millis(750);
    let client = openloom_opencode::OpencodeClient::new(options)
        .context("could not build the client that waits for OpenCode")?;
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            group.store(0, Ordering::SeqCst);
            return Err(anyhow::anyhow!(
                "OpenCode ({}) exited with {status} while starting; see {}",
                launch.binary.display(),
                launch.log.display()
            ));
        }
        if let Health::Reachable { version } = client.health().await {
            return Ok((child, version.unwrap_or_else(|| "(version unknown)".to_owned())));
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            signal_group(group.swap(0, Ordering::SeqCst), Signal::SIGKILL);
            let _ = child.wait().await;
            return Err(coded(
                exit::UNREACHABLE,
                format!(
                    "OpenCode ({}) did not answer on 127.0.0.1:{} within {}s; see {}",
                    launch.binary.display(),
                    launch.port,
                    STARTUP_TIMEOUT.as_secs(),
                    launch.log.display()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spawn(launch: &Launch) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .with_context(|| format!("could not open OpenCode's log {}", launch.log.display()))?;
    let log_err = log.try_clone().context("could not share OpenCode's log file")?;
    let port = launch.port.to_string();
    let serve = ["serve", "--hostname", "127.0.0.1", "--port", &port, "--print-logs"];
    let mut command = if cfg!(target_os = "linux") {
        let me = std::env::current_exe().context("could not find the openloom binary")?;
        let mut command = Command::new(me);
        command.arg(GUARD_ARG).arg(std::process::id().to_string()).arg(&launch.binary);
        command
    } else {
        Command::new(&launch.binary)
    };
    command
        .args(serve)
        .current_dir(&launch.directory)
        // Our own secrets are not OpenCode's (nor its tools') business.
        .env_remove("OPENLOOM_OPENCODE_PASSWORD")
        .env_remove("OPENLOOM_API_TOKEN")
        .env("OPENCODE_SERVER_USERNAME", &launch.username)
        .env("OPENCODE_SERVER_PASSWORD", &launch.password)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        // Its own group: Ctrl-C in the terminal reaches us, not it (we stop it in
        // order), and one signal reaches whatever it spawned.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn().with_context(|| {
        format!(
            "could not start {}; set OPENLOOM_OPENCODE_BIN to an OpenCode binary, \
             or --no-start-opencode and start `opencode serve` yourself",
            launch.binary.display()
        )
    })
}

/// Waits for the child; restarts it with backoff until asked to stop, then stops it.
async fn supervise(
    mut child: Child,
    launch: Launch,
    group: Arc<AtomicI32>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_INITIAL;
    let mut since = Instant::now();
    loop {
        tokio::select! {
            status = child.wait() => {
                group.store(0, Ordering::SeqCst);
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                if since.elapsed() > STABLE_AFTER {
                    backoff = BACKOFF_INITIAL;
                }
                eprintln!(
                    "openloom: OpenCode exited ({status}); starting it again in {}s (tasks wait meanwhile); log: {}",
                    backoff.as_secs(),
                    launch.log.display()
                );
            }
            () = stopped(&mut stop) => {
                terminate(&mut child, &group).await;
                return;
            }
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match start_once(&launch, &group).await {
                Ok((restarted, _)) => {
                    child = restarted;
                    since = Instant::now();
                    eprintln!("openloom: OpenCode is back on 127.0.0.1:{}", launch.port);
                    break;
                }
                Err(error) => eprintln!(
                    "openloom: OpenCode did not start again ({error:#}); next try in {}s",
                    backoff.as_secs()
                ),
            }
        }
    }
}

/// Completes when asked to stop (or when the handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn terminate(child: &mut Child, group: &AtomicI32) {
    let pgid = group.load(Ordering::SeqCst);
    signal_group(pgid, Signal::SIGTERM);
    if tokio::time::timeout(STOP_GRACE, child.wait()).await.is_err() {
        tracing::warn!("OpenCode ignored SIGTERM for {}s; killing it", STOP_GRACE.as_secs());
    }
    // Whatever it spawned and left behind goes too; then the leader, if it lingers.
    signal_group(pgid, Signal::SIGKILL);
    let _ = child.kill().await;
    group.store(0, Ordering::SeqCst);
}

fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 0 {
        return;
    }
    // ESRCH (nobody left in the group) is the normal case once it has exited.
    if let Err(error) = killpg(Pid::from_raw(pgid), signal) {
        tracing::trace!(%error, pgid, "signalling OpenCode's process group failed");
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .context("could not find a free loopback port for OpenCode")?;
    Ok(listener.local_addr().context("could not read the free port")?.port())
}

/// The launch step (`openloom __openloom-opencode-child PARENT_PID BINARY ARGS…`):
/// asks for SIGKILL when the parent dies, then becomes OpenCode. `None` when this
/// process is not one (the normal case).
pub fn guard_main() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_none_or(|first| first != GUARD_ARG) {
        return None;
    }
    let parent = args.next().and_then(|p| p.to_str().and_then(|p| p.parse::<i32>().ok()));
    let Some(binary) = args.next() else {
        eprintln!("openloom: {GUARD_ARG} needs PARENT_PID BINARY [ARGS…]");
        return Some(ExitCode::from(exit::BAD_INPUT));
    };
    #[cfg(target_os = "linux")]
    {
        if let Err(error) = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL) {
            eprintln!("openloom: could not tie OpenCode's life to openloom's: {error}");
        }
        // The parent may have died before the request above: then nobody would
        // ever send the signal, so stop here.
        if parent.is_none_or(|pid| nix::unistd::getppid().as_raw() != pid) {
            return Some(ExitCode::FAILURE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
    use std::os::unix::process::CommandExt;
    let error = std::process::Command::new(&binary).args(args).exec();
    eprintln!("openloom: could not start {}: {error}", Path::new(&binary).display());
    Some(ExitCode::from(127))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let env = |_: &str| None;
        Settings::resolve(&crate::config::GlobalArgs::default(), &env, Path::new("/tmp"))
            .expect("defaults")
    }

    #[test]
    fn opencode_is_started_only_for_the_default_url_with_nothing_there_and_a_binary() {
        let on_path = Some(PathBuf::from("/usr/bin/opencode"));
        let start = Decision::Start(PathBuf::from("/usr/bin/opencode"));
        let base = settings();
        assert_eq!(decide(&base, false, on_path.clone()).expect("ok"), start);
        assert_eq!(decide(&base, true, on_path.clone()).expect("ok"), Decision::UseConfigured);
        assert_eq!(decide(&base, false, None).expect("ok"), Decision::UseConfigured);
        let explicit = Settings { opencode_url_is_default: false, ..base.clone() };
        assert_eq!(decide(&explicit, false, on_path.clone()).expect("ok"), Decision::UseConfigured);
        let off = Settings { start_opencode: false, ..base.clone() };
        assert_eq!(decide(&off, false, on_path.clone()).expect("ok"), Decision::UseConfigured);
        let named =
            Settings { opencode_bin: Some(std::env::current_exe().expect("exe")), ..base.clone() };
        assert_eq!(
            decide(&named, false, on_path.clone()).expect("ok"),
            Decision::Start(std::env::current_exe().expect("exe")),
            "a named binary beats PATH"
        );
        let missing = Settings { opencode_bin: Some(PathBuf::from("/no/such/opencode")), ..base };
        let error = decide(&missing, false, on_path).expect_err("a wrong binary is an error");
        assert!(format!("{error:#}").contains("/no/such/opencode"), "{error:#}");
    }
}
