//! `openloom doctor`: one screen with what a user needs when something does not work
//! — the OpenCode binary and version, the URL and whether it answers, the model, the
//! database and its schema, the allowed roots — and for each problem the command that
//! fixes it. Exit code 1 when there is a problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use openloom_core::Health;
use openloom_store_postgres::PostgresStore;
use openloom_store_sqlite::SqliteStore;

use super::parts;
use crate::config::{Database, Settings};
use crate::exit;
use crate::opencode_child;

/// How long `opencode --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// One line of the report.
#[derive(Debug)]
struct Finding {
    what: &'static str,
    ok: bool,
    detail: String,
    /// The command (or change) that fixes a problem.
    fix: Option<String>,
}

fn ok(what: &'static str, detail: impl Into<String>) -> Finding {
    Finding { what, ok: true, detail: detail.into(), fix: None }
}

fn problem(what: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding { what, ok: false, detail: detail.into(), fix: Some(fix.into()) }
}

/// The report and whether everything is fine (a pure function, tested below).
fn render(findings: &[Finding]) -> (String, bool) {
    let mut out = String::from("openloom doctor\n");
    for finding in findings {
        let mark = if finding.ok { "ok     " } else { "PROBLEM" };
        out.push_str(&format!("  {mark} {:<9} {}\n", finding.what, finding.detail));
        if let Some(fix) = &finding.fix {
            out.push_str(&format!("          {:<9} fix: {fix}\n", ""));
        }
    }
    let healthy = findings.iter().all(|f| f.ok);
    out.push_str(if healthy {
        "Everything needed is in place.\n"
    } else {
        "Fix the problems above, then run `openloom doctor` again.\n"
    });
    (out, healthy)
}

pub async fn run(settings: &Settings, cwd: &Path) -> Result<u8> {
    let mut findings = Vec::new();
    let binary = find_binary(settings, &mut findings).await;

    // Start OpenCode as `watch` would, so the model can be read from it too.
    // A named binary that is missing was reported above; don't report it twice.
    let bad_binary = settings.opencode_bin.as_ref().is_some_and(|bin| !bin.is_file());
    let ensured = if bad_binary {
        Ok(opencode_child::ensure_none(settings))
    } else {
        opencode_child::ensure(settings, cwd).await
    };
    let opencode = match ensured {
        Ok(opencode) => Some(opencode),
        Err(error) => {
            findings.push(problem(
                "opencode",
                format!("could not be started: {error:#}"),
                "see its log, or start `opencode serve --port 14096` yourself",
            ));
            None
        }
    };
    let used = opencode.as_ref().map_or(settings, |o| o.settings());
    let started = used.opencode_url != settings.opencode_url;
    check_url(settings, used, started, binary.is_some(), &mut findings).await;
    if let Some(opencode) = opencode {
        opencode.shutdown().await;
    }
    // The further servers `serve` drives (`--opencode a,b`): each must answer too.
    for server in &settings.more_opencode {
        let on = settings.on_opencode(&server.name, &server.url);
        check_url(&on, &on, false, binary.is_some(), &mut findings).await;
    }
    findings.push(check_database(&settings.database).await);
    findings.extend(check_roots(settings));

    let (report, healthy) = render(&findings);
    print!("{report}");
    Ok(if healthy { exit::OK } else { exit::FAILURE })
}

/// The binary that would be started, with its version; a finding either way.
async fn find_binary(settings: &Settings, findings: &mut Vec<Finding>) -> Option<PathBuf> {
    let binary = match &settings.opencode_bin {
        Some(bin) if bin.is_file() => bin.clone(),
        Some(bin) => {
            findings.push(problem(
                "binary",
                format!("{} (OPENLOOM_OPENCODE_BIN / opencode_bin) is not a file", bin.display()),
                "point OPENLOOM_OPENCODE_BIN at the `opencode` binary, or unset it to use PATH",
            ));
            return None;
        }
        None => match which::which("opencode") {
            Ok(bin) => bin,
            Err(_) => {
                // Only a problem when nothing answers at the URL; check_url says so.
                findings.push(ok("binary", "no `opencode` on PATH"));
                return None;
            }
        },
    };
    let mut command = tokio::process::Command::new(&binary);
    command.arg("--version").kill_on_drop(true).stdin(std::process::Stdio::null());
    let version = match tokio::time::timeout(VERSION_TIMEOUT, command.output()).await {
        Ok(Ok(output)) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").trim().to_owned()
        }
        Ok(Ok(output)) => format!("unknown (`--version` exited with {})", output.status),
        Ok(Err(error)) => {
            findings.push(problem(
                "binary",
                format!("{} cannot be run: {error}", binary.display()),
                "reinstall OpenCode: npm install -g opencode-ai",
            ));
            return None;
        }
        Err(_) => "unknown (`--version` did not answer)".to_owned(),
    };
    findings.push(ok("binary", format!("{} (version {version})", binary.display())));
    Some(binary)
}

async fn check_url(
    settings: &Settings,
    used: &Settings,
    started: bool,
    have_binary: bool,
    findings: &mut Vec<Finding>,
) {
    let client = match parts::client(used) {
        Ok(client) => client,
        Err(error) => {
            findings.push(problem(
                "url",
                format!("{}: {error:#}", used.opencode_url),
                "set OPENLOOM_OPENCODE_URL (or --opencode-url) to http://HOST:PORT",
            ));
            return;
        }
    };
    match client.health().await {
        Health::Reachable { version } => {
            let version = version.as_deref().unwrap_or("unknown");
            findings.push(ok(
                "url",
                if started {
                    format!(
                        "nothing at {}; watch, serve and plan start OpenCode {version} themselves \
                         (just did, on {})",
                        settings.opencode_url, used.opencode_url
                    )
                } else {
                    format!("{} answers (OpenCode {version})", used.opencode_url)
                },
            ));
            findings.push(check_model(&client).await);
        }
        Health::Unauthorized { reason } => findings.push(problem(
            "url",
            format!("{} refuses our credentials: {reason}", used.opencode_url),
            "export OPENLOOM_OPENCODE_PASSWORD=… (and OPENLOOM_OPENCODE_USERNAME) as the server has them",
        )),
        Health::Unreachable { reason } => {
            let fix = if !settings.opencode_url_is_default {
                format!(
                    "start OpenCode there (`opencode serve --port PORT`), or fix OPENLOOM_OPENCODE_URL \
                     / --opencode-url / opencode_url (now {})",
                    settings.opencode_url
                )
            } else if !settings.start_opencode {
                "opencode serve --port 14096 (or drop --no-start-opencode / start_opencode: false)"
                    .to_owned()
            } else if !have_binary {
                "npm install -g opencode-ai (then openloom starts it), or set OPENLOOM_OPENCODE_BIN"
                    .to_owned()
            } else {
                "opencode serve --port 14096".to_owned()
            };
            findings.push(problem(
                "url",
                format!("{} does not answer: {reason}", used.opencode_url),
                fix,
            ));
        }
    }
}

async fn check_model(client: &openloom_opencode::OpencodeClient) -> Finding {
    match client.config().await {
        Ok(config) => {
            match config.get("model").and_then(|m| m.as_str()).filter(|m| !m.is_empty()) {
                Some(model) => ok("model", model.to_owned()),
                None => problem(
                    "model",
                    "OpenCode has no `model` configured",
                    "opencode auth login, then set \"model\": \"PROVIDER/MODEL\" in \
                 ~/.config/opencode/opencode.json",
                ),
            }
        }
        Err(error) => problem(
            "model",
            format!("could not read OpenCode's configuration: {error}"),
            "check that the URL is an OpenCode server (`opencode serve`)",
        ),
    }
}

async fn check_database(database: &Database) -> Finding {
    match database {
        Database::Sqlite(path) => check_sqlite(path).await,
        Database::Postgres(url) => check_postgres(url, database).await,
    }
}

/// Connects once without changing anything (no migration): doctor only looks.
async fn check_postgres(url: &str, shown: &Database) -> Finding {
    match PostgresStore::probe(url, Duration::from_secs(10)).await {
        Ok(probe) => {
            let schema = match probe.schema_version {
                Some(version) => format!("schema version {version}"),
                None => "no OpenLoom schema yet; the first `serve` creates it".to_owned(),
            };
            ok(
                "database",
                format!(
                    "PostgreSQL {shown}: reachable (server {}, {schema})",
                    probe.server_version
                ),
            )
        }
        // The error names the host, port and database, never the password.
        Err(error) => problem(
            "database",
            format!("PostgreSQL: {error}"),
            "fix OPENLOOM_DATABASE (postgres://USER:PASSWORD@HOST:PORT/DATABASE) or the server",
        ),
    }
}

async fn check_sqlite(path: &Path) -> Finding {
    if !path.exists() {
        return ok("database", format!("{} (not created yet; `watch` creates it)", path.display()));
    }
    let store = match SqliteStore::open(path).await {
        Ok(store) => store,
        Err(error) => {
            return problem(
                "database",
                format!("{}: {error}", path.display()),
                "move the file aside, or use another with OPENLOOM_DATABASE=FILE",
            );
        }
    };
    match store.schema_version().await {
        Ok(version) => ok("database", format!("{} (schema version {version})", path.display())),
        Err(error) => problem(
            "database",
            format!("{}: could not read its schema version: {error}", path.display()),
            "move the file aside, or use another with OPENLOOM_DATABASE=FILE",
        ),
    }
}

fn check_roots(settings: &Settings) -> Vec<Finding> {
    if settings.allowed_roots.is_empty() {
        return vec![ok("roots", "none set: any directory may be a workspace")];
    }
    let mode =
        if settings.strict_roots { "enforced" } else { "not enforced (strict_roots: false)" };
    let mut findings = vec![ok(
        "roots",
        format!(
            "{} ({mode})",
            settings
                .allowed_roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )];
    for root in settings.allowed_roots.iter().filter(|r| !r.is_dir()) {
        findings.push(problem(
            "roots",
            format!("{} is not a directory", root.display()),
            format!("mkdir -p {}  (or fix OPENLOOM_ALLOWED_ROOTS / allowed_roots)", root.display()),
        ));
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_its_fix_and_makes_the_report_unhealthy() {
        let (report, healthy) = render(&[ok("binary", "/bin/opencode (version 1.18.34)")]);
        assert!(healthy, "{report}");
        assert!(report.contains("ok      binary    /bin/opencode"), "{report}");
        let (report, healthy) = render(&[
            ok("binary", "x"),
            problem("url", "http://127.0.0.1:9 does not answer", "opencode serve --port 14096"),
        ]);
        assert!(!healthy);
        assert!(report.contains("PROBLEM url"), "{report}");
        assert!(report.contains("fix: opencode serve --port 14096"), "{report}");
    }
}
