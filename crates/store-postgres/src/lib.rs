//! OpenLoom's store on PostgreSQL, for a team: several `openloom serve` workers on
//! one database. [`PostgresStore`] implements [`openloom_core::Store`] (tasks, check
//! logs, claims), [`openloom_core::RecentWorkspaces`] and [`openloom_core::Outbox`]
//! (webhook deliveries, queued in the task write's own transaction), with sqlx, and means by
//! every method what the SQLite and memory stores mean (the parity transcript test
//! holds the three to one transcript).
//!
//! # Main items
//! - [`PostgresStore::connect`] connects to a `postgres://` URL, applies the
//!   embedded migrations (`migrations/`), and refuses a database migrated by a newer
//!   build or holding another program's tables.
//! - [`is_postgres_url`]: how the binary tells a PostgreSQL URL from a SQLite path.
//! - [`Error`] names the database as `user@host:port/database` and never the
//!   password; locks held too long, deadlocks and a server gone away convert into
//!   [`openloom_core::Error::StoreBusy`] (transient), everything else into
//!   [`openloom_core::Error::Store`].
//! - [`PostgresStore::import_task`] and [`PostgresStore::import_workspace`] copy
//!   history in (for `openloom migrate`), skipping what is there already.
//!
//! # Design: row locks decide, one counter row orders
//! A write locks what it reads before deciding: a task write its task row (`FOR NO
//! KEY UPDATE`), a guarded write also the task's claim row (`FOR SHARE`), so a worker
//! whose lease expired cannot slip a write in while another worker takes the task
//! over — the takeover waits for the write, or the write sees the new claim and is
//! rejected. A claim is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement,
//! so two workers claiming at once queue on the claim row and exactly one wins. Every
//! write ends by bumping the `meta.store_version` row: its lock is held from that
//! statement to the commit, so versions increase in commit order across all
//! workers, which is what lets a client resynchronise "since version N".
//!
//! Every write's version bump also NOTIFYs a channel, in the same statement, so
//! PostgreSQL announces it on commit only; [`openloom_core::Store::version_hints`]
//! LISTENs there (one connection per store, reconnecting with backoff). The
//! notification is a hint to re-read, never the data: readers poll as well.
//!
//! Timestamps are fixed-width RFC 3339 text (nanoseconds, "C" collation), not
//! `timestamptz` (microseconds): a task must read back exactly as it was written.

mod codec;
mod error;
mod import;
mod listen;
mod open;
mod outbox;
mod store;
#[cfg(feature = "test-util")]
pub mod testing;
mod workspaces;

pub use error::{Error, Result, Target};
pub use open::{Probe, StoreOptions, is_postgres_url, redacted_url};
pub use store::PostgresStore;
