//! Integration tests of `openloom-opencode` against wiremock servers that answer
//! with responses captured from a real OpenCode 1.18.34 (`tests/fixtures/`).

mod common;
mod e2e;
mod errors;
mod events;
mod health;
mod prompts;
mod requests;
mod sessions;
mod status;
mod version;
