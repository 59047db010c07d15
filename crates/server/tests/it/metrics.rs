//! `GET /metrics`: behind the token, OpenMetrics text whose figures follow the store,
//! the harness's checks and takeovers, and the OpenCode client's requests.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{Method, StatusCode, header};
use chrono::Utc;
use openloom_core::{TaskId, Trigger};
use serde_json::json;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::common::*;

/// The samples of an OpenMetrics text: `name{labels}` as written → value. Checks
/// the shape on the way: `# EOF` last, every other line a comment or a sample.
fn samples(text: &str) -> HashMap<String, f64> {
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.pop(), Some("# EOF"), "OpenMetrics text ends with # EOF: {text}");
    let mut out = HashMap::new();
    for line in lines.into_iter().filter(|line| !line.starts_with('#')) {
        let (series, value) =
            line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(out.insert(series.to_owned(), value).is_none(), "series twice: {series}");
    }
    out
}

async fn scrape(fx: &Fixture) -> HashMap<String, f64> {
    let request = axum::http::Request::builder()
        .method(Method::GET)
        .uri("/metrics")
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let reply = fx.call(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(!reply.text.contains(OPENCODE_PASSWORD));
    samples(&reply.text)
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples.get(series).unwrap_or_else(|| {
        let mut known: Vec<&String> = samples.keys().collect();
        known.sort();
        panic!("no series {series}; have {known:?}")
    })
}

/// Creates a prompt task through the API (with the token); returns its id.
async fn create(fx: &Fixture, prompt: &str) -> TaskId {
    let body = json!({ "prompt": prompt, "workspace": fx.ws() });
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/tasks")
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .expect("request");
    let reply = fx.call(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    TaskId::from(reply.json["taskId"].as_str().expect("task id"))
}

/// OpenCode creating sessions and accepting prompts.
async fn mount_working_starts(fx: &Fixture) {
    fx.mount_opencode(json!([]), json!({})).await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(json_reply(session_json("ses_metrics1", &fx.ws(), 0)))
        .mount(&fx.opencode)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/session/[^/]+/prompt_async$"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&fx.opencode)
        .await;
    fx.mount_messages("ses_metrics1", json!([])).await;
}

#[tokio::test]
async fn a_scrape_needs_the_api_token() {
    let fx = Fixture::with_config(token_config()).await;
    let reply = fx.get("/metrics").await;
    reply.error(StatusCode::UNAUTHORIZED);
    assert!(!reply.text.contains("openloom_"), "{}", reply.text);
    let figures = scrape(&fx).await;
    assert_eq!(value(&figures, r#"openloom_tasks{status="pending"}"#), 0.0);
}

#[tokio::test]
async fn figures_follow_the_store_the_checks_opencode_and_takeovers() {
    let fx = Fixture::with_config(token_config()).await;
    let harness = fx.state.harness().clone();
    let before = scrape(&fx).await;
    assert_eq!(value(&before, r#"openloom_checks_total{outcome="done"}"#), 0.0);
    assert_eq!(value(&before, r#"openloom_checks_total{outcome="error"}"#), 0.0);
    assert_eq!(value(&before, "openloom_lease_takeovers_total"), 0.0);
    let worker = harness.worker_name().to_owned();
    let version = env!("CARGO_PKG_VERSION");
    let info = format!(r#"openloom_build_info{{version="{version}",worker="{worker}"}}"#);
    assert_eq!(value(&before, &info), 1.0);

    // OpenCode fails to create a session: a check with an error, an OpenCode error.
    let failing = create(&fx, "first").await;
    fx.mount_opencode(json!([]), json!({})).await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .mount(&fx.opencode)
        .await;
    harness.check_now(&failing, Trigger::Scheduled).await.expect("checked");
    let after_error = scrape(&fx).await;
    assert_eq!(value(&after_error, r#"openloom_checks_total{outcome="error"}"#), 1.0);
    assert_eq!(value(&after_error, r#"openloom_checks_total{outcome="done"}"#), 0.0);
    assert_eq!(
        value(
            &after_error,
            r#"openloom_opencode_request_errors_total{endpoint="/session",kind="upstream"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &after_error,
            r#"openloom_opencode_request_duration_seconds_count{method="POST",endpoint="/session"}"#
        ),
        1.0
    );

    // Now OpenCode works: a check that starts a task, done.
    fx.opencode.reset().await;
    mount_working_starts(&fx).await;
    let started = create(&fx, "second").await;
    harness.check_now(&started, Trigger::Scheduled).await.expect("checked");

    // A task another worker claimed and then stopped renewing (its lease ended a
    // minute ago): this worker's check takes it over.
    let orphan = create(&fx, "third").await;
    let long_ago = Utc::now() - chrono::Duration::minutes(2);
    let lapsed = Utc::now() - chrono::Duration::minutes(1);
    let theirs = fx
        .state
        .store()
        .claim_task(&orphan, "dead-worker", long_ago, lapsed)
        .await
        .expect("claim")
        .expect("granted");
    assert_eq!(theirs.epoch, 1);
    harness.check_now(&orphan, Trigger::Scheduled).await.expect("checked");
    // Its own claims renewed are no takeover.
    harness.check_now(&orphan, Trigger::Scheduled).await.expect("checked again");

    let paused = create(&fx, "fourth").await;
    let reply = fx
        .call({
            let mut request = request(Method::POST, &format!("/api/tasks/{paused}/pause"), None);
            let bearer = format!("Bearer {TOKEN}").parse().expect("header");
            request.headers_mut().insert(header::AUTHORIZATION, bearer);
            request
        })
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let figures = scrape(&fx).await;
    let counts = fx.state.store().count_by_status().await.expect("counts");
    for status in openloom_core::TaskStatus::ALL {
        let series = format!(r#"openloom_tasks{{status="{}"}}"#, status.as_str());
        let expected = counts.get(&status).copied().unwrap_or(0) as f64;
        assert_eq!(value(&figures, &series), expected, "{series}");
    }
    // first: pending again after its transient error; second and third: running.
    assert_eq!(value(&figures, r#"openloom_tasks{status="pending"}"#), 1.0);
    assert_eq!(value(&figures, r#"openloom_tasks{status="running"}"#), 2.0);
    assert_eq!(value(&figures, r#"openloom_tasks{status="paused"}"#), 1.0);
    assert_eq!(value(&figures, "openloom_lease_takeovers_total"), 1.0);
    assert!(value(&figures, r#"openloom_checks_total{outcome="done"}"#) >= 3.0);
    assert_eq!(value(&figures, r#"openloom_checks_total{outcome="error"}"#), 1.0);
    let prompts = r#"openloom_opencode_request_duration_seconds_count{method="POST",endpoint="/session/{id}/prompt_async"}"#;
    assert!(value(&figures, prompts) >= 2.0, "two starts, perhaps a nudge");
    assert_eq!(value(&figures, r#"openloom_webhook_deliveries{status="pending"}"#), 0.0);
    assert_eq!(value(&figures, r#"openloom_webhook_deliveries{status="dead"}"#), 0.0);
    assert!(
        value(&figures, "openloom_metrics_store_read_seconds")
            < Duration::from_secs(5).as_secs_f64()
    );
}
