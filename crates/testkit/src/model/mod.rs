//! [`ScriptedModel`]: an OpenAI-compatible chat-completions server on loopback that
//! answers from a [`Script`] and records every request.

mod request;
mod script;
mod wire;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

pub use request::RecordedRequest;
pub use script::{NO_TURN_MATCHED, Predicate, Reply, ReplyBody, Script, ToolCall, Turn, Usage};

use crate::Error;

/// The model id the scripted model serves for normal requests.
pub const MODEL_ID: &str = "scripted-model";

/// The model id OpenCode is told to use as its `small_model` (session titles).
/// Requests for it get [`TITLE_REPLY`] and never consume a script turn, so a test
/// that forgets to give its session a title still sees its script run in order.
pub const TITLE_MODEL_ID: &str = "scripted-title-model";

/// What the scripted model answers to title requests.
pub const TITLE_REPLY: &str = "Scripted title";

/// A running scripted model server. Stops when dropped.
#[derive(Debug)]
pub struct ScriptedModel {
    addr: SocketAddr,
    state: Arc<ModelState>,
    shutdown: Option<oneshot::Sender<()>>,
}

#[derive(Debug)]
struct ModelState {
    inner: Mutex<Inner>,
    /// Number of requests for [`MODEL_ID`] (not title requests) seen so far.
    seen: watch::Sender<usize>,
}

#[derive(Debug)]
struct Inner {
    turns: Vec<Turn>,
    used: Vec<bool>,
    fallback: Reply,
    requests: Vec<RecordedRequest>,
    replies: u64,
    tool_calls: u64,
}

impl ModelState {
    /// Lock the state. A panic while the lock was held (only possible in a test's
    /// predicate) leaves plain data behind, so the poison is ignored.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Choose the reply for `request`, record the request, and reserve ids.
    fn answer(&self, mut request: RecordedRequest) -> (Reply, u64, u64) {
        let mut inner = self.lock();
        let reply = if request.model == TITLE_MODEL_ID {
            Reply::text(TITLE_REPLY)
        } else {
            let chosen = (0..inner.turns.len())
                .find(|&index| !inner.used[index] && inner.turns[index].matches(&request));
            match chosen {
                Some(index) => {
                    if !inner.turns[index].repeating {
                        inner.used[index] = true;
                    }
                    request.turn = Some(index);
                    inner.turns[index].reply.clone()
                }
                None => {
                    tracing::warn!(last_user = ?request.last_user_text(), "no scripted turn matched");
                    inner.fallback.clone()
                }
            }
        };
        let is_main = request.model != TITLE_MODEL_ID;
        inner.requests.push(request);
        inner.replies += 1;
        let reply_number = inner.replies;
        let first_call = inner.tool_calls + 1;
        if let ReplyBody::Completion { tool_calls, .. } = &reply.body {
            inner.tool_calls += tool_calls.len() as u64;
        }
        drop(inner);
        if is_main {
            self.seen.send_modify(|count| *count += 1);
        }
        (reply, reply_number, first_call)
    }
}

impl ScriptedModel {
    /// Start serving `script` on `127.0.0.1:<free port>`.
    pub async fn start(script: Script) -> Result<Self, Error> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| Error::io("binding the scripted model's port", source))?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::io("reading the scripted model's address", source))?;
        let used = vec![false; script.turns.len()];
        let state = Arc::new(ModelState {
            inner: Mutex::new(Inner {
                turns: script.turns,
                used,
                fallback: script.fallback,
                requests: Vec::new(),
                replies: 0,
                tool_calls: 0,
            }),
            seen: watch::Sender::new(0),
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(Arc::clone(&state));
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "scripted model server failed");
            }
        });
        tracing::debug!(%addr, "scripted model listening");
        Ok(Self { addr, state, shutdown: Some(shutdown) })
    }

    /// The OpenAI base URL, `http://127.0.0.1:<port>/v1` (what an OpenAI-compatible
    /// provider's `baseURL` wants).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request for [`MODEL_ID`] so far, oldest first (title requests left out).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.iter().filter(|r| r.model != TITLE_MODEL_ID).cloned().collect()
    }

    /// Every request so far, title requests included.
    pub fn all_requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// Add a turn after the existing ones (for a test that scripts as it goes).
    pub fn push_turn(&self, turn: Turn) {
        let mut inner = self.state.lock();
        inner.turns.push(turn);
        inner.used.push(false);
    }

    /// Indexes of the non-repeating turns that have not answered yet.
    pub fn unused_turns(&self) -> Vec<usize> {
        let inner = self.state.lock();
        (0..inner.turns.len()).filter(|&i| !inner.used[i] && !inner.turns[i].repeating).collect()
    }

    /// Wait until at least `count` requests for [`MODEL_ID`] have arrived.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, Error> {
        let mut seen = self.state.seen.subscribe();
        let reached = tokio::time::timeout(timeout, seen.wait_for(|&seen| seen >= count)).await;
        match reached {
            Ok(Ok(_)) => Ok(self.requests()),
            _ => Err(Error::Timeout {
                what: format!("{count} model requests (saw {})", self.requests().len()),
                after: timeout,
            }),
        }
    }
}

impl Drop for ScriptedModel {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn router(state: Arc<ModelState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .with_state(state)
}

async fn models() -> Json<Value> {
    let entry = |id: &str| json!({ "id": id, "object": "model", "created": 0, "owned_by": "openloom-testkit" });
    Json(json!({ "object": "list", "data": [entry(MODEL_ID), entry(TITLE_MODEL_ID)] }))
}

async fn chat_completions(State(state): State<Arc<ModelState>>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(error) => {
            let message = format!("request body is not JSON: {error}");
            return (StatusCode::BAD_REQUEST, Json(wire::error_body(400, &message)))
                .into_response();
        }
    };
    let request = RecordedRequest::from_body(body);
    let stream = request.stream;
    let model = request.model.clone();
    let (reply, reply_number, first_call) = state.answer(request);
    let id = format!("chatcmpl-scripted-{reply_number}");
    let created = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ids = wire::ReplyIds { id: &id, model: &model, created, first_call };
    match &reply.body {
        // Never resolves; axum drops this future when the client hangs up.
        ReplyBody::Hang => std::future::pending::<Response>().await,
        ReplyBody::HttpError { status, message } => {
            tokio::time::sleep(reply.chunk_delay).await;
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, Json(wire::error_body(status.as_u16(), message))).into_response()
        }
        ReplyBody::Completion { text, tool_calls } if stream => {
            let chunks = wire::stream_chunks(&ids, text.as_deref(), tool_calls, reply.usage);
            sse_response(chunks, reply.chunk_delay)
        }
        ReplyBody::Completion { text, tool_calls } => {
            tokio::time::sleep(reply.chunk_delay).await;
            Json(wire::completion(&ids, text.as_deref(), tool_calls, reply.usage)).into_response()
        }
    }
}

/// Stream `chunks` as `data:` lines, `delay` before each, then `[DONE]`. When the
/// client hangs up (an abort), axum drops the stream and the sleeps stop with it.
fn sse_response(chunks: Vec<Value>, delay: Duration) -> Response {
    let events = async_stream::stream! {
        for chunk in chunks {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            yield Ok::<_, Infallible>(Bytes::from(format!("data: {chunk}\n\n")));
        }
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
    };
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        Body::from_stream(events),
    )
        .into_response()
}
