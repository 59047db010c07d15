//! [`Harness::run`]: the schedule, the agent server's event stream, idle hints, the
//! claim heartbeat, and a clean shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use tokio::task::JoinSet;

use crate::agent::AgentEvent;
use crate::harness::{Harness, Trigger, after, lock};
use crate::store::TaskQuery;
use crate::task::{TaskId, TaskStatus};

impl Harness {
    /// Runs until `stop` turns true: checks due tasks every `poll_every`, and checks a
    /// task as soon as the agent server says its session went idle. Then lets the
    /// checks in flight finish (for `shutdown_grace`), releases this harness's claims
    /// and removes its heartbeat row.
    pub async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        Arc::clone(&self).drive(stop).await;
        self.leave().await;
    }

    /// [`Harness::run`] for the harnesses of one worker (one per OpenCode server,
    /// under one worker name): each runs its loop, and only when every one has let
    /// its checks finish are the claims released and the heartbeat row removed. A
    /// harness releasing its owner's claims while another of the same owner still
    /// writes a check's outcome would have that write refused.
    pub async fn run_together(
        harnesses: Vec<Arc<Harness>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let loops = harnesses.iter().map(|harness| Arc::clone(harness).drive(stop.clone()));
        futures::future::join_all(loops).await;
        for harness in &harnesses {
            harness.leave().await;
        }
    }

    /// The loop of [`Harness::run`], up to and including the drain of the checks in
    /// flight; the claims stay.
    async fn drive(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        self.load_sessions().await;
        let mut events = self.agent.events();
        let mut ticker = tokio::time::interval(self.config.poll_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat =
            tokio::time::interval((self.config.claim_ttl / 3).max(Duration::from_millis(100)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut running = JoinSet::new();
        let mut hints = lock(&self.idle_hint_receiver).take();
        // Dispatching reads the store and asks OpenCode for statuses, which can stall
        // (OpenCode right after a restart answers nothing until the request times
        // out). It runs beside the loop, one at a time, so events and the stop signal
        // are never kept waiting by it.
        let dispatching = Arc::new(AtomicBool::new(false));
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() { break; }
                }
                _ = ticker.tick() => {
                    if !dispatching.swap(true, Ordering::AcqRel) {
                        let harness = Arc::clone(&self);
                        let dispatching = Arc::clone(&dispatching);
                        running.spawn(async move {
                            let dispatched = harness.dispatch_due().await;
                            dispatching.store(false, Ordering::Release);
                            match dispatched {
                                Ok(mut checks) => while checks.join_next().await.is_some() {},
                                Err(error) => tracing::warn!(%error, "could not list due tasks"),
                            }
                        });
                    }
                }
                event = next_event(&mut events) => match event {
                    Some(event) => self.on_agent_event(event, &mut running),
                    None => events = None,
                },
                _ = heartbeat.tick() => {
                    // Beside the loop: a store locked by another process for a while
                    // must not hold up events or the stop signal.
                    let harness = Arc::clone(&self);
                    running.spawn(async move {
                        let now = Utc::now();
                        let until = after(now, harness.config.claim_ttl.as_secs());
                        if let Err(error) = harness.store.renew_claims(&harness.owner, until).await {
                            tracing::warn!(%error, "could not renew this harness's task claims");
                        }
                        if let Err(error) = harness.beat(now).await {
                            tracing::warn!(%error, "could not record this worker's heartbeat");
                        }
                    });
                }
                Some(session_id) = next_hint(&mut hints) => {
                    let harness = Arc::clone(&self);
                    running.spawn(async move { harness.notify_possibly_idle(&session_id).await });
                }
            }
            while running.try_join_next().is_some() {}
        }
        // Let checks in flight finish their store writes, for a while. A check's
        // writes are one transaction each, so cutting one short loses nothing.
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("checks still running at shutdown were stopped");
            running.shutdown().await;
        }
        // A later `run` takes the hints up again.
        *lock(&self.idle_hint_receiver) = hints;
    }

    /// Gives up this harness's claims and heartbeat row (its loop has stopped).
    async fn leave(&self) {
        // Another harness sharing the store may take these tasks over at once.
        if let Err(error) = self.store.release_claims(&self.owner).await {
            tracing::warn!(%error, "could not release this harness's task claims");
        }
        if let Err(error) = self.store.forget_worker(&self.owner).await {
            tracing::warn!(%error, "could not remove this worker's heartbeat row");
        }
    }

    fn on_agent_event(self: &Arc<Self>, event: AgentEvent, running: &mut JoinSet<()>) {
        let ids: Vec<TaskId> = match event {
            AgentEvent::SessionIdle { session_id } => {
                // The event says what the status is: no need to ask for it again.
                let harness = Arc::clone(self);
                running.spawn(async move { harness.notify_idle(&session_id).await });
                return;
            }
            AgentEvent::RequestChanged { session_id } => {
                // Asked or answered: look now, asking for the status first.
                let harness = Arc::clone(self);
                running.spawn(async move { harness.notify_possibly_idle(&session_id).await });
                return;
            }
            AgentEvent::Reconnected => lock(&self.sessions).values().cloned().collect(),
            _ => Vec::new(),
        };
        for id in ids.into_iter().filter(|id| self.in_scope(id)) {
            let harness = Arc::clone(self);
            running.spawn(async move {
                if let Err(error) = harness.check_now(&id, Trigger::Event).await {
                    tracing::debug!(%error, task_id = %id, "event-triggered check skipped");
                }
            });
        }
    }

    /// Learns the sessions of active tasks, so idle events can be routed after a restart.
    async fn load_sessions(&self) {
        let query = TaskQuery {
            limit: 10_000,
            statuses: vec![TaskStatus::Running, TaskStatus::Waiting],
            ..TaskQuery::default()
        };
        match self.store.list_tasks(&query).await {
            Ok(tasks) => {
                for task in tasks {
                    if let Some(session) = &task.active_session_id {
                        self.remember_session(session, &task.id);
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not load active sessions"),
        }
    }
}

async fn next_event(
    events: &mut Option<futures::stream::BoxStream<'static, AgentEvent>>,
) -> Option<AgentEvent> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// The next idle hint; never, when this loop has no hint receiver.
async fn next_hint(hints: &mut Option<tokio::sync::mpsc::Receiver<String>>) -> Option<String> {
    match hints {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
