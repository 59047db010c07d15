use serde_json::{Value, json};

use super::*;

/// A delivery of GitHub's `issues` event, `labeled`, shaped like GitHub's documented
/// payload (the fixture the server's tests send too).
pub(crate) fn labeled() -> Value {
    serde_json::from_str(include_str!("../../tests/fixtures/issues-labeled.json")).expect("fixture")
}

fn config() -> GithubConfig {
    GithubConfig {
        label: "openloom".into(),
        repos: BTreeMap::from([("octo/hello".to_owned(), "/srv/work/hello".to_owned())]),
    }
}

fn run(payload: &Value) -> Result<HookDecision> {
    decide(
        &config(),
        "issues",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        payload.to_string().as_bytes(),
    )
}

fn task(payload: &Value) -> Arrival {
    match run(payload).expect("decided") {
        HookDecision::Task(arrival) => *arrival,
        other => panic!("expected a task, got {other:?}"),
    }
}

#[test]
fn a_labeled_issue_with_a_plain_body_is_a_prompt_task() {
    let arrival = task(&labeled());
    assert_eq!(arrival.origin.as_str(), "github:72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(arrival.spec.name, "Add a greeting file");
    assert_eq!(arrival.spec.workspace, "/srv/work/hello");
    assert_eq!(arrival.spec.goal, "Please create hello.txt saying hello.\n\nThanks!");
    assert!(arrival.spec.steps.is_empty());
}

#[test]
fn a_yaml_block_in_the_body_is_the_spec() {
    let mut payload = labeled();
    payload["issue"]["body"] = json!(
        "Context first.\r\n\r\n```yaml\r\ngoal: create hello.txt\r\nsteps:\r\n  - write it\r\n  - check it\r\nchecks:\r\n  - file_exists: hello.txt\r\n```\r\nMore words."
    );
    let spec = task(&payload).spec;
    assert_eq!(spec.name, "Add a greeting file", "the title names the task");
    assert_eq!(spec.goal, "create hello.txt");
    assert_eq!(spec.steps.len(), 2);
    assert_eq!(spec.checks.len(), 1);
    assert_eq!(spec.workspace, "/srv/work/hello");

    payload["issue"]["body"] = json!("```yml\ngoal: g\nworkspace: site\n```");
    assert_eq!(task(&payload).spec.workspace, "/srv/work/hello/site");
}

#[test]
fn a_spec_may_not_choose_its_own_workspace() {
    let mut payload = labeled();
    for asked in ["/etc", "../other", "a/../../b"] {
        payload["issue"]["body"] = json!(format!("```yaml\ngoal: g\nworkspace: {asked}\n```"));
        let err = run(&payload).expect_err("refused");
        assert!(matches!(err, Error::Refused { .. }), "{asked}: {err}");
        assert!(err.to_string().contains("octo/hello#7"), "{err}");
    }
}

#[test]
fn a_broken_spec_block_is_the_parsers_error() {
    let mut payload = labeled();
    payload["issue"]["body"] = json!("```yaml\ngoal: g\nsteps: 3\n```");
    let err = run(&payload).expect_err("invalid");
    assert!(matches!(err, Error::Spec(_)), "{err}");
    assert!(
        err.to_string().starts_with("github:octo/hello#7") && err.to_string().contains("steps"),
        "{err}"
    );
}

#[test]
fn an_issue_opened_with_the_label_is_taken_and_without_it_ignored() {
    let mut payload = labeled();
    payload["action"] = json!("opened");
    payload.as_object_mut().expect("object").remove("label");
    assert_eq!(task(&payload).spec.name, "Add a greeting file");
    payload["issue"]["labels"] = json!([{ "name": "bug" }]);
    assert!(
        matches!(run(&payload).expect("ok"), HookDecision::Ignore(why) if why.contains("label"))
    );
}

#[test]
fn other_labels_actions_and_events_are_ignored_with_a_reason() {
    let mut payload = labeled();
    payload["label"]["name"] = json!("bug");
    assert!(
        matches!(run(&payload).expect("ok"), HookDecision::Ignore(why) if why.contains("\"openloom\""))
    );
    let mut payload = labeled();
    payload["action"] = json!("closed");
    assert!(
        matches!(run(&payload).expect("ok"), HookDecision::Ignore(why) if why.contains("closed"))
    );
    let push = decide(&config(), "push", "d", b"{}").expect("ok");
    assert!(matches!(push, HookDecision::Ignore(why) if why.contains("Issues")));
    assert_eq!(
        decide(&config(), "ping", "d", b"{\"zen\":\"Keep it logically awesome.\"}").expect("ok"),
        HookDecision::Pong
    );
}

#[test]
fn label_and_repository_names_ignore_case() {
    let mut payload = labeled();
    payload["label"]["name"] = json!("OpenLoom");
    payload["repository"]["full_name"] = json!("Octo/Hello");
    assert_eq!(task(&payload).spec.workspace, "/srv/work/hello");
}

#[test]
fn an_unknown_repository_says_how_to_map_it() {
    let mut payload = labeled();
    payload["repository"]["full_name"] = json!("octo/other");
    let err = run(&payload).expect_err("unknown");
    assert!(matches!(err, Error::UnknownRepository { .. }));
    assert!(err.to_string().contains("octo/other: /path/to/its/checkout"), "{err}");
}

#[test]
fn malformed_payloads_and_delivery_ids_are_refused() {
    let err = decide(&config(), "issues", "d", b"{\"action\":\"labeled\"}").expect_err("no issue");
    assert!(matches!(err, Error::Payload { .. }) && err.to_string().contains("issue"), "{err}");
    let err = decide(&config(), "issues", "", labeled().to_string().as_bytes()).expect_err("no id");
    assert!(err.to_string().contains("X-GitHub-Delivery"), "{err}");
}

#[test]
fn the_first_yaml_block_is_found_and_other_blocks_are_not() {
    assert_eq!(yaml_block("a\n```yaml\nx: 1\n```\n```yaml\ny: 2\n```"), Some("x: 1\n"));
    assert_eq!(yaml_block("```sh\nls\n```"), None);
    assert_eq!(yaml_block("``` YAML \nx: 1\n"), Some("x: 1\n"));
    assert_eq!(yaml_block("no block"), None);
}
