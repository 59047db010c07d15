//! Exit codes, documented in `--help` and docs/configuration.md.

use std::fmt;

/// Success; for `watch`, the task completed.
pub const OK: u8 = 0;
/// The task failed, checks failed, or an unexpected error.
pub const FAILURE: u8 = 1;
/// Bad usage or a bad spec (clap also uses 2 for usage errors).
pub const BAD_INPUT: u8 = 2;
/// OpenCode is unreachable or refused the credentials.
pub const UNREACHABLE: u8 = 3;
/// No task matches, or a prefix matches several.
pub const NOT_FOUND: u8 = 4;
/// `answer`: the request is no longer pending (answered elsewhere, or its session
/// ended), or the task waits on nothing.
pub const NOT_PENDING: u8 = 5;
/// Interrupted by Ctrl-C.
pub const INTERRUPTED: u8 = 130;

/// An error that carries the exit code it should end the process with.
#[derive(Debug)]
pub struct Coded {
    /// The exit code.
    pub code: u8,
    message: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// An error ending the process with `code`.
pub fn coded(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded { code, message: message.into() })
}
