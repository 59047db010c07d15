//! `/api/tasks`: list, read, create (from a prompt, a spec or a plan), plan, and the
//! user's operations. Shapes follow the reference's `server/app.py` and
//! `routes/tasks.py` (`ok`, `taskId`, `store_version`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::Utc;
use openloom_core::summary::clip;
use openloom_core::{LogQuery, StoreVersion, TaskId, TaskQuery, TaskSpec, TaskStatus, TaskSummary};
use openloom_prompts::{Plan, PromptOptions, SpecFormat};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pages::{Page, PageCache};
use crate::planner;
use crate::state::AppState;

/// Default page of tasks.
pub const DEFAULT_PAGE: usize = 50;
/// Largest page of tasks a client may ask for.
pub const MAX_PAGE: usize = 500;
/// Longest check interval a task may have (one year). Far larger ones overflow the
/// harness's date arithmetic when it schedules the next check.
pub const MAX_CHECK_INTERVAL_SECONDS: u64 = 365 * 24 * 3600;
/// Default page of a task's check log.
pub const DEFAULT_LOG_PAGE: usize = 100;
/// Largest page of a task's check log.
pub const MAX_LOG_PAGE: usize = 1000;

/// `GET /api/tasks` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    before: Option<String>,
    /// One status or several separated by commas.
    status: Option<String>,
}

fn parse_statuses(text: Option<&str>) -> Result<Vec<TaskStatus>> {
    let Some(text) = text else { return Ok(Vec::new()) };
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<TaskStatus>().map_err(Error::from))
        .collect()
}

/// A task as lists show it (pages, `/api/state`, the SSE snapshot): every field, but
/// the spec summarised ([`SpecSummary`](openloom_core::SpecSummary): `name`, `workspace`, `mode`, `agent`, the goal
/// cut to [`LIST_TEXT_CHARS`](openloom_core::summary::LIST_TEXT_CHARS), and `step_count`, `check_count`, `acceptance_count`,
/// with `summarised: true`) and long texts cut, so that a page's size is bounded by
/// its length whatever the tasks hold. The full task is `GET /api/tasks/{id}`.
pub fn list_entry(mut task: TaskSummary) -> Result<Value> {
    task.name = clip(&task.name);
    task.last_summary = task.last_summary.as_deref().map(clip);
    task.error = task.error.as_deref().map(clip);
    if let Some(verification) = &mut task.last_verification {
        // Output tails are for the task's own page.
        for outcome in &mut verification.outcomes {
            outcome.output_tail = String::new();
            outcome.error = outcome.error.as_deref().map(clip);
        }
    }
    serde_json::to_value(task)
        .map_err(|error| Error::Internal(format!("could not encode a task: {error}")))
}

/// A page of tasks as [`list_entry`] shows them (each with `driven_by`), encoded as
/// one JSON array, newest first, and the cursor of the next page (`None` on the last
/// page: one task more than asked is read, so a full last page never points at an
/// empty one). `version` is the store version read before this call: the page is
/// kept under it (`pages.rs`). An unknown `before` cursor is a bad request.
pub async fn task_page(
    state: &AppState,
    query: TaskQuery,
    version: StoreVersion,
) -> Result<(Arc<RawValue>, Option<TaskId>)> {
    let key = PageCache::key(&query);
    let page = match state.pages().get(&key, version) {
        Some(page) => page,
        None => {
            let page = Arc::new(read_page(state, query).await?);
            state.pages().put(key, version, Arc::clone(&page));
            page
        }
    };
    let drivers = state.store().drivers(&page.ids, Utc::now()).await?;
    let tasks = page
        .encoded(drivers)
        .map_err(|error| Error::Internal(format!("could not encode a task page: {error}")))?;
    Ok((tasks, page.next.clone()))
}

/// Reads a page from the store (see [`task_page`]).
async fn read_page(state: &AppState, query: TaskQuery) -> Result<Page> {
    let limit = query.limit;
    let cursor = query.before.clone();
    let probe = TaskQuery { limit: limit.saturating_add(1), ..query };
    let mut tasks =
        state.store().list_task_summaries(&probe).await.map_err(|error| match (error, cursor) {
            (openloom_core::Error::NotFound { .. }, Some(cursor)) => Error::BadRequest(format!(
                "unknown cursor {cursor}: pass the next_cursor of the previous page"
            )),
            (error, _) => Error::from(error),
        })?;
    let next = if tasks.len() > limit {
        tasks.truncate(limit);
        tasks.last().map(|t| t.id.clone())
    } else {
        None
    };
    let ids: Vec<TaskId> = tasks.iter().map(|task| task.id.clone()).collect();
    let entries = tasks.into_iter().map(list_entry).collect::<Result<Vec<_>>>()?;
    Ok(Page::new(entries, ids, next))
}

/// `task` (as JSON) with `driven_by`: the worker whose claim it is under now, or null.
fn with_driver(mut task: Value, driver: Option<String>) -> Value {
    if let Some(object) = task.as_object_mut() {
        object.insert("driven_by".to_owned(), driver.map_or(Value::Null, Value::String));
    }
    task
}

/// A page as the lists answer it: `GET /api/tasks` (no `type`) and the SSE snapshot
/// (`type: "snapshot"`).
#[derive(Serialize)]
pub(crate) struct PageAnswer<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    pub tasks: &'a RawValue,
    pub store_version: StoreVersion,
    pub next_cursor: Option<&'a TaskId>,
}

/// A page of tasks, newest first, and the cursor of the next page.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::response::Response> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::BadRequest(format!("limit must be between 1 and {MAX_PAGE}")));
    }
    let statuses = parse_statuses(query.status.as_deref())?;
    let before = query.before.filter(|b| !b.is_empty()).map(TaskId::from);
    let version = state.store().store_version().await?;
    let (tasks, next) = task_page(&state, TaskQuery { limit, before, statuses }, version).await?;
    let answer = PageAnswer {
        kind: None,
        tasks: &tasks,
        store_version: version,
        next_cursor: next.as_ref(),
    };
    let body = serde_json::to_vec(&answer)
        .map_err(|error| Error::Internal(format!("could not encode a task page: {error}")))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `GET /api/tasks/{id}` query: which page of the check log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailQuery {
    log_after: Option<i64>,
    log_limit: Option<usize>,
}

/// One task with a page of its check log (oldest first).
pub async fn detail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DetailQuery>,
) -> Result<Json<Value>> {
    let limit = query.log_limit.unwrap_or(DEFAULT_LOG_PAGE);
    if limit == 0 || limit > MAX_LOG_PAGE {
        return Err(Error::BadRequest(format!("log_limit must be between 1 and {MAX_LOG_PAGE}")));
    }
    let id = TaskId::from(id);
    let version = state.store().store_version().await?;
    let task = state
        .store()
        .get_task(&id)
        .await?
        .ok_or_else(|| Error::NotFound { what: "task", id: id.to_string() })?;
    let driver = state.store().drivers(std::slice::from_ref(&id), Utc::now()).await?.remove(&id);
    let task = serde_json::to_value(task)
        .map_err(|error| Error::Internal(format!("could not encode a task: {error}")))?;
    let task = with_driver(task, driver);
    // One entry more than asked tells whether there is a next page.
    let probe = LogQuery { after: query.log_after, limit: limit.saturating_add(1) };
    let mut log = state.store().check_log(&id, &probe).await?;
    let next = if log.len() > limit {
        log.truncate(limit);
        log.last().map(|e| e.seq)
    } else {
        None
    };
    let origin = state.store().task_origin(&id).await?;
    Ok(Json(json!({
        "task": task,
        "store_version": version,
        "log": log,
        "log_next_cursor": next,
        "origin": origin,
    })))
}

/// `POST /api/tasks` body: exactly what the reference's dashboard sends.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTask {
    /// A prompt (one-shot, or watched with `watch`).
    pub prompt: Option<String>,
    /// The user's intent behind a plan.
    pub intent: Option<String>,
    /// Spec text.
    pub spec: Option<String>,
    /// `yaml` (default) or `markdown`.
    pub format: Option<String>,
    /// A plan object (as `/api/tasks/plan` returned it, possibly edited).
    pub plan: Option<Value>,
    /// Workspace directory (required unless `sessionId` is given).
    pub workspace: Option<String>,
    /// Drive this existing session instead of creating one.
    pub session_id: Option<String>,
    /// Keep checking a prompt task (default interval 300 s).
    pub watch: Option<bool>,
    /// Check interval in minutes (0: one-shot; at least 1 minute otherwise).
    pub check_interval_minutes: Option<i64>,
    /// Check interval in seconds.
    pub check_interval_seconds: Option<i64>,
    /// Agent to prompt.
    pub agent: Option<String>,
    /// Mode.
    pub mode: Option<String>,
    /// Task name (prompt tasks).
    pub name: Option<String>,
    /// The OpenCode server to run the task on, by name: this worker's first (the
    /// default), another it is connected to, or one of `opencode_servers`, for a
    /// worker connected to it.
    pub opencode: Option<String>,
}

impl CreateTask {
    /// The interval the body asks for, as the reference reads it.
    fn interval(&self) -> Option<u64> {
        if let Some(minutes) = self.check_interval_minutes {
            return Some(if minutes <= 0 {
                0
            } else {
                u64::try_from(minutes).unwrap_or(u64::MAX).saturating_mul(60).max(60)
            });
        }
        self.check_interval_seconds.map(|s| u64::try_from(s.max(0)).unwrap_or(0))
    }

    fn text(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// The spec the body describes (workspace not yet resolved).
    fn to_spec(&self) -> Result<TaskSpec> {
        let interval = self.interval();
        let agent = Self::text(&self.agent).unwrap_or("opencode").to_owned();
        let mode = Self::text(&self.mode).unwrap_or("normal").to_owned();
        let workspace = self.workspace.clone().unwrap_or_default();
        if let Some(plan) = &self.plan {
            let Value::Object(object) = plan else {
                return Err(Error::BadRequest("plan must be a JSON object".into()));
            };
            let intent = Self::text(&self.intent)
                .or(Self::text(&self.prompt))
                .or(object.get("intent").and_then(Value::as_str))
                .unwrap_or("")
                .trim()
                .to_owned();
            let plan = Plan::from_json(plan, &intent)?;
            let mut spec = openloom_prompts::plan_to_spec(&plan, &workspace, interval);
            spec.agent = agent;
            spec.mode = mode;
            return Ok(spec);
        }
        if let Some(prompt) = &self.prompt {
            if prompt.trim().is_empty() {
                return Err(Error::BadRequest("prompt is required".into()));
            }
            let options = PromptOptions {
                check_interval_seconds: interval,
                watch: self.watch.unwrap_or(false),
                agent,
                mode,
                name: self.name.clone(),
            };
            return Ok(openloom_prompts::task_spec_from_prompt(prompt, &workspace, options)?);
        }
        if let Some(text) = Self::text(&self.spec) {
            let format = SpecFormat::from_name(self.format.as_deref().unwrap_or("yaml"))?;
            let mut spec = openloom_prompts::parse_spec(text, format, "<request>")?;
            if let Some(workspace) = Self::text(&self.workspace) {
                spec.workspace = workspace.to_owned();
            }
            if let Some(interval) = interval {
                spec.check_interval_seconds = interval;
            }
            return Ok(spec);
        }
        Err(Error::BadRequest("plan, prompt, or spec is required".into()))
    }
}

/// `~` and `~/x` as the user's home, as the reference's `expanduser`.
pub fn expand_home(path: &str) -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match (path, home) {
        ("~", Some(home)) => home,
        (p, Some(home)) if p.starts_with("~/") => home.join(&p[2..]),
        (p, _) => PathBuf::from(p),
    }
}

/// Resolves a workspace through the harness's policy (symlinks and `..` resolved,
/// allowed roots enforced).
pub fn resolve_workspace(state: &AppState, raw: &str) -> Result<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(Error::BadRequest("workspace is required".into()));
    }
    let expanded = expand_home(raw);
    let resolved = state.harness().workspaces().resolve(&expanded.to_string_lossy())?;
    Ok(path_text(&resolved))
}

/// The resolved workspace of an existing session of `client`'s OpenCode: its
/// directory, or `fallback` when OpenCode does not say (the reference's rule),
/// through the same policy.
async fn session_workspace(
    state: &AppState,
    client: &openloom_opencode::OpencodeClient,
    session_id: &str,
    fallback: &str,
) -> Result<String> {
    let session = client.session(session_id).await?;
    let directory = if session.directory.is_empty() { fallback } else { &session.directory };
    if directory.trim().is_empty() {
        return Err(Error::BadRequest("cannot resolve the workspace of the session".into()));
    }
    resolve_workspace(state, directory)
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Creates a pending task; the harness starts it on its next tick.
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTask>,
) -> Result<Json<Value>> {
    let mut spec = body.to_spec()?;
    // Whatever the source (a plan or a prompt too): a task is stored, listed and
    // sent to every dashboard, so its size is bounded.
    openloom_prompts::check_spec_limits(&spec, "<request>")?;
    if spec.check_interval_seconds > MAX_CHECK_INTERVAL_SECONDS {
        return Err(Error::BadRequest(format!(
            "the check interval is {} s; it may be at most one year ({MAX_CHECK_INTERVAL_SECONDS} s)",
            spec.check_interval_seconds
        )));
    }
    let session_id = CreateTask::text(&body.session_id).map(str::to_owned);
    let (id, opencode) = match placement(&state, CreateTask::text(&body.opencode))? {
        Placement::Elsewhere(name) => {
            if session_id.is_some() {
                return Err(Error::BadRequest(format!(
                    "sessionId names a session of an OpenCode server this worker is connected \
                     to, not of {name:?}; leave opencode out, or create the task on a worker \
                     connected to {name:?}"
                )));
            }
            // Its worker resolves the workspace, on its machine.
            (state.harness().add_task_on(spec.clone(), Some(name.clone())).await?, Some(name))
        }
        Placement::Connected(connection) => {
            let harness = &connection.harness;
            let id = match &session_id {
                Some(session_id) => {
                    spec.workspace =
                        session_workspace(&state, &connection.client, session_id, &spec.workspace)
                            .await?;
                    harness.add_task_for_session(spec.clone(), session_id).await?
                }
                None => {
                    spec.workspace = resolve_workspace(&state, &spec.workspace)?;
                    let id = harness.add_task(spec.clone()).await?;
                    let recorded = state.recent().record_workspace(&spec.workspace, Utc::now());
                    if let Err(error) = recorded.await {
                        tracing::warn!(%error, "could not record a recent workspace");
                    }
                    id
                }
            };
            (id, harness.opencode().map(str::to_owned))
        }
    };
    tracing::info!(task_id = %id, workspace = %spec.workspace, "task created");
    Ok(Json(json!({
        "ok": true,
        "taskId": id,
        "status": TaskStatus::Pending,
        "name": spec.name,
        "watch": spec.check_interval_seconds > 0,
        "sessionId": session_id,
        "opencode": opencode,
        "steps": spec.steps.len(),
        "acceptance": spec.acceptance.len(),
    })))
}

/// Where a new task runs.
enum Placement<'a> {
    /// On an OpenCode server this worker is connected to: its harness creates it.
    Connected(&'a crate::state::Connection),
    /// On another of `opencode_servers`, for a worker connected to it.
    Elsewhere(String),
}

/// Which OpenCode server a new task runs on: the worker's first one unless the
/// request names another it is connected to, or another of `opencode_servers`.
/// Unknown names are refused with the known ones.
fn placement<'a>(state: &'a AppState, asked: Option<&str>) -> Result<Placement<'a>> {
    let Some(asked) = asked else { return Ok(Placement::Connected(state.first())) };
    if let Some(connection) = state.connection_named(asked) {
        return Ok(Placement::Connected(connection));
    }
    let others = &state.config().opencode_servers;
    if others.iter().any(|name| name == asked) {
        return Ok(Placement::Elsewhere(asked.to_owned()));
    }
    let mut known: Vec<&str> =
        state.connections().iter().filter_map(|c| c.harness.opencode()).collect();
    for name in others {
        if !known.contains(&name.as_str()) {
            known.push(name);
        }
    }
    Err(Error::BadRequest(if known.is_empty() {
        format!(
            "opencode {asked:?}: this worker names no OpenCode servers; set `opencode` and \
             `opencode_servers` in the config file (docs/team.md) or leave opencode out"
        )
    } else {
        format!("opencode {asked:?} is not a known OpenCode server; known: {}", known.join(", "))
    }))
}

/// `POST /api/tasks/plan` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PlanRequest {
    intent: Option<String>,
    prompt: Option<String>,
    workspace: Option<String>,
    session_id: Option<String>,
    agent: Option<String>,
}

/// Drafts a plan from an intent in a throwaway session.
pub async fn plan(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PlanRequest>,
) -> Result<Json<Value>> {
    let intent = CreateTask::text(&body.intent)
        .or(CreateTask::text(&body.prompt))
        .ok_or_else(|| Error::BadRequest("intent is required".into()))?
        .to_owned();
    let workspace = match CreateTask::text(&body.session_id) {
        Some(session_id) => {
            let fallback = body.workspace.as_deref().unwrap_or("");
            session_workspace(&state, state.client(), session_id, fallback).await?
        }
        None => resolve_workspace(&state, body.workspace.as_deref().unwrap_or(""))?,
    };
    let agent = CreateTask::text(&body.agent).filter(|a| *a != "opencode");
    let plan = openloom_prompts::draft_plan(state.client(), &workspace, &intent, agent).await?;
    Ok(Json(json!({ "ok": true, "plan": planner::plan_json(&plan), "workspace": workspace })))
}

async fn answer(state: &AppState, id: TaskId, version: StoreVersion) -> Result<Json<Value>> {
    let status = state.store().get_task(&id).await?.map(|t| t.status);
    Ok(Json(json!({ "ok": true, "taskId": id, "status": status, "store_version": version })))
}

/// Pauses a task.
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let id = TaskId::from(id);
    let version = state.harness().pause(&id).await?;
    answer(&state, id, version).await
}

/// Resumes a paused, waiting or failed task.
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let id = TaskId::from(id);
    let version = state.harness().resume(&id).await?;
    answer(&state, id, version).await
}

/// Marks a task completed.
pub async fn complete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let id = TaskId::from(id);
    let version = state.harness().complete(&id).await?;
    answer(&state, id, version).await
}

/// Archives a task.
pub async fn archive(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let id = TaskId::from(id);
    let version = state.harness().archive(&id).await?;
    answer(&state, id, version).await
}

/// Deletes an archived task (409 for any other).
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Value>> {
    let id = TaskId::from(id);
    let version = state.harness().delete(&id).await?;
    Ok(Json(json!({ "ok": true, "taskId": id, "store_version": version })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_the_reference() {
        let minutes = |m| CreateTask { check_interval_minutes: Some(m), ..Default::default() };
        assert_eq!(minutes(0).interval(), Some(0));
        assert_eq!(minutes(-3).interval(), Some(0));
        assert_eq!(minutes(2).interval(), Some(120));
        let seconds = CreateTask { check_interval_seconds: Some(-5), ..Default::default() };
        assert_eq!(seconds.interval(), Some(0));
        assert_eq!(CreateTask::default().interval(), None);
    }

    #[test]
    fn statuses_parse_as_a_comma_list() {
        assert_eq!(
            parse_statuses(Some("running, paused")).expect("valid"),
            vec![TaskStatus::Running, TaskStatus::Paused]
        );
        assert!(parse_statuses(Some("done")).is_err());
        assert!(parse_statuses(None).expect("none").is_empty());
    }

    #[test]
    fn a_body_without_a_source_is_refused() {
        let err = CreateTask::default().to_spec().expect_err("nothing to create");
        assert!(err.to_string().contains("plan, prompt, or spec"), "{err}");
    }
}
