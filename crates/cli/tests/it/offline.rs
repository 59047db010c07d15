//! The commands that need no OpenCode: init, status, log, verify, bad input.

use chrono::Utc;
use openloom_core::{CheckLogEntry, Store, Task, TaskId, TaskSpec, TaskStatus, TaskUpdate};
use openloom_store_sqlite::SqliteStore;

use crate::common::Sandbox;

#[test]
fn init_writes_a_spec_once_and_says_how_to_force() {
    let sandbox = Sandbox::new();
    let first = sandbox.run(&["init"]);
    assert_eq!(first.code, Some(0), "{first:?}");
    let spec = std::fs::read_to_string(sandbox.path().join("openloom.yaml")).expect("written");
    assert!(spec.contains("steps:") && spec.contains("goal:"), "{spec}");

    let second = sandbox.run(&["init"]);
    assert_eq!(second.code, Some(2));
    assert!(
        second.stderr.contains("already exists") && second.stderr.contains("--force"),
        "{}",
        second.stderr
    );
    assert_eq!(std::fs::read_to_string(sandbox.path().join("openloom.yaml")).expect("kept"), spec);

    let forced = sandbox.run(&["init", "--force", "--path", "other.yaml"]);
    assert_eq!(forced.code, Some(0), "{forced:?}");
    assert!(sandbox.path().join("other.yaml").exists());
}

#[test]
fn a_bad_spec_is_reported_with_file_and_line() {
    let sandbox = Sandbox::new();
    sandbox.write("broken.yaml", "name: x\nsteps:\n  - title: ok\n  - acceptance: [no title]\n");
    let run = sandbox.run(&["watch", "broken.yaml"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("broken.yaml"), "{}", run.stderr);
    assert!(run.stderr.contains("steps[1]"), "{}", run.stderr);

    let missing = sandbox.run(&["watch", "nope.yaml"]);
    assert_eq!(missing.code, Some(2));
    assert!(missing.stderr.contains("openloom init"), "{}", missing.stderr);
}

#[test]
fn watch_without_opencode_says_how_to_start_it() {
    let sandbox = Sandbox::new();
    sandbox.run(&["init"]);
    let run = sandbox.run(&["watch"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(run.stderr.contains("not reachable at http://127.0.0.1:9"), "{}", run.stderr);
    assert!(run.stderr.contains("OPENLOOM_OPENCODE_URL"), "{}", run.stderr);
}

#[test]
fn status_on_an_empty_store_says_how_to_start() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["status"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("No tasks"), "{}", run.stdout);
    let json = sandbox.run(&["status", "--json"]);
    assert_eq!(json.stdout.trim(), "[]");
}

async fn seed(sandbox: &Sandbox, ids: &[&str]) {
    let store = SqliteStore::open(sandbox.database()).await.expect("open store");
    for id in ids {
        let spec = TaskSpec::new(format!("task {id}"), sandbox.path().to_string_lossy(), "goal");
        store.create_task(&Task::new(TaskId::from(*id), spec, Utc::now())).await.expect("create");
        let entry =
            CheckLogEntry::new(Utc::now(), TaskStatus::Running, format!("checked {id}"), "");
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        store.update_task(&TaskId::from(*id), &update, Some(&entry)).await.expect("update");
    }
    store.close().await;
}

#[tokio::test]
async fn status_and_log_show_tasks_and_refuse_ambiguous_prefixes() {
    let sandbox = Sandbox::new();
    seed(&sandbox, &["task_aaa111", "task_aaa222", "task_bbb333"]).await;

    let status = sandbox.run(&["status"]);
    assert_eq!(status.code, Some(0), "{status:?}");
    for id in ["task_aaa111", "task_aaa222", "task_bbb333"] {
        assert!(status.stdout.contains(id), "{}", status.stdout);
    }
    assert!(status.stdout.contains("running"));

    let ambiguous = sandbox.run(&["log", "task_aaa"]);
    assert_eq!(ambiguous.code, Some(4), "{ambiguous:?}");
    assert!(
        ambiguous.stderr.contains("task_aaa111") && ambiguous.stderr.contains("task_aaa222"),
        "{}",
        ambiguous.stderr
    );

    let log = sandbox.run(&["log", "task_b"]);
    assert_eq!(log.code, Some(0), "{log:?}");
    assert!(log.stdout.contains("checked task_bbb333"), "{}", log.stdout);

    let json = sandbox.run(&["log", "task_bbb333", "--json"]);
    let line: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().expect("a line")).expect("json");
    assert_eq!(line["summary"], "checked task_bbb333");

    let none = sandbox.run(&["log", "task_zzz"]);
    assert_eq!(none.code, Some(4));
}

#[tokio::test]
async fn control_characters_in_task_text_never_reach_the_terminal_raw() {
    let sandbox = Sandbox::new();
    let store = SqliteStore::open(sandbox.database()).await.expect("open store");
    let hostile = "evil\u{0}\u{7}\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let spec = TaskSpec::new(hostile, sandbox.path().to_string_lossy(), "goal");
    let id = TaskId::from("task_ctl000");
    store.create_task(&Task::new(id.clone(), spec, Utc::now())).await.expect("create");
    let entry = CheckLogEntry::new(Utc::now(), TaskStatus::Running, hostile, "");
    let update = TaskUpdate {
        status: Some(TaskStatus::Running),
        last_summary: Some(Some(hostile.to_owned())),
        ..TaskUpdate::default()
    };
    store.update_task(&id, &update, Some(&entry)).await.expect("update");
    store.close().await;
    for args in [&["status"][..], &["log", "task_ctl"][..]] {
        let run = sandbox.run(args);
        assert_eq!(run.code, Some(0), "{run:?}");
        for raw in ['\u{0}', '\u{7}', '\u{1b}'] {
            assert!(!run.stdout.contains(raw), "{args:?} printed {raw:?} raw: {:?}", run.stdout);
        }
        assert!(run.stdout.contains("evil\\x00\\x07\\x1b]0;pwned"), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn verify_runs_the_checks_and_fails_on_a_failing_one() {
    let sandbox = Sandbox::new();
    sandbox.write("present.txt", "hello world\n");
    sandbox.write(
        "spec.yaml",
        "name: verify me\ngoal: g\nsteps:\n  - title: one\n    checks:\n      - file_exists: present.txt\n\
         checks:\n  - file_contains: {path: present.txt, pattern: \"hello\"}\n  - run: \"exit 3\"\n",
    );
    let run = sandbox.run(&["verify", "spec.yaml"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("file_exists: present.txt"), "{}", run.stdout);
    assert!(run.stdout.contains("PASS") && run.stdout.contains("FAIL"), "{}", run.stdout);

    sandbox.write("ok.yaml", "name: ok\ngoal: g\nchecks:\n  - file_exists: present.txt\n");
    let ok = sandbox.run(&["verify", "ok.yaml"]);
    assert_eq!(ok.code, Some(0), "{ok:?}");

    sandbox.write("none.yaml", "name: none\ngoal: g\n");
    let none = sandbox.run(&["verify", "none.yaml"]);
    assert_eq!(none.code, Some(2));
    assert!(none.stderr.contains("no executable checks"), "{}", none.stderr);
}

#[test]
fn help_documents_every_command_and_the_exit_codes() {
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["--help"]);
    for word in ["init", "watch", "status", "log", "answer", "verify", "plan", "Exit codes"] {
        assert!(help.stdout.contains(word), "missing {word}: {}", help.stdout);
    }
    let version = sandbox.run(&["--version"]);
    assert!(version.stdout.starts_with("openloom "), "{}", version.stdout);
}

#[test]
fn completions_are_written_for_every_shell_and_know_the_subcommands() {
    let sandbox = Sandbox::new();
    // A broken config file must not stop a shell's start-up script from loading them.
    sandbox.write("bad.yaml", "no_such_key: 1\n");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = sandbox.run(&["--config", "bad.yaml", "completions", shell]);
        assert_eq!(run.code, Some(0), "{shell}: {run:?}");
        for word in
            ["watch", "serve", "verify", "plan", "status", "answer", "completions", "opencode-url"]
        {
            assert!(run.stdout.contains(word), "{shell} script lacks {word}:\n{}", run.stdout);
        }
    }
    let run = sandbox.run(&["completions", "tcsh"]);
    assert_eq!(run.code, Some(2), "an unknown shell is a usage error: {run:?}");
    assert!(run.stderr.contains("powershell"), "the error lists the shells: {}", run.stderr);
}

#[test]
fn doctor_names_an_unreachable_url_and_how_to_fix_it() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["doctor"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stdout.contains("PROBLEM url       http://127.0.0.1:9 does not answer"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("fix: start OpenCode there"), "{}", run.stdout);
    assert!(run.stdout.contains("not created yet"), "the database line: {}", run.stdout);
    assert!(run.stdout.contains("roots"), "{}", run.stdout);
}

#[test]
fn doctor_names_a_missing_binary_and_how_to_fix_it() {
    let sandbox = Sandbox::new();
    let run = sandbox
        .command(&["doctor"])
        .env_remove("OPENLOOM_OPENCODE_URL")
        .env("OPENLOOM_OPENCODE_BIN", "/no/such/opencode")
        .output()
        .expect("run");
    let run = crate::common::Run::from(run);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stdout.contains("PROBLEM binary    /no/such/opencode"), "{}", run.stdout);
    assert!(run.stdout.contains("fix: point OPENLOOM_OPENCODE_BIN"), "{}", run.stdout);
}

/// A waiting task holding a question and a permission, written straight to the store.
async fn task_waiting_on_two(sandbox: &Sandbox) -> TaskId {
    use openloom_core::{PendingRequest, Question, RequestKind};
    let store = SqliteStore::open(sandbox.database()).await.expect("open store");
    let id = TaskId::from("task_asks00000001");
    let mut task = Task::new(id.clone(), TaskSpec::new("asks", "/w", "g"), Utc::now());
    task.status = TaskStatus::Waiting;
    store.create_task(&task).await.expect("create");
    let pending = vec![
        PendingRequest {
            id: "que_1".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Question {
                questions: vec![Question {
                    question: "Which name?\u{1b}[2J".into(),
                    options: vec!["a.txt".into(), "b.txt".into()],
                }],
            },
            asked_at: None,
        },
        PendingRequest {
            id: "per_2".into(),
            session_id: "ses_1".into(),
            kind: RequestKind::Permission {
                permission: "bash".into(),
                patterns: vec!["echo hi > hi.txt".into()],
            },
            asked_at: None,
        },
    ];
    let update = TaskUpdate { pending_requests: Some(pending), ..TaskUpdate::default() };
    store.update_task(&id, &update, None).await.expect("pending");
    let calm =
        Task::new(TaskId::from("task_calm00000001"), TaskSpec::new("calm", "/w", "g"), Utc::now());
    store.create_task(&calm).await.expect("create");
    store.close().await;
    id
}

#[tokio::test]
async fn answer_refuses_what_it_cannot_answer_with_distinct_codes_and_advice() {
    let sandbox = Sandbox::new();
    let id = task_waiting_on_two(&sandbox).await;
    let several = sandbox.run_async(&["answer", "task_asks", "--allow"]).await;
    assert_eq!(several.code, Some(2), "{several:?}");
    assert!(
        several.stderr.contains("--request") && several.stderr.contains("per_2"),
        "{several:?}"
    );
    assert!(!several.stderr.contains('\u{1b}'), "escaped: {several:?}");

    let misfit =
        sandbox.run_async(&["answer", "task_asks", "--request", "que", "--choose", "c.txt"]).await;
    assert_eq!(misfit.code, Some(2), "{misfit:?}");
    assert!(misfit.stderr.contains(r#""a.txt", "b.txt""#), "lists the options: {misfit:?}");

    let unknown =
        sandbox.run_async(&["answer", "task_asks", "--request", "per_9", "--allow"]).await;
    assert_eq!(unknown.code, Some(4), "{unknown:?}");

    // A fitting answer reaches for OpenCode (nothing listens on port 9 here).
    let unreachable =
        sandbox.run_async(&["answer", "task_asks", "--request", "per_2", "--deny"]).await;
    assert_eq!(unreachable.code, Some(3), "{unreachable:?}");
    assert!(unreachable.stderr.contains("OPENLOOM_OPENCODE_URL"), "{unreachable:?}");
    let log = sandbox.run_async(&["log", id.as_str()]).await;
    assert!(!log.stdout.contains("Answered"), "nothing delivered, nothing audited: {log:?}");

    let usage = sandbox.run_async(&["answer", "task_asks", "--always"]).await;
    assert_eq!(usage.code, Some(2), "--always needs --allow: {usage:?}");
    let none = sandbox.run_async(&["answer", "task_nope", "--dismiss"]).await;
    assert_eq!(none.code, Some(4), "{none:?}");
    let nothing = sandbox.run_async(&["answer", "task_calm", "--dismiss"]).await;
    assert_eq!(nothing.code, Some(5), "nothing pending: {nothing:?}");
    assert!(nothing.stderr.contains("waits on no permission or question"), "{nothing:?}");
}
