//! How to reach an OpenCode server, and the [`Secret`] that keeps its password out of logs.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use openloom_core::{Meter, NoMeter};
use url::Url;

/// A password that never shows up in `Debug` output, logs or error messages.
///
/// There is deliberately no `Display` impl: the only way to read the value is
/// [`Secret::expose`], so every place that uses it is easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Only for putting it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Connection settings for [`crate::OpencodeClient`].
///
/// Build it with [`Settings::new`] and override what you need; every field is public.
/// `Debug` shows neither the password nor one written into `base_url`.
#[derive(Clone)]
pub struct Settings {
    /// Base URL of the server, e.g. `http://127.0.0.1:4096`. Credentials embedded in
    /// the URL (`http://user:pass@host`) are moved to `username`/`password`.
    pub base_url: String,
    /// Basic-auth user name; OpenCode's default is `opencode`.
    pub username: String,
    /// Basic-auth password (`OPENCODE_SERVER_PASSWORD`). `None` sends no credentials.
    pub password: Option<Secret>,
    /// Time allowed to open a TCP connection.
    pub connect_timeout: Duration,
    /// Time allowed for an ordinary request, body included.
    pub request_timeout: Duration,
    /// Time allowed for `GET /global/health`. Short, because right after a
    /// (re)start OpenCode accepts connections but never answers a request that
    /// comes too early: a probe should report that as unreachable quickly instead
    /// of stalling for `request_timeout`.
    pub health_timeout: Duration,
    /// Time allowed for a synchronous prompt (`POST /session/{id}/message`), which
    /// only answers when the agent's whole turn is done.
    pub prompt_timeout: Duration,
    /// How long the project list is cached (it is read for every fan-out).
    pub project_ttl: Duration,
    /// First wait before reconnecting the event stream; doubles up to
    /// `event_reconnect_max`.
    pub event_reconnect_initial: Duration,
    /// Longest wait between event-stream reconnect attempts. Also how long a
    /// connection must have stayed open for the backoff to start over, so the
    /// stream reconnects at most about once per this period.
    pub event_reconnect_max: Duration,
    /// An event stream silent for this long is treated as dead and reopened.
    /// OpenCode sends a heartbeat every 10 s, so this should be well above that.
    pub event_idle_timeout: Duration,
    /// Told the latency and outcome of every request (not of the event stream, which
    /// stays open for hours), for an embedder's metrics. Default: counts nothing.
    pub meter: Arc<dyn Meter>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Settings {
            base_url,
            username,
            password,
            connect_timeout,
            request_timeout,
            health_timeout,
            prompt_timeout,
            project_ttl,
            event_reconnect_initial,
            event_reconnect_max,
            event_idle_timeout,
            meter: _,
        } = self;
        f.debug_struct("Settings")
            .field("base_url", &redact_url(base_url))
            .field("username", username)
            .field("password", password)
            .field("connect_timeout", connect_timeout)
            .field("request_timeout", request_timeout)
            .field("health_timeout", health_timeout)
            .field("prompt_timeout", prompt_timeout)
            .field("project_ttl", project_ttl)
            .field("event_reconnect_initial", event_reconnect_initial)
            .field("event_reconnect_max", event_reconnect_max)
            .field("event_idle_timeout", event_idle_timeout)
            .finish()
    }
}

/// A URL with any password replaced by `***`, for `Debug` and error messages.
pub(crate) fn redact_url(raw: &str) -> String {
    match Url::parse(raw.trim()) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) if raw.contains('@') => "<unparseable URL with credentials>".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

impl Settings {
    /// Settings with sensible defaults for a local server: user `opencode`, no
    /// password, 5 s connect, 20 s requests, 5 s health checks, 10 min synchronous
    /// prompts.
    pub fn new(base_url: impl Into<String>) -> Self {
        Settings {
            base_url: base_url.into(),
            username: "opencode".to_owned(),
            password: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            health_timeout: Duration::from_secs(5),
            prompt_timeout: Duration::from_secs(600),
            project_ttl: Duration::from_secs(10),
            event_reconnect_initial: Duration::from_millis(500),
            event_reconnect_max: Duration::from_secs(30),
            event_idle_timeout: Duration::from_secs(45),
            meter: Arc::new(NoMeter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let mut settings = Settings::new("http://127.0.0.1:4096");
        settings.password = Some(Secret::new("hunter2-very-secret"));
        let shown = format!("{settings:?} {:?}", settings.password);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"));
    }

    #[test]
    fn debug_hides_a_password_written_into_the_url() {
        let settings = Settings::new("http://harness:hunter2-in-url@127.0.0.1:4096/");
        let shown = format!("{settings:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("harness:***@127.0.0.1:4096"), "{shown}");
        let client = crate::OpencodeClient::new(settings).expect("valid URL");
        let shown = format!("{client:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn expose_gives_the_value_back() {
        assert_eq!(Secret::from("s3cret").expose(), "s3cret");
    }
}
