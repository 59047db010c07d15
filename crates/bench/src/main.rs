//! `openloom-bench`: OpenLoom measured side by side with the Python original it
//! ports (openloom 0.7.0), in the same run on the same machine.
//!
//! Four benchmarks, each against the real OpenCode from the test kit:
//! 1. **watch** — wall time of `openloom watch` on a scripted three-step task;
//! 2. **server** — requests/s and latency of `openloom serve` on `GET /api/tasks`
//!    and `GET /api/state` over 1,000 seeded tasks, with one Rust load generator;
//! 3. **memory** — resident memory of the idle `openloom serve` (measured in 2), and
//!    of ours through a burst of sixteen ~200 KB tasks (`burst.rs`, issue #16);
//! 4. **requests** — a question reaching the task, an answer reaching OpenCode
//!    (ours only);
//! 5. **webhooks** — a task event reaching a webhook receiver, and the cost of
//!    1,000 deliveries queued for a dead receiver (ours only, in process, no
//!    OpenCode needed: `openloom-bench webhooks`);
//! 6. **serve-1k** — `openloom serve` over HTTP with 1,000 running tasks against a
//!    simulated OpenCode (`fake_opencode.rs`): idle event → next prompt and resident
//!    memory (issue #14; ours only, no real OpenCode: `openloom-bench serve-1k`).
//!
//! Design decision: both programs run as separate processes through their own
//! command lines (`openloom watch` / `openloom serve` and `python -m openloom …`)
//! rather than through library calls, because start-up, the event loop and the web
//! stack are part of what a user waits for. The reference runs from its source tree
//! with `PYTHONPATH` (its code is never copied into this repository); when it cannot
//! be imported the run says why on one line and measures ours alone.
//!
//! Run: `cargo build --release -p openloom -p openloom-bench &&
//! OPENLOOM_REFERENCE_PYTHON=/tmp/refvenv/bin/python target/release/openloom-bench`
//! (or `cargo xtask bench`). All traffic stays on loopback and every load is bounded
//! in time and in count.

mod burst;
mod fake_opencode;
mod load;
mod machine;
mod process;
mod report;
mod requests;
mod seed;
mod serve1k;
mod server;
mod stats;
mod subject;
mod watch;
mod webhooks;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use openloom_testkit::{Launcher, PINNED_OPENCODE_VERSION};

use crate::load::LoadConfig;
use crate::server::ServerPlan;
use crate::subject::Subject;

/// Side-by-side benchmarks of OpenLoom and its Python original.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Which benchmarks to run (server includes the memory figures).
    #[arg(value_enum, default_values_t = [Which::Watch, Which::Server, Which::Requests, Which::Webhooks])]
    which: Vec<Which>,
    /// Python interpreter that has the reference's dependencies (httpx, pyyaml,
    /// fastapi, uvicorn, sse-starlette). Without it only ours is measured.
    #[arg(long, env = "OPENLOOM_REFERENCE_PYTHON", value_name = "PYTHON")]
    reference_python: Option<PathBuf>,
    /// Directory holding the reference's `openloom` package.
    #[arg(
        long,
        env = "OPENLOOM_REFERENCE_SOURCE",
        default_value = "/work/shared/reference/openloom-0.7.0",
        value_name = "DIR"
    )]
    reference_source: PathBuf,
    /// Our `openloom` binary [default: next to this executable].
    #[arg(long, env = "OPENLOOM_BENCH_BIN", value_name = "PATH")]
    openloom: Option<PathBuf>,
    /// Runs of the watch benchmark per program (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Measured seconds per endpoint and program.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 20)]
    connections: usize,
    /// Tasks seeded into each store for the server benchmark.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Seconds a server stays idle after start-up before its memory is read.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Watch,
    Server,
    /// A question reaching the task, and an answer reaching OpenCode (ours only).
    Requests,
    /// A task event reaching a webhook receiver; a dead receiver's cost (ours only).
    Webhooks,
    /// `openloom serve` with 1,000 running tasks on a simulated OpenCode (ours only).
    #[value(name = "serve-1k")]
    Serve1k,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let ours = subject::ours(args.openloom.clone())?;
    let mut subjects = vec![ours.clone()];
    let reference_line = match &args.reference_python {
        None => {
            "reference: skipped (set OPENLOOM_REFERENCE_PYTHON to a Python with its dependencies)"
                .to_owned()
        }
        Some(python) => match subject::reference(python, &args.reference_source).await {
            Ok(reference) => {
                let line = match &reference {
                    Subject::Reference(r) => {
                        format!("reference: {} ({})", r.versions, r.python.display())
                    }
                    Subject::Ours { .. } => String::new(),
                };
                subjects.push(reference);
                line
            }
            Err(error) => format!("reference: skipped ({error:#})"),
        },
    };
    eprintln!("bench: {reference_line}");
    if args.which == [Which::Webhooks] {
        // In process: needs neither OpenCode nor the reference.
        let figures = webhooks::measure(WEBHOOK_EVENTS).await?;
        let mut report = String::from("\n### Webhooks: a task event reaching the receiver\n\n");
        report.push_str(&webhooks::table(&figures));
        println!("{report}");
        return Ok(());
    }
    if args.which.contains(&Which::Serve1k) {
        // Against a simulated OpenCode: needs neither OpenCode nor the reference.
        let setup = serve1k::Setup { tasks: args.tasks, turns: 3, limit: Duration::from_secs(600) };
        let figures = serve1k::measure(&ours, setup).await?;
        let mut report = format!(
            "\n### `openloom serve` over HTTP with {} running tasks (simulated OpenCode)\n\n- machine: {}\n- ours: {}\n\n",
            args.tasks,
            machine::Machine::read(),
            subject::our_version(&ours).await,
        );
        report.push_str(&serve1k::table(&figures));
        println!("{report}");
        if let Some(path) = &args.output {
            std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        }
        if args.which == [Which::Serve1k] {
            return Ok(());
        }
    }
    let launcher = match Launcher::find() {
        Ok(launcher) => launcher,
        Err(error) => {
            println!("bench: skipped: OpenCode is needed for every comparative benchmark: {error}");
            return Ok(());
        }
    };

    let mut report = header(&ours, &reference_line, &args).await;
    if args.which.contains(&Which::Watch) {
        let figures = watch::measure(&launcher, &subjects, args.runs).await?;
        report.push_str("\n### Harness: scripted three-step task, `openloom watch` wall time\n\n");
        report.push_str(&report::watch_table(&figures));
    }
    if args.which.contains(&Which::Server) {
        let plan = ServerPlan {
            tasks: args.tasks,
            idle: Duration::from_secs(args.idle_secs),
            load: LoadConfig {
                connections: args.connections,
                duration: Duration::from_secs(args.secs),
                ..LoadConfig::default()
            },
        };
        let figures = server::measure(&launcher, &subjects, &plan).await?;
        report.push_str(&format!(
            "\n### Server: throughput, {} connections, {} s per endpoint, {} tasks\n\n",
            args.connections, args.secs, args.tasks
        ));
        report.push_str(&report::throughput_table(&figures));
        report.push_str(&format!(
            "\n### Server: resident memory ({} s idle after start-up)\n\n",
            args.idle_secs
        ));
        report.push_str(&report::memory_table(&figures));
        let burst = report::burst_table(&figures);
        if !burst.is_empty() {
            report.push_str("\n### Server: resident memory through a burst of large tasks\n\n");
            report.push_str(&burst);
        }
    }
    if args.which.contains(&Which::Webhooks) {
        let figures = webhooks::measure(WEBHOOK_EVENTS).await?;
        report.push_str("\n### Webhooks: a task event reaching the receiver\n\n");
        report.push_str(&webhooks::table(&figures));
    }
    if args.which.contains(&Which::Requests) {
        let figures = requests::measure(&launcher, &ours, args.runs).await?;
        report.push_str(
            "\n### Unattended: a question reaching the task, an answer reaching OpenCode\n\n",
        );
        report.push_str(&report::requests_table(&figures));
    }
    println!("{report}");
    if let Some(path) = &args.output {
        std::fs::write(path, &report).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: report written to {}", path.display());
    }
    Ok(())
}

/// Task events timed by the webhooks benchmark.
const WEBHOOK_EVENTS: usize = 100;

async fn header(ours: &Subject, reference_line: &str, args: &Args) -> String {
    format!(
        "## openloom-bench, {}\n\n- machine: {}\n- ours: {}\n- {reference_line}\n- OpenCode {PINNED_OPENCODE_VERSION} (test kit, scripted model on loopback)\n- watch runs per program: {}\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        machine::Machine::read(),
        subject::our_version(ours).await,
        args.runs,
    )
}
