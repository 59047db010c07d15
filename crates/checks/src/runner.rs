//! [`CheckRunner`]: runs check definitions in a workspace and turns what they found
//! into [`CheckOutcome`]s.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openloom_core::CheckDefinition;
use tracing::Instrument;

use crate::command::{CommandSpec, run_command};
use crate::error::{Error, Result};
use crate::locks::WorkspaceLocks;
use crate::outcome::{CheckOutcome, Evidence};
use crate::{files, git};

/// Default cap on a check's kept output: the last 16 KiB.
pub const DEFAULT_OUTPUT_CAP_BYTES: usize = 16 * 1024;
/// Default size limit of a file that `file_contains` reads: 10 MiB.
pub const DEFAULT_FILE_READ_LIMIT_BYTES: u64 = 10 * 1024 * 1024;
/// Environment variables starting with this prefix are OpenLoom's own and never
/// reach a check.
pub const SCRUBBED_ENV_PREFIX: &str = "OPENLOOM_";
/// Other secrets OpenLoom holds that are scrubbed by default.
pub const DEFAULT_SCRUBBED_ENV_NAMES: &[&str] = &["OPENCODE_SERVER_PASSWORD"];

/// Runs a spec's executable checks in a workspace, one run at a time per workspace.
///
/// Configure with the `with_*` methods; share one runner (for example in an `Arc`)
/// so its per-workspace locks serialize every run on a workspace.
#[derive(Debug)]
pub struct CheckRunner {
    output_cap_bytes: usize,
    file_read_limit_bytes: u64,
    scrubbed_env_names: Vec<String>,
    base_env: Option<Vec<(OsString, OsString)>>,
    locks: WorkspaceLocks,
}

impl Default for CheckRunner {
    fn default() -> Self {
        CheckRunner {
            output_cap_bytes: DEFAULT_OUTPUT_CAP_BYTES,
            file_read_limit_bytes: DEFAULT_FILE_READ_LIMIT_BYTES,
            scrubbed_env_names: DEFAULT_SCRUBBED_ENV_NAMES
                .iter()
                .map(|name| (*name).to_owned())
                .collect(),
            base_env: None,
            locks: WorkspaceLocks::new(),
        }
    }
}

impl CheckRunner {
    /// A runner with the defaults: 16 KiB output tail, 10 MiB file limit, the
    /// process environment minus `OPENLOOM_*` and [`DEFAULT_SCRUBBED_ENV_NAMES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most this many bytes of output (the tail).
    pub fn with_output_cap(mut self, bytes: usize) -> Self {
        self.output_cap_bytes = bytes;
        self
    }

    /// Refuses `file_contains` on files larger than this many bytes.
    pub fn with_file_read_limit(mut self, bytes: u64) -> Self {
        self.file_read_limit_bytes = bytes;
        self
    }

    /// Also removes the variable `name` from the checks' environment.
    pub fn with_scrubbed_env(mut self, name: impl Into<String>) -> Self {
        self.scrubbed_env_names.push(name.into());
        self
    }

    /// Uses `vars` instead of the process environment as the environment checks
    /// inherit (scrubbing still applies). Read at each run when not set.
    pub fn with_base_env<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.base_env = Some(vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// The environment a check gets: the base environment minus OpenLoom's secrets.
    pub fn check_env(&self) -> Vec<(OsString, OsString)> {
        let base = match &self.base_env {
            Some(vars) => vars.clone(),
            None => std::env::vars_os().collect(),
        };
        base.into_iter().filter(|(name, _)| !self.is_scrubbed(name)).collect()
    }

    fn is_scrubbed(&self, name: &OsString) -> bool {
        let bytes = name.as_encoded_bytes();
        bytes.starts_with(SCRUBBED_ENV_PREFIX.as_bytes())
            || self.scrubbed_env_names.iter().any(|scrubbed| scrubbed.as_bytes() == bytes)
    }

    /// The locks that serialize runs per workspace.
    pub fn locks(&self) -> &WorkspaceLocks {
        &self.locks
    }

    /// Runs one check in `workspace`, waiting for any other run there to finish.
    pub async fn run(&self, workspace: &Path, check: &CheckDefinition) -> CheckOutcome {
        let _held = self.locks.lock(workspace).await;
        self.run_locked(workspace, check).await
    }

    /// Runs `checks` one after another in `workspace`, holding the workspace for
    /// the whole batch so no other run interleaves. Every check runs, even after a
    /// failure, so the evidence is complete.
    pub async fn run_all(&self, workspace: &Path, checks: &[CheckDefinition]) -> Vec<CheckOutcome> {
        let _held = self.locks.lock(workspace).await;
        self.run_all_locked(workspace, checks).await
    }

    /// [`run_all`](Self::run_all) for a caller that already holds the workspace lock.
    pub(crate) async fn run_all_locked(
        &self,
        workspace: &Path,
        checks: &[CheckDefinition],
    ) -> Vec<CheckOutcome> {
        let mut outcomes = Vec::with_capacity(checks.len());
        for check in checks {
            outcomes.push(self.run_locked(workspace, check).await);
        }
        outcomes
    }

    async fn run_locked(&self, workspace: &Path, check: &CheckDefinition) -> CheckOutcome {
        let label = check.label();
        let span = tracing::info_span!("check", label = %label, workspace = %workspace.display());
        let started = Instant::now();
        let evidence = self.evaluate(workspace, check).instrument(span.clone()).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let evidence = evidence.unwrap_or_else(|error| Evidence {
            error: Some(error.to_string()),
            ..Evidence::default()
        });
        span.in_scope(|| {
            tracing::info!(passed = evidence.passed, duration_ms, "check finished");
        });
        CheckOutcome {
            label,
            passed: evidence.passed,
            exit_status: evidence.exit_status,
            duration_ms,
            output_tail: openloom_core::task::truncate_tail(evidence.output, self.output_cap_bytes),
            timed_out: evidence.timed_out,
            error: evidence.error,
        }
    }

    async fn evaluate(&self, workspace: &Path, check: &CheckDefinition) -> Result<Evidence> {
        let workspace = canonical_workspace(workspace).await?;
        match check {
            CheckDefinition::Run { command, expect_status, timeout_seconds } => {
                run_command(CommandSpec {
                    workspace: &workspace,
                    command,
                    expect_status: *expect_status,
                    // Zero would time out before the shell starts; one second is the floor.
                    timeout: Duration::from_secs((*timeout_seconds).max(1)),
                    env: self.check_env(),
                    output_cap: self.output_cap_bytes,
                })
                .await
            }
            CheckDefinition::FileExists { path } => {
                let path = path.clone();
                blocking(move || files::file_exists(&workspace, &path)).await
            }
            CheckDefinition::FileMissing { path } => {
                let path = path.clone();
                blocking(move || files::file_missing(&workspace, &path)).await
            }
            CheckDefinition::FileContains { path, pattern } => {
                let (path, pattern) = (path.clone(), pattern.clone());
                let limit = self.file_read_limit_bytes;
                blocking(move || files::file_contains(&workspace, &path, &pattern, limit)).await
            }
            CheckDefinition::ChangesWithin { paths } => {
                git::changes_within(&workspace, paths, &self.check_env()).await
            }
        }
    }
}

/// The workspace's canonical path, or why it cannot be a workspace.
async fn canonical_workspace(workspace: &Path) -> Result<PathBuf> {
    let missing = || Error::WorkspaceMissing { path: workspace.to_owned() };
    let canonical = tokio::fs::canonicalize(workspace).await.map_err(|_| missing())?;
    let is_dir = tokio::fs::metadata(&canonical).await.map(|meta| meta.is_dir()).unwrap_or(false);
    if is_dir { Ok(canonical) } else { Err(missing()) }
}

/// Runs file-system work on the blocking pool.
async fn blocking(work: impl FnOnce() -> Result<Evidence> + Send + 'static) -> Result<Evidence> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|join_error| {
        Err(Error::Io { path: String::new(), source: std::io::Error::other(join_error) })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_openloom_and_configured_names_only() {
        let runner = CheckRunner::new().with_scrubbed_env("EXTRA_SECRET").with_base_env([
            ("OPENLOOM_API_TOKEN", "t"),
            ("OPENCODE_SERVER_PASSWORD", "p"),
            ("EXTRA_SECRET", "e"),
            ("PATH", "/usr/bin:/bin"),
            ("NOT_OPENLOOM_X", "kept"),
        ]);
        let names: Vec<OsString> = runner.check_env().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, [OsString::from("PATH"), OsString::from("NOT_OPENLOOM_X")]);
    }
}
