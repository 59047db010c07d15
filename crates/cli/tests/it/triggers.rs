//! Work arriving without `openloom watch`, through the real binary: a spec dropped
//! into `serve --inbox DIR` becomes a task in `GET /api/tasks` (and is never
//! imported twice across a restart), and a signed GitHub `issues` delivery becomes
//! one without the API token.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Sandbox, Served};

const SPEC: &str = "name: dropped in\ngoal: write hello.txt\nsteps:\n  - write it\n";

/// The tasks `GET /api/tasks` lists, as (name, workspace), once `count` exist.
async fn tasks_when(served: &Served, count: usize) -> Vec<(String, String)> {
    let client = served.client();
    let start = Instant::now();
    loop {
        let page: Value = client
            .get(format!("{}/api/tasks", served.base))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        let tasks: Vec<(String, String)> = page["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .map(|t| {
                let text = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
                (text("name"), text("workspace"))
            })
            .collect();
        if tasks.len() >= count {
            return tasks;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "only {tasks:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn eventually(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `name` beside the inbox, then renames it in: the documented convention.
fn drop_in(inbox: &Path, name: &str, text: &str) {
    let staged = inbox.parent().expect("parent").join(format!("{name}.staged"));
    std::fs::write(&staged, text).expect("write");
    std::fs::rename(&staged, inbox.join(name)).expect("rename in");
}

#[tokio::test]
async fn a_spec_dropped_into_the_inbox_becomes_a_task_once_across_restarts() {
    let sandbox = Sandbox::new();
    let (inbox, work) = (sandbox.path().join("inbox"), sandbox.path().join("work"));
    std::fs::create_dir_all(&inbox).expect("mkdir");
    std::fs::create_dir_all(&work).expect("mkdir");
    let args = ["--inbox", "inbox", "--inbox-workspace", "work"];
    let served = Served::start_with(&sandbox, &args, &[]).await;

    drop_in(&inbox, "hello.yaml", SPEC);
    drop_in(&inbox, "broken.yaml", "name: broken\ngoal: g\nsteps: 3\n");
    let tasks = tasks_when(&served, 1).await;
    let work_text = work.canonicalize().expect("canonical").to_string_lossy().into_owned();
    assert_eq!(tasks, vec![("dropped in".to_owned(), work_text)]);
    eventually("moved", || {
        inbox.join("accepted/hello.yaml").exists() && inbox.join("rejected/broken.yaml").exists()
    })
    .await;
    let error =
        std::fs::read_to_string(inbox.join("rejected/broken.yaml.error.txt")).expect("error file");
    assert!(error.contains("broken.yaml") && error.contains("steps"), "{error}");
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");

    // The same file again (as if its move had been lost), and a new one, then a
    // restart: the old one is recognised, the new one imported.
    std::fs::copy(inbox.join("accepted/hello.yaml"), inbox.join("hello.yaml")).expect("copy");
    drop_in(&inbox, "second.txt", "Write a second file.\n");
    let served = Served::start_with(&sandbox, &args, &[]).await;
    eventually("both moved", || {
        inbox.join("accepted/hello-2.yaml").exists() && inbox.join("accepted/second.txt").exists()
    })
    .await;
    let mut names: Vec<String> = tasks_when(&served, 2).await.into_iter().map(|t| t.0).collect();
    names.sort();
    assert_eq!(names, vec!["dropped in", "second"], "hello.yaml was not imported twice");
    served.stop().await;
}

#[tokio::test]
async fn a_signed_github_delivery_becomes_a_task_without_the_api_token() {
    let sandbox = Sandbox::new();
    let work = sandbox.path().join("hello");
    std::fs::create_dir_all(&work).expect("mkdir");
    let config = sandbox
        .write("config.yaml", "github:\n  label: openloom\n  repos:\n    octo/hello: hello\n");
    let secret = "a webhook secret for the test";
    let config_arg = config.to_string_lossy().into_owned();
    let served = Served::start_with(
        &sandbox,
        &["--config", &config_arg],
        &[("OPENLOOM_GITHUB_WEBHOOK_SECRET", secret)],
    )
    .await;
    let payload = include_str!("../../../sources/tests/fixtures/issues-labeled.json");
    let post = |signature: Option<String>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/hooks/github", served.base))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "issues")
            .header("X-GitHub-Delivery", "0b989ba4-242f-11e5-81e1-c7b6966d2516")
            .body(payload);
        if let Some(signature) = signature {
            request = request.header("X-Hub-Signature-256", signature);
        }
        request.send()
    };
    let unsigned = post(None).await.expect("POST");
    assert_eq!(unsigned.status(), 401);
    let signature = openloom_core::signature::sign(secret.as_bytes(), payload.as_bytes());
    for _ in 0..2 {
        let reply = post(Some(signature.clone())).await.expect("POST");
        assert_eq!(reply.status(), 202, "{:?}", reply.text().await);
    }
    let tasks = tasks_when(&served, 1).await;
    let work_text = work.canonicalize().expect("canonical").to_string_lossy().into_owned();
    assert_eq!(tasks, vec![("Add a greeting file".to_owned(), work_text)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(tasks_when(&served, 1).await.len(), 1, "a redelivery is not a second task");
    served.stop().await;
}

/// The whole way with the real OpenCode: a spec dropped into the inbox is driven to
/// completion, its check verified on disk.
#[tokio::test]
async fn a_spec_dropped_into_the_inbox_is_driven_to_completion_by_the_real_opencode() {
    use openloom_testkit::{E2e, Script, require_opencode};
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let report = env.workspace.file("report.txt");
    crate::common::write_then_finish(&env, &report, "from the inbox\n");
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let inbox = sandbox.path().join("inbox");
    std::fs::create_dir_all(&inbox).expect("mkdir");
    let workspace = env.workspace.directory();
    let served =
        Served::start_with(&sandbox, &["--inbox", "inbox", "--inbox-workspace", &workspace], &[])
            .await;

    // No `workspace:`: the inbox's default workspace is used.
    drop_in(
        &inbox,
        "report.yaml",
        "name: From the inbox\ncheck_interval_seconds: 10\ngoal: Write report.txt\n\
         steps: [Write it]\nchecks:\n  - file_contains: {path: report.txt, pattern: inbox}\n",
    );
    let client = served.client();
    let start = Instant::now();
    let status = loop {
        let page: Value = client
            .get(format!("{}/api/tasks", served.base))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        let status = page["tasks"][0]["status"].as_str().unwrap_or_default().to_owned();
        if status == "completed" || status == "failed" {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "still {status}: {page}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status, "completed");
    assert_eq!(env.workspace.read("report.txt").as_deref(), Some("from the inbox\n"));
    assert!(inbox.join("accepted/report.yaml").exists());
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}
