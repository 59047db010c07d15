//! Crash safety: a worker process is SIGKILLed at random moments during its writes,
//! again and again. Afterwards every acknowledged write is there and no write is
//! half there (a task update without its log entry, or part of a batch).
//!
//! The writer is this test binary re-executed with [`ROLE_ENV`] set, running only
//! the ignored test [`child_entry`]; it reports each write on stdout as
//! `ACK <kind> <version> <task id>`, printed only after the store call returned.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::Utc;
use openloom_core::{CheckLogEntry, LogQuery, Store, TaskId, TaskQuery, TaskStatus, TaskUpdate};
use openloom_store_postgres::PostgresStore;

use crate::common;

const ROLE_ENV: &str = "OPENLOOM_PG_IT_ROLE";
const URL_ENV: &str = "OPENLOOM_PG_IT_URL";
const TAG_ENV: &str = "OPENLOOM_PG_IT_TAG";
const BATCH: usize = 5;
const ROUNDS: usize = 4;

struct Ack {
    kind: String,
    version: u64,
    id: String,
}

fn parse_acks(lines: &[String]) -> Vec<Ack> {
    lines
        .iter()
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

fn random_micros(below: u64) -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ]) % below
}

/// Runs one writer, SIGKILLs it at a random moment after its first acknowledged
/// write, and returns every write it acknowledged.
fn run_and_kill(url: &str, tag: &str) -> Vec<Ack> {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let mut process = Command::new(exe)
        .args(["crash::child_entry", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, "crash-writer")
        .env(URL_ENV, url)
        .env(TAG_ENV, tag)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = process.stdout.take().expect("piped stdout");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = lines_rx.recv_timeout(Duration::from_secs(60)).expect("the writer acknowledges");
        let first = line.contains("ACK ");
        lines.push(line);
        if first {
            break;
        }
    }
    std::thread::sleep(Duration::from_micros(random_micros(300_000)));
    process.kill().expect("SIGKILL the writer");
    let status = process.wait().expect("reap the writer");
    assert!(!status.success(), "the writer was killed, not finished");
    reader.join().expect("reader thread");
    lines.extend(lines_rx.try_iter());
    assert!(!lines.iter().any(|l| l.contains("ERR ")), "the writer failed: {lines:?}");
    parse_acks(&lines)
}

#[test]
fn killed_workers_lose_nothing_acknowledged_and_leave_nothing_half_written() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let Some(db) = runtime.block_on(common::fresh_database()) else { return };
    runtime.block_on(async { common::open(&db).await.close().await });

    let mut acks = Vec::new();
    for round in 0..ROUNDS {
        let round_acks = run_and_kill(&db.url, &format!("r{round}"));
        eprintln!("round {round}: killed after {} acknowledged writes", round_acks.len());
        acks.extend(round_acks);
    }
    assert!(acks.len() >= ROUNDS, "each round acknowledged at least one write");
    let versions: Vec<u64> = acks.iter().map(|a| a.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions increase across crashes");

    runtime.block_on(async {
        let store = common::open(&db).await;
        assert!(store.store_version().await.expect("version") >= *versions.last().expect("acks"));
        let mut acked: HashMap<&str, &str> = HashMap::new();
        for ack in &acks {
            acked.insert(&ack.id, &ack.kind);
        }
        for (id, kind) in &acked {
            let task = store.get_task(&TaskId::from(*id)).await.expect("get");
            let task = task.unwrap_or_else(|| panic!("acknowledged task {id} is missing"));
            let log = store.check_log(&task.id, &LogQuery::default()).await.expect("log");
            match *kind {
                "create" => {}
                "update" => assert!(task.status == TaskStatus::Running && !log.is_empty(), "{id}"),
                "append" => assert_eq!(log.len(), 1 + BATCH, "{id}"),
                other => panic!("unknown ack kind {other}"),
            }
        }
        let tasks = store.list_tasks(&TaskQuery::newest(1_000_000)).await.expect("list");
        assert!(tasks.len() >= acked.len());
        for task in tasks {
            let log = store.check_log(&task.id, &LogQuery::default()).await.expect("log");
            let running = task.status == TaskStatus::Running;
            assert!(
                (log.is_empty() && !running)
                    || (running && (log.len() == 1 || log.len() == 1 + BATCH)),
                "task {} is half written: status {} with {} log entries",
                task.id,
                task.status,
                log.len()
            );
        }
        store.close().await;
    });
    runtime.block_on(db.drop_database());
}

fn ack(kind: &str, version: u64, id: &TaskId) {
    println!("ACK {kind} {version} {id}");
}

/// The child: writes until killed (create, update with a log entry, append a batch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "entry point of child processes spawned by other tests"]
async fn child_entry() {
    let Ok(_role) = std::env::var(ROLE_ENV) else { return };
    let url = std::env::var(URL_ENV).expect("the parent sets the URL");
    let tag = std::env::var(TAG_ENV).unwrap_or_default();
    let store = match PostgresStore::connect(&url).await {
        Ok(store) => store,
        Err(err) => return println!("ERR connect {err}"),
    };
    for i in 0..1_000_000 {
        let id = TaskId::from(format!("task_{tag}_{i}"));
        let now = Utc::now();
        match store.create_task(&common::task(id.as_str(), now)).await {
            Ok(v) => ack("create", v, &id),
            Err(err) => return println!("ERR create {err}"),
        }
        let entry = CheckLogEntry::new(now, TaskStatus::Running, "started", "session ses_1");
        let update = TaskUpdate { status: Some(TaskStatus::Running), ..TaskUpdate::default() };
        match store.update_task(&id, &update, Some(&entry)).await {
            Ok(v) => ack("update", v, &id),
            Err(err) => return println!("ERR update {err}"),
        }
        let batch: Vec<CheckLogEntry> = (0..BATCH)
            .map(|n| CheckLogEntry::new(now, TaskStatus::Running, format!("check {n}"), ""))
            .collect();
        match store.append_check_log(&id, &batch).await {
            Ok(v) => ack("append", v, &id),
            Err(err) => return println!("ERR append {err}"),
        }
    }
}
