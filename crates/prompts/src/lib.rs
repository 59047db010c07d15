//! The harness's language: spec formats, the prompts sent to the agent, reading the
//! agent's progress markers back, and the planner.
//!
//! # Main items
//! - [`spec`]: [`parse_yaml`], [`parse_markdown`], [`load_spec_file`] turn user text
//!   into [`openloom_core::TaskSpec`]; [`spec_to_yaml`] writes one back;
//!   [`task_spec_from_prompt`] makes a prompt-only spec.
//! - [`prompts`]: bootstrap, periodic check, next-step, auto-continue and
//!   verification-failed prompts.
//! - [`progress`]: [`detect_progress`] reads `STEP DONE: n` / `TASK COMPLETE` from a
//!   transcript; [`MarkerChecker`] is the reference's "string" checker as an
//!   [`openloom_core::Checker`].
//! - [`planner`]: the planner prompt, turning its JSON reply into a spec, and
//!   [`draft_plan`], which holds that conversation with any
//!   [`openloom_core::AgentServer`] in a throwaway session.
//! - [`ReferenceDialogue`] hands the prompts and readers to the harness through core's
//!   [`openloom_core::Dialogue`] trait.
//!
//! Errors are one enum, [`Error`]; spec errors carry file, line/column when known, the
//! field path and what would have been valid.
//!
//! # Design: port behaviour, record the reference
//! This crate ports the Python reference's parsing and prompts by behaviour. The
//! integration tests compare against answers recorded from the reference itself
//! (`tests/fixtures/reference_cases.json`), so "same as the reference" is checked,
//! not remembered; where we differ on purpose (errors instead of silently dropped
//! input), the item's docs say so and the tests pin it.
//!
//! Everything here is pure except at two edges: reading and writing spec files, and
//! the async parts that talk through core's traits only — the
//! [`openloom_core::Checker`] impl and [`draft_plan`] (an [`openloom_core::AgentServer`]),
//! which lives here rather than beside the OpenCode client so that the CLI and the
//! server share one planner and an embedder can plan with any agent server.

pub mod dialogue;
pub mod error;
pub mod planner;
pub mod progress;
pub mod prompts;
mod pytext;
pub mod spec;

pub use dialogue::ReferenceDialogue;
pub use error::{Error, Location, Result};
pub use planner::{
    PLAN_SESSION_TITLE, Plan, build_planner_prompt, draft_plan, extract_plan_json,
    parse_plan_reply, plan_to_spec,
};
pub use progress::{
    MarkerChecker, assistant_transcript, detect_progress, last_assistant_text,
    messages_indicate_busy, needs_continue_reply,
};
pub use prompts::{
    build_bootstrap_prompt, build_continue_reply, build_next_step_prompt,
    build_periodic_check_prompt, build_verification_failed_prompt,
};
pub use spec::{
    PromptOptions, SpecFormat, check_spec_limits, default_spec_yaml, load_spec_file,
    parse_markdown, parse_spec, parse_task_defaults, parse_yaml, spec_from_json, spec_to_yaml,
    task_spec_from_prompt, write_default_spec,
};
