//! The YAML spec format: the reference's `TaskSpec.from_dict`, plus executable checks.

use openloom_core::spec::{DEFAULT_AGENT, DEFAULT_MODE, UNTITLED_TASK};
use openloom_core::{Step, TaskSpec};
use serde_yaml::{Mapping, Value};

use super::checks::parse_check_list;
use super::expansion::{MAX_EXPANDED_BYTES, MAX_FLOW_OPENERS, Refused, check_expansion};
use super::interval::interval_seconds;
use super::unattended::{UNATTENDED_KEYS, parse_unattended};
use super::value::{is_falsy, kind_of, non_negative_int, optional_text, scalar_text, text_list};
use crate::error::{Error, Location, Result};
use crate::pytext::py_strip;

/// What a minimal spec looks like, for errors about the document as a whole.
pub(crate) const MINIMAL_SPEC: &str =
    "a YAML mapping such as `name: Fix login` / `goal: ...` / `steps: [...]`";

const KNOWN_KEYS: [&str; 15] = [
    "name",
    "workspace",
    "goal",
    "steps",
    "step_acceptance",
    "acceptance",
    "global_acceptance",
    "mode",
    "agent",
    "check_interval_minutes",
    "check_interval_seconds",
    "check_interval",
    "initial_prompt",
    "checks",
    "max_verification_rounds",
];

const STEP_KEYS: [&str; 4] = ["title", "name", "acceptance", "checks"];

/// Parses a YAML spec. `origin` names the text in errors: a file path, or `<input>`.
///
/// Follows the reference's `TaskSpec.from_dict` (defaults, `step_acceptance` rows
/// applied only when their count matches the steps, `global_acceptance` before
/// `acceptance`, interval clamps), with these deliberate differences:
/// - a step mapping without `title` or `name` is an error (the reference dropped the
///   step silently, renumbering every later step);
/// - each step is read by its own shape, so a list mixing `- text` and `- title: ...`
///   items works (the reference read every item by the first one's shape);
/// - a list where text belongs, text where a list belongs (`acceptance: tests pass`,
///   which the reference split into characters), null items, negative or non-numeric
///   intervals are errors naming the field;
/// - unknown keys are logged as one warning per spec (naming the first few), as a
///   hint at typos; they are not an error, so specs written for the reference (or a
///   later version) still run;
/// - the [limits](super::check_spec_limits) on size, steps, checks and text fields
///   apply.
///
/// Anchors, aliases and `<<` merge keys work as in PyYAML's `safe_load`. A document
/// whose aliases would expand past [`MAX_EXPANDED_BYTES`] is refused before it is
/// built, so a small hostile text cannot take the memory of the process parsing it;
/// so is one with more than [`MAX_FLOW_OPENERS`] `[`/`{` (deep flow nesting makes
/// the YAML parser quadratic).
///
/// Errors carry the field path and, for semantic errors, the line of the top-level
/// key the field is under; syntax errors carry the parser's line and column.
pub fn parse_yaml(text: &str, origin: &str) -> Result<TaskSpec> {
    let location = Location::new(origin);
    super::limits::check_text_size(text, &location)?;
    let syntax = |e: serde_yaml::Error| {
        let location = match e.location() {
            Some(at) => location.at(at.line(), Some(at.column())),
            None => location.clone(),
        };
        Error::YamlSyntax { location, message: e.to_string() }
    };
    // Before building anything: aliases must not blow a small text up (see `expansion`).
    check_expansion(text, MAX_EXPANDED_BYTES).map_err(|refused| match refused {
        Refused::TooLarge => Error::field(
            &location,
            "<document>",
            format!(
                "expands to more than {} MiB once its aliases (`*name`) are copied in",
                MAX_EXPANDED_BYTES / (1024 * 1024)
            ),
            "a spec that repeats less: write a large shared part once",
        ),
        Refused::TooManyOpeners => Error::field(
            &location,
            "<document>",
            format!("has more than {MAX_FLOW_OPENERS} `[` and `{{` characters"),
            "a spec with less bracketed text: nested flow collections take the YAML \
             parser quadratic time, so their count is bounded; put large code or data \
             in a workspace file and name it",
        ),
        Refused::Yaml(e) => syntax(e),
    })?;
    let mut document: Value = serde_yaml::from_str(text).map_err(syntax)?;
    // `<<: *defaults` merge keys, which the reference's PyYAML applies.
    document.apply_merge().map_err(syntax)?;
    match document {
        Value::Mapping(map) if !map.is_empty() => {
            let spec = spec_from_mapping(&map, &location).map_err(|e| with_key_line(e, text))?;
            super::limits::check_spec_limits(&spec, origin).map_err(|e| with_key_line(e, text))?;
            Ok(spec)
        }
        Value::Mapping(_) | Value::Null => {
            Err(Error::EmptySpec { location, expected: MINIMAL_SPEC })
        }
        other => Err(Error::field(
            &location,
            "<document>",
            format!("is {}, not a mapping", kind_of(&other)),
            MINIMAL_SPEC,
        )),
    }
}

/// Adds a line to a field error: that of the top-level key the field is under
/// (`steps` for `steps[1].checks[0]`). `serde_yaml::Value` keeps no positions, so
/// this finds the key's line in the text; it is left out when the key is not
/// written plainly at the start of a line (flow style, quoted keys).
fn with_key_line(error: Error, text: &str) -> Error {
    let Error::InvalidField { location, field, problem, expected } = error else { return error };
    let key = field.split(['.', '[']).next().unwrap_or_default();
    let line = crate::pytext::py_splitlines(text).iter().position(|line| {
        line.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    let location = match (location.line, line) {
        (None, Some(index)) => location.at(index + 1, None),
        _ => location,
    };
    Error::InvalidField { location, field, problem, expected }
}

/// Builds a spec from an already parsed mapping (e.g. a JSON API body converted to YAML).
pub(crate) fn spec_from_mapping(map: &Mapping, location: &Location) -> Result<TaskSpec> {
    let mut unknown = UnknownKeys::default();
    for key in map.keys() {
        if !key
            .as_str()
            .is_some_and(|name| KNOWN_KEYS.contains(&name) || UNATTENDED_KEYS.contains(&name))
        {
            unknown.note("", key);
        }
    }
    let text = |key: &str| optional_text(map, key, location, key);
    let steps = parse_steps(map.get("steps"), location, &mut unknown);
    unknown.report(location);
    let mut steps = steps?;
    apply_step_acceptance(map.get("step_acceptance"), &mut steps, location)?;
    let (acceptance_key, acceptance_value) = match map.get("global_acceptance") {
        Some(value) if !is_falsy(value) => ("global_acceptance", Some(value)),
        _ => ("acceptance", map.get("acceptance")),
    };
    let acceptance = match acceptance_value {
        Some(value) => text_list(value, location, acceptance_key)?,
        None => Vec::new(),
    };
    Ok(TaskSpec {
        name: text("name")?.unwrap_or_else(|| UNTITLED_TASK.to_owned()),
        workspace: text("workspace")?.unwrap_or_default(),
        goal: text("goal")?.unwrap_or_default(),
        steps,
        acceptance,
        mode: text("mode")?.unwrap_or_else(|| DEFAULT_MODE.to_owned()),
        agent: text("agent")?.unwrap_or_else(|| DEFAULT_AGENT.to_owned()),
        check_interval_seconds: interval_seconds(map, location)?,
        initial_prompt: text("initial_prompt")?,
        checks: parse_check_list(map.get("checks"), location, "checks")?,
        max_verification_rounds: max_rounds(map.get("max_verification_rounds"), location)?,
        unattended: parse_unattended(map, location)?,
    })
}

/// Unknown keys of a spec, reported in one line however many there are: they hint at
/// a typo, and a line per key let one spec flood the log.
#[derive(Default)]
struct UnknownKeys {
    count: usize,
    first: Vec<String>,
}

impl UnknownKeys {
    /// Names shown in the line; the rest are counted.
    const SHOWN: usize = 5;

    fn note(&mut self, field: &str, key: &Value) {
        self.count += 1;
        if self.first.len() < Self::SHOWN {
            let name = match key.as_str() {
                Some(name) => name.chars().take(40).collect::<String>(),
                None => format!("<{}>", kind_of(key)),
            };
            self.first.push(if field.is_empty() { name } else { format!("{field}.{name}") });
        }
    }

    /// The one line to log, if any key was unknown.
    fn message(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let more = self.count.saturating_sub(self.first.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Some(format!(
            "{} unknown key(s) in the spec ignored: {:?}{more}; see docs/spec-format.md for the keys",
            self.count, self.first
        ))
    }

    fn report(&self, location: &Location) {
        if let Some(message) = self.message() {
            tracing::warn!(origin = %location, "{message}");
        }
    }
}

fn parse_steps(
    value: Option<&Value>,
    location: &Location,
    unknown: &mut UnknownKeys,
) -> Result<Vec<Step>> {
    let Some(value) = value.filter(|v| !is_falsy(v)) else { return Ok(Vec::new()) };
    let Value::Sequence(items) = value else {
        return Err(Error::field(
            location,
            "steps",
            format!("is {}", kind_of(value)),
            "a list of step titles or `- title: ...` mappings",
        ));
    };
    let mut steps = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let field = format!("steps[{index}]");
        match item {
            Value::Mapping(map) => steps.push(step_from_mapping(map, location, &field, unknown)?),
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                let title = scalar_text(item, location, &field, "a step title")?;
                let title = py_strip(&title);
                // The reference drops blank titles in a list of strings.
                if !title.is_empty() {
                    steps.push(Step::new(title));
                }
            }
            other => {
                return Err(Error::field(
                    location,
                    field,
                    format!("is {}", kind_of(other)),
                    "a step title or a mapping with `title:`",
                ));
            }
        }
    }
    Ok(steps)
}

fn step_from_mapping(
    map: &Mapping,
    location: &Location,
    field: &str,
    unknown: &mut UnknownKeys,
) -> Result<Step> {
    for key in map.keys() {
        if !key.as_str().is_some_and(|k| STEP_KEYS.contains(&k)) {
            unknown.note(field, key);
        }
    }
    let title = match optional_text(map, "title", location, &format!("{field}.title"))? {
        Some(title) => Some(title),
        None => optional_text(map, "name", location, &format!("{field}.name"))?,
    };
    let Some(title) = title else {
        return Err(Error::field(
            location,
            field,
            "has no `title` (or `name`)",
            "a step mapping like `- title: Add tests` with optional `acceptance:` and `checks:`",
        ));
    };
    let acceptance = match map.get("acceptance") {
        Some(value) => text_list(value, location, &format!("{field}.acceptance"))?,
        None => Vec::new(),
    };
    let checks = parse_check_list(map.get("checks"), location, &format!("{field}.checks"))?;
    Ok(Step { title, acceptance, checks })
}

/// `step_acceptance:` rows override each step's acceptance, but only when there is
/// exactly one row per step (the reference's rule); a null row means none.
fn apply_step_acceptance(
    value: Option<&Value>,
    steps: &mut [Step],
    location: &Location,
) -> Result<()> {
    let Some(value) = value.filter(|v| !is_falsy(v)) else { return Ok(()) };
    let Value::Sequence(rows) = value else {
        return Err(Error::field(
            location,
            "step_acceptance",
            format!("is {}", kind_of(value)),
            "a list with one list of criteria per step",
        ));
    };
    let parsed = rows
        .iter()
        .enumerate()
        .map(|(index, row)| match row {
            Value::Null | Value::Sequence(_) => {
                text_list(row, location, &format!("step_acceptance[{index}]"))
            }
            other => Err(Error::field(
                location,
                format!("step_acceptance[{index}]"),
                format!("is {}", kind_of(other)),
                "a list of criteria for that step",
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    if parsed.len() != steps.len() {
        tracing::warn!(
            origin = %location,
            rows = parsed.len(),
            steps = steps.len(),
            "step_acceptance ignored: it needs exactly one row per step"
        );
        return Ok(());
    }
    for (step, row) in steps.iter_mut().zip(parsed) {
        step.acceptance = row;
    }
    Ok(())
}

fn max_rounds(value: Option<&Value>, location: &Location) -> Result<Option<u32>> {
    let field = "max_verification_rounds";
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(None) };
    let expected = "a whole number of rounds, at least 1";
    let rounds = non_negative_int(value, location, field)?;
    match u32::try_from(rounds) {
        Ok(0) => Err(Error::field(location, field, "is zero", expected)),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(Error::field(location, field, "is too large", expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_number_of_unknown_keys_makes_one_line() {
        let mut unknown = UnknownKeys::default();
        assert_eq!(unknown.message(), None);
        for n in 0..30_000 {
            unknown.note("", &Value::String(format!("key{n}")));
        }
        unknown.note("steps[2]", &Value::String("titel".into()));
        let message = unknown.message().expect("a line");
        assert!(message.starts_with("30001 unknown key(s)"), "{message}");
        assert!(message.contains("\"key0\", \"key1\", \"key2\", \"key3\", \"key4\"]"), "{message}");
        assert!(message.contains("and 29996 more"), "{message}");
        assert!(!message.contains("key5"), "only the first five are named: {message}");

        let mut one = UnknownKeys::default();
        one.note("steps[2]", &Value::String("titel".into()));
        assert_eq!(
            one.message().as_deref(),
            Some(
                "1 unknown key(s) in the spec ignored: [\"steps[2].titel\"]; see docs/spec-format.md for the keys"
            )
        );
    }
}
