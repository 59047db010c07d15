//! The core of OpenLoom: domain types, the pluggable traits, the event bus and the
//! harness. Everything else in the workspace builds on this crate, and this crate
//! depends on no HTTP, SQL or web library.
//!
//! # Main types
//! - [`TaskSpec`] is what a user asks for; [`Task`] is the record the [`Store`] keeps,
//!   with its [`TaskStatus`] and a check log of [`CheckLogEntry`].
//! - [`AgentServer`] is the coding agent the harness drives (OpenCode in
//!   `openloom-opencode`). The harness only ever talks to this trait.
//! - [`Checker`] decides how far a task is, [`Sink`] receives [`Event`]s, a [`Source`]
//!   offers work over time ([`take_in`] feeds it to the harness, deduplicated by its
//!   [`Origin`]). An embedder builds its own and hands them to [`HarnessParts`]:
//!   plain Rust values, no registry of names.
//!
//! # Design: store first, then event
//! Every state change is written to the store before it is announced, and the
//! [`Event`] carries the [`StoreVersion`] of that write. The store is the truth; the
//! [`EventBus`] only notifies, so a client that misses events resynchronises from the
//! store instead of trusting a stream.

pub mod agent;
pub mod answer;
pub mod answering;
pub mod check;
#[cfg(any(test, feature = "test-util"))]
pub mod conformance;
pub mod dialogue;
pub mod error;
pub mod event;
pub mod harness;
pub mod memory_agent;
mod memory_store;
pub mod meter;
pub mod outbox;
pub mod policy;
pub mod request;
pub mod signature;
pub mod source;
pub mod spec;
pub mod store;
pub mod summary;
pub mod task;
pub mod worker;
pub mod workspace;

pub use agent::{
    AgentEvent, AgentMessage, AgentServer, Health, MessageError, MessagePart, Role, Session,
    SessionActivity, SessionRef, TokenUsage, ToolState,
};
pub use answer::{Answer, AnsweredBy, Channel, Delivery, audit_entry};
pub use answering::{Answered, Refusal, answer_pending};
pub use check::{
    CheckContext, CheckOutcome, CheckResult, Checker, Verification, VerificationScope,
};
pub use dialogue::Dialogue;
pub use error::{BoxError, Error, Result};
pub use event::{Event, EventBus, EventKind, EventPayload, Sink};
pub use harness::{Failure, Harness, HarnessConfig, HarnessParts, Trigger};
pub use memory_agent::MemoryAgent;
pub use meter::{AgentCall, CheckRun, Meter, NoMeter};
pub use outbox::{
    Attempt, Delivery as WebhookDelivery, DeliveryQuery, DeliveryStatus, Hook, Notice, NoticeEvent,
    Outbox, OutboxDepth, TaskSnapshot,
};
pub use policy::{Action, PermissionRule, QuestionPolicy};
pub use request::{PendingRequest, Question, RequestKind};
pub use source::{Admitted, Arrival, Feed, Feeder, Origin, Source, feed, take_in};
pub use spec::{CheckDefinition, Step, TaskSpec};
pub use store::{
    Created, DueQuery, Guard, Lease, LogQuery, MemoryStore, RecentWorkspace, RecentWorkspaces,
    Rejection, Store, StoredLogEntry, TaskQuery, WriteOutcome,
};
pub use summary::SpecSummary;
pub use task::{
    CheckLogEntry, Liveness, StoreVersion, Task, TaskId, TaskStatus, TaskSummary, TaskUpdate,
};
pub use worker::Worker;
pub use workspace::WorkspacePolicy;
