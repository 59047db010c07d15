//! Two `openloom serve` workers on one PostgreSQL database, with the real OpenCode
//! and the scripted model: tasks created on one worker, that worker killed with
//! SIGKILL mid-way, the other finishes every task, one session each. Tasks bound to
//! an OpenCode server, and one worker driving two real OpenCode servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openloom_store_postgres::testing::fresh_database;
use openloom_testkit::{E2e, OpencodeOptions, Reply, Script, Turn, require_opencode};

use crate::common::{BOOTSTRAP, Sandbox, Served, prompts_containing};

const TASKS: usize = 3;
const TOKEN: &str = "team-test-token-0123456789abcdef";

async fn all_tasks(client: &reqwest::Client, base: &str) -> Vec<serde_json::Value> {
    let page: serde_json::Value = client
        .get(format!("{base}/api/tasks?limit=50"))
        .send()
        .await
        .expect("GET /api/tasks")
        .json()
        .await
        .expect("JSON");
    page["tasks"].as_array().cloned().unwrap_or_default()
}

/// `POST /api/tasks` with `body`; the answer.
async fn create(
    client: &reqwest::Client,
    base: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    let reply = client.post(format!("{base}/api/tasks")).json(body).send().await;
    reply.expect("POST /api/tasks").json().await.expect("JSON")
}

async fn one_task(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    let reply: serde_json::Value = client
        .get(format!("{base}/api/tasks/{id}"))
        .send()
        .await
        .expect("GET /api/tasks/{id}")
        .json()
        .await
        .expect("JSON");
    reply["task"].clone()
}

#[tokio::test]
async fn a_killed_workers_tasks_are_finished_by_the_other_with_one_session_each() {
    let launcher = require_opencode!();
    let Some(db) = fresh_database().await else { return };
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    // Every task is acknowledged at once, and finished only once the test allows it:
    // so each is mid-way, its session open, when the first worker dies.
    let finish = Arc::new(AtomicBool::new(false));
    env.model.push_turn(
        Turn::reply(Reply::text("Working on it.")).when_user_says(BOOTSTRAP).repeating(),
    );
    let allowed = Arc::clone(&finish);
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says("periodic check")
            .when(move |_| allowed.load(Ordering::SeqCst))
            .repeating(),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Still working.")).when_user_says("periodic check").repeating(),
    );
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let vars = [("OPENLOOM_DATABASE", db.url.as_str()), ("OPENLOOM_API_TOKEN", TOKEN)];

    let first = Served::start_with(&sandbox, &["--worker-name", "first"], &vars).await;
    let client = first.client();
    for i in 0..TASKS {
        let spec =
            format!("name: Team task {i}\ngoal: g\nsteps: [Do it]\ncheck_interval_seconds: 5\n");
        let created = client
            .post(format!("{}/api/tasks", first.base))
            .json(&serde_json::json!({"spec": spec, "workspace": env.workspace.directory()}))
            .send()
            .await
            .expect("POST /api/tasks");
        assert!(created.status().is_success(), "{}", created.status());
    }
    // The first worker starts every task: one session and one bootstrap each.
    let mut started = false;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tasks = all_tasks(&client, &first.base).await;
        if tasks.len() == TASKS
            && tasks.iter().all(|t| {
                t["status"] == "running"
                    && t["driven_by"] == "first"
                    && t["active_session_id"].is_string()
            })
        {
            started = true;
            break;
        }
    }
    assert!(started, "the first worker started every task within 30 s");

    let second = Served::start_with(&sandbox, &["--worker-name", "second"], &vars).await;
    // Both are live workers, on either's board; a third with a live one's name is
    // refused before it takes any claim.
    let state: serde_json::Value = client
        .get(format!("{}/api/state", second.base))
        .send()
        .await
        .expect("GET /api/state")
        .json()
        .await
        .expect("JSON");
    let names: Vec<&str> = state["workers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["name"].as_str())
        .collect();
    assert_eq!(names, ["first", "second"], "{}", state["workers"]);
    let mut twin = sandbox.command(&["serve", "--port", "0", "--worker-name", "first"]);
    twin.envs(vars);
    let twin =
        tokio::task::spawn_blocking(move || twin.output().expect("run serve")).await.expect("join");
    assert_eq!(twin.status.code(), Some(2), "{twin:?}");
    let said = String::from_utf8_lossy(&twin.stderr);
    assert!(said.contains(r#"a worker named "first" is already driving tasks"#), "{said}");
    drop(first); // SIGKILL: no clean release of its claims.
    finish.store(true, Ordering::SeqCst);

    // The second takes over once the first's leases (30 s) run out.
    let mut tasks = Vec::new();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tasks = all_tasks(&client, &second.base).await;
        if tasks.len() == TASKS && tasks.iter().all(|t| t["status"] == "completed") {
            break;
        }
    }
    assert_eq!(tasks.len(), TASKS);
    for task in &tasks {
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(task["session_ids"].as_array().map(Vec::len), Some(1), "one session: {task}");
    }
    let bootstraps = prompts_containing(&env, BOOTSTRAP);
    assert_eq!(bootstraps, TASKS, "no task was started twice");
    let run = second.stop().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    db.drop_database().await;
}

/// Two workers on one database, each on its own OpenCode server by name (here two
/// names for one real OpenCode, so the test needs one): a task created on the
/// second for the first's server is driven by the first only, to the end; the
/// second never claims it.
#[tokio::test]
async fn a_task_bound_to_an_opencode_server_is_driven_only_by_its_worker() {
    let launcher = require_opencode!();
    let Some(db) = fresh_database().await else { return };
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says(BOOTSTRAP)
            .repeating(),
    );
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let url = env.opencode.base_url();
    std::fs::create_dir_all(sandbox.path().join(".openloom")).expect("mkdir");
    std::fs::write(
        sandbox.path().join(".openloom/config.yaml"),
        format!("opencode_servers:\n  one: {url}\n  two: {url}\n"),
    )
    .expect("config");
    let vars = [("OPENLOOM_DATABASE", db.url.as_str()), ("OPENLOOM_API_TOKEN", TOKEN)];
    let one =
        Served::start_with(&sandbox, &["--worker-name", "w-one", "--opencode", "one"], &vars).await;
    let two =
        Served::start_with(&sandbox, &["--worker-name", "w-two", "--opencode", "two"], &vars).await;
    let client = two.client();

    let unknown = client
        .post(format!("{}/api/tasks", two.base))
        .json(&serde_json::json!({"prompt": "p", "workspace": env.workspace.directory(), "opencode": "three"}))
        .send()
        .await
        .expect("POST /api/tasks");
    assert_eq!(unknown.status(), 400);
    let said = unknown.text().await.expect("body");
    assert!(said.contains("one") && said.contains("two"), "the known servers are named: {said}");

    let spec = "name: Bound task\ngoal: g\nsteps: [Do it]\n";
    let body = serde_json::json!({"spec": spec, "workspace": env.workspace.directory(), "opencode": "one"});
    let created = create(&client, &two.base, &body).await;
    assert_eq!(created["opencode"], "one", "{created}");
    let id = created["taskId"].as_str().expect("task id").to_owned();

    let mut task = serde_json::Value::Null;
    let mut drivers = std::collections::BTreeSet::new();
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        task = one_task(&client, &two.base, &id).await;
        if let Some(driver) = task["driven_by"].as_str() {
            drivers.insert(driver.to_owned());
        }
        if task["status"] == "completed" {
            break;
        }
    }
    assert_eq!(task["status"], "completed", "{task}");
    assert_eq!(task["opencode"], "one", "{task}");
    assert!(!drivers.contains("w-two"), "the other server's worker claimed it: {drivers:?}");
    assert!(drivers.contains("w-one"), "its own worker drove it: {drivers:?}");
    let seen_by_one = one_task(&client, &one.base, &id).await;
    assert_eq!(seen_by_one["session_ids"].as_array().map(Vec::len), Some(1), "{seen_by_one}");
    assert_eq!(prompts_containing(&env, BOOTSTRAP), 1, "started once");

    let run = two.stop().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = one.stop().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    db.drop_database().await;
}

/// Waits until the task is completed (or 30 s pass) and returns it as last read.
async fn completed(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    let mut task = serde_json::Value::Null;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        task = one_task(client, base, id).await;
        if task["status"] == "completed" {
            break;
        }
    }
    task
}

#[tokio::test]
async fn one_worker_on_two_opencode_servers_runs_each_task_in_its_own() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode a starts");
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says(BOOTSTRAP)
            .repeating(),
    );
    // A second real OpenCode (its own data directories) on the same scripted model.
    let second =
        launcher.start(&env.model, OpencodeOptions::default()).await.expect("OpenCode b starts");
    let (url_a, url_b) = (env.opencode.base_url(), second.base_url());
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = url_a.clone();
    std::fs::create_dir_all(sandbox.path().join(".openloom")).expect("mkdir");
    std::fs::write(
        sandbox.path().join(".openloom/config.yaml"),
        format!("opencode_servers:\n  a: {url_a}\n  b: {url_b}\n"),
    )
    .expect("config");
    let vars = [("OPENLOOM_API_TOKEN", TOKEN)];
    let worker =
        Served::start_with(&sandbox, &["--worker-name", "w", "--opencode", "a,b"], &vars).await;
    let client = worker.client();

    let spec = "name: Two servers\ngoal: g\nsteps: [Do it]\n";
    let mut ids = Vec::new();
    for opencode in [None, Some("b")] {
        let mut body = serde_json::json!({"spec": spec, "workspace": env.workspace.directory()});
        if let Some(name) = opencode {
            body["opencode"] = name.into();
        }
        let created = create(&client, &worker.base, &body).await;
        assert_eq!(created["opencode"], opencode.unwrap_or("a"), "{created}");
        ids.push(created["taskId"].as_str().expect("task id").to_owned());
    }

    for (id, own, other) in [(&ids[0], &url_a, &url_b), (&ids[1], &url_b, &url_a)] {
        let task = completed(&client, &worker.base, id).await;
        assert_eq!(task["status"], "completed", "{task}");
        assert_eq!(task["driven_by"], "w", "{task}");
        let sessions = task["session_ids"].as_array().cloned().unwrap_or_default();
        assert_eq!(sessions.len(), 1, "one session: {task}");
        let session = sessions[0].as_str().expect("session id");
        let http = reqwest::Client::new();
        let status = |url: &str| {
            let request = http.get(format!("{url}/session/{session}")).send();
            async move { request.await.expect("GET /session/{id}").status().as_u16() }
        };
        assert_eq!(status(own).await, 200, "session {session} is in its own server ({own})");
        assert_ne!(status(other).await, 200, "session {session} is not in {other}");
        // The worker reads the session from the server it is in.
        let messages = client
            .get(format!("{}/api/sessions/{session}/messages", worker.base))
            .send()
            .await
            .expect("GET messages");
        assert_eq!(messages.status(), 200, "{session}");
    }
    assert_eq!(prompts_containing(&env, BOOTSTRAP), 2, "each task started once");
    // The dashboard's state: both servers healthy, both servers' sessions listed.
    let mut state = serde_json::Value::Null;
    for _ in 0..50 {
        state = client
            .get(format!("{}/api/state", worker.base))
            .send()
            .await
            .expect("GET /api/state")
            .json()
            .await
            .expect("JSON");
        let listed = state["sessions"].as_array().map_or(0, Vec::len);
        if state["servers"][1]["ok"] == true && listed >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state["servers"][0]["name"], "a", "{}", state["servers"]);
    assert_eq!(state["servers"][1]["name"], "b", "{}", state["servers"]);
    assert!(
        state["servers"][0]["ok"] == true && state["servers"][1]["ok"] == true,
        "{}",
        state["servers"]
    );
    let listed: Vec<&str> = state["sessions"]
        .as_array()
        .map(|list| list.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed.len(), 2, "the sessions of both servers: {listed:?}");
    let metrics = client
        .get(format!("{}/metrics", worker.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    for name in ["a", "b"] {
        let labelled = format!(r#"endpoint="/session/{{id}}/prompt_async",opencode="{name}"}}"#);
        assert!(metrics.contains(&labelled), "{name}'s prompts counted apart: {metrics}");
    }

    let banner = worker.banner.join("\n");
    assert!(
        banner.contains(&format!("a at {url_a}")) && banner.contains(&format!("b at {url_b}")),
        "the banner names both servers: {banner}"
    );
    let run = worker.stop().await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}
