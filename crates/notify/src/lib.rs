//! OpenLoom's webhooks out: signed HTTP notifications of task events that are never
//! lost, drained from the store's outbox ([`openloom_core::Outbox`]).
//!
//! # Main items
//! - [`HookConfig`] is a hook as `config.yaml` or `--webhook` gives it; [`Webhook`]
//!   is one checked and ready to send to (URL, events, format, secret).
//! - [`render`] builds the exact bytes and headers of a delivery (pure): JSON
//!   `{event, deliveryId, at, sentAt, task}` or a Slack-style `{"text": ...}`, signed
//!   with `X-OpenLoom-Signature-256` ([`openloom_core::signature`]).
//! - [`RetryPolicy`] decides, for a failed attempt, when to try again or that the
//!   delivery is dead (pure, with the jitter passed in).
//! - [`Sender`] claims due deliveries, sends them with bounded concurrency and
//!   timeouts, and records each attempt; it wakes on the event bus and polls as the
//!   safety net.
//!
//! # Design: the store queues, the sender only drains
//! The deliveries are written by the stores in the same transaction as the task
//! change that causes them (see `openloom_core::outbox`), so this crate never sees a
//! task change it could lose: it works from rows. A receiver that is down or slow
//! costs the sender a claim and a timeout, never the harness anything, and every
//! attempt of one delivery carries the same `X-OpenLoom-Delivery` id, so a receiver
//! that got it twice (a sender killed after sending, before recording) dedupes.

mod error;
mod hook;
pub mod render;
mod retry;
mod sender;

pub use error::{Error, Result};
pub use hook::{Format, HookConfig, SECRET_ENV, Webhook};
pub use retry::RetryPolicy;
pub use sender::{Sender, SenderOptions};
