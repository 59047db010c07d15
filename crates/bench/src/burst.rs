//! Benchmark 4 (ours only): resident memory of `openloom serve` through a burst of
//! large tasks (issue #16). Sixteen specs of about 200 KB each — inside every spec
//! limit — are created over the API, the task list and the SSE snapshot are read a
//! few times, and `VmRSS` is read before, right after, and after a quiet pause: what
//! the burst costs at its height and what stays resident once it is over.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::process::{Memory, memory};

/// Tasks created in the burst.
pub const TASKS: usize = 16;
/// Steps per spec and characters per step: 100 × 1,900 characters and a goal of
/// 1,900 is about 195 KB of YAML, under the 256 KiB, 200-step and 2,000-character
/// limits (`crates/prompts/src/spec/limits.rs`).
const STEPS: usize = 100;
const LINE_CHARS: usize = 1900;
/// Reads of `GET /api/tasks?limit=50` and of the SSE snapshot after the creations.
const READS: usize = 5;
/// The quiet pause before the last reading.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Memory through the burst.
#[derive(Debug, Clone)]
pub struct BurstFigures {
    /// Before the first creation.
    pub before: Memory,
    /// Right after the last read (`peak_kib`: the high-water mark so far).
    pub after_reads: Memory,
    /// After [`SETTLE`] with no requests.
    pub settled: Memory,
    /// After a second, identical burst and the same pause: what a first burst left
    /// is memory kept for reuse (caches, free lists) if this is near [`Self::settled`],
    /// and growth if it is not.
    pub second: Memory,
    /// Bytes of one spec as sent.
    pub spec_bytes: usize,
    /// Bytes of one `GET /api/tasks` answer after the burst.
    pub list_bytes: usize,
}

/// A spec of about 195 KB for `workspace`.
pub fn large_spec(i: usize, workspace: &str) -> String {
    let line = |what: &str| format!("{what} {}", "x".repeat(LINE_CHARS - what.len() - 1));
    let mut spec = format!(
        "name: burst {i}\nworkspace: {workspace}\ngoal: {}\ncheck_interval_seconds: 300\nsteps:\n",
        line("goal")
    );
    for step in 0..STEPS {
        spec.push_str(&format!("  - {}\n", line(&format!("step {step}"))));
    }
    spec
}

/// Runs the burst against our server at `base` (process `pid`).
pub async fn measure(base: &str, pid: u32, workspace: &str) -> Result<BurstFigures> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()?;
    let before = memory(pid)?;
    let (spec_bytes, list_bytes) = burst(&client, base, workspace, 0).await?;
    let after_reads = memory(pid)?;
    tokio::time::sleep(SETTLE).await;
    let settled = memory(pid)?;
    burst(&client, base, workspace, TASKS).await?;
    tokio::time::sleep(SETTLE).await;
    let second = memory(pid)?;
    Ok(BurstFigures { before, after_reads, settled, second, spec_bytes, list_bytes })
}

/// Creates [`TASKS`] large tasks numbered from `first` and reads the lists; returns
/// the bytes of one spec and of one list answer.
async fn burst(
    client: &reqwest::Client,
    base: &str,
    workspace: &str,
    first: usize,
) -> Result<(usize, usize)> {
    let mut spec_bytes = 0;
    for i in first..first + TASKS {
        let spec = large_spec(i, workspace);
        spec_bytes = spec.len();
        let created: Value = send_json(
            client.post(format!("{base}/api/tasks")).json(&serde_json::json!({ "spec": spec })),
        )
        .await
        .with_context(|| format!("creating burst task {i}"))?;
        // Paused at once: the burst measures the server holding and listing large
        // tasks, not the harness driving sixteen sessions of the scripted model.
        let id = created.get("taskId").and_then(Value::as_str).context("no taskId")?;
        send_json(client.post(format!("{base}/api/tasks/{id}/pause"))).await.ok();
    }
    let mut list_bytes = 0;
    for _ in 0..READS {
        let body = client
            .get(format!("{base}/api/tasks?limit=50"))
            .send()
            .await
            .context("GET /api/tasks")?
            .bytes()
            .await
            .context("reading /api/tasks")?;
        list_bytes = body.len();
        snapshot(client, base).await?;
    }
    Ok((spec_bytes, list_bytes))
}

async fn send_json(request: reqwest::RequestBuilder) -> Result<Value> {
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.context("the answer is not JSON")?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// Opens `/api/events`, reads until the end of the first event (the snapshot), and
/// hangs up.
async fn snapshot(client: &reqwest::Client, base: &str) -> Result<()> {
    let mut response =
        client.get(format!("{base}/api/events")).send().await.context("GET /api/events")?;
    let mut seen = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .context("the snapshot did not arrive")?
        .context("reading /api/events")?
    {
        seen.extend_from_slice(&chunk);
        if seen.windows(2).any(|w| w == b"\n\n") {
            return Ok(());
        }
    }
    bail!("/api/events ended before its snapshot")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_large_spec_is_large_but_within_the_limits() {
        let spec = large_spec(3, "/tmp/w");
        assert!((180_000..256 * 1024).contains(&spec.len()), "{}", spec.len());
        assert!(spec.lines().all(|line| line.chars().count() <= 2000 + 20));
        assert_eq!(spec.lines().filter(|l| l.starts_with("  - step")).count(), STEPS);
    }
}
