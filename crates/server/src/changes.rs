//! The change watcher: one per server, it notices store writes this process's bus
//! did not announce (another worker on the same PostgreSQL database, `openloom
//! watch` on the same SQLite file) and hands every event stream one fresh snapshot
//! to resynchronise from.
//!
//! # How it learns of a change
//! Store versions grow by one per write, in commit order, so the versions the local
//! bus announced ([`Coverage`]) show exactly which writes were someone else's: a
//! store version past the announced run is a write this process did not announce.
//! The watcher reads [`openloom_core::Store::store_version`] every [`POLL`] (the
//! fallback every store has) and at once when the store hints at a write
//! ([`openloom_core::Store::version_hints`]: PostgreSQL's LISTEN/NOTIFY). A hint is
//! only a wake-up; the version and the tasks are always read from the store.
//!
//! # Why a snapshot and not the changed tasks
//! Tasks do not record the version of their last write, and a deleted task leaves
//! no row, so "what changed since V" cannot be read; one page of the newest tasks
//! can, shows deletions by absence, and is what every stream starts with anyway. It
//! is read once per change for all streams (never per client), at most once per
//! [`MIN_GAP`], and not at all while no stream is open.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openloom_core::{Store, StoreVersion};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::routes::events::Snapshot;
use crate::state::WeakState;

/// How often the store version is read when nothing hints at a change.
pub(crate) const POLL: Duration = Duration::from_secs(1);
/// How long a write may take to be announced on the local bus after it commits
/// before the watcher takes it for another process's.
const SETTLE: Duration = Duration::from_millis(200);
/// Least time between two resynchronisations: a busy other worker costs streams at
/// most one snapshot per gap, and delays none of its changes by more than it.
const MIN_GAP: Duration = Duration::from_millis(500);
/// Snapshots a stream may fall behind by; a newer one replaces any it missed.
const CHANNEL_CAPACITY: usize = 4;

/// Which store versions this process has seen: every version up to `covered`, and
/// the announced ones past it. Pure bookkeeping, so the decision is testable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Coverage {
    covered: StoreVersion,
    ahead: BTreeSet<StoreVersion>,
}

impl From<StoreVersion> for Coverage {
    /// Everything up to `version` seen.
    fn from(version: StoreVersion) -> Self {
        Coverage { covered: version, ahead: BTreeSet::new() }
    }
}

impl Coverage {
    /// The local bus announced a write at `version`.
    pub(crate) fn announced(&mut self, version: StoreVersion) {
        if version > self.covered {
            self.ahead.insert(version);
            self.advance();
        }
    }

    /// A snapshot as new as `version` was sent: everything up to it is seen.
    pub(crate) fn resynced(&mut self, version: StoreVersion) {
        self.covered = self.covered.max(version);
        self.ahead.retain(|v| *v > self.covered);
        self.advance();
    }

    /// Whether the store at `version` holds a write nobody here announced.
    pub(crate) fn missing(&self, version: StoreVersion) -> bool {
        version > self.covered
    }

    fn advance(&mut self) {
        while self.ahead.remove(&(self.covered + 1)) {
            self.covered += 1;
        }
    }
}

/// Starts the watcher for `state`, which has seen every write up to `seen`; streams
/// subscribe to the answer. The watcher ends when the server closes or the state is
/// dropped.
pub(crate) fn spawn(state: WeakState, seen: StoreVersion) -> broadcast::Sender<Arc<Snapshot>> {
    let (sender, _) = broadcast::channel(CHANNEL_CAPACITY);
    match (tokio::runtime::Handle::try_current(), state.upgrade()) {
        (Ok(runtime), Some(strong)) => {
            let watcher = Watcher {
                store: Arc::clone(strong.store()),
                bus: strong.harness().bus().receiver(),
                hints: strong.store().version_hints(),
                closing: strong.closing(),
                sender: sender.clone(),
                state,
                coverage: Coverage::from(seen),
            };
            runtime.spawn(watcher.run());
        }
        _ => tracing::error!("no async runtime: event streams will not see other workers' changes"),
    }
    sender
}

struct Watcher {
    store: Arc<dyn Store>,
    bus: broadcast::Receiver<openloom_core::Event>,
    hints: Option<watch::Receiver<StoreVersion>>,
    closing: watch::Receiver<bool>,
    sender: broadcast::Sender<Arc<Snapshot>>,
    state: WeakState,
    coverage: Coverage,
}

/// What woke the watcher.
enum Wake {
    /// Time to look at the store.
    Look,
    /// Stop for good.
    Stop,
}

impl Watcher {
    async fn run(mut self) {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now().checked_sub(MIN_GAP).unwrap_or_else(Instant::now);
        loop {
            match self.wake(&mut poll).await {
                Wake::Stop => break,
                // A state nobody holds any more (a router dropped without closing)
                // has no streams left to serve.
                Wake::Look if self.state.upgrade().is_none() => break,
                Wake::Look => {}
            }
            let version = match self.store.store_version().await {
                Ok(version) => version,
                Err(error) => {
                    tracing::debug!(%error, "change watcher could not read the store version");
                    continue;
                }
            };
            if !self.coverage.missing(version) {
                continue;
            }
            // A local write commits before its event is emitted: give the bus a
            // moment, and space resynchronisations, before taking it for foreign.
            let deadline = (Instant::now() + SETTLE).max(last + MIN_GAP);
            if !self.settle(version, deadline).await {
                continue;
            }
            if self.sender.receiver_count() == 0 {
                // No stream to tell; a new one starts from its own snapshot.
                self.coverage.resynced(version);
                continue;
            }
            let Some(state) = self.state.upgrade() else { break };
            match Snapshot::read(&state).await {
                Ok(snapshot) => {
                    tracing::debug!(
                        version = snapshot.version,
                        "the store changed beyond this process's events; streams resynchronise"
                    );
                    self.coverage.resynced(snapshot.version);
                    last = Instant::now();
                    let _ = self.sender.send(Arc::new(snapshot));
                }
                Err(error) => {
                    tracing::warn!(%error, "change watcher could not read a snapshot; retrying")
                }
            }
        }
        tracing::debug!("change watcher stopped");
    }

    /// Waits for a poll tick, a hint or the end, noting the bus's announcements.
    async fn wake(&mut self, poll: &mut tokio::time::Interval) -> Wake {
        loop {
            let hint = async {
                match &mut self.hints {
                    Some(hints) => hints.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.bus.recv() => match received {
                    Ok(event) => self.coverage.announced(event.store_version),
                    // Missed announcements look like foreign writes: one extra
                    // snapshot, never a lost change.
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Wake::Stop,
                },
                alive = hint => {
                    if !alive {
                        self.hints = None;
                    }
                    return Wake::Look;
                }
                _ = poll.tick() => return Wake::Look,
                _ = self.closing.wait_for(|closed| *closed) => return Wake::Stop,
            }
        }
    }

    /// Notes the bus's announcements until `deadline`; whether `version` still holds
    /// a write nobody here announced then.
    async fn settle(&mut self, version: StoreVersion, deadline: Instant) -> bool {
        while self.coverage.missing(version) {
            tokio::select! {
                received = self.bus.recv() => match received {
                    Ok(event) => self.coverage.announced(event.store_version),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return true,
                },
                () = tokio::time::sleep_until(deadline) => return true,
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coverage(announced: &[StoreVersion]) -> Coverage {
        let mut coverage = Coverage::default();
        for version in announced {
            coverage.announced(*version);
        }
        coverage
    }

    #[test]
    fn a_run_of_local_announcements_covers_the_store() {
        let coverage = coverage(&[1, 2, 3]);
        assert!(!coverage.missing(3));
        assert!(coverage.missing(4));
    }

    #[test]
    fn announcements_out_of_order_cover_once_the_run_is_whole() {
        let mut coverage = coverage(&[2, 3]);
        assert!(coverage.missing(3), "version 1 was never announced");
        coverage.announced(1);
        assert!(!coverage.missing(3));
    }

    #[test]
    fn a_foreign_write_between_local_ones_is_noticed() {
        // Versions 1 and 3 are ours; 2 is another worker's. A high-water mark alone
        // (3) would hide it.
        let coverage = coverage(&[1, 3]);
        assert!(coverage.missing(3));
        assert!(coverage.missing(2));
        assert!(!coverage.missing(1));
    }

    #[test]
    fn events_sharing_a_version_count_once() {
        let coverage = coverage(&[1, 1, 2, 2]);
        assert!(!coverage.missing(2));
    }

    #[test]
    fn a_resync_covers_everything_up_to_its_version() {
        let mut coverage = coverage(&[1, 5, 7]);
        coverage.resynced(5);
        assert!(!coverage.missing(5));
        assert!(coverage.missing(6), "6 was announced by nobody");
        coverage.announced(6);
        assert!(!coverage.missing(7), "5 resynced, 6 and 7 announced");
        // Older announcements after a resync change nothing.
        coverage.announced(3);
        assert_eq!(coverage, {
            let mut expected = Coverage::default();
            expected.resynced(7);
            expected
        });
    }

    #[test]
    fn a_watcher_started_at_a_version_covers_it_and_nothing_after() {
        let mut coverage = Coverage::from(41);
        assert!(!coverage.missing(41));
        assert!(coverage.missing(42));
        coverage.announced(42);
        assert!(!coverage.missing(42));
    }

    #[test]
    fn a_resync_never_moves_coverage_back() {
        let mut coverage = coverage(&[1, 2, 3]);
        coverage.resynced(2);
        assert!(!coverage.missing(3));
    }
}
