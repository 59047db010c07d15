//! Lists the tasks of an OpenLoom SQLite store, newest first, each with its status,
//! progress and its last three check-log entries. Reads only the public
//! [`Store`] trait, so it works the same on any store.
//!
//! It pages through the tasks with [`TaskQuery::before`] (keyset pagination: the id
//! of the last task printed is the cursor for the next page), so a store with many
//! tasks is never loaded at once.
//!
//! Run with:
//!
//! ```text
//! cargo run -p example-list-tasks -- [DATABASE] [--page-size N]
//! ```
//!
//! `DATABASE` defaults to `$OPENLOOM_DATABASE`, else `.openloom/openloom.sqlite3` (the
//! `openloom` binary's file).
//! A missing file is an error rather than a new empty store.

use std::collections::VecDeque;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use openloom_core::{LogQuery, Store, StoredLogEntry, Task, TaskId, TaskQuery};
use openloom_store_sqlite::SqliteStore;

/// Check-log entries shown per task.
const RECENT_ENTRIES: usize = 3;

#[tokio::main]
async fn main() -> Result<()> {
    let (database, page_size) = parse_args(std::env::args().skip(1))?;
    // `SqliteStore::open` creates a missing file; a lister should not.
    if !database.is_file() {
        bail!("no OpenLoom database at {}", database.display());
    }
    let store = SqliteStore::open(&database)
        .await
        .with_context(|| format!("opening {}", database.display()))?;

    let mut cursor: Option<TaskId> = None;
    let mut listed = 0;
    loop {
        let query = TaskQuery { limit: page_size, before: cursor.take(), ..TaskQuery::default() };
        let page = store.list_tasks(&query).await.context("listing tasks")?;
        for task in &page {
            let recent = recent_entries(&store, &task.id, RECENT_ENTRIES).await?;
            print_task(task, &recent);
        }
        listed += page.len();
        // A short page is the last one.
        match page.last() {
            Some(last) if page.len() == page_size => cursor = Some(last.id.clone()),
            _ => break,
        }
    }
    println!("{listed} task(s) in {}", database.display());
    Ok(())
}

/// The newest `count` entries of a task's check log, oldest first.
///
/// The log is read oldest first in pages (`LogQuery::after` is the cursor); only the
/// tail is kept.
async fn recent_entries(
    store: &dyn Store,
    id: &TaskId,
    count: usize,
) -> Result<VecDeque<StoredLogEntry>> {
    let mut tail = VecDeque::with_capacity(count + 1);
    let mut query = LogQuery::default();
    loop {
        let page = store.check_log(id, &query).await.context("reading a check log")?;
        let full = page.len() == query.limit;
        query.after = page.last().map(|entry| entry.seq);
        for entry in page {
            tail.push_back(entry);
            if tail.len() > count {
                tail.pop_front();
            }
        }
        if !full {
            return Ok(tail);
        }
    }
}

fn print_task(task: &Task, recent: &VecDeque<StoredLogEntry>) {
    let steps = task.spec.steps.len();
    let step = if steps == 0 {
        String::new()
    } else {
        format!("  step {}/{steps}", (task.current_step + 1).min(steps))
    };
    println!(
        "{}  {:<9} {:>3.0}%{step}  {}",
        task.id,
        task.status.as_str(),
        task.progress * 100.0,
        task.name
    );
    if let Some(error) = &task.error {
        println!("    error: {error}");
    }
    for stored in recent {
        let entry = &stored.entry;
        println!(
            "    {}  {:<9} {}",
            entry.at.format("%Y-%m-%d %H:%M:%S"),
            entry.status.as_str(),
            entry.summary
        );
    }
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<(PathBuf, usize)> {
    let mut args = args;
    let mut database = None;
    let mut page_size = 20;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--page-size" => {
                let value = args.next().context("--page-size needs a number")?;
                page_size = value.parse().context("--page-size needs a number")?;
                if page_size == 0 {
                    bail!("--page-size must be at least 1");
                }
            }
            flag if flag.starts_with("--") => {
                bail!("unknown option {flag}; usage: list-tasks [DATABASE] [--page-size N]")
            }
            path if database.is_none() => database = Some(PathBuf::from(path)),
            extra => {
                bail!("unexpected argument {extra}; usage: list-tasks [DATABASE] [--page-size N]")
            }
        }
    }
    let database = match database {
        Some(path) => path,
        None => openloom_store_sqlite::database_path(
            std::env::var_os(openloom_store_sqlite::DATABASE_ENV).as_deref(),
            &std::env::current_dir()?,
        ),
    };
    Ok((database, page_size))
}
