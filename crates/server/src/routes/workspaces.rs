//! Recent workspaces, the folder browser, and the folder picker a server cannot have.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use openloom_core::{RecentWorkspace, WorkspacePolicy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::extract::ApiQuery;
use crate::routes::tasks::expand_home;
use crate::state::AppState;

/// Most folders listed by `/api/browse`.
pub const BROWSE_LIMIT: usize = 200;

/// Recent workspaces, newest first.
pub async fn recent(State(state): State<AppState>) -> Result<Json<Value>> {
    let recent = state.recent().recent_workspaces().await?;
    let paths: Vec<&str> = recent.iter().map(|w| w.path.as_str()).collect();
    Ok(Json(json!({ "workspaces": paths, "entries": recent })))
}

/// Which workspace to forget, in the query or the JSON body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathParam {
    path: Option<String>,
}

/// Forgets a recent workspace.
pub async fn forget(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PathParam>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<Value>> {
    let body = body.map_err(|r| Error::Rejected { status: r.status(), detail: r.body_text() })?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        PathParam::default()
    } else {
        serde_json::from_slice::<PathParam>(&body)
            .map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))?
    };
    let path = query.path.or(from_body.path).filter(|p| !p.trim().is_empty()).ok_or_else(|| {
        Error::BadRequest("path is required (query `?path=` or body `{\"path\": ...}`)".into())
    })?;
    let mut removed = state.recent().remove_workspace(&path).await?;
    // Recorded paths are canonical; accept the path as the user typed it too.
    if !removed {
        if let Ok(canonical) = expand_home(&path).canonicalize() {
            removed = state.recent().remove_workspace(&canonical.to_string_lossy()).await?;
        }
    }
    Ok(Json(json!({ "ok": true, "removed": removed, "path": path })))
}

/// Lists the folders inside `path` (symlinks and `..` resolved first; nothing outside
/// the allowed roots is shown or listed). Without a path: the newest recent workspace
/// still allowed, else the first allowed root, else the home directory.
pub async fn browse(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PathParam>,
) -> Result<Json<Value>> {
    let asked = query.path.filter(|p| !p.trim().is_empty()).map(|p| expand_home(p.trim()));
    let recent = match asked {
        Some(_) => Vec::new(),
        None => state.recent().recent_workspaces().await.unwrap_or_default(),
    };
    let policy = state.harness().workspaces().clone();
    // Every step touches the file system (canonicalize, stat, read_dir): off the
    // async threads.
    let listing = tokio::task::spawn_blocking(move || {
        let folder = asked.unwrap_or_else(|| default_folder(&policy, &recent));
        listing(&policy, &folder)
    })
    .await
    .map_err(|e| Error::Internal(format!("browse task failed: {e}")))??;
    Ok(Json(listing))
}

fn default_folder(policy: &WorkspacePolicy, recent: &[RecentWorkspace]) -> PathBuf {
    if let Some(workspace) = recent.iter().find(|w| policy.allows(&w.path)) {
        return PathBuf::from(&workspace.path);
    }
    match policy.roots().first() {
        Some(root) => root.clone(),
        None => expand_home("~"),
    }
}

fn listing(policy: &WorkspacePolicy, asked: &Path) -> Result<Value> {
    // Every refusal is the same answer, naming only the path as asked: saying which
    // paths exist, or where a symlink leads, would map the file system outside the
    // roots for anyone who can call the API.
    let refused = || {
        Error::Forbidden(format!(
            "{} is not a folder this server may list: it must be an existing, readable \
             directory inside the allowed workspace roots",
            asked.display()
        ))
    };
    let folder = asked.canonicalize().map_err(|_| refused())?;
    if !folder.is_dir() || !allowed(policy, &folder) {
        return Err(refused());
    }
    let children = list_folders(policy, &folder).map_err(|error| {
        tracing::debug!(folder = %folder.display(), %error, "cannot list a folder");
        refused()
    })?;
    let parent =
        folder.parent().filter(|p| allowed(policy, p)).map(|p| p.to_string_lossy().into_owned());
    Ok(json!({ "path": folder.to_string_lossy(), "parent": parent, "children": children }))
}

fn allowed(policy: &WorkspacePolicy, path: &Path) -> bool {
    policy.allows(&path.to_string_lossy())
}

fn list_folders(policy: &WorkspacePolicy, folder: &Path) -> std::io::Result<Vec<Value>> {
    let entries = std::fs::read_dir(folder)?;
    let mut children: Vec<(String, PathBuf)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // A symlink is listed only if where it leads is allowed too.
            (!name.starts_with('.') && path.is_dir() && allowed(policy, &path))
                .then_some((name, path))
        })
        .collect();
    children.sort_by_key(|(name, _)| name.to_lowercase());
    children.truncate(BROWSE_LIMIT);
    Ok(children
        .into_iter()
        .map(|(name, path)| json!({ "name": name, "path": path.to_string_lossy() }))
        .collect())
}

/// A server has no native folder picker: the reference's "unsupported" answer.
pub async fn pick_folder() -> Json<Value> {
    Json(json!({ "ok": false, "unsupported": true }))
}
