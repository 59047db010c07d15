//! Fills each program's store with the same 1,000 finished tasks, through each
//! program's own store code (ours: `SqliteStore`; the reference: its `Store` class).
//!
//! The tasks are finished (completed, failed, archived, paused) so neither server's
//! harness picks them up: the load measures serving, not driving agents.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::Utc;
use openloom_core::{CheckLogEntry, Step, Store, Task, TaskId, TaskSpec, TaskStatus};
use openloom_store_sqlite::SqliteStore;

use crate::subject::Reference;

/// Statuses by task index; none of them is due.
const STATUSES: [(TaskStatus, &str); 4] = [
    (TaskStatus::Completed, "completed"),
    (TaskStatus::Failed, "failed"),
    (TaskStatus::Archived, "archived"),
    (TaskStatus::Paused, "paused"),
];

/// The check-log summaries every seeded task has, oldest first.
const LOG: [&str; 3] = [
    "Harness started and bootstrap prompt sent",
    "Nudged agent toward step 2",
    "Agent reported TASK COMPLETE",
];

/// Seeds `count` tasks into our store at `database`.
pub async fn ours(database: &Path, count: usize, workspace: &str) -> Result<()> {
    let store = SqliteStore::open(database).await.context("opening our store")?;
    let now = Utc::now();
    for i in 0..count {
        let mut spec = TaskSpec::new(
            format!("task {i}"),
            workspace,
            format!("Goal of task {i}: write hello.txt"),
        );
        spec.steps = ["Write hello.txt", "Review it", "Finish"].map(Step::new).to_vec();
        spec.check_interval_seconds = 300;
        let created = now - chrono::Duration::seconds((count - i) as i64);
        let mut task = Task::new(TaskId::generate(), spec, created);
        task.status = STATUSES[i % STATUSES.len()].0;
        task.current_step = 2;
        task.completed_steps = vec![1, 2, 3];
        task.progress = 1.0;
        task.session_ids = vec![format!("ses_bench_{i:04}")];
        task.active_session_id = Some(format!("ses_bench_{i:04}"));
        task.last_check_at = Some(created);
        task.next_check_at = None;
        task.last_summary = Some(LOG[2].to_owned());
        store.create_task(&task).await.with_context(|| format!("creating task {i}"))?;
        let entries: Vec<CheckLogEntry> = LOG
            .iter()
            .map(|summary| CheckLogEntry {
                at: created,
                status: task.status,
                summary: (*summary).to_owned(),
                detail: "idle".to_owned(),
                evidence: None,
            })
            .collect();
        store
            .append_check_log(&task.id, &entries)
            .await
            .with_context(|| format!("logging task {i}"))?;
    }
    store.close().await;
    Ok(())
}

/// The same tasks for the reference, as an inline script run by its interpreter.
const REFERENCE_SEED: &str = r#"
import sys, time, uuid
from pathlib import Path
from openloom.core.store import Store

database, count, workspace = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
statuses = ["completed", "failed", "archived", "paused"]
summaries = ["Harness started and bootstrap prompt sent", "Nudged agent toward step 2", "Agent reported TASK COMPLETE"]
store = Store(database)
now = time.time()
for i in range(count):
    created = now - (count - i)
    status = statuses[i % len(statuses)]
    spec = {"name": f"task {i}", "workspace": workspace, "goal": f"Goal of task {i}: write hello.txt",
            "steps": ["Write hello.txt", "Review it", "Finish"], "step_acceptance": [[], [], []],
            "acceptance": [], "mode": "normal", "agent": "opencode",
            "check_interval_seconds": 300, "initial_prompt": None}
    store.create_task({
        "id": f"task_{uuid.uuid4().hex[:12]}", "name": spec["name"], "spec": spec, "workspace": workspace,
        "status": status, "current_step": 2, "completed_steps": [1, 2, 3], "idle_checks": 0,
        "progress": 1.0, "check_interval_seconds": 300, "last_check_at": created, "next_check_at": None,
        "active_session_id": f"ses_bench_{i:04d}", "session_ids": [f"ses_bench_{i:04d}"],
        "last_summary": summaries[2], "error": None,
        "check_log": [{"at": created, "status": status, "summary": s, "detail": "idle"} for s in summaries],
    })
print(len(store.list_tasks(limit=count + 1)))
"#;

/// Seeds `count` tasks into the reference's store at `database`.
pub async fn reference(
    reference: &Reference,
    database: &Path,
    count: usize,
    workspace: &str,
) -> Result<()> {
    let mut command = tokio::process::Command::new(&reference.python);
    command
        .args(["-c", REFERENCE_SEED])
        .arg(database)
        .arg(count.to_string())
        .arg(workspace)
        .env("PYTHONPATH", &reference.source)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let timed = crate::process::run_timed(command, Duration::from_secs(300)).await?;
    if timed.code != Some(0) || timed.stdout.trim() != count.to_string() {
        bail!(
            "seeding the reference store failed (exit {:?}): {}{}",
            timed.code,
            timed.stdout,
            timed.stderr
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openloom_core::TaskQuery;

    #[tokio::test]
    async fn seeds_finished_tasks_with_their_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("s.sqlite3");
        ours(&database, 8, "/tmp/ws").await.expect("seed");
        let store = SqliteStore::open(&database).await.expect("reopen");
        let counts = store.count_by_status().await.expect("count");
        assert_eq!(counts.get(&TaskStatus::Completed), Some(&2));
        assert_eq!(counts.get(&TaskStatus::Paused), Some(&2));
        assert_eq!(counts.values().sum::<u64>(), 8);
        let due = store.list_due_tasks(Utc::now(), 100).await.expect("due");
        assert!(due.is_empty(), "seeded tasks must not be driven: {due:?}");
        let tasks = store.list_tasks(&TaskQuery::default()).await.expect("list");
        let log = store.check_log(&tasks[0].id, &Default::default()).await.expect("log");
        assert_eq!(log.len(), 3);
    }
}
