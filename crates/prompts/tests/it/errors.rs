//! Every malformed spec gets a clear error — where, which field, what is valid —
//! and never a panic.

use openloom_prompts::{Error, parse_markdown, parse_yaml};

fn yaml_error(text: &str) -> Error {
    parse_yaml(text, "task.yaml").expect_err("the spec is invalid")
}

#[test]
fn empty_documents_say_what_a_spec_looks_like() {
    for text in ["", "   \n", "# only a comment\n", "{}"] {
        let err = yaml_error(text);
        assert!(matches!(err, Error::EmptySpec { .. }), "{text:?}: {err:?}");
        assert!(err.to_string().contains("task.yaml: the spec is empty"), "{err}");
        assert!(err.to_string().contains("goal:"), "names a field to start with: {err}");
    }
    let err = parse_markdown(" \n\n", "task.md").expect_err("empty");
    assert!(err.to_string().starts_with("task.md: the spec is empty"), "{err}");
}

#[test]
fn documents_that_are_not_mappings_say_what_they_are() {
    let cases = [
        ("- a\n- b\n", "is a list, not a mapping"),
        ("just text\n", "is a string"),
        ("42", "is a number"),
    ];
    for (text, problem) in cases {
        let err = yaml_error(text);
        let message = err.to_string();
        assert!(message.contains("<document>") && message.contains(problem), "{message}");
        assert!(message.contains("expected a YAML mapping"), "{message}");
    }
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let err = yaml_error("name: ok\ngoal: fine\nsteps: [unclosed\n");
    let Error::YamlSyntax { location, message } = &err else { panic!("syntax error: {err:?}") };
    assert_eq!(location.origin, "task.yaml");
    assert!(location.line.is_some_and(|l| l >= 3), "{location:?}");
    assert!(location.column.is_some(), "{location:?}");
    assert!(!message.is_empty());
    assert!(err.to_string().starts_with("task.yaml:"), "{err}");

    let err = yaml_error("name: a\n  bad: indent\n");
    assert!(matches!(err, Error::YamlSyntax { .. }), "{err:?}");
}

#[test]
fn semantic_errors_name_the_field_path() {
    let cases = [
        ("steps:\n  - title: A\n  - acceptance: [x]\n", "steps[1]: has no `title` (or `name`)"),
        ("steps:\n  - title: '  '\n", "steps[0]: has no `title`"),
        ("steps: do everything\n", "steps: is a string; expected a list"),
        ("steps:\n  title: A\n", "steps: is a mapping"),
        ("steps:\n  - [nested]\n", "steps[0]: is a list"),
        ("steps:\n  - ~\n", "steps[0]: is empty (null)"),
        ("acceptance: tests pass\n", "acceptance: is a string; expected a list of strings"),
        ("global_acceptance: {a: 1}\n", "global_acceptance: is a mapping"),
        ("acceptance: [ok, [nested]]\n", "acceptance[1]: is a list"),
        ("steps:\n  - title: A\n    acceptance: one\n", "steps[0].acceptance: is a string"),
        ("steps: [a]\nstep_acceptance: [x]\n", "step_acceptance[0]: is a string"),
        ("step_acceptance: yes please\n", "step_acceptance: is a string"),
        ("check_interval_minutes: -5\n", "check_interval_minutes: is negative"),
        ("check_interval_seconds: -1\n", "check_interval_seconds: is negative"),
        ("check_interval_minutes: soon\n", "check_interval_minutes: \"soon\" is not a number"),
        ("check_interval: '-5m'\n", "check_interval: \"-5m\" is negative"),
        ("check_interval: 1h30\n", "check_interval: \"1h30\" is not a duration"),
        ("check_interval: true\n", "check_interval: is a boolean"),
        ("name: [a, b]\n", "name: is a list"),
        ("goal: {a: 1}\n", "goal: is a mapping"),
        ("max_verification_rounds: 0\n", "max_verification_rounds: is zero"),
        ("max_verification_rounds: many\n", "max_verification_rounds: \"many\" is not a number"),
        (
            "steps:\n  - title: A\n    checks:\n      - lint: x\n",
            "steps[0].checks[0]: unknown check kind `lint`",
        ),
        ("checks:\n  - run: ''\n", "checks[0].run: is an empty command"),
        ("checks:\n  - run: x\n    timeout: 0\n", "checks[0].timeout: is zero"),
        (
            "checks:\n  - file_contains: {path: a, pattern: '[a-'}\n",
            "checks[0].file_contains.pattern",
        ),
    ];
    for (text, fragment) in cases {
        let message = yaml_error(text).to_string();
        let line = message
            .strip_prefix("task.yaml:")
            .and_then(|rest| rest.split_once(": "))
            .map(|(line, _)| line);
        assert!(line.is_some_and(|l| l.parse::<u32>().is_ok()), "has a line: {message}");
        assert!(message.contains(fragment), "{text:?}:\n  got  {message}\n  want {fragment}");
        assert!(message.contains("; expected "), "says what is valid: {message}");
    }
}

#[test]
fn markdown_errors_carry_the_line() {
    let text = "# T\ncheck_interval: 1h30\n## Goal\ng\n";
    let message = parse_markdown(text, "task.md").expect_err("bad interval").to_string();
    assert!(message.starts_with("task.md:2: check_interval:"), "{message}");

    let text = "# T\n## Goal\ng\n## Checks\n- run: cargo test\n- lint: everything\n";
    let err = parse_markdown(text, "task.md").expect_err("bad check");
    let message = err.to_string();
    assert!(message.starts_with("task.md:6: checks[1]: unknown check kind `lint`"), "{message}");

    let text = "## Checks\n- file_contains: README.md ~ (unclosed\n";
    let message = parse_markdown(text, "task.md").expect_err("bad regex").to_string();
    assert!(message.contains("task.md:2") && message.contains("not a valid regex"), "{message}");
}

#[test]
fn semantic_errors_point_at_the_top_level_key_line() {
    let text = "name: T\ngoal: g\n\nsteps:\n  - title: A\n  - acceptance: [x]\n";
    let message = yaml_error(text).to_string();
    assert!(message.starts_with("task.yaml:4: steps[1]:"), "{message}");
    let message = yaml_error("goal: g\ncheck_interval_minutes: -1\n").to_string();
    assert!(message.starts_with("task.yaml:2: check_interval_minutes:"), "{message}");
    // Flow style has no key at a line start: the error has no line, but the field.
    let message = yaml_error("{goal: g, steps: text}").to_string();
    assert!(message.starts_with("task.yaml: steps:"), "{message}");
}
