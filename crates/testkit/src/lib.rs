//! Test kit for OpenLoom's end-to-end tests: the real OpenCode, driven by a fake
//! model whose every answer the test scripts.
//!
//! # Main types
//! - [`ScriptedModel`]: an OpenAI-compatible chat-completions server on loopback. A
//!   [`Script`] of [`Turn`]s says what it answers (text, tool calls such as
//!   OpenCode's `write`, slow streams, HTTP errors); it records every request as a
//!   [`RecordedRequest`] so tests can assert on what reached the model.
//! - [`Launcher`] finds the OpenCode binary; [`OpencodeServer`] is one running
//!   `opencode serve` in its own temp dirs, wired to a scripted model, killed with
//!   its process group on drop, and restartable on the same port.
//! - [`GitWorkspace`]: a temp git repository with one commit.
//! - [`E2e`] bundles the three; [`require_opencode!`] / [`e2e_launcher`] implement
//!   the skip policy (skip with one line of advice, or fail under
//!   `OPENLOOM_E2E=required`).
//! - [`EventCutProxy`]: a proxy in front of OpenCode that can cut its event stream
//!   alone, for tests of a harness that must not depend on events.
//! - [`browser::Browser`]: a headless Chromium through chromedriver for the dashboard's
//!   browser tests, with the same skip policy ([`require_browser!`]).
//! - [`receiver::Receiver`]: a webhook receiver that verifies signatures and dedupes
//!   deliveries the way `docs/notifications.md` tells users to.
//!
//! # Design: the real OpenCode, a fake model
//! Mocking OpenCode's HTTP API would test our client against our own reading of
//! it. Instead the tests run the pinned OpenCode binary and fake only the model
//! behind it, at the OpenAI wire format, which is small and stable. The whole
//! loop (harness → OpenCode → model → tool → disk) then runs for real, offline:
//! the launcher turns off every OpenCode feature that would reach the network.

pub mod browser;
mod e2e;
mod error;
mod launcher;
mod model;
mod proxy;
pub mod receiver;
mod workspace;

pub use e2e::{E2E_ENV, E2e, e2e_launcher, e2e_required};
pub use error::Error;
pub use launcher::{
    INSTALL_HINT, Launcher, OPENCODE_BIN_ENV, OpencodeOptions, OpencodeServer,
    PINNED_OPENCODE_VERSION, PROVIDER_ID,
};
pub use model::{
    MODEL_ID, NO_TURN_MATCHED, Predicate, RecordedRequest, Reply, ReplyBody, Script, ScriptedModel,
    TITLE_MODEL_ID, TITLE_REPLY, ToolCall, Turn, Usage,
};
pub use proxy::EventCutProxy;
pub use workspace::GitWorkspace;
