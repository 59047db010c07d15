//! The two programs under test: our `openloom` binary and the Python original run
//! from its source tree. Both get the same environment variables (the reference's
//! names, which ours kept) and a private database.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use tokio::process::Command;

/// Which program a figure belongs to.
#[derive(Debug, Clone)]
pub enum Subject {
    /// Our release binary.
    Ours {
        /// Path to `openloom`.
        binary: PathBuf,
    },
    /// The Python original.
    Reference(Reference),
}

/// How to run the Python original.
#[derive(Debug, Clone)]
pub struct Reference {
    /// The interpreter (a virtualenv's `python` with httpx, pyyaml, fastapi, uvicorn, sse-starlette).
    pub python: PathBuf,
    /// The directory holding the `openloom` package (goes on `PYTHONPATH`).
    pub source: PathBuf,
    /// Versions of Python and the web stack, for the report.
    pub versions: String,
}

/// Where a subject keeps its state and which OpenCode it talks to.
#[derive(Debug, Clone, Copy)]
pub struct Environment<'a> {
    /// Working directory.
    pub dir: &'a Path,
    /// The SQLite database file.
    pub database: &'a Path,
    /// OpenCode's base URL.
    pub opencode_url: &'a str,
}

impl Subject {
    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Subject::Ours { .. } => "ours (Rust)",
            Subject::Reference(_) => "reference (Python)",
        }
    }

    /// `openloom <args>` as this subject, with a clean OpenLoom environment.
    pub fn command(&self, args: &[&str], env: Environment<'_>) -> Command {
        let mut command = match self {
            Subject::Ours { binary } => {
                let mut command = Command::new(binary);
                command.env("NO_COLOR", "1");
                command
            }
            Subject::Reference(reference) => {
                let mut command = Command::new(&reference.python);
                command
                    .arg("-m")
                    .arg("openloom")
                    .env("PYTHONPATH", &reference.source)
                    .env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                command
            }
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("OPENLOOM_") {
                command.env_remove(key);
            }
        }
        command
            .args(args)
            .current_dir(env.dir)
            .env("OPENLOOM_DATABASE", env.database)
            .env("OPENLOOM_OPENCODE_URL", env.opencode_url);
        command
    }
}

/// Finds our binary: `explicit`, else `openloom` next to this executable.
pub fn ours(explicit: Option<PathBuf>) -> Result<Subject> {
    let binary = match explicit {
        Some(path) => path,
        None => {
            std::env::current_exe().context("locating this executable")?.with_file_name("openloom")
        }
    };
    if !binary.is_file() {
        bail!(
            "no openloom binary at {} (build it with `cargo build --release -p openloom`)",
            binary.display()
        );
    }
    // Absolute: the programs run in their own temp directories.
    let binary =
        binary.canonicalize().with_context(|| format!("resolving {}", binary.display()))?;
    Ok(Subject::Ours { binary })
}

/// The version line `openloom --version` prints.
pub async fn our_version(subject: &Subject) -> String {
    let Subject::Ours { binary } = subject else { return String::new() };
    let output = Command::new(binary).arg("--version").stdin(Stdio::null()).output().await;
    output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

/// Checks that `python` can import the reference from `source` with its web extras,
/// and returns how to run it. The error says what is missing.
pub async fn reference(python: &Path, source: &Path) -> Result<Subject> {
    // Absolute but not canonical: resolving a virtualenv's python symlink would
    // leave the virtualenv.
    let python = &std::path::absolute(python).context("resolving the Python path")?;
    let source = &std::path::absolute(source).context("resolving the reference source")?;
    if !source.join("openloom").join("__init__.py").is_file() {
        bail!("no reference source at {} (expected openloom/__init__.py)", source.display());
    }
    let probe = "import sys, openloom, httpx, yaml, fastapi, uvicorn, sse_starlette\n\
                 print(openloom.__file__)\n\
                 print(f'openloom {openloom.__version__}, Python {sys.version.split()[0]}, '\n\
                       f'fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, httpx {httpx.__version__}')";
    let output = Command::new(python)
        .args(["-c", probe])
        .env("PYTHONPATH", source)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} cannot import the reference and its web extras: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("no error text")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let imported = lines.next().unwrap_or_default();
    // PYTHONPATH comes before site-packages, but say so if an installed copy won.
    let canonical = source.canonicalize().unwrap_or_else(|_| source.to_owned());
    if !Path::new(imported).starts_with(&canonical) && !Path::new(imported).starts_with(source) {
        bail!(
            "{} imports openloom from {imported}, not from {}",
            python.display(),
            source.display()
        );
    }
    Ok(Subject::Reference(Reference {
        python: python.to_owned(),
        source: source.to_owned(),
        versions: lines.next().unwrap_or_default().to_owned(),
    }))
}
