//! Tolerant reading of OpenCode's JSON into OpenLoom's types.
//!
//! OpenCode's shapes drift between versions (and the Python original met several), so
//! these readers work on [`serde_json::Value`] and accept every spelling we have seen:
//! ids under `id`/`sessionID`/`sessionId`, parent ids as `parentID`/`parentId`/
//! `parent_id`/`parent`, times in milliseconds or seconds (or RFC 3339 strings),
//! statuses as a string or an object, lists bare or wrapped in `{data: […]}`.
//! A reader returns `None` for an entry it cannot use instead of failing the whole list.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use openloom_core::{
    AgentMessage, MessageError, MessagePart, Role, Session, SessionActivity, TokenUsage, ToolState,
};
use serde_json::Value;

/// Epoch numbers above this are milliseconds; below, seconds. 1e12 ms is 2001, 1e12 s
/// is year 33658, so the two ranges cannot be confused for any real timestamp.
const MILLIS_THRESHOLD: f64 = 1e12;

/// A timestamp in epoch milliseconds, epoch seconds, or RFC 3339. Zero, negative
/// and unparseable values are `None` (OpenCode stores `archived: 0` after an un-archive).
pub fn timestamp(value: &Value) -> Option<DateTime<Utc>> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(n) => n,
            Err(_) => return DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.to_utc()),
        },
        _ => return None,
    };
    if !number.is_finite() || number <= 0.0 {
        return None;
    }
    let millis = if number > MILLIS_THRESHOLD { number } else { number * 1000.0 };
    // Truncation to whole milliseconds is intended; the cast saturates on overflow.
    DateTime::from_timestamp_millis(millis as i64)
}

/// First non-empty string under any of `keys`.
fn string_at<'a>(object: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .filter_map(|k| object.get(*k))
        .find_map(|v| v.as_str().filter(|s| !s.trim().is_empty()))
}

/// First usable timestamp under any of `keys`, looked up in `object` then in
/// `object.time`.
fn time_at(object: &Value, flat_keys: &[&str], time_key: &str) -> Option<DateTime<Utc>> {
    flat_keys
        .iter()
        .filter_map(|k| object.get(*k))
        .chain(object.get("time").and_then(|t| t.get(time_key)))
        .find_map(timestamp)
}

/// The list inside a response: a bare array, or an object wrapping it under one of
/// `keys` (e.g. `{"sessions": […]}` or `{"data": […]}`).
pub fn list<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Vec<Value>> {
    if let Value::Array(items) = value {
        return Some(items);
    }
    keys.iter().filter_map(|k| value.get(*k)).find_map(Value::as_array)
}

/// The parent session id under any spelling we have seen.
pub fn parent_id(session: &Value) -> Option<String> {
    string_at(session, &["parentID", "parentId", "parent_id", "parent"])
        .map(|s| s.trim().to_owned())
}

/// A session object. `None` without an id.
pub fn session(value: &Value) -> Option<Session> {
    let value = value.get("session").filter(|s| s.is_object()).unwrap_or(value);
    let id = string_at(value, &["id", "sessionID", "sessionId"])?.to_owned();
    let directory = string_at(value, &["directory", "cwd"]).unwrap_or_default().to_owned();
    let title = string_at(value, &["title", "slug"]).unwrap_or(&id).to_owned();
    Some(Session {
        parent_id: parent_id(value),
        created_at: time_at(value, &["createdAt", "created"], "created"),
        updated_at: time_at(value, &["updatedAt", "updated"], "updated"),
        archived_at: time_at(value, &["archivedAt", "archived"], "archived"),
        id,
        directory,
        title,
    })
}

/// The sessions of a list response, skipping entries without an id. `None` when
/// the response is not a list.
pub fn sessions(value: &Value) -> Option<Vec<Session>> {
    list(value, &["sessions", "data"]).map(|items| items.iter().filter_map(session).collect())
}

/// The activity a status value describes: `"busy"`, `{"type":"busy"}`,
/// `{"status":"retry","attempt":2,…}`, with the synonyms earlier versions used.
/// `None` when the value names no status at all.
pub fn activity(value: &Value) -> Option<SessionActivity> {
    let kind = match value {
        Value::String(s) => s.as_str(),
        Value::Object(_) => string_at(value, &["type", "status", "state"])?,
        _ => return None,
    };
    let kind = kind.trim().to_lowercase();
    Some(match kind.as_str() {
        "busy" | "running" | "streaming" | "working" => SessionActivity::Busy,
        "retry" | "waiting" | "permission" => SessionActivity::Retry {
            attempt: value
                .get("attempt")
                .and_then(Value::as_u64)
                .map_or(0, |a| a.min(u32::MAX.into()) as u32),
            message: value.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
        },
        "idle" | "available" | "complete" | "completed" | "stopped" | "aborted" => {
            SessionActivity::Idle
        }
        other => {
            // Like the Python original, an unknown status does not count as working.
            tracing::debug!(status = other, "unknown session status, treated as idle");
            SessionActivity::Idle
        }
    })
}

/// A `GET /session/status` map (bare or under `data`), idle entries dropped:
/// OpenCode leaves idle sessions out, so absent means idle and we keep it that way.
pub fn status_map(value: &Value) -> HashMap<String, SessionActivity> {
    let inner = value.get("data").filter(|d| d.is_object()).unwrap_or(value);
    let Some(object) = inner.as_object() else { return HashMap::new() };
    object
        .iter()
        .filter(|(id, _)| !id.is_empty())
        .filter_map(|(id, v)| activity(v).map(|a| (id.clone(), a)))
        .filter(|(_, a)| *a != SessionActivity::Idle)
        .collect()
}

/// Merges `from` into `into`: busy outranks retry outranks idle.
pub fn merge_status(
    into: &mut HashMap<String, SessionActivity>,
    from: HashMap<String, SessionActivity>,
) {
    for (id, activity) in from {
        match into.get(&id) {
            Some(known) if known.rank() >= activity.rank() => {}
            _ => {
                into.insert(id, activity);
            }
        }
    }
}

/// A message: OpenCode's `{info, parts}`, or a flat info object with `parts` beside it.
/// `None` without an id.
pub fn message(value: &Value) -> Option<AgentMessage> {
    let info = value.get("info").filter(|i| i.is_object()).unwrap_or(value);
    let id = string_at(info, &["id", "messageID", "messageId"])?.to_owned();
    let role = match string_at(info, &["role"]).map(str::to_lowercase).as_deref() {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => Role::Other(other.to_owned()),
        None => Role::Other("unknown".to_owned()),
    };
    let parts = value
        .get("parts")
        .or_else(|| info.get("parts"))
        .and_then(Value::as_array)
        .map(|parts| parts.iter().filter_map(part).collect())
        .unwrap_or_default();
    Some(AgentMessage {
        id,
        role,
        created_at: time_at(info, &["createdAt", "created"], "created"),
        completed_at: time_at(info, &["completedAt", "completed"], "completed"),
        error: info.get("error").and_then(message_error),
        parts,
        tokens: info.get("tokens").and_then(tokens),
        cost: info.get("cost").and_then(Value::as_f64),
        model: model_name(info),
    })
}

/// The messages of a list response, skipping entries without an id. `None` when
/// the response is not a list.
pub fn messages(value: &Value) -> Option<Vec<AgentMessage>> {
    list(value, &["messages", "data"]).map(|items| items.iter().filter_map(message).collect())
}

fn message_error(value: &Value) -> Option<MessageError> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(MessageError { name: "Error".to_owned(), message: s.clone() }),
        _ => {
            let name = string_at(value, &["name", "_tag", "type"]).unwrap_or("Error").to_owned();
            let message = value
                .get("data")
                .and_then(|d| d.get("message"))
                .or_else(|| value.get("message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            Some(MessageError { name, message })
        }
    }
}

fn part(value: &Value) -> Option<MessagePart> {
    let kind = string_at(value, &["type"])?;
    let text = || value.get("text").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some(match kind {
        "text" => MessagePart::Text { text: text() },
        "reasoning" => MessagePart::Reasoning { text: text() },
        "tool" => MessagePart::Tool {
            tool: string_at(value, &["tool", "name"]).unwrap_or("unknown").to_owned(),
            state: tool_state(value.get("state")),
        },
        other => MessagePart::Other { kind: other.to_owned() },
    })
}

fn tool_state(state: Option<&Value>) -> ToolState {
    let status = match state {
        Some(Value::String(s)) => s.as_str(),
        Some(object) => string_at(object, &["status", "type"]).unwrap_or("unknown"),
        None => "unknown",
    };
    match status.to_lowercase().as_str() {
        "pending" => ToolState::Pending,
        "running" => ToolState::Running,
        "completed" => ToolState::Completed,
        "error" => ToolState::Error,
        other => ToolState::Other(other.to_owned()),
    }
}

fn count(value: Option<&Value>) -> u64 {
    // Token counts are integers in practice but the schema says `number`.
    value
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)))
        .unwrap_or(0)
}

fn tokens(value: &Value) -> Option<TokenUsage> {
    if !value.is_object() {
        return None;
    }
    let cache = value.get("cache");
    Some(TokenUsage {
        input: count(value.get("input")),
        output: count(value.get("output")),
        reasoning: count(value.get("reasoning")),
        cache_read: count(cache.and_then(|c| c.get("read"))),
        cache_write: count(cache.and_then(|c| c.get("write"))),
    })
}

/// `provider/model`: flat `providerID`/`modelID` on assistant messages, nested
/// `model{providerID, modelID}` on user messages, `model{providerID, id}` on sessions.
fn model_name(info: &Value) -> Option<String> {
    let nested = info.get("model").filter(|m| m.is_object());
    let provider = string_at(info, &["providerID", "providerId"])
        .or_else(|| nested.and_then(|m| string_at(m, &["providerID", "providerId"])));
    let model = string_at(info, &["modelID", "modelId"])
        .or_else(|| nested.and_then(|m| string_at(m, &["modelID", "modelId", "id"])));
    match (provider, model) {
        (Some(p), Some(m)) => Some(format!("{p}/{m}")),
        (None, Some(m)) => Some(m.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timestamps_in_ms_s_and_rfc3339_agree() {
        let ms = timestamp(&json!(1795622940909_i64)).expect("ms");
        let s = timestamp(&json!(1795622940.909)).expect("s");
        let text = timestamp(&json!("2026-11-25T16:09:00.909Z")).expect("rfc3339");
        assert_eq!(ms, s);
        assert_eq!(ms, text);
        assert_eq!(timestamp(&json!(0)), None);
        assert_eq!(timestamp(&json!(null)), None);
        assert_eq!(timestamp(&json!("yesterday")), None);
    }

    #[test]
    fn sessions_accept_every_parent_spelling() {
        for key in ["parentID", "parentId", "parent_id", "parent"] {
            let s =
                session(&json!({"id": "ses_2", "directory": "/w", key: "ses_1"})).expect("has id");
            assert_eq!(s.parent_id.as_deref(), Some("ses_1"), "{key}");
        }
        let s = session(&json!({"sessionID": "ses_3", "cwd": "/w"})).expect("has id");
        assert_eq!(
            (s.id.as_str(), s.directory.as_str(), s.title.as_str()),
            ("ses_3", "/w", "ses_3")
        );
        assert!(session(&json!({"title": "no id"})).is_none());
    }

    #[test]
    fn archived_zero_means_not_archived() {
        let s =
            session(&json!({"id": "ses_1", "time": {"created": 1, "archived": 0}})).expect("id");
        assert_eq!(s.archived_at, None);
        let s =
            session(&json!({"id": "ses_1", "time": {"archived": 1795623000000_i64}})).expect("id");
        assert!(s.archived_at.is_some());
    }

    #[test]
    fn status_as_string_or_object() {
        assert_eq!(activity(&json!("busy")), Some(SessionActivity::Busy));
        assert_eq!(activity(&json!({"status": "Running"})), Some(SessionActivity::Busy));
        assert_eq!(
            activity(&json!({"type": "retry", "attempt": 3, "message": "429", "next": 1})),
            Some(SessionActivity::Retry { attempt: 3, message: "429".into() })
        );
        assert_eq!(activity(&json!({"state": "idle"})), Some(SessionActivity::Idle));
        assert_eq!(activity(&json!(42)), None);
    }

    #[test]
    fn merge_keeps_the_strongest_status() {
        let retry = SessionActivity::Retry { attempt: 1, message: String::new() };
        let mut merged = HashMap::from([
            ("a".to_owned(), retry.clone()),
            ("b".to_owned(), SessionActivity::Busy),
        ]);
        merge_status(
            &mut merged,
            HashMap::from([
                ("a".to_owned(), SessionActivity::Busy),
                ("b".to_owned(), retry.clone()),
                ("c".to_owned(), retry.clone()),
            ]),
        );
        assert_eq!(merged["a"], SessionActivity::Busy);
        assert_eq!(merged["b"], SessionActivity::Busy);
        assert_eq!(merged["c"], retry);
    }

    #[test]
    fn message_conversion_reads_tokens_model_and_error() {
        let m = message(&json!({
            "info": {"id": "msg_1", "role": "assistant", "time": {"created": 1795623230631_i64, "completed": 1795623230751_i64},
                     "providerID": "fake", "modelID": "fake-model", "cost": 0.5,
                     "tokens": {"input": 900, "output": 7, "reasoning": 5, "cache": {"read": 300, "write": 1}},
                     "error": {"name": "APIError", "data": {"message": "fake error 400"}}},
            "parts": [{"type": "reasoning", "text": "hm"}, {"type": "tool", "tool": "bash", "state": {"status": "running"}},
                      {"type": "step-finish"}, {"type": "text", "text": "ok"}]
        }))
        .expect("has id");
        assert_eq!(m.role, Role::Assistant);
        assert_eq!(m.model.as_deref(), Some("fake/fake-model"));
        assert_eq!(
            m.tokens,
            Some(TokenUsage {
                input: 900,
                output: 7,
                reasoning: 5,
                cache_read: 300,
                cache_write: 1
            })
        );
        assert_eq!(
            m.error,
            Some(MessageError { name: "APIError".into(), message: "fake error 400".into() })
        );
        assert_eq!(m.parts.len(), 4);
        assert_eq!(
            m.parts[1],
            MessagePart::Tool { tool: "bash".into(), state: ToolState::Running }
        );
        assert_eq!(m.parts[2], MessagePart::Other { kind: "step-finish".into() });
        assert_eq!(m.text(), "ok");
        assert!(m.completed_at > m.created_at);
    }

    #[test]
    fn user_messages_take_the_nested_model() {
        let m = message(&json!({"info": {"id": "msg_1", "role": "user", "model": {"providerID": "p", "modelID": "m"}}, "parts": []}))
            .expect("has id");
        assert_eq!(m.model.as_deref(), Some("p/m"));
        assert_eq!(m.completed_at, None);
    }

    #[test]
    fn wrapped_and_bare_lists() {
        let bare = json!([{"id": "ses_1"}, {"nope": 1}]);
        let wrapped = json!({"data": [{"id": "ses_1"}]});
        let named = json!({"sessions": [{"id": "ses_1"}]});
        for v in [bare, wrapped, named] {
            assert_eq!(sessions(&v).map(|s| s.len()), Some(1), "{v}");
        }
        assert_eq!(sessions(&json!("nonsense")), None);
        assert_eq!(messages(&json!({"messages": "nope"})), None);
    }
}
