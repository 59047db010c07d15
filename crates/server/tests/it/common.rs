//! Shared fixture: a real SQLite store in a temp dir, the OpenCode client against a
//! wiremock server, a harness, and helpers to call the router without a socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use openloom_core::{
    AgentMessage, CheckOutcome, CheckResult, Dialogue, EventBus, Harness, HarnessParts, TaskSpec,
    WorkspacePolicy,
};
use openloom_opencode::{OpencodeClient, Secret, Settings};
use openloom_server::{
    AppState, Metrics, MonitorConfig, ServerConfig, ServerParts, SessionMonitor,
};
use openloom_store_sqlite::SqliteStore;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// OpenCode's password in every fixture; asserted absent from every answer.
pub const OPENCODE_PASSWORD: &str = "oc-pa55-never-leaves";

/// The address the router believes it is bound to (no socket is opened).
pub const HOST: &str = "127.0.0.1:38080";

/// Words the harness would say; only their existence matters to these tests.
pub struct PlainDialogue;

impl Dialogue for PlainDialogue {
    fn bootstrap(&self, spec: &TaskSpec, _: usize) -> String {
        spec.goal.clone()
    }
    fn periodic_check(&self, _: &TaskSpec, _: usize, _: &CheckResult, _: &[u32]) -> String {
        "status?".into()
    }
    fn next_step(&self, _: &TaskSpec, _: usize) -> String {
        "next".into()
    }
    fn auto_continue(&self, _: &TaskSpec, _: usize) -> String {
        "continue".into()
    }
    fn verification_failed(&self, _: &TaskSpec, _: Option<u32>, _: &[CheckOutcome]) -> String {
        "fix".into()
    }
    fn needs_continue_reply(&self, _: &[AgentMessage]) -> bool {
        false
    }
    fn is_busy(&self, messages: &[AgentMessage]) -> bool {
        openloom_prompts::messages_indicate_busy(messages)
    }
}

/// A server on a real socket; dropping it shuts the server down.
pub struct Running {
    pub addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub struct Fixture {
    pub app: Router,
    pub state: AppState,
    pub opencode: MockServer,
    /// The allowed root (canonical).
    pub root: PathBuf,
    /// A workspace inside the root (canonical).
    pub workspace: PathBuf,
    /// A directory outside the root (canonical).
    pub outside: PathBuf,
    /// The SQLite file of the store (another process may open it too).
    pub db_path: PathBuf,
    _dirs: (TempDir, TempDir, TempDir),
}

pub fn client_for(server: &MockServer) -> OpencodeClient {
    metered_client_for(server, Arc::new(openloom_core::NoMeter))
}

/// [`client_for`], reporting its requests to `meter`.
pub fn metered_client_for(
    server: &MockServer,
    meter: Arc<dyn openloom_core::Meter>,
) -> OpencodeClient {
    let mut settings = Settings::new(server.uri());
    settings.meter = meter;
    settings.password = Some(Secret::new(OPENCODE_PASSWORD));
    settings.connect_timeout = Duration::from_secs(2);
    settings.request_timeout = Duration::from_secs(2);
    settings.prompt_timeout = Duration::from_secs(5);
    settings.project_ttl = Duration::from_millis(0);
    OpencodeClient::new(settings).expect("valid settings")
}

/// The token of [`token_config`].
pub const TOKEN: &str = "correct-horse-battery";

/// A loopback configuration that opted out of the token (`--no-token`): what most
/// route tests exercise. [`token_config`] is the default deployment.
pub fn test_config() -> ServerConfig {
    let mut config = ServerConfig::new(HOST.parse().expect("addr"));
    config.no_token = true;
    config.heartbeat = Duration::from_millis(300);
    config.monitor =
        MonitorConfig { refresh_every: Duration::from_millis(200), ..MonitorConfig::default() };
    config
}

/// [`test_config`] with a token instead of the opt-out.
pub fn token_config() -> ServerConfig {
    ServerConfig { no_token: false, ..test_config() }.with_token(TOKEN)
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with_config(test_config()).await
    }

    pub async fn with_config(config: ServerConfig) -> Fixture {
        let db = TempDir::new().expect("temp dir");
        let db_path = db.path().join("openloom.sqlite3");
        let store = Arc::new(SqliteStore::open(&db_path).await.expect("store"));
        Self::with_store(config, store, db, db_path).await
    }

    /// A fixture on `store` (its SQLite file at `db_path` in `db`, or any other store).
    pub async fn with_store<S>(
        config: ServerConfig,
        store: Arc<S>,
        db: TempDir,
        db_path: PathBuf,
    ) -> Fixture
    where
        S: openloom_core::Store + openloom_core::RecentWorkspaces + openloom_core::Outbox + 'static,
    {
        let root_dir = TempDir::new().expect("temp dir");
        let outside_dir = TempDir::new().expect("temp dir");
        let root = root_dir.path().canonicalize().expect("canonical");
        let workspace = root.join("project");
        std::fs::create_dir_all(&workspace).expect("mkdir");
        let outside = outside_dir.path().canonicalize().expect("canonical");
        let opencode = MockServer::start().await;
        let metrics = Metrics::new();
        let client = metered_client_for(&opencode, Arc::new(metrics.clone()));
        let harness = Arc::new(
            Harness::new(HarnessParts {
                agent: Arc::new(client.clone()),
                store: store.clone(),
                checker: Arc::new(openloom_prompts::MarkerChecker),
                dialogue: Arc::new(PlainDialogue),
                bus: EventBus::new(),
                workspaces: WorkspacePolicy::within([root.clone()]),
            })
            .with_meter(Arc::new(metrics.clone())),
        );
        let monitor = Arc::new(SessionMonitor::new(client.clone(), config.monitor.clone()));
        let parts = ServerParts {
            harness,
            recent: store.clone(),
            outbox: store.clone(),
            client,
            metrics: metrics.clone(),
            others: Vec::new(),
        };
        let state = AppState::new(config, parts, monitor);
        Fixture {
            app: openloom_server::router(state.clone()),
            state,
            opencode,
            root,
            workspace,
            outside,
            db_path,
            _dirs: (db, root_dir, outside_dir),
        }
    }

    /// The same harness, store and directories under another configuration.
    pub async fn reconfigured(self, config: ServerConfig) -> Fixture {
        let client = self.state.client().clone();
        let monitor = Arc::new(SessionMonitor::new(client.clone(), config.monitor.clone()));
        let parts = ServerParts {
            harness: self.state.harness().clone(),
            recent: self.state.recent().clone(),
            outbox: self.state.outbox().clone(),
            client,
            metrics: self.state.metrics().clone(),
            others: Vec::new(),
        };
        let state = AppState::new(config, parts, monitor);
        Fixture { app: openloom_server::router(state.clone()), state, ..self }
    }

    /// The same harness, store and directories, with this worker also connected to a
    /// second (mock) OpenCode server named `name`, returned with the fixture: its own
    /// harness under the same store and bus, taking no unbound tasks.
    pub async fn with_another_opencode(self, name: &str) -> (Fixture, MockServer) {
        let second = MockServer::start().await;
        let client = client_for(&second);
        let first = self.state.harness();
        let harness = Arc::new(Harness::with_config(
            HarnessParts {
                agent: Arc::new(client.clone()),
                store: first.store().clone(),
                checker: Arc::new(openloom_prompts::MarkerChecker),
                dialogue: Arc::new(PlainDialogue),
                bus: first.bus().clone(),
                workspaces: first.workspaces().clone(),
            },
            openloom_core::HarnessConfig {
                opencode: Some(name.to_owned()),
                unbound_tasks: false,
                ..openloom_core::HarnessConfig::default()
            },
        ));
        let config = test_config();
        let monitor =
            Arc::new(SessionMonitor::new(self.state.client().clone(), config.monitor.clone()));
        let parts = ServerParts {
            harness: first.clone(),
            recent: self.state.recent().clone(),
            outbox: self.state.outbox().clone(),
            client: self.state.client().clone(),
            metrics: self.state.metrics().clone(),
            others: vec![openloom_server::Connection { harness, client }],
        };
        let state = AppState::new(config, parts, monitor);
        (Fixture { app: openloom_server::router(state.clone()), state, ..self }, second)
    }

    /// Serves this fixture's harness on a real loopback socket under `config` (its
    /// `bind` is replaced by a free port); the server stops when the guard drops.
    pub async fn serve(&self, mut config: ServerConfig) -> Running {
        config.bind = "127.0.0.1:0".parse().expect("addr");
        let parts = ServerParts {
            harness: self.state.harness().clone(),
            recent: self.state.recent().clone(),
            outbox: self.state.outbox().clone(),
            client: self.state.client().clone(),
            metrics: self.state.metrics().clone(),
            others: Vec::new(),
        };
        let server = openloom_server::Server::bind(config, parts).await.expect("bind");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running { addr, _stop: stop }
    }

    pub fn ws(&self) -> String {
        path_text(&self.workspace)
    }

    /// Sends a request with our Host header; returns the status, headers and JSON body.
    pub async fn call(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes =
            axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await.expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, json, text }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(request(Method::GET, uri, None)).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Reply {
        self.call(request(Method::POST, uri, Some(body))).await
    }

    pub async fn post_empty(&self, uri: &str) -> Reply {
        self.call(request(Method::POST, uri, None)).await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.call(request(Method::DELETE, uri, None)).await
    }

    /// Creates a one-shot prompt task in the fixture's workspace; returns its id.
    pub async fn create_prompt_task(&self, prompt: &str) -> String {
        let reply =
            self.post("/api/tasks", json!({ "prompt": prompt, "workspace": self.ws() })).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json["taskId"].as_str().expect("task id").to_owned()
    }

    /// Mounts OpenCode's health, project list, session list and statuses.
    pub async fn mount_opencode(&self, sessions: Value, statuses: Value) {
        mount_opencode_on(&self.opencode, &self.ws(), sessions, statuses).await;
    }

    /// Mounts `GET /session/{id}` answering a session in `directory`.
    pub async fn mount_session(&self, id: &str, directory: &str) {
        Mock::given(method("GET"))
            .and(path(format!("/session/{id}")))
            .respond_with(json_reply(session_json(id, directory, 0)))
            .mount(&self.opencode)
            .await;
    }

    /// Mounts `GET /session/{id}/message`.
    pub async fn mount_messages(&self, id: &str, messages: Value) {
        Mock::given(method("GET"))
            .and(path(format!("/session/{id}/message")))
            .respond_with(json_reply(messages))
            .mount(&self.opencode)
            .await;
    }

    pub async fn opencode_requests(&self) -> usize {
        self.opencode.received_requests().await.map(|r| r.len()).unwrap_or(0)
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Reply {
    /// Asserts the API's error shape and status; returns the detail.
    pub fn error(&self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.json["error"].is_string(), "no error code: {}", self.text);
        self.json["detail"].as_str().expect("detail").to_owned()
    }
}

/// Mounts on `server` OpenCode's health, a project of `workspace`, the session list
/// and statuses.
pub async fn mount_opencode_on(
    server: &MockServer,
    workspace: &str,
    sessions: Value,
    statuses: Value,
) {
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(json_reply(json!({"healthy": true, "version": "1.18.34"})))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/project"))
        .respond_with(json_reply(json!([{"id": "global", "worktree": workspace}])))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/session"))
        .respond_with(json_reply(sessions))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/session/status"))
        .respond_with(json_reply(statuses))
        .mount(server)
        .await;
}

pub fn request(method: Method, uri: &str, body: Option<Value>) -> Request<Body> {
    let builder = Request::builder().method(method).uri(uri).header(header::HOST, HOST);
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

pub fn json_reply(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_string().into_bytes(), "application/json")
}

pub fn not_found_reply(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_raw(
        json!({"name": "NotFoundError", "data": {"message": format!("Session not found: {id}")}})
            .to_string()
            .into_bytes(),
        "application/json",
    )
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A session as OpenCode lists it, updated `minutes_ago`.
pub fn session_json(id: &str, directory: &str, minutes_ago: i64) -> Value {
    let at = now_ms() - minutes_ago * 60_000;
    json!({"id": id, "directory": directory, "title": format!("title of {id}"),
           "time": {"created": at, "updated": at}})
}

/// An assistant message with usage, completed now.
pub fn assistant_message(id: &str, text: &str, input: u64, cost: f64) -> Value {
    let at = now_ms();
    json!({
        "info": {"id": id, "role": "assistant", "providerID": "fake", "modelID": "fake-model",
                 "cost": cost, "tokens": {"input": input, "output": 20, "reasoning": 0,
                 "cache": {"read": 0, "write": 0}}, "time": {"created": at, "completed": at}},
        "parts": [{"type": "text", "text": text}]
    })
}

pub fn user_message(id: &str, text: &str) -> Value {
    json!({"info": {"id": id, "role": "user", "time": {"created": now_ms()}},
           "parts": [{"type": "text", "text": text}]})
}

pub fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
