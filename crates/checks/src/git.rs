//! The `changes_within` check: every change git sees must be under an allowed path.
//!
//! The baseline is the last commit (`HEAD`): `git status` reports what differs from
//! it in the index and the working tree, plus untracked files (ignored files are
//! not changes). A session that commits its own work therefore moves the baseline;
//! the harness is expected to start a session on a committed tree.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::error::{Error, Result};
use crate::outcome::Evidence;
use crate::paths::normalize_relative;

/// git on a large tree is slow, but never this slow unless it is stuck on a lock.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Passes when every changed path is under one of `allowed` (workspace-relative).
///
/// An allowed entry names an exact file or a directory: `src` and `src/` both allow
/// everything under `src/` (but not `srcfoo`), and `.` allows everything.
pub(crate) async fn changes_within(
    workspace: &Path,
    allowed: &[String],
    env: &[(OsString, OsString)],
) -> Result<Evidence> {
    // Validate the spec before asking git, so a bad entry is reported as such.
    let mut allowed_dirs = Vec::with_capacity(allowed.len());
    for entry in allowed {
        let normalized = normalize_relative(entry)?;
        allowed_dirs.push(normalized.to_string_lossy().into_owned());
    }
    let prefix = git(workspace, env, &["rev-parse", "--show-prefix"]).await?;
    let prefix = String::from_utf8_lossy(&prefix).trim_end_matches('\n').to_owned();
    let status = git(
        workspace,
        env,
        &["status", "--porcelain=v1", "-z", "--untracked-files=all", "--renames"],
    )
    .await?;
    let changed = parse_porcelain(&status)?;
    // git reports paths from the repository root; allowed paths are from the workspace.
    let allowed_from_root: Vec<String> =
        allowed_dirs.iter().map(|dir| join_prefix(&prefix, dir)).collect();
    let offending: Vec<String> = changed
        .iter()
        .filter(|path| !allowed_from_root.iter().any(|allowed| is_under(path, allowed)))
        .map(|path| display_path(path, &prefix))
        .collect();
    Ok(if offending.is_empty() {
        Evidence::judged(
            true,
            format!("{} changed path(s), all within the allowed paths", changed.len()),
        )
    } else {
        Evidence::judged(
            false,
            format!(
                "{} changed path(s) outside the allowed paths ({}):\n{}",
                offending.len(),
                allowed.join(", "),
                offending.join("\n")
            ),
        )
    })
}

/// The variables that point git at another repository, index or object store
/// (`git rev-parse --local-env-vars`). OpenLoom started from a git hook, or from a
/// shell with `GIT_DIR` set, would otherwise judge that repository instead of the
/// workspace's and pass a check it never looked at.
const GIT_REPOSITORY_ENV: [&str; 15] = [
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];

/// Runs git in the workspace and returns its stdout, or why it failed.
async fn git(workspace: &Path, env: &[(OsString, OsString)], args: &[&str]) -> Result<Vec<u8>> {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(workspace)
        .env_clear()
        .envs(env.iter().filter(|(name, _)| !GIT_REPOSITORY_ENV.iter().any(|v| name == v)).cloned())
        // A check must not take the index lock the agent may need.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_elapsed| Error::Git {
            message: format!("git {} took longer than {}s", args.join(" "), GIT_TIMEOUT.as_secs()),
        })?
        .map_err(|source| Error::Spawn { program: "git".to_owned(), source })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("not a git repository") {
        return Err(Error::NotAGitRepository { path: workspace.to_owned() });
    }
    Err(Error::Git { message: format!("git {}: {}", args.join(" "), stderr.trim()) })
}

/// Paths named by `git status --porcelain=v1 -z`: both sides of a rename.
fn parse_porcelain(output: &[u8]) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    let mut fields = output.split(|&byte| byte == 0).filter(|field| !field.is_empty());
    while let Some(entry) = fields.next() {
        // Each entry is `XY PATH`; a rename or copy is followed by the source path.
        if entry.len() < 4 || entry[2] != b' ' {
            return Err(Error::Git {
                message: format!(
                    "unexpected git status entry {:?}",
                    String::from_utf8_lossy(entry)
                ),
            });
        }
        let (x, y) = (entry[0], entry[1]);
        paths.push(String::from_utf8_lossy(&entry[3..]).into_owned());
        if matches!(x, b'R' | b'C') || matches!(y, b'R' | b'C') {
            let source = fields.next().ok_or_else(|| Error::Git {
                message: "git status rename entry without its source path".to_owned(),
            })?;
            // A copy leaves its source untouched; a rename removes it.
            if x == b'R' || y == b'R' {
                paths.push(String::from_utf8_lossy(source).into_owned());
            }
        }
    }
    Ok(paths)
}

fn join_prefix(prefix: &str, dir: &str) -> String {
    if dir.is_empty() { prefix.trim_end_matches('/').to_owned() } else { format!("{prefix}{dir}") }
}

/// True when `path` is `allowed` or inside it; an empty `allowed` is the whole repository.
fn is_under(path: &str, allowed: &str) -> bool {
    allowed.is_empty()
        || path == allowed
        || path.strip_prefix(allowed).is_some_and(|rest| rest.starts_with('/'))
}

/// Workspace-relative when the path is inside the workspace, else said to be outside.
fn display_path(path: &str, prefix: &str) -> String {
    match path.strip_prefix(prefix) {
        Some(inside) => inside.to_owned(),
        None => format!("{path} (outside the workspace; relative to the repository root)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_parsing_keeps_both_sides_of_a_rename() {
        let output = b" M b\0R  sub/a2\0sub/a\0?? sub/new file\0C  c2\0c\0";
        let paths = parse_porcelain(output).expect("valid porcelain");
        assert_eq!(paths, ["b", "sub/a2", "sub/a", "sub/new file", "c2"]);
        assert!(parse_porcelain(b"garbage\0").is_err());
    }

    #[test]
    fn allowed_paths_match_whole_components() {
        assert!(is_under("src/lib.rs", "src"));
        assert!(is_under("src", "src"));
        assert!(!is_under("srcfoo/lib.rs", "src"));
        assert!(is_under("anything", ""));
        assert_eq!(join_prefix("sub/", ""), "sub");
        assert_eq!(join_prefix("sub/", "docs"), "sub/docs");
        assert_eq!(display_path("sub/x", "sub/"), "x");
        assert!(display_path("b", "sub/").contains("outside the workspace"));
    }
}
