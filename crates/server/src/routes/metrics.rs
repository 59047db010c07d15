//! `GET /metrics`: the worker's figures for Prometheus, behind the API token like
//! every other route (Prometheus sends it with `authorization: credentials_file`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::Result;
use crate::metrics::CONTENT_TYPE;
use crate::state::AppState;

/// `GET /metrics`: OpenMetrics text (see [`crate::Metrics`]).
pub async fn scrape(State(state): State<AppState>) -> Result<Response> {
    let worker = state.harness().worker_name();
    let text =
        state.metrics().render(state.store().as_ref(), state.outbox().as_ref(), worker).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], text)
        .into_response())
}
