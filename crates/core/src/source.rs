//! Sources of work: specs that arrive over time — a spec file, an inbox directory,
//! GitHub issues — each with the [`Origin`] that makes it importable only once.
//!
//! A [`Source`] is a pull stream: [`Source::next`] waits for the next [`Arrival`] and
//! [`Source::settle`] hears what became of it (the inbox moves its file only then).
//! [`take_in`] is the one loop that drives any source into a [`Harness`]: each arrival
//! goes through [`Harness::add_task_once`], the path every task takes (workspace
//! policy, task defaults, the `created` event), with its origin recorded in the
//! same store transaction as the task. So a source may offer the same thing twice —
//! after a crash between creating a task and moving its file, or when GitHub
//! redelivers a hook — and it still becomes one task.
//!
//! [`feed`] makes a source out of a channel, for producers that are pushed to rather
//! than polled (the server's GitHub route answers at once and queues the arrival).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc, watch};

use crate::error::{Error, Result};
use crate::harness::Harness;
use crate::spec::TaskSpec;
use crate::task::TaskId;

/// Longest origin key accepted, in bytes: keys are stored in a unique index.
pub const MAX_ORIGIN_LEN: usize = 512;

/// Where a task came from, as a stable key: the same thing offered again has the same
/// key (`inbox:<file name>@<sha256 of its bytes>`, `github:<X-GitHub-Delivery>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

impl Origin {
    /// An origin `<kind>:<key>`. `kind` is a short lowercase word; `key` must be
    /// non-empty, and the whole at most [`MAX_ORIGIN_LEN`] bytes.
    pub fn new(kind: &str, key: &str) -> Result<Origin> {
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            return Err(Error::Invalid(format!(
                "origin kind {kind:?} must be a lowercase word such as \"inbox\""
            )));
        }
        if key.trim().is_empty() || key.chars().any(char::is_control) {
            return Err(Error::Invalid(format!(
                "the {kind} origin key {key:?} must be non-empty text without control characters"
            )));
        }
        let text = format!("{kind}:{key}");
        if text.len() > MAX_ORIGIN_LEN {
            return Err(Error::Invalid(format!(
                "the {kind} origin key is {} bytes; at most {MAX_ORIGIN_LEN} are kept",
                text.len()
            )));
        }
        Ok(Origin(text))
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One piece of work a source offers: what to do, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The dedupe key.
    pub origin: Origin,
    /// The task to create (its workspace not yet resolved against the policy).
    pub spec: TaskSpec,
}

/// What [`Harness::add_task_once`] did with an arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admitted {
    /// A new pending task.
    New(TaskId),
    /// The origin was imported before, as this task: nothing created.
    AlreadyHad(TaskId),
}

impl Admitted {
    /// The task the arrival is (or was already) recorded as.
    pub fn task_id(&self) -> &TaskId {
        match self {
            Admitted::New(id) | Admitted::AlreadyHad(id) => id,
        }
    }
}

/// A source of work over time.
#[async_trait]
pub trait Source: Send + Sync {
    /// A short name for logs ("inbox", "github", "spec file").
    fn name(&self) -> &str;

    /// The next arrival, waiting until there is one; `Ok(None)` when the source has
    /// nothing more, ever (a spec file after its spec, a closed feed). Dropping the
    /// future (shutdown) loses nothing: an arrival is only settled through
    /// [`Source::settle`].
    async fn next(&self) -> Result<Option<Arrival>>;

    /// Hears what became of `arrival`: admitted (new or already had), or refused
    /// (say, a workspace outside the allowed roots). The default does nothing.
    async fn settle(&self, arrival: &Arrival, outcome: &Result<Admitted>) {
        let _ = (arrival, outcome);
    }
}

/// Pause after a source fails to produce, before asking it again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Feeds every arrival of `source` into `harness` ([`Harness::add_task_once`]) and
/// settles it, until `stop` turns true or the source ends. A failing source is
/// logged and asked again after a pause: one bad file must not stop the intake.
pub async fn take_in(
    source: Arc<dyn Source>,
    harness: Arc<Harness>,
    mut stop: watch::Receiver<bool>,
) {
    let name = source.name().to_owned();
    tracing::info!(source = %name, "taking in work");
    loop {
        if *stop.borrow() {
            break;
        }
        let next = tokio::select! {
            next = source.next() => next,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let arrival = match next {
            Ok(Some(arrival)) => arrival,
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(source = %name, %error, "source failed; asking again shortly");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER_ERROR) => continue,
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
        };
        let outcome = harness.add_task_once(arrival.spec.clone(), &arrival.origin).await;
        match &outcome {
            Ok(Admitted::New(id)) => {
                tracing::info!(source = %name, origin = %arrival.origin, task = %id, "task created")
            }
            Ok(Admitted::AlreadyHad(id)) => tracing::info!(
                source = %name, origin = %arrival.origin, task = %id,
                "already imported; not created again"
            ),
            Err(error) => {
                tracing::warn!(source = %name, origin = %arrival.origin, %error, "task refused")
            }
        }
        source.settle(&arrival, &outcome).await;
    }
    tracing::info!(source = %name, "intake stopped");
}

/// A source fed through a channel: [`Feeder::offer`] on one side, [`Source::next`]
/// on the other. Bounded, so a flood of pushes is refused rather than queued without
/// limit.
pub fn feed(name: &str, capacity: usize) -> (Feeder, Feed) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    (Feeder { sender }, Feed { name: name.to_owned(), receiver: Mutex::new(receiver) })
}

/// The pushing side of a [`feed`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Feeder {
    sender: mpsc::Sender<Arrival>,
}

/// Why [`Feeder::offer`] did not queue an arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full: try again later.
    Full,
    /// Nothing takes from the feed any more (shutting down).
    Closed,
}

impl Feeder {
    /// Queues `arrival` without waiting.
    pub fn offer(&self, arrival: Arrival) -> std::result::Result<(), Refused> {
        self.sender.try_send(arrival).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => Refused::Full,
            mpsc::error::TrySendError::Closed(_) => Refused::Closed,
        })
    }
}

/// The source side of a [`feed`]; ends when every [`Feeder`] is dropped.
#[derive(Debug)]
pub struct Feed {
    name: String,
    receiver: Mutex<mpsc::Receiver<Arrival>>,
}

#[async_trait]
impl Source for Feed {
    fn name(&self) -> &str {
        &self.name
    }

    async fn next(&self) -> Result<Option<Arrival>> {
        Ok(self.receiver.lock().await.recv().await)
    }
}

#[cfg(test)]
mod tests;
