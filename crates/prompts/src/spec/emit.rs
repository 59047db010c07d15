//! Writing specs as YAML in the syntax users write: for `openloom init` (the default
//! spec) and `openloom plan` (a planned spec for the user to edit).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use openloom_core::spec::DEFAULT_CHECK_TIMEOUT_SECONDS;
use openloom_core::{CheckDefinition, Step, TaskSpec};
use serde_yaml::{Mapping, Value};

use crate::error::{Error, Result};

/// The file name `openloom init` writes by default.
pub const DEFAULT_SPEC_FILENAME: &str = "openloom.yaml";

fn string(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn strings(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|s| string(s)).collect())
}

fn check_value(check: &CheckDefinition) -> Value {
    let mut map = Mapping::new();
    match check {
        CheckDefinition::Run { command, expect_status, timeout_seconds } => {
            map.insert(string("run"), string(command));
            if *timeout_seconds != DEFAULT_CHECK_TIMEOUT_SECONDS {
                map.insert(string("timeout"), Value::from(*timeout_seconds));
            }
            if *expect_status != 0 {
                map.insert(string("expect_status"), Value::from(*expect_status));
            }
        }
        CheckDefinition::FileExists { path } => {
            map.insert(string("file_exists"), string(path));
        }
        CheckDefinition::FileMissing { path } => {
            map.insert(string("file_missing"), string(path));
        }
        CheckDefinition::FileContains { path, pattern } => {
            let mut inner = Mapping::new();
            inner.insert(string("path"), string(path));
            inner.insert(string("pattern"), string(pattern));
            map.insert(string("file_contains"), Value::Mapping(inner));
        }
        CheckDefinition::ChangesWithin { paths } => {
            map.insert(string("changes_within"), strings(paths));
        }
    }
    Value::Mapping(map)
}

fn checks_value(checks: &[CheckDefinition]) -> Value {
    Value::Sequence(checks.iter().map(check_value).collect())
}

fn step_value(step: &Step) -> Value {
    if step.acceptance.is_empty() && step.checks.is_empty() {
        return string(&step.title);
    }
    let mut map = Mapping::new();
    map.insert(string("title"), string(&step.title));
    if !step.acceptance.is_empty() {
        map.insert(string("acceptance"), strings(&step.acceptance));
    }
    if !step.checks.is_empty() {
        map.insert(string("checks"), checks_value(&step.checks));
    }
    Value::Mapping(map)
}

/// Writes a spec as YAML that [`crate::spec::parse_yaml`] reads back to an equal spec.
///
/// Round-trips for every spec the parser can produce: text fields stripped and
/// non-empty where the parser has a default (name, mode, agent), an interval of 0 or
/// at least 10 seconds, timeouts and rounds of at least 1. Steps without acceptance
/// or checks are written as plain strings, the shortest form.
pub fn spec_to_yaml(spec: &TaskSpec) -> Result<String> {
    let mut map = Mapping::new();
    map.insert(string("name"), string(&spec.name));
    map.insert(string("workspace"), string(&spec.workspace));
    map.insert(string("mode"), string(&spec.mode));
    map.insert(string("agent"), string(&spec.agent));
    map.insert(string("check_interval_seconds"), Value::from(spec.check_interval_seconds));
    map.insert(string("goal"), string(&spec.goal));
    if let Some(prompt) = &spec.initial_prompt {
        map.insert(string("initial_prompt"), string(prompt));
    }
    if !spec.steps.is_empty() {
        map.insert(string("steps"), Value::Sequence(spec.steps.iter().map(step_value).collect()));
    }
    if !spec.acceptance.is_empty() {
        map.insert(string("acceptance"), strings(&spec.acceptance));
    }
    if !spec.checks.is_empty() {
        map.insert(string("checks"), checks_value(&spec.checks));
    }
    if let Some(rounds) = spec.max_verification_rounds {
        map.insert(string("max_verification_rounds"), Value::from(rounds));
    }
    super::unattended::emit_unattended(&spec.unattended, &mut map);
    Ok(serde_yaml::to_string(&Value::Mapping(map))?)
}

/// Commented guidance appended to the default spec: the optional parts a new user
/// would not otherwise discover.
const DEFAULT_SPEC_FOOTER: &str = "\
# Optional: executable checks OpenLoom runs itself before it accepts
# \"STEP DONE\" or \"TASK COMPLETE\" (per step under a step's `checks:`, or here).
# checks:
#   - run: cargo test
#     timeout: 10m
#   - file_exists: README.md
#   - file_contains: {path: README.md, pattern: \"^# \"}
#   - changes_within: [src/, tests/]
# max_verification_rounds: 5
";

/// The reference's default config (`openloom init`) for a workspace, plus commented
/// examples of executable checks.
pub fn default_spec_yaml(workspace: &str) -> String {
    let mut map = Mapping::new();
    map.insert(string("name"), string("Untitled task"));
    map.insert(string("workspace"), string(workspace));
    map.insert(string("mode"), string("normal"));
    map.insert(string("agent"), string("opencode"));
    map.insert(string("check_interval_minutes"), Value::from(5));
    map.insert(string("goal"), string("Describe what you want the agent to accomplish."));
    map.insert(string("acceptance"), strings(&["All steps completed successfully".to_owned()]));
    map.insert(
        string("steps"),
        strings(&[
            "Analyze the problem".to_owned(),
            "Implement the solution".to_owned(),
            "Verify the result".to_owned(),
        ]),
    );
    // Serialising a mapping of strings cannot fail; fall back to a minimal spec anyway.
    let body = serde_yaml::to_string(&Value::Mapping(map)).unwrap_or_else(|error| {
        tracing::error!(%error, "could not serialise the default spec");
        format!("name: Untitled task\nworkspace: {workspace:?}\ngoal: Describe the task.\n")
    });
    format!("{body}{DEFAULT_SPEC_FOOTER}")
}

/// Writes [`default_spec_yaml`] to `path` and returns the path.
///
/// Refuses with [`Error::AlreadyExists`] when the file exists, unless `force` is set
/// (the check and the creation are one step, so a concurrent writer is not clobbered).
pub fn write_default_spec(path: &Path, workspace: &str, force: bool) -> Result<PathBuf> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            Error::AlreadyExists { path: path.to_owned() }
        } else {
            Error::Io { action: "create", path: path.to_owned(), source }
        }
    })?;
    file.write_all(default_spec_yaml(workspace).as_bytes()).map_err(|source| Error::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })?;
    Ok(path.to_owned())
}
