//! Integration tests of the PostgreSQL store, each on a fresh database of the server
//! named by `OPENLOOM_TEST_POSTGRES` (`cargo xtask pg-setup` starts one). Without it
//! they skip with a loud line; under `OPENLOOM_E2E=required` (CI) they fail.
//!
//! The crash test re-executes this very test binary as a child process (see
//! [`crash`]), so the crate ships no extra binary just for tests.

mod common;
mod connect;
mod crash;
mod fencing;
mod hints;
mod origins;
mod outbox;
mod parity;
mod race;
