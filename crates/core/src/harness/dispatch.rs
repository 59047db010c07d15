//! Which tasks are checked when: the tick over due tasks, idle notices, claims, and
//! the in-flight set that never checks one task twice at once.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::task::JoinSet;

use crate::agent::SessionActivity;
use crate::error::Result;
use crate::harness::{Harness, Trigger, after, lock};
use crate::store::{DueQuery, Lease};
use crate::task::{Task, TaskId, TaskStatus};

/// Statuses of sessions by id, fetched once for many checks.
pub(super) type Activity = Option<Arc<HashMap<String, SessionActivity>>>;

/// Releases a task's in-flight mark when a check ends, however it ends.
struct InFlight<'a> {
    harness: &'a Harness,
    id: TaskId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(&self.harness.in_flight).remove(&self.id);
    }
}

impl Harness {
    /// Checks every due task once and waits for those checks to finish.
    /// Returns how many tasks were checked.
    pub async fn tick(self: &Arc<Self>) -> Result<usize> {
        let mut checks = self.dispatch_due().await?;
        let mut count = 0;
        while checks.join_next().await.is_some() {
            count += 1;
        }
        Ok(count)
    }

    /// Starts checks of the due tasks that are not being checked already, without
    /// waiting for them. Session activity is fetched once for all of them.
    pub(super) async fn dispatch_due(self: &Arc<Self>) -> Result<JoinSet<()>> {
        let due = self.due_claimed().await?;
        let due: Vec<(Task, Option<Lease>)> =
            due.into_iter().filter(|(t, _)| !self.is_in_flight(&t.id)).collect();
        let tasks: Vec<Task> = due.iter().map(|(t, _)| t.clone()).collect();
        let activity = self.activity_for(&tasks).await;
        let mut set = JoinSet::new();
        for (task, lease) in due {
            let harness = Arc::clone(self);
            let activity = activity.clone();
            set.spawn(async move {
                harness.check_guarded(task, lease, activity, Trigger::Scheduled).await
            });
        }
        Ok(set)
    }

    /// The due tasks in scope, each with its lease when claimed here already. An
    /// unscoped harness claims its batch in one store call ([`Store::claim_due_tasks`]);
    /// a scoped one must not claim tasks it will not drive (that would keep other
    /// harnesses off them), so it lists and claims each task as it checks it.
    ///
    /// [`Store::claim_due_tasks`]: crate::store::Store::claim_due_tasks
    async fn due_claimed(&self) -> Result<Vec<(Task, Option<Lease>)>> {
        let now = Utc::now();
        if lock(&self.scope).is_some() {
            let due = self.store.list_due_tasks(now, self.config.due_batch).await?;
            return Ok(due
                .into_iter()
                .filter(|t| self.in_scope(&t.id))
                .map(|t| (t, None))
                .collect());
        }
        let until = after(now, self.config.claim_ttl.as_secs());
        let query = DueQuery::new(now, self.config.due_batch)
            .on(self.config.opencode.clone())
            .unbound(self.config.unbound_tasks);
        let claimed = self.store.claim_due_tasks(&self.owner, &query, until).await?;
        Ok(claimed
            .into_iter()
            .map(|(t, lease)| {
                // Counted like a single claim's ([`Self::claim`]): a takeover is one
                // however the lease was taken.
                self.note_lease(&t.id, &lease);
                (t, Some(lease))
            })
            .collect())
    }

    /// Session activity for the tasks that have a session. A failure here is not an
    /// error of any task: each check then reads its own messages to decide.
    async fn activity_for(&self, tasks: &[Task]) -> Activity {
        let mut directories: Vec<String> = tasks
            .iter()
            .filter(|t| t.active_session_id.is_some() && t.status != TaskStatus::Pending)
            .map(|t| t.workspace.clone())
            .collect();
        if directories.is_empty() {
            return None;
        }
        directories.sort();
        directories.dedup();
        match self.agent.session_activity(&directories).await {
            Ok(map) => Some(Arc::new(map)),
            Err(error) => {
                tracing::debug!(%error, "session activity unavailable this tick");
                None
            }
        }
    }

    /// Claims (or renews the claim on) a task for this harness; `None` when another
    /// harness sharing the store drives it (or the store could not say: the task
    /// stays due and the next tick asks again).
    async fn claim(&self, id: &TaskId) -> Option<Lease> {
        let now = Utc::now();
        let until = after(now, self.config.claim_ttl.as_secs());
        match self.store.claim_task(id, &self.owner, now, until).await {
            Ok(Some(lease)) => {
                self.note_lease(id, &lease);
                Some(lease)
            }
            Ok(None) => {
                tracing::debug!(task_id = %id, "driven by another harness; not checked here");
                None
            }
            Err(error) => {
                tracing::warn!(task_id = %id, %error, "could not claim the task; retrying later");
                None
            }
        }
    }

    /// Keeps this check's claim alive while it runs (verification can take minutes,
    /// longer than a claim lasts), whether or not [`Harness::run`]'s heartbeat runs.
    /// Never returns; a claim found lost is only logged: the check's guarded writes
    /// are then refused by the store.
    async fn keep_claim(&self, id: &TaskId, lease: &Lease) {
        let every = (self.config.claim_ttl / 3).max(std::time::Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            if self.claim(id).await.as_ref() != Some(lease) {
                tracing::warn!(task_id = %id, "lost the claim on a task during its check");
            }
        }
    }

    fn is_in_flight(&self, id: &TaskId) -> bool {
        lock(&self.in_flight).contains_key(id)
    }

    /// Checks one task now, whatever its schedule (an idle event, a user's request).
    pub async fn check_now(self: &Arc<Self>, id: &TaskId, trigger: Trigger) -> Result<()> {
        let task = self.require(id).await?;
        self.check_guarded(task, None, None, trigger).await;
        Ok(())
    }

    /// Tells the harness a session went idle, as OpenCode's event stream does; the
    /// task driving it (if any, and in scope) is checked at once, without asking the
    /// agent server for statuses again. Only for a source that *knows* the session is
    /// idle; see [`Harness::notify_possibly_idle`] otherwise.
    pub async fn notify_idle(self: &Arc<Self>, session_id: &str) {
        let known = HashMap::from([(session_id.to_owned(), SessionActivity::Idle)]);
        self.check_session(session_id, Some(Arc::new(known))).await;
    }

    /// Tells the harness a session *seems* to have stopped (it left a polled status
    /// map, which also happens when a status read missed its directory): the task is
    /// checked at once, and the check asks the agent server for the session's status
    /// before it judges anything. The server's session monitor uses this.
    pub async fn notify_possibly_idle(self: &Arc<Self>, session_id: &str) {
        self.check_session(session_id, None).await;
    }

    /// [`Harness::notify_possibly_idle`] without waiting: the running loop
    /// ([`Harness::run`]) starts the check, so its shutdown waits for it like for any
    /// other. For callbacks that cannot await (the server's session monitor). Hints
    /// queue while the loop is not running; past 1,024 they are dropped, and the
    /// task's schedule checks it anyway.
    pub fn hint_idle(&self, session_id: &str) {
        if let Err(error) = self.idle_hints.try_send(session_id.to_owned()) {
            tracing::debug!(%error, session_id, "idle hint dropped");
        }
    }

    async fn check_session(self: &Arc<Self>, session_id: &str, activity: Activity) {
        let Some(id) = self.task_for_session(session_id).filter(|id| self.in_scope(id)) else {
            return;
        };
        match self.require(&id).await {
            Ok(task) => self.check_guarded(task, None, activity, Trigger::Event).await,
            Err(error) => tracing::debug!(%error, task_id = %id, "idle session's task is gone"),
        }
    }

    /// Checks a task unless it is being checked (then an event asks for one more
    /// look afterwards) or another harness holds it. `claimed` is the lease when the
    /// task was claimed with its batch; otherwise it is claimed here.
    async fn check_guarded(
        &self,
        task: Task,
        claimed: Option<Lease>,
        activity: Activity,
        trigger: Trigger,
    ) {
        if !self.drives(&task) {
            // Its session lives in another OpenCode server: a harness connected to
            // that one drives it (a check here would not find the session). Or it is
            // unbound, and this worker's harness that takes unbound tasks drives it.
            tracing::debug!(task_id = %task.id, opencode = ?task.opencode, "driven by another harness; not checked here");
            return;
        }
        {
            let mut in_flight = lock(&self.in_flight);
            if let Some(rerun) = in_flight.get_mut(&task.id) {
                *rerun |= trigger == Trigger::Event;
                return;
            }
            in_flight.insert(task.id.clone(), false);
        }
        let _guard = InFlight { harness: self, id: task.id.clone() };
        let lease = match claimed {
            Some(lease) => lease,
            None => match self.claim(&task.id).await {
                Some(lease) => lease,
                None => return,
            },
        };
        let checks = async {
            let mut activity = activity;
            let mut trigger = trigger;
            loop {
                self.check_once(&task.id, &lease, activity.take(), trigger).await;
                let mut in_flight = lock(&self.in_flight);
                match in_flight.get_mut(&task.id) {
                    Some(rerun) if *rerun => {
                        *rerun = false;
                        trigger = Trigger::Event;
                    }
                    _ => break,
                }
            }
        };
        tokio::select! {
            () = checks => {}
            () = self.keep_claim(&task.id, &lease) => {}
        }
    }
}
