//! `health()`: reachable, unauthorized, unreachable, and "not OpenCode".

use std::time::Duration;

use openloom_core::Health;
use openloom_opencode::{OpencodeClient, Secret, Settings};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    AfterBody, PASSWORD, client, fixture, html_page, json_body, raw_server, settings,
};

#[tokio::test]
async fn a_healthy_server_reports_its_version() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(json_body(fixture("global_health.json")))
        .mount(&server)
        .await;
    assert_eq!(
        client(&server).health().await,
        Health::Reachable { version: Some("1.18.34".into()) }
    );
}

#[tokio::test]
async fn refused_credentials_are_unauthorized_with_a_reason() {
    let server = MockServer::start().await;
    Mock::given(path("/global/health"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;

    match client(&server).health().await {
        Health::Unauthorized { reason } => {
            assert!(reason.contains("none is configured"), "{reason}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let mut settings = settings(&server);
    settings.password = Some(Secret::new(PASSWORD));
    match OpencodeClient::new(settings).expect("valid").health().await {
        Health::Unauthorized { reason } => {
            assert!(reason.contains("refused"), "{reason}");
            assert!(!reason.contains(PASSWORD));
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

#[tokio::test]
async fn html_on_the_health_route_is_not_an_opencode_server() {
    // Unknown routes answer 200 with the web UI, so status 200 alone proves nothing.
    let server = MockServer::start().await;
    Mock::given(path("/global/health")).respond_with(html_page()).mount(&server).await;
    match client(&server).health().await {
        Health::Unreachable { reason } => {
            assert!(reason.contains("does not look like an OpenCode server"), "{reason}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn no_server_and_slow_server_are_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let health = OpencodeClient::new(Settings::new(format!("http://127.0.0.1:{port}")))
        .expect("valid")
        .health()
        .await;
    assert!(matches!(health, Health::Unreachable { .. }), "{health:?}");

    let server = MockServer::start().await;
    Mock::given(path("/global/health"))
        .respond_with(json_body(fixture("global_health.json")).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let mut settings = settings(&server);
    settings.health_timeout = Duration::from_millis(150);
    match OpencodeClient::new(settings).expect("valid").health().await {
        Health::Unreachable { reason } => assert!(reason.contains("timed out"), "{reason}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_error_on_health_is_unreachable() {
    let server = MockServer::start().await;
    Mock::given(path("/global/health"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let health = client(&server).health().await;
    assert!(
        matches!(&health, Health::Unreachable { reason } if reason.contains("503")),
        "{health:?}"
    );
}

/// Right after a (re)start OpenCode accepts connections but never answers a request
/// that comes too early. A health probe must say "unreachable" quickly then, not
/// after the ordinary request timeout.
#[tokio::test]
async fn a_server_that_accepts_but_never_answers_is_unreachable_quickly() {
    let (uri, server) = raw_server("", b"", 0, AfterBody::HoldOpen).await;
    let mock = MockServer::start().await; // only for settings' shape
    let mut settings = settings(&mock);
    settings.base_url = uri;
    settings.request_timeout = Duration::from_secs(30);
    settings.health_timeout = Duration::from_millis(300);
    let client = OpencodeClient::new(settings).expect("valid");
    let health = tokio::time::timeout(Duration::from_secs(3), client.health())
        .await
        .expect("the health timeout, not the request timeout, applies");
    match health {
        Health::Unreachable { reason } => assert!(reason.contains("300ms"), "{reason}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    server.abort();
}
