//! Settings, with one precedence: flags > environment > config file > defaults.
//!
//! clap reads each flag and its `OPENLOOM_*` variable together (a flag wins over the
//! variable); whatever is still unset comes from the YAML config file, then from the
//! defaults below. `docs/configuration.md` lists every key.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use openloom_core::WorkspacePolicy;
use openloom_core::spec::Unattended;
use serde::Deserialize;

/// Default OpenCode URL (the reference's).
pub const DEFAULT_OPENCODE_URL: &str = "http://127.0.0.1:14096";
/// Default OpenCode basic-auth user (OpenCode's own default).
pub const DEFAULT_OPENCODE_USERNAME: &str = "opencode";
/// Default dashboard host: loopback only.
pub const DEFAULT_UI_HOST: &str = "127.0.0.1";
/// Default dashboard port (the reference's).
pub const DEFAULT_UI_PORT: u16 = 55413;
/// Default config file, relative to the current directory.
pub const DEFAULT_CONFIG_FILE: &str = ".openloom/config.yaml";

/// Options every command accepts (flags, each with its environment variable).
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Config file (YAML). Default: .openloom/config.yaml if it exists.
    #[arg(long, env = "OPENLOOM_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// URL of the OpenCode server [default: http://127.0.0.1:14096].
    #[arg(long, env = "OPENLOOM_OPENCODE_URL", global = true, value_name = "URL")]
    pub opencode_url: Option<String>,
    /// OpenCode basic-auth user name [default: opencode].
    #[arg(long, env = "OPENLOOM_OPENCODE_USERNAME", global = true, value_name = "NAME")]
    pub opencode_username: Option<String>,
    /// Where tasks are kept: a SQLite file [default: .openloom/openloom.sqlite3], or a
    /// PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE, also postgresql://)
    /// for several workers on one database (docs/team.md).
    // The value is hidden from --help: a URL can hold a password.
    #[arg(
        long,
        env = "OPENLOOM_DATABASE",
        hide_env_values = true,
        global = true,
        value_name = "FILE|URL"
    )]
    pub database: Option<PathBuf>,
    /// Directories workspaces must be inside, separated by ':'.
    #[arg(long, env = "OPENLOOM_ALLOWED_ROOTS", global = true, value_name = "DIRS")]
    pub allowed_roots: Option<String>,
    /// Refuse workspaces outside the allowed roots [default: true when roots are set].
    #[arg(long, env = "OPENLOOM_STRICT_ROOTS", global = true, value_name = "BOOL")]
    pub strict_roots: Option<String>,
    /// Never start OpenCode, even when the default URL has no server (see `opencode_bin`);
    /// also OPENLOOM_START_OPENCODE=false or `start_opencode: false` in the config file.
    #[arg(long, global = true)]
    pub no_start_opencode: bool,
    /// The `opencode` binary to start when nothing answers at the default URL
    /// [default: `opencode` on PATH].
    #[arg(long, env = "OPENLOOM_OPENCODE_BIN", global = true, value_name = "FILE")]
    pub opencode_bin: Option<PathBuf>,
    /// This worker's name among the `serve`/`watch` processes sharing the database:
    /// the "driven by" of the tasks it drives, and its row in `GET /api/state`'s
    /// workers. Must be unique among live workers [default: HOST:PID].
    #[arg(long, env = "OPENLOOM_WORKER_NAME", global = true, value_name = "NAME")]
    pub worker_name: Option<String>,
    /// The name of this worker's OpenCode server, when workers on one database use
    /// several (docs/team.md): tasks created here run on it, and this worker drives
    /// only tasks bound to it or to none. A name in the config file's
    /// `opencode_servers` also gives its URL. Several names, comma-separated
    /// (`build-1,build-2`): `serve` drives the tasks of each (every name after the
    /// first must be in `opencode_servers`); the first is the one tasks run on unless
    /// they name another [default: none, tasks are not bound].
    #[arg(
        long,
        env = "OPENLOOM_OPENCODE",
        global = true,
        value_name = "NAME[,NAME...]",
        value_delimiter = ','
    )]
    pub opencode: Vec<String>,
}

/// The config file's keys; every one optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    opencode_url: Option<String>,
    opencode_username: Option<String>,
    opencode_password: Option<String>,
    database: Option<PathBuf>,
    allowed_roots: Option<Roots>,
    strict_roots: Option<bool>,
    ui_host: Option<String>,
    ui_port: Option<u16>,
    api_token: Option<String>,
    public_hosts: Option<Vec<String>>,
    start_opencode: Option<bool>,
    opencode_bin: Option<PathBuf>,
    worker_name: Option<String>,
    /// This worker's OpenCode server by name, or its servers (a list).
    opencode: Option<Names>,
    /// The team's OpenCode servers: name → URL.
    opencode_servers: Option<std::collections::BTreeMap<String, String>>,
    /// Unattended keys for every task whose spec leaves them unset.
    task_defaults: Option<serde_yaml::Value>,
    /// The inbox directory `serve` watches.
    inbox: Option<PathBuf>,
    /// The workspace of inbox files that name none.
    inbox_workspace: Option<PathBuf>,
    /// The GitHub issues hook: label and repository directories.
    github: Option<openloom_sources::GithubConfig>,
    /// Signed webhooks out (docs/notifications.md).
    webhooks: Option<Vec<openloom_notify::HookConfig>>,
    /// The file's path, for errors about its values.
    #[serde(skip)]
    origin: String,
}

/// One name or a YAML list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    List(Vec<String>),
}

impl Names {
    fn into_vec(self) -> Vec<String> {
        match self {
            Names::One(name) => vec![name],
            Names::List(names) => names,
        }
    }
}

/// Roots as a YAML list or a ':'-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Roots {
    List(Vec<PathBuf>),
    Joined(String),
}

/// One of the team's OpenCode servers, by its name in `opencode_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedOpencode {
    /// Its name.
    pub name: String,
    /// Its URL, without a trailing slash.
    pub url: String,
}

/// Effective settings after applying the precedence.
#[derive(Clone)]
pub struct Settings {
    /// OpenCode base URL, without a trailing slash.
    pub opencode_url: String,
    /// OpenCode user name.
    pub opencode_username: String,
    /// OpenCode password, if any.
    pub opencode_password: Option<String>,
    /// Where tasks are kept.
    pub database: Database,
    /// Allowed workspace roots (absolute).
    pub allowed_roots: Vec<PathBuf>,
    /// Whether workspaces must be inside the roots.
    pub strict_roots: bool,
    /// Dashboard/API host.
    pub ui_host: String,
    /// Dashboard/API port.
    pub ui_port: u16,
    /// API token required by the server, if configured (else one is generated).
    pub api_token: Option<String>,
    /// Serve without a token (`--no-token`, loopback only).
    pub no_token: bool,
    /// Where a generated token is kept (`None` without `XDG_STATE_HOME` and `HOME`).
    pub token_file: Option<PathBuf>,
    /// Where an OpenCode that openloom started itself is published for other
    /// openloom processes (`None` without `XDG_STATE_HOME` and `HOME`).
    pub opencode_file: Option<PathBuf>,
    /// Extra host names the server answers to.
    pub public_hosts: Vec<String>,
    /// Whether no flag, variable or file named the OpenCode URL (only then may
    /// OpenLoom start OpenCode itself: an explicit URL means "use that one").
    pub opencode_url_is_default: bool,
    /// Whether to start OpenCode when nothing answers at the default URL.
    pub start_opencode: bool,
    /// The OpenCode binary to start, if one was named (else `opencode` on PATH).
    pub opencode_bin: Option<PathBuf>,
    /// Unattended settings for every task whose spec leaves them unset.
    pub task_defaults: Unattended,
    /// This worker's name, if one was given (else `HOST:PID`, see
    /// [`crate::commands::parts::worker_name`]).
    pub worker_name: Option<String>,
    /// The name of this worker's (first) OpenCode server, if one was given (tasks
    /// are then bound to it).
    pub opencode: Option<String>,
    /// The further OpenCode servers `serve` drives tasks on (the names after the
    /// first in `--opencode`), each with its URL from `opencode_servers`.
    pub more_opencode: Vec<NamedOpencode>,
    /// The team's OpenCode servers by name (`opencode_servers`): name → URL.
    pub opencode_servers: std::collections::BTreeMap<String, String>,
    /// The inbox directory `serve` watches (absolute), if any.
    pub inbox: Option<PathBuf>,
    /// The workspace of inbox files that name none (absolute), if any.
    pub inbox_workspace: Option<PathBuf>,
    /// The GitHub hook's label and repository directories (absolute), if configured.
    pub github: Option<openloom_sources::GithubConfig>,
    /// `OPENLOOM_GITHUB_WEBHOOK_SECRET`, if set: only ever from the environment.
    pub github_secret: Option<String>,
    /// Webhooks to notify (`--webhook` flags, else `webhooks:` in the file).
    pub webhooks: Vec<openloom_notify::HookConfig>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("opencode_url", &self.opencode_url)
            .field("opencode_username", &self.opencode_username)
            .field("opencode_password", &self.opencode_password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("allowed_roots", &self.allowed_roots)
            .field("strict_roots", &self.strict_roots)
            .field("ui_host", &self.ui_host)
            .field("ui_port", &self.ui_port)
            .field("api_token", &self.api_token.as_ref().map(|_| "<redacted>"))
            .field("no_token", &self.no_token)
            .field("token_file", &self.token_file)
            .field("opencode_file", &self.opencode_file)
            .field("public_hosts", &self.public_hosts)
            .field("opencode_url_is_default", &self.opencode_url_is_default)
            .field("start_opencode", &self.start_opencode)
            .field("opencode_bin", &self.opencode_bin)
            .field("worker_name", &self.worker_name)
            .field("opencode", &self.opencode)
            .field("more_opencode", &self.more_opencode.iter().map(|s| &s.name).collect::<Vec<_>>())
            // URLs may hold passwords: the names only.
            .field("opencode_servers", &self.opencode_servers.keys().collect::<Vec<_>>())
            .field("inbox", &self.inbox)
            .field("inbox_workspace", &self.inbox_workspace)
            .field("github", &self.github)
            .field("github_secret", &self.github_secret.as_ref().map(|_| "<redacted>"))
            .field("webhooks", &self.webhooks.len())
            .finish()
    }
}

/// Environment lookups, passed in so tests need not touch the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    /// Resolves settings from flags/env (`args`), the config file and defaults.
    pub fn resolve(args: &GlobalArgs, env: Env<'_>, cwd: &Path) -> Result<Settings> {
        let file = load_file(args.config.as_deref(), cwd)?;
        // The server's host, port and token come from `ServeArgs` (flag or environment,
        // read by clap) on top of these; see `with_server_args`.
        let password = env("OPENLOOM_OPENCODE_PASSWORD").filter(|p| !p.is_empty());
        let roots: Vec<PathBuf> = match (&args.allowed_roots, file.allowed_roots) {
            (Some(joined), _) => split_roots(joined),
            (None, Some(Roots::Joined(joined))) => split_roots(&joined),
            (None, Some(Roots::List(list))) => list,
            (None, None) => Vec::new(),
        };
        let roots: Vec<PathBuf> =
            roots.into_iter().map(|r| absolute(&expand_home(&r, env), cwd)).collect();
        let strict = match &args.strict_roots {
            Some(value) => parse_bool(value).with_context(|| {
                format!("OPENLOOM_STRICT_ROOTS / --strict-roots = {value:?} is not a boolean (true/false)")
            })?,
            None => file.strict_roots.unwrap_or(!roots.is_empty()),
        };
        let start_opencode = if args.no_start_opencode {
            false
        } else if let Some(value) = env("OPENLOOM_START_OPENCODE").filter(|v| !v.trim().is_empty())
        {
            parse_bool(&value).with_context(|| {
                format!("OPENLOOM_START_OPENCODE = {value:?} is not a boolean (true/false)")
            })?
        } else {
            file.start_opencode.unwrap_or(true)
        };
        let servers = file.opencode_servers.clone().unwrap_or_default();
        let names = match (&args.opencode, file.opencode) {
            (flag, _) if !flag.is_empty() => flag.clone(),
            (_, Some(names)) => names.into_vec(),
            (_, None) => Vec::new(),
        };
        let (opencode, more_opencode) = split_opencode(names, &servers)?;
        let served_url =
            opencode_url_of(opencode.as_deref(), &servers, args.opencode_url.is_some())?;
        let opencode_url_is_default =
            args.opencode_url.is_none() && file.opencode_url.is_none() && served_url.is_none();
        let opencode_bin = args
            .opencode_bin
            .clone()
            .or(file.opencode_bin)
            .map(|bin| absolute(&expand_home(&bin, env), cwd));
        let database = args
            .database
            .clone()
            .or(file.database)
            .unwrap_or_else(|| openloom_store_sqlite::default_database_path(cwd));
        let task_defaults = match &file.task_defaults {
            Some(value) => openloom_prompts::parse_task_defaults(value, &file.origin)?,
            None => Unattended::default(),
        };
        let worker_name = args.worker_name.clone().or(file.worker_name);
        if let Some(problem) = worker_name.as_deref().and_then(openloom_core::worker::name_problem)
        {
            anyhow::bail!(
                "the worker name (--worker-name, OPENLOOM_WORKER_NAME or worker_name in the config \
                 file) {problem}; give a short printable name such as \"web-1\""
            );
        }
        let dir = |path: PathBuf| absolute(&expand_home(&path, env), cwd);
        let github = file.github.map(|mut github| {
            for directory in github.repos.values_mut() {
                *directory = dir(PathBuf::from(&*directory)).to_string_lossy().into_owned();
            }
            github
        });
        Ok(Settings {
            task_defaults,
            worker_name,
            inbox: file.inbox.map(dir),
            inbox_workspace: file.inbox_workspace.map(dir),
            github,
            github_secret: env(openloom_server::GITHUB_SECRET_ENV).filter(|s| !s.trim().is_empty()),
            webhooks: file.webhooks.unwrap_or_default(),
            opencode,
            more_opencode,
            opencode_servers: servers,
            opencode_url: args
                .opencode_url
                .clone()
                .or(served_url)
                .or(file.opencode_url)
                .unwrap_or_else(|| DEFAULT_OPENCODE_URL.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            opencode_username: args
                .opencode_username
                .clone()
                .or(file.opencode_username)
                .unwrap_or_else(|| DEFAULT_OPENCODE_USERNAME.to_owned()),
            opencode_password: password.or(file.opencode_password),
            database: Database::from_setting(&database, env, cwd),
            allowed_roots: roots,
            strict_roots: strict,
            ui_host: file.ui_host.unwrap_or_else(|| DEFAULT_UI_HOST.to_owned()),
            ui_port: file.ui_port.unwrap_or(DEFAULT_UI_PORT),
            api_token: file.api_token.filter(|t| !t.is_empty()),
            no_token: false,
            token_file: crate::token::token_path(env),
            opencode_file: crate::opencode_file::path(env),
            public_hosts: file.public_hosts.unwrap_or_default(),
            opencode_url_is_default,
            start_opencode,
            opencode_bin,
        })
    }

    /// These settings as seen from the further OpenCode server `name` at `url` of
    /// this worker: its URL and name in place of the first server's (credentials
    /// are shared).
    pub fn on_opencode(&self, name: &str, url: &str) -> Settings {
        let mut settings = self.clone();
        settings.opencode = Some(name.to_owned());
        settings.opencode_url = url.to_owned();
        settings.opencode_url_is_default = false;
        settings.more_opencode = Vec::new();
        settings
    }

    /// These settings with the server flags applied (flags and their environment
    /// variables win over the config file).
    pub fn with_server_args(&self, args: &crate::cli::ServeArgs) -> Settings {
        let mut settings = self.clone();
        if let Some(host) = &args.host {
            settings.ui_host = host.clone();
        }
        if let Some(port) = args.port {
            settings.ui_port = port;
        }
        if let Some(token) = args.token.as_ref().filter(|t| !t.is_empty()) {
            settings.api_token = Some(token.clone());
        }
        settings.no_token = args.no_token;
        settings.public_hosts.extend(args.public_hosts.iter().cloned());
        settings.with_webhook_args(&args.webhooks)
    }

    /// These settings with the `--webhook` flags applied: given any, they replace
    /// the file's `webhooks:` (flags win over the file, as for every key).
    pub fn with_webhook_args(&self, urls: &[String]) -> Settings {
        let mut settings = self.clone();
        if !urls.is_empty() {
            settings.webhooks = urls.iter().map(openloom_notify::HookConfig::for_url).collect();
        }
        settings
    }

    /// These settings with `serve`'s intake flags applied (flag/env over the file);
    /// relative directories are taken from `cwd`.
    pub fn with_intake_args(&self, args: &crate::cli::IntakeArgs, cwd: &Path) -> Settings {
        let mut settings = self.clone();
        if let Some(inbox) = &args.inbox {
            settings.inbox = Some(absolute(inbox, cwd));
        }
        if let Some(workspace) = &args.inbox_workspace {
            settings.inbox_workspace = Some(absolute(workspace, cwd));
        }
        settings
    }

    /// The workspace policy these settings describe.
    pub fn workspace_policy(&self) -> WorkspacePolicy {
        if self.strict_roots {
            WorkspacePolicy::within(self.allowed_roots.clone())
        } else {
            WorkspacePolicy::any()
        }
    }
}

fn load_file(explicit: Option<&Path>, cwd: &Path) -> Result<FileConfig> {
    let (path, required) = match explicit {
        Some(path) => (absolute(path, cwd), true),
        None => (cwd.join(DEFAULT_CONFIG_FILE), false),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(FileConfig::default());
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("could not read config file {}", path.display()));
        }
    };
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let mut file: FileConfig = serde_yaml::from_str(&text).with_context(|| {
        format!(
            "config file {} is invalid; valid keys: opencode_url, opencode_username, opencode_password, \
             database, allowed_roots, strict_roots, ui_host, ui_port, api_token, public_hosts, start_opencode, \
             opencode_bin, worker_name, opencode, opencode_servers, task_defaults, inbox, inbox_workspace, \
             github, webhooks",
            path.display()
        )
    })?;
    file.origin = path.display().to_string();
    Ok(file)
}

/// The URL the worker's OpenCode name gives (`opencode_servers[name]`), after
/// checking every name: `None` when no name is given, or a URL flag names the
/// server (the flag wins). A name missing from a non-empty `opencode_servers` is an
/// error naming the known ones.
fn opencode_url_of(
    name: Option<&str>,
    servers: &std::collections::BTreeMap<String, String>,
    url_flag: bool,
) -> Result<Option<String>> {
    for (server, url) in servers {
        if let Some(problem) = openloom_core::worker::name_problem(server) {
            bail!("opencode_servers in the config file: the name {server:?} {problem}");
        }
        if url.trim().is_empty() {
            bail!(
                "opencode_servers in the config file: {server:?} has no URL; give http://HOST:PORT"
            );
        }
    }
    let Some(name) = name else { return Ok(None) };
    if let Some(problem) = openloom_core::worker::name_problem(name) {
        bail!(
            "the OpenCode server name (--opencode, OPENLOOM_OPENCODE or opencode in the config \
             file) {problem}; give a short printable name such as \"build-1\""
        );
    }
    match servers.get(name) {
        Some(url) if !url_flag => Ok(Some(url.trim().to_owned())),
        Some(_) => Ok(None),
        None if servers.is_empty() || url_flag => Ok(None),
        None => bail!(
            "--opencode {name:?} is not one of opencode_servers in the config file ({}); \
             add it there with its URL, or give --opencode-url",
            servers.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The first of this worker's OpenCode server names, and the others with their URLs
/// from `opencode_servers`: the first may get its URL from `--opencode-url`, the
/// others have no other place to get one. Blank names (`a,,b`, a trailing comma) are
/// skipped; a name given twice is refused.
fn split_opencode(
    names: Vec<String>,
    servers: &std::collections::BTreeMap<String, String>,
) -> Result<(Option<String>, Vec<NamedOpencode>)> {
    let names: Vec<String> =
        names.into_iter().map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()).collect();
    let mut names = names.into_iter();
    let first = names.next();
    let mut more: Vec<NamedOpencode> = Vec::new();
    for name in names {
        if first.as_deref() == Some(name.as_str()) || more.iter().any(|s| s.name == name) {
            bail!(
                "the OpenCode server {name:?} is named twice in --opencode (OPENLOOM_OPENCODE or \
                 opencode in the config file); name each server once"
            );
        }
        let Some(url) = servers.get(&name) else {
            bail!(
                "--opencode names {name:?}, which is not one of opencode_servers in the config \
                 file ({}); every server after the first needs its URL there",
                if servers.is_empty() {
                    "none is configured".to_owned()
                } else {
                    servers.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                }
            );
        };
        more.push(NamedOpencode { name, url: url.trim().trim_end_matches('/').to_owned() });
    }
    Ok((first, more))
}

fn split_roots(joined: &str) -> Vec<PathBuf> {
    joined.split(':').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect()
}

fn parse_bool(value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => bail!("not a boolean"),
    }
}

/// Where tasks are kept: a SQLite file, or a PostgreSQL database shared by workers.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file (absolute path).
    Sqlite(PathBuf),
    /// A PostgreSQL URL. It may hold a password: shown only through [`Database`]'s
    /// `Display` and `Debug`, which leave it out.
    Postgres(String),
}

impl Database {
    /// `postgres://...` or `postgresql://...` is PostgreSQL; anything else is a SQLite
    /// path, with `~` expanded and taken relative to `cwd`.
    fn from_setting(value: &Path, env: Env<'_>, cwd: &Path) -> Database {
        match value.to_str() {
            Some(url) if openloom_store_postgres::is_postgres_url(url) => {
                Database::Postgres(url.trim().to_owned())
            }
            _ => Database::Sqlite(absolute(&expand_home(value, env), cwd)),
        }
    }

    /// The SQLite file, if the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl std::fmt::Display for Database {
    /// The file, or the PostgreSQL database without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => {
                write!(f, "{}", openloom_store_postgres::redacted_url(url))
            }
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

fn expand_home(path: &Path, env: Env<'_>) -> PathBuf {
    match (path.strip_prefix("~"), env("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_path_buf(),
    }
}

fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let cwd = Path::new("/work/project");
        let settings =
            Settings::resolve(&GlobalArgs::default(), &env_of(&[]), cwd).expect("defaults");
        assert_eq!(settings.opencode_url, DEFAULT_OPENCODE_URL);
        assert_eq!(settings.database, Database::Sqlite(cwd.join(".openloom/openloom.sqlite3")));
        assert_eq!(settings.ui_host, "127.0.0.1");
        assert!(!settings.strict_roots);
        assert!(settings.opencode_password.is_none());
    }

    #[test]
    fn a_postgres_url_selects_postgres_and_anything_else_is_a_sqlite_path() {
        let cwd = Path::new("/work/project");
        let with = |database: &str| {
            let args = GlobalArgs { database: Some(database.into()), ..GlobalArgs::default() };
            Settings::resolve(&args, &env_of(&[("HOME", "/home/u")]), cwd).expect("resolves")
        };
        for url in ["postgres://loom:hunter2@db:5433/ol", "postgresql://loom:hunter2@db:5433/ol"] {
            let settings = with(url);
            assert_eq!(settings.database, Database::Postgres(url.to_owned()));
            assert_eq!(settings.database.sqlite_path(), None);
            let shown = format!("{} {:?} {settings:?}", settings.database, settings.database);
            assert!(shown.contains("loom@db:5433/ol") && !shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(
            with("state/ol.sqlite3").database,
            Database::Sqlite(cwd.join("state/ol.sqlite3"))
        );
        assert_eq!(with("~/ol.db").database, Database::Sqlite(PathBuf::from("/home/u/ol.db")));
    }

    #[test]
    fn a_named_opencode_server_gives_its_url_and_an_unknown_name_lists_the_known() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "opencode_url: http://file:1\nopencode_servers:\n  build-1: http://10.0.0.11:4096\n  \
             build-2: http://10.0.0.12:4096/\n",
        )
        .expect("write");
        let resolve = |opencode: Option<&str>, url: Option<&str>| {
            let args = GlobalArgs {
                config: Some(config.clone()),
                opencode: opencode.map(str::to_owned).into_iter().collect(),
                opencode_url: url.map(str::to_owned),
                ..GlobalArgs::default()
            };
            Settings::resolve(&args, &env_of(&[]), dir.path())
        };
        let named = resolve(Some("build-2"), None).expect("resolve");
        assert_eq!(named.opencode.as_deref(), Some("build-2"));
        assert_eq!(named.opencode_url, "http://10.0.0.12:4096");
        assert!(!named.opencode_url_is_default, "a named server is never started by us");
        let flagged = resolve(Some("build-2"), Some("http://flag:2")).expect("resolve");
        assert_eq!(flagged.opencode_url, "http://flag:2", "the URL flag wins");
        let unnamed = resolve(None, None).expect("resolve");
        assert_eq!((unnamed.opencode, unnamed.opencode_url.as_str()), (None, "http://file:1"));
        let error = resolve(Some("build-3"), None).expect_err("unknown name");
        let text = format!("{error:#}");
        assert!(text.contains("build-3") && text.contains("build-1, build-2"), "{text}");
        let error = resolve(Some("bad\nname"), None).expect_err("unprintable");
        assert!(format!("{error:#}").contains("--opencode"), "{error:#}");
    }

    #[test]
    fn a_worker_on_several_opencode_servers_gets_each_url_and_a_bad_list_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        let servers = "opencode_servers:\n  a: http://10.0.0.1:4096\n  b: http://10.0.0.2:4096/\n";
        std::fs::write(&config, format!("{servers}opencode: [a, b]\n")).expect("write");
        let resolve = |names: &[&str]| {
            let args = GlobalArgs {
                config: Some(config.clone()),
                opencode: names.iter().map(|n| (*n).to_owned()).collect(),
                ..GlobalArgs::default()
            };
            Settings::resolve(&args, &env_of(&[]), dir.path())
        };
        let from_file = resolve(&[]).expect("a list in the file");
        assert_eq!(from_file.opencode.as_deref(), Some("a"));
        assert_eq!(from_file.opencode_url, "http://10.0.0.1:4096");
        let b = NamedOpencode { name: "b".into(), url: "http://10.0.0.2:4096".into() };
        assert_eq!(from_file.more_opencode, vec![b]);
        let flag = resolve(&["b", "a"]).expect("the flag wins");
        assert_eq!(flag.opencode.as_deref(), Some("b"));
        assert_eq!(flag.more_opencode.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a"]);
        let error = resolve(&["a", "c"]).expect_err("c has no URL");
        let text = format!("{error:#}");
        assert!(text.contains("\"c\"") && text.contains("a, b"), "{text}");
        let error = resolve(&["a", "b", "a"]).expect_err("named twice");
        assert!(format!("{error:#}").contains("twice"), "{error:#}");
        std::fs::write(&config, format!("{servers}opencode: b\n")).expect("write");
        let one = resolve(&[]).expect("one name in the file");
        assert_eq!((one.opencode.as_deref(), one.more_opencode.len()), (Some("b"), 0));
    }

    #[test]
    fn task_defaults_come_from_the_file_and_a_bad_one_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, "task_defaults:\n  questions: deny\n  human_timeout: 2h\n")
            .expect("write");
        let args = GlobalArgs { config: Some(config.clone()), ..GlobalArgs::default() };
        let settings = Settings::resolve(&args, &env_of(&[]), dir.path()).expect("resolve");
        assert_eq!(settings.task_defaults.questions, Some(openloom_core::QuestionPolicy::Deny));
        assert_eq!(settings.task_defaults.human_timeout_seconds, Some(7200));
        std::fs::write(&config, "task_defaults:\n  human_timeout: 7200\n").expect("write");
        let error = Settings::resolve(&args, &env_of(&[]), dir.path()).expect_err("no unit");
        let text = format!("{error:#}");
        assert!(text.contains("config.yaml") && text.contains("human_timeout"), "{text}");
    }

    #[test]
    fn webhooks_come_from_the_file_and_webhook_flags_replace_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "webhooks:\n  - url: http://hooks.local/openloom\n    events: [task.completed, task.failed]\n    \
             format: slack\n    secret_env: SLACK_HOOK_SECRET\n",
        )
        .expect("write");
        let args = GlobalArgs { config: Some(config.clone()), ..GlobalArgs::default() };
        let settings = Settings::resolve(&args, &env_of(&[]), dir.path()).expect("resolve");
        assert_eq!(settings.webhooks.len(), 1);
        let hook = &settings.webhooks[0];
        assert_eq!(
            hook.events,
            [openloom_core::NoticeEvent::Completed, openloom_core::NoticeEvent::Failed]
        );
        assert_eq!(hook.format, openloom_notify::Format::Slack);
        assert_eq!(hook.secret_env.as_deref(), Some("SLACK_HOOK_SECRET"));
        assert_eq!(
            settings.with_webhook_args(&[]).webhooks,
            settings.webhooks,
            "no flag: the file"
        );
        let flagged = settings.with_webhook_args(&["http://a/1".into(), "http://b/2".into()]);
        let urls: Vec<&str> = flagged.webhooks.iter().map(|h| h.url.as_str()).collect();
        assert_eq!(urls, ["http://a/1", "http://b/2"], "flags replace the file's hooks");
        assert!(flagged.webhooks.iter().all(|h| h.events.is_empty()), "a flag hook wants all");

        std::fs::write(&config, "webhooks:\n  - url: http://h/\n    events: [task.done]\n")
            .expect("write");
        let error = Settings::resolve(&args, &env_of(&[]), dir.path()).expect_err("bad event");
        let text = format!("{error:#}");
        assert!(text.contains("task.completed") && text.contains("webhooks"), "{text}");
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "opencode_url: http://file:1/\nopencode_username: fromfile\nallowed_roots: [/srv/a, /srv/b]\nui_port: 9000\n",
        )
        .expect("write");
        let args = GlobalArgs {
            config: Some(config),
            opencode_url: Some("http://flag:2".into()),
            ..GlobalArgs::default()
        };
        let settings = Settings::resolve(&args, &env_of(&[]), dir.path()).expect("resolve");
        assert_eq!(settings.opencode_url, "http://flag:2");
        assert_eq!(settings.opencode_username, "fromfile");
        assert_eq!(settings.ui_port, 9000, "the file beats the default");
        // `--port` (or OPENLOOM_UI_PORT, which clap reads for it) beats the file.
        let serve = crate::cli::ServeArgs { port: Some(9100), ..crate::cli::ServeArgs::default() };
        assert_eq!(settings.with_server_args(&serve).ui_port, 9100, "flag/env beats file");
        assert_eq!(settings.allowed_roots, vec![PathBuf::from("/srv/a"), PathBuf::from("/srv/b")]);
        assert!(settings.strict_roots, "roots make the policy strict by default");
    }

    #[test]
    fn starting_opencode_follows_the_precedence_and_an_explicit_url_turns_it_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, "start_opencode: false\nopencode_bin: bin/opencode\n")
            .expect("write");
        let with_file = GlobalArgs { config: Some(config), ..GlobalArgs::default() };
        let resolve = |args: &GlobalArgs, env: &[(&str, &str)]| {
            Settings::resolve(args, &env_of(env), dir.path()).expect("resolve")
        };
        let defaults = resolve(&GlobalArgs::default(), &[]);
        assert!(defaults.start_opencode && defaults.opencode_url_is_default);
        assert_eq!(defaults.opencode_bin, None);
        let file = resolve(&with_file, &[]);
        assert!(!file.start_opencode, "the file beats the default");
        assert_eq!(file.opencode_bin, Some(dir.path().join("bin/opencode")));
        assert!(resolve(&with_file, &[("OPENLOOM_START_OPENCODE", "yes")]).start_opencode);
        let flag = GlobalArgs { no_start_opencode: true, ..GlobalArgs::default() };
        assert!(!resolve(&flag, &[("OPENLOOM_START_OPENCODE", "true")]).start_opencode);
        // clap puts OPENLOOM_OPENCODE_URL into the flag's field: both count as explicit.
        let url =
            GlobalArgs { opencode_url: Some(DEFAULT_OPENCODE_URL.into()), ..GlobalArgs::default() };
        assert!(!resolve(&url, &[]).opencode_url_is_default);
        let bad = Settings::resolve(
            &GlobalArgs::default(),
            &env_of(&[("OPENLOOM_START_OPENCODE", "sometimes")]),
            dir.path(),
        );
        assert!(format!("{:#}", bad.expect_err("bad boolean")).contains("OPENLOOM_START_OPENCODE"));
    }

    #[test]
    fn bad_values_are_explained() {
        let cwd = Path::new("/");
        let args = GlobalArgs { strict_roots: Some("maybe".into()), ..GlobalArgs::default() };
        let err = Settings::resolve(&args, &env_of(&[]), cwd).expect_err("bad boolean");
        assert!(format!("{err:#}").contains("OPENLOOM_STRICT_ROOTS"), "{err:#}");

        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, "opencode_ulr: x\n").expect("write");
        let args = GlobalArgs { config: Some(config), ..GlobalArgs::default() };
        let err = Settings::resolve(&args, &env_of(&[]), cwd).expect_err("typo");
        assert!(format!("{err:#}").contains("valid keys"), "{err:#}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("c.yaml");
        std::fs::write(&config, "api_token: tok3n\n").expect("write");
        let args = GlobalArgs { config: Some(config), ..GlobalArgs::default() };
        let env = env_of(&[("OPENLOOM_OPENCODE_PASSWORD", "hunter2")]);
        let settings = Settings::resolve(&args, &env, dir.path()).expect("resolve");
        assert_eq!(settings.api_token.as_deref(), Some("tok3n"));
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("tok3n"), "{debug}");
    }
}
