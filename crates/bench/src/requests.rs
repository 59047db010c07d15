//! Benchmark 4 (ours only: the reference answers every request itself): how fast a
//! request the agent waits on reaches the task, and an answer reaches OpenCode.
//!
//! Each run: a real OpenCode whose scripted model uses the question tool at the
//! bootstrap prompt; `openloom watch` drives the task. Measured:
//! - **asked → waiting**: from the moment OpenCode lists the question
//!   (`GET /question`, polled every 10 ms) to the moment our store says `waiting`
//!   with the request (its SQLite file, polled every 10 ms);
//! - **answer → OpenCode**: from starting `openloom answer --choose` in another
//!   process to the moment OpenCode no longer lists the question (the reply landed).
//!
//! Both include a polling interval of up to 10 ms.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use openloom_core::{Store, TaskQuery, TaskStatus};
use openloom_store_sqlite::SqliteStore;
use openloom_testkit::{E2e, Launcher, Reply, Script, ToolCall, Turn};

use crate::stats::median;
use crate::subject::{Environment, Subject};

const BOOTSTRAP: &str = "You are executing an OpenLoom harness task";
const POLL: Duration = Duration::from_millis(10);
const LIMIT: Duration = Duration::from_secs(60);

/// Targets from issue #12.
pub const ASKED_TO_WAITING_TARGET: Duration = Duration::from_secs(2);
/// The answer's target.
pub const ANSWER_TO_OPENCODE_TARGET: Duration = Duration::from_secs(1);

/// The two latencies of each run.
#[derive(Debug, Clone, Default)]
pub struct RequestFigures {
    /// Asked in OpenCode → `waiting` in the store.
    pub to_waiting: Vec<Duration>,
    /// `openloom answer` started → OpenCode no longer holds the request.
    pub to_opencode: Vec<Duration>,
}

impl RequestFigures {
    /// Medians, (to waiting, to OpenCode).
    pub fn medians(&self) -> (Duration, Duration) {
        (
            median(&self.to_waiting).unwrap_or_default(),
            median(&self.to_opencode).unwrap_or_default(),
        )
    }

    /// Worst runs, (to waiting, to OpenCode).
    pub fn worst(&self) -> (Duration, Duration) {
        let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
        (max(&self.to_waiting), max(&self.to_opencode))
    }
}

/// Runs the scenario `runs` times with our binary.
pub async fn measure(launcher: &Launcher, ours: &Subject, runs: usize) -> Result<RequestFigures> {
    let mut figures = RequestFigures::default();
    for round in 1..=runs {
        let (to_waiting, to_opencode) =
            one_run(launcher, ours).await.with_context(|| format!("requests run {round}"))?;
        eprintln!(
            "bench: requests run {round}/{runs}: asked → waiting {:.0} ms, answer → OpenCode {:.0} ms",
            to_waiting.as_secs_f64() * 1e3,
            to_opencode.as_secs_f64() * 1e3
        );
        figures.to_waiting.push(to_waiting);
        figures.to_opencode.push(to_opencode);
    }
    Ok(figures)
}

async fn one_run(launcher: &Launcher, ours: &Subject) -> Result<(Duration, Duration)> {
    let env = E2e::start(launcher, Script::new()).await.context("starting OpenCode")?;
    let question = serde_json::json!({"questions": [{
        "question": "Which file name should I use?",
        "header": "File name",
        "options": [{"label": "a.txt", "description": "a"}, {"label": "b.txt", "description": "b"}]
    }]});
    env.model.push_turn(
        Turn::reply(Reply::tool_call(ToolCall::new("question", question)))
            .when_user_says(BOOTSTRAP),
    );
    env.model.push_turn(Turn::reply(Reply::text("TASK COMPLETE")).when_tool_result());

    let dir = tempfile::tempdir().context("creating a temp dir")?;
    let spec = format!(
        "name: Ask\nworkspace: {}\ncheck_interval_seconds: 10\ngoal: ask which file\n",
        env.workspace.directory()
    );
    std::fs::write(dir.path().join("spec.yaml"), spec).context("writing the spec")?;
    let database = dir.path().join("state").join("openloom.sqlite3");
    let opencode_url = env.opencode.base_url();
    let environment =
        Environment { dir: dir.path(), database: &database, opencode_url: &opencode_url };
    let mut watch = ours.command(&["watch", "spec.yaml"], environment);
    let mut watching = watch.spawn().context("starting openloom watch")?;

    let http = reqwest::Client::new();
    let directory = env.workspace.directory();
    let pending = || async {
        let answer = http
            .get(format!("{opencode_url}/question"))
            .query(&[("directory", directory.as_str())])
            .send()
            .await
            .ok()?;
        let list: serde_json::Value = answer.json().await.ok()?;
        list.as_array().map(|items| !items.is_empty())
    };
    let asked =
        poll(|| async { pending().await == Some(true) }, "OpenCode to list the question").await?;
    let store = wait_for_store(&database).await?;
    let waiting = poll(
        || async {
            let tasks = store.list_tasks(&TaskQuery::newest(1)).await.unwrap_or_default();
            tasks
                .first()
                .is_some_and(|t| t.status == TaskStatus::Waiting && !t.pending_requests.is_empty())
        },
        "the task to be waiting",
    )
    .await?;
    let to_waiting = waiting.saturating_duration_since(asked);

    let task = store.list_tasks(&TaskQuery::newest(1)).await?.into_iter().next();
    let Some(task) = task else { bail!("the task vanished") };
    let started = Instant::now();
    let mut answer = ours.command(&["answer", task.id.as_str(), "--choose", "a.txt"], environment);
    let answering = answer.spawn().context("starting openloom answer")?;
    let gone =
        poll(|| async { pending().await == Some(false) }, "OpenCode to take the answer").await?;
    let to_opencode = gone.saturating_duration_since(started);
    let answered = answering.wait_with_output().await.context("openloom answer")?;
    if !answered.status.success() {
        bail!("openloom answer failed: {}", String::from_utf8_lossy(&answered.stderr));
    }
    let status = tokio::time::timeout(LIMIT, watching.wait()).await;
    if !matches!(status, Ok(Ok(exit)) if exit.success()) {
        let _ = watching.kill().await;
        bail!("openloom watch did not complete the answered task");
    }
    Ok((to_waiting, to_opencode))
}

async fn wait_for_store(database: &Path) -> Result<SqliteStore> {
    let deadline = Instant::now() + LIMIT;
    loop {
        if database.exists()
            && let Ok(store) = SqliteStore::open(database).await
        {
            return Ok(store);
        }
        if Instant::now() > deadline {
            bail!("no store at {} after {LIMIT:?}", database.display());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `done` every [`POLL`] until it holds; returns when it first did.
async fn poll<F, Fut>(mut done: F, what: &str) -> Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + LIMIT;
    loop {
        if done().await {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!("waited {LIMIT:?} for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_worst_runs() {
        let ms = Duration::from_millis;
        let figures = RequestFigures {
            to_waiting: vec![ms(300), ms(100), ms(200)],
            to_opencode: vec![ms(50), ms(90), ms(70)],
        };
        assert_eq!(figures.medians(), (ms(200), ms(70)));
        assert_eq!(figures.worst(), (ms(300), ms(90)));
    }
}
