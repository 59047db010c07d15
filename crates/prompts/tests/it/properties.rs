//! Property tests: no input panics a parser, and specs survive `spec_to_yaml`.

use openloom_core::spec::Unattended;
use openloom_core::{Action, CheckDefinition, PermissionRule, QuestionPolicy, Step, TaskSpec};
use openloom_prompts::{extract_plan_json, parse_markdown, parse_yaml, spec_to_yaml};
use proptest::prelude::*;

proptest! {
    #[test]
    fn parse_yaml_never_panics(text in any::<String>()) {
        let _ = parse_yaml(&text, "<input>");
    }

    #[test]
    fn parse_yaml_never_panics_on_yamlish_text(
        text in r"(name|goal|steps|acceptance|checks|check_interval[a-z_]*|run|timeout|- |: |\[|\]|\{|\}|[a-z0-9 ]|\n|  |-|~|')*"
    ) {
        let _ = parse_yaml(&text, "<input>");
    }

    #[test]
    fn parse_markdown_never_panics(text in any::<String>()) {
        let _ = parse_markdown(&text, "<input>");
    }

    #[test]
    fn parse_markdown_never_panics_on_markdownish_text(
        text in r"(# |## (Goal|Steps|Acceptance|Checks)|[0-9]+\. |- \[[ x]\] |run: |file_contains: | ~ |check_interval: |[a-z0-9 ]|\n)*"
    ) {
        let _ = parse_markdown(&text, "<input>");
    }

    #[test]
    fn extract_plan_json_never_panics(text in any::<String>()) {
        let _ = extract_plan_json(&text);
    }

    #[test]
    fn extract_plan_json_never_panics_on_jsonish_text(text in r#"([{}\[\]",:\\ ]|```|json|goal|[a-z0-9])*"#) {
        let _ = extract_plan_json(&text);
    }

    #[test]
    fn specs_round_trip_through_yaml(spec in arb_spec()) {
        let yaml = spec_to_yaml(&spec).expect("a spec serialises");
        let parsed = parse_yaml(&yaml, "<roundtrip>")
            .unwrap_or_else(|e| panic!("{e}\n---\n{yaml}"));
        prop_assert_eq!(parsed, spec, "yaml:\n{}", yaml);
    }
}

/// Text as users write it: stripped, non-empty, any characters YAML must quote.
fn text() -> impl Strategy<Value = String> {
    r#"[a-zA-Z0-9 :#'"\-\[\]{}!&*?|>%@`,.é…]{0,24}"#
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("non-empty", |s| !s.is_empty())
}

fn multiline_text() -> impl Strategy<Value = String> {
    prop::collection::vec(text(), 1..4).prop_map(|lines| lines.join("\n"))
}

fn check() -> impl Strategy<Value = CheckDefinition> {
    prop_oneof![
        (text(), any::<i32>(), 1u64..100_000).prop_map(
            |(command, expect_status, timeout_seconds)| {
                CheckDefinition::Run { command, expect_status, timeout_seconds }
            }
        ),
        text().prop_map(|path| CheckDefinition::FileExists { path }),
        text().prop_map(|path| CheckDefinition::FileMissing { path }),
        (text(), r"\^?[a-z.]{1,8}(\.\*)?\$?")
            .prop_map(|(path, pattern)| CheckDefinition::FileContains { path, pattern }),
        prop::collection::vec(text(), 1..4)
            .prop_map(|paths| CheckDefinition::ChangesWithin { paths }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (text(), prop::collection::vec(text(), 0..3), prop::collection::vec(check(), 0..3))
        .prop_map(|(title, acceptance, checks)| Step { title, acceptance, checks })
}

fn unattended() -> impl Strategy<Value = Unattended> {
    let action = prop_oneof![Just(Action::Allow), Just(Action::Deny), Just(Action::Ask)];
    // YAML keys are unique, so a key's rules are written together: generate them so.
    let rules = prop::collection::btree_map(
        text(),
        prop::collection::btree_map(text(), action, 1..3),
        0..3,
    )
    .prop_map(|keys| {
        keys.into_iter()
            .flat_map(|(permission, patterns)| {
                patterns.into_iter().map(move |(pattern, action)| {
                    PermissionRule::new(permission.clone(), pattern, action)
                })
            })
            .collect::<Vec<_>>()
    });
    let timeout = || prop::option::of(prop_oneof![Just(0u64), 10u64..1_000_000]);
    (
        prop::option::of(rules),
        prop::option::of(prop_oneof![Just(QuestionPolicy::Ask), Just(QuestionPolicy::Deny)]),
        timeout(),
        timeout(),
        prop::option::of(0u32..10),
        prop::option::of(0u32..100),
    )
        .prop_map(|(permissions, questions, stall, human, recoveries, checks)| Unattended {
            permissions,
            questions,
            stall_timeout_seconds: stall,
            human_timeout_seconds: human,
            max_stall_recoveries: recoveries,
            max_checks_without_progress: checks,
        })
}

fn arb_spec() -> impl Strategy<Value = TaskSpec> {
    let interval = prop_oneof![Just(0u64), 10u64..1_000_000];
    (
        (text(), prop::option::of(text()), multiline_text(), text(), text()),
        (
            prop::collection::vec(step(), 0..4),
            prop::collection::vec(text(), 0..3),
            interval,
            prop::option::of(multiline_text()),
            prop::collection::vec(check(), 0..3),
            prop::option::of(1u32..50),
        ),
        unattended(),
    )
        .prop_map(
            |(
                (name, workspace, goal, mode, agent),
                (steps, acceptance, interval, prompt, checks, rounds),
                unattended,
            )| {
                TaskSpec {
                    name,
                    workspace: workspace.unwrap_or_default(),
                    goal,
                    steps,
                    acceptance,
                    mode,
                    agent,
                    check_interval_seconds: interval,
                    initial_prompt: prompt,
                    checks,
                    max_verification_rounds: rounds,
                    unattended,
                }
            },
        )
}
