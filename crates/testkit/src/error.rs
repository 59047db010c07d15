//! The test kit's error type.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting the scripted model, OpenCode or a
/// workspace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No OpenCode binary was found; the message says where we looked and how to
    /// install it.
    #[error("OpenCode not found ({searched}); {hint}", hint = crate::INSTALL_HINT)]
    OpencodeNotFound {
        /// The places that were searched.
        searched: String,
    },
    /// A file or process operation failed.
    #[error("I/O error while {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// OpenCode did not come up; the log tail usually says why.
    #[error("OpenCode failed to start: {reason}\n--- last lines of {} ---\n{log_tail}", log.display())]
    Startup {
        /// What went wrong (exit, timeout, no port).
        reason: String,
        /// The log file with OpenCode's stdout and stderr.
        log: PathBuf,
        /// Its last lines.
        log_tail: String,
    },
    /// A git command failed.
    #[error("`git {args}` failed: {stderr}")]
    Git {
        /// The arguments given to git.
        args: String,
        /// Its standard error.
        stderr: String,
    },
    /// Something did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        after: Duration,
    },
    /// An HTTP request to OpenCode failed.
    #[error("HTTP request failed while {context}: {source}")]
    Http {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }
}
