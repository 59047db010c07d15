//! Where work comes from besides a person typing `openloom watch`: implementations of
//! core's [`openloom_core::Source`].
//!
//! # Main items
//! - [`SpecFile`]: the one spec file `openloom watch` reads (relative workspaces taken
//!   from the file's directory).
//! - [`Inbox`]: a directory whose spec (`.yaml`, `.yml`, `.md`) and prompt (`.txt`)
//!   files become tasks, then move to `accepted/` — or to `rejected/` beside a
//!   `NAME.error.txt` with the spec error `watch` would print.
//! - [`github`]: the pure mapping of a GitHub `issues` webhook to a task (or to the
//!   reason it is ignored); the server's `/api/hooks/github` route verifies and
//!   queues, this decides.
//! - [`Error`]: the crate's one error.
//!
//! # Design: the store remembers, not the source
//! A source never keeps its own record of what it imported: each arrival carries an
//! [`openloom_core::Origin`] (the inbox file's name and content hash, GitHub's
//! delivery id), and core's `take_in` creates the task and records the origin in one
//! store transaction. A crash anywhere — before the create, between the create and
//! the inbox's move, after a 202 — so leaves either no task (the source offers it
//! again) or a task with its origin (the offer is answered "already had"), never two.

pub mod error;
pub mod github;
pub mod inbox;
pub mod spec_file;

pub use error::{Error, Result};
pub use github::{GithubConfig, HookDecision};
pub use inbox::{Inbox, InboxConfig};
pub use spec_file::SpecFile;
