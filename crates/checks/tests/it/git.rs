//! `changes_within` against a real git repository.

use openloom_checks::CheckRunner;

use crate::common::{Workspace, within};

/// A repository with one commit holding `src/lib.rs`, `docs/guide.md` and `README.md`.
fn committed_repo() -> Workspace {
    let ws = Workspace::new();
    ws.git(&["init", "-q"]);
    ws.write("src/lib.rs", "// lib\n");
    ws.write("docs/guide.md", "# guide\n");
    ws.write("README.md", "readme\n");
    ws.write(".gitignore", "target/\n");
    ws.git(&["add", "."]);
    ws.git(&["commit", "-q", "-m", "baseline"]);
    ws
}

#[tokio::test]
async fn a_clean_tree_and_allowed_changes_pass() {
    let ws = committed_repo();
    let runner = CheckRunner::new();
    assert!(runner.run(ws.path(), &within(&[])).await.passed, "no changes at all");

    ws.write("src/lib.rs", "// changed\n");
    ws.write("src/new/module.rs", "// untracked\n");
    ws.write("target/debug/ignored", "build output\n");
    ws.write("docs/guide.md", "# staged\n");
    ws.git(&["add", "docs/guide.md"]);
    let outcome = runner.run(ws.path(), &within(&["src/", "docs/guide.md"])).await;
    assert!(outcome.passed, "{outcome:?}");
    assert!(outcome.output_tail.contains("3 changed path(s)"), "{}", outcome.output_tail);
}

#[tokio::test]
async fn changes_outside_the_allowed_paths_are_listed() {
    let ws = committed_repo();
    ws.write("src/lib.rs", "// changed\n");
    ws.write("README.md", "rewritten\n");
    ws.write("scratch/notes.txt", "untracked\n");
    ws.write("srcfoo.rs", "not under src/\n");
    std::fs::remove_file(ws.join("docs/guide.md")).expect("delete");
    let outcome = CheckRunner::new().run(ws.path(), &within(&["src"])).await;
    assert!(!outcome.passed);
    assert_eq!(outcome.error, None, "a violation is a failure, not an error");
    let listed: Vec<&str> = outcome.output_tail.lines().skip(1).collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["README.md", "docs/guide.md", "scratch/notes.txt", "srcfoo.rs"],
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_rename_counts_both_paths() {
    let ws = committed_repo();
    ws.git(&["mv", "README.md", "src/README.md"]);
    let outcome = CheckRunner::new().run(ws.path(), &within(&["src/"])).await;
    assert!(!outcome.passed, "moving README.md out of the root changes the root");
    assert!(outcome.output_tail.lines().any(|line| line == "README.md"), "{outcome:?}");
    assert!(!outcome.output_tail.lines().any(|line| line == "src/README.md"));
}

#[tokio::test]
async fn a_workspace_in_a_subdirectory_uses_workspace_relative_paths() {
    let ws = committed_repo();
    ws.write("src/lib.rs", "// changed\n");
    ws.write("src/extra.rs", "// new\n");
    let subdir = ws.join("src");
    let runner = CheckRunner::new();
    let allowed = runner.run(&subdir, &within(&["lib.rs", "extra.rs"])).await;
    assert!(allowed.passed, "{allowed:?}");
    ws.write("README.md", "outside the workspace\n");
    let outcome = runner.run(&subdir, &within(&["."])).await;
    assert!(!outcome.passed);
    assert!(outcome.output_tail.contains("README.md (outside the workspace"), "{outcome:?}");
}

#[tokio::test]
async fn not_a_git_repository_is_a_clear_error() {
    let ws = Workspace::new();
    let outcome = CheckRunner::new().run(ws.path(), &within(&["src/"])).await;
    assert!(!outcome.passed);
    let error = outcome.error.as_deref().expect("an error");
    assert!(error.contains("changes_within needs a git workspace"), "{error}");
}

#[tokio::test]
async fn allowed_paths_that_escape_are_refused() {
    let ws = committed_repo();
    let outcome = CheckRunner::new().run(ws.path(), &within(&["../elsewhere"])).await;
    assert!(!outcome.passed);
    assert!(outcome.error.as_deref().is_some_and(|e| e.contains("escapes the workspace")));
}

#[tokio::test]
async fn git_variables_of_the_harness_do_not_redirect_the_check() {
    // OpenLoom started from a git hook (or a shell with GIT_DIR set) must still judge
    // the workspace's own repository.
    let ws = committed_repo();
    ws.write("README.md", "changed outside src\n");
    let other = committed_repo();
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let git_dir = other.join(".git");
    let runner = CheckRunner::new().with_base_env([
        ("PATH", path.as_str()),
        ("GIT_DIR", git_dir.to_str().expect("utf-8 temp path")),
        ("GIT_WORK_TREE", other.path().to_str().expect("utf-8 temp path")),
        ("GIT_INDEX_FILE", git_dir.join("index").to_str().expect("utf-8 temp path")),
    ]);
    let outcome = runner.run(ws.path(), &within(&["src"])).await;
    assert!(!outcome.passed, "the workspace's change was judged: {outcome:?}");
    assert!(outcome.output_tail.lines().any(|line| line == "README.md"), "{outcome:?}");
}

#[tokio::test]
async fn paths_with_spaces_and_newlines_are_read_exactly() {
    let ws = committed_repo();
    ws.write("src/with space.rs", "// ok\n");
    ws.write("src/new\nline.rs", "// ok\n");
    let runner = CheckRunner::new();
    assert!(runner.run(ws.path(), &within(&["src"])).await.passed);
    ws.write("top level\nfile.txt", "outside\n");
    let outcome = runner.run(ws.path(), &within(&["src"])).await;
    assert!(!outcome.passed);
    assert!(outcome.output_tail.ends_with("top level\nfile.txt"), "{:?}", outcome.output_tail);
}
