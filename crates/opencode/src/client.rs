//! [`OpencodeClient`]: one method per OpenCode endpoint OpenLoom uses.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures::{StreamExt, stream};
use openloom_core::{AgentMessage, Health, PermissionRule, Session, SessionActivity, SessionRef};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::http::{Request, Transport};
use crate::settings::Settings;
use crate::types::{PermissionReply, PermissionRequest, Project, QuestionRequest};
use crate::wire;

/// At most this many requests run at once when fanning out over projects: enough to
/// hide latency, few enough not to make OpenCode start many instances at once.
const FANOUT_LIMIT: usize = 4;

/// Sessions asked for per directory when listing (OpenCode returns newest first).
const SESSION_LIST_LIMIT: u32 = 500;

/// A client for one OpenCode server. Cheap to clone: clones share the HTTP
/// connection pool and the project cache.
#[derive(Clone)]
pub struct OpencodeClient {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) transport: Transport,
    pub(crate) settings: Settings,
    /// Holding this lock while fetching makes concurrent callers wait for the one
    /// refresh in flight instead of each asking the server.
    projects: Mutex<Option<CachedProjects>>,
    /// Set once the server's version was read and is supported: checked once per
    /// client, not per request.
    version_supported: AtomicBool,
}

struct CachedProjects {
    fetched: Instant,
    projects: Arc<Vec<Project>>,
}

impl std::fmt::Debug for OpencodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Settings` redacts the password through `Secret`'s Debug.
        f.debug_struct("OpencodeClient").field("settings", &self.inner.settings).finish()
    }
}

/// Whether OpenLoom can drive an OpenCode of `version`: the tested major version
/// (1.x) passes; another major version is [`Error::Unsupported`]. A version that does
/// not start with a number (a local build such as `dev`) passes with a warning.
pub fn check_version(version: &str) -> Result<()> {
    let tested_major = crate::TESTED_VERSION.split('.').next().unwrap_or_default();
    let major = version.trim().trim_start_matches('v').split('.').next().unwrap_or_default();
    if major.parse::<u64>().is_err() {
        tracing::warn!(
            version,
            tested = crate::TESTED_VERSION,
            "OpenCode reports a version that is not a number; going on"
        );
        return Ok(());
    }
    if major == tested_major {
        return Ok(());
    }
    Err(Error::Unsupported { found: format!("OpenCode {version}"), tested: crate::TESTED_VERSION })
}

/// OpenCode answers 500 (not 404) for a path id without the `ses` prefix, so such
/// ids are refused here as not found before a request is made.
fn check_session_id(id: &str) -> Result<()> {
    if id.starts_with("ses") {
        return Ok(());
    }
    Err(Error::NotFound {
        what: "session",
        id: id.to_owned(),
        message: "not an OpenCode session id (they start with \"ses\")".to_owned(),
    })
}

impl OpencodeClient {
    /// A client for the server in `settings`. Builds the one HTTP client it reuses;
    /// fails only on settings that cannot work (an unparseable base URL).
    pub fn new(settings: Settings) -> Result<Self> {
        let transport = Transport::new(&settings)?;
        Ok(OpencodeClient {
            inner: Arc::new(Inner {
                transport,
                settings,
                projects: Mutex::new(None),
                version_supported: AtomicBool::new(false),
            }),
        })
    }

    /// The settings this client was built with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    fn request<'a>(&self, method: Method, segments: &'a [&'a str]) -> Request<'a> {
        Request::new(method, segments, self.inner.settings.request_timeout)
    }

    async fn json(&self, request: Request<'_>) -> Result<Value> {
        self.inner.transport.send(request).await?.json()
    }

    /// Whether the server is up, is OpenCode, and accepts our credentials
    /// (`GET /global/health`, within `health_timeout`). Never fails.
    pub async fn health(&self) -> Health {
        let request =
            Request::new(Method::GET, &["global", "health"], self.inner.settings.health_timeout);
        let reply = match self.inner.transport.send(request).await {
            Ok(reply) => reply,
            Err(Error::Unauthorized { .. }) => {
                let reason = if self.inner.transport.has_password() {
                    "OpenCode refused the username/password (HTTP 401)"
                } else {
                    "OpenCode requires a password (HTTP 401) and none is configured"
                };
                return Health::Unauthorized { reason: reason.to_owned() };
            }
            Err(err) => return Health::Unreachable { reason: err.to_string() },
        };
        // Any unknown route answers 200 with the web UI, so 200 alone proves nothing.
        let body = match reply.json() {
            Ok(body) => body,
            Err(err) => {
                return Health::Unreachable {
                    reason: format!(
                        "{} does not look like an OpenCode server: {err}",
                        self.inner.transport.base()
                    ),
                };
            }
        };
        if body.get("healthy").and_then(Value::as_bool) == Some(false) {
            return Health::Unreachable { reason: "OpenCode reports itself unhealthy".to_owned() };
        }
        Health::Reachable {
            version: body.get("version").and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// Refuses a server we know we cannot drive: one whose health route answers a
    /// major version other than [`crate::TESTED_VERSION`]'s, or its web page (OpenCode
    /// 2.x). Only such evidence refuses: a health route that fails otherwise tells
    /// nothing about the version, and the request that follows reports its own
    /// failure. Called before a session is created or prompted, so a task fails with
    /// this error instead of a parse failure deep in a check.
    pub async fn ensure_supported(&self) -> Result<()> {
        if self.inner.version_supported.load(Ordering::Relaxed) {
            return Ok(());
        }
        let request =
            Request::new(Method::GET, &["global", "health"], self.inner.settings.health_timeout);
        let body = match self.inner.transport.send(request).await.and_then(|reply| reply.json()) {
            Ok(body) => body,
            Err(err @ Error::Unsupported { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(error = %err, "cannot read OpenCode's version; not checked this time");
                return Ok(());
            }
        };
        if let Some(version) = body.get("version").and_then(Value::as_str) {
            check_version(version)?;
        }
        self.inner.version_supported.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The projects OpenCode knows (`GET /project`), cached for `project_ttl`.
    /// When a refresh fails, a stale list is returned if there is one.
    pub async fn projects(&self) -> Result<Arc<Vec<Project>>> {
        let mut cache = self.inner.projects.lock().await;
        if let Some(cached) =
            cache.as_ref().filter(|c| c.fetched.elapsed() < self.inner.settings.project_ttl)
        {
            return Ok(Arc::clone(&cached.projects));
        }
        let fetched = self.json(self.request(Method::GET, &["project"])).await.and_then(|body| {
            wire::list(&body, &["projects", "data"])
                .map(|items| items.iter().filter_map(Project::from_json).collect::<Vec<_>>())
                .ok_or_else(|| not_a_list("GET /project"))
        });
        match fetched {
            Ok(projects) => {
                let projects = Arc::new(projects);
                *cache = Some(CachedProjects {
                    fetched: Instant::now(),
                    projects: Arc::clone(&projects),
                });
                Ok(projects)
            }
            Err(err) => match cache.as_ref() {
                Some(stale) => {
                    tracing::warn!(error = %err, "project refresh failed; using the stale list");
                    Ok(Arc::clone(&stale.projects))
                }
                None => Err(err),
            },
        }
    }

    /// The project worktrees to fan out over; empty (with a warning) when the
    /// projects cannot be read, so callers fall back to the server's own directory.
    async fn worktrees(&self) -> Vec<String> {
        match self.projects().await {
            Ok(projects) => {
                projects.iter().filter_map(Project::directory).map(str::to_owned).collect()
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot list OpenCode projects; using the default directory only");
                Vec::new()
            }
        }
    }

    /// Every session of every project: `GET /session` for the server's own directory
    /// and for each project worktree, de-duplicated, newest first. Archived and
    /// sub-agent sessions are included (see [`Session::archived_at`], `parent_id`).
    pub async fn list_sessions(&self) -> Result<Vec<Session>> {
        let mut targets = vec![String::new()];
        for worktree in self.worktrees().await {
            if !targets.contains(&worktree) {
                targets.push(worktree);
            }
        }
        let results: Vec<(String, Result<Vec<Session>>)> = stream::iter(targets)
            .map(|directory| async move {
                let result = self.sessions_in(&directory).await;
                (directory, result)
            })
            .buffer_unordered(FANOUT_LIMIT)
            .collect()
            .await;

        let mut seen = HashSet::new();
        let mut sessions = Vec::new();
        let mut first_error = None;
        let mut any_ok = false;
        for (directory, result) in results {
            match result {
                Ok(found) => {
                    any_ok = true;
                    sessions.extend(found.into_iter().filter(|s| seen.insert(s.id.clone())));
                }
                Err(err) => {
                    tracing::warn!(directory, error = %err, "cannot list sessions of a directory");
                    first_error.get_or_insert(err);
                }
            }
        }
        if let (false, Some(err)) = (any_ok, first_error) {
            return Err(err);
        }
        sessions.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.cmp(&b.id)));
        Ok(sessions)
    }

    async fn sessions_in(&self, directory: &str) -> Result<Vec<Session>> {
        let request = self
            .request(Method::GET, &["session"])
            .directory(directory)
            .query("limit", SESSION_LIST_LIMIT.to_string());
        let body = self.json(request).await?;
        wire::sessions(&body).ok_or_else(|| not_a_list("GET /session"))
    }

    /// One session by id (`GET /session/{id}`; works for any directory).
    pub async fn session(&self, id: &str) -> Result<Session> {
        check_session_id(id)?;
        let body =
            self.json(self.request(Method::GET, &["session", id]).about("session", id)).await?;
        wire::session(&body).ok_or_else(|| Error::UnexpectedResponse {
            message: format!("GET /session/{id} answered no session"),
        })
    }

    /// What sessions are doing, merged from `GET /session/status` for the server's
    /// own directory, each of `directories`, and each project worktree (statuses
    /// are per directory instance). Busy outranks retry outranks idle; idle
    /// sessions are absent. Fails if the default or a listed directory cannot be
    /// read (a missing busy entry would look idle); project worktrees are best effort.
    pub async fn session_status(
        &self,
        directories: &[String],
    ) -> Result<HashMap<String, SessionActivity>> {
        let mut targets: Vec<(String, bool)> = vec![(String::new(), true)];
        for directory in directories.iter().filter(|d| !d.trim().is_empty()) {
            if !targets.iter().any(|(d, _)| d == directory) {
                targets.push((directory.clone(), true));
            }
        }
        for worktree in self.worktrees().await {
            if !targets.iter().any(|(d, _)| *d == worktree) {
                targets.push((worktree, false));
            }
        }
        let results: Vec<(String, bool, Result<Value>)> = stream::iter(targets)
            .map(|(directory, required)| async move {
                let request =
                    self.request(Method::GET, &["session", "status"]).directory(&directory);
                let result = self.json(request).await;
                (directory, required, result)
            })
            .buffer_unordered(FANOUT_LIMIT)
            .collect()
            .await;

        let mut merged = HashMap::new();
        for (directory, required, result) in results {
            match result {
                Ok(body) => wire::merge_status(&mut merged, wire::status_map(&body)),
                Err(err) if required => return Err(err),
                Err(err) => {
                    tracing::warn!(directory, error = %err, "cannot read session status of a worktree")
                }
            }
        }
        Ok(merged)
    }

    /// Creates a session in `directory` (it stays there for ever). An empty title
    /// lets OpenCode make one up with an extra model call, so pass one.
    pub async fn create_session(&self, directory: &str, title: &str) -> Result<Session> {
        self.create_session_with(directory, title, &[]).await
    }

    /// Like [`OpencodeClient::create_session`], with the session's own permission
    /// ruleset (`[{permission, pattern, action}]`, OpenCode's order: last match wins).
    pub async fn create_session_with(
        &self,
        directory: &str,
        title: &str,
        rules: &[PermissionRule],
    ) -> Result<Session> {
        self.ensure_supported().await?;
        let mut body = if title.is_empty() { json!({}) } else { json!({ "title": title }) };
        if !rules.is_empty() {
            body["permission"] = json!(rules);
        }
        let request = self.request(Method::POST, &["session"]).directory(directory).json(body);
        let answer = self.json(request).await?;
        let mut session = wire::session(&answer).ok_or_else(|| Error::UnexpectedResponse {
            message: "POST /session answered no session".to_owned(),
        })?;
        if session.directory.is_empty() {
            session.directory = directory.to_owned();
        }
        Ok(session)
    }

    /// Sends a prompt and returns once OpenCode accepted it
    /// (`POST /session/{id}/prompt_async`, 204).
    ///
    /// Servers without that route get the synchronous `POST /session/{id}/message`
    /// instead; it runs in the background and this returns once it has either failed
    /// or been running for `request_timeout` (OpenCode only answers it when the whole
    /// turn is over, and dropping it would not stop the turn anyway).
    pub async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> Result<()> {
        check_session_id(&session.id)?;
        self.ensure_supported().await?;
        let body = prompt_body(prompt, agent);
        let segments = ["session", session.id.as_str(), "prompt_async"];
        let request = self
            .request(Method::POST, &segments)
            .directory(&session.directory)
            .json(body.clone())
            .about("session", &session.id);
        match self.inner.transport.send_detailed(request).await {
            // A 200 with HTML is OpenCode's web UI: the route does not exist here.
            Ok(reply) if !reply.is_html() => return Ok(()),
            Ok(_) => {}
            Err(failure) if failure.is_missing_route() => {}
            Err(failure) => return Err(failure.error),
        }
        tracing::info!(session = %session.id, "prompt_async not available; falling back to the synchronous endpoint");
        let transport = self.inner.transport.clone();
        let timeout = self.inner.settings.prompt_timeout;
        let session = session.clone();
        let mut call = tokio::spawn(async move {
            let segments = ["session", session.id.as_str(), "message"];
            let request = Request::new(Method::POST, &segments, timeout)
                .directory(&session.directory)
                .json(body)
                .about("session", &session.id);
            transport.send(request).await.map(|_| ())
        });
        match tokio::time::timeout(self.inner.settings.request_timeout, &mut call).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => {
                Err(Error::UnexpectedResponse { message: format!("prompt task failed: {join}") })
            }
            Err(_still_running) => Ok(()),
        }
    }

    /// Sends a prompt and waits for the agent's whole turn
    /// (`POST /session/{id}/message`, bounded by `prompt_timeout`). Returns the
    /// turn's last assistant message; a provider error comes back as a message
    /// with [`AgentMessage::error`] set, not as an `Err`.
    pub async fn prompt_and_wait(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> Result<AgentMessage> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str(), "message"];
        let request = Request::new(Method::POST, &segments, self.inner.settings.prompt_timeout)
            .directory(&session.directory)
            .json(prompt_body(prompt, agent))
            .about("session", &session.id);
        let body = self.json(request).await?;
        wire::message(&body).ok_or_else(|| Error::UnexpectedResponse {
            message: format!("POST /session/{}/message answered no message", session.id),
        })
    }

    /// The newest `limit` messages, oldest first (`GET /session/{id}/message`).
    /// `limit == 0` means all of them.
    pub async fn messages(&self, session: &SessionRef, limit: usize) -> Result<Vec<AgentMessage>> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str(), "message"];
        let mut request = self
            .request(Method::GET, &segments)
            .directory(&session.directory)
            .about("session", &session.id);
        if limit > 0 {
            request = request.query("limit", limit.to_string());
        }
        let body = self.json(request).await?;
        wire::messages(&body)
            .ok_or_else(|| not_a_list(&format!("GET /session/{}/message", session.id)))
    }

    /// File diffs of one turn (`GET /session/{id}/diff?messageID=`), as OpenCode
    /// sends them (`{file, patch, additions, deletions, status}`).
    ///
    /// `message_id` must be the turn's *user* message id: without it OpenCode
    /// 1.18.34 always answers `[]`, and an unknown session also gives `[]`.
    pub async fn diff(&self, session: &SessionRef, message_id: Option<&str>) -> Result<Vec<Value>> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str(), "diff"];
        let mut request = self
            .request(Method::GET, &segments)
            .directory(&session.directory)
            .about("session", &session.id);
        if let Some(message_id) = message_id {
            request = request.query("messageID", message_id);
        }
        let body = self.json(request).await?;
        Ok(wire::list(&body, &["diff", "files", "data"]).cloned().unwrap_or_default())
    }

    /// OpenCode's resolved configuration (`GET /config`), as it sends it; `doctor`
    /// reads its `model`.
    pub async fn config(&self) -> Result<Value> {
        self.json(self.request(Method::GET, &["config"])).await
    }

    /// The agent's todo list (`GET /session/{id}/todo`), as OpenCode sends it
    /// (`{content, status, priority}`).
    pub async fn todos(&self, session: &SessionRef) -> Result<Vec<Value>> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str(), "todo"];
        let request = self
            .request(Method::GET, &segments)
            .directory(&session.directory)
            .about("session", &session.id);
        let body = self.json(request).await?;
        Ok(wire::list(&body, &["todos", "data"]).cloned().unwrap_or_default())
    }

    /// Archives (`true`) or un-archives a session (`PATCH /session/{id}` with
    /// `time.archived`). OpenCode ignores `archived: null`, so un-archiving writes
    /// `0`, which readers (ours included) treat as "not archived".
    pub async fn set_archived(&self, session: &SessionRef, archived: bool) -> Result<Session> {
        check_session_id(&session.id)?;
        let at = if archived { chrono::Utc::now().timestamp_millis() } else { 0 };
        let segments = ["session", session.id.as_str()];
        let request = self
            .request(Method::PATCH, &segments)
            .directory(&session.directory)
            .json(json!({ "time": { "archived": at } }))
            .about("session", &session.id);
        let body = self.json(request).await?;
        wire::session(&body).ok_or_else(|| Error::UnexpectedResponse {
            message: format!("PATCH /session/{} answered no session", session.id),
        })
    }

    /// Deletes a session and its child sessions. It does not stop a running turn:
    /// call [`OpencodeClient::abort`] first.
    pub async fn delete_session(&self, session: &SessionRef) -> Result<()> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str()];
        let request = self
            .request(Method::DELETE, &segments)
            .directory(&session.directory)
            .about("session", &session.id);
        self.inner.transport.send(request).await.map(|_| ())
    }

    /// Stops the session's turn and drops its queued prompts. OpenCode answers
    /// `true` even for idle or unknown sessions; pending permission requests stay.
    pub async fn abort(&self, session: &SessionRef) -> Result<()> {
        check_session_id(&session.id)?;
        let segments = ["session", session.id.as_str(), "abort"];
        let request = self
            .request(Method::POST, &segments)
            .directory(&session.directory)
            .about("session", &session.id);
        self.inner.transport.send(request).await.map(|_| ())
    }

    /// Pending permission requests of the instance for `directory` (all sessions).
    pub async fn permissions(&self, directory: &str) -> Result<Vec<PermissionRequest>> {
        let body =
            self.json(self.request(Method::GET, &["permission"]).directory(directory)).await?;
        let items = wire::list(&body, &["permissions", "data"])
            .ok_or_else(|| not_a_list("GET /permission"))?;
        Ok(items.iter().filter_map(PermissionRequest::from_json).collect())
    }

    /// Answers a permission request (`POST /permission/{id}/reply`). A `message`
    /// with [`PermissionReply::Reject`] is passed to the agent, which then goes on.
    pub async fn reply_permission(
        &self,
        directory: &str,
        request_id: &str,
        reply: PermissionReply,
        message: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({ "reply": reply });
        if let Some(message) = message {
            body["message"] = Value::from(message);
        }
        let segments = ["permission", request_id, "reply"];
        let request = self
            .request(Method::POST, &segments)
            .directory(directory)
            .json(body)
            .about("permission request", request_id);
        self.inner.transport.send(request).await.map(|_| ())
    }

    /// Questions the agents of the instance for `directory` wait on.
    pub async fn questions(&self, directory: &str) -> Result<Vec<QuestionRequest>> {
        let body = self.json(self.request(Method::GET, &["question"]).directory(directory)).await?;
        let items =
            wire::list(&body, &["questions", "data"]).ok_or_else(|| not_a_list("GET /question"))?;
        Ok(items.iter().filter_map(QuestionRequest::from_json).collect())
    }

    /// Answers a question: one list of chosen option labels per question, in order.
    pub async fn reply_question(
        &self,
        directory: &str,
        request_id: &str,
        answers: &[Vec<String>],
    ) -> Result<()> {
        let segments = ["question", request_id, "reply"];
        let request = self
            .request(Method::POST, &segments)
            .directory(directory)
            .json(json!({ "answers": answers }))
            .about("question", request_id);
        self.inner.transport.send(request).await.map(|_| ())
    }

    /// Dismisses a question; the agent's turn stops.
    pub async fn reject_question(&self, directory: &str, request_id: &str) -> Result<()> {
        let segments = ["question", request_id, "reject"];
        let request = self
            .request(Method::POST, &segments)
            .directory(directory)
            .about("question", request_id);
        self.inner.transport.send(request).await.map(|_| ())
    }
}

/// The error for a list endpoint (`label`: `METHOD /path`) that answered something else.
fn not_a_list(label: &str) -> Error {
    Error::UnexpectedResponse { message: format!("{label} did not answer a list") }
}

fn prompt_body(prompt: &str, agent: Option<&str>) -> Value {
    let mut body = json!({ "parts": [{ "type": "text", "text": prompt }] });
    if let Some(agent) = agent.filter(|a| !a.is_empty()) {
        body["agent"] = Value::from(agent);
    }
    body
}
