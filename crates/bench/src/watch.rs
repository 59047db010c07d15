//! Benchmark 1: wall time of `openloom watch` on a scripted three-step task, each
//! run against its own fresh real OpenCode whose model is scripted the same way.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use openloom_testkit::{E2e, Launcher, Reply, Script, Turn};

use crate::stats::median;
use crate::subject::{Environment, Subject};

/// The start of both implementations' bootstrap prompt (ours kept the wording).
const BOOTSTRAP: &str = "You are executing an OpenLoom harness task";

/// Most time one watch may take before the run counts as failed. The reference
/// needs about three 10 s intervals; this leaves room for a slow machine.
const WATCH_LIMIT: Duration = Duration::from_secs(180);

/// The wall times of one subject.
#[derive(Debug, Clone)]
pub struct WatchFigures {
    /// Which program.
    pub subject: &'static str,
    /// Each run's wall time, spawn to exit.
    pub runs: Vec<Duration>,
    /// Model requests OpenCode made per run (the same script for both).
    pub model_requests: Vec<usize>,
}

impl WatchFigures {
    /// The median wall time.
    pub fn median(&self) -> Duration {
        median(&self.runs).unwrap_or_default()
    }
}

/// Runs the task `runs` times per subject, alternating subjects so background load
/// affects both alike.
pub async fn measure(
    launcher: &Launcher,
    subjects: &[Subject],
    runs: usize,
) -> Result<Vec<WatchFigures>> {
    let mut figures: Vec<WatchFigures> = subjects
        .iter()
        .map(|s| WatchFigures { subject: s.name(), runs: Vec::new(), model_requests: Vec::new() })
        .collect();
    for round in 1..=runs {
        for (subject, figure) in subjects.iter().zip(figures.iter_mut()) {
            let (elapsed, requests) = one_run(launcher, subject)
                .await
                .with_context(|| format!("watch run {round} of {}", subject.name()))?;
            eprintln!(
                "bench: watch run {round}/{runs} {}: {:.2} s ({requests} model requests)",
                subject.name(),
                elapsed.as_secs_f64()
            );
            figure.runs.push(elapsed);
            figure.model_requests.push(requests);
        }
    }
    Ok(figures)
}

/// The spec both programs run: three steps, a 10 s check interval (the reference's
/// minimum), in the OpenCode workspace.
pub fn spec_yaml(workspace: &str) -> String {
    format!(
        "name: Three steps\nworkspace: {workspace}\ncheck_interval_seconds: 10\n\
         goal: Write hello.txt\nsteps: [Write hello.txt, Review it, Finish]\n"
    )
}

async fn one_run(launcher: &Launcher, subject: &Subject) -> Result<(Duration, usize)> {
    let env = E2e::start(launcher, Script::new()).await.context("starting OpenCode")?;
    let hello = env.workspace.file("hello.txt");
    // Step 1 writes a file (a real tool round trip), steps 2 and 3 answer the nudges.
    env.model.push_turn(
        Turn::reply(Reply::write_file(&hello, "hello from the agent\n")).when_user_says(BOOTSTRAP),
    );
    env.model
        .push_turn(Turn::reply(Reply::text("Wrote hello.txt.\nSTEP DONE: 1")).when_tool_result());
    env.model.push_turn(
        Turn::reply(Reply::text("Reviewed.\nSTEP DONE: 2")).when_user_says("Focus on step 2"),
    );
    let last = "All good.\nSTEP DONE: 3\nTASK COMPLETE";
    env.model.push_turn(Turn::reply(Reply::text(last)).when_user_says("Focus on step 3"));
    // The reference never nudges toward the last step (its nudge needs
    // `current_step < steps - 1`, and it has already set current_step to the last
    // one); its periodic check asks for it instead. The agent answers either.
    env.model
        .push_turn(Turn::reply(Reply::text(last)).when_user_says("continue working on step 3"));

    let dir = tempfile::tempdir().context("creating a temp dir")?;
    std::fs::write(dir.path().join("spec.yaml"), spec_yaml(&env.workspace.directory()))
        .context("writing the spec")?;
    let database = dir.path().join("state").join("openloom.sqlite3");
    let opencode_url = env.opencode.base_url();
    let environment =
        Environment { dir: dir.path(), database: &database, opencode_url: &opencode_url };
    let command = subject.command(&["watch", "spec.yaml"], environment);
    let timed = crate::process::run_timed(command, WATCH_LIMIT).await?;

    let finished = timed.code == Some(0) && timed.stdout.to_lowercase().contains("complete");
    if !finished {
        bail!(
            "{} did not complete the task (exit {:?})\nstdout:\n{}\nstderr:\n{}",
            subject.name(),
            timed.code,
            timed.stdout,
            timed.stderr
        );
    }
    if env.workspace.read("hello.txt").as_deref() != Some("hello from the agent\n") {
        bail!("{} reported completion but hello.txt is not on disk", subject.name());
    }
    Ok((timed.elapsed, env.model.requests().len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_has_three_steps_and_the_reference_minimum_interval() {
        let yaml = spec_yaml("/tmp/ws");
        assert!(yaml.contains("workspace: /tmp/ws\n"), "{yaml}");
        assert!(yaml.contains("check_interval_seconds: 10\n"), "{yaml}");
        assert!(yaml.contains("steps: [Write hello.txt, Review it, Finish]"), "{yaml}");
    }

    #[test]
    fn the_median_is_of_the_runs() {
        let figures = WatchFigures {
            subject: "x",
            runs: vec![Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(2)],
            model_requests: vec![4, 4, 4],
        };
        assert_eq!(figures.median(), Duration::from_secs(2));
    }
}
