//! The crate's one error type.

use std::path::PathBuf;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading work from a source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The spec file named does not exist.
    #[error("spec file {} does not exist; create one with `openloom init`", path.display())]
    MissingSpec {
        /// The file.
        path: PathBuf,
    },
    /// The spec (or prompt) is invalid: the parser's error, naming file, line and field.
    #[error(transparent)]
    Spec(#[from] openloom_prompts::Error),
    /// An inbox file has no workspace: neither its spec nor `inbox_workspace` names one.
    #[error(
        "{}: no workspace: set `workspace:` in the spec, or `inbox_workspace` in the \
         configuration (--inbox-workspace) for files that do not say", path.display()
    )]
    NoWorkspace {
        /// The file.
        path: PathBuf,
    },
    /// An inbox file is larger than an inbox reads.
    #[error("{}: {size} bytes, more than the {limit} an inbox file may have", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The inbox directory cannot be used.
    #[error("inbox {}: {problem}", path.display())]
    Inbox {
        /// The directory.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A file-system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "move", "list".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A GitHub hook payload is not what GitHub sends (400).
    #[error("not a GitHub {event} payload: {problem}")]
    Payload {
        /// The `X-GitHub-Event`.
        event: String,
        /// What is missing or malformed.
        problem: String,
    },
    /// A GitHub hook names a repository the configuration does not map (422).
    #[error(
        "repository {repo} is not in the `github.repos` map of the configuration; add \
         `{repo}: /path/to/its/checkout` there to take its issues"
    )]
    UnknownRepository {
        /// `owner/name`.
        repo: String,
    },
    /// A GitHub issue asks for something a hook may not (422), e.g. its own workspace.
    #[error("issue {issue}: {problem}")]
    Refused {
        /// `owner/name#number`.
        issue: String,
        /// What and why.
        problem: String,
    },
}

impl From<Error> for openloom_core::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io { .. } => openloom_core::Error::other("source", error),
            other => openloom_core::Error::Invalid(other.to_string()),
        }
    }
}
