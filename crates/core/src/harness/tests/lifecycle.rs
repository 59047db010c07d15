//! A task's life through the harness: start, steps, nudges, verification, user actions.

use super::*;

#[tokio::test]
async fn a_task_is_started_with_a_session_and_the_bootstrap_prompt() {
    let mut f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    assert_eq!(f.harness.tick().await.expect("tick"), 1);

    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.session_ids.len(), 1);
    assert_eq!(task.active_session_id.as_deref(), Some(task.session_ids[0].as_str()));
    assert_eq!(f.prompts(), vec!["BOOTSTRAP three step 1"]);
    assert!(task.next_check_at.expect("scheduled") > Utc::now());

    let events = f.drain_events();
    let kinds: Vec<_> = events.iter().map(Event::kind).collect();
    assert_eq!(kinds, vec![EventKind::Created, EventKind::Started]);
    assert!(events[0].store_version < events[1].store_version, "events carry increasing versions");
    let log = f.store.check_log(&id, &LogQuery::default()).await.expect("log");
    assert_eq!(
        log.last().expect("entry").entry.summary,
        "Harness started and bootstrap prompt sent"
    );
}

use crate::event::EventKind;

#[tokio::test]
async fn steps_reported_one_by_one_are_nudged_and_then_complete() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1", "STEP DONE: 2", "STEP DONE: 3"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.completed_steps, vec![1]);
    assert_eq!(task.current_step, 1);
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
    assert!((task.progress - 1.0 / 3.0).abs() < 1e-9);

    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.progress, 1.0);
    assert_eq!(task.next_check_at, None);
    assert_eq!(task.last_summary.as_deref(), Some("All steps appear complete"));
}

#[tokio::test]
async fn a_later_step_reported_first_counts_the_earlier_ones_done() {
    let f = fixture(MemoryAgent::replying(&["Did the first two.\nSTEP DONE: 2"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.completed_steps, vec![1, 2]);
    assert!((task.progress - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");
}

#[tokio::test]
async fn an_agent_asking_to_proceed_gets_a_go_ahead() {
    let f = fixture(MemoryAgent::replying(&["Plan ready. Should I proceed?"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "CONTINUE step 1");
    assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Auto-continued to step 1"));
}

#[tokio::test]
async fn an_idle_agent_with_nothing_new_gets_the_periodic_prompt_only_when_scheduled() {
    let f = fixture(MemoryAgent::replying(&["thinking about it"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    // An idle event with nothing new must not prompt the agent in a loop.
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.prompts().len(), 1);

    f.check_due(&id).await;
    assert_eq!(f.prompts().last().expect("prompt"), "PERIODIC step 1");
    assert_eq!(f.task(&id).await.idle_checks, 1);
}

#[tokio::test]
async fn an_idle_event_reacts_to_a_reported_step_at_once() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
    // The same idle period announced twice changes nothing.
    let before = f.task(&id).await;
    f.harness.check_now(&id, Trigger::Event).await.expect("duplicate");
    assert_eq!(f.task(&id).await, before);
    assert_eq!(f.prompts().len(), 2);
}

#[tokio::test]
async fn a_busy_session_is_left_alone() {
    let f = fixture(MemoryAgent::replying(&["on it"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.last_summary.as_deref(), Some("Agent is busy"));
    assert_eq!(task.idle_checks, 0);
    assert_eq!(f.prompts().len(), 1, "no nudge while busy");

    f.agent.set_activity(
        &session,
        SessionActivity::Retry { attempt: 2, message: "rate limited".into() },
    );
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(task.last_summary.expect("summary").contains("rate limited"));
}

#[tokio::test]
async fn a_prompt_not_yet_answered_is_not_judged_again() {
    // The agent has not answered the bootstrap yet (and OpenCode may not say busy).
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let before = f.task(&id).await;
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.task(&id).await, before, "an event check records nothing");

    f.check_due(&id).await;
    assert_eq!(
        f.task(&id).await.last_summary.as_deref(),
        Some("Prompt sent; waiting for the agent to answer")
    );
    assert_eq!(f.prompts().len(), 1, "no periodic prompt on top of an unanswered one");
}

#[tokio::test]
async fn a_one_shot_task_is_prompted_once_and_never_checked() {
    let f = fixture(MemoryAgent::replying(&["ok"]));
    let mut spec = TaskSpec::new("quick", f.workspace.path(), "fix the typo");
    spec.check_interval_seconds = 0;
    spec.initial_prompt = Some("fix the typo in README".into());
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.next_check_at, None);
    assert_eq!(f.prompts(), vec!["fix the typo in README"]);
    assert_eq!(f.harness.tick().await.expect("tick"), 0, "never due again");
}

#[tokio::test]
async fn failed_verification_feeds_back_and_then_completes() {
    let checker = Arc::new(Verifying { fails: 1.into() });
    let f =
        fixture_with(MemoryAgent::replying(&["TASK COMPLETE", "fixed. TASK COMPLETE"]), checker);
    let mut spec = TaskSpec::new("verified", f.workspace.path(), "make done.txt");
    spec.checks = vec![crate::spec::CheckDefinition::FileExists { path: "done.txt".into() }];
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running, "claim not trusted");
    assert_eq!(task.verification_rounds, 1);
    assert_eq!(f.prompts().last().expect("prompt"), "FIX file_exists: done.txt");
    let log = f.store.check_log(&id, &LogQuery::default()).await.expect("log");
    assert!(log.last().expect("entry").entry.evidence.is_some(), "evidence recorded");

    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Completed);
    assert_eq!(task.last_summary.as_deref(), Some("Completion verified: every check passed"));
}

#[tokio::test]
async fn verification_rounds_are_bounded() {
    let checker = Arc::new(Verifying { fails: 100.into() });
    let f = fixture_with(MemoryAgent::new(|_, _| Some("TASK COMPLETE".into())), checker);
    let mut spec = TaskSpec::new("never", f.workspace.path(), "g");
    spec.checks = vec![crate::spec::CheckDefinition::FileExists { path: "done.txt".into() }];
    spec.max_verification_rounds = Some(2);
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.expect("error").contains("failed 2 times"));
    assert!(task.last_verification.is_some());
}

#[tokio::test]
async fn user_operations_follow_the_lifecycle() {
    let mut f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.harness.pause(&id).await.expect("pause");
    assert_eq!(f.task(&id).await.status, TaskStatus::Paused);
    assert_eq!(f.harness.tick().await.expect("tick"), 0, "paused tasks are not checked");
    assert!(f.harness.pause(&id).await.is_err(), "cannot pause twice");

    f.harness.resume(&id).await.expect("resume");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);

    let err = f.harness.delete(&id).await.expect_err("must archive first");
    assert!(err.to_string().contains("archive it before deleting"));

    f.harness.complete(&id).await.expect("complete");
    assert_eq!(f.task(&id).await.status, TaskStatus::Completed);
    f.harness.archive(&id).await.expect("archive");
    f.drain_events();
    f.harness.delete(&id).await.expect("delete");
    assert!(f.store.get_task(&id).await.expect("store").is_none());
    assert_eq!(f.drain_events().last().map(Event::kind), Some(EventKind::Deleted));
}

#[tokio::test]
async fn a_huge_step_number_in_a_spec_without_steps_is_harmless() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 4000000000"]));
    let id =
        f.harness.add_task(TaskSpec::new("goal only", f.workspace.path(), "g")).await.expect("add");
    f.harness.tick().await.expect("start");
    tokio::time::timeout(Duration::from_secs(5), f.check_due(&id)).await.expect("quick");
    assert!(f.task(&id).await.completed_steps.is_empty());
}

#[tokio::test]
async fn a_failed_task_resumes_in_a_new_session_keeping_its_steps() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let first = f.task(&id).await.active_session_id.expect("session");
    f.agent.delete_session(&first);
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Failed);

    f.harness.resume(&id).await.expect("resume");
    let resumed = f.task(&id).await;
    assert_eq!(resumed.status, TaskStatus::Pending);
    assert_eq!(resumed.active_session_id, None);
    f.harness.tick().await.expect("restart");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.session_ids.len(), 2, "a new session, the old one kept in the history");
    assert_eq!(task.completed_steps, vec![1]);
    assert_eq!(
        f.prompts().last().expect("prompt"),
        "BOOTSTRAP three step 2",
        "focused on the next step"
    );
}

#[tokio::test]
async fn a_question_makes_the_task_wait_naming_it_until_it_is_answered() {
    use crate::request::{PendingRequest, Question, RequestKind};
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    let asked = PendingRequest {
        id: "que_1".into(),
        session_id: session.clone(),
        kind: RequestKind::Question {
            questions: vec![Question {
                question: "Which file name should I use?".into(),
                options: vec!["a.txt".into(), "b.txt".into()],
            }],
        },
        asked_at: None,
    };
    let elsewhere =
        PendingRequest { id: "que_2".into(), session_id: "ses_other".into(), ..asked.clone() };
    f.agent.set_pending(vec![elsewhere, asked.clone()]);
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert_eq!(
        task.last_summary.as_deref(),
        Some(r#"Waiting for a person — question: "Which file name should I use?""#)
    );
    let stored: Vec<&str> = task.pending_requests.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(stored, ["que_1"], "only this session's request");
    let first_seen = task.pending_requests[0].asked_at.expect("stamped when first seen");
    f.check_due(&id).await;
    let again = f.task(&id).await.pending_requests;
    assert_eq!(again[0].asked_at, Some(first_seen), "a request keeps its first-seen time");
    assert_eq!(f.prompts().len(), 1, "nobody is nudged while a person is asked");

    // Answered in OpenCode: the agent goes on working, and the request is gone.
    f.agent.set_pending(Vec::new());
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(
        (task.status, task.last_summary.as_deref()),
        (TaskStatus::Running, Some("Agent is busy"))
    );
    assert!(task.pending_requests.is_empty());
}
