//! The run loop, events and idle notices, restarts, and harnesses sharing a store.

use super::*;

#[tokio::test]
async fn restart_resumes_running_tasks_without_starting_them_again() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    // The process stops (Ctrl-C): its run loop ends and gives up its claims.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");

    // A new harness over the same store and agent, as after a process restart.
    let restarted = f.another_harness(WorkspacePolicy::any(), test_config());
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    f.store.update_task(&id, &update, None).await.expect("due");
    restarted.tick().await.expect("tick");
    assert_eq!(f.agent.sessions().len(), 1, "same session");
    assert!(f.prompts().iter().filter(|p| p.starts_with("BOOTSTRAP")).count() == 1);
    assert_eq!(f.task(&id).await.completed_steps, vec![1]);
}

#[tokio::test]
async fn a_restricted_harness_leaves_other_tasks_alone() {
    let f = fixture(MemoryAgent::replying(&[]));
    let mine = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let other = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.restrict_to([mine.clone()]);
    assert_eq!(f.harness.tick().await.expect("tick"), 1);
    assert_eq!(f.task(&mine).await.status, TaskStatus::Running);
    assert_eq!(f.task(&other).await.status, TaskStatus::Pending, "not started");
    assert_eq!(f.agent.sessions().len(), 1);
}

#[tokio::test]
async fn run_reacts_to_idle_events_and_stops_on_signal() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));

    // Wait for the start, then announce the idle session: the nudge follows at once,
    // long before the 300 s interval.
    let session = wait_for(|| async {
        f.store.get_task(&id).await.ok().flatten().and_then(|t| t.active_session_id)
    })
    .await;
    f.agent.announce(AgentEvent::SessionIdle { session_id: session });
    wait_for(|| async { f.prompts().iter().any(|p| p == "NEXT step 2").then_some(()) }).await;

    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
}

#[tokio::test]
async fn idle_hints_are_checked_by_the_run_loop_even_when_given_before_it_runs() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Idle);
    // The session monitor's callback cannot await: the hint waits for the loop.
    f.harness.hint_idle(&session);
    tokio::task::yield_now().await;
    assert_eq!(f.prompts().len(), 1, "nothing happens until the loop runs");

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    wait_for(|| async { f.prompts().iter().any(|p| p == "NEXT step 2").then_some(()) }).await;
    assert_eq!(f.task(&id).await.current_step, 1, "the check was recorded");
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
}

#[tokio::test]
async fn two_harnesses_sharing_a_store_never_drive_one_task_at_once() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1", "STEP DONE: 2"]));
    let other = f.another_harness(WorkspacePolicy::any(), test_config());
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("the first harness starts it and holds it");
    let due = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };

    // The second one finds it due, and is even asked to check it: it leaves it alone.
    f.store.update_task(&id, &due, None).await.expect("due");
    other.tick().await.expect("tick");
    other.check_now(&id, Trigger::Event).await.expect("check");
    assert_eq!(f.prompts(), vec!["BOOTSTRAP three step 1"], "only the holder speaks");

    // The holder goes on.
    f.harness.tick().await.expect("tick");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");

    // Once the holder stops, the other takes the task over without waiting out the claim.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(f.harness.clone().run(stop_rx));
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");
    f.store.update_task(&id, &due, None).await.expect("due");
    other.tick().await.expect("tick");
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 3");
}

pub(super) async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 2 s");
}

#[tokio::test]
async fn run_stops_promptly_even_when_the_agent_server_hangs() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let config = HarnessConfig {
        poll_every: Duration::from_millis(20),
        shutdown_grace: Duration::from_millis(200),
        ..test_config()
    };
    let harness = f.another_harness(WorkspacePolicy::any(), config);
    let store = f.store.clone();
    let id = harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let runner = tokio::spawn(harness.clone().run(stop_rx));
    // Started, then due again: the next dispatch hangs on the status request.
    wait_for(|| async {
        store
            .get_task(&id)
            .await
            .ok()
            .flatten()
            .filter(|t| t.status == TaskStatus::Running)
            .map(|_| ())
    })
    .await;
    // Statuses hang from now on, like OpenCode right after a restart.
    f.agent.hang_statuses();
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    store.update_task(&id, &update, None).await.expect("due");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .expect("stops within the grace")
        .expect("joins");
}

#[tokio::test]
async fn an_idle_notice_is_acted_on_without_asking_for_statuses() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start (a pending task needs no statuses)");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.hang_statuses();
    let harness = f.harness.clone();
    // Status requests would hang for ever; the notice says the session is idle.
    tokio::time::timeout(Duration::from_secs(2), harness.notify_idle(&session))
        .await
        .expect("no status request");
    assert_eq!(f.prompts().last().map(String::as_str), Some("NEXT step 2"));
    // A session no task drives is ignored.
    harness.notify_idle("ses_unknown").await;
}

#[tokio::test]
async fn a_busy_check_does_not_swallow_the_idle_event_that_follows() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    // A scheduled check while the reply is still being written: busy.
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.check_due(&id).await;
    assert_eq!(f.task(&id).await.last_summary.as_deref(), Some("Agent is busy"));
    // The session goes idle with the same newest message: it is judged now.
    f.agent.set_activity(&session, SessionActivity::Idle);
    f.harness.notify_idle(&session).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
}

/// Stops the task (as a user would) while the check runs, then claims a step.
struct PausesMidCheck {
    store: Arc<MemoryStore>,
}

#[async_trait]
impl Checker for PausesMidCheck {
    async fn check(&self, context: CheckContext<'_>) -> Result<CheckResult> {
        let update = TaskUpdate { status: Some(TaskStatus::Paused), ..TaskUpdate::default() };
        self.store.update_task(&context.task.id, &update, None).await?;
        Ok(CheckResult { step_done: 1, ..CheckResult::default() })
    }
}

#[tokio::test]
async fn a_pause_during_a_check_wins_over_the_check() {
    let f = fixture(MemoryAgent::replying(&["working"]));
    let store = f.store.clone();
    let agent = f.agent.clone();
    let harness = harness_over(
        agent.clone(),
        store.clone(),
        Arc::new(PausesMidCheck { store: store.clone() }),
        EventBus::new(),
        WorkspacePolicy::any(),
        test_config(),
    );
    let id = harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    harness.tick().await.expect("start");
    let update = TaskUpdate { next_check_at: Some(Some(Utc::now())), ..TaskUpdate::default() };
    store.update_task(&id, &update, None).await.expect("due");
    harness.tick().await.expect("check");
    assert_eq!(store.get_task(&id).await.expect("store").expect("task").status, TaskStatus::Paused);
    assert_eq!(agent.prompts().len(), 1, "no nudge after the pause");
}

#[tokio::test]
async fn a_possible_idle_notice_asks_for_the_status_before_judging() {
    let f = fixture(MemoryAgent::replying(&["STEP DONE: 1"]));
    let id = f.harness.add_task(three_steps(&f.workspace.path())).await.expect("add");
    f.harness.tick().await.expect("start");
    let session = f.task(&id).await.active_session_id.expect("session");
    f.agent.set_activity(&session, SessionActivity::Busy);
    f.harness.notify_possibly_idle(&session).await;
    assert_eq!(f.prompts().len(), 1, "still busy: nothing judged, nothing sent");
    f.agent.set_activity(&session, SessionActivity::Idle);
    f.harness.notify_possibly_idle(&session).await;
    assert_eq!(f.prompts().last().expect("prompt"), "NEXT step 2");
}

#[tokio::test]
async fn one_worker_on_two_opencode_servers_drives_each_task_on_its_own() {
    // One worker name, two harnesses (one per OpenCode server); only the first takes
    // unbound tasks, so no task is held by both under the one claim owner.
    let f = fixture(MemoryAgent::replying(&["working"]));
    let on = |opencode: &str, unbound_tasks: bool| HarnessConfig {
        worker_name: Some("w-one".into()),
        opencode: Some(opencode.into()),
        unbound_tasks,
        ..test_config()
    };
    let first = f.another_harness(WorkspacePolicy::any(), on("a", true));
    let other_agent = Arc::new(MemoryAgent::replying(&["working"]));
    let second = harness_over(
        other_agent.clone(),
        f.store.clone(),
        Arc::new(Markers),
        EventBus::new(),
        WorkspacePolicy::any(),
        on("b", false),
    );
    let workspace = f.workspace.path();
    let on_a = first.add_task(three_steps(&workspace)).await.expect("a's task");
    let on_b = second.add_task(three_steps(&workspace)).await.expect("b's task");
    let mut unbound = Task::new(TaskId::generate(), three_steps(&workspace), Utc::now());
    unbound.opencode = None;
    f.store.create_task(&unbound).await.expect("an unbound task");
    assert_eq!(f.task(&on_b).await.opencode.as_deref(), Some("b"), "bound to its harness's server");
    assert!(second.drives(&f.task(&on_b).await) && !second.drives(&unbound));
    assert!(first.drives(&unbound) && !first.drives(&f.task(&on_b).await));

    second.tick().await.expect("tick b");
    first.tick().await.expect("tick a");
    let started = |agent: &MemoryAgent| agent.sessions().len();
    assert_eq!(started(&other_agent), 1, "b's server gets b's task only");
    assert_eq!(started(&f.agent), 2, "a's server gets a's task and the unbound one");
    for id in [&on_a, &on_b, &unbound.id] {
        let task = f.task(id).await;
        assert_eq!(task.status, TaskStatus::Running, "{id} started");
        assert_eq!(task.session_ids.len(), 1, "{id} has one session");
    }
}

/// An agent that takes `delay` to create a session and is `inner` otherwise.
struct SlowToStart {
    inner: Arc<MemoryAgent>,
    delay: Duration,
}

#[async_trait]
impl AgentServer for SlowToStart {
    async fn health(&self) -> crate::agent::Health {
        self.inner.health().await
    }
    async fn create_session(&self, directory: &str, title: &str) -> Result<crate::agent::Session> {
        tokio::time::sleep(self.delay).await;
        self.inner.create_session(directory, title).await
    }
    async fn find_session(&self, session_id: &str) -> Result<Option<crate::agent::Session>> {
        self.inner.find_session(session_id).await
    }
    async fn send_prompt(
        &self,
        session: &SessionRef,
        prompt: &str,
        agent: Option<&str>,
    ) -> Result<()> {
        self.inner.send_prompt(session, prompt, agent).await
    }
    async fn session_activity(
        &self,
        directories: &[String],
    ) -> Result<std::collections::HashMap<String, SessionActivity>> {
        self.inner.session_activity(directories).await
    }
    async fn messages(&self, session: &SessionRef, limit: usize) -> Result<Vec<AgentMessage>> {
        self.inner.messages(session, limit).await
    }
    async fn abort(&self, session: &SessionRef) -> Result<()> {
        self.inner.abort(session).await
    }
}

#[tokio::test]
async fn the_harnesses_of_one_worker_release_its_claims_only_once_all_have_stopped() {
    // A stops at once; B is still starting a task (its OpenCode is slow to create
    // the session) when told to stop. Had A released the worker's claims then, B's
    // guarded write of the new session would be refused and the session lost.
    let f = fixture(MemoryAgent::replying(&["working"]));
    let config = |opencode: &str, unbound_tasks: bool| HarnessConfig {
        worker_name: Some("w-one".into()),
        opencode: Some(opencode.into()),
        unbound_tasks,
        poll_every: Duration::from_millis(20),
        ..test_config()
    };
    let first = f.another_harness(WorkspacePolicy::any(), config("a", true));
    let slow = Arc::new(SlowToStart {
        inner: Arc::new(MemoryAgent::replying(&["working"])),
        delay: Duration::from_millis(400),
    });
    let second = harness_over(
        slow.clone(),
        f.store.clone(),
        Arc::new(Markers),
        EventBus::new(),
        WorkspacePolicy::any(),
        config("b", false),
    );
    let id = second.add_task(three_steps(&f.workspace.path())).await.expect("b's task");
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let both = vec![Arc::clone(&first), Arc::clone(&second)];
    let runner = tokio::spawn(Harness::run_together(both, stop_rx));
    // B has claimed the task and is creating its session.
    wait_for(|| async {
        let now = Utc::now();
        let other = f.store.claim_task(&id, "someone else", now, now).await.ok().flatten();
        other.is_none().then_some(())
    })
    .await;
    stop.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), runner).await.expect("stops").expect("joins");

    let task = f.task(&id).await;
    assert_eq!(slow.inner.sessions().len(), 1, "one session was created");
    assert_eq!(task.active_session_id.as_ref(), Some(&slow.inner.sessions()[0].id), "and kept");
    assert_eq!(task.status, TaskStatus::Running);
    let now = Utc::now();
    let lease = f.store.claim_task(&id, "next", now, now + chrono::Duration::seconds(5)).await;
    assert!(lease.expect("claim").is_some(), "the claims were released at the end");
    let workers = f.store.live_workers(now - chrono::Duration::seconds(60)).await.expect("workers");
    assert!(workers.is_empty(), "the heartbeat row is gone: {workers:?}");
}
