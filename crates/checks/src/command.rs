//! The `run` check: a shell command in its own process group.
//!
//! The command runs as `sh -c COMMAND` with the workspace as its directory, no
//! stdin, a scrubbed environment, and stdout and stderr captured into one tail
//! buffer. It is the leader of a new process group, so a timeout — or the caller
//! dropping the future — kills the command *and everything it started*; a check
//! never leaves a stray `sleep` or test server behind.

use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::outcome::Evidence;

/// How long to wait for the output pipes to close after the process group is gone.
/// Only a process that left the group (`setsid`) can hold them open longer.
const PIPE_DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What a `run` check needs besides its definition.
pub(crate) struct CommandSpec<'a> {
    pub workspace: &'a Path,
    pub command: &'a str,
    pub expect_status: i32,
    pub timeout: Duration,
    pub env: Vec<(OsString, OsString)>,
    pub output_cap: usize,
}

/// Runs the command and judges its exit status.
pub(crate) async fn run_command(spec: CommandSpec<'_>) -> Result<Evidence> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(spec.command)
        .current_dir(spec.workspace)
        .env_clear()
        .envs(spec.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child =
        command.spawn().map_err(|source| Error::Spawn { program: "sh".to_owned(), source })?;
    // Armed from here on: every exit path, including a dropped future, kills the group.
    let mut group = ProcessGroupGuard { pgid: child.id().and_then(|id| i32::try_from(id).ok()) };

    let output = Arc::new(Mutex::new(TailBuffer::new(spec.output_cap)));
    let mut readers = JoinSet::new();
    if let Some(stdout) = child.stdout.take() {
        readers.spawn(copy_into(stdout, Arc::clone(&output)));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.spawn(copy_into(stderr, Arc::clone(&output)));
    }

    // Wait for the shell to exit *without reaping it*: while it is an unreaped
    // zombie its pid, which is the group's id, cannot be handed to a new process,
    // so the group kill below cannot reach an unrelated group that reused the number.
    let exited = exit_without_reaping(group.pgid);
    tokio::pin!(exited);
    let timed_out = match tokio::time::timeout(spec.timeout, &mut exited).await {
        Ok(()) => false,
        Err(_elapsed) => {
            tracing::warn!(command = spec.command, timeout = ?spec.timeout, "check timed out");
            group.kill();
            exited.as_mut().await;
            true
        }
    };
    // Background children of a finished command are killed too: they would hold
    // the pipes open and outlive the check.
    group.kill();
    let status = child.wait().await;
    // Reaped: the number may now be reused, so the guard must never kill it again.
    group.disarm();
    let status = status.map_err(|source| Error::Spawn { program: "sh".to_owned(), source })?;
    let drained = tokio::time::timeout(PIPE_DRAIN_GRACE, async {
        while readers.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            command = spec.command,
            "output pipes still open after the group was killed"
        );
        readers.abort_all();
    }
    let output = std::mem::take(&mut *output.lock().unwrap_or_else(PoisonError::into_inner));
    Ok(judge(status, timed_out, spec.expect_status, spec.timeout, output.into_string()))
}

fn judge(
    status: ExitStatus,
    timed_out: bool,
    expect_status: i32,
    timeout: Duration,
    output: String,
) -> Evidence {
    use std::os::unix::process::ExitStatusExt;
    let exit_status = status.code();
    let error = if timed_out {
        Some(format!(
            "timed out after {}s; the command and its children were killed",
            timeout.as_secs()
        ))
    } else {
        status.signal().map(|signal| format!("killed by signal {signal}"))
    };
    Evidence {
        passed: !timed_out && exit_status == Some(expect_status),
        exit_status,
        output,
        timed_out,
        error,
    }
}

async fn copy_into(mut pipe: impl AsyncRead + Unpin, output: Arc<Mutex<TailBuffer>>) {
    let mut chunk = vec![0_u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => {
                output.lock().unwrap_or_else(PoisonError::into_inner).push(&chunk[..read]);
            }
            Err(error) => {
                tracing::debug!(%error, "reading check output failed");
                break;
            }
        }
    }
}

/// Resolves once the process `pid` (a child of ours) has exited, leaving it unreaped
/// for `Child::wait` to collect. Resolves at once without a pid, and when waiting
/// fails (the child is already gone), so a caller never hangs on it.
fn exit_without_reaping(pid: Option<i32>) -> impl Future<Output = ()> {
    let waiting = pid.map(|pid| {
        tokio::task::spawn_blocking(move || {
            use nix::sys::wait::{Id, WaitPidFlag, waitid};
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            loop {
                match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    Ok(_) | Err(_) => return,
                }
            }
        })
    });
    async move {
        if let Some(waiting) = waiting {
            // A failed join (the runtime shutting down) counts as exited: the caller
            // then reaps, which waits for real.
            let _ = waiting.await;
        }
    }
}

/// Kills a process group with SIGKILL when told to and again when dropped, until
/// disarmed once its leader is reaped.
struct ProcessGroupGuard {
    pgid: Option<i32>,
}

impl ProcessGroupGuard {
    fn kill(&self) {
        let Some(pgid) = self.pgid else { return };
        match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
            // ESRCH: the whole group has already exited.
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(error) => tracing::warn!(pgid, %error, "cannot kill the check's process group"),
        }
    }
}

impl ProcessGroupGuard {
    /// Forgets the group: after the leader is reaped its id may belong to someone else.
    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for ProcessGroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps the last bytes of a stream, in bounded memory.
#[derive(Debug, Default)]
pub(crate) struct TailBuffer {
    bytes: Vec<u8>,
    cap: usize,
}

impl TailBuffer {
    pub(crate) fn new(cap: usize) -> Self {
        TailBuffer { bytes: Vec::new(), cap }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Trim only when twice over, so trimming costs amortized O(1) per byte.
        if self.bytes.len() > self.cap.saturating_mul(2).max(8192) {
            let excess = self.bytes.len() - self.cap;
            self.bytes.drain(..excess);
        }
    }

    /// The tail as text: lossy UTF-8, at most `cap` bytes, cut on a char boundary.
    pub(crate) fn into_string(self) -> String {
        let mut start = self.bytes.len().saturating_sub(self.cap);
        // Skip the continuation bytes of a character the cut went through, so the
        // tail does not open with a replacement character.
        while self.bytes.get(start).is_some_and(|byte| byte & 0xC0 == 0x80) {
            start += 1;
        }
        let text = String::from_utf8_lossy(&self.bytes[start..]).into_owned();
        openloom_core::task::truncate_tail(text, self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_last_bytes() {
        let mut buffer = TailBuffer::new(10);
        for index in 0..10_000 {
            buffer.push(format!("line {index}\n").as_bytes());
        }
        assert!(buffer.bytes.len() <= 8192 + 12, "memory stays bounded");
        let tail = buffer.into_string();
        assert_eq!(tail, "line 9999\n");
    }

    #[test]
    fn tail_buffer_never_splits_a_character() {
        let mut buffer = TailBuffer::new(3);
        buffer.push("a😀é".as_bytes());
        let tail = buffer.into_string();
        assert!(tail.len() <= 3);
        assert!(tail.ends_with('é'), "{tail:?}");
        assert!(!tail.contains('\u{FFFD}'), "a cut character became {tail:?}");
    }
}
