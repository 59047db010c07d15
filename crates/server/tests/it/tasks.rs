//! `/api/tasks`: creation from prompts, specs and plans; listing; operations; errors.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::common::*;

#[tokio::test]
async fn a_prompt_task_is_created_listed_and_read_with_its_log() {
    let fx = Fixture::new().await;
    let reply =
        fx.post("/api/tasks", json!({"prompt": "Fix the bug\nplease", "workspace": fx.ws()})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["ok"], true);
    assert_eq!(reply.json["status"], "pending");
    assert_eq!(reply.json["name"], "Fix the bug");
    assert_eq!(reply.json["watch"], false);
    assert_eq!(reply.json["sessionId"], Value::Null);
    let id = reply.json["taskId"].as_str().expect("id").to_owned();
    assert!(id.starts_with("task_"));

    let list = fx.get("/api/tasks").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json["tasks"][0]["id"], id);
    assert_eq!(list.json["tasks"][0]["workspace"], fx.ws());
    assert!(list.json["store_version"].as_u64().expect("version") >= 1);
    assert_eq!(list.json["next_cursor"], Value::Null);

    let detail = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.json["task"]["spec"]["initial_prompt"], "Fix the bug\nplease");
    assert!(detail.json["log"].as_array().expect("log").is_empty());

    let recent = fx.get("/api/workspaces/recent").await;
    assert_eq!(recent.json["workspaces"][0], fx.ws());
}

#[tokio::test]
async fn watched_prompts_specs_and_plans_make_the_right_specs() {
    let fx = Fixture::new().await;
    let watched = fx
        .post("/api/tasks", json!({"prompt": "keep going", "workspace": fx.ws(), "watch": true}))
        .await;
    assert_eq!(watched.json["watch"], true, "{}", watched.text);

    let yaml = format!(
        "name: Build\nworkspace: {}\ngoal: build it\nsteps:\n  - one\n  - two\nacceptance:\n  - tests pass\n",
        fx.ws()
    );
    let spec = fx.post("/api/tasks", json!({"spec": yaml})).await;
    assert_eq!(spec.status, StatusCode::OK, "{}", spec.text);
    assert_eq!((spec.json["steps"].clone(), spec.json["acceptance"].clone()), (json!(2), json!(1)));

    let markdown = "# Docs\n\n## Goal\nWrite docs\n\n## Steps\n1. outline\n2. write\n3. review\n";
    let md = fx
        .post("/api/tasks", json!({"spec": markdown, "format": "markdown", "workspace": fx.ws()}))
        .await;
    assert_eq!(md.status, StatusCode::OK, "{}", md.text);
    assert_eq!(md.json["steps"], 3);

    let plan = json!({"name": "Plan", "goal": "do it", "steps": [{"title": "a", "acceptance": ["x"]}, {"title": "b"}],
                      "global_acceptance": ["all good"]});
    let planned = fx.post("/api/tasks", json!({"plan": plan, "intent": "do it", "workspace": fx.ws(), "checkIntervalMinutes": 2})).await;
    assert_eq!(planned.status, StatusCode::OK, "{}", planned.text);
    assert_eq!(planned.json["steps"], 2);
    assert_eq!(planned.json["watch"], true);
    let id = planned.json["taskId"].as_str().expect("id");
    let detail = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(detail.json["task"]["check_interval_seconds"], 120);
    assert_eq!(detail.json["task"]["spec"]["acceptance"][0], "all good");
}

#[tokio::test]
async fn bad_bodies_are_4xx_json_errors() {
    let fx = Fixture::new().await;
    let detail = fx
        .post("/api/tasks", json!({"spec": "name: [unclosed"}))
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(detail.contains("invalid task spec"), "{detail}");
    fx.post("/api/tasks", json!({})).await.error(StatusCode::BAD_REQUEST);
    fx.post("/api/tasks", json!({"prompt": "  ", "workspace": fx.ws()}))
        .await
        .error(StatusCode::BAD_REQUEST);
    fx.post("/api/tasks", json!({"plan": "not an object", "workspace": fx.ws()}))
        .await
        .error(StatusCode::BAD_REQUEST);
    fx.post("/api/tasks", json!({"plan": {"goal": "g", "steps": []}, "workspace": fx.ws()}))
        .await
        .error(StatusCode::BAD_REQUEST);

    let unknown =
        fx.post("/api/tasks", json!({"prompt": "x", "workspace": fx.ws(), "rm_rf": true})).await;
    assert!(unknown.status.is_client_error(), "{}", unknown.text);
    assert!(unknown.json["detail"].as_str().expect("detail").contains("rm_rf"), "{}", unknown.text);

    let malformed = Request::builder()
        .method(Method::POST)
        .uri("/api/tasks")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"prompt\": "))
        .expect("request");
    fx.call(malformed).await.error(StatusCode::BAD_REQUEST);

    let no_type = Request::builder()
        .method(Method::POST)
        .uri("/api/tasks")
        .header(header::HOST, HOST)
        .body(Body::from(json!({"prompt": "x"}).to_string()))
        .expect("request");
    fx.call(no_type).await.error(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Intervals that would overflow the harness's schedule, however they are asked for.
    let spec = format!(
        "name: t\nworkspace: {}\ngoal: g\ncheck_interval_seconds: 100000000000000000\n",
        fx.ws()
    );
    for body in [
        json!({"prompt": "x", "workspace": fx.ws(), "checkIntervalSeconds": 100_000_000_000_000_000_i64}),
        json!({"prompt": "x", "workspace": fx.ws(), "checkIntervalMinutes": i64::MAX}),
        json!({"spec": spec}),
    ] {
        let detail = fx.post("/api/tasks", body).await.error(StatusCode::BAD_REQUEST);
        assert!(detail.contains("at most one year"), "{detail}");
    }

    let huge = "x".repeat(2 * 1024 * 1024);
    let too_large = fx.post("/api/tasks", json!({"prompt": huge, "workspace": fx.ws()})).await;
    too_large.error(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(fx.get("/api/tasks").await.json["tasks"].as_array().expect("tasks").is_empty());
}

#[tokio::test]
async fn workspaces_outside_the_roots_are_refused_however_spelled() {
    let fx = Fixture::new().await;
    let outside = path_text(&fx.outside);
    let dotdot = format!(
        "{}/project/../../{}",
        path_text(&fx.root),
        fx.outside.file_name().expect("name").to_string_lossy()
    );
    let link = fx.root.join("escape");
    std::os::unix::fs::symlink(&fx.outside, &link).expect("symlink");
    for workspace in
        [outside, dotdot, path_text(&link), "/definitely/not/here".to_owned(), String::new()]
    {
        let reply = fx.post("/api/tasks", json!({"prompt": "x", "workspace": workspace})).await;
        let detail = reply.error(StatusCode::BAD_REQUEST);
        assert!(!detail.is_empty());
    }
    let spec = format!(
        "name: t\nworkspace: {}\ngoal: g\nchecks:\n  - run: touch pwned\n",
        path_text(&link)
    );
    fx.post("/api/tasks", json!({"spec": spec})).await.error(StatusCode::BAD_REQUEST);
    assert!(fx.get("/api/tasks").await.json["tasks"].as_array().expect("tasks").is_empty());
}

#[tokio::test]
async fn pages_follow_the_cursor_and_filter_by_status() {
    let fx = Fixture::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(fx.create_prompt_task(&format!("task {i}")).await);
    }
    fx.post_empty(&format!("/api/tasks/{}/pause", ids[1])).await;

    let mut seen = Vec::new();
    let mut uri = "/api/tasks?limit=2".to_owned();
    loop {
        let page = fx.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for task in page.json["tasks"].as_array().expect("tasks") {
            seen.push(task["id"].as_str().expect("id").to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/tasks?limit=2&before={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let exact = fx.get("/api/tasks?limit=5").await;
    assert_eq!(exact.json["tasks"].as_array().expect("tasks").len(), 5);
    assert_eq!(exact.json["next_cursor"], Value::Null, "a full last page has no next page");

    let paused = fx.get("/api/tasks?status=paused").await;
    assert_eq!(paused.json["tasks"].as_array().expect("tasks").len(), 1);
    assert_eq!(paused.json["tasks"][0]["id"], ids[1]);
    let both = fx.get("/api/tasks?status=paused,pending").await;
    assert_eq!(both.json["tasks"].as_array().expect("tasks").len(), 5);

    fx.get("/api/tasks?status=done").await.error(StatusCode::BAD_REQUEST);
    fx.get("/api/tasks?limit=0").await.error(StatusCode::BAD_REQUEST);
    fx.get("/api/tasks?limit=abc").await.error(StatusCode::BAD_REQUEST);
    fx.get("/api/tasks?before=task_nope").await.error(StatusCode::BAD_REQUEST);
    fx.get("/api/tasks?sort=asc").await.error(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn operations_follow_the_lifecycle_and_refuse_what_does_not_fit() {
    let fx = Fixture::new().await;
    let id = fx.create_prompt_task("work").await;
    let base = format!("/api/tasks/{id}");

    let paused = fx.post_empty(&format!("{base}/pause")).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    assert_eq!(
        (paused.json["ok"].clone(), paused.json["taskId"].clone(), paused.json["status"].clone()),
        (json!(true), json!(id), json!("paused"))
    );
    assert!(paused.json["store_version"].as_u64().is_some());
    fx.post_empty(&format!("{base}/pause")).await.error(StatusCode::CONFLICT);

    let resumed = fx.post_empty(&format!("{base}/resume")).await;
    assert_eq!(resumed.json["status"], "pending", "{}", resumed.text);

    fx.delete(&base).await.error(StatusCode::CONFLICT);
    assert_eq!(fx.post_empty(&format!("{base}/complete")).await.json["status"], "completed");
    fx.post_empty(&format!("{base}/complete")).await.error(StatusCode::CONFLICT);
    assert_eq!(fx.post_empty(&format!("{base}/archive")).await.json["status"], "archived");

    let detail = fx.get(&base).await;
    let summaries: Vec<&str> = detail.json["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|e| e["summary"].as_str())
        .collect();
    assert_eq!(
        summaries,
        ["Paused by user", "Resumed by user", "Marked complete by user", "Archived by user"]
    );
    let page = fx.get(&format!("{base}?log_limit=2")).await;
    assert_eq!(page.json["log"].as_array().expect("log").len(), 2);
    let cursor = page.json["log_next_cursor"].as_i64().expect("cursor");
    let rest = fx.get(&format!("{base}?log_after={cursor}&log_limit=2")).await;
    assert_eq!(rest.json["log"][0]["summary"], "Marked complete by user");
    assert_eq!(rest.json["log"].as_array().expect("log").len(), 2);
    assert_eq!(rest.json["log_next_cursor"], Value::Null, "a full last page has no next page");

    let deleted = fx.delete(&base).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
    assert_eq!(deleted.json["taskId"], id);
    fx.get(&base).await.error(StatusCode::NOT_FOUND);
    for op in ["pause", "resume", "complete", "archive"] {
        fx.post_empty(&format!("/api/tasks/task_missing/{op}")).await.error(StatusCode::NOT_FOUND);
    }
    fx.delete("/api/tasks/task_missing").await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_task_can_drive_an_existing_session() {
    let fx = Fixture::new().await;
    fx.mount_session("ses_existing", &fx.ws()).await;
    let reply =
        fx.post("/api/tasks", json!({"prompt": "carry on", "sessionId": "ses_existing"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["sessionId"], "ses_existing");
    let id = reply.json["taskId"].as_str().expect("id");
    let task = fx.get(&format!("/api/tasks/{id}")).await.json["task"].clone();
    assert_eq!(task["active_session_id"], "ses_existing");
    assert_eq!(task["workspace"], fx.ws());

    Mock::given(method("GET"))
        .and(path("/session/ses_gone"))
        .respond_with(not_found_reply("ses_gone"))
        .mount(&fx.opencode)
        .await;
    fx.post("/api/tasks", json!({"prompt": "x", "sessionId": "ses_gone"}))
        .await
        .error(StatusCode::NOT_FOUND);
    fx.post("/api/tasks", json!({"prompt": "x", "sessionId": "not-a-session"}))
        .await
        .error(StatusCode::NOT_FOUND);

    // A session whose directory is outside the roots cannot be driven either.
    fx.mount_session("ses_outside", &path_text(&fx.outside)).await;
    fx.post("/api/tasks", json!({"prompt": "x", "sessionId": "ses_outside"}))
        .await
        .error(StatusCode::BAD_REQUEST);
}

fn plan_reply(text: &str) -> Value {
    let at = now_ms();
    json!({"info": {"id": "msg_plan", "role": "assistant", "time": {"created": at, "completed": at}},
           "parts": [{"type": "text", "text": text}]})
}

async fn mount_planning(fx: &Fixture, reply: Value) {
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(json_reply(session_json("ses_plan", &fx.ws(), 0)))
        .expect(1)
        .mount(&fx.opencode)
        .await;
    Mock::given(method("POST"))
        .and(path("/session/ses_plan/message"))
        .respond_with(json_reply(reply))
        .expect(1)
        .mount(&fx.opencode)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/session/ses_plan"))
        .respond_with(json_reply(json!(true)))
        .expect(1)
        .mount(&fx.opencode)
        .await;
}

#[tokio::test]
async fn a_plan_is_drafted_in_a_throwaway_session() {
    let fx = Fixture::new().await;
    let plan = json!({"name": "Add login", "goal": "Users can log in",
                      "steps": [{"title": "Add form", "acceptance": ["form renders"]}, {"title": "Wire API"}]});
    mount_planning(&fx, plan_reply(&format!("Here you go:\n```json\n{plan}\n```"))).await;
    let reply = fx
        .post("/api/tasks/plan", json!({"intent": "add a login page", "workspace": fx.ws()}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["ok"], true);
    assert_eq!(reply.json["workspace"], fx.ws());
    assert_eq!(reply.json["plan"]["name"], "Add login");
    assert_eq!(reply.json["plan"]["steps"][0]["acceptance"][0], "form renders");
    assert_eq!(reply.json["plan"]["intent"], "add a login page");
    // The expectations (session created, prompted and deleted once) are verified on drop.
}

#[tokio::test]
async fn a_reply_without_a_plan_is_a_bad_gateway_and_the_session_is_still_deleted() {
    let fx = Fixture::new().await;
    mount_planning(&fx, plan_reply("I would rather chat about the weather.")).await;
    let reply =
        fx.post("/api/tasks/plan", json!({"intent": "do things", "workspace": fx.ws()})).await;
    let detail = reply.error(StatusCode::BAD_GATEWAY);
    assert!(detail.contains("no usable plan"), "{detail}");
}

#[tokio::test]
async fn planning_refuses_bad_requests_before_calling_opencode() {
    let fx = Fixture::new().await;
    fx.post("/api/tasks/plan", json!({"workspace": fx.ws()})).await.error(StatusCode::BAD_REQUEST);
    fx.post("/api/tasks/plan", json!({"intent": "x"})).await.error(StatusCode::BAD_REQUEST);
    fx.post("/api/tasks/plan", json!({"intent": "x", "workspace": path_text(&fx.outside)}))
        .await
        .error(StatusCode::BAD_REQUEST);
    let unknown = fx
        .post("/api/tasks/plan", json!({"intent": "x", "workspace": fx.ws(), "model": "big"}))
        .await;
    assert!(unknown.status.is_client_error());
    assert_eq!(fx.opencode_requests().await, 0);
}

#[tokio::test]
async fn an_unreachable_opencode_is_a_503_not_a_500() {
    let fx = Fixture::new().await;
    Mock::given(method("POST"))
        .and(path("/session"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(30)))
        .mount(&fx.opencode)
        .await;
    let reply = fx.post("/api/tasks/plan", json!({"intent": "x", "workspace": fx.ws()})).await;
    reply.error(StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_cached_task_page_never_outlives_a_write() {
    let fx = Fixture::new().await;
    let id = fx.create_prompt_task("first").await;
    let first = fx.get("/api/tasks").await;
    let again = fx.get("/api/tasks").await;
    assert_eq!(first.text, again.text, "an unchanged store answers the same page");
    assert_eq!(first.json["tasks"][0]["status"], "pending");

    let paused = fx.post_empty(&format!("/api/tasks/{id}/pause")).await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    let after = fx.get("/api/tasks").await;
    assert_eq!(after.json["tasks"][0]["status"], "paused", "the write is visible at once");
    assert!(after.json["store_version"].as_u64() > first.json["store_version"].as_u64());

    // Another query is another page.
    let filtered = fx.get("/api/tasks?status=running").await;
    assert_eq!(filtered.json["tasks"], json!([]));
}

#[tokio::test]
async fn a_plan_of_40000_steps_is_refused_with_the_limit_named() {
    let fx = Fixture::new().await;
    let steps: Vec<Value> = (0..40_000).map(|_| json!({"title": "s"})).collect();
    let plan = json!({"name": "Huge", "goal": "g", "steps": steps});
    let refused = fx.post("/api/tasks", json!({"plan": plan, "workspace": fx.ws()})).await;
    let detail = refused.error(StatusCode::BAD_REQUEST);
    assert!(detail.contains("has 40000 steps, more than the 200 allowed"), "{detail}");
    assert!(detail.contains("split the work into several tasks"), "{detail}");
    let spec = "name: x\n";
    let toml = fx.post("/api/tasks", json!({"spec": spec, "format": "toml", "workspace": fx.ws()}));
    let detail = toml.await.error(StatusCode::BAD_REQUEST);
    assert!(detail.contains("\"toml\", not a spec format"), "{detail}");
}

#[tokio::test]
async fn lists_summarise_specs_and_the_task_route_has_them_whole() {
    let fx = Fixture::new().await;
    let goal = "g".repeat(50_000);
    let steps: Vec<Value> =
        (0..200).map(|i| json!({"title": format!("{i} {}", "t".repeat(500))})).collect();
    let plan = json!({"name": "Big", "goal": goal, "steps": steps});
    let created = fx.post("/api/tasks", json!({"plan": plan, "workspace": fx.ws()})).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let id = created.json["taskId"].as_str().expect("id").to_owned();

    let list = fx.get("/api/tasks").await;
    let entry = &list.json["tasks"][0];
    assert_eq!(entry["spec"]["summarised"], true, "{entry}");
    assert_eq!(entry["spec"]["step_count"], 200);
    assert!(entry["spec"].get("steps").is_none());
    assert_eq!(entry["spec"]["goal"].as_str().expect("goal").chars().count(), 280);
    assert!(list.text.len() < 4 * 1024, "a list entry stays small: {} bytes", list.text.len());
    let state = fx.get("/api/state").await;
    assert_eq!(state.json["tasks"][0]["spec"]["summarised"], true);

    let detail = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(detail.json["task"]["spec"]["goal"].as_str().map(str::len), Some(50_000));
    assert_eq!(detail.json["task"]["spec"]["steps"].as_array().map(Vec::len), Some(200));
}

/// Claims bump no store version, so a list served from the page cache must still show
/// a new driver at once (a takeover), in every list: the page, `/api/state`, and again
/// when the claim is gone.
#[tokio::test]
async fn lists_show_who_drives_a_task_as_soon_as_the_claim_changes() {
    let fx = Fixture::new().await;
    let id = fx.create_prompt_task("Drive me").await;
    let driver = |reply: &Reply| reply.json["tasks"][0]["driven_by"].clone();
    let before = fx.get("/api/tasks").await;
    assert_eq!(driver(&before), Value::Null, "{}", before.text);
    let version = before.json["store_version"].clone();

    let now = chrono::Utc::now();
    let task_id = openloom_core::TaskId::from(id.as_str());
    let store = fx.state.store();
    let lease = store.claim_task(&task_id, "w1", now, now + chrono::Duration::seconds(60)).await;
    assert!(lease.expect("claim").is_some());
    let claimed = fx.get("/api/tasks").await;
    assert_eq!(claimed.json["store_version"], version, "a claim is not a task write");
    assert_eq!(driver(&claimed), json!("w1"));
    assert_eq!(driver(&fx.get("/api/state").await), json!("w1"));

    store.release_claims("w1").await.expect("release");
    assert_eq!(driver(&fx.get("/api/tasks").await), Value::Null);
    assert_eq!(driver(&fx.get("/api/state").await), Value::Null);
}

#[tokio::test]
async fn a_task_is_created_for_a_named_opencode_server_or_refused_with_the_known_ones() {
    let config =
        openloom_server::ServerConfig { opencode_servers: vec!["build-2".into()], ..test_config() };
    let fx = Fixture::with_config(config).await;

    let unknown = fx
        .post("/api/tasks", json!({ "prompt": "p", "workspace": fx.ws(), "opencode": "nope" }))
        .await;
    let message = unknown.error(StatusCode::BAD_REQUEST);
    assert!(message.contains("\"nope\"") && message.contains("build-2"), "{message}");

    // A workspace on the other server's machine: not resolved here, only absolute.
    let elsewhere = "/srv/on-build-2/project";
    let relative = fx
        .post("/api/tasks", json!({ "prompt": "p", "workspace": "project", "opencode": "build-2" }))
        .await;
    assert!(relative.error(StatusCode::BAD_REQUEST).contains("absolute"), "{}", relative.text);
    let created = fx
        .post("/api/tasks", json!({ "prompt": "p", "workspace": elsewhere, "opencode": "build-2" }))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json["opencode"], "build-2");
    let id = created.json["taskId"].as_str().expect("id").to_owned();

    // This worker (connected to no named server) leaves it alone: no claim, no session.
    fx.state.harness().tick().await.expect("tick");
    let task = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task.json["task"]["opencode"], "build-2", "{}", task.text);
    assert_eq!(task.json["task"]["status"], "pending", "{}", task.text);
    assert!(task.json["task"]["driven_by"].is_null(), "{}", task.text);
    assert_eq!(fx.opencode_requests().await, 0, "nothing was asked of this worker's OpenCode");

    // An unbound task made here is still driven here.
    let reply = fx.post("/api/tasks", json!({ "prompt": "p", "workspace": fx.ws() })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json["opencode"].is_null(), "{}", reply.text);
}

#[tokio::test]
async fn a_worker_on_two_opencode_servers_creates_and_reads_on_the_one_named() {
    let (fx, second) = Fixture::new().await.with_another_opencode("b").await;
    let created = fx
        .post("/api/tasks", json!({ "prompt": "p", "workspace": fx.ws(), "opencode": "b" }))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert_eq!(created.json["opencode"], "b");
    let id = created.json["taskId"].as_str().expect("id").to_owned();
    let task = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task.json["task"]["opencode"], "b", "{}", task.text);
    assert_eq!(task.json["task"]["workspace"], fx.ws(), "resolved here: b is connected here");

    // The first server's harness leaves it to b's.
    fx.state.harness().tick().await.expect("tick");
    let task = fx.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task.json["task"]["status"], "pending", "{}", task.text);
    assert_eq!(fx.opencode_requests().await, 0, "nothing was asked of the first server");

    let unknown = fx
        .post("/api/tasks", json!({ "prompt": "p", "workspace": fx.ws(), "opencode": "c" }))
        .await;
    assert!(unknown.error(StatusCode::BAD_REQUEST).contains("known: b"), "{}", unknown.text);

    // A session only b has: the sessions routes find it there.
    Mock::given(method("GET"))
        .and(path("/session/ses_on_b"))
        .respond_with(json_reply(session_json("ses_on_b", &fx.ws(), 0)))
        .mount(&second)
        .await;
    Mock::given(method("GET"))
        .and(path("/session/ses_on_b/message"))
        .respond_with(json_reply(json!([user_message("msg_1", "hello from b")])))
        .mount(&second)
        .await;
    let messages = fx.get("/api/sessions/ses_on_b/messages").await;
    assert_eq!(messages.status, StatusCode::OK, "{}", messages.text);
    assert!(messages.text.contains("hello from b"), "{}", messages.text);
    let missing = fx.get("/api/sessions/ses_nowhere/messages").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
}
