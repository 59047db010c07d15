//! The accept loop: every connection under a cap, with a header-read timeout.
//!
//! `axum::serve` accepts as fast as it can and keeps a connection for as long as the
//! peer likes: a few hundred connections that send nothing (or a header byte a
//! second) used up the process's file descriptors, and then `accept` failed for
//! everyone. Here:
//! - at most [`ServerConfig::max_connections`] connections are open (the default is
//!   derived from the descriptor limit, so the cap is reached before the limit);
//!   a connection past the cap is answered `503` with `Retry-After: 1` and closed at
//!   once, so a client is told rather than left hanging;
//! - a connection must send a request's complete headers within
//!   [`ServerConfig::header_timeout`] of opening or of its previous answer, else it is
//!   closed (hyper's HTTP/1 header-read timer, which also runs while a keep-alive
//!   connection sits idle): idle and slowloris connections give their slot back;
//! - a request body must keep arriving: at most [`BODY_GAP`] between its pieces
//!   (with the 1 MiB body limit, a body cannot hold a slot for ever at full speed,
//!   though a very slow drip still can for a while);
//! - each request carries the peer's address ([`axum::extract::ConnectInfo`]), which
//!   the token guard's failure penalty is keyed by.
//!
//! HTTP/1.1 only: the dashboard, the CLI and curl speak it, and on loopback nothing
//! negotiates HTTP/2.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// What a connection past the cap is told before it is closed.
const REFUSAL: &str = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 87\r\n\r\n\
{\"error\":\"busy\",\"detail\":\"the server has too many open connections; retry in a moment\"}";

/// Longest wait for the next piece of a request body.
pub(crate) const BODY_GAP: Duration = Duration::from_secs(10);

/// How often the "connection cap reached" warning may repeat.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Limits the loop enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Accepts connections and serves `router` on them until `shutdown` completes; then
/// asks every connection to finish its request in flight and close, and waits for
/// them all.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut last_warning: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of descriptors (the cap should prevent it) or another resource:
                // back off briefly rather than spin, but keep watching for shutdown.
                tracing::warn!(%error, "accept failed; retrying in 100 ms");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                last_warning = Some(Instant::now());
                tracing::warn!(
                    cap = limits.max_connections,
                    "connection cap reached: answering new connections 503 (raise `ulimit -n` \
                     to serve more clients)"
                );
            }
            refuse(&stream);
            continue;
        };
        let router = router.clone();
        let closed = closed.clone();
        tokio::spawn(async move {
            connection(stream, peer, router, limits.header_timeout, closed).await;
            drop(slot);
        });
    }
    closing.send_replace(true);
    // Every connection holds a slot until it ends: having them all back means done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Errors of one incoming connection (it was reset before we took it), not of the
/// listener: accept the next one at once.
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

/// Tells a connection past the cap to come back later, without waiting for it: the
/// answer fits the socket's send buffer, and what the peer already sent is read
/// first so that closing does not reset the connection before the answer arrives.
fn refuse(stream: &TcpStream) {
    let mut sink = [0u8; 4096];
    let _ = stream.try_read(&mut sink);
    let _ = stream.try_write(REFUSAL.as_bytes());
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    header_timeout: Duration,
    mut closed: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|body| {
            axum::body::Body::new(tower_http::timeout::TimeoutBody::new(BODY_GAP, body))
        });
        router.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let closing = async move {
        // An error means the loop is gone: close as on shutdown.
        let _ = closed.wait_for(|closed| *closed).await;
    };
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = closing => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        // Timeouts and resets are the peer's business; nothing for the operator.
        tracing::debug!(%peer, %error, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer() {
        let (head, body) = REFUSAL.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len(), "content-length matches the body");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(json["error"], "busy");
    }
}
