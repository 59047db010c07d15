//! Shared helpers: a temp workspace and check constructors.

use std::path::{Path, PathBuf};

use openloom_core::CheckDefinition;

/// A temporary workspace directory, removed on drop.
pub struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace { dir: tempfile::tempdir().expect("create temp workspace") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn write(&self, relative: &str, content: &str) {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent dirs");
        }
        std::fs::write(path, content).expect("write workspace file");
    }

    /// Runs git in the workspace with a fixed identity; panics on failure.
    pub fn git(&self, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(["-c", "user.name=OpenLoom Test", "-c", "user.email=test@openloom.invalid"])
            .args(["-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"])
            .args(args)
            .current_dir(self.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("git is installed");
        assert!(status.success(), "git {args:?} failed");
    }
}

pub fn run(command: &str) -> CheckDefinition {
    CheckDefinition::Run { command: command.into(), expect_status: 0, timeout_seconds: 5 }
}

pub fn run_with(command: &str, expect_status: i32, timeout_seconds: u64) -> CheckDefinition {
    CheckDefinition::Run { command: command.into(), expect_status, timeout_seconds }
}

pub fn exists(path: &str) -> CheckDefinition {
    CheckDefinition::FileExists { path: path.into() }
}

pub fn missing(path: &str) -> CheckDefinition {
    CheckDefinition::FileMissing { path: path.into() }
}

pub fn contains(path: &str, pattern: &str) -> CheckDefinition {
    CheckDefinition::FileContains { path: path.into(), pattern: pattern.into() }
}

pub fn within(paths: &[&str]) -> CheckDefinition {
    CheckDefinition::ChangesWithin { paths: paths.iter().map(|p| (*p).to_owned()).collect() }
}
