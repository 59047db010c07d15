//! Crash safety: a writer process is SIGKILLed at random moments, again and again.
//! Afterwards the file is sound, every acknowledged write is there, and no write is
//! half there (a task update without its log entry, or part of a batch).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use openloom_core::{LogQuery, Store, TaskId, TaskQuery, TaskStatus};

use crate::child::{self, Ack, CRASH_BATCH};
use crate::common;

const ROUNDS: usize = 6;

/// Runs one crash writer, kills it with SIGKILL at a random moment after its first
/// acknowledged write, and returns every write it acknowledged.
fn run_and_kill(path: &std::path::Path, tag: &str) -> Vec<Ack> {
    let mut process = child::command("crash-writer", path, tag).spawn().expect("spawn writer");
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
    // Wait for the first acknowledgement, so each round kills a writer mid-stream.
    loop {
        let line = lines_rx.recv_timeout(Duration::from_secs(60)).expect("the writer acknowledges");
        let first = line.contains("ACK ");
        lines.push(line);
        if first {
            break;
        }
    }
    std::thread::sleep(Duration::from_micros(common::random_u64() % 300_000));
    process.kill().expect("SIGKILL the writer");
    let status = process.wait().expect("reap the writer");
    assert!(!status.success(), "the writer was killed, not finished");
    reader.join().expect("reader thread");
    // Lines printed before the kill are still in the pipe: they were acknowledged too.
    lines.extend(lines_rx.try_iter());
    let text = lines.join("\n");
    assert!(!text.contains("ERR "), "the writer failed before the kill: {text}");
    child::parse_acks(&text)
}

#[test]
fn killed_writers_lose_nothing_acknowledged_and_leave_nothing_half_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = common::db_path(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async { common::open(&path).await.close().await });

    let mut acks = Vec::new();
    for round in 0..ROUNDS {
        let round_acks = run_and_kill(&path, &format!("r{round}"));
        eprintln!("round {round}: killed after {} acknowledged writes", round_acks.len());
        acks.extend(round_acks);
    }
    assert!(acks.len() >= ROUNDS, "each round acknowledged at least one write");
    let versions: Vec<u64> = acks.iter().map(|a| a.version).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "versions increase across crashes");

    runtime.block_on(async {
        let store = common::open(&path).await;
        store.integrity_check().await.expect("integrity_check is ok after the crashes");
        let last = *versions.last().expect("some acks");
        assert!(store.store_version().await.expect("version") >= last);

        // What each task must at least show, from the writes acknowledged for it.
        let mut acked: HashMap<String, &str> = HashMap::new();
        for ack in &acks {
            acked.insert(ack.id.clone(), ack.kind.as_str());
        }
        for (id, kind) in &acked {
            let task = store.get_task(&TaskId::from(id.as_str())).await.expect("get");
            let task = task.unwrap_or_else(|| panic!("acknowledged task {id} is missing"));
            let log = store.check_log(&task.id, &LogQuery::default()).await.expect("log");
            match *kind {
                "create" => {}
                "update" => assert!(task.status == TaskStatus::Running && !log.is_empty(), "{id}"),
                "append" => assert_eq!(log.len(), 1 + CRASH_BATCH, "{id}"),
                other => panic!("unknown ack kind {other}"),
            }
        }

        // No task anywhere is half written, acknowledged or not.
        let tasks = store.list_tasks(&TaskQuery::newest(1_000_000)).await.expect("list");
        assert!(tasks.len() >= acked.len());
        for task in tasks {
            let log = store.check_log(&task.id, &LogQuery::default()).await.expect("log");
            let running = task.status == TaskStatus::Running;
            assert!(
                (log.is_empty() && !running)
                    || (running && (log.len() == 1 || log.len() == 1 + CRASH_BATCH)),
                "task {} is half written: status {} with {} log entries",
                task.id,
                task.status,
                log.len()
            );
        }
    });
}
