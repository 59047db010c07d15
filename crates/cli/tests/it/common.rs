//! Running the binary in a temp directory with a private database.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp directory to run `openloom` in, with its own database.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub opencode_url: String,
}

impl Sandbox {
    pub fn new() -> Self {
        // Port 9 (discard) on loopback: nothing listens, connections are refused.
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            opencode_url: "http://127.0.0.1:9".into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn database(&self) -> PathBuf {
        self.dir.path().join("state").join("openloom.sqlite3")
    }

    /// The sandbox's `XDG_STATE_HOME`.
    pub fn state_home(&self) -> PathBuf {
        self.dir.path().join("xdg-state")
    }

    /// Where `serve` keeps the token it generates.
    pub fn token_file(&self) -> PathBuf {
        self.state_home().join("openloom").join("token")
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// The binary with a clean OpenLoom environment pointing at this sandbox.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_openloom"));
        command.args(args).current_dir(self.dir.path());
        for (key, _) in std::env::vars() {
            if key.starts_with("OPENLOOM_") {
                command.env_remove(key);
            }
        }
        command
            .env("OPENLOOM_DATABASE", self.database())
            // The generated API token is kept per sandbox, not in the tester's home.
            .env("XDG_STATE_HOME", self.state_home())
            .env("OPENLOOM_OPENCODE_URL", &self.opencode_url)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command(args).output().expect("run openloom");
        Run::from(output)
    }

    /// [`Sandbox::run`] off the async runtime: an async test's runtime also serves the
    /// scripted model, so blocking it on the child would deadlock.
    pub async fn run_async(&self, args: &[&str]) -> Run {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || Run::from(command.output().expect("run openloom")))
            .await
            .expect("join")
    }
}

/// The result of one run, with readable output.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Waits for a child with a deadline; kills it and fails if it does not end.
pub fn wait_with_deadline(mut child: std::process::Child, limit: Duration) -> Run {
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("poll child") {
            return Run::from(child.wait_with_output().expect("collect output"));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let run = Run::from(child.wait_with_output().expect("collect output"));
            panic!(
                "openloom did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                run.stdout, run.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `openloom serve`, the base URL its banner printed, the dashboard line and
/// the token it requires. Killed on drop, so a failing test leaves no server behind;
/// its stderr goes to `serve.log` in the sandbox (a pipe nobody reads could fill and
/// block it).
pub struct Served {
    child: Option<Child>,
    pub base: String,
    /// The banner's dashboard URL (with `#token=` when the token was generated).
    pub dashboard: String,
    /// The token: `OPENLOOM_API_TOKEN` when given, else the one the URL carries.
    pub token: String,
    /// The banner's lines up to the dashboard line.
    pub banner: Vec<String>,
    log: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Served {
    /// Starts `serve` on a free port, off the async runtime (reading the banner
    /// blocks, and the runtime may be serving the scripted model).
    pub async fn start(sandbox: &Sandbox, extra_env: &[(&str, &str)]) -> Served {
        Self::start_with(sandbox, &[], extra_env).await
    }

    /// [`Served::start`] with extra arguments to `serve`.
    pub async fn start_with(
        sandbox: &Sandbox,
        extra_args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Served {
        let log = sandbox.path().join("serve.log");
        let stderr = std::fs::File::create(&log).expect("serve.log");
        let mut command = sandbox.command(&["serve", "--port", "0"]);
        command.args(extra_args);
        command.envs(extra_env.iter().copied()).stdout(Stdio::piped()).stderr(stderr);
        let extra_env: Vec<(String, String)> =
            extra_env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("start serve");
            let stdout = child.stdout.take().expect("stdout piped");
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().expect("a banner line").expect("utf8");
            let base = first
                .strip_prefix("openloom: serving ")
                .expect("banner names the URL")
                .trim()
                .to_owned();
            let mut banner = vec![first];
            let dashboard = lines
                .by_ref()
                .map_while(std::result::Result::ok)
                .find_map(|line| {
                    let dashboard = line.trim().strip_prefix("dashboard: ").map(str::to_owned);
                    banner.push(line);
                    dashboard
                })
                .expect("the banner has a dashboard line");
            let token = extra_env
                .iter()
                .find(|(key, _)| key == "OPENLOOM_API_TOKEN")
                .map(|(_, value)| value.clone())
                .or_else(|| dashboard.split_once("#token=").map(|(_, token)| token.to_owned()))
                .unwrap_or_default();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            Served { child: Some(child), base, dashboard, token, banner, log }
        })
        .await
        .expect("join")
    }

    /// An HTTP client that sends the server's token on every request.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        let value = format!("Bearer {}", self.token);
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&value).expect("a header-safe token"),
        );
        reqwest::Client::builder().default_headers(headers).build().expect("client")
    }

    /// SIGTERM, then the exit status, with the server's log as stderr.
    pub async fn stop(mut self) -> Run {
        let child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let mut run =
            tokio::task::spawn_blocking(move || wait_with_deadline(child, Duration::from_secs(20)))
                .await
                .expect("join");
        run.stderr = std::fs::read_to_string(&self.log).unwrap_or_default();
        run
    }
}

/// The start of every bootstrap prompt the harness sends.
pub const BOOTSTRAP: &str = "You are executing an OpenLoom harness task";

/// Scripts the simplest agent: it answers the bootstrap by writing `content` to
/// `file` with OpenCode's `write` tool, then reports its one step and the task done.
pub fn write_then_finish(env: &openloom_testkit::E2e, file: &Path, content: &str) {
    use openloom_testkit::{Reply, Turn};
    env.model.push_turn(Turn::reply(Reply::write_file(file, content)).when_user_says(BOOTSTRAP));
    env.model.push_turn(
        Turn::reply(Reply::text("Written.\nSTEP DONE: 1\nTASK COMPLETE")).when_tool_result(),
    );
}

/// How many prompts of the user (the harness) that reached the model contain `needle`.
pub fn prompts_containing(env: &openloom_testkit::E2e, needle: &str) -> usize {
    env.model
        .requests()
        .iter()
        .filter(|r| {
            r.last_role() == Some("user") && r.last_user_text().is_some_and(|t| t.contains(needle))
        })
        .count()
}
