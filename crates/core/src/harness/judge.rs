//! The judgement of a check: what the session shows and what to do about it.
//!
//! Pure functions of the task, what the session shows ([`Observation`]), the
//! checker's result and the time; the wording comes from the [`Dialogue`], which
//! only words. The harness gathers the inputs, calls these, and carries out the
//! [`Verdict`] (sends its nudge, writes it, announces it). The decision table is
//! unit-tested directly in `judge/tests.rs`.

use chrono::{DateTime, Utc};

use crate::agent::{AgentMessage, Role, SessionActivity};
use crate::check::{CheckResult, VerificationScope};
use crate::dialogue::Dialogue;
use crate::event::EventPayload;
use crate::harness::failure::Failure;
use crate::harness::liveness::{self, Pulse};
use crate::harness::{Trigger, after};
use crate::request::PendingRequest;
use crate::spec::DEFAULT_MAX_VERIFICATION_ROUNDS;
use crate::task::{CheckLogEntry, Task, TaskStatus, TaskUpdate};

/// Shortest wait before a busy or waiting task is looked at again on schedule.
pub(crate) const MIN_RECHECK_SECONDS: u64 = 10;

/// How long a prompt without an answer counts as "the agent is about to answer".
/// Longer than that, the answer is taken as lost and the task is judged as it is.
const REPLY_GRACE: chrono::Duration = chrono::Duration::seconds(120);

/// What a check saw of the task's session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observation<'a> {
    /// The session's newest messages, oldest first.
    pub messages: &'a [AgentMessage],
    /// What the agent server says the session is doing.
    pub activity: &'a SessionActivity,
    /// What the session waits on a person for (permissions, questions).
    pub pending: &'a [PendingRequest],
    /// Why the check runs.
    pub trigger: Trigger,
    /// When the check runs.
    pub now: DateTime<Utc>,
}

/// What a check decided, to be carried out by the harness.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    /// The task's new state.
    pub update: TaskUpdate,
    /// Its check-log entry.
    pub log: CheckLogEntry,
    /// What to announce once written.
    pub events: Vec<EventPayload>,
    /// A prompt to send the agent before writing.
    pub nudge: Option<String>,
    /// True when the transcript was judged (not a busy or waiting note): only then
    /// is its newest message "seen".
    pub judged: bool,
}

/// The first look: can the transcript be judged now?
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Triage {
    /// Nothing to record (an event-triggered check that found nothing new to judge).
    Skip,
    /// Record this note without asking the checker (busy, awaiting a reply, retrying).
    Note(Box<Verdict>),
    /// The session is idle with an answer to judge: run the checker, then [`judge`].
    Judge,
    /// Busy without new output for `stall_timeout`: recover (`stall.rs`).
    Stalled {
        /// Seconds without output.
        after_seconds: u64,
    },
}

/// Decides whether the checker should look at the session now.
pub(crate) fn triage(task: &Task, seen: &Observation<'_>, words: &dyn Dialogue) -> Triage {
    if let Some(first) = seen.pending.first() {
        // The session is busy, but nothing moves until a person answers: say what
        // it waits for, instead of "Agent is busy" for as long as nobody looks.
        let more = match seen.pending.len() {
            1 => String::new(),
            n => format!(" (+{} more)", n - 1),
        };
        let summary = format!("Waiting for a person — {}{more}", first.describe());
        let ids: Vec<&str> = seen.pending.iter().map(|r| r.id.as_str()).collect();
        let detail = format!("pending {}", ids.join(", "));
        let mut verdict =
            noted(task, TaskStatus::Waiting, &summary, &detail, task.idle_checks, seen.now);
        // Due again when the first request's wait reaches `human_timeout`, so the
        // fallback answers on time whatever the check interval.
        let timeout = task.spec.unattended.human_timeout();
        let deadline = seen.pending.iter().filter_map(|r| r.asked_at).min().filter(|_| timeout > 0);
        due_by(&mut verdict, deadline.map(|asked| after(asked, timeout)), seen.now);
        // Waiting for a person is not a stall: the clock restarts when the wait ends.
        verdict.update.liveness = Some(liveness::refreshed(task, seen.messages, seen.now));
        // Bounded: the request's text comes from the model, and lists show it.
        verdict.update.pending_requests =
            Some(seen.pending.iter().map(PendingRequest::bounded).collect());
        return Triage::Note(Box::new(verdict));
    }
    if awaiting_reply(seen.messages, seen.now) {
        // Our last prompt has no answer yet; OpenCode may not even report the
        // session busy so soon. Judging the old transcript now would verify (or
        // nudge) the same claim twice, so wait for the answer.
        if seen.trigger == Trigger::Event {
            return Triage::Skip;
        }
        let summary = "Prompt sent; waiting for the agent to answer";
        return note(task, TaskStatus::Running, summary, "awaiting reply", 0, seen.now);
    }
    let writing = words.is_busy(seen.messages) && recently_written(seen.messages, seen.now);
    if *seen.activity == SessionActivity::Busy || writing {
        let alive = match liveness::pulse(task, seen.messages, seen.now) {
            Pulse::Stalled { after_seconds } => return Triage::Stalled { after_seconds },
            Pulse::Alive(alive) => alive,
        };
        let mut verdict = noted(task, TaskStatus::Running, "Agent is busy", "busy", 0, seen.now);
        // Due again when the silence would reach `stall_timeout`, whatever the interval.
        due_by(&mut verdict, liveness::stall_deadline(task, &alive), seen.now);
        if alive != task.liveness {
            verdict.update.liveness = Some(alive);
        }
        return Triage::Note(Box::new(verdict));
    }
    if let SessionActivity::Retry { attempt, message } = seen.activity {
        let summary = format!("Provider is retrying (attempt {attempt}): {message}");
        return note(task, TaskStatus::Waiting, &summary, "retry", task.idle_checks, seen.now);
    }
    Triage::Judge
}

/// Judges an idle session's transcript with the checker's `result`. `None` means
/// nothing to record (woken by an event with nothing new to say).
pub(crate) fn judge(
    task: &Task,
    seen: &Observation<'_>,
    result: &CheckResult,
    words: &dyn Dialogue,
) -> Option<Verdict> {
    let spec = &task.spec;
    let now = seen.now;
    let mut completed = task.completed_steps.clone();
    let mut current_step = task.current_step;
    let step_count = spec.steps.len();
    let newly_reported = result.step_done > 0 && !completed.contains(&result.step_done);
    if result.step_done > 0 {
        current_step =
            current_step.max((result.step_done as usize).min(step_count.saturating_sub(1)));
    }
    let failed_verification = result.verification.as_ref().filter(|v| !v.passed());

    let mut update = TaskUpdate::default();
    let mut events = Vec::new();
    let mut evidence = None;
    let mut status;
    let mut summary;
    let mut nudge = None;

    if let Some(verification) = failed_verification {
        let rounds = task.verification_rounds + 1;
        let limit = spec.max_verification_rounds.unwrap_or(DEFAULT_MAX_VERIFICATION_ROUNDS);
        let failed: Vec<String> = verification.failures().map(|o| o.label.clone()).collect();
        let claim = match verification.scope {
            VerificationScope::Step(n) => format!("step {n}"),
            VerificationScope::Task => "task completion".to_owned(),
        };
        update.verification_rounds = Some(rounds);
        update.last_verification = Some(Some(verification.clone()));
        evidence = serde_json::to_value(verification).ok();
        if rounds >= limit {
            status = TaskStatus::Failed;
            let failure = Failure::VerificationExhausted { claim, rounds, limit, failed };
            summary = words.failure(&task.id, &failure);
            update.error = Some(Some(summary.clone()));
            events.push(EventPayload::Failed { error: summary.clone() });
        } else {
            status = TaskStatus::Running;
            summary = format!(
                "Checks for {claim} failed ({}); asked the agent to fix them (round {rounds} of {limit})",
                failed.join(", ")
            );
            let step = match verification.scope {
                VerificationScope::Step(n) => Some(n),
                VerificationScope::Task => None,
            };
            let failures: Vec<_> = verification.failures().cloned().collect();
            nudge = Some(words.verification_failed(spec, step, &failures));
        }
    } else if result.claims_completion(spec) {
        status = TaskStatus::Completed;
        summary = match &result.verification {
            Some(v) if v.passed() => "Completion verified: every check passed".to_owned(),
            _ if result.task_complete => "Agent reported TASK COMPLETE".to_owned(),
            _ => "All steps appear complete".to_owned(),
        };
        if let Some(verification) = &result.verification {
            update.last_verification = Some(Some(verification.clone()));
            evidence = serde_json::to_value(verification).ok();
        }
    } else {
        status = TaskStatus::Running;
        if let Some(verification) = &result.verification {
            update.last_verification = Some(Some(verification.clone()));
            evidence = serde_json::to_value(verification).ok();
        }
        if words.needs_continue_reply(seen.messages) {
            nudge = Some(words.auto_continue(spec, current_step));
            summary = format!("Auto-continued to step {}", current_step + 1);
        } else if newly_reported && (result.step_done as usize) < step_count {
            // `step_done` is one-based, so it is also the index of the next step.
            let next = result.step_done as usize;
            nudge = Some(words.next_step(spec, next));
            current_step = next;
            summary = format!("Nudged agent toward step {}", next + 1);
        } else if newly_reported {
            summary = format!("Step {} reported", result.step_done);
        } else if seen.trigger == Trigger::Scheduled {
            nudge = Some(words.periodic_check(spec, current_step, result, &completed));
            summary = "Periodic check — requested status confirmation".to_owned();
        } else if !task.pending_requests.is_empty() {
            // The request was answered (or dismissed) and the turn ended: record it,
            // so the task no longer shows a request that is gone.
            summary = "The request was answered; the agent's turn ended".to_owned();
        } else {
            // Woken by an idle event with nothing new to say: the schedule decides
            // when to ask "are you done?", so the agent is not prompted in a loop.
            return None;
        }
    }

    // An agent that only says it is working is not progressing either: count the
    // checks at which it reported no step, made no claim the checks verified, and
    // used no tool, and fail the task at the spec's limit instead of nudging forever.
    let worked = newly_reported
        || result.verification.is_some()
        || status == TaskStatus::Completed
        || liveness::used_tools_since(seen.messages, task.last_message_id.as_deref());
    let mut alive = liveness::refreshed(task, seen.messages, now);
    alive.checks_without_progress =
        if worked { 0 } else { task.liveness.checks_without_progress.saturating_add(1) };
    let limit = spec.unattended.max_checks_without_progress();
    if limit > 0 && alive.checks_without_progress >= limit && !status.is_terminal() {
        let failure = Failure::NoProgress { checks: alive.checks_without_progress };
        let error = words.failure(&task.id, &failure);
        status = TaskStatus::Failed;
        summary = error.clone();
        nudge = None;
        update.error = Some(Some(error.clone()));
        events.push(EventPayload::Failed { error });
    }
    update.liveness = Some(alive);

    if result.step_done > 0 && failed_verification.is_none() {
        // "STEP DONE: n" (verified, when there are checks) means steps 1..=n are done.
        // Clamped to the spec's steps: the number comes from the agent's text, and a
        // spec without steps has none to mark.
        let last = result.step_done.min(u32::try_from(step_count).unwrap_or(u32::MAX));
        for number in 1..=last {
            if !completed.contains(&number) {
                completed.push(number);
            }
        }
        completed.sort_unstable();
    }
    let progress = match (status, step_count) {
        (TaskStatus::Completed, _) => 1.0,
        (_, 0) => 0.0,
        (_, n) => (completed.len() as f64 / n as f64).min(1.0),
    };
    let next_check = (!status.is_terminal()).then(|| after(now, task.check_interval_seconds));
    update.status = Some(status);
    update.current_step = Some(current_step);
    update.completed_steps = Some(completed);
    update.idle_checks = Some(task.idle_checks + 1);
    update.progress = Some(progress);
    update.last_check_at = Some(Some(now));
    update.next_check_at = Some(next_check);
    update.pending_requests = answered(task);
    events.insert(
        0,
        EventPayload::Updated { status, current_step, progress, summary: summary.clone() },
    );
    if status == TaskStatus::Completed {
        events.push(EventPayload::Completed { summary: summary.clone(), progress });
    }
    let trigger = seen.trigger;
    let mut log =
        CheckLogEntry::new(now, status, summary, format!("session idle; trigger {trigger:?}"));
    log.evidence = evidence;
    Some(Verdict { update, log, events, nudge, judged: true })
}

/// Makes a noted verdict due again by `deadline` at the latest (never sooner than a
/// second from `now`), whatever the check interval says.
fn due_by(verdict: &mut Verdict, deadline: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    if let (Some(deadline), Some(Some(next))) = (deadline, verdict.update.next_check_at) {
        verdict.update.next_check_at = Some(Some(next.min(deadline.max(after(now, 1)))));
    }
}

/// A check that only records status (busy or waiting), without asking the checker.
fn note(
    task: &Task,
    status: TaskStatus,
    summary: &str,
    detail: &str,
    idle_checks: u32,
    now: DateTime<Utc>,
) -> Triage {
    Triage::Note(Box::new(noted(task, status, summary, detail, idle_checks, now)))
}

/// The verdict of [`note`].
fn noted(
    task: &Task,
    status: TaskStatus,
    summary: &str,
    detail: &str,
    idle_checks: u32,
    now: DateTime<Utc>,
) -> Verdict {
    let update = TaskUpdate {
        status: Some(status),
        idle_checks: Some(idle_checks),
        last_check_at: Some(Some(now)),
        // At least a short pause: a waiting task is due whatever its interval, and
        // one with interval 0 must not be re-checked every tick while it waits.
        next_check_at: Some(Some(after(now, task.check_interval_seconds.max(MIN_RECHECK_SECONDS)))),
        pending_requests: answered(task),
        ..TaskUpdate::default()
    };
    Verdict {
        update,
        log: CheckLogEntry::new(now, status, summary, detail),
        events: vec![EventPayload::Updated {
            status,
            current_step: task.current_step,
            progress: task.progress,
            summary: summary.to_owned(),
        }],
        nudge: None,
        judged: false,
    }
}

/// Clears the task's pending requests when it had some: the session no longer
/// waits on them (answered here, in OpenCode, or timed out there).
fn answered(task: &Task) -> Option<Vec<PendingRequest>> {
    (!task.pending_requests.is_empty()).then(Vec::new)
}

/// True when the newest message began within [`REPLY_GRACE`]. An unfinished reply
/// means "still being written" only while it is that fresh and the server does not
/// say busy: an OpenCode stopped mid-turn leaves the reply unfinished for ever, and
/// the session idle after its restart must be judged, not called busy for ever.
fn recently_written(messages: &[AgentMessage], now: DateTime<Utc>) -> bool {
    messages.last().is_some_and(|last| last.created_at.is_none_or(|at| now - at < REPLY_GRACE))
}

/// True when the newest message is a recent user prompt with no answer after it.
fn awaiting_reply(messages: &[AgentMessage], now: DateTime<Utc>) -> bool {
    messages.last().is_some_and(|last| {
        last.role == Role::User && last.created_at.is_some_and(|at| now - at < REPLY_GRACE)
    })
}

#[cfg(test)]
mod tests;
