//! Listing across projects, the project cache, and the session lifecycle calls.

use std::time::Duration;

use openloom_core::{
    Action, AgentServer, Answer, Delivery, PendingRequest, PermissionRule, RequestKind,
};
use openloom_opencode::{Error, OpencodeClient};
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{client, fixture, html_page, json_body, json_error, session_ref, settings};

fn projects_a_b_and_root() -> String {
    json!([
        {"id": "p1", "worktree": "/a", "time": {"created": 1}},
        {"id": "p2", "worktree": "/b", "time": {"created": 1}},
        {"id": "global", "worktree": "/", "time": {"created": 1}},
    ])
    .to_string()
}

#[tokio::test]
async fn sessions_are_listed_per_worktree_and_deduplicated() {
    let server = MockServer::start().await;
    Mock::given(path("/project"))
        .respond_with(json_body(projects_a_b_and_root()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/session"))
        .and(query_param_is_missing("directory"))
        .respond_with(json_body(fixture("session_list.json")))
        .mount(&server)
        .await;
    // Contains the default directory's session again, an archived and a child session.
    Mock::given(path("/session"))
        .and(query_param("directory", "/a"))
        .respond_with(json_body(fixture("session_list_after_archive.json")))
        .mount(&server)
        .await;
    // Odd shapes: wrapped list, `sessionID`, `cwd`, `parentId`, times in seconds.
    let odd = json!({"data": [{"sessionID": "ses_odd", "cwd": "/b", "parentId": "ses_dec89fd88ffemby5jeGJDnPC5f",
                               "time": {"created": 1795622000, "updated": 1795622001}}]});
    Mock::given(path("/session"))
        .and(query_param("directory", "/b"))
        .respond_with(json_body(odd.to_string()))
        .mount(&server)
        .await;
    // `/` would make OpenCode start an instance on the whole file system.
    Mock::given(path("/session"))
        .and(query_param("directory", "/"))
        .respond_with(json_body("[]"))
        .expect(0)
        .mount(&server)
        .await;

    let sessions = client(&server).list_sessions().await.expect("listed");
    let ids: Vec<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 6, "{ids:?}");
    // Newest first, across directories.
    assert!(sessions.windows(2).all(|w| w[0].updated_at >= w[1].updated_at), "{ids:?}");

    let odd = sessions.iter().find(|s| s.id == "ses_odd").expect("odd session read");
    assert_eq!(odd.directory, "/b");
    assert_eq!(odd.parent_id.as_deref(), Some("ses_dec89fd88ffemby5jeGJDnPC5f"));
    assert_eq!(odd.created_at.map(|t| t.timestamp()), Some(1795622000));
    let archived = sessions
        .iter()
        .find(|s| s.id == "ses_dec884e47ffewFqptbdhAnOL35")
        .expect("archived listed");
    assert_eq!(archived.archived_at.map(|t| t.timestamp_millis()), Some(1795623000000));
    let child =
        sessions.iter().find(|s| s.id == "ses_dec884e6bffe9RiEtQLfYup8za").expect("child listed");
    assert_eq!(child.parent_id.as_deref(), Some("ses_dec884f12ffe5xSUmHCqm7mFZP"));
    server.verify().await;
}

#[tokio::test]
async fn failing_projects_fall_back_to_the_default_directory() {
    for projects in [json_error(500, fixture("error_session_get_bad_id_500.json")), html_page()] {
        let server = MockServer::start().await;
        Mock::given(path("/project")).respond_with(projects).mount(&server).await;
        Mock::given(path("/session"))
            .and(query_param_is_missing("directory"))
            .respond_with(json_body(fixture("session_list.json")))
            .expect(1)
            .mount(&server)
            .await;
        let sessions = client(&server).list_sessions().await.expect("fallback works");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].id, "ses_dec89fd88ffemby5jeGJDnPC5f");
        assert_eq!(sessions[0].title, "t1");
        server.verify().await;
    }
}

#[tokio::test]
async fn one_failing_worktree_does_not_hide_the_others_but_all_failing_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(path("/project"))
        .respond_with(json_body(projects_a_b_and_root()))
        .mount(&server)
        .await;
    Mock::given(path("/session"))
        .and(query_param("directory", "/a"))
        .respond_with(json_body(fixture("session_list.json")))
        .mount(&server)
        .await;
    Mock::given(path("/session")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let sessions = client(&server).list_sessions().await.expect("partial result");
    assert_eq!(sessions.len(), 1);

    let server = MockServer::start().await;
    Mock::given(path("/project"))
        .respond_with(json_body(projects_a_b_and_root()))
        .mount(&server)
        .await;
    Mock::given(path("/session")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let err = client(&server).list_sessions().await.expect_err("nothing listed");
    assert!(matches!(err, Error::Upstream { status: 503, .. }), "{err:?}");
}

#[tokio::test]
async fn projects_are_cached_and_refreshed_once_at_a_time() {
    let server = MockServer::start().await;
    Mock::given(path("/project"))
        .respond_with(json_body(fixture("project_list.json")).set_delay(Duration::from_millis(100)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let calls = futures::future::join_all((0..5).map(|_| client.projects())).await;
    for projects in calls {
        let projects = projects.expect("listed");
        assert_eq!(projects.len(), 1);
        assert_eq!(projects[0].worktree, "/home/dev/project");
        assert_eq!(projects[0].id, "global");
    }
    client.projects().await.expect("cached");
    server.verify().await;
}

#[tokio::test]
async fn a_failed_refresh_serves_the_stale_project_list() {
    let server = MockServer::start().await;
    Mock::given(path("/project"))
        .respond_with(json_body(fixture("project_list.json")))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/project")).respond_with(ResponseTemplate::new(500)).mount(&server).await;
    let mut settings = settings(&server);
    settings.project_ttl = Duration::ZERO;
    let client = OpencodeClient::new(settings).expect("valid");
    assert_eq!(client.projects().await.expect("fresh").len(), 1);
    assert_eq!(client.projects().await.expect("stale").len(), 1);
    assert_eq!(server.received_requests().await.expect("recorded").len(), 2);
}

#[tokio::test]
async fn create_session_posts_title_in_the_directory() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .and(query_param("directory", "/home/dev/project"))
        .and(body_json(json!({"title": "research-1"})))
        .respond_with(json_body(fixture("session_create.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let session = AgentServer::create_session(&client, "/home/dev/project", "research-1")
        .await
        .expect("created");
    assert_eq!(session.id, "ses_dec884f12ffe5xSUmHCqm7mFZP");
    assert_eq!(session.title, "research-1");
    assert_eq!(session.directory, "/home/dev/project");
    assert_eq!(session.created_at.map(|t| t.timestamp_millis()), Some(1795622940909));
    assert_eq!(session.parent_id, None);
    server.verify().await;
}

#[tokio::test]
async fn a_session_is_created_with_the_tasks_ruleset_in_opencodes_shape() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .and(body_json(json!({
            "title": "t",
            "permission": [
                {"permission": "bash", "pattern": "cargo *", "action": "allow"},
                {"permission": "question", "pattern": "*", "action": "deny"},
            ],
        })))
        .respond_with(json_body(fixture("session_create.json")))
        .expect(1)
        .mount(&server)
        .await;
    let rules = [
        PermissionRule::new("bash", "cargo *", Action::Allow),
        PermissionRule::new("question", "*", Action::Deny),
    ];
    AgentServer::create_session_with(&client(&server), "/w", "t", &rules).await.expect("created");
    server.verify().await;
}

#[tokio::test]
async fn answers_reach_the_reply_routes_and_a_vanished_request_is_not_pending() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/permission/per_1/reply"))
        .and(body_json(json!({"reply": "reject", "message": "no"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(true))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/question/que_1/reply"))
        .and(body_json(json!({"answers": [["Blue"]]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(true))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/question/que_gone/reject"))
        .respond_with(json_error(
            404,
            r#"{"_tag":"QuestionNotFoundError","requestID":"que_gone","message":"Question request not found: que_gone"}"#,
        ))
        .mount(&server)
        .await;
    let client = client(&server);
    let request = |id: &str, kind: RequestKind| PendingRequest {
        id: id.into(),
        session_id: "ses_1".into(),
        kind,
        asked_at: None,
    };
    let permission = RequestKind::Permission { permission: "bash".into(), patterns: vec![] };
    let question = RequestKind::Question { questions: vec![] };
    let deny = Answer::Deny { message: Some("no".into()) };
    let delivered = client.answer_request("/w", &request("per_1", permission), &deny).await;
    assert_eq!(delivered.expect("sent"), Delivery::Delivered);
    let blue = Answer::Choose { answers: vec![vec!["Blue".into()]] };
    let delivered = client.answer_request("/w", &request("que_1", question.clone()), &blue).await;
    assert_eq!(delivered.expect("sent"), Delivery::Delivered);
    let gone = client.answer_request("/w", &request("que_gone", question), &Answer::Dismiss).await;
    assert_eq!(gone.expect("a typed outcome"), Delivery::NotPending);
    server.verify().await;
}

#[tokio::test]
async fn find_session_maps_missing_and_malformed_ids_to_none() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_dec884f12ffe5xSUmHCqm7mFZP"))
        .respond_with(json_body(fixture("session_get.json")))
        .mount(&server)
        .await;
    Mock::given(path("/session/ses_gone"))
        .respond_with(json_error(404, fixture("session_get_404.json")))
        .mount(&server)
        .await;
    Mock::given(path("/session/ses_broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let client = client(&server);
    let found = client.find_session("ses_dec884f12ffe5xSUmHCqm7mFZP").await.expect("ok");
    assert_eq!(found.map(|s| s.id), Some("ses_dec884f12ffe5xSUmHCqm7mFZP".to_owned()));
    assert_eq!(client.find_session("ses_gone").await.expect("ok"), None);
    assert_eq!(client.find_session("not-a-session-id").await.expect("ok"), None);
    let err = client.find_session("ses_broken").await.expect_err("500 is not 'missing'");
    assert!(err.is_transient(), "{err:?}");
}

fn archived_value(request: &Request) -> Option<i64> {
    let body: serde_json::Value = serde_json::from_slice(&request.body).ok()?;
    body.get("time")?.get("archived")?.as_i64()
}

#[tokio::test]
async fn archive_and_unarchive_patch_time_archived() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/session/ses_dec884e47ffewFqptbdhAnOL35"))
        .and(query_param("directory", "/w"))
        .and(|r: &Request| archived_value(r).is_some_and(|at| at > 1_700_000_000_000))
        .respond_with(json_body(fixture("session_patch_archive.json")))
        .expect(1)
        .mount(&server)
        .await;
    // OpenCode ignores `archived: null`; zero is the only way back.
    Mock::given(method("PATCH"))
        .and(path("/session/ses_dec884e47ffewFqptbdhAnOL35"))
        .and(|r: &Request| archived_value(r) == Some(0))
        .respond_with(json_body(fixture("session_create.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let session = session_ref("ses_dec884e47ffewFqptbdhAnOL35", "/w");
    let archived = client.set_archived(&session, true).await.expect("archived");
    assert_eq!(archived.archived_at.map(|t| t.timestamp_millis()), Some(1795623000000));
    let restored = client.set_archived(&session, false).await.expect("unarchived");
    assert_eq!(restored.archived_at, None);
    server.verify().await;
}

#[tokio::test]
async fn delete_and_abort_hit_their_routes() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/session/ses_1"))
        .and(query_param("directory", "/w"))
        .respond_with(json_body("true"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/session/ses_1"))
        .respond_with(json_error(404, fixture("session_get_404.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/session/ses_1/abort"))
        .and(query_param("directory", "/w"))
        .respond_with(json_body("true"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let session = session_ref("ses_1", "/w");
    client.delete_session(&session).await.expect("deleted");
    let again = client.delete_session(&session).await.expect_err("already gone");
    assert!(matches!(again, Error::NotFound { what: "session", .. }), "{again:?}");
    AgentServer::abort(&client, &session).await.expect("aborted");
    server.verify().await;
}
