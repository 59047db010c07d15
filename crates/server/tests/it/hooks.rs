//! `POST /api/hooks/github` with deliveries shaped like GitHub's documented `issues`
//! event: signed, unsigned, wrongly signed, replayed, unlabeled, for an unknown
//! repository, with a spec block or a prompt body, and with no secret configured.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use openloom_core::TaskQuery;
use openloom_server::Secret;
use openloom_sources::GithubConfig;
use serde_json::{Value, json};

use crate::common::{Fixture, HOST, Reply, token_config};

const SECRET: &str = "It's a Secret to Everybody";
const PATH: &str = "/api/hooks/github";

fn labeled() -> Value {
    serde_json::from_str(include_str!("../../../sources/tests/fixtures/issues-labeled.json"))
        .expect("fixture")
}

/// Fixes the repository's directory: the fixture's workspace is only known once built.
async fn hooked() -> Fixture {
    // The workspace path depends on the fixture's temp dir, so build one, then map
    // its own workspace.
    let fx = Fixture::with_config(token_config()).await;
    let ws = fx.ws();
    let mut config = token_config();
    config.github = Some(GithubConfig {
        label: "openloom".into(),
        repos: BTreeMap::from([("octo/hello".to_owned(), ws)]),
    });
    config.github_secret = Some(Secret::new(SECRET));
    fx.reconfigured(config).await
}

async fn deliver(
    fx: &Fixture,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<String>,
) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "GitHub-Hookshot/044aadd")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery)
        .header("X-GitHub-Hook-ID", "292430182");
    if let Some(signature) = signature {
        builder = builder.header("X-Hub-Signature-256", signature);
    }
    fx.call(builder.body(Body::from(body.to_vec())).expect("request")).await
}

async fn signed(fx: &Fixture, event: &str, delivery: &str, payload: &Value) -> Reply {
    let body = payload.to_string().into_bytes();
    let signature = openloom_core::signature::sign(SECRET.as_bytes(), &body);
    deliver(fx, event, delivery, &body, Some(signature)).await
}

async fn task_names(fx: &Fixture) -> Vec<(String, String)> {
    let tasks = fx.state.store().list_tasks(&TaskQuery::newest(50)).await.expect("list");
    tasks.into_iter().map(|t| (t.name, t.spec.goal)).collect()
}

/// Waits until `count` tasks exist (the route answers before the task is created).
async fn wait_for_tasks(fx: &Fixture, count: usize) -> Vec<(String, String)> {
    let start = Instant::now();
    loop {
        let names = task_names(fx).await;
        if names.len() >= count {
            return names;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "only {names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A little longer than the intake needs, to show nothing more arrives.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_signed_labeled_issue_becomes_a_prompt_task_without_the_api_token() {
    let fx = hooked().await;
    let reply = signed(&fx, "issues", "d-1", &labeled()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(reply.json["queued"], "Add a greeting file");
    let tasks = wait_for_tasks(&fx, 1).await;
    assert_eq!(
        tasks,
        vec![(
            "Add a greeting file".to_owned(),
            "Please create hello.txt saying hello.\n\nThanks!".to_owned()
        )]
    );
    let task = &fx.state.store().list_tasks(&TaskQuery::newest(1)).await.expect("list")[0];
    assert_eq!(task.workspace, fx.ws());
    // The task's page names its origin (with the token, which every other route
    // still needs).
    assert_eq!(fx.get("/api/tasks").await.status, StatusCode::UNAUTHORIZED);
    let detail = Request::builder()
        .uri(format!("/api/tasks/{}", task.id))
        .header(header::HOST, HOST)
        .header(header::AUTHORIZATION, format!("Bearer {}", crate::common::TOKEN))
        .body(Body::empty())
        .expect("request");
    let detail = fx.call(detail).await;
    assert_eq!(detail.json["origin"], "github:d-1", "{}", detail.text);
}

#[tokio::test]
async fn a_yaml_block_in_the_issue_is_the_spec() {
    let fx = hooked().await;
    let mut payload = labeled();
    payload["issue"]["body"] = json!(
        "Details.\r\n\r\n```yaml\r\ngoal: create hello.txt\r\nsteps:\r\n  - write it\r\n```\r\n"
    );
    let reply = signed(&fx, "issues", "d-spec", &payload).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    wait_for_tasks(&fx, 1).await;
    let task = &fx.state.store().list_tasks(&TaskQuery::newest(1)).await.expect("list")[0];
    assert_eq!(
        (task.name.as_str(), task.spec.goal.as_str()),
        ("Add a greeting file", "create hello.txt")
    );
    assert_eq!(task.spec.steps.len(), 1);

    payload["issue"]["body"] = json!("```yaml\ngoal: g\nsteps: 3\n```");
    let reply = signed(&fx, "issues", "d-bad-spec", &payload).await;
    let detail = reply.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("octo/hello#7") && detail.contains("steps"), "{detail}");
}

#[tokio::test]
async fn unsigned_and_wrongly_signed_deliveries_are_401_and_make_no_task() {
    let fx = hooked().await;
    let body = labeled().to_string().into_bytes();
    let reply = deliver(&fx, "issues", "d-unsigned", &body, None).await;
    assert!(reply.error(StatusCode::UNAUTHORIZED).contains("X-Hub-Signature-256 is missing"));
    assert_eq!(reply.json["error"], "bad_signature");

    let wrong = openloom_core::signature::sign(b"another secret", &body);
    let reply = deliver(&fx, "issues", "d-wrong", &body, Some(wrong)).await;
    assert!(reply.error(StatusCode::UNAUTHORIZED).contains("does not match"));

    // The right signature of another body.
    let other = openloom_core::signature::sign(SECRET.as_bytes(), b"{}");
    let reply = deliver(&fx, "issues", "d-other", &body, Some(other)).await;
    reply.error(StatusCode::UNAUTHORIZED);
    let reply = deliver(&fx, "issues", "d-junk", &body, Some("sha1=abc".into())).await;
    reply.error(StatusCode::UNAUTHORIZED);
    settle().await;
    assert!(task_names(&fx).await.is_empty());
}

#[tokio::test]
async fn a_replayed_delivery_makes_one_task() {
    let fx = hooked().await;
    for _ in 0..3 {
        let reply = signed(&fx, "issues", "72d3162e-cc78-11e3-81ab-4c9367dc0958", &labeled()).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    }
    wait_for_tasks(&fx, 1).await;
    settle().await;
    assert_eq!(task_names(&fx).await.len(), 1, "redeliveries of one id are one task");
    // A new delivery (the label removed and added again) is new work.
    signed(&fx, "issues", "another-delivery", &labeled()).await;
    wait_for_tasks(&fx, 2).await;
}

#[tokio::test]
async fn unlabeled_issues_other_actions_and_events_are_ignored_with_a_reason() {
    let fx = hooked().await;
    let mut payload = labeled();
    payload["label"]["name"] = json!("bug");
    let reply = signed(&fx, "issues", "d-bug", &payload).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert!(reply.json["ignored"].as_str().expect("reason").contains("\"openloom\""));

    let mut payload = labeled();
    payload["action"] = json!("opened");
    payload["issue"]["labels"] = json!([]);
    let reply = signed(&fx, "issues", "d-opened", &payload).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.json["ignored"].is_string(), "{}", reply.text);

    payload["action"] = json!("edited");
    let reply = signed(&fx, "issues", "d-edited", &payload).await;
    assert!(reply.json["ignored"].as_str().expect("reason").contains("edited"));

    let reply = signed(&fx, "push", "d-push", &json!({"ref": "refs/heads/main"})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.json["ignored"].as_str().expect("reason").contains("Issues"));

    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 292430182});
    let reply = signed(&fx, "ping", "d-ping", &ping).await;
    assert_eq!((reply.status, reply.json["event"].clone()), (StatusCode::OK, json!("ping")));
    settle().await;
    assert!(task_names(&fx).await.is_empty());
}

#[tokio::test]
async fn an_unknown_repository_is_422_saying_so() {
    let fx = hooked().await;
    let mut payload = labeled();
    payload["repository"]["full_name"] = json!("octo/elsewhere");
    let reply = signed(&fx, "issues", "d-elsewhere", &payload).await;
    let detail = reply.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("octo/elsewhere") && detail.contains("github.repos"), "{detail}");
    settle().await;
    assert!(task_names(&fx).await.is_empty());
}

#[tokio::test]
async fn without_a_secret_the_route_is_refused_clearly() {
    let fx = hooked().await;
    let mut config = token_config();
    config.github = fx.state.config().github.clone();
    let fx = fx.reconfigured(config).await;
    let reply = signed(&fx, "issues", "d-1", &labeled()).await;
    let detail = reply.error(StatusCode::FORBIDDEN);
    assert!(detail.contains("OPENLOOM_GITHUB_WEBHOOK_SECRET"), "{detail}");
    assert_eq!(reply.json["error"], "hook_disabled");

    let mut config = token_config();
    config.github_secret = Some(Secret::new(SECRET));
    let fx = fx.reconfigured(config).await;
    let detail = signed(&fx, "issues", "d-2", &labeled()).await.error(StatusCode::FORBIDDEN);
    assert!(detail.contains("`github:`"), "{detail}");
    settle().await;
    assert!(task_names(&fx).await.is_empty());
}

#[tokio::test]
async fn the_host_check_still_applies() {
    let fx = hooked().await;
    let body = labeled().to_string().into_bytes();
    let signature = openloom_core::signature::sign(SECRET.as_bytes(), &body);
    let request = Request::builder()
        .method(Method::POST)
        .uri(PATH)
        .header(header::HOST, "evil.example")
        .header("X-GitHub-Event", "issues")
        .header("X-GitHub-Delivery", "d-host")
        .header("X-Hub-Signature-256", signature)
        .body(Body::from(body))
        .expect("request");
    fx.call(request).await.error(StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn a_repository_directory_outside_the_roots_is_422() {
    let fx = Fixture::with_config(token_config()).await;
    let outside = fx.outside.to_string_lossy().into_owned();
    let mut config = token_config();
    config.github = Some(GithubConfig {
        label: "openloom".into(),
        repos: BTreeMap::from([("octo/hello".to_owned(), outside)]),
    });
    config.github_secret = Some(Secret::new(SECRET));
    let fx = fx.reconfigured(config).await;
    let detail =
        signed(&fx, "issues", "d-out", &labeled()).await.error(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail.contains("outside"), "{detail}");
    settle().await;
    assert!(task_names(&fx).await.is_empty());
}
