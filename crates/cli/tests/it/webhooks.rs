//! Webhooks out through the real binary: a receiver on loopback that verifies every
//! request as docs/notifications.md says; `serve` killed with SIGKILL while a
//! delivery is in flight; a task's completion through the real OpenCode.

use std::collections::HashMap;
use std::time::Duration;

use openloom_testkit::receiver::{Answer, Received, Receiver};
use openloom_testkit::{E2e, Reply, Script, Turn, require_opencode};

use crate::common::{Sandbox, Served};

const SECRET: &str = "a-long-random-webhook-secret";

fn secret_env() -> [(&'static str, &'static str); 1] {
    [("OPENLOOM_WEBHOOK_SECRET", SECRET)]
}

async fn create_task(served: &Served, spec: &str) -> String {
    let created: serde_json::Value = served
        .client()
        .post(format!("{}/api/tasks", served.base))
        .json(&serde_json::json!({ "spec": spec }))
        .send()
        .await
        .expect("POST /api/tasks")
        .json()
        .await
        .expect("json");
    assert_eq!(created["ok"], true, "{created}");
    created["taskId"].as_str().expect("taskId").to_owned()
}

async fn deliveries(served: &Served) -> serde_json::Value {
    served
        .client()
        .get(format!("{}/api/webhooks/deliveries", served.base))
        .send()
        .await
        .expect("GET deliveries")
        .json()
        .await
        .expect("json")
}

/// How many times each delivery id was processed (not just received).
fn processed(received: &[Received]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in received.iter().filter(|r| r.verified && !r.duplicate) {
        *counts.entry(r.delivery_id.clone()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn a_hook_without_a_secret_or_with_https_is_refused_before_any_work() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["serve", "--port", "0", "--webhook", "http://127.0.0.1:9/h"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("OPENLOOM_WEBHOOK_SECRET"), "{}", run.stderr);
    assert!(!sandbox.database().exists() || run.stdout.is_empty(), "nothing was served");

    std::fs::create_dir_all(sandbox.path().join(".openloom")).expect("mkdir");
    sandbox.write(
        ".openloom/config.yaml",
        "webhooks:\n  - url: http://127.0.0.1:9/h\n    secret_env: MY_HOOK_SECRET\n",
    );
    let run =
        sandbox.command(&["serve", "--port", "0"]).env("OPENLOOM_WEBHOOK_SECRET", SECRET).output();
    let run = crate::common::Run::from(run.expect("run"));
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("MY_HOOK_SECRET"), "the hook's own variable: {}", run.stderr);

    let mut https =
        sandbox.command(&["serve", "--port", "0", "--webhook", "https://h.example/s/TOKEN"]);
    let run = crate::common::Run::from(
        https.env("OPENLOOM_WEBHOOK_SECRET", SECRET).output().expect("run"),
    );
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--features https"), "{}", run.stderr);
    assert!(!run.stderr.contains("TOKEN"), "the URL's path may be a secret: {}", run.stderr);
}

#[tokio::test]
async fn a_delivery_in_flight_when_serve_is_killed_is_delivered_after_the_restart_once() {
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    // The first request is processed but never answered: serve is killed while it
    // waits, so it never records the delivery.
    receiver.answer_next(&[Answer::Hang]);
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.path().join(".openloom")).expect("mkdir");
    sandbox.write(
        ".openloom/config.yaml",
        &format!("webhooks:\n  - url: {}\n    timeout_seconds: 1\n", receiver.url()),
    );
    let served = Served::start(&sandbox, &secret_env()).await;
    let workspace = sandbox.path().display().to_string();
    let task_id =
        create_task(&served, &format!("name: Killed\nworkspace: {workspace}\ngoal: anything\n"))
            .await;
    let first = receiver.wait_for(Duration::from_secs(10), |r| !r.is_empty()).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].event, "task.created");
    drop(served); // SIGKILL, mid-attempt.

    let served = Served::start(&sandbox, &secret_env()).await;
    let got = receiver.wait_for(Duration::from_secs(20), |r| r.len() >= 2).await;
    assert!(got.len() >= 2, "sent again after the restart: {got:?}");
    assert!(got.iter().all(|r| r.verified), "{got:?}");
    assert_eq!(got[1].delivery_id, first[0].delivery_id, "the same delivery id");
    assert!(got[1].duplicate, "the receiver sees it is a repeat, and dedupes it");
    let counts = processed(&got);
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "exactly once per delivery id: {counts:?}");
    assert_eq!(got[1].body["task"]["id"], task_id.as_str());

    let listed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let listed = deliveries(&served).await;
            if listed["deliveries"][0]["status"] == "delivered" {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("recorded as delivered");
    let delivery = &listed["deliveries"][0];
    assert_eq!(delivery["id"], first[0].delivery_id.as_str());
    assert_eq!(delivery["event"], "task.created");
    assert!(delivery["url"].as_str().is_some_and(|u| u.ends_with("/…")), "{delivery}");
    assert!(!listed.to_string().contains(SECRET), "no secret in the API");

    // Redelivered through the API: the same id again, which the receiver dedupes.
    let id = first[0].delivery_id.clone();
    let answer = served
        .client()
        .post(format!("{}/api/webhooks/deliveries/{id}/redeliver", served.base))
        .send()
        .await
        .expect("POST redeliver");
    assert_eq!(answer.status(), 200);
    let again = receiver.wait_for(Duration::from_secs(10), |r| r.len() >= 3).await;
    assert_eq!(again.last().map(|r| (r.delivery_id.clone(), r.duplicate)), Some((id, true)));
    let missing = served
        .client()
        .post(format!("{}/api/webhooks/deliveries/dlv_none/redeliver", served.base))
        .send()
        .await
        .expect("POST redeliver");
    assert_eq!(missing.status(), 404);
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stderr.contains(SECRET), "the secret is never logged");
}

#[tokio::test]
async fn a_completed_task_reaches_the_receiver_as_task_completed() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let report = env.workspace.file("report.txt");
    crate::common::write_then_finish(&env, &report, "ok\n");
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    // A dead hook beside the live one: it must slow nothing down.
    let dead = Receiver::start(SECRET).await.expect("receiver");
    dead.answer_next(&[Answer::Hang; 16]);

    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let (live_url, dead_url) = (receiver.url(), dead.url());
    let args = ["--webhook", live_url.as_str(), "--webhook", dead_url.as_str()];
    let served = Served::start_with(&sandbox, &args, &secret_env()).await;
    let spec = format!(
        "name: Notified\nworkspace: {}\ncheck_interval_seconds: 10\ngoal: Write report.txt\n\
         steps: [Write it]\nchecks:\n  - file_exists: report.txt\n",
        env.workspace.directory()
    );
    let task_id = create_task(&served, &spec).await;
    let got = receiver
        .wait_for(Duration::from_secs(90), |r| r.iter().any(|r| r.event == "task.completed"))
        .await;
    let events: Vec<&str> = got.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events, ["task.created", "task.started", "task.completed"], "{got:?}");
    assert!(got.iter().all(|r| r.verified && !r.duplicate), "{got:?}");
    let done = &got[2].body;
    assert_eq!(done["task"]["id"], task_id.as_str());
    assert_eq!(done["task"]["status"], "completed");
    assert_eq!(done["task"]["progress"], 1.0);
    assert_eq!(done["deliveryId"], got[2].delivery_id.as_str());
    assert_eq!(env.workspace.read("report.txt").as_deref(), Some("ok\n"));
    assert!(!dead.received().is_empty(), "the dead hook was tried too");
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn watch_sends_the_completion_before_it_exits() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::text("Done.\nSTEP DONE: 1\nTASK COMPLETE"))
            .when_user_says(crate::common::BOOTSTRAP),
    );
    let receiver = Receiver::start(SECRET).await.expect("receiver");
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    sandbox.write(
        "spec.yaml",
        &format!(
            "name: Watched\nworkspace: {}\ncheck_interval_seconds: 10\ngoal: g\nsteps: [Do it]\n",
            env.workspace.directory()
        ),
    );
    let url = receiver.url();
    let mut command = sandbox.command(&["watch", "spec.yaml", "--webhook", url.as_str()]);
    command.env("OPENLOOM_WEBHOOK_SECRET", SECRET);
    let run = tokio::task::spawn_blocking(move || {
        crate::common::Run::from(command.output().expect("run watch"))
    })
    .await
    .expect("join");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("webhooks:  1"), "{}", run.stdout);
    // No waiting here: watch flushed before it exited.
    let events: Vec<String> = receiver.received().into_iter().map(|r| r.event).collect();
    assert_eq!(events, ["task.created", "task.started", "task.completed"], "{}", run.stdout);
    assert!(receiver.received().iter().all(|r| r.verified));
}
