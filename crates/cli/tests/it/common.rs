//! Running the binary in a temp directory with a private database.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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
