//! `POST /api/tasks/{id}/requests/{requestId}`: a person's answer reaches OpenCode, is
//! audited and clears the request; what cannot be answered is a 400, 404 or 409 with
//! its reason, never a 500; the route sits behind the same guard as every write.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Utc;
use openloom_core::{
    EventPayload, LogQuery, PendingRequest, Question, RequestKind, Task, TaskId, TaskSpec,
    TaskStatus, TaskUpdate,
};
use serde_json::json;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::*;

fn question() -> PendingRequest {
    PendingRequest {
        id: "que_1".into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Question {
            questions: vec![Question {
                question: "Which file name should I use?".into(),
                options: vec!["a.txt".into(), "b.txt".into()],
            }],
        },
        asked_at: None,
    }
}

/// A waiting task in the fixture's workspace holding `pending`; returns its id.
async fn waiting_task(fx: &Fixture, pending: Vec<PendingRequest>) -> String {
    let id = TaskId::from("task_waits0000001");
    let spec = TaskSpec::new("asks", fx.ws(), "g");
    fx.state.store().create_task(&Task::new(id.clone(), spec, Utc::now())).await.expect("create");
    let update = TaskUpdate {
        status: Some(TaskStatus::Waiting),
        pending_requests: Some(pending),
        ..TaskUpdate::default()
    };
    fx.state.store().update_task(&id, &update, None).await.expect("update");
    id.to_string()
}

async fn log_summaries(fx: &Fixture, id: &str) -> Vec<String> {
    let log =
        fx.state.store().check_log(&TaskId::from(id), &LogQuery::default()).await.expect("log");
    log.into_iter().map(|e| e.entry.summary).collect()
}

#[tokio::test]
async fn a_dashboard_answer_reaches_opencode_is_audited_and_announced() {
    let fx = Fixture::new().await;
    Mock::given(method("POST"))
        .and(path("/question/que_1/reply"))
        .and(body_json(json!({"answers": [["b.txt"]]})))
        .respond_with(json_reply(json!(true)))
        .expect(1)
        .mount(&fx.opencode)
        .await;
    let id = waiting_task(&fx, vec![question()]).await;
    let mut events = fx.state.harness().bus().receiver();
    let reply = fx
        .post(
            &format!("/api/tasks/{id}/requests/que_1"),
            json!({"answers": [["b.txt"]], "via": "dashboard"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["task"]["pending_requests"], json!([]));
    assert_eq!(reply.json["task"]["status"], "running");
    assert_eq!(reply.json["request"]["id"], "que_1");
    let audit = r#"Answered question: "Which file name should I use?": answered "b.txt", by a person (dashboard)"#;
    assert_eq!(reply.json["summary"], audit);
    assert_eq!(log_summaries(&fx, &id).await, vec![audit.to_owned()]);
    let event = events.try_recv().expect("the answer is announced");
    assert_eq!(event.task_id.as_str(), id);
    assert!(
        matches!(&event.payload, EventPayload::Updated { status: TaskStatus::Running, summary, .. } if summary == audit),
        "{event:?}"
    );
    assert_eq!(
        event.store_version,
        reply.json["store_version"].as_u64().expect("version"),
        "the event carries the write's version"
    );
}

#[tokio::test]
async fn a_request_opencode_no_longer_holds_is_a_409_and_a_second_answer_too() {
    let fx = Fixture::new().await;
    Mock::given(method("POST"))
        .and(path("/question/que_1/reply"))
        .respond_with(not_found_reply("que_1"))
        .mount(&fx.opencode)
        .await;
    let id = waiting_task(&fx, vec![question()]).await;
    let uri = format!("/api/tasks/{id}/requests/que_1");
    let gone = fx.post(&uri, json!({"answers": [["a.txt"]]})).await;
    let detail = gone.error(StatusCode::CONFLICT);
    assert!(detail.contains("no longer pending"), "{detail}");
    let summaries = log_summaries(&fx, &id).await;
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert!(
        summaries[0].contains("no longer pending") && summaries[0].contains("(API)"),
        "{summaries:?}"
    );
    let task = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task.json["task"]["pending_requests"], json!([]), "the stale request is cleared");

    let again = fx.post(&uri, json!({"answers": [["a.txt"]]})).await;
    assert!(again.error(StatusCode::CONFLICT).contains("no longer pending"), "{}", again.text);
}

#[tokio::test]
async fn what_cannot_be_answered_says_why_and_reaches_no_opencode() {
    let fx = Fixture::new().await;
    let id = waiting_task(&fx, vec![question()]).await;
    let uri = format!("/api/tasks/{id}/requests/que_1");
    let misfit = fx.post(&uri, json!({"answers": [["c.txt"]]})).await;
    let detail = misfit.error(StatusCode::BAD_REQUEST);
    assert!(detail.contains(r#""a.txt", "b.txt""#), "lists the options: {detail}");
    let kind = fx.post(&uri, json!({"reply": "allow"})).await;
    assert!(kind.error(StatusCode::BAD_REQUEST).contains("is a question"), "{}", kind.text);
    let both = fx.post(&uri, json!({"reply": "allow", "dismiss": true})).await;
    assert!(both.error(StatusCode::BAD_REQUEST).contains("exactly one"), "{}", both.text);
    let unknown_field = fx.post(&uri, json!({"reply": "allow", "extra": 1})).await;
    assert_eq!(unknown_field.status.as_u16() / 100, 4, "{}", unknown_field.text);
    let other = fx.post(&format!("/api/tasks/{id}/requests/per_9"), json!({"dismiss": true})).await;
    assert!(other.error(StatusCode::NOT_FOUND).contains("per_9"), "{}", other.text);
    let task = fx.post("/api/tasks/task_none/requests/que_1", json!({"dismiss": true})).await;
    task.error(StatusCode::NOT_FOUND);
    assert_eq!(fx.opencode_requests().await, 0, "nothing was sent to OpenCode");
    assert!(log_summaries(&fx, &id).await.is_empty(), "nothing was logged");
}

#[tokio::test]
async fn an_unreachable_opencode_is_a_503_not_a_500() {
    let fx = Fixture::new().await;
    Mock::given(method("POST"))
        .and(path("/question/que_1/reject"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(10)))
        .mount(&fx.opencode)
        .await;
    let id = waiting_task(&fx, vec![question()]).await;
    let reply = fx.post(&format!("/api/tasks/{id}/requests/que_1"), json!({"dismiss": true})).await;
    reply.error(StatusCode::SERVICE_UNAVAILABLE);
    let task = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task.json["task"]["pending_requests"][0]["id"], "que_1", "still pending");
}

#[tokio::test]
async fn answers_need_the_token_and_a_same_origin_page() {
    let fx = Fixture::with_config(token_config()).await;
    let id = waiting_task(&fx, vec![question()]).await;
    let uri = format!("/api/tasks/{id}/requests/que_1");
    let send = |headers: Vec<(&'static str, String)>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(&uri)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(json!({"dismiss": true}).to_string())).expect("request")
    };
    fx.call(send(vec![])).await.error(StatusCode::UNAUTHORIZED);
    let bearer = ("authorization", format!("Bearer {TOKEN}"));
    let foreign = vec![bearer.clone(), ("origin", "http://evil.example".to_owned())];
    fx.call(send(foreign)).await.error(StatusCode::FORBIDDEN);
    assert_eq!(fx.opencode_requests().await, 0, "nothing was sent to OpenCode");
    let task = fx.state.store().get_task(&TaskId::from(id.as_str())).await.expect("read");
    assert_eq!(task.expect("there").pending_requests, vec![question()]);
}
