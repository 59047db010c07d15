//! The inbox: valid, invalid, half-written, duplicate files, a crash between create
//! and move, and files present at start — each through a real SQLite store.

use std::io::Write as _;
use std::time::Duration;

use chrono::Utc;
use openloom_core::{Created, Task, TaskId, TaskSpec};
use openloom_sources::SpecFile;

use crate::common::{Fixture, SETTLE, eventually, exists};

const SPEC: &str = "name: greet\ngoal: write hello.txt\nsteps:\n  - write it\n";

#[tokio::test]
async fn a_spec_and_a_prompt_become_tasks_and_move_to_accepted() {
    let fx = Fixture::new().await;
    let _stop = fx.start();
    let spec = fx.drop_file("greet.yaml", SPEC);
    fx.drop_file("fix the typo.txt", "Fix the typo in README.\n");
    eventually("both accepted", || {
        exists(&fx.accepted("greet.yaml")) && exists(&fx.accepted("fix the typo.txt"))
    })
    .await;
    assert!(!exists(&spec));
    let tasks = fx.tasks().await;
    let mut names: Vec<(&str, &str)> =
        tasks.iter().map(|t| (t.name.as_str(), t.workspace.as_str())).collect();
    names.sort();
    let work = fx.work.to_string_lossy();
    assert_eq!(names, vec![("fix the typo", work.as_ref()), ("greet", work.as_ref())]);
    let greet = tasks.iter().find(|t| t.name == "greet").expect("greet");
    assert_eq!(greet.spec.steps.len(), 1);
}

#[tokio::test]
async fn an_invalid_spec_is_rejected_with_the_error_watch_prints() {
    let fx = Fixture::new().await;
    let bad = fx.drop_file("bad.yaml", "name: bad\ngoal: g\nsteps: 3\n");
    // What `openloom watch bad.yaml` says about this very file.
    let watch_says = SpecFile::new(&bad).load().expect_err("invalid").to_string();
    let outside = fx.drop_file("elsewhere.yaml", "name: e\ngoal: g\nworkspace: /\n");
    let _stop = fx.start();
    eventually("rejected", || {
        exists(&fx.rejected("bad.yaml")) && exists(&fx.rejected("elsewhere.yaml"))
    })
    .await;
    let error = std::fs::read_to_string(fx.rejected("bad.yaml.error.txt")).expect("error file");
    assert_eq!(error, format!("{watch_says}\n"));
    assert!(error.contains("bad.yaml") && error.contains("steps"), "{error}");
    let error = std::fs::read_to_string(fx.rejected("elsewhere.yaml.error.txt")).expect("error");
    assert!(error.contains("outside"), "the workspace policy's refusal: {error}");
    assert!(!exists(&outside));
    assert!(fx.tasks().await.is_empty(), "no task from a rejected file");
}

#[tokio::test]
async fn a_file_being_written_is_not_read_until_it_settles() {
    let fx = Fixture::new().await;
    let _stop = fx.start();
    let path = fx.inbox.join("slow.yaml");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(b"name: slow\n").expect("write");
    // Appended to for three settle times: never read in the meantime.
    for part in ["goal: >-\n", "  a goal written\n", "  in several\n", "  parts\n", "  slowly\n"] {
        tokio::time::sleep(SETTLE * 3 / 5).await;
        file.write_all(part.as_bytes()).expect("append");
        file.flush().expect("flush");
        assert!(exists(&path), "moved while being written");
        assert!(fx.tasks().await.is_empty(), "read while being written");
    }
    drop(file);
    eventually("accepted", || exists(&fx.accepted("slow.yaml"))).await;
    let tasks = fx.tasks().await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].spec.goal, "a goal written in several parts slowly");
}

#[tokio::test]
async fn dotfiles_and_partial_names_wait_until_renamed_in() {
    let fx = Fixture::new().await;
    let _stop = fx.start();
    let hidden = fx.drop_file(".draft.yaml", SPEC);
    let partial = fx.drop_file("greet.yaml.part", SPEC);
    tokio::time::sleep(SETTLE * 3).await;
    assert!(exists(&hidden) && exists(&partial));
    assert!(fx.tasks().await.is_empty());
    std::fs::rename(&partial, fx.inbox.join("greet.yaml")).expect("rename in");
    eventually("accepted", || exists(&fx.accepted("greet.yaml"))).await;
    assert_eq!(fx.tasks().await.len(), 1);
    assert!(exists(&hidden), "a dotfile is never touched");
}

#[tokio::test]
async fn the_same_file_dropped_twice_is_one_task() {
    let fx = Fixture::new().await;
    let _stop = fx.start();
    fx.drop_file("greet.yaml", SPEC);
    eventually("accepted", || exists(&fx.accepted("greet.yaml"))).await;
    fx.drop_file("greet.yaml", SPEC);
    eventually("accepted again", || exists(&fx.accepted("greet-2.yaml"))).await;
    assert_eq!(fx.tasks().await.len(), 1, "the same name and content is not imported twice");
    // Changed content is new work.
    fx.drop_file("greet.yaml", &SPEC.replace("hello", "goodbye"));
    eventually("third accepted", || exists(&fx.accepted("greet-3.yaml"))).await;
    assert_eq!(fx.tasks().await.len(), 2);
}

#[tokio::test]
async fn a_restart_after_a_crash_between_create_and_move_only_moves_the_file() {
    let fx = Fixture::new().await;
    let path = fx.drop_file("greet.yaml", SPEC);
    // A previous run created the task and recorded the file's origin, then died
    // before moving the file.
    let origin = format!("inbox:greet.yaml@{}", sha256_hex(SPEC.as_bytes()));
    let earlier = Task::new(
        TaskId::from("task_before_crash"),
        TaskSpec::new("greet", fx.work.to_string_lossy(), "write hello.txt"),
        Utc::now(),
    );
    let created = fx.store.create_task_once(&earlier, &origin).await.expect("create");
    assert!(matches!(created, Created::New(_)));

    let _stop = fx.start();
    eventually("moved", || exists(&fx.accepted("greet.yaml"))).await;
    assert!(!exists(&path));
    let tasks = fx.tasks().await;
    assert_eq!(tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec!["task_before_crash"]);
}

#[tokio::test]
async fn files_present_at_start_are_taken_and_a_second_process_takes_nothing_twice() {
    let fx = Fixture::new().await;
    for n in 0..5 {
        fx.drop_file(&format!("task-{n}.yaml"), &format!("name: t{n}\ngoal: g{n}\n"));
    }
    // Two intakes on one database at once, as a restart overlapping the old process.
    let (_a, _b) = (fx.start(), fx.start());
    eventually("all moved", || (0..5).all(|n| !exists(&fx.inbox.join(format!("task-{n}.yaml")))))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fx.tasks().await.len(), 5);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
