//! Change hints: every write transaction NOTIFYs [`CHANNEL`] with its new store
//! version (see `PostgresStore::commit`), and one listener per store LISTENs there
//! and publishes the highest version heard on a `watch` channel.
//!
//! # Why a hint and never the data
//! PostgreSQL drops notifications sent while a listener is disconnected, and a
//! payload is only what the writer believed. So a notification only wakes a reader,
//! which then reads the store; the reader also polls, so a lost notification (a
//! dropped connection, a restart) delays it by one poll and loses nothing.
//!
//! # Why its own connection
//! The listener holds one connection for its whole life. It gets it from a pool of
//! one with the store's connect options rather than from the store's pool, so it
//! never takes a connection the writers need.

use std::time::Duration;

use openloom_core::StoreVersion;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::error::Target;

/// The channel every write NOTIFYs, with the new store version as payload.
pub(crate) const CHANNEL: &str = "openloom_changes";

/// Bumps the store version and NOTIFYs [`CHANNEL`] with the new one, in one
/// statement (no extra round trip per write); answers the new version first.
pub(crate) const BUMP_AND_NOTIFY: &str = "UPDATE meta SET value = value + 1 \
     WHERE key = 'store_version' RETURNING value, pg_notify('openloom_changes', value::text)::text";

/// First wait after a failed (re)connection; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts. Readers poll meanwhile.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Starts the listener for the database of `pool` on the current runtime; `None`
/// when there is no runtime (readers then only poll).
///
/// The listener stops when every receiver of the answer is dropped.
pub(crate) fn spawn(pool: &PgPool, target: &Target) -> Option<watch::Receiver<StoreVersion>> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(database = %target, "no async runtime: change hints are off, readers poll");
        return None;
    };
    let own = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with((*pool.connect_options()).clone());
    let (sender, receiver) = watch::channel(0);
    runtime.spawn(run(own, target.clone(), sender));
    Some(receiver)
}

/// LISTENs until every receiver is gone, reconnecting with backoff.
async fn run(pool: PgPool, target: Target, hints: watch::Sender<StoreVersion>) {
    let mut backoff = FIRST_BACKOFF;
    // Log the first failure of a streak once, as a warning, and its end once.
    let mut failing = false;
    loop {
        let outcome = tokio::select! {
            outcome = listen(&pool, &hints, &mut backoff, &mut failing, &target) => outcome,
            () = hints.closed() => break,
        };
        // Writes may have happened while the connection was gone: wake the readers
        // so they look now instead of at their next poll.
        hints.send_modify(|_| {});
        match outcome {
            Lost::Quietly => {
                tracing::info!(database = %target, "change listener lost its connection; reconnecting");
            }
            Lost::Error(error) => {
                if !failing {
                    tracing::warn!(database = %target, %error, "change listener disconnected; \
                        reconnecting with backoff, readers poll meanwhile");
                    failing = true;
                } else {
                    tracing::debug!(database = %target, %error, "change listener still disconnected");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = hints.closed() => break,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    pool.close().await;
}

/// Why [`listen`] returned.
enum Lost {
    /// The connection closed; reconnect at once.
    Quietly,
    /// Connecting or reading failed; reconnect after the backoff.
    Error(sqlx::Error),
}

/// One connection's life: connect, LISTEN, forward notifications until it ends.
async fn listen(
    pool: &PgPool,
    hints: &watch::Sender<StoreVersion>,
    backoff: &mut Duration,
    failing: &mut bool,
    target: &Target,
) -> Lost {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(listener) => listener,
        Err(error) => return Lost::Error(error),
    };
    // A reconnection inside `try_recv` would LISTEN again, but one that fails there
    // leaves the listener half set up; a fresh listener per connection is simpler.
    listener.eager_reconnect(false);
    if let Err(error) = listener.listen(CHANNEL).await {
        return Lost::Error(error);
    }
    if *failing {
        tracing::info!(database = %target, "change listener reconnected");
        *failing = false;
    }
    *backoff = FIRST_BACKOFF;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                // An older or unreadable hint still wakes the readers (it is news of
                // a write) without lowering the value.
                let heard = hinted_version(notification.payload());
                hints.send_modify(|latest| *latest = (*latest).max(heard));
            }
            Ok(None) => return Lost::Quietly,
            Err(error) => return Lost::Error(error),
        }
    }
}

/// The version a notification's payload names; 0 for a payload that is not one (a
/// foreign NOTIFY on our channel still wakes readers, who read the truth).
fn hinted_version(payload: &str) -> StoreVersion {
    payload.trim().parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bump_notifies_the_channel_listened_on() {
        assert!(BUMP_AND_NOTIFY.contains(&format!("pg_notify('{CHANNEL}',")));
    }

    #[test]
    fn a_payload_is_a_version_or_zero() {
        assert_eq!(hinted_version("42"), 42);
        assert_eq!(hinted_version(" 7\n"), 7);
        assert_eq!(hinted_version(""), 0);
        assert_eq!(hinted_version("not a number"), 0);
        assert_eq!(hinted_version("-3"), 0);
    }
}
