//! The load generator both servers get: N keep-alive connections on loopback sending
//! GET requests back to back for a fixed time, every body read in full.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::stats::percentile;

/// How hard and how long to drive one endpoint. Every field bounds the load.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent connections (one worker each, one request in flight each).
    pub connections: usize,
    /// Measured time.
    pub duration: Duration,
    /// Unmeasured time before it, so connections and caches are warm.
    pub warmup: Duration,
    /// Most time one request may take before it counts as an error.
    pub request_timeout: Duration,
    /// Most requests in total (a second bound next to the duration).
    pub max_requests: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            connections: 20,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            max_requests: 2_000_000,
        }
    }
}

/// What one measured period produced.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Latencies of the successful requests, sorted.
    pub latencies: Vec<Duration>,
    /// Requests that failed (transport error, timeout or non-2xx status).
    pub errors: usize,
    /// The first failure, to show what went wrong.
    pub first_error: Option<String>,
    /// Body bytes read.
    pub bytes: u64,
    /// Measured wall time.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Successful requests.
    pub fn ok(&self) -> usize {
        self.latencies.len()
    }

    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 { self.ok() as f64 / seconds } else { 0.0 }
    }

    /// Median latency.
    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 0.50).unwrap_or_default()
    }

    /// 99th percentile latency.
    pub fn p99(&self) -> Duration {
        percentile(&self.latencies, 0.99).unwrap_or_default()
    }

    /// Mean body size.
    pub fn mean_body(&self) -> u64 {
        self.bytes.checked_div(self.ok() as u64).unwrap_or(0)
    }
}

/// Drives `url` per `config`: a warm-up, then the measured period. Returns both
/// (the warm-up's report is empty when there is none).
pub async fn drive(url: &str, config: &LoadConfig) -> Result<(LoadReport, LoadReport)> {
    if config.connections == 0 {
        bail!("the load needs at least one connection");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(config.connections)
        .timeout(config.request_timeout)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the load generator's HTTP client")?;
    let warmup = period(&client, url, config, config.warmup).await;
    Ok((warmup, period(&client, url, config, config.duration).await))
}

async fn period(
    client: &reqwest::Client,
    url: &str,
    config: &LoadConfig,
    length: Duration,
) -> LoadReport {
    let started = Instant::now();
    let deadline = started + length;
    let per_worker = config.max_requests.div_ceil(config.connections);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..config.connections {
        let client = client.clone();
        let url = url.to_owned();
        workers.spawn(async move { worker(client, url, deadline, per_worker).await });
    }
    let mut total = WorkerTally::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(tally) => total.merge(tally),
            Err(error) => total.fail(format!("worker died: {error}")),
        }
    }
    let elapsed = started.elapsed();
    total.latencies.sort();
    LoadReport {
        latencies: total.latencies,
        errors: total.errors,
        first_error: total.first_error,
        bytes: total.bytes,
        elapsed,
    }
}

#[derive(Default)]
struct WorkerTally {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
    bytes: u64,
}

impl WorkerTally {
    fn fail(&mut self, error: String) {
        self.errors += 1;
        self.first_error.get_or_insert(error);
    }

    fn merge(&mut self, other: WorkerTally) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.bytes += other.bytes;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn worker(
    client: reqwest::Client,
    url: String,
    deadline: Instant,
    limit: usize,
) -> WorkerTally {
    let mut tally = WorkerTally::default();
    let mut sent = 0;
    while sent < limit && Instant::now() < deadline {
        sent += 1;
        let start = Instant::now();
        match fetch(&client, &url).await {
            Ok(bytes) => {
                tally.latencies.push(start.elapsed());
                tally.bytes += bytes;
            }
            Err(error) => {
                tally.fail(error);
                // A refused connection fails at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    tally
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<u64, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("HTTP {status}: {text}"));
    }
    Ok(body.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn quick(duration_ms: u64) -> LoadConfig {
        LoadConfig {
            connections: 4,
            duration: Duration::from_millis(duration_ms),
            warmup: Duration::ZERO,
            request_timeout: Duration::from_secs(2),
            max_requests: 10_000,
        }
    }

    #[tokio::test]
    async fn counts_successes_bytes_and_latency() {
        let base = serve(Router::new().route(
            "/ok",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                "hello"
            }),
        ))
        .await;
        let (warmup, report) = drive(&format!("{base}/ok"), &quick(300)).await.expect("load runs");
        assert_eq!(warmup.ok() + warmup.errors, 0, "no warm-up was asked for");
        assert_eq!(report.errors, 0, "{:?}", report.first_error);
        assert!(report.ok() > 10, "only {} requests", report.ok());
        assert_eq!(report.mean_body(), 5);
        assert!(report.p50() >= Duration::from_millis(5), "{:?}", report.p50());
        assert!(report.p99() >= report.p50());
        // 4 connections at ≥5 ms each cannot exceed 800 requests/s.
        assert!(report.rate() <= 800.0, "{}", report.rate());
    }

    #[tokio::test]
    async fn error_statuses_are_counted_not_timed() {
        let base =
            serve(Router::new().route("/no", get(|| async { (StatusCode::BAD_REQUEST, "nope") })))
                .await;
        let (_, report) = drive(&format!("{base}/no"), &quick(100)).await.expect("load runs");
        assert_eq!(report.ok(), 0);
        assert!(report.errors > 0);
        assert!(
            report.first_error.as_deref().is_some_and(|e| e.contains("400")),
            "{:?}",
            report.first_error
        );
    }

    #[tokio::test]
    async fn the_request_cap_bounds_the_load() {
        let base = serve(Router::new().route("/ok", get(|| async { "x" }))).await;
        let mut config = quick(5_000);
        config.max_requests = 40;
        let started = Instant::now();
        let (_, report) = drive(&format!("{base}/ok"), &config).await.expect("load runs");
        assert_eq!(report.ok(), 40);
        assert!(started.elapsed() < Duration::from_secs(4), "stopped by the cap, not the clock");
    }
}
