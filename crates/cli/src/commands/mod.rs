//! One module per subcommand; [`run`] dispatches.

mod answer;
mod completions;
mod doctor;
mod init;
mod log;
mod migrate;
pub mod parts;
mod plan;
mod serve;
mod status;
mod verify;
mod watch;
mod words;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};
use crate::config::Settings;
use crate::opencode_child;

/// Runs the parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    // Completions need no settings: a broken config file must not stop a shell's
    // start-up script from loading them.
    if let Command::Completions { shell } = cli.command {
        return completions::run(shell);
    }
    let cwd = std::env::current_dir().context("could not read the current directory")?;
    let env = |key: &str| std::env::var(key).ok();
    let settings = Settings::resolve(&cli.global, &env, &cwd)
        .map_err(|e| crate::exit::coded(crate::exit::BAD_INPUT, format!("{e:#}")))?;
    tracing::debug!(?settings, "settings resolved");
    if std::env::args().any(|arg| arg == "--token" || arg.starts_with("--token=")) {
        eprintln!(
            "openloom: warning: --token is visible to every user in the process list; \
             prefer OPENLOOM_API_TOKEN or `api_token` in the config file"
        );
    }
    match cli.command {
        Command::Init { path, force } => init::run(&cwd, &path, force),
        Command::Watch { spec, fresh, ui, server } => {
            // OpenCode starts in the task's workspace; a spec that does not load or is
            // not allowed starts nothing, and `watch` reports it.
            let workspace = parts::load_spec(&spec)
                .ok()
                .and_then(|s| settings.workspace_policy().resolve(&s.workspace).ok());
            let opencode = match workspace {
                Some(workspace) => opencode_child::ensure(&settings, &workspace).await?,
                None => opencode_child::ensure_none(&settings),
            };
            let settings = opencode.settings().with_webhook_args(&server.webhooks);
            let ui = ui.then(|| settings.with_server_args(&server));
            let code = watch::run(&settings, &spec, fresh, ui).await;
            opencode.shutdown().await;
            code
        }
        Command::Serve { server, intake } => {
            let root = settings.allowed_roots.first().cloned().unwrap_or_else(|| cwd.clone());
            let opencode = opencode_child::ensure(&settings, &root).await?;
            let settings =
                opencode.settings().with_server_args(&server).with_intake_args(&intake, &cwd);
            let code = serve::run(&settings).await;
            opencode.shutdown().await;
            code
        }
        Command::Status { json, limit } => status::run(&settings, json, limit).await,
        Command::Log { task, json, limit } => log::run(&settings, &task, json, limit).await,
        Command::Answer { task, request, allow, always, deny, message, choose, dismiss } => {
            let reply = answer::reply(allow, always, deny, message, choose, dismiss)?;
            answer::run(&settings, &task, request.as_deref(), &reply).await
        }
        Command::Verify { spec, json } => verify::run(&settings, &spec, json).await,
        Command::Plan { intent, workspace, output, force } => {
            let opencode = match settings.workspace_policy().resolve(&workspace.to_string_lossy()) {
                Ok(directory) => opencode_child::ensure(&settings, &directory).await?,
                Err(_) => opencode_child::ensure_none(&settings),
            };
            let code = plan::run(opencode.settings(), &intent, &workspace, &output, force).await;
            opencode.shutdown().await;
            code
        }
        Command::Completions { shell } => completions::run(shell),
        Command::Doctor => doctor::run(&settings, &cwd).await,
        Command::Migrate { from, to } => migrate::run(&cwd.join(from), &to).await,
    }
}
