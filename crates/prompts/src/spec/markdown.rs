//! The Markdown spec format: the reference's `_parse_markdown`, plus `## Checks`.
//!
//! ```markdown
//! # Fix the login form           <- name (a `# ` line within the first 20 lines)
//! workspace: `/home/me/app`      <- meta lines within the first 20 lines:
//! agent: build                      workspace, mode, agent, check_interval,
//! check_interval: 5m                check_interval_seconds
//!
//! ## Goal
//! Users can log in with email.   <- lines joined with newlines
//!
//! ## Steps
//! 1. Add the form                <- `N. ` is removed
//! 2. Add tests
//!
//! ## Acceptance
//! - [ ] Tests pass               <- bullet and checkbox are removed
//!
//! ## Checks
//! - run: cargo test              <- whole-task executable checks, one per item:
//! - file_exists: src/login.rs       run, file_exists, file_missing,
//! - file_contains: README.md ~ Login   file_contains (`path ~ pattern`),
//! - changes_within: src/, tests/    changes_within (comma separated)
//! ```
//!
//! Any other `## ` heading ends the current section. Headings match by prefix and
//! case-insensitively (`## Goals` is the goal), as in the reference.
//!
//! Differences from the reference: an empty document is an error; a meta
//! `check_interval_seconds: 30` means thirty seconds (the reference read every bare
//! number as minutes); a malformed interval or check is an error with its line.

use std::sync::LazyLock;

use openloom_core::spec::UNTITLED_TASK;
use openloom_core::{Step, TaskSpec};
use regex_lite::Regex;

use super::checks::parse_check_line;
use super::interval::{BareUnit, INTERVAL_EXPECTED, interval_from_text};
use crate::error::{Error, Location, Result};
use crate::pytext::{py_splitlines, py_strip};

/// Meta lines are only read this close to the top, as in the reference.
const META_LINES: usize = 20;

struct Patterns {
    meta: Regex,
    bullet: Regex,
    checkbox: Regex,
    number: Regex,
}

static PATTERNS: LazyLock<Option<Patterns>> = LazyLock::new(|| {
    Some(Patterns {
        meta: Regex::new(r"(?i)^(workspace|mode|agent|check_interval(?:_seconds)?)\s*:\s*(.+)$")
            .ok()?,
        bullet: Regex::new(r"^[-*]\s*").ok()?,
        checkbox: Regex::new(r"^\[[ xX]\]\s*").ok()?,
        number: Regex::new(r"^\d+\.\s*").ok()?,
    })
});

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Goal,
    Acceptance,
    Steps,
    Checks,
}

/// Parses a Markdown spec. `origin` names the text in errors.
pub fn parse_markdown(text: &str, origin: &str) -> Result<TaskSpec> {
    let location = Location::new(origin);
    super::limits::check_text_size(text, &location)?;
    if py_strip(text).is_empty() {
        return Err(Error::EmptySpec {
            location,
            expected: "a Markdown spec such as `# Task name` / `## Goal` / `## Steps`",
        });
    }
    let Some(patterns) = PATTERNS.as_ref() else {
        // The patterns are constants; this cannot happen, but is no reason to panic.
        return Err(Error::field(&location, "<document>", "could not be read", "Markdown"));
    };
    let lines = py_splitlines(text);
    // TaskSpec::new has the reference's defaults: mode, agent, a five-minute interval.
    let mut spec = TaskSpec::new(UNTITLED_TASK, "", "");

    for (index, line) in lines.iter().take(META_LINES).enumerate() {
        if let Some(name) = line.strip_prefix("# ") {
            let name = py_strip(name);
            if !name.is_empty() {
                spec.name = name.to_owned();
            }
            continue;
        }
        let Some(captures) = patterns.meta.captures(py_strip(line)) else { continue };
        let key = captures[1].to_lowercase();
        let value = py_strip(&captures[2]);
        match key.as_str() {
            "workspace" => spec.workspace = value.trim_matches(['`', ' ']).to_owned(),
            "mode" => spec.mode = value.to_owned(),
            "agent" => spec.agent = value.to_owned(),
            _ => {
                let bare = if key == "check_interval_seconds" {
                    BareUnit::Seconds
                } else {
                    BareUnit::Minutes
                };
                spec.check_interval_seconds =
                    interval_from_text(value, bare).map_err(|problem| {
                        Error::field(
                            &location.at(index + 1, None),
                            key.clone(),
                            problem,
                            INTERVAL_EXPECTED,
                        )
                    })?;
            }
        }
    }

    let mut section = Section::None;
    let mut goal_lines: Vec<&str> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let stripped = py_strip(line);
        let lower = stripped.to_lowercase();
        let heading = [
            ("## goal", Section::Goal),
            ("## acceptance", Section::Acceptance),
            ("## steps", Section::Steps),
            ("## checks", Section::Checks),
        ]
        .into_iter()
        .find(|(prefix, _)| lower.starts_with(prefix));
        if let Some((_, next)) = heading {
            section = next;
            continue;
        }
        if stripped.starts_with("## ") {
            section = Section::None;
            continue;
        }
        if stripped.is_empty() {
            continue;
        }
        match section {
            Section::None => {}
            Section::Goal => goal_lines.push(stripped),
            Section::Acceptance => {
                let item = patterns.bullet.replace(stripped, "");
                let item = patterns.checkbox.replace(&item, "");
                let item = py_strip(&item);
                if !item.is_empty() {
                    spec.acceptance.push(item.to_owned());
                }
            }
            Section::Steps => {
                let item = patterns.number.replace(stripped, "");
                let item = py_strip(&item);
                if !item.is_empty() {
                    spec.steps.push(Step::new(item));
                }
            }
            Section::Checks => {
                let item = patterns.bullet.replace(stripped, "");
                let item = py_strip(&item);
                if !item.is_empty() {
                    let field = format!("checks[{}]", spec.checks.len());
                    let check = parse_check_line(item, &location.at(index + 1, None), &field)?;
                    spec.checks.push(check);
                }
            }
        }
    }
    spec.goal = py_strip(&goal_lines.join("\n")).to_owned();
    super::limits::check_spec_limits(&spec, origin)?;
    Ok(spec)
}
