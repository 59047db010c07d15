//! Integration tests of the server: the router without a socket (most of them), and
//! one real-socket SSE test. OpenCode is a wiremock server; the store is SQLite in a
//! temp dir.

mod common;
mod events;
mod openapi;
mod security;
mod sessions;
mod tasks;
mod ui;
