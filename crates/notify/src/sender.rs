//! [`Sender`]: drains the outbox over HTTP.
//!
//! Each hook has its own bounded set of attempts in flight, so a receiver that
//! hangs fills only its own slots: the other hooks' deliveries still go out at
//! once. A claim moves a delivery's `next_attempt_at` past the longest attempt, so
//! a sender killed mid-attempt leaves it due again shortly after, and a second
//! sender on the same database never sends it meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use openloom_core::outbox::Delivery;
use openloom_core::{Attempt, EventBus, Outbox};
use tokio::sync::{Notify, Semaphore, broadcast, watch};

use crate::error::{Error, Result};
use crate::hook::Webhook;
use crate::render::render;
use crate::retry::RetryPolicy;

/// How a [`Sender`] paces itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderOptions {
    /// Attempts in flight per hook at most.
    pub concurrency: usize,
    /// How often the outbox is looked at when no event wakes the sender: the
    /// safety net for deliveries queued by another process, and for retries.
    pub poll: Duration,
    /// Backoff and maximum age of failed deliveries.
    pub retry: RetryPolicy,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            concurrency: 4,
            poll: Duration::from_secs(1),
            retry: RetryPolicy::default(),
        }
    }
}

/// Connecting longer than this is a failed attempt, whatever the hook's timeout
/// (which bounds the whole attempt, connecting included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the sender gives up deliveries older than the maximum age, for every
/// hook (see [`Sender::expire`]).
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

/// A claim outlives the longest attempt by this much.
const CLAIM_MARGIN: Duration = Duration::from_secs(2);

/// Sends the outbox's due deliveries to the configured hooks. Cheap to clone;
/// clones share their slots.
#[derive(Clone)]
pub struct Sender {
    inner: Arc<Inner>,
}

struct Inner {
    outbox: Arc<dyn Outbox>,
    hooks: HashMap<String, (Webhook, Arc<Semaphore>)>,
    client: reqwest::Client,
    options: SenderOptions,
    /// Woken when an attempt ends: its slot is free, and more may be due.
    done: Notify,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("hooks", &self.inner.hooks.len()).finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender of `outbox`'s deliveries to `hooks`. Builds its one HTTP client
    /// (no redirects followed: a redirect is a failed attempt, not a new target).
    pub fn new(
        outbox: Arc<dyn Outbox>,
        hooks: Vec<Webhook>,
        options: SenderOptions,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(Error::Client)?;
        let slots = options.concurrency.max(1);
        let hooks = hooks
            .into_iter()
            .map(|hook| (hook.hook.id.clone(), (hook, Arc::new(Semaphore::new(slots)))))
            .collect();
        Ok(Sender {
            inner: Arc::new(Inner { outbox, hooks, client, options, done: Notify::new() }),
        })
    }

    /// Registers the hooks with the store, so task writes queue deliveries for
    /// them from now on. Call it before the harness runs.
    pub async fn register(&self) -> openloom_core::Result<()> {
        let hooks: Vec<_> = self.inner.hooks.values().map(|(h, _)| h.hook.clone()).collect();
        self.inner.outbox.register_hooks(&hooks).await?;
        for hook in &hooks {
            tracing::info!(hook = %hook.id, url = %hook.url, "webhook registered");
        }
        Ok(())
    }

    /// Claims what is due for every hook with a free slot and starts its attempts;
    /// returns how many were started. Does not wait for them.
    pub async fn start_due(&self) -> openloom_core::Result<usize> {
        let inner = &self.inner;
        let now = Utc::now();
        let longest = inner.hooks.values().map(|(h, _)| h.timeout).max().unwrap_or_default();
        let until = now
            + chrono::Duration::from_std(longest + CLAIM_MARGIN).unwrap_or(chrono::Duration::MAX);
        let mut started = 0;
        for (id, (_, slots)) in &inner.hooks {
            let free = slots.available_permits();
            if free == 0 {
                continue;
            }
            let claimed =
                inner.outbox.claim_due(std::slice::from_ref(id), now, until, free).await?;
            for delivery in claimed {
                let Ok(permit) = Arc::clone(slots).try_acquire_owned() else {
                    // Only this loop takes permits, so one counted free is there;
                    // the claim lapses and the delivery is due again if not.
                    break;
                };
                started += 1;
                let inner = Arc::clone(inner);
                tokio::spawn(async move {
                    inner.attempt(delivery).await;
                    drop(permit);
                    inner.done.notify_one();
                });
            }
        }
        Ok(started)
    }

    /// Sends what is due until nothing is left in flight or due, or `timeout`
    /// passes (a command about to exit calls it, so the event that ended its task
    /// goes out first); returns how many deliveries to these hooks are still
    /// pending (failed ones wait for their retry, in the outbox).
    pub async fn flush(&self, timeout: Duration) -> openloom_core::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let slots = self.inner.options.concurrency.max(1);
        loop {
            let started = self.start_due().await?;
            let busy = self.inner.hooks.values().any(|(_, free)| free.available_permits() < slots);
            if (started == 0 && !busy) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                () = self.inner.done.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        let query = openloom_core::DeliveryQuery {
            limit: 10_000,
            status: Some(openloom_core::DeliveryStatus::Pending),
        };
        let pending = self.inner.outbox.list_deliveries(&query).await?;
        Ok(pending.iter().filter(|d| self.inner.hooks.contains_key(&d.hook_id)).count())
    }

    /// Gives up pending deliveries older than the maximum age, for every hook, its
    /// own or not: one that no process sends to any more (a hook dropped from every
    /// config) then shows as dead, with why, instead of waiting for ever unseen.
    pub async fn expire(&self) -> openloom_core::Result<usize> {
        let max_age = chrono::Duration::from_std(self.inner.options.retry.max_age)
            .unwrap_or(chrono::Duration::MAX);
        let error = format!(
            "not delivered within the {:?} maximum age (a hook no running openloom is \
             configured with is never sent to)",
            self.inner.options.retry.max_age
        );
        let expired = self.inner.outbox.expire(Utc::now() - max_age, &error).await?;
        if expired > 0 {
            tracing::warn!(expired, "webhook deliveries given up as too old");
        }
        Ok(expired)
    }

    /// Sends until `stop` turns true: at once when an event is emitted on `bus`
    /// (every task change that queues a delivery is followed by one), when an
    /// attempt ends, and every `poll` otherwise. Attempts in flight at the stop are
    /// abandoned; their claims lapse and they are sent again after a restart.
    pub async fn run(self, bus: EventBus, mut stop: watch::Receiver<bool>) {
        let mut events = bus.receiver();
        let mut bus_open = true;
        let mut next_expiry = tokio::time::Instant::now();
        loop {
            if *stop.borrow() {
                break;
            }
            if tokio::time::Instant::now() >= next_expiry {
                next_expiry += EXPIRY_EVERY;
                if let Err(error) = self.expire().await {
                    tracing::warn!(%error, "could not give up old webhook deliveries");
                }
            }
            if let Err(error) = self.start_due().await {
                tracing::warn!(%error, "could not read the webhook outbox; trying again");
            }
            tokio::select! {
                _ = stop.changed() => {}
                received = events.recv(), if bus_open => {
                    if let Err(broadcast::error::RecvError::Closed) = received {
                        bus_open = false;
                    }
                }
                () = self.inner.done.notified() => {}
                () = tokio::time::sleep(self.inner.options.poll) => {}
            }
        }
    }
}

impl Inner {
    /// One attempt of `delivery`, recorded.
    async fn attempt(&self, delivery: Delivery) {
        let Some((hook, _)) = self.hooks.get(&delivery.hook_id) else { return };
        let now = Utc::now();
        let rendered = render(&delivery, hook.format, hook.secret.bytes(), now);
        let mut request = self.client.post(hook.url.clone()).timeout(hook.timeout);
        for (name, value) in &rendered.headers {
            request = request.header(*name, value);
        }
        let outcome = match request.body(rendered.body).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("the receiver answered HTTP {}", response.status())),
            // Without the URL: its path or query may hold a token.
            Err(error) => Err(describe(&error.without_url())),
        };
        let attempts = delivery.attempts.saturating_add(1);
        let attempt = match outcome {
            Ok(()) => {
                tracing::debug!(delivery = %delivery.id, hook = %hook.hook.id, "webhook delivered");
                Attempt::Delivered
            }
            Err(error) => {
                let next = self.options.retry.after_failure(
                    attempts,
                    delivery.queued_at,
                    Utc::now(),
                    error,
                    fastrand::f64(),
                );
                match &next {
                    Attempt::Dead { error } => tracing::warn!(
                        delivery = %delivery.id, hook = %hook.hook.id, %error,
                        "webhook delivery is dead; `POST /api/webhooks/deliveries/{{id}}/redeliver` queues it again"
                    ),
                    _ => tracing::info!(
                        delivery = %delivery.id, hook = %hook.hook.id, attempts,
                        "webhook attempt failed; retrying later"
                    ),
                }
                next
            }
        };
        if let Err(error) = self.outbox.record_attempt(&delivery.id, &attempt, Utc::now()).await {
            // The claim lapses and the delivery is sent again: the receiver dedupes.
            tracing::warn!(%error, delivery = %delivery.id, "could not record a webhook attempt");
        }
    }
}

/// A transport error in a line: reqwest's own text with its causes.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "the receiver did not answer in time"
    } else if error.is_connect() {
        "could not connect to the receiver"
    } else {
        "the request failed"
    };
    let mut text = format!("{what}: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
