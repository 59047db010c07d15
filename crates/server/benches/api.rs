//! Server throughput: `GET /api/tasks` and `GET /api/state` over loopback with 1,000
//! tasks in a SQLite store and 20 concurrent keep-alive connections.
//!
//! Run with `cargo bench -p openloom-server --bench api` (set `OPENLOOM_BENCH_SECS`
//! to change the seconds per endpoint, default 5). OpenCode is a local wiremock
//! server with 50 sessions, refreshed once by the monitor before measuring, so
//! `/api/state` serves a realistic snapshot; no request touches the network.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use openloom_core::{
    AgentMessage, CheckOutcome, CheckResult, Dialogue, EventBus, Harness, HarnessParts, Store,
    Task, TaskId, TaskSpec, WorkspacePolicy,
};
use openloom_opencode::{OpencodeClient, Settings};
use openloom_server::{Server, ServerConfig, ServerParts};
use openloom_store_sqlite::SqliteStore;
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TASKS: usize = 1000;
const CONNECTIONS: usize = 20;
const SESSIONS: usize = 50;

struct Quiet;

impl Dialogue for Quiet {
    fn bootstrap(&self, spec: &TaskSpec, _: usize) -> String {
        spec.goal.clone()
    }
    fn periodic_check(&self, _: &TaskSpec, _: usize, _: &CheckResult, _: &[u32]) -> String {
        String::new()
    }
    fn next_step(&self, _: &TaskSpec, _: usize) -> String {
        String::new()
    }
    fn auto_continue(&self, _: &TaskSpec, _: usize) -> String {
        String::new()
    }
    fn verification_failed(&self, _: &TaskSpec, _: Option<u32>, _: &[CheckOutcome]) -> String {
        String::new()
    }
    fn needs_continue_reply(&self, _: &[AgentMessage]) -> bool {
        false
    }
    fn is_busy(&self, _: &[AgentMessage]) -> bool {
        false
    }
}

fn json_reply(body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_string().into_bytes(), "application/json")
}

async fn fake_opencode(workspace: &str) -> MockServer {
    let server = MockServer::start().await;
    let now = Utc::now().timestamp_millis();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|i| json!({"id": format!("ses_{i:04}"), "directory": workspace, "title": format!("session {i}"),
                        "time": {"created": now - i as i64 * 60_000, "updated": now - i as i64 * 60_000}}))
        .collect();
    let message = json!([{"info": {"id": "msg_1", "role": "assistant", "providerID": "p", "modelID": "m",
        "cost": 0.01, "tokens": {"input": 1000, "output": 100, "reasoning": 0, "cache": {"read": 500, "write": 0}},
        "time": {"created": now, "completed": now}}, "parts": [{"type": "text", "text": "ok"}]}]);
    for (route, body) in [
        ("/global/health", json!({"healthy": true, "version": "bench"})),
        ("/project", json!([{"id": "global", "worktree": workspace}])),
        ("/session", json!(sessions)),
        ("/session/status", json!({})),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(json_reply(body))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path_regex(r"^/session/ses_\d+/message$"))
        .respond_with(json_reply(message))
        .mount(&server)
        .await;
    server
}

struct Outcome {
    requests: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn hammer(url: String, seconds: u64) -> Outcome {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("http client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let url = url.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let response = client.get(&url).send().await.expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                let body = response.bytes().await.expect("body");
                assert!(!body.is_empty());
                latencies.push(sent.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(result) = workers.join_next().await {
        latencies.extend(result.expect("worker"));
    }
    latencies.sort();
    Outcome { requests: latencies.len(), latencies, elapsed: started.elapsed() }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let seconds: u64 =
        std::env::var("OPENLOOM_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::TempDir::new().expect("temp dir");
    let workspace = dir.path().canonicalize().expect("canonical");
    let workspace_text = workspace.to_string_lossy().into_owned();
    let store = Arc::new(SqliteStore::open(workspace.join("bench.sqlite3")).await.expect("store"));
    let now = Utc::now();
    for i in 0..TASKS {
        let spec = TaskSpec::new(format!("task {i}"), workspace_text.clone(), format!("goal {i}"));
        let task =
            Task::new(TaskId::generate(), spec, now + chrono::Duration::milliseconds(i as i64));
        store.create_task(&task).await.expect("create");
    }

    let opencode = fake_opencode(&workspace_text).await;
    let client = OpencodeClient::new(Settings::new(opencode.uri())).expect("client");
    let harness = Arc::new(Harness::new(HarnessParts {
        agent: Arc::new(client.clone()),
        store: store.clone(),
        checker: Arc::new(openloom_prompts::MarkerChecker),
        dialogue: Arc::new(Quiet),
        bus: EventBus::new(),
        workspaces: WorkspacePolicy::within([workspace.clone()]),
    }));
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    // Throughput of the routes themselves; the token check is one comparison.
    config.no_token = true;
    config.monitor.probes_per_refresh = SESSIONS;
    let metrics = openloom_server::Metrics::new();
    let parts = ServerParts {
        harness,
        recent: store.clone(),
        outbox: store.clone(),
        client,
        metrics,
        others: Vec::new(),
    };
    let server = Server::bind(config, parts).await.expect("bind");
    let addr = server.local_addr();
    server.state().monitor().refresh().await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    println!("| endpoint | requests/s | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    for endpoint in ["/api/tasks", "/api/state"] {
        let outcome = hammer(format!("http://{addr}{endpoint}"), seconds).await;
        let rate = outcome.requests as f64 / outcome.elapsed.as_secs_f64();
        println!(
            "| GET {endpoint} | {rate:.0} | {:.2} ms | {:.2} ms |",
            percentile(&outcome.latencies, 0.50).as_secs_f64() * 1000.0,
            percentile(&outcome.latencies, 0.99).as_secs_f64() * 1000.0,
        );
    }
    let _ = stop.send(());
    let _ = running.await;
}
