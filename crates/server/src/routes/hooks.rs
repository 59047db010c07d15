//! `POST /api/hooks/github`: GitHub's `issues` webhook, turned into tasks.
//!
//! The route's authentication is GitHub's signature (`X-Hub-Signature-256`, an
//! HMAC-SHA256 of the raw body under `OPENLOOM_GITHUB_WEBHOOK_SECRET`), so it works
//! on a server with an API token without that token; the `Host` check and the body
//! limit still apply (GitHub sends no `Origin`). A verified delivery is decided at
//! once ([`openloom_sources::github::decide`], pure and cheap), answered, and a task
//! is queued for the intake (core's `take_in` over a feed), which creates it with
//! its origin `github:<X-GitHub-Delivery>`: a redelivery makes no second task.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use openloom_core::source::Refused;
use openloom_sources::HookDecision;
use serde_json::json;

use crate::config::GITHUB_SECRET_ENV;
use crate::error::{Error, Result};
use crate::state::AppState;

/// The route's path; the guard lets it through without the API token.
pub const GITHUB_PATH: &str = "/api/hooks/github";

/// Queued GitHub tasks not yet created; more are answered 503 (GitHub shows the
/// delivery as failed, and it can be redelivered).
pub const GITHUB_QUEUE: usize = 256;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Takes one delivery of GitHub's webhook.
pub async fn github(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let config = state.config();
    let Some(secret) = &config.github_secret else {
        return Err(Error::HookDisabled(format!(
            "the GitHub hook is off: set {GITHUB_SECRET_ENV} to the secret entered in the \
             repository's webhook settings, and restart (docs/triggers.md)"
        )));
    };
    let Some(github) = &config.github else {
        return Err(Error::HookDisabled(
            "the GitHub hook is off: add a `github:` section (label, repos) to config.yaml \
             and restart (docs/triggers.md)"
                .to_owned(),
        ));
    };
    // The signature first: nothing about an unsigned request is looked at.
    let Some(signature) = header(&headers, "x-hub-signature-256") else {
        return Err(Error::BadSignature(
            "unsigned delivery: X-Hub-Signature-256 is missing; set the webhook's secret in \
             GitHub to the value of the server's OPENLOOM_GITHUB_WEBHOOK_SECRET"
                .to_owned(),
        ));
    };
    if !openloom_core::signature::verify(secret.expose().as_bytes(), &body, signature) {
        tracing::warn!("GitHub delivery with a wrong signature refused");
        return Err(Error::BadSignature(
            "X-Hub-Signature-256 does not match the body: the webhook's secret in GitHub \
             differs from the server's OPENLOOM_GITHUB_WEBHOOK_SECRET"
                .to_owned(),
        ));
    }
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| Error::BadRequest("X-GitHub-Event is missing".to_owned()))?;
    let delivery = header(&headers, "x-github-delivery").unwrap_or("");
    let decision =
        openloom_sources::github::decide(github, event, delivery, &body).map_err(|error| {
            match error {
                openloom_sources::Error::Payload { .. } => Error::BadRequest(error.to_string()),
                other => Error::Unprocessable(other.to_string()),
            }
        })?;
    match decision {
        HookDecision::Pong => Ok(Json(json!({ "ok": true, "event": "ping" })).into_response()),
        HookDecision::Ignore(reason) => {
            tracing::info!(%event, %delivery, %reason, "GitHub delivery ignored");
            Ok(accepted(json!({ "ok": true, "ignored": reason, "delivery": delivery })))
        }
        HookDecision::Task(arrival) => {
            let feeder = state.github_feeder().ok_or_else(|| {
                Error::Overloaded("the GitHub intake is not running; try again".to_owned())
            })?;
            // Checked now as well as at creation, so a directory the roots do not
            // allow is a 422 in GitHub's delivery log rather than a line in ours.
            state
                .harness()
                .workspaces()
                .resolve(&arrival.spec.workspace)
                .map_err(|error| Error::Unprocessable(error.to_string()))?;
            let name = arrival.spec.name.clone();
            match feeder.offer(*arrival) {
                Ok(()) => {
                    tracing::info!(%delivery, task = %name, "GitHub issue queued as a task");
                    Ok(accepted(json!({ "ok": true, "queued": name, "delivery": delivery })))
                }
                Err(Refused::Full) => Err(Error::Overloaded(format!(
                    "{GITHUB_QUEUE} GitHub deliveries are waiting to become tasks; redeliver later"
                ))),
                Err(Refused::Closed) => Err(Error::Overloaded(
                    "the server is shutting down; redeliver later".to_owned(),
                )),
            }
        }
    }
}

fn accepted(body: serde_json::Value) -> Response {
    (StatusCode::ACCEPTED, Json(body)).into_response()
}
