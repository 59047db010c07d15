//! `/api/sessions` and `/api/state`: served from the monitor; per-session routes call
//! OpenCode.

use axum::http::StatusCode;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::common::*;

async fn monitored() -> Fixture {
    let fx = Fixture::new().await;
    let mut archived = session_json("ses_archived", &fx.ws(), 30);
    archived["time"]["archived"] = json!(now_ms());
    let mut child = session_json("ses_child", &fx.ws(), 1);
    child["parentID"] = json!("ses_busy");
    fx.mount_opencode(
        json!([
            session_json("ses_busy", &fx.ws(), 0),
            session_json("ses_idle", "/elsewhere", 3),
            archived,
            child
        ]),
        json!({"ses_busy": {"type": "busy"}}),
    )
    .await;
    fx.mount_messages(
        "ses_busy",
        json!([user_message("msg_u1", "go"), assistant_message("msg_a1", "done", 1000, 0.5)]),
    )
    .await;
    fx.mount_messages("ses_idle", json!([assistant_message("msg_b1", "ok", 10, 0.01)])).await;
    fx.mount_messages("ses_archived", json!([])).await;
    fx.mount_messages("ses_child", json!([])).await;
    fx.state.monitor().refresh().await;
    fx
}

#[tokio::test]
async fn sessions_come_from_the_monitor_snapshot() {
    let fx = monitored().await;
    let before = fx.opencode_requests().await;
    let reply = fx.get("/api/sessions").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let ids: Vec<&str> = reply.json["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, ["ses_busy", "ses_idle"]);
    assert_eq!(reply.json["byDirectory"][0]["directory"], fx.ws());
    assert_eq!(reply.json["status"]["ses_busy"]["type"], "busy");
    assert_eq!(fx.opencode_requests().await, before, "listing sessions must not call OpenCode");
}

#[tokio::test]
async fn state_is_served_from_memory_with_usage_and_without_the_password() {
    let fx = monitored().await;
    fx.create_prompt_task("one").await;
    let before = fx.opencode_requests().await;
    let mut last = None;
    for _ in 0..3 {
        let reply = fx.get("/api/state").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        last = Some(reply);
    }
    assert_eq!(fx.opencode_requests().await, before, "/api/state must not call OpenCode");
    let state = last.expect("a reply");
    assert!(!state.text.contains(OPENCODE_PASSWORD), "password leaked: {}", state.text);
    assert_eq!(state.json["server"]["ok"], true);
    assert_eq!(state.json["server"]["version"], "1.18.34");
    assert_eq!(state.json["tasks"].as_array().expect("tasks").len(), 1);
    assert_eq!(state.json["metrics"]["running"], 1);
    assert_eq!(state.json["metrics"]["byStatus"]["pending"], 1);
    assert_eq!(state.json["metrics"]["sessionsBusy"], 1);
    assert_eq!(state.json["metrics"]["sessionsIdle"], 1);
    assert_eq!(state.json["sessionStatus"]["ses_busy"], "busy");
    assert_eq!(state.json["archivedSessions"][0]["id"], "ses_archived");
    assert_eq!(state.json["recentWorkspaces"][0], fx.ws());
    let today = &state.json["usage"]["periods"]["today"];
    assert_eq!(today["totalTokens"]["input"], 1010, "{today}");
    assert_eq!(today["totalCost"], 0.51);
    assert_eq!(today["byModel"][0]["model"], "fake/fake-model");
    assert_eq!(today["topSessions"][0]["id"], "ses_busy");
    assert_eq!(state.json["usage"]["periods"]["total"]["sessionsWithUsage"], 2);
}

#[tokio::test]
async fn an_unreachable_opencode_shows_in_state_without_failing_it() {
    let fx = Fixture::new().await;
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&fx.opencode)
        .await;
    fx.state.monitor().refresh().await;
    let reply = fx.get("/api/state").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["server"]["ok"], false);
    assert!(
        reply.json["sessionError"].as_str().expect("error").contains("password"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains(OPENCODE_PASSWORD));
}

#[tokio::test]
async fn a_busy_session_stays_busy_for_the_hold_time() {
    let fx = monitored().await;
    // OpenCode now says idle, but the session was busy a moment ago.
    fx.opencode.reset().await;
    fx.mount_opencode(json!([session_json("ses_busy", &fx.ws(), 0)]), json!({})).await;
    fx.mount_messages("ses_busy", json!([assistant_message("msg_a1", "done", 1000, 0.5)])).await;
    fx.state.monitor().refresh().await;
    let reply = fx.get("/api/state").await;
    assert_eq!(reply.json["sessionStatus"]["ses_busy"], "busy", "{}", reply.text);
}

#[tokio::test]
async fn an_unreachable_opencode_shows_no_stale_busy_sessions() {
    let fx = monitored().await;
    assert_eq!(fx.get("/api/state").await.json["sessionStatus"]["ses_busy"], "busy");
    fx.opencode.reset().await;
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&fx.opencode)
        .await;
    fx.state.monitor().refresh().await;
    let reply = fx.get("/api/state").await;
    assert_eq!(reply.json["server"]["ok"], false, "{}", reply.text);
    assert_eq!(reply.json["sessions"][0]["id"], "ses_busy", "sessions stay listed as last seen");
    assert_eq!(reply.json["sessionStatus"], json!({}), "{}", reply.text);
    assert_eq!(reply.json["metrics"]["sessionsBusy"], 0);
}

#[tokio::test]
async fn messages_and_diff_are_read_from_opencode() {
    let fx = monitored().await;
    let reply = fx.get("/api/sessions/ses_busy/messages?limit=10").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["messages"][1]["id"], "msg_a1");
    assert_eq!(reply.json["messages"][1]["parts"][0]["text"], "done");
    fx.get("/api/sessions/ses_busy/messages?limit=0").await.error(StatusCode::BAD_REQUEST);

    Mock::given(method("GET"))
        .and(path("/session/ses_busy/diff"))
        .and(query_param("messageID", "msg_u1"))
        .respond_with(json_reply(
            json!([{"file": "a.rs", "additions": 1, "deletions": 0, "patch": "+x"}]),
        ))
        .mount(&fx.opencode)
        .await;
    let diff = fx.get("/api/sessions/ses_busy/diff").await;
    assert_eq!(diff.status, StatusCode::OK, "{}", diff.text);
    assert_eq!(diff.json["messageId"], "msg_u1");
    assert_eq!(diff.json["diff"][0]["file"], "a.rs");
}

#[tokio::test]
async fn unknown_sessions_are_404() {
    let fx = Fixture::new().await;
    Mock::given(method("GET"))
        .and(path("/session/ses_missing"))
        .respond_with(not_found_reply("ses_missing"))
        .mount(&fx.opencode)
        .await;
    fx.get("/api/sessions/ses_missing/messages").await.error(StatusCode::NOT_FOUND);
    fx.get("/api/sessions/ses_missing/diff").await.error(StatusCode::NOT_FOUND);
    fx.post_empty("/api/sessions/ses_missing/archive").await.error(StatusCode::NOT_FOUND);
    fx.delete("/api/sessions/ses_missing").await.error(StatusCode::NOT_FOUND);
    fx.delete("/api/sessions/bogus").await.error(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sessions_are_archived_unarchived_and_deleted() {
    let fx = monitored().await;
    Mock::given(method("PATCH"))
        .and(path("/session/ses_idle"))
        .respond_with(json_reply(session_json("ses_idle", "/elsewhere", 0)))
        .expect(2)
        .mount(&fx.opencode)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/session/ses_idle"))
        .respond_with(json_reply(json!(true)))
        .expect(1)
        .mount(&fx.opencode)
        .await;
    let archived = fx.post_empty("/api/sessions/ses_idle/archive").await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.text);
    assert_eq!(
        (archived.json["sessionId"].clone(), archived.json["archived"].clone()),
        (json!("ses_idle"), json!(true))
    );
    assert_eq!(fx.post_empty("/api/sessions/ses_idle/unarchive").await.json["archived"], false);
    let deleted = fx.delete("/api/sessions/ses_idle").await;
    assert_eq!(deleted.json["deleted"], true, "{}", deleted.text);
}

#[tokio::test]
async fn opencode_errors_are_gateway_errors() {
    let fx = monitored().await;
    Mock::given(method("PATCH"))
        .and(path("/session/ses_idle"))
        .respond_with(ResponseTemplate::new(500).set_body_raw(
            json!({"name": "UnknownError", "data": {"message": "database is locked"}}).to_string(),
            "application/json",
        ))
        .mount(&fx.opencode)
        .await;
    let detail =
        fx.post_empty("/api/sessions/ses_idle/archive").await.error(StatusCode::BAD_GATEWAY);
    assert!(detail.contains("database is locked"), "{detail}");
}

/// The `limit` of every read of `id`'s messages so far, in order.
async fn message_limits(fx: &Fixture, id: &str) -> Vec<String> {
    let requests = fx.opencode.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == format!("/session/{id}/message"))
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "limit")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

fn total_input(fx: &Fixture) -> u64 {
    fx.state.monitor().snapshot().usage.periods.total.total_tokens.input
}

/// Mounts the session list with `ses_w` just updated, and its messages per `limit`.
async fn mount_round(fx: &Fixture, by_limit: &[(&str, serde_json::Value)]) {
    fx.opencode.reset().await;
    // A new update time for the session, so the monitor reads it again.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    fx.mount_opencode(json!([session_json("ses_w", &fx.ws(), 0)]), json!({})).await;
    for (limit, messages) in by_limit {
        Mock::given(method("GET"))
            .and(path("/session/ses_w/message"))
            .and(query_param("limit", *limit))
            .respond_with(json_reply(messages.clone()))
            .mount(&fx.opencode)
            .await;
    }
}

#[tokio::test]
async fn a_session_read_before_is_read_by_its_newest_messages_unless_there_is_a_gap() {
    let mut config = test_config();
    config.monitor.probe_tail_messages = 2;
    let fx = Fixture::with_config(config).await;
    let a = |id: &str, input: u64| assistant_message(id, "ok", input, 0.0);

    mount_round(&fx, &[("1000", json!([user_message("msg_u1", "go"), a("msg_a1", 100)]))]).await;
    fx.state.monitor().refresh().await;
    assert_eq!(message_limits(&fx, "ses_w").await, ["1000"], "first read: in full");
    assert_eq!(total_input(&fx), 100);

    // The newest two do not reach back to msg_a1: a gap, so the session is read in full.
    let full = json!([
        user_message("msg_u1", "go"),
        a("msg_a1", 100),
        user_message("msg_u2", "more"),
        a("msg_a2", 10)
    ]);
    mount_round(
        &fx,
        &[("2", json!([user_message("msg_u2", "more"), a("msg_a2", 10)])), ("1000", full)],
    )
    .await;
    fx.state.monitor().refresh().await;
    assert_eq!(message_limits(&fx, "ses_w").await, ["2", "1000"]);
    assert_eq!(total_input(&fx), 110);

    // They reach back to msg_a2, the newest read: merged by id, nothing counted twice.
    mount_round(&fx, &[("2", json!([a("msg_a2", 10), a("msg_a3", 1)]))]).await;
    fx.state.monitor().refresh().await;
    assert_eq!(message_limits(&fx, "ses_w").await, ["2"], "only the newest messages are read");
    assert_eq!(total_input(&fx), 111);
}

#[tokio::test]
async fn an_abandoned_unfinished_reply_stops_showing_busy_once_the_session_is_old() {
    let mut config = test_config();
    config.monitor.recent_window = std::time::Duration::from_millis(800);
    config.monitor.busy_hold = std::time::Duration::from_millis(100);
    let fx = Fixture::with_config(config).await;
    let unfinished = json!({"info": {"id": "msg_a1", "role": "assistant", "time": {"created": now_ms()}},
                            "parts": []});
    mount_round(&fx, &[("1000", json!([user_message("msg_u1", "go"), unfinished]))]).await;
    fx.state.monitor().refresh().await;
    let status = |fx: &Fixture| fx.state.monitor().snapshot().statuses.get("ses_w").cloned();
    assert_eq!(status(&fx), Some(openloom_core::SessionActivity::Busy), "a reply being written");

    // Nothing changes in the session for longer than the recent window.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    fx.state.monitor().refresh().await;
    assert_eq!(status(&fx), Some(openloom_core::SessionActivity::Idle));
}

#[tokio::test]
async fn a_huge_recent_window_makes_every_session_recent_without_overflowing() {
    let mut config = test_config();
    config.monitor.recent_window = std::time::Duration::MAX;
    let fx = Fixture::with_config(config).await;
    let unfinished = json!({"info": {"id": "msg_a1", "role": "assistant", "time": {"created": now_ms()}},
                            "parts": []});
    mount_round(&fx, &[("1000", json!([unfinished]))]).await;
    fx.state.monitor().refresh().await;
    let snapshot = fx.state.monitor().snapshot();
    assert_eq!(snapshot.statuses.get("ses_w"), Some(&openloom_core::SessionActivity::Busy));
}

#[tokio::test]
async fn the_monitor_tells_who_went_idle_once() {
    let opencode = wiremock::MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/global/health"))
        .respond_with(json_reply(json!({"healthy": true, "version": "1.18.34"})))
        .mount(&opencode)
        .await;
    Mock::given(method("GET"))
        .and(path("/project"))
        .respond_with(json_reply(json!([{"id": "global", "worktree": "/w"}])))
        .mount(&opencode)
        .await;
    Mock::given(method("GET"))
        .and(path("/session"))
        .respond_with(json_reply(json!([session_json("ses_work", "/w", 0)])))
        .mount(&opencode)
        .await;
    Mock::given(method("GET"))
        .and(path("/session/ses_work/message"))
        .respond_with(json_reply(json!([])))
        .mount(&opencode)
        .await;
    // Busy at the first refresh, idle (absent) afterwards.
    Mock::given(method("GET"))
        .and(path("/session/status"))
        .respond_with(json_reply(json!({"ses_work": {"type": "busy"}})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&opencode)
        .await;
    Mock::given(method("GET"))
        .and(path("/session/status"))
        .respond_with(json_reply(json!({})))
        .mount(&opencode)
        .await;

    let monitor = openloom_server::SessionMonitor::new(
        client_for(&opencode),
        openloom_server::MonitorConfig::default(),
    );
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    monitor.on_idle(move |id| sink.lock().expect("lock").push(id.to_owned()));
    monitor.refresh().await;
    assert!(seen.lock().expect("lock").is_empty(), "busy is not idle");
    monitor.refresh().await;
    monitor.refresh().await;
    assert_eq!(*seen.lock().expect("lock"), vec!["ses_work".to_owned()], "told once");
}

#[tokio::test]
async fn a_worker_on_two_opencode_servers_lists_both_servers_sessions_and_health() {
    let (fx, second) = Fixture::new().await.with_another_opencode("b").await;
    fx.mount_opencode(json!([session_json("ses_on_a", &fx.ws(), 5)]), json!({})).await;
    let before = fx.get("/api/state").await;
    let servers = before.json["servers"].as_array().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 2, "{}", before.text);
    assert_eq!(servers[1]["name"], "b");
    assert_eq!(servers[1]["url"], second.uri(), "{}", before.text);

    // b is down at first: the first's health is `server`, b's shows in `servers`.
    for monitor in fx.state.monitors() {
        monitor.refresh().await;
    }
    let state = fx.get("/api/state").await;
    assert_eq!(state.json["server"]["ok"], true, "{}", state.text);
    assert_eq!(state.json["servers"][0]["ok"], true, "{}", state.text);
    assert_eq!(state.json["servers"][1]["ok"], false, "{}", state.text);

    mount_opencode_on(
        &second,
        &fx.ws(),
        json!([session_json("ses_on_b", &fx.ws(), 1)]),
        json!({"ses_on_b": {"type": "busy"}}),
    )
    .await;
    for monitor in fx.state.monitors() {
        monitor.refresh().await;
    }
    let state = fx.get("/api/state").await;
    assert_eq!(state.json["servers"][1]["ok"], true, "{}", state.text);
    let listed = fx.get("/api/sessions").await;
    let ids: Vec<&str> = listed.json["sessions"]
        .as_array()
        .map(|list| list.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        ["ses_on_b", "ses_on_a"],
        "both servers' sessions, newest first: {}",
        listed.text
    );
    assert_eq!(listed.json["status"]["ses_on_b"]["type"], "busy", "{}", listed.text);
}
