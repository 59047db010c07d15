//! The route table. [`ROUTES`] lists every method and path; the router is built from
//! [`route_table`], and a test checks both against `docs/openapi.json`, so the
//! document cannot drift from what is served.

use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};

use crate::error::Error;
use crate::state::AppState;

pub mod dashboard;
pub mod events;
pub mod hooks;
pub mod metrics;
pub mod requests;
pub mod sessions;
pub mod tasks;
pub mod ui;
pub mod webhooks;
pub mod workspaces;

/// The OpenAPI document of this API, served at `/api/openapi.json`.
pub const OPENAPI_JSON: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"));

/// Every route served: `(method, path)` in axum's (and OpenAPI's) `{param}` syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/ui/app.css"),
    ("GET", "/ui/app.js"),
    ("GET", "/ui/api.js"),
    ("GET", "/ui/dom.js"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/tasks"),
    ("POST", "/api/tasks"),
    ("POST", "/api/tasks/plan"),
    ("GET", "/api/tasks/{id}"),
    ("DELETE", "/api/tasks/{id}"),
    ("POST", "/api/tasks/{id}/pause"),
    ("POST", "/api/tasks/{id}/resume"),
    ("POST", "/api/tasks/{id}/complete"),
    ("POST", "/api/tasks/{id}/archive"),
    ("POST", "/api/tasks/{id}/requests/{requestId}"),
    ("GET", "/api/events"),
    ("GET", "/api/state"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/{id}/messages"),
    ("GET", "/api/sessions/{id}/diff"),
    ("POST", "/api/sessions/{id}/archive"),
    ("POST", "/api/sessions/{id}/unarchive"),
    ("DELETE", "/api/sessions/{id}"),
    ("GET", "/api/workspaces/recent"),
    ("DELETE", "/api/workspaces/recent"),
    ("GET", "/api/browse"),
    ("POST", "/api/pick-folder"),
    ("POST", "/api/hooks/github"),
    ("GET", "/api/webhooks/deliveries"),
    ("POST", "/api/webhooks/deliveries/{id}/redeliver"),
    ("GET", "/metrics"),
];

/// The handlers, one per entry of [`ROUTES`] (same order).
pub fn route_table() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("GET", "/", ui::route(ui::INDEX)),
        ("GET", "/ui/app.css", ui::route(ui::APP_CSS)),
        ("GET", "/ui/app.js", ui::route(ui::APP_JS)),
        ("GET", "/ui/api.js", ui::route(ui::API_JS)),
        ("GET", "/ui/dom.js", ui::route(ui::DOM_JS)),
        ("GET", "/api/openapi.json", get(openapi)),
        ("GET", "/api/tasks", get(tasks::list)),
        ("POST", "/api/tasks", post(tasks::create)),
        ("POST", "/api/tasks/plan", post(tasks::plan)),
        ("GET", "/api/tasks/{id}", get(tasks::detail)),
        ("DELETE", "/api/tasks/{id}", delete(tasks::delete)),
        ("POST", "/api/tasks/{id}/pause", post(tasks::pause)),
        ("POST", "/api/tasks/{id}/resume", post(tasks::resume)),
        ("POST", "/api/tasks/{id}/complete", post(tasks::complete)),
        ("POST", "/api/tasks/{id}/archive", post(tasks::archive)),
        ("POST", "/api/tasks/{id}/requests/{requestId}", post(requests::answer)),
        ("GET", "/api/events", get(events::events)),
        ("GET", "/api/state", get(dashboard::state)),
        ("GET", "/api/sessions", get(sessions::list)),
        ("GET", "/api/sessions/{id}/messages", get(sessions::messages)),
        ("GET", "/api/sessions/{id}/diff", get(sessions::diff)),
        ("POST", "/api/sessions/{id}/archive", post(sessions::archive)),
        ("POST", "/api/sessions/{id}/unarchive", post(sessions::unarchive)),
        ("DELETE", "/api/sessions/{id}", delete(sessions::delete)),
        ("GET", "/api/workspaces/recent", get(workspaces::recent)),
        ("DELETE", "/api/workspaces/recent", delete(workspaces::forget)),
        ("GET", "/api/browse", get(workspaces::browse)),
        ("POST", "/api/pick-folder", post(workspaces::pick_folder)),
        ("POST", hooks::GITHUB_PATH, post(hooks::github)),
        ("GET", "/api/webhooks/deliveries", get(webhooks::list)),
        ("POST", "/api/webhooks/deliveries/{id}/redeliver", post(webhooks::redeliver)),
        ("GET", "/metrics", get(metrics::scrape)),
    ]
}

/// The OpenAPI document.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// Unknown paths: a JSON 404.
pub async fn no_route(method: Method, uri: Uri) -> Error {
    Error::NoRoute {
        status: StatusCode::NOT_FOUND,
        detail: format!("no route for {method} {}", uri.path()),
    }
}

/// Known paths with another method: a JSON 405.
pub async fn wrong_method(method: Method, uri: Uri) -> Error {
    Error::NoRoute {
        status: StatusCode::METHOD_NOT_ALLOWED,
        detail: format!("{} does not accept {method}", uri.path()),
    }
}
