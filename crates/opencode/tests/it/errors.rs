//! Every way a request can fail, and what each becomes (here and in core).

use std::time::{Duration, Instant};

use openloom_core::Error as CoreError;
use openloom_opencode::{Error, OpencodeClient, Secret};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{
    AfterBody, PASSWORD, client, fixture, html_page, json_body, json_error, raw_server,
    session_ref, settings,
};

#[tokio::test]
async fn a_401_with_empty_body_is_unauthorized() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", "Basic realm=\"Secure Area\""),
        )
        .mount(&server)
        .await;
    let err = client(&server).session("ses_1").await.expect_err("401");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(matches!(CoreError::from(err), CoreError::AgentUnauthorized { .. }));
}

#[tokio::test]
async fn a_404_names_the_session_and_keeps_the_server_message() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_doesnotexist123"))
        .respond_with(json_error(404, fixture("session_get_404.json")))
        .mount(&server)
        .await;
    let err = client(&server).session("ses_doesnotexist123").await.expect_err("404");
    match &err {
        Error::NotFound { what, id, message } => {
            assert_eq!((*what, id.as_str()), ("session", "ses_doesnotexist123"));
            assert_eq!(message, "Session not found: ses_doesnotexist123");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match CoreError::from(err) {
        CoreError::NotFound { what, id } => {
            assert_eq!((what, id.as_str()), ("session", "ses_doesnotexist123"))
        }
        other => panic!("expected core NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn a_500_carries_the_named_shape_message_and_is_transient() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1"))
        .respond_with(json_error(500, fixture("error_session_get_bad_id_500.json")))
        .mount(&server)
        .await;
    let err = client(&server).session("ses_1").await.expect_err("500");
    match &err {
        Error::Upstream { status, message } => {
            assert_eq!(*status, 500);
            assert_eq!(message, "Unexpected server error. Check server logs for details.");
        }
        other => panic!("expected Upstream, got {other:?}"),
    }
    let core = CoreError::from(err);
    assert!(matches!(core, CoreError::AgentUpstream { status: 500, .. }));
    assert!(core.is_transient());
}

#[tokio::test]
async fn the_tagged_shape_gives_its_message_or_its_tag() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/question/que_nonexistent/reply"))
        .respond_with(json_error(404, fixture("error_question_reply_404.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(json_error(400, fixture("error_session_create_bad_type_400.json")))
        .mount(&server)
        .await;
    let client = client(&server);

    let err = client
        .reply_question("/w", "que_nonexistent", &[vec!["Blue".into()]])
        .await
        .expect_err("404");
    match err {
        Error::NotFound { what, id, message } => {
            assert_eq!((what, id.as_str()), ("question", "que_nonexistent"));
            assert_eq!(message, "Question request not found: que_nonexistent");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // `{"_tag":"BadRequest"}` has no message at all: the tag is what we can show.
    let err = client.create_session("/w", "t").await.expect_err("400");
    match &err {
        Error::Upstream { status: 400, message } => assert_eq!(message, "BadRequest"),
        other => panic!("expected Upstream 400, got {other:?}"),
    }
    assert!(!err.is_transient());
}

#[tokio::test]
async fn an_html_error_page_is_upstream_without_the_html() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(
            b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            "text/html",
        ))
        .mount(&server)
        .await;
    let err = client(&server).session("ses_1").await.expect_err("502");
    match &err {
        Error::Upstream { status: 502, message } => {
            assert!(message.contains("HTML error page"), "{message}");
            assert!(!message.contains("<html>"), "{message}");
        }
        other => panic!("expected Upstream 502, got {other:?}"),
    }
}

#[tokio::test]
async fn a_plain_text_error_body_is_shown_briefly() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1/prompt_async"))
        .respond_with(ResponseTemplate::new(415).set_body_raw(
            b"Unsupported content-type: application/x-www-form-urlencoded".to_vec(),
            "text/plain",
        ))
        .mount(&server)
        .await;
    let err = client(&server)
        .send_prompt(&session_ref("ses_1", "/w"), "hi", None)
        .await
        .expect_err("415");
    match err {
        Error::Upstream { status: 415, message } => {
            assert!(message.contains("Unsupported content-type"), "{message}")
        }
        other => panic!("expected Upstream 415, got {other:?}"),
    }
}

#[tokio::test]
async fn html_with_200_where_json_is_expected_is_an_unsupported_server() {
    // What a 1.x client sees from OpenCode 2.x, whose API moved under /api/.
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1/message")).respond_with(html_page()).mount(&server).await;
    let err = client(&server).messages(&session_ref("ses_1", "/w"), 10).await.expect_err("HTML");
    match &err {
        Error::Unsupported { found, tested } => {
            assert!(found.contains("GET /session/ses_1/message"), "{found}");
            assert!(found.contains("OpenCode 2.x"), "{found}");
            assert_eq!(*tested, "1.18.34");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let core = CoreError::from(err);
    assert!(matches!(core, CoreError::UnsupportedAgentServer { .. }), "{core:?}");
    assert!(!core.is_transient());
    assert!(core.to_string().contains("tested with OpenCode 1.18.34"), "{core}");
}

#[tokio::test]
async fn malformed_json_is_an_unexpected_response() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1"))
        .respond_with(json_body("{\"id\": \"ses_1\","))
        .mount(&server)
        .await;
    let err = client(&server).session("ses_1").await.expect_err("malformed");
    assert!(matches!(err, Error::UnexpectedResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn a_json_value_that_is_not_a_list_is_an_unexpected_response() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1/message"))
        .respond_with(json_body("{\"hello\":1}"))
        .mount(&server)
        .await;
    let err =
        client(&server).messages(&session_ref("ses_1", "/w"), 0).await.expect_err("not a list");
    assert!(matches!(err, Error::UnexpectedResponse { .. }), "{err:?}");
}

#[tokio::test]
async fn a_slow_server_times_out_as_a_transient_error() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1"))
        .respond_with(json_body(fixture("session_get.json")).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let mut settings = settings(&server);
    settings.request_timeout = Duration::from_millis(200);
    let client = OpencodeClient::new(settings).expect("valid");
    let err = client.session("ses_1").await.expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    let core = CoreError::from(err);
    assert!(matches!(core, CoreError::AgentUnavailable { .. }) && core.is_transient());
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let client =
        OpencodeClient::new(openloom_opencode::Settings::new(format!("http://127.0.0.1:{port}")))
            .expect("valid");
    let err = client.session("ses_1").await.expect_err("refused");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(matches!(CoreError::from(err), CoreError::AgentUnavailable { .. }));
}

#[tokio::test]
async fn a_malformed_session_id_is_not_found_without_asking_the_server() {
    // Real OpenCode answers 500 UnknownError for ids without the `ses` prefix.
    let server = MockServer::start().await;
    let err = client(&server).session("foo").await.expect_err("bad id");
    assert!(matches!(err, Error::NotFound { what: "session", .. }), "{err:?}");
    let received = server.received_requests().await.expect("recording on");
    assert!(received.is_empty(), "{received:?}");
}

#[tokio::test]
async fn credentials_go_in_a_header_and_never_into_debug_or_errors() {
    let server = MockServer::start().await;
    // base64("opencode:pa55-w0rd-never-shown")
    Mock::given(header("authorization", "Basic b3BlbmNvZGU6cGE1NS13MHJkLW5ldmVyLXNob3du"))
        .and(path("/session/ses_1"))
        .respond_with(json_body(fixture("session_get.json")))
        .mount(&server)
        .await;
    Mock::given(path("/session/ses_2"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let mut settings = settings(&server);
    settings.password = Some(Secret::new(PASSWORD));
    let client = OpencodeClient::new(settings.clone()).expect("valid");

    client.session("ses_1").await.expect("authorised request matches the header");
    let err = client.session("ses_2").await.expect_err("401");
    let core = CoreError::from(client.session("ses_2").await.expect_err("401"));
    let shown = format!("{client:?} {settings:?} {err:?} {err} {core:?} {core}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("***"), "{shown}");
}

/// Only the server's message is used from an error body, so a huge (or endless)
/// one must neither fill memory nor hold the call until the request timeout.
#[tokio::test]
async fn an_endless_error_body_is_cut_short() {
    let head = "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
    let (uri, server) = raw_server(head, &[b'x'; 16 * 1024], usize::MAX, AfterBody::HoldOpen).await;
    let mock = MockServer::start().await; // only for settings' shape
    let mut settings = settings(&mock);
    settings.base_url = uri;
    settings.request_timeout = Duration::from_secs(4);
    let client = OpencodeClient::new(settings).expect("valid");
    let started = Instant::now();
    let err = client.session("ses_1").await.expect_err("500");
    assert!(started.elapsed() < Duration::from_secs(2), "read for {:?}", started.elapsed());
    match &err {
        Error::Upstream { status: 500, message } => {
            assert!(message.starts_with("Internal Server Error: xxx"), "{message}");
            assert!(message.len() < 300, "summarised: {} bytes", message.len());
        }
        other => panic!("expected Upstream 500, got {other:?}"),
    }
    server.abort();
}

#[tokio::test]
async fn an_oversized_answer_is_refused_not_buffered() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    // Far more than any real answer, but bounded, so a client without a limit
    // times out instead of exhausting memory.
    let (uri, server) = raw_server(head, &[b' '; 64 * 1024], 160 << 20, AfterBody::HoldOpen).await;
    let mock = MockServer::start().await;
    let mut settings = settings(&mock);
    settings.base_url = uri;
    settings.request_timeout = Duration::from_secs(20);
    let client = OpencodeClient::new(settings).expect("valid");
    let err = client.messages(&session_ref("ses_1", "/w"), 0).await.expect_err("too big");
    match &err {
        Error::UnexpectedResponse { message } => {
            assert!(message.contains("more than"), "{message}")
        }
        other => panic!("expected UnexpectedResponse, got {other:?}"),
    }
    server.abort();
}
