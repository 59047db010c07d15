use super::*;

#[test]
fn only_spec_and_prompt_files_are_taken() {
    for (name, kind) in [
        ("a.yaml", Some(FileKind::Spec(SpecFormat::Yaml))),
        ("a.YML", Some(FileKind::Spec(SpecFormat::Yaml))),
        ("notes.md", Some(FileKind::Spec(SpecFormat::Markdown))),
        ("fix it.txt", Some(FileKind::Prompt)),
        (".a.yaml", None),
        (".yaml", None),
        ("a.yaml.part", None),
        ("a.yaml~", None),
        ("a.yaml.swp", None),
        ("README", None),
        ("a.json", None),
    ] {
        assert_eq!(kind_of(name), kind, "{name}");
    }
}

fn stamp(len: u64) -> Stamp {
    Stamp { len, modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(len)) }
}

#[test]
fn a_file_is_ready_once_unchanged_for_the_settle_time() {
    let settle = Duration::from_secs(1);
    let start = Instant::now();
    let a = PathBuf::from("/in/a.yaml");
    let mut settling = Settling::default();
    assert!(settling.scan(vec![(a.clone(), stamp(10))], start, settle).is_empty(), "new");
    let half = start + Duration::from_millis(500);
    assert!(settling.scan(vec![(a.clone(), stamp(10))], half, settle).is_empty(), "too soon");
    // Appended to: the clock starts again.
    let grown = start + Duration::from_millis(1200);
    assert!(settling.scan(vec![(a.clone(), stamp(20))], grown, settle).is_empty(), "grew");
    let still = grown + Duration::from_millis(900);
    assert!(settling.scan(vec![(a.clone(), stamp(20))], still, settle).is_empty());
    let settled = grown + settle;
    assert_eq!(settling.scan(vec![(a.clone(), stamp(20))], settled, settle), vec![a.clone()]);
    // Gone, then back: it settles anew.
    assert!(settling.scan(vec![], settled, settle).is_empty());
    assert!(settling.scan(vec![(a.clone(), stamp(20))], settled, settle).is_empty());
    settling.forget(&a);
    assert!(settling.scan(vec![(a, stamp(20))], settled + settle, settle).is_empty());
}

#[test]
fn ready_files_come_in_name_order() {
    let (now, zero) = (Instant::now(), Duration::ZERO);
    let mut settling = Settling::default();
    let listing =
        vec![(PathBuf::from("/in/b.md"), stamp(1)), (PathBuf::from("/in/a.txt"), stamp(1))];
    assert_eq!(
        settling.scan(listing, now, zero),
        vec![PathBuf::from("/in/a.txt"), PathBuf::from("/in/b.md")]
    );
}

#[test]
fn workspaces_come_from_the_spec_else_the_inbox_workspace() {
    let path = Path::new("/in/task.yaml");
    let yaml = FileKind::Spec(SpecFormat::Yaml);
    let own = parse(path, yaml, b"name: a\ngoal: b\nworkspace: /srv/w\n", Some("/d")).expect("ok");
    assert_eq!(own.workspace, "/srv/w");
    let none = parse(path, yaml, b"name: a\ngoal: b\n", Some("/d")).expect("ok");
    assert_eq!(none.workspace, "/d");
    let relative =
        parse(path, yaml, b"name: a\ngoal: b\nworkspace: sub\n", Some("/d")).expect("ok");
    assert_eq!(relative.workspace, "/d/sub");
    let err = parse(path, yaml, b"name: a\ngoal: b\n", None).expect_err("no workspace");
    assert!(
        err.to_string().contains("no workspace") && err.to_string().contains("inbox_workspace")
    );

    let prompt =
        parse(Path::new("/in/fix the bug.txt"), FileKind::Prompt, b"Fix it.\n", Some("/d"))
            .expect("prompt");
    assert_eq!(
        (prompt.name.as_str(), prompt.goal.as_str(), prompt.workspace.as_str()),
        ("fix the bug", "Fix it.", "/d")
    );
    assert!(parse(Path::new("/in/p.txt"), FileKind::Prompt, b"x", None).is_err());
    assert!(
        parse(Path::new("/in/p.txt"), FileKind::Prompt, b"  \n", Some("/d")).is_err(),
        "empty prompt"
    );
}

#[test]
fn a_spec_error_names_the_file_and_the_field() {
    let path = Path::new("/in/bad.yaml");
    let err =
        parse(path, FileKind::Spec(SpecFormat::Yaml), b"name: a\ngoal: b\nsteps: 3\n", Some("/d"))
            .expect_err("bad steps");
    let text = err.to_string();
    assert!(text.starts_with("/in/bad.yaml") && text.contains("steps"), "{text}");
    let err = parse(path, FileKind::Spec(SpecFormat::Yaml), b"name: a\n\xff\n", Some("/d"))
        .expect_err("not utf-8");
    assert!(err.to_string().contains("not UTF-8 text (invalid byte at offset 8, line 2)"), "{err}");
}

#[test]
fn taken_names_get_a_number() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert_eq!(unique_target(dir.path(), "a.yaml"), dir.path().join("a.yaml"));
    std::fs::write(dir.path().join("a.yaml"), "").expect("write");
    assert_eq!(unique_target(dir.path(), "a.yaml"), dir.path().join("a-2.yaml"));
    std::fs::write(dir.path().join("a-2.yaml"), "").expect("write");
    assert_eq!(unique_target(dir.path(), "a.yaml"), dir.path().join("a-3.yaml"));
}
