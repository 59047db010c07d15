//! OpenLoom starting OpenCode itself (issue 15): the test kit's OpenCode binary via
//! OPENLOOM_OPENCODE_BIN, the scripted model's config and temp XDG dirs in the
//! environment, no OpenCode running beforehand — and none left afterwards.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use openloom_testkit::{E2e, OpencodeOptions, Reply, Script, Turn};

use crate::common::{BOOTSTRAP, Run, Sandbox, wait_with_deadline};

/// One of these tests at a time: each runs two OpenCode starts and a whole task, and
/// on two shared cores running them side by side starves the other e2e tests.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The test kit's model and workspace, with its own OpenCode stopped: `openloom`
/// must start one from the same binary, config and data dirs. The guard is held for
/// the test's length.
async fn setup() -> Option<(E2e, Sandbox, tokio::sync::MutexGuard<'static, ()>)> {
    setup_with(OpencodeOptions::default(), "").await
}

/// [`setup`] with OpenCode options (for the OpenCode `openloom` starts: they are in
/// the config its environment names) and more spec text.
async fn setup_with(
    options: OpencodeOptions,
    more_spec: &str,
) -> Option<(E2e, Sandbox, tokio::sync::MutexGuard<'static, ()>)> {
    let launcher = openloom_testkit::e2e_launcher()?;
    let turn = ONE_AT_A_TIME.lock().await;
    assert_default_url_is_free();
    let mut env =
        E2e::start_with(&launcher, Script::new(), options).await.expect("OpenCode starts");
    env.opencode.stop().await.expect("stop the kit's OpenCode");
    let sandbox = Sandbox::new();
    sandbox.write(
        "spec.yaml",
        &format!(
            "workspace: {}\ncheck_interval_seconds: 10\nname: Started for us\ngoal: g\nsteps: [Do it]\n{more_spec}",
            env.workspace.directory()
        ),
    );
    Some((env, sandbox, turn))
}

/// The default URL must have no server, or `openloom` would use that one.
fn assert_default_url_is_free() {
    let answered = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:14096".parse().expect("address"),
        Duration::from_millis(300),
    );
    assert!(answered.is_err(), "something listens on 127.0.0.1:14096; these tests need it free");
}

fn start_watch(env: &E2e, sandbox: &Sandbox) -> Child {
    let mut command = sandbox.command(&["watch", "spec.yaml"]);
    command
        .env_remove("OPENLOOM_OPENCODE_URL")
        .env("OPENLOOM_OPENCODE_BIN", launcher_binary())
        .envs(env.opencode.isolated_env())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("start watch")
}

fn launcher_binary() -> std::path::PathBuf {
    openloom_testkit::Launcher::find().expect("found before").binary().to_path_buf()
}

/// Reads stdout until the "started OpenCode" line; returns it and the port, and keeps
/// draining stdout into the returned thread's result.
fn started_line(child: &mut Child) -> (String, u16, std::thread::JoinHandle<String>) {
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = String::new();
    let line = loop {
        let line = lines.next().expect("a started line before stdout ends").expect("utf8");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("started OpenCode") {
            break line;
        }
    };
    let port = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let rest = std::thread::spawn(move || {
        lines.map_while(Result::ok).fold(seen, |mut all, line| {
            all.push_str(&line);
            all.push('\n');
            all
        })
    });
    (line, port, rest)
}

/// Pids of processes running `opencode serve … --port PORT`.
fn opencode_on(port: u16) -> Vec<u32> {
    let port = port.to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let serves = args.iter().any(|a| *a == b"serve");
            let on_port = args.windows(2).any(|w| w[0] == b"--port" && w[1] == port.as_bytes());
            (serves && on_port).then_some(pid)
        })
        .collect()
}

/// Waits up to 5 s for every OpenCode on `port` to be gone.
fn assert_gone(port: u16, context: &str) {
    for _ in 0..50 {
        if opencode_on(port).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("OpenCode on port {port} outlived openloom ({context}): pids {:?}", opencode_on(port));
}

async fn finish(child: Child) -> Run {
    tokio::task::spawn_blocking(move || wait_with_deadline(child, Duration::from_secs(120)))
        .await
        .expect("join")
}

/// Like [`finish`], but a child still running at the deadline is killed and its
/// output returned (code `None`), so a failure shows what it printed.
async fn finish_or_kill(mut child: Child, limit: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        while child.try_wait().expect("poll").is_none() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        Run::from(child.wait_with_output().expect("output"))
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn watch_starts_opencode_itself_completes_and_leaves_none_behind() {
    let Some((env, sandbox, _turn)) = setup().await else { return };
    env.model.push_turn(
        Turn::reply(Reply::text("Done.\nSTEP DONE: 1\nTASK COMPLETE")).when_user_says(BOOTSTRAP),
    );
    let mut child = start_watch(&env, &sandbox);
    let (line, port, rest) = started_line(&mut child);
    assert!(line.contains("(stops with openloom); log: "), "{line}");
    assert!(line.contains("started OpenCode 1."), "the version is named: {line}");
    assert_ne!(port, 14096, "a free port, not the default one");
    assert_eq!(opencode_on(port).len(), 1, "one OpenCode runs while watching");
    let log = line.rsplit("log: ").next().expect("log path").trim().to_owned();

    let mut run = finish(child).await;
    run.stdout = rest.join().expect("stdout");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("COMPLETE"), "{}", run.stdout);
    assert_gone(port, "after success");
    assert!(std::path::Path::new(&log).is_file(), "OpenCode's output went to {log}");
    assert!(log.starts_with(&*sandbox.path().to_string_lossy()), "the log is ours: {log}");
}

#[tokio::test]
async fn ctrl_c_stops_our_opencode_and_a_second_watch_finds_the_same_session() {
    let Some((env, sandbox, _turn)) = setup().await else { return };
    env.model.push_turn(Turn::reply(Reply::text("Working on it.")).when_user_says(BOOTSTRAP));
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says("periodic check")
            .repeating(),
    );
    let mut first = start_watch(&env, &sandbox);
    let (_, port, rest) = started_line(&mut first);
    env.model.wait_for_requests(1, Duration::from_secs(90)).await.expect("bootstrap sent");
    // Let the turn finish first: an OpenCode stopped mid-turn leaves an unfinished
    // assistant message that the harness reads as "busy" after the restart (a known
    // gap, outside this test's subject).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(first.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let interrupted = finish(first).await;
    assert_eq!(interrupted.code, Some(130), "{interrupted:?}\n{}", rest.join().expect("stdout"));
    assert_gone(port, "after Ctrl-C");

    let mut second = start_watch(&env, &sandbox);
    let (_, second_port, rest) = started_line(&mut second);
    let mut run = finish_or_kill(second, Duration::from_secs(90)).await;
    run.stdout = rest.join().expect("stdout");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("resuming task"), "{}", run.stdout);
    assert_gone(second_port, "after the second watch");
    let status = sandbox.run(&["status", "--json"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["status"], "completed");
    assert_eq!(
        tasks[0]["session_ids"].as_array().map(Vec::len),
        Some(1),
        "the session was found again in the same data directory: {}",
        tasks[0]
    );
}

#[tokio::test]
async fn sigkill_of_openloom_takes_its_opencode_along() {
    let Some((env, sandbox, _turn)) = setup().await else { return };
    env.model.push_turn(Turn::reply(Reply::text("Working on it.")).when_user_says(BOOTSTRAP));
    let mut child = start_watch(&env, &sandbox);
    let (_, port, _rest) = started_line(&mut child);
    assert_eq!(opencode_on(port).len(), 1);
    child.kill().expect("SIGKILL openloom");
    let _ = child.wait();
    assert_gone(port, "after SIGKILL of openloom");
}

#[test]
fn an_explicit_url_or_no_start_opencode_never_starts_one() {
    let Some(_launcher) = openloom_testkit::e2e_launcher() else { return };
    let sandbox = Sandbox::new();
    sandbox.run(&["init"]);
    // The sandbox names a URL where nothing listens: explicit, so nothing is started.
    let run = sandbox.command(&["watch"]).env("OPENLOOM_OPENCODE_BIN", launcher_binary()).output();
    let run = Run::from(run.expect("run"));
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(!run.stdout.contains("started OpenCode"), "{}", run.stdout);
    // The default URL, but starting turned off.
    assert_default_url_is_free();
    let run = sandbox
        .command(&["watch", "--no-start-opencode"])
        .env_remove("OPENLOOM_OPENCODE_URL")
        .env("OPENLOOM_OPENCODE_BIN", launcher_binary())
        .output();
    let run = Run::from(run.expect("run"));
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(!run.stdout.contains("started OpenCode"), "{}", run.stdout);
    assert!(run.stderr.contains("127.0.0.1:14096"), "{}", run.stderr);
}

#[tokio::test]
async fn doctor_on_a_healthy_setup_names_the_binary_version_url_and_model() {
    let Some((env, sandbox, _turn)) = setup().await else { return };
    let mut command = sandbox.command(&["doctor"]);
    command
        .env_remove("OPENLOOM_OPENCODE_URL")
        .env("OPENLOOM_OPENCODE_BIN", launcher_binary())
        .envs(env.opencode.isolated_env());
    let run = tokio::task::spawn_blocking(move || Run::from(command.output().expect("doctor")))
        .await
        .expect("join");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let binary = launcher_binary().display().to_string();
    assert!(
        run.stdout.contains(&format!("ok      binary    {binary} (version 1.")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("start OpenCode 1."), "{}", run.stdout);
    assert!(run.stdout.contains("ok      model     scripted/"), "{}", run.stdout);
    assert!(run.stdout.contains("Everything needed is in place."), "{}", run.stdout);
    assert!(!run.stdout.contains("PROBLEM"), "{}", run.stdout);
}

#[tokio::test]
async fn our_opencode_dying_is_restarted_on_its_port_and_the_task_completes() {
    let Some((env, sandbox, _turn)) = setup().await else { return };
    env.model.push_turn(Turn::reply(Reply::text("Working on it.")).when_user_says(BOOTSTRAP));
    env.model.push_turn(
        Turn::reply(Reply::text("STEP DONE: 1\nTASK COMPLETE"))
            .when_user_says("periodic check")
            .repeating(),
    );
    let mut child = start_watch(&env, &sandbox);
    let (_, port, rest) = started_line(&mut child);
    env.model.wait_for_requests(1, Duration::from_secs(90)).await.expect("bootstrap sent");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pids = opencode_on(port);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pids[0]).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill OpenCode");

    let mut run = finish_or_kill(child, Duration::from_secs(100)).await;
    run.stdout = rest.join().expect("stdout");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("OpenCode exited"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("OpenCode is back on 127.0.0.1:{port}")),
        "{}",
        run.stderr
    );
    let status = sandbox.run(&["status", "--json"]);
    let tasks: Vec<serde_json::Value> = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(tasks[0]["status"], "completed", "the outage did not fail the task");
    assert_gone(port, "after the restarted one's watch ended");
}

/// Polls the task list (up to 120 s: on 2 loaded cores, with the other end-to-end
/// tests' OpenCode servers running, the agent's turn took over 60 s once) until the
/// first task waits on a request.
async fn first_task_waiting(sandbox: &Sandbox) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let run = sandbox.run_async(&["status", "--json"]).await;
        let tasks: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap_or_default();
        if let Some(task) = tasks.into_iter().next().filter(|t| {
            t["status"] == "waiting"
                && t["pending_requests"].as_array().is_some_and(|p| !p.is_empty())
        }) {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no task waited on a person within 120 s");
}

#[tokio::test]
async fn answer_from_another_shell_reaches_the_opencode_watch_started_itself() {
    let options = OpencodeOptions::default().with_permission(serde_json::json!({"bash": "ask"}));
    let policy = "permissions:\n  bash:\n    \"*\": ask\nchecks:\n  - file_exists: held.txt\n";
    let Some((env, sandbox, _turn)) = setup_with(options, policy).await else { return };
    env.model.push_turn(
        Turn::reply(Reply::tool_call(openloom_testkit::ToolCall::bash(
            "echo held > held.txt",
            "write held.txt",
        )))
        .when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(
        Turn::reply(Reply::text("Wrote held.txt.\nSTEP DONE: 1\nTASK COMPLETE")).when_tool_result(),
    );
    let mut child = start_watch(&env, &sandbox);
    let watch_pid = child.id();
    let (_, port, rest) = started_line(&mut child);

    // `watch` published where its OpenCode listens, privately, in its state dir.
    let published = env.opencode.root_dir().join("state/openloom/opencode.json");
    let text = std::fs::read_to_string(&published).expect("the address file is written");
    let address: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(address["url"], format!("http://127.0.0.1:{port}"), "{address}");
    assert_eq!(address["pid"], watch_pid, "{address}");
    let password = address["password"].as_str().expect("a password").to_owned();
    assert!(password.len() >= 16, "a generated password");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&published).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let task = first_task_waiting(&sandbox).await;
    assert_eq!(task["pending_requests"][0]["kind"], "permission", "{task}");
    assert!(!env.workspace.file("held.txt").exists(), "the command waits for the person");
    let id = task["id"].as_str().expect("an id").to_owned();

    // A URL the user named is used as it is: the sandbox names one where nothing runs.
    let named = sandbox.run_async(&["answer", &id[..9], "--allow"]).await;
    assert_eq!(named.code, Some(3), "{named:?}");
    // With none named and nothing at the default URL, the published OpenCode is used.
    let mut command = sandbox.command(&["answer", &id[..9], "--allow"]);
    command.env_remove("OPENLOOM_OPENCODE_URL").envs(env.opencode.isolated_env());
    let answered =
        tokio::task::spawn_blocking(move || Run::from(command.output().expect("answer")))
            .await
            .expect("join");
    assert_eq!(answered.code, Some(0), "{answered:?}");
    assert!(answered.stdout.contains("Answered permission: bash"), "{answered:?}");
    for output in [&answered.stdout, &answered.stderr, &named.stdout, &named.stderr] {
        assert!(!output.contains(&password), "the password was shown: {output}");
    }

    let mut run = finish_or_kill(child, Duration::from_secs(90)).await;
    run.stdout = rest.join().expect("stdout");
    assert_eq!(run.code, Some(0), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(env.workspace.read("held.txt").as_deref(), Some("held\n"));
    let log = sandbox.run_async(&["log", &id]).await;
    assert!(
        log.stdout.contains(
            r#"Answered permission: bash "echo held > held.txt": allowed once, by a person (CLI)"#
        ),
        "{}",
        log.stdout
    );
    assert!(log.stdout.contains("Completion verified"), "{}", log.stdout);
    assert!(!published.exists(), "the address file goes when our OpenCode stops");
    assert_gone(port, "after the answered task");
}
