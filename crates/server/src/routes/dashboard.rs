//! `GET /api/state`: the dashboard's composite state, a port of the reference's
//! `full_state`. Everything about OpenCode comes from the monitor's snapshot; only
//! the (local) store is read per request.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::IntoResponse;
use chrono::Utc;
use openloom_core::{Health, SessionActivity, TaskQuery, TaskStatus};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::state::AppState;

fn activity_name(activity: &SessionActivity) -> &'static str {
    match activity {
        SessionActivity::Idle => "idle",
        SessionActivity::Busy => "busy",
        SessionActivity::Retry { .. } => "retry",
    }
}

/// `base_url` without any `user:password@` part: OpenCode's password never leaves
/// the server, not even when it was written into the URL.
pub fn without_credentials(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `ok`, `message` and `version` of an OpenCode server's health as last seen.
fn health_fields(health: Option<&Health>) -> (bool, String, Option<String>) {
    match health {
        Some(Health::Reachable { version }) => {
            (true, "OpenCode is reachable".to_owned(), version.clone())
        }
        Some(Health::Unreachable { reason } | Health::Unauthorized { reason }) => {
            (false, reason.clone(), None)
        }
        None => (false, "not checked yet".to_owned(), None),
    }
}

/// The composite state.
pub async fn state(State(state): State<AppState>) -> Result<axum::response::Response> {
    let snapshot = state.snapshot();
    let version = state.store().store_version().await?;
    // The first page, as `GET /api/tasks` gives it; older pages come from there.
    let limit = crate::routes::tasks::DEFAULT_PAGE;
    let (tasks, next) =
        crate::routes::tasks::task_page(&state, TaskQuery::newest(limit), version).await?;
    let counts = state.store().count_by_status().await?;
    let recent = state.recent().recent_workspaces().await?;
    let workers =
        state.store().live_workers(Utc::now() - openloom_core::worker::LIVE_WITHIN).await?;

    // Every OpenCode server of this worker, the first (whose health `server` shows)
    // first. The password is never part of this answer; the URL's credentials were
    // moved out of it into the settings' username/password when the client was built.
    let servers: Vec<Value> = state
        .connections()
        .iter()
        .zip(state.monitors())
        .map(|(connection, monitor)| {
            let settings = connection.client.settings();
            let (ok, message, version) = health_fields(monitor.snapshot().health.as_ref());
            json!({
                "name": connection.harness.opencode(),
                "ok": ok,
                "message": message,
                "version": version,
                "url": without_credentials(&settings.base_url),
                "username": settings.username,
            })
        })
        .collect();

    let statuses: HashMap<&str, &str> =
        snapshot.statuses.iter().map(|(id, a)| (id.as_str(), activity_name(a))).collect();
    let (mut sessions_busy, mut sessions_retry, mut sessions_idle) = (0, 0, 0);
    for activity in snapshot.statuses.values() {
        match activity {
            SessionActivity::Busy => sessions_busy += 1,
            SessionActivity::Retry { .. } => sessions_retry += 1,
            SessionActivity::Idle => sessions_idle += 1,
        }
    }
    let count = |s: TaskStatus| counts.get(&s).copied().unwrap_or(0);
    let by_status: HashMap<&str, u64> =
        TaskStatus::ALL.iter().map(|s| (s.as_str(), count(*s))).collect();
    let archived: Vec<Value> = snapshot
        .archived_sessions()
        .into_iter()
        .map(|s| json!({ "id": s.id, "title": s.title, "directory": s.directory, "archived_at": s.archived_at }))
        .collect();

    let rest = json!({
        "server": servers.first().map(|first| {
            let mut first = first.clone();
            if let Some(fields) = first.as_object_mut() {
                fields.remove("name");
            }
            first
        }),
        "servers": servers,
        "recentWorkspaces": recent.iter().map(|w| w.path.as_str()).collect::<Vec<_>>(),
        "workers": workers,
        "nextCursor": next,
        "store_version": version,
        "sessions": snapshot.visible_sessions(),
        "sessionsByDirectory": snapshot.by_directory(),
        "archivedSessions": archived,
        "sessionStatus": statuses,
        "sessionError": snapshot.error,
        "metrics": {
            "running": count(TaskStatus::Running) + count(TaskStatus::Pending),
            "waiting": count(TaskStatus::Waiting),
            "failed": count(TaskStatus::Failed),
            "completed": count(TaskStatus::Completed) + count(TaskStatus::Archived),
            "byStatus": by_status,
            "sessionsBusy": sessions_busy,
            "sessionsIdle": sessions_idle,
            "sessionsRetry": sessions_retry,
        },
        "usage": snapshot.usage,
        "monitorRefreshedAt": snapshot.refreshed_at,
        "now": Utc::now(),
    });
    // The task page comes encoded (and usually cached, [`crate::pages`]): it is
    // spliced in as it is rather than parsed into the answer and encoded again.
    let body = serde_json::to_vec(&StateAnswer { tasks: &tasks, rest })
        .map_err(|error| Error::Internal(format!("could not encode the state: {error}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/state`'s answer: the encoded task page beside the other fields.
#[derive(Serialize)]
struct StateAnswer<'a> {
    tasks: &'a RawValue,
    #[serde(flatten)]
    rest: Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(without_credentials("http://u:pw@127.0.0.1:4096/x"), "http://127.0.0.1:4096/x");
        assert_eq!(without_credentials("http://:p@w@h:1"), "http://h:1");
        assert_eq!(without_credentials("http://h:1/a@b"), "http://h:1/a@b");
        assert_eq!(without_credentials("nonsense"), "nonsense");
    }
}
