//! How another `openloom` process reaches an OpenCode that `watch` or `serve` started
//! itself: the starting process publishes its address and credentials in the user's
//! state directory, as the dashboard token is kept ([`crate::token`]).
//!
//! The file is `opencode.json` in [`crate::token::state_dir`]
//! (`$XDG_STATE_HOME/openloom/opencode.json`): `url`, `username`, `password` and the
//! `pid` of the `openloom` process that started OpenCode (OpenCode's own pid changes
//! when it is restarted; ours does not, and OpenCode dies with us). It is written
//! atomically (a private temp file renamed over it), mode 0600 in a 0700 directory,
//! and removed when that process stops its OpenCode — unless another process has
//! published its own meanwhile: one file per user, the latest start wins.
//!
//! A reader ([`reachable`]) uses it only when the user named no OpenCode URL (flag,
//! variable or config file) and nothing answers at the default URL; a file whose
//! process is gone or whose server does not answer with its credentials is stale and
//! ignored (after a SIGKILL of `openloom` the file stays behind, harmlessly).
//!
//! Commands that can start OpenCode themselves (`watch`, `serve`, `plan`) do not use
//! another process's OpenCode: it would stop under them when that process ends. Only
//! `answer`, which talks to whatever OpenCode runs the task, reads the file.
//!
//! The password never reaches a log or a message: [`Published`]'s `Debug` hides it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use openloom_core::Health;
use serde::{Deserialize, Serialize};

use crate::commands::parts;
use crate::config::{Env, Settings};

/// The file's name in the state directory.
const FILE_NAME: &str = "opencode.json";

/// Where a started OpenCode is published; `None` without `XDG_STATE_HOME` and `HOME`.
pub fn path(env: Env<'_>) -> Option<PathBuf> {
    Some(crate::token::state_dir(env)?.join(FILE_NAME))
}

/// An OpenCode that an `openloom` process started, as published in the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its basic-auth user name.
    pub username: String,
    /// Its basic-auth password.
    password: String,
    /// The `openloom` process that started it (and stops it).
    pub pid: u32,
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("pid", &self.pid)
            .finish()
    }
}

impl Published {
    /// The OpenCode this process started, at `url` with these credentials.
    pub fn ours(url: String, username: String, password: String) -> Published {
        Published { url, username, password, pid: std::process::id() }
    }

    /// `settings` pointed at this OpenCode.
    fn apply(&self, settings: &Settings) -> Settings {
        let mut ours = settings.clone();
        ours.opencode_url = self.url.clone();
        ours.opencode_username = self.username.clone();
        ours.opencode_password = Some(self.password.clone());
        ours
    }
}

/// Writes `published` to `path` atomically: a temp file created exclusively with mode
/// 0600 beside it (never readable by others, not even for an instant), renamed over it.
pub fn write(path: &Path, published: &Published) -> Result<()> {
    let dir = path.parent().context("the OpenCode address file has no directory")?;
    crate::token::create_private_dir(dir, "the address of the OpenCode openloom started")?;
    let temp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    // A temp file left by a crash of a process with our pid is ours to replace.
    let _ = std::fs::remove_file(&temp);
    let text = serde_json::to_string(published).context("could not encode OpenCode's address")?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(error).with_context(|| {
            format!("could not write the address of the OpenCode we started to {}", path.display())
        });
    }
    Ok(())
}

/// The file at `path`, or `None` when there is none. A file others could read, not
/// ours, or not in the expected shape is an error (the caller ignores it and says so).
pub fn read(path: &Path) -> Result<Option<Published>> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("could not read {}", path.display()));
        }
    };
    crate::token::check_private(
        path,
        &metadata,
        "an OpenCode password",
        "(the next `watch` or `serve` that starts OpenCode writes it again)",
    )?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(published) => Ok(Some(published)),
        Err(error) => bail!(
            "{} is not an OpenCode address written by openloom ({error}); remove it \
             (the next `watch` or `serve` that starts OpenCode writes it again)",
            path.display()
        ),
    }
}

/// Removes the file at `path` if it still names `published` (another process may
/// have published its own OpenCode since).
pub fn remove_if_ours(path: &Path, published: &Published) {
    match read(path) {
        Ok(Some(current)) if current == *published => {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "could not remove OpenCode's address file");
            }
        }
        Ok(_) => {}
        Err(error) => tracing::debug!("left OpenCode's address file alone: {error:#}"),
    }
}

/// The file this process wrote, removed when dropped (when our OpenCode stops).
pub struct Publication {
    path: PathBuf,
    published: Published,
}

impl Publication {
    /// Publishes `published` at `path`; `None` (with a warning) when that fails: the
    /// started OpenCode works anyway, only `answer` from another shell will not reach it.
    pub fn publish(path: Option<&Path>, published: Published) -> Option<Publication> {
        let Some(path) = path else {
            tracing::warn!(
                "neither XDG_STATE_HOME nor HOME is set: `openloom answer` from another \
                 shell will not find the OpenCode started here"
            );
            return None;
        };
        match write(path, &published) {
            Ok(()) => Some(Publication { path: path.to_path_buf(), published }),
            Err(error) => {
                tracing::warn!(
                    "{error:#}; `openloom answer` from another shell will not find this OpenCode"
                );
                None
            }
        }
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        remove_if_ours(&self.path, &self.published);
    }
}

/// Whether process `pid` exists (signal 0: no signal is sent).
fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else { return false };
    if raw <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        // EPERM: it exists, as somebody else's (a reused pid; the health check decides).
        Ok(()) | Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// The settings to reach the OpenCode that runs tasks: `settings` unchanged when the
/// user named a URL or something answers at the default one; else the published
/// OpenCode of another `openloom` process when it is alive and answers our
/// credentials; else `settings` unchanged (the command then reports the default URL
/// unreachable, as before).
pub async fn reachable(settings: &Settings) -> Settings {
    if !settings.opencode_url_is_default {
        return settings.clone();
    }
    match parts::client(settings) {
        Ok(client) => {
            if !matches!(client.health().await, Health::Unreachable { .. }) {
                return settings.clone();
            }
        }
        Err(_) => return settings.clone(),
    }
    let Some(path) = settings.opencode_file.as_deref() else { return settings.clone() };
    let published = match read(path) {
        Ok(Some(published)) => published,
        Ok(None) => return settings.clone(),
        Err(error) => {
            tracing::warn!("ignoring the published OpenCode address: {error:#}");
            return settings.clone();
        }
    };
    if !alive(published.pid) {
        tracing::info!(
            pid = published.pid,
            path = %path.display(),
            "the openloom process that published an OpenCode address is gone; ignoring it"
        );
        return settings.clone();
    }
    let theirs = published.apply(settings);
    match parts::client(&theirs) {
        Ok(client) => match client.health().await {
            Health::Reachable { .. } => {
                tracing::info!(
                    url = %published.url,
                    pid = published.pid,
                    "using the OpenCode another openloom process started"
                );
                theirs
            }
            Health::Unreachable { reason } | Health::Unauthorized { reason } => {
                tracing::info!(url = %published.url, %reason, "the published OpenCode does not answer; ignoring it");
                settings.clone()
            }
        },
        Err(_) => settings.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn settings(url: &str, file: &Path) -> Settings {
        let env = |_: &str| None;
        let mut settings =
            Settings::resolve(&crate::config::GlobalArgs::default(), &env, Path::new("/tmp"))
                .expect("defaults");
        // "Default" as far as precedence goes, but nothing of the tester's machine.
        settings.opencode_url = url.to_owned();
        settings.opencode_file = Some(file.to_path_buf());
        settings
    }

    /// A loopback port where nothing listens (bound, then released).
    fn closed_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    /// A fake OpenCode whose health route answers (any request, until the test ends).
    fn answering_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("addr").port());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                let body = r#"{"healthy":true,"version":"1.18.34"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    /// The pid of a process that has exited.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    #[test]
    fn the_file_is_written_private_atomically_and_read_back_without_showing_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/openloom/opencode.json");
        let published =
            Published::ours("http://127.0.0.1:4321".into(), "opencode".into(), "s3cret".into());
        write(&path, &published).expect("write");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir")).expect("stat");
        assert_eq!(dir_mode.permissions().mode() & 0o777, 0o700);
        assert_eq!(read(&path).expect("read"), Some(published.clone()));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from(FILE_NAME)], "no temp file left");
        assert!(!format!("{published:?}").contains("s3cret"), "{published:?}");

        // Rewritten by a later start: replaced whole.
        let later = Published { url: "http://127.0.0.1:5555".into(), ..published.clone() };
        write(&path, &later).expect("rewrite");
        assert_eq!(read(&path).expect("read"), Some(later.clone()));
        // Only the publisher's own entry is removed.
        remove_if_ours(&path, &published);
        assert!(path.exists(), "another start's file stays");
        remove_if_ours(&path, &later);
        assert!(!path.exists());
        assert_eq!(read(&path).expect("none"), None);
    }

    #[test]
    fn a_file_others_can_read_or_in_another_shape_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let published = Published::ours("http://127.0.0.1:1".into(), "u".into(), "p".into());
        write(&path, &published).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = read(&path).expect_err("world-readable");
        assert!(format!("{error:#}").contains("chmod 600"), "{error:#}");
        std::fs::write(&path, "not json").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = read(&path).expect_err("garbage");
        assert!(format!("{error:#}").contains("remove it"), "{error:#}");
    }

    #[tokio::test]
    async fn a_live_published_opencode_is_used_only_when_the_default_url_is_silent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(FILE_NAME);
        let theirs = answering_url();
        write(&file, &Published::ours(theirs.clone(), "opencode".into(), "pw".into()))
            .expect("write");

        let silent = settings(&closed_url(), &file);
        let used = reachable(&silent).await;
        assert_eq!(used.opencode_url, theirs, "the published one");
        assert_eq!(used.opencode_password.as_deref(), Some("pw"));

        let answering_default = settings(&answering_url(), &file);
        let used = reachable(&answering_default).await;
        assert_eq!(used.opencode_url, answering_default.opencode_url, "the default answers");

        let explicit = Settings { opencode_url_is_default: false, ..silent.clone() };
        assert_eq!(reachable(&explicit).await.opencode_url, silent.opencode_url, "named URL wins");
    }

    #[tokio::test]
    async fn a_stale_file_is_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(FILE_NAME);
        let silent = settings(&closed_url(), &file);

        // Its process is gone, though something answers at its URL.
        let gone = Published {
            pid: dead_pid(),
            ..Published::ours(answering_url(), "u".into(), "p".into())
        };
        write(&file, &gone).expect("write");
        let used = reachable(&silent).await;
        assert_eq!(used.opencode_url, silent.opencode_url);
        assert_eq!(used.opencode_password, None);

        // Its process lives (it is us), but nothing answers at its URL.
        write(&file, &Published::ours(closed_url(), "u".into(), "p".into())).expect("write");
        assert_eq!(reachable(&silent).await.opencode_url, silent.opencode_url);

        // No file at all.
        std::fs::remove_file(&file).expect("rm");
        assert_eq!(reachable(&silent).await.opencode_url, silent.opencode_url);
    }
}
