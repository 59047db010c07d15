//! Integration tests of the test kit, one binary: the scripted model over real
//! HTTP, and the real OpenCode driven by raw HTTP. (The `openloom-opencode` client's
//! end-to-end tests live in that crate.) OpenCode tests skip when it is not
//! installed and fail under `OPENLOOM_E2E=required`.

mod common;
mod raw_opencode;
mod scripted_model;
