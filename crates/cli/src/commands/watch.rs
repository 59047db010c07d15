//! `openloom watch SPEC`: start (or resume) the spec's task and drive it to the end.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use openloom_core::{
    EventBus, EventPayload, Harness, Store, Task, TaskId, TaskQuery, TaskSpec, TaskStatus,
};
use tokio::sync::broadcast::error::RecvError;

use super::parts;
use crate::config::Settings;
use crate::console::{ConsoleSink, printable};
use crate::exit::{self, coded};

/// `ui`: the settings to serve the API with while watching (`--ui`), if asked.
pub async fn run(
    settings: &Settings,
    spec_path: &Path,
    fresh: bool,
    ui: Option<Settings>,
) -> Result<u8> {
    let spec = parts::load_spec(spec_path)?;
    settings
        .workspace_policy()
        .resolve(&spec.workspace)
        .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?;
    // What `--ui`'s /metrics shows; counted into whether or not it is served.
    let metrics = openloom_server::Metrics::new();
    let client = parts::metered_client(settings, Arc::new(metrics.clone()))?;
    parts::require_opencode(&client, settings).await?;
    let store = parts::store(settings).await?;
    let webhooks = parts::webhooks(settings, store.outbox.clone()).await?;

    let bus = EventBus::new();
    let console = Arc::new(ConsoleSink::new());
    bus.add_sink(console.clone());
    let mut events = bus.receiver();
    let worker = parts::worker_name(settings, store.tasks.as_ref()).await?;
    let meter = Arc::new(metrics.clone());
    let harness = parts::harness(settings, store.tasks.clone(), client.clone(), bus, worker, meter);
    let server = match &ui {
        Some(ui) => Some(
            super::serve::bind(ui, &harness, &store, &client, &metrics, false, Vec::new()).await?,
        ),
        None => None,
    };

    let task_id = match open_task_for(store.tasks.as_ref(), &spec).await? {
        Some(task) if !fresh => {
            console.name_task(&task.id, &task.name);
            println!(
                "openloom: resuming task {} ({}) — an unfinished task for this spec exists; --fresh starts a new one",
                task.id, task.status
            );
            if changed_since(&task.spec, &spec) {
                println!(
                    "openloom: note: the spec changed since this task started; it goes on with the \
                     spec it started with (--fresh starts a new task with the new one)"
                );
            }
            if matches!(task.status, TaskStatus::Paused | TaskStatus::Waiting | TaskStatus::Failed)
            {
                harness.resume(&task.id).await.context("could not resume the task")?;
            }
            task.id
        }
        _ => harness
            .add_task(spec.clone())
            .await
            .map_err(|e| coded(exit::BAD_INPUT, e.to_string()))?,
    };
    // Drive this spec's task only; other tasks in the database are not ours to run.
    harness.restrict_to([task_id.clone()]);
    println!("openloom: watching {} — {}", task_id, printable(&spec.name));
    println!("  workspace: {}", printable(&spec.workspace));
    println!("  interval:  {}s", spec.check_interval_seconds);
    println!("  database:  {}", settings.database);
    if spec.has_checks() {
        println!("  verified:  completion needs the spec's checks to pass");
    }
    let (stop, stop_signal) = tokio::sync::watch::channel(false);
    let served = server.map(|(server, access)| {
        for line in super::serve::access_lines(&server, &access) {
            println!("{line}");
        }
        let mut stopped = stop_signal.clone();
        tokio::spawn(server.run(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }))
    });
    println!();

    let sender = webhooks.inspect(|sender| {
        println!("  webhooks:  {}", settings.webhooks.len());
        tokio::spawn(sender.clone().run(harness.bus().clone(), stop_signal.clone()));
    });
    let runner = tokio::spawn(Arc::clone(&harness).run(stop_signal));
    let outcome = tokio::select! {
        outcome = wait_for_end(&harness, &task_id, &mut events) => outcome,
        () = super::serve::shutdown_signal() => Ok(None),
    };
    let _ = stop.send(true);
    let _ = runner.await;
    if let Some(served) = served {
        let _ = served.await;
    }
    // Give the console sink a moment to print the last lines.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    if let Some(sender) = sender {
        // The event that ended the task must reach its receivers before we exit;
        // what still fails stays queued for the next `watch` or `serve`.
        match sender.flush(WEBHOOK_FLUSH).await {
            Ok(0) => {}
            Ok(left) => println!(
                "openloom: {left} webhook deliveries still pending; the next `openloom serve`                  or `watch` with the same webhooks sends them"
            ),
            Err(error) => eprintln!("openloom: could not send the last webhooks: {error}"),
        }
    }

    match outcome? {
        Some(TaskStatus::Completed) => {
            println!("\nopenloom: task {task_id} finished — completed");
            Ok(exit::OK)
        }
        Some(status) => {
            println!(
                "\nopenloom: task {task_id} finished — {status}; see `openloom log {task_id}`"
            );
            Ok(exit::FAILURE)
        }
        None => {
            println!(
                "\nopenloom: interrupted — the agent may still be working in OpenCode; \
                 run `openloom watch {}` again to resume task {task_id}",
                spec_path.display()
            );
            Ok(exit::INTERRUPTED)
        }
    }
}

/// How long `watch` waits, once its task ended, for the last webhooks to go out.
const WEBHOOK_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// True when what the agent is asked to do differs (the workspace is resolved at
/// start, so it is not compared).
fn changed_since(started: &TaskSpec, now: &TaskSpec) -> bool {
    started.goal != now.goal
        || started.steps != now.steps
        || started.acceptance != now.acceptance
        || started.checks != now.checks
}

/// The newest unfinished (or failed, which `watch` resumes) task for this spec (same
/// name and workspace), if any.
async fn open_task_for(store: &dyn Store, spec: &TaskSpec) -> Result<Option<Task>> {
    let query = TaskQuery {
        limit: 200,
        statuses: vec![
            TaskStatus::Pending,
            TaskStatus::Running,
            TaskStatus::Waiting,
            TaskStatus::Paused,
            TaskStatus::Failed,
        ],
        ..TaskQuery::default()
    };
    let workspace = canonical(&spec.workspace);
    let tasks = store.list_tasks(&query).await.context("could not list tasks")?;
    Ok(tasks.into_iter().find(|t| t.spec.name == spec.name && canonical(&t.workspace) == workspace))
}

fn canonical(path: &str) -> String {
    Path::new(path)
        .canonicalize()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| path.to_owned())
}

/// Waits until the task is completed, failed or archived; returns its final status.
async fn wait_for_end(
    harness: &Harness,
    task_id: &TaskId,
    events: &mut tokio::sync::broadcast::Receiver<openloom_core::Event>,
) -> Result<Option<TaskStatus>> {
    loop {
        // The store is the truth: check it first, then wait for the next event.
        if let Some(task) =
            harness.store().get_task(task_id).await.context("could not read the task")?
        {
            if task.status.is_terminal() {
                return Ok(Some(task.status));
            }
        } else {
            return Err(coded(
                exit::NOT_FOUND,
                format!("task {task_id} was deleted while being watched"),
            ));
        }
        match events.recv().await {
            Ok(event) if &event.task_id == task_id => match event.payload {
                EventPayload::Completed { .. } => return Ok(Some(TaskStatus::Completed)),
                EventPayload::Failed { .. } => return Ok(Some(TaskStatus::Failed)),
                _ => {}
            },
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return Ok(None),
        }
    }
}
