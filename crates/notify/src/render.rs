//! The exact bytes and headers of one attempt of a delivery (pure).
//!
//! The signature covers the raw body, and the body carries `sentAt` (the same Unix
//! time as `X-OpenLoom-Timestamp`), so the time a receiver checks against its window
//! is signed too: a captured request replayed later fails the window, and changing
//! the header alone fails the comparison with the body.

use chrono::{DateTime, Utc};
use openloom_core::outbox::Delivery;
use openloom_core::{NoticeEvent, RequestKind, signature};
use serde_json::json;

use crate::hook::Format;

/// The header naming the event, e.g. `task.completed`.
pub const EVENT_HEADER: &str = "X-OpenLoom-Event";
/// The header carrying the delivery id: the same on every attempt; dedupe by it.
pub const DELIVERY_HEADER: &str = "X-OpenLoom-Delivery";
/// The header carrying the attempt's Unix time in seconds (also `sentAt` in the body).
pub const TIMESTAMP_HEADER: &str = "X-OpenLoom-Timestamp";
/// The header carrying `sha256=<hex of HMAC-SHA256(secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "X-OpenLoom-Signature-256";

/// One attempt, ready to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The raw body, exactly as signed.
    pub body: Vec<u8>,
    /// The headers, `Content-Type` included.
    pub headers: Vec<(&'static str, String)>,
}

/// The body and headers of an attempt of `delivery` sent at `sent_at`.
pub fn render(
    delivery: &Delivery,
    format: Format,
    secret: &[u8],
    sent_at: DateTime<Utc>,
) -> Rendered {
    let notice = &delivery.notice;
    let value = match format {
        Format::Json => json!({
            "event": notice.event,
            "deliveryId": delivery.id,
            "at": notice.at,
            "sentAt": sent_at.timestamp(),
            "task": notice.task,
        }),
        Format::Slack => json!({ "text": slack_text(delivery) }),
    };
    // A `Value` built from strings and numbers always serializes.
    let body = serde_json::to_vec(&value).unwrap_or_default();
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("User-Agent", concat!("openloom/", env!("CARGO_PKG_VERSION")).to_owned()),
        (EVENT_HEADER, notice.event.as_str().to_owned()),
        (DELIVERY_HEADER, delivery.id.clone()),
        (TIMESTAMP_HEADER, sent_at.timestamp().to_string()),
        (SIGNATURE_HEADER, signature::sign(secret, &body)),
    ];
    Rendered { body, headers }
}

/// One message a person reads in a chat channel.
fn slack_text(delivery: &Delivery) -> String {
    let task = &delivery.notice.task;
    let (mark, what) = match delivery.notice.event {
        NoticeEvent::Created => ("🆕", "was created"),
        NoticeEvent::Started => ("▶️", "started"),
        NoticeEvent::Waiting => ("✋", "waits for you"),
        NoticeEvent::Completed => ("✅", "completed"),
        NoticeEvent::Failed => ("❌", "failed"),
        NoticeEvent::Stalled => ("⏸️", "stalled"),
    };
    let mut text = format!("{mark} OpenLoom task *{}* ({}) {what}", task.name, task.id);
    if let Some(summary) = task.summary.as_deref().filter(|s| !s.is_empty()) {
        text.push_str(&format!(": {summary}"));
    }
    for request in &task.pending_requests {
        let asked = match &request.kind {
            RequestKind::Permission { permission, patterns } => {
                format!("permission `{permission}` for {}", patterns.join(", "))
            }
            RequestKind::Question { questions } => {
                let texts: Vec<&str> = questions.iter().map(|q| q.question.as_str()).collect();
                format!("question: {}", texts.join(" / "))
            }
        };
        text.push_str(&format!("\n• asks {asked} — `openloom answer {}`", task.id));
    }
    text.push_str(&format!("\nworkspace: {}", task.workspace));
    text
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use openloom_core::outbox::{Hook, notices, route};
    use openloom_core::{PendingRequest, Task, TaskId, TaskSpec, TaskStatus};

    use super::*;

    fn delivery(status: TaskStatus) -> Delivery {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single().expect("date");
        let before = Task::new(TaskId::from("task_r"), TaskSpec::new("Fix the bug", "/w", "g"), at);
        let mut after = before.clone();
        after.status = status;
        after.last_summary = Some("All 2 steps done".into());
        after.pending_requests = vec![PendingRequest {
            id: "per_1".into(),
            session_id: "ses".into(),
            kind: RequestKind::Permission {
                permission: "bash".into(),
                patterns: vec!["rm x".into()],
            },
            asked_at: None,
        }];
        let told = notices(Some(&before), &after, at);
        route(&told, &[Hook::new("http://h/", vec![])]).pop().expect("a delivery")
    }

    #[test]
    fn the_json_body_is_signed_and_carries_its_send_time() {
        let d = delivery(TaskStatus::Completed);
        let sent = Utc.with_ymd_and_hms(2026, 1, 2, 3, 5, 0).single().expect("date");
        let out = render(&d, Format::Json, b"k", sent);
        let body: serde_json::Value = serde_json::from_slice(&out.body).expect("json");
        assert_eq!(body["event"], "task.completed");
        assert_eq!(body["deliveryId"], d.id.as_str());
        assert_eq!(body["at"], "2026-01-02T03:04:05Z");
        assert_eq!(body["sentAt"], sent.timestamp());
        assert_eq!(body["task"]["name"], "Fix the bug");
        assert_eq!(body["task"]["status"], "completed");
        assert_eq!(body["task"]["pendingRequests"][0]["permission"], "bash");
        let header = |name: &str| {
            out.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).expect(name)
        };
        assert_eq!(header(DELIVERY_HEADER), d.id);
        assert_eq!(header(EVENT_HEADER), "task.completed");
        assert_eq!(header(TIMESTAMP_HEADER), sent.timestamp().to_string());
        assert!(signature::verify(b"k", &out.body, &header(SIGNATURE_HEADER)));
        assert!(!signature::verify(b"other", &out.body, &header(SIGNATURE_HEADER)));
        assert_eq!(render(&d, Format::Json, b"k", sent), out, "rendering is deterministic");
    }

    #[test]
    fn the_slack_body_is_one_readable_text() {
        let d = delivery(TaskStatus::Waiting);
        let out = render(&d, Format::Slack, b"k", Utc::now());
        let body: serde_json::Value = serde_json::from_slice(&out.body).expect("json");
        let text = body["text"].as_str().expect("text");
        assert!(
            text.starts_with("✋ OpenLoom task *Fix the bug* (task_r) waits for you"),
            "{text}"
        );
        assert!(text.contains("permission `bash` for rm x"), "{text}");
        assert!(text.contains("openloom answer task_r"), "{text}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "Slack wants only text");
    }
}
