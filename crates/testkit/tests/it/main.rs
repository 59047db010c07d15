//! Integration tests of the test kit, one binary: the scripted model over real
//! HTTP, the real OpenCode driven by raw HTTP, and the `openloom-opencode` client
//! end to end against the real OpenCode. OpenCode tests skip when it is not
//! installed and fail under `OPENLOOM_E2E=required`.

mod client_e2e;
mod common;
mod raw_opencode;
mod scripted_model;
