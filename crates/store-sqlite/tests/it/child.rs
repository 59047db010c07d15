//! Child processes: this test binary re-executed with [`ROLE_ENV`] set.
//!
//! A parent test builds the command with [`command`]; the child runs only the
//! ignored test [`entry`], which dispatches on the role. Children report each
//! acknowledged write on stdout as `ACK <kind> <version> <task id>` (printed only
//! after the store call returned), and a failure as `ERR <kind> <message>`.

use std::path::Path;
use std::process::{Command, Stdio};

use chrono::Utc;
use openloom_core::{CheckLogEntry, Store, TaskId, TaskStatus, TaskUpdate};
use openloom_store_sqlite::SqliteStore;

use crate::common;

/// Selects the child's role; unset in a normal test run.
pub const ROLE_ENV: &str = "OPENLOOM_STORE_IT_ROLE";
/// The database path for the child.
pub const DB_ENV: &str = "OPENLOOM_STORE_IT_DB";
/// A tag that makes the child's task ids unique.
pub const TAG_ENV: &str = "OPENLOOM_STORE_IT_TAG";
/// How many writes a bounded child does.
pub const COUNT_ENV: &str = "OPENLOOM_STORE_IT_COUNT";

/// Entries appended per batch by the crash writer.
pub const CRASH_BATCH: usize = 5;

/// The command that runs this binary as a child with `role` on `db`.
pub fn command(role: &str, db: &Path, tag: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    configure(Command::new(exe), role, db, tag)
}

/// Like [`command`], but through `sh -c "<setup>; exec ..."`, so the shell can set
/// limits (`ulimit`) and signal dispositions (`trap`) that `exec` passes on.
pub fn command_after_shell_setup(setup: &str, role: &str, db: &Path, tag: &str) -> Command {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{setup}; exec \"$0\" \"$@\"")).arg(exe);
    configure(cmd, role, db, tag)
}

fn configure(mut cmd: Command, role: &str, db: &Path, tag: &str) -> Command {
    cmd.args(["child::entry", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(DB_ENV, db)
        .env(TAG_ENV, tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// One acknowledged write reported by a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub kind: String,
    pub version: u64,
    pub id: String,
}

/// The `ACK` lines of a child's stdout. The first may share its line with libtest's
/// `test child::entry ... `, so an acknowledgement is found anywhere in a line.
pub fn parse_acks(stdout: &str) -> Vec<Ack> {
    stdout
        .lines()
        .filter_map(|line| {
            let start = line.find("ACK ")?;
            let mut parts = line[start + 4..].split(' ');
            Some(Ack {
                kind: parts.next()?.to_owned(),
                version: parts.next()?.parse().ok()?,
                id: parts.next()?.to_owned(),
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of child processes spawned by other tests"]
async fn entry() {
    let Ok(role) = std::env::var(ROLE_ENV) else { return };
    let db = std::env::var(DB_ENV).expect("the parent sets the database path");
    let tag = std::env::var(TAG_ENV).unwrap_or_default();
    let count: usize = std::env::var(COUNT_ENV).ok().and_then(|c| c.parse().ok()).unwrap_or(50);
    match role.as_str() {
        "writer" => writer(Path::new(&db), &tag, count).await,
        "crash-writer" => crash_writer(Path::new(&db), &tag).await,
        "fill" => fill(Path::new(&db), &tag).await,
        other => panic!("unknown child role {other:?}"),
    }
}

fn ack(kind: &str, version: u64, id: &TaskId) {
    println!("ACK {kind} {version} {id}");
}

fn report_error(err: &openloom_core::Error) {
    let kind = match err {
        openloom_core::Error::Store { source: Some(source), .. } => {
            match source.downcast_ref::<openloom_store_sqlite::Error>() {
                Some(openloom_store_sqlite::Error::DiskFull { .. }) => "disk-full",
                Some(openloom_store_sqlite::Error::Busy { .. }) => "busy",
                Some(_) => "store",
                None => "other",
            }
        }
        _ => "other",
    };
    println!("ERR {kind} {err}");
}

/// Creates `count` tasks and updates each with a log entry, acknowledging both.
async fn writer(db: &Path, tag: &str, count: usize) {
    let store = match SqliteStore::open(db).await {
        Ok(store) => store,
        Err(err) => return report_error(&err.into()),
    };
    for i in 0..count {
        let id = TaskId::from(format!("task_{tag}_{i}"));
        let now = Utc::now();
        match store.create_task(&common::task(id.as_str(), now)).await {
            Ok(v) => ack("create", v, &id),
            Err(err) => return report_error(&err),
        }
        let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "");
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        match store.update_task(&id, &update, Some(&entry)).await {
            Ok(v) => ack("update", v, &id),
            Err(err) => return report_error(&err),
        }
    }
}

/// Writes until killed: create, update with a log entry, append a batch.
async fn crash_writer(db: &Path, tag: &str) {
    let store = match SqliteStore::open(db).await {
        Ok(store) => store,
        Err(err) => return report_error(&err.into()),
    };
    for i in 0..1_000_000 {
        let id = TaskId::from(format!("task_{tag}_{i}"));
        let now = Utc::now();
        match store.create_task(&common::task(id.as_str(), now)).await {
            Ok(v) => ack("create", v, &id),
            Err(err) => return report_error(&err),
        }
        let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "session ses_1");
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        match store.update_task(&id, &update, Some(&entry)).await {
            Ok(v) => ack("update", v, &id),
            Err(err) => return report_error(&err),
        }
        let batch: Vec<CheckLogEntry> = (0..CRASH_BATCH)
            .map(|n| CheckLogEntry::new(now, TaskStatus::Running, format!("check {n}"), ""))
            .collect();
        match store.append_check_log(&id, &batch).await {
            Ok(v) => ack("append", v, &id),
            Err(err) => return report_error(&err),
        }
    }
}

/// Creates tasks with large specs until a write fails (the parent limits file size).
async fn fill(db: &Path, tag: &str) {
    let store = match SqliteStore::open(db).await {
        Ok(store) => store,
        Err(err) => return report_error(&err.into()),
    };
    let goal = "x".repeat(4096);
    for i in 0..100_000 {
        let id = TaskId::from(format!("task_{tag}_{i}"));
        let mut task = common::task(id.as_str(), Utc::now());
        task.spec.goal = goal.clone();
        match store.create_task(&task).await {
            Ok(v) => ack("create", v, &id),
            Err(err) => return report_error(&err),
        }
    }
}
