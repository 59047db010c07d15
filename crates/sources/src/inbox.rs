//! [`Inbox`]: a directory whose spec and prompt files become tasks.
//!
//! # The convention
//! - `NAME.yaml`, `NAME.yml`, `NAME.md` hold a spec; `NAME.txt` a prompt. Other files,
//!   dotfiles and directories are left alone, so write a file elsewhere (or as
//!   `.NAME.yaml`, or `NAME.yaml.part`) and rename it in when it is complete: a rename
//!   within one file system is atomic.
//! - A file is read only once its size and modification time have not changed for
//!   the settle time (1 s by default), so one copied in slowly is not read half.
//! - Taken in, it moves to `accepted/`; refused, to `rejected/` beside
//!   `NAME.error.txt` holding the error (the spec error `openloom watch` would print,
//!   naming file, line and field). A name already there gets a `-2`, `-3`, ... suffix.
//!
//! # Never twice, never lost
//! The origin of a file is `inbox:<file name>@<sha256 of its bytes>`, recorded with its
//! task in one store transaction (see [`openloom_core::take_in`]). A crash between the
//! create and the move leaves the file where it was: found again at the next start, it
//! is answered "already had" and just moved. The directory is rescanned every poll
//! interval, which also picks up the files present at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use openloom_core::{Admitted, Arrival, Origin, Source, TaskSpec};
use openloom_prompts::{PromptOptions, SpecFormat};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::spec_file::{relative_to, sha256_hex};

/// The subdirectory taken files move to.
pub const ACCEPTED: &str = "accepted";
/// The subdirectory refused files move to, beside their `NAME.error.txt`.
pub const REJECTED: &str = "rejected";
/// Largest file an inbox reads, in bytes (a spec may have 256 KiB; a prompt less).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where the inbox is and how it watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxConfig {
    /// The directory watched.
    pub dir: PathBuf,
    /// The workspace of files whose spec names none (and of every prompt file); a
    /// relative workspace in a spec is taken relative to it.
    pub workspace: Option<String>,
    /// How long a file must stay unchanged before it is read.
    pub settle: Duration,
    /// How often the directory is scanned.
    pub poll: Duration,
}

impl InboxConfig {
    /// The inbox `dir` with the defaults: no default workspace, settle 1 s, scan
    /// every 500 ms.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        InboxConfig {
            dir: dir.into(),
            workspace: None,
            settle: Duration::from_secs(1),
            poll: Duration::from_millis(500),
        }
    }
}

/// What kind of work a file name holds, if any: `None` for names the inbox leaves
/// alone (dotfiles, other extensions, such as a `.part` being written).
pub fn kind_of(name: &str) -> Option<FileKind> {
    if name.starts_with('.') {
        return None;
    }
    let (stem, extension) = name.rsplit_once('.')?;
    if stem.is_empty() {
        return None;
    }
    match extension.to_ascii_lowercase().as_str() {
        "yaml" | "yml" => Some(FileKind::Spec(SpecFormat::Yaml)),
        "md" => Some(FileKind::Spec(SpecFormat::Markdown)),
        "txt" => Some(FileKind::Prompt),
        _ => None,
    }
}

/// What a file in the inbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A spec in this format.
    Spec(SpecFormat),
    /// A prompt.
    Prompt,
}

/// A file's size and modification time: what changes while it is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Bytes.
    pub len: u64,
    /// Modification time, when the file system keeps one.
    pub modified: Option<SystemTime>,
}

/// The files seen so far: each with the stamp it had and when that stamp was first
/// seen. Pure bookkeeping, so the settle rule is tested without a clock.
#[derive(Debug, Default)]
pub struct Settling {
    seen: HashMap<PathBuf, (Stamp, Instant)>,
}

impl Settling {
    /// Takes a scan (`listing`, at `now`) and answers the files that have kept their
    /// stamp for `settle`, in name order. Files gone from the listing are forgotten.
    pub fn scan(
        &mut self,
        listing: Vec<(PathBuf, Stamp)>,
        now: Instant,
        settle: Duration,
    ) -> Vec<PathBuf> {
        let mut ready = Vec::new();
        let mut seen = HashMap::with_capacity(listing.len());
        for (path, stamp) in listing {
            let since = match self.seen.get(&path) {
                Some((before, since)) if *before == stamp => *since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= settle {
                ready.push(path.clone());
            }
            seen.insert(path, (stamp, since));
        }
        self.seen = seen;
        ready.sort();
        ready
    }

    /// Forgets `path`, so it must settle again before it is read (it changed while
    /// being read, or its import failed for a reason that may pass).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }
}

/// An inbox directory as a [`Source`]. See the module docs for the convention.
#[derive(Debug)]
pub struct Inbox {
    config: InboxConfig,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    settling: Settling,
    /// Arrivals offered and not settled yet, with their file.
    offered: HashMap<Origin, PathBuf>,
}

impl Inbox {
    /// The inbox of `config`; its directory must exist. Creates `accepted/` and
    /// `rejected/` in it.
    pub fn open(config: InboxConfig) -> Result<Inbox> {
        let dir = &config.dir;
        if !dir.is_dir() {
            return Err(Error::Inbox {
                path: dir.clone(),
                problem: "is not a directory; create it (mkdir -p) or point --inbox at one"
                    .to_owned(),
            });
        }
        for sub in [ACCEPTED, REJECTED] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|source| Error::Io {
                action: "create",
                path,
                source,
            })?;
        }
        Ok(Inbox { config, state: Mutex::new(State::default()) })
    }

    /// The configuration.
    pub fn config(&self) -> &InboxConfig {
        &self.config
    }

    /// The candidate files in the directory now, with their stamps.
    async fn list(&self) -> Result<Vec<(PathBuf, Stamp)>> {
        let dir = &self.config.dir;
        let io = |source| Error::Io { action: "list", path: dir.clone(), source };
        let mut entries = tokio::fs::read_dir(dir).await.map_err(io)?;
        let mut listing = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let name = entry.file_name();
            if name.to_str().and_then(kind_of).is_none() {
                continue;
            }
            // Not following symbolic links: a link is not a file someone dropped.
            let Ok(metadata) = tokio::fs::symlink_metadata(entry.path()).await else {
                continue;
            };
            if metadata.is_file() {
                let stamp = Stamp { len: metadata.len(), modified: metadata.modified().ok() };
                listing.push((entry.path(), stamp));
            }
        }
        Ok(listing)
    }

    /// Reads `path` into an arrival, or the error that rejects it.
    async fn read(&self, path: &Path) -> Result<Arrival> {
        let name = file_name(path);
        let kind = kind_of(&name).ok_or_else(|| Error::Inbox {
            path: path.to_owned(),
            problem: "is not a spec or prompt file".to_owned(),
        })?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|source| Error::Io { action: "read", path: path.to_owned(), source })?
            .len();
        if size > MAX_FILE_BYTES {
            return Err(Error::TooLarge { path: path.to_owned(), size, limit: MAX_FILE_BYTES });
        }
        let bytes = tokio::fs::read(path).await.map_err(|source| Error::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        let spec = parse(path, kind, &bytes, self.config.workspace.as_deref())?;
        let origin = Origin::new("inbox", &format!("{name}@{}", sha256_hex(&bytes)))
            .map_err(|e| Error::Inbox { path: path.to_owned(), problem: e.to_string() })?;
        Ok(Arrival { origin, spec })
    }

    /// Moves `path` to `accepted/`.
    async fn accept(&self, path: &Path) {
        let target = unique_target(&self.config.dir.join(ACCEPTED), &file_name(path));
        match tokio::fs::rename(path, &target).await {
            Ok(()) => {
                tracing::info!(file = %path.display(), to = %target.display(), "inbox file accepted")
            }
            Err(error) => tracing::warn!(
                file = %path.display(), %error,
                "could not move an imported inbox file to accepted/; it stays (and is not imported again)"
            ),
        }
    }

    /// Moves `path` to `rejected/` and writes `why` beside it as `NAME.error.txt`.
    async fn reject(&self, path: &Path, why: &str) {
        let target = unique_target(&self.config.dir.join(REJECTED), &file_name(path));
        let error_file = PathBuf::from(format!("{}.error.txt", target.display()));
        if let Err(error) = tokio::fs::write(&error_file, format!("{why}\n")).await {
            tracing::warn!(file = %error_file.display(), %error, "could not write the error file");
        }
        match tokio::fs::rename(path, &target).await {
            Ok(()) => tracing::warn!(file = %path.display(), reason = %why, "inbox file rejected"),
            Err(error) => tracing::warn!(
                file = %path.display(), %error, reason = %why,
                "could not move a rejected inbox file to rejected/"
            ),
        }
    }
}

/// The spec a file holds, with its workspace settled: a spec's own (relative ones
/// taken from `default_workspace`), else `default_workspace`.
pub fn parse(
    path: &Path,
    kind: FileKind,
    bytes: &[u8],
    default_workspace: Option<&str>,
) -> Result<TaskSpec> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() + 1;
        openloom_prompts::Error::NotUtf8 { path: path.to_owned(), offset, line }
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let origin = path.display().to_string();
    let no_workspace = || Error::NoWorkspace { path: path.to_owned() };
    let mut spec = match kind {
        FileKind::Spec(format) => openloom_prompts::parse_spec(text, format, &origin)?,
        FileKind::Prompt => {
            let name = file_name(path);
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(stem, _)| stem).to_owned();
            let options = PromptOptions { name: Some(stem), ..PromptOptions::default() };
            let workspace = default_workspace.ok_or_else(no_workspace)?;
            openloom_prompts::task_spec_from_prompt(text, workspace, options)?
        }
    };
    if spec.workspace.trim().is_empty() || Path::new(&spec.workspace).is_relative() {
        let base = default_workspace.ok_or_else(no_workspace)?;
        relative_to(&mut spec, Path::new(base));
    }
    openloom_prompts::check_spec_limits(&spec, &origin)?;
    Ok(spec)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `dir/name`, or `dir/STEM-2.EXT`, `-3`, ... when that is taken.
fn unique_target(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    (2..)
        .map(|n| {
            if extension.is_empty() {
                dir.join(format!("{stem}-{n}"))
            } else {
                dir.join(format!("{stem}-{n}.{extension}"))
            }
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or(first)
}

#[async_trait]
impl Source for Inbox {
    fn name(&self) -> &str {
        "inbox"
    }

    async fn next(&self) -> openloom_core::Result<Option<Arrival>> {
        loop {
            let listing = self.list().await?;
            let mut state = self.state.lock().await;
            let ready = state.settling.scan(listing, Instant::now(), self.config.settle);
            for path in ready {
                if state.offered.values().any(|offered| offered == &path) {
                    continue;
                }
                match self.read(&path).await {
                    Ok(arrival) => {
                        state.offered.insert(arrival.origin.clone(), path);
                        return Ok(Some(arrival));
                    }
                    Err(Error::Io { action, path: failed, source }) => {
                        // Gone or unreadable for now (moved away, permissions): look
                        // again once it settles; no verdict on a file we could not read.
                        tracing::warn!(file = %failed.display(), error = %source, "could not {action} an inbox file");
                        state.settling.forget(&path);
                    }
                    Err(error) => {
                        state.settling.forget(&path);
                        self.reject(&path, &error.to_string()).await;
                    }
                }
            }
            drop(state);
            tokio::time::sleep(self.config.poll).await;
        }
    }

    async fn settle(&self, arrival: &Arrival, outcome: &openloom_core::Result<Admitted>) {
        let mut state = self.state.lock().await;
        let Some(path) = state.offered.remove(&arrival.origin) else { return };
        state.settling.forget(&path);
        drop(state);
        match outcome {
            Ok(_) => self.accept(&path).await,
            // The store is locked or failing: the file stays and is offered again.
            Err(openloom_core::Error::StoreBusy { .. } | openloom_core::Error::Store { .. }) => {
                tracing::warn!(file = %path.display(), "the store failed; the inbox file is offered again");
            }
            Err(error) => self.reject(&path, &error.to_string()).await,
        }
    }
}

#[cfg(test)]
mod tests;
