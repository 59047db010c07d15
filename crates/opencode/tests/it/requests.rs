//! Permissions, questions, todos and diffs: pass-through and typed reads.

use openloom_opencode::PermissionReply;
use serde_json::json;
use wiremock::matchers::{body_json, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer};

use crate::common::{client, fixture, json_body, json_error, session_ref};

#[tokio::test]
async fn permissions_are_listed_and_answered() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/permission"))
        .and(query_param("directory", "/home/dev/ws2"))
        .respond_with(json_body(fixture("permission_list_pending.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/permission/per_21379fc94001JclEsh2MEE6TkR/reply"))
        .and(query_param("directory", "/home/dev/ws2"))
        .and(body_json(json!({"reply": "reject", "message": "use the write tool"})))
        .respond_with(json_body("true"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/permission/per_gone/reply"))
        .respond_with(json_error(404, fixture("error_permission_reply_404.json")))
        .mount(&server)
        .await;
    let client = client(&server);
    let pending = client.permissions("/home/dev/ws2").await.expect("listed");
    assert_eq!(pending.len(), 1);
    let request = &pending[0];
    assert_eq!(request.session_id, "ses_dec860f21ffe8KXd6784qdxMES");
    assert_eq!(request.permission, "bash");
    assert_eq!(request.patterns, ["echo hello > bash_out.txt", "ls"]);
    assert_eq!(request.always, ["echo *", "ls *"]);
    assert_eq!(request.metadata["command"], "echo hello > bash_out.txt && ls");

    client
        .reply_permission(
            "/home/dev/ws2",
            &request.id,
            PermissionReply::Reject,
            Some("use the write tool"),
        )
        .await
        .expect("answered");
    let err = client
        .reply_permission("/home/dev/ws2", "per_gone", PermissionReply::Once, None)
        .await
        .expect_err("404");
    assert!(
        matches!(&err, openloom_opencode::Error::NotFound { what: "permission request", message, .. }
            if message == "Permission request not found: per_nonexistent123"),
        "{err:?}"
    );
    server.verify().await;
}

#[tokio::test]
async fn questions_are_listed_answered_and_rejected() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/question"))
        .respond_with(json_body(fixture("question_list_pending.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/question/que_2137ad784001mxDIXWO96HdmdJ/reply"))
        .and(body_json(json!({"answers": [["Blue"]]})))
        .respond_with(json_body("true"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/question/que_2137ad784001mxDIXWO96HdmdJ/reject"))
        .respond_with(json_body("true"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let questions = client.questions("/w").await.expect("listed");
    assert_eq!(questions.len(), 1);
    assert_eq!(questions[0].session_id, "ses_dec852963ffejozb2wgMuFoP70");
    assert_eq!(questions[0].questions[0]["options"][1]["label"], "Blue");
    client
        .reply_question("/w", &questions[0].id, &[vec!["Blue".to_owned()]])
        .await
        .expect("answered");
    client.reject_question("/w", &questions[0].id).await.expect("rejected");
    server.verify().await;
}

#[tokio::test]
async fn todos_and_diffs_are_passed_through() {
    let server = MockServer::start().await;
    Mock::given(path("/session/ses_1/todo"))
        .and(query_param("directory", "/w"))
        .respond_with(json_body(fixture("session_todo.json")))
        .mount(&server)
        .await;
    let diff = json!([{"file": "bash_out.txt", "patch": "@@ -0,0 +1,1 @@\n+hello\n", "additions": 1, "deletions": 0, "status": "added"}]);
    Mock::given(path("/session/ses_1/diff"))
        .and(query_param("messageID", "msg_1"))
        .respond_with(json_body(diff.to_string()))
        .mount(&server)
        .await;
    // Without messageID OpenCode 1.18.34 always answers [].
    Mock::given(path("/session/ses_1/diff"))
        .and(query_param_is_missing("messageID"))
        .respond_with(json_body("[]"))
        .mount(&server)
        .await;
    let client = client(&server);
    let session = session_ref("ses_1", "/w");
    let todos = client.todos(&session).await.expect("todos");
    assert_eq!(todos.len(), 2);
    assert_eq!(todos[1]["status"], "in_progress");
    let turn = client.diff(&session, Some("msg_1")).await.expect("diff");
    assert_eq!(turn, diff.as_array().cloned().expect("array"));
    assert!(client.diff(&session, None).await.expect("diff").is_empty());
}

#[tokio::test]
async fn the_harness_sees_permissions_and_questions_as_pending_requests() {
    use openloom_core::{AgentServer, RequestKind};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/permission"))
        .and(query_param("directory", "/home/dev/ws2"))
        .respond_with(json_body(fixture("permission_list_pending.json")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/question"))
        .and(query_param("directory", "/home/dev/ws2"))
        .respond_with(json_body(fixture("question_list_pending.json")))
        .mount(&server)
        .await;
    let client = client(&server);
    let pending = AgentServer::pending_requests(&client, "/home/dev/ws2").await.expect("listed");
    let described: Vec<String> = pending.iter().map(|r| r.describe()).collect();
    assert_eq!(
        described,
        [
            r#"permission: bash "echo hello > bash_out.txt, ls""#,
            r#"question: "Which color do you prefer?""#
        ]
    );
    match &pending[1].kind {
        RequestKind::Question { questions } => assert_eq!(questions[0].options, ["Red", "Blue"]),
        other => panic!("expected a question, got {other:?}"),
    }
    assert_eq!(pending[1].session_id, "ses_dec852963ffejozb2wgMuFoP70");
}
