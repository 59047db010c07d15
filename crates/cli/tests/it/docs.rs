//! The specs shown in the documentation parse: a user copying one gets a working spec.

use std::path::Path;

fn blocks<'a>(text: &'a str, language: &str) -> Vec<&'a str> {
    let fence = format!("```{language}\n");
    text.split(fence.as_str()).skip(1).filter_map(|rest| rest.split("\n```").next()).collect()
}

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(relative)).expect("doc exists")
}

#[test]
fn every_yaml_spec_in_the_docs_parses() {
    let mut parsed = 0;
    for doc in ["README.md", "docs/spec-format.md"] {
        for block in blocks(&read(doc), "yaml").into_iter().filter(|b| b.contains("goal:")) {
            let spec = openloom_prompts::parse_yaml(block, doc)
                .unwrap_or_else(|e| panic!("{doc}: {e}\n{block}"));
            assert!(spec.has_checks(), "{doc}: the example shows checks");
            parsed += 1;
        }
    }
    assert!(parsed >= 2, "found the examples ({parsed})");
}

#[test]
fn the_markdown_spec_in_the_docs_parses() {
    let doc = read("docs/spec-format.md");
    let block = blocks(&doc, "markdown").into_iter().next().expect("a markdown example");
    let spec = openloom_prompts::parse_markdown(block, "docs/spec-format.md").expect("parses");
    assert_eq!(spec.name, "Reconnect with backoff");
    assert_eq!(spec.steps.len(), 2);
    assert_eq!(spec.checks.len(), 4);
}
