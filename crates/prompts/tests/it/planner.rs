//! Finding and validating the planner's JSON.

use openloom_prompts::{Error, Plan, extract_plan_json, parse_plan_reply, plan_to_spec};
use serde_json::json;

#[test]
fn finds_json_bare_fenced_or_in_prose() {
    let plan = json!({"goal": "g", "steps": ["a"]});
    let text = plan.to_string();
    let replies = [
        text.clone(),
        format!("  {text}\n"),
        format!("```json\n{text}\n```"),
        format!("```\n{text}\n```"),
        format!("Here you go:\n```JSON\n{text}\n```\nBye"),
        format!("Plan: {text} — hope it helps"),
        format!("Use {{curly}} braces like {{this}}. {text}"),
        r#"A string with a brace: {"note": "} tricky {", "goal": "g", "steps": ["a"]}"#.to_owned(),
    ];
    for reply in &replies {
        let found = extract_plan_json(reply).unwrap_or_else(|| panic!("no JSON in {reply:?}"));
        assert_eq!(found["goal"], "g", "{reply}");
    }
}

#[test]
fn prefers_a_fence_over_earlier_prose_braces() {
    let reply = "Note {} is empty.\n```json\n{\"goal\": \"fenced\", \"steps\": [\"a\"]}\n```";
    assert_eq!(extract_plan_json(reply).expect("json")["goal"], "fenced");
}

#[test]
fn no_object_means_none() {
    for reply in ["", "no json here", "[1, 2]", "{ unbalanced", "{not: json}", "}{"] {
        assert_eq!(extract_plan_json(reply), None, "{reply:?}");
    }
}

#[test]
fn validation_explains_what_is_missing() {
    let err = parse_plan_reply("no json at all", "intent").expect_err("no json");
    assert!(matches!(err, Error::PlanWithoutJson { .. }), "{err:?}");

    let err = parse_plan_reply(r#"{"goal": "g", "steps": []}"#, "intent").expect_err("no steps");
    assert!(err.to_string().contains("at least one step"), "{err}");

    let err = parse_plan_reply(r#"{"steps": [{"acceptance": ["x"]}]}"#, "i").expect_err("untitled");
    assert!(err.to_string().contains("steps"), "{err}");

    let err = parse_plan_reply(r#"{"steps": ["a"]}"#, "  ").expect_err("no goal");
    assert!(err.to_string().contains("goal"), "{err}");
}

#[test]
fn lenient_with_model_shortcuts() {
    let reply = r#"{"goal": "g", "steps": [{"title": "a", "acceptance": "one string"}, 7, null]}"#;
    let plan = parse_plan_reply(reply, "").expect("plan");
    assert_eq!(plan.steps.len(), 2);
    assert_eq!(plan.steps[0].acceptance, ["one string"]);
    assert_eq!(plan.steps[1].title, "7");
    assert_eq!(plan.name, "g");
}

#[test]
fn specs_from_plans_use_the_interval_given() {
    let plan =
        Plan::from_json(&json!({"name": "n", "goal": "g", "steps": ["a"]}), "").expect("plan");
    let spec = plan_to_spec(&plan, "/w", None);
    assert_eq!(spec.check_interval_seconds, 0);
    assert_eq!(spec.initial_prompt.as_deref(), Some("g"), "the goal when there is no intent");
    assert_eq!(plan_to_spec(&plan, "/w", Some(120)).check_interval_seconds, 120);
}
