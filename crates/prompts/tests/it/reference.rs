//! The port against the reference's recorded answers, case by case.

use openloom_core::TaskSpec;
use openloom_prompts::{
    PromptOptions, assistant_transcript, build_bootstrap_prompt, build_periodic_check_prompt,
    build_planner_prompt, default_spec_yaml, detect_progress, last_assistant_text,
    messages_indicate_busy, needs_continue_reply, parse_markdown, parse_plan_reply, parse_yaml,
    plan_to_spec, task_spec_from_prompt,
};
use serde_json::Value;

use crate::common::{REFERENCE, agent_message, reference_dict, spec_from_reference_dict};

/// YAML cases where the port differs on purpose, with what it does instead:
/// `None` for an error, `Some(seconds)` for a different interval.
const YAML_DIVERGENCES: [(&str, Option<u64>); 11] = [
    // An explicit 0 means "no periodic checks" (the reference clamps to 10).
    ("seconds_zero", Some(0)),
    // Units are words: five minutes, one hour (the reference: 10 s, 60 s).
    ("interval_5_minutes", Some(300)),
    ("interval_1h", Some(3600)),
    // Negative intervals are errors (the reference clamps them up).
    ("negative_minutes", None),
    ("negative_seconds", None),
    // A titleless step is an error (the reference drops it and renumbers).
    ("titleless_step", None),
    // Text where a list belongs is an error (the reference splits it into characters).
    ("steps_string", None),
    ("acceptance_string", None),
    ("step_acceptance_string", None),
    // A mapping where the step list belongs (the reference crashes with KeyError).
    ("steps_mapping", None),
    // Errors in both; listed so the table shows every error case.
    ("nonnumeric_minutes", None),
];

fn cases(section: &str) -> &'static serde_json::Map<String, Value> {
    REFERENCE[section].as_object().expect("a section of cases")
}

#[test]
fn yaml_specs_match_the_reference() {
    let inputs = cases("yaml_inputs");
    let mut compared = 0;
    for (id, expected) in cases("yaml") {
        let text = inputs[id].as_str().expect("input text");
        let parsed = parse_yaml(text, "case.yaml");
        if let Some((_, divergence)) = YAML_DIVERGENCES.iter().find(|(d, _)| d == id) {
            match divergence {
                None => {
                    let err = parsed.expect_err(id);
                    assert!(err.to_string().starts_with("case.yaml"), "{id}: {err}");
                }
                Some(seconds) => {
                    assert_eq!(parsed.expect(id).check_interval_seconds, *seconds, "{id}");
                }
            }
            continue;
        }
        if expected.get("error").is_some() {
            assert!(parsed.is_err(), "{id}: the reference fails, so must we: {parsed:?}");
            continue;
        }
        let spec = parsed.unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(reference_dict(&spec), expected["ok"], "{id}");
        compared += 1;
    }
    assert!(compared >= 35, "only {compared} YAML cases compared");
}

#[test]
fn markdown_specs_match_the_reference() {
    let inputs = cases("markdown_inputs");
    for (id, expected) in cases("markdown") {
        let text = inputs[id].as_str().expect("input text");
        let spec = parse_markdown(text, "case.md").unwrap_or_else(|e| panic!("{id}: {e}"));
        // The reference's Markdown specs leave `step_acceptance` empty; core's steps
        // always carry their (here empty) acceptance, which means the same.
        let mut expected = expected["ok"].clone();
        let steps = expected["steps"].as_array().map_or(0, Vec::len);
        if expected["step_acceptance"].as_array().is_some_and(Vec::is_empty) {
            expected["step_acceptance"] = serde_json::json!(vec![Vec::<String>::new(); steps]);
        }
        assert_eq!(reference_dict(&spec), expected, "{id}");
    }
}

#[test]
fn prompt_specs_match_the_reference() {
    for case in REFERENCE["prompt_specs"].as_array().expect("cases") {
        let kwargs = &case["kwargs"];
        let mut options = PromptOptions::default();
        if let Some(watch) = kwargs["watch"].as_bool() {
            options.watch = watch;
        }
        options.check_interval_seconds = kwargs["check_interval_seconds"].as_u64();
        if let Some(agent) = kwargs["agent"].as_str() {
            options.agent = agent.into();
        }
        if let Some(mode) = kwargs["mode"].as_str() {
            options.mode = mode.into();
        }
        options.name = kwargs["name"].as_str().map(str::to_owned);
        let prompt = case["prompt"].as_str().expect("prompt");
        let workspace = case["workspace"].as_str().expect("workspace");
        let result = task_spec_from_prompt(prompt, workspace, options);
        match case["result"].get("ok") {
            Some(expected) => {
                let spec = result.unwrap_or_else(|e| panic!("{prompt:?}: {e}"));
                assert_eq!(&reference_dict(&spec), expected, "{prompt:?}");
            }
            None => assert!(result.is_err(), "{prompt:?} must be refused"),
        }
    }
}

#[test]
fn derived_titles_match_the_reference() {
    for case in REFERENCE["titles"].as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        // task_spec_from_prompt derives the name with the reference's title rule.
        match task_spec_from_prompt(prompt, "/w", PromptOptions::default()) {
            Ok(spec) => assert_eq!(spec.name, case["title"].as_str().expect("title"), "{prompt:?}"),
            Err(_) => assert!(prompt.trim().is_empty(), "only blank prompts are refused"),
        }
    }
}

fn named_spec(name: &str) -> TaskSpec {
    spec_from_reference_dict(&REFERENCE["prompt_specs_by_name"][name])
}

#[test]
fn bootstrap_prompts_match_the_reference_exactly() {
    let all = REFERENCE["bootstrap"].as_array().expect("cases");
    assert!(all.len() >= 20);
    for case in all {
        let name = case["spec"].as_str().expect("spec name");
        let step = case["current_step"].as_u64().expect("step") as usize;
        let prompt = build_bootstrap_prompt(&named_spec(name), step);
        assert_eq!(prompt, case["prompt"].as_str().expect("prompt"), "{name} step {step}");
    }
}

#[test]
fn periodic_prompts_match_the_reference_exactly() {
    for case in REFERENCE["periodic"].as_array().expect("cases") {
        let name = case["spec"].as_str().expect("spec name");
        let spec = named_spec(name);
        let step_done = case["step_done"].as_u64().expect("step_done");
        let marker = if step_done > 0 { format!("STEP DONE: {step_done}") } else { String::new() };
        let progress = detect_progress(&marker, &spec);
        let completed: Vec<u32> = case["completed_steps"]
            .as_array()
            .expect("completed")
            .iter()
            .map(|n| n.as_u64().expect("number") as u32)
            .collect();
        let current = case["current_step"].as_u64().expect("step") as usize;
        let prompt = build_periodic_check_prompt(&spec, current, &progress, &completed);
        assert_eq!(prompt, case["prompt"].as_str().expect("prompt"), "{name} {current}");
    }
}

#[test]
fn progress_detection_matches_the_reference() {
    for case in REFERENCE["detect"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let mut spec = TaskSpec::new("t", "/w", "g");
        spec.acceptance = serde_json::from_value(case["acceptance"].clone()).expect("strings");
        let got = detect_progress(text, &spec);
        let want = &case["result"];
        assert_eq!(got.task_complete, want["task_complete"].as_bool().expect("bool"), "{text}");
        assert_eq!(u64::from(got.step_done), want["step_done"].as_u64().expect("n"), "{text}");
        assert_eq!(got.acceptance_checked as u64, want["acceptance_checked"].as_u64().expect("n"));
        assert_eq!(got.acceptance_total as u64, want["acceptance_total"].as_u64().expect("n"));
        let progress = want["acceptance_progress"].as_f64().expect("f");
        assert!((got.acceptance_progress - progress).abs() < 1e-9, "{text}");
    }
}

/// Message cases where the port differs: the reference read reasoning parts as
/// text, the port reads markers and questions from text parts only.
const MESSAGE_DIVERGENCES: [&str; 1] = ["asks_only_in_reasoning"];

#[test]
fn session_readers_match_the_reference() {
    let all = cases("messages");
    assert!(all.keys().any(|k| k.starts_with("capture_")), "real OpenCode captures are included");
    for (id, case) in all {
        let messages: Vec<_> =
            case["messages"].as_array().expect("messages").iter().map(agent_message).collect();
        assert_eq!(messages_indicate_busy(&messages), case["busy"].as_bool().expect("b"), "{id}");
        if MESSAGE_DIVERGENCES.contains(&id.as_str()) {
            assert!(!needs_continue_reply(&messages), "{id}: reasoning is not a question");
            assert_eq!(assistant_transcript(&messages), "Working", "{id}");
            continue;
        }
        assert_eq!(
            needs_continue_reply(&messages),
            case["needs_continue_reply"].as_bool().expect("b"),
            "{id}"
        );
        assert_eq!(
            assistant_transcript(&messages),
            case["transcript"].as_str().expect("t"),
            "{id}"
        );
        assert_eq!(
            last_assistant_text(&messages),
            case["last_assistant"].as_str().expect("t"),
            "{id}"
        );
    }
}

#[test]
fn planner_prompt_matches_the_reference() {
    let case = &REFERENCE["planner_prompt"];
    let intent = case["intent"].as_str().expect("intent");
    let workspace = case["workspace"].as_str().expect("workspace");
    assert_eq!(build_planner_prompt(intent, workspace), case["prompt"].as_str().expect("p"));
    assert_eq!(build_planner_prompt("x", ""), case["prompt_no_workspace"].as_str().expect("p"));
}

#[test]
fn plan_replies_match_the_reference() {
    for (id, case) in cases("plan_replies") {
        let reply = case["reply"].as_str().expect("reply");
        let result = parse_plan_reply(reply, "Please add a login page");
        let Some(expected) = case.get("ok") else {
            assert!(result.is_err(), "{id}: the reference refuses this reply");
            continue;
        };
        let plan = result.unwrap_or_else(|e| panic!("{id}: {e}"));
        let want = &expected["plan"];
        assert_eq!(plan.name, want["name"].as_str().expect("name"), "{id}");
        assert_eq!(plan.goal, want["goal"].as_str().expect("goal"), "{id}");
        assert_eq!(plan.intent, want["intent"].as_str().expect("intent"), "{id}");
        assert_eq!(serde_json::json!(plan.global_acceptance), want["global_acceptance"], "{id}");
        let steps: Vec<Value> = plan
            .steps
            .iter()
            .map(|s| serde_json::json!({"title": s.title, "acceptance": s.acceptance}))
            .collect();
        assert_eq!(Value::Array(steps), want["steps"], "{id}");
        let spec = plan_to_spec(&plan, " /ws ", None);
        assert_eq!(reference_dict(&spec), expected["spec"], "{id}");
    }
}

#[test]
fn default_spec_is_the_reference_config_plus_commented_checks() {
    let case = &REFERENCE["default_config"];
    let yaml = default_spec_yaml(case["workspace"].as_str().expect("workspace"));
    let reference = case["yaml"].as_str().expect("yaml");
    assert!(yaml.starts_with(reference), "ours:\n{yaml}\nreference:\n{reference}");
    assert!(yaml[reference.len()..].lines().all(|l| l.starts_with('#')), "only comments added");
    let spec = parse_yaml(&yaml, "openloom.yaml").expect("the default spec parses");
    assert_eq!(spec.steps.len(), 3);
    assert_eq!(spec.check_interval_seconds, 300);
}
