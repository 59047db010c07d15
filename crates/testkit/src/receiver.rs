//! A real webhook receiver on `127.0.0.1:0` that checks requests the way
//! `docs/notifications.md` tells users to: the signature over the raw body compared
//! in constant time, the timestamp within a window and equal to the signed `sentAt`,
//! and deliveries deduplicated by `X-OpenLoom-Delivery`.
//!
//! It can be told to fail or hang its first requests, to show retries and a sender
//! killed mid-attempt.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use openloom_core::signature;

/// How far the timestamp may be from the receiver's clock.
pub const TIMESTAMP_WINDOW_SECONDS: i64 = 300;

/// How the receiver answers its next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answers this status.
    Status(u16),
    /// Processes the delivery, then never answers: a receiver whose answer is lost
    /// (the sender's timeout, or its death, ends the attempt). The sender must send
    /// it again, and the receiver dedupes it.
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// `X-OpenLoom-Delivery`.
    pub delivery_id: String,
    /// `X-OpenLoom-Event`.
    pub event: String,
    /// Whether signature and timestamp checked out.
    pub verified: bool,
    /// Whether this delivery id was processed before (a duplicate).
    pub duplicate: bool,
    /// The body as JSON (`Null` if it was not JSON).
    pub body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Inner {
    secret: Vec<u8>,
    answers: VecDeque<Answer>,
    received: Vec<Received>,
    processed: HashSet<String>,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver checking signatures with `secret`.
    pub async fn start(secret: &str) -> std::io::Result<Receiver> {
        Self::start_on("127.0.0.1:0", secret).await
    }

    /// Starts a receiver on `addr` (e.g. the port a killed one used).
    pub async fn start_on(addr: &str, secret: &str) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inner =
            Arc::new(Mutex::new(Inner { secret: secret.as_bytes().to_vec(), ..Inner::default() }));
        let app = axum::Router::new().route("/hook", post(receive)).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, inner, task })
    }

    /// The URL to configure as the hook.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Queues how the next requests are answered (then 200 again).
    pub fn answer_next(&self, answers: &[Answer]) {
        self.lock().answers.extend(answers);
    }

    /// Forgets the queued answers: every request gets 200 from now on.
    pub fn clear_answers(&self) {
        self.lock().answers.clear();
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// Waits until `done` holds for the requests received, or `timeout` passes;
    /// returns them either way.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.received();
            if done(&got) || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// What docs/notifications.md shows: verify, then dedupe, then act, then 2xx.
async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answer = {
        let mut state = inner.lock().unwrap_or_else(|e| e.into_inner());
        let signed =
            signature::verify(&state.secret, &body, header(&headers, "X-OpenLoom-Signature-256"));
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let stamp: i64 = header(&headers, "X-OpenLoom-Timestamp").parse().unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let fresh = (now - stamp).abs() <= TIMESTAMP_WINDOW_SECONDS
            && json.get("sentAt").and_then(serde_json::Value::as_i64) == Some(stamp);
        let delivery_id = header(&headers, "X-OpenLoom-Delivery").to_owned();
        let answer = state.answers.pop_front().unwrap_or(Answer::Status(200));
        let verified = signed && fresh;
        let accepted = verified && matches!(answer, Answer::Status(200) | Answer::Hang);
        let duplicate = state.processed.contains(&delivery_id);
        if accepted {
            state.processed.insert(delivery_id.clone());
        }
        state.received.push(Received {
            delivery_id,
            event: header(&headers, "X-OpenLoom-Event").to_owned(),
            verified,
            duplicate,
            body: json,
        });
        if !verified { Answer::Status(401) } else { answer }
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        Answer::Hang => {
            std::future::pending::<()>().await;
            StatusCode::OK
        }
    }
}
