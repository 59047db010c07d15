//! [`GitWorkspace`]: a throw-away git repository with one commit, the kind of
//! directory OpenCode sessions run in.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::Error;

/// A temporary git repository (removed on drop) with a `README.md` committed.
#[derive(Debug)]
pub struct GitWorkspace {
    dir: TempDir,
    path: PathBuf,
}

impl GitWorkspace {
    /// `git init`, write `README.md`, commit it.
    pub fn create() -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("openloom-ws-")
            .tempdir()
            .map_err(|source| Error::io("creating a temp workspace", source))?;
        // OpenCode reports canonical paths; canonicalise so comparisons hold where
        // the temp dir sits behind a symlink.
        let path = dir
            .path()
            .canonicalize()
            .map_err(|source| Error::io("canonicalising the workspace path", source))?;
        let workspace = Self { dir, path };
        workspace.git(&["init", "-q"])?;
        workspace.write("README.md", "# scratch workspace\n")?;
        workspace.commit_all("initial commit")?;
        Ok(workspace)
    }

    /// The repository root (canonical, absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a string, as OpenCode's `directory` parameter wants it.
    pub fn directory(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// Absolute path of `relative` inside the workspace.
    pub fn file(&self, relative: impl AsRef<Path>) -> PathBuf {
        self.path.join(relative)
    }

    /// Contents of `relative`, or `None` when it does not exist.
    pub fn read(&self, relative: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.file(relative)).ok()
    }

    /// Write `content` to `relative`, creating parent directories.
    pub fn write(&self, relative: impl AsRef<Path>, content: &str) -> Result<(), Error> {
        let file = self.file(relative);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::io(format!("creating {}", parent.display()), source))?;
        }
        std::fs::write(&file, content)
            .map_err(|source| Error::io(format!("writing {}", file.display()), source))
    }

    /// Stage everything and commit with `message`.
    pub fn commit_all(&self, message: &str) -> Result<(), Error> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "--allow-empty", "-m", message])
    }

    /// Run git in the workspace, isolated from the user's and the system's git
    /// configuration so hooks, signing or templates there cannot interfere.
    pub fn git(&self, args: &[&str]) -> Result<(), Error> {
        let output = Command::new("git")
            .args([
                "-c",
                "user.name=OpenLoom Test",
                "-c",
                "user.email=test@openloom.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&self.path)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .map_err(|source| Error::io("running git", source))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Git {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }

    /// Keep the directory on disk after drop (for debugging a failed test) and
    /// return its path.
    pub fn keep(self) -> PathBuf {
        let _ = self.dir.keep();
        self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_repository_with_one_commit() {
        let workspace = GitWorkspace::create().expect("git is installed");
        assert!(workspace.path().join(".git").is_dir());
        assert_eq!(workspace.read("README.md").as_deref(), Some("# scratch workspace\n"));
        let log = Command::new("git")
            .args(["rev-list", "--count", "HEAD"])
            .current_dir(workspace.path())
            .output()
            .expect("git rev-list runs");
        assert_eq!(String::from_utf8_lossy(&log.stdout).trim(), "1");
        assert!(workspace.read("missing.txt").is_none());
    }
}
