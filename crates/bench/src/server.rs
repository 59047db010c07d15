//! Benchmarks 2 and 3: each program's `openloom serve` over a store of seeded tasks,
//! pointed at the same real OpenCode; idle resident memory after start-up, then the
//! same load on `GET /api/tasks` and `GET /api/state`.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use openloom_testkit::{E2e, Launcher, Script};
use serde_json::Value;

use crate::burst::{self, BurstFigures};
use crate::load::{LoadConfig, LoadReport, drive};
use crate::process::{Memory, Server, cpu_time, free_port, memory};
use crate::seed;
use crate::subject::{Environment, Subject};

/// The endpoints both servers are driven on.
pub const ENDPOINTS: [&str; 2] = ["/api/tasks", "/api/state"];

/// Sessions created in OpenCode so `/api/state` has some to report.
const SESSIONS: usize = 10;

/// What to measure.
#[derive(Debug, Clone)]
pub struct ServerPlan {
    /// Tasks seeded into each store.
    pub tasks: usize,
    /// Idle time after the server answers before memory is read.
    pub idle: Duration,
    /// The load per endpoint.
    pub load: LoadConfig,
}

/// One program's figures.
#[derive(Debug, Clone)]
pub struct ServerFigures {
    /// Which program.
    pub subject: &'static str,
    /// Memory after start-up and the idle time.
    pub idle: Memory,
    /// Memory after all the load (`peak_kib` is the high-water mark).
    pub after_load: Memory,
    /// Load results, in [`ENDPOINTS`] order.
    pub endpoints: Vec<EndpointFigures>,
    /// Memory through a burst of large tasks, after the load (ours only).
    pub burst: Option<BurstFigures>,
}

/// One endpoint's load result and what one response held.
#[derive(Debug, Clone)]
pub struct EndpointFigures {
    /// The path.
    pub path: &'static str,
    /// Items in one response's `tasks` array (the page size both serve).
    pub tasks_in_response: usize,
    /// Items in one response's `sessions` array (`/api/state` only).
    pub sessions_in_response: Option<usize>,
    /// The load result.
    pub report: LoadReport,
    /// CPU time the server used during the measured period and its warm-up.
    pub server_cpu: Duration,
    /// Requests sent in that time (warm-up included), to get CPU per request.
    pub requests_in_cpu_window: usize,
}

impl EndpointFigures {
    /// Server CPU time per request, in microseconds (the load generator excluded).
    pub fn cpu_per_request_us(&self) -> f64 {
        if self.requests_in_cpu_window == 0 {
            return 0.0;
        }
        self.server_cpu.as_secs_f64() * 1e6 / self.requests_in_cpu_window as f64
    }
}

/// Measures every subject, one at a time, against one OpenCode.
pub async fn measure(
    launcher: &Launcher,
    subjects: &[Subject],
    plan: &ServerPlan,
) -> Result<Vec<ServerFigures>> {
    let env = E2e::start(launcher, Script::new()).await.context("starting OpenCode")?;
    let workspace = env.workspace.directory();
    create_sessions(&env.opencode.base_url(), &workspace).await?;
    let mut all = Vec::new();
    for subject in subjects {
        let figures = one(subject, &env.opencode.base_url(), &workspace, plan)
            .await
            .with_context(|| format!("server bench of {}", subject.name()))?;
        all.push(figures);
    }
    Ok(all)
}

async fn create_sessions(opencode: &str, workspace: &str) -> Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    for i in 0..SESSIONS {
        let response = client
            .post(format!("{opencode}/session"))
            .query(&[("directory", workspace)])
            .json(&serde_json::json!({ "title": format!("bench session {i}") }))
            .send()
            .await
            .context("creating an OpenCode session")?;
        if !response.status().is_success() {
            bail!("OpenCode refused a session: {}", response.status());
        }
    }
    Ok(())
}

async fn one(
    subject: &Subject,
    opencode_url: &str,
    workspace: &str,
    plan: &ServerPlan,
) -> Result<ServerFigures> {
    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let database = dir.path().join("state").join("openloom.sqlite3");
    std::fs::create_dir_all(dir.path().join("state")).context("creating the state dir")?;
    match subject {
        Subject::Ours { .. } => seed::ours(&database, plan.tasks, workspace).await?,
        Subject::Reference(reference) => {
            seed::reference(reference, &database, plan.tasks, workspace).await?
        }
    }
    eprintln!("bench: seeded {} tasks for {}", plan.tasks, subject.name());

    let port = free_port()?;
    let port_text = port.to_string();
    let environment = Environment { dir: dir.path(), database: &database, opencode_url };
    // The reference has no token; ours serves without one here (`--no-token`) so both
    // answer the same plain requests. The token check itself is one comparison.
    let args: &[&str] = match subject {
        Subject::Ours { .. } => &["serve", "--port", &port_text, "--no-token"],
        Subject::Reference(_) => &["serve", "--port", &port_text],
    };
    let mut command = subject.command(args, environment);
    command.env_remove("RUST_LOG");
    let mut server = Server::spawn(command, subject.name(), &dir.path().join("serve.log"))?;
    let base = format!("http://127.0.0.1:{port}");
    server.wait_ready(&format!("{base}/api/tasks"), Duration::from_secs(60)).await?;
    tokio::time::sleep(plan.idle).await;
    let idle = memory(server.pid()?)?;
    // Where the idle memory goes, mapping by mapping, for whoever is trimming it.
    if let Some(dump) = std::env::var_os("OPENLOOM_BENCH_SMAPS") {
        let dump = std::path::PathBuf::from(dump)
            .with_extension(format!("{}.smaps", idle_tag(subject.name())));
        let smaps =
            std::fs::read(format!("/proc/{}/smaps", server.pid()?)).context("reading smaps")?;
        std::fs::write(&dump, smaps).with_context(|| format!("writing {}", dump.display()))?;
    }
    eprintln!(
        "bench: {} idle RSS {} KiB ({} KiB data, {} KiB mapped files)",
        subject.name(),
        idle.rss_kib,
        idle.anon_kib,
        idle.file_kib
    );

    let mut endpoints = Vec::new();
    for path in ENDPOINTS {
        let url = format!("{base}{path}");
        let body = fetch_json(&url).await?;
        let tasks_in_response =
            count(&body, "tasks").with_context(|| format!("GET {url}: no tasks array"))?;
        let sessions_in_response = count(&body, "sessions");
        let pid = server.pid()?;
        let cpu_before = cpu_time(pid)?;
        let (warmup, report) = drive(&url, &plan.load).await?;
        let server_cpu = cpu_time(pid)?.saturating_sub(cpu_before);
        eprintln!(
            "bench: {} GET {path}: {:.0} req/s, p50 {:?}, p99 {:?}, {} errors",
            subject.name(),
            report.rate(),
            report.p50(),
            report.p99(),
            report.errors
        );
        if report.ok() == 0 {
            bail!(
                "no request to {path} succeeded: {:?}\n{}",
                report.first_error,
                server.log_tail()
            );
        }
        let requests_in_cpu_window = warmup.ok() + warmup.errors + report.ok() + report.errors;
        endpoints.push(EndpointFigures {
            path,
            tasks_in_response,
            sessions_in_response,
            report,
            server_cpu,
            requests_in_cpu_window,
        });
    }
    let after_load = memory(server.pid()?)?;
    let burst = match subject {
        Subject::Ours { .. } => {
            let figures = burst::measure(&base, server.pid()?, workspace)
                .await
                .with_context(|| format!("the burst of large tasks\n{}", server.log_tail()))?;
            eprintln!(
                "bench: burst: RSS {} KiB before, {} KiB after, {} KiB settled",
                figures.before.rss_kib, figures.after_reads.rss_kib, figures.settled.rss_kib
            );
            Some(figures)
        }
        Subject::Reference(_) => None,
    };
    server.stop().await;
    Ok(ServerFigures { subject: subject.name(), idle, after_load, endpoints, burst })
}

/// Fetches `url` once as JSON, failing on an error status.
async fn fetch_json(url: &str) -> Result<Value> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let response = client.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.with_context(|| format!("GET {url}: not JSON"))?;
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

fn count(body: &Value, key: &str) -> Option<usize> {
    body.get(key).and_then(Value::as_array).map(Vec::len)
}

/// A file-name-safe tag for a program's name ("ours (Rust)" → "ours").
fn idle_tag(name: &str) -> String {
    name.split_whitespace()
        .next()
        .unwrap_or("server")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_an_array_member() {
        let body = serde_json::json!({"tasks": [1, 2, 3], "store_version": 4});
        assert_eq!(count(&body, "tasks"), Some(3));
        assert_eq!(count(&body, "sessions"), None);
        assert_eq!(count(&body, "store_version"), None);
    }
}
