//! The `openloom` binary: parse the command line, resolve settings, install
//! tracing, run the command. Everything else lives in the library crates.

mod cli;
mod commands;
mod config;
mod console;
mod exit;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::Coded;

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_tracing();
    protect_secrets();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("openloom: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("openloom: error: {error:#}");
            ExitCode::from(error.downcast_ref::<Coded>().map_or(exit::FAILURE, |c| c.code))
        }
    }
}

/// Keeps other processes of the same user — the checks OpenLoom runs, the agent's
/// tools — from reading this process's environment (the OpenCode password, the API
/// token) through `/proc/<pid>/environ`, and from attaching a debugger to it.
fn protect_secrets() {
    #[cfg(target_os = "linux")]
    if let Err(error) = nix::sys::prctl::set_dumpable(false) {
        tracing::debug!(%error, "could not mark the process non-dumpable");
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings only, so the
/// console lines stay readable).
fn install_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
