//! Spec files: loading by extension, non-UTF-8 input, writing the default spec.

use std::fs;

use openloom_prompts::spec::DEFAULT_SPEC_FILENAME;
use openloom_prompts::{Error, load_spec_file, parse_yaml, write_default_spec};

#[test]
fn loads_yaml_and_markdown_by_extension() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = dir.path().join("task.yml");
    fs::write(&yaml, "name: From YAML\ngoal: g\nsteps: [a, b]\n").expect("write");
    let spec = load_spec_file(&yaml).expect("yaml spec");
    assert_eq!(spec.name, "From YAML");
    assert_eq!(spec.steps.len(), 2);

    let markdown = dir.path().join("task.Markdown");
    fs::write(&markdown, "# From Markdown\n## Goal\ng\n## Steps\n1. a\n").expect("write");
    let spec = load_spec_file(&markdown).expect("markdown spec");
    assert_eq!(spec.name, "From Markdown");
    assert_eq!(spec.steps[0].title, "a");

    // Markdown text in a .yaml file is read as YAML, and says so when it fails.
    let wrong = dir.path().join("task.yaml");
    fs::write(&wrong, "# Title\n## Goal\ngoal text\n").expect("write");
    let err = load_spec_file(&wrong).expect_err("not YAML");
    assert!(err.to_string().contains("task.yaml"), "{err}");
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bom.yaml");
    fs::write(&path, "\u{feff}name: Bom\n").expect("write");
    assert_eq!(load_spec_file(&path).expect("spec").name, "Bom");
}

#[test]
fn non_utf8_files_are_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latin1.yaml");
    fs::write(&path, b"name: ok\ngoal: caf\xe9\n").expect("write");
    let err = load_spec_file(&path).expect_err("latin-1");
    let Error::NotUtf8 { offset, line, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*offset, *line), (18, 2));
    let message = err.to_string();
    assert!(message.contains("latin1.yaml") && message.contains("not UTF-8"), "{message}");
}

#[test]
fn missing_files_name_the_path() {
    let err =
        load_spec_file(std::path::Path::new("/nonexistent/openloom.yaml")).expect_err("missing");
    assert!(matches!(err, Error::Io { action: "read", .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/openloom.yaml"), "{err}");
}

#[test]
fn default_spec_refuses_to_overwrite_unless_forced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(DEFAULT_SPEC_FILENAME);
    let written = write_default_spec(&path, "/home/me/app", false).expect("first write");
    assert_eq!(written, path);
    let spec = load_spec_file(&path).expect("the default spec loads");
    assert_eq!(spec.workspace, "/home/me/app");
    assert_eq!(spec.name, "Untitled task");

    fs::write(&path, "name: Mine\n").expect("user edits");
    let err = write_default_spec(&path, "/x", false).expect_err("exists");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert!(err.to_string().contains("force"), "says how to force: {err}");
    assert_eq!(fs::read_to_string(&path).expect("read"), "name: Mine\n", "untouched");

    write_default_spec(&path, "/forced", true).expect("forced write");
    assert_eq!(load_spec_file(&path).expect("spec").workspace, "/forced");
}

#[test]
fn workspaces_that_need_quoting_survive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("q.yaml");
    let workspace = "/tmp/a: b #c";
    write_default_spec(&path, workspace, false).expect("write");
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(parse_yaml(&text, "q.yaml").expect("parses").workspace, workspace);
}
