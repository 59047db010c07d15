//! Executable checks in a spec: the YAML list form and the Markdown line form.
//!
//! YAML, per step (`steps[i].checks`) or for the whole task (`checks`):
//!
//! ```yaml
//! checks:
//!   - run: cargo test            # optional: timeout: 10m | 30s | <seconds>, expect_status: 0
//!   - file_exists: src/lib.rs
//!   - file_missing: TODO.md
//!   - file_contains: {path: README.md, pattern: "^# Usage"}
//!   - changes_within: [src/, tests/]
//! ```
//!
//! Markdown (a `## Checks` section, whole-task checks only), one check per list item:
//! `run: cargo test`, `file_exists: path`, `file_missing: path`,
//! `file_contains: path ~ pattern`, `changes_within: src/, tests/`. A value wrapped in
//! backticks is unwrapped, since Markdown authors write commands as code.
//!
//! Every problem is an error naming the field (`steps[1].checks[0].timeout`): a check
//! that silently did nothing would make verification lie.

use openloom_core::CheckDefinition;
use openloom_core::spec::DEFAULT_CHECK_TIMEOUT_SECONDS;
use serde_yaml::{Mapping, Value};

use super::value::{is_falsy, kind_of, scalar_text};
use crate::error::{Error, Location, Result};
use crate::pytext::py_strip;

/// The check kinds, as written in specs.
pub const CHECK_KINDS: [&str; 5] =
    ["run", "file_exists", "file_missing", "file_contains", "changes_within"];

const KINDS_EXPECTED: &str =
    "one of `run`, `file_exists`, `file_missing`, `file_contains`, `changes_within`";
const TIMEOUT_EXPECTED: &str = "a positive duration such as `10m`, `30s`, or a number of seconds";

/// Parses a `checks:` value; null or absent means no checks.
pub(crate) fn parse_check_list(
    value: Option<&Value>,
    location: &Location,
    field: &str,
) -> Result<Vec<CheckDefinition>> {
    let Some(value) = value.filter(|v| !is_falsy(v)) else { return Ok(Vec::new()) };
    let Value::Sequence(items) = value else {
        return Err(Error::field(
            location,
            field,
            format!("is {}", kind_of(value)),
            "a list of checks, e.g. `- run: cargo test`",
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| parse_check_item(item, location, &format!("{field}[{index}]")))
        .collect()
}

fn parse_check_item(item: &Value, location: &Location, field: &str) -> Result<CheckDefinition> {
    let Value::Mapping(map) = item else {
        return Err(Error::field(
            location,
            field,
            format!("is {}", kind_of(item)),
            format!("a mapping with {KINDS_EXPECTED}, e.g. `- run: cargo test`"),
        ));
    };
    let mut keys = Vec::new();
    for key in map.keys() {
        match key {
            Value::String(k) => keys.push(k.as_str()),
            other => {
                return Err(Error::field(
                    location,
                    field,
                    format!("has a key that is {}", kind_of(other)),
                    KINDS_EXPECTED,
                ));
            }
        }
    }
    let kinds: Vec<&str> = keys.iter().copied().filter(|k| CHECK_KINDS.contains(k)).collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            let problem = match keys.first() {
                Some(first) => format!("unknown check kind `{first}`"),
                None => "is an empty mapping".to_owned(),
            };
            return Err(Error::field(location, field, problem, KINDS_EXPECTED));
        }
        [first, second, ..] => {
            return Err(Error::field(
                location,
                field,
                format!("has two check kinds, `{first}` and `{second}`"),
                "one check kind per list item",
            ));
        }
    };
    let allowed_extra: &[&str] = if kind == "run" { &["timeout", "expect_status"] } else { &[] };
    if let Some(extra) = keys.iter().find(|k| **k != kind && !allowed_extra.contains(k)) {
        let expected = if kind == "run" {
            "only `timeout` and `expect_status` beside `run`".to_owned()
        } else {
            format!("nothing beside `{kind}`")
        };
        return Err(Error::field(
            location,
            field,
            format!("unknown key `{extra}` in a `{kind}` check"),
            expected,
        ));
    }
    let value = &map[kind];
    let value_field = format!("{field}.{kind}");
    match kind {
        "run" => parse_run(value, map, location, field, &value_field),
        "file_exists" => {
            Ok(CheckDefinition::FileExists { path: path_text(value, location, &value_field)? })
        }
        "file_missing" => {
            Ok(CheckDefinition::FileMissing { path: path_text(value, location, &value_field)? })
        }
        "file_contains" => parse_file_contains(value, location, &value_field),
        _ => parse_changes_within(value, location, &value_field),
    }
}

fn parse_run(
    value: &Value,
    map: &Mapping,
    location: &Location,
    field: &str,
    value_field: &str,
) -> Result<CheckDefinition> {
    let command = non_empty_text(value, location, value_field, "a shell command")
        .map_err(|_| empty_command(location, value_field, value))?;
    let timeout_seconds = match map.get("timeout").filter(|v| !v.is_null()) {
        Some(timeout) => parse_timeout(timeout, location, &format!("{field}.timeout"))?,
        None => DEFAULT_CHECK_TIMEOUT_SECONDS,
    };
    let expect_status = match map.get("expect_status").filter(|v| !v.is_null()) {
        Some(status) => parse_status(status, location, &format!("{field}.expect_status"))?,
        None => 0,
    };
    Ok(CheckDefinition::Run { command, expect_status, timeout_seconds })
}

fn empty_command(location: &Location, field: &str, value: &Value) -> Error {
    let problem = match value {
        Value::String(_) | Value::Null => "is an empty command".to_owned(),
        other => format!("is {}", kind_of(other)),
    };
    Error::field(location, field, problem, "a shell command, e.g. `cargo test`")
}

fn parse_timeout(value: &Value, location: &Location, field: &str) -> Result<u64> {
    let seconds = match value {
        Value::Number(n) => match n.as_u64() {
            Some(s) => s,
            None => {
                return Err(Error::field(
                    location,
                    field,
                    format!("{n} is not a positive whole number of seconds"),
                    TIMEOUT_EXPECTED,
                ));
            }
        },
        Value::String(text) => timeout_from_text(text)
            .map_err(|problem| Error::field(location, field, problem, TIMEOUT_EXPECTED))?,
        other => {
            return Err(Error::field(
                location,
                field,
                format!("is {}", kind_of(other)),
                TIMEOUT_EXPECTED,
            ));
        }
    };
    if seconds == 0 {
        return Err(Error::field(location, field, "is zero", TIMEOUT_EXPECTED));
    }
    Ok(seconds)
}

/// `10m`, `30s`, `2h` or a bare number of seconds.
pub(crate) fn timeout_from_text(text: &str) -> std::result::Result<u64, String> {
    let raw = text.trim().to_lowercase();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let number: u64 = digits.parse().map_err(|_| format!("{text:?} is not a duration"))?;
    let factor = match unit.trim() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        other => return Err(format!("{text:?} has an unknown unit {other:?}")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

fn parse_status(value: &Value, location: &Location, field: &str) -> Result<i32> {
    let expected = "a whole number exit status, e.g. `0`";
    match value {
        Value::Number(n) => n.as_i64().and_then(|s| i32::try_from(s).ok()).ok_or_else(|| {
            Error::field(location, field, format!("{n} is not an exit status"), expected)
        }),
        other => Err(Error::field(location, field, format!("is {}", kind_of(other)), expected)),
    }
}

fn non_empty_text(
    value: &Value,
    location: &Location,
    field: &str,
    expected: &str,
) -> Result<String> {
    let text = scalar_text(value, location, field, expected)?;
    let stripped = py_strip(&text);
    if stripped.is_empty() {
        return Err(Error::field(location, field, "is empty", expected));
    }
    Ok(stripped.to_owned())
}

fn path_text(value: &Value, location: &Location, field: &str) -> Result<String> {
    non_empty_text(value, location, field, "a path relative to the workspace")
}

fn parse_file_contains(value: &Value, location: &Location, field: &str) -> Result<CheckDefinition> {
    let expected = "a mapping `{path: README.md, pattern: \"regex\"}`";
    let Value::Mapping(map) = value else {
        return Err(Error::field(location, field, format!("is {}", kind_of(value)), expected));
    };
    for key in map.keys() {
        if key.as_str() != Some("path") && key.as_str() != Some("pattern") {
            let name = key.as_str().map_or_else(|| kind_of(key).to_owned(), str::to_owned);
            return Err(Error::field(location, field, format!("unknown key `{name}`"), expected));
        }
    }
    let get = |key: &str| {
        map.get(key)
            .ok_or_else(|| Error::field(location, format!("{field}.{key}"), "is missing", expected))
    };
    let path = path_text(get("path")?, location, &format!("{field}.path"))?;
    let pattern_field = format!("{field}.pattern");
    let pattern = scalar_text(get("pattern")?, location, &pattern_field, "a regular expression")?;
    validate_pattern(&pattern).map_err(|problem| {
        Error::field(location, &pattern_field, problem, "a valid regular expression")
    })?;
    Ok(CheckDefinition::FileContains { path, pattern })
}

/// Compiles a `file_contains` pattern so a typo fails at parse time, not at check time.
fn validate_pattern(pattern: &str) -> std::result::Result<(), String> {
    if pattern.is_empty() {
        return Err("is empty".to_owned());
    }
    regex_lite::Regex::new(pattern).map(|_| ()).map_err(|e| format!("is not a valid regex: {e}"))
}

fn parse_changes_within(
    value: &Value,
    location: &Location,
    field: &str,
) -> Result<CheckDefinition> {
    let items: Vec<&Value> = match value {
        Value::Sequence(items) => items.iter().collect(),
        Value::String(_) => vec![value],
        other => {
            return Err(Error::field(
                location,
                field,
                format!("is {}", kind_of(other)),
                "a list of paths, e.g. `[src/, tests/]`",
            ));
        }
    };
    let paths = items
        .iter()
        .enumerate()
        .map(|(index, item)| path_text(item, location, &format!("{field}[{index}]")))
        .collect::<Result<Vec<_>>>()?;
    if paths.is_empty() {
        return Err(Error::field(
            location,
            field,
            "lists no paths",
            "at least one path, e.g. `[src/, tests/]`",
        ));
    }
    Ok(CheckDefinition::ChangesWithin { paths })
}

/// Unwraps a value written as Markdown code: `` `cargo test` `` becomes `cargo test`.
fn unwrap_code(text: &str) -> &str {
    let trimmed = text.trim();
    trimmed
        .strip_prefix('`')
        .and_then(|t| t.strip_suffix('`'))
        .filter(|t| !t.contains('`'))
        .map_or(trimmed, str::trim)
}

/// Parses one `## Checks` list item (bullet already removed), e.g. `run: cargo test`.
pub(crate) fn parse_check_line(
    item: &str,
    location: &Location,
    field: &str,
) -> Result<CheckDefinition> {
    let expected_line = "`run: cmd`, `file_exists: path`, `file_missing: path`, `file_contains: path ~ pattern` or `changes_within: a, b`";
    let Some((key, rest)) = item.split_once(':') else {
        return Err(Error::field(
            location,
            field,
            format!("{item:?} is not a check"),
            expected_line,
        ));
    };
    let key = key.trim().to_lowercase();
    let rest = rest.trim();
    let non_empty = |text: &str, what: &str| -> Result<String> {
        let text = unwrap_code(text);
        if text.is_empty() {
            Err(Error::field(
                location,
                field,
                format!("`{key}` has an empty {what}"),
                expected_line,
            ))
        } else {
            Ok(text.to_owned())
        }
    };
    match key.as_str() {
        "run" => Ok(CheckDefinition::Run {
            command: non_empty(rest, "command")?,
            expect_status: 0,
            timeout_seconds: DEFAULT_CHECK_TIMEOUT_SECONDS,
        }),
        "file_exists" => Ok(CheckDefinition::FileExists { path: non_empty(rest, "path")? }),
        "file_missing" => Ok(CheckDefinition::FileMissing { path: non_empty(rest, "path")? }),
        "file_contains" => {
            let Some((path, pattern)) = rest.split_once(" ~ ") else {
                return Err(Error::field(
                    location,
                    field,
                    format!("{rest:?} has no ` ~ ` between path and pattern"),
                    "`file_contains: path ~ pattern`",
                ));
            };
            let path = non_empty(path, "path")?;
            let pattern = unwrap_code(pattern).to_owned();
            validate_pattern(&pattern).map_err(|problem| {
                Error::field(
                    location,
                    field,
                    format!("pattern {problem}"),
                    "a valid regular expression",
                )
            })?;
            Ok(CheckDefinition::FileContains { path, pattern })
        }
        "changes_within" => {
            let paths: Vec<String> = rest
                .split(',')
                .map(unwrap_code)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            if paths.is_empty() {
                return Err(Error::field(
                    location,
                    field,
                    "`changes_within` lists no paths",
                    "`changes_within: src/, tests/`",
                ));
            }
            Ok(CheckDefinition::ChangesWithin { paths })
        }
        other => Err(Error::field(
            location,
            field,
            format!("unknown check kind `{other}`"),
            expected_line,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(yaml: &str) -> Result<Vec<CheckDefinition>> {
        let value: Value = serde_yaml::from_str(yaml).expect("test yaml");
        parse_check_list(Some(&value), &Location::new("t.yaml"), "checks")
    }

    #[test]
    fn every_kind_parses() {
        let parsed = checks(
            r#"
- run: cargo test
  timeout: 10m
  expect_status: 1
- run: make
- file_exists: src/lib.rs
- file_missing: TODO.md
- file_contains: {path: README.md, pattern: "^# Use"}
- changes_within: [src/, tests/]
- changes_within: docs/
"#,
        )
        .expect("valid checks");
        assert_eq!(
            parsed,
            vec![
                CheckDefinition::Run {
                    command: "cargo test".into(),
                    expect_status: 1,
                    timeout_seconds: 600
                },
                CheckDefinition::Run {
                    command: "make".into(),
                    expect_status: 0,
                    timeout_seconds: DEFAULT_CHECK_TIMEOUT_SECONDS
                },
                CheckDefinition::FileExists { path: "src/lib.rs".into() },
                CheckDefinition::FileMissing { path: "TODO.md".into() },
                CheckDefinition::FileContains {
                    path: "README.md".into(),
                    pattern: "^# Use".into()
                },
                CheckDefinition::ChangesWithin { paths: vec!["src/".into(), "tests/".into()] },
                CheckDefinition::ChangesWithin { paths: vec!["docs/".into()] },
            ]
        );
    }

    #[test]
    fn timeouts_accept_units_and_seconds() {
        for (text, seconds) in [("30s", 30), ("10m", 600), ("2h", 7200), ("45", 45), ("5 min", 300)]
        {
            assert_eq!(timeout_from_text(text), Ok(seconds), "{text}");
        }
        for bad in ["", "m", "-5", "5 days", "1.5m"] {
            assert!(timeout_from_text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_name_the_field() {
        let cases = [
            ("- runn: x", "checks[0]: unknown check kind `runn`"),
            ("- run: '  '", "checks[0].run: is an empty command"),
            ("- run: x\n  timeout: 0", "checks[0].timeout: is zero"),
            ("- run: x\n  timeout: 0s", "checks[0].timeout: is zero"),
            ("- run: x\n  timeout: -3", "checks[0].timeout: -3 is not a positive"),
            ("- run: x\n  expect_status: ok", "checks[0].expect_status: is a string"),
            ("- run: x\n  retries: 2", "checks[0]: unknown key `retries` in a `run` check"),
            ("- {run: x, file_exists: y}", "checks[0]: has two check kinds"),
            (
                "- file_contains: {path: a, pattern: '('}",
                "checks[0].file_contains.pattern: is not a valid regex",
            ),
            ("- file_contains: {path: a}", "checks[0].file_contains.pattern: is missing"),
            ("- file_contains: a ~ b", "checks[0].file_contains: is a string"),
            ("- changes_within: []", "checks[0].changes_within: lists no paths"),
            ("- file_exists: ~", "checks[0].file_exists: is empty (null)"),
            ("- cargo test", "checks[0]: is a string"),
            ("run: x", "checks: is a mapping"),
            ("- {}", "checks[0]: is an empty mapping"),
        ];
        for (yaml, message) in cases {
            let err = checks(yaml).expect_err(yaml);
            assert!(err.to_string().contains(message), "{yaml}: {err}");
        }
    }

    #[test]
    fn markdown_lines() {
        let loc = Location::new("t.md");
        let parse = |line: &str| parse_check_line(line, &loc, "checks[0]");
        assert_eq!(
            parse("run: `cargo test --all`").expect("run"),
            CheckDefinition::Run {
                command: "cargo test --all".into(),
                expect_status: 0,
                timeout_seconds: DEFAULT_CHECK_TIMEOUT_SECONDS
            }
        );
        assert_eq!(
            parse("file_contains: README.md ~ ^# (Usage|Use)").expect("contains"),
            CheckDefinition::FileContains {
                path: "README.md".into(),
                pattern: "^# (Usage|Use)".into()
            }
        );
        assert_eq!(
            parse("Changes_Within: src/, `tests/` ,").expect("within"),
            CheckDefinition::ChangesWithin { paths: vec!["src/".into(), "tests/".into()] }
        );
        assert_eq!(
            parse("file_missing: a b").expect("missing"),
            CheckDefinition::FileMissing { path: "a b".into() }
        );
        for bad in [
            "run:",
            "cargo test",
            "lint: x",
            "file_contains: README.md",
            "file_contains: a ~ (",
            "changes_within: ,",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
