//! A [`Checker`](openloom_core::Checker) of one's own: [`HttpHealthChecker`] lets the
//! agent's `TASK COMPLETE` stand only when a URL answers `200 OK`.
//!
//! It wraps the marker checker (which reads the agent's `STEP DONE: n` /
//! `TASK COMPLETE`) the way `openloom-checks`' `VerifyingChecker` does, and reports
//! the probe as a `CheckOutcome` in `CheckResult::verification`. That is all the
//! harness needs: a failed probe is recorded as evidence in the check log and sent
//! back to the agent ("verification failed … Check: http_get: …"), and after
//! `--max-rounds` failed rounds the task fails.
//!
//! It runs one task with it against OpenCode and prints every event as it happens
//! (with a synchronous handler on the bus, the lightweight alternative to a `Sink`).
//!
//! Run with (an OpenCode server must be running, e.g. `opencode serve --port 4096`):
//!
//! ```text
//! cargo run -p example-custom-checker -- --opencode http://127.0.0.1:4096 \
//!     --workspace DIR --health-url http://127.0.0.1:8080/health
//! ```
//!
//! Options: `--database FILE` (default `.openloom/openloom.sqlite3`),
//! `--interval SECONDS` (fallback check interval, default 30), `--max-rounds N`
//! (failed probes before the task fails, default 5).
//!
//! Exit status: 0 when the task completed, 1 when it failed, 2 on bad arguments or a
//! setup error, 130 when interrupted with Ctrl-C.

mod http_health;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use openloom_core::{
    EventBus, EventPayload, Harness, HarnessParts, Health, TaskSpec, TaskStatus, WorkspacePolicy,
};
use openloom_opencode::OpencodeClient;
use openloom_prompts::{MarkerChecker, ReferenceDialogue};
use openloom_store_sqlite::SqliteStore;
use tokio::sync::{mpsc, watch};

use crate::http_health::HttpHealthChecker;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("custom-checker: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<ExitCode> {
    let args = Args::parse(std::env::args().skip(1))?;

    let store = Arc::new(SqliteStore::open(&args.database).await?);
    let client = Arc::new(OpencodeClient::new(openloom_opencode::Settings::new(&args.opencode))?);
    if let Health::Unreachable { reason } | Health::Unauthorized { reason } = client.health().await
    {
        bail!("OpenCode at {} cannot be used: {reason}", args.opencode);
    }

    // The custom checker, composed with the marker checker it verifies.
    let checker = HttpHealthChecker::new(Arc::new(MarkerChecker), &args.health_url)?;
    println!("custom-checker: completion is gated on `{}`", checker.label());

    // Print every event: store version, kind, and what it says.
    let bus = EventBus::new();
    bus.subscribe_all(|event| {
        println!("  v{:<4} {}", event.store_version, describe(&event.payload))
    });
    // Subscribed before the task exists (its id is only known once it is added),
    // so its end cannot be missed; the store may hold other tasks, hence the id.
    let (ended, mut endings) = mpsc::unbounded_channel();
    bus.subscribe_all(move |event| {
        let status = match event.payload {
            EventPayload::Completed { .. } => TaskStatus::Completed,
            EventPayload::Failed { .. } => TaskStatus::Failed,
            _ => return,
        };
        let _ = ended.send((event.task_id.clone(), status));
    });

    let harness = Arc::new(Harness::new(HarnessParts {
        agent: client,
        store,
        checker: Arc::new(checker),
        dialogue: Arc::new(ReferenceDialogue),
        bus,
        workspaces: WorkspacePolicy::within([args.workspace.clone()]),
    }));

    let mut spec = TaskSpec::new(
        "Bring the service up",
        args.workspace.to_string_lossy(),
        format!("Start the service so that GET {} answers 200 OK.", args.health_url),
    );
    spec.check_interval_seconds = args.interval;
    spec.max_verification_rounds = Some(args.max_rounds);
    let task_id = harness.add_task(spec).await.context("adding the task")?;

    let (stop, stop_signal) = watch::channel(false);
    let runner = tokio::spawn(Arc::clone(&harness).run(stop_signal));
    let status = tokio::select! {
        status = async {
            while let Some((id, status)) = endings.recv().await {
                if id == task_id {
                    return Some(status);
                }
            }
            None
        } => status,
        _ = tokio::signal::ctrl_c() => None,
    };
    let _ = stop.send(true);
    runner.await.context("the harness loop panicked")?;

    Ok(match status {
        Some(TaskStatus::Completed) => {
            println!("custom-checker: task {task_id} completed");
            ExitCode::SUCCESS
        }
        Some(status) => {
            println!("custom-checker: task {task_id} {status}");
            ExitCode::FAILURE
        }
        None => ExitCode::from(130),
    })
}

fn describe(payload: &EventPayload) -> String {
    match payload {
        EventPayload::Created { name, .. } => format!("created    {name}"),
        EventPayload::Started { summary, .. } => format!("started    {summary}"),
        EventPayload::Updated { status, summary, .. } => {
            format!("{:<10} {summary}", status.as_str())
        }
        EventPayload::Completed { summary, .. } => format!("COMPLETED  {summary}"),
        EventPayload::Failed { error } => format!("FAILED     {error}"),
        EventPayload::LogLine { summary } => format!("log        {summary}"),
        EventPayload::Deleted => "deleted".to_owned(),
    }
}

/// The command line, parsed by hand to keep the example small.
struct Args {
    opencode: String,
    workspace: PathBuf,
    health_url: String,
    database: PathBuf,
    interval: u64,
    max_rounds: u32,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args> {
        let mut opencode = "http://127.0.0.1:4096".to_owned();
        let (mut workspace, mut health_url, mut database) = (None, None, None);
        let (mut interval, mut max_rounds) = (30, 5);
        while let Some(flag) = args.next() {
            let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--opencode" => opencode = value()?,
                "--workspace" => workspace = Some(PathBuf::from(value()?)),
                "--health-url" => health_url = Some(value()?),
                "--database" => database = Some(PathBuf::from(value()?)),
                "--interval" => interval = value()?.parse().context("--interval takes seconds")?,
                "--max-rounds" => {
                    max_rounds = value()?.parse().context("--max-rounds takes a count")?
                }
                other => bail!(
                    "unknown argument {other}; usage: --opencode URL --workspace DIR \
                     --health-url URL [--database FILE] [--interval SECONDS] [--max-rounds N]"
                ),
            }
        }
        let workspace = workspace.context("--workspace DIR is required")?;
        let workspace = workspace
            .canonicalize()
            .with_context(|| format!("workspace {} cannot be used", workspace.display()))?;
        let cwd = std::env::current_dir()?;
        Ok(Args {
            opencode,
            workspace,
            health_url: health_url.context("--health-url URL is required")?,
            database: database
                .unwrap_or_else(|| openloom_store_sqlite::default_database_path(&cwd)),
            interval,
            max_rounds,
        })
    }
}
