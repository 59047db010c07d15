//! The API token the server requires: configured, or generated once and kept in the
//! user's state directory so that a bookmarked dashboard URL keeps working across
//! restarts (as Jupyter does).
//!
//! The file is `$XDG_STATE_HOME/openloom/token`, or `~/.local/state/openloom/token`
//! without that variable: per user, not per project, because a token names "the
//! person who may drive this user's agent", and other local users must not read it.
//! Its directory is created `0700` and the file `0600`; a file that other users could
//! read or write is refused rather than trusted.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::Env;

/// Random bytes in a generated token (64 hex digits, 256 bits).
const TOKEN_BYTES: usize = 32;

/// OpenLoom's per-user state directory, from the environment: `$XDG_STATE_HOME/openloom`
/// (an absolute `XDG_STATE_HOME` only), else `~/.local/state/openloom`; `None` when
/// neither variable is set. It holds files other users must not read.
pub fn state_dir(env: Env<'_>) -> Option<PathBuf> {
    let state = env("XDG_STATE_HOME")
        .filter(|dir| Path::new(dir).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME").filter(|h| !h.is_empty()).map(|h| Path::new(&h).join(".local/state"))
        })?;
    Some(state.join("openloom"))
}

/// Where the generated token is kept (`token` in [`state_dir`]).
pub fn token_path(env: Env<'_>) -> Option<PathBuf> {
    Some(state_dir(env)?.join("token"))
}

/// Creates `dir` (and its parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path, purpose: &str) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("could not create {} to keep {purpose} in", dir.display()))
}

/// The token kept at `path`, created (with a fresh random value) if there is none.
/// Returns the token and whether it was just created.
pub fn load_or_create(path: &Path) -> Result<(String, bool)> {
    match read(path)? {
        Some(token) => Ok((token, false)),
        None => {
            let token = generate()?;
            create(path, &token)?;
            Ok((token, true))
        }
    }
}

/// The token at `path`, or `None` when the file does not exist.
pub fn read(path: &Path) -> Result<Option<String>> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    check_private(path, &metadata, "the API token", "to have a new token generated")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the API token from {}", path.display()))?;
    let token = text.trim().to_owned();
    if token.chars().count() < openloom_server::MIN_TOKEN_LEN || token.contains(char::is_whitespace)
    {
        bail!(
            "the API token in {} is not a usable token (at least {} characters, no spaces); \
             delete the file to have a new one generated",
            path.display(),
            openloom_server::MIN_TOKEN_LEN
        );
    }
    Ok(Some(token))
}

/// Refuses a file holding a secret (`holds`, e.g. "the API token") that is not a
/// regular file of ours, private to us; `remedy` says what removing it does.
pub fn check_private(
    path: &Path,
    metadata: &std::fs::Metadata,
    holds: &str,
    remedy: &str,
) -> Result<()> {
    if !metadata.file_type().is_file() {
        bail!("{} is not a regular file (a symlink?); remove it {remedy}", path.display());
    }
    if metadata.uid() != nix::unistd::geteuid().as_raw() {
        bail!("{} belongs to another user; remove it {remedy}", path.display());
    }
    if metadata.permissions().mode() & 0o077 != 0 {
        bail!(
            "{} can be read or written by other users (mode {:o}): it holds {holds}; \
             run `chmod 600 {}`, or remove it {remedy}",
            path.display(),
            metadata.permissions().mode() & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// A fresh token: 256 random bits from the operating system, as hex.
fn generate() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| {
        anyhow::anyhow!("could not get random bytes for the API token: {error}")
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a new token file: created exclusively with mode 0600 (never readable by
/// others, not even for an instant), in a directory created 0700.
fn create(path: &Path, token: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir, "the API token")?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not create the API token file {}", path.display()))?;
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write the API token to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_follows_xdg_state_home_then_home() {
        let xdg = |key: &str| match key {
            "XDG_STATE_HOME" => Some("/x/state".to_owned()),
            "HOME" => Some("/home/me".to_owned()),
            _ => None,
        };
        assert_eq!(token_path(&xdg), Some(PathBuf::from("/x/state/openloom/token")));
        let home = |key: &str| (key == "HOME").then(|| "/home/me".to_owned());
        assert_eq!(token_path(&home), Some(PathBuf::from("/home/me/.local/state/openloom/token")));
        let relative = |key: &str| match key {
            "XDG_STATE_HOME" => Some("rel".to_owned()),
            "HOME" => Some("/home/me".to_owned()),
            _ => None,
        };
        assert_eq!(
            token_path(&relative),
            Some(PathBuf::from("/home/me/.local/state/openloom/token")),
            "a relative XDG_STATE_HOME is ignored, as the spec says"
        );
        assert_eq!(token_path(&|_: &str| None), None);
    }

    #[test]
    fn a_token_is_generated_once_privately_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/openloom/token");
        let (token, created) = load_or_create(&path).expect("create");
        assert!(created);
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()), "{token}");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode =
            std::fs::metadata(path.parent().expect("dir")).expect("stat").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let (again, created) = load_or_create(&path).expect("reuse");
        assert_eq!((again.as_str(), created), (token.as_str(), false));
        let other = load_or_create(&dir.path().join("other/token")).expect("create").0;
        assert_ne!(other, token, "tokens are random");
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "0123456789abcdef0123\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read(&path).expect_err("world-readable");
        assert!(format!("{error:#}").contains("chmod 600"), "{error:#}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(read(&path).expect("private").as_deref(), Some("0123456789abcdef0123"));
        std::fs::write(&path, "short\n").expect("write");
        assert!(format!("{:#}", read(&path).expect_err("short")).contains("delete the file"));
    }
}
