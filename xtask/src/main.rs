//! Project automation, in Rust rather than shell scripts.
//!
//! - `cargo xtask ci` — everything CI checks: formatting, clippy with warnings
//!   denied, the layering rule, tests (end-to-end included when OpenCode is
//!   installed, required when `OPENLOOM_E2E=required`), docs, and the examples.
//! - `cargo xtask e2e-setup` — installs the pinned OpenCode from npm under `target/`.
//! - `cargo xtask bench` — runs the benchmarks whose figures `docs/benchmarks.md` keeps.
//! - `cargo xtask pg-setup` — starts (or finds running) a throwaway PostgreSQL server
//!   for the PostgreSQL store's tests and prints its URL for `OPENLOOM_TEST_POSTGRES`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The OpenCode version the end-to-end tests and `docs/opencode.md` were checked against.
const OPENCODE_VERSION: &str = "1.18.34";

/// Crates the core must never depend on: the harness talks to traits, not HTTP or SQL.
const FORBIDDEN_IN_CORE: &[&str] = &["reqwest", "hyper", "sqlx", "axum", "rusqlite", "tower"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("e2e-setup") => e2e_setup(&root),
        Some("bench") => bench(&root),
        Some("layering") => layering(&root),
        Some("pg-setup") => pg_setup().map(|url| println!("{url}")),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci         fmt check, clippy -D warnings, layering, tests, docs, examples\n  \
                 e2e-setup  install OpenCode {OPENCODE_VERSION} from npm into target/opencode-npm\n  \
                 bench      run the benchmarks recorded in docs/benchmarks.md\n  \
                 layering   check that openloom-core depends on no HTTP/SQL/web crate\n  \
                 pg-setup   start a test PostgreSQL server and print its URL (for {PG_TEST_ENV})"
            );
            bail!("unknown or missing command");
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask must live one level below the workspace root")
}

/// Runs a command in the workspace root, failing with the command line if it fails.
fn run(root: &Path, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let line = format!("{program} {}", args.join(" "));
    eprintln!("\n==> {line}");
    let started = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    eprintln!("<== {line} ({:.1}s)", started.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{line}` failed with {status}");
    }
    Ok(())
}

fn ci(root: &Path) -> Result<()> {
    let started = Instant::now();
    run(root, "cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(root, "cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // The opt-in TLS build (`--features https`) compiles and its own test passes.
    run(root, "cargo", &["test", "-p", "openloom-opencode", "--features", "https", "--lib"], &[])?;
    layering(root)?;
    if std::env::var("OPENLOOM_E2E").is_ok_and(|v| v == "required") {
        e2e_setup(root)?;
    }
    // The PostgreSQL store's tests need a server: CI starts one (they must not skip
    // there); locally one is started when PostgreSQL is installed and none is named.
    let mut test_env: Vec<(&str, String)> = Vec::new();
    // Empty counts as unset, as the tests read it.
    if std::env::var_os(PG_TEST_ENV).is_none_or(|url| url.is_empty())
        && (std::env::var("OPENLOOM_E2E").is_ok_and(|v| v == "required") || postgres_bin().is_ok())
    {
        test_env.push((PG_TEST_ENV, pg_setup()?));
    }
    let test_env: Vec<(&str, &str)> = test_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Not `--all-targets`: that would run the benchmarks (plain `main`s) unoptimised.
    run(root, "cargo", &["test", "--workspace", "--lib", "--bins", "--tests"], &test_env)?;
    run(root, "cargo", &["test", "--workspace", "--doc"], &[])?;
    run(root, "cargo", &["doc", "--workspace", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])?;
    eprintln!("\nci: all checks passed in {:.0}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The core crate's normal dependency tree must not contain HTTP, SQL or web crates.
fn layering(root: &Path) -> Result<()> {
    eprintln!("\n==> layering: openloom-core depends on none of {FORBIDDEN_IN_CORE:?}");
    let output = Command::new("cargo")
        .args([
            "tree",
            "-p",
            "openloom-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(root)
        .output()
        .context("could not run cargo tree")?;
    if !output.status.success() {
        bail!("cargo tree failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let offending: Vec<&str> = tree
        .lines()
        .filter(|line| {
            let name = line.split_whitespace().next().unwrap_or_default();
            FORBIDDEN_IN_CORE.contains(&name)
        })
        .collect();
    if !offending.is_empty() {
        bail!(
            "openloom-core must not depend on HTTP/SQL/web crates, but depends on: {offending:?}"
        );
    }
    Ok(())
}

/// Installs the pinned OpenCode under `target/opencode-npm` (skipped if present).
fn e2e_setup(root: &Path) -> Result<()> {
    let prefix = root.join("target").join("opencode-npm");
    let binary = prefix.join("node_modules/opencode-linux-x64/bin/opencode");
    if binary.exists() {
        eprintln!("\n==> OpenCode already installed at {}", binary.display());
        return Ok(());
    }
    std::fs::create_dir_all(&prefix)
        .with_context(|| format!("could not create {}", prefix.display()))?;
    let package = format!("opencode-linux-x64@{OPENCODE_VERSION}");
    let prefix_arg = prefix.to_string_lossy().into_owned();
    run(
        root,
        "npm",
        &["install", "--no-audit", "--no-fund", "--prefix", &prefix_arg, &package],
        &[],
    )
    .context("installing OpenCode needs Node.js and npm (apt-get install nodejs npm)")?;
    if !binary.exists() {
        bail!("npm finished but {} is missing", binary.display());
    }
    Ok(())
}

/// The store and server benches, the team-mode bench (PostgreSQL from
/// `OPENLOOM_TEST_POSTGRES` or started here; SQLite alone if neither works), then the
/// side-by-side comparison with the Python original (release builds of `openloom` and
/// `openloom-bench`). The comparison needs
/// OpenCode (`cargo xtask e2e-setup`) and, for the reference columns, a Python whose
/// path is in `OPENLOOM_REFERENCE_PYTHON`; without one it measures ours alone.
fn bench(root: &Path) -> Result<()> {
    run(root, "cargo", &["bench", "-p", "openloom-store-sqlite"], &[])?;
    run(root, "cargo", &["bench", "-p", "openloom-server", "--bench", "api"], &[])?;
    let mut team_env = Vec::new();
    if std::env::var(PG_TEST_ENV).map_or(true, |url| url.is_empty()) {
        match pg_setup() {
            Ok(url) => team_env.push((PG_TEST_ENV, url)),
            Err(error) => eprintln!(
                "bench: no PostgreSQL for the team bench ({error:#}); it measures SQLite only"
            ),
        }
    }
    let team_env: Vec<(&str, &str)> = team_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let team = ["bench", "-p", "openloom-store-postgres", "--bench", "team"];
    run(root, "cargo", &team, &team_env)?;
    run(root, "cargo", &["build", "--release", "-p", "openloom", "-p", "openloom-bench"], &[])?;
    if std::env::var_os("OPENLOOM_REFERENCE_PYTHON").is_none() {
        eprintln!(
            "bench: reference skipped: set OPENLOOM_REFERENCE_PYTHON to a Python with its dependencies \
             (python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install httpx pyyaml fastapi \
             sse-starlette 'uvicorn[standard]'); measuring ours alone"
        );
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let report = target.join("bench-reference.md");
    let binary = target.join("release").join("openloom-bench");
    let binary = binary.to_str().context("the target directory is not valid UTF-8")?;
    let report_arg = report.to_str().context("the target directory is not valid UTF-8")?;
    run(root, binary, &["--output", report_arg], &[])?;
    // `openloom serve` with 1,000 running tasks on a simulated OpenCode (issue #14),
    // on SQLite and on the team bench's PostgreSQL when there is one.
    let serve_report = target.join("bench-serve-1k.md");
    let serve_arg = serve_report.to_str().context("the target directory is not valid UTF-8")?;
    run(root, binary, &["serve-1k", "--output", serve_arg], &team_env)?;
    eprintln!(
        "\nbench: store and server (in-process) tables are above; the comparison with the \
         reference is in {}, serve-1k's in {}. Copy them into docs/benchmarks.md with the machine \
         and date.",
        report.display(),
        serve_report.display()
    );
    Ok(())
}

/// The environment variable the PostgreSQL tests read the server's URL from.
const PG_TEST_ENV: &str = "OPENLOOM_TEST_POSTGRES";

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`): Debian's
/// newest `/usr/lib/postgresql/<version>/bin`, else wherever `PATH` has `initdb`.
fn postgres_bin() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()).context(
        "PostgreSQL's server is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb \
         on PATH): apt-get install postgresql",
    )
}

/// Starts a throwaway PostgreSQL server for tests, or finds the one started before,
/// and returns its URL. Its data lives in `$TMPDIR/openloom-pg` with trust
/// authentication on 127.0.0.1 only; the superuser is `openloom`. As root (CI) the
/// server runs as the `postgres` user, since `initdb` refuses to run as root.
fn pg_setup() -> Result<String> {
    let bin = postgres_bin()?;
    let data = std::env::temp_dir().join("openloom-pg");
    let data_arg = data.to_str().context("the temp directory is not valid UTF-8")?.to_owned();
    let as_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    // Runs a PostgreSQL program, as `postgres` when we are root.
    let pg = |program: &str, args: &[&str]| -> Result<std::process::Output> {
        let exe = bin.join(program);
        let exe = exe.to_str().context("the PostgreSQL path is not valid UTF-8")?.to_owned();
        let mut command = if as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]);
            c
        } else {
            Command::new(&exe)
        };
        command.args(args).output().with_context(|| format!("could not run {exe}"))
    };
    if !data.join("PG_VERSION").is_file() {
        std::fs::create_dir_all(&data)
            .with_context(|| format!("could not create {}", data.display()))?;
        if as_root {
            let status = Command::new("chown").args(["postgres:postgres", &data_arg]).status()?;
            if !status.success() {
                bail!("could not give {data_arg} to the postgres user (is PostgreSQL installed?)");
            }
        }
        let out = pg(
            "initdb",
            &["-D", &data_arg, "-U", "openloom", "--auth=trust", "-E", "UTF8", "--no-sync"],
        )?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let running = pg("pg_ctl", &["status", "-D", &data_arg])?.status.success();
    if !running {
        let port = free_port()?;
        let opts = format!(
            "-p {port} -k {data_arg} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c max_connections=200"
        );
        let log = data.join("server.log");
        let log = log.to_str().context("the temp directory is not valid UTF-8")?;
        let out = pg("pg_ctl", &["start", "-w", "-D", &data_arg, "-l", log, "-o", &opts])?;
        if !out.status.success() {
            bail!(
                "pg_ctl start failed: {}{}; see {log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The fourth line of postmaster.pid is the port the running server listens on.
    let pid_file = data.join("postmaster.pid");
    let text = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("could not read {}", pid_file.display()))?;
    let port: u16 = text
        .lines()
        .nth(3)
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("no port in {}", pid_file.display()))?;
    eprintln!("pg-setup: PostgreSQL from {} serving {data_arg} on 127.0.0.1:{port}", bin.display());
    Ok(format!("postgres://openloom@127.0.0.1:{port}/postgres"))
}

/// A TCP port free on loopback now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}
