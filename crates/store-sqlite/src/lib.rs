//! OpenLoom's persistent store on SQLite: [`SqliteStore`] implements
//! [`openloom_core::Store`] (tasks and their check logs) and
//! [`openloom_core::RecentWorkspaces`] and [`openloom_core::Outbox`] (webhook
//! deliveries, queued in the task write's own transaction) on one database file, with
//! sqlx.
//!
//! # Main items
//! - [`SqliteStore::open`] creates the file and its directory, applies the embedded
//!   migrations (`migrations/`), and refuses a database written by a newer build.
//! - [`database_path`] / [`default_database_path`]: `.openloom/openloom.sqlite3`
//!   under the working directory unless [`DATABASE_ENV`] says otherwise.
//! - [`Error`] names the file and the condition (not a database, read-only, disk
//!   full, newer schema, ...); it converts into [`openloom_core::Error::Store`].
//!   A damaged task row is [`Error::UndecodableTask`], naming the task; the lists
//!   and the due query log and skip it rather than fail for every task.
//!
//! # Design: every write is one `BEGIN IMMEDIATE` transaction that bumps the version
//! A write takes SQLite's write lock before reading anything, does its work (a task
//! update and its check-log entry together), bumps `meta.store_version` and commits.
//! Taking the lock up front is what lets several processes share the file: a deferred
//! transaction that reads and then writes can fail with `SQLITE_BUSY` mid-way when
//! another process committed in between, and the busy timeout cannot help it; an
//! immediate one simply waits its turn. So versions strictly increase across every
//! process, and no write is ever half applied.
//!
//! The file is in WAL mode (readers never block the writer) with `synchronous=FULL`
//! by default: an acknowledged write survives a process crash *and* a power loss.
//! [`Durability::Normal`] trades the latter for speed (see its docs and
//! `docs/benchmarks.md`).

mod codec;
mod error;
mod open;
mod outbox;
mod store;
mod workspaces;

pub use error::{Error, Result};
pub use open::{DATABASE_ENV, Durability, StoreOptions, database_path, default_database_path};
pub use store::SqliteStore;
