//! Merged session status: default directory + requested directories + worktrees.

use openloom_core::{AgentServer, SessionActivity};
use openloom_opencode::Error;
use serde_json::json;
use wiremock::matchers::{path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{client, fixture, json_body};

async fn mount_projects(server: &MockServer, worktrees: &[&str]) {
    let projects: Vec<_> = worktrees.iter().map(|w| json!({"id": w, "worktree": w})).collect();
    Mock::given(path("/project"))
        .respond_with(json_body(json!(projects).to_string()))
        .mount(server)
        .await;
}

#[tokio::test]
async fn statuses_merge_with_busy_over_retry_over_idle() {
    let server = MockServer::start().await;
    mount_projects(&server, &["/p"]).await;
    Mock::given(path("/session/status"))
        .and(query_param_is_missing("directory"))
        .respond_with(json_body(
            json!({"ses_a": {"type": "retry", "attempt": 1, "message": "429"}, "ses_b": {"type": "busy"}}).to_string(),
        ))
        .mount(&server)
        .await;
    // Odd shapes: wrapped under `data`, statuses as bare strings, explicit idle.
    Mock::given(path("/session/status"))
        .and(query_param("directory", "/w"))
        .respond_with(json_body(
            json!({"data": {"ses_a": "busy", "ses_b": {"status": "retry"}, "ses_c": {"type": "idle"}}}).to_string(),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/session/status"))
        .and(query_param("directory", "/p"))
        .respond_with(json_body(fixture("session_status_retry.json")))
        .mount(&server)
        .await;

    let client = client(&server);
    let merged = client.session_activity(&["/w".to_owned()]).await.expect("merged");
    assert_eq!(merged.len(), 3, "{merged:?}");
    assert_eq!(merged["ses_a"], SessionActivity::Busy);
    assert_eq!(merged["ses_b"], SessionActivity::Busy);
    assert!(!merged.contains_key("ses_c"), "idle sessions are absent");
    assert_eq!(
        merged["ses_dec8454baffe8fnA4j8vlin4Le"],
        SessionActivity::Retry { attempt: 3, message: "fake error 429".into() }
    );
}

#[tokio::test]
async fn a_requested_directory_that_fails_fails_the_call_but_a_worktree_does_not() {
    let server = MockServer::start().await;
    mount_projects(&server, &["/p"]).await;
    Mock::given(path("/session/status"))
        .and(query_param("directory", "/p"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    Mock::given(path("/session/status"))
        .and(query_param("directory", "/w"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    Mock::given(path("/session/status"))
        .respond_with(json_body(fixture("session_status_busy.json")))
        .mount(&server)
        .await;
    let client = client(&server);

    let merged = client.session_status(&[]).await.expect("worktree failure tolerated");
    assert_eq!(merged.get("ses_dec884f12ffe5xSUmHCqm7mFZP"), Some(&SessionActivity::Busy));

    let err = client
        .session_status(&["/w".to_owned()])
        .await
        .expect_err("a busy session could hide there");
    assert!(matches!(err, Error::Upstream { status: 503, .. }), "{err:?}");
}

#[tokio::test]
async fn statuses_still_merge_when_projects_fail() {
    let server = MockServer::start().await;
    Mock::given(path("/project")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    Mock::given(path("/session/status"))
        .respond_with(json_body(fixture("session_status_busy.json")))
        .mount(&server)
        .await;
    let merged = client(&server).session_status(&[]).await.expect("merged");
    assert_eq!(merged.len(), 1);
}
