//! The task's policy at work: the session's ruleset, requests the policy answers,
//! and the fallback after `human_timeout` — each audited in the check log.

use super::*;
use crate::answer::Answer;
use crate::policy::{Action, PermissionRule, QuestionPolicy};
use crate::request::{PendingRequest, RequestKind};

fn bash(id: &str, session: &str, command: &str) -> PendingRequest {
    PendingRequest {
        id: id.into(),
        session_id: session.into(),
        kind: RequestKind::Permission { permission: "bash".into(), patterns: vec![command.into()] },
        asked_at: None,
    }
}

fn guarded(workspace: &str) -> TaskSpec {
    let mut spec = three_steps(workspace);
    spec.unattended.permissions = Some(vec![
        PermissionRule::new("bash", "*", Action::Ask),
        PermissionRule::new("bash", "cargo *", Action::Allow),
        PermissionRule::new("bash", "git push *", Action::Deny),
    ]);
    spec.unattended.questions = Some(QuestionPolicy::Deny);
    spec
}

async fn audit(f: &Fixture, id: &TaskId) -> Vec<String> {
    let log = f.store.check_log(id, &LogQuery::default()).await.expect("log");
    log.into_iter().map(|e| e.entry.summary).filter(|s| s.starts_with("Answered")).collect()
}

#[tokio::test]
async fn the_session_is_created_with_the_tasks_rules_and_without_questions() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(guarded(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    let rules: Vec<String> =
        f.agent.session_rules(&session).iter().map(ToString::to_string).collect();
    assert_eq!(
        rules,
        [
            r#"bash "*": ask"#,
            r#"bash "cargo *": allow"#,
            r#"bash "git push *": deny"#,
            r#"question "*": deny"#
        ]
    );

    let plain = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&plain).await.active_session_id.expect("session");
    assert!(f.agent.session_rules(&session).is_empty(), "no policy: OpenCode's config decides");
}

#[tokio::test]
async fn requests_the_policy_decides_are_answered_and_audited_the_rest_wait() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(guarded(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.agent.set_pending(vec![
        bash("per_1", &session, "cargo test"),
        bash("per_2", &session, "git push origin main"),
        bash("per_3", &session, "echo hello > hello.txt"),
    ]);
    f.check_due(&id).await;

    let answers = f.agent.answers();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0], ("per_1".to_owned(), Answer::Allow { always: false }));
    assert!(
        matches!(&answers[1], (id, Answer::Deny { message: Some(m) }) if id == "per_2" && m.contains("Carry on"))
    );
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting, "the one left to a person");
    assert_eq!(
        task.last_summary.as_deref(),
        Some(r#"Waiting for a person — permission: bash "echo hello > hello.txt""#)
    );
    assert_eq!(
        audit(&f, &id).await,
        [
            r#"Answered permission: bash "cargo test": allowed once, by the task's policy (bash "cargo *": allow)"#,
            r#"Answered permission: bash "git push origin main": denied: "This task's policy does not allow that (bash \"git push *\": deny). Carry on without it: find another way within the rules, or say what you need in your reply.", by the task's policy (bash "git push *": deny)"#,
        ]
    );
}

#[tokio::test]
async fn a_request_nobody_answers_gets_the_fallback_after_human_timeout() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.human_timeout_seconds = Some(600);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.agent.set_pending(vec![bash("per_1", &session, "echo hi")]);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(f.agent.answers().is_empty(), "a person has 10 minutes");
    let asked = task.pending_requests[0].asked_at.expect("first seen");
    let due = task.next_check_at.expect("due again");
    assert!(due <= asked + chrono::Duration::seconds(600), "due by the deadline: {due} vs {asked}");

    // Ten minutes later, as the store remembers the request.
    let mut aged = task.pending_requests.clone();
    aged[0].asked_at = Some(asked - chrono::Duration::seconds(600));
    let update = TaskUpdate { pending_requests: Some(aged), ..TaskUpdate::default() };
    f.store.update_task(&id, &update, None).await.expect("age it");
    f.check_due(&id).await;
    let answers = f.agent.answers();
    assert!(
        matches!(&answers[..], [(id, Answer::Deny { message: Some(_) })] if id == "per_1"),
        "{answers:?}"
    );
    let audit = audit(&f, &id).await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].contains("by the fallback after 6"), "{audit:?}");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running, "the task carries on");
}

/// Makes the stored liveness `seconds` older, as if the session had been silent.
async fn age_silence(f: &Fixture, id: &TaskId, seconds: i64) {
    let mut liveness = f.task(id).await.liveness;
    liveness.progress_at = liveness.progress_at.map(|at| at - chrono::Duration::seconds(seconds));
    let update = TaskUpdate { liveness: Some(liveness), ..TaskUpdate::default() };
    f.store.update_task(id, &update, None).await.expect("age the silence");
}

async fn summaries(f: &Fixture, id: &TaskId) -> Vec<String> {
    let log = f.store.check_log(id, &LogQuery::default()).await.expect("log");
    log.into_iter().map(|e| e.entry.summary).collect()
}

#[tokio::test]
async fn a_silent_session_is_aborted_and_reprompted_then_replaced_then_the_task_fails() {
    // Every turn starts an empty reply and never writes more: a provider that hangs.
    let f = fixture(MemoryAgent::new(|_, _| Some(String::new())));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.stall_timeout_seconds = Some(600);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let first = f.task(&id).await.active_session_id.expect("session");
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        if f.task(&id).await.active_session_id.is_none() {
            f.harness.tick().await.expect("a fresh session starts");
        }
        let session = f.task(&id).await.active_session_id.expect("session");
        f.agent.set_activity(&session, SessionActivity::Busy);
        f.check_due(&id).await;
        assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Agent is busy"));
        age_silence(&f, &id, 601).await;
        f.check_due(&id).await;
        let task = f.task(&id).await;
        outcomes.push(task.last_summary.clone().unwrap_or_default());
        if task.status == TaskStatus::Failed {
            break;
        }
    }
    for (n, outcome) in outcomes.iter().enumerate() {
        assert!(outcome.contains("601 s without output"), "stall {n}: {outcome}");
    }
    assert!(outcomes[0].ends_with("asked the agent to continue (recovery 1 of 2)"), "{outcomes:?}");
    assert!(outcomes[1].ends_with("(recovery 2 of 2)"), "{outcomes:?}");
    assert!(outcomes[2].ends_with("a fresh session starts"), "{outcomes:?}");
    assert!(outcomes[3].ends_with("(recovery 1 of 2)"), "{outcomes:?}");
    assert!(outcomes[5].contains("stalled 6 times"), "{outcomes:?}");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert_eq!(task.session_ids.len(), 2, "one fresh session was tried");
    assert_eq!(task.session_ids[0], first);
    assert_eq!(f.agent.aborts().len(), 6, "every stalled turn was aborted");
    let continuations = f.prompts().iter().filter(|p| p.contains("was stopped")).count();
    assert_eq!(continuations, 4, "a continuation after each recovery");
}

#[tokio::test]
async fn a_session_that_keeps_writing_or_waits_for_a_person_is_not_stalled() {
    let f = fixture(MemoryAgent::replying(&[]));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.stall_timeout_seconds = Some(600);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    age_silence(&f, &id, 601).await;
    f.agent.push_reply(&session, "more output");
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Agent is busy"), "new output");

    age_silence(&f, &id, 601).await;
    f.agent.set_pending(vec![bash("per_1", &session, "echo hi")]);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting, "waiting for a person, not stalled");
    assert!(f.agent.aborts().is_empty());
    assert!(!summaries(&f, &id).await.iter().any(|s| s.contains("Stalled")));
}

#[tokio::test]
async fn an_agent_that_only_says_it_is_working_fails_after_the_limit() {
    let replies = ["still working"; 10];
    let f = fixture(MemoryAgent::replying(&replies));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.max_checks_without_progress = Some(3);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    for _ in 0..3 {
        f.check_due(&id).await;
    }
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed, "{:?}", summaries(&f, &id).await);
    let error = task.error.expect("error");
    assert!(error.starts_with("no progress in 3 checks"), "{error}");
    assert_eq!(task.liveness.checks_without_progress, 3);
}

#[tokio::test]
async fn a_reported_step_resets_the_count_of_checks_without_progress() {
    let f = fixture(MemoryAgent::replying(&["still working", "STEP DONE: 1", "still working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.unattended.max_checks_without_progress = Some(2);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.liveness.checks_without_progress, 1);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.liveness.checks_without_progress, 0, "{:?}", summaries(&f, &id).await);
    assert_ne!(task.status, TaskStatus::Failed);
}

#[tokio::test]
async fn a_request_asked_while_the_event_stream_was_down_is_seen_when_it_reconnects() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    let session = super::concurrency::wait_for(|| async {
        f.store.get_task(&id).await.ok().flatten().and_then(|t| t.active_session_id)
    })
    .await;
    // Asked while the stream was down: no `permission.asked` event ever arrives, and
    // the task is not due for 300 s.
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.agent.set_pending(vec![bash("per_1", &session, "echo hi")]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_ne!(f.task(&id).await.status, TaskStatus::Waiting, "nothing told the harness yet");
    f.agent.announce(AgentEvent::Reconnected);
    let waiting = super::concurrency::wait_for(|| async {
        let task = f.store.get_task(&id).await.ok().flatten()?;
        (task.status == TaskStatus::Waiting).then_some(task)
    })
    .await;
    assert_eq!(waiting.pending_requests[0].id, "per_1");
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
}
