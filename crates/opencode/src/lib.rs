//! OpenLoom's client for the [OpenCode](https://opencode.ai) HTTP server, and its
//! implementation of [`openloom_core::AgentServer`].
//!
//! # Main types
//! - [`OpencodeClient`] — one method per endpoint OpenLoom uses (sessions, prompts,
//!   messages, statuses, permissions, questions, diffs, todos, the event stream).
//!   Built once from [`Settings`]; it holds one `reqwest::Client` and reuses it.
//! - [`Secret`] — the password, redacted in every `Debug` output.
//! - [`Error`] — this crate's one error type; it converts into
//!   [`openloom_core::Error`] with the transient/permanent split the harness needs.
//! - [`EventScope`], [`ServerEvent`], [`StreamItem`] — the typed, self-reconnecting
//!   event stream.
//! - [`wire`] — tolerant readers from OpenCode JSON to core types.
//!
//! # Design: read JSON tolerantly, by hand
//! OpenCode's shapes differ between versions and even between endpoints of one
//! version (a model is `modelID` on assistant messages, `model.modelID` on user
//! messages, `model.id` on sessions; times are milliseconds where older versions
//! used seconds). Strict `serde` structs would fail a whole list for one odd field,
//! so responses are read as [`serde_json::Value`] and converted by small functions
//! that accept every spelling seen and skip entries they cannot use. What OpenLoom
//! does not interpret (diffs, todos, permission metadata) is passed through as JSON.
//!
//! Everything OpenLoom relies on from the API, and each surprise and how this
//! crate handles it, is written down in `docs/opencode.md` (tested against OpenCode
//! 1.18.34).

mod agent;
mod client;
mod error;
mod events;
mod http;
mod settings;
mod sse;
mod types;
pub mod wire;

/// The OpenCode version OpenLoom is tested with. A server of another major version is
/// refused before a session is created or prompted ([`Error::Unsupported`]).
pub const TESTED_VERSION: &str = "1.18.34";

pub use client::{OpencodeClient, check_version};
pub use error::{Error, Result};
pub use events::{EventScope, ServerEvent, StreamItem};
pub use settings::{Secret, Settings};
pub use types::{PermissionReply, PermissionRequest, Project, QuestionRequest};
