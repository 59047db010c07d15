//! `openloom migrate --from PATH.sqlite3 --to postgres://...`: a user who outgrows
//! one machine keeps their history. Every task is copied with its whole check log
//! (repeat counts kept) in one transaction per task, then the recent workspaces; a
//! task whose id is already in the target is skipped, so the command is idempotent
//! and can be rerun after an interruption.

use std::path::Path;

use anyhow::{Context, Result};
use openloom_core::{LogQuery, RecentWorkspaces, Store, StoredLogEntry, Task, TaskQuery};
use openloom_store_postgres::PostgresStore;
use openloom_store_sqlite::SqliteStore;

use crate::exit::{self, coded};

/// Tasks (and log entries) read per page.
const PAGE: usize = 500;
/// A progress line every this many tasks (and after the last).
const PROGRESS_EVERY: usize = 50;

/// What a migration copied.
#[derive(Debug, Default, PartialEq, Eq)]
struct Copied {
    tasks: usize,
    skipped: usize,
    entries: usize,
    workspaces: usize,
}

pub async fn run(from: &Path, to: &str) -> Result<u8> {
    if !openloom_store_postgres::is_postgres_url(to) {
        return Err(coded(
            exit::BAD_INPUT,
            "--to must be a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
        ));
    }
    // Opening a missing file would create an empty database and "copy" nothing.
    if !from.is_file() {
        return Err(coded(
            exit::BAD_INPUT,
            format!("{} is not a file; --from names the SQLite database to copy", from.display()),
        ));
    }
    let source = SqliteStore::open(from).await.map_err(|e| coded(exit::FAILURE, e.to_string()))?;
    let target =
        PostgresStore::connect(to).await.map_err(|e| coded(exit::FAILURE, e.to_string()))?;
    let shown = target.target().to_string();
    eprintln!("migrate: copying {} into {shown}", from.display());
    let copied = copy(&source, &target).await?;
    let Copied { tasks, skipped, entries, workspaces } = copied;
    if tasks == 0 && workspaces == 0 {
        println!(
            "migrate: nothing new to copy: all {skipped} tasks and the recent workspaces of {} \
             are already in {shown}",
            from.display()
        );
    } else {
        println!(
            "migrate: copied {tasks} tasks ({entries} check-log entries) and {workspaces} recent \
             workspaces into {shown}; {skipped} tasks were there already"
        );
    }
    source.close().await;
    target.close().await;
    Ok(exit::OK)
}

/// Copies every task, oldest first (so the target lists them in the same order),
/// then the recent workspaces, newest first (each goes behind those copied before).
async fn copy(source: &SqliteStore, target: &PostgresStore) -> Result<Copied> {
    let tasks = all_tasks(source).await?;
    let total = tasks.len();
    let mut copied = Copied::default();
    for (n, task) in tasks.iter().enumerate() {
        let log = whole_log(source, task).await?;
        let added = target
            .import_task(task, &log)
            .await
            .with_context(|| format!("could not copy task {}", task.id))?;
        if added {
            copied.tasks += 1;
            copied.entries += log.len();
        } else {
            copied.skipped += 1;
        }
        if (n + 1) % PROGRESS_EVERY == 0 || n + 1 == total {
            eprintln!(
                "migrate: {}/{total} tasks ({} copied, {} already there)",
                n + 1,
                copied.tasks,
                copied.skipped
            );
        }
    }
    let recent =
        source.recent_workspaces().await.context("could not read the recent workspaces")?;
    for workspace in &recent {
        let added = target
            .import_workspace(workspace)
            .await
            .with_context(|| format!("could not copy the recent workspace {}", workspace.path))?;
        copied.workspaces += usize::from(added);
    }
    eprintln!("migrate: {} of {} recent workspaces copied", copied.workspaces, recent.len());
    Ok(copied)
}

/// Every task of `store`, oldest first.
async fn all_tasks(store: &SqliteStore) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    let mut before = None;
    loop {
        let query = TaskQuery { before: before.clone(), ..TaskQuery::newest(PAGE) };
        let page = store.list_tasks(&query).await.context("could not list the tasks")?;
        let Some(last) = page.last() else { break };
        before = Some(last.id.clone());
        let full = page.len() == PAGE;
        tasks.extend(page);
        if !full {
            break;
        }
    }
    tasks.reverse();
    Ok(tasks)
}

/// A task's whole check log, oldest first.
async fn whole_log(store: &SqliteStore, task: &Task) -> Result<Vec<StoredLogEntry>> {
    let mut entries = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .check_log(&task.id, &LogQuery { after, limit: PAGE })
            .await
            .with_context(|| format!("could not read the check log of {}", task.id))?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        let full = page.len() == PAGE;
        entries.extend(page);
        if !full {
            break;
        }
    }
    Ok(entries)
}
