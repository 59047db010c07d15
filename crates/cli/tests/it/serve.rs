//! `openloom serve`: start-up rules, graceful shutdown, and a task created over HTTP
//! that the real OpenCode completes while `/api/events` reports it.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use openloom_testkit::{E2e, Script, require_opencode};

use crate::common::{self, Sandbox, Served};

#[test]
fn serve_refuses_a_short_token_and_no_token_off_loopback() {
    let sandbox = Sandbox::new();
    let mut short = sandbox.command(&["serve", "--port", "0"]);
    let run = common::Run::from(short.env("OPENLOOM_API_TOKEN", "a").output().expect("run"));
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("fewer than the 16"), "{}", run.stderr);
    let run = sandbox.run(&["serve", "--host", "0.0.0.0", "--port", "0", "--no-token"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--no-token is for a loopback address"), "{}", run.stderr);
}

#[tokio::test]
async fn serve_generates_a_private_token_once_and_the_printed_url_carries_it() {
    let sandbox = Sandbox::new();
    let served = Served::start(&sandbox, &[]).await;
    let token = served.token.clone();
    assert_eq!(token.len(), 64, "{}", served.dashboard);
    assert_eq!(served.dashboard, format!("{}/#token={token}", served.base));
    let file = std::fs::read_to_string(sandbox.token_file()).expect("token file");
    assert_eq!(file.trim(), token);
    let mode = std::fs::metadata(sandbox.token_file()).expect("stat").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);

    // The owner's URL works: the page, then the API with the fragment's token.
    let plain = reqwest::Client::new();
    let page = plain.get(&served.dashboard).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let tasks = served.client().get(format!("{}/api/tasks", served.base)).send().await;
    assert_eq!(tasks.expect("GET").status(), 200);
    let refused = plain.get(format!("{}/api/tasks", served.base)).send().await.expect("GET");
    assert_eq!(refused.status(), 401);

    // Another Unix user can neither read the token nor use the API without it.
    let base = served.base.clone();
    let path = sandbox.token_file();
    let (read, post) = tokio::task::spawn_blocking(move || {
        let read = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "cat"])
            .arg(&path)
            .output()
            .expect("setpriv (util-linux) must be installed to test a second Unix user");
        let post = std::process::Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "curl", "-s"])
            .args(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(r#"{"prompt": "id > /tmp/pwned", "workspace": "/tmp"}"#)
            .arg(format!("{base}/api/tasks"))
            .output()
            .expect("setpriv and curl");
        (read, post)
    })
    .await
    .expect("join");
    assert!(!read.status.success(), "another user read the token file");
    assert!(String::from_utf8_lossy(&read.stdout).trim().is_empty());
    assert_eq!(String::from_utf8_lossy(&post.stdout), "401", "{post:?}");
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");

    // Reused on the next start, so a bookmarked URL keeps working.
    let again = Served::start(&sandbox, &[]).await;
    assert_eq!(again.token, token);
    again.stop().await;
}

#[tokio::test]
async fn no_token_is_loud_and_lets_requests_through() {
    let sandbox = Sandbox::new();
    let log = sandbox.path().join("serve.log");
    let served = Served::start_with(&sandbox, &["--no-token"], &[]).await;
    let tasks = reqwest::get(format!("{}/api/tasks", served.base)).await.expect("GET");
    assert_eq!(tasks.status(), 200);
    assert!(!sandbox.token_file().exists(), "no token generated when opted out");
    let warned = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(warned.contains("WITHOUT an API token"), "{warned}");
    served.stop().await;
}

#[tokio::test]
async fn serve_answers_without_opencode_and_stops_gracefully_on_sigterm() {
    let sandbox = Sandbox::new();
    let served = Served::start(&sandbox, &[]).await;
    let client = served.client();
    let tasks: serde_json::Value = client
        .get(format!("{}/api/tasks", served.base))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(tasks["tasks"], serde_json::json!([]), "{tasks}");
    let state = client.get(format!("{}/api/state", served.base)).send().await.expect("GET");
    assert_eq!(state.status(), 200);
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn a_task_created_over_http_completes_and_the_event_stream_shows_it() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let report = env.workspace.file("report.txt");
    crate::common::write_then_finish(&env, &report, "ok\n");

    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let served = Served::start(&sandbox, &[]).await;
    let client = served.client();

    // Listen first, so no event is missed.
    let events =
        client.get(format!("{}/api/events", served.base)).send().await.expect("GET /api/events");
    assert_eq!(events.status(), 200);
    let mut events = events.bytes_stream().eventsource();

    let spec = format!(
        "name: Over HTTP\nworkspace: {}\ncheck_interval_seconds: 10\ngoal: Write report.txt\nsteps: [Write it]\n\
         checks:\n  - file_exists: report.txt\n",
        env.workspace.directory()
    );
    let created: serde_json::Value = client
        .post(format!("{}/api/tasks", served.base))
        .json(&serde_json::json!({ "spec": spec }))
        .send()
        .await
        .expect("POST /api/tasks")
        .json()
        .await
        .expect("json");
    assert_eq!(created["ok"], true, "{created}");
    let task_id = created["taskId"].as_str().expect("taskId").to_owned();

    let mut kinds = Vec::new();
    let mut last_version = 0;
    let completed = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(event) = events.next().await {
            let event = event.expect("well-formed SSE");
            if event.event != "task" {
                continue;
            }
            let data: serde_json::Value = serde_json::from_str(&event.data).expect("json data");
            if data["task_id"] != task_id.as_str() {
                continue;
            }
            let version = data["store_version"].as_u64().expect("version");
            // One write can announce two events (updated + completed): same version.
            assert!(
                version >= last_version,
                "versions never go back: {version} after {last_version}"
            );
            assert_eq!(event.id, version.to_string(), "the SSE id is the store version");
            last_version = version;
            let kind = data["type"].as_str().expect("type").to_owned();
            kinds.push(kind.clone());
            if kind == "completed" {
                return true;
            }
        }
        false
    })
    .await
    .expect("completed within 90 s");
    assert!(completed, "stream ended early: {kinds:?}");
    assert!(kinds.starts_with(&["created".to_owned(), "started".to_owned()]), "{kinds:?}");
    assert_eq!(env.workspace.read("report.txt").as_deref(), Some("ok\n"));

    let detail: serde_json::Value = client
        .get(format!("{}/api/tasks/{task_id}", served.base))
        .send()
        .await
        .expect("GET task")
        .json()
        .await
        .expect("json");
    assert_eq!(detail["task"]["status"], "completed", "{detail}");

    // What an operator scrapes: the task completed, the real OpenCode's latency sampled.
    let scraped =
        client.get(format!("{}/metrics", served.base)).send().await.expect("GET /metrics");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("metrics text");
    assert!(text.lines().any(|l| l == r#"openloom_tasks{status="completed"} 1"#), "{text}");
    let latency_samples: f64 = text
        .lines()
        .filter(|l| l.starts_with("openloom_opencode_request_duration_seconds_count{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert!(latency_samples > 0.0, "{text}");
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}
