//! OpenCode's event stream (`GET /event`, `GET /global/event`) as a typed stream
//! that reconnects by itself.
//!
//! The wire format is plain SSE with only `data:` lines; the event type is inside
//! the JSON (`{"id","type","properties"}`). `/global/event` wraps each event as
//! `{"directory","project","payload":{…}}` and sends every stored change a second
//! time as `payload.type == "sync"`, which is skipped here.
//!
//! OpenCode replays nothing on reconnect, so after every reconnect the stream yields
//! [`StreamItem::Reconnected`]; consumers should then re-read state (statuses,
//! messages) instead of trusting that they saw everything.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;
use openloom_core::AgentEvent;
use reqwest::{Method, StatusCode, header};
use serde_json::Value;

use crate::client::OpencodeClient;
use crate::settings::Settings;
use crate::{sse, wire};

/// Which events to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventScope {
    /// Every directory instance at once (`GET /global/event`).
    Global,
    /// One directory instance (`GET /event?directory=…`). Events of sessions in
    /// other directories are not on this stream.
    Directory(String),
}

/// One event from OpenCode, with the fields every event shares pulled out.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    /// The event type, e.g. `session.idle`, `message.part.delta`.
    pub kind: String,
    /// The directory instance it came from (global stream only).
    pub directory: Option<String>,
    /// `properties.sessionID`, when the event is about a session.
    pub session_id: Option<String>,
    /// The event's `properties`, untouched.
    pub properties: Value,
}

impl ServerEvent {
    /// Reads one SSE `data:` payload, bare or wrapped by `/global/event`. `None`
    /// for malformed data and for the global stream's duplicate `sync` events.
    pub fn parse(data: &str) -> Option<ServerEvent> {
        let value: Value = serde_json::from_str(data).ok()?;
        let directory = value.get("directory").and_then(Value::as_str).map(str::to_owned);
        let event = value.get("payload").filter(|p| p.is_object()).unwrap_or(&value);
        let kind = event.get("type").and_then(Value::as_str)?.to_owned();
        if kind == "sync" {
            return None;
        }
        let properties = event.get("properties").cloned().unwrap_or(Value::Null);
        let session_id = ["sessionID", "sessionId"]
            .iter()
            .find_map(|k| properties.get(*k).and_then(Value::as_str))
            .map(str::to_owned);
        Some(ServerEvent { kind, directory, session_id, properties })
    }

    /// The harness's view of this event, for the types it reacts to
    /// (`session.idle`, `session.status`, and a permission or question asked or
    /// answered).
    ///
    /// `session.idle` often arrives twice for one idle period (always after an
    /// abort), and `session.status busy` several times per turn; nothing is
    /// de-duplicated here, so handlers must be idempotent.
    pub fn to_agent_event(&self) -> Option<AgentEvent> {
        let session_id = self.session_id.clone()?;
        match self.kind.as_str() {
            "session.idle" => Some(AgentEvent::SessionIdle { session_id }),
            "session.status" => {
                let activity = wire::activity(self.properties.get("status")?)?;
                Some(AgentEvent::SessionStatus { session_id, activity })
            }
            "permission.asked" | "permission.replied" | "question.asked" | "question.replied"
            | "question.rejected" => Some(AgentEvent::RequestChanged { session_id }),
            _ => None,
        }
    }
}

/// What the subscription yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// An event from the server.
    Event(ServerEvent),
    /// The connection was re-established after a drop or a failed attempt; events
    /// in between are lost.
    Reconnected,
}

impl OpencodeClient {
    /// Subscribes to OpenCode's events. The stream never ends on its own: when the
    /// connection fails, drops, or stays silent for `event_idle_timeout`, it
    /// reconnects with exponential backoff (`event_reconnect_initial` doubling up to
    /// `event_reconnect_max`, starting over only after a connection that lasted
    /// `event_reconnect_max`) and yields [`StreamItem::Reconnected`]. Drop it to stop.
    pub fn subscribe(&self, scope: EventScope) -> BoxStream<'static, StreamItem> {
        let client = self.clone();
        let stream = async_stream::stream! {
            let settings = client.inner.settings.clone();
            let mut delay = settings.event_reconnect_initial;
            let mut first_attempt = true;
            loop {
                let mut open_for = None;
                match client.open_event_stream(&scope).await {
                    Ok(response) => {
                        let opened = Instant::now();
                        if !first_attempt {
                            yield StreamItem::Reconnected;
                        }
                        tracing::debug!(?scope, "event stream connected");
                        let mut events = std::pin::pin!(sse::data_events(response.bytes_stream(), sse::MAX_EVENT_BYTES));
                        loop {
                            match tokio::time::timeout(settings.event_idle_timeout, events.next()).await {
                                Ok(Some(Ok(data))) => {
                                    match ServerEvent::parse(&data) {
                                        Some(parsed) => yield StreamItem::Event(parsed),
                                        // Sync copies repeat whole sessions and messages (prompts,
                                        // file contents): their size is enough for a log.
                                        None => tracing::trace!(bytes = data.len(), "skipped event"),
                                    }
                                }
                                Ok(Some(Err(err))) => {
                                    tracing::warn!(error = %err, "event stream broke");
                                    break;
                                }
                                Ok(None) => {
                                    tracing::info!("event stream closed by the server");
                                    break;
                                }
                                Err(_) => {
                                    tracing::warn!(idle = ?settings.event_idle_timeout, "event stream silent; reconnecting");
                                    break;
                                }
                            }
                        }
                        open_for = Some(opened.elapsed());
                    }
                    Err(reason) => tracing::warn!(%reason, retry_in = ?delay, "cannot open the event stream"),
                }
                first_attempt = false;
                let wait = wait_before_retry(delay, open_for, &settings);
                tokio::time::sleep(wait).await;
                delay = next_delay(wait, settings.event_reconnect_max);
            }
        };
        stream.boxed()
    }

    /// [`OpencodeClient::subscribe`], reduced to the events the harness reacts to.
    pub fn agent_events(&self, scope: EventScope) -> BoxStream<'static, AgentEvent> {
        self.subscribe(scope)
            .filter_map(|item| async move {
                match item {
                    StreamItem::Reconnected => Some(AgentEvent::Reconnected),
                    StreamItem::Event(event) => event.to_agent_event(),
                }
            })
            .boxed()
    }

    /// Opens the SSE connection; the error is a reason for the log.
    async fn open_event_stream(&self, scope: &EventScope) -> Result<reqwest::Response, String> {
        let transport = &self.inner.transport;
        let builder = match scope {
            EventScope::Global => transport.builder(Method::GET, &["global", "event"]),
            EventScope::Directory(directory) => {
                transport.builder(Method::GET, &["event"]).query(&[("directory", directory)])
            }
        }
        .header(header::ACCEPT, "text/event-stream");
        // Only the handshake is bounded; the body may stream for hours.
        let response = tokio::time::timeout(self.inner.settings.request_timeout, builder.send())
            .await
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|err| err.without_url().to_string())?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err("OpenCode refused the credentials (HTTP 401)".to_owned());
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type.contains("text/event-stream") {
            return Err(format!("answered {content_type:?} instead of an event stream"));
        }
        Ok(response)
    }
}

/// The wait before the next attempt, given the current backoff and how long the
/// last connection stayed open (`None`: it did not open).
///
/// Only a connection that stayed open for `event_reconnect_max` counts as working
/// and starts the backoff over. Any event would be too weak a proof: OpenCode greets
/// every stream with `server.connected`, so a server that drops streams right after
/// opening them (crash loop, proxy) would be reconnected to every
/// `event_reconnect_initial`. This way reconnects, and the re-reads each
/// [`StreamItem::Reconnected`] causes, come at most about once per
/// `event_reconnect_max`, whatever the server does.
fn wait_before_retry(delay: Duration, open_for: Option<Duration>, settings: &Settings) -> Duration {
    match open_for {
        Some(open_for) if open_for >= settings.event_reconnect_max => {
            settings.event_reconnect_initial
        }
        _ => delay,
    }
}

fn next_delay(delay: Duration, max: Duration) -> Duration {
    delay.saturating_mul(2).min(max)
}

#[cfg(test)]
mod tests {
    use openloom_core::SessionActivity;

    use super::*;

    #[test]
    fn reads_bare_and_wrapped_events_and_skips_sync() {
        let bare = r#"{"id":"evt_1","type":"session.idle","properties":{"sessionID":"ses_1"}}"#;
        let event = ServerEvent::parse(bare).expect("valid");
        assert_eq!(
            event.to_agent_event(),
            Some(AgentEvent::SessionIdle { session_id: "ses_1".into() })
        );
        let wrapped = r#"{"directory":"/w","project":"global","payload":{"type":"session.status","properties":{"sessionID":"ses_1","status":{"type":"busy"}}}}"#;
        let event = ServerEvent::parse(wrapped).expect("valid");
        assert_eq!(event.directory.as_deref(), Some("/w"));
        assert_eq!(
            event.to_agent_event(),
            Some(AgentEvent::SessionStatus {
                session_id: "ses_1".into(),
                activity: SessionActivity::Busy
            })
        );
        let sync = r#"{"directory":"/w","payload":{"type":"sync","syncEvent":{"type":"session.updated.1"}}}"#;
        assert_eq!(ServerEvent::parse(sync), None);
        assert_eq!(ServerEvent::parse("not json"), None);
    }

    #[test]
    fn only_a_lasting_connection_starts_the_backoff_over() {
        let settings = Settings::new("http://127.0.0.1:4096");
        let (initial, max) = (settings.event_reconnect_initial, settings.event_reconnect_max);
        let backed_off = Duration::from_secs(8);
        assert_eq!(wait_before_retry(backed_off, None, &settings), backed_off);
        let greeted_then_dropped = Some(Duration::from_millis(5));
        assert_eq!(wait_before_retry(backed_off, greeted_then_dropped, &settings), backed_off);
        assert_eq!(wait_before_retry(backed_off, Some(max), &settings), initial);
        assert_eq!(wait_before_retry(backed_off, Some(max * 100), &settings), initial);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(3);
        assert_eq!(next_delay(Duration::from_secs(1), max), Duration::from_secs(2));
        assert_eq!(next_delay(Duration::from_secs(2), max), max);
    }
}
