//! Integration tests of the SQLite store, on real files in temporary directories.
//!
//! Some tests re-execute this very test binary as a child process (see [`child`]), so
//! the crate ships no extra binary just for tests.

mod child;
mod claims;
mod common;
mod concurrency;
mod crash;
mod damaged;
mod failures;
mod origins;
mod outbox;
mod parity;
mod queries;
mod race;
mod schema;
mod workspaces;
