//! The decision table of a check, row by row: the pure judgement, no agent, no store.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::agent::MessagePart;
use crate::check::{CheckOutcome, Verification};
use crate::event::EventKind;
use crate::harness::tests::Words;
use crate::spec::{Step, TaskSpec};
use crate::task::TaskId;

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn message(role: Role, text: &str, at: DateTime<Utc>, finished: bool) -> AgentMessage {
    AgentMessage {
        id: format!("msg_{text}"),
        role,
        created_at: Some(at),
        completed_at: finished.then_some(at),
        error: None,
        parts: vec![MessagePart::Text { text: text.to_owned() }],
        tokens: None,
        cost: None,
        model: None,
    }
}

/// A running three-step task at step 1, checked every 60 s.
fn task() -> Task {
    let mut spec = TaskSpec::new("three", "/w", "do three things");
    spec.steps = vec![Step::new("one"), Step::new("two"), Step::new("three")];
    spec.check_interval_seconds = 60;
    let mut task = Task::new(TaskId::from("task_judge"), spec, now());
    task.status = TaskStatus::Running;
    task.check_interval_seconds = 60;
    task.idle_checks = 3;
    task
}

/// The agent answered our prompt a minute ago with `reply`.
fn answered(reply: &str) -> Vec<AgentMessage> {
    let at = now() - Duration::seconds(60);
    vec![message(Role::User, "prompt", at, true), message(Role::Assistant, reply, at, true)]
}

fn seen<'a>(
    messages: &'a [AgentMessage],
    activity: &'a SessionActivity,
    trigger: Trigger,
) -> Observation<'a> {
    Observation { messages, activity, pending: &[], trigger, now: now() }
}

fn result(step_done: u32, task_complete: bool) -> CheckResult {
    CheckResult { step_done, task_complete, ..CheckResult::default() }
}

fn failed_check(scope: VerificationScope) -> Verification {
    let outcome = CheckOutcome {
        label: "run: cargo test".into(),
        passed: false,
        exit_status: Some(101),
        duration_ms: 5,
        output_tail: "1 failed".into(),
        timed_out: false,
        error: None,
    };
    Verification { scope, outcomes: vec![outcome] }
}

fn note_of(triage: Triage) -> Verdict {
    match triage {
        Triage::Note(verdict) => *verdict,
        other => panic!("expected a note, got {other:?}"),
    }
}

fn kinds(verdict: &Verdict) -> Vec<EventKind> {
    let id = TaskId::from("task_judge");
    verdict
        .events
        .iter()
        .map(|p| crate::event::Event::new(id.clone(), 0, p.clone()).kind())
        .collect()
}

#[test]
fn a_prompt_just_sent_is_noted_on_schedule_and_skipped_on_an_event() {
    let task = task();
    let messages = vec![message(Role::User, "prompt", now() - Duration::seconds(5), true)];
    let idle = SessionActivity::Idle;
    let verdict = note_of(triage(&task, &seen(&messages, &idle, Trigger::Scheduled), &Words));
    assert_eq!(verdict.log.summary, "Prompt sent; waiting for the agent to answer");
    assert_eq!(verdict.update.status, Some(TaskStatus::Running));
    assert_eq!(verdict.update.idle_checks, Some(0));
    assert!(!verdict.judged && verdict.nudge.is_none());
    assert_eq!(triage(&task, &seen(&messages, &idle, Trigger::Event), &Words), Triage::Skip);
}

#[test]
fn a_prompt_unanswered_for_long_is_judged_as_it_is() {
    let task = task();
    let messages = vec![message(Role::User, "prompt", now() - Duration::minutes(10), true)];
    let idle = SessionActivity::Idle;
    assert_eq!(triage(&task, &seen(&messages, &idle, Trigger::Scheduled), &Words), Triage::Judge);
}

#[test]
fn a_busy_session_or_an_unfinished_reply_is_noted_busy_and_rechecked_later() {
    let task = task();
    let finished = answered("working on it");
    let busy = SessionActivity::Busy;
    let verdict = note_of(triage(&task, &seen(&finished, &busy, Trigger::Scheduled), &Words));
    assert_eq!(
        (verdict.log.summary.as_str(), verdict.log.detail.as_str()),
        ("Agent is busy", "busy")
    );
    let at = now() - Duration::seconds(60);
    let unfinished = vec![message(Role::Assistant, "writing", at, false)];
    let idle = SessionActivity::Idle;
    let verdict = note_of(triage(&task, &seen(&unfinished, &idle, Trigger::Event), &Words));
    assert_eq!(verdict.log.summary, "Agent is busy");
    // Rechecked after the interval, never sooner than the minimum.
    let next = verdict.update.next_check_at.flatten().expect("next check");
    assert!(next - now() > Duration::seconds(50), "{next}");
}

#[test]
fn a_retrying_provider_makes_the_task_wait_keeping_its_idle_count() {
    let task = task();
    let messages = answered("hm");
    let retry = SessionActivity::Retry { attempt: 2, message: "rate limited".into() };
    let verdict = note_of(triage(&task, &seen(&messages, &retry, Trigger::Scheduled), &Words));
    assert_eq!(verdict.update.status, Some(TaskStatus::Waiting));
    assert_eq!(verdict.log.summary, "Provider is retrying (attempt 2): rate limited");
    assert_eq!(verdict.update.idle_checks, Some(3));
}

#[test]
fn an_idle_session_with_an_answer_goes_to_the_checker() {
    let messages = answered("STEP DONE: 1");
    let idle = SessionActivity::Idle;
    assert_eq!(triage(&task(), &seen(&messages, &idle, Trigger::Event), &Words), Triage::Judge);
}

#[test]
fn a_newly_reported_step_nudges_toward_the_next() {
    let messages = answered("STEP DONE: 1");
    let idle = SessionActivity::Idle;
    let verdict =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result(1, false), &Words)
            .expect("verdict");
    assert_eq!(verdict.nudge.as_deref(), Some("NEXT step 2"));
    assert_eq!(verdict.log.summary, "Nudged agent toward step 2");
    assert_eq!(verdict.update.current_step, Some(1));
    assert_eq!(verdict.update.completed_steps, Some(vec![1]));
    assert_eq!(verdict.update.idle_checks, Some(4));
    let progress = verdict.update.progress.expect("progress");
    assert!((progress - 1.0 / 3.0).abs() < 1e-9, "{progress}");
    assert!(verdict.judged);
    assert_eq!(kinds(&verdict), [EventKind::Updated]);
}

#[test]
fn a_later_step_reported_first_marks_every_step_up_to_it() {
    let messages = answered("STEP DONE: 2");
    let idle = SessionActivity::Idle;
    let verdict =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result(2, false), &Words)
            .expect("verdict");
    assert_eq!(verdict.update.completed_steps, Some(vec![1, 2]));
    assert_eq!(verdict.nudge.as_deref(), Some("NEXT step 3"));
}

#[test]
fn a_step_reported_again_with_nothing_new_asks_only_on_schedule() {
    let mut task = task();
    task.completed_steps = vec![1];
    task.current_step = 1;
    let messages = answered("STEP DONE: 1");
    let idle = SessionActivity::Idle;
    let on_event = judge(&task, &seen(&messages, &idle, Trigger::Event), &result(1, false), &Words);
    assert_eq!(on_event, None, "an idle event with nothing new prompts nobody");
    let scheduled =
        judge(&task, &seen(&messages, &idle, Trigger::Scheduled), &result(1, false), &Words)
            .expect("verdict");
    assert_eq!(scheduled.nudge.as_deref(), Some("PERIODIC step 2"));
    assert_eq!(scheduled.log.summary, "Periodic check — requested status confirmation");
}

#[test]
fn an_agent_asking_to_proceed_gets_a_go_ahead_before_anything_else() {
    let messages = answered("STEP DONE: 1. Should I proceed?");
    let idle = SessionActivity::Idle;
    let verdict =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result(1, false), &Words)
            .expect("verdict");
    assert_eq!(verdict.nudge.as_deref(), Some("CONTINUE step 2"));
    assert_eq!(verdict.log.summary, "Auto-continued to step 2");
}

#[test]
fn the_last_step_or_task_complete_completes_the_task() {
    let idle = SessionActivity::Idle;
    let messages = answered("STEP DONE: 3");
    let all_steps =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result(3, false), &Words)
            .expect("verdict");
    assert_eq!(all_steps.update.status, Some(TaskStatus::Completed));
    assert_eq!(all_steps.log.summary, "All steps appear complete");
    assert_eq!(all_steps.update.next_check_at, Some(None));
    assert_eq!(all_steps.update.progress, Some(1.0));
    assert_eq!(kinds(&all_steps), [EventKind::Updated, EventKind::Completed]);
    assert!(all_steps.nudge.is_none());
    let messages = answered("TASK COMPLETE");
    let claimed = judge(&task(), &seen(&messages, &idle, Trigger::Event), &result(0, true), &Words)
        .expect("verdict");
    assert_eq!(claimed.log.summary, "Agent reported TASK COMPLETE");
}

#[test]
fn a_verified_completion_keeps_its_evidence() {
    let messages = answered("TASK COMPLETE");
    let idle = SessionActivity::Idle;
    let mut passed = failed_check(VerificationScope::Task);
    passed.outcomes[0].passed = true;
    let result = CheckResult { verification: Some(passed.clone()), ..result(0, true) };
    let verdict =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result, &Words).expect("verdict");
    assert_eq!(verdict.log.summary, "Completion verified: every check passed");
    assert_eq!(verdict.update.last_verification, Some(Some(passed)));
    assert!(verdict.log.evidence.is_some());
}

#[test]
fn a_failed_verification_asks_for_a_fix_and_counts_the_round() {
    let messages = answered("STEP DONE: 1");
    let idle = SessionActivity::Idle;
    let failing = failed_check(VerificationScope::Step(1));
    let result = CheckResult { verification: Some(failing), ..result(0, false) };
    let verdict =
        judge(&task(), &seen(&messages, &idle, Trigger::Event), &result, &Words).expect("verdict");
    assert_eq!(verdict.update.status, Some(TaskStatus::Running));
    assert_eq!(verdict.update.verification_rounds, Some(1));
    assert_eq!(verdict.nudge.as_deref(), Some("FIX run: cargo test"));
    assert!(verdict.log.summary.contains("round 1 of 5"), "{}", verdict.log.summary);
    assert_eq!(verdict.update.completed_steps, Some(vec![]), "an unproven step is not done");
    assert!(verdict.log.evidence.is_some());
}

#[test]
fn the_last_allowed_failed_verification_fails_the_task_in_the_dialogues_words() {
    let mut task = task();
    task.spec.max_verification_rounds = Some(2);
    task.verification_rounds = 1;
    let messages = answered("TASK COMPLETE");
    let idle = SessionActivity::Idle;
    let result = CheckResult {
        verification: Some(failed_check(VerificationScope::Task)),
        ..result(0, false)
    };
    let verdict =
        judge(&task, &seen(&messages, &idle, Trigger::Event), &result, &Words).expect("verdict");
    assert_eq!(verdict.update.status, Some(TaskStatus::Failed));
    let error = verdict.update.error.clone().flatten().expect("error");
    assert!(error.contains("task completion failed 2 times (limit 2): run: cargo test"), "{error}");
    assert!(!error.contains("openloom"), "the core names no command: {error}");
    assert_eq!(verdict.update.next_check_at, Some(None));
    assert!(verdict.nudge.is_none());
    assert_eq!(kinds(&verdict), [EventKind::Updated, EventKind::Failed]);
}

#[test]
fn a_huge_step_number_is_clamped_to_the_spec() {
    let messages = answered("STEP DONE: 4000000000");
    let idle = SessionActivity::Idle;
    let mut goal_only = task();
    goal_only.spec.steps.clear();
    let verdict = judge(
        &goal_only,
        &seen(&messages, &idle, Trigger::Event),
        &result(4_000_000_000, false),
        &Words,
    )
    .expect("verdict");
    assert_eq!(verdict.update.completed_steps, Some(vec![]));
    assert_eq!(verdict.update.current_step, Some(0));
}

#[test]
fn a_pending_request_makes_the_task_wait_for_a_person_before_anything_else() {
    use crate::request::{PendingRequest, RequestKind};
    let request = PendingRequest {
        id: "per_1".into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Permission {
            permission: "bash".into(),
            patterns: vec!["echo hello > hello.txt".into()],
        },
        asked_at: None,
    };
    let pending = [request.clone(), PendingRequest { id: "per_2".into(), ..request.clone() }];
    let messages = answered("running a command");
    let busy = SessionActivity::Busy;
    let seen = Observation { pending: &pending, ..seen(&messages, &busy, Trigger::Event) };
    let verdict = note_of(triage(&task(), &seen, &Words));
    assert_eq!(verdict.update.status, Some(TaskStatus::Waiting));
    assert_eq!(
        verdict.log.summary,
        r#"Waiting for a person — permission: bash "echo hello > hello.txt" (+1 more)"#
    );
    assert_eq!(verdict.log.detail, "pending per_1, per_2");
    assert_eq!(verdict.update.pending_requests, Some(pending.to_vec()));
    assert!(verdict.nudge.is_none());
}

#[test]
fn an_answered_request_is_cleared_by_the_next_verdict() {
    use crate::request::{PendingRequest, RequestKind};
    let mut task = task();
    task.completed_steps = vec![1];
    task.pending_requests = vec![PendingRequest {
        id: "per_1".into(),
        session_id: "ses_1".into(),
        kind: RequestKind::Permission { permission: "bash".into(), patterns: vec![] },
        asked_at: None,
    }];
    let messages = answered("STEP DONE: 1");
    let idle = SessionActivity::Idle;
    let verdict = judge(&task, &seen(&messages, &idle, Trigger::Event), &result(1, false), &Words)
        .expect("an answered request is recorded, not skipped");
    assert_eq!(verdict.update.pending_requests, Some(vec![]));
    assert!(verdict.nudge.is_none());
    let busy = SessionActivity::Busy;
    let note = note_of(triage(&task, &seen(&messages, &busy, Trigger::Event), &Words));
    assert_eq!(note.update.pending_requests, Some(vec![]));
}

#[test]
fn a_reply_left_unfinished_by_a_stopped_server_is_judged_once_it_is_old() {
    // OpenCode stopped mid-turn: after its restart the session is idle, and the
    // reply it was writing stays unfinished for ever.
    let task = task();
    let idle = SessionActivity::Idle;
    let stale = vec![message(Role::Assistant, "half a repl", now() - Duration::minutes(10), false)];
    assert_eq!(triage(&task, &seen(&stale, &idle, Trigger::Scheduled), &Words), Triage::Judge);
    // Still being written a moment ago: busy, whatever the status says.
    let fresh = vec![message(Role::Assistant, "half a repl", now() - Duration::seconds(5), false)];
    let verdict = note_of(triage(&task, &seen(&fresh, &idle, Trigger::Scheduled), &Words));
    assert_eq!(verdict.log.summary, "Agent is busy");
}
