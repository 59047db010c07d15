//! Why a check could not be carried out.
//!
//! Most failures are outcomes (a command exited 1, a file is missing), not errors.
//! An [`Error`] means the check itself could not be evaluated — an unsafe path, a
//! workspace that is not a git repository, a process that would not start. The
//! runner turns every error into a failed [`CheckOutcome`](crate::CheckOutcome)
//! whose `error` field holds the message, so callers never handle it directly
//! unless they call the building blocks themselves.

use std::path::PathBuf;

/// A check that could not be evaluated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workspace directory does not exist or is not a directory.
    #[error("workspace {path} is not an existing directory")]
    WorkspaceMissing {
        /// The workspace as given.
        path: PathBuf,
    },
    /// A check path was empty.
    #[error("the check's path is empty")]
    EmptyPath,
    /// A check path was absolute; check paths are relative to the workspace.
    #[error("path {path:?} is absolute; check paths must be relative to the workspace")]
    AbsolutePath {
        /// The path as written in the spec.
        path: String,
    },
    /// A check path leaves the workspace, lexically (`..`) or through a symlink.
    #[error("path {path:?} escapes the workspace")]
    EscapesWorkspace {
        /// The path as written in the spec.
        path: String,
    },
    /// A file check could not read the file system.
    #[error("cannot access {path:?}: {source}")]
    Io {
        /// The path as written in the spec.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `file_contains` pointed at something that is not a regular file.
    #[error("{path:?} is not a regular file")]
    NotAFile {
        /// The path as written in the spec.
        path: String,
    },
    /// `file_contains` refuses files larger than its read limit.
    #[error("{path:?} is larger than the {limit_bytes}-byte limit of file_contains")]
    FileTooLarge {
        /// The path as written in the spec.
        path: String,
        /// The runner's read limit.
        limit_bytes: u64,
    },
    /// The `file_contains` pattern is not a valid regular expression.
    #[error("invalid pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The pattern as written in the spec.
        pattern: String,
        /// What the regex parser said.
        #[source]
        source: regex_lite::Error,
    },
    /// The command (or git) could not be started or waited for.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program that was being started.
        program: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `changes_within` needs the workspace to be inside a git repository.
    #[error("changes_within needs a git workspace, but {path} is not inside a git repository")]
    NotAGitRepository {
        /// The workspace.
        path: PathBuf,
    },
    /// git ran but failed or printed something unexpected.
    #[error("git failed: {message}")]
    Git {
        /// What went wrong, with git's own stderr when there is one.
        message: String,
    },
}

/// Results of this crate's building blocks.
pub type Result<T, E = Error> = std::result::Result<T, E>;
