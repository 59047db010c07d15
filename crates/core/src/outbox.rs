//! Notifications that are never lost: which task changes are worth telling someone
//! about, and the durable outbox of webhook deliveries the stores keep.
//!
//! # Design: the delivery is written with the change that caused it
//! A store calls [`notices`] inside its create/write transaction, with the task
//! before and after the write, and [`route`]s each notice to the registered
//! [`Hook`]s that want it: the resulting [`Delivery`] rows commit (or roll back)
//! together with the task change. A process killed at any moment therefore leaves
//! either no change and no delivery, or both; a sender (`openloom-notify`) drains the
//! rows later, over HTTP, without the harness ever waiting on a receiver.
//!
//! Deciding is pure ([`notices`], [`route`]); the [`Outbox`] trait is the I/O.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::request::PendingRequest;
use crate::task::{Task, TaskId, TaskStatus};

/// What happened to a task, as a webhook names it (`task.completed`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeEvent {
    /// The task was added.
    #[serde(rename = "task.created")]
    Created,
    /// The task's first session was created and prompted.
    #[serde(rename = "task.started")]
    Started,
    /// The agent asks a person something (a permission, a question) it was not
    /// asking before: a person's cue to answer.
    #[serde(rename = "task.waiting")]
    Waiting,
    /// The task completed (verified, when its spec has checks).
    #[serde(rename = "task.completed")]
    Completed,
    /// The task failed for good.
    #[serde(rename = "task.failed")]
    Failed,
    /// The session stalled (busy without new output past the stall timeout).
    #[serde(rename = "task.stalled")]
    Stalled,
}

impl NoticeEvent {
    /// Every event, in lifecycle order.
    pub const ALL: [NoticeEvent; 6] = [
        NoticeEvent::Created,
        NoticeEvent::Started,
        NoticeEvent::Waiting,
        NoticeEvent::Completed,
        NoticeEvent::Failed,
        NoticeEvent::Stalled,
    ];

    /// The event's name: `task.created`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::Created => "task.created",
            NoticeEvent::Started => "task.started",
            NoticeEvent::Waiting => "task.waiting",
            NoticeEvent::Completed => "task.completed",
            NoticeEvent::Failed => "task.failed",
            NoticeEvent::Stalled => "task.stalled",
        }
    }
}

impl fmt::Display for NoticeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NoticeEvent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        NoticeEvent::ALL.into_iter().find(|e| e.as_str() == s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown webhook event {s:?}; expected one of: {}",
                NoticeEvent::ALL.map(NoticeEvent::as_str).join(", ")
            ))
        })
    }
}

/// The task as a notice shows it: what a person needs to act, nothing more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSnapshot {
    /// The task's id.
    pub id: TaskId,
    /// Its name.
    pub name: String,
    /// Its status after the change.
    pub status: TaskStatus,
    /// One line on the last check, or why it failed.
    pub summary: Option<String>,
    /// The workspace directory.
    pub workspace: String,
    /// Progress between 0.0 and 1.0.
    pub progress: f64,
    /// What the agent waits on a person for; empty when nothing.
    pub pending_requests: Vec<PendingRequest>,
}

impl TaskSnapshot {
    /// The snapshot of `task`. A failed task's summary is its error: that is what
    /// the person reading the notification must act on.
    pub fn of(task: &Task) -> Self {
        let summary = match task.status {
            TaskStatus::Failed => task.error.clone().or_else(|| task.last_summary.clone()),
            _ => task.last_summary.clone(),
        };
        TaskSnapshot {
            id: task.id.clone(),
            name: task.name.clone(),
            status: task.status,
            summary,
            workspace: task.workspace.clone(),
            progress: task.progress,
            pending_requests: task.pending_requests.clone(),
        }
    }
}

/// One thing worth telling: an event and the task as it was right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What happened.
    pub event: NoticeEvent,
    /// When the change was written.
    pub at: DateTime<Utc>,
    /// The task after the change.
    pub task: TaskSnapshot,
}

/// The notices a write causes, from the task before it (`None` for a creation) and
/// after it, in lifecycle order. Pure: every store calls it inside its transaction,
/// so all of them notify the same way.
///
/// - `task.created`: there was no task before.
/// - `task.started`: the task got its first session (later sessions, after a stall
///   or a restart, are not a new start).
/// - `task.waiting`: a pending request appeared that was not pending before; a task
///   waiting only on a transient error notifies nothing (the harness retries it).
/// - `task.completed` / `task.failed`: the status became that.
/// - `task.stalled`: the count of stalls grew.
pub fn notices(before: Option<&Task>, after: &Task, at: DateTime<Utc>) -> Vec<Notice> {
    let mut events = Vec::new();
    match before {
        None => {
            events.push(NoticeEvent::Created);
            if !after.session_ids.is_empty() {
                events.push(NoticeEvent::Started);
            }
        }
        Some(before) => {
            if before.session_ids.is_empty() && !after.session_ids.is_empty() {
                events.push(NoticeEvent::Started);
            }
            let new_request = after
                .pending_requests
                .iter()
                .any(|r| !before.pending_requests.iter().any(|known| known.id == r.id));
            if new_request {
                events.push(NoticeEvent::Waiting);
            }
            if after.liveness.stalls > before.liveness.stalls {
                events.push(NoticeEvent::Stalled);
            }
            if before.status != after.status {
                match after.status {
                    TaskStatus::Completed => events.push(NoticeEvent::Completed),
                    TaskStatus::Failed => events.push(NoticeEvent::Failed),
                    _ => {}
                }
            }
        }
    }
    events.into_iter().map(|event| Notice { event, at, task: TaskSnapshot::of(after) }).collect()
}

/// A webhook as the store knows it: an id, the URL as it may be shown, and the
/// events it wants. The full URL and the secret stay with the process that sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// [`Hook::id_for`] of the full URL: stable across restarts.
    pub id: String,
    /// The URL without credentials, query or path (see [`Hook::shown_url`]).
    pub url: String,
    /// The events it wants; empty means every event.
    pub events: Vec<NoticeEvent>,
}

impl Hook {
    /// A hook for `url` wanting `events` (empty: all).
    pub fn new(url: &str, events: Vec<NoticeEvent>) -> Self {
        Hook { id: Self::id_for(url), url: Self::shown_url(url), events }
    }

    /// `hook_` and 12 hex digits of SHA-256 of the URL: the same URL is the same hook
    /// in every process and after every restart, and the id reveals nothing of it.
    pub fn id_for(url: &str) -> String {
        let digest = Sha256::digest(url.trim().as_bytes());
        format!("hook_{}", &hex::encode(digest)[..12])
    }

    /// The URL as the API and logs may show it: scheme, host and port. Chat
    /// services put their token in the path (`/services/T0/B0/XXXX`) and others in
    /// the query or the user info, so none of those is shown.
    pub fn shown_url(url: &str) -> String {
        let url = url.trim();
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let has_path = rest.len() > authority.len() + 1;
        format!("{scheme}://{host}{}", if has_path { "/…" } else { "/" })
    }

    /// True when the hook wants `event`.
    pub fn wants(&self, event: NoticeEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }
}

/// Where a delivery is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet; sent when `next_attempt_at` is due.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up on (too old); `redeliver` queues it again.
    Dead,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 3] =
        [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Dead];

    /// The lowercase name used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        DeliveryStatus::ALL.into_iter().find(|d| d.as_str() == s).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown delivery status {s:?}; expected one of: pending, delivered, dead"
            ))
        })
    }
}

/// One notice for one hook: the row a sender works from. Its `id` is the
/// `X-OpenLoom-Delivery` header, the same on every attempt, so a receiver dedupes
/// by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_` and 20 hex digits.
    pub id: String,
    /// The hook it goes to ([`Hook::id`]).
    pub hook_id: String,
    /// The hook's URL as it may be shown ([`Hook::url`]).
    pub url: String,
    /// What is told.
    pub notice: Notice,
    /// Where it is.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When a pending delivery is due (while one is being sent: when its claim ends).
    pub next_attempt_at: DateTime<Utc>,
    /// What went wrong at the last failed attempt.
    pub last_error: Option<String>,
    /// When it was queued (first, or again by `redeliver`): its age counts from here.
    pub queued_at: DateTime<Utc>,
    /// When a 2xx answer was received.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Delivery {
    /// A fresh random delivery id.
    pub fn generate_id() -> String {
        let hex = uuid::Uuid::new_v4().simple().to_string();
        format!("dlv_{}", &hex[..20])
    }
}

/// The deliveries `notices` cause for `hooks`, pending and due at once. Pure but for
/// the fresh ids.
pub fn route(notices: &[Notice], hooks: &[Hook]) -> Vec<Delivery> {
    let mut out = Vec::new();
    for notice in notices {
        for hook in hooks.iter().filter(|h| h.wants(notice.event)) {
            out.push(Delivery {
                id: Delivery::generate_id(),
                hook_id: hook.id.clone(),
                url: hook.url.clone(),
                notice: notice.clone(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt_at: notice.at,
                last_error: None,
                queued_at: notice.at,
                delivered_at: None,
            });
        }
    }
    out
}

/// How an attempt went, as the sender records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered,
    /// It failed; try again at `at`.
    Retry {
        /// When to try again.
        at: DateTime<Utc>,
        /// What went wrong (no secret, no response body).
        error: String,
    },
    /// It failed and is too old to try again.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryQuery {
    /// At most this many.
    pub limit: usize,
    /// Only this status; `None` means any.
    pub status: Option<DeliveryStatus>,
}

/// How many deliveries wait to be sent and how many were given up on: what an
/// operator watches ([`Outbox::depth`]). Delivered ones are history, not depth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    /// Deliveries still to be (re)tried.
    pub pending: u64,
    /// Deliveries given up on (too old), until redelivered.
    pub dead: u64,
}

impl OutboxDepth {
    /// The depth from a store's `(status, count)` rows (`pending` and `dead`; other
    /// statuses are not depth). A count below zero, which no store returns, is 0.
    pub fn from_counts<S: AsRef<str>>(rows: impl IntoIterator<Item = (S, i64)>) -> Self {
        let mut depth = OutboxDepth::default();
        for (status, count) in rows {
            let count = u64::try_from(count).unwrap_or_default();
            match status.as_ref() {
                "pending" => depth.pending = count,
                "dead" => depth.dead = count,
                _ => {}
            }
        }
        depth
    }
}

/// The durable outbox of webhook deliveries, kept in the same store as the tasks
/// (whose writes fill it, see the module docs).
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Registers (or updates) hooks: from now on, task changes queue deliveries for
    /// them in their own transaction. Hooks registered before and not named here are
    /// kept: another process on the same database may send to them.
    async fn register_hooks(&self, hooks: &[Hook]) -> Result<()>;

    /// Takes up to `limit` pending deliveries to `hook_ids` due at `now`, oldest
    /// first, and moves their `next_attempt_at` to `until` in the same transaction,
    /// so no other sender takes them meanwhile; a sender killed mid-send leaves them
    /// due again at `until`.
    async fn claim_due(
        &self,
        hook_ids: &[String],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>>;

    /// Records an attempt: one more attempt, and the status and schedule it implies.
    /// Fails with `NotFound` for an unknown id.
    async fn record_attempt(&self, id: &str, attempt: &Attempt, now: DateTime<Utc>) -> Result<()>;

    /// How many deliveries are pending and dead now. Cheap: a count over the status
    /// index, no delivery is read (`GET /metrics` asks on every scrape).
    async fn depth(&self) -> Result<OutboxDepth>;

    /// Deliveries newest first.
    async fn list_deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>>;

    /// One delivery, or `None`.
    async fn get_delivery(&self, id: &str) -> Result<Option<Delivery>>;

    /// Marks every pending delivery queued before `queued_before` dead, with
    /// `error`; returns how many. Senders call it for all hooks, not only their
    /// own: a hook no process sends to any more (dropped from every config) would
    /// otherwise collect pending deliveries for ever, unseen.
    async fn expire(&self, queued_before: DateTime<Utc>, error: &str) -> Result<usize>;

    /// Queues a delivery again, whatever its status: pending, due at `now`, its age
    /// counted from `now`, with the same id (a receiver that got it before dedupes
    /// it). Fails with `NotFound` for an unknown id.
    async fn redeliver(&self, id: &str, now: DateTime<Utc>) -> Result<Delivery>;
}

/// Applies `attempt` to `delivery` at `now`: what every store writes for
/// [`Outbox::record_attempt`].
pub fn apply_attempt(delivery: &mut Delivery, attempt: &Attempt, now: DateTime<Utc>) {
    delivery.attempts = delivery.attempts.saturating_add(1);
    match attempt {
        Attempt::Delivered => {
            delivery.status = DeliveryStatus::Delivered;
            delivery.delivered_at = Some(now);
            delivery.last_error = None;
        }
        Attempt::Retry { at, error } => {
            delivery.status = DeliveryStatus::Pending;
            delivery.next_attempt_at = *at;
            delivery.last_error = Some(clip(error));
        }
        Attempt::Dead { error } => {
            delivery.status = DeliveryStatus::Dead;
            delivery.last_error = Some(clip(error));
        }
    }
}

/// Gives `delivery` up as too old, without an attempt: what every store writes for
/// [`Outbox::expire`].
pub fn give_up(delivery: &mut Delivery, error: &str) {
    delivery.status = DeliveryStatus::Dead;
    delivery.last_error = Some(clip(error));
}

/// Queues `delivery` again at `now`: what every store writes for
/// [`Outbox::redeliver`]. Attempts and the last error are kept, as history.
pub fn requeue(delivery: &mut Delivery, now: DateTime<Utc>) {
    delivery.status = DeliveryStatus::Pending;
    delivery.next_attempt_at = now;
    delivery.queued_at = now;
    delivery.delivered_at = None;
}

/// Most characters of an error a delivery keeps.
pub const MAX_ERROR_CHARS: usize = 500;

fn clip(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn depth_reads_pending_and_dead_counts_and_ignores_the_rest() {
        let rows = [("pending", 3_i64), ("dead", 2), ("delivered", 40)];
        assert_eq!(
            super::OutboxDepth::from_counts(rows),
            super::OutboxDepth { pending: 3, dead: 2 }
        );
        assert_eq!(super::OutboxDepth::from_counts([("dead", -1)]), super::OutboxDepth::default());
    }
    use super::*;
    use crate::request::RequestKind;
    use crate::spec::TaskSpec;

    fn task() -> Task {
        Task::new(TaskId::from("task_n"), TaskSpec::new("n", "/w", "g"), Utc::now())
    }

    fn events(before: Option<&Task>, after: &Task) -> Vec<NoticeEvent> {
        notices(before, after, Utc::now()).into_iter().map(|n| n.event).collect()
    }

    fn request(id: &str) -> PendingRequest {
        PendingRequest {
            id: id.into(),
            session_id: "ses".into(),
            kind: RequestKind::Permission { permission: "bash".into(), patterns: vec![] },
            asked_at: None,
        }
    }

    #[test]
    fn each_transition_notifies_once() {
        let pending = task();
        assert_eq!(events(None, &pending), [NoticeEvent::Created]);
        assert_eq!(events(Some(&pending), &pending), []);

        let mut started = pending.clone();
        started.status = TaskStatus::Running;
        started.session_ids = vec!["ses_1".into()];
        assert_eq!(events(Some(&pending), &started), [NoticeEvent::Started]);
        let mut second = started.clone();
        second.session_ids.push("ses_2".into());
        assert_eq!(events(Some(&started), &second), [], "a new session is not a new start");

        let mut asking = started.clone();
        asking.status = TaskStatus::Waiting;
        asking.pending_requests = vec![request("per_1")];
        let waiting = notices(Some(&started), &asking, Utc::now());
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].event, NoticeEvent::Waiting);
        assert_eq!(waiting[0].task.pending_requests, vec![request("per_1")]);
        assert_eq!(events(Some(&asking), &asking), [], "the same request again");
        let mut more = asking.clone();
        more.pending_requests.push(request("que_2"));
        assert_eq!(events(Some(&asking), &more), [NoticeEvent::Waiting]);

        let mut transient = started.clone();
        transient.status = TaskStatus::Waiting;
        assert_eq!(events(Some(&started), &transient), [], "waiting on a retry is no cue");

        let mut stalled = started.clone();
        stalled.liveness.stalls = 1;
        assert_eq!(events(Some(&started), &stalled), [NoticeEvent::Stalled]);

        let mut done = started.clone();
        done.status = TaskStatus::Completed;
        assert_eq!(events(Some(&started), &done), [NoticeEvent::Completed]);
        assert_eq!(events(Some(&done), &done), []);

        let mut failed = stalled.clone();
        failed.status = TaskStatus::Failed;
        failed.error = Some("stalled 6 times".into());
        failed.liveness.stalls = 2;
        let told = notices(Some(&stalled), &failed, Utc::now());
        let kinds: Vec<_> = told.iter().map(|n| n.event).collect();
        assert_eq!(kinds, [NoticeEvent::Stalled, NoticeEvent::Failed]);
        assert_eq!(told[1].task.summary.as_deref(), Some("stalled 6 times"));
    }

    #[test]
    fn routing_follows_each_hooks_events() {
        let now = Utc::now();
        let all = Hook::new("http://a.example/x", vec![]);
        let done_only = Hook::new("http://b.example/", vec![NoticeEvent::Completed]);
        let mut done = task();
        done.status = TaskStatus::Completed;
        let told = notices(Some(&task()), &done, now);
        let created = notices(None, &task(), now);
        let routed = route(&[told, created].concat(), &[all.clone(), done_only.clone()]);
        let pairs: Vec<_> = routed.iter().map(|d| (d.notice.event, d.hook_id.clone())).collect();
        assert_eq!(
            pairs,
            [
                (NoticeEvent::Completed, all.id.clone()),
                (NoticeEvent::Completed, done_only.id.clone()),
                (NoticeEvent::Created, all.id.clone()),
            ]
        );
        assert!(routed.iter().all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0));
        assert_ne!(routed[0].id, routed[1].id);
    }

    #[test]
    fn a_hook_is_shown_without_what_may_be_secret() {
        assert_eq!(
            Hook::shown_url("https://hooks.slack.com/services/T0/B0/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(Hook::shown_url("http://user:pw@127.0.0.1:9/h?t=1"), "http://127.0.0.1:9/…");
        assert_eq!(Hook::shown_url("http://127.0.0.1:9"), "http://127.0.0.1:9/");
        assert_eq!(Hook::id_for("http://a/x"), Hook::id_for(" http://a/x "));
        assert_ne!(Hook::id_for("http://a/x"), Hook::id_for("http://a/y"));
        assert!(Hook::id_for("http://a/x").starts_with("hook_"));
    }

    #[test]
    fn events_and_statuses_parse_from_their_names() {
        for event in NoticeEvent::ALL {
            assert_eq!(event.as_str().parse::<NoticeEvent>().expect("known"), event);
            assert_eq!(serde_json::to_value(event).expect("json"), event.as_str());
        }
        let err = "task.done".parse::<NoticeEvent>().expect_err("unknown");
        assert!(err.to_string().contains("task.completed"), "{err}");
        assert_eq!("dead".parse::<DeliveryStatus>().expect("known"), DeliveryStatus::Dead);
    }

    #[test]
    fn attempts_move_a_delivery_along() {
        let now = Utc::now();
        let hook = Hook::new("http://a/", vec![]);
        let mut d = route(&notices(None, &task(), now), &[hook]).remove(0);
        let later = now + chrono::Duration::seconds(5);
        apply_attempt(&mut d, &Attempt::Retry { at: later, error: "503".into() }, now);
        assert_eq!((d.status, d.attempts, d.next_attempt_at), (DeliveryStatus::Pending, 1, later));
        apply_attempt(&mut d, &Attempt::Delivered, later);
        assert_eq!(
            (d.status, d.attempts, d.last_error.clone()),
            (DeliveryStatus::Delivered, 2, None)
        );
        apply_attempt(&mut d, &Attempt::Dead { error: "old".into() }, later);
        assert_eq!(d.status, DeliveryStatus::Dead);
    }
}
