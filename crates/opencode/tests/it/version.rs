//! OpenCode's version: a server of an untested major version (or one answering its
//! web page where the health JSON belongs, as 2.x does) is refused before a session
//! is created or prompted; the tested version passes and is checked once.

use openloom_core::{AgentServer, Error as CoreError};
use openloom_opencode::{Error, TESTED_VERSION, check_version};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{client, html_page, session_ref};

async fn health(server: &MockServer, reply: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(reply)
        .expect(times)
        .mount(server)
        .await;
}

fn version(v: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"healthy": true, "version": v}))
}

async fn session_route(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": "ses_1", "directory": "/w", "title": "t", "time": {"created": 1, "updated": 1}}),
        ))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn a_2x_server_is_refused_before_a_session_is_created() {
    let server = MockServer::start().await;
    health(&server, version("2.0.3"), 2).await;
    session_route(&server, 0).await;
    let client = client(&server);
    let err = client.create_session("/w", "t").await.expect_err("2.x refused");
    assert!(
        matches!(&err, Error::Unsupported { found, tested: TESTED_VERSION } if found == "OpenCode 2.0.3"),
        "{err:?}"
    );
    // What the harness sees through the trait: permanent, and it says what to run.
    let err = AgentServer::create_session(&client, "/w", "t").await.expect_err("refused");
    assert!(matches!(err, CoreError::UnsupportedAgentServer { .. }), "{err:?}");
    assert!(!err.is_transient(), "a task fails instead of waiting for ever");
    let text = err.to_string();
    assert!(
        text.contains("OpenCode 2.0.3") && text.contains("tested with OpenCode 1.18.34"),
        "{text}"
    );
}

#[tokio::test]
async fn a_web_page_on_the_health_route_refuses_prompts() {
    let server = MockServer::start().await;
    health(&server, html_page(), 1).await;
    Mock::given(path("/session/ses_1/prompt_async"))
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&server)
        .await;
    let err = client(&server)
        .send_prompt(&session_ref("ses_1", "/w"), "hi", None)
        .await
        .expect_err("refused");
    match err {
        Error::Unsupported { found, .. } => {
            assert!(found.contains("GET /global/health"), "{found}");
            assert!(found.contains("web page"), "{found}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn the_tested_version_passes_and_is_checked_once_per_client() {
    let server = MockServer::start().await;
    health(&server, version("1.18.34"), 1).await;
    session_route(&server, 2).await;
    let client = client(&server);
    client.create_session("/w", "a").await.expect("1.18.34 is supported");
    client.create_session("/w", "b").await.expect("and not asked again");
    // The expectations (one health check, two sessions) are verified on drop.
}

#[tokio::test]
async fn a_health_route_that_fails_otherwise_does_not_block() {
    // No evidence of an unsupported server: the request goes on and is checked later.
    let server = MockServer::start().await;
    health(&server, ResponseTemplate::new(503), 2).await;
    session_route(&server, 2).await;
    let client = client(&server);
    client.create_session("/w", "a").await.expect("not refused");
    client.create_session("/w", "b").await.expect("checked again, still not refused");
}

#[test]
fn only_the_tested_major_version_passes() {
    for ok in ["1.18.34", "1.0.0", "1.99", "v1.2.3", "dev", ""] {
        assert!(check_version(ok).is_ok(), "{ok} should pass");
    }
    for refused in ["2.0.0", "2", "0.9.1", "10.1.0"] {
        assert!(matches!(check_version(refused), Err(Error::Unsupported { .. })), "{refused}");
    }
}
