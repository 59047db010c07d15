//! What lists show of a spec ([`SpecSummary`]), and how long a listed text may be.
//!
//! A spec may hold 200 steps of long text; a page of fifty tasks, `/api/state` and
//! every SSE snapshot list tasks, so lists carry counts and cut texts instead, and
//! their size is bounded by their length whatever the tasks hold. The full spec is
//! the task's own route.

use std::fmt;

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::spec::{TaskSpec, default_agent, default_interval, default_mode};

/// Longest text of a summarised field (name, goal, last summary, error) in a list,
/// in characters.
pub const LIST_TEXT_CHARS: usize = 280;

/// `text` cut to [`LIST_TEXT_CHARS`] characters, the last one `…` when cut. Cutting
/// a cut text changes nothing, so a store may read only a prefix of
/// `LIST_TEXT_CHARS + 1` characters and clip that.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(LIST_TEXT_CHARS) {
        None => text.to_owned(),
        Some(_) => {
            let mut cut: String = text.chars().take(LIST_TEXT_CHARS - 1).collect();
            cut.push('…');
            cut
        }
    }
}

/// A spec as lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecSummary {
    /// The spec's name, [clipped](clip).
    pub name: String,
    /// Its workspace.
    pub workspace: String,
    /// Its goal, [clipped](clip).
    pub goal: String,
    /// Its mode.
    pub mode: String,
    /// Its agent.
    pub agent: String,
    /// Its check interval.
    pub check_interval_seconds: u64,
    /// How many steps it has.
    pub step_count: usize,
    /// How many checks, the task's and its steps' together.
    pub check_count: usize,
    /// How many acceptance criteria (the task's own).
    pub acceptance_count: usize,
    /// Always true: tells a client this is not the whole spec.
    pub summarised: bool,
}

impl SpecSummary {
    /// The summary of `spec`.
    pub fn of(spec: &TaskSpec) -> Self {
        SpecSummary {
            name: clip(&spec.name),
            workspace: spec.workspace.clone(),
            goal: clip(&spec.goal),
            mode: spec.mode.clone(),
            agent: spec.agent.clone(),
            check_interval_seconds: spec.check_interval_seconds,
            step_count: spec.steps.len(),
            check_count: spec.checks.len()
                + spec.steps.iter().map(|step| step.checks.len()).sum::<usize>(),
            acceptance_count: spec.acceptance.len(),
            summarised: true,
        }
    }

    /// The summary of a spec stored as JSON (as [`TaskSpec`] serialises), read without
    /// building the spec: lists and steps are counted, not kept. Equal to
    /// `SpecSummary::of` of the decoded spec.
    pub fn from_spec_json(json: &str) -> serde_json::Result<Self> {
        let shape: SpecShape = serde_json::from_str(json)?;
        Ok(SpecSummary {
            name: clip(&shape.name),
            workspace: shape.workspace,
            goal: clip(&shape.goal),
            mode: shape.mode,
            agent: shape.agent,
            check_interval_seconds: shape.check_interval_seconds,
            step_count: shape.steps.len(),
            check_count: shape.checks.0
                + shape.steps.iter().map(|step| step.checks.0).sum::<usize>(),
            acceptance_count: shape.acceptance.0,
            summarised: true,
        })
    }

    /// The summary with its texts clipped: for a store that reads a prefix of them.
    pub fn clipped(self) -> Self {
        SpecSummary { name: clip(&self.name), goal: clip(&self.goal), ..self }
    }
}

/// The parts of a stored spec a summary needs, with [`TaskSpec`]'s defaults; every
/// other key is skipped by serde without being built.
#[derive(Deserialize)]
struct SpecShape {
    name: String,
    workspace: String,
    goal: String,
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default = "default_agent")]
    agent: String,
    #[serde(default = "default_interval")]
    check_interval_seconds: u64,
    #[serde(default)]
    steps: Vec<StepShape>,
    #[serde(default)]
    checks: Count,
    #[serde(default)]
    acceptance: Count,
}

/// A step as a summary sees it: its checks, counted.
#[derive(Deserialize)]
struct StepShape {
    #[serde(default)]
    checks: Count,
}

/// The length of a JSON list whose items are skipped unread.
#[derive(Default)]
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Counter;
        impl<'de> Visitor<'de> for Counter {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                let mut count = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    count += 1;
                }
                Ok(Count(count))
            }
        }
        deserializer.deserialize_seq(Counter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_cuts_long_texts_once_and_leaves_short_ones() {
        let exact = "é".repeat(LIST_TEXT_CHARS);
        assert_eq!(clip(&exact), exact);
        let long = "é".repeat(LIST_TEXT_CHARS + 1);
        let cut = clip(&long);
        assert_eq!(cut.chars().count(), LIST_TEXT_CHARS);
        assert!(cut.ends_with('…'));
        assert_eq!(clip(&cut), cut, "clipping a clipped text changes nothing");
        // A prefix of LIST_TEXT_CHARS + 1 characters clips as the whole text does.
        let longer = "é".repeat(5 * LIST_TEXT_CHARS);
        let prefix: String = longer.chars().take(LIST_TEXT_CHARS + 1).collect();
        assert_eq!(clip(&prefix), clip(&longer));
    }

    #[test]
    fn a_summary_counts_steps_checks_and_acceptance() {
        let spec: TaskSpec = serde_json::from_value(serde_json::json!({
            "name": "n", "workspace": "/w", "goal": "g".repeat(1000),
            "steps": [{"title": "a", "checks": [{"kind": "file_exists", "path": "a"}]}, {"title": "b"}],
            "acceptance": ["x"],
            "checks": [{"kind": "file_exists", "path": "b"}, {"kind": "file_missing", "path": "c"}],
        }))
        .expect("a spec");
        let summary = SpecSummary::of(&spec);
        assert_eq!((summary.step_count, summary.check_count, summary.acceptance_count), (2, 3, 1));
        assert_eq!(summary.goal.chars().count(), LIST_TEXT_CHARS);
        assert!(summary.summarised);
        let stored = serde_json::to_string(&spec).expect("encodes");
        assert_eq!(SpecSummary::from_spec_json(&stored).expect("decodes"), summary);
    }

    #[test]
    fn a_stored_spec_with_no_steps_or_checks_summarises_to_zeros() {
        let spec = TaskSpec::new("t", "/w", "g\u{0}oal");
        let stored = serde_json::to_string(&spec).expect("encodes");
        let summary = SpecSummary::from_spec_json(&stored).expect("decodes");
        assert_eq!(summary, SpecSummary::of(&spec));
        assert_eq!((summary.step_count, summary.check_count, summary.acceptance_count), (0, 0, 0));
        assert!(SpecSummary::from_spec_json(r#"{"name": "n"}"#).is_err(), "a spec needs a goal");
    }
}
