//! `/api/sessions`: OpenCode sessions as the monitor sees them, their messages and
//! diffs, archiving and deleting. Ports the reference's `routes/sessions.py`.

use axum::Json;
use axum::extract::State;
use openloom_core::{Role, SessionRef};
use openloom_opencode::OpencodeClient;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::extract::{ApiPath, ApiQuery};
use crate::state::AppState;

/// Messages returned by `/api/sessions/{id}/messages` unless asked otherwise.
const DEFAULT_MESSAGES: usize = 50;
/// Most messages a client may ask for.
const MAX_MESSAGES: usize = 1000;

/// The session's reference and the client of the OpenCode server it is in: from the
/// monitors' snapshots, else asked of each server this worker is connected to in turn (session ids are unique across servers). Not found anywhere:
/// the first server's answer.
async fn session_ref<'a>(
    state: &'a AppState,
    id: &str,
) -> Result<(&'a OpencodeClient, SessionRef)> {
    for (monitor, connection) in state.monitors().iter().zip(state.connections()) {
        if let Some(session) = monitor.snapshot().find(id) {
            return Ok((&connection.client, session.as_ref()));
        }
    }
    let mut first_error = None;
    for connection in state.connections() {
        match connection.client.session(id).await {
            Ok(session) => return Ok((&connection.client, session.as_ref())),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Err(Error::NotFound { what: "session", id: id.to_owned() }),
    }
}

/// Sessions from the monitor: visible ones, grouped by directory, and statuses.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let snapshot = state.snapshot();
    Json(json!({
        "sessions": snapshot.visible_sessions(),
        "byDirectory": snapshot.by_directory(),
        "status": snapshot.statuses,
        "refreshedAt": snapshot.refreshed_at,
    }))
}

/// `GET /api/sessions/{id}/messages` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    limit: Option<usize>,
}

/// The newest messages of a session, oldest first.
pub async fn messages(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessagesQuery>,
) -> Result<Json<Value>> {
    let limit = query.limit.unwrap_or(DEFAULT_MESSAGES);
    if limit == 0 || limit > MAX_MESSAGES {
        return Err(Error::BadRequest(format!("limit must be between 1 and {MAX_MESSAGES}")));
    }
    let (client, session) = session_ref(&state, &id).await?;
    let messages = client.messages(&session, limit).await?;
    Ok(Json(json!({ "messages": messages })))
}

/// `GET /api/sessions/{id}/diff` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiffQuery {
    message_id: Option<String>,
}

/// The file diffs of one turn: `messageId`'s, else the newest user message's
/// (OpenCode answers an empty list without a message id).
pub async fn diff(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DiffQuery>,
) -> Result<Json<Value>> {
    let (client, session) = session_ref(&state, &id).await?;
    let message_id = match query.message_id.filter(|m| !m.is_empty()) {
        Some(id) => Some(id),
        None => {
            let messages = client.messages(&session, 20).await?;
            messages.into_iter().rev().find(|m| m.role == Role::User).map(|m| m.id)
        }
    };
    let diff = match &message_id {
        Some(message_id) => client.diff(&session, Some(message_id)).await?,
        None => Vec::new(),
    };
    Ok(Json(json!({ "diff": diff, "messageId": message_id })))
}

async fn set_archived(state: &AppState, id: &str, archived: bool) -> Result<Json<Value>> {
    let (client, session) = session_ref(state, id).await?;
    client.set_archived(&session, archived).await?;
    state.poke_monitors();
    Ok(Json(json!({ "ok": true, "sessionId": id, "archived": archived })))
}

/// Archives a session in OpenCode.
pub async fn archive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    set_archived(&state, &id, true).await
}

/// Un-archives a session in OpenCode.
pub async fn unarchive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    set_archived(&state, &id, false).await
}

/// Deletes a session (and its sub-agent sessions) in OpenCode.
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let (client, session) = session_ref(&state, &id).await?;
    client.delete_session(&session).await?;
    state.poke_monitors();
    Ok(Json(json!({ "ok": true, "sessionId": id, "deleted": true })))
}
