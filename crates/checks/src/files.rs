//! The file checks: `file_exists`, `file_missing` and `file_contains`.
//!
//! All three are blocking file-system work; the runner calls them on the blocking
//! thread pool.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use regex_lite::Regex;

use crate::error::{Error, Result};
use crate::outcome::Evidence;
use crate::paths;

/// Passes when `relative` exists inside the workspace.
pub(crate) fn file_exists(workspace: &Path, relative: &str) -> Result<Evidence> {
    let resolved = paths::resolve(workspace, relative)?;
    Ok(if resolved.exists {
        Evidence::judged(true, format!("{relative} exists"))
    } else {
        Evidence::judged(false, format!("{relative} does not exist"))
    })
}

/// Passes when `relative` does not exist inside the workspace.
pub(crate) fn file_missing(workspace: &Path, relative: &str) -> Result<Evidence> {
    let resolved = paths::resolve(workspace, relative)?;
    Ok(if resolved.exists {
        Evidence::judged(false, format!("{relative} exists but should not"))
    } else {
        Evidence::judged(true, format!("{relative} does not exist"))
    })
}

/// Passes when the file's content (read as lossy UTF-8) matches `pattern`.
///
/// Files over `read_limit` bytes are refused rather than half-read, so a pass never
/// depends on where the read stopped.
pub(crate) fn file_contains(
    workspace: &Path,
    relative: &str,
    pattern: &str,
    read_limit: u64,
) -> Result<Evidence> {
    // Compile first: a broken pattern is the author's mistake whatever the file says.
    let regex = Regex::new(pattern)
        .map_err(|source| Error::InvalidPattern { pattern: pattern.to_owned(), source })?;
    let resolved = paths::resolve(workspace, relative)?;
    if !resolved.exists {
        return Ok(Evidence::judged(false, format!("{relative} does not exist")));
    }
    let io_error = |source| Error::Io { path: relative.to_owned(), source };
    // Non-blocking: opening a named pipe for reading would otherwise wait for a
    // writer forever. It changes nothing for regular files; everything else is
    // refused by the type check on what was actually opened (no race with a swap).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(&resolved.path)
        .map_err(io_error)?;
    if !file.metadata().map_err(io_error)?.is_file() {
        return Err(Error::NotAFile { path: relative.to_owned() });
    }
    // Read one byte past the limit to notice an oversized (or growing) file.
    let mut bytes = Vec::new();
    file.take(read_limit.saturating_add(1)).read_to_end(&mut bytes).map_err(io_error)?;
    if bytes.len() as u64 > read_limit {
        return Err(Error::FileTooLarge { path: relative.to_owned(), limit_bytes: read_limit });
    }
    let content = String::from_utf8_lossy(&bytes);
    Ok(match regex.find(&content) {
        Some(found) => {
            let line = content[..found.start()].matches('\n').count() + 1;
            Evidence::judged(true, format!("{relative} matches {pattern:?} at line {line}"))
        }
        None => Evidence::judged(false, format!("{relative} does not match {pattern:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_reports_the_matching_line_and_refuses_large_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().canonicalize().expect("canonical");
        std::fs::write(root.join("notes.md"), "one\ntwo\nfn main() {}\n").expect("write");
        let hit = file_contains(&root, "notes.md", r"fn\s+main", 1024).expect("evaluated");
        assert!(hit.passed);
        assert!(hit.output.contains("line 3"), "{}", hit.output);
        let miss = file_contains(&root, "notes.md", "absent", 1024).expect("evaluated");
        assert!(!miss.passed);
        let error = file_contains(&root, "notes.md", "one", 4).expect_err("over the limit");
        assert!(error.to_string().contains("4-byte limit"), "{error}");
        let error = file_contains(&root, "notes.md", "(", 1024).expect_err("bad regex");
        assert!(matches!(error, Error::InvalidPattern { .. }));
        let error = file_contains(&root, ".", "x", 1024).expect_err("a directory");
        assert!(matches!(error, Error::NotAFile { .. }), "{error}");
    }
}
