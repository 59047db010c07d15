//! Errors of a check: transient ones wait and recover, permanent ones fail with advice.

use super::*;

#[tokio::test]
async fn transient_errors_wait_with_backoff_and_recover() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");

    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.check_due(&id).await;
    let first = f.task(&id).await;
    assert_eq!(first.status, TaskStatus::Waiting);
    assert_eq!(first.consecutive_errors, 1);
    assert!(first.error.as_deref().expect("error").contains("connection refused"));
    let first_wait = first.next_check_at.expect("retry") - first.last_check_at.expect("checked");

    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
    f.check_due(&id).await;
    let second = f.task(&id).await;
    assert_eq!(second.consecutive_errors, 2);
    let second_wait = second.next_check_at.expect("retry") - second.last_check_at.expect("checked");
    assert!(second_wait > first_wait, "backoff grows: {first_wait} then {second_wait}");

    f.check_due(&id).await;
    let recovered = f.task(&id).await;
    assert_eq!(recovered.status, TaskStatus::Running);
    assert_eq!(recovered.consecutive_errors, 0);
    assert_eq!(recovered.error, None);
    assert_eq!(recovered.completed_steps, vec![1]);
}

#[tokio::test]
async fn a_failed_first_prompt_never_creates_a_second_session() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.agent.fail_next(Error::AgentUnavailable { message: "x".into() });
    f.harness.tick().await.expect("tick");
    assert_eq!(f.task(&id).await.status, TaskStatus::Pending, "create failed: still pending");
    assert!(f.agent.sessions().is_empty());

    // Now creation succeeds but the prompt does not get through: the session is kept.
    f.agent.fail_next_prompt(Error::AgentUnavailable { message: "reset".into() });
    f.check_due(&id).await;
    assert_eq!(f.agent.sessions().len(), 1);
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Pending);
    assert!(task.active_session_id.is_some());

    f.check_due(&id).await;
    assert_eq!(f.agent.sessions().len(), 1, "the retry attached to the same session");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    assert_eq!(f.prompts().len(), 1);
}

#[tokio::test]
async fn a_retry_after_a_lost_prompt_attaches_to_the_stored_session() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    // Simulate a crash between session creation and prompt: the store has the session.
    let session = f.agent.create_session(&f.workspace.path(), "three").await.expect("session");
    let update = TaskUpdate {
        active_session_id: Some(Some(session.id.clone())),
        session_ids: Some(vec![session.id.clone()]),
        ..TaskUpdate::default()
    };
    f.store.update_task(&id, &update, None).await.expect("store");
    f.harness.tick().await.expect("tick");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(f.agent.sessions().len(), 1, "no second session");
    assert_eq!(task.session_ids, vec![session.id]);
}

#[tokio::test]
async fn a_deleted_session_fails_the_task_with_advice() {
    let mut f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.delete_session(&session);
    f.drain_events();
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.as_deref().expect("error").contains("no longer exists"));
    assert_eq!(task.next_check_at, None);
    assert!(f.drain_events().iter().any(|e| e.kind() == EventKind::Failed));
}

#[tokio::test]
async fn refused_credentials_fail_only_after_the_limit() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    for attempt in 1..=5 {
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.check_due(&id).await;
        let status = f.task(&id).await.status;
        let expected = if attempt < 5 { TaskStatus::Waiting } else { TaskStatus::Failed };
        assert_eq!(status, expected, "attempt {attempt}");
    }
    // The application words the failure (here the test's `Words`), not the core.
    let error = f.task(&id).await.error.expect("error");
    assert_eq!(error, format!("WORDED {id}: 5 refusals"));
}

#[tokio::test]
async fn a_store_locked_by_another_process_makes_the_task_wait_not_fail() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let due = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    f.store.update_task(&id, &due, None).await.expect("make due");
    // The check's own write meets the lock; recording the error then gets through.
    f.store.fail_next_update(Error::StoreBusy { message: "locked elsewhere".into(), source: None });
    f.harness.tick().await.expect("tick");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Waiting);
    assert!(task.error.as_deref().expect("error").contains("store busy"), "{:?}", task.error);
    assert!(task.next_check_at.expect("a retry is scheduled") > Utc::now());

    // Once the lock is gone the task carries on.
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!((task.error, task.consecutive_errors), (None, 0));
}

#[tokio::test]
async fn refusals_after_other_errors_get_the_whole_allowance() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    for _ in 0..4 {
        f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
        f.agent.fail_next(Error::AgentUnavailable { message: "connection refused".into() });
        f.check_due(&id).await;
    }
    assert_eq!(f.task(&id).await.consecutive_errors, 4);
    // OpenCode comes back with other credentials: five refusals in a row, not one.
    for attempt in 1..=5 {
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.agent.fail_next(Error::AgentUnauthorized { message: "401".into() });
        f.check_due(&id).await;
        let expected = if attempt < 5 { TaskStatus::Waiting } else { TaskStatus::Failed };
        assert_eq!(f.task(&id).await.status, expected, "refusal {attempt}");
    }
}

#[tokio::test]
async fn a_workspace_outside_the_roots_fails_at_start() {
    let f = fixture(MemoryAgent::replying(&[]));
    let allowed = tempfile_dir::Dir::new();
    let harness = f.another_harness(WorkspacePolicy::within([allowed.0.clone()]), test_config());
    let err = harness.add_task(three_steps(&f.workspace.path())).await.expect_err("refused");
    assert!(err.to_string().contains("outside the allowed roots"), "{err}");
}

#[tokio::test]
async fn a_workspace_that_disappears_mid_task_fails_it() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let workspace = tempfile_dir::Dir::new();
    let id = f.harness.add_task(three_steps(&workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    drop(workspace);
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed);
    assert!(task.error.expect("error").contains("cannot be used"));
}

#[tokio::test]
async fn an_absurd_interval_schedules_far_away_instead_of_panicking() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.check_interval_seconds = u64::MAX;
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.check_due(&id).await;
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Running);
    assert!(
        task.next_check_at.expect("scheduled") > Utc::now() + chrono::Duration::days(365 * 1000)
    );
}

#[tokio::test]
async fn a_task_without_interval_comes_back_after_a_transient_error() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let mut spec = three_steps(&f.workspace.path());
    spec.check_interval_seconds = 0;
    let id = f.harness.add_task(spec).await.expect("add");
    f.harness.tick().await.expect("start");
    f.agent.fail_next(Error::AgentUnavailable { message: "down".into() });
    f.agent.fail_next(Error::AgentUnavailable { message: "down".into() });
    f.harness.check_now(&id, Trigger::Event).await.expect("event check");
    assert_eq!(f.task(&id).await.status, TaskStatus::Waiting);
    // After the backoff it is due again, although its interval is 0.
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
}

#[tokio::test]
async fn a_retried_start_does_not_send_a_prompt_that_got_through() {
    let f = fixture(MemoryAgent::replying(&[]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    // The first start created the session and OpenCode got the bootstrap, but the
    // answer was lost: the task is still pending with its session stored.
    let session = f.agent.create_session(&f.workspace.path(), "three").await.expect("session");
    let reference = SessionRef { id: session.id.clone(), directory: session.directory.clone() };
    f.agent
        .send_prompt(&reference, &Words.bootstrap(&f.task(&id).await.spec, 0), None)
        .await
        .expect("sent");
    let update = TaskUpdate {
        active_session_id: Some(Some(session.id.clone())),
        session_ids: Some(vec![session.id.clone()]),
        ..TaskUpdate::default()
    };
    f.store.update_task(&id, &update, None).await.expect("store");
    f.harness.tick().await.expect("retry");
    assert_eq!(f.task(&id).await.status, TaskStatus::Running);
    assert_eq!(f.prompts().len(), 1, "the bootstrap is not sent twice");
}

#[tokio::test]
async fn an_agent_server_of_an_untested_major_version_fails_the_task_at_start_naming_the_tested_one()
 {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.agent.fail_next(Error::UnsupportedAgentServer {
        found: "OpenCode 2.0.3".into(),
        tested: "1.18.34".into(),
    });
    f.harness.tick().await.expect("start");
    let task = f.task(&id).await;
    assert_eq!(task.status, TaskStatus::Failed, "not retried: waiting does not change a version");
    let error = task.error.expect("error");
    assert!(error.contains("2.0.3") && error.contains("1.18.34"), "{error}");
    assert!(f.agent.sessions().is_empty(), "no session was created");
}
