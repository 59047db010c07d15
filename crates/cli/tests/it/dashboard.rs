//! The dashboard in a real headless Chromium against the real `openloom serve`: a task
//! created through the New task form completes and shows up completed without a
//! reload; the token travels in the URL fragment and nowhere else; a refused action
//! shows the API's own words. Screenshots go to `/tmp/dash-*.png` for a human to look
//! at (not asserted on).

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use openloom_testkit::{E2e, Reply, Script, Turn, require_browser, require_opencode};
use serde_json::{Value, json};

use crate::common::{Sandbox, Served};

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;
const PROMPT: &str = "Write report.txt saying ok";

/// Page conditions the tests wait for (function bodies run in the page).
const LIVE: &str = "return document.getElementById('conn-text').textContent === 'Live'";
const DRAWER_OPEN: &str = "return !document.getElementById('drawer').hidden \
     && document.querySelector('#drawer-actions button')";
const VIEWS_HIDDEN: &str = "return document.getElementById('view-dashboard').hidden \
     && document.getElementById('view-activity').hidden";
const TOKEN_FORM: &str = "return !document.getElementById('token-panel').hidden";
const LIVE_WITHOUT_FORM: &str = "return document.getElementById('token-panel').hidden \
     && document.getElementById('conn-text').textContent === 'Live'";

/// The tasks and the newest task's check log, for failure messages.
async fn task_dump(served: &Served) -> String {
    let client = served.client();
    let get = |path: String| {
        let client = client.clone();
        async move {
            match client.get(path).send().await {
                Ok(reply) => reply.text().await.unwrap_or_default(),
                Err(error) => error.to_string(),
            }
        }
    };
    let tasks = get(format!("{}/api/tasks", served.base)).await;
    let id = serde_json::from_str::<Value>(&tasks)
        .ok()
        .and_then(|v| v["tasks"][0]["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = get(format!("{}/api/tasks/{id}?log_limit=3", served.base)).await;
    let session = serde_json::from_str::<Value>(&tasks)
        .ok()
        .and_then(|v| v["tasks"][0]["active_session_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let messages = get(format!("{}/api/sessions/{session}/messages?limit=10", served.base)).await;
    format!("{detail}\n{messages}")
}

/// Runs `script` (a function body returning a value) until it returns something
/// truthy; returns that value, or panics with `what` and the page's notices.
async fn wait_for(client: &Client, what: &str, limit: Duration, script: &str) -> Value {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.expect("script runs");
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
            _ => true,
        };
        if truthy {
            return value;
        }
        if started.elapsed() > limit {
            let page = client
                .execute("return document.querySelector('main').innerText", vec![])
                .await
                .unwrap_or(Value::Null);
            panic!("timed out after {limit:?} waiting for {what}; the page shows:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Live events re-render the views, so an element found a moment ago may be gone
/// ("stale") by the time it is used: find it again, for up to 5 s.
const STALE_RETRY: Duration = Duration::from_secs(5);

async fn text_of(client: &Client, css: &str) -> String {
    let started = Instant::now();
    loop {
        match client.find(Locator::Css(css)).await {
            Ok(element) => match element.text().await {
                Ok(text) => return text,
                Err(error) if started.elapsed() > STALE_RETRY => panic!("text of {css}: {error}"),
                Err(_) => {}
            },
            Err(error) if started.elapsed() > STALE_RETRY => panic!("find {css}: {error}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(client: &Client, css: &str) {
    let started = Instant::now();
    loop {
        match client.find(Locator::Css(css)).await {
            Ok(element) => match element.click().await {
                Ok(_) => return,
                Err(error) if started.elapsed() > STALE_RETRY => panic!("click {css}: {error}"),
                Err(_) => {}
            },
            Err(error) if started.elapsed() > STALE_RETRY => panic!("find {css}: {error}"),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn type_into(client: &Client, css: &str, text: &str) {
    client.find(Locator::Css(css)).await.expect(css).send_keys(text).await.expect("type");
}

async fn screenshot(client: &Client, name: &str) {
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(format!("/tmp/dash-{name}.png"), png);
    }
}

#[tokio::test]
async fn a_task_from_the_form_completes_live_and_its_check_log_and_refusals_show() {
    let launcher = require_opencode!();
    let browser_launcher = require_browser!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let report = env.workspace.file("report.txt");
    // A watched prompt task sends the prompt itself first.
    env.model.push_turn(Turn::reply(Reply::write_file(&report, "ok\n")).when_user_says(PROMPT));
    env.model.push_turn(Turn::reply(Reply::text("Written.\nTASK COMPLETE")).when_tool_result());
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let served = Served::start(&sandbox, &[]).await;
    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();

    // The URL the banner printed, token in its fragment, as the owner would open it.
    assert!(served.dashboard.contains("/#token="), "{}", served.dashboard);
    client.goto(&served.dashboard).await.expect("open the dashboard");
    wait_for(client, "the event stream to be live", Duration::from_secs(10), LIVE).await;
    // A marker that a reload would wipe.
    client.execute("window.__noReload = 'still here'; return true", vec![]).await.expect("mark");

    type_into(client, "#nt-workspace", &env.workspace.directory()).await;
    type_into(client, "#nt-prompt", PROMPT).await;
    // Every 3 s: the scripted model answers faster than the session monitor polls, so
    // the timer, not an idle transition, is what notices the agent is done.
    let interval = client.find(Locator::Css("#nt-interval")).await.expect("interval");
    interval.clear().await.expect("clear");
    interval.send_keys("3").await.expect("type");
    client
        .find(Locator::Css("#nt-interval-unit"))
        .await
        .expect("unit")
        .select_by_value("1")
        .await
        .expect("seconds");
    click(client, "#nt-submit").await;

    let row = "#tasks-table tr[data-task-id]";
    wait_for(
        client,
        "the new task's row",
        Duration::from_secs(10),
        &format!("return document.querySelector(\"{row}\")"),
    )
    .await;
    let completed = format!("return document.querySelector(\"{row}[data-status='completed']\")");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client.execute(&completed, vec![]).await.expect("js").is_null() {
        if Instant::now() > deadline {
            panic!(
                "the task did not show completed; the server says:\n{}",
                task_dump(&served).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let marker = client.execute("return window.__noReload", vec![]).await.expect("marker");
    assert_eq!(marker, json!("still here"), "the page reloaded");
    assert!(
        !client
            .execute("return document.getElementById('view-activity').hidden", vec![])
            .await
            .expect("js")
            .as_bool()
            .unwrap_or(true),
        "creating a task switches to the Activity view"
    );
    assert_eq!(
        env.workspace.read("report.txt").as_deref(),
        Some("ok\n"),
        "the model's file is on disk"
    );
    let row_text = text_of(client, row).await;
    assert!(row_text.contains(PROMPT), "{row_text}");
    screenshot(client, "activity").await;

    // The drawer's check log has entries.
    click(client, "#tasks-table tr[data-task-id] button.link").await;
    wait_for(client, "the task drawer", Duration::from_secs(10), DRAWER_OPEN).await;
    click(client, "#drawer-tabs button[data-value='log']").await;
    let entries = wait_for(
        client,
        "check log entries",
        Duration::from_secs(10),
        "return document.querySelectorAll('#drawer-body .log-entry').length",
    )
    .await;
    assert!(entries.as_u64().unwrap_or(0) >= 2, "{entries}");
    let log = text_of(client, "#drawer-body").await;
    assert!(log.contains("completed"), "{log}");
    screenshot(client, "drawer").await;

    // A refused action: pausing a completed task. The API's detail is shown.
    click(client, "#drawer-actions button[data-action='pause']").await;
    let error = wait_for(
        client,
        "the refusal",
        Duration::from_secs(10),
        "return document.getElementById('drawer-error').textContent",
    )
    .await;
    let error = error.as_str().unwrap_or_default();
    assert!(error.contains("cannot be paused") && error.contains("conflict"), "{error}");

    // The task's session: its messages, as text.
    click(client, "#drawer-actions button:first-child").await;
    let messages = wait_for(
        client,
        "the session's messages",
        Duration::from_secs(10),
        "return document.querySelectorAll('#drawer-body .msg').length",
    )
    .await;
    assert!(messages.as_u64().unwrap_or(0) >= 2, "{messages}");
    let transcript = text_of(client, "#drawer-body").await;
    assert!(transcript.contains(PROMPT) && transcript.contains("TASK COMPLETE"), "{transcript}");
    screenshot(client, "session").await;

    client
        .execute("document.getElementById('drawer-close').click(); return true", vec![])
        .await
        .expect("close");
    click(client, "#tab-dashboard").await;
    wait_for(
        client,
        "usage from the session",
        Duration::from_secs(15),
        "return document.querySelector('#top-sessions table')",
    )
    .await;
    screenshot(client, "dashboard").await;

    browser.close().await;
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn the_token_comes_from_the_fragment_and_without_it_the_page_asks_for_it() {
    let browser_launcher = require_browser!();
    let sandbox = Sandbox::new();
    let token = "dash-token-7f3a9c";
    let served = Served::start(&sandbox, &[("OPENLOOM_API_TOKEN", token)]).await;
    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();

    // Without a token: the token form, not broken views.
    client.goto(&format!("{}/", served.base)).await.expect("open");
    wait_for(client, "the token form", Duration::from_secs(10), TOKEN_FORM).await;
    let hidden_views = client.execute(VIEWS_HIDDEN, vec![]).await.expect("js");
    assert_eq!(hidden_views, json!(true), "the views hide behind the token form");
    screenshot(client, "token").await;

    // With #token=…: it works and the fragment is gone from the address bar.
    client.goto(&format!("{}/#token={token}", served.base)).await.expect("open with token");
    wait_for(client, "live events with the token", Duration::from_secs(10), LIVE_WITHOUT_FORM)
        .await;
    let url = client.current_url().await.expect("url");
    assert_eq!(url.fragment(), None, "the token left the address bar: {url}");
    assert!(!url.as_str().contains(token), "{url}");
    let stored = client
        .execute("return sessionStorage.getItem('openloom.token')", vec![])
        .await
        .expect("js");
    assert_eq!(stored, json!(token));
    wait_for(
        client,
        "the state",
        Duration::from_secs(10),
        "return document.querySelector('#status-counters .counter')",
    )
    .await;

    // A wrong stored token: the form again; typing the right one brings the views back.
    client
        .execute("sessionStorage.setItem('openloom.token', 'wrong'); return true", vec![])
        .await
        .expect("js");
    client.goto(&format!("{}/", served.base)).await.expect("reopen");
    wait_for(client, "the token form", Duration::from_secs(10), TOKEN_FORM).await;
    type_into(client, "#token-input", token).await;
    click(client, "#token-form button[type='submit']").await;
    wait_for(
        client,
        "the views after entering the token",
        Duration::from_secs(10),
        LIVE_WITHOUT_FORM,
    )
    .await;

    browser.close().await;
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn a_permission_held_for_a_person_is_allowed_from_the_dashboard() {
    let launcher = require_opencode!();
    let browser_launcher = require_browser!();
    let options =
        openloom_testkit::OpencodeOptions::default().with_permission(json!({"bash": "ask"}));
    let env = E2e::start_with(&launcher, Script::new(), options).await.expect("OpenCode starts");
    let prompt = "Greet in hello.txt";
    let command = format!("echo hello > {}", env.workspace.file("hello.txt").display());
    env.model.push_turn(
        Turn::reply(Reply::tool_call(openloom_testkit::ToolCall::bash(&command, "greet")))
            .when_user_says(prompt),
    );
    env.model.push_turn(Turn::reply(Reply::text("Greeted.\nTASK COMPLETE")).when_tool_result());
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    let served = Served::start_with(&sandbox, &["--worker-name", "board-worker"], &[]).await;
    let created: Value = served
        .client()
        .post(format!("{}/api/tasks", served.base))
        .json(&json!({"prompt": prompt, "workspace": env.workspace.directory(), "watch": true}))
        .send()
        .await
        .expect("POST /api/tasks")
        .json()
        .await
        .expect("json");
    let id = created["taskId"].as_str().expect("a task id").to_owned();
    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();
    client.goto(&served.dashboard).await.expect("open the dashboard");
    wait_for(client, "the event stream to be live", Duration::from_secs(10), LIVE).await;

    // The badge shows in the task list once the harness sees the request.
    let asks = "#tasks-table tr[data-task-id] .badge.asks";
    wait_for(
        client,
        "the task's 'answer needed' badge",
        Duration::from_secs(40),
        &format!("return document.querySelector(\"{asks}\")"),
    )
    .await;
    assert!(!env.workspace.file("hello.txt").exists(), "the command waits for the person");
    click(client, "#tab-activity").await;
    click(client, "#tasks-table tr[data-task-id] button.link").await;
    let allow = ".requests .request[data-kind='permission'] button[data-answer='allow']";
    wait_for(
        client,
        "the permission with its Allow button",
        Duration::from_secs(10),
        &format!("return document.querySelector(\"{allow}\")"),
    )
    .await;
    let card = text_of(client, ".requests .request").await;
    assert!(card.contains("Permission: bash") && card.contains("echo hello >"), "{card}");
    // The task page names the worker driving the task.
    let facts = text_of(client, "#drawer-body .facts").await;
    let facts = facts.to_lowercase(); // innerText carries the CSS upper-casing of labels
    assert!(facts.contains("driven by\nboard-worker"), "{facts}");
    screenshot(client, "request").await;
    click(client, allow).await;

    // Answered: the badge goes, live, and the command ran.
    wait_for(
        client,
        "the badge to disappear",
        Duration::from_secs(20),
        &format!("return !document.querySelector(\"{asks}\")"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.workspace.read("hello.txt").is_none() {
        assert!(Instant::now() < deadline, "hello.txt never written: {}", task_dump(&served).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(env.workspace.read("hello.txt").as_deref(), Some("hello\n"));
    let detail: Value = served
        .client()
        .get(format!("{}/api/tasks/{id}?log_limit=200", served.base))
        .send()
        .await
        .expect("GET task")
        .json()
        .await
        .expect("json");
    let audited = detail["log"].as_array().into_iter().flatten().any(|entry| {
        entry["summary"].as_str().is_some_and(|s| {
            s.starts_with("Answered permission: bash")
                && s.ends_with("allowed once, by a person (dashboard)")
        })
    });
    assert!(audited, "the audit line is in the check log: {detail}");
}

#[tokio::test]
async fn the_webhooks_view_shows_a_failing_delivery_and_redelivers_it() {
    use openloom_testkit::receiver::{Answer, Receiver};
    let browser_launcher = require_browser!();
    let secret = "dash-webhook-secret-5d1e";
    let receiver = Receiver::start(secret).await.expect("receiver");
    receiver.answer_next(&[Answer::Status(500); 3]);
    let sandbox = Sandbox::new();
    let hook = receiver.url();
    let served = Served::start_with(
        &sandbox,
        &["--webhook", hook.as_str()],
        &[("OPENLOOM_WEBHOOK_SECRET", secret)],
    )
    .await;
    let spec = format!("name: Hooked\nworkspace: {}\ngoal: anything\n", sandbox.path().display());
    let created: Value = served
        .client()
        .post(format!("{}/api/tasks", served.base))
        .json(&json!({ "spec": spec }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(created["ok"], true, "{created}");

    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();
    client.goto(&served.dashboard).await.expect("open the dashboard");
    wait_for(client, "the event stream to be live", Duration::from_secs(10), LIVE).await;
    click(client, "#tab-webhooks").await;
    let row = "#deliveries-table tr[data-delivery-id]";
    let failed = format!(
        "const r = document.querySelector(\"{row}\"); \
         return r && r.innerText.includes('HTTP 500') && r.innerText.includes('task.created')"
    );
    wait_for(client, "the failing delivery with its error", Duration::from_secs(15), &failed).await;
    let shown = text_of(client, row).await;
    assert!(shown.contains("Hooked") && shown.contains("http://127.0.0.1:"), "{shown}");
    assert!(!shown.contains("/hook"), "the hook's path is not shown: {shown}");
    screenshot(client, "webhooks").await;

    receiver.clear_answers();
    let before = receiver.received().len();
    click(client, &format!("{row} button.redeliver")).await;
    wait_for(
        client,
        "the redelivery notice",
        Duration::from_secs(10),
        "return document.getElementById('notice').textContent.includes('queued again')",
    )
    .await;
    let delivered = format!("return document.querySelector(\"{row}[data-status='delivered']\")");
    wait_for(client, "the delivery to be delivered", Duration::from_secs(15), &delivered).await;
    let got = receiver.wait_for(Duration::from_secs(10), |r| r.len() > before).await;
    assert!(got.len() > before, "the redelivery reached the receiver: {got:?}");
    assert!(got.iter().all(|r| r.verified && r.delivery_id == got[0].delivery_id), "{got:?}");

    browser.close().await;
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn changes_made_by_another_process_show_without_a_reload_and_deletions_vanish() {
    use openloom_core::{Store, Task, TaskId, TaskSpec, TaskStatus, TaskUpdate};
    let browser_launcher = require_browser!();
    let sandbox = Sandbox::new();
    let served = Served::start(&sandbox, &[]).await;
    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();
    client.goto(&served.dashboard).await.expect("open the dashboard");
    wait_for(client, "the event stream to be live", Duration::from_secs(10), LIVE).await;
    client.execute("window.__noReload = 'still here'; return true", vec![]).await.expect("mark");

    // Another process on the same SQLite file (as `openloom watch` would be): this
    // test itself, through its own store. Paused, so `serve` leaves the task alone.
    let other = openloom_store_sqlite::SqliteStore::open(sandbox.database()).await.expect("store");
    let id = TaskId::from("task_elsewhere");
    let workspace = sandbox.path().to_string_lossy().into_owned();
    let mut task = Task::new(
        id.clone(),
        TaskSpec::new("Made elsewhere", workspace, "goal"),
        chrono::Utc::now(),
    );
    task.status = TaskStatus::Paused;
    other.create_task(&task).await.expect("create through the other store");
    let row = format!("#tasks-table tr[data-task-id='{id}']");
    wait_for(
        client,
        "the other process's task",
        Duration::from_secs(15),
        &format!("return document.querySelector(\"{row}\")"),
    )
    .await;

    let update = TaskUpdate {
        last_summary: Some(Some("changed elsewhere".into())),
        ..TaskUpdate::default()
    };
    other.update_task(&id, &update, None).await.expect("update through the other store");
    wait_for(
        client,
        "the other process's change",
        Duration::from_secs(15),
        &format!(
            "const r = document.querySelector(\"{row}\"); \
             return r && r.innerText.includes('changed elsewhere')"
        ),
    )
    .await;
    screenshot(client, "foreign").await;

    // The periodic state refresh only adds and updates tasks; a task vanishing without
    // a reload is the stream's snapshot at work.
    other.delete_task(&id).await.expect("delete through the other store");
    wait_for(
        client,
        "the deleted task to vanish",
        Duration::from_secs(15),
        &format!("return !document.querySelector(\"{row}\")"),
    )
    .await;
    let marker = client.execute("return window.__noReload", vec![]).await.expect("marker");
    assert_eq!(marker, json!("still here"), "the page reloaded");

    browser.close().await;
    other.close().await;
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[tokio::test]
async fn the_header_names_each_opencode_server_and_the_one_that_is_down() {
    let launcher = require_opencode!();
    let browser_launcher = require_browser!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    std::fs::create_dir_all(sandbox.path().join(".openloom")).expect("mkdir");
    // b: nothing listens there.
    let config =
        format!("opencode_servers:\n  a: {}\n  b: http://127.0.0.1:9\n", env.opencode.base_url());
    std::fs::write(sandbox.path().join(".openloom/config.yaml"), config).expect("config");
    let token = "dash-token-two-servers";
    let served =
        Served::start_with(&sandbox, &["--opencode", "a,b"], &[("OPENLOOM_API_TOKEN", token)])
            .await;
    let browser = browser_launcher.start(WIDTH, HEIGHT).await.expect("headless Chromium");
    let client = browser.client();
    client.goto(&format!("{}/#token={token}", served.base)).await.expect("open");
    let badge = wait_for(
        client,
        "the badge naming the server that is down",
        Duration::from_secs(20),
        "const t = document.getElementById('health-badge').textContent; \
         return t === 'OpenCode b unreachable' && t",
    )
    .await;
    assert_eq!(badge, json!("OpenCode b unreachable"));
    let url = text_of(client, "#oc-url").await;
    assert!(url.contains("a http://") && url.contains("b http://127.0.0.1:9"), "{url}");
    screenshot(client, "two-servers").await;
    browser.close().await;
    let run = served.stop().await;
    assert_eq!(run.code, Some(0), "{run:?}");
}
