//! Verification for OpenLoom: runs the executable checks a spec's author wrote in a
//! task's workspace and reports evidence.
//!
//! OpenLoom does not trust the agent's word; it trusts the file system. A task is
//! done when its checks pass, and this crate is what runs them.
//!
//! # Main types
//! - [`CheckRunner`] runs a [`CheckDefinition`](openloom_core::CheckDefinition) —
//!   a shell command, a file that must exist, be missing or match a pattern, or a
//!   rule that git-visible changes stay within some paths — and returns a
//!   [`CheckOutcome`], the serializable evidence for the check log.
//! - [`verify_spec`] runs every check of a [`TaskSpec`](openloom_core::TaskSpec)
//!   (for `openloom verify`) into a [`SpecVerification`] that renders as a table.
//! - [`Verdict`] and [`summarize_failures`] turn outcomes into a decision and into
//!   feedback for the agent.
//!
//! # Design: a check is a process group
//! A `run` check is started as the leader of its own process group, and the whole
//! group is killed on timeout, when the command finishes, and when the caller drops
//! the future. Killing only the shell would leave `cargo test`'s children or a
//! backgrounded server running — holding the output pipe open, burning CPU and
//! changing the workspace after the verdict. The group kill keeps a check's effects
//! inside its run. Checks also never see OpenLoom's own secrets: every `OPENLOOM_*`
//! variable (and configured names) is removed from the environment they inherit.
//! That stops accidental leaks (a test printing `env` into output that reaches the
//! agent and the check log); it is not a sandbox. A check runs as OpenLoom's user
//! and can read what that user can: OpenLoom's config file, and its process's
//! `/proc/<pid>/environ` and command line, unless the binary makes itself
//! non-dumpable.
//!
//! Failures are outcomes, not errors: a refused path or a missing git repository is
//! a failed check whose `error` says why, so a spec's author sees it in the report.

mod checker;
mod command;
pub mod error;
mod files;
mod git;
mod locks;
mod outcome;
mod paths;
mod runner;
mod verify;

pub use checker::VerifyingChecker;
pub use error::{Error, Result};
pub use locks::WorkspaceLocks;
pub use outcome::{CheckOutcome, Verdict, summarize_failures};
pub use runner::{
    CheckRunner, DEFAULT_FILE_READ_LIMIT_BYTES, DEFAULT_OUTPUT_CAP_BYTES,
    DEFAULT_SCRUBBED_ENV_NAMES, SCRUBBED_ENV_PREFIX,
};
pub use verify::{SpecVerification, verify_spec};
