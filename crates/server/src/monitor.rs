//! The session monitor: a background loop that keeps what the dashboard shows about
//! OpenCode (health, sessions, statuses, token usage) in memory, so no API request
//! ever waits on OpenCode. A port of the reference's `levels/server/monitor.py`.
//!
//! Each refresh lists sessions and their statuses, then reads the messages of the
//! few sessions that changed since they were last read (newest first, a bounded
//! number per refresh) to learn their token usage and whether a reply is still being
//! written. A session is read in full (up to [`MonitorConfig::probe_message_limit`])
//! only the first time; after that only its newest
//! [`MonitorConfig::probe_tail_messages`] are read and merged by message id, since a
//! session being worked on changes at every refresh and its history does not. When
//! the newest messages do not reach back to the last one read, the session is read in
//! full again. A session seen busy stays busy for [`MonitorConfig::busy_hold`], because
//! OpenCode reports idle for a moment between two steps of one turn and the
//! dashboard would flicker. The result is published as one immutable
//! [`MonitorSnapshot`] through a `watch` channel: readers never block the loop.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use openloom_core::{AgentMessage, Health, Session, SessionActivity};
use openloom_opencode::OpencodeClient;
use serde::Serialize;
use tokio::sync::{Mutex, Notify, watch};

use crate::telemetry::{SessionUsage, UsageItem, UsageReport, usage_item, usage_report};

/// The monitor's pace and bounds.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Time between refreshes.
    pub refresh_every: Duration,
    /// How long a session seen busy is still shown busy.
    pub busy_hold: Duration,
    /// Sessions whose messages are read per refresh.
    pub probes_per_refresh: usize,
    /// Most messages read from a session the first time (and after a gap).
    pub probe_message_limit: usize,
    /// Messages read from a session already read: its newest ones.
    pub probe_tail_messages: usize,
    /// Sessions updated this recently get their directory's status read, and may be
    /// shown busy because of an unfinished message.
    pub recent_window: Duration,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            refresh_every: Duration::from_secs(4),
            busy_hold: Duration::from_secs(12),
            probes_per_refresh: 8,
            probe_message_limit: 1000,
            probe_tail_messages: 20,
            recent_window: Duration::from_secs(600),
        }
    }
}

/// What the monitor knows, as of its last refresh.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MonitorSnapshot {
    /// OpenCode's health; `None` before the first refresh.
    pub health: Option<Health>,
    /// Every session, archived and sub-agent ones included, newest first.
    pub sessions: Vec<Session>,
    /// Activity of each visible session (busy held for a while, see the module docs).
    pub statuses: HashMap<String, SessionActivity>,
    /// Token usage by period.
    pub usage: UsageReport,
    /// Why the last refresh could not complete, if it could not.
    pub error: Option<String>,
    /// When the last refresh finished.
    pub refreshed_at: Option<DateTime<Utc>>,
}

/// The sessions of one directory.
#[derive(Debug, Clone, Serialize)]
pub struct DirectorySessions {
    /// The directory (`(unknown)` when a session has none).
    pub directory: String,
    /// Its visible sessions, newest first.
    pub sessions: Vec<Session>,
}

/// Sessions the dashboard lists: not archived and not a sub-agent's.
pub fn is_visible(session: &Session) -> bool {
    !session.id.is_empty() && session.parent_id.is_none() && session.archived_at.is_none()
}

fn updated(session: &Session) -> Option<DateTime<Utc>> {
    session.updated_at.or(session.created_at)
}

impl MonitorSnapshot {
    /// Visible sessions, newest first.
    pub fn visible_sessions(&self) -> Vec<Session> {
        self.sessions.iter().filter(|s| is_visible(s)).cloned().collect()
    }

    /// Archived top-level sessions.
    pub fn archived_sessions(&self) -> Vec<Session> {
        self.sessions
            .iter()
            .filter(|s| s.archived_at.is_some() && s.parent_id.is_none())
            .cloned()
            .collect()
    }

    /// Visible sessions grouped by directory; directories with the most recent
    /// session first, `(unknown)` last.
    pub fn by_directory(&self) -> Vec<DirectorySessions> {
        let mut groups: Vec<DirectorySessions> = Vec::new();
        for session in self.sessions.iter().filter(|s| is_visible(s)) {
            let directory = if session.directory.is_empty() {
                "(unknown)".to_owned()
            } else {
                session.directory.clone()
            };
            match groups.iter_mut().find(|g| g.directory == directory) {
                Some(group) => group.sessions.push(session.clone()),
                None => {
                    groups.push(DirectorySessions { directory, sessions: vec![session.clone()] })
                }
            }
        }
        let newest = |g: &DirectorySessions| g.sessions.iter().filter_map(updated).max();
        groups.sort_by(|a, b| {
            (a.directory == "(unknown)")
                .cmp(&(b.directory == "(unknown)"))
                .then_with(|| newest(b).cmp(&newest(a)))
        });
        groups
    }

    /// A session by id.
    pub fn find(&self, id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    /// What several monitors (one per OpenCode server of a worker) know, as one
    /// snapshot: every server's sessions, newest first, their statuses (session ids
    /// are unique across servers) and their token usage summed.
    /// Health and the refresh time are the first's; the error is the first one any
    /// of them has. One snapshot: itself.
    pub fn merged(parts: &[Arc<MonitorSnapshot>]) -> Arc<MonitorSnapshot> {
        match parts {
            [] => Arc::new(MonitorSnapshot::default()),
            [only] => Arc::clone(only),
            [first, ..] => {
                let mut sessions: Vec<Session> =
                    parts.iter().flat_map(|part| part.sessions.iter().cloned()).collect();
                // Stable: one server's own order stays among equal times.
                sessions.sort_by_key(|session| std::cmp::Reverse(updated(session)));
                let statuses = parts
                    .iter()
                    .flat_map(|part| part.statuses.iter())
                    .map(|(id, activity)| (id.clone(), activity.clone()))
                    .collect();
                Arc::new(MonitorSnapshot {
                    health: first.health.clone(),
                    sessions,
                    statuses,
                    usage: UsageReport::merged(
                        &parts.iter().map(|part| &part.usage).collect::<Vec<_>>(),
                    ),
                    error: parts.iter().find_map(|part| part.error.clone()),
                    refreshed_at: first.refreshed_at,
                })
            }
        }
    }
}

/// What the monitor remembers between refreshes.
#[derive(Default)]
struct Memory {
    last_busy: HashMap<String, Instant>,
    probed: HashMap<String, Probed>,
    /// Sessions OpenCode reported busy or retrying at the last successful status
    /// read (without the display hold), to notice the ones that went idle.
    active: HashSet<String>,
}

/// Called with the id of each session that went idle between two refreshes.
type IdleListener = Box<dyn Fn(&str) + Send + Sync>;

struct Probed {
    /// The session's update time when it was read.
    updated_at: Option<DateTime<Utc>>,
    /// Usage of every assistant message read so far, by message id.
    items: HashMap<String, UsageItem>,
    /// The newest message read, to tell whether a read of the newest messages left a
    /// gap.
    newest: Option<String>,
    /// The newest messages show a reply still being written. Only counts while the
    /// session is recent: a reply abandoned mid-way must not show busy for ever.
    unfinished: bool,
}

/// The messages of one probe, and whether they are the whole (bounded) history.
struct Read {
    messages: Vec<AgentMessage>,
    full: bool,
}

/// Keeps a [`MonitorSnapshot`] fresh. Share it behind an `Arc`.
pub struct SessionMonitor {
    client: OpencodeClient,
    config: MonitorConfig,
    sender: watch::Sender<Arc<MonitorSnapshot>>,
    memory: Mutex<Memory>,
    poke: Notify,
    on_idle: std::sync::OnceLock<IdleListener>,
}

impl std::fmt::Debug for SessionMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMonitor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl SessionMonitor {
    /// A monitor of `client`'s server with an empty snapshot; nothing runs until
    /// [`SessionMonitor::run`] or [`SessionMonitor::refresh`] is called.
    pub fn new(client: OpencodeClient, config: MonitorConfig) -> Self {
        let (sender, _) = watch::channel(Arc::new(MonitorSnapshot::default()));
        SessionMonitor {
            client,
            config,
            sender,
            memory: Mutex::new(Memory::default()),
            poke: Notify::new(),
            on_idle: std::sync::OnceLock::new(),
        }
    }

    /// Shares what the monitor learns: `listener` is called with each session that
    /// went from busy (or retrying) to idle between two refreshes. The server passes
    /// it to the harness, so a lost OpenCode event stream does not leave a finished
    /// step waiting for the next scheduled check. Only the first listener set counts.
    pub fn on_idle(&self, listener: impl Fn(&str) + Send + Sync + 'static) {
        if self.on_idle.set(Box::new(listener)).is_err() {
            tracing::warn!("session monitor already has an idle listener; the new one is ignored");
        }
    }

    /// The latest snapshot. Cheap: an `Arc` clone, never waits on OpenCode.
    pub fn snapshot(&self) -> Arc<MonitorSnapshot> {
        Arc::clone(&self.sender.borrow())
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MonitorSnapshot>> {
        self.sender.subscribe()
    }

    /// Asks the running loop to refresh now (after the API changed a session).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Refreshes until `stop` turns true (or its sender is dropped).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                break;
            }
            self.refresh().await;
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                () = tokio::time::sleep(self.config.refresh_every) => {}
                () = self.poke.notified() => {}
            }
        }
    }

    /// One refresh: health, sessions, statuses, a few message probes; then publishes.
    /// Failures are recorded in the snapshot's `error`; what was known stays.
    pub async fn refresh(&self) {
        let mut memory = self.memory.lock().await;
        let previous = self.snapshot();
        let health = self.client.health().await;
        if !health.is_ok() {
            let reason = match &health {
                Health::Unreachable { reason } | Health::Unauthorized { reason } => reason.clone(),
                Health::Reachable { .. } => String::new(),
            };
            // The sessions stay listed as last seen, but an OpenCode that cannot be
            // reached is working on nothing we can see: no stale "busy" (the reference
            // showed no statuses either).
            memory.last_busy.clear();
            self.publish(MonitorSnapshot {
                health: Some(health),
                error: Some(reason),
                statuses: HashMap::new(),
                refreshed_at: Some(Utc::now()),
                ..(*previous).clone()
            });
            return;
        }
        let sessions = match self.client.list_sessions().await {
            Ok(sessions) => sessions,
            Err(error) => {
                tracing::warn!(%error, "session monitor could not list sessions");
                self.publish(MonitorSnapshot {
                    health: Some(health),
                    error: Some(format!("cannot list sessions: {error}")),
                    refreshed_at: Some(Utc::now()),
                    ..(*previous).clone()
                });
                return;
            }
        };
        let now = Utc::now();
        // A window reaching before the start of time (a huge configured duration)
        // makes every session recent instead of overflowing.
        let recent_since = chrono::Duration::from_std(self.config.recent_window)
            .ok()
            .and_then(|window| now.checked_sub_signed(window));
        let is_recent =
            |s: &Session| updated(s).is_some_and(|u| recent_since.is_none_or(|since| u >= since));
        let visible: Vec<&Session> = sessions.iter().filter(|s| is_visible(s)).collect();

        let mut directories: Vec<String> = Vec::new();
        for session in visible.iter().filter(|s| is_recent(s)) {
            if !session.directory.is_empty() && !directories.contains(&session.directory) {
                directories.push(session.directory.clone());
            }
        }
        directories.truncate(8);
        let mut error = None;
        let mut went_idle = Vec::new();
        let raw_status = match self.client.session_status(&directories).await {
            Ok(map) => {
                let active: HashSet<String> = map
                    .iter()
                    .filter(|(_, activity)| **activity != SessionActivity::Idle)
                    .map(|(id, _)| id.clone())
                    .collect();
                went_idle = memory.active.difference(&active).cloned().collect();
                memory.active = active;
                map
            }
            Err(e) => {
                error = Some(format!("cannot read session statuses: {e}"));
                previous.statuses.clone()
            }
        };

        self.probe(&mut memory, &sessions).await;

        let instant = Instant::now();
        let mut statuses = HashMap::new();
        for session in &visible {
            let probed_busy =
                is_recent(session) && memory.probed.get(&session.id).is_some_and(|p| p.unfinished);
            let mut activity =
                raw_status.get(&session.id).cloned().unwrap_or(SessionActivity::Idle);
            if probed_busy && activity == SessionActivity::Idle {
                activity = SessionActivity::Busy;
            }
            if activity != SessionActivity::Idle {
                memory.last_busy.insert(session.id.clone(), instant);
            } else if memory
                .last_busy
                .get(&session.id)
                .is_some_and(|at| instant.duration_since(*at) < self.config.busy_hold)
            {
                activity = SessionActivity::Busy;
            }
            statuses.insert(session.id.clone(), activity);
        }
        memory.last_busy.retain(|_, at| instant.duration_since(*at) < self.config.busy_hold);
        // A set, not a scan per entry: thousands of sessions are a normal history.
        let listed: HashSet<&str> = sessions.iter().map(|s| s.id.as_str()).collect();
        memory.probed.retain(|id, _| listed.contains(id.as_str()));

        let usage: Vec<SessionUsage> = sessions
            .iter()
            .map(|s| SessionUsage {
                session: s.clone(),
                items: memory
                    .probed
                    .get(&s.id)
                    .map(|p| p.items.values().cloned().collect())
                    .unwrap_or_default(),
            })
            .collect();
        self.publish(MonitorSnapshot {
            health: Some(health),
            usage: usage_report(&usage, now),
            sessions,
            statuses,
            error,
            refreshed_at: Some(Utc::now()),
        });
        if let Some(listener) = self.on_idle.get() {
            for session_id in &went_idle {
                listener(session_id);
            }
        }
    }

    /// Reads the messages of the sessions that changed since last read, newest first.
    async fn probe(&self, memory: &mut Memory, sessions: &[Session]) {
        let mut due: Vec<&Session> = sessions
            .iter()
            .filter(|s| memory.probed.get(&s.id).is_none_or(|p| p.updated_at != updated(s)))
            .collect();
        due.sort_by_key(|s| std::cmp::Reverse(updated(s)));
        due.truncate(self.config.probes_per_refresh);
        // Owned before the futures are built: a closure over borrowed sessions makes
        // the refresh future not `Send` (a higher-ranked lifetime limitation).
        let due: Vec<(Session, Option<Option<String>>)> = due
            .into_iter()
            .map(|s| (s.clone(), memory.probed.get(&s.id).map(|p| p.newest.clone())))
            .collect();
        let probes = due.into_iter().map(|(session, newest)| async move {
            let result = self.read(&session, newest).await;
            (session, result)
        });
        let results: Vec<(Session, _)> = stream::iter(probes).buffer_unordered(4).collect().await;
        for (session, result) in results {
            let read = match result {
                Ok(read) => read,
                Err(error) => {
                    tracing::debug!(session = %session.id, %error, "could not read session messages");
                    continue;
                }
            };
            let probed = memory.probed.entry(session.id.clone()).or_insert_with(|| Probed {
                updated_at: None,
                items: HashMap::new(),
                newest: None,
                unfinished: false,
            });
            if read.full {
                probed.items.clear();
            }
            for message in &read.messages {
                if let Some(item) = usage_item(&session, message) {
                    probed.items.insert(message.id.clone(), item);
                }
            }
            probed.updated_at = updated(&session);
            probed.newest = read.messages.last().map(|m| m.id.clone()).or(probed.newest.take());
            probed.unfinished = openloom_prompts::messages_indicate_busy(&read.messages);
        }
    }

    /// Reads a session's messages: all of them (bounded) the first time, else the
    /// newest few, falling back to all when those do not reach back to `newest`, the
    /// last message read before (`Some(None)`: none was).
    async fn read(
        &self,
        session: &Session,
        newest: Option<Option<String>>,
    ) -> Result<Read, openloom_opencode::Error> {
        let session_ref = session.as_ref();
        let tail = self.config.probe_tail_messages;
        if let Some(newest) = newest {
            if tail > 0 {
                let messages = self.client.messages(&session_ref, tail).await?;
                let complete = messages.len() < tail;
                let reaches_back = newest.is_none_or(|id| messages.iter().any(|m| m.id == id));
                if complete || reaches_back {
                    return Ok(Read { messages, full: complete });
                }
            }
        }
        let messages = self.client.messages(&session_ref, self.config.probe_message_limit).await?;
        Ok(Read { messages, full: true })
    }

    fn publish(&self, snapshot: MonitorSnapshot) {
        self.sender.send_replace(Arc::new(snapshot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, dir: &str, minutes_ago: i64) -> Session {
        let at = Utc::now() - chrono::Duration::minutes(minutes_ago);
        Session {
            id: id.into(),
            directory: dir.into(),
            title: String::new(),
            parent_id: None,
            created_at: Some(at),
            updated_at: Some(at),
            archived_at: None,
        }
    }

    #[test]
    fn snapshots_of_several_servers_merge_newest_first_with_the_firsts_health() {
        let first = Arc::new(MonitorSnapshot {
            health: Some(Health::Reachable { version: Some("1.18.34".into()) }),
            sessions: vec![session("ses_a_new", "/a", 1), session("ses_a_old", "/a", 9)],
            statuses: HashMap::from([("ses_a_new".into(), SessionActivity::Busy)]),
            ..MonitorSnapshot::default()
        });
        let second = Arc::new(MonitorSnapshot {
            health: Some(Health::Unreachable { reason: "down".into() }),
            sessions: vec![session("ses_b", "/b", 5)],
            statuses: HashMap::from([("ses_b".into(), SessionActivity::Idle)]),
            error: Some("down".into()),
            ..MonitorSnapshot::default()
        });
        let merged = MonitorSnapshot::merged(&[Arc::clone(&first), second]);
        let ids: Vec<&str> = merged.sessions.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["ses_a_new", "ses_b", "ses_a_old"]);
        assert_eq!(merged.statuses.len(), 2);
        assert!(matches!(merged.health, Some(Health::Reachable { .. })), "the first's health");
        assert_eq!(merged.error.as_deref(), Some("down"), "any server's error shows");
        assert!(Arc::ptr_eq(&MonitorSnapshot::merged(std::slice::from_ref(&first)), &first));
    }

    #[test]
    fn groups_by_directory_newest_first_unknown_last() {
        let mut archived = session("ses_arch", "/a", 0);
        archived.archived_at = Some(Utc::now());
        let mut child = session("ses_child", "/a", 0);
        child.parent_id = Some("ses_a1".into());
        let snapshot = MonitorSnapshot {
            sessions: vec![
                session("ses_none", "", 0),
                session("ses_b", "/b", 1),
                session("ses_a1", "/a", 5),
                session("ses_a2", "/a", 2),
                archived,
                child,
            ],
            ..MonitorSnapshot::default()
        };
        let groups = snapshot.by_directory();
        let names: Vec<&str> = groups.iter().map(|g| g.directory.as_str()).collect();
        assert_eq!(names, ["/b", "/a", "(unknown)"]);
        assert_eq!(groups[1].sessions.len(), 2);
        assert_eq!(snapshot.visible_sessions().len(), 4);
        assert_eq!(snapshot.archived_sessions()[0].id, "ses_arch");
    }
}
