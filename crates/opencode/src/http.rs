//! The one place that talks HTTP: builds URLs, adds credentials, times and traces
//! each request, and turns statuses and bodies into [`Error`]s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openloom_core::{AgentCall, Meter};
use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use tracing::Instrument;
use url::Url;

use crate::error::{Error, Result, is_server_error_body, server_message};
use crate::settings::{Secret, Settings, redact_url};

/// What a 404 is about, so it can become [`Error::NotFound`] with a useful id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subject<'a> {
    pub what: &'static str,
    pub id: &'a str,
}

/// One request, described; [`Transport::send`] executes it.
pub(crate) struct Request<'a> {
    pub method: Method,
    /// Path segments after the base URL; each is percent-encoded on its own.
    pub segments: &'a [&'a str],
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    pub timeout: Duration,
    pub subject: Option<Subject<'a>>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, segments: &'a [&'a str], timeout: Duration) -> Self {
        Request { method, segments, query: Vec::new(), body: None, timeout, subject: None }
    }

    /// Adds `?directory=` unless `directory` is empty (the server's own then applies).
    pub fn directory(mut self, directory: &str) -> Self {
        if !directory.trim().is_empty() {
            self.query.push(("directory", directory.to_owned()));
        }
        self
    }

    pub fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn about(mut self, what: &'static str, id: &'a str) -> Self {
        self.subject = Some(Subject { what, id });
        self
    }

    fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// A successful (2xx) answer.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `METHOD /path`, for error messages.
    pub label: String,
}

impl Reply {
    pub fn is_json(&self) -> bool {
        self.content_type.contains("json")
    }

    pub fn is_html(&self) -> bool {
        self.content_type.contains("text/html")
    }

    /// The body as JSON. HTML (OpenCode's answer to any unknown route, with 200) is
    /// [`Error::Unsupported`]; another content type or malformed JSON is
    /// [`Error::UnexpectedResponse`].
    pub fn json(&self) -> Result<Value> {
        if self.is_html() {
            // OpenCode answers a route it does not have with its web page (200): 2.x
            // moved its API under /api/, so this is what a 1.x client sees there.
            return Err(Error::Unsupported {
                found: format!(
                    "{} answered with a web page instead of JSON (OpenCode 2.x moved its API under /api/; or this is not OpenCode)",
                    self.label
                ),
                tested: crate::TESTED_VERSION,
            });
        }
        if !self.is_json() {
            let shown =
                if self.content_type.is_empty() { "no content type" } else { &self.content_type };
            return Err(Error::UnexpectedResponse {
                message: format!("{} answered {shown} instead of JSON", self.label),
            });
        }
        serde_json::from_slice(&self.body).map_err(|err| Error::UnexpectedResponse {
            message: format!("{} answered malformed JSON: {err}", self.label),
        })
    }
}

/// The HTTP client proper: one `reqwest::Client`, the base URL and credentials.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    username: String,
    password: Option<Secret>,
    meter: Arc<dyn Meter>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base.as_str())
            .field("username", &self.username)
            .field("password", &self.password)
            .finish()
    }
}

impl Transport {
    pub fn new(settings: &Settings) -> Result<Self> {
        let mut base =
            Url::parse(settings.base_url.trim()).map_err(|err| Error::InvalidSettings {
                message: format!(
                    "base URL {:?} does not parse: {err}",
                    redact_url(&settings.base_url)
                ),
            })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(Error::InvalidSettings {
                message: format!(
                    "base URL {:?} is not an http(s) URL",
                    redact_url(&settings.base_url)
                ),
            });
        }
        if base.scheme() == "https" && !cfg!(feature = "https") {
            return Err(Error::InvalidSettings {
                message: format!(
                    "base URL {:?} needs TLS, which this build leaves out: build with \
                     `--features https` (`cargo build --release -p openloom --features https`), \
                     or reach OpenCode over plain HTTP on loopback (e.g. through an SSH tunnel)",
                    redact_url(&settings.base_url)
                ),
            });
        }
        // Credentials written into the URL would end up in reqwest's error messages;
        // move them to the Authorization header instead.
        let mut username = settings.username.clone();
        let mut password = settings.password.clone();
        // The URL keeps them percent-encoded (`p%40ss` for `p@ss`); the header needs
        // them as written.
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
        };
        if !base.username().is_empty() {
            username = decode(base.username());
        }
        if let Some(embedded) = base.password() {
            password = Some(Secret::new(decode(embedded)));
        }
        let _ = base.set_username("");
        let _ = base.set_password(None);

        // No client-wide total timeout: the event stream stays open for hours. Every
        // other request gets its own timeout in `send`.
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .build()
            .map_err(|err| Error::InvalidSettings {
                message: format!("cannot build HTTP client: {err}"),
            })?;
        Ok(Transport { http, base, username, password, meter: Arc::clone(&settings.meter) })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request builder with credentials, for the event stream (no timeout).
    pub fn builder(&self, method: Method, segments: &[&str]) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, self.url(segments));
        match &self.password {
            Some(password) => builder.basic_auth(&self.username, Some(password.expose())),
            None => builder,
        }
    }

    /// Sends a request and returns the 2xx reply; any other status is an [`Error`].
    pub async fn send(&self, request: Request<'_>) -> Result<Reply> {
        self.send_detailed(request).await.map_err(|failure| failure.error)
    }

    /// Like [`Transport::send`], but a failure also says whether the error body was
    /// OpenCode's own JSON (to tell "no such session" from "no such route").
    pub async fn send_detailed(&self, request: Request<'_>) -> std::result::Result<Reply, Failure> {
        let label = format!("{} {}", request.method, request.path());
        let span = tracing::debug_span!(
            "opencode_request",
            method = %request.method,
            path = %request.path(),
            status = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty,
        );
        async {
            let started = Instant::now();
            let result = self.exchange(&request, &label).await;
            let elapsed = started.elapsed();
            let span = tracing::Span::current();
            span.record("elapsed_ms", elapsed.as_millis() as u64);
            self.meter.agent_request(&AgentCall {
                method: request.method.as_str(),
                endpoint: &endpoint(request.segments),
                elapsed,
                error: result.as_ref().err().map(|failure| failure.error.kind()),
            });
            match &result {
                Ok(reply) => {
                    span.record("status", reply.status.as_u16());
                    tracing::debug!("opencode answered");
                }
                Err(failure) => {
                    if let Some(status) = failure.status {
                        span.record("status", status);
                    }
                    tracing::debug!(error = %failure.error, "opencode request failed");
                }
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn exchange(
        &self,
        request: &Request<'_>,
        label: &str,
    ) -> std::result::Result<Reply, Failure> {
        let mut builder =
            self.builder(request.method.clone(), request.segments).timeout(request.timeout);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response =
            builder.send().await.map_err(|err| Failure::transport(err, label, request.timeout))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let limit = if status.is_success() { MAX_BODY_BYTES } else { MAX_ERROR_BODY_BYTES };
        let (body, complete) = read_at_most(response, limit)
            .await
            .map_err(|err| Failure::transport(err, label, request.timeout))?;
        if status.is_success() {
            if !complete {
                return Err(Failure {
                    error: Error::UnexpectedResponse {
                        message: format!("{label} answered more than {} MiB", limit >> 20),
                    },
                    status: Some(status.as_u16()),
                    server_json: false,
                });
            }
            return Ok(Reply { status, content_type, body, label: label.to_owned() });
        }
        // A cut error body is still summarised: only its beginning is ever shown.
        Err(Failure {
            error: status_error(status, &content_type, &body, label, request.subject),
            status: Some(status.as_u16()),
            server_json: is_server_error_body(&body),
        })
    }
}

/// The request's path with its ids replaced by `{id}` (`/session/{id}/message`), for
/// metrics: one series per endpoint, not per session. An id is the second segment
/// under `session`, `permission` and `question`, except `/session/status`.
fn endpoint(segments: &[&str]) -> String {
    let mut path = String::new();
    for (index, segment) in segments.iter().enumerate() {
        let is_id = index == 1
            && matches!(segments[0], "session" | "permission" | "question")
            && *segment != "status";
        path.push('/');
        path.push_str(if is_id { "{id}" } else { segment });
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// Most of a 2xx body that is read. The largest real answers are message lists of
/// long sessions (a few MiB); anything near this is a broken server or proxy, and
/// reading on would only exhaust memory.
const MAX_BODY_BYTES: usize = 64 << 20;

/// Most of an error body that is read: only its message (or first 200 characters)
/// is used, and an endless one must not hold the call until the timeout.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Reads the body up to `limit` bytes; `false` when there was more (left unread).
async fn read_at_most(
    mut response: reqwest::Response,
    limit: usize,
) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend(chunk.iter().take(room));
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// A failed request, with what the caller may need beyond the [`Error`].
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: Error,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// Whether the error body was one of OpenCode's JSON error shapes.
    pub server_json: bool,
}

impl Failure {
    fn transport(err: reqwest::Error, label: &str, timeout: Duration) -> Self {
        Failure { error: transport_error(err, label, timeout), status: None, server_json: false }
    }

    /// "This route does not exist" rather than "the thing you named does not exist":
    /// a 404/405 that is not OpenCode's own JSON error body (older servers, proxies),
    /// as opposed to `NotFoundError` for an unknown session.
    pub fn is_missing_route(&self) -> bool {
        matches!(self.status, Some(404 | 405)) && !self.server_json
    }
}

fn transport_error(err: reqwest::Error, label: &str, timeout: Duration) -> Error {
    // `without_url` keeps messages short; the URL holds no secret but the label says enough.
    let err = err.without_url();
    if err.is_timeout() {
        Error::Timeout { message: format!("{label}: no answer within {timeout:?}") }
    } else if err.is_connect() {
        Error::Unreachable { message: format!("{label}: cannot connect: {}", error_chain(&err)) }
    } else {
        Error::Unreachable { message: format!("{label}: {}", error_chain(&err)) }
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; show it.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The error for a non-2xx answer.
pub(crate) fn status_error(
    status: StatusCode,
    content_type: &str,
    body: &[u8],
    label: &str,
    subject: Option<Subject<'_>>,
) -> Error {
    let message = server_message(body).unwrap_or_else(|| describe_body(status, content_type, body));
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthorized {
            message: format!("{label} answered 401; check the OpenCode username and password"),
        },
        StatusCode::NOT_FOUND => {
            let subject = subject.unwrap_or(Subject { what: "resource", id: label });
            Error::NotFound { what: subject.what, id: subject.id.to_owned(), message }
        }
        _ => Error::Upstream { status: status.as_u16(), message },
    }
}

/// A short description of an error body that is not one of OpenCode's JSON shapes.
fn describe_body(status: StatusCode, content_type: &str, body: &[u8]) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    if body.is_empty() {
        return reason.to_owned();
    }
    if content_type.contains("html") || body.trim_ascii_start().starts_with(b"<") {
        return format!("{reason} (HTML error page)");
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.trim().chars().take(200).collect();
    format!("{reason}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_routes_not_ids() {
        let cases: [(&[&str], &str); 7] = [
            (&[], "/"),
            (&["global", "health"], "/global/health"),
            (&["session"], "/session"),
            (&["session", "status"], "/session/status"),
            (&["session", "ses_abc123", "message"], "/session/{id}/message"),
            (&["session", "ses_abc123"], "/session/{id}"),
            (&["permission", "per_9", "reply"], "/permission/{id}/reply"),
        ];
        for (segments, expected) in cases {
            assert_eq!(endpoint(segments), expected, "{segments:?}");
        }
    }

    #[test]
    fn embedded_credentials_leave_the_url() {
        let settings = Settings::new("http://harness:s3cret@127.0.0.1:4096/");
        let transport = Transport::new(&settings).expect("valid URL");
        assert_eq!(transport.base().as_str(), "http://127.0.0.1:4096/");
        assert_eq!(transport.username, "harness");
        assert_eq!(transport.password.as_ref().map(Secret::expose), Some("s3cret"));
        assert!(!format!("{transport:?}").contains("s3cret"));
    }

    #[test]
    fn embedded_credentials_are_percent_decoded() {
        let settings = Settings::new("http://har%40ness:p%40ss%3Aw%2F@127.0.0.1:4096/");
        let transport = Transport::new(&settings).expect("valid URL");
        assert_eq!(transport.username, "har@ness");
        assert_eq!(transport.password.as_ref().map(Secret::expose), Some("p@ss:w/"));
    }

    #[test]
    fn bad_urls_are_reported_without_the_password() {
        let err = Transport::new(&Settings::new("ftp://u:s3cret@host/")).expect_err("not http");
        assert!(matches!(err, Error::InvalidSettings { .. }));
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    #[cfg(not(feature = "https"))]
    fn an_https_url_without_tls_says_how_to_build_with_it() {
        let err = Transport::new(&Settings::new("https://u:s3cret@opencode.example/"))
            .expect_err("no TLS in this build");
        let message = err.to_string();
        assert!(message.contains("--features https"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    #[cfg(feature = "https")]
    fn an_https_url_builds_a_tls_client() {
        let transport = Transport::new(&Settings::new("https://opencode.example/")).expect("TLS");
        assert_eq!(transport.base().scheme(), "https");
    }

    #[test]
    fn path_segments_are_encoded_and_joined_to_a_prefix() {
        let transport = Transport::new(&Settings::new("http://h:1/proxy/oc")).expect("valid");
        assert_eq!(
            transport.url(&["session", "a/b c"]).as_str(),
            "http://h:1/proxy/oc/session/a%2Fb%20c"
        );
    }
}
