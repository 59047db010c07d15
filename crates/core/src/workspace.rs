//! Which directories a task may work in.
//!
//! A workspace is resolved with `canonicalize` before it is compared with the allowed
//! roots, so `..` segments and symlinks cannot lead a task outside them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directories tasks may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspacePolicy {
    roots: Vec<PathBuf>,
    strict: bool,
}

impl WorkspacePolicy {
    /// Any existing directory is allowed (the reference's default).
    pub fn any() -> Self {
        Self::default()
    }

    /// Only directories inside one of `roots` are allowed. Roots that do not exist are
    /// kept as given (nothing resolves inside them).
    pub fn within(roots: impl IntoIterator<Item = PathBuf>) -> Self {
        let roots = roots.into_iter().map(|root| root.canonicalize().unwrap_or(root)).collect();
        WorkspacePolicy { roots, strict: true }
    }

    /// The allowed roots (empty and not strict means "anywhere").
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// True when only directories inside the roots are allowed.
    pub fn is_strict(&self) -> bool {
        self.strict
    }

    /// Resolves `path` (symlinks and `..` included) and checks it is an allowed
    /// directory. The error says which rule failed and how to fix it.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        if path.trim().is_empty() {
            return Err(Error::Invalid(
                "the workspace is empty; set `workspace:` in the spec to a directory".into(),
            ));
        }
        let resolved = Path::new(path).canonicalize().map_err(|e| {
            Error::Invalid(format!(
                "workspace {path} cannot be used: {e}; create it or fix the path"
            ))
        })?;
        if !resolved.is_dir() {
            return Err(Error::Invalid(format!("workspace {path} is not a directory")));
        }
        if self.strict && !self.roots.iter().any(|root| resolved.starts_with(root)) {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            return Err(Error::Invalid(format!(
                "workspace {} is outside the allowed roots ({}); add its parent to OPENLOOM_ALLOWED_ROOTS",
                resolved.display(),
                if roots.is_empty() { "none configured".to_owned() } else { roots.join(":") }
            )));
        }
        Ok(resolved)
    }

    /// True when [`Self::resolve`] accepts `path`.
    pub fn allows(&self, path: &str) -> bool {
        self.resolve(path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("openloom-policy-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.canonicalize().expect("canonical")
    }

    #[test]
    fn strict_policy_refuses_dot_dot_and_symlink_escapes() {
        let root = temp_dir("root");
        let outside = temp_dir("outside");
        std::fs::create_dir_all(root.join("inside")).expect("mkdir");
        let link = root.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        let policy = WorkspacePolicy::within([root.clone()]);

        assert_eq!(
            policy.resolve(root.join("inside").to_str().expect("utf8")).expect("inside"),
            root.join("inside")
        );
        let dotdot = format!(
            "{}/inside/../../{}",
            root.display(),
            outside.file_name().expect("name").to_string_lossy()
        );
        assert!(
            policy
                .resolve(&dotdot)
                .expect_err("escape")
                .to_string()
                .contains("outside the allowed roots")
        );
        assert!(!policy.allows(link.to_str().expect("utf8")));
    }

    #[test]
    fn missing_and_empty_workspaces_are_explained() {
        let policy = WorkspacePolicy::any();
        assert!(policy.resolve("").expect_err("empty").to_string().contains("workspace is empty"));
        let err = policy.resolve("/definitely/not/here").expect_err("missing");
        assert!(err.to_string().contains("create it or fix the path"), "{err}");
        assert!(policy.allows(std::env::temp_dir().to_str().expect("utf8")));
    }
}
