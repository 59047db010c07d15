//! The event stream, fed with SSE captured from OpenCode 1.18.34.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use openloom_core::{AgentEvent, AgentServer, SessionActivity};
use openloom_opencode::{EventScope, OpencodeClient, Settings, StreamItem};
use wiremock::matchers::{path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{AfterBody, client, fixture, html_page, raw_server, settings};

fn sse(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name).into_bytes(), "text/event-stream")
}

/// Items up to (not including) the next `marker` (a reconnect), failing after 10 s.
async fn until<T: PartialEq>(stream: &mut BoxStream<'static, T>, marker: &T) -> Vec<T> {
    let mut items = Vec::new();
    let collect = async {
        while let Some(item) = stream.next().await {
            if item == *marker {
                return;
            }
            items.push(item);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), collect).await.expect("a reconnect within 10 s");
    items
}

/// Agent events up to the first reconnect.
async fn until_reconnected(mut stream: BoxStream<'static, AgentEvent>) -> Vec<AgentEvent> {
    until(&mut stream, &AgentEvent::Reconnected).await
}

fn status(session: &str, activity: SessionActivity) -> AgentEvent {
    AgentEvent::SessionStatus { session_id: session.to_owned(), activity }
}

fn idle(session: &str) -> AgentEvent {
    AgentEvent::SessionIdle { session_id: session.to_owned() }
}

#[tokio::test]
async fn an_abort_stream_maps_to_agent_events_with_the_duplicate_idle() {
    let server = MockServer::start().await;
    Mock::given(path("/event"))
        .and(query_param("directory", "/home/dev/ws2"))
        .respond_with(sse("event_stream_abort.sse"))
        .mount(&server)
        .await;
    let events = client(&server).agent_events(EventScope::Directory("/home/dev/ws2".into()));
    let seen = until_reconnected(events).await;

    let (a, b) = ("ses_dec84c064ffe02q0wr85nyuVnH", "ses_dec847a97ffe5FHiMF7nYMznct");
    let mut expected = vec![
        status(a, SessionActivity::Busy),
        status(a, SessionActivity::Busy),
        status(a, SessionActivity::Idle),
        idle(a),
        // After an abort OpenCode announces idle twice; we pass both on.
        status(a, SessionActivity::Idle),
        idle(a),
    ];
    expected.extend(std::iter::repeat_n(status(b, SessionActivity::Busy), 5));
    expected.extend([status(b, SessionActivity::Idle), idle(b)]);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn retry_statuses_carry_attempt_and_message() {
    let server = MockServer::start().await;
    Mock::given(path("/event")).respond_with(sse("event_stream_retry.sse")).mount(&server).await;
    let events = client(&server).agent_events(EventScope::Directory("/home/dev/ws2".into()));
    let seen = until_reconnected(events).await;
    let retries: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            AgentEvent::SessionStatus {
                activity: SessionActivity::Retry { attempt, message },
                ..
            } => Some((*attempt, message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(retries, [(1, "fake error 429"), (2, "fake error 429"), (3, "fake error 429")]);
    assert_eq!(seen.last(), Some(&idle("ses_dec8454baffe8fnA4j8vlin4Le")));
}

#[tokio::test]
async fn the_global_stream_is_unwrapped_and_its_sync_copies_skipped() {
    let server = MockServer::start().await;
    Mock::given(path("/global/event"))
        .respond_with(sse("global_event_stream_prompt_async.sse"))
        .mount(&server)
        .await;
    let client = client(&server);
    let items = until(&mut client.subscribe(EventScope::Global), &StreamItem::Reconnected).await;

    let raw = fixture("global_event_stream_prompt_async.sse");
    let data_lines = raw.lines().filter(|l| l.starts_with("data:")).count();
    let sync_lines = raw.lines().filter(|l| l.contains(r#""payload":{"type":"sync""#)).count();
    assert!(sync_lines > 0, "the capture has sync copies");
    assert_eq!(items.len(), data_lines - sync_lines);
    let events: Vec<_> = items
        .iter()
        .map(|item| match item {
            StreamItem::Event(event) => event,
            StreamItem::Reconnected => panic!("cut at the first reconnect"),
        })
        .collect();
    assert_eq!(events[0].kind, "server.connected");
    assert!(events.iter().all(|e| e.kind != "sync"));
    // Heartbeats and `server.connected` have no instance; everything about a session does.
    let about_sessions: Vec<_> = events.iter().filter(|e| e.session_id.is_some()).collect();
    assert!(!about_sessions.is_empty());
    assert!(about_sessions.iter().all(|e| e.directory.as_deref() == Some("/home/dev/project")));
    let deltas = events.iter().filter(|e| e.kind == "message.part.delta").count();
    assert!(deltas > 0, "pass-through events are kept for the dashboard");

    // The trait's stream is the global one, reduced to what the harness uses.
    let agent = until_reconnected(AgentServer::events(&client).expect("OpenCode has events")).await;
    let idles: Vec<_> =
        agent.iter().filter(|e| matches!(e, AgentEvent::SessionIdle { .. })).collect();
    assert_eq!(
        idles,
        [&idle("ses_dec884f12ffe5xSUmHCqm7mFZP"), &idle("ses_dec8810e9ffeF2SzZTOZAGJlmD")]
    );
}

#[tokio::test]
async fn failed_connections_are_retried_and_announced_as_reconnects() {
    let server = MockServer::start().await;
    Mock::given(path("/event"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    // An old server (or the wrong one) answers with the web UI: not a stream.
    Mock::given(path("/event")).respond_with(html_page()).up_to_n_times(1).mount(&server).await;
    Mock::given(path("/event"))
        .respond_with(sse("event_stream_prompt_async.sse"))
        .mount(&server)
        .await;
    let mut stream =
        client(&server).agent_events(EventScope::Directory("/home/dev/project".into()));

    let first_item =
        tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("in time");
    assert_eq!(first_item, Some(AgentEvent::Reconnected), "first attempts failed");
    let first = until(&mut stream, &AgentEvent::Reconnected).await;
    assert_eq!(first.iter().filter(|e| matches!(e, AgentEvent::SessionIdle { .. })).count(), 2);
    // The body ended, so the client reconnected, said so, and reads the stream again.
    let second = until(&mut stream, &AgentEvent::Reconnected).await;
    assert_eq!(first, second);
    assert!(server.received_requests().await.expect("recorded").len() >= 4);
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// A client of a [`raw_server`] at `uri`, with the test settings.
async fn raw_client(uri: String, change: impl FnOnce(&mut Settings)) -> OpencodeClient {
    let mock = MockServer::start().await; // only for settings' shape
    let mut settings = settings(&mock);
    settings.base_url = uri;
    change(&mut settings);
    OpencodeClient::new(settings).expect("valid")
}

/// wiremock cannot keep a response open, so a raw socket plays a server that sends
/// one event and then goes silent.
#[tokio::test]
async fn a_silent_stream_is_reopened() {
    const EVENT: &[u8] =
        b"data: {\"id\":\"evt_1\",\"type\":\"session.idle\",\"properties\":{\"sessionID\":\"ses_1\"}}\n\n";
    let (uri, server) = raw_server(SSE_HEAD, EVENT, EVENT.len(), AfterBody::HoldOpen).await;
    let client = raw_client(uri, |s| s.event_idle_timeout = Duration::from_millis(300)).await;
    let mut stream = client.agent_events(EventScope::Global);
    assert_eq!(until(&mut stream, &AgentEvent::Reconnected).await, [idle("ses_1")]);
    let after = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("in time");
    assert_eq!(after, Some(idle("ses_1")), "the reopened stream is read");
    server.abort();
}

/// OpenCode greets every new stream with `server.connected`, so that greeting does
/// not prove the connection works: a server that drops every stream right after it
/// (crash loop, proxy) must see the backoff grow, not a reconnect every
/// `event_reconnect_initial` — each `Reconnected` makes the harness re-check every task.
#[tokio::test]
async fn streams_that_drop_right_after_the_greeting_back_off() {
    const GREETING: &[u8] =
        b"data: {\"id\":\"evt_1\",\"type\":\"server.connected\",\"properties\":{}}\n\n";
    let (uri, server) = raw_server(SSE_HEAD, GREETING, GREETING.len(), AfterBody::Close).await;
    let client = raw_client(uri, |s| {
        s.event_reconnect_initial = Duration::from_millis(20);
        s.event_reconnect_max = Duration::from_millis(160);
    })
    .await;
    let mut stream = client.subscribe(EventScope::Global);
    let mut reconnects = 0;
    let window = tokio::time::sleep(Duration::from_millis(1500));
    tokio::pin!(window);
    loop {
        tokio::select! {
            () = &mut window => break,
            item = stream.next() => {
                if item == Some(StreamItem::Reconnected) {
                    reconnects += 1;
                }
            }
        }
    }
    // Backing off: waits of 20, 40, 80, then 160 ms, so about 11 in 1.5 s.
    // Without it, a reconnect every 20 ms or so: over 40.
    assert!((3..=16).contains(&reconnects), "{reconnects} reconnects in 1.5 s");
    server.abort();
}

/// A stream that keeps sending bytes but never ends an event is neither silent nor
/// closed; buffering it would grow without bound. It is dropped and reopened.
#[tokio::test]
async fn an_event_that_never_ends_is_dropped_not_buffered() {
    // One endless line: `xxxx…` with no line end at all.
    const NO_LINE_END: &[u8] = &[b'x'; 64 * 1024];
    // Bounded, so a client without a limit ends up silent rather than out of memory.
    let (uri, server) = raw_server(SSE_HEAD, NO_LINE_END, 24 << 20, AfterBody::HoldOpen).await;
    let client = raw_client(uri, |s| s.event_idle_timeout = Duration::from_secs(60)).await;
    let mut stream = client.subscribe(EventScope::Global);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream is cut long before the idle timeout");
    assert_eq!(first, Some(StreamItem::Reconnected));
    server.abort();
}

#[tokio::test]
async fn questions_and_permissions_asked_or_answered_wake_the_harness() {
    let server = MockServer::start().await;
    for (directory, capture) in
        [("/q", "event_stream_question.sse"), ("/p", "event_stream_permission.sse")]
    {
        Mock::given(path("/event"))
            .and(query_param("directory", directory))
            .respond_with(sse(capture))
            .mount(&server)
            .await;
    }
    let changed = |events: &[AgentEvent]| {
        events.iter().filter(|e| matches!(e, AgentEvent::RequestChanged { .. })).count()
    };
    let question = client(&server).agent_events(EventScope::Directory("/q".into()));
    // Two questions asked, one answered, one dismissed.
    assert_eq!(changed(&until_reconnected(question).await), 4);
    let permission = client(&server).agent_events(EventScope::Directory("/p".into()));
    // Three permissions asked and answered, and a question asked (the capture's
    // agent went on to ask one).
    assert_eq!(changed(&until_reconnected(permission).await), 7);
}
