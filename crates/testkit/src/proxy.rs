//! [`EventCutProxy`]: an HTTP proxy in front of OpenCode that can take its event
//! stream down while every other route keeps working.
//!
//! A harness must not depend on the event stream for correctness: events are hints,
//! the API is the truth. Killing OpenCode would test a different thing (the whole
//! server gone); this cuts only `GET /event` and `GET /global/event`, as a flaky
//! proxy or a server restarting its bus would, so a test can make the agent ask a
//! question no event announces.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::Error;

/// Largest request body forwarded (OpenCode's requests are prompts, well under it).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Headers that describe one hop's connection, not the message, so are not copied.
const HOP_BY_HOP: [header::HeaderName; 4] =
    [header::CONNECTION, header::TRANSFER_ENCODING, header::HOST, header::UPGRADE];

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    /// True while event streams are cut: open ones end, new ones get 503.
    cut: watch::Sender<bool>,
    open_streams: AtomicUsize,
    refused_streams: AtomicUsize,
}

/// A proxy on `127.0.0.1:<free port>` forwarding everything to one upstream, whose
/// event streams can be cut and restored. Stops when dropped.
#[derive(Debug)]
pub struct EventCutProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("upstream", &self.upstream)
            .field("cut", &*self.cut.borrow())
            .finish_non_exhaustive()
    }
}

fn is_event_stream(path: &str) -> bool {
    path == "/event" || path == "/global/event"
}

impl EventCutProxy {
    /// Starts a proxy to `upstream` (a base URL such as `http://127.0.0.1:4096`).
    pub async fn start(upstream: &str) -> Result<Self, Error> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|source| Error::io("binding the proxy's port", source))?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::io("reading the proxy's address", source))?;
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            cut: watch::Sender::new(false),
            open_streams: AtomicUsize::new(0),
            refused_streams: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(forward).with_state(Arc::clone(&state));
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::error!(%error, "event-cut proxy failed");
            }
        });
        Ok(Self { addr, state, shutdown: Some(shutdown) })
    }

    /// The proxy's base URL, to give the harness instead of OpenCode's.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every open event stream and refuses new ones (503) until
    /// [`restore_events`](Self::restore_events).
    pub fn cut_events(&self) {
        self.state.cut.send_replace(true);
    }

    /// Lets event streams through again.
    pub fn restore_events(&self) {
        self.state.cut.send_replace(false);
    }

    /// Event streams open through the proxy now.
    pub fn open_event_streams(&self) -> usize {
        self.state.open_streams.load(Ordering::SeqCst)
    }

    /// Event streams refused while cut, so far.
    pub fn refused_event_streams(&self) -> usize {
        self.state.refused_streams.load(Ordering::SeqCst)
    }
}

impl Drop for EventCutProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Counts an open stream for as long as it lives.
struct OpenStream(Arc<ProxyState>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !HOP_BY_HOP.contains(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let events = is_event_stream(&path);
    if events && *state.cut.borrow() {
        state.refused_streams.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "event stream cut by the test").into_response();
    }
    let target = match request.uri().query() {
        Some(query) => format!("{}{path}?{query}", state.upstream),
        None => format!("{}{path}", state.upstream),
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    let mut headers = reqwest::header::HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let sent = state.client.request(parts.method, &target).headers(headers).body(body).send().await;
    let upstream = match sent {
        Ok(upstream) => upstream,
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let mut response = Response::builder().status(upstream.status());
    if let Some(headers) = response.headers_mut() {
        copy_headers(upstream.headers(), headers);
    }
    let bytes = upstream.bytes_stream();
    let body = if events {
        state.open_streams.fetch_add(1, Ordering::SeqCst);
        let open = OpenStream(Arc::clone(&state));
        let mut cut = state.cut.subscribe();
        // The stream ends when upstream ends it or the test cuts it.
        Body::from_stream(bytes.take_until(async move {
            let _open = open;
            let _ = cut.wait_for(|cut| *cut).await;
        }))
    } else {
        Body::from_stream(bytes)
    };
    response.body(body).unwrap_or_else(|error| {
        (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response()
    })
}
