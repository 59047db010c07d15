//! `/api/events` on a real socket: snapshot, then task events; a snapshot on every
//! reconnect;
//! shutdown with a stream open.

use std::time::Duration;

use futures::StreamExt;
use openloom_core::TaskSpec;
use openloom_server::{Server, ServerParts};

use crate::common::*;

/// Reads the stream until `needle` appears; returns everything read.
async fn read_until(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}; got {seen:?}"))
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn a_client_sees_a_snapshot_then_task_events_and_a_snapshot_again_on_reconnect() {
    let fx = Fixture::new().await;
    let mut config = test_config();
    config.bind = "127.0.0.1:0".parse().expect("addr");
    let parts = ServerParts {
        harness: fx.state.harness().clone(),
        recent: fx.state.recent().clone(),
        outbox: fx.state.outbox().clone(),
        client: fx.state.client().clone(),
        metrics: fx.state.metrics().clone(),
        others: Vec::new(),
    };
    let server = Server::bind(config, parts).await.expect("bind");
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let url = format!("http://{addr}/api/events");
    let response = http.get(&url).send().await.expect("connect");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"].to_str().expect("type").starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: snapshot").await;
    read_until(&mut body, &mut seen, "\n\n").await;
    assert!(seen.contains("\"tasks\":[]"), "{seen}");

    let id =
        fx.state.harness().add_task(TaskSpec::new("live", fx.ws(), "goal")).await.expect("add");
    let mut events = String::new();
    read_until(&mut body, &mut events, "event: task").await;
    read_until(&mut body, &mut events, id.as_str()).await;
    read_until(&mut body, &mut events, "\n\n").await;
    assert!(events.contains("\"type\":\"created\""), "{events}");
    let version = fx.state.store().store_version().await.expect("version");
    assert!(events.contains(&format!("id: {version}")), "{events}");

    // Heartbeats keep the connection alive.
    let mut beats = String::new();
    read_until(&mut body, &mut beats, ": heartbeat").await;

    // Completing announces `updated`/`completed`-style events that may share a store
    // version; a client whose Last-Event-ID is the current version may have missed one,
    // so it gets a snapshot showing the task as it is now.
    let completed = fx.state.harness().complete(&id).await.expect("complete");
    let current = http
        .get(&url)
        .header("Last-Event-ID", completed.to_string())
        .send()
        .await
        .expect("connect");
    let mut current_body = current.bytes_stream();
    let mut head = String::new();
    read_until(&mut current_body, &mut head, "event: snapshot").await;
    read_until(&mut current_body, &mut head, "\n\n").await;
    assert!(head.contains(&format!("id: {completed}")), "{head}");
    assert!(head.contains("\"status\":\"completed\""), "{head}");
    let behind = http
        .get(&url)
        .header("Last-Event-ID", (version - 1).to_string())
        .send()
        .await
        .expect("connect");
    let mut behind_body = behind.bytes_stream();
    let mut resync = String::new();
    read_until(&mut behind_body, &mut resync, "event: snapshot").await;
    read_until(&mut behind_body, &mut resync, id.as_str()).await;

    // A foreign Host is refused on the real socket too.
    let foreign =
        http.get(&url).header("host", "rebind.attacker.example").send().await.expect("connect");
    assert_eq!(foreign.status(), 421);

    // Shutdown completes although streams are open.
    stop.send(()).expect("server running");
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("graceful shutdown ends open streams")
        .expect("join")
        .expect("served");
}

#[tokio::test]
async fn a_client_that_falls_behind_is_disconnected_without_slowing_the_harness() {
    let fx = Fixture::new().await;
    let response = tower::ServiceExt::oneshot(
        fx.app.clone(),
        request(axum::http::Method::GET, "/api/events", None),
    )
    .await
    .expect("router");
    assert_eq!(response.status(), 200);
    // The client reads nothing while far more events than the channel holds are emitted;
    // emitting must not wait for it.
    let started = std::time::Instant::now();
    for version in 1..=5000 {
        fx.state.harness().bus().emit(openloom_core::Event::new(
            "task_flood".into(),
            version,
            openloom_core::EventPayload::LogLine { summary: "flood".into() },
        ));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "emitting was slowed by a stalled client");
    // Now the stream yields its snapshot and ends instead of replaying a gap.
    let body = tokio::time::timeout(
        Duration::from_secs(5),
        axum::body::to_bytes(response.into_body(), usize::MAX),
    )
    .await
    .expect("the lagging stream is closed")
    .expect("body");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("event: snapshot"), "{text}");
    assert!(
        !text.contains("event: task"),
        "a lagging client must resynchronise, not get a gappy stream: {text}"
    );
}
