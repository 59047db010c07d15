//! Embeds the OpenLoom harness in a tokio program of its own.
//!
//! It builds every part by hand from the library crates — the SQLite store, the
//! OpenCode client, the reference wording (`ReferenceDialogue`), completion verified by
//! the spec's checks (`VerifyingChecker` around `MarkerChecker`) — plus a
//! [`Sink`](openloom_core::Sink) of its own that appends one JSON line per event to a
//! file. Then it adds one task, built in code, and drives it until it is completed or
//! failed.
//!
//! Run with (an OpenCode server must be running, e.g. `opencode serve --port 4096`):
//!
//! ```text
//! cargo run -p example-embed-harness -- --opencode http://127.0.0.1:4096 --workspace DIR
//! ```
//!
//! Options: `--database FILE` (default `.openloom/openloom.sqlite3`, the file the
//! `openloom` binary and the `list-tasks` example read), `--events FILE` (default
//! `events.jsonl`), `--interval SECONDS` (fallback check interval, default 30).
//!
//! Exit status: 0 when the task completed, 1 when it failed, 2 on bad arguments or a
//! setup error, 130 when interrupted with Ctrl-C.

mod events_file;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use openloom_checks::{CheckRunner, VerifyingChecker};
use openloom_core::{
    CheckDefinition, Event, EventBus, EventKind, EventPayload, Harness, HarnessParts, Health, Step,
    TaskId, TaskSpec, TaskStatus, WorkspacePolicy,
};
use openloom_opencode::OpencodeClient;
use openloom_prompts::{MarkerChecker, ReferenceDialogue};
use openloom_store_sqlite::SqliteStore;
use tokio::sync::{broadcast, watch};

use crate::events_file::EventsFile;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("embed-harness: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode> {
    let args = Args::parse(std::env::args().skip(1))?;

    // 1. The parts. Each is an `Arc<dyn Trait>` to the harness; keep your own handle
    //    to whatever you want to use directly (here: the client, for a health check).
    let store = Arc::new(
        SqliteStore::open(&args.database)
            .await
            .with_context(|| format!("opening the store {}", args.database.display()))?,
    );
    let client = Arc::new(OpencodeClient::new(openloom_opencode::Settings::new(&args.opencode))?);
    match client.health().await {
        Health::Reachable { .. } => {}
        Health::Unreachable { reason } | Health::Unauthorized { reason } => {
            bail!("OpenCode at {} cannot be used: {reason}", args.opencode)
        }
    }
    let checker = VerifyingChecker::new(Arc::new(MarkerChecker), Arc::new(CheckRunner::new()));

    // 2. The bus. Subscribe before adding the task, or the `created` event is missed.
    let bus = EventBus::new();
    let events_file = Arc::new(EventsFile::create(&args.events).await?);
    bus.add_sink(events_file.clone());
    let mut announcements = bus.receiver();

    let harness = Arc::new(Harness::new(HarnessParts {
        agent: client,
        store,
        checker: Arc::new(checker),
        dialogue: Arc::new(ReferenceDialogue),
        bus,
        workspaces: WorkspacePolicy::within([args.workspace.clone()]),
    }));

    // 3. One task from a spec built in code; it is due at once.
    let spec = greeting_spec(&args.workspace, args.interval);
    let task_id = harness.add_task(spec).await.context("adding the task")?;
    println!("embed-harness: task {task_id} added; events go to {}", args.events.display());

    // 4. Drive it: `run` checks due tasks and reacts to OpenCode's idle events until
    //    the stop signal turns true.
    let (stop, stop_signal) = watch::channel(false);
    let runner = tokio::spawn(Arc::clone(&harness).run(stop_signal));
    let end = tokio::select! {
        end = wait_for_end(&harness, &task_id, &mut announcements) => Some(end?),
        _ = tokio::signal::ctrl_c() => None,
    };
    let _ = stop.send(true);
    runner.await.context("the harness loop panicked")?;

    // 5. Sinks run on their own tasks: wait until ours has written the last event.
    let Some((status, version)) = end else {
        println!("embed-harness: interrupted; the task stays in the store and can be resumed");
        return Ok(ExitCode::from(130));
    };
    let kind =
        if status == TaskStatus::Completed { EventKind::Completed } else { EventKind::Failed };
    events_file.wait_until_written(version, kind, Duration::from_secs(5)).await;
    println!("embed-harness: task {task_id} {status} (store version {version})");
    Ok(if status == TaskStatus::Completed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Two steps, each proven by a check the agent cannot talk its way past.
fn greeting_spec(workspace: &Path, interval: u64) -> TaskSpec {
    let mut spec = TaskSpec::new(
        "Write a greeting",
        workspace.to_string_lossy(),
        "Create hello.txt with a friendly one-line greeting.",
    );
    spec.check_interval_seconds = interval;
    let mut write = Step::new("Write hello.txt containing a greeting");
    write.acceptance.push("hello.txt exists".to_owned());
    write.checks.push(CheckDefinition::FileExists { path: "hello.txt".to_owned() });
    spec.steps = vec![write, Step::new("Review hello.txt and fix any typo")];
    spec.checks.push(CheckDefinition::FileContains {
        path: "hello.txt".to_owned(),
        pattern: "(?i)hello".to_owned(),
    });
    spec
}

/// Waits for the task's `completed` or `failed` event; returns the final status and
/// the store version of that write.
///
/// Events only notify; the store is the truth. When this receiver falls behind
/// (`Lagged`), the store says whether the task ended meanwhile.
async fn wait_for_end(
    harness: &Harness,
    task_id: &TaskId,
    events: &mut broadcast::Receiver<Event>,
) -> Result<(TaskStatus, u64)> {
    loop {
        match events.recv().await {
            Ok(event) if &event.task_id == task_id => match event.payload {
                EventPayload::Completed { .. } => {
                    return Ok((TaskStatus::Completed, event.store_version));
                }
                EventPayload::Failed { .. } => {
                    return Ok((TaskStatus::Failed, event.store_version));
                }
                _ => {}
            },
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let task = harness.store().get_task(task_id).await?.context("task vanished")?;
                if task.status.is_terminal() {
                    return Ok((task.status, harness.store().store_version().await?));
                }
            }
            Err(broadcast::error::RecvError::Closed) => bail!("the event bus closed"),
        }
    }
}

/// The command line, parsed by hand to keep the example small.
struct Args {
    opencode: String,
    workspace: PathBuf,
    database: PathBuf,
    events: PathBuf,
    interval: u64,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args> {
        let (mut opencode, mut workspace, mut database, mut events, mut interval) =
            (None, None, None, None, 30);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--opencode" => opencode = Some(value()?),
                "--workspace" => workspace = Some(PathBuf::from(value()?)),
                "--database" => database = Some(PathBuf::from(value()?)),
                "--events" => events = Some(PathBuf::from(value()?)),
                "--interval" => interval = value()?.parse().context("--interval takes seconds")?,
                other => bail!(
                    "unknown argument {other}; usage: --opencode URL --workspace DIR \
                     [--database FILE] [--events FILE] [--interval SECONDS]"
                ),
            }
        }
        let workspace = workspace.context("--workspace DIR is required")?;
        let workspace = workspace
            .canonicalize()
            .with_context(|| format!("workspace {} cannot be used", workspace.display()))?;
        let cwd = std::env::current_dir()?;
        Ok(Args {
            opencode: opencode.unwrap_or_else(|| "http://127.0.0.1:4096".to_owned()),
            workspace,
            database: database
                .unwrap_or_else(|| openloom_store_sqlite::default_database_path(&cwd)),
            events: events.unwrap_or_else(|| PathBuf::from("events.jsonl")),
            interval,
        })
    }
}
