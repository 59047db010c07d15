//! The unattended-operation keys of a YAML spec: `permissions` (OpenCode's own
//! `permission` shape), `questions`, `stall_timeout`, `human_timeout`,
//! `max_stall_recoveries` and `max_checks_without_progress`.

use openloom_core::policy::{Action, PermissionRule, QuestionPolicy, pattern_problem};
use openloom_core::spec::Unattended;
use serde_yaml::{Mapping, Value};

use super::interval::{BareUnit, interval_from_text};
use super::value::{kind_of, non_negative_int};
use crate::error::{Error, Location, Result};

/// The keys this module reads.
pub(crate) const UNATTENDED_KEYS: [&str; 6] = [
    "permissions",
    "questions",
    "stall_timeout",
    "human_timeout",
    "max_stall_recoveries",
    "max_checks_without_progress",
];

const ACTION_EXPECTED: &str = "one of allow, deny, ask";
const PERMISSIONS_EXPECTED: &str = "a mapping of permission keys to an action or to a mapping of \
     patterns to actions, as in OpenCode's config: `bash: {\"*\": ask, \"cargo *\": allow}`";
const DURATION_EXPECTED: &str = "a duration with its unit such as `15m`, `90s`, `2h`, or `off`";

/// Reads the unattended keys of a spec mapping.
pub(crate) fn parse_unattended(map: &Mapping, location: &Location) -> Result<Unattended> {
    let present = |key: &str| map.get(key).filter(|v| !v.is_null());
    Ok(Unattended {
        permissions: present("permissions").map(|v| parse_permissions(v, location)).transpose()?,
        questions: present("questions").map(|v| parse_questions(v, location)).transpose()?,
        stall_timeout_seconds: present("stall_timeout")
            .map(|v| duration(v, location, "stall_timeout"))
            .transpose()?,
        human_timeout_seconds: present("human_timeout")
            .map(|v| duration(v, location, "human_timeout"))
            .transpose()?,
        max_stall_recoveries: present("max_stall_recoveries")
            .map(|v| count(v, location, "max_stall_recoveries"))
            .transpose()?,
        max_checks_without_progress: present("max_checks_without_progress")
            .map(|v| count(v, location, "max_checks_without_progress"))
            .transpose()?,
    })
}

/// A config file's `task_defaults:` — the unattended keys, for every task whose
/// spec leaves them unset. Unlike a spec, a key it does not know is an error: a
/// misspelt default would otherwise silently not apply to any task.
pub fn parse_task_defaults(value: &Value, origin: &str) -> Result<Unattended> {
    let location = Location::new(origin);
    let expected = "a mapping of the spec's unattended keys: permissions, questions, \
         stall_timeout, human_timeout, max_stall_recoveries, max_checks_without_progress";
    let map = match value {
        Value::Null => return Ok(Unattended::default()),
        Value::Mapping(map) => map,
        other => {
            return Err(Error::field(
                &location,
                "task_defaults",
                format!("is {}", kind_of(other)),
                expected,
            ));
        }
    };
    if let Some(unknown) =
        map.keys().find(|key| !key.as_str().is_some_and(|k| UNATTENDED_KEYS.contains(&k)))
    {
        let name =
            unknown.as_str().map_or_else(|| format!("<{}>", kind_of(unknown)), str::to_owned);
        return Err(Error::field(
            &location,
            format!("task_defaults.{name}"),
            "is not a key task_defaults takes",
            expected,
        ));
    }
    parse_unattended(map, &location)
}

/// `permissions:` in OpenCode's shape, flattened into rules in the order written
/// (the last matching rule wins, so order is meaning).
fn parse_permissions(value: &Value, location: &Location) -> Result<Vec<PermissionRule>> {
    let field = "permissions";
    let map = match value {
        // `permissions: ask` is one rule for everything, as OpenCode reads it.
        Value::String(_) => {
            let action = action(value, location, field)?;
            return Ok(vec![PermissionRule::new("*", "*", action)]);
        }
        Value::Mapping(map) => map,
        other => {
            return Err(Error::field(
                location,
                field,
                format!("is {}", kind_of(other)),
                PERMISSIONS_EXPECTED,
            ));
        }
    };
    let mut rules = Vec::new();
    for (key, rule) in map {
        let permission = pattern_text(key, location, field)?;
        let field = format!("{field}.{}", field_name(&permission));
        match rule {
            Value::Mapping(patterns) => {
                for (pattern, action_value) in patterns {
                    let pattern = pattern_text(pattern, location, &field)?;
                    let field = format!("{field}[{pattern:?}]");
                    rules.push(PermissionRule::new(
                        permission.clone(),
                        pattern,
                        action(action_value, location, &field)?,
                    ));
                }
            }
            other => {
                rules.push(PermissionRule::new(
                    permission.clone(),
                    "*",
                    action(other, location, &field)?,
                ));
            }
        }
    }
    Ok(rules)
}

/// A permission key or pattern: text (YAML may have read `123` as a number).
fn pattern_text(value: &Value, location: &Location, field: &str) -> Result<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(Error::field(
                location,
                field,
                format!("has a key that is {}", kind_of(other)),
                "a permission key such as `bash` or a pattern such as \"cargo *\"",
            ));
        }
    };
    match pattern_problem(&text) {
        Some(problem) => Err(Error::field(
            location,
            field,
            format!("has a pattern {text:?} that {problem}"),
            "a pattern with `*` (any text) and `?` (one character)",
        )),
        None => Ok(text),
    }
}

/// The key as a field-path segment: bare when plain, quoted otherwise.
fn field_name(key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

fn action(value: &Value, location: &Location, field: &str) -> Result<Action> {
    let Value::String(name) = value else {
        return Err(Error::field(
            location,
            field,
            format!("is {}", kind_of(value)),
            ACTION_EXPECTED,
        ));
    };
    Action::from_name(name.trim()).ok_or_else(|| {
        Error::field(location, field, format!("is {name:?}, not an action"), ACTION_EXPECTED)
    })
}

fn parse_questions(value: &Value, location: &Location) -> Result<QuestionPolicy> {
    let expected = "`ask` (hold a question for a person) or `deny` (the agent may not ask)";
    match value.as_str().map(str::trim) {
        Some("ask") => Ok(QuestionPolicy::Ask),
        Some("deny") => Ok(QuestionPolicy::Deny),
        Some(other) => Err(Error::field(location, "questions", format!("is {other:?}"), expected)),
        None => {
            Err(Error::field(location, "questions", format!("is {}", kind_of(value)), expected))
        }
    }
}

/// A timeout in seconds; `0` (or `off`) turns the timeout off. A bare number other
/// than 0 is refused: minutes or seconds would both be a plausible reading.
fn duration(value: &Value, location: &Location, field: &str) -> Result<u64> {
    let text = match value {
        Value::String(text) => text.trim().to_lowercase(),
        Value::Number(_) if non_negative_int(value, location, field)? == 0 => return Ok(0),
        Value::Number(n) => {
            return Err(Error::field(
                location,
                field,
                format!("is {n} without a unit"),
                DURATION_EXPECTED,
            ));
        }
        other => {
            return Err(Error::field(
                location,
                field,
                format!("is {}", kind_of(other)),
                DURATION_EXPECTED,
            ));
        }
    };
    if text == "off" || text == "never" {
        return Ok(0);
    }
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(Error::field(location, field, format!("is {text:?}"), DURATION_EXPECTED));
    }
    if digits.chars().all(|c| c == '0') {
        return Ok(0);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::field(
            location,
            field,
            format!("is {text:?} without a unit"),
            DURATION_EXPECTED,
        ));
    }
    interval_from_text(&text, BareUnit::Seconds)
        .map_err(|problem| Error::field(location, field, problem, DURATION_EXPECTED))
}

fn count(value: &Value, location: &Location, field: &str) -> Result<u32> {
    let n = non_negative_int(value, location, field)?;
    u32::try_from(n)
        .map_err(|_| Error::field(location, field, "is too large", "a whole number, 0 or more"))
}

/// The keys [`parse_unattended`] reads, written back in the same syntax (for
/// `spec_to_yaml`); nothing when every setting is the default.
pub(crate) fn emit_unattended(unattended: &Unattended, map: &mut Mapping) {
    let string = |text: &str| Value::String(text.to_owned());
    if let Some(rules) = &unattended.permissions {
        let mut by_key = Mapping::new();
        for rule in rules {
            let entry = by_key
                .entry(string(&rule.permission))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Value::Mapping(patterns) = entry {
                // A pattern repeated under one key keeps its last action: the one
                // that wins in OpenCode's order too.
                patterns.remove(rule.pattern.as_str());
                patterns.insert(string(&rule.pattern), string(rule.action.as_str()));
            }
        }
        map.insert(string("permissions"), Value::Mapping(by_key));
    }
    match unattended.questions {
        Some(QuestionPolicy::Deny) => map.insert(string("questions"), string("deny")),
        Some(QuestionPolicy::Ask) => map.insert(string("questions"), string("ask")),
        None => None,
    };
    let seconds = |n: u64| if n == 0 { string("off") } else { string(&format!("{n}s")) };
    if let Some(n) = unattended.stall_timeout_seconds {
        map.insert(string("stall_timeout"), seconds(n));
    }
    if let Some(n) = unattended.human_timeout_seconds {
        map.insert(string("human_timeout"), seconds(n));
    }
    if let Some(n) = unattended.max_stall_recoveries {
        map.insert(string("max_stall_recoveries"), Value::from(n));
    }
    if let Some(n) = unattended.max_checks_without_progress {
        map.insert(string("max_checks_without_progress"), Value::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{parse_yaml, spec_to_yaml};

    fn parse(text: &str) -> Result<Unattended> {
        parse_yaml(text, "task.yaml").map(|spec| spec.unattended)
    }

    #[test]
    fn the_issues_example_policy_reads_in_order() {
        let unattended = parse(
            "name: t\ngoal: g\npermissions:\n  \"*\": ask\n  edit: allow\n  bash:\n    \"*\": ask\n    \"cargo *\": allow\n    \"git push *\": deny\n  external_directory: deny\nquestions: deny\nstall_timeout: 15m\nhuman_timeout: 2h\nmax_stall_recoveries: 1\nmax_checks_without_progress: 0\n",
        )
        .expect("valid");
        let rules: Vec<String> = unattended.rules().iter().map(ToString::to_string).collect();
        assert_eq!(
            rules,
            [
                r#"* "*": ask"#,
                r#"edit "*": allow"#,
                r#"bash "*": ask"#,
                r#"bash "cargo *": allow"#,
                r#"bash "git push *": deny"#,
                r#"external_directory "*": deny"#,
            ]
        );
        assert_eq!(unattended.questions(), QuestionPolicy::Deny);
        assert_eq!(unattended.stall_timeout_seconds, Some(900));
        assert_eq!(unattended.human_timeout_seconds, Some(7200));
        assert_eq!(unattended.max_stall_recoveries, Some(1));
        assert_eq!(unattended.max_checks_without_progress, Some(0));
    }

    #[test]
    fn a_spec_without_the_keys_keeps_the_defaults() {
        let unattended = parse("name: t\ngoal: g\n").expect("valid");
        assert!(unattended.is_default());
        assert_eq!(unattended.permissions, None, "OpenCode's own config decides");
        assert_eq!(unattended.stall_timeout(), 900);
        assert_eq!(unattended.human_timeout(), 3600);
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let error = parse("name: t\ngoal: g\npermissions:\n  bash:\n    \"cargo *\": yes please\n")
            .expect_err("bad action");
        let text = error.to_string();
        assert!(text.contains("task.yaml:3"), "{text}");
        assert!(text.contains(r#"permissions.bash["cargo *"]"#), "{text}");
        assert!(text.contains("allow, deny, ask"), "{text}");

        let error = parse("name: t\npermissions:\n  bash:\n    \"\": allow\n").expect_err("empty");
        assert!(error.to_string().contains("is empty"), "{error}");
        let error = parse("name: t\npermissions: [bash]\n").expect_err("a list");
        assert!(error.to_string().contains("OpenCode's config"), "{error}");
        let error = parse("name: t\nquestions: maybe\n").expect_err("questions");
        assert!(error.to_string().contains("`deny`"), "{error}");
        let error = parse("name: t\nstall_timeout: 900\n").expect_err("no unit");
        assert!(error.to_string().contains("without a unit"), "{error}");
        let error = parse("name: t\nstall_timeout: soon\n").expect_err("no digits");
        assert!(error.to_string().contains("stall_timeout"), "{error}");
        assert_eq!(parse("name: t\nstall_timeout: off\n").expect("off").stall_timeout(), 0);
        assert_eq!(parse("name: t\nhuman_timeout: 0\n").expect("0").human_timeout(), 0);
        assert_eq!(parse("name: t\npermissions: allow\n").expect("one").rules().len(), 1);
    }

    #[test]
    fn task_defaults_take_the_same_keys_and_refuse_others() {
        let value: Value =
            serde_yaml::from_str("questions: deny\nstall_timeout: 30m\npermissions: {bash: ask}\n")
                .expect("yaml");
        let defaults = parse_task_defaults(&value, "openloom.config.yaml").expect("valid");
        assert_eq!(defaults.questions, Some(QuestionPolicy::Deny));
        assert_eq!(defaults.stall_timeout_seconds, Some(1800));
        let value: Value = serde_yaml::from_str("stall_timout: 30m\n").expect("yaml");
        let error = parse_task_defaults(&value, "c.yaml").expect_err("typo");
        assert!(error.to_string().contains("task_defaults.stall_timout"), "{error}");
        // The spec wins key by key.
        let spec = parse_yaml("name: t\nstall_timeout: 1m\n", "t.yaml").expect("valid");
        let merged = spec.unattended.or(&defaults);
        assert_eq!(merged.stall_timeout_seconds, Some(60));
        assert_eq!(merged.questions, Some(QuestionPolicy::Deny));
        assert_eq!(merged.rules().len(), 1);
    }

    #[test]
    fn the_keys_round_trip_through_spec_to_yaml() {
        let spec = parse_yaml(
            "name: t\ngoal: g\npermissions:\n  \"*\": ask\n  bash: {\"*\": ask, \"cargo *\": allow}\nquestions: deny\nstall_timeout: 90s\nhuman_timeout: off\nmax_stall_recoveries: 3\n",
            "a.yaml",
        )
        .expect("valid");
        let written = spec_to_yaml(&spec).expect("emits");
        let back = parse_yaml(&written, "b.yaml").expect("reads back");
        assert_eq!(back.unattended, spec.unattended, "{written}");
    }
}
