//! Hostile or huge YAML: refused quickly with a clear error, never a crash or a
//! memory blow-up, while specs up to the limits still parse.

use std::time::{Duration, Instant};

use openloom_prompts::spec::{MAX_EXPANDED_BYTES, MAX_FLOW_OPENERS, MAX_SPEC_BYTES, MAX_STEPS};
use openloom_prompts::{Error, parse_markdown, parse_yaml};

/// Generous for a debug build on a loaded machine; the unguarded parse of the
/// quadratic document below takes far longer (and gigabytes).
const QUICK: Duration = Duration::from_secs(10);

fn timed(text: &str) -> (Result<openloom_core::TaskSpec, Error>, Duration) {
    let started = Instant::now();
    let result = parse_yaml(text, "hostile.yaml");
    (result, started.elapsed())
}

#[test]
fn billion_laughs_is_refused() {
    let mut text = String::from("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for pair in names.windows(2) {
        let aliases = vec![format!("*{}", pair[0]); 9].join(",");
        text.push_str(&format!("{}: &{} [{aliases}]\n", pair[1], pair[1]));
    }
    let (result, took) = timed(&text);
    let err = result.expect_err("a billion values must be refused");
    assert!(took < QUICK, "took {took:?}");
    assert!(err.to_string().starts_with("hostile.yaml"), "{err}");
}

#[test]
fn a_small_document_with_a_square_of_aliases_is_refused_before_it_is_built() {
    // 4,000 items aliased 4,000 times: 36 KB of text, 16 million values.
    let n = 4_000;
    let text = format!(
        "name: square\nitems: &a [{}]\nacceptance: [{}]\n",
        vec!["x"; n].join(", "),
        vec!["*a"; n].join(", ")
    );
    let (result, took) = timed(&text);
    let err = result.expect_err("the expansion must be refused");
    assert!(took < QUICK, "took {took:?}");
    let message = err.to_string();
    assert!(matches!(err, Error::InvalidField { .. }), "{err:?}");
    assert!(message.contains("<document>") && message.contains("aliases"), "{message}");
    assert!(message.contains(&format!("{} MiB", MAX_EXPANDED_BYTES >> 20)), "{message}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // Under the bracket limit: serde_yaml's depth limit answers.
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let depth = 2_000;
        let text = format!("goal: {}x{}\n", open.repeat(depth), close.repeat(depth));
        let (result, took) = timed(&text);
        let err = result.expect_err("too deep");
        assert!(took < QUICK, "took {took:?}");
        assert!(matches!(err, Error::YamlSyntax { .. }), "{err:?}");
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }
}

#[test]
fn very_deep_flow_nesting_is_refused_before_the_quadratic_scan() {
    // 100,000 levels: 200 KB that libyaml would scan for minutes before failing.
    let depth = 100_000;
    let text = format!("goal: {}x{}\n", "[".repeat(depth), "]".repeat(depth));
    let (result, took) = timed(&text);
    let err = result.expect_err("too deep");
    assert!(took < QUICK, "took {took:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("more than {MAX_FLOW_OPENERS}")), "{message}");
    assert!(message.contains("<document>"), "{message}");
}

#[test]
fn specs_up_to_the_limits_parse_and_past_them_are_refused_naming_the_limit() {
    let goal = "g".repeat(60 * 1024);
    let steps: Vec<String> = (0..MAX_STEPS).map(|i| format!("  - step {i}")).collect();
    let text = format!("name: big\ngoal: {goal}\nsteps:\n{}\n", steps.join("\n"));
    let spec = parse_yaml(&text, "big.yaml").expect("a big but honest spec parses");
    assert_eq!(spec.goal.len(), goal.len());
    assert_eq!(spec.steps.len(), MAX_STEPS);
    // Aliases themselves are fine when they stay small.
    let spec = parse_yaml("ok: &ok [tests pass]\nacceptance: *ok\n", "alias.yaml").expect("alias");
    assert_eq!(spec.acceptance, ["tests pass"]);

    // 40,000 steps (the probe's plans): refused, quickly, with the limit named.
    let text = format!("name: huge\nsteps: [{}]\n", vec!["s"; 40_000].join(", "));
    assert!(text.len() < MAX_SPEC_BYTES, "the step count, not the size, is what is refused");
    let (result, took) = timed(&text);
    let message = result.expect_err("40,000 steps").to_string();
    assert!(took < QUICK, "took {took:?}");
    assert!(message.contains("steps: has 40000 steps, more than the 200 allowed"), "{message}");
    let text = format!("name: huge\ngoal: {}\n", "g".repeat(MAX_SPEC_BYTES));
    let message = parse_yaml(&text, "huge.yaml").expect_err("too large").to_string();
    assert!(message.contains("more than the 256 KiB a spec may have"), "{message}");
    let text = format!("# huge\n\n## Goal\n{}\n", "g".repeat(MAX_SPEC_BYTES));
    let message = parse_markdown(&text, "huge.md").expect_err("too large").to_string();
    assert!(message.contains("256 KiB"), "{message}");
}

#[test]
fn a_merge_key_that_is_not_a_mapping_is_a_yaml_error() {
    let err = parse_yaml("steps:\n  - <<: 5\n    title: A\n", "merge.yaml").expect_err("bad");
    assert!(matches!(err, Error::YamlSyntax { .. }), "{err:?}");
    assert!(err.to_string().contains("merge"), "{err}");
}
