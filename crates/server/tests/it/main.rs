//! Integration tests of the server: the router without a socket (most of them), and
//! real-socket tests of SSE (with changes made by another process) and the connection
//! limits. OpenCode is a wiremock server; the store is SQLite in a
//! temp dir.

mod changes;
mod common;
mod events;
mod hooks;
mod limits;
mod metrics;
mod openapi;
mod requests;
mod security;
mod sessions;
mod tasks;
mod ui;
