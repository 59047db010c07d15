//! The one error type of the core crate.
//!
//! The variants are chosen by what a caller must do differently, not by where the
//! error came from: a transient agent-server error is retried with backoff, an
//! unauthorized one needs new credentials, a missing session ends the task. Adapter
//! crates (`openloom-opencode`, `openloom-store-sqlite`, ...) keep their own error
//! enums and convert into this one at the trait boundary.

use std::fmt;

/// A `Result` whose error defaults to the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Boxed error used to carry an adapter's own error as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong inside the harness and its pluggable parts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent server could not be reached or did not answer in time. Transient:
    /// the harness records it and retries later with backoff.
    #[error("agent server unavailable: {message}")]
    AgentUnavailable {
        /// What failed, e.g. "connection refused to http://127.0.0.1:4096".
        message: String,
    },
    /// The agent server refused our credentials. Fix the username/password.
    #[error("agent server refused the credentials: {message}")]
    AgentUnauthorized {
        /// The server's reason, if it gave one.
        message: String,
    },
    /// The agent server answered with an error status. 5xx is transient, 4xx is not.
    #[error("agent server answered {status}: {message}")]
    AgentUpstream {
        /// HTTP status code.
        status: u16,
        /// The server's own error message (never a response body with secrets).
        message: String,
    },
    /// The agent server answered with something we could not understand.
    #[error("unexpected answer from the agent server: {message}")]
    AgentProtocol {
        /// What was wrong with the answer.
        message: String,
    },
    /// The agent server runs a version whose API OpenLoom has not been tested with
    /// (OpenCode 2.x moved its routes under `/api/`). Permanent: retrying cannot help.
    #[error(
        "unsupported agent server: {found}; OpenLoom is tested with OpenCode {tested}: \
         run that version (npm install -g opencode-ai@{tested}) or point OpenLoom at a server that does"
    )]
    UnsupportedAgentServer {
        /// What was found, e.g. "OpenCode 2.0.1".
        found: String,
        /// The version OpenLoom is tested with.
        tested: String,
    },
    /// A session, task or other named thing does not exist (any more).
    #[error("{what} not found: {id}")]
    NotFound {
        /// Kind of thing: "session", "task", ...
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// An operation is not allowed in the current state (e.g. deleting a running task).
    #[error("{0}")]
    Conflict(String),
    /// Input was invalid: a bad spec, a workspace outside the allowed roots, ...
    #[error("{0}")]
    Invalid(String),
    /// The store failed. The adapter's error is kept as the source.
    #[error("store error: {message}")]
    Store {
        /// What the store was doing.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store is locked by another writer (another process on the same database)
    /// for longer than it waits. Transient: the harness retries later with backoff.
    #[error("store busy: {message}")]
    StoreBusy {
        /// What was locked, and for how long the store waited.
        message: String,
        /// The adapter's error.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure of a pluggable part (checker, sink, source).
    #[error("{context}: {source}")]
    Other {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// True when retrying later may succeed: the agent server was unreachable, timed
    /// out, or answered with a 5xx/429 status, or the store was locked by another writer.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::AgentUnavailable { .. } | Error::StoreBusy { .. } => true,
            Error::AgentUpstream { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Wraps any error from a pluggable part with a short context.
    pub fn other(context: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        Error::Other { context: context.to_string(), source: source.into() }
    }

    /// A store error with a source.
    pub fn store(message: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        Error::Store { message: message.to_string(), source: Some(source.into()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        assert!(Error::AgentUnavailable { message: "refused".into() }.is_transient());
        assert!(Error::AgentUpstream { status: 503, message: "x".into() }.is_transient());
        assert!(!Error::AgentUpstream { status: 400, message: "x".into() }.is_transient());
        assert!(!Error::AgentUnauthorized { message: String::new() }.is_transient());
        assert!(!Error::NotFound { what: "session", id: "ses_1".into() }.is_transient());
        assert!(Error::StoreBusy { message: "locked".into(), source: None }.is_transient());
        assert!(!Error::Store { message: "disk full".into(), source: None }.is_transient());
        let unsupported = Error::UnsupportedAgentServer {
            found: "OpenCode 2.0.0".into(),
            tested: "1.18.34".into(),
        };
        assert!(!unsupported.is_transient(), "a newer OpenCode does not go away by waiting");
    }
}
