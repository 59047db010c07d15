//! Integration tests of the `openloom` binary: the real binary in a temp dir, and
//! (in `e2e`) against the real OpenCode driven by the scripted model.

mod common;
mod dashboard;
mod docs;
mod e2e;
mod migrate;
mod offline;
mod serve;
mod started;
mod team;
mod triggers;
mod webhooks;
