//! Child processes of the benchmark: started in their own process group, stopped
//! (group and all) when dropped, measured through `/proc`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// A running server process. Dropping it kills its process group.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// What the process is, for messages.
    pub label: String,
    /// Where its stdout and stderr go.
    pub log: std::path::PathBuf,
}

impl Server {
    /// Starts `command` in a new process group with output to `log`.
    pub fn spawn(mut command: Command, label: &str, log: &Path) -> Result<Server> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        command.stdin(std::process::Stdio::null()).stdout(out).stderr(err);
        command.process_group(0).kill_on_drop(true);
        let child = command.spawn().with_context(|| format!("starting {label}"))?;
        Ok(Server { child, label: label.to_owned(), log: log.to_owned() })
    }

    /// The process id.
    pub fn pid(&self) -> Result<u32> {
        self.child.id().with_context(|| format!("{} has already exited", self.label))
    }

    /// Waits until `url` answers 2xx, or fails with the log's tail.
    pub async fn wait_ready(&mut self, url: &str, limit: Duration) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(750))
            .build()
            .context("building the readiness client")?;
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().context("polling the server")? {
                bail!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} was not ready at {url} within {limit:?}:\n{}", self.label, self.log_tail())
    }

    /// The last lines of the process's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM to the group, then SIGKILL if it has not exited within 5 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_ok() {
                return;
            }
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait().await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // kill_on_drop only reaches the direct child; a server's helpers share its group.
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now, KiB.
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident, KiB.
    pub peak_kib: u64,
    /// `RssAnon`: the resident part that is the program's own data (heap, stacks), KiB.
    pub anon_kib: u64,
    /// `RssFile`: the resident part mapped from files (its code, libraries), KiB.
    pub file_kib: u64,
}

/// Reads [`Memory`] of `pid`.
pub fn memory(pid: u32) -> Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status(&text).with_context(|| format!("no VmRSS/VmHWM in {path}"))
}

fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        peak_kib: field("VmHWM:")?,
        anon_kib: field("RssAnon:").unwrap_or(0),
        file_kib: field("RssFile:").unwrap_or(0),
    })
}

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_ticks(&text).with_context(|| format!("no utime/stime in {path}"))?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|&hz| hz > 0)
        .context("sysconf(CLK_TCK)")?;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// utime + stime, in clock ticks, from a `/proc/<pid>/stat` line.
fn parse_stat_ticks(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces; count
    // fields after its closing one: state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A port on loopback that was free a moment ago.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

/// Runs `command` to its end within `limit`, returning wall time, exit code and output.
/// Past the limit the process is killed and the error carries what it printed.
pub async fn run_timed(mut command: Command, limit: Duration) -> Result<Timed> {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = command.spawn().context("could not run the command")?;
    let stdout = collect(child.stdout.take());
    let stderr = collect(child.stderr.take());
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Some(status.context("waiting for the command")?),
        Err(_) => {
            // The whole group: a helper left holding the pipes would keep them open.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            None
        }
    };
    let elapsed = started.elapsed();
    let stdout = stdout.await.unwrap_or_default();
    let stderr = stderr.await.unwrap_or_default();
    let Some(status) = status else {
        bail!("did not finish within {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    };
    Ok(Timed { elapsed, code: status.code(), stdout, stderr })
}

/// Reads a pipe to its end in the background.
fn collect<R>(pipe: Option<R>) -> tokio::task::JoinHandle<String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut bytes).await;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The outcome of [`run_timed`].
#[derive(Debug)]
pub struct Timed {
    /// From spawn to exit.
    pub elapsed: Duration,
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let text = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\nRssAnon:\t  1000 kB\nRssFile:\t  5700 kB\nThreads:\t3\n";
        assert_eq!(
            parse_status(text),
            Some(Memory { rss_kib: 6789, peak_kib: 12345, anon_kib: 1000, file_kib: 5700 })
        );
        assert_eq!(parse_status("Name:\tkernel-thread\n"), None);
    }

    #[test]
    fn reads_cpu_ticks_past_a_name_with_spaces() {
        let line = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 5 0 1 0 0";
        assert_eq!(parse_stat_ticks(line), Some(280));
        assert_eq!(parse_stat_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn its_own_cpu_time_grows() {
        let before = cpu_time(std::process::id()).expect("own stat");
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let after = cpu_time(std::process::id()).expect("own stat");
        assert!(after > before, "{before:?} -> {after:?} ({x})");
    }

    #[test]
    fn reads_its_own_memory() {
        let own = memory(std::process::id()).expect("own /proc status");
        assert!(own.rss_kib > 0 && own.peak_kib >= own.rss_kib, "{own:?}");
    }

    #[tokio::test]
    async fn times_a_command_and_keeps_its_exit_code() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 0.2; echo out; exit 3"]);
        let timed = run_timed(command, Duration::from_secs(5)).await.expect("runs");
        assert_eq!(timed.code, Some(3));
        assert_eq!(timed.stdout.trim(), "out");
        assert!(timed.elapsed >= Duration::from_millis(200), "{:?}", timed.elapsed);
    }

    #[tokio::test]
    async fn a_command_past_its_limit_is_an_error() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; sleep 5"]);
        let error = run_timed(command, Duration::from_millis(300)).await.expect_err("times out");
        assert!(error.to_string().contains("did not finish"), "{error}");
        assert!(error.to_string().contains("started"), "keeps the output: {error}");
    }
}
