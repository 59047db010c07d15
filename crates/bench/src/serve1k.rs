//! `serve-1k` (issue #14, ours only, no real OpenCode): the release `openloom serve`
//! as a process, over HTTP, driving 1,000 running tasks against the simulated
//! OpenCode of `fake_opencode.rs`, on a fresh SQLite file and, when
//! `OPENLOOM_TEST_POSTGRES` names a server, on a fresh PostgreSQL database.
//!
//! Measured: (a) `serve`'s `VmRSS` before any task, sampled every 250 ms through the
//! run (its maximum), and at the end, and its `VmHWM`; (b) idle event → next prompt as
//! the fake sees it: from the moment it puts a session's idle status on
//! `/global/event` to the arrival of the harness's next `prompt_async` for that
//! session. The tasks are created through `POST /api/tasks` (spec tasks with four
//! steps, checked every 300 s, so idle events drive them); each session's bootstrap
//! prompt starts a turn of 1–20 s (uniform), and so does every prompt after it; turns
//! 1–3 end "STEP DONE: n" (measured: the harness nudges toward the next step), turn 4
//! ends "TASK COMPLETE" (the task completes; no prompt expected).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::fake_opencode::{FakeOpencode, Observed, Plan};
use crate::process::{Memory, Server, cpu_time, free_port, memory};
use crate::stats::{median, percentile};
use crate::subject::{Environment, Subject};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    /// Running tasks.
    pub tasks: usize,
    /// Measured turns per session (a final completing turn follows).
    pub turns: u32,
    /// Give up waiting for the sessions' last turns after this long.
    pub limit: Duration,
}

/// One store's figures.
#[derive(Debug, Clone)]
pub struct Figures {
    /// "SQLite" or "PostgreSQL".
    pub store: &'static str,
    /// Tasks created.
    pub tasks: usize,
    /// Time to create them over the API (8 requests at once).
    pub create: Duration,
    /// From the first creation to the last session's last turn ending.
    pub run: Duration,
    /// Before any task (5 s after start-up).
    pub before: Memory,
    /// Highest `VmRSS` seen by the 250 ms sampler.
    pub rss_max_kib: u64,
    /// At the end (3 s after the last turn), with `VmHWM` the high-water mark.
    pub end: Memory,
    /// `serve`'s CPU time from the first creation to the end.
    pub cpu: Duration,
    /// What the fake saw.
    pub observed: Observed,
    /// Tasks `serve` lists as completed at the end.
    pub completed: usize,
    /// The load average when the run started (1, 5, 15 min).
    pub load: String,
}

/// Runs every store available: SQLite, then PostgreSQL if configured.
pub async fn measure(ours: &Subject, setup: Setup) -> Result<Vec<Figures>> {
    let mut all = vec![one(ours, setup, None).await.context("serve-1k on SQLite")?];
    if let Some(database) = openloom_store_postgres::testing::fresh_database().await {
        let figures = one(ours, setup, Some(&database.url)).await;
        database.drop_database().await;
        all.push(figures.context("serve-1k on PostgreSQL")?);
    }
    Ok(all)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn one(ours: &Subject, setup: Setup, postgres: Option<&str>) -> Result<Figures> {
    let store = if postgres.is_some() { "PostgreSQL" } else { "SQLite" };
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).context("creating the workspace")?;
    let workspace = workspace.to_str().context("the temp dir is not UTF-8")?.to_owned();
    let sqlite = dir.path().join("openloom.sqlite3");
    let database = match postgres {
        Some(url) => std::path::PathBuf::from(url),
        None => sqlite,
    };
    let plan = Plan {
        turns: setup.turns,
        turn_min: Duration::from_secs(1),
        turn_max: Duration::from_secs(20),
        seed: 0x5eed_0014,
    };
    let fake = FakeOpencode::start(plan, &workspace).await?;
    let port = free_port()?;
    let port_text = port.to_string();
    let environment = Environment { dir: dir.path(), database: &database, opencode_url: &fake.url };
    let mut command = ours.command(
        &["serve", "--port", &port_text, "--no-token", "--no-start-opencode"],
        environment,
    );
    command.env_remove("RUST_LOG");
    let mut server = Server::spawn(command, "openloom serve", &dir.path().join("serve.log"))?;
    let base = format!("http://127.0.0.1:{port}");
    server.wait_ready(&format!("{base}/api/tasks"), Duration::from_secs(60)).await?;
    let pid = server.pid()?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = memory(pid)?;
    let load = load_average();
    eprintln!("bench: serve-1k {store}: RSS {} KiB before tasks, load {load}", before.rss_kib);

    let sampling = Arc::new(AtomicBool::new(true));
    let rss_max = Arc::new(AtomicU64::new(before.rss_kib));
    let sampler = {
        let (sampling, rss_max) = (Arc::clone(&sampling), Arc::clone(&rss_max));
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Ok(now) = memory(pid) {
                    rss_max.fetch_max(now.rss_kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let cpu_before = cpu_time(pid)?;
    let started = Instant::now();
    create_tasks(&base, &workspace, setup.tasks, setup.turns)
        .await
        .with_context(|| format!("creating the tasks\n{}", server.log_tail()))?;
    let create = started.elapsed();
    eprintln!("bench: serve-1k {store}: {} tasks created in {create:?}", setup.tasks);
    let mut last_report = Instant::now();
    loop {
        let seen = fake.observed();
        if seen.finished >= setup.tasks {
            break;
        }
        if started.elapsed() > setup.limit {
            eprintln!(
                "bench: serve-1k {store}: gave up after {:?}: {} of {} sessions finished",
                setup.limit, seen.finished, setup.tasks
            );
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "bench: serve-1k {store}: {:?}: {} sessions, {} prompts, {} finished, RSS max {} KiB",
                started.elapsed(),
                seen.sessions,
                seen.prompts,
                seen.finished,
                rss_max.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let run = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let end = memory(pid)?;
    let cpu = cpu_time(pid)?.saturating_sub(cpu_before);
    let completed = count_completed(&base).await.unwrap_or_else(|error| {
        eprintln!("bench: serve-1k {store}: could not count completed tasks: {error:#}");
        0
    });
    let observed = fake.observed();
    server.stop().await;
    Ok(Figures {
        store,
        tasks: setup.tasks,
        create,
        run,
        before,
        rss_max_kib: rss_max.load(Ordering::Relaxed).max(end.rss_kib),
        end,
        cpu,
        observed,
        completed,
        load,
    })
}

/// A spec of `turns + 1` steps in `workspace`, checked every 300 s.
fn spec(i: usize, workspace: &str, turns: u32) -> String {
    let mut spec = format!(
        "name: serve-1k task {i}\nworkspace: {workspace}\ngoal: Make the tests of module {i} pass\ncheck_interval_seconds: 300\nsteps:\n"
    );
    for step in 1..=turns + 1 {
        spec.push_str(&format!("  - Step {step} of module {i}\n"));
    }
    spec
}

async fn create_tasks(base: &str, workspace: &str, tasks: usize, turns: u32) -> Result<()> {
    use futures::StreamExt;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let results: Vec<Result<()>> = futures::stream::iter(0..tasks)
        .map(|i| {
            let client = client.clone();
            let body = serde_json::json!({ "spec": spec(i, workspace, turns) });
            async move {
                let response = client
                    .post(format!("{base}/api/tasks"))
                    .json(&body)
                    .send()
                    .await
                    .with_context(|| format!("POST /api/tasks ({i})"))?;
                let status = response.status();
                if !status.is_success() {
                    let text = response.text().await.unwrap_or_default();
                    bail!("POST /api/tasks ({i}): {status} {text}");
                }
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Completed tasks, paging `GET /api/tasks?status=completed` by `before`.
async fn count_completed(base: &str) -> Result<usize> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let mut count = 0;
    let mut before: Option<String> = None;
    loop {
        let mut request = client
            .get(format!("{base}/api/tasks"))
            .query(&[("status", "completed"), ("limit", "500")]);
        if let Some(before) = &before {
            request = request.query(&[("before", before)]);
        }
        let body: Value = request.send().await?.error_for_status()?.json().await?;
        let tasks = body.get("tasks").and_then(Value::as_array).context("no tasks array")?;
        count += tasks.len();
        match body.get("next_cursor").and_then(Value::as_str) {
            Some(next) => before = Some(next.to_owned()),
            None => return Ok(count),
        }
    }
}

/// The Markdown table and notes.
pub fn table(all: &[Figures]) -> String {
    let mut out = String::from(
        "| store | samples | median / p90 / p99 / max ms | idle, never prompted | unexpected prompts | RSS before | RSS max (250 ms samples) | RSS end | VmHWM | completed | run | serve CPU | load at start |\n| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for f in all {
        let mut sorted = f.observed.latencies.clone();
        sorted.sort();
        let ms = |d: Option<Duration>| {
            d.map_or("—".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        };
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        out.push_str(&format!(
            "| {} | {} | {} / {} / {} / {} | {} | {} | {} | {} | {} | {} | {}/{} | {:.0} s | {:.1} s | {} |\n",
            f.store,
            sorted.len(),
            ms(median(&sorted)),
            ms(percentile(&sorted, 0.90)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied()),
            f.observed.waiting_for_prompt,
            f.observed.unexpected_prompts,
            mib(f.before.rss_kib),
            mib(f.rss_max_kib),
            mib(f.end.rss_kib),
            mib(f.end.peak_kib),
            f.completed,
            f.tasks,
            f.run.as_secs_f64(),
            f.cpu.as_secs_f64(),
            f.load,
        ));
    }
    out.push_str(
        "\nA task's time (first prompt to its last turn's end) over a client's that prompts the \
         instant a session goes idle (the turns alone):\n\n| store | tasks | median | p99 | max |\n| --- | ---: | ---: | ---: | ---: |\n",
    );
    for f in all {
        let mut ratios = f.observed.task_ratios.clone();
        ratios.sort_by(f64::total_cmp);
        let at = |q: f64| -> String {
            if ratios.is_empty() {
                return "—".to_owned();
            }
            let index = ((ratios.len() as f64 * q).ceil() as usize).clamp(1, ratios.len()) - 1;
            format!("{:.4}×", ratios[index])
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            f.store,
            ratios.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        ));
    }
    for f in all {
        out.push_str(&format!(
            "\n{}: {} tasks created in {:.1} s; {} sessions, {} prompts; SSE events dropped: {}; requests to unknown routes: {:?}\n\nRequests to the fake: {}\n",
            f.store,
            f.tasks,
            f.create.as_secs_f64(),
            f.observed.sessions,
            f.observed.prompts,
            f.observed.lagged,
            f.observed.unknown,
            f.observed
                .requests
                .iter()
                .map(|(route, n)| format!("`{route}` {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    out
}
