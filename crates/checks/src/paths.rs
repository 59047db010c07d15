//! Confining spec paths to the workspace.
//!
//! A check path is relative to the workspace and must stay inside it: absolute
//! paths and `..` that climbs out are refused lexically, and symlinks are resolved
//! (on the deepest part of the path that exists) and must land inside the canonical
//! workspace. A check therefore never reads or reports on files elsewhere.
//!
//! The proof holds at the moment of the check: a process that swaps a directory for
//! a symlink between [`resolve`] and the read (the agent, running beside the check)
//! can win that race. This is accepted: the agent can already read those files
//! itself, the result is only a pass or fail with the spec author's path in it, and
//! `file_contains` never prints the file's content.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A spec path resolved inside the workspace.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The canonical path when it exists, else workspace joined with the normalized path.
    pub path: PathBuf,
    /// True when the path exists (following symlinks, like `test -e`).
    pub exists: bool,
}

/// Normalizes `relative` lexically: no root, no prefix, no `..` above the start.
pub(crate) fn normalize_relative(relative: &str) -> Result<PathBuf> {
    if relative.trim().is_empty() {
        return Err(Error::EmptyPath);
    }
    let mut normalized = PathBuf::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => normalized.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !normalized.pop() {
                    return Err(Error::EscapesWorkspace { path: relative.to_owned() });
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::AbsolutePath { path: relative.to_owned() });
            }
        }
    }
    Ok(normalized)
}

/// Resolves `relative` against the canonical workspace and proves it stays inside.
///
/// Blocking: call from a blocking context.
pub(crate) fn resolve(canonical_workspace: &Path, relative: &str) -> Result<Resolved> {
    let joined = canonical_workspace.join(normalize_relative(relative)?);
    let io_error = |source| Error::Io { path: relative.to_owned(), source };
    match joined.canonicalize() {
        Ok(canonical) => {
            ensure_inside(canonical_workspace, &canonical, relative)?;
            Ok(Resolved { path: canonical, exists: true })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // Nothing to follow at the end (missing file or dangling link); the part
            // that exists must still be inside, or a link could point the check away.
            let mut ancestor = joined.parent();
            while let Some(dir) = ancestor {
                match dir.canonicalize() {
                    Ok(canonical) => {
                        ensure_inside(canonical_workspace, &canonical, relative)?;
                        break;
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        ancestor = dir.parent();
                    }
                    Err(error) => return Err(io_error(error)),
                }
            }
            let is_link = joined.symlink_metadata().is_ok_and(|meta| meta.file_type().is_symlink());
            if is_link {
                // A dangling link: refuse if its target would be outside.
                let target = std::fs::read_link(&joined).map_err(io_error)?;
                let base = joined.parent().unwrap_or(canonical_workspace);
                if !lexically_inside(canonical_workspace, &base.join(target)) {
                    return Err(Error::EscapesWorkspace { path: relative.to_owned() });
                }
            }
            Ok(Resolved { path: joined, exists: false })
        }
        // A file used as a directory (`file.txt/x`) does not exist either.
        Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
            Ok(Resolved { path: joined, exists: false })
        }
        Err(error) => Err(io_error(error)),
    }
}

fn ensure_inside(canonical_workspace: &Path, canonical: &Path, relative: &str) -> Result<()> {
    if canonical.starts_with(canonical_workspace) {
        Ok(())
    } else {
        Err(Error::EscapesWorkspace { path: relative.to_owned() })
    }
}

/// True when `path`, with `.` and `..` applied lexically, stays under `root`.
fn lexically_inside(root: &Path, path: &Path) -> bool {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                normalized.pop();
            }
            Component::CurDir => {}
            other => normalized.push(other),
        }
    }
    normalized.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let canonical = dir.path().canonicalize().expect("canonical temp dir");
        (dir, canonical)
    }

    #[test]
    fn lexical_rules_refuse_absolute_and_climbing_paths() {
        assert!(matches!(normalize_relative("/etc/passwd"), Err(Error::AbsolutePath { .. })));
        assert!(matches!(normalize_relative("../x"), Err(Error::EscapesWorkspace { .. })));
        assert!(matches!(normalize_relative("a/../../x"), Err(Error::EscapesWorkspace { .. })));
        assert!(matches!(normalize_relative("  "), Err(Error::EmptyPath)));
        assert_eq!(normalize_relative("./a/b/../c").expect("inside"), PathBuf::from("a/c"));
    }

    #[test]
    fn existing_and_missing_paths_resolve_inside() {
        let (_dir, root) = workspace();
        std::fs::write(root.join("present.txt"), "x").expect("write");
        let present = resolve(&root, "present.txt").expect("inside");
        assert!(present.exists);
        let missing = resolve(&root, "nested/missing.txt").expect("inside");
        assert!(!missing.exists);
        assert_eq!(missing.path, root.join("nested/missing.txt"));
    }

    #[test]
    fn symlinks_out_of_the_workspace_are_refused() {
        let (_dir, root) = workspace();
        let (_outside_dir, outside) = workspace();
        std::fs::write(outside.join("secret"), "s").expect("write");
        std::os::unix::fs::symlink(&outside, root.join("out")).expect("dir link");
        std::os::unix::fs::symlink(outside.join("gone"), root.join("dangling")).expect("link");
        for path in ["out/secret", "out/nothing-here", "dangling"] {
            let error = resolve(&root, path).expect_err("escape must be refused");
            assert!(matches!(error, Error::EscapesWorkspace { .. }), "{path}: {error}");
        }
    }
}
