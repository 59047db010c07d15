//! The crate's one error type, how OpenCode's error bodies are read, and the
//! conversion into [`openloom_core::Error`].

use serde_json::Value;

/// A `Result` whose error defaults to this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to OpenCode.
///
/// Messages never contain the password: credentials travel in a header, never in
/// the URL. Of an error body only the server's own `message` is kept, or for a
/// body in neither of OpenCode's shapes its first 200 characters (HTML: none).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server could not be reached (connection refused, DNS, reset). Transient.
    #[error("OpenCode unreachable: {message}")]
    Unreachable {
        /// What failed, e.g. "GET /session: connection refused".
        message: String,
    },
    /// The server did not answer in time. Transient.
    #[error("OpenCode timed out: {message}")]
    Timeout {
        /// Which request timed out and after how long.
        message: String,
    },
    /// The server refused our credentials (HTTP 401; OpenCode sends an empty body).
    #[error("OpenCode refused the credentials: {message}")]
    Unauthorized {
        /// Why, in words a user can act on.
        message: String,
    },
    /// The thing asked for does not exist (HTTP 404).
    #[error("{what} not found: {id}")]
    NotFound {
        /// Kind of thing: "session", "permission request", "question".
        what: &'static str,
        /// Its identifier.
        id: String,
        /// The server's own message, if it gave one.
        message: String,
    },
    /// The server answered with an error status.
    #[error("OpenCode answered {status}: {message}")]
    Upstream {
        /// HTTP status code.
        status: u16,
        /// The server's own message (from `{name, data:{message}}` or
        /// `{_tag, message}`), or the error's name when it gave no message.
        message: String,
    },
    /// The answer could not be understood: HTML where JSON was expected,
    /// malformed JSON, a shape we do not know.
    #[error("unexpected answer from OpenCode: {message}")]
    UnexpectedResponse {
        /// What was wrong.
        message: String,
    },
    /// The server is not an OpenCode whose API we know: a major version other than
    /// the tested one's, or the web page where an API route should answer.
    #[error("unsupported OpenCode: {found}; OpenLoom is tested with OpenCode {tested}")]
    Unsupported {
        /// What was found, e.g. "OpenCode 2.0.1".
        found: String,
        /// [`crate::TESTED_VERSION`].
        tested: &'static str,
    },
    /// The settings cannot work (e.g. a base URL that does not parse).
    #[error("invalid OpenCode settings: {message}")]
    InvalidSettings {
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// The error's kind in one word, for metrics and logs (`unreachable`, `timeout`,
    /// `unauthorized`, `not_found`, `upstream`, `unexpected_response`, `unsupported`,
    /// `invalid_settings`): a bounded set, unlike the messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unreachable { .. } => "unreachable",
            Error::Timeout { .. } => "timeout",
            Error::Unauthorized { .. } => "unauthorized",
            Error::NotFound { .. } => "not_found",
            Error::Upstream { .. } => "upstream",
            Error::UnexpectedResponse { .. } => "unexpected_response",
            Error::Unsupported { .. } => "unsupported",
            Error::InvalidSettings { .. } => "invalid_settings",
        }
    }

    /// True when retrying later may succeed: unreachable, timed out, or an
    /// upstream 5xx, 429 (too many requests) or 408 (a proxy's request timeout).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => true,
            Error::Upstream { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

impl From<Error> for openloom_core::Error {
    fn from(err: Error) -> Self {
        use openloom_core::Error as Core;
        match err {
            Error::Unreachable { message } => Core::AgentUnavailable { message },
            Error::Timeout { message } => {
                Core::AgentUnavailable { message: format!("timed out: {message}") }
            }
            Error::Unauthorized { message } => Core::AgentUnauthorized { message },
            Error::NotFound { what, id, .. } => Core::NotFound { what, id },
            // The core retries upstream 5xx and 429 only; a 408 is a timeout.
            Error::Upstream { status: 408, message } => {
                Core::AgentUnavailable { message: format!("request timeout (408): {message}") }
            }
            Error::Upstream { status, message } => Core::AgentUpstream { status, message },
            Error::UnexpectedResponse { message } => Core::AgentProtocol { message },
            Error::Unsupported { found, tested } => {
                Core::UnsupportedAgentServer { found, tested: tested.to_owned() }
            }
            Error::InvalidSettings { message } => Core::Invalid(message),
        }
    }
}

/// The server's own message from an error body, if it has one.
///
/// OpenCode uses two shapes (see `docs/opencode.md`):
/// `{"name":"NotFoundError","data":{"message":"…"}}` and
/// `{"_tag":"PermissionNotFoundError","message":"…"}` — the latter sometimes with no
/// message at all (`{"_tag":"BadRequest"}`), in which case the tag is the best we have.
pub(crate) fn server_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let nested = object.get("data").and_then(|d| d.get("message")).and_then(Value::as_str);
    let flat = object.get("message").and_then(Value::as_str);
    if let Some(message) = nested.or(flat).filter(|m| !m.is_empty()) {
        return Some(message.to_owned());
    }
    let name = object.get("name").or_else(|| object.get("_tag")).and_then(Value::as_str)?;
    Some(name.to_owned())
}

/// Whether an error body is one of OpenCode's JSON error shapes (as opposed to an
/// empty body or a proxy's HTML page).
pub(crate) fn is_server_error_body(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.contains_key("name") || o.contains_key("_tag")))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_error_shapes() {
        let named = br#"{"name":"NotFoundError","data":{"message":"Session not found: ses_x"}}"#;
        assert_eq!(server_message(named).as_deref(), Some("Session not found: ses_x"));
        let tagged = br#"{"_tag":"QuestionNotFoundError","requestID":"que_1","message":"Question request not found: que_1"}"#;
        assert_eq!(server_message(tagged).as_deref(), Some("Question request not found: que_1"));
        assert_eq!(server_message(br#"{"_tag":"BadRequest"}"#).as_deref(), Some("BadRequest"));
        assert_eq!(server_message(b""), None);
        assert_eq!(server_message(b"<html>oops</html>"), None);
    }

    #[test]
    fn a_408_is_a_timeout_and_retried() {
        let err = Error::Upstream { status: 408, message: "Request Timeout".into() };
        assert!(err.is_transient());
        let core = openloom_core::Error::from(err);
        assert!(core.is_transient(), "{core:?}");
        assert!(matches!(core, openloom_core::Error::AgentUnavailable { .. }), "{core:?}");
    }

    #[test]
    fn conversion_keeps_the_transient_split() {
        let core: openloom_core::Error =
            Error::Timeout { message: "GET /x after 1s".into() }.into();
        assert!(matches!(core, openloom_core::Error::AgentUnavailable { .. }));
        assert!(core.is_transient());
        let core: openloom_core::Error =
            Error::NotFound { what: "session", id: "ses_1".into(), message: String::new() }.into();
        assert!(
            matches!(core, openloom_core::Error::NotFound { what: "session", ref id } if id == "ses_1")
        );
        let core: openloom_core::Error =
            Error::UnexpectedResponse { message: "html".into() }.into();
        assert!(matches!(core, openloom_core::Error::AgentProtocol { .. }));
        let core: openloom_core::Error = Error::Unauthorized { message: "no".into() }.into();
        assert!(matches!(core, openloom_core::Error::AgentUnauthorized { .. }));
        let core: openloom_core::Error =
            Error::Upstream { status: 500, message: "x".into() }.into();
        assert!(matches!(core, openloom_core::Error::AgentUpstream { status: 500, .. }));
    }
}
