//! A simulated OpenCode HTTP server for the `serve-1k` benchmark: just the routes
//! `openloom serve` calls (crates/opencode/src/client.rs), answering with the shapes
//! of OpenCode 1.18.34's captures (`/work/shared/reference/opencode/captures/`), and
//! no model: a prompt makes the session busy, and after a random turn of
//! [`Plan::turn_min`]..[`Plan::turn_max`] it appends the assistant's reply, goes idle
//! and says so on `/global/event` (`session.status` idle, then `session.idle`).
//!
//! What it times: the moment it puts a session's idle status on the event stream,
//! and the arrival of the next `POST /session/{id}/prompt_async` for that session.
//! Turn `n` of [`Plan::turns`] replies "STEP DONE: n" (the harness then nudges the
//! agent toward the next step); the turn after the last one replies "TASK COMPLETE",
//! after which no prompt is expected (one that arrives is counted as unexpected).
//!
//! Routes it does not know answer 404 and are counted, so a run says whether `serve`
//! asked for something this fake leaves out.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// How the simulated sessions behave.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Turns that end in "STEP DONE: n", each followed by a measured prompt.
    pub turns: u32,
    /// Shortest turn.
    pub turn_min: Duration,
    /// Longest turn.
    pub turn_max: Duration,
    /// Seed of the turn lengths.
    pub seed: u64,
}

/// What the fake saw, for the report.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Idle event → next prompt, one per prompt that followed a measured idle event.
    pub latencies: Vec<Duration>,
    /// Sessions created.
    pub sessions: usize,
    /// Prompts received.
    pub prompts: u64,
    /// Sessions whose final ("TASK COMPLETE") turn has ended.
    pub finished: usize,
    /// Sessions idle after a measured turn and not prompted since.
    pub waiting_for_prompt: usize,
    /// Prompts that arrived while no prompt was expected (busy, or after the end).
    pub unexpected_prompts: u64,
    /// Requests per route (`METHOD /path` with ids replaced by `{id}`).
    pub requests: BTreeMap<String, u64>,
    /// Requests for routes this fake does not serve.
    pub unknown: BTreeMap<String, u64>,
    /// Events the SSE writers dropped because they fell behind.
    pub lagged: u64,
    /// Per finished session: its time from the first prompt to its last turn's end
    /// (every turn plus every idle → prompt wait) over the time of its turns alone,
    /// which is what a client that prompts the instant a session goes idle takes.
    pub task_ratios: Vec<f64>,
}

struct Sim {
    id: String,
    directory: String,
    title: String,
    created: i64,
    updated: i64,
    messages: Vec<Value>,
    busy: bool,
    /// Turns ended so far.
    turns_done: u32,
    /// When the last measured turn's idle status went on the stream, until prompted.
    idle_at: Option<Instant>,
    /// The turns' lengths so far, summed.
    worked: Duration,
    /// The idle → next prompt waits so far, summed.
    waited: Duration,
}

struct Shared {
    plan: Plan,
    /// The directory the fake pretends to run in (its default instance).
    directory: String,
    sessions: Mutex<HashMap<String, Sim>>,
    events: broadcast::Sender<Arc<str>>,
    latencies: Mutex<Vec<Duration>>,
    requests: Mutex<BTreeMap<String, u64>>,
    unknown: Mutex<BTreeMap<String, u64>>,
    prompts: AtomicU64,
    unexpected: AtomicU64,
    lagged: AtomicU64,
    ids: AtomicU64,
    rng: Mutex<u64>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Shared {
    /// A new id with `prefix`, increasing, like OpenCode's (sortable by creation).
    fn id(&self, prefix: &str) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_{:012x}{n:014}", now_ms())
    }

    fn turn_length(&self) -> Duration {
        let mut state = lock(&self.rng);
        // xorshift64*: enough for spreading turn lengths.
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        let x = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let (low, high) = (self.plan.turn_min.as_millis(), self.plan.turn_max.as_millis());
        let span = u64::try_from(high.saturating_sub(low)).unwrap_or(u64::MAX).max(1);
        self.plan.turn_min + Duration::from_millis(x % span)
    }

    /// Puts one event on `/global/event`, wrapped as OpenCode's global stream does.
    fn emit(&self, directory: &str, kind: &str, properties: Value) {
        let event = json!({
            "directory": directory,
            "project": "global",
            "payload": { "id": self.id("evt"), "type": kind, "properties": properties },
        });
        // No subscriber yet is fine: `serve` has not connected.
        let _ = self.events.send(Arc::from(event.to_string()));
    }

    fn count(&self, route: &str) {
        *lock(&self.requests).entry(route.to_owned()).or_default() += 1;
    }
}

fn session_json(sim: &Sim) -> Value {
    json!({
        "id": sim.id,
        "slug": "bench-session",
        "projectID": "global",
        "directory": sim.directory,
        "path": "",
        "cost": 0,
        "tokens": {"input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}},
        "title": sim.title,
        "version": "1.18.34",
        "time": {"created": sim.created, "updated": sim.updated},
    })
}

fn not_found(message: String) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"name": "NotFoundError", "data": {"message": message}})))
        .into_response()
}

/// A running fake. Dropping it stops the server.
pub struct FakeOpencode {
    shared: Arc<Shared>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    server: tokio::task::JoinHandle<()>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpencode {
    fn drop(&mut self) {
        self.server.abort();
        self.heartbeat.abort();
    }
}

impl FakeOpencode {
    /// Starts the fake on a free loopback port; `directory` is its own directory.
    pub async fn start(plan: Plan, directory: &str) -> Result<FakeOpencode> {
        let (events, _) = broadcast::channel(1 << 16);
        let shared = Arc::new(Shared {
            plan,
            directory: directory.to_owned(),
            sessions: Mutex::new(HashMap::new()),
            events,
            latencies: Mutex::new(Vec::new()),
            requests: Mutex::new(BTreeMap::new()),
            unknown: Mutex::new(BTreeMap::new()),
            prompts: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            lagged: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            rng: Mutex::new(plan.seed | 1),
        });
        let app = Router::new()
            .route("/global/health", get(health))
            .route("/global/event", get(global_events))
            .route("/project", get(projects))
            .route("/session", get(list_sessions).post(create_session))
            .route("/session/status", get(status))
            .route("/session/{id}", get(one_session))
            .route("/session/{id}/message", get(messages))
            .route("/session/{id}/prompt_async", post(prompt))
            .route("/session/{id}/abort", post(abort))
            .route("/permission", get(empty_list))
            .route("/question", get(empty_list))
            .fallback(unknown)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fake OpenCode")?;
        let url = format!("http://{}", listener.local_addr().context("its address")?);
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("bench: the fake OpenCode stopped: {error}");
            }
        });
        // OpenCode sends a heartbeat on its event streams every 10 s; the client
        // reconnects after a silence, so the fake does the same.
        let beat = Arc::clone(&shared);
        let heartbeat = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(10));
            loop {
                every.tick().await;
                let event = json!({"payload": {"id": beat.id("evt"), "type": "server.heartbeat", "properties": {}}});
                let _ = beat.events.send(Arc::from(event.to_string()));
            }
        });
        Ok(FakeOpencode { shared, url, server, heartbeat })
    }

    /// What it saw so far.
    pub fn observed(&self) -> Observed {
        let shared = &self.shared;
        let sessions = lock(&shared.sessions);
        Observed {
            latencies: lock(&shared.latencies).clone(),
            sessions: sessions.len(),
            prompts: shared.prompts.load(Ordering::Relaxed),
            finished: sessions.values().filter(|s| s.turns_done > shared.plan.turns).count(),
            waiting_for_prompt: sessions.values().filter(|s| s.idle_at.is_some()).count(),
            unexpected_prompts: shared.unexpected.load(Ordering::Relaxed),
            requests: lock(&shared.requests).clone(),
            unknown: lock(&shared.unknown).clone(),
            lagged: shared.lagged.load(Ordering::Relaxed),
            task_ratios: sessions
                .values()
                .filter(|s| s.turns_done > shared.plan.turns && !s.worked.is_zero())
                .map(|s| (s.worked + s.waited).as_secs_f64() / s.worked.as_secs_f64())
                .collect(),
        }
    }
}

async fn health(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.count("GET /global/health");
    Json(json!({"healthy": true, "version": "1.18.34"}))
}

async fn projects(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.count("GET /project");
    Json(json!([{
        "id": "global",
        "worktree": shared.directory,
        "vcs": "git",
        "time": {"created": 1_795_622_830_502_i64, "updated": 1_795_622_830_502_i64},
        "sandboxes": [],
    }]))
}

async fn empty_list(State(shared): State<Arc<Shared>>, uri: Uri) -> Json<Value> {
    shared.count(&format!("GET {}", uri.path()));
    Json(json!([]))
}

async fn unknown(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
) -> Response {
    *lock(&shared.unknown).entry(format!("{method} {}", uri.path())).or_default() += 1;
    not_found(format!("no route {}", uri.path()))
}

/// The `directory` query parameter, or the fake's own directory.
fn directory_of(shared: &Shared, query: &HashMap<String, String>) -> String {
    query
        .get("directory")
        .filter(|d| !d.is_empty())
        .cloned()
        .unwrap_or_else(|| shared.directory.clone())
}

async fn global_events(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    shared.count("GET /global/event");
    let mut receiver = shared.events.subscribe();
    let connected =
        json!({"payload": {"id": shared.id("evt"), "type": "server.connected", "properties": {}}});
    let stream = async_stream::stream! {
        yield Ok::<Event, Infallible>(Event::default().data(connected.to_string()));
        loop {
            match receiver.recv().await {
                Ok(data) => yield Ok(Event::default().data(&*data)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    shared.lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn list_sessions(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    shared.count("GET /session");
    let directory = directory_of(&shared, &query);
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let sessions = lock(&shared.sessions);
    let mut listed: Vec<&Sim> = sessions.values().filter(|s| s.directory == directory).collect();
    listed.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| b.id.cmp(&a.id)));
    Json(Value::Array(listed.into_iter().take(limit).map(session_json).collect()))
}

async fn create_session(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
    body: Option<Json<Value>>,
) -> Json<Value> {
    shared.count("POST /session");
    let directory = directory_of(&shared, &query);
    let title = body
        .as_ref()
        .and_then(|b| b.get("title"))
        .and_then(Value::as_str)
        .unwrap_or("New session")
        .to_owned();
    let now = now_ms();
    let sim = Sim {
        id: shared.id("ses"),
        directory,
        title,
        created: now,
        updated: now,
        messages: Vec::new(),
        busy: false,
        turns_done: 0,
        idle_at: None,
        worked: Duration::ZERO,
        waited: Duration::ZERO,
    };
    let answer = session_json(&sim);
    shared.emit(&sim.directory, "session.created", json!({"sessionID": sim.id, "info": answer}));
    lock(&shared.sessions).insert(sim.id.clone(), sim);
    Json(answer)
}

async fn one_session(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    shared.count("GET /session/{id}");
    match lock(&shared.sessions).get(&id) {
        Some(sim) => Json(session_json(sim)).into_response(),
        None => not_found(format!("Session not found: {id}")),
    }
}

async fn status(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    shared.count("GET /session/status");
    let directory = directory_of(&shared, &query);
    let sessions = lock(&shared.sessions);
    // OpenCode lists busy sessions only; idle ones are absent.
    let busy: serde_json::Map<String, Value> = sessions
        .values()
        .filter(|s| s.busy && s.directory == directory)
        .map(|s| (s.id.clone(), json!({"type": "busy"})))
        .collect();
    Json(Value::Object(busy))
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    shared.count("GET /session/{id}/message");
    let limit = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|&l| l > 0);
    let sessions = lock(&shared.sessions);
    let Some(sim) = sessions.get(&id) else {
        return not_found(format!("Session not found: {id}"));
    };
    let skip = limit.map_or(0, |l| sim.messages.len().saturating_sub(l));
    Json(Value::Array(sim.messages[skip..].to_vec())).into_response()
}

async fn abort(State(shared): State<Arc<Shared>>) -> Json<Value> {
    shared.count("POST /session/{id}/abort");
    Json(json!(true))
}

/// The text a user prompt body carries (`parts[].text`).
fn prompt_text(body: &Value) -> String {
    body.get("parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

async fn prompt(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Option<Json<Value>>,
) -> Response {
    let arrived = Instant::now();
    shared.count("POST /session/{id}/prompt_async");
    shared.prompts.fetch_add(1, Ordering::Relaxed);
    let text = body.as_ref().map(|Json(b)| prompt_text(b)).unwrap_or_default();
    let mut sessions = lock(&shared.sessions);
    let Some(sim) = sessions.get_mut(&id) else {
        return not_found(format!("Session not found: {id}"));
    };
    if let Some(idle_at) = sim.idle_at.take() {
        let waited = arrived.duration_since(idle_at);
        sim.waited += waited;
        lock(&shared.latencies).push(waited);
    } else if sim.busy || sim.turns_done > shared.plan.turns {
        // Busy: OpenCode would queue it; after the end: the harness should be done.
        shared.unexpected.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NO_CONTENT.into_response();
    }
    let now = now_ms();
    let user_id = shared.id("msg");
    sim.messages.push(json!({
        "info": {
            "id": user_id, "sessionID": sim.id, "role": "user", "time": {"created": now},
            "summary": {"diffs": []}, "agent": "build",
            "model": {"providerID": "fake", "modelID": "fake-model"},
        },
        "parts": [{"id": shared.id("prt"), "sessionID": sim.id, "messageID": user_id, "type": "text", "text": text}],
    }));
    let assistant_id = shared.id("msg");
    sim.messages.push(json!({
        "info": {
            "id": assistant_id, "sessionID": sim.id, "role": "assistant", "time": {"created": now},
            "parentID": user_id, "modelID": "fake-model", "providerID": "fake", "mode": "build",
            "agent": "build", "path": {"cwd": sim.directory, "root": sim.directory}, "cost": 0,
            "tokens": {"total": 0, "input": 0, "output": 0, "reasoning": 0, "cache": {"read": 0, "write": 0}},
        },
        "parts": [{"id": shared.id("prt"), "sessionID": sim.id, "messageID": assistant_id, "type": "step-start"}],
    }));
    sim.busy = true;
    sim.updated = now;
    let directory = sim.directory.clone();
    drop(sessions);
    shared.emit(&directory, "session.status", json!({"sessionID": id, "status": {"type": "busy"}}));
    let turn = shared.turn_length();
    let finisher = Arc::clone(&shared);
    tokio::spawn(async move {
        tokio::time::sleep(turn).await;
        finish_turn(&finisher, &id, turn);
    });
    StatusCode::NO_CONTENT.into_response()
}

/// Ends a session's turn of length `turn`: the reply, then idle on the event stream,
/// stamped.
fn finish_turn(shared: &Shared, id: &str, turn_length: Duration) {
    let mut sessions = lock(&shared.sessions);
    let Some(sim) = sessions.get_mut(id) else { return };
    sim.worked += turn_length;
    let turn = sim.turns_done + 1;
    let text = if turn > shared.plan.turns {
        format!("I finished the last step. STEP DONE: {turn}\nTASK COMPLETE")
    } else {
        format!("I worked on it. STEP DONE: {turn}")
    };
    let now = now_ms();
    let (message_id, part_id, finish_id) = (
        sim.messages.last().and_then(|m| m["info"]["id"].as_str()).unwrap_or_default().to_owned(),
        shared.id("prt"),
        shared.id("prt"),
    );
    if let Some(last) = sim.messages.last_mut() {
        last["info"]["time"]["completed"] = json!(now);
        last["info"]["finish"] = json!("stop");
        last["info"]["tokens"] = json!({"total": 120, "input": 100, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}});
        if let Some(parts) = last["parts"].as_array_mut() {
            parts.push(json!({
                "id": part_id, "sessionID": id, "messageID": message_id, "type": "text",
                "text": text, "time": {"start": now, "end": now},
            }));
            parts.push(json!({
                "id": finish_id, "sessionID": id, "messageID": message_id, "type": "step-finish",
                "reason": "stop", "cost": 0,
                "tokens": {"total": 120, "input": 100, "output": 20, "reasoning": 0, "cache": {"read": 0, "write": 0}},
            }));
        }
    }
    sim.busy = false;
    sim.turns_done = turn;
    sim.updated = now;
    let directory = sim.directory.clone();
    let info = sim.messages.last().map(|m| m["info"].clone()).unwrap_or(Value::Null);
    let measured = turn <= shared.plan.turns;
    if measured {
        // Stamped before the idle status is sent: the figure includes the fake's SSE write.
        sim.idle_at = Some(Instant::now());
    }
    drop(sessions);
    shared.emit(&directory, "message.updated", json!({"sessionID": id, "info": info}));
    shared.emit(&directory, "session.status", json!({"sessionID": id, "status": {"type": "idle"}}));
    shared.emit(&directory, "session.idle", json!({"sessionID": id}));
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use openloom_core::{AgentEvent, AgentServer, Role};

    use super::*;

    /// The next idle event for `session` on `events`, within 5 s.
    async fn idle(events: &mut futures::stream::BoxStream<'static, AgentEvent>, session: &str) {
        let wait = async {
            while let Some(event) = events.next().await {
                if matches!(&event, AgentEvent::SessionIdle { session_id } if session_id == session)
                {
                    return;
                }
            }
            panic!("the event stream ended");
        };
        tokio::time::timeout(Duration::from_secs(5), wait).await.expect("an idle event in 5 s");
    }

    #[tokio::test]
    async fn the_real_client_drives_a_simulated_session_to_its_end_and_the_waits_are_timed() {
        let short = Duration::from_millis(50);
        let plan = Plan { turns: 1, turn_min: short, turn_max: short, seed: 7 };
        let dir = tempfile::tempdir().expect("temp dir");
        let directory = dir.path().to_string_lossy().into_owned();
        let fake = FakeOpencode::start(plan, &directory).await.expect("the fake starts");
        let settings = openloom_opencode::Settings::new(fake.url.clone());
        let client = openloom_opencode::OpencodeClient::new(settings).expect("a client");
        assert!(client.health().await.is_ok(), "the client reads the fake's health");
        let mut events = client.events().expect("an event stream");

        let session = client.create_session(&directory, "simulated").await.expect("created");
        client.send_prompt(&session.as_ref(), "begin", None).await.expect("first prompt");
        idle(&mut events, &session.id).await;
        let last = |messages: Vec<openloom_core::AgentMessage>| {
            messages.into_iter().rev().find(|m| m.role == Role::Assistant).map(|m| m.text())
        };
        let first = last(client.messages(&session.as_ref(), 10).await.expect("messages"));
        assert_eq!(first.as_deref(), Some("I worked on it. STEP DONE: 1"));

        tokio::time::sleep(Duration::from_millis(30)).await;
        client.send_prompt(&session.as_ref(), "next step", None).await.expect("second prompt");
        idle(&mut events, &session.id).await;
        let end = last(client.messages(&session.as_ref(), 10).await.expect("messages"));
        assert!(end.is_some_and(|text| text.contains("TASK COMPLETE")));
        client.send_prompt(&session.as_ref(), "are you done?", None).await.expect("a third");

        let observed = fake.observed();
        assert_eq!(observed.latencies.len(), 1, "one measured idle → prompt wait");
        assert!(observed.latencies[0] >= Duration::from_millis(30), "{:?}", observed.latencies);
        assert_eq!((observed.sessions, observed.finished, observed.prompts), (1, 1, 3));
        assert_eq!(observed.unexpected_prompts, 1, "a prompt after the end is counted");
        assert_eq!(observed.task_ratios.len(), 1);
        // Two 50 ms turns and one wait of at least 30 ms: at least 1.3×.
        assert!((1.3..3.0).contains(&observed.task_ratios[0]), "{:?}", observed.task_ratios);
        assert!(observed.unknown.is_empty(), "the client asked for {:?}", observed.unknown);
    }
}
