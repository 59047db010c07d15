//! The command line, as clap sees it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::GlobalArgs;

/// Drive an OpenCode coding agent through a task until its checks pass.
///
/// OpenLoom creates an OpenCode session for a task spec, sends the agent a bootstrap
/// prompt, then checks the session on a schedule and whenever it goes idle: it nudges
/// the agent to the next step, answers "should I proceed?", and runs the spec's
/// executable checks before it believes a step or the task is done.
///
/// Settings come from flags, then OPENLOOM_* environment variables, then the config
/// file (.openloom/config.yaml), then defaults. OPENLOOM_OPENCODE_PASSWORD and
/// OPENLOOM_API_TOKEN are read from the environment or the config file only.
#[derive(Debug, Parser)]
#[command(name = "openloom", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Exit codes: 0 success (task completed), 1 task failed or checks failed, \
2 bad usage or bad spec, 3 OpenCode unreachable or refused the credentials, \
4 task not found or prefix ambiguous, 5 (answer) the request is no longer pending or \
nothing is pending, 130 interrupted.")]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter spec (openloom.yaml) to edit.
    Init {
        /// Where to write it.
        #[arg(long, default_value = "openloom.yaml", value_name = "FILE")]
        path: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Run a spec: start (or resume) its task and drive it until it completes or fails.
    Watch {
        /// The spec, YAML or Markdown by extension (.md).
        #[arg(default_value = "openloom.yaml", value_name = "SPEC")]
        spec: PathBuf,
        /// Start a new task even if an unfinished one exists for this spec.
        #[arg(long)]
        fresh: bool,
        /// Also serve the dashboard API (as `serve` does) while watching.
        #[arg(long)]
        ui: bool,
        /// Server options, used with --ui.
        #[command(flatten)]
        server: ServeArgs,
    },
    /// Serve the REST API and live events for every task, and drive the tasks.
    Serve {
        /// Server options.
        #[command(flatten)]
        server: ServeArgs,
        /// Where work arrives besides the API.
        #[command(flatten)]
        intake: IntakeArgs,
    },
    /// List tasks: id, name, status, progress, the worker driving it and the last summary.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Most tasks to list, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show a task's check log.
    Log {
        /// The task id or an unambiguous prefix of it.
        #[arg(value_name = "TASK_ID_PREFIX")]
        task: String,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
        /// Most entries to show (the newest).
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Answer a permission or a question the task's agent waits on.
    ///
    /// Works from another shell while `watch` or `serve` drives the task: the answer
    /// goes to OpenCode (at the configured URL) and its audit line to the task's check
    /// log ("Answered …, by a person (CLI)", see `openloom log`). With one request
    /// pending, --request may be left out; `openloom status --json` lists a task's
    /// `pending_requests` with their ids, permissions and patterns, questions and
    /// options.
    ///
    /// A permission is answered with --allow [--always] or --deny [--message TEXT]; a
    /// question with --choose LABEL, once per question in the order asked (one label
    /// each; a question offering no options takes any text), or --dismiss.
    #[command(group(
        clap::ArgGroup::new("reply").required(true).args(["allow", "deny", "choose", "dismiss"])
    ))]
    #[command(after_help = "Exit codes: 0 answered, 2 the answer does not fit the request \
(the options are listed) or several requests are pending and --request is missing, \
3 OpenCode unreachable, 4 no such task or request, 5 the request is no longer pending \
(answered elsewhere, or its session ended) or nothing is pending.")]
    Answer {
        /// The task id or an unambiguous prefix of it.
        #[arg(value_name = "TASK_ID_PREFIX")]
        task: String,
        /// The request to answer (its id or a prefix of it); needed when several are pending.
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        /// Permission: let the tool run, this once.
        #[arg(long)]
        allow: bool,
        /// With --allow: also allow matching requests later (OpenCode's "always", for
        /// every session of the project).
        #[arg(long, requires = "allow")]
        always: bool,
        /// Permission: refuse. Without --message the agent's turn stops.
        #[arg(long)]
        deny: bool,
        /// With --deny: what the agent is told; it carries on with it.
        #[arg(long, requires = "deny", value_name = "TEXT")]
        message: Option<String>,
        /// Question: the option chosen, once per question in order.
        #[arg(long, value_name = "LABEL")]
        choose: Vec<String>,
        /// Question: dismiss it; the agent's turn stops.
        #[arg(long)]
        dismiss: bool,
    },
    /// Run a spec's executable checks now, without an agent, and print a table.
    Verify {
        /// The spec, YAML or Markdown by extension (.md).
        #[arg(default_value = "openloom.yaml", value_name = "SPEC")]
        spec: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Let the model draft a spec from an intent, written as YAML to edit and watch.
    Plan {
        /// What you want done, in a sentence or two.
        intent: String,
        /// The workspace the task will run in.
        #[arg(long, default_value = ".", value_name = "DIR")]
        workspace: PathBuf,
        /// Where to write the drafted spec.
        #[arg(long, default_value = "openloom.yaml", value_name = "FILE")]
        output: PathBuf,
        /// Overwrite an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Check the set-up: the OpenCode binary and version, the URL and whether it
    /// answers, its model, the database, the allowed roots; each problem with its fix.
    /// Exits 1 when something is wrong.
    Doctor,
    /// Copy every task (with its check log) and recent workspace from a SQLite file
    /// into a PostgreSQL database, for moving to team mode (docs/team.md). Tasks
    /// already there are left as they are, so running it twice copies nothing new.
    /// Stop the workers using either database first.
    Migrate {
        /// The SQLite file to copy from (it is only read).
        #[arg(long, value_name = "PATH.sqlite3")]
        from: PathBuf,
        /// The PostgreSQL database to copy into (postgres://USER:PASSWORD@HOST:PORT/DATABASE).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Print a shell completion script to stdout (bash, zsh, fish or powershell).
    ///
    /// bash: `openloom completions bash > ~/.local/share/bash-completion/completions/openloom`;
    /// zsh: `openloom completions zsh > ~/.zfunc/_openloom` (with `fpath+=~/.zfunc` before
    /// `compinit`); fish: `openloom completions fish > ~/.config/fish/completions/openloom.fish`;
    /// PowerShell: `openloom completions powershell >> $PROFILE`.
    Completions {
        /// The shell to write the script for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Where and how the API server listens.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to bind [default: 127.0.0.1].
    #[arg(long, env = "OPENLOOM_UI_HOST", value_name = "HOST")]
    pub host: Option<String>,
    /// Port to bind [default: 55413]; 0 picks a free one.
    #[arg(long, env = "OPENLOOM_UI_PORT", value_name = "PORT")]
    pub port: Option<u16>,
    /// API token every request must carry (Authorization: Bearer), at least 16
    /// characters. Without one, a token is generated on first start and kept in
    /// $XDG_STATE_HOME/openloom/token (or ~/.local/state/openloom/token). Prefer the
    /// environment variable: a flag shows in the process list.
    #[arg(long, env = "OPENLOOM_API_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Serve without any token (loopback only). RISKY: every local user can then read
    /// every task and create tasks, whose checks run commands as you.
    #[arg(long, conflicts_with = "token")]
    pub no_token: bool,
    /// Extra host names the server answers to (behind a proxy), repeatable.
    #[arg(long = "public-host", value_name = "NAME")]
    pub public_hosts: Vec<String>,
    /// POST signed task events (all of them, JSON) to this URL, repeatable; replaces
    /// `webhooks:` in the config file. The signing secret is read from
    /// OPENLOOM_WEBHOOK_SECRET (docs/notifications.md).
    #[arg(long = "webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
}

/// Where `serve` takes work from besides the API (docs/triggers.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IntakeArgs {
    /// Watch DIR: each spec (.yaml, .yml, .md) or prompt (.txt) file that appears
    /// becomes a task, then moves to DIR/accepted/ (or DIR/rejected/ with the error).
    /// Write files elsewhere and rename them in.
    #[arg(long, env = "OPENLOOM_INBOX", value_name = "DIR")]
    pub inbox: Option<std::path::PathBuf>,
    /// The workspace of inbox files whose spec names none (and of prompt files).
    #[arg(long, env = "OPENLOOM_INBOX_WORKSPACE", value_name = "DIR")]
    pub inbox_workspace: Option<std::path::PathBuf>,
}
