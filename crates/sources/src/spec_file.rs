//! [`SpecFile`]: the one spec file `openloom watch` reads, as a [`Source`] that offers
//! it once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use openloom_core::{Arrival, Origin, Source, TaskSpec};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A spec file. [`SpecFile::load`] reads it; as a [`Source`] it offers its spec once
/// (origin `file:<path>@<sha256 of its bytes>`), then ends.
#[derive(Debug)]
pub struct SpecFile {
    path: PathBuf,
    offered: AtomicBool,
}

impl SpecFile {
    /// The spec file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SpecFile { path: path.into(), offered: AtomicBool::new(false) }
    }

    /// Reads and parses the file (Markdown for `.md`, YAML otherwise). A relative or
    /// empty workspace is taken relative to the file's directory, so a spec works
    /// wherever it is run from.
    pub fn load(&self) -> Result<TaskSpec> {
        if !self.path.exists() {
            return Err(Error::MissingSpec { path: self.path.clone() });
        }
        let mut spec = openloom_prompts::load_spec_file(&self.path)?;
        let base = self.path.canonicalize().ok().and_then(|p| p.parent().map(Path::to_path_buf));
        if let Some(base) = base {
            relative_to(&mut spec, &base);
        }
        Ok(spec)
    }
}

/// Takes an empty workspace as `base`, and a relative one as relative to `base`.
pub(crate) fn relative_to(spec: &mut TaskSpec, base: &Path) {
    let workspace = Path::new(&spec.workspace);
    if spec.workspace.trim().is_empty() {
        spec.workspace = base.to_string_lossy().into_owned();
    } else if workspace.is_relative() {
        spec.workspace = base.join(workspace).to_string_lossy().into_owned();
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[async_trait]
impl Source for SpecFile {
    fn name(&self) -> &str {
        "spec file"
    }

    async fn next(&self) -> openloom_core::Result<Option<Arrival>> {
        if self.offered.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        let spec = self.load()?;
        let bytes = std::fs::read(&self.path).map_err(|source| Error::Io {
            action: "read",
            path: self.path.clone(),
            source,
        })?;
        let path = self.path.canonicalize().unwrap_or_else(|_| self.path.clone());
        let key = format!("{}@{}", path.display(), sha256_hex(&bytes));
        Ok(Some(Arrival { origin: Origin::new("file", &key)?, spec }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spec_file_is_offered_once_with_its_directory_as_workspace() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("task.yaml");
        std::fs::write(&path, "name: hello\ngoal: say hello\n").expect("write");
        let source = SpecFile::new(&path);
        let arrival = source.next().await.expect("read").expect("one arrival");
        let base = dir.path().canonicalize().expect("canonical");
        assert_eq!(arrival.spec.workspace, base.to_string_lossy());
        assert_eq!(arrival.spec.name, "hello");
        assert!(arrival.origin.as_str().starts_with("file:"), "{}", arrival.origin);
        assert!(arrival.origin.as_str().ends_with(&sha256_hex(b"name: hello\ngoal: say hello\n")));
        assert_eq!(source.next().await.expect("ended"), None);
    }

    #[test]
    fn a_missing_file_says_how_to_make_one() {
        let err = SpecFile::new("/no/such/spec.yaml").load().expect_err("missing");
        assert_eq!(
            err.to_string(),
            "spec file /no/such/spec.yaml does not exist; create one with `openloom init`"
        );
    }

    #[test]
    fn a_relative_workspace_is_taken_from_the_files_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("task.yaml");
        std::fs::write(&path, "name: x\ngoal: y\nworkspace: sub\n").expect("write");
        let spec = SpecFile::new(&path).load().expect("valid");
        let base = dir.path().canonicalize().expect("canonical");
        assert_eq!(spec.workspace, base.join("sub").to_string_lossy());
    }
}
