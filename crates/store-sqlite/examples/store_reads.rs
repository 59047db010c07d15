//! A fixed amount of store work, for counting instructions with callgrind.
//!
//! Wall-clock figures on a shared, loaded machine move by tens of percent between
//! runs; instruction counts do not. This driver seeds a database once (not measured),
//! then runs one operation a fixed number of times, so two builds can be compared by
//! `valgrind --tool=callgrind` totals. Subtract a run with count 0 (opening the store)
//! to get the cost of the operation alone; see docs/benchmarks.md.
//!
//! Run with:
//! ```sh
//! cargo build --release -p openloom-store-sqlite --example store_reads
//! target/release/examples/store_reads seed /tmp/reads.sqlite3
//! valgrind --tool=callgrind target/release/examples/store_reads list /tmp/reads.sqlite3 100
//! ```
//! Operations: `list` (newest 50), `running` (50 running, cursor mid-way), `due`
//! (limit 100), `log` (a page of 100 of a log of 100,000 entries), `append` (one
//! entry per call; it writes, so give it a copy of the seeded file).

use std::path::Path;

use chrono::Utc;
use openloom_core::spec::TaskSpec;
use openloom_core::{CheckLogEntry, LogQuery, Store, Task, TaskId, TaskQuery, TaskStatus};
use openloom_store_sqlite::{Durability, SqliteStore, StoreOptions};

const TASKS: usize = 10_000;
const LOG_ENTRIES: usize = 100_000;

/// The same mix of tasks as `benches/store.rs`.
fn task(i: usize) -> Task {
    let now = Utc::now();
    let mut spec = TaskSpec::new(format!("task {i}"), "/work/repo", "make the tests pass");
    spec.acceptance = vec!["cargo test passes".into(), "no warnings".into()];
    let mut task = Task::new(TaskId::from(format!("task_{i:012x}")), spec, now);
    task.status = match i % 10 {
        0 => TaskStatus::Running,
        1..=6 => TaskStatus::Completed,
        7 | 8 => TaskStatus::Failed,
        _ => TaskStatus::Archived,
    };
    if task.status == TaskStatus::Running {
        let offset = i64::try_from(i % 600).unwrap_or(0) - 300;
        task.next_check_at = Some(now + chrono::Duration::seconds(offset));
    } else {
        task.next_check_at = None;
    }
    task
}

/// Distinct entries: an exact repeat would be counted on the row before it.
fn entry(n: usize) -> CheckLogEntry {
    CheckLogEntry::new(Utc::now(), TaskStatus::Running, "checked", format!("idle {n}"))
}

async fn seed(path: &Path) {
    let options = StoreOptions { durability: Durability::Normal, ..StoreOptions::default() };
    let store = SqliteStore::open_with(path, &options).await.expect("open the store");
    for i in 0..TASKS {
        store.create_task(&task(i)).await.expect("create a task");
    }
    let id = TaskId::from(format!("task_{:012x}", 0));
    let batch: Vec<CheckLogEntry> = (0..100).map(entry).collect();
    for _ in 0..LOG_ENTRIES / batch.len() {
        store.append_check_log(&id, &batch).await.expect("append a batch");
    }
    store.close().await;
}

async fn run(op: &str, path: &Path, count: usize) -> usize {
    let options = StoreOptions { durability: Durability::Normal, ..StoreOptions::default() };
    let store = SqliteStore::open_with(path, &options).await.expect("open the store");
    let id = TaskId::from(format!("task_{:012x}", 0));
    // The cursor of `running`: task 5,000 of 10,000.
    let before = TaskId::from(format!("task_{:012x}", TASKS / 2));
    let mut read = 0;
    for n in 0..count {
        read += match op {
            "list" => store.list_tasks(&TaskQuery::newest(50)).await.expect("list").len(),
            "running" => {
                let query = TaskQuery {
                    before: Some(before.clone()),
                    statuses: vec![TaskStatus::Running],
                    ..TaskQuery::newest(50)
                };
                store.list_tasks(&query).await.expect("list").len()
            }
            "due" => store.list_due_tasks(Utc::now(), 100).await.expect("due").len(),
            "log" => {
                let query = LogQuery { after: Some(50_000), limit: 100 };
                store.check_log(&id, &query).await.expect("log").len()
            }
            "append" => {
                store.append_check_log(&id, &[entry(n)]).await.expect("append");
                1
            }
            other => panic!("unknown operation {other:?}"),
        };
    }
    store.close().await;
    read
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match args.as_slice() {
        [mode, path] if mode == "seed" => runtime.block_on(seed(Path::new(path))),
        [op, path, count] => {
            let count: usize = count.parse().expect("a count");
            let read = runtime.block_on(run(op, Path::new(path), count));
            eprintln!("{op} x{count}: {read} rows");
        }
        _ => panic!("usage: store_reads seed DB | store_reads OP DB COUNT"),
    }
}
