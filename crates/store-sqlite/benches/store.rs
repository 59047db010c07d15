//! Benchmark of the SQLite store: task creation, the two list queries at 10,000
//! tasks, and check-log appends (single and batched), under both durabilities.
//!
//! Run with `cargo bench -p openloom-store-sqlite`; prints a Markdown table.
//! `STORE_BENCH_SINGLE_APPENDS` overrides the number of single appends at
//! `synchronous=FULL` (each is an fsync; the default keeps the run short).

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use openloom_core::spec::TaskSpec;
use openloom_core::{CheckLogEntry, Store, Task, TaskId, TaskQuery, TaskStatus};
use openloom_store_sqlite::{Durability, SqliteStore, StoreOptions};

const TASKS: usize = 10_000;
const APPENDS: usize = 100_000;
const BATCH: usize = 100;
const LIST_RUNS: usize = 200;

struct Row {
    operation: String,
    durability: &'static str,
    count: usize,
    total: Duration,
    /// Per-call latency figures (median, p99) for reads.
    latency: Option<(Duration, Duration)>,
}

impl Row {
    fn print(&self) {
        let per_second = self.count as f64 / self.total.as_secs_f64();
        let latency = match self.latency {
            Some((median, p99)) => format!("{:.3} / {:.3}", ms(median), ms(p99)),
            None => format!("{:.3} (mean)", ms(self.total) / self.count as f64),
        };
        println!(
            "| {} | {} | {} | {:.1} | {:.0} | {} |",
            self.operation,
            self.durability,
            self.count,
            ms(self.total),
            per_second,
            latency
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn task(i: usize) -> Task {
    let now = Utc::now();
    let mut spec = TaskSpec::new(format!("task {i}"), "/work/repo", "make the tests pass");
    spec.acceptance = vec!["cargo test passes".into(), "no warnings".into()];
    let mut task = Task::new(TaskId::from(format!("task_{i:012x}")), spec, now);
    // A realistic mix: most tasks are finished; a tenth are active, spread over the
    // next check times (half of them due now).
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

async fn timed_reads<F, Fut>(runs: usize, mut call: F) -> (Duration, (Duration, Duration))
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut samples = Vec::with_capacity(runs);
    let mut total = Duration::ZERO;
    for _ in 0..runs {
        let start = Instant::now();
        let n = call().await;
        let elapsed = start.elapsed();
        assert!(n > 0, "the query returned nothing");
        samples.push(elapsed);
        total += elapsed;
    }
    samples.sort();
    let median = samples[samples.len() / 2];
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    (total, (median, p99))
}

async fn run(dir: &Path, durability: Durability, label: &'static str, rows: &mut Vec<Row>) {
    let options = StoreOptions { durability, ..StoreOptions::default() };
    let store = SqliteStore::open_with(dir.join(format!("{label}.sqlite3")), &options)
        .await
        .expect("open the bench store");

    let start = Instant::now();
    for i in 0..TASKS {
        store.create_task(&task(i)).await.expect("create");
    }
    rows.push(Row {
        operation: format!("create_task x{TASKS} (one transaction each)"),
        durability: label,
        count: TASKS,
        total: start.elapsed(),
        latency: None,
    });

    let (total, latency) = timed_reads(LIST_RUNS, || async {
        store.list_tasks(&TaskQuery::newest(50)).await.expect("list").len()
    })
    .await;
    rows.push(Row {
        operation: format!("list_tasks newest 50 of {TASKS}"),
        durability: label,
        count: LIST_RUNS,
        total,
        latency: Some(latency),
    });

    let cursor = store.list_tasks(&TaskQuery::newest(5_000)).await.expect("list");
    let before = cursor.last().map(|t| t.id.clone());
    let (total, latency) = timed_reads(LIST_RUNS, || {
        let query = TaskQuery {
            before: before.clone(),
            statuses: vec![TaskStatus::Running],
            ..TaskQuery::newest(50)
        };
        let store = &store;
        async move { store.list_tasks(&query).await.expect("list").len() }
    })
    .await;
    rows.push(Row {
        operation: format!("list_tasks 50 running, cursor mid-way, of {TASKS}"),
        durability: label,
        count: LIST_RUNS,
        total,
        latency: Some(latency),
    });

    let (total, latency) = timed_reads(LIST_RUNS, || async {
        store.list_due_tasks(Utc::now(), 100).await.expect("due").len()
    })
    .await;
    rows.push(Row {
        operation: format!("list_due_tasks (limit 100) of {TASKS}"),
        durability: label,
        count: LIST_RUNS,
        total,
        latency: Some(latency),
    });

    let (total, latency) =
        timed_reads(LIST_RUNS, || async { store.count_by_status().await.expect("counts").len() })
            .await;
    rows.push(Row {
        operation: format!("count_by_status of {TASKS}"),
        durability: label,
        count: LIST_RUNS,
        total,
        latency: Some(latency),
    });

    let id = TaskId::from(format!("task_{:012x}", 0));
    // Each entry differs from the one before it: an exact repeat is counted on the
    // previous row instead of inserted, which is not what this measures.
    let entry = |n: usize| {
        CheckLogEntry::new(Utc::now(), TaskStatus::Running, "checked", format!("idle {n}"))
    };
    let singles = match durability {
        Durability::Normal => APPENDS,
        _ => std::env::var("STORE_BENCH_SINGLE_APPENDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(APPENDS / 10),
    };
    let start = Instant::now();
    for n in 0..singles {
        store.append_check_log(&id, &[entry(n)]).await.expect("append");
    }
    rows.push(Row {
        operation: format!("append_check_log x{singles}, 1 entry each"),
        durability: label,
        count: singles,
        total: start.elapsed(),
        latency: None,
    });

    let batch: Vec<CheckLogEntry> = (0..BATCH).map(entry).collect();
    let start = Instant::now();
    for _ in 0..APPENDS / BATCH {
        store.append_check_log(&id, &batch).await.expect("append batch");
    }
    rows.push(Row {
        operation: format!("append_check_log x{APPENDS} entries, batches of {BATCH}"),
        durability: label,
        count: APPENDS,
        total: start.elapsed(),
        latency: None,
    });

    let (total, latency) = timed_reads(LIST_RUNS, || async {
        let query = openloom_core::LogQuery { after: Some(1_000), limit: 100 };
        store.check_log(&id, &query).await.expect("log").len()
    })
    .await;
    rows.push(Row {
        operation: "check_log page of 100 (task with >100,000 entries)".into(),
        durability: label,
        count: LIST_RUNS,
        total,
        latency: Some(latency),
    });

    if durability == Durability::Full {
        print_plans(&store).await;
    }
    store.close().await;
}

/// Shows that the list queries use their indexes (no full scan, no sort of 10k rows).
async fn print_plans(store: &SqliteStore) {
    let queries = [
        "SELECT * FROM tasks WHERE seq < 9000 ORDER BY seq DESC LIMIT 50",
        "SELECT * FROM tasks WHERE status IN ('pending', 'running', 'waiting') \
         AND (next_check_at IS NULL OR next_check_at <= '2030') \
         AND (status = 'pending' OR check_interval_seconds > 0) \
         ORDER BY next_check_at ASC, seq ASC LIMIT 100",
        "SELECT * FROM check_log WHERE task_id = 'x' AND seq > 5 ORDER BY seq LIMIT 100",
    ];
    eprintln!("\nQuery plans:");
    for sql in queries {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(store.pool())
                .await
                .expect("plan");
        eprintln!("  {sql}");
        for (_, _, _, detail) in plan {
            eprintln!("    {detail}");
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();
    runtime.block_on(async {
        run(dir.path(), Durability::Full, "FULL", &mut rows).await;
        run(dir.path(), Durability::Normal, "NORMAL", &mut rows).await;
    });
    println!();
    println!(
        "| operation | synchronous | n | total ms | per second | ms per call (median / p99) |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: |");
    for row in &rows {
        row.print();
    }
}
