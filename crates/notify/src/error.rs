//! The one error type of the notify crate.

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can be wrong with a webhook's configuration. Sending never fails with an
/// error: a failed attempt is recorded on its delivery and retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not parse or is not `http(s)`.
    #[error("webhook URL {url:?} {reason}")]
    InvalidUrl {
        /// The URL as it may be shown (no credentials, path or query).
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No signing secret: the variable that should hold it is unset or empty.
    #[error(
        "webhook {url} has no signing secret: set {variable} to a long random string \
         (for example `openssl rand -hex 32`) and give the same secret to the receiver"
    )]
    MissingSecret {
        /// The hook's URL as it may be shown.
        url: String,
        /// The environment variable read.
        variable: String,
    },
    /// An unknown event name or format in the configuration.
    #[error("webhook {url}: {message}")]
    Invalid {
        /// The hook's URL as it may be shown.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}
