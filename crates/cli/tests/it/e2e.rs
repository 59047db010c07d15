//! `openloom watch` against the real OpenCode, driven by the scripted model: the
//! whole loop, harness → OpenCode → model → files on disk.

use std::process::Stdio;
use std::time::Duration;

use openloom_testkit::{E2e, Reply, Script, Turn, require_opencode};

use crate::common::{BOOTSTRAP, Run, Sandbox, prompts_containing, wait_with_deadline};

/// Most time one `watch` may take; the event stream makes each step take about a
/// second, the 10 s interval is only the fallback.
const WATCH_LIMIT: Duration = Duration::from_secs(120);

fn sandbox_for(env: &E2e) -> Sandbox {
    let mut sandbox = Sandbox::new();
    sandbox.opencode_url = env.opencode.base_url();
    sandbox
}

fn spec(env: &E2e, body: &str) -> String {
    format!("workspace: {}\ncheck_interval_seconds: 10\n{body}", env.workspace.directory())
}

/// Runs `openloom watch` to its end. The wait happens off the test's runtime, which
/// also serves the scripted model.
async fn watch(sandbox: &Sandbox, spec_file: &str) -> Run {
    finish(start_watch(sandbox, spec_file), WATCH_LIMIT).await
}

fn start_watch(sandbox: &Sandbox, spec_file: &str) -> std::process::Child {
    sandbox
        .command(&["watch", spec_file])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch")
}

async fn finish(child: std::process::Child, limit: Duration) -> Run {
    tokio::task::spawn_blocking(move || wait_with_deadline(child, limit)).await.expect("join")
}

fn tasks(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    let run = sandbox.run(&["status", "--json"]);
    serde_json::from_str(&run.stdout).expect("status --json")
}

#[tokio::test]
async fn watch_drives_three_steps_to_completion_and_the_file_is_on_disk() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let hello = env.workspace.file("hello.txt");
    env.model.push_turn(
        Turn::reply(Reply::write_file(&hello, "hello from the agent\n")).when_user_says(BOOTSTRAP),
    );
    env.model
        .push_turn(Turn::reply(Reply::text("Wrote hello.txt.\nSTEP DONE: 1")).when_tool_result());
    env.model.push_turn(
        Turn::reply(Reply::text("Reviewed.\nSTEP DONE: 2")).when_user_says("Focus on step 2"),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("All good.\nSTEP DONE: 3\nTASK COMPLETE"))
            .when_user_says("Focus on step 3"),
    );

    let sandbox = sandbox_for(&env);
    sandbox.write(
        "spec.yaml",
        &spec(&env, "name: Three steps\ngoal: Write hello.txt\nsteps: [Write hello.txt, Review it, Finish]\n"),
    );
    let run = watch(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("COMPLETE"), "{}", run.stdout);
    assert_eq!(env.workspace.read("hello.txt").as_deref(), Some("hello from the agent\n"));

    let tasks = tasks(&sandbox);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[0]["completed_steps"], serde_json::json!([1, 2, 3]));
    assert_eq!(prompts_containing(&env, BOOTSTRAP), 1, "one bootstrap prompt");
}

#[tokio::test]
async fn an_agent_asking_to_proceed_is_answered_and_continues() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::text("I have a plan. Should I proceed?")).when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Done.\nSTEP DONE: 1\nTASK COMPLETE"))
            .when_user_says("proceed autonomously"),
    );
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: Ask first\ngoal: g\nsteps: [Do it]\n"));
    let run = watch(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Auto-continued"), "{}", run.stdout);
    assert_eq!(prompts_containing(&env, "Yes — proceed autonomously with step 1"), 1);
}

/// The agent acknowledges the bootstrap, then reports the one step and the task done
/// whenever the periodic check asks (however often that happens).
fn answer_the_bootstrap_then_finish_when_checked(env: &E2e) {
    env.model.push_turn(Turn::reply(Reply::text("Working on it.")).when_user_says(BOOTSTRAP));
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says("periodic check")
            .repeating(),
    );
}

#[tokio::test]
async fn opencode_restarting_mid_task_neither_fails_nor_duplicates_it() {
    let launcher = require_opencode!();
    let mut env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    answer_the_bootstrap_then_finish_when_checked(&env);
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: Survives restarts\ngoal: g\nsteps: [Do it]\n"));
    let mut child = start_watch(&sandbox, "spec.yaml");

    // Once the agent has answered the bootstrap, take OpenCode away long enough for
    // a scheduled check to hit it, then bring it back on the same port and data.
    if let Err(error) = env.model.wait_for_requests(1, Duration::from_secs(60)).await {
        let _ = child.kill();
        let run = finish(child, Duration::from_secs(5)).await;
        panic!(
            "bootstrap never reached the model ({error:?})\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.opencode.kill().await.expect("kill OpenCode");
    tokio::time::sleep(Duration::from_secs(12)).await;
    env.opencode.restart().await.expect("restart OpenCode");

    let run = finish(child, WATCH_LIMIT).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("waiting"), "the outage was recorded: {}", run.stdout);
    let tasks = tasks(&sandbox);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["session_ids"].as_array().map(Vec::len), Some(1), "no second session");
    assert_eq!(prompts_containing(&env, BOOTSTRAP), 1, "no second bootstrap");
}

#[tokio::test]
async fn a_second_watch_resumes_the_open_task_instead_of_starting_another() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    answer_the_bootstrap_then_finish_when_checked(&env);
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: Resumable\ngoal: g\nsteps: [Do it]\n"));

    let first = start_watch(&sandbox, "spec.yaml");
    env.model
        .wait_for_requests(1, Duration::from_secs(30))
        .await
        .expect("bootstrap reaches the model");
    // Ctrl-C, as a user would.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(first.id()).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("send SIGINT");
    let interrupted = finish(first, Duration::from_secs(20)).await;
    assert_eq!(interrupted.code, Some(130), "{interrupted:?}");
    assert!(
        interrupted.stdout.contains("run `openloom watch spec.yaml` again"),
        "{}",
        interrupted.stdout
    );

    let second = watch(&sandbox, "spec.yaml").await;
    assert_eq!(second.code, Some(0), "stdout:\n{}\nstderr:\n{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("resuming task"), "{}", second.stdout);
    assert_eq!(tasks(&sandbox).len(), 1, "one task, not two");
    assert_eq!(prompts_containing(&env, BOOTSTRAP), 1, "one agent on the workspace");
}

#[tokio::test]
async fn a_false_completion_claim_is_sent_back_until_the_file_exists() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let done = env.workspace.file("done.txt");
    env.model.push_turn(
        Turn::reply(Reply::text("All finished!\nTASK COMPLETE")).when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(
        Turn::reply(Reply::write_file(&done, "done\n")).when_user_says("verification failed"),
    );
    env.model.push_turn(Turn::reply(Reply::text("Fixed it.\nTASK COMPLETE")).when_tool_result());
    let sandbox = sandbox_for(&env);
    sandbox.write(
        "spec.yaml",
        &spec(&env, "name: Verified\ngoal: Create done.txt\nchecks:\n  - file_exists: done.txt\n"),
    );
    let run = watch(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Checks for task completion failed (file_exists: done.txt)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Completion verified"), "{}", run.stdout);
    let feedback = env
        .model
        .requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .find(|t| t.contains("verification failed"))
        .expect("the agent was told");
    assert!(feedback.contains("Check: file_exists: done.txt"), "{feedback}");
    assert!(done.exists());
}

#[tokio::test]
async fn an_agent_that_never_fixes_its_claim_fails_with_the_evidence() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(Turn::reply(Reply::text("TASK COMPLETE")).when_user_prompt().repeating());
    let sandbox = sandbox_for(&env);
    sandbox.write(
        "spec.yaml",
        &spec(
            &env,
            "name: Never fixed\ngoal: Create done.txt\nmax_verification_rounds: 2\nchecks:\n  - file_exists: done.txt\n",
        ),
    );
    let run = watch(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(1), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("FAILED"), "{}", run.stdout);
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "failed");
    let id = tasks[0]["id"].as_str().expect("id");
    let log = sandbox.run(&["log", id]);
    assert!(log.stdout.contains("FAIL    file_exists: done.txt"), "{}", log.stdout);
    assert!(log.stdout.contains("failed 2 times"), "{}", log.stdout);
}

#[tokio::test]
async fn plan_drafts_a_spec_in_a_throwaway_session() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let plan = r#"Here is the plan:
```json
{"name": "Add a health endpoint", "goal": "GET /health answers 200",
 "steps": [{"title": "Add the route", "acceptance": ["GET /health answers 200"]},
           {"title": "Test it", "acceptance": ["a test covers it"]}],
 "global_acceptance": ["cargo test passes"]}
```"#;
    env.model.push_turn(Turn::reply(Reply::text(plan)).when_user_says("User intent:"));
    let sandbox = sandbox_for(&env);
    let workspace = env.workspace.directory();
    let run = sandbox
        .run_async(&[
            "plan",
            "add a health endpoint",
            "--workspace",
            &workspace,
            "--output",
            "drafted.yaml",
        ])
        .await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Wrote drafted.yaml (2 steps)"), "{}", run.stdout);

    let spec = openloom_prompts::load_spec_file(&sandbox.path().join("drafted.yaml"))
        .expect("a valid spec");
    assert_eq!(spec.name, "Add a health endpoint");
    assert_eq!(spec.steps.len(), 2);
    assert_eq!(spec.steps[0].acceptance, vec!["GET /health answers 200"]);
    assert_eq!(spec.acceptance, vec!["cargo test passes"]);
    let asked = env
        .model
        .requests()
        .iter()
        .filter_map(|r| r.last_user_text())
        .any(|t| t.contains("add a health endpoint"));
    assert!(asked, "the intent reached the model");

    // The planning session was only a scratch pad: it is gone.
    let client = openloom_opencode::OpencodeClient::new(openloom_opencode::Settings::new(
        env.opencode.base_url(),
    ))
    .expect("client");
    let sessions = client.list_sessions().await.expect("sessions");
    assert!(sessions.iter().all(|s| s.title != "OpenLoom plan"), "{sessions:?}");

    let again = sandbox.run(&["plan", "x", "--workspace", &workspace, "--output", "drafted.yaml"]);
    assert_eq!(again.code, Some(2), "refuses to overwrite: {again:?}");
}

#[tokio::test]
async fn watch_with_ui_serves_the_task_while_driving_it() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    env.model.push_turn(Turn::reply(Reply::text("Working.")).when_user_says(BOOTSTRAP));
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE")).when_user_says("periodic check"),
    );
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: With UI\ngoal: g\nsteps: [Do it]\n"));
    let mut child = sandbox
        .command(&["watch", "spec.yaml", "--ui", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch --ui");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let dashboard = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines_rx.recv().await {
            if let Some(url) = line.trim().strip_prefix("dashboard: ") {
                return url.to_owned();
            }
        }
        panic!("watch --ui printed no dashboard line");
    })
    .await
    .expect("dashboard line in time");

    // The printed URL carries the generated token in its fragment; the API needs it.
    let (base, token) = dashboard.split_once("/#token=").expect("the URL carries the token");
    let unauthorized = reqwest::get(format!("{base}/api/tasks")).await.expect("GET /api/tasks");
    assert_eq!(unauthorized.status(), 401, "no task is read without the token");
    let tasks: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/tasks"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/tasks")
        .json()
        .await
        .expect("json");
    assert_eq!(tasks["tasks"][0]["name"], "With UI", "{tasks}");

    let run = finish(child, WATCH_LIMIT).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
}

/// The pending questions OpenCode holds for the workspace, as JSON.
async fn pending_questions(env: &E2e) -> Vec<serde_json::Value> {
    let url = format!("{}/question", env.opencode.base_url());
    let directory = env.workspace.directory();
    let answer = reqwest::Client::new()
        .get(url)
        .query(&[("directory", directory)])
        .send()
        .await
        .expect("GET /question");
    answer.json().await.expect("a list")
}

#[tokio::test]
async fn an_agent_asking_a_question_makes_the_task_wait_naming_it_until_answered() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    ask_which_file(&env);
    env.model.push_turn(
        Turn::reply(Reply::text("Using a.txt.\nSTEP DONE: 1\nTASK COMPLETE")).when_tool_result(),
    );
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: Ask a person\ngoal: g\nsteps: [Do it]\n"));
    let watching = start_watch(&sandbox, "spec.yaml");

    // The question reaches the task within seconds, named, with its options.
    let mut waiting = None;
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tasks = tasks(&sandbox);
        if tasks.first().is_some_and(|t| t["status"] == "waiting") {
            waiting = tasks.into_iter().next();
            break;
        }
    }
    let task = waiting.expect("the task waits for a person within 30 s");
    assert_eq!(
        task["last_summary"],
        r#"Waiting for a person — question: "Which file name should I use?""#
    );
    let pending = &task["pending_requests"][0];
    assert_eq!(pending["kind"], "question");
    assert_eq!(pending["questions"][0]["options"], serde_json::json!(["a.txt", "b.txt"]));

    // A person answers in OpenCode; the agent goes on and the task completes.
    let asked = pending_questions(&env).await;
    let id = asked[0]["id"].as_str().expect("a question id").to_owned();
    assert_eq!(pending["id"], id.as_str());
    let directory = env.workspace.directory();
    let replied = reqwest::Client::new()
        .post(format!("{}/question/{id}/reply", env.opencode.base_url()))
        .query(&[("directory", directory)])
        .json(&serde_json::json!({"answers": [["a.txt"]]}))
        .send()
        .await
        .expect("reply");
    assert!(replied.status().is_success(), "{}", replied.status());
    let run = finish(watching, WATCH_LIMIT).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[0]["pending_requests"], serde_json::json!([]));
}

/// Scripts the bootstrap turn: the agent asks which file name to use (a.txt or b.txt)
/// with OpenCode's question tool.
fn ask_which_file(env: &E2e) {
    let question = serde_json::json!({"questions": [{
        "question": "Which file name should I use?",
        "header": "File name",
        "options": [
            {"label": "a.txt", "description": "the first"},
            {"label": "b.txt", "description": "the second"}
        ]
    }]});
    env.model.push_turn(
        Turn::reply(Reply::tool_call(openloom_testkit::ToolCall::new("question", question)))
            .when_user_says(BOOTSTRAP),
    );
}

/// Scripts an agent that asks which file name to use, then writes the file it was
/// told to — only when the question's answer reached it — and reports done. Returns
/// the path of that file.
fn ask_then_write_the_chosen_file(env: &E2e) -> std::path::PathBuf {
    ask_which_file(env);
    let chosen = env.workspace.file("b.txt");
    env.model.push_turn(
        Turn::reply(Reply::write_file(&chosen, "written after the answer\n"))
            .when_tool_result()
            .when(|request| request.tool_results().iter().any(|result| result.contains("b.txt"))),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Wrote b.txt.\nSTEP DONE: 1\nTASK COMPLETE")).when_tool_result(),
    );
    chosen
}

/// Polls `read` (the task list, as JSON) until the first task is waiting on a
/// request; returns that task.
async fn first_task_waiting(
    mut read: impl AsyncFnMut() -> Vec<serde_json::Value>,
) -> serde_json::Value {
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let tasks = read().await;
        if let Some(task) = tasks.into_iter().next().filter(|t| {
            t["status"] == "waiting"
                && t["pending_requests"].as_array().is_some_and(|p| !p.is_empty())
        }) {
            return task;
        }
    }
    panic!("no task waited on a person within 30 s");
}

const AUDIT_CHOSE_B: &str =
    r#"Answered question: "Which file name should I use?": answered "b.txt", by a person"#;

#[tokio::test]
async fn a_question_answered_with_openloom_answer_while_watch_drives_the_task() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let chosen = ask_then_write_the_chosen_file(&env);
    let sandbox = sandbox_for(&env);
    sandbox.write("spec.yaml", &spec(&env, "name: Answer from the CLI\ngoal: g\nsteps: [Do it]\n"));
    let watching = start_watch(&sandbox, "spec.yaml");

    let task = first_task_waiting(async || tasks(&sandbox)).await;
    assert!(!chosen.exists(), "nothing is written before the answer");
    let id = task["id"].as_str().expect("an id").to_owned();
    let prefix = &id[..9];
    // A label that is not an option is refused, listing the options; nothing is sent.
    let wrong = sandbox.run_async(&["answer", prefix, "--choose", "c.txt"]).await;
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
    assert!(wrong.stderr.contains(r#""a.txt", "b.txt""#), "{wrong:?}");
    let answered = sandbox.run_async(&["answer", prefix, "--choose", "b.txt"]).await;
    assert_eq!(answered.code, Some(0), "{answered:?}");
    assert!(answered.stdout.contains(r#"answered "b.txt""#), "{answered:?}");

    let run = finish(watching, WATCH_LIMIT).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(std::fs::read_to_string(&chosen).expect("b.txt"), "written after the answer\n");
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[0]["pending_requests"], serde_json::json!([]));
    let log = sandbox.run_async(&["log", &id]).await;
    assert!(log.stdout.contains(&format!("{AUDIT_CHOSE_B} (CLI)")), "{}", log.stdout);
    // Answered once: a second answer finds nothing pending (exit 5).
    let again = sandbox.run_async(&["answer", prefix, "--dismiss"]).await;
    assert_eq!(again.code, Some(5), "{again:?}");
}

/// Events are hints, the API is the truth: a question asked while the harness hears
/// no event (the stream cut by a proxy, the rest of OpenCode's API still up) is found
/// when the stream comes back, and the task is answered and completes.
#[tokio::test]
async fn a_question_asked_while_the_event_stream_was_down_is_found_when_it_returns() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let proxy = openloom_testkit::EventCutProxy::start(&env.opencode.base_url())
        .await
        .expect("the proxy starts");
    let chosen = ask_then_write_the_chosen_file(&env);
    let mut sandbox = sandbox_for(&env);
    sandbox.opencode_url = proxy.base_url();
    // Interval 0: no periodic check, so only an event (or the stream's return) can
    // bring the harness back to the task while the agent waits.
    let spec_text = format!(
        "workspace: {}\ncheck_interval_seconds: 0\nname: Asked in the dark\ngoal: g\nsteps: [Do it]\n",
        env.workspace.directory()
    );
    sandbox.write("spec.yaml", &spec_text);
    proxy.cut_events();
    let watching = start_watch(&sandbox, "spec.yaml");

    // The agent asks while no event can reach the harness.
    let mut asked = Vec::new();
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        asked = pending_questions(&env).await;
        if !asked.is_empty() {
            break;
        }
    }
    assert_eq!(asked.len(), 1, "the agent asked its question within 30 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = tasks(&sandbox);
    assert_eq!(before[0]["status"], "running", "nothing told the harness yet: {before:?}");
    assert_eq!(proxy.open_event_streams(), 0);
    assert!(proxy.refused_event_streams() > 0, "the harness tried to listen");

    proxy.restore_events();
    let task = first_task_waiting(async || tasks(&sandbox)).await;
    assert!(proxy.open_event_streams() > 0, "the harness listens again");
    assert_eq!(task["pending_requests"][0]["id"], asked[0]["id"]);
    let id = task["id"].as_str().expect("an id").to_owned();
    let answered = sandbox.run_async(&["answer", &id[..9], "--choose", "b.txt"]).await;
    assert_eq!(answered.code, Some(0), "{answered:?}");

    let run = finish(watching, WATCH_LIMIT).await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(std::fs::read_to_string(&chosen).expect("b.txt"), "written after the answer\n");
    assert_eq!(tasks(&sandbox)[0]["status"], "completed");
}

#[tokio::test]
async fn a_question_answered_through_the_api_of_serve() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    let chosen = ask_then_write_the_chosen_file(&env);
    let sandbox = sandbox_for(&env);
    let served = crate::common::Served::start(&sandbox, &[]).await;
    let client = served.client();
    let spec_text =
        "name: Answer from the API\ngoal: g\nsteps: [Do it]\ncheck_interval_seconds: 10\n";
    let created: serde_json::Value = client
        .post(format!("{}/api/tasks", served.base))
        .json(&serde_json::json!({"spec": spec_text, "workspace": env.workspace.directory()}))
        .send()
        .await
        .expect("POST /api/tasks")
        .json()
        .await
        .expect("json");
    let id = created["taskId"].as_str().expect("a task id").to_owned();
    let list = async || -> Vec<serde_json::Value> {
        let page: serde_json::Value = client
            .get(format!("{}/api/tasks", served.base))
            .send()
            .await
            .expect("GET /api/tasks")
            .json()
            .await
            .expect("json");
        page["tasks"].as_array().cloned().unwrap_or_default()
    };
    let task = first_task_waiting(list).await;
    let request = task["pending_requests"][0]["id"].as_str().expect("a request id").to_owned();
    let uri = format!("{}/api/tasks/{id}/requests/{request}", served.base);
    let reply = client
        .post(&uri)
        .json(&serde_json::json!({"answers": [["b.txt"]]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["summary"], format!("{AUDIT_CHOSE_B} (API)"), "{body}");

    let mut status = String::new();
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let detail: serde_json::Value = client
            .get(format!("{}/api/tasks/{id}", served.base))
            .send()
            .await
            .expect("GET task")
            .json()
            .await
            .expect("json");
        status = detail["task"]["status"].as_str().unwrap_or_default().to_owned();
        if status == "completed" || status == "failed" {
            break;
        }
    }
    assert_eq!(status, "completed");
    assert_eq!(std::fs::read_to_string(&chosen).expect("b.txt"), "written after the answer\n");
    // The same request again: OpenCode no longer holds it, nothing is pending: 409.
    let again =
        client.post(&uri).json(&serde_json::json!({"dismiss": true})).send().await.expect("again");
    assert_eq!(again.status(), 409);
    drop(client);
    served.stop().await;
    let log = sandbox.run_async(&["log", &id]).await;
    assert!(log.stdout.contains(&format!("{AUDIT_CHOSE_B} (API)")), "{}", log.stdout);
}

#[tokio::test]
async fn a_provider_that_never_answers_is_noticed_aborted_and_the_task_completes() {
    let launcher = require_opencode!();
    let env = E2e::start(&launcher, Script::new()).await.expect("OpenCode starts");
    // The first turn hangs: the provider takes the request and never answers.
    env.model.push_turn(Turn::reply(Reply::hang()).when_user_says(BOOTSTRAP));
    // After the abort, the continuation is answered: the work gets done.
    let done = env.workspace.file("done.txt");
    env.model.push_turn(
        Turn::reply(Reply::write_file(&done, "recovered\n")).when_user_says("was stopped"),
    );
    env.model.push_turn(Turn::reply(Reply::text("Wrote it.\nTASK COMPLETE")).when_tool_result());
    let sandbox = sandbox_for(&env);
    let body = "name: Outlive a hung provider\ngoal: write done.txt\nstall_timeout: 10s\n\
                checks:\n  - file_exists: done.txt\n";
    sandbox.write("spec.yaml", &spec(&env, body));

    let run = watch(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(std::fs::read_to_string(&done).expect("done.txt"), "recovered\n");
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "completed");
    let id = tasks[0]["id"].as_str().expect("an id");
    let log = sandbox.run_async(&["log", id]).await;
    assert!(
        log.stdout.contains(
            "s without output: aborted, and asked the agent to continue (recovery 1 of 2)"
        ),
        "{}",
        log.stdout
    );
    assert_eq!(tasks[0]["session_ids"].as_array().map(Vec::len), Some(1), "the same session");
}

/// OpenCode holding every `bash` call for a person unless the session's rules say
/// otherwise: what a spec's `permissions:` must overrule.
fn bash_asks() -> openloom_testkit::OpencodeOptions {
    openloom_testkit::OpencodeOptions::default().with_permission(serde_json::json!({"bash": "ask"}))
}

/// Runs `watch` to its end, reading the task list every 250 ms meanwhile; returns
/// the run and each status the task was seen in, in order (repeats folded).
async fn watch_recording_statuses(sandbox: &Sandbox, spec_file: &str) -> (Run, Vec<String>) {
    let mut child = start_watch(sandbox, spec_file);
    let mut seen: Vec<String> = Vec::new();
    let started = std::time::Instant::now();
    while child.try_wait().expect("poll watch").is_none() && started.elapsed() < WATCH_LIMIT {
        let run = sandbox.run_async(&["status", "--json"]).await;
        let tasks: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap_or_default();
        let status = tasks.first().and_then(|t| t["status"].as_str());
        if status.is_some() && seen.last().map(String::as_str) != status {
            seen.extend(status.map(str::to_owned));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (finish(child, Duration::from_secs(10)).await, seen)
}

/// The task's check log as `openloom log` prints it.
async fn check_log(sandbox: &Sandbox, id: &str) -> String {
    let log = sandbox.run_async(&["log", id, "--limit", "200"]).await;
    assert_eq!(log.code, Some(0), "{log:?}");
    log.stdout
}

/// No person was ever asked: no waiting line, and any answered permission was the
/// policy's.
fn assert_nobody_was_asked(log: &str, statuses: &[String]) {
    assert!(!statuses.iter().any(|s| s == "waiting"), "the task waited: {statuses:?}\n{log}");
    assert!(!log.contains("Waiting for a person"), "{log}");
    for line in log.lines().filter(|line| line.contains("Answered permission")) {
        assert!(line.contains("by the task's policy"), "{line}");
    }
}

#[tokio::test]
async fn bash_the_spec_allows_runs_without_anyone_asked_though_opencode_would_ask() {
    let launcher = require_opencode!();
    let env =
        E2e::start_with(&launcher, Script::new(), bash_asks()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::tool_call(openloom_testkit::ToolCall::bash(
            "echo allowed > allowed.txt",
            "write allowed.txt",
        )))
        .when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Wrote allowed.txt.\nSTEP DONE: 1\nTASK COMPLETE"))
            .when_tool_result(),
    );
    let sandbox = sandbox_for(&env);
    sandbox.write(
        "spec.yaml",
        &spec(
            &env,
            "name: Allowed by the spec\ngoal: Write allowed.txt\nsteps: [Write it]\n\
             permissions:\n  bash:\n    \"*\": ask\n    \"echo *\": allow\n\
             checks:\n  - file_exists: allowed.txt\n",
        ),
    );
    let (run, statuses) = watch_recording_statuses(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(env.workspace.read("allowed.txt").as_deref(), Some("allowed\n"));
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(tasks[0]["pending_requests"], serde_json::json!([]));
    let id = tasks[0]["id"].as_str().expect("an id");
    let log = check_log(&sandbox, id).await;
    assert!(log.contains("Completion verified"), "{log}");
    assert_nobody_was_asked(&log, &statuses);
}

#[tokio::test]
async fn bash_the_spec_denies_never_runs_and_the_claim_that_needed_it_fails_verification() {
    let launcher = require_opencode!();
    let env =
        E2e::start_with(&launcher, Script::new(), bash_asks()).await.expect("OpenCode starts");
    env.model.push_turn(
        Turn::reply(Reply::tool_call(openloom_testkit::ToolCall::bash(
            "touch made.txt",
            "make made.txt",
        )))
        .when_user_says(BOOTSTRAP),
    );
    // Whatever came of the command, the agent claims to be done, every time it is asked.
    env.model.push_turn(Turn::reply(Reply::text("Made it.\nTASK COMPLETE")).when_tool_result());
    env.model.push_turn(Turn::reply(Reply::text("TASK COMPLETE")).when_user_prompt().repeating());
    let sandbox = sandbox_for(&env);
    sandbox.write(
        "spec.yaml",
        &spec(
            &env,
            "name: Denied by the spec\ngoal: Create made.txt\nmax_verification_rounds: 2\n\
             permissions:\n  bash:\n    \"*\": ask\n    \"touch *\": deny\n\
             checks:\n  - file_exists: made.txt\n",
        ),
    );
    let (run, statuses) = watch_recording_statuses(&sandbox, "spec.yaml").await;
    assert_eq!(run.code, Some(1), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(!env.workspace.file("made.txt").exists(), "the denied command ran");
    let bash_ran = env.model.requests().iter().any(|r| r.tool_names().iter().any(|t| t == "bash"));
    assert!(bash_ran, "the model was offered bash (denial is per command, not per tool)");
    let tasks = tasks(&sandbox);
    assert_eq!(tasks[0]["status"], "failed", "{}", tasks[0]);
    assert!(!statuses.iter().any(|s| s == "completed"), "{statuses:?}");
    let id = tasks[0]["id"].as_str().expect("an id");
    let log = check_log(&sandbox, id).await;
    assert!(log.contains("FAIL    file_exists: made.txt"), "{log}");
    assert!(!log.contains("Completion verified"), "{log}");
    assert_nobody_was_asked(&log, &statuses);
}
