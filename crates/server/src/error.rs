//! The crate's one error type. Each variant knows its HTTP status; the mapping to a
//! response happens once, in [`IntoResponse`], so handlers just use `?`.
//!
//! Every error body is `{"error": "<code>", "detail": "<what happened>"}`. Internal
//! errors (the store, a bug) are logged with their detail and answered generically:
//! SQL text and file paths of the database never reach a client. OpenCode failures
//! (502, 503) carry OpenCode's own error message, or the first 200 characters of a
//! body that is not one of its JSON errors, because that is what the user must act
//! on; OpenCode's password is in neither (the client keeps it out of URLs and errors).

use std::net::SocketAddr;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong serving the API or starting the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed or asks for something invalid (400).
    #[error("{0}")]
    BadRequest(String),
    /// An extractor refused the request (malformed JSON, wrong content type, body too
    /// large, bad query); the status is the extractor's (400, 413, 415, 422).
    #[error("{detail}")]
    Rejected {
        /// Status chosen by the extractor.
        status: StatusCode,
        /// Its explanation.
        detail: String,
    },
    /// A task, session or directory does not exist (404).
    #[error("{what} not found: {id}")]
    NotFound {
        /// Kind of thing.
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The operation is not allowed in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The API token is missing or wrong (401).
    #[error("a valid API token is required: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// A webhook's signature is missing or wrong (401); nothing was done.
    #[error("{0}")]
    BadSignature(String),
    /// A webhook route that is not set up (403); the detail says what to configure.
    #[error("{0}")]
    HookDisabled(String),
    /// The request is well-formed but cannot be acted on (422), e.g. a GitHub hook
    /// for a repository the configuration does not map.
    #[error("{0}")]
    Unprocessable(String),
    /// The request is refused (403): a foreign `Origin`, a path outside the allowed roots.
    #[error("{0}")]
    Forbidden(String),
    /// The `Host` header names a server we are not (421): DNS rebinding protection.
    #[error("{0}")]
    MisdirectedHost(String),
    /// No route for this path (404) or method (405).
    #[error("{detail}")]
    NoRoute {
        /// 404 or 405.
        status: StatusCode,
        /// Which method and path.
        detail: String,
    },
    /// OpenCode could not be reached or timed out (503).
    #[error("OpenCode is unavailable: {0}")]
    UpstreamUnavailable(String),
    /// OpenCode answered with an error or something we did not understand (502).
    #[error("OpenCode failed: {0}")]
    Upstream(String),
    /// The database is locked by another process (503, with `Retry-After`). The
    /// detail (it names the database file) is logged, not returned.
    #[error("the database is busy: {0}")]
    Busy(String),
    /// Too many failed token attempts from this peer (429, with `Retry-After`).
    #[error(
        "too many requests with a wrong or missing API token from this address; wait \
         {retry_after} s, then send the right token"
    )]
    TooManyAttempts {
        /// Seconds until the peer may try again.
        retry_after: u64,
    },
    /// A server capacity is exhausted, e.g. the event-stream cap (503, with
    /// `Retry-After`); the detail names it.
    #[error("{0}")]
    Overloaded(String),
    /// Something broke inside the server (500). The detail is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
    /// The configuration would expose the API without a token.
    #[error(
        "refusing to listen on {bind} without an API token: anyone who can reach that \
         address could create tasks, and tasks can run commands. --no-token is for a \
         loopback address such as 127.0.0.1 only; drop it to use the generated token, or \
         set OPENLOOM_API_TOKEN"
    )]
    InsecureBind {
        /// The address asked for.
        bind: SocketAddr,
    },
    /// The configuration is unusable for another reason.
    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        /// The address asked for.
        bind: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server stopped with an I/O error.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Rejected { status, .. } | Error::NoRoute { status, .. } => *status,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Unauthorized | Error::BadSignature(_) => StatusCode::UNAUTHORIZED,
            Error::HookDisabled(_) => StatusCode::FORBIDDEN,
            Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::MisdirectedHost(_) => StatusCode::MISDIRECTED_REQUEST,
            Error::UpstreamUnavailable(_) | Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            Error::Internal(_)
            | Error::InsecureBind { .. }
            | Error::InvalidConfig(_)
            | Error::Bind { .. }
            | Error::Serve(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Rejected { status, .. } => match *status {
                StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                _ => "bad_request",
            },
            Error::NotFound { .. } => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Unauthorized => "unauthorized",
            Error::BadSignature(_) => "bad_signature",
            Error::HookDisabled(_) => "hook_disabled",
            Error::Unprocessable(_) => "unprocessable",
            Error::Forbidden(_) => "forbidden",
            Error::MisdirectedHost(_) => "misdirected_request",
            Error::NoRoute { status, .. } if *status == StatusCode::METHOD_NOT_ALLOWED => {
                "method_not_allowed"
            }
            Error::NoRoute { .. } => "not_found",
            Error::UpstreamUnavailable(_) => "opencode_unavailable",
            Error::Upstream(_) => "opencode_error",
            Error::Busy(_) | Error::Overloaded(_) => "busy",
            Error::TooManyAttempts { .. } => "too_many_requests",
            _ => "internal",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            // What OpenCode said is what the user needs to act on.
            Error::Upstream(_) => {
                tracing::warn!(error = %self, "OpenCode request failed");
                self.to_string()
            }
            Error::UpstreamUnavailable(_) | Error::Overloaded(_) => self.to_string(),
            Error::Busy(_) => {
                tracing::warn!(error = %self, "request refused: the database is busy");
                "the database is locked by another process; try again in a moment".to_owned()
            }
            _ if status.is_server_error() => {
                tracing::error!(error = %self, "request failed");
                "the server failed; see its log for details".to_owned()
            }
            _ => self.to_string(),
        };
        let mut response =
            (status, Json(json!({ "error": self.code(), "detail": detail }))).into_response();
        match self {
            Error::Unauthorized => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::Busy(_) | Error::Overloaded(_) => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Error::TooManyAttempts { retry_after } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<openloom_core::Error> for Error {
    fn from(error: openloom_core::Error) -> Self {
        use openloom_core::Error as Core;
        match error {
            Core::NotFound { what, id } => Error::NotFound { what, id },
            Core::Conflict(message) => Error::Conflict(message),
            Core::Invalid(message) => Error::BadRequest(message),
            Core::AgentUnavailable { message } => Error::UpstreamUnavailable(message),
            Core::StoreBusy { message, .. } => Error::Busy(message),
            Core::AgentUnauthorized { .. }
            | Core::AgentUpstream { .. }
            | Core::AgentProtocol { .. }
            | Core::UnsupportedAgentServer { .. } => Error::Upstream(error.to_string()),
            // Store and plug-in failures: logged in full, answered generically.
            other => Error::Internal(format!("{other}: {:?}", std::error::Error::source(&other))),
        }
    }
}

impl From<openloom_opencode::Error> for Error {
    fn from(error: openloom_opencode::Error) -> Self {
        use openloom_opencode::Error as Oc;
        match error {
            Oc::NotFound { what, id, .. } => Error::NotFound { what, id },
            Oc::Unreachable { .. } | Oc::Timeout { .. } => {
                Error::UpstreamUnavailable(error.to_string())
            }
            other => Error::Upstream(other.to_string()),
        }
    }
}

impl From<openloom_prompts::Error> for Error {
    fn from(error: openloom_prompts::Error) -> Self {
        use openloom_prompts::Error as Prompts;
        match error {
            // Drafting a plan: OpenCode's failure keeps its own status.
            Prompts::PlanningAgent { source, .. } => Error::from(source),
            // The model's doing, not the caller's: a bad gateway.
            Prompts::PlanModelFailed { .. } | Prompts::UnusablePlanReply { .. } => {
                Error::Upstream(error.to_string())
            }
            other => Error::BadRequest(format!("invalid task spec: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_their_statuses() {
        let cases = [
            (openloom_core::Error::Invalid("x".into()), StatusCode::BAD_REQUEST),
            (openloom_core::Error::Conflict("x".into()), StatusCode::CONFLICT),
            (
                openloom_core::Error::NotFound { what: "task", id: "t".into() },
                StatusCode::NOT_FOUND,
            ),
            (
                openloom_core::Error::AgentUnavailable { message: "refused".into() },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                openloom_core::Error::Store { message: "disk I/O".into(), source: None },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                openloom_core::Error::StoreBusy { message: "locked".into(), source: None },
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (core, status) in cases {
            assert_eq!(Error::from(core).status(), status);
        }
    }

    #[tokio::test]
    async fn a_busy_database_asks_to_retry_without_naming_the_file() {
        let core = openloom_core::Error::StoreBusy {
            message: "the database /srv/secret/openloom.sqlite3 stayed locked".into(),
            source: None,
        };
        let response = Error::from(core).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\"busy\""), "{text}");
        assert!(!text.contains("/srv/secret"), "{text}");
    }

    #[tokio::test]
    async fn internal_errors_are_answered_generically() {
        let response = Error::Internal("SELECT * FROM secret_table failed".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.expect("body");
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("secret_table"), "{text}");
        assert!(text.contains("\"internal\""), "{text}");
    }

    #[test]
    fn insecure_bind_says_why_and_how() {
        let bind: SocketAddr = "0.0.0.0:8080".parse().expect("addr");
        let text = Error::InsecureBind { bind }.to_string();
        assert!(text.contains("OPENLOOM_API_TOKEN") && text.contains("--no-token"), "{text}");
    }
}
